//! The 20 ms audio clock, as pure data: when the next frame is due, drift-free.
//!
//! Deadlines advance by exactly one frame from the previous deadline (not from "now"), so jitter
//! in wake-ups never accumulates into drift; after a long stall the schedule restarts instead of
//! bursting to catch up.

use std::time::Instant;

use super::{FRAME_DURATION, MAX_LAG};

/// The pacing schedule of one audio stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Pacer {
    next: Option<Instant>,
}

impl Pacer {
    /// A quiet pacer (no frame due).
    pub(crate) const fn new() -> Self {
        Self { next: None }
    }

    /// When the next frame is due, `None` while quiet.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.next
    }

    /// Whether the stream is quiet.
    pub(crate) fn is_quiet(&self) -> bool {
        self.next.is_none()
    }

    /// A frame was sent at `now` to start a stream: the next is due one frame later.
    pub(crate) fn start(&mut self, now: Instant) {
        self.next = Some(now + FRAME_DURATION);
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

    /// Nothing more to send: go quiet.
    pub(crate) fn stop(&mut self) {
        self.next = None;
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
