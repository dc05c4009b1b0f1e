//! The `jitter_buffer` target: one sender's playout buffer (`voice_proto::receive::JitterBuffer`)
//! driven by a script of packets (in order, jumping, silence, duplicates), polls and ends, with
//! its rules checked after every step. Compiled into the fuzz crate and, through `#[path]`, into
//! `voice-proto`'s corpus replay and property tests.
//!
//! A script is a small byte language that every byte string reads as (`BufferScript::read`),
//! and that seeds are written in (`BufferScript::to_bytes`):
//! `depth max_depth timeout first_sequence_le16` then steps, a tag byte each:
//! `0 dt` the next packet in order, `dt` ms later; `1 dt jump_le16` a packet `jump` (signed) from
//! the highest sequence sent; `2 dt` a silence frame in order; `3 dt_le16` a poll; `4` a poll at
//! the next deadline; `5` an end from outside; `6 dt index` a packet sent before, again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use voice_proto::limits::{RECEIVE_BUFFER_FRAMES, RECEIVE_MAX_DEPTH};
use voice_proto::receive::{Arrival, Item, JitterBuffer, ReceiveConfig, SpurtEnd};
use voice_proto::rtp::SILENCE_FRAME;

/// Steps a script runs at most.
pub const MAX_BUFFER_STEPS: usize = 2048;

/// One step of a [`BufferScript`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BufferStep {
    /// The packet after the highest sent, `after_ms` after the previous step.
    InOrder {
        /// Milliseconds since the previous step.
        after_ms: u8,
    },
    /// A packet `jump` away from the highest sequence sent (negative: an older one).
    Jump {
        /// Milliseconds since the previous step.
        after_ms: u8,
        /// Sequence distance from the highest sent.
        jump: i16,
    },
    /// A silence frame after the highest sent.
    Silence {
        /// Milliseconds since the previous step.
        after_ms: u8,
    },
    /// Time passes; the buffer is polled.
    Poll {
        /// Milliseconds.
        after_ms: u16,
    },
    /// The clock moves to the buffer's next deadline and the buffer is polled.
    PollAtDeadline,
    /// The spurt ends from outside (op 5 with flags 0, op 13, the media session's end).
    End,
    /// A packet sent before, again (a duplicate, or a late copy).
    Again {
        /// Milliseconds since the previous step.
        after_ms: u8,
        /// Which packet (modulo how many were sent).
        index: u8,
    },
}

/// Input of the [`jitter_buffer`] target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferScript {
    /// Depth in frames (taken modulo 8).
    pub depth: u8,
    /// Maximum depth in frames (taken modulo 16).
    pub max_depth: u8,
    /// Spurt timeout in units of 10 ms, plus 20 ms.
    pub timeout: u8,
    /// Sequence of the first in-order packet (values near the wrap are interesting).
    pub first_sequence: u16,
    /// What happens.
    pub steps: Vec<BufferStep>,
}

impl BufferScript {
    /// Reads any bytes as a script (missing bytes read as 0).
    pub fn read(data: &[u8]) -> Self {
        let mut bytes = data.iter().copied();
        let mut next = || bytes.next();
        let mut byte = || next().unwrap_or(0);
        let depth = byte();
        let max_depth = byte();
        let timeout = byte();
        let first_sequence = u16::from_le_bytes([byte(), byte()]);
        let mut steps = Vec::new();
        let mut bytes = data.iter().copied().skip(5);
        while let Some(tag) = bytes.next() {
            if steps.len() >= MAX_BUFFER_STEPS {
                break;
            }
            let mut byte = || bytes.next().unwrap_or(0);
            steps.push(match tag % 7 {
                0 => BufferStep::InOrder { after_ms: byte() },
                1 => BufferStep::Jump {
                    after_ms: byte(),
                    jump: i16::from_le_bytes([byte(), byte()]),
                },
                2 => BufferStep::Silence { after_ms: byte() },
                3 => BufferStep::Poll {
                    after_ms: u16::from_le_bytes([byte(), byte()]),
                },
                4 => BufferStep::PollAtDeadline,
                5 => BufferStep::End,
                _ => BufferStep::Again {
                    after_ms: byte(),
                    index: byte(),
                },
            });
        }
        Self {
            depth,
            max_depth,
            timeout,
            first_sequence,
            steps,
        }
    }

    /// The bytes [`read`](Self::read) reads back as this script (for seed files).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.depth, self.max_depth, self.timeout];
        out.extend_from_slice(&self.first_sequence.to_le_bytes());
        for step in &self.steps {
            match step {
                BufferStep::InOrder { after_ms } => out.extend_from_slice(&[0, *after_ms]),
                BufferStep::Jump { after_ms, jump } => {
                    out.extend_from_slice(&[1, *after_ms]);
                    out.extend_from_slice(&jump.to_le_bytes());
                }
                BufferStep::Silence { after_ms } => out.extend_from_slice(&[2, *after_ms]),
                BufferStep::Poll { after_ms } => {
                    out.push(3);
                    out.extend_from_slice(&after_ms.to_le_bytes());
                }
                BufferStep::PollAtDeadline => out.push(4),
                BufferStep::End => out.push(5),
                BufferStep::Again { after_ms, index } => {
                    out.extend_from_slice(&[6, *after_ms, *index]);
                }
            }
        }
        out
    }

    /// The buffer's settings.
    pub fn config(&self) -> ReceiveConfig {
        ReceiveConfig {
            depth: usize::from(self.depth % 8),
            max_depth: usize::from(self.max_depth % 16),
            spurt_timeout: Duration::from_millis(20 + 10 * u64::from(self.timeout)),
            queue_frames: 100,
        }
    }
}

/// The target body: any bytes as a [`BufferScript`].
pub fn jitter_buffer(data: &[u8]) {
    let _ = run_buffer_script(&BufferScript::read(data));
}

/// What a run of a script ended with (for tests that pin seeds).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BufferOutcome {
    /// Frames delivered.
    pub frames: u64,
    /// Frames reported lost in `Lost` items.
    pub lost_reported: u64,
    /// Spurts started.
    pub spurts: u64,
    /// Packets refused as late.
    pub late: u64,
    /// Packets refused as duplicates.
    pub duplicates: u64,
}

/// A packet the script sent.
#[derive(Clone, Debug)]
struct Sent {
    sequence: u16,
    silence: bool,
    /// Its payload names it: `FC id_hi id_lo`.
    payload: Bytes,
}

/// The grammar of one sender's items: a spurt starts before its frames and losses and ends
/// after them, and each frame or loss carries the sequence after the previous one (no gap, no
/// overlap, 16-bit wrap). Shared with the `session` target's model of `poll_received`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SpurtGrammar {
    in_spurt: bool,
    next: Option<u16>,
}

impl SpurtGrammar {
    /// Whether a spurt is under way.
    pub fn in_spurt(&self) -> bool {
        self.in_spurt
    }

    /// Checks the next item (panics on a broken rule).
    pub fn check(&mut self, item: &Item) {
        match item {
            Item::SpurtStarted => {
                assert!(!self.in_spurt, "a spurt started inside a spurt");
                *self = Self {
                    in_spurt: true,
                    next: None,
                };
            }
            Item::Frame(frame) => {
                assert!(self.in_spurt, "a frame outside a spurt");
                if let Some(next) = self.next {
                    assert_eq!(frame.sequence, next, "a frame out of order");
                }
                self.next = Some(frame.sequence.wrapping_add(1));
            }
            Item::Lost {
                sequence, count, ..
            } => {
                assert!(self.in_spurt, "a loss outside a spurt");
                assert!(*count >= 1, "an empty loss");
                if let Some(next) = self.next {
                    assert_eq!(*sequence, next, "a loss out of order");
                }
                self.next = Some(sequence.wrapping_add(*count as u16));
            }
            Item::SpurtEnded(_) => {
                assert!(self.in_spurt, "a spurt ended outside a spurt");
                self.in_spurt = false;
            }
            _ => {}
        }
    }
}

/// Checks the items released (and takes them out of `out`): their grammar, and every frame
/// against the packets accepted and not delivered yet.
fn check_items(
    grammar: &mut SpurtGrammar,
    out: &mut Vec<Item>,
    pending: &mut HashMap<u16, Sent>,
    outcome: &mut BufferOutcome,
) {
    for item in out.drain(..) {
        grammar.check(&item);
        match item {
            Item::SpurtStarted => outcome.spurts += 1,
            Item::Frame(frame) => {
                let id = u16::from_be_bytes([
                    frame.opus.get(1).copied().unwrap_or(0),
                    frame.opus.get(2).copied().unwrap_or(0),
                ]);
                let packet = if frame.is_silence() {
                    // Silence frames all look alike: any pending one with this sequence.
                    let id = pending
                        .iter()
                        .find(|(_, p)| p.silence && p.sequence == frame.sequence)
                        .map(|(id, _)| *id);
                    id.and_then(|id| pending.remove(&id))
                } else {
                    pending.remove(&id)
                };
                let Some(packet) = packet else {
                    panic!("frame {} delivered but not pending", frame.sequence)
                };
                assert_eq!(
                    packet.sequence, frame.sequence,
                    "a frame with another's sequence"
                );
                assert_eq!(packet.payload, frame.opus);
                outcome.frames += 1;
            }
            Item::Lost { count, .. } => outcome.lost_reported += u64::from(count),
            _ => {}
        }
    }
}

/// Runs a script and checks, after every step:
/// - per spurt, `SpurtStarted` first and `SpurtEnded` last, frames and losses only inside one,
///   each carrying the sequence after the previous one (no gap, no overlap, 16-bit wrap);
/// - every frame delivered is a packet that was accepted, delivered once, with its sequence;
///   nothing refused (duplicate, late) is ever delivered; a silence frame never starts a spurt;
/// - the counters agree with what came out (frames, duplicates, late, spurts);
/// - after a poll or an insert at `now`, the next deadline is later than `now`; the buffer holds
///   at most `RECEIVE_BUFFER_FRAMES` frames; the depth stays within its bounds;
/// - at the end (an end from outside), every accepted packet other than a silence frame outside
///   a spurt has been delivered, and nothing is left buffered or in a spurt.
pub fn run_buffer_script(script: &BufferScript) -> BufferOutcome {
    let config = script.config();
    let mut buffer = JitterBuffer::new(&config);
    let start = Instant::now();
    let mut now = start;
    let mut out = Vec::new();
    let mut sent: Vec<Sent> = Vec::new();
    // Accepted packets not delivered yet, by id (silence frames included: they may be consumed).
    let mut pending: HashMap<u16, Sent> = HashMap::new();
    let mut highest = script.first_sequence.wrapping_sub(1);
    let mut items = SpurtGrammar::default();
    let mut outcome = BufferOutcome::default();
    let mut silence_consumed = 0u64;
    let min_depth = config.depth.min(RECEIVE_MAX_DEPTH);
    let max_depth = config.max_depth.clamp(min_depth, RECEIVE_MAX_DEPTH);

    for step in &script.steps {
        let packet = match *step {
            BufferStep::InOrder { after_ms } => {
                now += Duration::from_millis(u64::from(after_ms));
                highest = highest.wrapping_add(1);
                Some((highest, false))
            }
            BufferStep::Jump { after_ms, jump } => {
                now += Duration::from_millis(u64::from(after_ms));
                let sequence = highest.wrapping_add(jump as u16);
                if jump > 0 {
                    highest = sequence;
                }
                Some((sequence, false))
            }
            BufferStep::Silence { after_ms } => {
                now += Duration::from_millis(u64::from(after_ms));
                highest = highest.wrapping_add(1);
                Some((highest, true))
            }
            BufferStep::Again { after_ms, index } => {
                now += Duration::from_millis(u64::from(after_ms));
                if sent.is_empty() {
                    None
                } else {
                    let again = sent[usize::from(index) % sent.len()].clone();
                    Some((again.sequence, again.silence))
                }
            }
            BufferStep::Poll { after_ms } => {
                now += Duration::from_millis(u64::from(after_ms));
                buffer.poll(now, &mut out);
                None
            }
            BufferStep::PollAtDeadline => {
                if let Some(at) = buffer.next_deadline() {
                    now = now.max(at);
                }
                buffer.poll(now, &mut out);
                None
            }
            BufferStep::End => {
                buffer.end(SpurtEnd::Speaking, &mut out);
                None
            }
        };
        if let Some((sequence, silence)) = packet {
            let id = u16::try_from(sent.len() % 65_536).unwrap_or(0);
            let payload = if silence {
                Bytes::from_static(&SILENCE_FRAME)
            } else {
                Bytes::from(vec![0xFC, (id >> 8) as u8, id as u8])
            };
            let packet = Sent {
                sequence,
                silence,
                payload: payload.clone(),
            };
            sent.push(packet.clone());
            // As the engine does: timers first, then a look at the sequence before decrypting.
            buffer.poll(now, &mut out);
            let before = buffer.stats();
            let checked = buffer.check(sequence);
            let arrival = if checked == Arrival::Accepted {
                let timestamp = u32::from(sequence).wrapping_mul(960);
                buffer.insert(now, sequence, timestamp, payload, &mut out)
            } else {
                checked
            };
            let after = buffer.stats();
            match arrival {
                Arrival::Accepted => {
                    pending.insert(id, packet);
                }
                Arrival::Duplicate => {
                    assert_eq!(after.duplicates, before.duplicates + 1);
                    outcome.duplicates += 1;
                }
                Arrival::Late => {
                    assert_eq!(after.late, before.late + 1);
                    outcome.late += 1;
                }
                Arrival::Silence => {
                    assert!(silence, "a non-silence packet consumed as silence");
                    silence_consumed += 1;
                }
                _ => {}
            }
        }
        check_items(&mut items, &mut out, &mut pending, &mut outcome);
        if !matches!(step, BufferStep::End) {
            if let Some(at) = buffer.next_deadline() {
                assert!(at > now, "a deadline left due after a poll at now");
            }
        }
        assert!(buffer.buffered() <= RECEIVE_BUFFER_FRAMES);
        assert!((min_depth..=max_depth).contains(&buffer.depth()));
        assert_eq!(
            buffer.in_spurt(),
            items.in_spurt(),
            "in_spurt() disagrees with the items"
        );
        let stats = buffer.stats();
        assert_eq!(stats.frames, outcome.frames, "frames counted");
        assert_eq!(stats.spurts, outcome.spurts, "spurts counted");
        assert!(stats.duplicates >= outcome.duplicates && stats.late >= outcome.late);
    }
    buffer.end(SpurtEnd::SessionEnded, &mut out);
    check_items(&mut items, &mut out, &mut pending, &mut outcome);
    // Only silence frames may be left: consumed where no spurt was under way.
    assert!(
        pending.values().all(|p| p.silence),
        "accepted packets never delivered: {:?}",
        pending.values().filter(|p| !p.silence).collect::<Vec<_>>()
    );
    assert!(!buffer.in_spurt() && buffer.buffered() == 0);
    assert!(buffer.stats().silence_ignored >= silence_consumed);
    outcome
}
