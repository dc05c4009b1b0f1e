//! Playback in a DAVE call over wss:// (the server's own CA), with DAVE required and one
//! simulated listener in the MLS group: every Opus frame arrives byte-exact after transport and
//! DAVE decryption, none goes out plain, and the connection reports DAVE active.

mod common;

use common::*;
use voice_tokio::{Connection, Event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dave_call_plays_byte_exact_end_to_end() {
    let server = start_dave_server(true, dave_call()).await;
    let client = server.expect_client();
    let frames = sample_frames(100);
    let mut connection = Connection::connect(client.connection_info(), client_config(&server))
        .await
        .expect("connects");
    // Queued at once: the driver holds them until the group is keyed.
    play(&connection, &frames).await;
    let events = queued_events(&mut connection);
    // The group as the client left it playing (leaving makes the listener commit a remove).
    let report = server.report();
    connection.disconnect().await;

    assert_dave_byte_exact(&server, client.client, &frames, frames.len());
    let plain: u64 = report.streams.iter().map(|s| s.stats.dave_plain).sum();
    assert_eq!(plain, 0, "no plain frame in a DAVE call\n{report}");
    let channel = report.dave.first().expect("a DAVE channel");
    assert_eq!(channel.protocol_version, 1, "{report}");
    assert_eq!(
        (channel.commits_announced, channel.client_commits),
        (1, 1),
        "the client commits the group into existence\n{report}"
    );
    assert_eq!(channel.transitions_executed, 1, "{report}");
    assert_eq!(channel.epoch, 1, "{report}");

    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Connected {
                dave_protocol_version: 1,
                ..
            }
        )),
        "Connected with DAVE version 1: {events:?}"
    );
    let ready = events.iter().find_map(|e| match e {
        Event::DaveReady {
            protocol_version,
            epoch,
            privacy_code,
        } => Some((*protocol_version, *epoch, privacy_code.clone())),
        _ => None,
    });
    let Some((1, 1, Some(code))) = ready else {
        panic!("DaveReady for version 1, epoch 1, with a privacy code: {events:?}");
    };
    assert!(
        code.len() == 30 && code.bytes().all(|b| b.is_ascii_digit()),
        "a 30-digit privacy code: {code}"
    );
    assert!(
        !events.iter().any(|e| matches!(
            e,
            Event::DaveRecovery { .. } | Event::DaveMessageFailed { .. }
        )),
        "{events:?}"
    );
}

/// Fewer frames than the queue holds, flushed at once: `flush` must not push a frame into the
/// core before the group is keyed (it would be refused and lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_clip_flushed_before_the_group_is_keyed_loses_no_frame() {
    let server = start_dave_server(false, dave_call()).await;
    let client = server.expect_client();
    let frames = sample_frames(10);
    let connection = Connection::connect(client.connection_info(), client_config(&server))
        .await
        .expect("connects");
    play(&connection, &frames).await;
    connection.disconnect().await;
    assert_dave_byte_exact(&server, client.client, &frames, frames.len());
}
