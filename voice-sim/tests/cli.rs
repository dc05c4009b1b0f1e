//! The `voice-sim` binary: start line, a client played into it, report and recording on exit.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use voice_sim::testing::EngineClient;
use voice_sim::{ExpectedClient, Report};

#[tokio::test]
async fn cli_serves_a_client_then_writes_report_and_recording() {
    let dir = tempfile::tempdir().expect("temp dir");
    let report_path = dir.path().join("report.json");
    let record = dir.path().join("rec");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_voice-sim"))
        .args([
            "--heartbeat-ms",
            "400",
            "--exit-after-clients",
            "1",
            "--duration",
            "30",
            "--seed",
            "5",
        ])
        .arg("--report")
        .arg(&report_path)
        .arg("--record")
        .arg(&record)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("voice-sim starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("start line in time")
        .expect("reads")
        .expect("a line");
    let start: serde_json::Value = serde_json::from_str(&first).expect("the start line is JSON");
    let ws_url = start["ws_url"].as_str().expect("ws_url").to_owned();
    assert!(ws_url.starts_with("ws://127.0.0.1:"), "{ws_url}");
    assert!(start["udp"]
        .as_str()
        .is_some_and(|u| u.starts_with("127.0.0.1:")));
    let info: ExpectedClient =
        serde_json::from_value(start["clients"][0].clone()).expect("client info");
    assert!(info.guild_id > 0 && !info.token.is_empty());
    assert_eq!(
        start["clients"][0]["guild_id"],
        info.guild_id.to_string(),
        "ids are strings"
    );

    let frames: Vec<Vec<u8>> = (0..25u8).map(|i| vec![0xFC, i, 1, 2]).collect();
    let outcome = EngineClient::new(&ws_url, info, frames.clone())
        .run()
        .await
        .expect("client runs");
    assert!(outcome.error.is_none(), "{:?}", outcome.events);

    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits after the client left")
        .expect("waits");
    assert!(status.success(), "exit status {status}");
    let report: Report =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report written"))
            .expect("report parses");
    assert!(report.violations.is_empty(), "{report}");
    assert_eq!(report.streams.len(), 1);
    let ssrc = report.streams[0].ssrc;
    let recorded = voice_sim::ogg_opus::read_file(&record.join(format!("ssrc-{ssrc}.ogg")))
        .expect("recording reads");
    assert_eq!(recorded.len(), 30, "25 frames and 5 silence frames");
    assert_eq!(&recorded[..25], &frames[..]);
}

#[tokio::test]
async fn cli_rejects_a_bad_scenario_with_a_usage_error() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_voice-sim"))
        .args(["--scenario", "close=4015"])
        .output()
        .await
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("@ms=N or @packets=N"), "{stderr}");
}

#[tokio::test]
async fn cli_same_channel_clients_share_guild_and_channel() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_voice-sim"))
        .args(["--clients", "3", "--same-channel", "--duration", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("voice-sim starts");
    let stdout = child.stdout.take().expect("stdout");
    let first = BufReader::new(stdout)
        .lines()
        .next_line()
        .await
        .expect("reads")
        .expect("a line");
    let start: serde_json::Value = serde_json::from_str(&first).expect("JSON");
    let clients = start["clients"].as_array().expect("clients");
    assert_eq!(clients.len(), 3);
    assert!(clients
        .iter()
        .all(|c| c["channel_id"] == clients[0]["channel_id"]
            && c["guild_id"] == clients[0]["guild_id"]));
    assert!(clients[1]["user_id"] != clients[0]["user_id"]);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits")
        .expect("waits");
    assert!(status.success(), "{status}");
}
