//! DAVE failure paths (C38, C39): a bad commit or welcome is answered with op 31, a re-init and a
//! new key package; op 24 epoch 1 re-initialises; decrypt failures are counted and reported, and
//! more than 36 in a row trigger the op 31 recovery once.
#![cfg(feature = "dave")]

mod support;

use support::dave::*;
use support::*;
use voice_proto::dave::DaveStatus;
use voice_proto::payload::{ClientsConnect, ServerMessage, Speaking, SpeakingFlags};
use voice_proto::{Event, Input, Output};

const PEER: voice_proto::id::UserId = OTHER_USER;
const PEER_SSRC: u32 = 4242;
const OPUS: [u8; 6] = [0xfc, 0xff, 0xfe, 0x01, 0x02, 0x03];

fn dave_harness() -> Harness {
    let mut h = Harness::join(test_config());
    h.server.dave_protocol_version = 1;
    h.connect();
    h
}

fn recoveries(outs: &[Output]) -> Vec<u16> {
    events(outs)
        .into_iter()
        .filter_map(|e| match e {
            Event::DaveRecovery { transition_id, .. } => Some(transition_id),
            _ => None,
        })
        .collect()
}

#[test]
fn a_commit_that_fails_sends_op_31_and_a_new_key_package() {
    let mut h = dave_harness();
    let gateway = Gateway::new(CHANNEL);
    h.external_sender(&gateway);
    h.json(ServerMessage::ClientsConnect(ClientsConnect {
        user_ids: vec![PEER],
    }));
    let member = peer(PEER, &gateway);
    let mut member = member;
    let kp = member.create_key_package().unwrap();
    let outs = h.proposals(gateway.propose_add(0, &kp));
    assert_eq!(commit_welcomes(&outs).len(), 1);

    let outs = h.commit(5, vec![0x00, 0x01, 0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(invalid_commit_welcome(&outs), vec![5], "op 31 (C38)");
    assert_eq!(
        key_packages(&outs).len(),
        1,
        "a new key package after the re-init"
    );
    assert_eq!(recoveries(&outs), vec![5]);
    assert!(transition_ready(&outs).is_empty());
    assert!(!h.session().is_closed(), "never fatal");
    assert_eq!(h.session().dave_status(), DaveStatus::Negotiating);
}

#[test]
fn a_welcome_that_fails_sends_op_31_and_a_new_key_package() {
    let mut h = dave_harness();
    let gateway = Gateway::new(CHANNEL);
    h.external_sender(&gateway);
    let outs = h.welcome(3, vec![1, 2, 3]);
    assert_eq!(invalid_commit_welcome(&outs), vec![3]);
    assert_eq!(key_packages(&outs).len(), 1);
    assert!(!h.session().is_closed());
}

#[test]
fn a_welcome_from_an_unrecognised_user_is_refused() {
    // No op 11 for the peer: the welcome's roster has a stranger (WP "Member Add").
    let mut h = Harness::join(test_config());
    h.server.dave_protocol_version = 1;
    let outs = h.connect();
    let kp = key_packages(&outs).remove(0);
    let gateway = Gateway::new(CHANNEL);
    h.external_sender(&gateway);
    let mut member = peer(PEER, &gateway);
    let proposals = gateway.propose_add(0, &kp);
    let cw = member
        .process_proposals(davey::ProposalsOperationType::APPEND, &proposals, None)
        .unwrap()
        .unwrap();
    let outs = h.welcome(4, cw.welcome.unwrap());
    assert_eq!(invalid_commit_welcome(&outs), vec![4]);
    assert!(events(&outs)
        .iter()
        .any(|e| matches!(e, Event::DaveRecovery { reason, .. } if reason.contains("welcome"))));
}

#[test]
fn prepare_epoch_1_reinitialises_and_sends_a_key_package() {
    let mut h = dave_harness();
    let outs = h.prepare_epoch(1, 1);
    assert_eq!(key_packages(&outs).len(), 1, "C39");
    let outs = h.prepare_epoch(1, 2);
    assert!(key_packages(&outs).is_empty(), "epoch > 1: no new group");
}

#[test]
fn op_22_for_an_unknown_transition_is_ignored() {
    let mut h = dave_harness();
    let outs = h.execute(77);
    assert!(events(&outs)
        .iter()
        .any(|e| matches!(e, Event::Ignored { .. })));
    assert!(!h.session().is_closed());
}

#[test]
fn op_21_is_answered_with_op_23_and_transition_0_is_not() {
    let mut h = dave_harness();
    assert_eq!(transition_ready(&h.prepare_transition(1, 12)), vec![12]);
    assert!(transition_ready(&h.prepare_transition(1, 0)).is_empty());
}

/// An established call (engine commits), with the peer's SSRC mapped.
fn established() -> (Harness, davey::DaveSession) {
    let (mut h, member) = established_unmapped();
    map_peer(&mut h);
    (h, member)
}

/// The peer's op 5, which maps `PEER_SSRC` to `PEER`.
fn map_peer(h: &mut Harness) -> Vec<Output> {
    h.json(ServerMessage::Speaking(Speaking {
        speaking: SpeakingFlags::MICROPHONE,
        delay: 0,
        ssrc: PEER_SSRC,
        user_id: Some(PEER),
    }))
}

/// An established call (engine commits) in which no op 5 has come yet.
fn established_unmapped() -> (Harness, davey::DaveSession) {
    let mut h = dave_harness();
    let gateway = Gateway::new(CHANNEL);
    h.external_sender(&gateway);
    h.json(ServerMessage::ClientsConnect(ClientsConnect {
        user_ids: vec![PEER],
    }));
    let mut member = peer(PEER, &gateway);
    let kp = member.create_key_package().unwrap();
    let outs = h.proposals(gateway.propose_add(0, &kp));
    let (commit, welcome) = split_commit_welcome(&commit_welcomes(&outs)[0]);
    h.commit(6, commit);
    member
        .process_welcome(&welcome.unwrap(), Some(&[USER.0, PEER.0]))
        .unwrap();
    member.prepare_transition(6, 1).unwrap();
    h.execute(6);
    member.execute_transition(6).unwrap();
    (h, member)
}

#[test]
fn decrypt_failures_are_counted_reported_and_recovered_once() {
    let (mut h, mut member) = established();
    let mut recovered = Vec::new();
    for i in 1..=40u16 {
        let mut frame = member.encrypt_opus(&OPUS).unwrap().to_vec();
        frame[0] ^= 0xff; // tampered: the tag no longer matches
        let packet = inbound(&h, PEER_SSRC, i, &frame);
        let outs = h.feed(Input::Datagram {
            from: server_udp(),
            data: &packet,
        });
        assert!(audio_events(&mut h).is_empty(), "a failed frame is dropped");
        let failure = events(&outs).into_iter().find_map(|e| match e {
            Event::DaveDecryptFailed {
                consecutive,
                user_id,
                ssrc,
                ..
            } => Some((consecutive, user_id, ssrc)),
            _ => None,
        });
        let (consecutive, user_id, ssrc) = failure.expect("a DaveDecryptFailed event");
        assert_eq!((user_id, ssrc), (Some(PEER), PEER_SSRC));
        if i <= 37 {
            assert_eq!(consecutive, u32::from(i));
        }
        recovered.extend(invalid_commit_welcome(&outs).into_iter().map(|t| (i, t)));
    }
    // The 37th failure (> 36) sends op 31 for the last transition, once.
    assert_eq!(recovered, vec![(37, 6)]);
    assert_eq!(h.session().stats().dave_decrypt_failures, 40);
    assert_eq!(
        h.session().stats().decrypt_failures,
        0,
        "transport decryption was fine"
    );
    assert!(!h.session().is_closed());
    // davey keeps the current keys across the re-init: audio still flows.
    assert_eq!(h.session().dave_status(), DaveStatus::Active);
    let frame = member.encrypt_opus(&OPUS).unwrap().to_vec();
    let packet = inbound(&h, PEER_SSRC, 100, &frame);
    let _ = h.feed(Input::Datagram {
        from: server_udp(),
        data: &packet,
    });
    assert_eq!(audio_events(&mut h)[0].opus, OPUS);
}

#[test]
fn plain_frames_are_dropped_while_dave_is_active() {
    // C47: not silence, not ending in FA FA, passthrough off -> dropped.
    let (mut h, _member) = established();
    let packet = inbound(&h, PEER_SSRC, 1, &OPUS);
    let _ = h.feed(Input::Datagram {
        from: server_udp(),
        data: &packet,
    });
    assert!(audio_events(&mut h).is_empty());
    assert_eq!(h.session().stats().dave_decrypt_failures, 1);
}

/// Feeds the peer's DAVE frames `sequences` as datagrams; returns the outputs.
fn peer_frames(
    h: &mut Harness,
    member: &mut davey::DaveSession,
    sequences: std::ops::RangeInclusive<u16>,
) -> Vec<Output> {
    let mut outs = Vec::new();
    for sequence in sequences {
        let opus = [0xfc, 0xff, sequence as u8];
        let frame = member.encrypt_opus(&opus).unwrap().to_vec();
        let packet = inbound(h, PEER_SSRC, sequence, &frame);
        outs.extend(h.feed(Input::Datagram {
            from: server_udp(),
            data: &packet,
        }));
    }
    outs
}

/// Frames waiting for their sender now, and DAVE decrypt failures so far.
fn waiting_and_failed(h: &mut Harness) -> (u64, u64) {
    let stats = h.session().stats();
    (stats.dave_frames_waiting, stats.dave_decrypt_failures)
}

fn unknown_sender_failures(outs: &[Output]) -> Vec<(u32, String)> {
    events(outs)
        .into_iter()
        .filter_map(|e| match e {
            Event::DaveDecryptFailed {
                user_id: None,
                ssrc,
                reason,
                ..
            } => Some((ssrc, reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn frames_that_arrive_before_op_5_are_delivered_once_it_maps_their_ssrc() {
    // The SFU relays the first packets of a talk spurt while op 5 is still on the websocket.
    let (mut h, mut member) = established_unmapped();
    let outs = peer_frames(&mut h, &mut member, 1..=3);
    assert!(audio_events(&mut h).is_empty(), "no sender known yet");
    assert!(
        unknown_sender_failures(&outs).is_empty(),
        "held, not dropped"
    );
    assert_eq!(waiting_and_failed(&mut h), (3, 0));

    h.now += std::time::Duration::from_millis(300);
    let outs = map_peer(&mut h);
    assert!(
        events(&outs)
            .iter()
            .any(|e| matches!(e, Event::Speaking { .. })),
        "the mapping is announced"
    );
    let audio = audio_events(&mut h);
    let delivered: Vec<(u16, Option<_>, Vec<u8>)> = audio
        .iter()
        .map(|a| (a.sequence, a.user_id, a.opus.clone()))
        .collect();
    assert_eq!(
        delivered,
        (1..=3u16)
            .map(|s| (s, Some(PEER), vec![0xfc, 0xff, s as u8]))
            .collect::<Vec<_>>(),
        "in arrival order, decrypted, attributed"
    );
    assert!(audio
        .iter()
        .all(|a| a.ssrc == PEER_SSRC && a.timestamp == u32::from(a.sequence) * 960));
    let stats = h.session().stats();
    assert_eq!(
        (
            stats.dave_frames_waiting,
            stats.packets_received,
            stats.dave_frames_decrypted
        ),
        (0, 3, 3)
    );
    // Later frames go straight through.
    let _ = peer_frames(&mut h, &mut member, 4..=4);
    assert_eq!(audio_events(&mut h).len(), 1);
}

#[test]
fn frames_whose_op_5_never_comes_fail_once_after_a_second() {
    let (mut h, mut member) = established_unmapped();
    peer_frames(&mut h, &mut member, 1..=2);
    let arrived = h.now;
    // The engine asks to be woken when the wait ends.
    let wake = wake_at(&h.collect()).expect("a wake-up");
    assert!(wake <= arrived + std::time::Duration::from_secs(1));

    let outs = h.run_until(arrived + std::time::Duration::from_millis(999));
    assert!(unknown_sender_failures(&outs).is_empty());
    let outs = h.run_until(arrived + std::time::Duration::from_secs(1));
    let failures = unknown_sender_failures(&outs);
    assert_eq!(failures.len(), 2, "each held frame is reported once");
    assert!(failures
        .iter()
        .all(|(ssrc, reason)| *ssrc == PEER_SSRC && reason.starts_with("unknown sender")));
    assert_eq!(waiting_and_failed(&mut h), (0, 2));
    assert_eq!(h.session().stats().packets_received, 0);
    // A late op 5 finds nothing left to deliver.
    assert!({
        map_peer(&mut h);
        audio_events(&mut h)
    }
    .is_empty());
    assert!(!h.session().is_closed());
}

#[test]
fn the_wait_is_bounded_and_the_oldest_frame_is_given_up_first() {
    let (mut h, mut member) = established_unmapped();
    let outs = peer_frames(&mut h, &mut member, 1..=64);
    assert!(unknown_sender_failures(&outs).is_empty());
    let outs = peer_frames(&mut h, &mut member, 65..=66);
    assert_eq!(unknown_sender_failures(&outs).len(), 2);
    assert_eq!(h.session().stats().dave_frames_waiting, 64);
    let sequences: Vec<u16> = {
        map_peer(&mut h);
        audio_events(&mut h)
    }
    .iter()
    .map(|a| a.sequence)
    .collect();
    assert_eq!(sequences, (3..=66).collect::<Vec<_>>());
}

#[test]
fn frames_still_waiting_when_the_media_session_ends_are_not_delivered_after_it() {
    let (mut h, mut member) = established_unmapped();
    peer_frames(&mut h, &mut member, 1..=2);
    // 4006: the session is gone; a fresh one brings new SSRCs and new keys.
    let outs = h.feed(Input::WebSocketClosed { code: Some(4006) });
    assert_eq!(unknown_sender_failures(&outs).len(), 2);
    assert!(h.state.error().is_none());
    // Rejoin; the new voice server's op 5 arrives before its Session Description.
    h.feed(Input::VoiceStateUpdate(state_dispatch()));
    h.feed(Input::VoiceServerUpdate(server_dispatch(TOKEN)));
    h.feed(Input::WebSocketOpened);
    assert!({
        map_peer(&mut h);
        audio_events(&mut h)
    }
    .is_empty());
    assert_eq!(waiting_and_failed(&mut h), (0, 2));
}

#[test]
fn frames_still_waiting_when_the_connection_ends_count_as_failures() {
    let (mut h, mut member) = established_unmapped();
    peer_frames(&mut h, &mut member, 1..=2);
    h.feed(Input::WebSocketClosed { code: Some(4017) });
    assert!(h.session().is_closed());
    assert_eq!(waiting_and_failed(&mut h), (0, 2));
}

#[test]
fn a_user_who_left_is_not_recognised_in_a_welcome() {
    // Recognised users = self + op 11 - op 13.
    let mut h = Harness::join(test_config());
    h.server.dave_protocol_version = 1;
    let outs = h.connect();
    let kp = key_packages(&outs).remove(0);
    let gateway = Gateway::new(CHANNEL);
    h.external_sender(&gateway);
    h.json(ServerMessage::ClientsConnect(ClientsConnect {
        user_ids: vec![PEER],
    }));
    h.json(ServerMessage::ClientDisconnect(
        voice_proto::payload::ClientDisconnect { user_id: PEER },
    ));
    let mut member = peer(PEER, &gateway);
    let cw = member
        .process_proposals(
            davey::ProposalsOperationType::APPEND,
            &gateway.propose_add(0, &kp),
            None,
        )
        .unwrap()
        .unwrap();
    let outs = h.welcome(8, cw.welcome.unwrap());
    assert_eq!(invalid_commit_welcome(&outs), vec![8]);
}

#[test]
fn debug_output_shows_no_mls_state() {
    let (mut h, _member) = established();
    let debug = format!("{:?}", h.session());
    assert!(debug.contains("has_session: true"), "{debug}");
    assert!(!debug.contains("DaveSession"), "{debug}");
    assert!(!debug.contains("signer"), "{debug}");
    assert!(
        !debug.contains(h.session().dave_privacy_code().unwrap()),
        "{debug}"
    );
}
