//! [`CountingConfig`]: the settings of counting mode.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of counting mode ([`ServerConfig::counting`](crate::ServerConfig::counting)).
///
/// Serializable so a parent process can hand it to a load server child
/// ([`LoadServerProcess`](crate::load::LoadServerProcess)); missing fields take their defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CountingConfig {
    /// Transport-decrypt one RTP packet in this many (counted over all streams) to prove the
    /// payloads are valid; 1 decrypts every packet, 0 is taken as 1.
    pub decrypt_every: u32,
    /// UDP receive buffer to ask for, in bytes (`SO_RCVBUFFORCE` when allowed, else
    /// `SO_RCVBUF`, which the kernel caps at `net.core.rmem_max`).
    pub receive_buffer: usize,
    /// How long the counting thread sleeps after draining the socket while packets flow. The
    /// figures come from kernel receive timestamps, so reading in batches does not change them;
    /// it makes the server cheap (one wake-up per interval, not per packet).
    pub read_interval: Duration,
    /// The packet spacing of a stream: jitter is `|inter-arrival - frame_interval|`.
    pub frame_interval: Duration,
    /// An inter-arrival longer than this within one stream is a pause.
    pub pause_threshold: Duration,
}

impl Default for CountingConfig {
    fn default() -> Self {
        Self {
            decrypt_every: 64,
            receive_buffer: 32 << 20,
            read_interval: Duration::from_millis(1),
            frame_interval: Duration::from_millis(20),
            pause_threshold: Duration::from_millis(200),
        }
    }
}
