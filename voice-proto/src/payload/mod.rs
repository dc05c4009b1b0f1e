//! The voice gateway messages, both directions, and their websocket frame codec (docs/protocol.md 2, 3,
//! 9.2).
//!
//! - [`ClientMessage::encode`] and [`ServerFrame::decode_text`] / [`ServerFrame::decode_binary`]
//!   are what a client uses;
//! - [`ServerFrame::encode`] and [`ClientMessage::decode_text`] / [`ClientMessage::decode_binary`]
//!   are what a (test) server uses.
//!
//! JSON messages travel in text frames as `{"op":N,"d":...}` (server messages may add a top-level
//! `"seq"`); DAVE MLS messages (ops 25..=30) travel in binary frames, `[seq u16 BE][op u8][payload]`
//! from the server and `[op u8][payload]` from the client. Unknown fields are ignored everywhere,
//! snowflakes are accepted as strings or numbers, and an unknown opcode is never an error.
//!
//! Every decoder is total: any input gives a message or a [`DecodeError`] that says what was
//! expected and what arrived, without quoting secrets.

mod client;
mod clients;
mod dave;
mod error;
mod frame;
mod handshake;
mod heartbeat;
mod json;
mod opcode;
mod secret_json;
mod server;
mod speaking;

pub use client::ClientMessage;
pub use clients::{ClientDisconnect, ClientsConnect};
pub use dave::{
    DaveExecuteTransition, DaveMlsInvalidCommitWelcome, DavePrepareEpoch, DavePrepareTransition,
    DaveTransitionReady, ProposalsOperation,
};
pub use error::DecodeError;
pub use frame::Encoded;
pub use handshake::{
    Hello, Identify, InvalidHeartbeatInterval, Ready, Resume, SelectProtocol, SelectProtocolData,
    SessionDescription, MAX_HEARTBEAT_INTERVAL, MIN_HEARTBEAT_INTERVAL,
};
pub use heartbeat::{Heartbeat, HeartbeatAck};
pub use opcode::Opcode;
pub use server::{ServerFrame, ServerMessage};
pub use speaking::{Speaking, SpeakingFlags};

/// The `seq_ack` value meaning "no sequence number seen yet".
pub const NO_SEQ: i64 = -1;

/// serde default for `seq_ack` fields.
pub(crate) const fn no_seq() -> i64 {
    NO_SEQ
}
