//! Connections share fixed pools of threads (event loops and media workers): their number does
//! not grow with the number of connections. Dropping or disconnecting a connection closes its
//! sockets, and every thread ends a moment after the last connection: nothing is left behind.

mod common;

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use common::*;
use voice_sim::Scenario;
use voice_std::{Connection, VoiceConfig};

/// Both tests count the process's threads and file descriptors: one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Names of this process's threads named `voice-*` (the names the adapter gives its threads),
/// sorted.
fn voice_threads() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(Result::ok)
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|name| name.trim_end().to_owned())
                .filter(|name| name.starts_with("voice-"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Polls `done` until it holds or `timeout` passes; whether it held.
fn eventually(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// A server, client settings with `media_workers` (and as many event loops), and the file
/// descriptors to come back to, taken once the server is up and no thread of an earlier test is
/// left. Holds the lock that makes the tests take turns.
struct Bench {
    _serial: MutexGuard<'static, ()>,
    sim: Sim,
    config: VoiceConfig,
    fds_before: usize,
}

fn bench(media_workers: usize) -> Bench {
    let serial = serial();
    let sim = Sim::start(false, Scenario::default());
    let _ = sim.report();
    assert!(
        eventually(Duration::from_secs(5), || voice_threads().is_empty()),
        "threads left by an earlier test: {:?}",
        voice_threads()
    );
    std::thread::sleep(Duration::from_millis(100));
    let mut config = client_config(&sim);
    config.media_workers = media_workers;

    Bench {
        _serial: serial,
        sim,
        config,
        fds_before: open_fds(),
    }
}

/// Every `voice-*` thread ends within a few seconds (the pools linger one second) and every
/// file descriptor the connections opened is closed.
fn assert_nothing_left(fds_before: usize) {
    assert!(
        eventually(Duration::from_secs(5), || voice_threads().is_empty()),
        "threads left: {:?}",
        voice_threads()
    );
    assert!(
        eventually(Duration::from_secs(5), || open_fds() == fds_before),
        "file descriptors: {} before, {} now",
        fds_before,
        open_fds()
    );
}

#[test]
fn ten_connections_share_the_pools_and_leave_nothing_behind() {
    let Bench {
        _serial: _turn,
        sim,
        config,
        fds_before,
    } = bench(2);
    let clients: Vec<_> = (0..10).map(|_| sim.expect_client()).collect();
    let connections: Vec<Connection> = clients
        .iter()
        .map(|client| {
            Connection::connect(client.connection_info(), config.clone()).expect("connects")
        })
        .collect();
    for connection in &connections {
        play(connection, &sample_frames(3));
    }
    // Two event loops and two media workers for ten connections (three threads each before).
    assert_eq!(
        voice_threads(),
        ["voice-io-0", "voice-io-1", "voice-media-0", "voice-media-1"],
        "threads with 10 connections"
    );
    for (i, connection) in connections.into_iter().enumerate() {
        if i % 2 == 0 {
            drop(connection);
        } else {
            connection.disconnect();
        }
    }
    for client in &clients {
        assert_client_closed_with(&sim, client.client, 1000);
    }
    assert_nothing_left(fds_before);
}

#[test]
fn drop_and_disconnect_leave_no_thread_or_socket() {
    let Bench {
        _serial: _turn,
        sim,
        config,
        fds_before,
    } = bench(1);
    for round in 0..3 {
        let client = sim.expect_client();
        let connection =
            Connection::connect(client.connection_info(), config.clone()).expect("connects");
        play(&connection, &sample_frames(5));
        assert_eq!(
            voice_threads(),
            ["voice-io-0", "voice-media-0"],
            "one event loop and one media worker (round {round})"
        );
        if round % 2 == 0 {
            drop(connection);
        } else {
            connection.disconnect();
        }
        // Returned once the close handshake was over.
        assert_client_closed_with(&sim, client.client, 1000);
    }
    assert_nothing_left(fds_before);
}
