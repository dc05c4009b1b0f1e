//! A user without DAVE joins mid-stream and leaves: the call downgrades to version 0 (plain
//! Opus under transport encryption) and upgrades back to DAVE with a new group. No frame is
//! lost, and no plain frame goes out while the call is end-to-end encrypted.

mod common;

use std::time::Duration;

use common::*;
use voice_tokio::{Connection, Event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_downgrades_and_upgrades_and_no_frame_is_lost() {
    let server = start_dave_server(false, dave_downgrade_and_back()).await;
    let client = server.expect_client();
    let frames = sample_frames(DAVE_FRAMES);
    let mut connection = Connection::connect(client.connection_info(), client_config(&server))
        .await
        .expect("connects");
    play(&connection, &frames).await;
    // Up to the group re-formed after the upgrade (it may still be under way).
    let mut downgraded = false;
    let events = events_until(&mut connection, Duration::from_secs(10), |e| match e {
        Event::DaveTransition { to: 0, .. } => {
            downgraded = true;
            false
        }
        Event::DaveReady { .. } => downgraded,
        _ => false,
    })
    .await;
    let report = server.report();
    connection.disconnect().await;

    let channel = report.dave.first().expect("a DAVE channel");
    assert_eq!((channel.downgrades, channel.upgrades), (1, 1), "{report}");
    assert_eq!(channel.protocol_version, 1, "{report}");
    let plain: u64 = report.streams.iter().map(|s| s.stats.dave_plain).sum();
    assert_eq!(
        plain, 0,
        "no plain frame while end-to-end encrypted\n{report}"
    );
    // The frames sent while downgraded are plain; the rest were decrypted.
    assert_dave_byte_exact(&server, client.client, &frames, frames.len() / 2);

    let versions: Vec<(u16, u16)> = events
        .iter()
        .filter_map(|e| match e {
            Event::DaveTransition { from, to, .. } if from != to => Some((*from, *to)),
            _ => None,
        })
        .collect();
    assert_eq!(versions, vec![(1, 0), (0, 1)], "{events:?}");
    assert!(
        matches!(events.last(), Some(Event::DaveReady { .. })),
        "DAVE active again after the upgrade: {events:?}"
    );
    assert!(
        !events.iter().any(|e| matches!(
            e,
            Event::DaveRecovery { .. } | Event::DaveMessageFailed { .. }
        )),
        "{events:?}"
    );
}
