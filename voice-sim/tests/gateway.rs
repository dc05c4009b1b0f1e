//! The server side of gateway v8 and its validation rules, driven by scripted raw clients.

use std::time::Duration;

use voice_proto::crypto::EncryptionMode;
use voice_proto::payload::{HeartbeatAck, ServerMessage};
use voice_proto::rtp::SILENCE_FRAME;
use voice_sim::testing::{Incoming, RawClient, STEP_TIMEOUT};
use voice_sim::{ServerConfig, ViolationKind, VoiceServer};

const AES: EncryptionMode = EncryptionMode::AeadAes256GcmRtpSize;

fn config() -> ServerConfig {
    ServerConfig {
        heartbeat_interval: Duration::from_millis(500),
        seed: Some(7),
        ..ServerConfig::default()
    }
}

fn kinds(server: &VoiceServer) -> Vec<ViolationKind> {
    server.violations().into_iter().map(|v| v.kind).collect()
}

fn frame(i: usize) -> Vec<u8> {
    vec![0xFC, (i % 251) as u8, 0x42, (i / 251) as u8]
}

#[tokio::test]
async fn well_behaved_client_gets_numbered_handshake_and_its_frames_arrive_exactly() {
    let server = VoiceServer::start(config()).await.expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    assert_eq!(client.hello.heartbeat_interval, 500.0);
    assert_eq!(client.hello.v, Some(8));
    let session = client.handshake(&info, AES).await.expect("handshake");
    assert_eq!(session.ready.ip, "127.0.0.1");
    assert_eq!(session.ready.port, server.udp_addr().port());
    assert_eq!(
        session.ready.modes,
        vec!["aead_aes256_gcm_rtpsize", "aead_xchacha20_poly1305_rtpsize"]
    );
    assert_eq!(session.discovered, client.udp.local_addr().expect("addr"));
    assert_eq!(session.description.mode, AES.name());
    assert_eq!(session.description.dave_protocol_version, 0);
    assert_eq!(
        client.last_seq, 2,
        "Ready is seq 1, Session Description seq 2"
    );

    client.heartbeat(1234).await.expect("heartbeat");
    let ack = client
        .recv_until(STEP_TIMEOUT, |m| {
            matches!(m, ServerMessage::HeartbeatAck(_))
        })
        .await
        .expect("ack");
    assert_eq!(ack, ServerMessage::HeartbeatAck(HeartbeatAck { t: 1234 }));

    client
        .speaking(1, session.ready.ssrc)
        .await
        .expect("speaking");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut media = client
        .media(&session, 65_530, u32::MAX - 2000)
        .expect("media");
    let frames: Vec<Vec<u8>> = (0..30).map(frame).collect();
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    for f in frames
        .iter()
        .chain(std::iter::repeat_n(&SILENCE_FRAME.to_vec(), 5))
    {
        ticker.tick().await;
        media.send(&client.udp, f).await.expect("send");
    }
    let ssrc = session.ready.ssrc;
    let (report, done) = server
        .wait_until(Duration::from_secs(3), |r| {
            r.stream(ssrc).is_some_and(|s| s.stats.packets == 35)
        })
        .await;
    assert!(done, "{report}");
    let received: Vec<Vec<u8>> = server
        .frames(ssrc)
        .into_iter()
        .filter(|f| !f.is_silence())
        .map(|f| f.opus)
        .collect();
    assert_eq!(received, frames, "byte-exact delivery");
    let stream = report.stream(ssrc).expect("stream");
    assert_eq!(stream.stats.silence_frames, 5);
    assert_eq!(
        (
            stream.stats.gaps,
            stream.stats.reordered,
            stream.stats.timestamp_errors,
            stream.stats.decrypt_failures
        ),
        (0, 0, 0, 0)
    );
    assert!(stream.stats.jitter.samples >= 30);
    assert_eq!(stream.stats.spurts.len(), 1);
    assert_eq!(stream.stats.spurts[0].trailing_silence, 5);
    assert!(report.violations.is_empty(), "{report}");
    assert_eq!(report.clients[0].identifies, 1);
    assert_eq!(report.clients[0].mode.as_deref(), Some(AES.name()));
    assert_eq!(report.clients[0].speaking, vec![1]);
}

#[tokio::test]
async fn xchacha_mode_decrypts_too() {
    let server = VoiceServer::start(config()).await.expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    let session = client
        .handshake(&info, EncryptionMode::AeadXChaCha20Poly1305RtpSize)
        .await
        .expect("handshake");
    client
        .speaking(1, session.ready.ssrc)
        .await
        .expect("speaking");
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut media = client.media(&session, 1, 0).expect("media");
    for i in 0..10 {
        media.send(&client.udp, &frame(i)).await.expect("send");
    }
    let ssrc = session.ready.ssrc;
    let (report, done) = server
        .wait_until(Duration::from_secs(3), |r| {
            r.stream(ssrc).is_some_and(|s| s.stats.packets == 10)
        })
        .await;
    assert!(done, "{report}");
    assert_eq!(
        report.stream(ssrc).and_then(|s| s.mode.clone()).as_deref(),
        Some("aead_xchacha20_poly1305_rtpsize")
    );
    assert!(report.violations.is_empty(), "{report}");
}

#[tokio::test]
async fn wrong_token_closes_4004_and_unknown_session_closes_4006() {
    let server = VoiceServer::start(config()).await.expect("starts");
    let mut info = server.expect_client();
    info.token = "not-the-token".into();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    client.identify(&info).await.expect("send");
    assert_eq!(client.closed(STEP_TIMEOUT).await, Some(4004));

    info.session_id = "nobody".into();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    client.identify(&info).await.expect("send");
    assert_eq!(client.closed(STEP_TIMEOUT).await, Some(4006));
    let found = kinds(&server);
    assert!(
        found.contains(&ViolationKind::AuthenticationFailed),
        "{found:?}"
    );
    assert!(found.contains(&ViolationKind::UnknownSession), "{found:?}");
    let report = server.report();
    assert!(
        report
            .violations
            .iter()
            .all(|v| !v.detail.contains("not-the-token")),
        "the token is never quoted"
    );
}

#[tokio::test]
async fn op_order_violations_are_reported_and_the_server_keeps_going() {
    let server = VoiceServer::start(config()).await.expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    // Select Protocol before Identify.
    client
        .send_text(r#"{"op":1,"d":{"protocol":"udp","data":{"address":"127.0.0.1","port":1,"mode":"aead_aes256_gcm_rtpsize"}}}"#)
        .await
        .expect("send");
    let session = client
        .handshake(&info, AES)
        .await
        .expect("handshake still works");
    // Identify twice, Select Protocol twice, Speaking for someone else's SSRC, unknown opcode.
    client.identify(&info).await.expect("send");
    client
        .send_text(r#"{"op":1,"d":{"protocol":"udp","data":{"address":"127.0.0.1","port":1,"mode":"aead_aes256_gcm_rtpsize"}}}"#)
        .await
        .expect("send");
    client
        .speaking(1, session.ready.ssrc ^ 1)
        .await
        .expect("send");
    client
        .send_text(r#"{"op":77,"d":null}"#)
        .await
        .expect("send");
    client.send_text(r#"{"op":2,"d":{}}"#).await.expect("send");
    client.send_binary(vec![26, 1, 2, 3]).await.expect("send");
    client.send_binary(vec![99]).await.expect("send");
    client.heartbeat(1).await.expect("send");
    client
        .recv_until(STEP_TIMEOUT, |m| {
            matches!(m, ServerMessage::HeartbeatAck(_))
        })
        .await
        .expect("still acked");
    let found = kinds(&server);
    for kind in [
        ViolationKind::NotAuthenticated,
        ViolationKind::AlreadyAuthenticated,
        ViolationKind::OpOrder,
        ViolationKind::SpeakingSsrc,
        ViolationKind::UnknownOpcode,
        ViolationKind::UnexpectedBinary,
    ] {
        assert!(found.contains(&kind), "{kind:?} missing from {found:?}");
    }
    let report = server.report();
    let op_order: Vec<_> = report
        .violations_of(ViolationKind::OpOrder)
        .into_iter()
        .map(|v| v.detail.clone())
        .collect();
    assert!(op_order.iter().any(|d| d.contains("twice")), "{op_order:?}");
    assert!(op_order.iter().any(|d| d.contains("DAVE")), "{op_order:?}");
}

#[tokio::test]
async fn field_type_and_heartbeat_shape_violations() {
    let server = VoiceServer::start(config()).await.expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    // Numeric snowflakes: voice-proto would accept them, the server flags them, and still lets
    // the client in.
    let text = serde_json::json!({"op": 0, "d": {"server_id": info.guild_id, "user_id": info.user_id,
        "session_id": info.session_id, "token": info.token, "max_dave_protocol_version": 1}});
    client.send_text(text.to_string()).await.expect("send");
    client
        .recv_until(STEP_TIMEOUT, |m| matches!(m, ServerMessage::Ready(_)))
        .await
        .expect("ready");
    client
        .send_text(r#"{"op":3,"d":1234}"#)
        .await
        .expect("send");
    client
        .send_text(r#"{"op":3,"d":{"t":5,"seq_ack":99}}"#)
        .await
        .expect("send");
    client.send_text("{not json").await.expect("send");
    client.heartbeat(6).await.expect("send");
    client
        .recv_until(STEP_TIMEOUT, |m| {
            matches!(m, ServerMessage::HeartbeatAck(HeartbeatAck { t: 6 }))
        })
        .await
        .expect("ack 6");
    let found = kinds(&server);
    for kind in [
        ViolationKind::InvalidPayload,
        ViolationKind::HeartbeatShape,
        ViolationKind::SeqAck,
        ViolationKind::MalformedJson,
    ] {
        assert!(found.contains(&kind), "{kind:?} missing from {found:?}");
    }
    assert!(!server
        .report()
        .violations
        .iter()
        .any(|v| v.kind == ViolationKind::AuthenticationFailed));
}

#[tokio::test]
async fn mode_not_offered_closes_4016() {
    let server = VoiceServer::start(ServerConfig {
        modes: vec!["aead_xchacha20_poly1305_rtpsize".into()],
        ..config()
    })
    .await
    .expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    let result = client.handshake(&info, AES).await;
    assert!(
        result.is_err(),
        "no Session Description for a mode not offered"
    );
    assert!(kinds(&server).contains(&ViolationKind::ModeNotOffered));
    assert!(
        client
            .received
            .iter()
            .any(|i| *i == Incoming::Closed(Some(4016))),
        "{:?}",
        client.received
    );
}

#[tokio::test]
async fn audio_before_speaking_and_before_session_description_are_caught() {
    let server = VoiceServer::start(ServerConfig {
        speaking_grace: Duration::from_millis(100),
        ..config()
    })
    .await
    .expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    let session = client.handshake(&info, AES).await.expect("handshake");
    let mut media = client.media(&session, 1, 0).expect("media");
    for i in 0..5 {
        media.send(&client.udp, &frame(i)).await.expect("send");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    client
        .speaking(1, session.ready.ssrc)
        .await
        .expect("late speaking");
    let found = kinds(&server);
    assert_eq!(
        found
            .iter()
            .filter(|k| **k == ViolationKind::AudioBeforeSpeaking)
            .count(),
        1,
        "{found:?}"
    );

    // A second client sends RTP before Select Protocol.
    let info2 = server.expect_client();
    let mut early = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    early.identify(&info2).await.expect("identify");
    let ServerMessage::Ready(ready) = early
        .recv_until(STEP_TIMEOUT, |m| matches!(m, ServerMessage::Ready(_)))
        .await
        .expect("ready")
    else {
        unreachable!()
    };
    let mut fake = voice_sim::testing::RawSession {
        discovered: early
            .discover(ready.ssrc, server.udp_addr())
            .await
            .expect("discovers"),
        ready,
        description: session.description,
        mode: AES,
    };
    fake.ready.port = server.udp_addr().port();
    let mut media = early.media(&fake, 1, 0).expect("media");
    media.send(&early.udp, &frame(0)).await.expect("send");
    let (report, done) = server
        .wait_until(Duration::from_secs(2), |r| {
            !r.violations_of(ViolationKind::AudioBeforeSessionDescription)
                .is_empty()
        })
        .await;
    assert!(done, "{report}");
    assert_eq!(
        report.violations_of(ViolationKind::AudioBeforeSessionDescription)[0].client,
        Some(1)
    );
}

#[tokio::test]
async fn resume_replays_what_was_missed_and_keeps_the_ssrc() {
    let server = VoiceServer::start(config()).await.expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    let session = client.handshake(&info, AES).await.expect("handshake");
    assert!(server.close_client(0, 4015));
    assert_eq!(client.closed(STEP_TIMEOUT).await, Some(4015));

    let mut resumed = RawClient::connect(&server.ws_url())
        .await
        .expect("reconnects");
    let resume = serde_json::json!({"op": 7, "d": {"server_id": info.guild_id.to_string(),
        "session_id": info.session_id, "token": info.token, "seq_ack": 1}});
    resumed.send_text(resume.to_string()).await.expect("send");
    resumed
        .recv_until(STEP_TIMEOUT, |m| matches!(m, ServerMessage::Resumed))
        .await
        .expect("resumed");
    // seq_ack 1 = Ready seen, Session Description (seq 2) missed: it is replayed with its seq.
    let replay = resumed.recv(STEP_TIMEOUT).await.expect("replay");
    let Incoming::Frame(frame) = replay else {
        panic!("expected a frame, got {replay:?}")
    };
    assert_eq!(frame.seq, Some(2));
    assert!(
        matches!(frame.message, ServerMessage::SessionDescription(ref d) if d.secret_key == session.description.secret_key)
    );

    let report = server.report();
    assert_eq!(report.clients[0].resumes, 1);
    assert_eq!(report.clients[0].ssrcs, vec![session.ready.ssrc]);
    assert_eq!(report.clients[0].connections.len(), 2);
    assert_eq!(report.clients[0].connections[0].server_close, Some(4015));
    assert_eq!(
        report.clients[0].connections[1].started_with.as_deref(),
        Some("resume")
    );
    assert!(report.violations.is_empty(), "{report}");
}

#[tokio::test]
async fn resume_after_4006_is_refused_and_flagged() {
    let server = VoiceServer::start(config()).await.expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    client.handshake(&info, AES).await.expect("handshake");
    server.close_client(0, 4006);
    assert_eq!(client.closed(STEP_TIMEOUT).await, Some(4006));
    let mut again = RawClient::connect(&server.ws_url())
        .await
        .expect("reconnects");
    let resume = serde_json::json!({"op": 7, "d": {"server_id": info.guild_id.to_string(),
        "session_id": info.session_id, "token": info.token, "seq_ack": 2}});
    again.send_text(resume.to_string()).await.expect("send");
    assert_eq!(again.closed(STEP_TIMEOUT).await, Some(4006));
    let report = server.report();
    assert!(
        report
            .violations_of(ViolationKind::OpOrder)
            .iter()
            .any(|v| v.detail.contains("4006")),
        "{report}"
    );

    // A fresh Identify works and yields a new SSRC with seq starting from 1 again.
    let mut fresh = RawClient::connect(&server.ws_url())
        .await
        .expect("reconnects");
    fresh.handshake(&info, AES).await.expect("fresh handshake");
    assert_eq!(fresh.last_seq, 2);
    let ssrcs = server.ssrcs(0);
    assert_eq!(ssrcs.len(), 2);
    assert_ne!(ssrcs[0], ssrcs[1]);
}

#[tokio::test]
async fn wrong_key_is_a_decrypt_failure() {
    let server = VoiceServer::start(config()).await.expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    let mut session = client.handshake(&info, AES).await.expect("handshake");
    client
        .speaking(1, session.ready.ssrc)
        .await
        .expect("speaking");
    session.description.secret_key = voice_proto::secret::SecretKey::new([0; 32]);
    let mut media = client.media(&session, 1, 0).expect("media");
    for i in 0..3 {
        media.send(&client.udp, &frame(i)).await.expect("send");
    }
    let ssrc = session.ready.ssrc;
    let (report, done) = server
        .wait_until(Duration::from_secs(2), |r| {
            r.stream(ssrc)
                .is_some_and(|s| s.stats.decrypt_failures == 3)
        })
        .await;
    assert!(done, "{report}");
    assert_eq!(report.violations_of(ViolationKind::DecryptFailure).len(), 3);
    assert!(server.frames(ssrc).is_empty());
}

#[tokio::test]
async fn resume_that_missed_an_evicted_message_is_refused_with_4006() {
    let server = VoiceServer::start(ServerConfig {
        replay_buffer: 1,
        ..config()
    })
    .await
    .expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    client.handshake(&info, AES).await.expect("handshake");
    server.close_client(0, 4015);
    assert_eq!(client.closed(STEP_TIMEOUT).await, Some(4015));
    // Only Session Description (seq 2) is still buffered: seq_ack 0 missed Ready (seq 1).
    let resume = |seq_ack: i64| {
        serde_json::json!({"op": 7, "d": {"server_id": info.guild_id.to_string(),
            "session_id": info.session_id, "token": info.token, "seq_ack": seq_ack}})
        .to_string()
    };
    let mut late = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    late.send_text(resume(0)).await.expect("send");
    assert_eq!(late.closed(STEP_TIMEOUT).await, Some(4006));
    // seq_ack 1: everything missed is still there.
    let mut fine = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    fine.send_text(resume(1)).await.expect("send");
    fine.recv_until(STEP_TIMEOUT, |m| matches!(m, ServerMessage::Resumed))
        .await
        .expect("resumed");
    let replay = fine
        .recv_until(STEP_TIMEOUT, |m| {
            matches!(m, ServerMessage::SessionDescription(_))
        })
        .await;
    assert!(replay.is_ok());
    assert!(server.report().violations.is_empty());
}
