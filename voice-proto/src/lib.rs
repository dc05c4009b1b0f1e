//! `voice-proto`: the sans-IO core of a Discord voice connection.
//!
//! (Crate docs with a complete hand-driven connection follow once the engine lands.)
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod close;
pub mod config;
pub mod crypto;
pub mod discovery;
mod engine;
pub mod error;
pub mod gateway;
pub mod heartbeat;
pub mod id;
pub mod io;
pub mod join;
pub mod payload;
pub mod rtp;
pub mod secret;
pub mod state;

pub use config::Config;
pub use engine::Stats;
pub use error::{Error, NotReady, ProtocolError, Stage};
pub use io::{DisconnectReason, Event, Input, Output, ReceivedAudio, Recovery};
pub use join::{ConnectionInfo, JoinRequest};
pub use state::{AnyState, AwaitingServerUpdate, Discovering, Identifying, Session};
