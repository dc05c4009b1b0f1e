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

use voice_sim::{
    adapter_cases, AckPolicy, CloseRule, Garbage, Report, Scenario, ServerConfig, Trigger,
    ViolationKind, VoiceServer,
};

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

/// One run of play.mjs against a server built from `config` (TLS and CA path are set here).
struct Run {
    server: VoiceServer,
    report: Report,
    expected: Vec<Vec<u8>>,
    context: String,
    /// Frames (hex) DJS received from `VOICE_SIM_LISTEN_USER`, if it listened.
    received: Option<Vec<String>>,
}

impl Run {
    /// Non-silence frames of all the client's SSRCs, in SSRC order of issue.
    fn audio(&self) -> Vec<Vec<u8>> {
        self.report.clients[0]
            .ssrcs
            .iter()
            .flat_map(|ssrc| self.server.frames(*ssrc))
            .filter(|f| !f.is_silence())
            .map(|f| f.opus)
            .collect()
    }
}

async fn run_discordjs(config: ServerConfig) -> Run {
    run_discordjs_with(config, None, 1).await
}

async fn run_discordjs_listening(config: ServerConfig, listen: Option<u64>) -> Run {
    run_discordjs_with(config, listen, 1).await
}

/// Runs play.mjs with `clients` connections (client 0 listens to `listen`).
async fn run_discordjs_with(config: ServerConfig, listen: Option<u64>, clients: usize) -> Run {
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

    let dave = if config.dave.enabled { "1" } else { "0" };
    let server = VoiceServer::start(ServerConfig {
        tls: true,
        ca_pem_path: Some(dir.path().join("ca.pem")),
        ..config
    })
    .await
    .expect("server starts");
    let infos: Vec<_> = (0..clients).map(|_| server.expect_client()).collect();
    let connection = if clients == 1 {
        serde_json::to_string(&infos[0])
    } else {
        serde_json::to_string(&infos)
    }
    .expect("json");
    let ca = server.ca_pem_path().expect("tls is on").to_path_buf();
    let log_path = dir.path().join("node.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut child = tokio::process::Command::new("node")
        .arg("play.mjs")
        .current_dir(interop_dir())
        .env("NODE_EXTRA_CA_CERTS", &ca)
        .env("VOICE_SIM_CONNECTION", &connection)
        .env("VOICE_SIM_OGG", &ogg)
        .env("VOICE_SIM_TIMEOUT_MS", "40000")
        .env("VOICE_SIM_DAVE", dave)
        .env(
            "VOICE_SIM_LISTEN_USER",
            listen.map(|u| u.to_string()).unwrap_or_default(),
        )
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
    let lines: Vec<&str> = node_log
        .lines()
        .filter(|l| !l.contains(r#""event":"debug""#) || l.contains("close") || l.contains("4"))
        .collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    assert!(status.success(), "node play.mjs failed ({status}):\n{tail}");

    // The client closed its websocket when it destroyed the connection.
    let (report, closed) = server
        .wait_until(Duration::from_secs(3), |r| {
            r.clients.iter().all(|client| {
                client
                    .connections
                    .last()
                    .is_some_and(|c| c.closed_ms.is_some())
            })
        })
        .await;
    assert!(closed, "the websocket did not close:\n{report}\n{tail}");
    let context = format!(
        "{report}\n{}\nnode log tail:\n{tail}",
        serde_json::to_string(&report.clients).unwrap_or_default()
    );
    let received = node_log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|v| v["event"] == "received")
        .map(|v| {
            v["frames"]
                .as_array()
                .map(|frames| {
                    frames
                        .iter()
                        .filter_map(|f| f.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        });
    Run {
        server,
        report,
        expected,
        context,
        received,
    }
}

/// What every run must show: no violations, the client's last websocket closed by `destroy()`
/// with 1000, and the file's frames delivered once, byte for byte, in order, with at most
/// `may_lose` frames missing (DJS drops the one packet it had prepared when its websocket goes
/// away for a fresh Identify or after missed heartbeat ACKs).
fn assert_clean_delivery(run: &Run, may_lose: usize) {
    let (report, context) = (&run.report, &run.context);
    assert!(report.violations.is_empty(), "violations:\n{context}");
    assert_eq!(report.suppressed, 0, "{context}");
    let client = &report.clients[0];
    assert_eq!(client.max_dave_protocol_version, Some(1), "{context}");
    assert!(
        client.connections.iter().all(|c| c.path == "/?v=8"),
        "{context}"
    );
    assert_eq!(
        client.connections.last().and_then(|c| c.client_close),
        Some(1000),
        "destroy() closes with 1000: {context}"
    );
    for ssrc in &client.ssrcs {
        let stats = &report.stream(*ssrc).expect("a stream per SSRC").stats;
        assert_eq!(stats.decrypt_failures, 0, "{context}");
        assert_eq!(
            (stats.gaps, stats.missing, stats.duplicates, stats.reordered),
            (0, 0, 0, 0),
            "continuous: {context}"
        );
        assert_eq!(stats.timestamp_errors, 0, "{context}");
    }
    let received = run.audio();
    let lost = run.expected.len().saturating_sub(received.len());
    let missing: Vec<usize> = {
        let mut next = received.iter().peekable();
        let mut missing = Vec::new();
        for (i, frame) in run.expected.iter().enumerate() {
            if next.peek() == Some(&frame) {
                next.next();
            } else {
                missing.push(i);
            }
        }
        missing
    };
    assert!(
        lost <= may_lose,
        "{lost} frame(s) lost (file indices {missing:?}): {context}"
    );
    if lost == 0 {
        assert!(
            received == run.expected,
            "the Opus frames differ from the file's packets: {context}"
        );
    } else {
        // Byte-exact and in order, with `lost` frames skipped.
        let mut remaining = run.expected.iter();
        for frame in &received {
            assert!(
                remaining.any(|f| f == frame),
                "a frame not from the file, or out of order: {context}"
            );
        }
    }
    eprintln!("{report}");
}

/// Plays the prefix with Ready offering `offered`; DJS must pick `mode`.
async fn play_through_discordjs(offered: &[&str], mode: &str) {
    let run = run_discordjs(ServerConfig {
        heartbeat_interval: Duration::from_millis(1000),
        modes: offered.iter().map(|m| (*m).to_owned()).collect(),
        ..ServerConfig::default()
    })
    .await;
    assert_clean_delivery(&run, 0);
    let (report, context) = (&run.report, &run.context);
    let client = &report.clients[0];
    assert_eq!(client.identifies, 1, "{context}");
    assert_eq!(client.resumes, 0, "{context}");
    assert_eq!(client.mode.as_deref(), Some(mode), "{context}");
    assert_eq!(client.discovery_requests, 1, "{context}");
    // Speaking 1 right before the first packet, Speaking 0 after the burst (INTEROP.md).
    assert_eq!(client.speaking, vec![1, 0], "{context}");
    assert!(
        client.keepalives >= 1,
        "DJS sends an 8-byte keepalive at once: {context}"
    );
    assert_eq!(client.connections.len(), 1, "{context}");
    let connection = &client.connections[0];
    assert!(connection.heartbeats >= 1, "{context}");
    assert_eq!(connection.server_close, None, "{context}");
    assert_eq!(client.ssrcs.len(), 1, "{context}");
    let ssrc = client.ssrcs[0];
    assert_eq!(report.streams.len(), 1, "{context}");
    let stats = &report
        .stream(ssrc)
        .expect("a stream for the client's SSRC")
        .stats;
    assert_eq!(
        stats.packets,
        FRAMES as u64 + stats.silence_frames,
        "{context}"
    );
    assert!(stats.jitter.samples as usize >= FRAMES - 1, "{context}");
    // DJS ends a spurt with four silence frames, not five: an advisory, not a violation.
    assert_eq!(stats.silence_frames, 4, "{context}");
    assert_eq!(
        report.violations_of(ViolationKind::FewSilenceFrames).len(),
        1,
        "{context}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discordjs_plays_ogg_opus_with_aes256_gcm() {
    // Both offered, in the default order (AES first).
    play_through_discordjs(
        &["aead_aes256_gcm_rtpsize", "aead_xchacha20_poly1305_rtpsize"],
        "aead_aes256_gcm_rtpsize",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discordjs_plays_ogg_opus_with_xchacha20_poly1305() {
    // DJS takes the first mode *in the server's order* that it supports, skipping the
    // discontinued one: XChaCha here although AES is offered too (its `chooseEncryptionMode`).
    play_through_discordjs(
        &[
            "xsalsa20_poly1305_lite",
            "aead_xchacha20_poly1305_rtpsize",
            "aead_aes256_gcm_rtpsize",
        ],
        "aead_xchacha20_poly1305_rtpsize",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discordjs_resumes_after_4015_with_the_same_ssrc_and_no_gap() {
    let run = run_discordjs(ServerConfig {
        heartbeat_interval: Duration::from_millis(1000),
        scenario: Scenario {
            close: vec![CloseRule {
                code: 4015,
                trigger: Trigger::AfterPackets(40),
            }],
            ..Scenario::default()
        },
        ..ServerConfig::default()
    })
    .await;
    // No sequence gap, but the packet DJS had prepared when the close came may be dropped.
    assert_clean_delivery(&run, 1);
    let client = &run.report.clients[0];
    let context = &run.context;
    assert_eq!((client.identifies, client.resumes), (1, 1), "{context}");
    // Speaking again after the resume, then 0 at the end.
    assert_eq!(client.speaking, vec![1, 1, 0], "{context}");
    assert_eq!(client.ssrcs.len(), 1, "same SSRC: {context}");
    assert_eq!(client.connections[0].server_close, Some(4015), "{context}");
    assert_eq!(
        client.connections[1].started_with.as_deref(),
        Some("resume"),
        "{context}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discordjs_identifies_afresh_after_4006() {
    let run = run_discordjs(ServerConfig {
        heartbeat_interval: Duration::from_millis(1000),
        scenario: Scenario {
            close: vec![CloseRule {
                code: 4006,
                trigger: Trigger::AfterPackets(40),
            }],
            ..Scenario::default()
        },
        ..ServerConfig::default()
    })
    .await;
    // DJS drops the packet it had prepared when the close came (its player auto-pauses while
    // reconnecting); packets still sent with the old SSRC after the new Identify replaced it
    // would be strays (the old SSRC is no longer in the call).
    let strays = run.report.stray_datagrams as usize;
    assert_clean_delivery(&run, 1 + strays);
    let client = &run.report.clients[0];
    let context = &run.context;
    assert_eq!((client.identifies, client.resumes), (2, 0), "{context}");
    assert_eq!(client.connections[0].server_close, Some(4006), "{context}");
    assert_eq!(
        client.connections[1].started_with.as_deref(),
        Some("identify"),
        "{context}"
    );
    // The interrupted spurt ends without silence frames: an advisory.
    let first = run.report.stream(client.ssrcs[0]).expect("first stream");
    assert_eq!(first.stats.silence_frames, 0, "{context}");
    assert_eq!(client.ssrcs.len(), 2, "a new SSRC: {context}");
    assert_ne!(client.ssrcs[0], client.ssrcs[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discordjs_resumes_after_missed_heartbeat_acks_and_survives_garbage() {
    let run = run_discordjs(ServerConfig {
        heartbeat_interval: Duration::from_millis(250),
        scenario: Scenario {
            heartbeat_acks: AckPolicy::StopAfter(1),
            garbage: vec![
                Garbage::UnknownOpcode,
                Garbage::MalformedJson,
                Garbage::UnexpectedBinary,
            ],
            ..Scenario::default()
        },
        ..ServerConfig::default()
    })
    .await;
    assert_clean_delivery(&run, 1);
    let client = &run.report.clients[0];
    let context = &run.context;
    assert_eq!((client.identifies, client.resumes), (1, 1), "{context}");
    assert_eq!(client.ssrcs.len(), 1, "{context}");
    // One ACK, then three unacknowledged heartbeats; at the next one DJS finds the socket dead
    // and closes it itself, with a close frame without a code (1005 on our side).
    assert_eq!(client.connections[0].heartbeats, 4, "{context}");
    assert_eq!(client.connections[0].client_close, Some(1005), "{context}");
    assert_eq!(client.connections[0].server_close, None, "{context}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discordjs_receives_a_simulated_speaker_with_header_extensions() {
    let speech: Vec<Vec<u8>> =
        demux(&Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/sample.ogg"))
            .into_iter()
            .skip(200)
            .take(40)
            .collect();
    let user = 123_456_789_012_345_678;
    let run = run_discordjs_listening(
        ServerConfig {
            heartbeat_interval: Duration::from_millis(1000),
            scenario: Scenario {
                users: vec![voice_sim::SimulatedUser {
                    user_id: user,
                    join_after: Duration::from_millis(100),
                    speak_after: Some(Duration::from_millis(300)),
                    leave_after: None,
                    frames: std::sync::Arc::new(speech.clone()),
                    dave: true,
                }],
                ..Scenario::default()
            },
            ..ServerConfig::default()
        },
        Some(user),
    )
    .await;
    assert_clean_delivery(&run, 0);
    let context = &run.context;
    let received = run
        .received
        .clone()
        .expect("play.mjs printed what it received");
    let hex = |frame: &Vec<u8>| frame.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let expected: Vec<String> = speech.iter().map(hex).collect();
    let audio: Vec<String> = received
        .iter()
        .filter(|f| f.as_str() != "f8fffe")
        .cloned()
        .collect();
    assert_eq!(
        audio, expected,
        "DJS decrypted, stripped the extension and got every frame: {context}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_discordjs_connections_share_the_udp_port() {
    let run = run_discordjs_with(
        ServerConfig {
            heartbeat_interval: Duration::from_millis(1000),
            ..ServerConfig::default()
        },
        None,
        3,
    )
    .await;
    let (report, context) = (&run.report, &run.context);
    assert!(report.violations.is_empty(), "{context}");
    assert_eq!(report.streams.len(), 3, "{context}");
    for (client, info) in report.clients.iter().enumerate() {
        assert_eq!((info.identifies, info.ssrcs.len()), (1, 1), "{context}");
        let ssrc = info.ssrcs[0];
        let stream = report.stream(ssrc).expect("stream");
        assert_eq!(stream.client, client);
        assert_eq!(
            (
                stream.stats.decrypt_failures,
                stream.stats.gaps,
                stream.stats.missing
            ),
            (0, 0, 0),
            "{context}"
        );
        let audio: Vec<Vec<u8>> = run
            .server
            .frames(ssrc)
            .into_iter()
            .filter(|f| !f.is_silence())
            .map(|f| f.opus)
            .collect();
        assert!(
            audio == run.expected,
            "client {client} delivered the file byte for byte: {context}"
        );
    }
}

/// The DAVE runs: @discordjs/voice (davey underneath) joins a DAVE-required call with
/// voice-sim's simulated listener, plays once its first transition executed, and every frame
/// must decrypt end to end (transport, then DAVE with the listener's key).
async fn play_through_discordjs_with_dave(scenario: Scenario) -> Run {
    let run = run_discordjs(ServerConfig {
        heartbeat_interval: Duration::from_millis(1000),
        ..adapter_cases::dave_server_config(true, scenario)
    })
    .await;
    assert_clean_delivery(&run, 0);
    let (report, context) = (&run.report, &run.context);
    let decrypted: u64 = report.streams.iter().map(|s| s.stats.dave_decrypted).sum();
    assert_eq!(
        decrypted, FRAMES as u64,
        "every frame DAVE-decrypted: {context}"
    );
    for stream in &report.streams {
        let stats = &stream.stats;
        assert_eq!(
            (stats.dave_failures, stats.dave_unverified, stats.dave_plain),
            (0, 0, 0),
            "{context}"
        );
    }
    let channel = report.dave.first().expect("a DAVE channel");
    assert!(channel.simulated_errors.is_empty(), "{context}");
    assert_eq!(channel.invalid_commit_welcomes, 0, "{context}");
    assert!(
        report
            .violations_of(ViolationKind::DavePlainBeforeKeyed)
            .is_empty(),
        "{context}"
    );
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discordjs_plays_end_to_end_encrypted_with_dave() {
    let run = play_through_discordjs_with_dave(adapter_cases::dave_call()).await;
    let (report, context) = (&run.report, &run.context);
    let channel = &report.dave[0];
    // @discordjs/voice commits the group into existence; after it left, the listener commits
    // its removal.
    assert_eq!(
        (channel.commits_announced, channel.client_commits),
        (2, 1),
        "{context}"
    );
    assert_eq!(channel.transitions_executed, 2, "{context}");
    assert_eq!(channel.epoch, 2, "{context}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discordjs_keeps_playing_while_a_dave_member_joins_and_leaves() {
    let run = play_through_discordjs_with_dave(adapter_cases::dave_member_joins_and_leaves()).await;
    let (report, context) = (&run.report, &run.context);
    let channel = &report.dave[0];
    assert_eq!(
        channel.commits_announced, 4,
        "creation, the visitor's add, its removal, the client's removal: {context}"
    );
    assert_eq!(channel.transitions_executed, 4, "{context}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discordjs_decrypts_a_simulated_dave_speaker() {
    let speech: Vec<Vec<u8>> = adapter_cases::sample_frames(40);
    let run = run_discordjs_listening(
        ServerConfig {
            heartbeat_interval: Duration::from_millis(1000),
            ..adapter_cases::dave_server_config(true, adapter_cases::dave_speaker(speech.clone()))
        },
        Some(adapter_cases::DAVE_LISTENER),
    )
    .await;
    assert_clean_delivery(&run, 0);
    let heard: Vec<Vec<u8>> = run
        .received
        .clone()
        .unwrap_or_default()
        .iter()
        .filter_map(|hex| decode_hex(hex))
        .filter(|frame| frame.as_slice() != voice_proto::rtp::SILENCE_FRAME)
        .collect();
    assert_eq!(
        heard, speech,
        "@discordjs/voice decrypted the listener's DAVE frames: {}",
        run.context
    );
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discordjs_recovers_from_a_corrupted_dave_commit_with_op_31() {
    let run = run_discordjs(ServerConfig {
        heartbeat_interval: Duration::from_millis(1000),
        ..adapter_cases::dave_recovery_server_config(true, adapter_cases::dave_call())
    })
    .await;
    assert_clean_delivery(&run, 0);
    let (report, context) = (&run.report, &run.context);
    let channel = &report.dave[0];
    assert_eq!(channel.invalid_commit_welcomes, 1, "{context}");
    let decrypted: u64 = report.streams.iter().map(|s| s.stats.dave_decrypted).sum();
    assert_eq!(decrypted, FRAMES as u64, "{context}");
}
