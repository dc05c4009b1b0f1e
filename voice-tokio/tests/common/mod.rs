//! Shared setup for the voice-tokio tests against voice-sim on 127.0.0.1.
#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use voice_sim::{Scenario, ServerConfig, VoiceServer};
use voice_tokio::{Connection, Event, VoiceConfig};

/// Short heartbeats keep resume/ACK tests fast.
pub const HEARTBEAT: Duration = Duration::from_millis(250);

/// The first `n` frames of the bundled sample (8 s, 398 frames).
pub fn sample_frames(n: usize) -> Vec<Vec<u8>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../voice-sim/assets/sample.ogg"
    );
    let mut frames =
        voice_sim::ogg_opus::read_file(std::path::Path::new(path)).expect("sample.ogg");
    frames.truncate(n);
    assert_eq!(frames.len(), n, "the sample has enough frames");
    frames
}

pub async fn start_server(tls: bool, scenario: Scenario) -> VoiceServer {
    VoiceServer::start(ServerConfig {
        tls,
        heartbeat_interval: HEARTBEAT,
        scenario,
        ..ServerConfig::default()
    })
    .await
    .expect("voice-sim starts")
}

/// Client settings for `server`: trust its CA (wss) or point at its ws:// URL; short deadlines.
pub fn client_config(server: &VoiceServer) -> VoiceConfig {
    let mut config = VoiceConfig::default();
    match server.ca_pem() {
        Some(pem) => config.extra_root_certificates.push(pem.as_bytes().to_vec()),
        None => config.core.gateway_url_override = Some(server.ws_url()),
    }
    config.core.handshake_timeout = Duration::from_secs(3);
    config.core.session_description_timeout = Duration::from_secs(3);
    config.core.discovery_retry_interval = Duration::from_millis(200);
    config.core.reconnect_backoff_initial = Duration::from_millis(100);
    config.core.move_timeout = Duration::from_secs(3);
    config
}

/// Queues every frame (the driver paces them at 20 ms) and waits until all went out, plus the
/// trailing silence.
pub async fn play(connection: &Connection, frames: &[Vec<u8>]) {
    let sender = connection.opus_send();
    for frame in frames {
        sender
            .send(Bytes::copy_from_slice(frame))
            .await
            .expect("the connection accepts frames");
    }
    while sender.capacity() < sender.max_capacity() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Every non-silence frame the server received from `client`, across all its SSRCs, in order.
pub fn received_audio(server: &VoiceServer, client: usize) -> Vec<Vec<u8>> {
    server
        .ssrcs(client)
        .into_iter()
        .flat_map(|ssrc| server.frames(ssrc))
        .filter(|f| !f.is_silence())
        .map(|f| f.opus)
        .collect()
}

/// The server got exactly `frames`, byte for byte, in order, with no violation.
pub fn assert_byte_exact(server: &VoiceServer, client: usize, frames: &[Vec<u8>]) {
    let report = server.report();
    assert!(
        report.violations.is_empty(),
        "violations: {:#?}",
        report.violations
    );
    let received = received_audio(server, client);
    assert_eq!(
        received.len(),
        frames.len(),
        "frame count (report:\n{report})"
    );
    for (i, (got, sent)) in received.iter().zip(frames).enumerate() {
        assert_eq!(got, sent, "frame {i} differs");
    }
    for stream in &report.streams {
        assert_eq!(stream.stats.decrypt_failures, 0, "{report}");
        assert_eq!(stream.stats.duplicates, 0, "{report}");
        assert_eq!(stream.stats.reordered, 0, "{report}");
    }
}

/// Collects events until `pred` matches one (or the timeout).
pub async fn wait_for_event(
    connection: &mut Connection,
    timeout: Duration,
    mut pred: impl FnMut(&Event) -> bool,
) -> Option<Event> {
    tokio::time::timeout(timeout, async {
        while let Some(event) = connection.events().recv().await {
            if pred(&event) {
                return Some(event);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}
