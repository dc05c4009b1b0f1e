//! 4017 (DAVE required) and 4004 (authentication failed) end the connection with the right error
//! and no retry.
//!
//! The 4017 case here closes an established session (a close rule, DAVE off on the server): the
//! in-session path of the close-code table, which ends with `Event::Closed`. The handshake path,
//! where a DAVE-requiring server refuses a client that does not offer DAVE, is
//! `dave_not_offered_4017.rs`.

mod common;

use std::time::Duration;

use common::*;
use voice_proto::close::FatalReason;
use voice_sim::Scenario;
use voice_tokio::{Connection, Event, JoinError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_4017_is_dave_required_and_final() {
    let server = start_server(false, dave_required_4017()).await;
    let client = server.expect_client();
    let mut connection = Connection::connect(client.connection_info(), client_config(&server))
        .await
        .expect("connects");
    let closed = wait_for_event(&mut connection, Duration::from_secs(3), |e| {
        matches!(e, Event::Closed { .. })
    })
    .await;
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
    assert!(error.to_string().contains("DAVE"), "{error}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(connection.is_finished());
    let report = server.report();
    assert_eq!(
        report.clients[0].connections.len(),
        1,
        "no retry after 4017: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_4004_on_a_wrong_token_fails_the_connect() {
    let server = start_server(false, Scenario::default()).await;
    let client = server.expect_client();
    let mut info = client.connection_info();
    info.token = voice_proto::secret::Token::new("not-the-token");
    let result = Connection::connect(info, client_config(&server)).await;
    let Err(JoinError::Protocol(error)) = result else {
        panic!("expected a protocol error, got {result:?}")
    };
    assert_eq!(
        error,
        voice_proto::Error::Fatal {
            code: 4004,
            reason: FatalReason::AuthenticationFailed
        }
    );
}
