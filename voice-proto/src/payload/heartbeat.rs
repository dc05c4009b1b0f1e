//! Heartbeat payloads (v8): op 3 Heartbeat and op 6 Heartbeat ACK.

use serde::{Deserialize, Serialize};

/// Op 3 Heartbeat (client -> server), v8 form `{"t":<nonce>,"seq_ack":<last seq or -1>}` (C7).
///
/// On decode, an absent `seq_ack` means -1 and a bare integer `d` (gateway v < 8) is accepted as
/// the nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The nonce, conventionally Unix time in ms; keep it <= 2^53 - 1 so every client can parse it.
    pub t: u64,
    /// The last sequence number seen from the server, -1 before any.
    #[serde(default = "super::no_seq")]
    pub seq_ack: i64,
}

/// Op 6 Heartbeat ACK (server -> client), v8 form `{"t":<nonce>}` echoing [`Heartbeat::t`].
///
/// On decode a bare integer `d` (gateway v < 8) is accepted as the nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HeartbeatAck {
    /// The echoed nonce.
    pub t: u64,
}
