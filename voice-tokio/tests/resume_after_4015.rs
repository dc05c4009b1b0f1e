//! Close 4015 mid-stream: the session resumes with the right seq_ack (the server checks it),
//! UDP keeps flowing, and no frame is lost.

mod common;

use std::time::Duration;

use common::*;
use voice_tokio::{Connection, Event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_4015_loses_no_frame() {
    let server = start_server(false, resume_after_4015()).await;
    let client = server.expect_client();
    let frames = sample_frames(120);
    let mut connection = Connection::connect(client.connection_info(), client_config(&server))
        .await
        .expect("connects");
    play(&connection, &frames).await;
    let resumed = wait_for_event(&mut connection, Duration::from_secs(2), |e| {
        matches!(e, Event::Resumed)
    })
    .await;
    assert!(resumed.is_some(), "a Resumed event");
    connection.disconnect().await;

    assert_sessions(&server, client.client, 1, 1);
    let report = server.report();
    assert_eq!(
        report.clients[0].connections[1].started_with.as_deref(),
        Some("resume")
    );
    // The server flags a wrong seq_ack and a missing Speaking after resume as violations.
    assert_byte_exact(&server, client.client, &frames);
    assert_eq!(report.streams[0].stats.gaps, 0, "{report}");
}
