//! Receiving through a whole session on a fake clock: off by default (nothing decrypted), then
//! packets (with a header extension, C27-C29) decrypted for the negotiated mode, ordered by their
//! sender's playout buffer and attributed through op 5 / 13 (C30); the buffer's deadlines are
//! wake-ups; duplicates and late packets cost no decryption; op 5 with flags 0, op 13 and the end
//! of the media session end a spurt; an application that does not take its audio loses frames
//! (counted, reported as a loss), never a control event.

mod support;

use std::time::Duration;

use support::*;
use voice_proto::payload::{ClientDisconnect, ServerMessage, Speaking, SpeakingFlags};
use voice_proto::receive::{Item, ReceiveConfig, Received, SpurtEnd};
use voice_proto::rtp::SILENCE_FRAME;
use voice_proto::{Config, Event, Input, Output};

const THEIR_SSRC: u32 = 4242;

/// A packet as Discord relays it: X=1 with a one-byte extension, then the Opus frame.
fn inbound(h: &Harness, sequence: u16, opus: &[u8]) -> Vec<u8> {
    relayed_packet(
        h.server.mode,
        h.server.key,
        THEIR_SSRC,
        sequence,
        u32::from(sequence),
        opus,
    )
}

/// An Opus frame that names its sequence.
fn opus(sequence: u16) -> Vec<u8> {
    vec![0xFC, (sequence >> 8) as u8, sequence as u8]
}

fn send(h: &mut Harness, sequence: u16) -> Vec<Output> {
    let packet = inbound(h, sequence, &opus(sequence));
    h.feed(Input::Datagram {
        from: server_udp(),
        data: &packet,
    })
}

fn send_silence(h: &mut Harness, sequence: u16) -> Vec<Output> {
    let packet = inbound(h, sequence, &SILENCE_FRAME);
    h.feed(Input::Datagram {
        from: server_udp(),
        data: &packet,
    })
}

fn op5(h: &mut Harness, flags: SpeakingFlags) -> Vec<Output> {
    let speaking = h.server.frame(ServerMessage::Speaking(Speaking {
        speaking: flags,
        delay: 0,
        ssrc: THEIR_SSRC,
        user_id: Some(OTHER_USER),
    }));
    h.text(&speaking)
}

/// The items received since the last call, compactly (`support::compact`).
fn items(h: &mut Harness) -> Vec<String> {
    h.received.drain(..).map(|r| compact(r.item)).collect()
}

/// A connected session receiving with `receive`.
fn receiving(receive: ReceiveConfig) -> Harness {
    let mut h = Harness::join({
        let mut value = test_config();
        value.receive = Some(receive);
        value
    });
    h.connect();
    h
}

#[test]
fn receive_is_off_by_default_and_decrypts_nothing() {
    let mut h = Harness::join({
        let mut value = test_config();
        value.receive = None;
        value
    });
    h.connect();
    assert_eq!(Config::default().receive, None, "off by default");
    let good = inbound(&h, 1, &opus(1));
    let mut tampered = inbound(&h, 2, &opus(2));
    let last = tampered.len() - 5;
    tampered[last] ^= 1;
    for packet in [&good, &tampered] {
        h.feed(Input::Datagram {
            from: server_udp(),
            data: packet,
        });
    }
    let stats = h.session().stats();
    assert_eq!(
        (
            stats.datagrams_ignored,
            stats.decrypt_failures,
            stats.packets_received
        ),
        (2, 0, 0),
        "neither packet was decrypted"
    );
    assert!(h.session().poll_received().is_none());
    assert!(h.session().receive_stats().is_none());
    assert!(h.received.is_empty());
}

#[test]
fn audio_is_decrypted_ordered_and_attributed_once_op_5_names_the_sender() {
    let mut h = receiving(ReceiveConfig::default());
    // 2 overtakes 1; the new sender is held for the depth (60 ms), op 5 comes meanwhile.
    let outs = send(&mut h, 2);
    assert_eq!(
        wake_at(&outs),
        Some(h.now + Duration::from_millis(60)),
        "the buffer's deadline is the next wake-up"
    );
    h.now += Duration::from_millis(10);
    send(&mut h, 1);
    op5(&mut h, SpeakingFlags::MICROPHONE);
    h.now += Duration::from_millis(10);
    send(&mut h, 3);
    assert!(h.received.is_empty(), "still held");
    h.advance(Duration::from_millis(40));
    let received: Vec<Received> = h.received.clone();
    assert_eq!(items(&mut h), strings(&["S", "F1", "F2", "F3"]));
    assert!(received
        .iter()
        .all(|r| r.ssrc == THEIR_SSRC && r.user_id == Some(OTHER_USER)));
    assert!(matches!(
        &received[1].item,
        Item::Frame(frame) if frame.opus.as_ref() == opus(1).as_slice() && frame.timestamp == 960
    ));
    // Then each frame as it arrives, and the trailing silence ends the spurt.
    send(&mut h, 4);
    for sequence in 5..10 {
        send_silence(&mut h, sequence);
    }
    assert_eq!(
        items(&mut h),
        strings(&["F4", "Z5", "Z6", "Z7", "Z8", "Z9", "ESilence"])
    );
    let stats = h.session().receive_stats().expect("receive is on");
    assert_eq!(
        (stats.buffers.frames, stats.buffers.spurts, stats.streams),
        (9, 1, 1)
    );
    assert_eq!(h.session().user_for_ssrc(THEIR_SSRC), Some(OTHER_USER));
}

#[test]
fn a_missing_frame_is_waited_for_on_a_wake_up_then_reported_lost() {
    let mut h = receiving(ReceiveConfig::default());
    send(&mut h, 1);
    h.advance(Duration::from_millis(60));
    items(&mut h);
    h.now += Duration::from_millis(40);
    let outs = send(&mut h, 3);
    assert_eq!(wake_at(&outs), Some(h.now + Duration::from_millis(60)));
    assert!(h.received.is_empty());
    h.advance(Duration::from_millis(60));
    assert_eq!(items(&mut h), strings(&["L2x1", "F3"]));
    let stats = h.session().receive_stats().expect("on");
    assert_eq!(stats.buffers.lost, 1);
}

#[test]
fn duplicates_and_late_packets_cost_no_decryption() {
    let mut h = receiving(immediate_receive());
    send(&mut h, 1);
    send(&mut h, 3);
    assert_eq!(items(&mut h), strings(&["S", "F1", "L2x1", "F3"]));
    // The same sequences again, tampered: refused before decryption, so no decrypt failure.
    for sequence in [1u16, 2, 3] {
        let mut packet = inbound(&h, sequence, &opus(sequence));
        let last = packet.len() - 5;
        packet[last] ^= 1;
        h.feed(Input::Datagram {
            from: server_udp(),
            data: &packet,
        });
    }
    let stats = h.session().stats();
    assert_eq!(
        (
            stats.packets_received,
            stats.packets_skipped,
            stats.decrypt_failures
        ),
        (2, 3, 0)
    );
    let buffers = h.session().receive_stats().expect("on").buffers;
    assert_eq!((buffers.duplicates, buffers.late), (2, 1));
    assert!(h.received.is_empty());
}

#[test]
fn op_5_with_flags_0_ends_the_spurt() {
    let mut h = receiving(ReceiveConfig::default());
    op5(&mut h, SpeakingFlags::MICROPHONE);
    send(&mut h, 1);
    send(&mut h, 3);
    op5(&mut h, SpeakingFlags::NONE);
    assert_eq!(
        items(&mut h),
        strings(&["S", "F1", "L2x1", "F3", "ESpeaking"]),
        "what was buffered leaves at once, then the end"
    );
}

#[test]
fn op_13_ends_the_spurt_and_forgets_the_sender() {
    let mut h = receiving(immediate_receive());
    op5(&mut h, SpeakingFlags::MICROPHONE);
    send(&mut h, 1);
    let gone = h
        .server
        .frame(ServerMessage::ClientDisconnect(ClientDisconnect {
            user_id: OTHER_USER,
        }));
    h.text(&gone);
    assert_eq!(items(&mut h), strings(&["S", "F1", "ELeft"]));
    assert_eq!(h.session().user_for_ssrc(THEIR_SSRC), None);
    assert_eq!(h.session().receive_stats().expect("on").streams, 0);
}

#[test]
fn a_fresh_session_ends_every_spurt_and_a_resume_keeps_them() {
    let mut h = receiving(immediate_receive());
    send(&mut h, 1);
    items(&mut h);
    // A resume keeps the media session: the spurt goes on.
    h.feed(Input::WebSocketClosed { code: Some(4015) });
    h.wait_out_backoff();
    h.feed(Input::WebSocketOpened);
    let resumed = h.server.frame(ServerMessage::Resumed);
    h.text(&resumed);
    send(&mut h, 2);
    assert_eq!(items(&mut h), strings(&["F2"]));
    // A fresh session hands SSRCs out anew.
    h.feed(Input::WebSocketClosed { code: Some(4006) });
    assert_eq!(items(&mut h), strings(&["ESessionEnded"]));
    assert_eq!(h.session().receive_stats().expect("on").streams, 0);
}

#[test]
fn an_application_that_does_not_take_its_audio_loses_frames_never_control_events() {
    let mut h = receiving(ReceiveConfig {
        queue_frames: 4,
        ..immediate_receive()
    });
    // Fed and drained by hand: nobody calls poll_received.
    let mut events = Vec::new();
    for sequence in 1..=20u16 {
        let packet = inbound(&h, sequence, &opus(sequence));
        let _ = h.state.handle_input(
            h.now,
            Input::Datagram {
                from: server_udp(),
                data: &packet,
            },
        );
        events.extend(support::events(&drain(&mut h.state)));
    }
    let _ = h
        .state
        .handle_input(h.now, Input::WebSocketClosed { code: Some(4015) });
    events.extend(support::events(&drain(&mut h.state)));
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Reconnecting {
                code: Some(4015),
                ..
            }
        )),
        "{events:?}"
    );
    let stats = h.session().receive_stats().expect("on");
    assert_eq!(stats.dropped, 16);
    h.collect();
    assert_eq!(
        items(&mut h),
        strings(&["S", "F1", "F2", "F3", "F4", "L5x16"]),
        "the frames that did not fit come back as one loss"
    );
}

#[test]
fn senders_are_bounded_and_the_least_recently_heard_is_evicted() {
    let mut h = receiving(immediate_receive());
    let streams = voice_proto::limits::RECEIVE_STREAMS as u32;
    for ssrc in 0..=streams {
        let packet = relayed_packet(
            h.server.mode,
            h.server.key,
            10_000 + ssrc,
            1,
            ssrc,
            &opus(1),
        );
        h.now += Duration::from_millis(1);
        h.feed(Input::Datagram {
            from: server_udp(),
            data: &packet,
        });
    }
    let stats = h.session().receive_stats().expect("on");
    assert_eq!(stats.streams, streams as usize);
    let evicted: Vec<u32> = h
        .received
        .iter()
        .filter(|r| r.item == Item::SpurtEnded(SpurtEnd::Evicted))
        .map(|r| r.ssrc)
        .collect();
    assert_eq!(
        evicted,
        [10_000],
        "the first sender, heard from least recently"
    );
}
