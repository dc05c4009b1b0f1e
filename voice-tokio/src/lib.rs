//! `voice-tokio`: join a Discord voice channel and stream Opus from a Tokio application.
//!
//! A thin adapter around [`voice_proto`]: it owns the websocket (TLS through rustls), the UDP
//! socket and the timers, and runs the core's drain loop. Every protocol decision (handshake,
//! heartbeats, resume or reconnect, close codes, the playout) is made by `voice-proto`.
//!
//! # Tasks and threads
//!
//! Each connection has one driver task on the application's runtime for its websocket side; it
//! runs only when something happens (a websocket message, a datagram, a dispatch, a heartbeat or
//! other control deadline). The audio goes out from a small fixed set of media worker threads
//! (`voice-media-N`, one per core by default, [`VoiceConfig::media_workers`]) shared by every
//! connection of the process: a worker wakes at most once per millisecond, sends every datagram
//! due, and sleeps, so there is no timer, task wake-up or channel hop per packet and the threads
//! do not grow with the number of connections. [`OpusSender`] queues frames straight into the
//! connection's playout queue (in the core) and waits only when it is full, woken when it is half
//! empty again. Any runtime flavour works, `current_thread` included. Received audio (opt-in,
//! [`VoiceConfig::receiving`]) is taken in by the driver task, never by the media workers:
//! [`Connection::receiver`] hands out per-user and all-users [`AudioStream`]s.
//!
//! ```no_run
//! # async fn run(gateway: tokio::sync::mpsc::UnboundedSender<String>, opus_frames: Vec<bytes::Bytes>) -> Result<(), voice_tokio::JoinError> {
//! use voice_tokio::{ChannelId, GuildId, JoinOptions, SpeakingFlags, UserId, Voice, VoiceConfig};
//!
//! // Made once; `gateway` sends op-4 payloads on the application's main gateway.
//! let voice = Voice::new(UserId(80351110224678912), gateway, VoiceConfig::default());
//! // ... the application forwards VOICE_STATE_UPDATE / VOICE_SERVER_UPDATE:
//! // voice.handle_dispatch("VOICE_SERVER_UPDATE", d_json);
//! let connection = voice
//!     .join_channel(GuildId(41771983423143937), ChannelId(127121515262115840), JoinOptions::default())
//!     .await?;
//! connection.speaking(SpeakingFlags::MICROPHONE);
//! let sender = connection.opus_send();
//! for frame in opus_frames {
//!     // One 20 ms Opus frame each; the driver paces them and applies backpressure.
//!     if sender.send(frame).await.is_err() { break; }
//! }
//! connection.stop_speaking();
//! connection.disconnect().await;
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! - `serenity`: `SerenityVoice`, serenity's voice gateway manager (register it with
//!   `ClientBuilder::voice_manager_arc`), and serenity's ids wherever [`Voice`] takes an id.
//! - `twilight`: `TwilightGateway` (op 4 through the shards' message senders, any number of
//!   shards), `Voice::process_twilight_event`, and twilight's ids wherever [`Voice`] takes one.
//!
//! Both are off by default; the `serenity_bot` and `twilight_bot` examples use them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod connection;
mod driver;
mod events;
mod integrations;
mod receiver;
mod voice;
mod ws;

pub use connection::{Connection, OpusSender};
pub use events::Events;
#[cfg(feature = "serenity")]
pub use integrations::serenity::SerenityVoice;
#[cfg(feature = "twilight")]
pub use integrations::twilight::TwilightGateway;
pub use integrations::{IntoChannelId, IntoGuildId, IntoUserId};
pub use receiver::{AudioStream, Receiver};
pub use voice::Voice;
pub use voice_adapter::{GatewayLink, JoinError, JoinOptions, SendError, VoiceConfig};
/// The protocol core, for everything not re-exported by name (payloads, close codes, errors).
pub use voice_proto;
pub use voice_proto::id::{ChannelId, GuildId, UserId};
pub use voice_proto::payload::SpeakingFlags;
pub use voice_proto::receive::{Bytes, Item, Received};
pub use voice_proto::secret::Token;
pub use voice_proto::{Config, ConnectionInfo, Event, ReceiveConfig, Stats};
