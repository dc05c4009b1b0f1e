//! The 20 ms audio clock, as pure data: when the next frame is due, drift-free.
//!
//! Adapters own the real timer; this decides the schedule. Deadlines advance by exactly one frame
//! from the previous deadline (not from "now"), so jitter in wake-ups never accumulates into
//! drift; after a long stall the schedule restarts instead of bursting to catch up.

use core::time::Duration;
use std::time::Instant;

/// One Opus frame: 20 ms.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);

/// How far behind the schedule may fall before it restarts from now instead of bursting.
pub const MAX_LAG: Duration = Duration::from_millis(200);

/// The pacing schedule of one audio stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pacer {
    next: Option<Instant>,
}

impl Pacer {
    /// A quiet pacer (no frame due).
    pub const fn new() -> Self {
        Self { next: None }
    }

    /// When the next frame is due, `None` while quiet.
    pub fn due(&self) -> Option<Instant> {
        self.next
    }

    /// Whether the stream is quiet.
    pub fn is_quiet(&self) -> bool {
        self.next.is_none()
    }

    /// A frame was sent at `now` to start a stream: the next is due one frame later.
    pub fn start(&mut self, now: Instant) {
        self.next = Some(now + FRAME_DURATION);
    }

    /// Makes a frame due right now (e.g. trailing silence after an explicit stop).
    pub fn wake_now(&mut self, now: Instant) {
        if self.next.is_none() {
            self.next = Some(now);
        }
    }

    /// The frame due at [`Pacer::due`] was handled at `now`: schedule the next one.
    pub fn advance(&mut self, now: Instant) {
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
    pub fn stop(&mut self) {
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn quiet_until_started_and_wake_now_only_when_quiet() {
        let t0 = Instant::now();
        let mut p = Pacer::new();
        assert!(p.is_quiet());
        p.advance(t0);
        assert!(p.is_quiet());
        p.wake_now(t0);
        assert_eq!(p.due(), Some(t0));
        p.wake_now(t0 + FRAME_DURATION);
        assert_eq!(p.due(), Some(t0));
        p.stop();
        assert!(p.is_quiet());
    }
}
