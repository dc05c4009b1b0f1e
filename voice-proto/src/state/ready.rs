//! The established session: audio, speaking, and the runtime states after the handshake
//! (resuming, reconnecting, waiting for a move).

use std::time::Instant;

use super::sans_io;
use crate::crypto::EncryptionMode;
use crate::dave::DaveStatus;
use crate::engine::{Engine, Phase, Stats};
use crate::id::UserId;
use crate::payload::SpeakingFlags;
use crate::playout::{HoldReason, QueueError, Transmit};
use crate::receive::{BufferStats, ReceiveStats, Received};
use crate::rtp::MAX_PACKET_LEN;

/// A negotiated voice session. Resumes, reconnects and moves happen inside it at run time;
/// [`Session::is_connected`] says whether audio can flow right now.
#[derive(Debug)]
pub struct Session {
    pub(crate) engine: Box<Engine>,
}

impl Session {
    sans_io!();

    /// Sets our speaking flags and, when connected, sends op 5 now. Audio announces
    /// [`SpeakingFlags::MICROPHONE`] by itself if this was never called.
    pub fn speaking(&mut self, flags: SpeakingFlags) {
        self.engine.set_speaking(flags);
    }

    /// Appends one 20 ms Opus frame to the playout queue. It goes out through
    /// [`poll_transmit`](Self::poll_transmit) in its 20 ms slot, waiting (never dropped, never
    /// sent unencrypted into a DAVE call) while the session cannot carry it; see
    /// [`playout`](crate::playout) for every rule. Frames are accepted while reconnecting and
    /// sent in the next session. No allocation once the queue has reached its largest size.
    ///
    /// Fails, queueing nothing, when the queue is full (retry after the next packet went out),
    /// the frame is not 1..=1275 bytes, or the connection has ended.
    pub fn queue_opus(&mut self, frame: &[u8]) -> Result<(), QueueError> {
        self.engine.queue_opus(frame)
    }

    /// Frames waiting in the playout queue.
    pub fn queued_frames(&self) -> usize {
        self.engine.queued_frames()
    }

    /// How many frames the playout queue holds
    /// ([`Config::playout_queue_frames`](crate::Config::playout_queue_frames)).
    pub fn queue_capacity(&self) -> usize {
        self.engine.queue_capacity()
    }

    /// The next audio datagram, if one is due at `now`: an encrypted RTP packet written at the
    /// start of `buf`, to send to [`Transmit::destination`] on the media UDP socket. Call it
    /// until it returns `None`, then drain [`poll_output`](Self::poll_output) (it may have queued
    /// op 5 Speaking, which must reach the websocket first: no datagram comes out until it was
    /// taken) and sleep until [`next_transmit`](Self::next_transmit) (also part of
    /// [`Output::WakeAt`](crate::Output::WakeAt)).
    ///
    /// When DAVE is active the frame is end-to-end encrypted before the transport seal. No heap
    /// allocation per packet.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut [u8; MAX_PACKET_LEN],
    ) -> Option<Transmit> {
        self.engine.poll_transmit(now, buf)
    }

    /// When [`poll_transmit`](Self::poll_transmit) will have the next datagram: `None` while
    /// there is nothing to send, audio is held ([`Event::PlayoutHeld`](crate::Event::PlayoutHeld)),
    /// or an op 5 it queued still waits in [`poll_output`](Self::poll_output). An instant in the
    /// past means now. Drivers that run the playout apart from the websocket (a shared media
    /// worker) read this after every input; single-loop drivers can use `WakeAt` alone.
    pub fn next_transmit(&self) -> Option<Instant> {
        self.engine.next_transmit()
    }

    /// The next deadline of everything but the playout clock (handshake stages, heartbeats,
    /// keepalives): what a driver that runs the playout elsewhere waits for before feeding
    /// [`Input::Timer`](crate::Input::Timer).
    pub fn next_timer(&self) -> Option<Instant> {
        self.engine.next_timer()
    }

    /// Whether every queued frame and the trailing silence are out (or the connection ended):
    /// what `flush` waits for.
    pub fn playout_idle(&self) -> bool {
        self.engine.playout_idle()
    }

    /// Why queued audio waits instead of going out, while it does (`None` when it flows or
    /// nothing is queued).
    pub fn playout_hold(&self) -> Option<HoldReason> {
        self.engine.playout_hold()
    }

    /// Drops the queued frames and ends the talk spurt: the five `F8 FF FE` silence frames follow
    /// (one per 20 ms, through [`poll_transmit`](Self::poll_transmit)), then op 5 with flags 0.
    /// A frame queued afterwards starts the next spurt. Returns how many frames were dropped.
    pub fn stop_speaking(&mut self) -> usize {
        self.engine.stop_speaking()
    }

    /// Whether audio can be sent now: connected (or resuming with the same keys) and, when DAVE
    /// is negotiated, holding a sending key ([`DaveStatus::Negotiating`] is `false` here).
    /// Queued frames wait while this is `false`.
    pub fn is_connected(&self) -> bool {
        self.engine.media.is_some()
            && !self.engine.is_closed()
            && self.engine.dave.status() != DaveStatus::Negotiating
    }

    /// Whether a media session (transport key, SSRC, UDP) exists, whether or not DAVE keys are
    /// in place yet.
    pub fn has_media(&self) -> bool {
        self.engine.media.is_some() && !self.engine.is_closed()
    }

    /// Where end-to-end encryption of our audio stands.
    pub fn dave_status(&self) -> DaveStatus {
        self.engine.dave.status()
    }

    /// The DAVE protocol version our audio uses now (0 = none). Unlike
    /// [`dave_protocol_version`](Self::dave_protocol_version) it follows executed transitions
    /// (downgrades and upgrades).
    pub fn dave_active_protocol_version(&self) -> u16 {
        self.engine.dave.protocol_version()
    }

    /// The MLS epoch of the DAVE group, once we are in one.
    pub fn dave_epoch(&self) -> Option<u64> {
        self.engine.dave.epoch()
    }

    /// The voice privacy code of the current DAVE epoch, the value users compare in Discord's
    /// UI: 30 ASCII digits without separators (the UI shows them in groups of 5); `None`
    /// without an established group.
    pub fn dave_privacy_code(&self) -> Option<&str> {
        self.engine.dave.privacy_code()
    }

    /// The pairwise verification code with another group member, if both are in the group.
    pub fn dave_verification_code(&self, user: UserId) -> Option<String> {
        self.engine.dave.verification_code(user)
    }

    /// The members of the DAVE group (ourselves included), if there is a group.
    pub fn dave_group_members(&self) -> Option<Vec<UserId>> {
        self.engine.dave.user_ids()
    }

    /// Whether the session has ended for good.
    pub fn is_closed(&self) -> bool {
        self.engine.phase == Phase::Closed
    }

    /// Our SSRC in the current media session.
    pub fn ssrc(&self) -> Option<u32> {
        self.engine.media.as_ref().map(|m| m.ssrc)
    }

    /// The voice server's media address (where audio datagrams go).
    pub fn remote(&self) -> Option<std::net::SocketAddr> {
        self.engine.media.as_ref().map(|m| m.remote)
    }

    /// The negotiated transport mode.
    pub fn mode(&self) -> Option<EncryptionMode> {
        self.engine.media.as_ref().map(|m| m.cipher.mode())
    }

    /// DAVE version from the last Session Description (0 = none).
    pub fn dave_protocol_version(&self) -> u16 {
        self.engine.dave_protocol_version
    }

    /// The user behind an SSRC, from op 5 (dropped on op 13).
    pub fn user_for_ssrc(&self, ssrc: u32) -> Option<UserId> {
        self.engine.ssrc_user(ssrc)
    }

    /// Counters for monitoring.
    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// The next item of received audio, `None` when none waits (or receive is off:
    /// [`Config::receive`](crate::Config::receive)). Items come per sender in playout order
    /// (talk-spurt start, frames and loss markers, spurt end; see [`receive`](crate::receive)),
    /// the senders in turn. Part of the drain rule when receive is on: take them after every
    /// input (each sender's queue is bounded; frames beyond it are dropped and reported as a
    /// loss). Never among the [`Output`](crate::Output)s, so a flood of audio cannot hold up a
    /// control event.
    pub fn poll_received(&mut self) -> Option<Received> {
        self.engine.poll_received()
    }

    /// Counters of the receive side (buffers, drops, senders followed); `None` when receive is
    /// off.
    pub fn receive_stats(&self) -> Option<ReceiveStats> {
        self.engine.receive_stats()
    }

    /// One sender's buffer counters and its current depth in frames (adapted to late packets);
    /// `None` for an SSRC not followed.
    pub fn receive_stream_stats(&self, ssrc: u32) -> Option<(BufferStats, usize)> {
        self.engine.receive_stream_stats(ssrc)
    }
}
