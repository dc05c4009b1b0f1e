//! Receiving other members' audio (issue 15) against voice-sim: a simulated user speaks, plain
//! or DAVE-encrypted, with and without a network emulator between it and us (loss, duplicates,
//! reordering, jitter), and its frames come out of `receiver().subscribe(user)` in order, byte
//! for byte, with every loss on the way reported; receive is off by default; a reader that does
//! not keep up loses frames (counted, reported as a loss), never holds up the connection.
//! Each case prints its figures (`--nocapture`).

mod common;

use std::time::Duration;

use common::*;
use voice_proto::id::UserId;
use voice_sim::NetemConfig;
use voice_tokio::{Connection, Item, VoiceConfig};

fn receiving(server: &voice_sim::VoiceServer) -> VoiceConfig {
    client_config(server).receiving()
}

/// Connects, subscribes to `user` before it speaks, records its spurt, and checks it.
async fn record(
    server: voice_sim::VoiceServer,
    user: u64,
    name: &str,
) -> voice_sim::adapter_cases::ReceiveFigures {
    let client = server.expect_client();
    let connection = Connection::connect(client.connection_info(), receiving(&server))
        .await
        .expect("connects");
    let mut stream = connection.receiver().subscribe(UserId(user));
    let items = until_spurt_end(&mut stream, Duration::from_secs(20)).await;
    let stats = connection.receive_stats().expect("receive is on");
    connection.disconnect().await;
    let figures = check_received(&server, client.client, user, &items);
    println!(
        "receive figures ({name}): {figures}; buffer: late {}, duplicates {}, depth increases {}",
        stats.buffers.late, stats.buffers.duplicates, stats.buffers.depth_increases
    );
    assert!(
        stats.buffers.late as usize >= figures.arrived_but_not_recorded,
        "every frame that arrived and was not recorded came too late: {stats:?}"
    );
    let report = server.report();
    assert!(report.violations.is_empty(), "{report}");
    figures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speaker_s_frames_are_recorded_as_sent() {
    let frames = sample_frames(RECEIVE_FRAMES);
    let server = start_server(false, speaker_speaks(frames, None)).await;
    let figures = record(server, SPEAKER, "plain, no impairment").await;
    assert_eq!(figures.recorded, RECEIVE_FRAMES + 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impaired_speaker_is_recorded_in_order_with_its_losses_reported() {
    let frames = sample_frames(RECEIVE_FRAMES);
    let server = start_server(false, speaker_speaks(frames, Some(receive_impairment()))).await;
    let figures = record(server, SPEAKER, "plain, impaired").await;
    assert!(
        figures.lost_on_the_way > 0 && figures.duplicated > 0 && figures.reordered > 0,
        "the emulator impaired the stream: {figures}"
    );
    assert!(
        figures.recorded
            >= figures.sent - figures.lost_on_the_way - figures.arrived_but_not_recorded
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dave_speaker_is_recorded_decrypted() {
    let frames = sample_frames(RECEIVE_FRAMES);
    let server = start_dave_server(false, dave_speaker_impaired(frames, None)).await;
    let figures = record(server, DAVE_LISTENER, "DAVE, no impairment").await;
    assert_eq!(figures.recorded, figures.sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impaired_dave_speaker_is_recorded_without_a_dave_failure_for_its_duplicates() {
    let frames = sample_frames(RECEIVE_FRAMES);
    let scenario = dave_speaker_impaired(frames, Some(receive_impairment()));
    let server = start_dave_server(false, scenario).await;
    let client = server.expect_client();
    let mut connection = Connection::connect(client.connection_info(), receiving(&server))
        .await
        .expect("connects");
    let mut stream = connection.receiver().subscribe(UserId(DAVE_LISTENER));
    let items = until_spurt_end(&mut stream, Duration::from_secs(20)).await;
    let stats = connection.stats();
    let events = queued_events(&mut connection);
    connection.disconnect().await;
    let figures = check_received(&server, client.client, DAVE_LISTENER, &items);
    println!(
        "receive figures (DAVE, impaired): {figures}; packets skipped before decryption {}",
        stats.packets_skipped
    );
    assert!(figures.duplicated > 0, "{figures}");
    assert_eq!(
        stats.dave_decrypt_failures, 0,
        "duplicates are refused before DAVE decryption: {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_is_off_by_default_and_decrypts_nothing() {
    let frames = sample_frames(50);
    let server = start_server(false, speaker_speaks(frames, None)).await;
    let client = server.expect_client();
    let connection = Connection::connect(client.connection_info(), client_config(&server))
        .await
        .expect("connects");
    let receiver = connection.receiver();
    assert!(!receiver.is_enabled());
    let mut stream = receiver.subscribe_all();
    tokio::time::sleep(SPEAK_AFTER + Duration::from_millis(600)).await;
    let stats = connection.stats();
    assert!(connection.receive_stats().is_none());
    connection.disconnect().await;
    assert_eq!(stream.recv().await, None, "nothing, then the end");
    assert_eq!((stats.packets_received, stats.decrypt_failures), (0, 0));
    assert!(stats.datagrams_ignored >= 20, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_does_not_keep_up_loses_frames_never_the_connection_s_pace() {
    let frames = sample_frames(RECEIVE_FRAMES);
    let server = start_server(false, speaker_speaks(frames.clone(), None)).await;
    let client = server.expect_client();
    let mut config = receiving(&server);
    if let Some(receive) = config.core.receive.as_mut() {
        receive.queue_frames = 10;
    }
    let connection = Connection::connect(client.connection_info(), config)
        .await
        .expect("connects");
    let mut everyone = connection.receiver().subscribe_all();
    let mut keeping_up = connection.receiver().subscribe(UserId(SPEAKER));
    // Our own playback goes on while nobody reads `everyone`.
    let (items, ()) = tokio::join!(
        until_spurt_end(&mut keeping_up, Duration::from_secs(20)),
        play(&connection, &frames[..100])
    );
    connection.disconnect().await;
    assert_byte_exact(&server, client.client, &frames[..100]);
    let figures = check_received(&server, client.client, SPEAKER, &items);
    assert_eq!(
        figures.recorded,
        RECEIVE_FRAMES + 5,
        "the reader that kept up lost nothing"
    );
    let mut slow = Vec::new();
    while let Some(received) = everyone.recv().await {
        slow.push(received.item);
    }
    let kept = slow.iter().filter(|i| matches!(i, Item::Frame(_))).count();
    println!(
        "receive figures (slow reader, 10-frame queue): kept {kept}, dropped {}",
        everyone.dropped()
    );
    assert_eq!(kept, 10);
    assert_eq!(everyone.dropped(), (RECEIVE_FRAMES + 5 - 10) as u64);
    // The first ten frames, then the end of the spurt: a loss at the very end is only counted.
    assert!(matches!(slow.first(), Some(Item::SpurtStarted)), "{slow:?}");
    assert!(matches!(slow.last(), Some(Item::SpurtEnded(_))), "{slow:?}");
}

#[test]
fn impairment_is_deterministic_per_seed() {
    assert_eq!(receive_impairment(), receive_impairment());
    assert_ne!(receive_impairment(), NetemConfig::default());
}
