//! Connection settings: deadlines, retry policy, mode preference.

use core::time::Duration;

use crate::crypto::ModePreference;

/// Everything the engine needs to decide timing and policy. [`Config::default`] holds sane values
/// for Discord; tests shrink them.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// How long to wait for both main-gateway dispatches after sending op 4.
    pub server_update_timeout: Duration,
    /// How long to wait for Hello + Ready (or Hello + Resumed) after asking for a websocket.
    pub handshake_timeout: Duration,
    /// How long to wait for Session Description after Select Protocol.
    pub session_description_timeout: Duration,
    /// How long to wait for each IP discovery answer before sending the request again.
    pub discovery_retry_interval: Duration,
    /// How many IP discovery requests to send before giving up.
    pub discovery_attempts: u32,
    /// After this many heartbeats in a row went unacknowledged the websocket is considered dead and
    /// the session resumes.
    pub max_missed_heartbeats: u32,
    /// Send heartbeats at most this far apart even if Hello allows more (`None`: Hello's interval).
    pub max_heartbeat_interval: Option<Duration>,
    /// Interval of the UDP keepalive that keeps NAT bindings open.
    pub udp_keepalive_interval: Duration,
    /// Delay before the second attempt to resume or reconnect; doubled per attempt. The first attempt
    /// is immediate.
    pub reconnect_backoff_initial: Duration,
    /// Upper bound of the backoff delay.
    pub reconnect_backoff_max: Duration,
    /// Attempts to resume or reconnect in a row before giving up with
    /// [`Error::TooManyReconnects`](crate::Error::TooManyReconnects).
    pub max_reconnect_attempts: u32,
    /// How long to wait for a new voice server after close 4014/4022 or a null endpoint.
    pub move_timeout: Duration,
    /// Transport encryption modes in order of preference.
    pub modes: ModePreference,
    /// Replaces the voice gateway URL built from the endpoint (e.g. `ws://127.0.0.1:PORT/?v=8` for a
    /// loopback server). A `?v=8` is added if no `v=` is present.
    pub gateway_url_override: Option<String>,
    /// The highest DAVE protocol version we offer in Identify (0 = no DAVE support). Default:
    /// [`dave::SUPPORTED_PROTOCOL_VERSION`](crate::dave::SUPPORTED_PROTOCOL_VERSION) (1 with the
    /// `dave` feature, 0 without). Values above what the build supports are clamped to it.
    /// Discord closes non-Stage connections that offer 0 with 4017.
    pub max_dave_protocol_version: u16,
    /// Opus frames the playout queue holds before [`Session::queue_opus`](crate::Session::queue_opus)
    /// refuses more (backpressure). Default [`DEFAULT_QUEUE_FRAMES`](crate::playout::DEFAULT_QUEUE_FRAMES),
    /// one second of audio.
    pub playout_queue_frames: usize,
    /// Entropy for the initial RTP sequence number and timestamp. The core reads no randomness of
    /// its own: adapters pass a random value here.
    pub rtp_seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server_update_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            session_description_timeout: Duration::from_secs(10),
            discovery_retry_interval: Duration::from_secs(1),
            discovery_attempts: 5,
            max_missed_heartbeats: 2,
            max_heartbeat_interval: None,
            udp_keepalive_interval: Duration::from_secs(5),
            reconnect_backoff_initial: Duration::from_millis(500),
            reconnect_backoff_max: Duration::from_secs(30),
            max_reconnect_attempts: 5,
            move_timeout: Duration::from_secs(10),
            modes: ModePreference::default(),
            gateway_url_override: None,
            max_dave_protocol_version: crate::dave::SUPPORTED_PROTOCOL_VERSION,
            playout_queue_frames: crate::playout::DEFAULT_QUEUE_FRAMES,
            rtp_seed: 0,
        }
    }
}

impl Config {
    /// The DAVE protocol version actually offered in Identify:
    /// `max_dave_protocol_version` clamped to what this build supports.
    // Without the `dave` feature the bound is 0 and the `min` is constant: that is the point.
    #[allow(clippy::unnecessary_min_or_max)]
    pub fn offered_dave_protocol_version(&self) -> u16 {
        self.max_dave_protocol_version
            .min(crate::dave::SUPPORTED_PROTOCOL_VERSION)
    }

    /// The delay before reconnection attempt `attempt` (1-based): 0 for the first, then
    /// `initial * 2^(attempt-2)` capped at `reconnect_backoff_max`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(attempt - 2).unwrap_or(u32::MAX);
        self.reconnect_backoff_initial
            .saturating_mul(factor)
            .min(self.reconnect_backoff_max)
    }
}
