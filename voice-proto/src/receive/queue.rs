//! Bounded queues of released items: one per SSRC ([`ReceiveQueue`]), and a set of them taken in
//! turn ([`ReceiveQueues`]). Never blocking, never growing past the bound; overflow is counted
//! and reported to the consumer as a loss.

use std::collections::{HashMap, VecDeque};

use super::{Item, Received};

/// A loss waiting for room in the queue (frames dropped, or missing frames that found it full).
#[derive(Debug, Clone, Copy)]
struct PendingLoss {
    sequence: u16,
    timestamp: u32,
    count: u32,
}

/// One SSRC's items, bounded by a number of frames.
///
/// A frame that finds `capacity` frames queued is dropped (counted in
/// [`dropped`](Self::dropped)); consecutive drops and losses become one [`Item::Lost`] queued
/// before the next frame that fits, so the consumer sees every sequence accounted for. A spurt
/// that starts while the queue is full and ends before any of its frames fits vanishes whole.
/// Whatever the producer does, the queue holds at most `capacity` frames and about three times
/// as many markers.
#[derive(Debug, Clone)]
pub struct ReceiveQueue {
    items: VecDeque<Received>,
    frames: usize,
    capacity: usize,
    /// A `SpurtStarted` that found the queue full.
    pending_start: Option<Received>,
    pending_loss: Option<(Received, PendingLoss)>,
    dropped: u64,
}

impl ReceiveQueue {
    /// A queue holding at most `capacity` frames (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            items: VecDeque::new(),
            frames: 0,
            capacity: capacity.max(1),
            pending_start: None,
            pending_loss: None,
            dropped: 0,
        }
    }

    /// Queues one item (of this queue's SSRC); see the type's docs for a full queue.
    pub fn push(&mut self, received: Received) {
        let full = self.frames >= self.capacity;
        match &received.item {
            Item::SpurtStarted => {
                if full {
                    self.pending_start = Some(received);
                } else {
                    self.items.push_back(received);
                }
            }
            Item::Frame(frame) => {
                if full {
                    self.dropped += 1;
                    let (sequence, timestamp) = (frame.sequence, frame.timestamp);
                    self.add_loss(received, sequence, timestamp, 1);
                } else {
                    self.flush_pending();
                    self.frames += 1;
                    self.items.push_back(received);
                }
            }
            Item::Lost {
                sequence,
                timestamp,
                count,
            } => {
                let (sequence, timestamp, count) = (*sequence, *timestamp, *count);
                if full || self.pending_loss.is_some() || self.pending_start.is_some() {
                    self.add_loss(received, sequence, timestamp, count);
                } else {
                    self.items.push_back(received);
                }
            }
            Item::SpurtEnded(_) => {
                // A loss at the end of a spurt tells a consumer nothing more (it is counted).
                self.pending_loss = None;
                if self.pending_start.take().is_none() {
                    self.items.push_back(received);
                }
            }
        }
    }

    /// The oldest item.
    pub fn pop(&mut self) -> Option<Received> {
        let received = self.items.pop_front()?;
        if matches!(received.item, Item::Frame(_)) {
            self.frames -= 1;
            // Room again: what waited for it is queued now, so an empty queue has nothing
            // pending.
            self.flush_pending();
        }
        Some(received)
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no item waits (nothing is pending then either: a loss or a start waits for room
    /// only while the queue is full).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Frames dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn add_loss(&mut self, received: Received, sequence: u16, timestamp: u32, count: u32) {
        match &mut self.pending_loss {
            Some((_, pending)) => pending.count = pending.count.saturating_add(count),
            None => {
                self.pending_loss = Some((
                    received,
                    PendingLoss {
                        sequence,
                        timestamp,
                        count,
                    },
                ));
            }
        }
    }

    fn flush_pending(&mut self) {
        if let Some(start) = self.pending_start.take() {
            self.items.push_back(start);
        }
        if let Some((received, loss)) = self.pending_loss.take() {
            self.items.push_back(Received {
                item: Item::Lost {
                    sequence: loss.sequence,
                    timestamp: loss.timestamp,
                    count: loss.count,
                },
                ..received
            });
        }
    }
}

/// Per-SSRC [`ReceiveQueue`]s taken in turn (round robin), so that one sender's flood never
/// holds up another's items. At most `max_streams` SSRCs have a queue at once (empty ones give
/// their place up to a new SSRC); an item of another SSRC beyond that is dropped and counted.
#[derive(Debug, Clone)]
pub struct ReceiveQueues {
    queues: HashMap<u32, ReceiveQueue>,
    /// SSRCs with items, in the order they are served.
    ready: VecDeque<u32>,
    capacity: usize,
    max_streams: usize,
    /// Drops of queues that were emptied and removed since.
    dropped_before: u64,
    refused: u64,
}

impl ReceiveQueues {
    /// Queues of `capacity` frames each, for at most `max_streams` SSRCs at once.
    pub fn new(capacity: usize, max_streams: usize) -> Self {
        Self {
            queues: HashMap::new(),
            ready: VecDeque::new(),
            capacity,
            max_streams: max_streams.max(1),
            dropped_before: 0,
            refused: 0,
        }
    }

    /// Queues an item on its SSRC's queue.
    pub fn push(&mut self, received: Received) {
        let ssrc = received.ssrc;
        if !self.queues.contains_key(&ssrc) && self.queues.len() >= self.max_streams {
            // Empty queues are kept for the next items of their SSRC (no allocation per item);
            // they make room when a new SSRC needs it. An empty queue holds nothing pending.
            let mut dropped = 0;
            self.queues.retain(|_, queue| {
                let keep = !queue.is_empty();
                if !keep {
                    dropped += queue.dropped();
                }
                keep
            });
            self.dropped_before += dropped;
        }
        if !self.queues.contains_key(&ssrc) && self.queues.len() >= self.max_streams {
            if matches!(received.item, Item::Frame(_)) {
                self.refused += 1;
            }
            return;
        }
        let queue = self
            .queues
            .entry(ssrc)
            .or_insert_with(|| ReceiveQueue::new(self.capacity));
        let was_empty = queue.is_empty();
        queue.push(received);
        if was_empty && !queue.is_empty() {
            self.ready.push_back(ssrc);
        }
    }

    /// The next item, taking the SSRCs in turn.
    pub fn pop(&mut self) -> Option<Received> {
        while let Some(ssrc) = self.ready.pop_front() {
            let Some(queue) = self.queues.get_mut(&ssrc) else {
                continue;
            };
            let Some(received) = queue.pop() else {
                continue;
            };
            if !queue.is_empty() {
                self.ready.push_back(ssrc);
            }
            return Some(received);
        }
        None
    }

    /// Items waiting, over all SSRCs.
    pub fn len(&self) -> usize {
        self.queues.values().map(ReceiveQueue::len).sum()
    }

    /// Whether no item waits.
    pub fn is_empty(&self) -> bool {
        self.ready.is_empty()
    }

    /// Frames dropped because their queue was full, or because too many SSRCs had one.
    pub fn dropped(&self) -> u64 {
        self.dropped_before
            + self.refused
            + self.queues.values().map(ReceiveQueue::dropped).sum::<u64>()
    }
}
