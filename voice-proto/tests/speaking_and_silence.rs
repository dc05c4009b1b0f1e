//! The playout on a fake clock: the 20 ms schedule, op 5 before audio (C20), the five silence
//! frames and Speaking 0 at the end of a spurt (C21), the queue's bounds, flush, and the end.

mod support;

use std::time::Duration;

use support::*;
use voice_proto::payload::{ClientMessage, SpeakingFlags};
use voice_proto::playout::{QueueError, FRAME_DURATION, MAX_LAG};
use voice_proto::rtp::{MAX_OPUS_FRAME_LEN, MAX_PACKET_LEN, SILENCE_FRAME};
use voice_proto::Output;

fn connected() -> Harness {
    let mut h = Harness::join(test_config());
    h.connect();
    h
}

fn opus_of(h: &Harness, datagram: &[u8]) -> Vec<u8> {
    h.server.open_audio(datagram).1
}

#[test]
fn explicit_flags_are_announced_once_and_used_for_audio() {
    let mut h = connected();
    let flags = SpeakingFlags::MICROPHONE | SpeakingFlags::PRIORITY;
    h.session().speaking(flags);
    let sent = client_messages(&h.collect());
    assert!(matches!(sent.as_slice(), [ClientMessage::Speaking(s)] if s.speaking == flags));
    let (outs, _) = h.send_frame(&[1]);
    assert!(client_messages(&outs).is_empty(), "already announced");
}

#[test]
fn no_datagram_until_the_op_5_it_queued_was_taken() {
    let mut h = connected();
    let now = h.now;
    h.session().queue_opus(&[1, 2]).unwrap();
    let mut buf = [0u8; MAX_PACKET_LEN];
    assert_eq!(h.session().poll_transmit(now, &mut buf), None);
    // Op 5 waits in the outputs: nothing is due until it has been taken.
    assert_eq!(h.session().next_transmit(), None);
    assert_eq!(h.session().poll_transmit(now, &mut buf), None);
    let sent = client_messages(&h.collect());
    assert!(
        matches!(sent.as_slice(), [ClientMessage::Speaking(s)] if s.speaking == SpeakingFlags::MICROPHONE)
    );
    assert_eq!(h.session().next_transmit(), Some(now));
    let transmit = h.session().poll_transmit(now, &mut buf).unwrap();
    assert_eq!(opus_of(&h, &buf[..transmit.len]), [1, 2]);
}

#[test]
fn frames_go_out_every_20_ms_on_a_drift_free_schedule() {
    let mut h = connected();
    for i in 0..10u8 {
        h.session().queue_opus(&[i + 1]).unwrap();
    }
    let t0 = h.now;
    let mut buf = [0u8; MAX_PACKET_LEN];
    let mut sent = Vec::new();
    // Poll 3 ms late every time: the slots stay on the 20 ms grid from the first packet.
    let (_, first) = h.play_next();
    sent.push(opus_of(&h, &first.unwrap()));
    let start = h.now;
    assert_eq!(start, t0);
    for i in 1..10u32 {
        let slot = start + FRAME_DURATION * i;
        assert_eq!(h.session().next_transmit(), Some(slot));
        assert_eq!(
            h.session()
                .poll_transmit(slot - Duration::from_millis(1), &mut buf),
            None,
            "not before its slot"
        );
        let late = slot + Duration::from_millis(3);
        let transmit = h.session().poll_transmit(late, &mut buf).unwrap();
        sent.push(opus_of(&h, &buf[..transmit.len]));
        assert_eq!(
            h.session().poll_transmit(late, &mut buf),
            None,
            "one per slot"
        );
    }
    let expected: Vec<Vec<u8>> = (1..=10u8).map(|i| vec![i]).collect();
    assert_eq!(sent, expected);
}

#[test]
fn a_late_driver_gets_the_overdue_packets_at_once_and_a_stall_restarts_the_schedule() {
    let mut h = connected();
    for i in 0..30u8 {
        h.session().queue_opus(&[i + 1]).unwrap();
    }
    h.play_next();
    let start = h.now;
    let mut buf = [0u8; MAX_PACKET_LEN];
    // 100 ms late: the five overdue packets come out in one go (a burst, not a loss).
    let late = start + Duration::from_millis(100);
    let mut burst = 0;
    while h.session().poll_transmit(late, &mut buf).is_some() {
        burst += 1;
    }
    assert_eq!(burst, 5);
    assert_eq!(
        h.session().next_transmit(),
        Some(start + FRAME_DURATION * 6)
    );
    // A stall beyond MAX_LAG: one packet, then the schedule restarts from now.
    let stalled = start + Duration::from_secs(2);
    assert!(h.session().poll_transmit(stalled, &mut buf).is_some());
    let next = h.session().next_transmit().unwrap();
    assert!(next <= stalled + FRAME_DURATION && next + MAX_LAG >= stalled);
}

#[test]
fn an_underrun_sends_five_silence_frames_then_speaking_zero_then_goes_quiet() {
    let mut h = connected();
    let (_, first) = h.send_frame(&[9, 9]);
    let (first_header, _) = h.server.open_audio(&first);
    assert!(!h.session().playout_idle(), "the spurt is not over");
    let mut silences = Vec::new();
    loop {
        let (outs, datagram) = h.play_next();
        let Some(datagram) = datagram else { break };
        silences.push(datagram);
        let sent = client_messages(&outs);
        if silences.len() < 5 {
            assert!(sent.is_empty());
        } else {
            assert!(
                matches!(sent.as_slice(), [ClientMessage::Speaking(s)] if s.speaking == SpeakingFlags::NONE),
                "Speaking 0 right after the fifth silence frame (C21)"
            );
        }
    }
    assert_eq!(silences.len(), 5);
    for (i, packet) in silences.iter().enumerate() {
        let (header, opus) = h.server.open_audio(packet);
        assert_eq!(opus, SILENCE_FRAME);
        let step = u16::try_from(i + 1).unwrap();
        assert_eq!(header.sequence, first_header.sequence.wrapping_add(step));
        assert_eq!(
            header.timestamp,
            first_header.timestamp.wrapping_add(960 * u32::from(step))
        );
    }
    assert!(h.session().playout_idle());
    assert_eq!(h.session().next_transmit(), None, "quiet");
    assert!(matches!(h.collect().last(), Some(Output::WakeAt(_))));
    // The next spurt announces again.
    let (outs, _) = h.send_frame(&[1]);
    assert!(
        matches!(client_messages(&outs).as_slice(), [ClientMessage::Speaking(s)] if s.speaking == SpeakingFlags::MICROPHONE)
    );
}

#[test]
fn a_frame_during_the_trailing_silence_continues_the_spurt() {
    let mut h = connected();
    h.send_frame(&[1]);
    let (_, silence) = h.play_next();
    assert_eq!(opus_of(&h, &silence.unwrap()), SILENCE_FRAME);
    let (outs, datagram) = h.send_frame(&[2]);
    assert_eq!(opus_of(&h, &datagram), [2]);
    assert!(client_messages(&outs).is_empty(), "still announced");
    // A fresh underrun starts a full five-frame silence again.
    let rest = h.play_all();
    assert_eq!(rest.len(), 5);
}

#[test]
fn stop_speaking_drops_the_queue_and_ends_the_spurt() {
    let mut h = connected();
    h.send_frame(&[1]);
    for _ in 0..7 {
        h.session().queue_opus(&[2]).unwrap();
    }
    assert_eq!(h.session().stop_speaking(), 7);
    assert_eq!(h.session().queued_frames(), 0);
    let rest = h.play_all();
    assert_eq!(rest.len(), 5);
    assert!(rest.iter().all(|d| opus_of(&h, d) == SILENCE_FRAME));
    let sent = client_messages(&h.log);
    assert!(
        matches!(sent.last(), Some(ClientMessage::Speaking(s)) if s.speaking == SpeakingFlags::NONE)
    );
}

#[test]
fn stop_without_audio_sends_nothing() {
    let mut h = connected();
    assert_eq!(h.session().stop_speaking(), 0);
    assert!(h.play_all().is_empty());
    assert!(h.session().playout_idle());
}

#[test]
fn the_queue_is_bounded_and_checks_frames() {
    let mut h = Harness::join({
        let mut config = test_config();
        config.playout_queue_frames = 3;
        config
    });
    h.connect();
    let session = h.session();
    assert_eq!(session.queue_capacity(), 3);
    assert_eq!(
        session.queue_opus(&[]),
        Err(QueueError::BadFrameLength { len: 0 })
    );
    assert_eq!(
        session.queue_opus(&[0; MAX_OPUS_FRAME_LEN + 1]),
        Err(QueueError::BadFrameLength {
            len: MAX_OPUS_FRAME_LEN + 1
        })
    );
    session.queue_opus(&[0; MAX_OPUS_FRAME_LEN]).unwrap();
    session.queue_opus(&[1]).unwrap();
    session.queue_opus(&[2]).unwrap();
    assert_eq!(
        session.queue_opus(&[3]),
        Err(QueueError::Full { capacity: 3 })
    );
    assert_eq!(session.queued_frames(), 3);
    assert_eq!(session.stats().frames_queued, 3);
    // The largest frame fits the packet buffer.
    let (_, first) = h.play_next();
    assert_eq!(opus_of(&h, &first.unwrap()).len(), MAX_OPUS_FRAME_LEN);
    h.session().queue_opus(&[3]).unwrap();
}

#[test]
fn flush_completes_after_the_frames_and_the_silence() {
    let mut h = connected();
    assert!(h.session().playout_idle());
    h.session().queue_opus(&[1]).unwrap();
    h.session().queue_opus(&[2]).unwrap();
    assert!(!h.session().playout_idle());
    let mut out = 0;
    while !h.session().playout_idle() {
        assert!(h.play_next().1.is_some());
        out += 1;
    }
    assert_eq!(out, 2 + 5);
}

#[test]
fn wake_at_includes_the_playout_clock() {
    let mut h = connected();
    h.feed(voice_proto::Input::Timer); // the first UDP keepalive is due at once
    h.send_frame(&[1]);
    h.session().queue_opus(&[2]).unwrap();
    let due = h.session().next_transmit().unwrap();
    assert_eq!(due, h.now + FRAME_DURATION);
    assert!(
        h.session().next_timer().unwrap() > due,
        "heartbeat is later"
    );
    assert_eq!(h.collect().last(), Some(&Output::WakeAt(due)));
}

#[test]
fn the_end_drops_the_queue_and_refuses_more() {
    let mut h = connected();
    h.session().queue_opus(&[1]).unwrap();
    h.session().disconnect();
    h.collect();
    assert!(h.session().playout_idle(), "flush returns at the end");
    assert_eq!(h.session().queued_frames(), 0);
    assert_eq!(h.session().queue_opus(&[2]), Err(QueueError::Closed));
    assert_eq!(h.session().next_transmit(), None);
    let mut buf = [0u8; MAX_PACKET_LEN];
    let now = h.now;
    assert_eq!(h.session().poll_transmit(now, &mut buf), None);
}
