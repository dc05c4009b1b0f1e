//! A client configured without DAVE (`max_dave_protocol_version: 0`) against a server that
//! requires it, as Discord does for non-Stage channels since March 2026: the server closes with
//! 4017 and the connect fails with a typed error that says DAVE is required, without a retry.

mod common;

use common::*;
use voice_proto::close::FatalReason;
use voice_tokio::{Connection, JoinError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_dave_is_refused_with_4017() {
    let server = start_dave_server(true, dave_call()).await;
    let client = server.expect_client();
    let mut config = client_config(&server);
    config.core.max_dave_protocol_version = 0;
    let result = Connection::connect(client.connection_info(), config).await;
    let Err(JoinError::Protocol(error)) = result else {
        panic!("expected a protocol error, got {result:?}")
    };
    assert_eq!(
        error,
        voice_proto::Error::Fatal {
            code: 4017,
            reason: FatalReason::DaveRequired
        }
    );
    assert!(error.to_string().contains("DAVE required"), "{error}");

    let report = server.report();
    let closes: Vec<Option<u16>> = report.clients[0]
        .connections
        .iter()
        .map(|c| c.server_close)
        .collect();
    assert_eq!(
        closes,
        vec![Some(4017)],
        "one connection, no retry\n{report}"
    );
    assert!(
        report.dave.iter().all(|c| c.key_packages == 0),
        "the client never joined the group\n{report}"
    );
}
