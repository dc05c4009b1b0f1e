//! The 20 ms audio clock, as pure data: when the next frame is due, drift-free.
//!
//! Deadlines advance by exactly one frame from the previous deadline (not from "now"), so jitter
//! in wake-ups never accumulates into drift; after a long stall the schedule restarts instead of
//! bursting to catch up. A pause (audio held, or a talk spurt over) owes nothing for the time it
//! lasts: the frame that ends it goes when it is polled, but never sooner than one frame after
//! the previous one, and the schedule starts anew from there.

use std::time::Instant;

use super::{FRAME_DURATION, MAX_LAG};

/// The pacing schedule of one audio stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Pacer {
    /// The next slot while running; while paused, the earliest time the next frame may go.
    next: Option<Instant>,
    running: bool,
}

impl Pacer {
    /// A quiet pacer (no frame due).
    pub(crate) const fn new() -> Self {
        Self {
            next: None,
            running: false,
        }
    }

    /// When the next frame is due (while paused: not before), `None` before the first frame.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.next
    }

    /// Whether the schedule is not running (never started, paused or stopped): the next frame
    /// starts it with [`Pacer::start`].
    pub(crate) fn is_quiet(&self) -> bool {
        !self.running
    }

    /// A frame was sent at `now` to start a stream: the next is due one frame later.
    pub(crate) fn start(&mut self, now: Instant) {
        self.next = Some(now + FRAME_DURATION);
        self.running = true;
    }

    /// The frame due at [`Pacer::due`] was handled at `now`: schedule the next one.
    pub(crate) fn advance(&mut self, now: Instant) {
        let Some(due) = self.next else {
            return;
        };
        let next = due + FRAME_DURATION;
        self.next = Some(if now > next + MAX_LAG {
            now + FRAME_DURATION
        } else {
            next
        });
    }

    /// Nothing to send for now (held, or the spurt is over): the schedule stops running, and
    /// its next slot becomes the earliest time the next frame may go.
    pub(crate) fn pause(&mut self) {
        self.running = false;
    }

    /// Nothing more to send, ever: go quiet.
    pub(crate) fn stop(&mut self) {
        self.next = None;
        self.running = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    #[test]
    fn late_wakeups_do_not_drift() {
        let t0 = Instant::now();
        let mut p = Pacer::new();
        p.start(t0);
        for i in 1..=100u32 {
            let due = p.due().unwrap();
            assert_eq!(due, t0 + FRAME_DURATION * i);
            // Woken 3 ms late every time: the schedule stays on the 20 ms grid.
            p.advance(due + Duration::from_millis(3));
        }
    }

    #[test]
    fn a_long_stall_restarts_instead_of_bursting() {
        let t0 = Instant::now();
        let mut p = Pacer::new();
        p.start(t0);
        let late = t0 + Duration::from_secs(2);
        p.advance(late);
        assert_eq!(p.due(), Some(late + FRAME_DURATION));
    }

    #[test]
    fn a_pause_owes_nothing_and_keeps_one_frame_between_packets() {
        let t0 = Instant::now();
        let mut p = Pacer::new();
        p.start(t0);
        p.pause();
        assert!(p.is_quiet());
        // Paused briefly: the next frame still waits for its slot.
        assert_eq!(p.due(), Some(t0 + FRAME_DURATION));
        // Paused for long: one frame when polled, then the schedule starts from there.
        let late = t0 + Duration::from_millis(150);
        p.start(late);
        assert_eq!(p.due(), Some(late + FRAME_DURATION));
        assert!(!p.is_quiet());
    }

    #[test]
    fn quiet_until_started() {
        let t0 = Instant::now();
        let mut p = Pacer::new();
        assert!(p.is_quiet());
        p.advance(t0);
        assert!(p.is_quiet());
        p.start(t0);
        assert_eq!(p.due(), Some(t0 + FRAME_DURATION));
        p.stop();
        assert!(p.is_quiet());
    }
}
