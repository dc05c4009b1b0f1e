//! Counting mode against the reference load generator: clean streams counted exactly, every
//! injected fault counted once, the decrypt sample catching a corrupted payload, and the load
//! server child process round trip. Only counts are asserted, never a wall-clock bound.

use std::time::Duration;

use voice_proto::crypto::EncryptionMode;
use voice_sim::load::{
    CountingConfig, Fault, LoadReport, LoadServerConfig, LoadServerProcess, ReferenceLoad,
    SentSummary,
};
use voice_sim::{ServerConfig, SimError, VoiceServer};

const AES: EncryptionMode = EncryptionMode::AeadAes256GcmRtpSize;

async fn counting_server(decrypt_every: u32) -> VoiceServer {
    VoiceServer::start(ServerConfig {
        seed: Some(13),
        counting: Some(CountingConfig {
            decrypt_every,
            ..CountingConfig::default()
        }),
        ..ServerConfig::default()
    })
    .await
    .expect("counting server starts")
}

/// `streams` reference streams joined to `server`, starting at sequence `first_sequence`.
async fn join(server: &VoiceServer, streams: usize, first_sequence: u16) -> ReferenceLoad {
    let clients: Vec<_> = (0..streams).map(|_| server.expect_client()).collect();
    ReferenceLoad::join(&server.ws_url(), &clients, AES, first_sequence, 8)
        .await
        .expect("reference streams join")
}

/// Waits (at most 10 s) until the server has looked at every datagram sent, then closes the
/// window. Counted plus rejected datagrams must reach what was sent.
async fn settle(server: &VoiceServer, sent: SentSummary) -> LoadReport {
    let expected = sent.packets + sent.rejected;
    for _ in 0..500 {
        let report = server.close_window().expect("counting mode");
        if report.totals.packets + report.rejected.total() >= expected {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.close_window().expect("counting mode")
}

#[tokio::test]
async fn counting_counts_clean_streams_exactly_across_the_sequence_wrap() {
    let server = counting_server(64).await;
    let mut load = join(&server, 4, 65_500).await;
    server.open_window().expect("counting mode");
    let sent = load.play(60).await.expect("play");
    assert_eq!(sent.packets, 240);
    let report = settle(&server, sent).await;
    assert!(report.is_clean(), "{report}");
    assert_eq!((report.streams, report.totals.packets), (4, 240));
    assert_eq!(report.silent_streams, 0);
    let totals = &report.totals;
    assert_eq!(
        (totals.missing, totals.duplicates, totals.reorders),
        (0, 0, 0)
    );
    assert_eq!(totals.timestamp_steps, 0);
    // One packet in 64 decrypted, from the first: 0, 64, 128, 192.
    assert_eq!((report.decrypt_checked, report.decrypt_failed), (4, 0));
    // Every packet after a stream's first is an inter-arrival sample.
    assert_eq!(report.jitter.samples, 236);
    assert_eq!(report.untimestamped, 0);
    assert_eq!(
        report.discovery_requests, 0,
        "discovery was before the window"
    );
    assert!(
        report.per_stream.iter().all(|s| s.figures.packets == 60),
        "{report:?}"
    );
    assert!(report.server_cpu.is_some());
    let status = server.load_status().expect("counting mode");
    assert_eq!((status.streams, status.packets), (4, 240));
    let final_report = server.shutdown().await;
    assert!(final_report.violations.is_empty(), "{final_report}");
}

#[tokio::test]
async fn counting_accounts_each_injected_fault_exactly() {
    let server = counting_server(64).await;
    let mut load = join(&server, 7, 1_000).await;
    load.inject(0, 10, Fault::Skip);
    load.inject(1, 10, Fault::Duplicate);
    load.inject(2, 10, Fault::SwapWithNext);
    load.inject(3, 10, Fault::TimestampJump(7));
    load.inject(4, 10, Fault::ForeignCopy);
    load.inject(5, 10, Fault::BadHeaderCopy);
    load.inject(5, 20, Fault::UnknownSsrcCopy);
    load.inject(6, 29, Fault::SwapWithNext); // the last packet: sent after the end, in order
    let ssrcs: Vec<u32> = load.streams().iter().map(|s| s.sender.ssrc).collect();
    // Two senders playing at once; the faults travel with their streams.
    let mut parts = load.split(2);
    assert_eq!(parts.iter().map(|p| p.streams().len()).sum::<usize>(), 7);
    server.open_window().expect("counting mode");
    let (Some(mut even), Some(mut odd)) = (parts.pop(), parts.pop()) else {
        panic!("two parts");
    };
    let (a, b) = tokio::join!(even.play(30), odd.play(30));
    let (a, b) = (a.expect("play"), b.expect("play"));
    let sent = SentSummary {
        packets: a.packets + b.packets,
        rejected: a.rejected + b.rejected,
        skipped: a.skipped + b.skipped,
    };
    assert_eq!(
        sent,
        SentSummary {
            packets: 7 * 30 - 1 + 1,
            rejected: 3,
            skipped: 1
        }
    );
    let report = settle(&server, sent).await;
    assert_eq!(report.totals.packets, 210, "{report}");
    assert_eq!(report.totals.missing, 1);
    assert_eq!(report.totals.duplicates, 1);
    assert_eq!(report.totals.reorders, 1);
    assert_eq!(report.totals.timestamp_steps, 1);
    assert_eq!(report.rejected.foreign_source, 1);
    assert_eq!(report.rejected.bad_header, 1);
    assert_eq!(report.rejected.unknown_ssrc, 1);
    assert_eq!(report.rejected.other, 0);
    assert_eq!(report.decrypt_failed, 0);
    let ssrc = |stream: usize| ssrcs.get(stream).copied();
    let per = |stream: usize| {
        report
            .per_stream
            .iter()
            .find(|s| Some(s.ssrc) == ssrc(stream))
            .map(|s| s.figures.clone())
            .expect("stream in report")
    };
    assert_eq!((per(0).packets, per(0).missing), (29, 1));
    assert_eq!((per(1).packets, per(1).duplicates), (31, 1));
    assert_eq!(
        (per(2).packets, per(2).reorders, per(2).missing),
        (30, 1, 0)
    );
    assert_eq!(per(3).timestamp_steps, 1);
    assert_eq!(per(4).packets, 30);
    assert_eq!(
        (per(6).packets, per(6).reorders, per(6).missing),
        (30, 0, 0)
    );
    assert!(!report.is_clean());
    drop((even, odd));
    server.shutdown().await;
}

#[tokio::test]
async fn counting_decrypt_sample_catches_a_corrupted_payload() {
    let server = counting_server(1).await;
    let mut load = join(&server, 2, 0).await;
    load.inject(1, 5, Fault::Corrupt);
    server.open_window().expect("counting mode");
    let sent = load.play(20).await.expect("play");
    let report = settle(&server, sent).await;
    assert_eq!(report.totals.packets, 40, "{report}");
    assert_eq!((report.decrypt_checked, report.decrypt_failed), (40, 1));
    assert_eq!(report.totals.missing, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn counting_mode_refuses_dave_and_a_normal_server_has_no_windows() {
    let refused = VoiceServer::start(ServerConfig {
        counting: Some(CountingConfig::default()),
        dave: voice_sim::DaveConfig::required(),
        ..ServerConfig::default()
    })
    .await;
    assert!(matches!(refused, Err(SimError::Config(_))), "{refused:?}");
    let normal = VoiceServer::start(ServerConfig::default())
        .await
        .expect("server starts");
    assert!(!normal.is_counting());
    assert!(matches!(normal.open_window(), Err(SimError::NotCounting)));
    assert!(matches!(normal.close_window(), Err(SimError::NotCounting)));
}

#[test]
fn load_server_child_process_round_trip() {
    let config = LoadServerConfig {
        tls: false,
        seed: Some(3),
        gateway_threads: 1,
        ..LoadServerConfig::default()
    };
    let program = std::path::Path::new(env!("CARGO_BIN_EXE_voice-sim"));
    let mut server = LoadServerProcess::spawn_program(program, 3, &config).expect("child starts");
    let ready = server.ready().clone();
    assert_eq!(ready.clients.len(), 3);
    assert!(ready.ws_url.starts_with("ws://"), "{}", ready.ws_url);
    assert!(ready.ca_pem.is_none());
    assert_eq!(ready.pid, server.pid());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut load = runtime
        .block_on(ReferenceLoad::join(
            &ready.ws_url,
            &ready.clients,
            AES,
            9,
            3,
        ))
        .expect("reference streams join");
    server.open_window().expect("open window");
    let sent = runtime.block_on(load.play(25)).expect("play");
    let mut report = server.close_window().expect("report");
    for _ in 0..500 {
        if report.totals.packets >= sent.packets {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        report = server.close_window().expect("report");
    }
    assert!(report.is_clean(), "{report}");
    assert_eq!((report.streams, report.totals.packets), (3, 75));
    assert!(report.server_cpu.is_some());
    let status = server.status().expect("status");
    assert_eq!((status.streams, status.packets), (3, 75));
    drop(load);
    server.shutdown().expect("child exits cleanly");
}

#[test]
fn a_load_server_child_that_dies_is_a_clear_error() {
    let error = LoadServerProcess::spawn_program(
        std::path::Path::new("/bin/false"),
        1,
        &LoadServerConfig::default(),
    )
    .expect_err("false is no load server");
    let text = error.to_string();
    assert!(text.contains("exited with"), "{text}");
}

#[test]
fn voice_sim_load_command_runs_a_small_clean_load() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_voice-sim"))
        .args([
            "load",
            "--streams",
            "3",
            "--seconds",
            "0.5",
            "--warmup",
            "0.3",
        ])
        .args(["--json"])
        .output()
        .expect("voice-sim load runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: LoadReport = serde_json::from_str(&stdout).expect("a JSON report");
    assert_eq!((report.streams, report.silent_streams), (3, 0));
    assert!(report.is_clean(), "{report}");
}
