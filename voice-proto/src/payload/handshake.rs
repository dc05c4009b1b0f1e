//! Handshake payloads: Hello, Identify, Ready, Select Protocol, Session Description, Resume.

use core::time::Duration;

use serde::{Deserialize, Serialize};

use crate::id::{GuildId, UserId};
use crate::secret::{SecretKey, Token};

/// Op 0 Identify (client -> server), docs/protocol.md C5.
///
/// `Debug` is safe to log: the token prints as `Token(<redacted>)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identify {
    /// The guild id (Discord calls it `server_id` here).
    pub server_id: GuildId,
    /// The bot's own user id.
    pub user_id: UserId,
    /// `session_id` from the bot's own `VOICE_STATE_UPDATE`.
    pub session_id: String,
    /// `token` from `VOICE_SERVER_UPDATE`.
    pub token: Token,
    /// Highest DAVE protocol version supported; 0 means none (close 4017 on most channels).
    #[serde(default)]
    pub max_dave_protocol_version: u16,
}

/// Op 1 Select Protocol (client -> server), docs/protocol.md C15.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectProtocol {
    /// Always `"udp"` for voice (4012 otherwise).
    pub protocol: String,
    /// The externally visible UDP endpoint and the chosen mode.
    pub data: SelectProtocolData,
}

impl SelectProtocol {
    /// A UDP selection with the address and port from IP discovery and the chosen `mode`.
    pub fn udp(address: impl Into<String>, port: u16, mode: impl Into<String>) -> Self {
        Self {
            protocol: "udp".to_owned(),
            data: SelectProtocolData {
                address: address.into(),
                port,
                mode: mode.into(),
            },
        }
    }
}

/// The `data` object of [`SelectProtocol`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectProtocolData {
    /// Our external IP address as found by IP discovery.
    pub address: String,
    /// Our external UDP port as found by IP discovery.
    pub port: u16,
    /// The transport encryption mode, one of Ready's `modes`.
    pub mode: String,
}

/// Op 2 Ready (server -> client).
///
/// Discord also sends `heartbeat_interval` here; it is wrong (DOCS) and ignored, as are
/// `experiments`, `streams` and any other extra field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// Our RTP SSRC (can exceed 2^31 on stage channels).
    pub ssrc: u32,
    /// The voice server's UDP address.
    pub ip: String,
    /// The voice server's UDP port.
    pub port: u16,
    /// The offered transport encryption modes.
    pub modes: Vec<String>,
}

/// Op 4 Session Description (server -> client).
///
/// `Debug` is safe to log: the key prints as `SecretKey(<redacted>)`. Extra fields such as
/// `media_session_id`, `audio_codec` or `video_codec` are ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDescription {
    /// The transport encryption mode the server settled on.
    pub mode: String,
    /// The 32-byte transport key (exactly 32 integers in 0..=255, C17).
    pub secret_key: SecretKey,
    /// Negotiated DAVE protocol version; 0 (also when absent) means no end-to-end encryption.
    #[serde(default)]
    pub dave_protocol_version: u16,
}

/// Op 7 Resume (client -> server), docs/protocol.md C9.
///
/// `Debug` is safe to log: the token prints as `Token(<redacted>)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The guild id (Discord calls it `server_id` here).
    pub server_id: GuildId,
    /// The session id of the session being resumed.
    pub session_id: String,
    /// The token of the session being resumed.
    pub token: Token,
    /// The last sequence number seen, -1 if none (v8 buffered resume).
    #[serde(default = "super::no_seq")]
    pub seq_ack: i64,
}

/// Op 8 Hello (server -> client): how often to heartbeat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Heartbeat interval in milliseconds, as sent (a JSON number, possibly fractional).
    /// Use [`Hello::interval`] to get a validated [`Duration`].
    #[serde(serialize_with = "whole_as_integer")]
    pub heartbeat_interval: f64,
    /// Voice gateway version the server speaks, if it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<u8>,
}

/// Writes whole numbers as JSON integers (`13750`, as Discord sends it, not `13750.0`).
fn whole_as_integer<S: serde::Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    // Up to 2^53 every whole f64 converts to u64 exactly; NaN and infinities fail the range test.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if value.fract() == 0.0 && (0.0..=EXACT).contains(value) {
        serializer.serialize_u64(*value as u64)
    } else {
        serializer.serialize_f64(*value)
    }
}

/// Longest heartbeat interval accepted from Hello: anything above an hour is not a real interval.
pub const MAX_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3600);

/// Shortest heartbeat interval accepted from Hello: anything below would be a busy loop.
pub const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(1);

impl Hello {
    /// The heartbeat interval as a [`Duration`].
    ///
    /// Rejects NaN, infinities, zero, negative values and anything outside
    /// [`MIN_HEARTBEAT_INTERVAL`]..=[`MAX_HEARTBEAT_INTERVAL`], so a hostile or broken server cannot
    /// make the pacemaker spin or never fire.
    pub fn interval(&self) -> Result<Duration, InvalidHeartbeatInterval> {
        let millis = self.heartbeat_interval;
        let error = InvalidHeartbeatInterval { millis };
        let min = MIN_HEARTBEAT_INTERVAL.as_secs_f64() * 1000.0;
        let max = MAX_HEARTBEAT_INTERVAL.as_secs_f64() * 1000.0;
        // `contains` is false for NaN as well.
        if !(min..=max).contains(&millis) {
            return Err(error);
        }
        Duration::try_from_secs_f64(millis / 1000.0).map_err(|_| error)
    }
}

/// Hello's `heartbeat_interval` is not a usable interval.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[error(
    "expected Hello heartbeat_interval to be between 1 and 3600000 milliseconds, found {millis}"
)]
pub struct InvalidHeartbeatInterval {
    /// The value that arrived, in milliseconds.
    pub millis: f64,
}
