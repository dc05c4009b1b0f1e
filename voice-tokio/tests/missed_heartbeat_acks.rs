//! A server that stops acknowledging heartbeats: after two unacknowledged beats (three heartbeat
//! intervals) the client abandons the socket with 4000 and resumes; audio keeps flowing.

mod common;

use std::time::Duration;

use common::*;
use voice_tokio::{Connection, Event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_acks_lead_to_a_resume_within_three_intervals() {
    let server = start_server(false, missed_acks()).await;
    let client = server.expect_client();
    let config = client_config(&server);
    let max_missed = config.core.max_missed_heartbeats;
    let mut connection = Connection::connect(client.connection_info(), config)
        .await
        .expect("connects");
    let reconnecting = wait_for_event(&mut connection, Duration::from_secs(3), |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await;
    assert!(
        matches!(
            reconnecting,
            Some(Event::Reconnecting {
                recovery: voice_proto::Recovery::Resume,
                ..
            })
        ),
        "{reconnecting:?}"
    );
    assert!(
        wait_for_event(&mut connection, Duration::from_secs(2), |e| matches!(
            e,
            Event::Resumed
        ))
        .await
        .is_some()
    );
    let frames = sample_frames(25);
    play(&connection, &frames).await;
    connection.disconnect().await;
    assert_sessions(&server, client.client, 1, 1);
    let report = server.report();
    let first = &report.clients[0].connections[0];
    assert_eq!(first.client_close, Some(4000), "{report}");
    // "Within three intervals", counted rather than timed: the client gave up on the first
    // websocket after exactly the configured number of unacknowledged beats.
    assert_eq!(first.heartbeats, u64::from(max_missed), "{report}");
    assert_byte_exact(&server, client.client, &frames);
}
