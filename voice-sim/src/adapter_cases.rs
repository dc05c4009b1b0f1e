//! The behaviours every adapter (voice-tokio, voice-std) is tested for against this server: the
//! scenario of each case, the client settings that make it fast, and the assertions on what the
//! server observed. Both adapters' test suites use these, so the two are held to one standard.
//!
//! Everything here is synchronous; an adapter's tests add only how they run their client.

use std::path::Path;
use std::time::Duration;

use crate::config::{AckPolicy, CloseRule, Garbage, Scenario, ServerConfig, Trigger};
use crate::server::VoiceServer;

/// Short heartbeats keep resume and missed-ACK cases fast.
pub const HEARTBEAT: Duration = Duration::from_millis(250);

/// Packets after which the mid-stream close cases close the websocket.
pub const CLOSE_AFTER_PACKETS: u64 = 20;

/// The first `n` Opus frames of the bundled 8-second sample (398 frames).
///
/// # Panics
/// If the bundled sample is missing or shorter than `n` (a broken checkout).
pub fn sample_frames(n: usize) -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/sample.ogg");
    let mut frames = crate::ogg_opus::read_file(&path).unwrap_or_default();
    assert!(
        frames.len() >= n,
        "{} holds fewer than {n} frames",
        path.display()
    );
    frames.truncate(n);
    frames
}

/// The server for one case: 127.0.0.1, short heartbeats, `scenario`.
pub fn server_config(tls: bool, scenario: Scenario) -> ServerConfig {
    ServerConfig {
        tls,
        heartbeat_interval: HEARTBEAT,
        scenario,
        ..ServerConfig::default()
    }
}

/// The client's protocol settings for `server`: its ws:// URL when it has no TLS (with TLS, trust
/// [`VoiceServer::ca_pem`] instead) and deadlines short enough for tests.
pub fn client_core_config(server: &VoiceServer) -> voice_proto::Config {
    voice_proto::Config {
        gateway_url_override: server.ca_pem().is_none().then(|| server.ws_url()),
        server_update_timeout: Duration::from_millis(300),
        handshake_timeout: Duration::from_secs(3),
        session_description_timeout: Duration::from_secs(3),
        discovery_retry_interval: Duration::from_millis(200),
        reconnect_backoff_initial: Duration::from_millis(100),
        move_timeout: Duration::from_secs(3),
        ..voice_proto::Config::default()
    }
}

fn close_after_packets(code: u16) -> Scenario {
    Scenario {
        close: vec![CloseRule {
            code,
            trigger: Trigger::AfterPackets(CLOSE_AFTER_PACKETS),
        }],
        ..Scenario::default()
    }
}

/// Close 4015 mid-stream: the client must resume.
pub fn resume_after_4015() -> Scenario {
    close_after_packets(4015)
}

/// Close 4006 mid-stream: the client must identify afresh.
pub fn reconnect_after_4006() -> Scenario {
    close_after_packets(4006)
}

/// Close 4014 mid-stream: the client must wait for a move.
pub fn moved_after_4014() -> Scenario {
    close_after_packets(4014)
}

/// Close 4017 shortly after the session starts: the client must stop for good.
pub fn dave_required_4017() -> Scenario {
    Scenario {
        close: vec![CloseRule {
            code: 4017,
            trigger: Trigger::AfterSession(Duration::from_millis(100)),
        }],
        ..Scenario::default()
    }
}

/// No heartbeat is ever acknowledged on the first websocket.
pub fn missed_acks() -> Scenario {
    Scenario {
        heartbeat_acks: AckPolicy::Never,
        ..Scenario::default()
    }
}

/// Every kind of garbage right after Session Description.
pub fn garbage() -> Scenario {
    Scenario {
        garbage: vec![
            Garbage::UnknownOpcode,
            Garbage::MalformedJson,
            Garbage::UnexpectedBinary,
        ],
        ..Scenario::default()
    }
}

/// IP discovery is never answered.
pub fn no_discovery() -> Scenario {
    Scenario {
        answer_discovery: false,
        ..Scenario::default()
    }
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

/// The server got exactly `frames` from `client`, byte for byte and in order, decryptable, with
/// no protocol violation.
///
/// # Panics
/// With the server's report when anything differs.
pub fn assert_byte_exact(server: &VoiceServer, client: usize, frames: &[Vec<u8>]) {
    let report = server.report();
    assert!(
        report.violations.is_empty(),
        "violations: {:#?}\n{report}",
        report.violations
    );
    let received = received_audio(server, client);
    assert_eq!(received.len(), frames.len(), "frame count\n{report}");
    for (i, (got, sent)) in received.iter().zip(frames).enumerate() {
        assert_eq!(got, sent, "frame {i} differs\n{report}");
    }
    for stream in report.streams.iter().filter(|s| s.client == client) {
        let stats = &stream.stats;
        assert_eq!(stats.decrypt_failures, 0, "{report}");
        assert_eq!(stats.duplicates, 0, "{report}");
        assert_eq!(stats.reordered, 0, "{report}");
        assert_eq!(stats.timestamp_errors, 0, "{report}");
    }
}

/// `client` identified `identifies` times and resumed `resumes` times, with one SSRC per Identify.
///
/// # Panics
/// With the server's report when the counts differ.
pub fn assert_sessions(server: &VoiceServer, client: usize, identifies: u32, resumes: u32) {
    let report = server.report();
    let Some(me) = report.clients.get(client) else {
        panic!("no client {client}\n{report}");
    };
    assert_eq!(
        (me.identifies, me.resumes),
        (identifies, resumes),
        "{report}"
    );
    assert_eq!(
        me.ssrcs.len(),
        identifies as usize,
        "one SSRC per Identify\n{report}"
    );
}

/// The last websocket of `client` was closed by the client with `code`.
///
/// # Panics
/// With the server's report otherwise.
pub fn assert_client_closed_with(server: &VoiceServer, client: usize, code: u16) {
    let report = server.report();
    let last = report
        .clients
        .get(client)
        .and_then(|c| c.connections.last())
        .and_then(|c| c.client_close);
    assert_eq!(last, Some(code), "{report}");
}
