//! A full in-memory DAVE handshake (docs/protocol.md 9.3): our engine, a fake gateway acting as MLS
//! external sender (openmls) and a second member (davey). Ops 25, 26, 27, 28, 29, 30, 22, 23; then
//! audio both ways, checked by the peer and by an independent implementation of the frame format
//! (C33, C35, C36, C37, C41, C42, C43, C44, C46).
#![cfg(feature = "dave")]

mod support;

use davey::{DaveSession, MediaType, ProposalsOperationType};
use support::dave::*;
use support::*;
use voice_proto::dave::DaveStatus;
use voice_proto::payload::{ClientsConnect, ServerMessage, Speaking, SpeakingFlags};
use voice_proto::playout::HoldReason;
use voice_proto::rtp::SILENCE_FRAME;
use voice_proto::{Event, Input, Output};

const PEER: voice_proto::id::UserId = OTHER_USER;
const PEER_SSRC: u32 = 4242;
const OPUS: [u8; 6] = [0xfc, 0xff, 0xfe, 0x01, 0x02, 0x03];

/// An established DAVE call: the engine, the gateway and the peer member.
pub struct Call {
    pub h: Harness,
    pub gateway: Gateway,
    pub peer: DaveSession,
}

fn dave_harness() -> Harness {
    let mut h = Harness::join(test_config());
    h.server.dave_protocol_version = 1;
    h
}

fn has_event(outs: &[Output], pred: impl Fn(&Event) -> bool) -> bool {
    events(outs).iter().any(pred)
}

/// Connects with DAVE 1; the engine is first in the call and commits the peer's addition.
fn establish_as_committer(transition_id: u16) -> Call {
    let mut h = dave_harness();
    let outs = h.connect();
    assert_eq!(
        key_packages(&outs).len(),
        1,
        "op 26 after Session Description (C33)"
    );
    assert_eq!(h.session().dave_status(), DaveStatus::Negotiating);
    let gateway = Gateway::new(CHANNEL);
    h.external_sender(&gateway);
    h.json(ServerMessage::ClientsConnect(ClientsConnect {
        user_ids: vec![PEER],
    }));
    let mut peer = peer(PEER, &gateway);
    let peer_key_package = peer.create_key_package().unwrap();

    let outs = h.proposals(gateway.propose_add(0, &peer_key_package));
    let commit_welcome = commit_welcomes(&outs);
    assert_eq!(commit_welcome.len(), 1, "op 28 (C35)");
    let (commit, welcome) = split_commit_welcome(&commit_welcome[0]);
    let welcome = welcome.expect("the commit adds the peer: a welcome follows it");

    let outs = h.commit(transition_id, commit);
    assert_eq!(transition_ready(&outs), vec![transition_id], "op 23 (C37)");
    // Keys are prepared, not used: the sending key switches only on op 22 (C41).
    assert_eq!(h.session().dave_status(), DaveStatus::Negotiating);

    peer.process_welcome(&welcome, Some(&[USER.0, PEER.0]))
        .unwrap();
    peer.prepare_transition(transition_id, 1).unwrap();

    let outs = h.execute(transition_id);
    assert!(has_event(&outs, |e| matches!(
        e,
        Event::DaveTransition { transition_id: t, from: 1, to: 1 } if *t == transition_id
    )));
    assert!(has_event(&outs, |e| matches!(
        e,
        Event::DaveReady {
            protocol_version: 1,
            epoch: 1,
            privacy_code: Some(_)
        }
    )));
    peer.execute_transition(transition_id).unwrap();
    assert_eq!(h.session().dave_status(), DaveStatus::Active);
    assert!(h.session().is_connected());
    Call { h, gateway, peer }
}

/// Plays one frame out; returns the RTP payload the SFU sees (after transport).
fn send(h: &mut Harness, frame: &[u8]) -> Vec<u8> {
    let (_, datagram) = h.send_frame(frame);
    let (_, payload) = h.server.open_audio(&datagram);
    assert_eq!(datagram.len(), 12 + payload.len() + 20);
    payload
}

/// Queues one frame without expecting it to go out: the datagram, or why the playout holds it
/// (the frame then stays queued and goes out first once the hold ends).
fn try_send(h: &mut Harness, frame: &[u8]) -> Result<Vec<u8>, HoldReason> {
    h.session().queue_opus(frame).unwrap();
    match h.play_next() {
        (_, Some(datagram)) => Ok(datagram),
        (_, None) => Err(h.session().playout_hold().expect("held, with a reason")),
    }
}

fn map_peer_ssrc(h: &mut Harness) {
    h.json(ServerMessage::Speaking(Speaking {
        speaking: SpeakingFlags::MICROPHONE,
        delay: 0,
        ssrc: PEER_SSRC,
        user_id: Some(PEER),
    }));
}

fn receive(h: &mut Harness, sequence: u16, payload: &[u8]) -> Vec<Output> {
    let packet = inbound(h, PEER_SSRC, sequence, payload);
    h.feed(Input::Datagram {
        from: server_udp(),
        data: &packet,
    })
}

#[test]
fn engine_commits_and_audio_flows_both_ways() {
    let Call {
        mut h,
        peer: mut member,
        ..
    } = establish_as_committer(5);

    // Send: the peer decrypts, and so does the independent implementation (layout C43/C44).
    let first = send(&mut h, &OPUS);
    assert_ne!(first, OPUS, "DAVE-encrypted");
    let parsed = parse_frame(&first);
    assert_eq!(
        (parsed.nonce, parsed.size_byte),
        (1, 12),
        "first frame uses nonce 1"
    );
    assert_eq!(parsed.ciphertext.len(), OPUS.len());
    assert_eq!(first.len(), OPUS.len() + 12);
    let key = ratchet_key(&base_secret(&member, USER), 0);
    assert_eq!(decrypt_frame(&key, &first), OPUS);
    assert_eq!(decrypt_from(&mut member, USER, &first), OPUS);
    let second = send(&mut h, &OPUS);
    assert_eq!(parse_frame(&second).nonce, 2);
    assert_eq!(decrypt_frame(&key, &second), OPUS);
    assert_eq!(decrypt_from(&mut member, USER, &second), OPUS);

    // Silence is never DAVE-encrypted (C46).
    assert_eq!(send(&mut h, &SILENCE_FRAME), SILENCE_FRAME);
    assert_eq!(h.session().stats().dave_frames_encrypted, 2);

    // Receive: the peer's frame is decrypted with the peer's user id (op 5 mapping).
    map_peer_ssrc(&mut h);
    let frame = member.encrypt_opus(&OPUS).unwrap().to_vec();
    receive(&mut h, 1, &frame);
    let audio = audio_events(&mut h);
    assert_eq!(audio.len(), 1);
    assert_eq!(audio[0].opus, OPUS);
    assert_eq!(audio[0].user_id, Some(PEER));
    receive(&mut h, 2, &SILENCE_FRAME);
    assert_eq!(
        audio_events(&mut h)[0].opus,
        SILENCE_FRAME,
        "silence passes (C46)"
    );
    assert_eq!(h.session().stats().dave_frames_decrypted, 1);

    // Both sides show the same privacy code and group.
    assert_eq!(h.session().dave_privacy_code(), member.voice_privacy_code());
    let code = h.session().dave_privacy_code().unwrap();
    assert!(
        code.len() == 30 && code.bytes().all(|b| b.is_ascii_digit()),
        "30 digits, no separators, as documented: {code}"
    );
    let mut members = h.session().dave_group_members().unwrap();
    members.sort();
    let mut expected = vec![USER, PEER];
    expected.sort();
    assert_eq!(members, expected);
    assert_eq!(h.session().dave_epoch(), Some(1));
    assert_eq!(
        h.session().stats().dave_epoch,
        Some(1),
        "the epoch in the stats too"
    );
    assert!(h.session().dave_verification_code(PEER).is_some());
}

#[test]
fn engine_is_welcomed_by_an_existing_member() {
    let mut h = dave_harness();
    let outs = h.connect();
    let key_package = key_packages(&outs).remove(0);
    let gateway = Gateway::new(CHANNEL);
    h.external_sender(&gateway);
    h.json(ServerMessage::ClientsConnect(ClientsConnect {
        user_ids: vec![PEER],
    }));
    // The peer holds the group and commits our addition.
    let mut member = peer(PEER, &gateway);
    let proposals = gateway.propose_add(0, &key_package);
    let commit_welcome = member
        .process_proposals(
            ProposalsOperationType::APPEND,
            &proposals,
            Some(&[PEER.0, USER.0]),
        )
        .unwrap()
        .unwrap();
    assert!(member.process_commit(&commit_welcome.commit).unwrap());
    member.prepare_transition(7, 1).unwrap();

    let outs = h.welcome(7, commit_welcome.welcome.unwrap());
    assert_eq!(
        transition_ready(&outs),
        vec![7],
        "op 30 -> op 23 (C36, C37)"
    );
    assert_eq!(h.session().dave_status(), DaveStatus::Negotiating);
    let outs = h.execute(7);
    assert!(has_event(&outs, |e| matches!(e, Event::DaveReady { .. })));
    member.execute_transition(7).unwrap();

    let frame = send(&mut h, &OPUS);
    assert_eq!(decrypt_from(&mut member, USER, &frame), OPUS);
    map_peer_ssrc(&mut h);
    let theirs = member.encrypt_opus(&OPUS).unwrap().to_vec();
    assert_eq!(
        {
            receive(&mut h, 1, &theirs);
            audio_events(&mut h)
        }[0]
        .opus,
        OPUS
    );
}

#[test]
fn transition_zero_executes_at_once_without_op_23() {
    let mut h = dave_harness();
    h.connect();
    let gateway = Gateway::new(CHANNEL);
    h.external_sender(&gateway);
    h.json(ServerMessage::ClientsConnect(ClientsConnect {
        user_ids: vec![PEER],
    }));
    let mut member = peer(PEER, &gateway);
    let kp = member.create_key_package().unwrap();
    let outs = h.proposals(gateway.propose_add(0, &kp));
    let (commit, _) = split_commit_welcome(&commit_welcomes(&outs)[0]);
    let outs = h.commit(0, commit);
    assert!(
        transition_ready(&outs).is_empty(),
        "no op 23 for transition 0 (C37)"
    );
    assert!(has_event(&outs, |e| matches!(e, Event::DaveReady { .. })));
    assert_eq!(h.session().dave_status(), DaveStatus::Active);
}

#[test]
fn external_sender_before_session_description_is_kept() {
    // C34: op 25 may arrive before op 4; it is applied once the session exists.
    let mut h = dave_harness();
    let gateway = Gateway::new(CHANNEL);
    h.feed(Input::VoiceStateUpdate(state_dispatch()));
    h.feed(Input::VoiceServerUpdate(server_dispatch(TOKEN)));
    h.feed(Input::WebSocketOpened);
    let hello = h.server.hello();
    h.text(&hello);
    let ready = h.server.ready();
    let outs = h.text(&ready);
    let (_, request) = transmits(&outs).into_iter().next().unwrap();
    h.external_sender(&gateway);
    let answer = h.server.discovery_answer(&request);
    h.feed(Input::Datagram {
        from: server_udp(),
        data: &answer,
    });
    let description = h.server.session_description();
    let outs = h.text(&description);
    assert_eq!(key_packages(&outs).len(), 1);
    h.json(ServerMessage::ClientsConnect(ClientsConnect {
        user_ids: vec![PEER],
    }));
    let mut member = peer(PEER, &gateway);
    let kp = member.create_key_package().unwrap();
    let outs = h.proposals(gateway.propose_add(0, &kp));
    assert_eq!(
        commit_welcomes(&outs).len(),
        1,
        "the buffered external sender made the pending group"
    );
}

#[test]
fn downgrade_to_plain_and_upgrade_back() {
    let Call {
        mut h,
        gateway,
        peer: mut member,
    } = establish_as_committer(5);
    map_peer_ssrc(&mut h);

    // Op 21 downgrade: answered with op 23 (C40); audio stays encrypted until op 22 (C41).
    let outs = h.prepare_transition(0, 9);
    assert_eq!(transition_ready(&outs), vec![9]);
    member.prepare_transition(9, 0).unwrap();
    // Passthrough is on from the prepare (C40): members that already switched send plain Opus.
    assert_eq!(
        {
            receive(&mut h, 40, &OPUS);
            audio_events(&mut h)
        }[0]
        .opus,
        OPUS
    );
    let frame = send(&mut h, &OPUS);
    assert_eq!(decrypt_from(&mut member, USER, &frame), OPUS);
    let outs = h.execute(9);
    assert!(has_event(&outs, |e| matches!(
        e,
        Event::DaveTransition {
            transition_id: 9,
            from: 1,
            to: 0
        }
    )));
    member.execute_transition(9).unwrap();
    assert_eq!(h.session().dave_status(), DaveStatus::Off);
    assert_eq!(h.session().dave_active_protocol_version(), 0);
    assert_eq!(send(&mut h, &OPUS), OPUS, "plain Opus after the downgrade");
    assert_eq!(
        {
            receive(&mut h, 41, &OPUS);
            audio_events(&mut h)
        }[0]
        .opus,
        OPUS
    );

    // Op 24 epoch 1: a new group; new op 26 (C39). The call is becoming end-to-end encrypted:
    // audio is held, not sent plain, until the upgrade executes (C48).
    let outs = h.prepare_epoch(1, 1);
    assert_eq!(key_packages(&outs).len(), 1);
    assert_eq!(h.session().dave_status(), DaveStatus::Negotiating);
    member
        .reinit(
            std::num::NonZeroU16::new(1).unwrap(),
            PEER.0,
            CHANNEL.0,
            None,
        )
        .unwrap();
    let kp = member.create_key_package().unwrap();
    let outs = h.proposals(gateway.propose_add(0, &kp));
    let (commit, welcome) = split_commit_welcome(&commit_welcomes(&outs)[0]);
    let outs = h.commit(11, commit);
    assert_eq!(transition_ready(&outs), vec![11]);
    assert_eq!(
        try_send(&mut h, &OPUS),
        Err(HoldReason::DaveKeysPending),
        "held, not plain, before op 22"
    );
    member
        .process_welcome(&welcome.unwrap(), Some(&[USER.0, PEER.0]))
        .unwrap();
    member.prepare_transition(11, 1).unwrap();
    let outs = h.execute(11);
    assert!(has_event(&outs, |e| matches!(
        e,
        Event::DaveTransition {
            transition_id: 11,
            from: 0,
            to: 1
        }
    )));
    member.execute_transition(11).unwrap();
    assert_eq!(h.session().dave_status(), DaveStatus::Active);
    let frame = send(&mut h, &OPUS);
    assert_eq!(
        parse_frame(&frame).nonce,
        1,
        "a new epoch restarts the nonce"
    );
    assert_eq!(decrypt_from(&mut member, USER, &frame), OPUS);
    // Step 9: plain frames still in flight play for a while after the upgrade...
    assert_eq!(
        {
            receive(&mut h, 42, &OPUS);
            audio_events(&mut h)
        }[0]
        .opus,
        OPUS
    );
    // ...and encrypted ones decrypt.
    let theirs = member.encrypt_opus(&OPUS).unwrap().to_vec();
    assert_eq!(
        {
            receive(&mut h, 43, &theirs);
            audio_events(&mut h)
        }[0]
        .opus,
        OPUS
    );
}

/// Regression (found by voice-std's DAVE downgrade test with 100 ms of websocket latency): from
/// op 24 until the upgrade's op 22 the engine sent plain Opus into a call that was already
/// becoming end-to-end encrypted, a round trip's worth of unencrypted speech or more. The audio
/// is now held like at join (C48), silence still goes out, and a downgrade or a fresh session
/// ends the hold.
#[test]
fn an_upgrade_holds_audio_from_op_24_until_it_executes() {
    let Call { mut h, .. } = establish_as_committer(5);
    h.prepare_transition(0, 9);
    h.execute(9);
    assert_eq!(h.session().dave_status(), DaveStatus::Off);
    assert!(h.session().is_connected());
    assert_eq!(send(&mut h, &OPUS), OPUS, "plain while downgraded");

    h.prepare_epoch(1, 1);
    assert_eq!(h.session().dave_status(), DaveStatus::Negotiating);
    assert_eq!(h.session().dave_active_protocol_version(), 0);
    assert!(!h.session().is_connected(), "adapters pause their clock");
    let sent = h.session().stats().packets_sent;
    assert_eq!(try_send(&mut h, &OPUS), Err(HoldReason::DaveKeysPending));
    assert_eq!(h.session().stats().packets_sent, sent, "nothing went out");
    assert_eq!(h.session().queued_frames(), 1, "held, not dropped");
    // Trailing silence is never held: a stop drops the held frame and ends the spurt.
    assert_eq!(h.session().stop_speaking(), 1);
    let silences = h.play_all();
    assert_eq!(silences.len(), 5);
    for datagram in &silences {
        assert_eq!(h.server.open_audio(datagram).1, SILENCE_FRAME);
    }

    // Another user without DAVE joins before the upgrade completed: down again, audio plain.
    h.prepare_transition(0, 10);
    let outs = h.execute(10);
    assert!(has_event(&outs, |e| matches!(
        e,
        Event::DaveTransition {
            transition_id: 10,
            from: 0,
            to: 0
        }
    )));
    assert_eq!(h.session().dave_status(), DaveStatus::Off);
    assert_eq!(send(&mut h, &OPUS), OPUS);
}

#[test]
fn peer_decrypts_many_frames_in_order() {
    let Call {
        mut h,
        peer: mut member,
        ..
    } = establish_as_committer(2);
    for i in 0..300u32 {
        let opus: Vec<u8> = (0..(1 + i % 200)).map(|b| (b ^ i) as u8).collect();
        let frame = send(&mut h, &opus);
        assert_eq!(parse_frame(&frame).nonce, i + 1);
        assert_eq!(
            member.decrypt(USER.0, MediaType::AUDIO, &frame).unwrap(),
            opus
        );
    }
    // The largest Opus frame still fits MAX_PACKET_LEN with the DAVE trailer.
    let big = vec![0x42u8; voice_proto::rtp::MAX_OPUS_FRAME_LEN];
    let frame = send(&mut h, &big);
    assert_eq!(decrypt_from(&mut member, USER, &frame), big);
}
