//! A server that never answers IP discovery: the client retries the request, then (issue 14
//! row 1) the whole attempt on a new websocket after a backoff, then fails with a typed error
//! naming the stage that failed last.

mod common;

use common::*;
use voice_tokio::{Connection, JoinError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_is_retried_then_fails_with_a_typed_error() {
    let server = start_server(false, no_discovery()).await;
    let client = server.expect_client();
    let mut config = client_config(&server);
    config.core.max_reconnect_attempts = 1;
    let per_attempt = config.core.discovery_attempts;
    let result = Connection::connect(client.connection_info(), config).await;
    let Err(JoinError::Protocol(error)) = result else {
        panic!("{result:?}")
    };
    assert_discovery_failed_twice(&server, client.client, &error, per_attempt);
}
