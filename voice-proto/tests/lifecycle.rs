//! Issue 14, the connection lifecycle, row by row, with the fake clock: a join survives a bad
//! start (row 1), every end leaves the channel once (row 2), no reconnect loop (row 3), the SSRC
//! map belongs to its media session (row 4), bounded memory from the network (row 6), only
//! `wss://` from Discord (row 8), rejoins reuse the session id (row 9). Row 5 is
//! `secrets_in_debug.rs`, row 7 `resume.rs` and `playout_pauses.rs`, row 10 `dave_negotiation.rs`
//! and `dave_lifecycle.rs`, the 4004 half of row 9 `close_codes_in_session.rs`.

mod support;

use std::time::Duration;

use support::*;
use voice_proto::gateway::VoiceStateDispatch;
#[cfg(feature = "dave")]
use voice_proto::payload::ClientsConnect;
use voice_proto::payload::{ClientMessage, ServerMessage, Speaking, SpeakingFlags};
use voice_proto::secret::SecretKey;
use voice_proto::{limits, Config, Error, Event, Input, Output, Recovery, Stage};

fn leaves(outputs: &[Output]) -> usize {
    outputs
        .iter()
        .filter(|o| matches!(o, Output::MainGateway(op4) if op4.channel_id.is_none()))
        .count()
}

fn joins(outputs: &[Output]) -> usize {
    outputs
        .iter()
        .filter(|o| matches!(o, Output::MainGateway(op4) if op4.channel_id.is_some()))
        .count()
}

fn opens(outputs: &[Output]) -> usize {
    outputs
        .iter()
        .filter(|o| matches!(o, Output::OpenWebSocket { .. }))
        .count()
}

fn closed_with(h: &Harness) -> Option<Error> {
    events(&h.log).into_iter().find_map(|e| match e {
        Event::Closed { error } => Some(error),
        _ => None,
    })
}

/// Both dispatches in, the websocket open, Identify out: the moment Discord likes to close a
/// fresh connection.
fn identified() -> Harness {
    let mut h = Harness::join(test_config());
    h.feed(Input::VoiceStateUpdate(state_dispatch()));
    h.feed(Input::VoiceServerUpdate(server_dispatch(TOKEN)));
    let outs = h.feed(Input::WebSocketOpened);
    assert!(matches!(
        &client_messages(&outs)[..],
        [ClientMessage::Identify(_)]
    ));
    h
}

fn connected() -> Harness {
    let mut h = Harness::join(test_config());
    h.connect();
    h
}

// ---- row 1: a join survives a bad start -----------------------------------------------------

#[test]
fn a_close_right_after_identify_is_retried_and_the_join_completes() {
    for code in [Some(4006), None, Some(1006), Some(4009)] {
        let mut h = identified();
        let closed_at = h.now;
        let outs = h.feed(Input::WebSocketClosed { code });
        assert!(h.state.error().is_none(), "{code:?}: {outs:?}");
        assert!(events(&outs).contains(&Event::Reconnecting {
            recovery: Recovery::Reconnect,
            code,
            attempt: 1,
        }));
        assert_eq!((opens(&outs), joins(&outs)), (0, 0), "not at once");
        // After the backoff: op 4 again; Discord answers with VOICE_SERVER_UPDATE only (the
        // channel is unchanged), and the session id we hold is used (row 9).
        let outs = h.wait_out_backoff();
        assert!(test_config()
            .backoff_range(1)
            .contains(&(h.now - closed_at)));
        assert_eq!(joins(&outs), 1, "{code:?}: {outs:?}");
        let outs = h.feed(Input::VoiceServerUpdate(server_dispatch("second-token")));
        assert_eq!(opens(&outs), 1);
        let outs = h.handshake_on_new_socket();
        assert!(matches!(
            &client_messages(&outs)[0],
            ClientMessage::Identify(i) if i.session_id == SESSION_ID && i.token.expose() == "second-token"
        ));
        assert!(events(&outs)
            .iter()
            .any(|e| matches!(e, Event::Connected { .. })));
        assert!(h.session().is_connected());
        assert_eq!(leaves(&h.log), 0, "still in the channel");
    }
}

#[test]
fn a_hello_ready_or_session_description_timeout_before_the_first_session_is_retried() {
    let config = test_config();
    // No Hello, no Ready.
    let mut h = identified();
    let outs = h.run_until(h.now + config.handshake_timeout);
    assert!(outs.contains(&Output::CloseWebSocket { code: 4000 }));
    assert!(events(&outs)
        .iter()
        .any(|e| matches!(e, Event::Reconnecting { attempt: 1, .. })));
    assert!(h.state.error().is_none());

    // Ready, discovery, Select Protocol, but no Session Description.
    let mut h = identified();
    h.connect_until_selected();
    let ack_every = |h: &mut Harness| {
        // Keep the heartbeats acknowledged while waiting.
        let outs = h.advance(Duration::from_millis(HEARTBEAT_MS));
        for m in client_messages(&outs) {
            if let ClientMessage::Heartbeat(beat) = m {
                let ack = h.server.ack(beat.t);
                h.text(&ack);
            }
        }
    };
    while h.now - h.start < config.session_description_timeout {
        ack_every(&mut h);
    }
    assert!(events(&h.log).iter().any(|e| matches!(
        e,
        Event::Reconnecting {
            recovery: Recovery::Reconnect,
            code: None,
            attempt: 1
        }
    )));
    assert!(h.state.error().is_none());
    h.wait_out_backoff();
    h.feed(Input::VoiceServerUpdate(server_dispatch(TOKEN)));
    h.handshake_on_new_socket();
    assert!(h.session().is_connected(), "the second attempt made it");
}

#[test]
fn a_join_that_keeps_failing_ends_at_its_deadline_naming_what_failed_last() {
    let config = test_config();
    let mut h = identified();
    // Every websocket is dropped after Identify, every rejoin answered.
    loop {
        h.feed(Input::WebSocketClosed { code: Some(4006) });
        if h.state.error().is_some() {
            break;
        }
        let outs = h.wait_out_backoff();
        if h.state.error().is_some() {
            break;
        }
        assert_eq!(joins(&outs), 1);
        h.feed(Input::VoiceServerUpdate(server_dispatch(TOKEN)));
        h.feed(Input::WebSocketOpened);
        assert!(h.now - h.start < config.join_timeout, "past the deadline");
    }
    let Some(Error::JoinFailed {
        attempts,
        elapsed,
        last,
    }) = h.state.error().cloned()
    else {
        panic!("{:?}", h.state.error())
    };
    assert_eq!(*last, Error::HandshakeClosed { code: Some(4006) });
    assert!(elapsed <= config.join_timeout);
    assert!(attempts >= 2, "{attempts}");
    let message = Error::JoinFailed {
        attempts,
        elapsed,
        last,
    }
    .to_string();
    assert!(
        message.contains("could not join the voice channel")
            && message.contains(
                "the voice gateway closed the connection during the handshake (close code 4006)"
            ),
        "{message}"
    );
    assert_eq!(
        leaves(&h.log),
        1,
        "the bot does not stay in the channel (row 2)"
    );
}

#[test]
fn the_join_deadline_ends_an_attempt_under_way_with_its_stage() {
    let mut config = test_config();
    config.join_timeout = Duration::from_secs(5);

    let mut h = Harness::join(config);
    h.feed(Input::VoiceStateUpdate(state_dispatch()));
    h.feed(Input::VoiceServerUpdate(server_dispatch(TOKEN)));
    h.feed(Input::WebSocketOpened);
    // Hello and Ready never come; the handshake timeout (10 s) is beyond the join's (5 s).
    let outs = h.run_until(h.start + Duration::from_secs(6));
    assert!(outs.contains(&Output::CloseWebSocket { code: 1000 }));
    assert!(
        matches!(
            h.state.error(),
            Some(Error::JoinFailed { attempts: 1, last, elapsed })
                if matches!(**last, Error::Timeout { stage: Stage::Ready, .. })
                    && *elapsed == Duration::from_secs(5)
        ),
        "{:?}",
        h.state.error()
    );
    assert_eq!(leaves(&h.log), 1);
}

#[test]
fn the_first_wait_for_the_dispatches_is_not_retried() {
    // Discord answers no op 4 for a full channel or a missing permission: asking again does
    // not help; the join ends after `server_update_timeout`, and leaves.
    let config = test_config();
    let mut h = Harness::join(config.clone());
    h.run_until(h.start + config.server_update_timeout);
    assert!(matches!(
        h.state.error(),
        Some(Error::Timeout {
            stage: Stage::ServerUpdate,
            ..
        })
    ));
    assert_eq!((joins(&h.log), leaves(&h.log)), (1, 1));
}

#[test]
fn connect_without_a_main_gateway_retries_with_the_same_credentials() {
    let mut h = Harness::connect_without_gateway(test_config());
    h.feed(Input::WebSocketOpened);
    h.feed(Input::WebSocketClosed { code: None });
    let outs = h.wait_out_backoff();
    assert_eq!((opens(&outs), joins(&outs)), (1, 0));
    let outs = h.handshake_on_new_socket();
    assert!(matches!(
        &client_messages(&outs)[0],
        ClientMessage::Identify(i) if i.session_id == SESSION_ID && i.token.expose() == TOKEN
    ));
    assert!(h.session().is_connected());
}

// ---- row 2: every end leaves, once ----------------------------------------------------------

#[test]
fn every_end_of_a_joined_connection_leaves_the_channel_exactly_once() {
    type End = fn(&mut Harness);
    let ends: [(&str, End); 6] = [
        ("fatal close", |h| {
            h.feed(Input::WebSocketClosed { code: Some(4017) });
        }),
        ("too many reconnects", |h| {
            for _ in 0..=test_config().max_reconnect_attempts {
                h.feed(Input::WebSocketClosed { code: Some(4015) });
                if h.state.error().is_some() {
                    return;
                }
                h.wait_out_backoff();
                h.feed(Input::WebSocketOpened);
            }
        }),
        ("no new server after 4014", |h| {
            h.feed(Input::WebSocketClosed { code: Some(4014) });
            let until = h.now + test_config().move_timeout;
            h.run_until(until);
        }),
        ("a protocol violation", |h| {
            // A Session Description for a mode we did not select, in a new handshake.
            h.feed(Input::VoiceServerUpdate(server_dispatch("moved")));
            h.feed(Input::WebSocketOpened);
            h.connect_until_selected();
            h.server.mode = voice_proto::crypto::EncryptionMode::AeadXChaCha20Poly1305RtpSize;
            let description = h.server.session_description();
            h.text(&description);
        }),
        ("the application leaves", |h| {
            h.session().disconnect();
            h.collect();
        }),
        ("the application leaves during a backoff", |h| {
            h.feed(Input::WebSocketClosed { code: Some(4006) });
            h.state.disconnect();
            h.collect();
        }),
    ];
    for (what, end) in ends {
        let mut h = connected();
        end(&mut h);
        assert!(h.state.error().is_some(), "{what}: not ended");
        assert_eq!(leaves(&h.log), 1, "{what}: {:?}", h.log);
        // The leave comes before the Closed event, and nothing comes after.
        let leave_at = h
            .log
            .iter()
            .position(|o| matches!(o, Output::MainGateway(op4) if op4.channel_id.is_none()));
        let closed_at = h
            .log
            .iter()
            .position(|o| matches!(o, Output::Event(Event::Closed { .. })));
        assert!(leave_at < closed_at, "{what}");
        // `disconnect()` after the end is a no-op that returns.
        h.state.disconnect();
        assert_eq!(h.collect(), [Output::Idle], "{what}");
        assert_eq!(leaves(&h.log), 1, "{what}");
    }
}

#[test]
fn leaving_during_the_handshake_leaves_the_channel() {
    // A dropped `join_channel` future: the adapter's driver calls `AnyState::disconnect` in
    // whatever state the join is in.
    for progress in 0..4 {
        let mut h = Harness::join(test_config());
        if progress >= 1 {
            h.feed(Input::VoiceStateUpdate(state_dispatch()));
            h.feed(Input::VoiceServerUpdate(server_dispatch(TOKEN)));
        }
        if progress >= 2 {
            h.feed(Input::WebSocketOpened);
        }
        if progress >= 3 {
            let hello = h.server.hello();
            h.text(&hello);
            let ready = h.server.ready();
            h.text(&ready);
        }
        h.state.disconnect();
        let outs = h.collect();
        assert_eq!(leaves(&outs), 1, "{progress}: {outs:?}");
        assert_eq!(
            outs.contains(&Output::CloseWebSocket { code: 1000 }),
            progress >= 1,
            "{progress}: {outs:?}"
        );
        assert_eq!(h.state.error(), Some(&Error::ClosedByApplication));
        assert!(h.state.is_closed());
    }
}

// ---- row 3: no reconnect loop ---------------------------------------------------------------

#[test]
fn every_retry_waits_a_jittered_backoff_the_first_too() {
    let delays = |jitter_seed: u64| -> Vec<Duration> {
        let mut config = test_config();
        config.jitter_seed = jitter_seed;
        config.max_reconnect_attempts = 4;

        let mut h = Harness::join(config.clone());
        h.connect();
        let mut delays = Vec::new();
        for attempt in 1..=4 {
            let closed_at = h.now;
            h.feed(Input::WebSocketClosed { code: Some(4015) });
            h.wait_out_backoff();
            let delay = h.now - closed_at;
            assert!(config.backoff_range(attempt).contains(&delay), "{delay:?}");
            delays.push(delay);
            h.feed(Input::WebSocketOpened);
        }
        delays
    };
    let first = delays(1);
    assert!(
        first[0] >= Duration::from_millis(250),
        "the first retry waits"
    );
    assert_eq!(delays(1), first, "the same seed, the same delays");
    assert_ne!(delays(2), first, "another seed, other delays");
}

#[test]
fn the_attempt_counter_resets_only_after_a_session_stayed_up() {
    let config = test_config();
    let mut h = connected();
    let attempt_of = |outs: &[Output]| {
        events(outs).iter().find_map(|e| match e {
            Event::Reconnecting { attempt, .. } => Some(*attempt),
            _ => None,
        })
    };
    let resume = |h: &mut Harness| {
        h.wait_out_backoff();
        h.feed(Input::WebSocketOpened);
        let hello = h.server.hello();
        h.text(&hello);
        let resumed = h.server.frame(ServerMessage::Resumed);
        h.text(&resumed);
    };
    let outs = h.feed(Input::WebSocketClosed { code: Some(4015) });
    assert_eq!(attempt_of(&outs), Some(1));
    resume(&mut h);
    // Up for less than `reconnect_reset_after`: the next failure is the second in a row.
    h.advance(Duration::from_millis(HEARTBEAT_MS / 2));
    let outs = h.feed(Input::WebSocketClosed { code: Some(4015) });
    assert_eq!(attempt_of(&outs), Some(2));
    resume(&mut h);
    // Up for a minute, heartbeats acknowledged: the slate is clean.
    let up_since = h.now;
    while h.now - up_since < config.reconnect_reset_after {
        let outs = h.advance(Duration::from_millis(HEARTBEAT_MS));
        for m in client_messages(&outs) {
            if let ClientMessage::Heartbeat(beat) = m {
                let ack = h.server.ack(beat.t);
                h.text(&ack);
            }
        }
    }
    let outs = h.feed(Input::WebSocketClosed { code: Some(4015) });
    assert_eq!(attempt_of(&outs), Some(1));
}

#[test]
fn a_server_that_closes_every_session_meets_the_limit() {
    let config = test_config();
    let mut h = connected();
    for attempt in 1..=config.max_reconnect_attempts {
        let outs = h.feed(Input::WebSocketClosed { code: Some(4006) });
        assert!(
            events(&outs)
                .iter()
                .any(|e| matches!(e, Event::Reconnecting { attempt: a, .. } if *a == attempt)),
            "{outs:?}"
        );
        h.wait_out_backoff();
        // Every rejoin succeeds, and is closed again at once.
        h.feed(Input::VoiceServerUpdate(server_dispatch(TOKEN)));
        h.handshake_on_new_socket();
        assert!(h.session().is_connected());
    }
    let outs = h.feed(Input::WebSocketClosed { code: Some(4006) });
    assert_eq!(
        h.state.error(),
        Some(&Error::TooManyReconnects {
            attempts: config.max_reconnect_attempts,
            last_code: Some(4006)
        })
    );
    assert_eq!(leaves(&outs), 1);
    assert_eq!(
        h.session().stats().reconnects,
        config.max_reconnect_attempts
    );
}

// ---- row 4: the SSRC map belongs to its media session ---------------------------------------

fn speaking(h: &mut Harness, ssrc: u32, user: voice_proto::id::UserId) {
    let mut op5 = Speaking::new(SpeakingFlags::MICROPHONE, ssrc);
    op5.user_id = Some(user);
    let text = h.server.frame(ServerMessage::Speaking(op5));
    h.text(&text);
}

/// A packet from another member on `ssrc`, sealed under the server's current key.
fn audio_from(h: &mut Harness, ssrc: u32) -> Vec<Output> {
    let mut packet = vec![0x80, 0x78, 0, 1, 0, 0, 3, 0xc0];
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend_from_slice(&[0xFC, 1, 2]);
    packet.resize(packet.len() + h.server.mode.overhead(), 0);
    let cipher =
        voice_proto::crypto::TransportCipher::new(h.server.mode, &SecretKey::new(h.server.key));
    let len = cipher.seal(&mut packet, 12, 3, 7).expect("seals");
    packet.truncate(len);
    h.feed(Input::Datagram {
        from: server_udp(),
        data: &packet,
    })
}

/// The sender the first frame received since the last look was attributed to.
fn audio_user(h: &mut Harness) -> Option<Option<voice_proto::id::UserId>> {
    audio_events(h).first().map(|heard| heard.user_id)
}

#[test]
fn a_move_forgets_who_sent_on_which_ssrc() {
    let mut h = connected();
    speaking(&mut h, 77, OTHER_USER);
    assert_eq!(
        {
            audio_from(&mut h, 77);
            audio_user(&mut h)
        },
        Some(Some(OTHER_USER))
    );
    assert_eq!(h.session().stats().ssrcs_mapped, 1);
    // Moved to another voice server, which hands SSRC 77 to someone we have no op 5 for yet.
    h.feed(Input::VoiceServerUpdate(server_dispatch("moved")));
    h.server.key = [3; 32];
    h.handshake_on_new_socket();
    assert_eq!(h.session().user_for_ssrc(77), None);
    assert_eq!(h.session().stats().ssrcs_mapped, 0);
    assert_eq!(
        {
            audio_from(&mut h, 77);
            audio_user(&mut h)
        },
        Some(None),
        "not attributed to the previous server's user"
    );
}

#[test]
fn a_fresh_reconnect_forgets_who_sent_on_which_ssrc_and_a_resume_keeps_it() {
    let mut h = connected();
    speaking(&mut h, 77, OTHER_USER);
    h.feed(Input::WebSocketClosed { code: Some(4015) });
    h.wait_out_backoff();
    h.feed(Input::WebSocketOpened);
    let resumed = h.server.frame(ServerMessage::Resumed);
    h.text(&resumed);
    assert_eq!(
        h.session().user_for_ssrc(77),
        Some(OTHER_USER),
        "same session"
    );
    h.feed(Input::WebSocketClosed { code: Some(4006) });
    assert_eq!(h.session().user_for_ssrc(77), None, "the session is gone");
}

#[test]
fn the_ssrc_map_is_bounded() {
    let mut h = connected();
    let extra = 10u32;
    for ssrc in 0..limits::SSRC_USERS as u32 + extra {
        speaking(
            &mut h,
            1000 + ssrc,
            voice_proto::id::UserId(u64::from(ssrc) + 1),
        );
    }
    let stats = h.session().stats();
    assert_eq!(stats.ssrcs_mapped, limits::SSRC_USERS as u64);
    assert_eq!(
        h.session().user_for_ssrc(1000),
        None,
        "the oldest went first"
    );
    let newest = 1000 + limits::SSRC_USERS as u32 + extra - 1;
    assert!(h.session().user_for_ssrc(newest).is_some());
}

// ---- row 6: bounded memory from the network -------------------------------------------------

/// The payload of the unknown opcode reported among `outs`, checked against the cap.
fn unknown_payload(outs: &[Output]) -> String {
    let raw = events(outs)
        .into_iter()
        .find_map(|e| match e {
            Event::UnknownOpcode { raw, .. } => Some(raw),
            _ => None,
        })
        .expect("reported");
    assert!(
        raw.len() < limits::UNKNOWN_OPCODE_PAYLOAD + 32,
        "{}",
        raw.len()
    );
    raw
}

#[test]
fn an_unknown_opcode_payload_is_capped_in_its_event() {
    let mut h = connected();
    let long = "x".repeat(10 * limits::UNKNOWN_OPCODE_PAYLOAD);
    let text = format!(r#"{{"op":99,"d":{{"blob":"{long}"}}}}"#);
    let raw = unknown_payload(&h.text(&text));
    assert!(
        raw.starts_with(r#"{"blob":"xxx"#) && raw.ends_with("bytes, cut)"),
        "{raw}"
    );
    // A short one is shown whole; multi-byte characters are never split.
    let outs = h.text(r#"{"op":99,"d":{"a":1}}"#);
    assert!(events(&outs).contains(&Event::UnknownOpcode {
        op: 99,
        raw: r#"{"a":1}"#.to_owned()
    }));
    let wide = "é".repeat(limits::UNKNOWN_OPCODE_PAYLOAD);
    let raw = unknown_payload(&h.text(&format!(r#"{{"op":98,"d":"{wide}"}}"#)));
    assert!(raw.starts_with("\"éé"), "{raw}");
    // Binary: hex of at most half as many bytes.
    let mut frame = vec![0, 50, 99];
    frame.extend(std::iter::repeat_n(
        0xAB,
        4 * limits::UNKNOWN_OPCODE_PAYLOAD,
    ));
    let raw = unknown_payload(&h.feed(Input::Binary(&frame)));
    assert!(
        raw.starts_with("abab") && raw.ends_with("(4096 bytes, cut)"),
        "{raw}"
    );
}

#[cfg(feature = "dave")]
#[test]
fn dave_recognises_a_bounded_number_of_users() {
    let mut h = Harness::join(test_config());
    h.server.dave_protocol_version = 1;
    h.connect();
    let many: Vec<_> = (0..limits::DAVE_RECOGNISED_USERS as u64 + 50)
        .map(|n| voice_proto::id::UserId(1_000_000 + n))
        .collect();
    let text = h
        .server
        .frame(ServerMessage::ClientsConnect(ClientsConnect {
            user_ids: many,
        }));
    let outs = h.text(&text);
    assert_eq!(
        h.session().stats().dave_recognised_users,
        limits::DAVE_RECOGNISED_USERS as u64
    );
    assert!(events(&outs)
        .iter()
        .any(|e| matches!(e, Event::Ignored { reason } if reason.contains("51 users beyond"))));
}

// ---- row 8: only wss:// from Discord --------------------------------------------------------

#[test]
fn a_ws_endpoint_from_voice_server_update_is_refused() {
    let mut h = Harness::join(test_config());
    h.feed(Input::VoiceStateUpdate(state_dispatch()));
    let mut insecure = server_dispatch(TOKEN);
    insecure.endpoint = Some(format!("ws://{ENDPOINT}"));
    let outs = h.feed(Input::VoiceServerUpdate(insecure));
    assert_eq!(opens(&outs), 0, "the token never goes out in clear");
    assert!(events(&outs).iter().any(|e| matches!(
        e,
        Event::Ignored { reason } if reason.contains("a ws:// endpoint would send the token in clear")
    )));
    // The same endpoint without a scheme (or with wss://) is used over TLS.
    let outs = h.feed(Input::VoiceServerUpdate(server_dispatch(TOKEN)));
    assert!(outs.contains(&Output::OpenWebSocket {
        url: format!("wss://{ENDPOINT}/?v=8")
    }));
}

#[test]
fn an_explicit_override_may_say_ws() {
    let mut config = test_config();
    config.gateway_url_override = Some("ws://127.0.0.1:9000".to_owned());

    let mut h = Harness::join(config);
    h.feed(Input::VoiceStateUpdate(state_dispatch()));
    let mut insecure = server_dispatch(TOKEN);
    insecure.endpoint = Some("ws://elsewhere:1".to_owned());
    let outs = h.feed(Input::VoiceServerUpdate(insecure));
    assert!(outs.contains(&Output::OpenWebSocket {
        url: "ws://127.0.0.1:9000/?v=8".to_owned()
    }));
}

// ---- row 9: a rejoin reuses the session id it holds -----------------------------------------

#[test]
fn a_rejoin_takes_a_new_session_id_that_arrives_late() {
    let mut h = connected();
    h.feed(Input::WebSocketClosed { code: Some(4006) });
    h.wait_out_backoff();
    // VOICE_SERVER_UPDATE first: the held session id goes out in Identify ...
    h.feed(Input::VoiceServerUpdate(server_dispatch("t2")));
    let outs = h.feed(Input::WebSocketOpened);
    assert!(matches!(
        &client_messages(&outs)[..],
        [ClientMessage::Identify(i)] if i.session_id == SESSION_ID
    ));
    // ... then a VOICE_STATE_UPDATE with a new one: identify again with it, on a new websocket.
    let outs = h.feed(Input::VoiceStateUpdate(VoiceStateDispatch {
        session_id: "new-session".to_owned(),
        ..state_dispatch()
    }));
    assert!(outs.contains(&Output::CloseWebSocket { code: 1000 }));
    assert_eq!(opens(&outs), 1);
    let outs = h.handshake_on_new_socket();
    assert!(matches!(
        &client_messages(&outs)[0],
        ClientMessage::Identify(i) if i.session_id == "new-session" && i.token.expose() == "t2"
    ));
    assert!(h.session().is_connected());
    // The same session id again changes nothing.
    let outs = h.feed(Input::VoiceStateUpdate(VoiceStateDispatch {
        session_id: "new-session".to_owned(),
        ..state_dispatch()
    }));
    assert_eq!(opens(&outs), 0);
    assert_eq!(closed_with(&h), None);
}

// ---- the backoff as data ---------------------------------------------------------------------

#[test]
fn backoff_ranges_double_up_to_the_cap() {
    let config = Config::default();
    let range = |attempt| config.backoff_range(attempt);
    assert_eq!(
        range(1),
        Duration::from_millis(250)..=Duration::from_millis(500)
    );
    assert_eq!(
        range(2),
        Duration::from_millis(500)..=Duration::from_secs(1)
    );
    assert_eq!(range(3), Duration::from_secs(1)..=Duration::from_secs(2));
    assert_eq!(range(7), Duration::from_secs(15)..=Duration::from_secs(30));
    assert_eq!(range(50), Duration::from_secs(15)..=Duration::from_secs(30));
    assert_eq!(range(0), range(1));
}
