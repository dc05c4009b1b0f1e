//! [`SequenceTracker`]: one stream's sequence, timestamp and arrival accounting at a fixed cost
//! per packet (a 64-bit bitmap of recent sequence numbers, no allocation).
//!
//! The 16-bit sequence is compared by wrapping difference from the highest number seen, so a
//! wrap is not an anomaly. A number is *missing* once it falls out of the 64-number window
//! without having arrived, or, when the window closes, if it is still absent inside it; a packet
//! that arrives after a higher number is *reordered* (and is then not missing); a number that
//! arrived before is a *duplicate*.

use std::time::Duration;

use voice_proto::rtp::SAMPLES_PER_FRAME;

use crate::load::report::StreamFigures;

/// How many sequence numbers below the highest one are remembered.
const WINDOW: u32 = u64::BITS;

/// What [`SequenceTracker::observe`] measured for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Observed {
    /// Time since the stream's previous packet (none for its first packet).
    pub(crate) inter_arrival: Option<Duration>,
}

/// Sequence, timestamp and arrival state of one stream.
#[derive(Clone, Debug, Default)]
pub(crate) struct SequenceTracker {
    /// Highest sequence number seen and its timestamp.
    highest: Option<(u16, u32)>,
    /// Bit `i`: sequence number `highest - i` arrived.
    seen: u64,
    /// How many of the low bits of `seen` belong to the current window (numbers from before the
    /// window opened, or before the stream's first packet, are not accounted as missing).
    span: u32,
    /// Kernel receive time of the previous packet, in nanoseconds.
    last_arrival_ns: Option<i64>,
}

impl SequenceTracker {
    /// Accounts one packet received at `at_ns` (nanoseconds on any clock that does not jump)
    /// in `counts`, whose `missing` are the numbers that left the window without arriving
    /// ([`pending_missing`](Self::pending_missing) has the rest).
    pub(crate) fn observe(
        &mut self,
        sequence: u16,
        timestamp: u32,
        at_ns: i64,
        pause_threshold: Duration,
        counts: &mut StreamFigures,
    ) -> Observed {
        counts.packets += 1;
        let inter_arrival = self.last_arrival_ns.map(|last| {
            let nanos = u64::try_from(at_ns.saturating_sub(last)).unwrap_or(0);
            Duration::from_nanos(nanos)
        });
        self.last_arrival_ns = Some(at_ns);
        if let Some(gap) = inter_arrival {
            counts.max_gap = counts.max_gap.max(gap);
            if gap > pause_threshold {
                counts.pauses += 1;
            }
        }
        let Some((highest, highest_timestamp)) = self.highest else {
            self.highest = Some((sequence, timestamp));
            self.seen = 1;
            self.span = 1;
            return Observed { inter_arrival };
        };
        let ahead = sequence.wrapping_sub(highest) as i16;
        if ahead > 0 {
            let steps = u32::from(ahead.unsigned_abs());
            let expected = SAMPLES_PER_FRAME.wrapping_mul(steps);
            if timestamp.wrapping_sub(highest_timestamp) != expected {
                counts.timestamp_steps += 1;
            }
            counts.missing += u64::from(self.shift(steps));
            self.highest = Some((sequence, timestamp));
        } else {
            let behind = u32::from(ahead.unsigned_abs());
            if behind < self.span {
                let bit = 1u64 << behind;
                if self.seen & bit != 0 {
                    counts.duplicates += 1;
                } else {
                    self.seen |= bit;
                    counts.reorders += 1;
                }
            } else {
                // Older than anything this window remembers: late, never a missing one.
                counts.reorders += 1;
            }
        }
        Observed { inter_arrival }
    }

    /// Moves the window `steps` numbers up (the new highest arrived); returns how many numbers
    /// left the window without arriving.
    fn shift(&mut self, steps: u32) -> u32 {
        let valid = if self.span >= WINDOW {
            u64::MAX
        } else {
            (1u64 << self.span) - 1
        };
        let absent = !self.seen & valid;
        let settled = if steps >= WINDOW {
            // Everything in the window leaves; of the skipped numbers only the newest 63 stay.
            absent.count_ones() + (steps - WINDOW)
        } else {
            (absent >> (WINDOW - steps)).count_ones()
        };
        self.seen = self.seen.checked_shl(steps).unwrap_or(0) | 1;
        self.span = self.span.saturating_add(steps).min(WINDOW);
        settled
    }

    /// Numbers inside the window that have not arrived (yet).
    pub(crate) fn pending_missing(&self) -> u64 {
        let valid = if self.span >= WINDOW {
            u64::MAX
        } else {
            (1u64 << self.span) - 1
        };
        u64::from((!self.seen & valid).count_ones())
    }

    /// Starts a new window: numbers below the highest one are no longer accounted as missing.
    pub(crate) fn open_window(&mut self) {
        self.span = self.span.min(1);
    }

    /// Kernel receive time of the last packet.
    pub(crate) fn last_arrival_ns(&self) -> Option<i64> {
        self.last_arrival_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;
    const PAUSE: Duration = Duration::from_millis(200);

    /// Feeds `(sequence index, arrival ms)` pairs of a stream starting at `first`; the
    /// timestamp follows the sequence (960 per step).
    fn feed(tracker: &mut SequenceTracker, first: u16, packets: &[(u16, i64)]) -> StreamFigures {
        let mut counts = StreamFigures::default();
        for &(index, at_ms) in packets {
            let sequence = first.wrapping_add(index);
            let timestamp = 1_000u32.wrapping_add(u32::from(index) * 960);
            tracker.observe(sequence, timestamp, at_ms * MS, PAUSE, &mut counts);
        }
        counts
    }

    #[test]
    fn in_order_across_the_wrap_is_clean() {
        let mut tracker = SequenceTracker::default();
        let packets: Vec<_> = (0..200u16).map(|i| (i, i64::from(i) * 20)).collect();
        let counts = feed(&mut tracker, 65_500, &packets);
        assert_eq!(counts.packets, 200);
        assert_eq!(
            (counts.missing, counts.duplicates, counts.reorders),
            (0, 0, 0)
        );
        assert_eq!((counts.timestamp_steps, counts.pauses), (0, 0));
        assert_eq!(counts.max_gap, Duration::from_millis(20));
        assert_eq!(tracker.pending_missing(), 0);
    }

    #[test]
    fn gaps_settle_when_they_leave_the_window() {
        let mut tracker = SequenceTracker::default();
        // 0..10, then 13.. (10, 11, 12 lost).
        let mut packets: Vec<_> = (0..10u16).map(|i| (i, 0)).collect();
        packets.extend((13..40u16).map(|i| (i, 0)));
        let counts = feed(&mut tracker, 7, &packets);
        assert_eq!(counts.missing, 0);
        assert_eq!(tracker.pending_missing(), 3);
        let more: Vec<_> = (40..100u16).map(|i| (i, 0)).collect();
        let counts = feed(&mut tracker, 7, &more);
        assert_eq!(counts.missing, 3);
        assert_eq!(tracker.pending_missing(), 0);
    }

    #[test]
    fn a_jump_beyond_the_window_settles_what_left_it() {
        let mut tracker = SequenceTracker::default();
        let counts = feed(&mut tracker, 0, &[(0, 0), (1, 0), (3, 0), (203, 0)]);
        // 2 left the window, and 4..=202 minus the 63 still inside it.
        assert_eq!(counts.missing, 1 + (199 - 63));
        assert_eq!(tracker.pending_missing(), 63);
        // The window is full now: 63 + 1 is 64.
        assert_eq!(counts.timestamp_steps, 0);
    }

    #[test]
    fn reorders_and_duplicates_are_counted_once_and_never_missing() {
        let mut tracker = SequenceTracker::default();
        let counts = feed(
            &mut tracker,
            65_534,
            &[(0, 0), (2, 20), (1, 21), (1, 22), (3, 40), (3, 41), (0, 42)],
        );
        assert_eq!(counts.reorders, 1);
        assert_eq!(counts.duplicates, 3);
        assert_eq!(counts.timestamp_steps, 0);
        assert_eq!(tracker.pending_missing(), 0);
    }

    #[test]
    fn a_wrong_timestamp_step_is_one_violation() {
        let mut tracker = SequenceTracker::default();
        let mut counts = StreamFigures::default();
        tracker.observe(1, 0, 0, PAUSE, &mut counts);
        tracker.observe(2, 960, 0, PAUSE, &mut counts);
        tracker.observe(3, 960 * 2 + 1, 0, PAUSE, &mut counts);
        tracker.observe(4, 960 * 3 + 1, 0, PAUSE, &mut counts);
        // A gap of two steps must advance two frames.
        tracker.observe(6, 960 * 5 + 1, 0, PAUSE, &mut counts);
        assert_eq!(counts.timestamp_steps, 1);
    }

    #[test]
    fn pauses_and_the_longest_gap_come_from_arrival_times() {
        let mut tracker = SequenceTracker::default();
        let counts = feed(
            &mut tracker,
            0,
            &[(0, 0), (1, 20), (2, 221), (3, 241), (4, 441)],
        );
        assert_eq!(counts.pauses, 1);
        assert_eq!(counts.max_gap, Duration::from_millis(201));
        assert_eq!(tracker.last_arrival_ns(), Some(441 * MS));
    }

    #[test]
    fn a_new_window_forgets_older_gaps() {
        let mut tracker = SequenceTracker::default();
        feed(&mut tracker, 0, &[(0, 0), (2, 0)]);
        assert_eq!(tracker.pending_missing(), 1);
        tracker.open_window();
        assert_eq!(tracker.pending_missing(), 0);
        // The late one is a reorder, the highest one repeated is still a duplicate.
        let counts = feed(&mut tracker, 0, &[(1, 0), (2, 0), (3, 0)]);
        assert_eq!((counts.reorders, counts.duplicates), (1, 1));
        let more: Vec<_> = (4..100u16).map(|i| (i, 0)).collect();
        let counts = feed(&mut tracker, 0, &more);
        assert_eq!(counts.missing, 0);
    }
}
