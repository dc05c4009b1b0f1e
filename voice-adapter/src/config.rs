//! Adapter settings: the core's [`Config`](voice_proto::Config) plus what only real I/O needs.

use core::time::Duration;

/// Settings for every connection made by an adapter's `Voice` or `Connection::connect`.
///
/// New settings may be added in any release (`#[non_exhaustive]`): start from
/// `VoiceConfig::default()` and use the `with_*` methods (or set the public fields).
///
/// ```
/// use std::time::Duration;
/// use voice_adapter::VoiceConfig;
///
/// let mut core = voice_proto::Config::default();
/// core.join_timeout = Duration::from_secs(15);
/// let config = VoiceConfig::default()
///     .with_core(core)
///     .with_event_queue(256)
///     .with_close_timeout(Duration::from_secs(1));
/// assert_eq!(config.event_queue, 256);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VoiceConfig {
    /// Protocol timing and policy (timeouts, retries, mode preference, URL override).
    pub core: voice_proto::Config,
    /// Extra trusted root certificates, PEM encoded (e.g. a loopback server's CA).
    pub extra_root_certificates: Vec<Vec<u8>>,
    /// Media worker threads shared by every connection made with this setting (0: one per core).
    /// Each worker sends the audio of its connections; their number does not grow with the
    /// number of connections. `voice-std` runs as many event-loop threads (websockets, media
    /// receive, control timers) beside them. (The playout queue's length is the core's
    /// [`playout_queue_frames`](voice_proto::Config::playout_queue_frames).)
    pub media_workers: usize,
    /// Events that may wait for the application before new ones are dropped (counted). Control
    /// events (`Connected`, `Reconnecting`, `Resumed`, `Disconnected`, `Closed`, `PlayoutHeld`,
    /// `PlayoutResumed`) do not count against it and are never dropped for others
    /// ([`EventQueue`](crate::EventQueue)).
    pub event_queue: usize,
    /// How long to wait for the websocket close handshake when disconnecting.
    pub close_timeout: Duration,
}

impl VoiceConfig {
    /// This configuration with receive on (default buffer settings) for every connection:
    /// `connection.receiver()` then hands out other members' audio.
    pub fn receiving(mut self) -> Self {
        self.core.receive = Some(self.core.receive.unwrap_or_default());
        self
    }
}

impl Default for VoiceConfig {
    fn default() -> Self {
        Self {
            core: voice_proto::Config::default(),
            extra_root_certificates: Vec::new(),
            media_workers: 0,
            event_queue: 1024,
            close_timeout: Duration::from_secs(2),
        }
    }
}

impl VoiceConfig {
    /// These settings with the core's protocol timing and policy replaced by `core`.
    pub fn with_core(mut self, core: voice_proto::Config) -> Self {
        self.core = core;
        self
    }

    /// These settings trusting one more root certificate (PEM), e.g. a loopback server's CA.
    pub fn with_extra_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_root_certificates.push(pem.into());
        self
    }

    /// These settings with `workers` media worker threads (0: one per core).
    pub fn with_media_workers(mut self, workers: usize) -> Self {
        self.media_workers = workers;
        self
    }

    /// These settings keeping at most `events` data events for the application.
    pub fn with_event_queue(mut self, events: usize) -> Self {
        self.event_queue = events;
        self
    }

    /// These settings waiting at most `timeout` for the websocket close handshake.
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// The core settings for one new connection: [`core`](Self::core) with fresh entropy in
    /// `rtp_seed` (the initial RTP sequence and timestamp) and `jitter_seed` (the reconnect
    /// backoff's jitter, so that connections that lost the same server do not come back in
    /// step). The core reads no entropy itself.
    pub fn core_with_fresh_seeds(&self) -> voice_proto::Config {
        let mut core = self.core.clone();
        core.rtp_seed = fresh_seed(0);
        core.jitter_seed = fresh_seed(1);
        core
    }
}

/// Per-join options. New options may be added in any release (`#[non_exhaustive]`): start from
/// `JoinOptions::default()` and use the `with_*` methods.
///
/// ```
/// let options = voice_adapter::JoinOptions::default().with_self_deaf(true);
/// assert!(options.self_deaf && !options.self_mute);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JoinOptions {
    /// Join muted.
    pub self_mute: bool,
    /// Join deafened.
    pub self_deaf: bool,
    /// Receive other members' audio on this connection with these settings, whatever
    /// [`VoiceConfig::core`]'s `receive` says (`None`: as it says; off by default).
    pub receive: Option<voice_proto::ReceiveConfig>,
}

impl JoinOptions {
    /// Options that receive other members' audio with the default buffer settings.
    pub fn receiving() -> Self {
        Self {
            receive: Some(voice_proto::ReceiveConfig::default()),
            ..Self::default()
        }
    }
}

impl JoinOptions {
    /// These options joining muted (or not).
    pub fn with_self_mute(mut self, mute: bool) -> Self {
        self.self_mute = mute;
        self
    }

    /// These options joining deafened (or not).
    pub fn with_self_deaf(mut self, deaf: bool) -> Self {
        self.self_deaf = deaf;
        self
    }
}

/// 64 bits of entropy from std's randomly keyed hasher and the clock (no RNG dependency).
fn fresh_seed(salt: u8) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u8(salt);
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}
