//! `voice-std`: join a Discord voice channel and stream Opus from plain threads (no async
//! runtime): custom event loops, game engines, embedded-ish hosts.
//!
//! The same API shape as `voice-tokio`, in blocking form, around the very same `voice-proto`
//! engine. Every protocol decision is made by the core; this crate only moves bytes.
//!
//! # Threads
//!
//! Every connection of the process runs on small fixed pools of named threads; their number does
//! not grow with the number of connections:
//!
//! - `voice-io-N`, the event loops: as many as media workers
//!   ([`VoiceConfig::media_workers`], one per core by default). Each waits (with `mio`: epoll,
//!   kqueue) for readiness of its connections' sockets, for the earliest of their control
//!   deadlines (heartbeats, keepalives, handshake stages; one heap per loop, never a timer per
//!   packet) and for its inbox. The websocket is non-blocking: TCP connect, TLS and the HTTP
//!   upgrade advance on readiness events, messages are read until the socket has no more,
//!   writes it cannot take at once are flushed when it is writable again. Datagrams go to the
//!   core from one reused buffer per loop (received audio, opt-in, goes from there to the
//!   [`Receiver`]'s streams, never through a media worker). The inbox brings new connections
//!   and wake-ups: a connection whose core holds outputs (an op 5 the playout queued), a
//!   dispatch from [`Voice::handle_dispatch`], a disconnect.
//! - `voice-media-N`, the media workers shared with `voice-tokio`: they send the audio of every
//!   connection when it is due.
//! - `voice-dns`, one thread, only while a websocket URL names a host instead of an IP address:
//!   it looks the name up, so a loop never waits for DNS.
//!
//! Each pool's threads start with their first connection and end about a second after their
//! last one, so an idle process keeps none. Only the caller's own thread ever blocks:
//! [`Connection::connect`] and [`Voice::join_channel`] until the session is established,
//! [`OpusSender::send`] while the queue is full, [`Connection::flush`] until the queue has
//! played, [`Connection::disconnect`] (and dropping the last handle of a [`Connection`]) until its sockets are
//! closed, [`Events::recv`] until an event comes or the connection has ended. The main-gateway link ([`GatewayLink`]) is called on an event loop: it must not
//! block.
//!
//! ```no_run
//! use voice_std::{JoinOptions, SpeakingFlags, Voice, VoiceConfig};
//! use voice_proto::id::{ChannelId, GuildId, UserId};
//!
//! # fn run(gateway: std::sync::mpsc::Sender<String>, frames: Vec<bytes::Bytes>) -> Result<(), voice_std::JoinError> {
//! let voice = Voice::new(UserId(80351110224678912), gateway, VoiceConfig::default());
//! // The application forwards VOICE_STATE_UPDATE / VOICE_SERVER_UPDATE to `voice.handle_dispatch`.
//! let connection = voice.join_channel(GuildId(1), ChannelId(2), JoinOptions::default())?;
//! connection.speaking(SpeakingFlags::MICROPHONE);
//! let sender = connection.opus_send();
//! for frame in frames {
//!     if sender.send(frame).is_err() { break; } // blocks while the queue is full
//! }
//! connection.flush(); // every frame and the five silence frames are out
//! connection.disconnect();
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod connection;
mod driver;
mod event_loop;
mod events;
mod link;
mod receiver;
mod resolver;
mod voice;
mod ws;

pub use connection::{Connection, OpusSender};
pub use events::Events;
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
