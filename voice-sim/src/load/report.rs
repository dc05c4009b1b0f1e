//! [`LoadReport`]: what counting mode measured over one window, serializable so it can cross a
//! process boundary; [`LoadStatus`] for waiting until the streams flow.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::stats::JitterSummary;

/// Per-stream packet rate over the window, in packets per second.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RateSummary {
    /// Median over the streams.
    pub median_per_second: f64,
    /// The slowest stream.
    pub min_per_second: f64,
    /// The fastest stream.
    pub max_per_second: f64,
}

/// Datagrams that were not counted as a stream's packets, by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// Not RTP version 2 with payload type 120 (0x78), or shorter than its header says.
    pub bad_header: u64,
    /// RTP for an SSRC no described session has.
    pub unknown_ssrc: u64,
    /// RTP for a known SSRC from another address than the one its client discovered.
    pub foreign_source: u64,
    /// Datagrams of no other kind (not RTP, RTCP, IP discovery or a keepalive).
    pub other: u64,
}

impl Rejected {
    /// All rejected datagrams.
    pub fn total(&self) -> u64 {
        self.bad_header + self.unknown_ssrc + self.foreign_source + self.other
    }
}

/// Packet, sequence and timing figures of one stream over the window, or summed over every
/// stream ([`LoadReport::totals`]; `max_gap` is then the longest of any stream).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamFigures {
    /// Packets counted (valid header, known SSRC, the right source address).
    pub packets: u64,
    /// Sequence numbers that never arrived (gaps).
    pub missing: u64,
    /// Sequence numbers received more than once.
    pub duplicates: u64,
    /// Packets that arrived after a higher sequence number.
    pub reorders: u64,
    /// In-order packets whose timestamp did not advance 960 per sequence step.
    pub timestamp_steps: u64,
    /// Inter-arrivals longer than the pause threshold (200 ms by default).
    pub pauses: u64,
    /// Longest inter-arrival.
    pub max_gap: Duration,
}

impl StreamFigures {
    /// Adds `other`'s counts (and keeps the longer gap).
    pub(crate) fn add(&mut self, other: &StreamFigures) {
        self.packets += other.packets;
        self.missing += other.missing;
        self.duplicates += other.duplicates;
        self.reorders += other.reorders;
        self.timestamp_steps += other.timestamp_steps;
        self.pauses += other.pauses;
        self.max_gap = self.max_gap.max(other.max_gap);
    }
}

/// One stream's figures over the window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamWindow {
    /// The stream's SSRC.
    pub ssrc: u32,
    /// The client it belongs to (index of [`ExpectedClient::client`](crate::ExpectedClient)).
    pub client: usize,
    /// What it did.
    #[serde(flatten)]
    pub figures: StreamFigures,
}

/// What counting mode measured over one window (from
/// [`VoiceServer::open_window`](crate::VoiceServer::open_window) to
/// [`VoiceServer::close_window`](crate::VoiceServer::close_window)).
///
/// Every figure is the server's: arrival times are kernel receive timestamps, so they do not
/// depend on when the counting thread got to read a packet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Length of the window.
    pub window: Duration,
    /// Streams (described voice sessions) at the end of the window.
    pub streams: usize,
    /// Packets, gaps, duplicates, reorders, timestamp steps and pauses summed over the streams.
    #[serde(flatten)]
    pub totals: StreamFigures,
    /// Per-stream packet rate over the window (median, min, max over `streams`).
    pub rate: RateSummary,
    /// Streams that sent no packet in the window.
    pub silent_streams: usize,
    /// `|inter-arrival - frame interval|` over every counted packet after a stream's first
    /// (0.1 ms buckets; p50/p99 are bucket upper edges, max is exact).
    pub jitter: JitterSummary,
    /// Packets transport-decrypted as a sample (one in
    /// [`CountingConfig::decrypt_every`](crate::load::CountingConfig::decrypt_every)).
    pub decrypt_checked: u64,
    /// Sampled packets that failed to decrypt.
    pub decrypt_failed: u64,
    /// Datagrams not counted, by reason.
    pub rejected: Rejected,
    /// Keepalive datagrams (8 or 4 bytes), ignored.
    pub keepalives: u64,
    /// RTCP datagrams, ignored.
    pub rtcp: u64,
    /// IP discovery requests (answered).
    pub discovery_requests: u64,
    /// Counted packets that came without a kernel receive timestamp (the counting thread's
    /// clock was used instead). Zero on Linux.
    pub untimestamped: u64,
    /// Datagrams the kernel dropped because the server's receive buffer was full, when known
    /// (Linux: the socket's `drops` in `/proc/net/udp`).
    pub kernel_drops: Option<u64>,
    /// The receive buffer the kernel granted, in bytes.
    pub receive_buffer: Option<usize>,
    /// CPU time (user + system) of the whole server process over the window.
    pub server_cpu: Option<Duration>,
    /// CPU time of the counting thread alone over the window.
    pub counting_thread_cpu: Option<Duration>,
    /// Protocol violations the gateway recorded so far (the handshake is validated as usual).
    pub gateway_violations: usize,
    /// Each stream's figures, by SSRC.
    pub per_stream: Vec<StreamWindow>,
}

impl LoadReport {
    /// Server CPU per counted packet.
    pub fn server_cpu_per_packet(&self) -> Option<Duration> {
        let packets = u32::try_from(self.totals.packets).ok().filter(|p| *p > 0)?;
        Some(self.server_cpu? / packets)
    }

    /// Whether every packet arrived once, in order, valid, from the right address, with nothing
    /// dropped by the kernel and no gateway violation.
    pub fn is_clean(&self) -> bool {
        let totals = &self.totals;
        totals.missing == 0
            && totals.duplicates == 0
            && totals.reorders == 0
            && totals.timestamp_steps == 0
            && self.decrypt_failed == 0
            && self.rejected.total() == 0
            && self.kernel_drops.unwrap_or(0) == 0
            && self.gateway_violations == 0
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let window = self.window.as_secs_f64();
        writeln!(
            f,
            "window {window:.2} s: {} streams, {} packets ({:.0}/s), {} silent",
            self.streams,
            self.totals.packets,
            self.totals.packets as f64 / window.max(1e-9),
            self.silent_streams
        )?;
        writeln!(
            f,
            "rate per stream: median {:.2}/s, min {:.2}/s, max {:.2}/s",
            self.rate.median_per_second, self.rate.min_per_second, self.rate.max_per_second
        )?;
        writeln!(
            f,
            "jitter: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples); pauses {}, longest gap {:.1} ms",
            self.jitter.p50_ms,
            self.jitter.p99_ms,
            self.jitter.max_ms,
            self.jitter.samples,
            self.totals.pauses,
            self.totals.max_gap.as_secs_f64() * 1000.0
        )?;
        writeln!(
            f,
            "missing {}, duplicates {}, reorders {}, timestamp steps {}, decrypted {}/{} failed",
            self.totals.missing,
            self.totals.duplicates,
            self.totals.reorders,
            self.totals.timestamp_steps,
            self.decrypt_failed,
            self.decrypt_checked
        )?;
        let drops = self
            .kernel_drops
            .map_or_else(|| "unknown".to_owned(), |d| d.to_string());
        writeln!(
            f,
            "rejected: {} bad header, {} unknown ssrc, {} foreign source, {} other; kernel drops {drops}",
            self.rejected.bad_header,
            self.rejected.unknown_ssrc,
            self.rejected.foreign_source,
            self.rejected.other
        )?;
        let micros = |d: Option<Duration>| {
            d.map_or_else(
                || "unknown".to_owned(),
                |d| format!("{:.2}", d.as_secs_f64() * 1e6),
            )
        };
        write!(
            f,
            "server CPU {} ms ({} µs per packet), counting thread {} ms; gateway violations {}",
            self.server_cpu
                .map_or_else(|| "unknown".to_owned(), |d| d.as_millis().to_string()),
            micros(self.server_cpu_per_packet()),
            self.counting_thread_cpu
                .map_or_else(|| "unknown".to_owned(), |d| d.as_millis().to_string()),
            self.gateway_violations
        )
    }
}

/// A cheap look at the counting server between windows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadStatus {
    /// Described voice sessions (Session Description sent).
    pub streams: usize,
    /// Streams whose last packet arrived less than a second ago.
    pub sending: usize,
    /// Packets counted since the window opened (or the server started).
    pub packets: u64,
}
