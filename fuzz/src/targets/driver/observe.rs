//! The drain rule and the checks on every output, client message and event, and on the state
//! between steps.

use super::*;

impl Driver {
    /// Drains per the drain rule and checks every output.
    pub(super) fn drain(&mut self) {
        let was_closed = self.closed;
        let mut outputs = Vec::new();
        loop {
            let output = self.state.poll_output();
            let last = matches!(output, Output::WakeAt(_) | Output::Idle);
            outputs.push(output);
            if last {
                break;
            }
            assert!(
                outputs.len() <= MAX_DRAIN,
                "poll_output never reached WakeAt/Idle"
            );
        }
        if let Some(log) = self.log.as_mut() {
            log.extend(outputs.iter().cloned());
        }
        for output in &outputs {
            if was_closed {
                assert_eq!(*output, Output::Idle, "output from a closed connection");
            }
            self.observe(output);
        }
        self.outputs = outputs;
        // Receive is on: its items are part of the drain rule.
        let mut received = Vec::new();
        if let Some(session) = self.state.session() {
            while let Some(item) = session.poll_received() {
                received.push(item);
                assert!(received.len() <= MAX_DRAIN, "poll_received never ends");
            }
        }
        for item in received {
            self.observe_received(item);
        }
        assert_eq!(
            self.leaves,
            u32::from(self.closed),
            "the op 4 leave must come with the end of the connection, once (row 2)"
        );
        self.check_state();
    }

    fn observe(&mut self, output: &Output) {
        match output {
            Output::MainGateway(update) => {
                assert_eq!(update.guild_id, GUILD);
                if update.channel_id.is_some() {
                    assert_eq!(update.channel_id, Some(CHANNEL));
                    assert_eq!(self.leaves, 0, "op 4 joins again after the leave");
                    self.check_retry_waited();
                } else {
                    // Row 2: every end of a connection joined through the main gateway leaves,
                    // exactly once.
                    self.leaves += 1;
                    assert_eq!(self.leaves, 1, "a second op 4 leave");
                }
                self.end_media();
            }
            Output::OpenWebSocket { url } => {
                // Row 8: the endpoint comes from VOICE_SERVER_UPDATE (no override): wss:// only.
                assert!(
                    url.starts_with("wss://") && url.contains("v=8"),
                    "bad voice gateway URL {url:?}"
                );
                self.check_retry_waited();
                self.ws = Ws::Opening;
                self.socket_kind = self.pending_recovery.take().unwrap_or(Recovery::Reconnect);
                if self.socket_kind == Recovery::Reconnect {
                    self.end_media();
                    self.last_seq = None;
                }
                self.handshakes_on_socket = 0;
                self.live_on_socket = false;
                self.announced = false;
                self.last_nonce = None;
            }
            Output::SendText(text) => {
                assert_eq!(
                    self.ws,
                    Ws::Open,
                    "a text frame for a websocket that is not open"
                );
                let message = ClientMessage::decode_text(text)
                    .unwrap_or_else(|e| panic!("our own frame does not decode: {e}"));
                self.observe_client_message(message);
            }
            Output::SendBinary(bytes) => {
                assert_eq!(
                    self.ws,
                    Ws::Open,
                    "a binary frame for a websocket that is not open"
                );
                let message = ClientMessage::decode_binary(bytes)
                    .unwrap_or_else(|e| panic!("our own binary frame does not decode: {e}"));
                assert!(
                    matches!(
                        message,
                        ClientMessage::DaveMlsKeyPackage(_)
                            | ClientMessage::DaveMlsCommitWelcome(_)
                    ),
                    "unexpected binary client message {message:?}"
                );
                assert!(
                    self.dave_offered(),
                    "a DAVE MLS message without DAVE offered"
                );
            }
            Output::CloseWebSocket { code } => {
                assert!(
                    matches!(code, 1000 | 4000),
                    "we close with 1000 or 4000, not {code}"
                );
                self.ws = Ws::None;
                self.last_nonce = None;
            }
            Output::BindUdp { remote } => {
                let (ready_remote, ssrc, modes) = self
                    .pending_ready
                    .take()
                    .expect("UDP bound without a Ready");
                assert_eq!(
                    *remote, ready_remote,
                    "UDP bound to another address than Ready's"
                );
                self.udp = Some(*remote);
                self.ready_ssrc = Some(ssrc);
                self.offered_modes = modes;
            }
            Output::Transmit { to, data } => {
                assert_eq!(
                    Some(*to),
                    self.udp,
                    "datagram to an address that is not bound"
                );
                match data.len() {
                    74 => assert_eq!(
                        parse_discovery_request(data).ok(),
                        self.ready_ssrc,
                        "discovery request for another SSRC (C13)"
                    ),
                    8 => assert!(self.media.is_some(), "keepalive without a media session"),
                    n => panic!("unexpected {n}-byte datagram"),
                }
            }
            Output::Event(event) => self.observe_event(event),
            Output::WakeAt(at) => {
                assert!(!self.closed, "WakeAt from a closed connection");
                // The control deadlines never lie in the past; the playout's slot may (a driver
                // that has not polled yet): WakeAt is the earlier of the two.
                let timer = self.state.next_timer();
                let transmit = self.state.next_transmit();
                assert!(
                    timer.is_none_or(|at| at >= self.now),
                    "a control deadline in the past: a due timer was not run"
                );
                assert_eq!(
                    Some(*at),
                    [timer, transmit].into_iter().flatten().min(),
                    "WakeAt is not the earlier of next_timer() and next_transmit()"
                );
                self.last_wake = Some(*at);
            }
            Output::Idle => {
                assert!(
                    self.closed,
                    "Idle (no timer at all) while the connection is alive"
                );
                self.last_wake = None;
            }
        }
    }

    fn observe_client_message(&mut self, message: ClientMessage) {
        match message {
            ClientMessage::Identify(Identify {
                server_id,
                user_id,
                session_id,
                token,
                max_dave_protocol_version,
            }) => {
                assert_eq!(
                    self.socket_kind,
                    Recovery::Reconnect,
                    "Identify on a resume socket"
                );
                assert_eq!(
                    self.handshakes_on_socket, 0,
                    "a second Identify/Resume (C5)"
                );
                self.handshakes_on_socket += 1;
                assert_eq!((server_id, user_id), (GUILD, USER));
                assert_eq!(
                    session_id, self.session_id,
                    "Identify with a stale session id"
                );
                assert_eq!(token.expose(), self.token, "Identify with a stale token");
                assert_eq!(
                    max_dave_protocol_version,
                    self.config.offered_dave_protocol_version()
                );
            }
            ClientMessage::Resume(Resume {
                server_id,
                session_id,
                token,
                seq_ack,
            }) => {
                assert_eq!(
                    self.socket_kind,
                    Recovery::Resume,
                    "Resume on a fresh socket"
                );
                assert_eq!(
                    self.handshakes_on_socket, 0,
                    "a second Identify/Resume (C5)"
                );
                self.handshakes_on_socket += 1;
                assert_eq!(server_id, GUILD);
                assert_eq!(
                    session_id, self.session_id,
                    "Resume with a stale session id"
                );
                assert_eq!(token.expose(), self.token, "Resume with a stale token");
                assert_eq!(
                    seq_ack,
                    self.seq_ack(),
                    "Resume seq_ack is not the last seq (C9)"
                );
            }
            ClientMessage::Heartbeat(Heartbeat { t, seq_ack }) => {
                assert!(t <= MAX_NONCE, "heartbeat nonce above 2^53-1 (C7)");
                assert_eq!(
                    seq_ack,
                    self.seq_ack(),
                    "heartbeat seq_ack is not the last seq (C8)"
                );
                self.last_nonce = Some(t);
            }
            ClientMessage::SelectProtocol(SelectProtocol { protocol, data }) => {
                assert_eq!(protocol, "udp");
                let (ip, port) = self
                    .answered
                    .expect("Select Protocol before a discovery answer");
                assert_eq!(
                    (data.address.as_str(), data.port),
                    (ip.to_string().as_str(), port)
                );
                assert!(
                    self.offered_modes.contains(&data.mode),
                    "selected a mode Ready did not offer (C16)"
                );
                assert!(
                    EncryptionMode::from_name(&data.mode)
                        .is_some_and(|mode| { self.config.modes.modes().contains(&mode) }),
                    "selected a mode we do not prefer"
                );
                self.selected_mode = EncryptionMode::from_name(&data.mode);
            }
            ClientMessage::Speaking(Speaking {
                speaking,
                delay,
                ssrc,
                user_id,
            }) => {
                let media = self.media.as_ref().expect("op 5 without a media session");
                assert_eq!(ssrc, media.ssrc, "op 5 with the wrong SSRC");
                assert_eq!((delay, user_id), (0, None));
                self.announced = !speaking.is_empty();
                if speaking.is_empty() {
                    self.playout.speaking_zero_due = false;
                }
            }
            ClientMessage::DaveTransitionReady(_)
            | ClientMessage::DaveMlsInvalidCommitWelcome(_) => {
                assert!(self.dave_offered(), "a DAVE message without DAVE offered");
            }
            other => panic!("unexpected client message {other:?}"),
        }
    }

    fn dave_offered(&self) -> bool {
        self.config.offered_dave_protocol_version() > 0
    }

    fn seq_ack(&self) -> i64 {
        self.last_seq
            .and_then(|s| i64::try_from(s).ok())
            .unwrap_or(-1)
    }

    fn observe_event(&mut self, event: &Event) {
        match event {
            Event::Connected {
                ssrc,
                mode,
                dave_protocol_version,
            } => {
                assert_eq!(Some(*ssrc), self.ready_ssrc, "connected with another SSRC");
                assert_eq!(Some(*mode), self.selected_mode, "connected in another mode");
                assert!(*dave_protocol_version <= self.config.offered_dave_protocol_version());
                let (name, key) = self
                    .pending_key
                    .take()
                    .expect("connected without Session Description");
                assert_eq!(name, mode.name(), "connected despite a mode mismatch");
                self.media = Some(MediaModel {
                    ssrc: *ssrc,
                    mode: *mode,
                    key,
                    remote: self.udp.expect("connected without UDP"),
                    last: None,
                });
                self.established = true;
                self.live_on_socket = true;
                self.announced = false;
                self.stable_at = Some(self.now + self.config.reconnect_reset_after);
                self.rejoined_after_4004 = false;
            }
            Event::Resumed => {
                self.stable_at = Some(self.now + self.config.reconnect_reset_after);
                assert_eq!(
                    self.socket_kind,
                    Recovery::Resume,
                    "Resumed on a fresh socket"
                );
                assert!(self.media.is_some(), "resumed without the media session");
                self.live_on_socket = true;
                self.announced = false;
            }
            Event::Reconnecting {
                recovery, attempt, ..
            } => {
                assert!(
                    (1..=self.config.max_reconnect_attempts).contains(attempt),
                    "reconnect attempt {attempt} out of range"
                );
                // Row 3: the counter starts again only after a session stayed up
                // `reconnect_reset_after`; otherwise every failure counts.
                if self.stable_at.is_some_and(|at| self.now >= at) {
                    self.attempts = 0;
                }
                self.stable_at = None;
                self.attempts += 1;
                assert_eq!(
                    *attempt, self.attempts,
                    "the attempt counter reset before a session stayed up {:?}, or skipped one",
                    self.config.reconnect_reset_after
                );
                // No retry without a backoff: the attempt starts no sooner than the lower bound
                // of its jittered delay, which is never zero.
                let not_before = *self.config.backoff_range(*attempt).start();
                assert!(!not_before.is_zero(), "a retry without backoff");
                self.retry_not_before = Some(self.now + not_before);
                if *recovery == Recovery::Reconnect {
                    // The session is gone: its media (and who sent on which SSRC) with it.
                    self.end_media();
                }
                if *recovery == Recovery::Resume {
                    assert!(
                        self.media.is_some(),
                        "resume without a media session to resume"
                    );
                }
                self.pending_recovery = Some(*recovery);
                self.ws = Ws::None;
                self.live_on_socket = false;
                self.last_nonce = None;
            }
            Event::Disconnected { .. } => {
                self.end_media();
                self.stable_at = None;
                self.retry_not_before = None;
                self.ws = Ws::None;
                self.pending_recovery = None;
                self.live_on_socket = false;
                self.last_nonce = None;
            }
            Event::Closed { error } => {
                match error {
                    Error::TooManyReconnects { attempts, .. } => {
                        assert!(self.established, "TooManyReconnects before any session");
                        assert_eq!(
                            (*attempts, self.attempts),
                            (
                                self.config.max_reconnect_attempts,
                                self.config.max_reconnect_attempts
                            ),
                            "gave up before the attempt limit"
                        );
                    }
                    Error::JoinFailed { elapsed, .. } => {
                        assert!(!self.established, "JoinFailed after a session");
                        assert_eq!(*elapsed, self.now - self.start, "JoinFailed's elapsed time");
                    }
                    Error::HandshakeClosed { .. } => {
                        panic!("a close during the handshake ended the connection (row 1)")
                    }
                    _ => {}
                }
                self.stable_at = None;
                self.retry_not_before = None;
                self.closed = true;
                self.end_media();
                self.playout.close();
                self.ws = Ws::None;
                self.live_on_socket = false;
            }
            Event::CloseHandled { code, disposition } => {
                assert_eq!(
                    *disposition,
                    close::disposition(*code, false),
                    "close table bypassed"
                );
            }
            Event::UnknownOpcode { raw, .. } => {
                assert!(
                    raw.len() <= limits::UNKNOWN_OPCODE_PAYLOAD + 32,
                    "an unknown opcode's payload of {} bytes in an event (row 6)",
                    raw.len()
                );
            }
            Event::PlayoutHeld { reason } => {
                assert_ne!(
                    self.playout.reported,
                    Some(*reason),
                    "PlayoutHeld again without a new reason"
                );
                self.playout.reported = Some(*reason);
                if *reason == HoldReason::DaveKeysPending {
                    self.playout.dave_holds += 1;
                }
            }
            Event::PlayoutResumed { reason } => {
                assert_eq!(
                    self.playout.reported,
                    Some(*reason),
                    "PlayoutResumed for another hold than the one reported"
                );
                self.playout.reported = None;
            }
            _ => {}
        }
    }

    /// The media session ends (fresh reconnect, move, end): a spurt it cut is over, its trailing
    /// silence never sent; queued frames wait for the next session.
    fn end_media(&mut self) {
        self.media = None;
        // Row 4: who sent on which SSRC belongs to the media session.
        self.ssrc_users.clear();
        self.playout.end_spurt();
    }

    /// An attempt announced by `Reconnecting` starts (a websocket opens, or op 4 rejoins): not
    /// before its backoff.
    fn check_retry_waited(&mut self) {
        if let Some(not_before) = self.retry_not_before.take() {
            assert!(
                self.now >= not_before,
                "a retry {:?} before its backoff ended (row 3)",
                not_before - self.now
            );
        }
    }

    /// The application goes away at the end of a script (say a dropped `join_channel` future):
    /// in whatever state, `disconnect()` ends the connection, and the connection has left the
    /// channel exactly once (a no-op when it had ended already).
    pub fn finish(&mut self) {
        let was_closed = self.closed;
        self.state.disconnect();
        self.drain();
        assert!(self.closed, "disconnect() did not end the connection");
        assert_eq!(self.leaves, 1, "the connection did not leave exactly once");
        if !was_closed {
            assert_eq!(self.state.error(), Some(&Error::ClosedByApplication));
        }
    }

    pub(super) fn check_state(&mut self) {
        assert_eq!(
            self.state.error().is_some(),
            self.closed,
            "error() disagrees with the Closed event"
        );
        // Row 1: a join is retried only until its deadline (timers run before every input).
        assert!(
            self.closed || self.established || self.now < self.start + self.config.join_timeout,
            "a join still going {:?} after it started (deadline {:?})",
            self.now - self.start,
            self.config.join_timeout
        );
        let media = self.media.clone();
        let closed = self.closed;
        match self.state.session() {
            Some(session) => {
                assert_eq!(session.is_closed(), closed);
                assert_eq!(
                    session.has_media(),
                    media.is_some(),
                    "has_media() disagrees with the events (media {media:?})"
                );
                let keyed = session.dave_status() != DaveStatus::Negotiating;
                assert_eq!(session.is_connected(), media.is_some() && keyed);
                if let Some(media) = &media {
                    assert_eq!(session.ssrc(), Some(media.ssrc));
                    assert_eq!(session.mode(), Some(media.mode));
                    assert_eq!(session.remote(), Some(media.remote));
                }
                let stats = session.stats();
                let old = self.stats;
                assert!(
                    stats.packets_sent >= old.packets_sent
                        && stats.packets_received >= old.packets_received
                        && stats.packets_skipped >= old.packets_skipped
                        && stats.decrypt_failures >= old.decrypt_failures
                        && stats.datagrams_ignored >= old.datagrams_ignored
                        && stats.frames_ignored >= old.frames_ignored
                        && stats.resumes >= old.resumes
                        && stats.reconnects >= old.reconnects
                        && stats.dave_frames_encrypted >= old.dave_frames_encrypted
                        && stats.dave_frames_decrypted >= old.dave_frames_decrypted
                        && stats.dave_decrypt_failures >= old.dave_decrypt_failures
                        && stats.frames_dropped >= old.frames_dropped,
                    "a counter went back: {old:?} -> {stats:?}"
                );
                // Row 6: nothing from the network grows without bound; row 4: the SSRC map is
                // the media session's (the model's map is emptied with it).
                assert!(stats.ssrcs_mapped <= limits::SSRC_USERS as u64);
                assert!(stats.dave_recognised_users <= limits::DAVE_RECOGNISED_USERS as u64);
                assert!(stats.dave_frames_waiting <= limits::HELD_FRAMES as u64);
                if let Some(receive) = session.receive_stats() {
                    assert!(receive.streams <= limits::RECEIVE_STREAMS);
                    assert!(
                        receive.buffers.frames >= self.frames_received,
                        "more frames received than the buffers delivered"
                    );
                }
                assert_eq!(
                    stats.ssrcs_mapped,
                    self.ssrc_users.len() as u64,
                    "the SSRC map outlived its media session, or lost a mapping"
                );
                // A frame waiting for its sender leaves the gauge only into another total.
                assert!(
                    datagrams_accounted(stats) >= datagrams_accounted(old),
                    "a datagram was forgotten: {old:?} -> {stats:?}"
                );
                self.stats = stats;
                let playout = PlayoutView {
                    queued: session.queued_frames(),
                    capacity: session.queue_capacity(),
                    idle: session.playout_idle(),
                    hold: session.playout_hold(),
                    next_transmit: session.next_transmit(),
                };
                self.check_playout(&playout);
            }
            None => assert!(media.is_none(), "a media session before the Session state"),
        }
    }
}
