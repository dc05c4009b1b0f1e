//! 4017 and 4004 end with the right error; missed ACKs resume; garbage is ignored; IP discovery
//! without an answer is retried, then the whole attempt on a new websocket after a backoff
//! (issue 14 row 1), then the join fails with a typed error naming the stage that failed last.

mod common;

use std::time::Duration;

use common::*;
use voice_proto::close::FatalReason;
use voice_sim::Scenario;
use voice_std::{Connection, Event, JoinError};

#[test]
fn close_4017_is_dave_required_and_final() {
    let sim = Sim::start(false, dave_required_4017());
    let client = sim.expect_client();
    let connection =
        Connection::connect(client.connection_info(), client_config(&sim)).expect("connects");
    let closed = wait_for_event(&connection.events(), Duration::from_secs(3), |e| {
        matches!(e, Event::Closed { .. })
    });
    let Some(Event::Closed { error }) = closed else {
        panic!("expected Closed, got {closed:?}")
    };
    assert_eq!(
        error,
        voice_proto::Error::Fatal {
            code: 4017,
            reason: FatalReason::DaveRequired
        }
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(connection.is_finished());
    assert_eq!(
        sim.report().clients[0].connections.len(),
        1,
        "no retry after 4017"
    );
}

#[test]
fn close_4004_on_a_wrong_token_fails_the_connect() {
    let sim = Sim::start(false, Scenario::default());
    let mut info = sim.expect_client().connection_info();
    info.token = voice_proto::secret::Token::new("not-the-token");
    let result = Connection::connect(info, client_config(&sim));
    assert!(
        matches!(
            &result,
            Err(JoinError::Protocol(voice_proto::Error::Fatal {
                code: 4004,
                reason: FatalReason::AuthenticationFailed
            }))
        ),
        "{result:?}"
    );
}

#[test]
fn missed_acks_lead_to_a_resume() {
    let sim = Sim::start(false, missed_acks());
    let client = sim.expect_client();
    let connection =
        Connection::connect(client.connection_info(), client_config(&sim)).expect("connects");
    let resumed = wait_for_event(
        &connection.events(),
        HEARTBEAT * 3 + Duration::from_secs(2),
        |e| matches!(e, Event::Resumed),
    );
    assert!(resumed.is_some());
    let frames = sample_frames(25);
    play(&connection, &frames);
    connection.disconnect();
    assert_sessions(&sim, client.client, 1, 1);
    let report = sim.report();
    assert_eq!(report.clients[0].connections[0].client_close, Some(4000));
    // Gave up after exactly the configured number of unacknowledged beats.
    assert_eq!(
        report.clients[0].connections[0].heartbeats,
        u64::from(client_config(&sim).core.max_missed_heartbeats),
        "{report}"
    );
    assert_byte_exact(&sim, client.client, &frames);
}

#[test]
fn garbage_does_not_interrupt_audio() {
    let sim = Sim::start(false, garbage());
    let client = sim.expect_client();
    let connection =
        Connection::connect(client.connection_info(), client_config(&sim)).expect("connects");
    let frames = sample_frames(40);
    play(&connection, &frames);
    let unknown = connection
        .events()
        .try_iter()
        .filter(|e| matches!(e, Event::UnknownOpcode { op: 99, .. }))
        .count();
    assert_eq!(unknown, 2, "the JSON and the binary op 99");
    connection.disconnect();
    assert_byte_exact(&sim, client.client, &frames);
}

#[test]
fn discovery_is_retried_then_fails_with_a_typed_error() {
    let sim = Sim::start(false, no_discovery());
    let client = sim.expect_client();
    let mut config = client_config(&sim);
    config.core.max_reconnect_attempts = 1;
    let per_attempt = config.core.discovery_attempts;
    let result = Connection::connect(client.connection_info(), config);
    let Err(JoinError::Protocol(error)) = result else {
        panic!("{result:?}")
    };
    assert_discovery_failed_twice(&sim, client.client, &error, per_attempt);
}
