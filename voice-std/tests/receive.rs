//! Receiving other members' audio (issue 15) through the blocking adapter against voice-sim: a
//! simulated user speaks, plain or DAVE-encrypted, with and without a network emulator between it
//! and us (loss, duplicates, reordering, jitter), and its frames come out of
//! `receiver().subscribe(user)` in order, byte for byte, with every loss on the way reported;
//! receive is off by default; a reader that does not keep up loses frames (counted, reported as
//! a loss), never holds up the connection. Each case prints its figures (`--nocapture`).

mod common;

use std::time::Duration;

use common::*;
use voice_proto::id::UserId;
use voice_std::{Connection, Item};

/// Connects, subscribes to `user` before it speaks, records its spurt, and checks it.
fn record(sim: Sim, user: u64, name: &str) -> ReceiveFigures {
    let client = sim.expect_client();
    let connection = Connection::connect(client.connection_info(), client_config(&sim).receiving())
        .expect("connects");
    let stream = connection.receiver().subscribe(UserId(user));
    let items = until_spurt_end(&stream, Duration::from_secs(20));
    let stats = connection.receive_stats().expect("receive is on");
    let core = connection.stats();
    connection.disconnect();
    let figures = check_received(&sim, client.client, user, &items);
    println!(
        "receive figures (voice-std, {name}): {figures}; buffer: late {}, duplicates {}; \
         skipped before decryption {}",
        stats.buffers.late, stats.buffers.duplicates, core.packets_skipped
    );
    assert!(
        stats.buffers.late as usize >= figures.arrived_but_not_recorded,
        "every frame that arrived and was not recorded came too late: {stats:?}"
    );
    assert_eq!(core.dave_decrypt_failures, 0, "{core:?}");
    let report = sim.shutdown();
    assert!(report.violations.is_empty(), "{report}");
    figures
}

#[test]
fn a_speaker_s_frames_are_recorded_as_sent() {
    let sim = Sim::start(false, speaker_speaks(sample_frames(RECEIVE_FRAMES), None));
    let figures = record(sim, SPEAKER, "plain, no impairment");
    assert_eq!(figures.recorded, RECEIVE_FRAMES + 5);
}

#[test]
fn an_impaired_speaker_is_recorded_in_order_with_its_losses_reported() {
    let scenario = speaker_speaks(sample_frames(RECEIVE_FRAMES), Some(receive_impairment()));
    let figures = record(Sim::start(false, scenario), SPEAKER, "plain, impaired");
    assert!(
        figures.lost_on_the_way > 0 && figures.duplicated > 0 && figures.reordered > 0,
        "the emulator impaired the stream: {figures}"
    );
}

#[test]
fn a_dave_speaker_is_recorded_decrypted() {
    let scenario = dave_speaker_impaired(sample_frames(RECEIVE_FRAMES), None);
    let sim = Sim::with_config(dave_server_config(false, scenario));
    let figures = record(sim, DAVE_LISTENER, "DAVE, no impairment");
    assert_eq!(figures.recorded, figures.sent);
}

#[test]
fn an_impaired_dave_speaker_is_recorded_without_a_dave_failure_for_its_duplicates() {
    let scenario = dave_speaker_impaired(sample_frames(RECEIVE_FRAMES), Some(receive_impairment()));
    let sim = Sim::with_config(dave_server_config(false, scenario));
    let figures = record(sim, DAVE_LISTENER, "DAVE, impaired");
    assert!(figures.duplicated > 0, "{figures}");
}

#[test]
fn receive_is_off_by_default_and_decrypts_nothing() {
    let sim = Sim::start(false, speaker_speaks(sample_frames(50), None));
    let client = sim.expect_client();
    let connection =
        Connection::connect(client.connection_info(), client_config(&sim)).expect("connects");
    let receiver = connection.receiver();
    assert!(!receiver.is_enabled());
    let stream = receiver.subscribe_all();
    std::thread::sleep(SPEAK_AFTER + Duration::from_millis(600));
    let stats = connection.stats();
    assert!(connection.receive_stats().is_none());
    connection.disconnect();
    assert_eq!(stream.recv(), None, "nothing, then the end");
    assert_eq!((stats.packets_received, stats.decrypt_failures), (0, 0));
    assert!(stats.datagrams_ignored >= 20, "{stats:?}");
}

#[test]
fn a_reader_that_does_not_keep_up_loses_frames_never_the_connection_s_pace() {
    let frames = sample_frames(RECEIVE_FRAMES);
    let sim = Sim::start(false, speaker_speaks(frames.clone(), None));
    let client = sim.expect_client();
    let mut config = client_config(&sim).receiving();
    if let Some(receive) = config.core.receive.as_mut() {
        receive.queue_frames = 10;
    }
    let connection = Connection::connect(client.connection_info(), config).expect("connects");
    let everyone = connection.receiver().subscribe_all();
    let keeping_up = connection.receiver().subscribe(UserId(SPEAKER));
    // Our own playback goes on while nobody reads `everyone`.
    let reader = std::thread::spawn(move || until_spurt_end(&keeping_up, Duration::from_secs(20)));
    play(&connection, &frames[..100]);
    let items = reader.join().expect("the reader");
    connection.disconnect();
    assert_byte_exact(&sim, client.client, &frames[..100]);
    let figures = check_received(&sim, client.client, SPEAKER, &items);
    assert_eq!(
        figures.recorded,
        RECEIVE_FRAMES + 5,
        "the reader that kept up lost nothing"
    );
    let dropped = everyone.dropped();
    let slow: Vec<Item> = everyone.map(|r| r.item).collect();
    let kept = slow.iter().filter(|i| matches!(i, Item::Frame(_))).count();
    println!(
        "receive figures (voice-std, slow reader, 10-frame queue): kept {kept}, dropped {dropped}"
    );
    assert_eq!(kept, 10);
    assert_eq!(dropped, (RECEIVE_FRAMES + 5 - 10) as u64);
}
