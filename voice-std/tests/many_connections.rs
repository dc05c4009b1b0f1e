//! Twenty connections at once against one voice-sim over wss://, each playing its own clip from
//! its own thread at the same time: every frame of every connection arrives byte-exact, in order,
//! on the right stream, while a fixed pool of threads serves them all.

mod common;

use common::*;
use voice_sim::Scenario;
use voice_std::Connection;

const CONNECTIONS: usize = 20;
const FRAMES: usize = 50;

#[test]
fn twenty_connections_play_at_once_byte_exact() {
    let sim = Sim::start(true, Scenario::default());
    let config = client_config(&sim);
    let clients: Vec<_> = (0..CONNECTIONS).map(|_| sim.expect_client()).collect();
    let connections: Vec<Connection> = clients
        .iter()
        .map(|client| {
            Connection::connect(client.connection_info(), config.clone()).expect("connects")
        })
        .collect();
    // A different clip each (the sample from a different frame on), so a mix-up would show.
    let clips: Vec<Vec<Vec<u8>>> = (0..CONNECTIONS)
        .map(|i| sample_frames(FRAMES + i).split_off(i))
        .collect();
    let connections: Vec<Connection> = std::thread::scope(|scope| {
        let players: Vec<_> = connections
            .into_iter()
            .zip(&clips)
            .map(|(connection, clip)| {
                scope.spawn(move || {
                    play(&connection, clip);
                    connection
                })
            })
            .collect();
        players
            .into_iter()
            .map(|player| player.join().expect("the player thread"))
            .collect()
    });
    for connection in connections {
        connection.disconnect();
    }
    for (client, clip) in clients.iter().zip(&clips) {
        assert_byte_exact(&sim, client.client, clip);
        assert_client_closed_with(&sim, client.client, 1000);
    }
    let report = sim.shutdown();
    assert_eq!(report.clients.len(), CONNECTIONS, "{report}");
    assert!(report.violations.is_empty(), "{report}");
}
