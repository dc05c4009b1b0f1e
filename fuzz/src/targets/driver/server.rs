//! What the scripted voice server sends: gateway messages, closes, discovery answers, datagrams.

use super::*;

impl Driver {
    pub(super) fn server_text(&mut self, message: &ServerText, seq: Option<u64>) -> String {
        let message = match message {
            ServerText::Hello { quarter_ms } => ServerMessage::Hello(Hello {
                heartbeat_interval: f64::from(*quarter_ms) / 4.0,
                v: Some(8),
            }),
            ServerText::Ready {
                ssrc,
                modes,
                bad_ip,
                port,
            } => {
                let names = [
                    "aead_aes256_gcm_rtpsize",
                    "aead_xchacha20_poly1305_rtpsize",
                    "xsalsa20_poly1305",
                    "bogus_mode",
                ];
                let modes: Vec<String> = names
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| modes & (1 << i) != 0)
                    .map(|(_, name)| (*name).to_owned())
                    .collect();
                let ssrc = if *ssrc == 0 { SSRC } else { *ssrc };
                let port = if *port == 0 {
                    server_udp().port()
                } else {
                    *port
                };
                ServerMessage::Ready(Ready {
                    ssrc,
                    ip: if *bad_ip {
                        "not-an-ip".to_owned()
                    } else {
                        server_udp().ip().to_string()
                    },
                    port,
                    modes,
                })
            }
            ServerText::SessionDescription {
                mode,
                key_byte,
                dave,
            } => {
                let selected = self
                    .selected_mode
                    .unwrap_or(EncryptionMode::AeadAes256GcmRtpSize);
                let name = match mode % 3 {
                    0 => selected.name(),
                    1 => match selected {
                        EncryptionMode::AeadAes256GcmRtpSize => {
                            EncryptionMode::AeadXChaCha20Poly1305RtpSize.name()
                        }
                        _ => EncryptionMode::AeadAes256GcmRtpSize.name(),
                    },
                    _ => "bogus_mode",
                };
                let key = [*key_byte; 32];
                ServerMessage::SessionDescription(SessionDescription {
                    mode: name.to_owned(),
                    secret_key: SecretKey::new(key),
                    dave_protocol_version: *dave,
                })
            }
            ServerText::Resumed => ServerMessage::Resumed,
            ServerText::HeartbeatAck { t } => ServerMessage::HeartbeatAck(HeartbeatAck {
                t: t.or(self.last_nonce).unwrap_or(0),
            }),
            ServerText::HeartbeatRequest => ServerMessage::HeartbeatRequest,
            ServerText::Speaking { user, ssrc, flags } => ServerMessage::Speaking(Speaking {
                speaking: SpeakingFlags::from_bits(*flags),
                delay: 0,
                ssrc: if *ssrc == 0 { OTHER_SSRC } else { *ssrc },
                user_id: (*user != 0).then_some(UserId(*user)),
            }),
            ServerText::ClientsConnect { first, count } => {
                ServerMessage::ClientsConnect(ClientsConnect {
                    user_ids: (0..u64::from(*count % 17))
                        .map(|i| UserId(first.wrapping_add(i)))
                        .collect(),
                })
            }
            ServerText::ClientDisconnect { user } => {
                ServerMessage::ClientDisconnect(ClientDisconnect {
                    user_id: if *user == 0 {
                        OTHER_USER
                    } else {
                        UserId(*user)
                    },
                })
            }
            ServerText::DavePrepareTransition {
                version,
                transition,
            } => ServerMessage::DavePrepareTransition(DavePrepareTransition {
                protocol_version: *version,
                transition_id: *transition,
            }),
            ServerText::DaveExecuteTransition { transition } => {
                ServerMessage::DaveExecuteTransition(DaveExecuteTransition {
                    transition_id: *transition,
                })
            }
            ServerText::DavePrepareEpoch { version, epoch } => {
                ServerMessage::DavePrepareEpoch(DavePrepareEpoch {
                    protocol_version: *version,
                    epoch: *epoch,
                })
            }
            ServerText::Ignored { which } => {
                let ops = [10u8, 12, 14, 15, 16, 17, 18, 19, 20];
                let op = ops[usize::from(*which) % ops.len()];
                let text = match seq {
                    Some(seq) => format!(r#"{{"op":{op},"d":{{}},"seq":{seq}}}"#),
                    None => format!(r#"{{"op":{op},"d":{{}}}}"#),
                };
                return text;
            }
            ServerText::Unknown { op } => ServerMessage::Unknown {
                op: (*op).max(33),
                raw: r#"{"x":[1,2,null]}"#.to_owned(),
            },
        };
        text_of(ServerFrame { seq, message })
    }

    pub(super) fn server_close(&mut self, code: Option<u16>) {
        if self.ws == Ws::None {
            return;
        }
        let was_closed = self.closed;
        let established = self.established;
        let had_media = self.media.is_some();
        let rejoined = self.rejoined_after_4004;
        self.ws = Ws::None;
        self.feed(Input::WebSocketClosed { code });
        if was_closed {
            return;
        }
        let disposition = close::disposition(code, false);
        let handled: Vec<_> = self
            .outputs
            .iter()
            .filter_map(|o| match o {
                Output::Event(Event::CloseHandled { code, disposition }) => {
                    Some((*code, *disposition))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            handled,
            [(code, disposition)],
            "a server close must be run through the close-code table exactly once"
        );
        let events: Vec<&Event> = self
            .outputs
            .iter()
            .filter_map(|o| match o {
                Output::Event(event) => Some(event),
                _ => None,
            })
            .collect();
        // Out of attempts (or, before the first session, out of time for another).
        let gave_up = events.iter().any(|e| {
            matches!(
                e,
                Event::Closed {
                    error: Error::TooManyReconnects { .. } | Error::JoinFailed { .. }
                }
            )
        });
        let too_many = gave_up;
        let fatal = |reason| {
            events.iter().any(|e| {
                **e == Event::Closed {
                    error: Error::Fatal {
                        code: code.unwrap_or_default(),
                        reason,
                    },
                }
            })
        };
        let ok = match disposition {
            CloseDisposition::Fatal(reason) => fatal(reason),
            // 4004: one rejoin through op 4 (we always have a main gateway here), then fatal.
            CloseDisposition::RejoinOnce(reason) if rejoined => fatal(reason),
            CloseDisposition::RejoinOnce(_) => {
                let rejoin = events.iter().any(|e| {
                    matches!(e, Event::Reconnecting { recovery: Recovery::Reconnect, code: c, .. } if *c == code)
                });
                if rejoin {
                    self.rejoined_after_4004 = true;
                }
                gave_up || rejoin
            }
            // Before the first session a close is retried like after it (row 1).
            CloseDisposition::AwaitMove => events.iter().any(|e| {
                matches!(e, Event::Disconnected { reason: voice_proto::DisconnectReason::Closed { code: c } } if Some(*c) == code)
            }),
            CloseDisposition::Resume | CloseDisposition::Finished if had_media => {
                too_many
                    || events.iter().any(|e| {
                        matches!(e, Event::Reconnecting { recovery: Recovery::Resume, code: c, .. } if *c == code)
                    })
            }
            _ => {
                too_many
                    || events.iter().any(|e| {
                        matches!(e, Event::Reconnecting { recovery: Recovery::Reconnect, code: c, .. } if *c == code)
                    })
            }
        };
        assert!(
            ok,
            "close {code:?} ({disposition:?}, established {established}, media {had_media}) \
             led to {events:?}"
        );
        assert!(
            !events.iter().any(|e| matches!(
                e,
                Event::Closed {
                    error: Error::HandshakeClosed { .. }
                }
            )),
            "a close during the handshake ended the join instead of a retry (row 1)"
        );
    }

    pub(super) fn discovery_answer(&mut self, kind: u8) {
        let Some(remote) = self.udp else { return };
        let ssrc = self.ready_ssrc.unwrap_or(SSRC);
        let (from, data) = match kind % 5 {
            0 => (
                remote,
                discovery_response(ssrc, client_public().ip(), client_public().port()),
            ),
            1 => (
                remote,
                discovery_response(
                    ssrc,
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7)),
                    9,
                ),
            ),
            2 => {
                let mut data =
                    discovery_response(ssrc, client_public().ip(), client_public().port());
                data[8..14].copy_from_slice(b"999.1.");
                (remote, data)
            }
            3 => (remote, discovery_request(ssrc)),
            _ => (
                stranger(),
                discovery_response(ssrc, client_public().ip(), client_public().port()),
            ),
        };
        self.datagram(from, &data);
    }

    /// Feeds a datagram and checks the accounting: every datagram a session sees is counted once
    /// (received, failed to decrypt, waiting for its sender, or ignored) unless it was the
    /// discovery answer.
    pub(crate) fn datagram(&mut self, from: SocketAddr, data: &[u8]) {
        let before = self.session_stats();
        if let Ok(found) = parse_discovery_response(data) {
            if Some(from) == self.udp {
                self.answered = Some((found.ip, found.port));
            }
        }
        self.feed(Input::Datagram { from, data });
        let selected = self
            .outputs
            .iter()
            .any(|o| matches!(o, Output::SendText(t) if t.starts_with(r#"{"op":1,"#)));
        if let (Some(before), Some(after)) = (before, self.session_stats()) {
            if !self.closed && !selected {
                assert_eq!(
                    datagrams_accounted(after),
                    datagrams_accounted(before) + 1,
                    "a datagram was not accounted for once"
                );
            }
        }
    }
}
