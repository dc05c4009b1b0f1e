//! The receive side when it is on: one playout buffer per sender's SSRC, and the queues its
//! items wait in for [`Session::poll_received`](crate::Session::poll_received).

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;

use crate::id::UserId;
use crate::limits::RECEIVE_STREAMS;
use crate::payload::SpeakingFlags;
use crate::receive::{
    Arrival, BufferStats, Item, JitterBuffer, ReceiveConfig, ReceiveQueues, Received, SpurtEnd,
};

/// One sender.
#[derive(Debug)]
struct Stream {
    buffer: JitterBuffer,
    user: Option<UserId>,
    /// The latest packet taken (for eviction).
    last_heard: Instant,
}

/// Every sender's buffer and the queues of released items.
#[derive(Debug)]
pub(crate) struct Streams {
    config: ReceiveConfig,
    streams: HashMap<u32, Stream>,
    queues: ReceiveQueues,
    /// Counters of streams no longer followed.
    forgotten: BufferStats,
    scratch: Vec<Item>,
}

impl Streams {
    pub(crate) fn new(config: ReceiveConfig) -> Self {
        Self {
            config,
            streams: HashMap::new(),
            queues: ReceiveQueues::new(config.queue_frames, RECEIVE_STREAMS),
            forgotten: BufferStats::default(),
            scratch: Vec::new(),
        }
    }

    /// Whether a packet of `ssrc` with `sequence` is worth decrypting: not a duplicate, not
    /// late (those are counted here).
    pub(crate) fn check(&mut self, ssrc: u32, sequence: u16) -> bool {
        self.streams
            .get_mut(&ssrc)
            .is_none_or(|stream| stream.buffer.check(sequence) == Arrival::Accepted)
    }

    /// A decrypted frame of `ssrc`, sent by `user` if known.
    pub(crate) fn insert(
        &mut self,
        now: Instant,
        ssrc: u32,
        user: Option<UserId>,
        sequence: u16,
        timestamp: u32,
        opus: Bytes,
    ) {
        if !self.streams.contains_key(&ssrc) && self.streams.len() >= RECEIVE_STREAMS {
            self.evict_least_recent();
        }
        let config = self.config;
        let stream = self.streams.entry(ssrc).or_insert_with(|| Stream {
            buffer: JitterBuffer::new(&config),
            user: None,
            last_heard: now,
        });
        stream.last_heard = now;
        if user.is_some() {
            stream.user = user;
        }
        let mut out = std::mem::take(&mut self.scratch);
        stream
            .buffer
            .insert(now, sequence, timestamp, opus, &mut out);
        let user = stream.user;
        self.queue(ssrc, user, &mut out);
        self.scratch = out;
    }

    /// Runs every buffer's deadlines that are due at `now`.
    pub(crate) fn poll(&mut self, now: Instant) {
        let mut out = std::mem::take(&mut self.scratch);
        let mut ready = Vec::new();
        for (&ssrc, stream) in &mut self.streams {
            if stream.buffer.next_deadline().is_some_and(|at| at <= now) {
                stream.buffer.poll(now, &mut out);
                if !out.is_empty() {
                    ready.push((ssrc, stream.user, std::mem::take(&mut out)));
                }
            }
        }
        // In SSRC order, so that a run is reproducible.
        ready.sort_by_key(|(ssrc, _, _)| *ssrc);
        for (ssrc, user, mut items) in ready {
            self.queue(ssrc, user, &mut items);
        }
        self.scratch = out;
    }

    /// The earliest deadline of any buffer.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.streams
            .values()
            .filter_map(|stream| stream.buffer.next_deadline())
            .min()
    }

    /// Op 5: `ssrc` is `user`'s; flags 0 end its spurt.
    pub(crate) fn on_speaking(&mut self, ssrc: u32, user: UserId, flags: SpeakingFlags) {
        let Some(stream) = self.streams.get_mut(&ssrc) else {
            return;
        };
        stream.user = Some(user);
        if flags == SpeakingFlags::NONE {
            let mut out = std::mem::take(&mut self.scratch);
            stream.buffer.end(SpurtEnd::Speaking, &mut out);
            self.queue(ssrc, Some(user), &mut out);
            self.scratch = out;
        }
    }

    /// Op 13: the user's streams end and are forgotten.
    pub(crate) fn on_user_left(&mut self, user: UserId) {
        let mut gone: Vec<u32> = self
            .streams
            .iter()
            .filter(|(_, stream)| stream.user == Some(user))
            .map(|(&ssrc, _)| ssrc)
            .collect();
        gone.sort_unstable();
        for ssrc in gone {
            self.forget(ssrc, SpurtEnd::Left);
        }
    }

    /// The media session ended: every stream ends and is forgotten (SSRCs are handed out anew).
    pub(crate) fn end_all(&mut self) {
        let mut all: Vec<u32> = self.streams.keys().copied().collect();
        all.sort_unstable();
        for ssrc in all {
            self.forget(ssrc, SpurtEnd::SessionEnded);
        }
    }

    /// The next released item, the SSRCs in turn.
    pub(crate) fn poll_received(&mut self) -> Option<Received> {
        self.queues.pop()
    }

    /// Counters of every buffer, followed now or before.
    pub(crate) fn stats(&self) -> BufferStats {
        self.streams
            .values()
            .map(|stream| stream.buffer.stats())
            .fold(self.forgotten, add_stats)
    }

    /// Frames dropped because a queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.queues.dropped()
    }

    /// Senders followed now.
    pub(crate) fn len(&self) -> usize {
        self.streams.len()
    }

    /// The counters and depth of one sender's buffer.
    pub(crate) fn stream_stats(&self, ssrc: u32) -> Option<(BufferStats, usize)> {
        self.streams
            .get(&ssrc)
            .map(|stream| (stream.buffer.stats(), stream.buffer.depth()))
    }

    fn evict_least_recent(&mut self) {
        let oldest = self
            .streams
            .iter()
            .min_by_key(|(ssrc, stream)| (stream.last_heard, **ssrc))
            .map(|(&ssrc, _)| ssrc);
        if let Some(ssrc) = oldest {
            self.forget(ssrc, SpurtEnd::Evicted);
        }
    }

    fn forget(&mut self, ssrc: u32, reason: SpurtEnd) {
        let Some(mut stream) = self.streams.remove(&ssrc) else {
            return;
        };
        let mut out = std::mem::take(&mut self.scratch);
        stream.buffer.end(reason, &mut out);
        self.queue(ssrc, stream.user, &mut out);
        self.scratch = out;
        self.forgotten = add_stats(self.forgotten, stream.buffer.stats());
    }

    fn queue(&mut self, ssrc: u32, user_id: Option<UserId>, items: &mut Vec<Item>) {
        for item in items.drain(..) {
            self.queues.push(Received {
                ssrc,
                user_id,
                item,
            });
        }
    }
}

fn add_stats(a: BufferStats, b: BufferStats) -> BufferStats {
    BufferStats {
        frames: a.frames + b.frames,
        lost: a.lost + b.lost,
        late: a.late + b.late,
        duplicates: a.duplicates + b.duplicates,
        spurts: a.spurts + b.spurts,
        resyncs: a.resyncs + b.resyncs,
        silence_ignored: a.silence_ignored + b.silence_ignored,
        depth_increases: a.depth_increases + b.depth_increases,
    }
}
