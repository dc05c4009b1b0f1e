//! Playing the sample: every Opus frame arrives byte-exact, in order, decryptable, in both AEAD
//! modes, over wss:// with the server's own CA.

mod common;

use common::*;
use voice_sim::{Scenario, ServerConfig};
use voice_std::Connection;

fn play_in_mode(mode: &str) {
    let sim = Sim::with_config(ServerConfig {
        modes: vec![mode.to_owned()],
        ..server_config(true, Scenario::default())
    });
    let client = sim.expect_client();
    let frames = sample_frames(100);
    let connection =
        Connection::connect(client.connection_info(), client_config(&sim)).expect("connects");
    play(&connection, &frames);
    connection.disconnect();
    assert_byte_exact(&sim, client.client, &frames);
    assert_client_closed_with(&sim, client.client, 1000);
    let report = sim.shutdown();
    assert_eq!(report.clients[0].mode.as_deref(), Some(mode));
    assert_eq!(report.streams[0].stats.silence_frames, 5, "{report}");
}

#[test]
fn sample_arrives_byte_exact_with_aes_gcm() {
    play_in_mode("aead_aes256_gcm_rtpsize");
}

#[test]
fn sample_arrives_byte_exact_with_xchacha20() {
    play_in_mode("aead_xchacha20_poly1305_rtpsize");
}

/// A websocket URL that names its host (`localhost`) is resolved off the event loop, on the
/// resolver thread; the addresses are tried in turn (`::1` may come first and refuse).
#[test]
fn a_host_name_is_resolved_and_the_sample_arrives() {
    let sim = Sim::start(false, Scenario::default());
    let client = sim.expect_client();
    let mut config = client_config(&sim);
    config.core.gateway_url_override = Some(sim.ws_url().replace("127.0.0.1", "localhost"));
    let frames = sample_frames(25);
    let connection = Connection::connect(client.connection_info(), config).expect("connects");
    play(&connection, &frames);
    connection.disconnect();
    assert_byte_exact(&sim, client.client, &frames);
    assert_client_closed_with(&sim, client.client, 1000);
}
