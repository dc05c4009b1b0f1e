//! Malformed DAVE input never panics and never ends the connection: bad binary payloads for ops
//! 25, 27, 29, 30, odd JSON values for ops 21, 22, 24, and garbage DAVE frames on the media path
//! end as events.
#![cfg(feature = "dave")]

mod support;

use proptest::prelude::*;
use support::dave::*;
use support::*;
use voice_proto::payload::{
    ClientsConnect, ProposalsOperation, ServerMessage, Speaking, SpeakingFlags,
};
use voice_proto::Input;

/// A connected DAVE session with a pending group (external sender set) and one recognised peer.
fn harness() -> Harness {
    let mut h = Harness::join(test_config());
    h.server.dave_protocol_version = 1;
    h.connect();
    let gateway = Gateway::new(CHANNEL);
    h.external_sender(&gateway);
    h.json(ServerMessage::ClientsConnect(ClientsConnect {
        user_ids: vec![OTHER_USER],
    }));
    h.json(ServerMessage::Speaking(Speaking {
        speaking: SpeakingFlags::MICROPHONE,
        delay: 0,
        ssrc: 4242,
        user_id: Some(OTHER_USER),
    }));
    h
}

/// An established group (the engine committed the peer's addition, transition 0 executed).
fn established() -> (Harness, davey::DaveSession) {
    let mut h = harness();
    let gateway = Gateway::new(CHANNEL);
    // A fresh gateway: the harness's pending group used another external sender.
    h.prepare_epoch(1, 1);
    h.external_sender(&gateway);
    let mut member = peer(OTHER_USER, &gateway);
    let kp = member.create_key_package().unwrap();
    let outs = h.proposals(gateway.propose_add(0, &kp));
    let (commit, welcome) = split_commit_welcome(&commit_welcomes(&outs)[0]);
    h.commit(0, commit);
    member
        .process_welcome(&welcome.unwrap(), Some(&[USER.0, OTHER_USER.0]))
        .unwrap();
    member.prepare_transition(0, 1).unwrap();
    assert_eq!(
        h.session().dave_status(),
        voice_proto::dave::DaveStatus::Active
    );
    (h, member)
}

#[derive(Debug, Clone)]
enum Step {
    ExternalSender(Vec<u8>),
    Proposals(u8, Vec<u8>),
    Commit(u16, Vec<u8>),
    Welcome(u16, Vec<u8>),
    Prepare(u16, u16),
    Execute(u16),
    Epoch(u16, u64),
    RawBinary(Vec<u8>),
    Media(Vec<u8>),
}

fn step() -> impl Strategy<Value = Step> {
    let bytes = || proptest::collection::vec(any::<u8>(), 0..96);
    prop_oneof![
        bytes().prop_map(Step::ExternalSender),
        (any::<u8>(), bytes()).prop_map(|(op, b)| Step::Proposals(op, b)),
        (any::<u16>(), bytes()).prop_map(|(t, b)| Step::Commit(t, b)),
        (any::<u16>(), bytes()).prop_map(|(t, b)| Step::Welcome(t, b)),
        (0u16..3, any::<u16>()).prop_map(|(v, t)| Step::Prepare(v, t)),
        any::<u16>().prop_map(Step::Execute),
        (0u16..3, 0u64..4).prop_map(|(v, e)| Step::Epoch(v, e)),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(Step::RawBinary),
        // Frames that look like DAVE frames (FA FA marker, plausible size byte) and others.
        (bytes(), any::<u8>(), any::<bool>()).prop_map(|(mut b, size, marked)| {
            if marked {
                b.push(size);
                b.extend([0xFA, 0xFA]);
            }
            Step::Media(b)
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn malformed_dave_input_never_panics_nor_disconnects(steps in proptest::collection::vec(step(), 1..8)) {
        let mut h = harness();
        for step in steps {
            apply(&mut h, step);
            prop_assert!(!h.session().is_closed(), "DAVE input closed the connection");
        }
        // Sending still behaves: a packet, or the frame held with a reason.
        h.session().queue_opus(&[1, 2, 3]).unwrap();
        if h.play_next().1.is_none() {
            prop_assert!(h.session().playout_hold().is_some());
        }
    }

    #[test]
    fn malformed_input_to_an_established_group_never_panics(
        steps in proptest::collection::vec(step(), 1..6),
        tamper in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
    ) {
        let (mut h, mut member) = established();
        for step in steps {
            apply(&mut h, step);
            prop_assert!(!h.session().is_closed(), "DAVE input closed the connection");
        }
        // A real frame from the peer with a few bytes changed: decrypted or reported, never a panic.
        let mut frame = member.encrypt_opus(&[9, 8, 7, 6]).unwrap().to_vec();
        for (at, value) in tamper {
            let len = frame.len();
            frame[at % len] = value;
        }
        let packet = inbound(&h, 4242, 500, &frame);
        h.feed(Input::Datagram { from: server_udp(), data: &packet });
        prop_assert!(!h.session().is_closed());
    }
}

fn apply(h: &mut Harness, step: Step) {
    match step {
        Step::ExternalSender(b) => {
            h.binary(ServerMessage::DaveMlsExternalSender(b));
        }
        Step::Proposals(op, b) => {
            h.binary(ServerMessage::DaveMlsProposals {
                operation: ProposalsOperation::from_u8(op),
                proposals: b,
            });
        }
        Step::Commit(t, b) => {
            h.commit(t, b);
        }
        Step::Welcome(t, b) => {
            h.welcome(t, b);
        }
        Step::Prepare(v, t) => {
            h.prepare_transition(v, t);
        }
        Step::Execute(t) => {
            h.execute(t);
        }
        Step::Epoch(v, e) => {
            h.prepare_epoch(v, e);
        }
        Step::RawBinary(mut b) => {
            let op = 25 + b.first().copied().unwrap_or(0) % 6;
            let mut frame = vec![0, 99, op];
            frame.append(&mut b);
            h.feed(Input::Binary(&frame));
        }
        Step::Media(payload) => {
            if !payload.is_empty() {
                let packet = inbound(h, 4242, 7, &payload);
                h.feed(Input::Datagram {
                    from: server_udp(),
                    data: &packet,
                });
            }
        }
    }
}
