//! `voice-std`: join a Discord voice channel and stream Opus from plain threads (no async
//! runtime): custom event loops, game engines, embedded-ish hosts.
//!
//! The same API shape as `voice-tokio`, in blocking form, around the very same `voice-proto`
//! engine. Every protocol decision is made by the core; this crate only moves bytes.
//!
//! # Threads
//!
//! Each connection runs three named threads: `voice-driver` (the core's drain loop, timers and
//! the 20 ms audio clock), `voice-ws` (the websocket: connect, TLS, read, write; a new one per
//! websocket, e.g. after a resume) and `voice-udp` (receives datagrams; a new one per UDP
//! socket). All of them end on [`Connection::disconnect`] or when the [`Connection`] is dropped.
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
//! connection.disconnect();
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod connection;
mod driver;
mod udp;
mod voice;
mod ws;

pub use connection::{Connection, OpusSender};
pub use voice::Voice;
pub use voice_adapter::{GatewayLink, JoinError, JoinOptions, VoiceConfig};
pub use voice_proto::payload::SpeakingFlags;
pub use voice_proto::{ConnectionInfo, Event};
