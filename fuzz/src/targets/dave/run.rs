//! The model of the engine's DAVE state that a DAVE script runs against.

use super::*;

/// What the input fed to the connection, for deciding which DAVE outputs may follow.
enum Fed {
    /// A server message (decoded from what was sent).
    Message(ServerMessage),
    /// A datagram (a decrypt-failure recovery may follow).
    Media,
    /// A fresh reconnect (a new DAVE session and key package follow).
    Reconnect,
    /// Nothing DAVE may react to.
    Other,
}

/// The [`dave_binary`] target's model of the engine's DAVE state, rebuilt from its outputs, and
/// the connection it drives (a [`Driver`], which checks everything else).
pub(super) struct DaveRun {
    driver: Driver,
    /// The protocol version our audio uses (`dave_active_protocol_version()`).
    version: u16,
    /// Transitions answered with op 23 and not executed yet.
    prepared: BTreeSet<u16>,
    /// The latest op 23.
    latest_ready: Option<u16>,
    /// The latest executed transition (a decrypt-failure recovery reports it).
    last_executed: u16,
    /// Commit and welcome of our latest op 28.
    commit: Option<Vec<u8>>,
    welcome: Option<Vec<u8>>,
    /// The recovery announced by the latest `Reconnecting`.
    recovery: Option<Recovery>,
    /// Sequence number of the next media packet from the other member.
    media_sequence: u16,
    pub(super) report: DaveReport,
    /// Print every step's outputs (a debugging aid).
    pub(super) trace: bool,
    /// Steps still to come before Session Description in a [`DaveStep::Rejoin`].
    early: Option<u8>,
    /// Op 24 started a new group while at version 0: audio is held (`Negotiating`) until a
    /// transition executes.
    upgrading: bool,
    /// An op 25 arrived before Session Description: the engine keeps it and applies it when the
    /// DAVE session starts, so a malformed one fails then (C34).
    early_external_sender: bool,
}

impl DaveRun {
    pub(super) fn start() -> Self {
        // Reconnects are a DAVE step here, not a limit to reach: the attempt counter does not
        // reset between back-to-back reconnects (row 3), so the limit is lifted.
        let mut config = dave_config().config();
        config.max_reconnect_attempts = u32::MAX;

        let mut driver = Driver::join(config);
        driver.run(&dave_handshake_steps());
        let connected = driver
            .state
            .session()
            .is_some_and(|s| s.has_media() && s.dave_status() == DaveStatus::Negotiating);
        assert!(
            connected,
            "the DAVE handshake did not reach a negotiating session"
        );
        driver.log = Some(Vec::new());
        Self {
            driver,
            version: 1,
            prepared: BTreeSet::new(),
            latest_ready: None,
            last_executed: 0,
            commit: None,
            welcome: None,
            recovery: None,
            media_sequence: 0,
            report: DaveReport::default(),
            trace: false,
            early: None,
            upgrading: false,
            early_external_sender: false,
        }
    }

    /// Sends a server message (text or binary by its opcode) with the next `seq`.
    fn server(&mut self, message: ServerMessage) {
        if self.driver.ws != Ws::Open {
            return;
        }
        let seq = self.driver.next_seq(true);
        let frame = ServerFrame {
            seq,
            message: message.clone(),
        };
        match frame.encode() {
            Encoded::Text(text) => self.driver.feed(Input::Text(&text)),
            Encoded::Binary(bytes) => self.driver.feed(Input::Binary(&bytes)),
        }
        self.check(&Fed::Message(message));
    }

    pub(super) fn step(&mut self, step: &DaveStep) {
        match step {
            DaveStep::ExternalSender(bytes) => {
                self.server(ServerMessage::DaveMlsExternalSender(bytes.clone()));
            }
            DaveStep::ExternalSenderParts {
                key,
                credential_type,
                identity,
            } => {
                let mut payload = varint_vector(key);
                payload.extend_from_slice(&credential_type.to_be_bytes());
                payload.extend(varint_vector(identity));
                self.server(ServerMessage::DaveMlsExternalSender(payload));
            }
            DaveStep::Proposals {
                operation,
                wrapped,
                data,
            } => {
                let proposals = if *wrapped {
                    varint_vector(data)
                } else {
                    data.clone()
                };
                self.server(ServerMessage::DaveMlsProposals {
                    operation: ProposalsOperation::from_u8(*operation),
                    proposals,
                });
            }
            DaveStep::Commit { transition, commit } => {
                self.server(ServerMessage::DaveMlsAnnounceCommitTransition {
                    transition_id: *transition,
                    commit: commit.clone(),
                });
            }
            DaveStep::Welcome {
                transition,
                welcome,
            } => {
                self.server(ServerMessage::DaveMlsWelcome {
                    transition_id: *transition,
                    welcome: welcome.clone(),
                });
            }
            DaveStep::EchoCommit { transition, tamper } => {
                if let Some(mut commit) = self.commit.clone() {
                    tamper.apply(&mut commit);
                    self.server(ServerMessage::DaveMlsAnnounceCommitTransition {
                        transition_id: *transition,
                        commit,
                    });
                }
            }
            DaveStep::EchoWelcome { transition, tamper } => {
                if let Some(mut welcome) = self.welcome.clone() {
                    tamper.apply(&mut welcome);
                    self.server(ServerMessage::DaveMlsWelcome {
                        transition_id: *transition,
                        welcome,
                    });
                }
            }
            DaveStep::Prepare {
                version,
                transition,
            } => self.server(ServerMessage::DavePrepareTransition(
                DavePrepareTransition {
                    protocol_version: *version,
                    transition_id: *transition,
                },
            )),
            DaveStep::Execute { transition } => {
                self.server(ServerMessage::DaveExecuteTransition(
                    DaveExecuteTransition {
                        transition_id: *transition,
                    },
                ));
            }
            DaveStep::ExecuteLatest => {
                let transition_id = self.latest_ready.unwrap_or(0);
                self.server(ServerMessage::DaveExecuteTransition(
                    DaveExecuteTransition { transition_id },
                ));
            }
            DaveStep::Epoch { version, epoch } => {
                self.server(ServerMessage::DavePrepareEpoch(DavePrepareEpoch {
                    protocol_version: *version,
                    epoch: *epoch,
                }));
            }
            DaveStep::Connect { first, count } => {
                let first = if *first == 0 { OTHER_USER.0 } else { *first };
                self.server(ServerMessage::ClientsConnect(ClientsConnect {
                    user_ids: (0..u64::from(*count % 17))
                        .map(|i| UserId(first.wrapping_add(i)))
                        .collect(),
                }));
            }
            DaveStep::Disconnect { user } => {
                let user_id = if *user == 0 {
                    OTHER_USER
                } else {
                    UserId(*user)
                };
                self.server(ServerMessage::ClientDisconnect(ClientDisconnect {
                    user_id,
                }));
            }
            DaveStep::Media { payload, marker } => {
                let mut frame: Vec<u8> = payload
                    .iter()
                    .copied()
                    .take(MAX_OPUS_FRAME_LEN - 3)
                    .collect();
                if let Some(size) = marker {
                    frame.extend_from_slice(&[*size, 0xFA, 0xFA]);
                }
                self.media(frame);
            }
            DaveStep::Loopback { tamper } => {
                if let Some(mut frame) = self.last_frame() {
                    tamper.apply(&mut frame);
                    self.media(frame);
                }
            }
            DaveStep::Send { len, fill } => self.send(usize::from(*len) % 1400, *fill),
            DaveStep::Resume => self.resume(),
            DaveStep::Reconnect => self.reconnect(None),
            DaveStep::Rejoin { early } => self.reconnect(Some(*early % 8)),
            DaveStep::Raw { op, data } => {
                if self.driver.ws != Ws::Open {
                    return;
                }
                let seq = self.driver.next_seq(true).unwrap_or_default();
                let mut frame = (seq as u16).to_be_bytes().to_vec();
                frame.push(25 + op % 6);
                frame.extend_from_slice(data);
                self.driver.feed(Input::Binary(&frame));
                let fed = match ServerFrame::decode_binary(&frame) {
                    Ok(decoded) => Fed::Message(decoded.message),
                    Err(_) => Fed::Other,
                };
                self.check(&fed);
            }
        }
    }

    /// A datagram from the other member carrying `frame`; the [`Driver`] checks what comes out
    /// (exactly the frame for silence and plain frames while DAVE is off, at most one frame
    /// otherwise).
    fn media(&mut self, frame: Vec<u8>) {
        self.media_sequence = self.media_sequence.wrapping_add(1);
        let packet = AudioPacket {
            ssrc: 0,
            sequence: self.media_sequence,
            extension_words: None,
            padding: None,
            opus: frame,
            corrupt: false,
            wrong_key: false,
        };
        self.driver.audio(&packet);
        self.check(&Fed::Media);
    }

    /// The frame inside our latest audio packet (transport-decrypted).
    fn last_frame(&self) -> Option<Vec<u8>> {
        let packet = self.driver.last_packet.as_ref()?;
        let media = self.driver.media.as_ref()?;
        let header = ReceivedRtp::parse(packet).ok()?;
        let mut copy = packet.clone();
        let cipher = TransportCipher::new(media.mode, &SecretKey::new(media.key));
        let range = cipher.open(&mut copy, header.aad_len).ok()?;
        copy.get(range).map(<[u8]>::to_vec)
    }

    /// `queue_opus`, then the playout wakes at its next slot (at most one frame later) and sends
    /// what is due: nothing while DAVE keys are pending (the frame is held, C48), the oldest
    /// queued frame DAVE-encrypted while DAVE is active, plain while it is off. Frames held for
    /// keys go out first, in order, once the keys are in (the [`Driver`] checks every datagram
    /// against its queue).
    fn send(&mut self, len: usize, fill: u8) {
        if self.driver.state.session().is_none() {
            return;
        }
        let frame = self.driver.opus_frame(len, fill);
        self.driver.queue_opus(&frame);
        self.check(&Fed::Other);
        if let Some(at) = self.driver.state.next_transmit() {
            if at > self.driver.now {
                self.driver.advance_to(at);
                self.check(&Fed::Other);
            }
        }
        let Some(front) = self.driver.playout.queue.front().cloned() else {
            return;
        };
        let hold = self.driver.expected_hold();
        let Some(session) = self.driver.state.session() else {
            return;
        };
        let status = session.dave_status();
        let before = session.stats();
        if status == DaveStatus::Negotiating && self.driver.media.is_some() {
            assert!(
                hold.is_some(),
                "a queued frame not held while DAVE keys are pending (C48)"
            );
        }
        self.driver.play_due();
        let Some(session) = self.driver.state.session() else {
            return;
        };
        let after = session.stats();
        let sent = after.packets_sent - before.packets_sent;
        let dropped = after.frames_dropped - before.frames_dropped;
        let encrypted = after.dave_frames_encrypted - before.dave_frames_encrypted;
        let expected = match (hold, status) {
            (Some(_), _) => (0, 0),
            (None, DaveStatus::Active) if front != SILENCE_FRAME => (1, 1),
            (None, _) => (1, 0),
        };
        assert_eq!(
            (sent + dropped, encrypted + dropped),
            expected,
            "the next slot in DAVE status {status:?} (hold {hold:?}): (packets, DAVE frames) sent"
        );
        self.check(&Fed::Other);
    }

    /// A driver polls its playout after every input: what is due now goes out (frames held for
    /// DAVE keys as soon as the keys are in).
    pub(super) fn play(&mut self) {
        if self.driver.state.session().is_some() {
            self.driver.play_due();
            self.check(&Fed::Other);
        }
    }

    fn resume(&mut self) {
        if self.driver.ws != Ws::Open || self.driver.media.is_none() {
            return;
        }
        self.driver.step(&Step::ServerClose(Some(4015)));
        self.driver.wait_out_backoff();
        self.driver.step(&Step::Opened);
        self.driver.step(&Step::Text {
            message: ServerText::Hello { quarter_ms: 4000 },
            numbered: false,
        });
        self.driver.step(&text_step(ServerText::Resumed));
        self.check(&Fed::Other);
    }

    /// Close 4006: the session is gone; the engine asks the main gateway again (op 4), and the
    /// dispatches and the whole handshake follow, with the last two steps (Session Description,
    /// the other member's op 5) held back for `early` script steps.
    fn reconnect(&mut self, early: Option<u8>) {
        if self.driver.ws != Ws::Open {
            return;
        }
        self.finish_handshake();
        self.driver.step(&Step::ServerClose(Some(4006)));
        self.driver.wait_out_backoff();
        let steps = dave_handshake_steps();
        let (now, later) = steps.split_at(steps.len() - 2);
        self.driver.run(now);
        match early {
            Some(early) if early > 0 => {
                self.check(&Fed::Other);
                self.early = Some(early);
            }
            _ => {
                self.driver.run(later);
                self.check(&Fed::Reconnect);
            }
        }
    }

    /// Counts a step against a held-back handshake and completes it when its time has come.
    pub(super) fn early_step_done(&mut self) {
        if let Some(left) = self.early.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.finish_handshake();
            }
        }
    }

    /// Session Description and op 5 of a handshake held back by [`DaveStep::Rejoin`], if any.
    fn finish_handshake(&mut self) {
        if self.early.take().is_some() {
            let steps = dave_handshake_steps();
            self.driver.run(&steps[steps.len() - 2..]);
            self.check(&Fed::Reconnect);
        }
    }

    /// Checks the outputs logged since the last check against the model, then the state.
    fn check(&mut self, fed: &Fed) {
        let log = self.driver.log.replace(Vec::new()).unwrap_or_default();
        if self.trace {
            println!("     after {}: {log:?}", fed_name(fed));
        }
        let dave_message = match fed {
            Fed::Message(message) => matches!(
                message,
                ServerMessage::DaveMlsExternalSender(_)
                    | ServerMessage::DaveMlsProposals { .. }
                    | ServerMessage::DaveMlsAnnounceCommitTransition { .. }
                    | ServerMessage::DaveMlsWelcome { .. }
                    | ServerMessage::DavePrepareTransition(_)
                    | ServerMessage::DaveExecuteTransition(_)
                    | ServerMessage::DavePrepareEpoch(_)
            ),
            _ => false,
        };
        // The transition a commit or welcome carried.
        let joined = match fed {
            Fed::Message(
                ServerMessage::DaveMlsAnnounceCommitTransition { transition_id, .. }
                | ServerMessage::DaveMlsWelcome { transition_id, .. },
            ) => Some(*transition_id),
            _ => None,
        };
        let prepare = match fed {
            Fed::Message(ServerMessage::DavePrepareTransition(p))
                if supported(p.protocol_version) =>
            {
                Some(p.transition_id)
            }
            _ => None,
        };
        let execute = match fed {
            Fed::Message(ServerMessage::DaveExecuteTransition(e)) => Some(e.transition_id),
            _ => None,
        };
        let was_prepared = execute.is_some_and(|t| self.prepared.contains(&t));
        let new_group = match fed {
            Fed::Message(ServerMessage::DavePrepareEpoch(p)) => {
                p.epoch == 1 && p.protocol_version > 0 && supported(p.protocol_version)
            }
            Fed::Reconnect => true,
            _ => false,
        };
        if new_group && dave_message {
            // An upgrade from version 0 holds audio until it executes.
            self.upgrading = self.version == 0;
        }
        if self.early.is_some()
            && matches!(fed, Fed::Message(ServerMessage::DaveMlsExternalSender(_)))
        {
            self.early_external_sender = true;
        }
        // Session Description applies an op 25 that came before it.
        let applies_early_external_sender =
            matches!(fed, Fed::Reconnect) && std::mem::take(&mut self.early_external_sender);
        let mut recoveries = 0u32;
        let mut invalid = 0u32;
        let mut executed = None;
        let mut connected = false;
        let mut ignored = false;
        let mut ready_events = Vec::new();
        for output in &log {
            match output {
                Output::SendBinary(bytes) => match ClientMessage::decode_binary(bytes) {
                    Ok(ClientMessage::DaveMlsKeyPackage(key_package)) => {
                        assert!(
                            mls::key_package(&key_package),
                            "op 26 is not one KeyPackage: {key_package:02x?}"
                        );
                        assert!(
                            invalid > 0 || (new_group && (connected || dave_message)),
                            "op 26 without a recovery, a new group or a new session"
                        );
                        self.prepared.clear();
                        self.latest_ready = None;
                        self.report.key_packages += 1;
                    }
                    Ok(ClientMessage::DaveMlsCommitWelcome(payload)) => {
                        assert!(
                            matches!(fed, Fed::Message(ServerMessage::DaveMlsProposals { .. })),
                            "op 28 without op 27 proposals"
                        );
                        let (commit, welcome) =
                            mls::split_commit_welcome(&payload).unwrap_or_else(|| {
                                panic!("op 28 is not a commit and a welcome: {payload:02x?}")
                            });
                        self.commit = Some(commit.to_vec());
                        self.welcome = welcome.map(<[u8]>::to_vec);
                        self.report.commits += 1;
                    }
                    other => panic!("unexpected binary frame {other:?}"),
                },
                Output::SendText(text) => match ClientMessage::decode_text(text) {
                    Ok(ClientMessage::DaveTransitionReady(ready)) => {
                        let t = ready.transition_id;
                        assert_ne!(t, 0, "op 23 for transition 0, which executes at once");
                        assert!(
                            prepare == Some(t) || joined == Some(t),
                            "op 23 for transition {t}, which nothing announced"
                        );
                        self.prepared.insert(t);
                        self.latest_ready = Some(t);
                        self.report.transitions_ready += 1;
                    }
                    Ok(ClientMessage::DaveMlsInvalidCommitWelcome(bad)) => {
                        let t = bad.transition_id;
                        assert!(
                            joined == Some(t)
                                || (matches!(fed, Fed::Media) && t == self.last_executed),
                            "op 31 for transition {t} (last executed {}) after {}",
                            self.last_executed,
                            fed_name(fed)
                        );
                        invalid += 1;
                        self.report.invalid_commit_welcomes += 1;
                    }
                    Ok(_) => {}
                    Err(error) => panic!("our own frame does not decode: {error}"),
                },
                Output::OpenWebSocket { .. } => {
                    // A resume keeps the DAVE session; any other new websocket starts afresh.
                    let resumed = self.recovery.take() == Some(Recovery::Resume);
                    if !resumed {
                        self.fresh(0);
                    }
                }
                Output::Event(event) => match event {
                    Event::Connected {
                        dave_protocol_version,
                        ..
                    } => {
                        // Session Description starts the DAVE session: nothing prepared before
                        // it survives (frames that came early may have prepared some).
                        self.version = *dave_protocol_version;
                        self.prepared.clear();
                        self.latest_ready = None;
                        self.upgrading = false;
                        connected = true;
                    }
                    Event::Reconnecting { recovery, .. } => self.recovery = Some(*recovery),
                    Event::Disconnected { .. } => self.fresh(0),
                    Event::Closed { error } => {
                        panic!(
                            "DAVE script step ({}) ended the connection: {error}",
                            fed_name(fed)
                        )
                    }
                    Event::DaveTransition {
                        transition_id,
                        from,
                        to,
                    } => {
                        let t = *transition_id;
                        assert_eq!(*from, self.version, "transition from another version");
                        assert!(supported(*to), "transition to unsupported version {to}");
                        match execute {
                            Some(e) => assert!(
                                e == t && was_prepared,
                                "op 22 {e} executed transition {t} (prepared: {was_prepared})"
                            ),
                            None => assert!(
                                t == 0 && (prepare == Some(0) || joined == Some(0)),
                                "transition {t} took effect without op 22"
                            ),
                        }
                        self.prepared.remove(&t);
                        self.version = *to;
                        self.upgrading = false;
                        self.last_executed = t;
                        executed = Some(t);
                        self.report.transitions += 1;
                    }
                    Event::DaveReady {
                        protocol_version,
                        epoch,
                        ..
                    } => {
                        assert_eq!(
                            *protocol_version, self.version,
                            "DaveReady for another version"
                        );
                        assert!(executed.is_some(), "DaveReady without a transition");
                        ready_events.push(*epoch);
                        self.report.ready += 1;
                    }
                    Event::DaveRecovery { .. } => recoveries += 1,
                    Event::DaveMessageFailed { op, .. } => {
                        assert!(
                            dave_message
                                || (applies_early_external_sender
                                    && *op == Opcode::DaveMlsExternalSender),
                            "DaveMessageFailed for op {op:?} after {}",
                            fed_name(fed)
                        );
                        self.report.message_failures += 1;
                    }
                    Event::Ignored { .. } => ignored = true,
                    _ => {}
                },
                _ => {}
            }
        }
        assert_eq!(recoveries, invalid, "every DaveRecovery sends one op 31");
        if let Some(e) = execute {
            if was_prepared {
                assert_eq!(
                    executed,
                    Some(e),
                    "op 22 for prepared transition {e} did nothing"
                );
            } else {
                assert!(
                    executed.is_none() && ignored,
                    "op 22 for unprepared transition {e} was not ignored"
                );
            }
        }
        self.check_state(&ready_events);
    }

    /// A new voice connection: no DAVE state carries over.
    fn fresh(&mut self, version: u16) {
        self.version = version;
        self.upgrading = false;
        self.prepared.clear();
        self.latest_ready = None;
        self.last_executed = 0;
        self.commit = None;
        self.welcome = None;
    }

    fn check_state(&mut self, ready_epochs: &[u64]) {
        let Some(session) = self.driver.state.session() else {
            return;
        };
        assert!(!session.is_closed(), "DAVE input closed the session");
        assert_eq!(
            session.dave_active_protocol_version(),
            self.version,
            "dave_active_protocol_version() disagrees with the transitions"
        );
        let status = session.dave_status();
        if session.has_media() {
            let expected = match (self.version, self.upgrading) {
                (0, false) => Some(DaveStatus::Off),
                (0, true) => Some(DaveStatus::Negotiating),
                _ => None,
            };
            assert!(
                expected.map_or(status != DaveStatus::Off, |expected| status == expected),
                "dave_status() {status:?} with protocol version {} (upgrading: {})",
                self.version,
                self.upgrading
            );
        }
        let epoch = session.dave_epoch();
        if let Some(&last) = ready_epochs.last() {
            assert_eq!(
                last,
                epoch.unwrap_or_default(),
                "DaveReady with another epoch"
            );
            assert_eq!(status, DaveStatus::Active, "DaveReady while {status:?}");
        }
        if let Some(members) = session.dave_group_members() {
            assert!(
                members.contains(&USER),
                "our own group without us: {members:?}"
            );
        }
        let _ = session.dave_privacy_code();
        let stats = session.stats();
        self.report.max_epoch = self.report.max_epoch.max(epoch.unwrap_or_default());
        self.report.dave_frames_sent = stats.dave_frames_encrypted;
        self.report.dave_decrypt_failures = stats.dave_decrypt_failures;
        self.report.dave_holds = self.driver.playout.dave_holds;
    }

    /// After the script: the receive path still delivers silence, and sending still follows the
    /// DAVE status.
    pub(super) fn finish(&mut self) {
        self.finish_handshake();
        if self.driver.media.is_some() {
            self.media(SILENCE_FRAME.to_vec());
            self.send(20, 0xFC);
        }
    }
}

/// Whether this build speaks DAVE protocol `version` (0 included).
fn supported(version: u16) -> bool {
    (0..=voice_proto::dave::SUPPORTED_PROTOCOL_VERSION).contains(&version)
}

fn fed_name(fed: &Fed) -> String {
    match fed {
        Fed::Message(message) => format!("server op {}", message.op()),
        Fed::Media => "a datagram".to_owned(),
        Fed::Reconnect => "a reconnect".to_owned(),
        Fed::Other => "a non-DAVE step".to_owned(),
    }
}

/// `bytes` behind an RFC 9420 variable-length prefix.
fn varint_vector(bytes: &[u8]) -> Vec<u8> {
    let len = bytes.len();
    let mut out = match len {
        0..=0x3F => vec![len as u8],
        0x40..=0x3FFF => (0x4000 | len as u16).to_be_bytes().to_vec(),
        _ => (0x8000_0000 | (len as u32 & 0x3FFF_FFFF))
            .to_be_bytes()
            .to_vec(),
    };
    out.extend_from_slice(bytes);
    out
}
