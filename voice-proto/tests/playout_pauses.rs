//! Findings of the `session` fuzz target's playout model: the 20 ms clock pauses while audio is
//! held and when a spurt is over (nothing is owed for that time, and no two packets share a
//! slot), and the wait before a fresh reconnect is reported as reconnecting, not resuming.

mod support;

use std::time::Duration;

use support::*;
use voice_proto::playout::{HoldReason, FRAME_DURATION};
use voice_proto::rtp::MAX_PACKET_LEN;
use voice_proto::{Event, Input, Recovery};

fn connected() -> Harness {
    connected_with(test_config())
}

fn connected_with(config: voice_proto::Config) -> Harness {
    let mut h = Harness::join(config);
    h.connect();
    h
}

/// Connected, ten frames queued, the first one out.
fn playing() -> Harness {
    playing_with(test_config())
}

fn playing_with(config: voice_proto::Config) -> Harness {
    let mut h = connected_with(config);
    for i in 1..=10u8 {
        h.session().queue_opus(&[i]).unwrap();
    }
    assert!(h.play_next().1.is_some());
    h
}

/// Datagrams `poll_transmit` gives at the harness's current time, until it has no more.
fn poll_now(h: &mut Harness) -> usize {
    let now = h.now;
    let mut buf = [0u8; MAX_PACKET_LEN];
    let mut sent = 0;
    while h.session().poll_transmit(now, &mut buf).is_some() {
        sent += 1;
        assert!(sent < 100);
    }
    h.collect();
    sent
}

/// After a close 4015: the resume completes (the new websocket opens, Hello, op 9).
fn resume(h: &mut Harness) {
    h.wait_out_backoff();
    resume_now(h);
}

/// The resume's websocket is open at once (no backoff configured): it completes.
fn resume_now(h: &mut Harness) {
    h.feed(Input::WebSocketOpened);
    let hello = h.server.hello();
    h.text(&hello);
    let resumed = h.server.frame(voice_proto::payload::ServerMessage::Resumed);
    h.text(&resumed);
}

#[test]
fn a_resume_owes_nothing_for_the_time_audio_was_held() {
    let mut h = playing();
    // The websocket drops and the resume takes 100 ms; a driver does not poll while
    // next_transmit() is None.
    h.feed(Input::WebSocketClosed { code: Some(4015) });
    assert_eq!(h.session().playout_hold(), Some(HoldReason::Resuming));
    assert_eq!(h.session().next_transmit(), None);
    h.advance(Duration::from_millis(100));
    resume(&mut h);
    assert!(
        h.now - h.start >= Duration::from_millis(350),
        "the backoff lasted"
    );
    assert_eq!(poll_now(&mut h), 0, "op 5 first on the new websocket");
    assert!(h.session().next_transmit().unwrap() <= h.now);
    assert_eq!(
        poll_now(&mut h),
        1,
        "one frame when sending resumes, not the five slots the hold lasted"
    );
    assert_eq!(h.session().next_transmit(), Some(h.now + FRAME_DURATION));
}

#[test]
fn a_short_hold_keeps_a_frame_between_packets() {
    // A hold shorter than a frame: only without a backoff before the resume.
    let mut h = playing_with({
        let mut config = test_config();
        config.reconnect_backoff_initial = Duration::ZERO;
        config
    });
    let slot = h.now + FRAME_DURATION;
    h.advance(Duration::from_millis(5));
    h.feed(Input::WebSocketClosed { code: Some(4015) });
    // A driver that polls during the hold.
    assert_eq!(poll_now(&mut h), 0);
    h.advance(Duration::from_millis(5));
    resume_now(&mut h);
    assert_eq!(
        poll_now(&mut h),
        0,
        "10 ms after the last packet: nothing yet, not even op 5"
    );
    assert_eq!(h.session().next_transmit(), Some(slot));
    h.now = slot;
    assert_eq!(poll_now(&mut h), 0, "op 5");
    assert_eq!(poll_now(&mut h), 1);
}

#[test]
fn a_spurt_after_the_trailing_silence_starts_on_a_schedule_of_its_own() {
    let mut h = connected();
    h.send_frame(&[1]);
    // The five silence frames, each polled at its slot as next_transmit() says; after the fifth
    // it says None, so the driver does not poll again.
    assert_eq!(h.play_all().len(), 5);
    assert_eq!(h.session().next_transmit(), None);
    h.advance(Duration::from_millis(150));
    for i in 2..=6u8 {
        h.session().queue_opus(&[i]).unwrap();
    }
    assert_eq!(poll_now(&mut h), 0, "op 5 for the new spurt");
    assert_eq!(
        poll_now(&mut h),
        1,
        "the new spurt starts now: its frames were not due during the pause"
    );
    assert_eq!(h.session().next_transmit(), Some(h.now + FRAME_DURATION));
}

#[test]
fn the_backoff_before_a_fresh_reconnect_is_no_resume() {
    let mut h = connected();
    h.session().queue_opus(&[1]).unwrap();
    h.session().queue_opus(&[2]).unwrap();
    assert!(h.play_next().1.is_some());
    h.feed(Input::WebSocketClosed { code: Some(4015) });
    assert_eq!(h.session().playout_hold(), Some(HoldReason::Resuming));
    // The resume socket is closed with 4006: a fresh reconnect after a backoff. The media
    // session is gone at once (no keepalives to it while backing off), and no resume is coming.
    h.wait_out_backoff();
    h.feed(Input::WebSocketOpened);
    let outs = h.feed(Input::WebSocketClosed { code: Some(4006) });
    assert!(events(&outs).contains(&Event::Reconnecting {
        recovery: Recovery::Reconnect,
        code: Some(4006),
        attempt: 2,
    }));
    assert!(!h.session().has_media());
    let reason = HoldReason::Reconnecting;
    assert_eq!(h.session().playout_hold(), Some(reason));
    assert!(events(&outs).contains(&Event::PlayoutHeld { reason }));
}
