//! Playing the sample: every Opus frame arrives byte-exact, in order, decryptable, in both AEAD
//! modes, over wss:// with the server's own CA, and from voice-audio's pump.

mod common;

use std::time::Duration;

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

/// voice-audio's pump feeds the blocking `OpusSender` (voice-audio's `std` feature): an Ogg
/// Opus input passes through to the server byte for byte.
#[test]
fn the_audio_pump_plays_an_ogg_file_through_the_blocking_sender() {
    let sim = Sim::start(false, Scenario::default());
    let client = sim.expect_client();
    let frames = sample_frames(50);
    let ogg = voice_audio::ogg_write::ogg_opus(&frames, &[], 10, 0);
    let connection =
        Connection::connect(client.connection_info(), client_config(&sim)).expect("connects");
    let player = voice_audio::Player::new(voice_audio::PlayerConfig::default());
    player.enqueue(voice_audio::Input::bytes(ogg));
    let (events_tx, events) = std::sync::mpsc::channel();
    let pump = voice_audio::Pump::spawn(player, connection.opus_send(), move |event| {
        let _ = events_tx.send(event);
    })
    .expect("the pump thread starts");
    // Bounded only against a hang: the track lasts one second.
    let ended = std::iter::from_fn(|| events.recv_timeout(Duration::from_secs(10)).ok())
        .find(|e| matches!(e, voice_audio::PlayerEvent::Ended { .. }));
    assert!(ended.is_some(), "the track plays to its end");
    assert_eq!(pump.frames_sent(), 50);
    drop(pump.stop());
    connection.flush();
    std::thread::sleep(Duration::from_millis(50));
    connection.disconnect();
    assert_byte_exact(&sim, client.client, &frames);
}
