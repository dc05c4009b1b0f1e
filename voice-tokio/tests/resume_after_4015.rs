//! Close 4015 mid-stream: the session resumes with the right seq_ack (the server checks it),
//! UDP keeps flowing, and no frame is lost.

mod common;

use std::time::Duration;

use common::*;
use voice_sim::{CloseRule, Scenario, Trigger};
use voice_tokio::{Connection, Event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_4015_loses_no_frame() {
    let scenario = Scenario {
        close: vec![CloseRule {
            code: 4015,
            trigger: Trigger::AfterPackets(40),
        }],
        ..Scenario::default()
    };
    let server = start_server(false, scenario).await;
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

    let report = server.report();
    let me = &report.clients[client.client];
    assert_eq!((me.identifies, me.resumes), (1, 1), "{report}");
    assert_eq!(me.ssrcs.len(), 1, "same SSRC after a resume");
    assert_eq!(me.connections[1].started_with.as_deref(), Some("resume"));
    // The server flags a wrong seq_ack and a missing Speaking after resume as violations.
    assert_byte_exact(&server, client.client, &frames);
    assert_eq!(report.streams[0].stats.gaps, 0, "{report}");
}
