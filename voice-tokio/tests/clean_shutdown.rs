//! Dropping or disconnecting a `Connection` ends its task and closes its sockets: no task and no
//! file descriptor is left behind.

mod common;

use std::time::Duration;

use common::*;
use voice_sim::Scenario;
use voice_tokio::Connection;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_and_disconnect_leave_nothing_behind() {
    let server = start_server(false, Scenario::default()).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    settle().await;
    let tasks_before = metrics.num_alive_tasks();
    let fds_before = open_fds();

    for round in 0..3 {
        let client = server.expect_client();
        let connection = Connection::connect(client.connection_info(), client_config(&server))
            .await
            .expect("connects");
        play(&connection, &sample_frames(5)).await;
        assert!(
            metrics.num_alive_tasks() > tasks_before,
            "the driver task runs"
        );
        if round % 2 == 0 {
            drop(connection);
        } else {
            connection.disconnect().await;
        }
        settle().await;
    }
    assert_eq!(
        metrics.num_alive_tasks(),
        tasks_before,
        "no driver task left"
    );
    assert_eq!(open_fds(), fds_before, "no websocket or UDP socket left");
    for client in 0..3 {
        assert_client_closed_with(&server, client, 1000);
    }
}
