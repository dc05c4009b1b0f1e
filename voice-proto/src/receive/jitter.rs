//! One sender's playout (jitter) buffer: reorders by sequence, drops duplicates and late packets,
//! waits a bounded time for a missing frame and then reports it lost, and marks talk spurts.
//! Pure: time is passed in. The rules are in the [module docs](super).

use core::time::Duration;
use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use super::{Frame, Item, ReceiveConfig, SpurtEnd};
use crate::limits::{RECEIVE_BUFFER_FRAMES, RECEIVE_MAX_DEPTH, RECEIVE_RESYNC_GAP};
use crate::playout::FRAME_DURATION;
use crate::rtp::{SAMPLES_PER_FRAME, SILENCE_FRAME, SILENCE_FRAME_COUNT};

/// Frames delivered without a late packet after which an adapted depth shrinks by one frame
/// (10 s of speech).
pub const SHRINK_AFTER_FRAMES: u32 = 500;

/// Sequences behind the playout point the buffer remembers (delivered or given up), to tell a
/// duplicate from a late packet.
const HISTORY: usize = 64;

/// What became of a packet offered to the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Arrival {
    /// Taken: buffered, or released at once.
    Accepted,
    /// Its sequence is buffered or was delivered already: dropped.
    Duplicate,
    /// Its frame was given up as lost before it came (or it is older than the buffer
    /// remembers): dropped.
    Late,
    /// A silence frame with no talk spurt under way: consumed, nothing delivered.
    Silence,
}

/// Counters of one buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BufferStats {
    /// Frames delivered (silence frames of a spurt included).
    pub frames: u64,
    /// Frames given up as lost (reported in [`Item::Lost`], except for a gap just before a
    /// silence frame outside a spurt, which no spurt reports).
    pub lost: u64,
    /// Packets that came after their frame was given up, or older than the buffer remembers.
    pub late: u64,
    /// Packets whose sequence was buffered or delivered already.
    pub duplicates: u64,
    /// Talk spurts started.
    pub spurts: u64,
    /// Times the buffer started again from a packet whose sequence jumped.
    pub resyncs: u64,
    /// Silence frames that came with no spurt under way (consumed).
    pub silence_ignored: u64,
    /// Times a late packet made the depth longer.
    pub depth_increases: u64,
}

/// A frame waiting in the buffer.
#[derive(Debug, Clone)]
struct Slot {
    timestamp: u32,
    opus: Bytes,
    arrived: Instant,
}

impl Slot {
    fn is_silence(&self) -> bool {
        self.opus.as_ref() == SILENCE_FRAME
    }
}

/// Why a packet is refused before it is looked at.
#[derive(Debug, Clone, Copy)]
struct Refusal {
    arrival: Arrival,
    /// A packet that came after its frame was given up: the depth was too short.
    adapt: bool,
}

/// One sender's playout buffer (see the [module docs](super) for its rules).
///
/// Feed every packet with [`insert`](Self::insert), call [`poll`](Self::poll) at
/// [`next_deadline`](Self::next_deadline), and take what both push into `out`.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    /// The configured depth: the adapted one never goes below it.
    min_depth: usize,
    max_depth: usize,
    spurt_timeout: Duration,
    /// The current depth (adapted between `min_depth` and `max_depth`).
    depth: usize,
    /// The playout point: the sequence the next item is about. `None` before the first frame.
    next: Option<u16>,
    /// `slots[i]` holds sequence `next + i`; never ends with `None`.
    slots: VecDeque<Option<Slot>>,
    /// A new stream's first frame is held until then.
    anchor_until: Option<Instant>,
    /// `SpurtStarted` went out and no `SpurtEnded` since.
    started: bool,
    /// The latest packet taken.
    last_arrival: Option<Instant>,
    /// Silence frames (and losses among them) in a row at the end of the spurt so far.
    silence_run: usize,
    /// Bit `k`: sequence `next - 1 - k` was delivered (1) or given up (0).
    history: u64,
    /// Timestamp of the last frame delivered.
    last_timestamp: Option<u32>,
    /// Frames delivered since the last late packet.
    calm: u32,
    stats: BufferStats,
}

impl JitterBuffer {
    /// An empty buffer; `depth` and `max_depth` are clamped to
    /// [`RECEIVE_MAX_DEPTH`] (`max_depth` to at least `depth`).
    pub fn new(config: &ReceiveConfig) -> Self {
        let depth = config.depth.min(RECEIVE_MAX_DEPTH);
        let max_depth = config.max_depth.clamp(depth, RECEIVE_MAX_DEPTH);
        Self {
            min_depth: depth,
            max_depth,
            spurt_timeout: config.spurt_timeout,
            depth,
            next: None,
            slots: VecDeque::new(),
            anchor_until: None,
            started: false,
            last_arrival: None,
            silence_run: 0,
            history: 0,
            last_timestamp: None,
            calm: 0,
            stats: BufferStats::default(),
        }
    }

    /// The current depth in frames (the configured one, or longer after late packets).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Counters so far.
    pub fn stats(&self) -> BufferStats {
        self.stats
    }

    /// Frames waiting in the buffer.
    pub fn buffered(&self) -> usize {
        self.slots.iter().filter(|slot| slot.is_some()).count()
    }

    /// Whether a talk spurt is under way (`SpurtStarted` went out, `SpurtEnded` not yet).
    pub fn in_spurt(&self) -> bool {
        self.started
    }

    /// The sequence the next item is about, once the first frame came.
    pub fn playout_point(&self) -> Option<u16> {
        self.next
    }

    /// Whether [`insert`](Self::insert) would drop a packet with this sequence as a duplicate or
    /// a late packet, without looking at its payload; such a packet is counted (and may make the
    /// depth longer) here, so the caller skips decrypting it. `Accepted` counts nothing: the
    /// packet is then to be inserted. Call [`poll`](Self::poll) at the current time first.
    pub fn check(&mut self, sequence: u16) -> Arrival {
        match self.refusal(sequence) {
            Some(refusal) => self.count(refusal),
            None => Arrival::Accepted,
        }
    }

    /// Offers one received frame at `now` (after running any deadline that is due). Released
    /// items are pushed into `out`.
    pub fn insert(
        &mut self,
        now: Instant,
        sequence: u16,
        timestamp: u32,
        opus: Bytes,
        out: &mut Vec<Item>,
    ) -> Arrival {
        self.poll(now, out);
        if let Some(refusal) = self.refusal(sequence) {
            return self.count(refusal);
        }
        let slot = Slot {
            timestamp,
            opus,
            arrived: now,
        };
        let Some(next) = self.next else {
            if slot.is_silence() {
                self.stats.silence_ignored += 1;
                return Arrival::Silence;
            }
            self.anchor(now, sequence, slot);
            self.poll(now, out);
            return Arrival::Accepted;
        };
        let distance = distance(sequence, next);
        let arrival = if distance < 0 {
            let back = distance.unsigned_abs() as usize;
            if self.anchor_until.is_some() {
                // An earlier frame of a stream still held at its start: the new head.
                for _ in 1..back {
                    self.slots.push_front(None);
                }
                self.slots.push_front(Some(slot));
                self.next = Some(sequence);
                Arrival::Accepted
            } else if slot.is_silence() {
                self.stats.silence_ignored += 1;
                Arrival::Silence
            } else {
                // Far behind an ended spurt: the sender started a new stream.
                self.resync(now, sequence, slot, out);
                Arrival::Accepted
            }
        } else {
            self.ahead(now, sequence, distance.unsigned_abs() as usize, slot, out)
        };
        if arrival != Arrival::Late {
            self.last_arrival = Some(now);
        }
        self.poll(now, out);
        arrival
    }

    /// Runs what is due at `now`: a new stream's hold ends, missing frames whose wait is over
    /// are given up, a spurt with nothing arriving times out. Released items go into `out`.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<Item>) {
        if let Some(until) = self.anchor_until {
            if now < until {
                return;
            }
            self.anchor_until = None;
        }
        self.release(now, out, false);
        let timed_out = self
            .last_arrival
            .is_some_and(|last| now >= last + self.spurt_timeout);
        if self.started && self.slots.is_empty() && timed_out {
            self.end_spurt(SpurtEnd::Timeout, out);
        }
    }

    /// When [`poll`](Self::poll) has something to do next.
    pub fn next_deadline(&self) -> Option<Instant> {
        if let Some(until) = self.anchor_until {
            return Some(until);
        }
        if matches!(self.slots.front(), Some(None)) {
            return self
                .oldest_arrival()
                .map(|oldest| oldest + self.wait_time());
        }
        if self.started && self.slots.is_empty() {
            return self.last_arrival.map(|last| last + self.spurt_timeout);
        }
        None
    }

    /// Ends the stream's spurt now for `reason` (op 5 with flags 0, op 13, the end of the
    /// media session): everything buffered leaves at once (missing frames given up), then
    /// [`Item::SpurtEnded`] if a spurt was under way.
    pub fn end(&mut self, reason: SpurtEnd, out: &mut Vec<Item>) {
        self.anchor_until = None;
        self.release_all(out);
        self.end_spurt(reason, out);
    }

    fn wait_time(&self) -> Duration {
        FRAME_DURATION * u32::try_from(self.depth).unwrap_or(u32::MAX)
    }

    fn oldest_arrival(&self) -> Option<Instant> {
        self.slots.iter().flatten().map(|slot| slot.arrived).min()
    }

    /// Why a packet with this sequence is refused, if it is.
    fn refusal(&self, sequence: u16) -> Option<Refusal> {
        let next = self.next?;
        let distance = distance(sequence, next);
        let refused = |arrival, adapt| Some(Refusal { arrival, adapt });
        if distance >= 0 {
            let ahead = distance.unsigned_abs() as usize;
            return match self.slots.get(ahead) {
                Some(Some(_)) => refused(Arrival::Duplicate, false),
                _ => None,
            };
        }
        let back = distance.unsigned_abs() as usize;
        if self.anchor_until.is_some() {
            // An earlier frame of a held stream fits unless the buffer would overflow.
            return (back + self.slots.len() > RECEIVE_BUFFER_FRAMES).then_some(Refusal {
                arrival: Arrival::Late,
                adapt: false,
            });
        }
        if back <= HISTORY {
            let delivered = (self.history >> (back - 1)) & 1 == 1;
            return if delivered {
                refused(Arrival::Duplicate, false)
            } else {
                refused(Arrival::Late, true)
            };
        }
        // Older than the buffer remembers: late within a spurt; after it, a new stream.
        self.started.then_some(Refusal {
            arrival: Arrival::Late,
            adapt: false,
        })
    }

    fn count(&mut self, refusal: Refusal) -> Arrival {
        match refusal.arrival {
            Arrival::Duplicate => self.stats.duplicates += 1,
            _ => {
                self.stats.late += 1;
                if refusal.adapt {
                    self.calm = 0;
                    if self.depth < self.max_depth {
                        self.depth += 1;
                        self.stats.depth_increases += 1;
                    }
                }
            }
        }
        refusal.arrival
    }

    /// A packet at or ahead of the playout point.
    fn ahead(
        &mut self,
        now: Instant,
        sequence: u16,
        ahead: usize,
        slot: Slot,
        out: &mut Vec<Item>,
    ) -> Arrival {
        let idle = !self.started && self.anchor_until.is_none();
        if idle && self.slots.is_empty() && slot.is_silence() {
            // A straggler of a trailing silence, or silence with no spurt: consumed.
            if ahead < RECEIVE_BUFFER_FRAMES {
                self.advance(ahead, 0);
                self.advance(1, 1);
                self.last_timestamp = Some(slot.timestamp);
            }
            self.stats.silence_ignored += 1;
            return Arrival::Silence;
        }
        if ahead >= RECEIVE_BUFFER_FRAMES {
            if !self.started || ahead > usize::from(RECEIVE_RESYNC_GAP) {
                if slot.is_silence() {
                    self.stats.silence_ignored += 1;
                    return Arrival::Silence;
                }
                self.resync(now, sequence, slot, out);
                return Arrival::Accepted;
            }
            // Too far ahead to wait: everything before it leaves now.
            self.release_all(out);
            let remaining = self
                .next
                .map_or(0, |next| usize::from(sequence.wrapping_sub(next)));
            if remaining > 0 {
                self.give_up(remaining, Some(&slot), out);
            }
            self.slots.push_back(Some(slot));
            return Arrival::Accepted;
        }
        while self.slots.len() <= ahead {
            self.slots.push_back(None);
        }
        if let Some(place) = self.slots.get_mut(ahead) {
            *place = Some(slot);
        }
        Arrival::Accepted
    }

    /// Starts the stream afresh at this packet, held for the depth.
    fn anchor(&mut self, now: Instant, sequence: u16, slot: Slot) {
        self.next = Some(sequence);
        self.slots.clear();
        self.slots.push_back(Some(slot));
        self.history = 0;
        self.last_timestamp = None;
        self.silence_run = 0;
        self.anchor_until = Some(now + self.wait_time());
    }

    /// The sequence jumped: what is buffered leaves, the spurt ends, the stream starts again.
    fn resync(&mut self, now: Instant, sequence: u16, slot: Slot, out: &mut Vec<Item>) {
        self.anchor_until = None;
        self.release_all(out);
        self.end_spurt(SpurtEnd::Resync, out);
        self.stats.resyncs += 1;
        self.anchor(now, sequence, slot);
    }

    /// Releases the head while it can: present frames at once, a missing one once the oldest
    /// frame behind it has waited the depth (or at once when `force`).
    fn release(&mut self, now: Instant, out: &mut Vec<Item>, force: bool) {
        loop {
            match self.slots.front() {
                None => return,
                Some(Some(_)) => {
                    if let Some(Some(slot)) = self.slots.pop_front() {
                        self.emit_frame(slot, out);
                    }
                }
                Some(None) => {
                    let Some(oldest) = self.oldest_arrival() else {
                        // Only gaps (never built that way): nothing to wait for.
                        self.slots.clear();
                        return;
                    };
                    if !force && now < oldest + self.wait_time() {
                        return;
                    }
                    let missing = self.slots.iter().take_while(|s| s.is_none()).count();
                    self.slots.drain(..missing);
                    let following = self.slots.front().and_then(Option::as_ref).cloned();
                    self.give_up(missing, following.as_ref(), out);
                }
            }
        }
    }

    fn release_all(&mut self, out: &mut Vec<Item>) {
        // `now` does not matter when forced.
        if let Some(arrived) = self.oldest_arrival() {
            self.release(arrived, out, true);
        }
        self.slots.clear();
    }

    /// `count` frames at the playout point will not come; `following` is the frame after them.
    fn give_up(&mut self, count: usize, following: Option<&Slot>, out: &mut Vec<Item>) {
        let Some(next) = self.next else { return };
        let count32 = u32::try_from(count).unwrap_or(u32::MAX);
        let timestamp = match (self.last_timestamp, following) {
            (Some(last), _) => last.wrapping_add(SAMPLES_PER_FRAME),
            (None, Some(slot)) => slot
                .timestamp
                .wrapping_sub(SAMPLES_PER_FRAME.wrapping_mul(count32)),
            (None, None) => 0,
        };
        self.stats.lost += u64::from(count32);
        self.advance(count, 0);
        if let Some(last) = self.last_timestamp.as_mut() {
            *last = last.wrapping_add(SAMPLES_PER_FRAME.wrapping_mul(count32));
        }
        if !self.started {
            // Missing frames before a silence frame start no spurt.
            if following.is_none_or(Slot::is_silence) {
                return;
            }
            self.start_spurt(out);
        }
        out.push(Item::Lost {
            sequence: next,
            timestamp,
            count: count32,
        });
        if self.silence_run > 0 {
            // A gap inside the trailing silence is silence.
            self.silence_run += count;
            if self.silence_run >= SILENCE_FRAME_COUNT {
                self.end_spurt(SpurtEnd::Silence, out);
            }
        }
    }

    fn emit_frame(&mut self, slot: Slot, out: &mut Vec<Item>) {
        let Some(sequence) = self.next else { return };
        self.advance(1, 1);
        self.last_timestamp = Some(slot.timestamp);
        let silence = slot.is_silence();
        if !self.started {
            if silence {
                self.stats.silence_ignored += 1;
                return;
            }
            self.start_spurt(out);
        }
        self.stats.frames += 1;
        self.calm = self.calm.saturating_add(1);
        if self.calm >= SHRINK_AFTER_FRAMES && self.depth > self.min_depth {
            self.depth -= 1;
            self.calm = 0;
        }
        out.push(Item::Frame(Frame {
            sequence,
            timestamp: slot.timestamp,
            opus: slot.opus,
        }));
        if silence {
            self.silence_run += 1;
            if self.silence_run >= SILENCE_FRAME_COUNT {
                self.end_spurt(SpurtEnd::Silence, out);
            }
        } else {
            self.silence_run = 0;
        }
    }

    /// Moves the playout point `by` sequences on, recording them as delivered (`bit` 1) or given
    /// up (0).
    fn advance(&mut self, by: usize, bit: u64) {
        let Some(next) = self.next else { return };
        let by16 = u16::try_from(by % 65_536).unwrap_or(0);
        self.next = Some(next.wrapping_add(by16));
        let shift = u32::try_from(by).unwrap_or(u32::MAX);
        self.history = self.history.checked_shl(shift).unwrap_or(0) | bit;
    }

    fn start_spurt(&mut self, out: &mut Vec<Item>) {
        self.started = true;
        self.silence_run = 0;
        self.stats.spurts += 1;
        out.push(Item::SpurtStarted);
    }

    fn end_spurt(&mut self, reason: SpurtEnd, out: &mut Vec<Item>) {
        if self.started {
            out.push(Item::SpurtEnded(reason));
        }
        self.started = false;
        self.silence_run = 0;
    }
}

/// How far `sequence` is ahead of `next` (negative: behind), on the 16-bit circle.
fn distance(sequence: u16, next: u16) -> i32 {
    i32::from(sequence.wrapping_sub(next) as i16)
}
