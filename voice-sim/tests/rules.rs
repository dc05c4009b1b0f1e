//! One test per remaining validation rule: a bad client is caught with the right violation.

use std::time::Duration;

use voice_proto::crypto::EncryptionMode;
use voice_proto::discovery::discovery_request;
use voice_proto::payload::ServerMessage;
use voice_sim::testing::{MediaSender, RawClient, RawSession, STEP_TIMEOUT};
use voice_sim::{ExpectedClient, Report, ServerConfig, ViolationKind, VoiceServer};

const AES: EncryptionMode = EncryptionMode::AeadAes256GcmRtpSize;

async fn setup() -> (
    VoiceServer,
    ExpectedClient,
    RawClient,
    RawSession,
    MediaSender,
) {
    let server = VoiceServer::start(ServerConfig {
        heartbeat_interval: Duration::from_millis(500),
        speaking_grace: Duration::from_millis(100),
        seed: Some(99),
        ..ServerConfig::default()
    })
    .await
    .expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    let session = client.handshake(&info, AES).await.expect("handshake");
    client
        .speaking(1, session.ready.ssrc)
        .await
        .expect("speaking");
    tokio::time::sleep(Duration::from_millis(30)).await;
    let media = client.media(&session, 10, 9600).expect("media");
    (server, info, client, session, media)
}

async fn wait_for(server: &VoiceServer, kind: ViolationKind) -> Report {
    let (report, found) = server
        .wait_until(Duration::from_secs(3), |r| {
            !r.violations_of(kind).is_empty()
        })
        .await;
    assert!(found, "expected {kind:?}:\n{report}");
    report
}

#[tokio::test]
async fn missing_or_wrong_gateway_version() {
    let server = VoiceServer::start(ServerConfig::default())
        .await
        .expect("starts");
    let base = format!("ws://{}", server.endpoint());
    RawClient::connect(&format!("{base}/"))
        .await
        .expect("connects without v");
    RawClient::connect(&format!("{base}/?v=4"))
        .await
        .expect("connects with v=4");
    // DJS's URL form `wss://host:port?v=8` reaches the server as `/?v=8` (a URL always has a
    // path on the wire): that is what the interop test records.
    RawClient::connect(&format!("{base}/?v=8"))
        .await
        .expect("connects");
    let (report, done) = server
        .wait_until(Duration::from_secs(3), |r| {
            r.violations_of(ViolationKind::GatewayVersion).len() == 2
        })
        .await;
    assert!(done, "{report}");
    let details: Vec<&str> = report
        .violations
        .iter()
        .map(|v| v.detail.as_str())
        .collect();
    assert_eq!(details.len(), 2, "{details:?}");
    assert!(details.iter().any(|d| d.contains("no v=")), "{details:?}");
    assert!(
        details.iter().any(|d| d.contains("version 4")),
        "{details:?}"
    );

    // Once the client names itself, the violation is attributed to it.
    let info = server.expect_client();
    let mut named = RawClient::connect(&format!("{base}/?v=7"))
        .await
        .expect("connects");
    named.identify(&info).await.expect("identify");
    named
        .recv_until(STEP_TIMEOUT, |m| matches!(m, ServerMessage::Ready(_)))
        .await
        .expect("ready");
    let report = server.report();
    assert!(
        report
            .violations_of(ViolationKind::GatewayVersion)
            .iter()
            .any(|v| v.client == Some(0) && v.detail.contains("version 7")),
        "{report}"
    );
}

#[tokio::test]
async fn protocol_other_than_udp_closes_4012() {
    let server = VoiceServer::start(ServerConfig::default())
        .await
        .expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    client.identify(&info).await.expect("identify");
    let ServerMessage::Ready(ready) = client
        .recv_until(STEP_TIMEOUT, |m| matches!(m, ServerMessage::Ready(_)))
        .await
        .expect("ready")
    else {
        unreachable!()
    };
    let at = client
        .discover(ready.ssrc, server.udp_addr())
        .await
        .expect("discovers");
    let select = serde_json::json!({"op": 1, "d": {"protocol": "webrtc", "data": {
        "address": at.ip().to_string(), "port": at.port(), "mode": AES.name()}}});
    client.send_text(select.to_string()).await.expect("send");
    assert_eq!(client.closed(STEP_TIMEOUT).await, Some(4012));
    wait_for(&server, ViolationKind::ProtocolNotUdp).await;
}

#[tokio::test]
async fn select_protocol_address_must_match_discovery_and_come_after_it() {
    let server = VoiceServer::start(ServerConfig::default())
        .await
        .expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    client.identify(&info).await.expect("identify");
    let ServerMessage::Ready(ready) = client
        .recv_until(STEP_TIMEOUT, |m| matches!(m, ServerMessage::Ready(_)))
        .await
        .expect("ready")
    else {
        unreachable!()
    };
    client
        .discover(ready.ssrc, server.udp_addr())
        .await
        .expect("discovers");
    let select = serde_json::json!({"op": 1, "d": {"protocol": "udp", "data": {
        "address": "203.0.113.9", "port": 1234, "mode": AES.name()}}});
    client.send_text(select.to_string()).await.expect("send");
    client
        .recv_until(STEP_TIMEOUT, |m| {
            matches!(m, ServerMessage::SessionDescription(_))
        })
        .await
        .expect("still described");
    let report = wait_for(&server, ViolationKind::SelectProtocolAddress).await;
    assert!(
        report.violations[0].detail.contains("203.0.113.9:1234"),
        "{report}"
    );

    // Without any discovery: an op-order violation.
    let info = server.expect_client();
    let mut lazy = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    lazy.identify(&info).await.expect("identify");
    lazy.recv_until(STEP_TIMEOUT, |m| matches!(m, ServerMessage::Ready(_)))
        .await
        .expect("ready");
    lazy.send_text(select.to_string()).await.expect("send");
    lazy.recv_until(STEP_TIMEOUT, |m| {
        matches!(m, ServerMessage::SessionDescription(_))
    })
    .await
    .expect("described");
    let report = server.report();
    assert!(
        report
            .violations_of(ViolationKind::OpOrder)
            .iter()
            .any(|v| v.client == Some(1) && v.detail.contains("IP discovery")),
        "{report}"
    );
}

#[tokio::test]
async fn speaking_before_session_description_and_dave_json_ops() {
    let server = VoiceServer::start(ServerConfig::default())
        .await
        .expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    client.identify(&info).await.expect("identify");
    let ServerMessage::Ready(ready) = client
        .recv_until(STEP_TIMEOUT, |m| matches!(m, ServerMessage::Ready(_)))
        .await
        .expect("ready")
    else {
        unreachable!()
    };
    client.speaking(1, ready.ssrc).await.expect("send");
    client
        .send_text(r#"{"op":23,"d":{"transition_id":3}}"#)
        .await
        .expect("send");
    client.heartbeat(1).await.expect("send");
    client
        .recv_until(STEP_TIMEOUT, |m| {
            matches!(m, ServerMessage::HeartbeatAck(_))
        })
        .await
        .expect("ack");
    let report = server.report();
    let details: Vec<&str> = report
        .violations_of(ViolationKind::OpOrder)
        .iter()
        .map(|v| v.detail.as_str())
        .collect();
    assert!(
        details
            .iter()
            .any(|d| d.contains("Speaking before Session Description")),
        "{details:?}"
    );
    assert!(
        details.iter().any(|d| d.contains("DAVE transition")),
        "{details:?}"
    );
}

#[tokio::test]
async fn resume_seq_ack_ahead_and_bad_resume_credentials() {
    let server = VoiceServer::start(ServerConfig::default())
        .await
        .expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    client.handshake(&info, AES).await.expect("handshake");
    server.close_client(0, 4015);
    assert_eq!(client.closed(STEP_TIMEOUT).await, Some(4015));
    // Wrong token: 4004.
    let mut bad = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    let resume = serde_json::json!({"op": 7, "d": {"server_id": info.guild_id.to_string(),
        "session_id": info.session_id, "token": "wrong", "seq_ack": 2}});
    bad.send_text(resume.to_string()).await.expect("send");
    assert_eq!(bad.closed(STEP_TIMEOUT).await, Some(4004));
    // seq_ack ahead of what was sent: resumed, but flagged.
    let mut ahead = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    let resume = serde_json::json!({"op": 7, "d": {"server_id": info.guild_id.to_string(),
        "session_id": info.session_id, "token": info.token, "seq_ack": 50}});
    ahead.send_text(resume.to_string()).await.expect("send");
    ahead
        .recv_until(STEP_TIMEOUT, |m| matches!(m, ServerMessage::Resumed))
        .await
        .expect("resumed");
    let report = wait_for(&server, ViolationKind::SeqAck).await;
    assert!(
        report.violations_of(ViolationKind::SeqAck)[0]
            .detail
            .contains("Resume seq_ack 50"),
        "{report}"
    );
    assert!(!report
        .violations_of(ViolationKind::AuthenticationFailed)
        .is_empty());
}

#[tokio::test]
async fn nonce_reuse_and_timestamp_steps() {
    let (server, _info, client, _session, mut media) = setup().await;
    media.send(&client.udp, &[0xFC, 1]).await.expect("send");
    media.nonce -= 1; // the next packet repeats the nonce
    media.send(&client.udp, &[0xFC, 2]).await.expect("send");
    media.timestamp = media.timestamp.wrapping_add(480); // half a frame too far
    media.send(&client.udp, &[0xFC, 3]).await.expect("send");
    let report = wait_for(&server, ViolationKind::TimestampStep).await;
    assert_eq!(
        report.violations_of(ViolationKind::NonceReuse).len(),
        1,
        "{report}"
    );
    assert!(
        report.violations_of(ViolationKind::TimestampStep)[0]
            .detail
            .contains("advanced 1440, expected 960"),
        "{report}"
    );
}

#[tokio::test]
async fn malformed_packets_from_a_client_are_named() {
    let (server, _info, client, session, mut media) = setup().await;
    let to = server.udp_addr();
    // Not RTP, not RTCP, not a keepalive.
    client
        .udp
        .send_to(&[1, 2, 3, 4, 5, 6], to)
        .await
        .expect("send");
    // RTP with padding whose count exceeds the payload.
    let mut header = [0u8; 12];
    header[0] = 0xA0; // V=2, P=1
    header[1] = 0x78;
    header[8..12].copy_from_slice(&session.ready.ssrc.to_be_bytes());
    let packet = media.seal_raw(&header, &[0xFC, 0x01, 0xC8]);
    client.udp.send_to(&packet, to).await.expect("send");
    // RTP for an SSRC that is not the client's, from the client's address.
    let mut other = [0u8; 12];
    other[0] = 0x80;
    other[1] = 0x78;
    other[8..12].copy_from_slice(&(session.ready.ssrc ^ 0xFFFF).to_be_bytes());
    client
        .udp
        .send_to(&media.seal_raw(&other, &[0xFC]), to)
        .await
        .expect("send");
    // A broken discovery request from the client.
    let mut discovery = discovery_request(session.ready.ssrc);
    discovery[3] = 0x10;
    client.udp.send_to(&discovery, to).await.expect("send");
    // Keepalives and RTCP are fine and counted.
    client
        .udp
        .send_to(&[1, 0, 0, 0, 0, 0, 0, 0], to)
        .await
        .expect("send");
    client
        .udp
        .send_to(&session.ready.ssrc.to_be_bytes(), to)
        .await
        .expect("send");
    client
        .udp
        .send_to(&[0x81, 0xC9, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0], to)
        .await
        .expect("send");
    let (report, done) = server
        .wait_until(Duration::from_secs(3), |r| {
            r.violations_of(ViolationKind::MalformedPacket).len() == 3
                && !r
                    .violations_of(ViolationKind::BadDiscoveryRequest)
                    .is_empty()
                && r.clients[0].rtcp_packets == 1
        })
        .await;
    assert!(done, "{report}");
    let details: Vec<&str> = report
        .violations_of(ViolationKind::MalformedPacket)
        .iter()
        .map(|v| v.detail.as_str())
        .collect();
    assert!(
        details.iter().any(|d| d.contains("6-byte datagram")),
        "{details:?}"
    );
    assert!(details.iter().any(|d| d.contains("padding")), "{details:?}");
    assert!(
        details.iter().any(|d| d.contains("not the client's")),
        "{details:?}"
    );
    assert_eq!(report.clients[0].keepalives, 2);
    assert!(
        report.violations.iter().all(|v| v.client == Some(0)),
        "{report}"
    );
}

#[tokio::test]
async fn advisories_for_no_dave_and_no_speaking_after_resume() {
    let (server, info, mut client, session, mut media) = setup().await;
    server.close_client(0, 4015);
    assert_eq!(client.closed(STEP_TIMEOUT).await, Some(4015));
    let mut resumed = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    let resume = serde_json::json!({"op": 7, "d": {"server_id": info.guild_id.to_string(),
        "session_id": info.session_id, "token": info.token, "seq_ack": 2}});
    resumed.send_text(resume.to_string()).await.expect("send");
    resumed
        .recv_until(STEP_TIMEOUT, |m| matches!(m, ServerMessage::Resumed))
        .await
        .expect("resumed");
    media
        .send(&client.udp, &[0xFC, 9])
        .await
        .expect("audio without a new op 5");
    let (report, done) = server
        .wait_until(Duration::from_secs(2), |r| {
            !r.violations_of(ViolationKind::NoSpeakingAfterResume)
                .is_empty()
        })
        .await;
    assert!(done, "{report}");
    assert!(report.violations.is_empty(), "advisory only: {report}");
    let _ = session;

    // Identify without max_dave_protocol_version.
    let info = server.expect_client();
    let mut plain = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    let text = serde_json::json!({"op": 0, "d": {"server_id": info.guild_id.to_string(),
        "user_id": info.user_id.to_string(), "session_id": info.session_id, "token": info.token}});
    plain.send_text(text.to_string()).await.expect("send");
    plain
        .recv_until(STEP_TIMEOUT, |m| matches!(m, ServerMessage::Ready(_)))
        .await
        .expect("ready");
    let report = server.report();
    assert_eq!(
        report.violations_of(ViolationKind::NoDaveSupport).len(),
        1,
        "{report}"
    );
    assert!(report.violations.is_empty(), "{report}");
}

#[tokio::test]
async fn late_heartbeats_are_an_advisory() {
    let server = VoiceServer::start(ServerConfig {
        heartbeat_interval: Duration::from_millis(100),
        ..ServerConfig::default()
    })
    .await
    .expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    client.identify(&info).await.expect("identify");
    client.heartbeat(1).await.expect("on time");
    tokio::time::sleep(Duration::from_millis(600)).await;
    client.heartbeat(2).await.expect("late");
    client
        .recv_until(
            STEP_TIMEOUT,
            |m| matches!(m, ServerMessage::HeartbeatAck(a) if a.t == 2),
        )
        .await
        .expect("ack");
    let report = server.report();
    let late = report.violations_of(ViolationKind::HeartbeatLate);
    assert_eq!(late.len(), 1, "{report}");
    assert_eq!(late[0].client, Some(0));
    assert!(report.violations.is_empty(), "advisory only: {report}");
}
