//! A second DAVE member joins and leaves while the client plays: the client takes part in both
//! commits and transitions (three in all, with the group's creation) and no frame is lost or
//! left undecryptable.

mod common;

use std::time::Duration;

use common::*;
use voice_tokio::{Connection, Event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joins_and_leaves_mid_stream_and_no_frame_is_lost() {
    let server = start_dave_server(false, dave_member_joins_and_leaves()).await;
    let client = server.expect_client();
    let frames = sample_frames(DAVE_FRAMES);
    let mut connection = Connection::connect(client.connection_info(), client_config(&server))
        .await
        .expect("connects");
    play(&connection, &frames).await;
    // The visit falls inside the stream; its last transition may still be under way.
    let events = events_until(&mut connection, Duration::from_secs(10), |e| {
        matches!(e, Event::DaveReady { epoch: 3, .. })
    })
    .await;
    // The group as the client left it playing (leaving makes the listener commit a remove).
    let report = server.report();
    connection.disconnect().await;

    assert_dave_byte_exact(&server, client.client, &frames, frames.len());
    let channel = report.dave.first().expect("a DAVE channel");
    assert_eq!(
        channel.commits_announced, 3,
        "creation, the visitor's add, its remove\n{report}"
    );
    assert_eq!(channel.transitions_executed, 3, "{report}");
    assert_eq!(channel.epoch, 3, "{report}");
    assert_eq!(channel.protocol_version, 1, "{report}");

    // The version was negotiated as 1 from Session Description on; each transition re-keys.
    let transitions: Vec<(u16, u16)> = events
        .iter()
        .filter_map(|e| match e {
            Event::DaveTransition { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect();
    assert_eq!(transitions, vec![(1, 1); 3], "{events:?}");
    let epochs: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::DaveReady { epoch, .. } => Some(*epoch),
            _ => None,
        })
        .collect();
    assert_eq!(epochs, vec![1, 2, 3], "{events:?}");
    assert!(
        !events.iter().any(|e| matches!(
            e,
            Event::DaveRecovery { .. }
                | Event::DaveMessageFailed { .. }
                | Event::DaveDecryptFailed { .. }
        )),
        "{events:?}"
    );
}
