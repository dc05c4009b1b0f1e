//! Outgoing audio: the types of the core's playout.
//!
//! The session owns a bounded queue of Opus frames and the 20 ms clock that sends them
//! ([`Session::queue_opus`](crate::Session::queue_opus),
//! [`Session::poll_transmit`](crate::Session::poll_transmit)). Its rules are written once, here,
//! for every runtime:
//!
//! - **Pacing.** One frame per [`FRAME_DURATION`] on a drift-free schedule: each deadline is one
//!   frame after the previous deadline, not after the moment it was served, so late wake-ups do
//!   not accumulate into drift. A driver that wakes late gets every overdue packet at once (a
//!   short burst); after a stall longer than [`MAX_LAG`] the schedule restarts from now instead.
//! - **Holding.** A frame is never sent while the session cannot carry it — no media session
//!   (reconnecting, moving), a websocket being resumed, DAVE keys pending — and never dropped
//!   either: the clock pauses, the queue waits (the application sees backpressure) and playout
//!   goes on when the session can send again. [`Event::PlayoutHeld`](crate::Event::PlayoutHeld)
//!   and [`Event::PlayoutResumed`](crate::Event::PlayoutResumed) tell the application.
//! - **Speaking first.** Op 5 Speaking goes out on every websocket before its first audio
//!   packet (Discord drops audio of an SSRC that never announced itself): `poll_transmit` queues
//!   it as an output and yields no datagram until that output has been taken by `poll_output`.
//! - **Underrun and stop.** When the queue runs dry during a talk spurt, or after
//!   [`Session::stop_speaking`](crate::Session::stop_speaking), the five `F8 FF FE` silence
//!   frames follow, one per 20 ms, then op 5 with flags 0; then the clock goes quiet until frames
//!   come again. A frame queued during the silence ends it and the spurt goes on.
//! - **Nothing lost.** Queued frames are dropped only when the application asks (stop) or the
//!   connection ends for good. A fresh reconnect keeps them; only the trailing silence of a spurt
//!   cut by the reconnect is forgotten.
//! - **Flush.** [`Session::playout_idle`](crate::Session::playout_idle) is true once every
//!   queued frame and the trailing silence are out (or the connection has ended).

mod frame_queue;
mod pacer;

use core::time::Duration;
use std::net::SocketAddr;

pub(crate) use frame_queue::FrameQueue;
pub(crate) use pacer::Pacer;

/// One Opus frame: 20 ms.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);

/// How far behind its schedule playout may fall before it restarts from now instead of sending
/// every overdue frame at once.
pub const MAX_LAG: Duration = Duration::from_millis(200);

/// Frames the playout queue holds by default: one second of audio.
pub const DEFAULT_QUEUE_FRAMES: usize = 50;

/// A datagram [`Session::poll_transmit`](crate::Session::poll_transmit) wrote into the caller's
/// buffer: send `buf[..len]` to `destination` on the media UDP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// The voice server's media address.
    pub destination: SocketAddr,
    /// Bytes written at the start of the buffer.
    pub len: usize,
}

/// Why [`Session::queue_opus`](crate::Session::queue_opus) refused a frame. Nothing was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue holds its capacity already; try again after the next packet went out.
    #[error("the playout queue is full ({capacity} frames)")]
    Full {
        /// The queue's capacity in frames.
        capacity: usize,
    },
    /// The frame is empty or longer than an Opus packet can be.
    #[error("an Opus frame must be 1..=1275 bytes, got {len}")]
    BadFrameLength {
        /// The frame length given.
        len: usize,
    },
    /// The connection has ended; nothing will be sent any more.
    #[error("the connection is closed")]
    Closed,
}

/// Why queued audio is waiting instead of going out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HoldReason {
    /// No media session: a fresh reconnect or a move to another voice server is under way.
    Reconnecting,
    /// The websocket is being resumed; audio waits for op 9 Resumed and our op 5.
    Resuming,
    /// DAVE is negotiated but we hold no sending key yet (joining the MLS group, a recovery, or
    /// an upgrade after a downgrade). A bot alone in a channel waits here until someone joins:
    /// Discord's voice server commits no group of one.
    DaveKeysPending,
}

impl core::fmt::Display for HoldReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            HoldReason::Reconnecting => "reconnecting to the voice server",
            HoldReason::Resuming => "resuming the voice websocket",
            HoldReason::DaveKeysPending => "waiting for DAVE end-to-end encryption keys",
        })
    }
}
