//! A complete handshake against the scripted server, typestate by typestate, with a fake clock.

mod support;

use std::time::{Duration, Instant};

use support::*;
use voice_proto::payload::{ClientMessage, SpeakingFlags};
use voice_proto::{AwaitingServerUpdate, ConnectionInfo, Event, Identifying, Input, Output};

#[test]
fn join_through_every_typestate_and_send_audio() {
    let t0 = Instant::now();
    let mut server = FakeServer::default();
    let mut awaiting = AwaitingServerUpdate::new(t0, test_config(), join_request());

    // 1. Op 4 for the main gateway (C4), then a wake-up for the dispatch deadline.
    let outs = drain(&mut awaiting);
    let Output::MainGateway(op4) = &outs[0] else {
        panic!("first output must be the op-4 payload, got {outs:?}")
    };
    let json: serde_json::Value = serde_json::from_str(&op4.to_gateway_json()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"op":4,"d":{"guild_id":GUILD.to_string(),"channel_id":CHANNEL.to_string(),"self_mute":false,"self_deaf":false}})
    );
    assert_eq!(
        wake_at(&outs),
        Some(t0 + test_config().server_update_timeout)
    );

    // 2. Dispatches in "wrong" order (server first): nothing starts until both are in (C3).
    awaiting
        .handle_input(t0, Input::VoiceServerUpdate(server_dispatch(TOKEN)))
        .unwrap();
    assert!(client_messages(&drain(&mut awaiting)).is_empty());
    let awaiting = awaiting
        .into_identifying()
        .expect_err("only one dispatch seen");
    let mut awaiting = awaiting;
    awaiting
        .handle_input(t0, Input::VoiceStateUpdate(state_dispatch()))
        .unwrap();
    let outs = drain(&mut awaiting);
    assert!(outs.contains(&Output::OpenWebSocket {
        url: format!("wss://{ENDPOINT}/?v=8")
    }));
    let mut identifying = awaiting.into_identifying().expect("both dispatches seen");

    // 3. Websocket open -> Identify (C5); Hello -> heartbeats; Ready -> discovery.
    identifying
        .handle_input(t0, Input::WebSocketOpened)
        .unwrap();
    let sent = client_messages(&drain(&mut identifying));
    let [ClientMessage::Identify(identify)] = sent.as_slice() else {
        panic!("expected exactly one Identify, got {sent:?}")
    };
    assert_eq!(identify.server_id, GUILD);
    assert_eq!(identify.user_id, USER);
    assert_eq!(identify.session_id, SESSION_ID);
    assert_eq!(identify.token.expose(), TOKEN);
    assert!(
        !format!("{identify:?}").contains(TOKEN),
        "token leaks via Debug"
    );

    identifying
        .handle_input(t0, Input::Text(&server.hello()))
        .unwrap();
    let outs = drain(&mut identifying);
    assert_eq!(
        wake_at(&outs),
        Some(t0 + Duration::from_millis(HEARTBEAT_MS))
    );
    let identifying = identifying.into_discovering().expect_err("no Ready yet");
    let mut identifying = identifying;
    identifying
        .handle_input(t0, Input::Text(&server.ready()))
        .unwrap();
    let outs = drain(&mut identifying);
    assert_eq!(
        outs[0],
        Output::BindUdp {
            remote: server_udp()
        }
    );
    let (to, request) = transmits(&outs).remove(0);
    assert_eq!(to, server_udp());
    assert_eq!(request.len(), 74);
    let mut discovering = identifying.into_discovering().expect("Ready seen");

    // 4. Discovery answer -> Select Protocol with the discovered address and AES-GCM (C15, C16).
    let answer = server.discovery_answer(&request);
    discovering
        .handle_input(
            t0,
            Input::Datagram {
                from: server_udp(),
                data: &answer,
            },
        )
        .unwrap();
    let sent = client_messages(&drain(&mut discovering));
    let [ClientMessage::SelectProtocol(select)] = sent.as_slice() else {
        panic!("expected Select Protocol, got {sent:?}")
    };
    assert_eq!(select.protocol, "udp");
    assert_eq!(select.data.address, client_public().ip().to_string());
    assert_eq!(select.data.port, client_public().port());
    assert_eq!(select.data.mode, "aead_aes256_gcm_rtpsize");

    // 5. Session Description -> Session.
    discovering
        .handle_input(t0, Input::Text(&server.session_description()))
        .unwrap();
    let outs = drain(&mut discovering);
    assert!(events(&outs).contains(&Event::Connected {
        ssrc: SSRC,
        mode: server.mode,
        dave_protocol_version: 0,
    }));
    let mut session = discovering
        .into_session()
        .expect("Session Description seen");
    assert!(
        !format!("{session:?}").contains("[7, 7, 7"),
        "key leaks via Debug"
    );

    // 6. Audio: op 5 first (C20), then the RTP packet the server can open.
    let mut buf = [0u8; voice_proto::rtp::MAX_PACKET_LEN];
    let frame = [0xFC, 1, 2, 3, 4, 5];
    session.queue_opus(&frame).unwrap();
    assert_eq!(session.next_transmit(), Some(t0), "due at once");
    assert_eq!(session.poll_transmit(t0, &mut buf), None, "op 5 first");
    let sent = client_messages(&drain(&mut session));
    let transmit = session.poll_transmit(t0, &mut buf).expect("the frame");
    assert_eq!(transmit.destination, server_udp());
    let datagram = buf[..transmit.len].to_vec();
    let [ClientMessage::Speaking(speaking)] = sent.as_slice() else {
        panic!("expected op 5 before audio, got {sent:?}")
    };
    assert_eq!(speaking.speaking, SpeakingFlags::MICROPHONE);
    assert_eq!(speaking.ssrc, SSRC);
    assert_eq!(speaking.delay, 0);
    assert_eq!(&datagram[..2], &[0x80, 0x78], "C18 header bytes");
    assert_eq!(datagram.len(), 12 + frame.len() + 20, "C24 overhead");
    let (header, opus) = server.open_audio(&datagram);
    assert_eq!(opus, frame);
    assert_eq!(header.ssrc, SSRC);
}

#[test]
fn heartbeats_carry_seq_ack_and_acks_are_matched() {
    let mut h = Harness::join(test_config());
    h.connect();
    // Ready and Session Description were seq 1 and 2.
    let outs = h.advance(Duration::from_millis(HEARTBEAT_MS));
    let sent = client_messages(&outs);
    let [ClientMessage::Heartbeat(beat)] = sent.as_slice() else {
        panic!("expected one heartbeat, got {sent:?}")
    };
    assert_eq!(beat.seq_ack, 2);
    let ack = h.server.ack(beat.t);
    let outs = h.text(&ack);
    assert!(events(&outs)
        .iter()
        .any(|e| matches!(e, Event::HeartbeatAcknowledged { .. })));
    let text = match outs.iter().find(|o| matches!(o, Output::SendText(_))) {
        None => "",
        Some(Output::SendText(t)) => t,
        _ => unreachable!(),
    };
    assert!(text.is_empty(), "an ACK causes no frame");
}

#[test]
fn connect_with_raw_connection_info_skips_the_main_gateway() {
    let t0 = Instant::now();
    let info = ConnectionInfo {
        endpoint: "127.0.0.1:4443".to_owned(),
        guild_id: GUILD,
        channel_id: Some(CHANNEL),
        user_id: USER,
        session_id: SESSION_ID.to_owned(),
        token: voice_proto::secret::Token::new(TOKEN),
    };
    assert!(!format!("{info:?}").contains(TOKEN));
    let mut identifying = Identifying::connect(t0, test_config(), info).unwrap();
    let outs = drain(&mut identifying);
    assert_eq!(
        outs[0],
        Output::OpenWebSocket {
            url: "wss://127.0.0.1:4443/?v=8".to_owned()
        }
    );
    assert!(!outs.iter().any(|o| matches!(o, Output::MainGateway(_))));
}

#[test]
fn url_override_replaces_the_endpoint() {
    let mut config = test_config();
    config.gateway_url_override = Some("ws://127.0.0.1:9999".to_owned());

    let mut h = Harness::join(config);
    h.feed(Input::VoiceStateUpdate(state_dispatch()));
    let outs = h.feed(Input::VoiceServerUpdate(server_dispatch(TOKEN)));
    assert!(
        outs.contains(&Output::OpenWebSocket {
            url: "ws://127.0.0.1:9999?v=8".to_owned()
        }) || outs.contains(&Output::OpenWebSocket {
            url: "ws://127.0.0.1:9999/?v=8".to_owned()
        }),
        "{outs:?}"
    );
}

#[test]
fn null_endpoint_never_starts_a_connection() {
    let mut h = Harness::join(test_config());
    h.feed(Input::VoiceStateUpdate(state_dispatch()));
    let mut dispatch = server_dispatch(TOKEN);
    dispatch.endpoint = None;
    let outs = h.feed(Input::VoiceServerUpdate(dispatch));
    assert!(!outs
        .iter()
        .any(|o| matches!(o, Output::OpenWebSocket { .. })));
    // The real one comes later (C2).
    let outs = h.feed(Input::VoiceServerUpdate(server_dispatch(TOKEN)));
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::OpenWebSocket { .. })));
}

#[test]
fn other_users_voice_states_are_ignored() {
    let mut h = Harness::join(test_config());
    let mut other = state_dispatch();
    other.user_id = OTHER_USER;
    h.feed(Input::VoiceStateUpdate(other));
    let outs = h.feed(Input::VoiceServerUpdate(server_dispatch(TOKEN)));
    assert!(!outs
        .iter()
        .any(|o| matches!(o, Output::OpenWebSocket { .. })));
}

#[test]
fn dispatch_timeout_is_a_typed_error() {
    let mut h = Harness::join(test_config());
    let deadline = h.start + test_config().server_update_timeout;
    let outs = h.run_until(deadline);
    assert!(events(&outs).iter().any(|e| matches!(
        e,
        Event::Closed {
            error: voice_proto::Error::Timeout {
                stage: voice_proto::Stage::ServerUpdate,
                ..
            }
        }
    )));
    assert_eq!(outs.last(), Some(&Output::Idle));
}

#[test]
fn no_common_mode_is_a_clear_error() {
    let mut h = Harness::join(test_config());
    h.server.modes = vec!["xsalsa20_poly1305".to_owned()];
    h.feed(Input::VoiceStateUpdate(state_dispatch()));
    h.feed(Input::VoiceServerUpdate(server_dispatch(TOKEN)));
    h.feed(Input::WebSocketOpened);
    let hello = h.server.hello();
    h.text(&hello);
    let ready = h.server.ready();
    let outs = h.text(&ready);
    let closed = events(&outs).into_iter().find_map(|e| match e {
        Event::Closed { error } => Some(error),
        _ => None,
    });
    let Some(voice_proto::Error::NoCommonMode(error)) = closed else {
        panic!("expected NoCommonMode, got {closed:?}")
    };
    assert!(error.to_string().contains("xsalsa20_poly1305"));
}

#[test]
fn xchacha_is_chosen_when_aes_is_not_offered() {
    let mut h = Harness::join(test_config());
    h.server.modes = vec!["aead_xchacha20_poly1305_rtpsize".to_owned()];
    h.server.mode = voice_proto::crypto::EncryptionMode::AeadXChaCha20Poly1305RtpSize;
    h.connect();
    let (_, datagram) = h.send_frame(&[1, 2, 3]);
    let (_, opus) = h.server.open_audio(&datagram);
    assert_eq!(opus, [1, 2, 3]);
}

#[test]
fn session_description_before_select_protocol_is_ignored_not_fatal() {
    let mut h = Harness::join(test_config());
    h.feed(Input::VoiceStateUpdate(state_dispatch()));
    h.feed(Input::VoiceServerUpdate(server_dispatch(TOKEN)));
    h.feed(Input::WebSocketOpened);
    let early = h.server.session_description();
    let outs = h.text(&early);
    assert!(events(&outs)
        .iter()
        .any(|e| matches!(e, Event::Ignored { .. })));
    assert!(h.state.error().is_none());
    // A second Hello is ignored too.
    let hello = h.server.hello();
    h.text(&hello);
    let outs = h.text(&hello);
    assert!(events(&outs)
        .iter()
        .any(|e| matches!(e, Event::Ignored { .. })));
}

#[test]
fn mismatching_session_description_mode_is_fatal() {
    let mut h = Harness::join(test_config());
    h.server.mode = voice_proto::crypto::EncryptionMode::AeadXChaCha20Poly1305RtpSize;
    h.connect();
    assert!(matches!(
        h.state.error(),
        Some(voice_proto::Error::Protocol(
            voice_proto::ProtocolError::ModeMismatch { .. }
        ))
    ));
}
