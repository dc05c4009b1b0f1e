//! Playing the sample: every Opus frame arrives byte-exact, in order, decryptable, in both AEAD
//! modes, over wss:// with the server's own CA.

mod common;

use common::*;
use voice_sim::Scenario;
use voice_tokio::Connection;

async fn play_in_mode(mode: &str) {
    let server = voice_sim::VoiceServer::start(voice_sim::ServerConfig {
        modes: vec![mode.to_owned()],
        ..server_config(true, Scenario::default())
    })
    .await
    .expect("voice-sim starts");
    let client = server.expect_client();
    let frames = sample_frames(100);
    let connection = Connection::connect(client.connection_info(), client_config(&server))
        .await
        .expect("connects");
    play(&connection, &frames).await;
    connection.disconnect().await;
    assert_byte_exact(&server, client.client, &frames);
    let report = server.report();
    assert_eq!(report.clients[0].mode.as_deref(), Some(mode));
    let stream = &report.streams[0];
    assert_eq!(
        stream.stats.silence_frames, 5,
        "five trailing silence frames: {report}"
    );
    assert_eq!(stream.stats.gaps, 0);
    assert_eq!(stream.stats.timestamp_errors, 0);
    let final_report = server.shutdown().await;
    let connection_report = final_report.clients[0]
        .connections
        .last()
        .cloned()
        .unwrap_or_default();
    assert_eq!(connection_report.client_close, Some(1000), "{final_report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_arrives_byte_exact_with_aes_gcm() {
    play_in_mode("aead_aes256_gcm_rtpsize").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_arrives_byte_exact_with_xchacha20() {
    play_in_mode("aead_xchacha20_poly1305_rtpsize").await;
}
