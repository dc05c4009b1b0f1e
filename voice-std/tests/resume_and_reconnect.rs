//! Close 4015 mid-stream resumes (same SSRC, the server checks seq_ack); close 4006 identifies
//! afresh (new SSRC, new UDP). No frame is lost either way.

mod common;

use std::time::Duration;

use common::*;
use voice_std::{Connection, Event};

#[test]
fn resume_after_4015_loses_no_frame() {
    let sim = Sim::start(false, resume_after_4015());
    let client = sim.expect_client();
    let frames = sample_frames(60);
    let connection =
        Connection::connect(client.connection_info(), client_config(&sim)).expect("connects");
    play(&connection, &frames);
    assert!(
        wait_for_event(&connection.events(), Duration::from_secs(2), |e| matches!(
            e,
            Event::Resumed
        ))
        .is_some()
    );
    connection.disconnect();
    assert_sessions(&sim, client.client, 1, 1);
    assert_byte_exact(&sim, client.client, &frames);
}

#[test]
fn fresh_reconnect_after_4006_loses_no_frame() {
    let sim = Sim::start(false, reconnect_after_4006());
    let client = sim.expect_client();
    let frames = sample_frames(60);
    let connection =
        Connection::connect(client.connection_info(), client_config(&sim)).expect("connects");
    play(&connection, &frames);
    connection.disconnect();
    assert_sessions(&sim, client.client, 2, 0);
    assert_byte_exact(&sim, client.client, &frames);
    assert_eq!(sim.report().clients[0].discovery_requests, 2);
}
