//! Per-SSRC media statistics: a pure struct fed `(Instant, packet fields)`, so tests drive it with
//! a fake clock.
//!
//! What it measures, per stream:
//! - packets, Opus bytes, silence frames (`F8 FF FE`), transport decrypt failures;
//! - sequence anomalies: gaps (a jump forward over missing numbers), how many numbers are still
//!   missing, duplicates, reordered (late) packets; the 16-bit sequence is extended so wrapping
//!   is not an anomaly;
//! - timestamp steps: between in-order packets the timestamp must advance by 960 per sequence
//!   step (20 ms Opus frames at 48 kHz, docs/protocol.md C19);
//! - inter-arrival jitter: for consecutive packets of one talk spurt, `|arrival delta - 20 ms|`
//!   (p50, p99, max). The pause between two talk spurts is excluded: a spurt ends with silence
//!   frames, and a gap longer than [`SPURT_BREAK`] also starts a new spurt;
//! - talk spurts with the number of trailing silence frames each ended with (docs/protocol.md C21
//!   asks for five; @discordjs/voice sends four).

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use voice_proto::rtp::{SAMPLES_PER_FRAME, SILENCE_FRAME};

/// The packet spacing a 20 ms Opus stream should have.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);

/// An arrival gap at least this long starts a new talk spurt (no jitter sample across it).
pub const SPURT_BREAK: Duration = Duration::from_millis(500);

/// How many recent sequence numbers are remembered for duplicate/missing bookkeeping.
const WINDOW: usize = 4096;

/// Most jitter samples kept (about 30 minutes of audio); later ones are dropped.
const MAX_JITTER_SAMPLES: usize = 100_000;

/// What a single [`StreamStats::observe`] call found unusual.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// The packet repeats a sequence number already received.
    pub duplicate: bool,
    /// The packet arrived after a higher sequence number.
    pub reordered: bool,
    /// Sequence numbers were skipped before this packet (how many).
    pub skipped: u64,
    /// The timestamp did not advance by 960 per sequence step: `(expected, actual)` deltas.
    pub timestamp_step: Option<(u32, u32)>,
}

/// One talk spurt: non-silence frames followed by the silence frames that ended it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spurt {
    /// Non-silence frames in the spurt.
    pub frames: u64,
    /// Silence frames (`F8 FF FE`) that ended it (0 if the stream just stopped).
    pub trailing_silence: u32,
}

/// Inter-arrival jitter summary, in milliseconds of deviation from 20 ms.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JitterSummary {
    /// Number of inter-arrival samples.
    pub samples: u64,
    /// Median deviation.
    pub p50_ms: f64,
    /// 99th percentile deviation.
    pub p99_ms: f64,
    /// Largest deviation.
    pub max_ms: f64,
}

/// A snapshot of a stream's statistics, as it appears in the report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamSummary {
    /// RTP packets that decrypted and parsed.
    pub packets: u64,
    /// Opus bytes (after stripping extension and padding), silence frames included.
    pub bytes: u64,
    /// Silence frames (`F8 FF FE`).
    pub silence_frames: u64,
    /// Packets that failed transport decryption.
    pub decrypt_failures: u64,
    /// Forward jumps of the sequence number over missing packets.
    pub gaps: u64,
    /// Sequence numbers skipped and never received (so far).
    pub missing: u64,
    /// Packets whose sequence number was already received.
    pub duplicates: u64,
    /// Packets that arrived after a higher sequence number.
    pub reordered: u64,
    /// In-order packets whose timestamp did not advance by 960 per sequence step.
    pub timestamp_errors: u64,
    /// Inter-arrival jitter within talk spurts.
    pub jitter: JitterSummary,
    /// Talk spurts, in order (the last one may still be open).
    pub spurts: Vec<Spurt>,
    /// DAVE frames a simulated group member decrypted (docs/protocol.md 9.4).
    #[serde(default)]
    pub dave_decrypted: u64,
    /// DAVE frames no group member could decrypt.
    #[serde(default)]
    pub dave_failures: u64,
    /// DAVE frames with no simulated member in the group to decrypt them (form checked only).
    #[serde(default)]
    pub dave_unverified: u64,
    /// Non-silence frames without DAVE while the call was end-to-end encrypted.
    #[serde(default)]
    pub dave_plain: u64,
}

/// Running statistics of one SSRC's packets.
#[derive(Clone, Debug, Default)]
pub struct StreamStats {
    summary: StreamSummary,
    /// Highest extended sequence number seen and its timestamp.
    highest: Option<(i64, u32)>,
    /// Last extended sequence number (for extending the next one).
    last_ext: Option<i64>,
    /// Recently received extended sequence numbers.
    received: VecDeque<i64>,
    received_set: BTreeSet<i64>,
    /// Skipped numbers not yet received.
    missing: BTreeSet<i64>,
    last_arrival: Option<Instant>,
    previous_was_silence: bool,
    deviations_us: Vec<u64>,
    current: Option<Spurt>,
}

impl StreamStats {
    /// Empty statistics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one packet that decrypted: its arrival time, RTP sequence number and timestamp,
    /// and its Opus payload. Returns what was unusual about it.
    pub fn observe(
        &mut self,
        now: Instant,
        sequence: u16,
        timestamp: u32,
        opus: &[u8],
    ) -> Anomalies {
        let mut found = Anomalies::default();
        let ext = self.extend(sequence);
        self.summary.packets += 1;
        self.summary.bytes += opus.len() as u64;
        let silence = opus == SILENCE_FRAME;
        if silence {
            self.summary.silence_frames += 1;
        }

        if self.received_set.contains(&ext) {
            found.duplicate = true;
            self.summary.duplicates += 1;
            return found;
        }
        self.remember(ext);

        match self.highest {
            Some((high, _)) if ext < high => {
                found.reordered = true;
                self.summary.reordered += 1;
                self.missing.remove(&ext);
            }
            Some((high, high_ts)) => {
                let step = ext - high;
                if step > 1 {
                    found.skipped = (step - 1) as u64;
                    self.summary.gaps += 1;
                    // Only the window's worth: a hostile jump costs O(WINDOW), not O(65535).
                    let from = (high + 1).max(ext - WINDOW as i64);
                    self.missing.extend(from..ext);
                }
                // Timestamps wrap like sequence numbers: compare wrapping deltas.
                let expected = SAMPLES_PER_FRAME.wrapping_mul(step as u32);
                let actual = timestamp.wrapping_sub(high_ts);
                if actual != expected {
                    found.timestamp_step = Some((expected, actual));
                    self.summary.timestamp_errors += 1;
                }
                self.highest = Some((ext, timestamp));
                self.jitter_sample(now, step == 1, silence);
            }
            None => {
                self.highest = Some((ext, timestamp));
            }
        }
        self.summary.missing = self.missing.len() as u64;
        self.spurt(now, silence);
        self.last_arrival = Some(now);
        self.previous_was_silence = silence;
        found
    }

    /// Records a packet that failed transport decryption.
    pub fn decrypt_failure(&mut self) {
        self.summary.decrypt_failures += 1;
    }

    /// Counts a frame by what the DAVE check made of it.
    pub(crate) fn dave(&mut self, check: &crate::dave::FrameCheck) {
        use crate::dave::FrameCheck;
        let counter = match check {
            FrameCheck::Decrypted(_) => &mut self.summary.dave_decrypted,
            FrameCheck::Failed(_) => &mut self.summary.dave_failures,
            FrameCheck::Unverified => &mut self.summary.dave_unverified,
            FrameCheck::Plain { .. } => &mut self.summary.dave_plain,
            FrameCheck::NotE2ee | FrameCheck::Silence => return,
        };
        *counter += 1;
    }

    /// The statistics so far, spurts included (the open spurt last).
    pub fn summary(&self) -> StreamSummary {
        let mut summary = self.summary.clone();
        if let Some(open) = &self.current {
            summary.spurts.push(open.clone());
        }
        summary.jitter = jitter_summary(&self.deviations_us);
        summary
    }

    fn extend(&mut self, sequence: u16) -> i64 {
        let ext = match self.last_ext {
            None => i64::from(sequence),
            Some(last) => {
                // The signed 16-bit distance from the last number.
                let delta = sequence.wrapping_sub(last as u16) as i16;
                last + i64::from(delta)
            }
        };
        self.last_ext = Some(ext);
        ext
    }

    fn remember(&mut self, ext: i64) {
        self.received.push_back(ext);
        self.received_set.insert(ext);
        if self.received.len() > WINDOW {
            if let Some(old) = self.received.pop_front() {
                self.received_set.remove(&old);
            }
        }
        // Forget missing numbers that fell out of the window.
        while let Some(&first) = self.missing.iter().next() {
            if first < ext - WINDOW as i64 {
                self.missing.remove(&first);
            } else {
                break;
            }
        }
    }

    fn jitter_sample(&mut self, now: Instant, consecutive: bool, silence: bool) {
        let Some(last) = self.last_arrival else {
            return;
        };
        let delta = now.saturating_duration_since(last);
        // The step from a spurt's trailing silence to the next spurt's first frame is the pause.
        let new_spurt = self.previous_was_silence && !silence;
        if !consecutive || new_spurt {
            return;
        }
        if delta >= SPURT_BREAK {
            return;
        }
        let deviation = delta.abs_diff(FRAME_DURATION);
        if self.deviations_us.len() < MAX_JITTER_SAMPLES {
            self.deviations_us.push(deviation.as_micros() as u64);
        }
    }

    fn spurt(&mut self, now: Instant, silence: bool) {
        let long_pause = self
            .last_arrival
            .is_some_and(|last| now.saturating_duration_since(last) >= SPURT_BREAK);
        if silence {
            match &mut self.current {
                Some(spurt) if !long_pause => spurt.trailing_silence += 1,
                _ => {
                    // Silence with no spurt before it: a spurt of zero frames.
                    self.close_spurt();
                    self.current = Some(Spurt {
                        frames: 0,
                        trailing_silence: 1,
                    });
                }
            }
            return;
        }
        let ended = self
            .current
            .as_ref()
            .is_some_and(|spurt| spurt.trailing_silence > 0);
        if ended || long_pause {
            self.close_spurt();
        }
        self.current.get_or_insert_with(Spurt::default).frames += 1;
    }

    fn close_spurt(&mut self) {
        if let Some(spurt) = self.current.take() {
            self.summary.spurts.push(spurt);
        }
    }
}

fn jitter_summary(deviations_us: &[u64]) -> JitterSummary {
    if deviations_us.is_empty() {
        return JitterSummary::default();
    }
    let mut sorted = deviations_us.to_vec();
    sorted.sort_unstable();
    let pick = |q: f64| {
        let index = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted.get(index).copied().unwrap_or(0) as f64 / 1000.0
    };
    JitterSummary {
        samples: sorted.len() as u64,
        p50_ms: pick(0.5),
        p99_ms: pick(0.99),
        max_ms: sorted.last().copied().unwrap_or(0) as f64 / 1000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPUS: &[u8] = &[0xFC, 1, 2, 3];

    fn feed(
        stats: &mut StreamStats,
        start: Instant,
        packets: &[(u64, u16, u32, &[u8])],
    ) -> Vec<Anomalies> {
        packets
            .iter()
            .map(|&(ms, seq, ts, opus)| {
                stats.observe(start + Duration::from_millis(ms), seq, ts, opus)
            })
            .collect()
    }

    #[test]
    fn steady_stream_has_no_anomalies_and_zero_jitter() {
        let start = Instant::now();
        let mut stats = StreamStats::new();
        for i in 0..50u16 {
            let found = stats.observe(
                start + FRAME_DURATION * u32::from(i),
                100 + i,
                960 * u32::from(i),
                OPUS,
            );
            assert_eq!(found, Anomalies::default());
        }
        let s = stats.summary();
        assert_eq!(s.packets, 50);
        assert_eq!(s.bytes, 200);
        assert_eq!(
            (
                s.gaps,
                s.missing,
                s.duplicates,
                s.reordered,
                s.timestamp_errors
            ),
            (0, 0, 0, 0, 0)
        );
        assert_eq!(s.jitter.samples, 49);
        assert_eq!(s.jitter.max_ms, 0.0);
        assert_eq!(
            s.spurts,
            vec![Spurt {
                frames: 50,
                trailing_silence: 0
            }]
        );
    }

    #[test]
    fn gap_then_late_arrival_counts_gap_and_reorder() {
        let start = Instant::now();
        let mut stats = StreamStats::new();
        let found = feed(
            &mut stats,
            start,
            &[
                (0, 1, 0, OPUS),
                (20, 2, 960, OPUS),
                (60, 4, 2880, OPUS),
                (61, 3, 1920, OPUS),
                (80, 5, 3840, OPUS),
            ],
        );
        assert_eq!(found[2].skipped, 1);
        assert!(found[3].reordered);
        let s = stats.summary();
        assert_eq!((s.gaps, s.missing, s.reordered, s.duplicates), (1, 0, 1, 0));
        assert_eq!(
            s.timestamp_errors, 0,
            "a gap of one needs a timestamp step of 1920"
        );
    }

    #[test]
    fn lost_packets_stay_missing() {
        let start = Instant::now();
        let mut stats = StreamStats::new();
        feed(&mut stats, start, &[(0, 10, 0, OPUS), (80, 14, 3840, OPUS)]);
        let s = stats.summary();
        assert_eq!((s.gaps, s.missing), (1, 3));
    }

    #[test]
    fn duplicates_are_counted_once_and_not_as_packets_of_the_stream_order() {
        let start = Instant::now();
        let mut stats = StreamStats::new();
        let found = feed(
            &mut stats,
            start,
            &[(0, 7, 0, OPUS), (20, 8, 960, OPUS), (21, 8, 960, OPUS)],
        );
        assert!(found[2].duplicate);
        let s = stats.summary();
        assert_eq!((s.duplicates, s.reordered, s.gaps), (1, 0, 0));
    }

    #[test]
    fn sequence_and_timestamp_wrap_are_not_anomalies() {
        let start = Instant::now();
        let mut stats = StreamStats::new();
        let found = feed(
            &mut stats,
            start,
            &[
                (0, 65534, u32::MAX - 959, OPUS),
                (20, 65535, 0, OPUS),
                (40, 0, 960, OPUS),
                (60, 1, 1920, OPUS),
            ],
        );
        assert!(
            found.iter().all(|f| *f == Anomalies::default()),
            "{found:?}"
        );
    }

    #[test]
    fn wrong_timestamp_step_is_reported_with_expected_and_actual() {
        let start = Instant::now();
        let mut stats = StreamStats::new();
        let found = feed(
            &mut stats,
            start,
            &[(0, 1, 1000, OPUS), (20, 2, 1480, OPUS)],
        );
        assert_eq!(found[1].timestamp_step, Some((960, 480)));
        assert_eq!(stats.summary().timestamp_errors, 1);
    }

    #[test]
    fn jitter_percentiles_from_synthetic_arrivals() {
        let start = Instant::now();
        let mut stats = StreamStats::new();
        // Arrivals alternate 15 ms and 25 ms apart (5 ms deviation each), one 40 ms (20 ms).
        let mut at = Duration::ZERO;
        let mut seq = 0u16;
        stats.observe(start, seq, 0, OPUS);
        for i in 0..100 {
            at += if i == 50 {
                Duration::from_millis(40)
            } else if i % 2 == 0 {
                Duration::from_millis(15)
            } else {
                Duration::from_millis(25)
            };
            seq += 1;
            stats.observe(start + at, seq, 960 * u32::from(seq), OPUS);
        }
        let j = stats.summary().jitter;
        assert_eq!(j.samples, 100);
        assert_eq!(j.p50_ms, 5.0);
        assert_eq!(j.max_ms, 20.0);
        assert_eq!(j.p99_ms, 5.0);
    }

    #[test]
    fn pause_between_spurts_is_excluded_from_jitter_and_silence_is_counted_per_spurt() {
        let start = Instant::now();
        let mut stats = StreamStats::new();
        let mut t = 0u64;
        let mut seq = 0u16;
        let mut packet = |stats: &mut StreamStats, t: u64, opus: &[u8]| {
            stats.observe(
                start + Duration::from_millis(t),
                seq,
                960 * u32::from(seq),
                opus,
            );
            seq += 1;
        };
        for _ in 0..10 {
            packet(&mut stats, t, OPUS);
            t += 20;
        }
        for _ in 0..4 {
            packet(&mut stats, t, &SILENCE_FRAME);
            t += 20;
        }
        // Two seconds of nothing, then the next spurt (timestamps continue +960, as DJS does).
        t += 2000;
        for _ in 0..5 {
            packet(&mut stats, t, OPUS);
            t += 20;
        }
        for _ in 0..5 {
            packet(&mut stats, t, &SILENCE_FRAME);
            t += 20;
        }
        let s = stats.summary();
        assert_eq!(
            s.spurts,
            vec![
                Spurt {
                    frames: 10,
                    trailing_silence: 4
                },
                Spurt {
                    frames: 5,
                    trailing_silence: 5
                }
            ]
        );
        assert_eq!(s.silence_frames, 9);
        assert_eq!(s.jitter.max_ms, 0.0, "the 2 s pause is not jitter");
        assert_eq!(s.jitter.samples, 22);
    }

    #[test]
    fn decrypt_failures_are_counted() {
        let mut stats = StreamStats::new();
        stats.decrypt_failure();
        stats.decrypt_failure();
        assert_eq!(stats.summary().decrypt_failures, 2);
        assert_eq!(stats.summary().packets, 0);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any arrival order, any sequence numbers and timestamps: no panic, and the counters
        /// stay consistent.
        #[test]
        fn any_packet_sequence_keeps_counters_consistent(
            packets in proptest::collection::vec((0u64..5000, any::<u16>(), any::<u32>(), any::<bool>()), 0..300)
        ) {
            let start = Instant::now();
            let mut stats = StreamStats::new();
            for (ms, seq, ts, silence) in &packets {
                let opus: &[u8] = if *silence { &SILENCE_FRAME } else { &[0xFC, 1] };
                stats.observe(start + Duration::from_millis(*ms), *seq, *ts, opus);
            }
            let s = stats.summary();
            prop_assert_eq!(s.packets, packets.len() as u64);
            prop_assert!(s.duplicates + s.reordered <= s.packets);
            prop_assert_eq!(s.silence_frames, packets.iter().filter(|p| p.3).count() as u64);
            let spurt_frames: u64 = s.spurts.iter().map(|sp| sp.frames + u64::from(sp.trailing_silence)).sum();
            prop_assert!(spurt_frames <= s.packets);
            prop_assert!(s.jitter.p50_ms <= s.jitter.p99_ms && s.jitter.p99_ms <= s.jitter.max_ms);
        }
    }
}
