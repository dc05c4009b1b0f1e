//! Connection settings: deadlines, retry policy, mode preference.

use core::ops::RangeInclusive;
use core::time::Duration;

use crate::crypto::ModePreference;

/// Everything the engine needs to decide timing and policy. [`Config::default`] holds sane values
/// for Discord; tests shrink them.
///
/// New settings may be added in any release (`#[non_exhaustive]`): start from
/// `Config::default()` and set the fields you need.
///
/// ```
/// let mut config = voice_proto::Config::default();
/// config.join_timeout = std::time::Duration::from_secs(15);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
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
    /// The backoff before the first attempt to resume or reconnect, doubled for every further
    /// attempt in a row up to [`reconnect_backoff_max`](Self::reconnect_backoff_max). Each delay
    /// is drawn between half and all of that value ("equal jitter", see
    /// [`backoff_range`](Self::backoff_range)), so even the first retry waits and clients that
    /// lost the same server do not come back in step. `Duration::ZERO` disables the backoff
    /// (tests only).
    pub reconnect_backoff_initial: Duration,
    /// Upper bound of the backoff delay.
    pub reconnect_backoff_max: Duration,
    /// Attempts to resume or reconnect in a row before giving up with
    /// [`Error::TooManyReconnects`](crate::Error::TooManyReconnects) (or, before the first
    /// session, [`Error::JoinFailed`](crate::Error::JoinFailed)).
    pub max_reconnect_attempts: u32,
    /// How long a session (established or resumed) must stay up before the attempt counter
    /// starts again from zero. A server that closes every session soon after it starts therefore
    /// meets the backoff and the attempt limit instead of a loop.
    pub reconnect_reset_after: Duration,
    /// The overall deadline of a join (or `connect`): from the start until the first session is
    /// established, failed attempts (a websocket closed or dropped, a Hello, Ready or Session
    /// Description timeout, IP discovery without an answer) are retried with backoff; past it
    /// the join ends with [`Error::JoinFailed`](crate::Error::JoinFailed) naming what failed
    /// last.
    pub join_timeout: Duration,
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
    /// Entropy for the jitter of the reconnect backoff. The core reads no randomness of its own:
    /// adapters pass a random value here (with the same seed, two connections back off in step).
    pub jitter_seed: u64,
    /// Receiving other members' audio: `None` (the default) receives nothing and decrypts no
    /// media datagram; `Some` orders each sender's frames in a playout buffer and hands them out
    /// through [`Session::poll_received`](crate::Session::poll_received) (see
    /// [`receive`](crate::receive)).
    pub receive: Option<crate::receive::ReceiveConfig>,
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
            reconnect_reset_after: Duration::from_secs(60),
            join_timeout: Duration::from_secs(30),
            move_timeout: Duration::from_secs(10),
            modes: ModePreference::default(),
            gateway_url_override: None,
            max_dave_protocol_version: crate::dave::SUPPORTED_PROTOCOL_VERSION,
            playout_queue_frames: crate::playout::DEFAULT_QUEUE_FRAMES,
            rtp_seed: 0,
            jitter_seed: 0,
            receive: None,
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

    /// The ceiling of the backoff before recovery attempt `attempt` (1-based):
    /// `reconnect_backoff_initial * 2^(attempt-1)`, capped at `reconnect_backoff_max`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1);
        let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
        self.reconnect_backoff_initial
            .saturating_mul(factor)
            .min(self.reconnect_backoff_max)
    }

    /// The range the backoff before recovery attempt `attempt` (1-based) is drawn from: half to
    /// all of [`backoff`](Self::backoff) ("equal jitter": never shorter than half, so no retry
    /// comes without a wait, and spread so that clients do not retry in step).
    pub fn backoff_range(&self, attempt: u32) -> RangeInclusive<Duration> {
        let ceiling = self.backoff(attempt);
        ceiling / 2..=ceiling
    }
}
