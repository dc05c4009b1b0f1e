//! Interop: the real, independent client @discordjs/voice 0.19.2 (Node) plays an Ogg Opus file
//! into voice-sim over `wss://` and UDP; the server must see zero violations, a continuous
//! decryptable stream, and exactly the file's Opus packets, byte for byte.
//!
//! Needs `node` and `npm` (CI has them): without them the test fails with a clear message. The
//! npm packages are installed from `interop/package-lock.json` on first run.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use voice_sim::{ServerConfig, ViolationKind, VoiceServer};

/// Frames of the committed sample played per test: 2.4 s keeps the test short.
const FRAMES: usize = 120;

static NPM: Mutex<()> = Mutex::new(());

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// Checks node/npm and installs the npm packages once.
fn prepare_node() {
    let _guard = NPM
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for tool in ["node", "npm"] {
        let found = std::process::Command::new(tool).arg("--version").output();
        match found {
            Ok(out) if out.status.success() => {}
            _ => panic!(
                "`{tool}` is required for the @discordjs/voice interop test but was not found on PATH \
                 (install Node.js >= 20 with npm; CI has them)"
            ),
        }
    }
    let dir = interop_dir();
    if dir
        .join("node_modules/@discordjs/voice/package.json")
        .exists()
        && dir
            .join("node_modules/@noble/ciphers/package.json")
            .exists()
        && dir.join("node_modules/prism-media/package.json").exists()
    {
        return;
    }
    let args: &[&str] = if dir.join("package-lock.json").exists() {
        &["ci", "--no-audit", "--no-fund"]
    } else {
        &["install", "--no-audit", "--no-fund"]
    };
    let out = std::process::Command::new("npm")
        .args(args)
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("running npm {args:?} in {}: {e}", dir.display()));
    assert!(
        out.status.success(),
        "npm {args:?} failed in {}:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Demuxes an Ogg Opus file with the `ogg` crate: the audio packets, headers skipped.
fn demux(path: &Path) -> Vec<Vec<u8>> {
    let file = std::fs::File::open(path).expect("ogg file opens");
    let mut reader = ogg::PacketReader::new(std::io::BufReader::new(file));
    let mut packets = Vec::new();
    while let Some(packet) = reader.read_packet().expect("valid ogg") {
        if packet.data.starts_with(b"OpusHead") || packet.data.starts_with(b"OpusTags") {
            continue;
        }
        packets.push(packet.data);
    }
    packets
}

async fn play_through_discordjs(mode: &str) {
    prepare_node();
    let dir = tempfile::tempdir().expect("temp dir");
    // A prefix of the committed sample, cut with the ogg crate.
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/sample.ogg");
    let all = demux(&sample);
    let prefix: Vec<Vec<u8>> = all.into_iter().take(FRAMES).collect();
    let ogg = dir.path().join("prefix.ogg");
    voice_sim::ogg_opus::write_file(&ogg, &prefix).expect("writes the prefix");
    let expected = demux(&ogg);
    assert_eq!(expected.len(), FRAMES);

    let server = VoiceServer::start(ServerConfig {
        tls: true,
        heartbeat_interval: Duration::from_millis(1000),
        modes: vec![mode.to_owned()],
        ca_pem_path: Some(dir.path().join("ca.pem")),
        ..ServerConfig::default()
    })
    .await
    .expect("server starts");
    let info = server.expect_client();
    let ca = server.ca_pem_path().expect("tls is on").to_path_buf();
    let log_path = dir.path().join("node.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut child = tokio::process::Command::new("node")
        .arg("play.mjs")
        .current_dir(interop_dir())
        .env("NODE_EXTRA_CA_CERTS", &ca)
        .env(
            "VOICE_SIM_CONNECTION",
            serde_json::to_string(&info).expect("json"),
        )
        .env("VOICE_SIM_OGG", &ogg)
        .env("VOICE_SIM_TIMEOUT_MS", "40000")
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("node finishes within 60 s")
        .expect("node runs");
    let node_log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let tail: String = node_log
        .lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(status.success(), "node play.mjs failed ({status}):\n{tail}");

    // The client closed its websocket when it destroyed the connection.
    let (report, closed) = server
        .wait_until(Duration::from_secs(3), |r| {
            r.clients
                .first()
                .and_then(|c| c.connections.last())
                .is_some_and(|c| c.closed_ms.is_some())
        })
        .await;
    assert!(closed, "the websocket did not close:\n{report}\n{tail}");
    let context = format!("{report}\nnode log tail:\n{tail}");
    assert!(report.violations.is_empty(), "violations:\n{context}");
    assert_eq!(report.suppressed, 0, "{context}");

    let client = &report.clients[0];
    assert_eq!(client.identifies, 1, "{context}");
    assert_eq!(client.resumes, 0, "{context}");
    assert_eq!(client.mode.as_deref(), Some(mode), "{context}");
    assert_eq!(client.max_dave_protocol_version, Some(1), "{context}");
    assert_eq!(client.discovery_requests, 1, "{context}");
    // Speaking 1 right before the first packet, Speaking 0 after the burst (INTEROP.md).
    assert_eq!(client.speaking, vec![1, 0], "{context}");
    assert!(
        client.keepalives >= 1,
        "DJS sends an 8-byte keepalive at once: {context}"
    );
    let connection = &client.connections[0];
    assert_eq!(connection.path, "/?v=8", "{context}");
    assert!(connection.heartbeats >= 1, "{context}");
    assert_eq!(
        connection.client_close,
        Some(1000),
        "destroy() closes with 1000: {context}"
    );
    assert_eq!(connection.server_close, None, "{context}");
    assert_eq!(client.ssrcs.len(), 1, "{context}");
    let ssrc = client.ssrcs[0];

    assert_eq!(report.streams.len(), 1, "{context}");
    let stream = report.stream(ssrc).expect("a stream for the client's SSRC");
    let stats = &stream.stats;
    assert_eq!(stats.decrypt_failures, 0, "{context}");
    assert_eq!(
        (stats.gaps, stats.missing, stats.duplicates, stats.reordered),
        (0, 0, 0, 0),
        "continuous: {context}"
    );
    assert_eq!(stats.timestamp_errors, 0, "{context}");
    assert!(
        stats.silence_frames >= 1,
        "the talk spurt ends with silence: {context}"
    );
    assert_eq!(
        stats.packets,
        FRAMES as u64 + stats.silence_frames,
        "{context}"
    );
    assert!(stats.jitter.samples as usize >= FRAMES - 1, "{context}");

    let received: Vec<Vec<u8>> = server
        .frames(ssrc)
        .into_iter()
        .filter(|f| !f.is_silence())
        .map(|f| f.opus)
        .collect();
    assert_eq!(received.len(), expected.len(), "{context}");
    assert!(
        received == expected,
        "the Opus frames differ from the file's packets: {context}"
    );
    // DJS ends a spurt with four silence frames, not five: an advisory, not a violation.
    let few = report.violations_of(ViolationKind::FewSilenceFrames);
    assert_eq!(stats.silence_frames, 4, "{context}");
    assert_eq!(few.len(), 1, "{context}");
    eprintln!("{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discordjs_plays_ogg_opus_with_aes256_gcm() {
    play_through_discordjs("aead_aes256_gcm_rtpsize").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discordjs_plays_ogg_opus_with_xchacha20_poly1305() {
    play_through_discordjs("aead_xchacha20_poly1305_rtpsize").await;
}
