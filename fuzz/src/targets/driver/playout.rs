//! The playout model: application calls (speaking, queue, stop), polls of `poll_transmit`, and
//! the checks on every datagram and on what the session reports about its queue and schedule.

use super::*;

/// What the session reports about its playout, read in one borrow.
pub(crate) struct PlayoutView {
    pub(crate) queued: usize,
    pub(crate) capacity: usize,
    pub(crate) idle: bool,
    pub(crate) hold: Option<HoldReason>,
    pub(crate) next_transmit: Option<Instant>,
}

/// What the model knows about the playout: the frames queued and not yet sent, the talk spurt
/// and its trailing silence, the 20 ms schedule, and the hold the events reported.
#[derive(Clone, Debug)]
pub(crate) struct PlayoutModel {
    pub(crate) capacity: usize,
    /// Frames `queue_opus` accepted and that have not gone out (or been dropped), oldest first.
    pub(crate) queue: VecDeque<Vec<u8>>,
    /// Audio went out and the spurt's trailing silence is not over.
    pub(crate) talking: bool,
    /// Trailing silence frames the spurt still owes (five after every audio frame; a stop does
    /// not restart a silence that has begun).
    pub(crate) silence_left: usize,
    /// The fifth silence frame went out: op 5 with flags 0 must be taken before anything else.
    pub(crate) speaking_zero_due: bool,
    /// The earliest time of the next datagram: its slot on the running schedule, or while the
    /// schedule is paused one frame after the last datagram (`None` before the first datagram of
    /// a media session).
    pub(crate) slot: Option<Instant>,
    /// The schedule runs: the next datagram is due at `slot` (late polls get the overdue ones at
    /// once, up to [`MAX_LAG`]). A hold or the end of a spurt pauses it; the datagram that ends
    /// the pause goes when polled (not before `slot`) and starts the schedule anew from there.
    pub(crate) running: bool,
    /// The hold of the latest `PlayoutHeld`, until a `PlayoutResumed`.
    pub(crate) reported: Option<HoldReason>,
    /// `PlayoutHeld` events for DAVE keys.
    pub(crate) dave_holds: u32,
    /// Datagrams `poll_transmit` gave.
    pub(crate) datagrams: u64,
}

impl PlayoutModel {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            queue: VecDeque::new(),
            talking: false,
            silence_left: 0,
            speaking_zero_due: false,
            slot: None,
            running: false,
            reported: None,
            dave_holds: 0,
            datagrams: 0,
        }
    }

    /// Something to send: queued frames, or a spurt whose trailing silence is not out.
    fn has_work(&self) -> bool {
        !self.queue.is_empty() || self.talking
    }

    /// The media session ended: a spurt it cut ends without its trailing silence, and the next
    /// session's stream (a new SSRC and RTP counters) starts a schedule of its own.
    pub(crate) fn end_spurt(&mut self) {
        self.talking = false;
        self.silence_left = 0;
        self.speaking_zero_due = false;
        self.slot = None;
        self.running = false;
    }

    /// The connection ended: nothing more will be sent, nothing is held.
    pub(crate) fn close(&mut self) {
        self.end_spurt();
        self.queue.clear();
        self.reported = None;
    }

    /// A slot was used at `now`: the next is one frame after it on the drift-free schedule, or
    /// one frame from now when the schedule was paused or the poll came more than [`MAX_LAG`]
    /// late (the schedule restarts instead of bursting on).
    fn advance(&mut self, now: Instant) {
        let next = match self.slot {
            Some(slot) if self.running && now <= slot + FRAME_DURATION + MAX_LAG => {
                slot + FRAME_DURATION
            }
            _ => now + FRAME_DURATION,
        };
        self.slot = Some(next);
        self.running = true;
    }
}

impl Driver {
    pub(super) fn speaking(&mut self, flags: SpeakingFlags) {
        let Some(session) = self.state.session() else {
            return;
        };
        session.speaking(flags);
        self.app_flags = flags;
        self.drain();
        if self.ws == Ws::Open && self.live_on_socket && self.media.is_some() && !self.closed {
            let sent = self.outputs.iter().any(|o| match o {
                Output::SendText(t) => matches!(
                    ClientMessage::decode_text(t),
                    Ok(ClientMessage::Speaking(s)) if s.speaking == flags
                ),
                _ => false,
            });
            assert!(sent, "speaking({flags:?}) on a live websocket sent no op 5");
        }
    }

    /// A frame of `len` bytes of `fill` for `queue_opus`: exactly `F8 FF FE` for length 3 and
    /// fill `F8` (a queued frame that looks like silence), and from 8 bytes on its number in its
    /// last four bytes, so that a frame lost, sent twice or out of order shows.
    pub(crate) fn opus_frame(&mut self, len: usize, fill: u8) -> Vec<u8> {
        self.frames_made = self.frames_made.wrapping_add(1);
        let mut frame = vec![fill; len];
        if len == SILENCE_FRAME.len() && fill == SILENCE_FRAME[0] {
            frame.copy_from_slice(&SILENCE_FRAME);
        }
        if len >= 8 {
            frame[len - 4..].copy_from_slice(&self.frames_made.to_be_bytes());
        }
        frame
    }

    /// `queue_opus`, whose result the model predicts exactly: `Closed` once the connection has
    /// ended, else `BadFrameLength` outside 1..=1275 bytes, else `Full` at capacity, else `Ok`.
    pub(crate) fn queue_opus(&mut self, frame: &[u8]) {
        let closed = self.closed;
        let queued = self.playout.queue.len();
        let capacity = self.playout.capacity;
        let Some(session) = self.state.session() else {
            return;
        };
        let result = session.queue_opus(frame);
        let expected = if closed {
            Err(QueueError::Closed)
        } else if !(1..=MAX_OPUS_FRAME_LEN).contains(&frame.len()) {
            Err(QueueError::BadFrameLength { len: frame.len() })
        } else if queued >= capacity {
            Err(QueueError::Full { capacity })
        } else {
            Ok(())
        };
        assert_eq!(
            result,
            expected,
            "queue_opus of {} bytes with {queued} of {capacity} frames queued",
            frame.len()
        );
        if result.is_ok() {
            self.playout.queue.push_back(frame.to_vec());
        }
        self.drain();
    }

    pub(super) fn stop_speaking(&mut self) {
        let queued = self.playout.queue.len();
        let Some(session) = self.state.session() else {
            return;
        };
        let dropped = session.stop_speaking();
        assert_eq!(
            dropped, queued,
            "stop_speaking() dropped another number of frames than were queued"
        );
        // The spurt, if one is on, ends with its trailing silence (five frames from the last
        // audio frame, fewer when it had begun).
        self.playout.queue.clear();
        self.drain();
    }

    /// The clock moves to `at` (never back) and the timer input follows.
    pub(crate) fn advance_to(&mut self, at: Instant) {
        self.now = self.now.max(at);
        self.feed(Input::Timer);
    }

    /// A driver's playout wake-up: poll passes until no op 5 stands before the datagram (the
    /// pass that queues op 5 ends with the drain that takes it).
    pub(crate) fn play_due(&mut self) {
        for _ in 0..3 {
            if !self.poll_pass() {
                break;
            }
        }
    }

    /// `poll_transmit` at the current time until it returns nothing, every datagram checked
    /// against the model, then a drain. Returns whether the polls queued op 5 announcing audio
    /// (the datagram it precedes needs another pass). Afterwards nothing the schedule owes at
    /// this time is left unsent.
    pub(super) fn poll_pass(&mut self) -> bool {
        let now = self.now;
        let was_announced = self.announced;
        let mut handled = 0usize;
        loop {
            let Some(session) = self.state.session() else {
                return false;
            };
            let before = session.stats();
            let mut buf = [0u8; MAX_PACKET_LEN];
            let transmit = session.poll_transmit(now, &mut buf);
            let after = session.stats();
            let dropped = after.frames_dropped - before.frames_dropped;
            match transmit {
                Some(transmit) => {
                    assert_eq!(
                        dropped, 0,
                        "a frame dropped and a datagram sent by one poll"
                    );
                    self.check_datagram(
                        now,
                        transmit.destination,
                        &buf[..transmit.len],
                        before,
                        after,
                    );
                }
                None if dropped > 0 => {
                    // A frame DAVE cannot encrypt at all is dropped, and its slot passes.
                    assert_eq!(dropped, 1, "one poll dropped {dropped} frames");
                    assert_eq!(after.packets_sent, before.packets_sent);
                    self.check_send_allowed(now, true);
                    assert!(
                        self.playout.queue.pop_front().is_some(),
                        "a frame dropped from an empty queue"
                    );
                    self.playout.advance(now);
                }
                None => {
                    assert_eq!(
                        after.packets_sent, before.packets_sent,
                        "a datagram counted but not returned"
                    );
                    break;
                }
            }
            handled += 1;
            assert!(
                handled <= MAX_BURST,
                "poll_transmit at one instant gave more than {MAX_BURST} datagrams"
            );
        }
        self.drain();
        let expected_flags = if self.app_flags.is_empty() {
            SpeakingFlags::MICROPHONE
        } else {
            self.app_flags
        };
        let mut announced = false;
        for output in &self.outputs {
            if let Output::SendText(text) = output {
                if let Ok(ClientMessage::Speaking(speaking)) = ClientMessage::decode_text(text) {
                    if !speaking.speaking.is_empty() {
                        assert_eq!(
                            speaking.speaking, expected_flags,
                            "op 5 before audio with other flags than the application's"
                        );
                        announced = true;
                    }
                }
            }
        }
        if self.closed {
            return false;
        }
        assert!(
            !(announced && was_announced),
            "op 5 announced audio again on a websocket where it had been"
        );
        assert!(
            !self.playout.speaking_zero_due,
            "no op 5 with flags 0 right after the fifth silence frame (C21)"
        );
        if !announced {
            let due = self.expected_next_transmit();
            assert!(
                due.is_none_or(|at| at > now),
                "poll_transmit left a datagram the schedule owes (due {due:?}, polled at {now:?})"
            );
        }
        announced
    }

    /// A datagram (or a dropped frame) may be sent now: not closed, a media session on a live
    /// websocket that op 5 announced audio on, no op 5 with flags 0 owed, its slot has come, and
    /// for queued audio no DAVE keys pending.
    fn check_send_allowed(&mut self, now: Instant, audio: bool) {
        assert!(!self.closed, "a datagram from a closed connection");
        assert!(
            self.media.is_some(),
            "a datagram without a media session (before Session Description)"
        );
        assert!(
            self.ws == Ws::Open && self.live_on_socket,
            "a datagram while the websocket is not live (resuming or reconnecting)"
        );
        assert!(
            self.announced,
            "a datagram before op 5 Speaking was taken on this websocket (C20)"
        );
        assert!(
            !self.playout.speaking_zero_due,
            "a datagram after the fifth silence frame before op 5 with flags 0 (C21)"
        );
        if let Some(slot) = self.playout.slot {
            assert!(
                slot <= now,
                "a datagram before its slot (two for one 20 ms slot): due {slot:?}, polled at \
                 {now:?}"
            );
        }
        if audio {
            let status = self.state.session().map(|s| s.dave_status());
            assert_ne!(
                status,
                Some(DaveStatus::Negotiating),
                "a queued frame went out while DAVE keys are pending (C48)"
            );
        }
    }

    /// One datagram from `poll_transmit`: allowed now, to the server's media address, counted
    /// once, and carrying what the model says comes next: the oldest queued frame (plain, or
    /// DAVE-encrypted while DAVE is active), else a trailing silence frame of the spurt.
    fn check_datagram(
        &mut self,
        now: Instant,
        destination: SocketAddr,
        packet: &[u8],
        before: Stats,
        after: Stats,
    ) {
        let audio = !self.playout.queue.is_empty();
        self.check_send_allowed(now, audio);
        let remote = self.media.as_ref().map(|m| m.remote);
        assert_eq!(
            Some(destination),
            remote,
            "a datagram to another address than Ready's"
        );
        assert_eq!(
            Some(destination),
            self.udp,
            "a datagram to an unbound address"
        );
        assert_eq!(
            after.packets_sent,
            before.packets_sent + 1,
            "a datagram not counted exactly once"
        );
        let encrypted = after.dave_frames_encrypted - before.dave_frames_encrypted;
        let status = self.state.session().map(|s| s.dave_status());
        match self.playout.queue.pop_front() {
            Some(frame) => {
                let dave = status == Some(DaveStatus::Active) && frame != SILENCE_FRAME;
                assert_eq!(
                    encrypted,
                    u64::from(dave),
                    "DAVE frames counted for one frame in status {status:?}"
                );
                let payload = self.check_packet(packet, (!dave).then_some(&frame[..]));
                if dave {
                    // C43: ciphertext (as long as the frame) ‖ tag ‖ nonce ‖ size ‖ FA FA.
                    let supplemental = usize::from(payload[payload.len() - 3]);
                    assert!(
                        (12..=16).contains(&supplemental)
                            && payload.len() == frame.len() + supplemental,
                        "a DAVE frame of {} bytes (supplemental {supplemental}) for a {}-byte \
                         frame",
                        payload.len(),
                        frame.len()
                    );
                }
                self.playout.talking = true;
                self.playout.silence_left = SILENCE_FRAME_COUNT;
                self.last_packet = Some(packet.to_vec());
            }
            None => {
                assert!(
                    self.playout.talking && self.playout.silence_left > 0,
                    "a silence frame outside the trailing silence of a spurt (C21)"
                );
                assert_eq!(encrypted, 0, "a silence frame DAVE-encrypted (C46)");
                self.check_packet(packet, Some(&SILENCE_FRAME));
                self.playout.silence_left -= 1;
                if self.playout.silence_left == 0 {
                    self.playout.talking = false;
                    self.playout.speaking_zero_due = true;
                }
            }
        }
        self.playout.advance(now);
        self.playout.datagrams += 1;
    }

    /// Why the model says queued audio waits now: no media session (reconnecting), a websocket
    /// not live (resuming, or a reconnect's backoff), DAVE keys pending for a queued frame.
    pub(crate) fn expected_hold(&mut self) -> Option<HoldReason> {
        if self.closed || !self.playout.has_work() {
            return None;
        }
        if self.media.is_none() {
            return Some(HoldReason::Reconnecting);
        }
        if !(self.live_on_socket && self.ws == Ws::Open) {
            let recovery = self.pending_recovery.unwrap_or(self.socket_kind);
            return Some(match recovery {
                Recovery::Resume => HoldReason::Resuming,
                Recovery::Reconnect => HoldReason::Reconnecting,
            });
        }
        let negotiating = self
            .state
            .session()
            .is_some_and(|s| s.dave_status() == DaveStatus::Negotiating);
        (negotiating && !self.playout.queue.is_empty()).then_some(HoldReason::DaveKeysPending)
    }

    /// When the model says `poll_transmit` has the next datagram: `None` while idle or held,
    /// else its slot (now, when the schedule is paused and its slot has passed).
    fn expected_next_transmit(&mut self) -> Option<Instant> {
        if self.closed || !self.playout.has_work() || self.expected_hold().is_some() {
            return None;
        }
        let slot = self.playout.slot.unwrap_or(self.now);
        Some(if self.playout.running {
            slot
        } else {
            slot.max(self.now)
        })
    }

    pub(super) fn disconnect(&mut self) {
        let was_closed = self.closed;
        let Some(session) = self.state.session() else {
            return;
        };
        session.disconnect();
        self.drain();
        assert!(self.closed, "disconnect() did not end the connection");
        if !was_closed {
            assert!(
                self.outputs.iter().any(|o| matches!(
                    o,
                    Output::MainGateway(VoiceStateUpdate {
                        channel_id: None,
                        ..
                    })
                )),
                "disconnect() did not leave the channel on the main gateway"
            );
            assert_eq!(self.state.error(), Some(&Error::ClosedByApplication));
        }
    }

    /// One of our audio packets: well-formed, opens under the server's key, counters step by one.
    /// Returns the RTP payload (the frame, or its DAVE frame when `frame` is `None`).
    fn check_packet(&mut self, packet: &[u8], frame: Option<&[u8]>) -> Vec<u8> {
        let media = self
            .media
            .as_mut()
            .expect("a packet implies a media session");
        if let Some(frame) = frame {
            assert_eq!(
                packet.len(),
                RTP_HEADER_LEN + frame.len() + media.mode.overhead()
            );
        }
        assert_eq!(
            &packet[..2],
            &[0x80, 0x78],
            "RTP header must be 80 78 (C18)"
        );
        let header = ReceivedRtp::parse(packet).expect("our packet parses as RTP");
        assert_eq!(header.ssrc, media.ssrc, "audio with the wrong SSRC");
        let mut copy = packet.to_vec();
        let cipher = TransportCipher::new(media.mode, &SecretKey::new(media.key));
        let range = cipher
            .open(&mut copy, header.aad_len)
            .expect("our packet opens with the key the server gave");
        let payload = copy[range].to_vec();
        match frame {
            Some(frame) => assert_eq!(payload, frame, "the packet does not carry the frame"),
            None => assert!(
                payload.ends_with(&[0xFA, 0xFA]),
                "a DAVE frame without its marker"
            ),
        }
        let nonce_bytes: [u8; 4] = packet[packet.len() - 4..].try_into().expect("4 bytes");
        let now = (
            header.sequence,
            header.timestamp,
            u32::from_be_bytes(nonce_bytes),
        );
        if let Some((sequence, timestamp, nonce)) = media.last {
            assert_eq!(
                now,
                (
                    sequence.wrapping_add(1),
                    timestamp.wrapping_add(960),
                    nonce.wrapping_add(1)
                ),
                "sequence, timestamp and nonce must each move forward by one step (C19, C25)"
            );
        }
        media.last = Some(now);
        payload
    }

    /// The playout as the session reports it agrees with the model: the queue (length and
    /// gauge), idle, the hold (and the events that reported it), and when the next datagram is
    /// due. A hold or an idle stream stops the schedule: the next datagram starts a new one.
    pub(super) fn check_playout(&mut self, seen: &PlayoutView) {
        let queued = self.playout.queue.len();
        assert_eq!(
            seen.queued, queued,
            "queued_frames() disagrees with the model"
        );
        assert_eq!(
            self.stats.frames_queued, queued as u64,
            "the frames_queued gauge"
        );
        assert_eq!(seen.capacity, self.playout.capacity, "queue_capacity()");
        assert_eq!(
            seen.idle,
            self.closed || !self.playout.has_work(),
            "playout_idle() with {queued} frames queued, talking {}",
            self.playout.talking
        );
        let hold = self.expected_hold();
        assert_eq!(
            seen.hold, hold,
            "playout_hold() is not what the model expects"
        );
        assert_eq!(
            self.playout.reported, hold,
            "PlayoutHeld/PlayoutResumed did not report the change of playout_hold()"
        );
        if hold.is_some() || !self.playout.has_work() || self.closed {
            // The clock pauses while held and at the end of a spurt.
            self.playout.running = false;
        }
        let now = self.now;
        match (seen.next_transmit, self.expected_next_transmit()) {
            (None, None) => {}
            (Some(at), Some(due)) if due > now => assert_eq!(
                at, due,
                "next_transmit() is off the 20 ms schedule the model keeps"
            ),
            (Some(at), Some(_)) => assert!(
                at <= now,
                "next_transmit() {at:?} in the future for a datagram due now ({now:?})"
            ),
            (seen, expected) => panic!(
                "next_transmit() {seen:?}, the model expects {expected:?} (hold {hold:?}, \
                 {queued} queued, talking {})",
                self.playout.talking
            ),
        }
    }
}
