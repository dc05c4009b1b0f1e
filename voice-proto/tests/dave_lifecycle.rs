//! Issue 14 row 10: audio held for DAVE keys (a bot alone in the channel, where Discord commits
//! no group of one) does not wait in silence: `PlayoutHeld { DaveKeysPending }` when the wait
//! starts, `PlayoutResumed` when the keys are in and the held audio goes out end-to-end
//! encrypted, each reported once.
#![cfg(feature = "dave")]

mod support;

use support::dave::*;
use support::*;
use voice_proto::dave::DaveStatus;
use voice_proto::payload::{ClientsConnect, ServerMessage};
use voice_proto::playout::HoldReason;
use voice_proto::Event;

const OPUS: [u8; 6] = [0xfc, 0xff, 0xfe, 0x01, 0x02, 0x03];

fn holds(h: &Harness) -> Vec<Event> {
    events(&h.log)
        .into_iter()
        .filter(|e| matches!(e, Event::PlayoutHeld { .. } | Event::PlayoutResumed { .. }))
        .collect()
}

#[test]
fn a_bot_alone_is_told_its_audio_waits_for_dave_keys_and_when_it_flows() {
    let mut h = Harness::join(test_config());
    h.server.dave_protocol_version = 1;
    h.connect();
    let gateway = Gateway::new(CHANNEL);
    h.external_sender(&gateway);
    // Alone: no key. The first queued frame starts the wait, reported at once.
    h.session().queue_opus(&OPUS).unwrap();
    let outs = h.collect();
    let reason = HoldReason::DaveKeysPending;
    assert!(events(&outs).contains(&Event::PlayoutHeld { reason }));
    assert_eq!(h.session().playout_hold(), Some(reason));
    // More frames and time change nothing: no second event, nothing sent.
    h.session().queue_opus(&OPUS).unwrap();
    h.advance(std::time::Duration::from_secs(5));
    assert_eq!(h.play_next().1, None);
    assert_eq!(holds(&h), [Event::PlayoutHeld { reason }]);

    // Someone joins: their key package is proposed, we commit, the keys are in.
    h.json(ServerMessage::ClientsConnect(ClientsConnect {
        user_ids: vec![OTHER_USER],
    }));
    let mut member = peer(OTHER_USER, &gateway);
    let kp = member.create_key_package().unwrap();
    let outs = h.proposals(gateway.propose_add(0, &kp));
    let (commit, welcome) = split_commit_welcome(&commit_welcomes(&outs)[0]);
    let outs = h.commit(0, commit);
    assert_eq!(h.session().dave_status(), DaveStatus::Active);
    assert!(events(&outs).contains(&Event::PlayoutResumed { reason }));
    assert_eq!(
        holds(&h),
        [
            Event::PlayoutHeld { reason },
            Event::PlayoutResumed { reason }
        ],
        "the wait is reported once, start and end"
    );
    // The held frames go out, DAVE-encrypted, in order.
    member
        .process_welcome(&welcome.expect("a welcome"), Some(&[USER.0, OTHER_USER.0]))
        .unwrap();
    member.prepare_transition(0, 1).unwrap();
    for _ in 0..2 {
        let (_, datagram) = h.play_next();
        let (_, frame) = h.server.open_audio(&datagram.expect("the held frame"));
        assert_eq!(decrypt_from(&mut member, USER, &frame), OPUS);
    }
}
