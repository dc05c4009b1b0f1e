//! The bounded queue of outgoing Opus frames, stored back to back in one byte ring.
//!
//! One ring of bytes plus one ring of lengths: queueing copies the frame in and sending copies it
//! out, and once the rings have grown to the largest backlog seen neither allocates again (the
//! hot path stays allocation-free; a frame is 1..=1275 bytes, typically 60–200).

use std::collections::VecDeque;

use crate::rtp::MAX_OPUS_FRAME_LEN;

use super::QueueError;

/// Opus frames waiting for their 20 ms slot, oldest first.
#[derive(Debug, Clone)]
pub(crate) struct FrameQueue {
    bytes: VecDeque<u8>,
    lens: VecDeque<u16>,
    capacity: usize,
}

impl FrameQueue {
    /// An empty queue that holds at most `capacity` frames (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            bytes: VecDeque::new(),
            lens: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Frames waiting.
    pub(crate) fn len(&self) -> usize {
        self.lens.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// The most frames the queue holds.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends one frame, or says why not (nothing changes then).
    pub(crate) fn push(&mut self, frame: &[u8]) -> Result<(), QueueError> {
        let len = u16::try_from(frame.len())
            .ok()
            .filter(|&len| len > 0 && usize::from(len) <= MAX_OPUS_FRAME_LEN)
            .ok_or(QueueError::BadFrameLength { len: frame.len() })?;
        if self.lens.len() >= self.capacity {
            return Err(QueueError::Full {
                capacity: self.capacity,
            });
        }
        self.bytes.extend(frame);
        self.lens.push_back(len);
        Ok(())
    }

    /// The oldest frame, contiguous (the ring is rotated in the rare case it wraps inside that
    /// frame).
    pub(crate) fn front(&mut self) -> Option<&[u8]> {
        let len = usize::from(*self.lens.front()?);
        if self.bytes.as_slices().0.len() < len {
            self.bytes.make_contiguous();
        }
        self.bytes.as_slices().0.get(..len)
    }

    /// Drops the oldest frame.
    pub(crate) fn pop(&mut self) {
        if let Some(len) = self.lens.pop_front() {
            self.bytes.drain(..usize::from(len).min(self.bytes.len()));
        }
    }

    /// Drops every frame; returns how many there were.
    pub(crate) fn clear(&mut self) -> usize {
        let dropped = self.lens.len();
        self.bytes.clear();
        self.lens.clear();
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_out_in_order_and_whole_across_the_wrap() {
        let mut q = FrameQueue::new(4);
        let mut next = 0u8;
        let mut expected = VecDeque::new();
        // Lengths chosen so frames straddle the ring's end many times.
        for round in 0..500usize {
            while q.len() < 4 {
                let frame: Vec<u8> = (0..(round * 7 % 300 + 1))
                    .map(|_| {
                        next = next.wrapping_add(1);
                        next
                    })
                    .collect();
                q.push(&frame).unwrap();
                expected.push_back(frame);
            }
            let want = expected.pop_front().unwrap();
            assert_eq!(q.front().unwrap(), want.as_slice());
            q.pop();
        }
    }

    #[test]
    fn full_and_bad_lengths_change_nothing() {
        let mut q = FrameQueue::new(2);
        q.push(&[1]).unwrap();
        q.push(&[2, 2]).unwrap();
        assert_eq!(q.push(&[3]), Err(QueueError::Full { capacity: 2 }));
        assert_eq!(q.push(&[]), Err(QueueError::BadFrameLength { len: 0 }));
        let long = [0u8; MAX_OPUS_FRAME_LEN + 1];
        assert_eq!(
            q.push(&long),
            Err(QueueError::BadFrameLength {
                len: MAX_OPUS_FRAME_LEN + 1
            })
        );
        assert_eq!(q.len(), 2);
        assert_eq!(q.front().unwrap(), [1]);
        assert_eq!(q.clear(), 2);
        assert!(q.is_empty());
        assert_eq!(q.front(), None);
        q.pop(); // popping an empty queue is a no-op
    }

    #[test]
    fn the_largest_frame_fits_and_capacity_is_at_least_one() {
        let mut q = FrameQueue::new(0);
        assert_eq!(q.capacity(), 1);
        q.push(&[9; MAX_OPUS_FRAME_LEN]).unwrap();
        assert_eq!(q.front().unwrap().len(), MAX_OPUS_FRAME_LEN);
    }
}
