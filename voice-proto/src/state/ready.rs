//! The established session: audio, speaking, and the runtime states after the handshake
//! (resuming, reconnecting, waiting for a move).

use std::time::Instant;

use super::sans_io;
use crate::crypto::EncryptionMode;
use crate::dave::DaveStatus;
use crate::engine::{Engine, Phase, Stats};
use crate::error::Error;
use crate::id::UserId;
use crate::payload::SpeakingFlags;

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

    /// Writes one encrypted RTP packet carrying `frame` (one 20 ms Opus frame) into `buf` and
    /// returns the datagram to send to [`Session::remote`].
    ///
    /// No heap allocation in steady state. The first frame of a talk spurt (and the first after a
    /// resume or reconnect) queues op 5 Speaking: drain [`poll_output`](Self::poll_output) and send
    /// that frame before the datagram. Works during a resume (same keys, same UDP); fails with
    /// [`NotReady::Reconnecting`](crate::NotReady::Reconnecting) while a fresh session is negotiated.
    ///
    /// When DAVE is active the frame is end-to-end encrypted before the transport seal (the
    /// datagram grows by up to [`dave::MAX_FRAME_OVERHEAD`](crate::dave::MAX_FRAME_OVERHEAD)
    /// bytes; [`MAX_PACKET_LEN`](crate::rtp::MAX_PACKET_LEN) has room for it). While DAVE is
    /// negotiated but not keyed yet, non-silence frames fail with
    /// [`NotReady::E2eeNotReady`](crate::NotReady::E2eeNotReady) and nothing changes: keep the
    /// frame and offer it again once [`is_connected`](Self::is_connected) is true (after
    /// [`Event::DaveReady`](crate::Event::DaveReady)). Plain audio never goes out in a DAVE call
    /// (PROTOCOL.md C48).
    pub fn send_opus<'b>(
        &mut self,
        now: Instant,
        frame: &[u8],
        buf: &'b mut [u8],
    ) -> Result<&'b [u8], Error> {
        self.engine.send_opus(now, frame, buf)
    }

    /// Ends the talk spurt: the next five [`send_silence`](Self::send_silence) calls (one per
    /// 20 ms) produce the `F8 FF FE` silence frames, the last one followed by op 5 with flags 0.
    pub fn stop_speaking(&mut self) {
        self.engine.stop_speaking();
    }

    /// Whether trailing silence frames are still due.
    pub fn silence_pending(&self) -> bool {
        self.engine.silence_pending()
    }

    /// The next trailing silence packet, if any are still due (see [`stop_speaking`](Self::stop_speaking)).
    pub fn send_silence<'b>(&mut self, buf: &'b mut [u8]) -> Result<Option<&'b [u8]>, Error> {
        self.engine.send_silence(buf)
    }

    /// One tick of the 20 ms audio clock (see [`Pacer`](crate::pacing::Pacer)): pass the next
    /// Opus frame if the application had one in time, `None` on underrun. Returns the datagram to
    /// send, or `None` when the stream has gone quiet (after the five trailing silence frames) —
    /// then stop the pacer until frames come again. As with [`send_opus`](Self::send_opus), drain
    /// [`poll_output`](Self::poll_output) before sending the datagram.
    ///
    /// A frame is never consumed by a failed tick: on any `Err` (notably
    /// [`NotReady::E2eeNotReady`](crate::NotReady::E2eeNotReady) while DAVE keys are pending, or
    /// [`NotReady::Reconnecting`](crate::NotReady::Reconnecting)) pause the pacer, keep the frame
    /// queued and resume when [`is_connected`](Self::is_connected) turns true again. An underrun
    /// tick (`None`) only produces silence frames, which DAVE never holds back.
    pub fn tick<'b>(
        &mut self,
        now: Instant,
        frame: Option<&[u8]>,
        buf: &'b mut [u8],
    ) -> Result<Option<&'b [u8]>, Error> {
        self.engine.tick(now, frame, buf)
    }

    /// Leaves: op 4 with a null channel when a main gateway is attached, then close 1000.
    pub fn disconnect(&mut self) {
        self.engine.disconnect();
    }

    /// Whether audio can be sent now: connected (or resuming with the same keys) and, when DAVE
    /// is negotiated, holding a sending key ([`DaveStatus::Negotiating`] is `false` here).
    /// Adapters pause their audio clock while this is `false`; queued frames wait.
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
}
