//! Sending audio: the playout queue, the 20 ms clock, holds, op 5 Speaking before audio, and the
//! trailing silence. The rules are described in [`crate::playout`].

use std::time::Instant;

use super::{Engine, Phase};
use crate::dave::DaveStatus;
use crate::error::{Error, NotReady};
use crate::io::{Event, Output, Recovery};
use crate::payload::{ClientMessage, Speaking, SpeakingFlags};
use crate::playout::{FrameQueue, HoldReason, Pacer, QueueError, Transmit};
use crate::rtp::{MAX_PACKET_LEN, SILENCE_FRAME, SILENCE_FRAME_COUNT};

/// The outgoing stream: queued frames, their clock, and our speaking announcement.
#[derive(Debug, Clone)]
pub(crate) struct Playout {
    pub(super) queue: FrameQueue,
    pacer: Pacer,
    /// Flags used when audio starts (the application's choice, Microphone by default).
    flags: SpeakingFlags,
    /// Op 5 with non-zero flags was queued on the current websocket.
    announced: bool,
    /// Value of the engine's output counter once that op 5 has been taken by `poll_output`.
    announcement_out_at: u64,
    /// Between the first frame of a spurt and the end of its trailing silence.
    talking: bool,
    /// Trailing silence frames still to send.
    silence_remaining: usize,
    /// Why audio waits, while it does (reported once per change).
    held: Option<HoldReason>,
    /// The latest time the engine was told: "due now" for a stream that is ready to start.
    clock: Option<Instant>,
}

/// The next packet of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Audio,
    Silence,
}

impl Playout {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            queue: FrameQueue::new(capacity),
            pacer: Pacer::new(),
            flags: SpeakingFlags::MICROPHONE,
            announced: false,
            announcement_out_at: 0,
            talking: false,
            silence_remaining: 0,
            held: None,
            clock: None,
        }
    }

    /// The engine was told the time: a stream ready to start is due then.
    pub(super) fn observe(&mut self, now: Instant) {
        self.clock = Some(self.clock.map_or(now, |clock| clock.max(now)));
    }

    /// Something to send: queued frames, or a spurt whose trailing silence is not out yet.
    fn has_work(&self) -> bool {
        !self.queue.is_empty() || self.talking
    }

    fn next(&self) -> Next {
        if self.queue.is_empty() {
            Next::Silence
        } else {
            Next::Audio
        }
    }

    /// A new websocket: op 5 must go out on it before audio does.
    pub(super) fn forget_announcement(&mut self) {
        self.announced = false;
    }

    /// The media session ended (fresh reconnect, move): a spurt cut by it is over and its
    /// trailing silence is not sent on the next session. Queued frames stay.
    pub(super) fn end_spurt(&mut self) {
        self.talking = false;
        self.silence_remaining = 0;
        self.announced = false;
        self.pacer.stop();
    }

    /// The connection ended: nothing will be sent.
    pub(super) fn close(&mut self) {
        self.end_spurt();
        self.queue.clear();
        self.held = None;
    }
}

impl Engine {
    /// Why a packet of this kind cannot go out now, if it cannot.
    fn hold_reason(&self, next: Next) -> Option<HoldReason> {
        if self.media.is_none() {
            return Some(HoldReason::Reconnecting);
        }
        if self.phase != Phase::Connected || !self.ws_open {
            // The backoff before a fresh reconnect still has the media session: that is no
            // resume.
            return Some(match self.phase {
                Phase::Connecting {
                    recovery: Recovery::Resume,
                    ..
                }
                | Phase::Backoff {
                    recovery: Recovery::Resume,
                    ..
                } => HoldReason::Resuming,
                _ => HoldReason::Reconnecting,
            });
        }
        // Silence is never DAVE-encrypted (C46); audio waits for a sending key (C48).
        if next == Next::Audio && self.dave.status() == DaveStatus::Negotiating {
            return Some(HoldReason::DaveKeysPending);
        }
        None
    }

    /// An op 5 queued for this websocket is still among the outputs not yet taken.
    fn announcement_in_flight(&self) -> bool {
        self.playout.announced && self.outputs_taken < self.playout.announcement_out_at
    }

    pub(crate) fn queue_opus(&mut self, frame: &[u8]) -> Result<(), QueueError> {
        if self.is_closed() {
            return Err(QueueError::Closed);
        }
        self.playout.queue.push(frame)?;
        self.sync_hold();
        Ok(())
    }

    /// Reports a change of [`playout_hold`](Self::playout_hold) as an event: the wait starts,
    /// changes reason, or ends (audio can flow again, or nothing is left to send). Called after
    /// every input and application call that can change it.
    pub(super) fn sync_hold(&mut self) {
        let now_held = self.playout_hold();
        if now_held.is_some() || !self.playout.has_work() {
            // The clock pauses: nothing is owed for the time audio waits or the stream is idle.
            self.playout.pacer.pause();
        }
        if now_held == self.playout.held {
            return;
        }
        let before = core::mem::replace(&mut self.playout.held, now_held);
        let event = match (before, now_held) {
            (_, Some(reason)) => Event::PlayoutHeld { reason },
            (Some(reason), None) => Event::PlayoutResumed { reason },
            (None, None) => return,
        };
        self.out.push_back(Output::Event(event));
    }

    pub(crate) fn queued_frames(&self) -> usize {
        self.playout.queue.len()
    }

    pub(crate) fn queue_capacity(&self) -> usize {
        self.playout.queue.capacity()
    }

    /// Why queued audio waits now, if it does.
    pub(crate) fn playout_hold(&self) -> Option<HoldReason> {
        if self.is_closed() || !self.playout.has_work() {
            return None;
        }
        self.hold_reason(self.playout.next())
    }

    /// Every queued frame and the trailing silence are out, or nothing will ever be sent.
    pub(crate) fn playout_idle(&self) -> bool {
        self.is_closed() || !self.playout.has_work()
    }

    /// When [`poll_transmit`](Self::poll_transmit) will have a datagram, `None` while idle or
    /// held (a time in the past means now).
    pub(crate) fn next_transmit(&self) -> Option<Instant> {
        if self.is_closed()
            || !self.playout.has_work()
            || self.hold_reason(self.playout.next()).is_some()
            || self.announcement_in_flight()
        {
            return None;
        }
        self.playout.pacer.due().or(self.playout.clock)
    }

    /// The next datagram of the stream if one is due at `now`, written into `buf`.
    pub(crate) fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut [u8; MAX_PACKET_LEN],
    ) -> Option<Transmit> {
        self.playout.observe(now);
        if self.is_closed() || !self.playout.has_work() {
            self.playout.pacer.pause();
            return None;
        }
        if self.playout.pacer.due().is_some_and(|due| now < due) {
            return None;
        }
        let next = self.playout.next();
        if self.hold_reason(next).is_some() {
            // Paused, not lost: the clock restarts when the session can send again.
            self.playout.pacer.pause();
            self.sync_hold();
            return None;
        }
        // Op 5 precedes the first audio of every websocket and of every spurt (C20).
        if !self.playout.announced {
            self.announce(self.flags_for_audio());
            return None;
        }
        if self.announcement_in_flight() {
            return None;
        }
        let written = match next {
            Next::Audio => self.write_queued_frame(buf),
            Next::Silence => self.write_silence(buf),
        };
        match written {
            Ok(len) => {
                self.next_slot(now);
                let destination = self.media.as_ref()?.remote;
                Some(Transmit { destination, len })
            }
            Err(Error::NotReady(NotReady::E2eeNotReady)) => {
                // The DAVE session refused a frame its status said it could take: try again
                // one frame later rather than spin.
                self.playout.pacer.start(now);
                None
            }
            Err(error) => {
                // The frame cannot be sent at all (a DAVE encryption failure): it is dropped and
                // its slot passes.
                self.stats.frames_dropped += 1;
                let reason = format!("an audio frame could not be sent: {error}");
                self.out.push_back(Output::Event(Event::Ignored { reason }));
                self.next_slot(now);
                None
            }
        }
    }

    /// A slot was used at `now`: the schedule moves on (or starts), and pauses when the stream
    /// has nothing more (the spurt's last silence frame went out).
    fn next_slot(&mut self, now: Instant) {
        let pacer = &mut self.playout.pacer;
        if pacer.is_quiet() {
            pacer.start(now);
        } else {
            pacer.advance(now);
        }
        if !self.playout.has_work() {
            self.playout.pacer.pause();
        }
    }

    fn write_queued_frame(&mut self, buf: &mut [u8; MAX_PACKET_LEN]) -> Result<usize, Error> {
        let media = self
            .media
            .as_mut()
            .ok_or(Error::NotReady(NotReady::Reconnecting))?;
        let frame = self.playout.queue.front().unwrap_or(&SILENCE_FRAME);
        let encrypted = self.dave.status() == DaveStatus::Active && frame != SILENCE_FRAME;
        let result = media.write_packet(frame, &mut self.dave, buf);
        // Only a frame that went out, or can never go out, leaves the queue.
        if !matches!(result, Err(Error::NotReady(NotReady::E2eeNotReady))) {
            self.playout.queue.pop();
        }
        let len = result?;
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += len as u64;
        if encrypted {
            self.stats.dave_frames_encrypted += 1;
        }
        self.playout.talking = true;
        self.playout.silence_remaining = 0;
        Ok(len)
    }

    /// One trailing silence frame; the last is followed by op 5 with flags 0.
    fn write_silence(&mut self, buf: &mut [u8; MAX_PACKET_LEN]) -> Result<usize, Error> {
        if self.playout.silence_remaining == 0 {
            self.playout.silence_remaining = SILENCE_FRAME_COUNT;
        }
        let media = self
            .media
            .as_mut()
            .ok_or(Error::NotReady(NotReady::Reconnecting))?;
        let len = media.write_packet(&SILENCE_FRAME, &mut self.dave, buf)?;
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += len as u64;
        self.playout.silence_remaining -= 1;
        if self.playout.silence_remaining == 0 {
            self.playout.talking = false;
            self.announce(SpeakingFlags::NONE);
        }
        Ok(len)
    }

    /// Drops the queued frames and ends the talk spurt: the five silence frames follow, then op 5
    /// with flags 0. Returns how many frames were dropped.
    pub(crate) fn stop_speaking(&mut self) -> usize {
        let dropped = self.playout.queue.clear();
        if self.playout.talking && self.playout.silence_remaining == 0 {
            self.playout.silence_remaining = SILENCE_FRAME_COUNT;
        }
        self.sync_hold();
        dropped
    }

    pub(crate) fn set_speaking(&mut self, flags: SpeakingFlags) {
        self.playout.flags = flags;
        if self.media.is_some() && self.ws_open && self.phase == Phase::Connected {
            self.announce(flags);
        }
    }

    fn announce(&mut self, flags: SpeakingFlags) {
        let Some(ssrc) = self.media.as_ref().map(|m| m.ssrc) else {
            return;
        };
        self.send(&ClientMessage::Speaking(Speaking {
            speaking: flags,
            delay: 0,
            ssrc,
            user_id: None,
        }));
        self.playout.announced = flags != SpeakingFlags::NONE;
        self.playout.announcement_out_at = self.outputs_taken + self.out.len() as u64;
    }

    fn flags_for_audio(&self) -> SpeakingFlags {
        if self.playout.flags == SpeakingFlags::NONE {
            SpeakingFlags::MICROPHONE
        } else {
            self.playout.flags
        }
    }
}
