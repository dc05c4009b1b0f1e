//! Received audio: opt-in, ordered per sender by a playout (jitter) buffer, with loss markers
//! and talk-spurt boundaries, delivered apart from the control outputs.
//!
//! Receive is **off** by default: a session that does not receive never decrypts a media
//! datagram (each is counted in [`Stats::datagrams_ignored`](crate::Stats::datagrams_ignored)
//! and dropped after a look at its first bytes). [`Config::receive`](crate::Config::receive)
//! turns it on with a [`ReceiveConfig`]. Then every packet from another member is transport-
//! and DAVE-decrypted and put into its sender's [`JitterBuffer`] (one per SSRC); what the buffer
//! releases waits in a bounded queue per SSRC ([`ReceiveQueue`]) until the application takes it
//! with [`Session::poll_received`](crate::Session::poll_received), so a flood of audio never
//! competes with control events ([`Output`](crate::Output) carries none).
//!
//! # The buffer's rules
//!
//! Time is passed in; every deadline is part of
//! [`Session::next_timer`](crate::Session::next_timer) (and so of `WakeAt`).
//!
//! - **Order.** Frames leave in RTP sequence order (16-bit, wrapping), each as soon as every
//!   earlier frame has left or been given up: no delay when nothing is missing.
//! - **Duplicates and late packets.** A packet whose sequence already left (delivered, or given
//!   up as lost) is dropped and counted ([`BufferStats::duplicates`], [`BufferStats::late`]);
//!   the buffer remembers the last 64 sequences behind its playout point to tell the two apart.
//!   Such packets are recognised before DAVE decryption, so a replayed frame costs no DAVE work
//!   and never counts as a DAVE failure.
//! - **Waiting for a late packet.** When a frame is missing, the frames behind it wait until
//!   the oldest of them has waited the buffer's depth ([`ReceiveConfig::depth`], 3 frames =
//!   60 ms by default); then the missing frames are given up and reported as one
//!   [`Item::Lost`] (sequence, timestamp, count), so that a decoder can conceal them.
//! - **Adaptive depth.** A packet that arrives after its frame was given up makes the depth
//!   one frame longer, up to [`ReceiveConfig::max_depth`]; after
//!   [`SHRINK_AFTER_FRAMES`] frames without one it shrinks by a frame, never below `depth`.
//! - **A new sender** (or one whose sequence jumped, below) is held for the depth before its
//!   first frame leaves, so that a packet overtaken at the very start still finds its place.
//! - **Talk spurts.** [`Item::SpurtStarted`] comes before the first item of a spurt,
//!   [`Item::SpurtEnded`] after its last: after five silence frames `F8 FF FE` in a row (what
//!   every client sends when it stops), when nothing arrived for
//!   [`ReceiveConfig::spurt_timeout`], when op 5 says the user stopped (flags 0), when the user
//!   leaves (op 13), or when the media session ends (a move or a fresh session). A silence frame
//!   never starts a spurt.
//! - **Bounds.** A buffer holds at most [`limits::RECEIVE_BUFFER_FRAMES`](crate::limits::RECEIVE_BUFFER_FRAMES)
//!   frames: a packet further ahead gives up the missing frames at once. A jump of more than
//!   [`limits::RECEIVE_RESYNC_GAP`](crate::limits::RECEIVE_RESYNC_GAP) frames inside a spurt,
//!   or any packet far from where an ended spurt stopped, is a new stream, not a loss: the spurt
//!   ends ([`SpurtEnd::Resync`]) and the buffer starts again from that packet. At most
//!   [`limits::RECEIVE_STREAMS`](crate::limits::RECEIVE_STREAMS) SSRCs are followed; a new one
//!   beyond that evicts the one heard from least recently.
//!
//! # The queues
//!
//! Each SSRC's released items wait in a [`ReceiveQueue`] bounded by
//! [`ReceiveConfig::queue_frames`] frames. It never blocks and never grows past its bound: a
//! frame that finds it full is dropped and counted ([`ReceiveQueue::dropped`]) and becomes part
//! of a loss marker delivered when room comes back, so a consumer always sees the sequence
//! accounted for; a whole spurt that finds the queue full vanishes (its frames counted). The
//! adapters hold each subscription's items in the same queues.

mod jitter;
mod queue;

use core::time::Duration;

/// The buffer type of received frames (`Frame::opus`), re-exported so no direct dependency on
/// `bytes` is needed.
pub use bytes::Bytes;

use crate::id::UserId;
use crate::rtp::SILENCE_FRAME;

pub use jitter::{Arrival, BufferStats, JitterBuffer, SHRINK_AFTER_FRAMES};
pub use queue::{ReceiveQueue, ReceiveQueues};

/// How received audio is buffered. `Config::receive: Some(ReceiveConfig::default())` turns
/// receive on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReceiveConfig {
    /// Frames (20 ms each) that frames behind a missing one wait for it before it is given up
    /// as lost; also how long a new sender's first frame is held. Default 3 (60 ms). 0 gives a
    /// gap up as soon as a later frame arrives.
    pub depth: usize,
    /// The most the depth may grow to when packets keep arriving after they were given up.
    /// Default 10 (200 ms); equal to `depth` turns adaptation off. Clamped to
    /// [`limits::RECEIVE_MAX_DEPTH`](crate::limits::RECEIVE_MAX_DEPTH).
    pub max_depth: usize,
    /// A talk spurt ends when nothing arrived for this long (when its trailing silence frames
    /// were lost, or a client sends none). Default 500 ms.
    pub spurt_timeout: Duration,
    /// Frames each receive queue holds per SSRC (the core's until
    /// [`Session::poll_received`](crate::Session::poll_received) takes them, and each
    /// subscription's in the adapters) before newer frames are dropped (counted, reported as a
    /// loss). Default 100 (2 s of one speaker).
    pub queue_frames: usize,
}

impl Default for ReceiveConfig {
    fn default() -> Self {
        Self {
            depth: 3,
            max_depth: 10,
            spurt_timeout: Duration::from_millis(500),
            queue_frames: 100,
        }
    }
}

/// Counters of the receive side ([`Session::receive_stats`](crate::Session::receive_stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ReceiveStats {
    /// Every buffer's counters added up, those of senders no longer followed included.
    pub buffers: BufferStats,
    /// Frames dropped because the application did not take them in time (a full queue).
    pub dropped: u64,
    /// Senders followed now (a gauge, at most
    /// [`limits::RECEIVE_STREAMS`](crate::limits::RECEIVE_STREAMS)).
    pub streams: usize,
}

/// One item of received audio, attributed to its sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The sender's SSRC.
    pub ssrc: u32,
    /// The sender's user id, if op 5 has named it by the time the item left the buffer.
    pub user_id: Option<UserId>,
    /// What it is.
    pub item: Item,
}

/// What a sender's stream says next, in playout order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Item {
    /// A talk spurt starts: the next items are its frames (and losses).
    SpurtStarted,
    /// One Opus frame (silence frames included).
    Frame(Frame),
    /// `count` frames from `sequence` on never came (or came too late, or found a full queue):
    /// a decoder conceals them.
    Lost {
        /// Sequence number of the first missing frame.
        sequence: u16,
        /// Its RTP timestamp (estimated: 960 after the previous frame's).
        timestamp: u32,
        /// How many frames are missing.
        count: u32,
    },
    /// The talk spurt is over.
    SpurtEnded(SpurtEnd),
}

/// One received Opus frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// RTP sequence number.
    pub sequence: u16,
    /// RTP timestamp (48 kHz samples).
    pub timestamp: u32,
    /// The Opus frame (transport- and DAVE-decrypted, extension and padding stripped).
    pub opus: Bytes,
}

impl Frame {
    /// Whether this is the silence frame `F8 FF FE` clients send when they stop.
    pub fn is_silence(&self) -> bool {
        self.opus.as_ref() == SILENCE_FRAME
    }
}

/// Why a talk spurt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SpurtEnd {
    /// Five silence frames in a row (lost frames among them counted as silence).
    Silence,
    /// Nothing arrived for [`ReceiveConfig::spurt_timeout`].
    Timeout,
    /// Op 5 said the user stopped speaking (flags 0).
    Speaking,
    /// The user left the channel (op 13).
    Left,
    /// The media session ended (a move to another voice server, a fresh session, the end of the
    /// connection): SSRCs are handed out anew.
    SessionEnded,
    /// The sender's sequence jumped too far to be a loss: a new stream starts.
    Resync,
    /// More than [`limits::RECEIVE_STREAMS`](crate::limits::RECEIVE_STREAMS) senders: the one
    /// heard from least recently is no longer followed.
    Evicted,
}

impl core::fmt::Display for SpurtEnd {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SpurtEnd::Silence => "five silence frames",
            SpurtEnd::Timeout => "nothing arrived for the spurt timeout",
            SpurtEnd::Speaking => "op 5 said the user stopped speaking",
            SpurtEnd::Left => "the user left",
            SpurtEnd::SessionEnded => "the media session ended",
            SpurtEnd::Resync => "the sequence jumped: a new stream",
            SpurtEnd::Evicted => "too many senders: no longer followed",
        })
    }
}
