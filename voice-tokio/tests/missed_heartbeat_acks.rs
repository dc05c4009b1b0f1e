//! A server that stops acknowledging heartbeats: the client abandons the socket and resumes
//! within three heartbeat intervals; audio keeps flowing.

mod common;

use std::time::{Duration, Instant};

use common::*;
use voice_tokio::{Connection, Event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_acks_lead_to_a_resume_within_three_intervals() {
    let server = start_server(false, missed_acks()).await;
    let client = server.expect_client();
    let started = Instant::now();
    let mut connection = Connection::connect(client.connection_info(), client_config(&server))
        .await
        .expect("connects");
    let reconnecting = wait_for_event(&mut connection, Duration::from_secs(3), |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await;
    let elapsed = started.elapsed();
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
    // Hello arrives right after connect; the verdict comes at the third interval. This bounds
    // behaviour (three intervals of 250 ms), not speed: the margin is generous.
    assert!(
        elapsed < HEARTBEAT * 3 + Duration::from_millis(900),
        "{elapsed:?}"
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
    assert_eq!(
        report.clients[0].connections[0].client_close,
        Some(4000),
        "{report}"
    );
    assert_byte_exact(&server, client.client, &frames);
}
