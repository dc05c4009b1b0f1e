//! The pure heartbeat pacemaker: when to beat, which nonce, whether the socket is dead.

use core::time::Duration;
use std::time::Instant;

/// What the pacemaker wants when its deadline has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Send op 3 with this nonce.
    Send {
        /// The `t` value.
        nonce: u64,
    },
    /// Too many beats went unacknowledged: the websocket is dead.
    Dead {
        /// Consecutive unacknowledged beats.
        missed: u32,
    },
}

/// Heartbeat state of one voice websocket (v8: `{t, seq_ack}` out, `{t}` back).
///
/// The first beat is due one interval after Hello (as @discordjs/voice and songbird do). At every
/// deadline the previous beat must have been acknowledged; otherwise it counts as missed, and after
/// `max_missed` misses in a row the socket is declared dead.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    interval: Duration,
    next_at: Instant,
    origin: Instant,
    outstanding: Option<(u64, Instant)>,
    last_nonce: u64,
    missed: u32,
    max_missed: u32,
}

impl Heartbeat {
    /// Starts beating after Hello was received at `now`.
    pub fn new(now: Instant, interval: Duration, max_missed: u32) -> Self {
        Self {
            interval,
            next_at: now + interval,
            origin: now,
            outstanding: None,
            last_nonce: 0,
            missed: 0,
            max_missed: max_missed.max(1),
        }
    }

    /// The beat interval in use.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// When [`Heartbeat::poll`] next has something to do.
    pub fn deadline(&self) -> Instant {
        self.next_at
    }

    /// Consecutive beats that went unacknowledged so far.
    pub fn missed(&self) -> u32 {
        self.missed
    }

    /// Called at or after the deadline: either a beat to send or the verdict that the socket is
    /// dead. Returns `None` before the deadline.
    pub fn poll(&mut self, now: Instant) -> Option<Beat> {
        if now < self.next_at {
            return None;
        }
        if self.outstanding.take().is_some() {
            self.missed += 1;
            if self.missed >= self.max_missed {
                return Some(Beat::Dead {
                    missed: self.missed,
                });
            }
        }
        // A nonce that looks like a millisecond clock (as other clients send) yet never repeats.
        let elapsed = u64::try_from(now.saturating_duration_since(self.origin).as_millis())
            .unwrap_or(u64::MAX);
        let nonce = elapsed.max(self.last_nonce + 1) & ((1 << 53) - 1);
        self.last_nonce = nonce;
        self.outstanding = Some((nonce, now));
        // Drift-free: the next beat is one interval after this deadline, not after `now`, unless we
        // fell far behind.
        self.next_at += self.interval;
        if self.next_at <= now {
            self.next_at = now + self.interval;
        }
        Some(Beat::Send { nonce })
    }

    /// Handles op 6: returns the round trip time when `nonce` matches the outstanding beat.
    pub fn acknowledge(&mut self, now: Instant, nonce: u64) -> Option<Duration> {
        match self.outstanding {
            Some((sent_nonce, sent_at)) if sent_nonce == nonce => {
                self.outstanding = None;
                self.missed = 0;
                Some(now.saturating_duration_since(sent_at))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_beat_after_one_interval_then_dead_after_two_misses() {
        let t0 = Instant::now();
        let i = Duration::from_millis(100);
        let mut hb = Heartbeat::new(t0, i, 2);
        assert_eq!(hb.poll(t0 + i / 2), None);
        let Some(Beat::Send { nonce }) = hb.poll(t0 + i) else {
            panic!("expected a beat")
        };
        assert_eq!(hb.acknowledge(t0 + i + i / 4, nonce), Some(i / 4));
        assert!(matches!(hb.poll(t0 + 2 * i), Some(Beat::Send { .. })));
        assert!(matches!(hb.poll(t0 + 3 * i), Some(Beat::Send { .. })));
        assert_eq!(hb.missed(), 1);
        assert_eq!(hb.poll(t0 + 4 * i), Some(Beat::Dead { missed: 2 }));
    }

    #[test]
    fn wrong_nonce_is_not_an_ack_and_nonces_increase() {
        let t0 = Instant::now();
        let i = Duration::from_millis(10);
        let mut hb = Heartbeat::new(t0, i, 3);
        let Some(Beat::Send { nonce: a }) = hb.poll(t0 + i) else {
            panic!()
        };
        assert_eq!(hb.acknowledge(t0 + i, a + 1), None);
        assert_eq!(hb.acknowledge(t0 + i, a), Some(Duration::ZERO));
        let Some(Beat::Send { nonce: b }) = hb.poll(t0 + 2 * i) else {
            panic!()
        };
        assert!(b > a);
    }
}
