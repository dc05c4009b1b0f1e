//! DAVE negotiation around the handshake: Identify offers version 1 (C5, C50); version 0 means a
//! Stage channel with plain Opus; no non-silence audio before the session can encrypt (C48); a
//! move builds a new DAVE session (C49) while a resume keeps it; an unknown channel id is a typed
//! error; without DAVE offered, DAVE messages are ignored as before.
#![cfg(feature = "dave")]

mod support;

use std::time::Instant;

use support::dave::*;
use support::*;
use voice_proto::dave::{DaveError, DaveStatus};
use voice_proto::payload::{ClientMessage, ClientsConnect, ServerMessage};
use voice_proto::playout::HoldReason;
use voice_proto::{Config, ConnectionInfo, Error, Event, Identifying, Input};

const OPUS: [u8; 6] = [0xfc, 0xff, 0xfe, 0x01, 0x02, 0x03];

fn identify_version(outs: &[voice_proto::Output]) -> Option<u16> {
    client_messages(outs).into_iter().find_map(|m| match m {
        ClientMessage::Identify(identify) => Some(identify.max_dave_protocol_version),
        _ => None,
    })
}

#[test]
fn identify_offers_dave_1_by_default() {
    assert_eq!(Config::default().max_dave_protocol_version, 1);
    assert_eq!(
        voice_proto::dave::SUPPORTED_PROTOCOL_VERSION,
        davey::DAVE_PROTOCOL_VERSION
    );
    let mut h = Harness::join(test_config());
    let outs = h.connect();
    assert_eq!(identify_version(&outs), Some(1), "C5, C50");
}

#[test]
fn offering_more_than_supported_is_clamped() {
    let mut h = Harness::join({
        let mut config = test_config();
        config.max_dave_protocol_version = 9;
        config
    });
    let outs = h.connect();
    assert_eq!(identify_version(&outs), Some(1));
}

#[test]
fn version_0_is_a_stage_channel_with_plain_opus() {
    let mut h = Harness::join(test_config());
    let outs = h.connect();
    assert!(
        key_packages(&outs).is_empty(),
        "no DAVE session for version 0"
    );
    assert_eq!(h.session().dave_status(), DaveStatus::Off);
    let (_, datagram) = h.send_frame(&OPUS);
    assert_eq!(h.server.open_audio(&datagram).1, OPUS);
}

#[test]
fn no_audio_before_the_session_can_encrypt() {
    let mut h = Harness::join(test_config());
    h.server.dave_protocol_version = 1;
    h.connect();
    let session = h.session();
    assert_eq!(session.dave_status(), DaveStatus::Negotiating);
    assert!(!session.is_connected());
    assert!(session.has_media());
    session.queue_opus(&OPUS).unwrap();
    assert_eq!(
        session.playout_hold(),
        Some(HoldReason::DaveKeysPending),
        "C48"
    );
    assert_eq!(session.next_transmit(), None, "nothing due while held");
    let (outs, datagram) = h.play_next();
    assert_eq!(datagram, None);
    assert_eq!(h.session().stats().packets_sent, 0, "nothing counted");
    assert_eq!(h.session().queued_frames(), 1, "held, not dropped");
    // Nothing was announced for a held frame.
    assert!(client_messages(&outs)
        .iter()
        .all(|m| !matches!(m, ClientMessage::Speaking(_))));
}

#[test]
fn a_move_builds_a_new_dave_session_and_a_resume_keeps_it() {
    let mut h = Harness::join(test_config());
    h.server.dave_protocol_version = 1;
    h.connect();
    let gateway = Gateway::new(CHANNEL);
    h.external_sender(&gateway);
    h.json(ServerMessage::ClientsConnect(ClientsConnect {
        user_ids: vec![OTHER_USER],
    }));
    let mut member = peer(OTHER_USER, &gateway);
    let kp = member.create_key_package().unwrap();
    let outs = h.proposals(gateway.propose_add(0, &kp));
    let (commit, _) = split_commit_welcome(&commit_welcomes(&outs)[0]);
    h.commit(0, commit);
    assert_eq!(h.session().dave_status(), DaveStatus::Active);

    // Resume (4015): same SSRC, keys and DAVE group.
    h.feed(Input::WebSocketClosed { code: Some(4015) });
    h.wait_out_backoff();
    h.feed(Input::WebSocketOpened);
    let hello = h.server.hello();
    h.text(&hello);
    h.json(ServerMessage::Resumed);
    assert_eq!(h.session().dave_status(), DaveStatus::Active);
    assert_eq!(h.session().dave_epoch(), Some(1));

    // A new VOICE_SERVER_UPDATE: fresh Identify and a new DAVE session (C49).
    let outs = h.feed(Input::VoiceServerUpdate(server_dispatch("new-token")));
    assert!(outs
        .iter()
        .any(|o| matches!(o, voice_proto::Output::OpenWebSocket { .. })));
    let outs = h.handshake_on_new_socket();
    assert_eq!(
        key_packages(&outs).len(),
        1,
        "a new key package for the new session"
    );
    assert_eq!(h.session().dave_status(), DaveStatus::Negotiating);
    assert_eq!(h.session().dave_epoch(), None);
}

#[test]
fn dave_without_a_channel_id_is_a_typed_error() {
    let now = Instant::now();
    let info = ConnectionInfo {
        endpoint: ENDPOINT.to_owned(),
        guild_id: GUILD,
        channel_id: None,
        user_id: USER,
        session_id: SESSION_ID.to_owned(),
        token: voice_proto::secret::Token::new(TOKEN),
    };
    let mut state = Identifying::connect(now, test_config(), info).unwrap();
    let mut server = FakeServer {
        dave_protocol_version: 1,
        ..FakeServer::default()
    };
    drain(&mut state);
    state.handle_input(now, Input::WebSocketOpened).unwrap();
    state
        .handle_input(now, Input::Text(&server.hello()))
        .unwrap();
    state
        .handle_input(now, Input::Text(&server.ready()))
        .unwrap();
    let outs = drain(&mut state);
    let (_, request) = transmits(&outs).into_iter().next().unwrap();
    let mut discovering = state.into_discovering().unwrap();
    let answer = server.discovery_answer(&request);
    discovering
        .handle_input(
            now,
            Input::Datagram {
                from: server_udp(),
                data: &answer,
            },
        )
        .unwrap();
    let result = discovering.handle_input(now, Input::Text(&server.session_description()));
    assert_eq!(result, Err(Error::Dave(DaveError::MissingChannelId)));
    let outs = drain(&mut discovering);
    assert!(events(&outs).iter().any(|e| matches!(
        e,
        Event::Closed {
            error: Error::Dave(DaveError::MissingChannelId)
        }
    )));
}

#[test]
fn dave_messages_are_ignored_when_dave_is_not_offered() {
    let mut h = Harness::join({
        let mut config = test_config();
        config.max_dave_protocol_version = 0;
        config
    });
    let outs = h.connect();
    assert_eq!(identify_version(&outs), Some(0));
    let gateway = Gateway::new(CHANNEL);
    let mut outs = h.external_sender(&gateway);
    outs.extend(h.prepare_transition(1, 3));
    outs.extend(h.prepare_epoch(1, 1));
    outs.extend(h.execute(3));
    assert!(client_messages(&outs).is_empty(), "no DAVE answers");
    assert_eq!(h.session().dave_status(), DaveStatus::Off);
}
