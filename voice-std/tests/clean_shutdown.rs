//! Every thread a connection starts (driver, websocket, UDP) ends on `disconnect()` and on drop,
//! and every socket is closed: no thread or file descriptor is left behind.

mod common;

use std::time::Duration;

use common::*;
use voice_sim::Scenario;
use voice_std::Connection;

/// Threads of this process named `voice-*` (the names the adapter gives its threads).
fn voice_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(Result::ok)
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .filter(|name| name.starts_with("voice-"))
                .count()
        })
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[test]
fn drop_and_disconnect_leave_no_thread_or_socket() {
    let sim = Sim::start(false, Scenario::default());
    std::thread::sleep(Duration::from_millis(100));
    let fds_before = open_fds();
    assert_eq!(voice_threads(), 0);
    for round in 0..3 {
        let client = sim.expect_client();
        let connection =
            Connection::connect(client.connection_info(), client_config(&sim)).expect("connects");
        play(&connection, &sample_frames(5));
        // Documented: a driver, a websocket and a UDP thread per connection.
        assert_eq!(voice_threads(), 3, "threads while connected");
        if round % 2 == 0 {
            drop(connection);
        } else {
            connection.disconnect();
        }
        assert_eq!(voice_threads(), 0, "every thread joined (round {round})");
        assert_client_closed_with(&sim, client.client, 1000);
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(open_fds(), fds_before, "no websocket or UDP socket left");
}
