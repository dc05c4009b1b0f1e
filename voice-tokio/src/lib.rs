//! `voice-tokio`: join a Discord voice channel and stream Opus from a Tokio application.
//!
//! A thin adapter around [`voice_proto`]: it owns the websocket (TLS through rustls), the UDP
//! socket and the timers, and runs the core's drain loop. Every protocol decision (handshake,
//! heartbeats, resume or reconnect, close codes) is made by `voice-proto`.
//!
//! ```no_run
//! # async fn run(gateway: tokio::sync::mpsc::UnboundedSender<String>, opus_frames: Vec<bytes::Bytes>) -> Result<(), voice_tokio::JoinError> {
//! use voice_tokio::{JoinOptions, SpeakingFlags, Voice, VoiceConfig};
//! use voice_proto::id::{ChannelId, GuildId, UserId};
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
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod connection;
mod driver;
mod voice;
mod ws;

pub use connection::{Connection, OpusSender, SendError};
pub use voice::Voice;
pub use voice_adapter::{GatewayLink, JoinError, JoinOptions, VoiceConfig};
pub use voice_proto::payload::SpeakingFlags;
pub use voice_proto::{ConnectionInfo, Event};
