//! The crate's one error type, wrapping each layer's own error.

use core::time::Duration;

use crate::close::FatalReason;
use crate::crypto::{CryptoError, NoCommonMode};
use crate::dave::DaveError;
use crate::discovery::DiscoveryError;
use crate::gateway::GatewayError;
use crate::payload::{DecodeError, Opcode};
use crate::rtp::RtpError;

/// Everything that can end a connection attempt or a call into the core.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A gateway frame could not be decoded.
    #[error("could not decode a voice gateway frame: {0}")]
    Decode(#[from] DecodeError),
    /// A main-gateway dispatch or endpoint was unusable.
    #[error("main gateway: {0}")]
    Gateway(#[from] GatewayError),
    /// Transport encryption failed.
    #[error("transport crypto: {0}")]
    Crypto(#[from] CryptoError),
    /// An RTP packet was malformed.
    #[error("rtp: {0}")]
    Rtp(#[from] RtpError),
    /// An IP discovery answer was malformed.
    #[error("ip discovery: {0}")]
    Discovery(#[from] DiscoveryError),
    /// Ready offered no encryption mode we accept.
    #[error(transparent)]
    NoCommonMode(#[from] NoCommonMode),
    /// The server broke the message order or sent a value we cannot use.
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtocolError),
    /// A stage did not complete before its deadline.
    #[error("timed out after {after:?} waiting for {stage}")]
    Timeout {
        /// What we were waiting for.
        stage: Stage,
        /// How long we waited.
        after: Duration,
    },
    /// The voice gateway closed the connection with a code that forbids retrying.
    #[error("the voice gateway closed the connection with code {code}: {reason}")]
    Fatal {
        /// The websocket close code.
        code: u16,
        /// What the code means and what to do.
        reason: FatalReason,
    },
    /// The voice websocket closed before the session was established (the `last` failure of
    /// [`Error::JoinFailed`] when that kept happening).
    #[error("the voice gateway closed the connection during the handshake (close code {})", display_code(*.code))]
    HandshakeClosed {
        /// The websocket close code, `None` when the transport dropped without a close frame.
        code: Option<u16>,
    },
    /// The first session could not be established: every attempt failed until the join deadline
    /// ([`Config::join_timeout`](crate::Config::join_timeout)) passed or the attempts
    /// ([`Config::max_reconnect_attempts`](crate::Config::max_reconnect_attempts)) ran out.
    /// `last` says what failed last (a close during the handshake, a timeout, ...).
    #[error("could not join the voice channel: {attempts} attempts in {elapsed:?} failed, the last: {last}")]
    JoinFailed {
        /// Attempts made (the first included).
        attempts: u32,
        /// Time from the start of the join until it was given up.
        elapsed: Duration,
        /// What failed last.
        last: Box<Error>,
    },
    /// We gave up after this many reconnection attempts in a row.
    #[error("gave up after {attempts} reconnection attempts in a row (last close code {})", display_code(*.last_code))]
    TooManyReconnects {
        /// Attempts made.
        attempts: u32,
        /// The last close code seen.
        last_code: Option<u16>,
    },
    /// We were disconnected (kicked, moved away, channel deleted) and no new voice server came.
    #[error("disconnected from voice (close code {}) and no new voice server was assigned", display_code(*.code))]
    Disconnected {
        /// The close code that removed us.
        code: Option<u16>,
    },
    /// The application asked to disconnect.
    #[error("the connection was closed by the application")]
    ClosedByApplication,
    /// Audio cannot be sent right now (no session key, or the connection is being re-established).
    #[error("cannot send audio: {0}")]
    NotReady(NotReady),
    /// DAVE end-to-end encryption failed in a way that ends the connection.
    #[error("DAVE end-to-end encryption: {0}")]
    Dave(#[from] DaveError),
}

fn display_code(code: Option<u16>) -> String {
    code.map_or_else(
        || "none: the connection dropped".to_owned(),
        |c| c.to_string(),
    )
}

/// Why audio cannot be sent at this moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotReady {
    /// A fresh connection is being negotiated; no transport key yet.
    #[error("the connection is being re-established")]
    Reconnecting,
    /// The connection has ended.
    #[error("the connection is closed")]
    Closed,
    /// The caller's buffer is smaller than the packet.
    #[error("the output buffer holds {available} bytes but the packet needs {needed}")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// DAVE end-to-end encryption is negotiated but we hold no sending key yet (joining the MLS
    /// group, or re-joining after a recovery). Nothing was sent and no counter advanced; the
    /// playout keeps the frame until a key is in place. Silence frames are still accepted.
    #[error("end-to-end encryption (DAVE) is negotiated but not keyed yet")]
    E2eeNotReady,
    /// The Opus frame is empty or longer than an Opus packet can be.
    #[error("an Opus frame must be 1..=1275 bytes, got {len}")]
    BadFrameLength {
        /// The frame length given.
        len: usize,
    },
}

/// The handshake stage a deadline belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// Waiting for VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE from the main gateway.
    ServerUpdate,
    /// Waiting for op 8 Hello and op 2 Ready after opening the websocket.
    Ready,
    /// Waiting for an IP discovery answer.
    IpDiscovery,
    /// Waiting for op 4 Session Description after Select Protocol.
    SessionDescription,
    /// Waiting for op 9 Resumed after op 7 Resume.
    Resumed,
    /// Waiting for a new voice server after being moved or disconnected.
    Move,
}

impl core::fmt::Display for Stage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Stage::ServerUpdate => {
                "VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE from the main gateway"
            }
            Stage::Ready => "Hello (op 8) and Ready (op 2) from the voice gateway",
            Stage::IpDiscovery => "an IP discovery answer over UDP",
            Stage::SessionDescription => "Session Description (op 4) from the voice gateway",
            Stage::Resumed => "Resumed (op 9) from the voice gateway",
            Stage::Move => "a new VOICE_SERVER_UPDATE after being disconnected",
        })
    }
}

/// The server sent something at the wrong time or a value we cannot use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Ready's `ip` is not an IP address.
    #[error("Ready carried ip {ip:?}, expected an IPv4 or IPv6 address")]
    BadServerAddress {
        /// What arrived.
        ip: String,
    },
    /// Session Description named a mode other than the one we selected.
    #[error("selected encryption mode {selected} but Session Description says {received:?}")]
    ModeMismatch {
        /// What we selected.
        selected: &'static str,
        /// What arrived.
        received: String,
    },
    /// Hello carried an unusable heartbeat interval.
    #[error("Hello carried heartbeat_interval {interval_ms} ms, expected a positive number of milliseconds up to one hour")]
    BadHeartbeatInterval {
        /// What arrived.
        interval_ms: f64,
    },
    /// A message arrived that the current stage does not expect.
    #[error("{op:?} arrived while {stage}")]
    Unexpected {
        /// The opcode that arrived.
        op: Opcode,
        /// What we were doing.
        stage: &'static str,
    },
    /// A Session Description asked for a DAVE version we did not offer.
    #[error("Session Description asked for DAVE protocol version {requested}, we offered at most {offered}")]
    UnsupportedDaveVersion {
        /// What arrived.
        requested: u16,
        /// Our `max_dave_protocol_version`.
        offered: u16,
    },
}
