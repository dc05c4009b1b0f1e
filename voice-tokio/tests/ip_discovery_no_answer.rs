//! A server that never answers IP discovery: the client retries, then fails with a typed error.

mod common;

use common::*;
use voice_tokio::{Connection, JoinError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_is_retried_then_fails_with_a_typed_error() {
    let server = start_server(false, no_discovery()).await;
    let client = server.expect_client();
    let config = client_config(&server);
    let attempts = config.core.discovery_attempts;
    let result = Connection::connect(client.connection_info(), config).await;
    assert!(
        matches!(
            result,
            Err(JoinError::Protocol(voice_proto::Error::Timeout {
                stage: voice_proto::Stage::IpDiscovery,
                ..
            }))
        ),
        "{result:?}"
    );
    let report = server.report();
    assert_eq!(report.clients[0].discovery_requests, attempts, "{report}");
}
