//! DAVE frames that arrived before op 5 told us whose SSRC they come from.
//!
//! A DAVE frame can only be decrypted with its sender's user id, and the voice server sends the
//! op 5 that maps an SSRC to a user over the websocket while the first packets of that user travel
//! over UDP: the two race (docs/protocol.md 10: "queue briefly per SSRC or drop"). Dropping would lose
//! the start of every talk spurt that wins the race, so such frames wait here, bounded in number
//! and in time, and are decrypted once the mapping arrives.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::PacketInfo;

/// How long a frame waits for its SSRC's op 5 before it counts as undecryptable.
pub(crate) const HOLD_FOR: Duration = crate::limits::HELD_FRAME_WAIT;
/// Frames held at most, over all SSRCs.
pub(crate) const CAPACITY: usize = crate::limits::HELD_FRAMES;

/// One transport-decrypted frame still waiting for its sender.
#[derive(Debug)]
pub(crate) struct HeldFrame {
    pub(crate) packet: PacketInfo,
    /// The frame as it came out of transport decryption (still DAVE-encrypted).
    pub(crate) frame: Vec<u8>,
    expires: Instant,
}

/// The held frames, oldest first.
#[derive(Debug, Default)]
pub(crate) struct UnmappedFrames {
    frames: VecDeque<HeldFrame>,
}

impl UnmappedFrames {
    /// Holds a frame until `now + HOLD_FOR`. When full, the oldest frame is evicted and returned:
    /// the caller reports it as undecryptable.
    pub(crate) fn hold(
        &mut self,
        now: Instant,
        packet: PacketInfo,
        frame: &[u8],
    ) -> Option<HeldFrame> {
        let evicted = if self.frames.len() >= CAPACITY {
            self.frames.pop_front()
        } else {
            None
        };
        self.frames.push_back(HeldFrame {
            packet,
            frame: frame.to_vec(),
            expires: now + HOLD_FOR,
        });
        evicted
    }

    /// Removes and returns the frames of `ssrc`, in arrival order.
    pub(crate) fn take_ssrc(&mut self, ssrc: u32) -> Vec<HeldFrame> {
        if !self.frames.iter().any(|held| held.packet.ssrc == ssrc) {
            return Vec::new();
        }
        let mut taken = Vec::new();
        for held in std::mem::take(&mut self.frames) {
            if held.packet.ssrc == ssrc {
                taken.push(held);
            } else {
                self.frames.push_back(held);
            }
        }
        taken
    }

    /// Removes and returns the frames whose wait is over at `now`, oldest first.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Vec<HeldFrame> {
        // Expiry times grow with arrival order, so the overdue frames are a prefix.
        let overdue = self
            .frames
            .iter()
            .take_while(|held| held.expires <= now)
            .count();
        self.frames.drain(..overdue).collect()
    }

    /// Removes and returns every held frame.
    pub(crate) fn take_all(&mut self) -> Vec<HeldFrame> {
        self.frames.drain(..).collect()
    }

    /// When the oldest frame's wait ends.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.frames.front().map(|held| held.expires)
    }

    /// Frames waiting now.
    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(ssrc: u32, sequence: u16) -> PacketInfo {
        PacketInfo {
            ssrc,
            sequence,
            timestamp: 0,
        }
    }

    #[test]
    fn frames_come_back_per_ssrc_in_arrival_order() {
        let now = Instant::now();
        let mut held = UnmappedFrames::default();
        for (ssrc, sequence) in [(7, 1), (8, 1), (7, 2), (7, 3)] {
            assert!(held.hold(now, packet(ssrc, sequence), &[1, 2]).is_none());
        }
        let seven: Vec<u16> = held
            .take_ssrc(7)
            .iter()
            .map(|h| h.packet.sequence)
            .collect();
        assert_eq!(seven, [1, 2, 3]);
        assert!(held.take_ssrc(7).is_empty());
        assert_eq!(held.len(), 1);
        assert_eq!(held.take_all().first().map(|h| h.packet.ssrc), Some(8));
    }

    #[test]
    fn frames_expire_after_the_hold_time_oldest_first() {
        let start = Instant::now();
        let mut held = UnmappedFrames::default();
        held.hold(start, packet(7, 1), &[1]);
        held.hold(start + Duration::from_millis(500), packet(7, 2), &[2]);
        assert_eq!(held.next_expiry(), Some(start + HOLD_FOR));
        assert!(held
            .take_expired(start + HOLD_FOR - Duration::from_millis(1))
            .is_empty());
        let expired = held.take_expired(start + HOLD_FOR);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired.first().map(|h| h.frame.clone()), Some(vec![1]));
        assert_eq!(
            held.next_expiry(),
            Some(start + Duration::from_millis(500) + HOLD_FOR)
        );
    }

    #[test]
    fn a_full_hold_evicts_the_oldest_frame() {
        let now = Instant::now();
        let mut held = UnmappedFrames::default();
        for sequence in 0..CAPACITY as u16 {
            assert!(held.hold(now, packet(7, sequence), &[]).is_none());
        }
        let evicted = held.hold(now, packet(7, 999), &[]);
        assert_eq!(evicted.map(|h| h.packet.sequence), Some(0));
        assert_eq!(held.len(), CAPACITY);
    }
}
