//! Close 4006 (session no longer valid): a fresh Identify on a new websocket, a new UDP socket and
//! SSRC; frames queued meanwhile wait and are sent afterwards.

mod common;

use std::time::Duration;

use common::*;
use voice_tokio::{Connection, Event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_reconnect_after_4006_loses_no_frame() {
    let server = start_server(false, reconnect_after_4006()).await;
    let client = server.expect_client();
    let frames = sample_frames(90);
    let mut connection = Connection::connect(client.connection_info(), client_config(&server))
        .await
        .expect("connects");
    play(&connection, &frames).await;
    let reconnected = wait_for_event(&mut connection, Duration::from_secs(2), |e| {
        matches!(
            e,
            Event::Reconnecting {
                recovery: voice_proto::Recovery::Reconnect,
                code: Some(4006),
                ..
            }
        )
    })
    .await;
    assert!(reconnected.is_some(), "a Reconnecting event for 4006");
    connection.disconnect().await;

    assert_sessions(&server, client.client, 2, 0);
    let report = server.report();
    assert_eq!(
        report.clients[0].discovery_requests, 2,
        "a new UDP socket discovers again"
    );
    assert_byte_exact(&server, client.client, &frames);
}
