//! Unacknowledged heartbeats: after the configured number of misses the socket is abandoned with
//! a non-1000 code and the session resumes (C10).

mod support;

use std::time::Duration;

use support::*;
use voice_proto::payload::ClientMessage;
use voice_proto::{Event, Input, Output, Recovery};

#[test]
fn two_missed_acks_close_4000_and_resume_after_a_backoff() {
    let mut h = Harness::join(test_config());
    h.connect();
    let hello_at = h.now;
    let interval = Duration::from_millis(HEARTBEAT_MS);
    let backoff = test_config().backoff(1);
    let outs = h.run_until(hello_at + interval * 3 + backoff);
    let beats = client_messages(&outs)
        .into_iter()
        .filter(|m| matches!(m, ClientMessage::Heartbeat(_)))
        .count();
    assert_eq!(beats, 2, "beats at 1 and 2 intervals, none acknowledged");
    assert!(outs.contains(&Output::CloseWebSocket { code: 4000 }));
    assert!(events(&outs).iter().any(|e| matches!(
        e,
        Event::Reconnecting {
            recovery: Recovery::Resume,
            code: None,
            ..
        }
    )));
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::OpenWebSocket { .. })));
}

#[test]
fn acknowledged_heartbeats_keep_the_socket() {
    let mut h = Harness::join(test_config());
    h.connect();
    let interval = Duration::from_millis(HEARTBEAT_MS);
    for _ in 0..10 {
        let outs = h.advance(interval);
        let beat = client_messages(&outs)
            .into_iter()
            .find_map(|m| match m {
                ClientMessage::Heartbeat(b) => Some(b),
                _ => None,
            })
            .expect("a beat each interval");
        let ack = h.server.ack(beat.t);
        h.text(&ack);
    }
    assert!(!h
        .log
        .iter()
        .any(|o| matches!(o, Output::CloseWebSocket { .. })));
}

#[test]
fn heartbeat_interval_is_capped_by_config() {
    let mut config = test_config();
    config.max_heartbeat_interval = Some(Duration::from_millis(250));

    let mut h = Harness::join(config);
    h.connect();
    let outs = h.advance(Duration::from_millis(250));
    assert!(client_messages(&outs)
        .iter()
        .any(|m| matches!(m, ClientMessage::Heartbeat(_))));
}

#[test]
fn a_bad_hello_interval_is_a_protocol_error() {
    let mut h = Harness::join(test_config());
    h.feed(Input::VoiceStateUpdate(state_dispatch()));
    h.feed(Input::VoiceServerUpdate(server_dispatch(TOKEN)));
    h.feed(Input::WebSocketOpened);
    h.text(r#"{"op":8,"d":{"heartbeat_interval":-5}}"#);
    // Either rejected at decode (ignored frame) or as a protocol error: never a panic, never a
    // heartbeat schedule of -5 ms.
    let outs = h.advance(Duration::from_millis(1));
    assert!(!client_messages(&outs)
        .iter()
        .any(|m| matches!(m, ClientMessage::Heartbeat(_))));
}
