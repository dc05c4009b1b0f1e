//! Scenarios: the server misbehaving on purpose, checked with scripted clients.

use std::sync::Arc;
use std::time::{Duration, Instant};

use voice_proto::crypto::{EncryptionMode, TransportCipher};
use voice_proto::id::UserId;
use voice_proto::payload::{ServerMessage, SpeakingFlags};
use voice_proto::rtp::{ReceivedRtp, SILENCE_FRAME};
use voice_sim::testing::{Incoming, RawClient, STEP_TIMEOUT};
use voice_sim::{
    AckPolicy, CloseRule, Garbage, Scenario, ServerConfig, SimulatedUser, Trigger, ViolationKind,
    VoiceServer,
};

const AES: EncryptionMode = EncryptionMode::AeadAes256GcmRtpSize;

fn config(scenario: Scenario) -> ServerConfig {
    ServerConfig {
        heartbeat_interval: Duration::from_millis(300),
        seed: Some(11),
        scenario,
        ..ServerConfig::default()
    }
}

fn frame(i: usize) -> Vec<u8> {
    vec![0xFC, i as u8, 7]
}

#[tokio::test]
async fn close_after_a_packet_count_then_resume() {
    let scenario = Scenario {
        close: vec![CloseRule {
            code: 4015,
            trigger: Trigger::AfterPackets(5),
        }],
        ..Scenario::default()
    };
    let server = VoiceServer::start(config(scenario)).await.expect("starts");
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
    let mut media = client.media(&session, 1, 0).expect("media");
    for i in 0..5 {
        media.send(&client.udp, &frame(i)).await.expect("send");
    }
    assert_eq!(client.closed(STEP_TIMEOUT).await, Some(4015));
    // The rule fires once: the resumed websocket stays open while audio continues.
    let mut resumed = RawClient::connect(&server.ws_url())
        .await
        .expect("reconnects");
    let resume = serde_json::json!({"op": 7, "d": {"server_id": info.guild_id.to_string(),
        "session_id": info.session_id, "token": info.token, "seq_ack": client.last_seq}});
    resumed.send_text(resume.to_string()).await.expect("send");
    resumed
        .recv_until(STEP_TIMEOUT, |m| matches!(m, ServerMessage::Resumed))
        .await
        .expect("resumed");
    resumed
        .speaking(1, session.ready.ssrc)
        .await
        .expect("speaking again");
    tokio::time::sleep(Duration::from_millis(30)).await;
    for i in 5..15 {
        media.send(&resumed.udp, &frame(i)).await.ok();
        media
            .send(&client.udp, &frame(i))
            .await
            .expect("same socket");
    }
    let ssrc = session.ready.ssrc;
    let (report, done) = server
        .wait_until(Duration::from_secs(2), |r| {
            r.stream(ssrc).is_some_and(|s| s.stats.packets >= 15)
        })
        .await;
    assert!(done, "{report}");
    assert!(
        resumed.recv(Duration::from_millis(100)).await.is_none(),
        "no second close"
    );
    // Packets from the resumed client's other socket are foreign: ignored, reported.
    assert_eq!(
        report.stream(ssrc).map(|s| s.stats.packets),
        Some(15),
        "{report}"
    );
    assert!(
        !report
            .violations_of(ViolationKind::ForeignSource)
            .is_empty(),
        "{report}"
    );
    assert_eq!(report.clients[0].resumes, 1);
}

#[tokio::test]
async fn close_after_time_with_4014_forbids_resume() {
    let scenario = Scenario {
        close: vec![CloseRule {
            code: 4014,
            trigger: Trigger::AfterSession(Duration::from_millis(100)),
        }],
        ..Scenario::default()
    };
    let server = VoiceServer::start(config(scenario)).await.expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    let started = Instant::now();
    client.handshake(&info, AES).await.expect("handshake");
    assert_eq!(client.closed(STEP_TIMEOUT).await, Some(4014));
    assert!(started.elapsed() >= Duration::from_millis(100));
    let mut again = RawClient::connect(&server.ws_url())
        .await
        .expect("reconnects");
    let resume = serde_json::json!({"op": 7, "d": {"server_id": info.guild_id.to_string(),
        "session_id": info.session_id, "token": info.token, "seq_ack": 2}});
    again.send_text(resume.to_string()).await.expect("send");
    assert_eq!(again.closed(STEP_TIMEOUT).await, Some(4006));
    assert_eq!(
        server.report().clients[0].connections[0].server_close,
        Some(4014)
    );
}

#[tokio::test]
async fn heartbeat_acks_stop_after_two_on_the_first_websocket_only() {
    let scenario = Scenario {
        heartbeat_acks: AckPolicy::StopAfter(2),
        ..Scenario::default()
    };
    let server = VoiceServer::start(config(scenario)).await.expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    client.handshake(&info, AES).await.expect("handshake");
    for t in 1..=4 {
        client.heartbeat(t).await.expect("heartbeat");
    }
    let mut acks = Vec::new();
    while let Some(incoming) = client.recv(Duration::from_millis(300)).await {
        if let Incoming::Frame(frame) = incoming {
            if let ServerMessage::HeartbeatAck(ack) = frame.message {
                acks.push(ack.t);
            }
        }
    }
    assert_eq!(acks, vec![1, 2]);
    client.close(4000).await.expect("close");
    let mut resumed = RawClient::connect(&server.ws_url())
        .await
        .expect("reconnects");
    let resume = serde_json::json!({"op": 7, "d": {"server_id": info.guild_id.to_string(),
        "session_id": info.session_id, "token": info.token, "seq_ack": 2}});
    resumed.send_text(resume.to_string()).await.expect("send");
    resumed
        .recv_until(STEP_TIMEOUT, |m| matches!(m, ServerMessage::Resumed))
        .await
        .expect("resumed");
    resumed.heartbeat(9).await.expect("heartbeat");
    let ack = resumed
        .recv_until(STEP_TIMEOUT, |m| {
            matches!(m, ServerMessage::HeartbeatAck(_))
        })
        .await
        .expect("acked again");
    assert!(matches!(ack, ServerMessage::HeartbeatAck(a) if a.t == 9));
    let report = server.report();
    assert_eq!(report.clients[0].connections[0].client_close, Some(4000));
    assert!(report.violations.is_empty(), "{report}");
}

#[tokio::test]
async fn never_acknowledging_heartbeats() {
    let scenario = Scenario {
        heartbeat_acks: AckPolicy::Never,
        ..Scenario::default()
    };
    let server = VoiceServer::start(config(scenario)).await.expect("starts");
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    let info = server.expect_client();
    client.identify(&info).await.expect("identify");
    client.heartbeat(1).await.expect("heartbeat");
    let mut saw_ack = false;
    while let Some(incoming) = client.recv(Duration::from_millis(300)).await {
        saw_ack |= matches!(incoming, Incoming::Frame(ref f) if matches!(f.message, ServerMessage::HeartbeatAck(_)));
    }
    assert!(!saw_ack);
    assert_eq!(server.report().clients[0].connections[0].heartbeats, 1);
}

#[tokio::test]
async fn garbage_arrives_numbered_and_the_session_goes_on() {
    let scenario = Scenario {
        garbage: vec![
            Garbage::UnknownOpcode,
            Garbage::MalformedJson,
            Garbage::UnexpectedBinary,
        ],
        ..Scenario::default()
    };
    let server = VoiceServer::start(config(scenario)).await.expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    client.handshake(&info, AES).await.expect("handshake");
    let mut got = Vec::new();
    while got.len() < 3 {
        match client.recv(STEP_TIMEOUT).await.expect("garbage arrives") {
            Incoming::Frame(frame) => got.push(format!("{}:{:?}", frame.message.op(), frame.seq)),
            Incoming::BadText(text) => got.push(format!("bad:{text}")),
            other => got.push(format!("{other:?}")),
        }
    }
    assert_eq!(
        got,
        vec![
            "99:Some(3)".to_owned(),
            r#"bad:{"op":5,"d":{"speaking":"#.to_owned(),
            "99:Some(4)".to_owned()
        ]
    );
    assert_eq!(client.last_seq, 4, "JSON and binary share one counter");
    client.heartbeat(5).await.expect("heartbeat");
    client
        .recv_until(STEP_TIMEOUT, |m| {
            matches!(m, ServerMessage::HeartbeatAck(_))
        })
        .await
        .expect("still alive");
}

#[tokio::test]
async fn discovery_can_go_unanswered() {
    let scenario = Scenario {
        answer_discovery: false,
        ..Scenario::default()
    };
    let server = VoiceServer::start(config(scenario)).await.expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    let ready = client.identify_until_ready(&info).await.expect("ready");
    assert!(client
        .discover(ready.ssrc, server.udp_addr())
        .await
        .is_err());
    assert_eq!(server.report().clients[0].discovery_requests, 1);
}

/// Opens a packet from a simulated user; returns (ssrc, extension words, opus).
fn open(cipher: &TransportCipher, mut packet: Vec<u8>) -> (u32, Option<u16>, Vec<u8>) {
    let header = ReceivedRtp::parse(&packet).expect("rtp");
    let range = cipher
        .open(&mut packet, header.aad_len)
        .expect("decrypts with the session key");
    let plain = packet.get(range).expect("range");
    (
        header.ssrc,
        header.extension_words,
        header.payload(plain).expect("payload").to_vec(),
    )
}

#[tokio::test]
async fn simulated_user_joins_speaks_with_extension_and_leaves() {
    let frames: Vec<Vec<u8>> = (0..10).map(frame).collect();
    let scenario = Scenario {
        users: vec![SimulatedUser {
            user_id: 4242,
            join_after: Duration::from_millis(20),
            speak_after: Some(Duration::from_millis(60)),
            leave_after: Some(Duration::from_millis(600)),
            frames: Arc::new(frames.clone()),
            dave: true,
        }],
        ..Scenario::default()
    };
    let server = VoiceServer::start(config(scenario)).await.expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    let session = client.handshake(&info, AES).await.expect("handshake");
    let cipher = TransportCipher::new(AES, &session.description.secret_key);
    let joined = client
        .recv_until(STEP_TIMEOUT, |m| {
            matches!(m, ServerMessage::ClientsConnect(_))
        })
        .await
        .expect("op 11");
    assert!(
        matches!(joined, ServerMessage::ClientsConnect(ref c) if c.user_ids == vec![UserId(4242)])
    );
    let ServerMessage::Speaking(speaking) = client
        .recv_until(STEP_TIMEOUT, |m| matches!(m, ServerMessage::Speaking(_)))
        .await
        .expect("op 5")
    else {
        unreachable!()
    };
    assert_eq!(speaking.user_id, Some(UserId(4242)));
    assert_eq!(speaking.speaking, SpeakingFlags::MICROPHONE);
    let mut received = Vec::new();
    let mut buf = [0u8; 2048];
    while received.len() < 15 {
        let (len, from) = tokio::time::timeout(STEP_TIMEOUT, client.udp.recv_from(&mut buf))
            .await
            .expect("audio")
            .expect("recv");
        assert_eq!(from, server.udp_addr());
        let (ssrc, ext, opus) = open(&cipher, buf[..len].to_vec());
        assert_eq!(ssrc, speaking.ssrc);
        assert_eq!(ext, Some(1), "a one-word header extension");
        received.push(opus);
    }
    assert_eq!(&received[..10], &frames[..]);
    assert!(received[10..].iter().all(|f| f.as_slice() == SILENCE_FRAME));
    let left = client
        .recv_until(STEP_TIMEOUT, |m| {
            matches!(m, ServerMessage::ClientDisconnect(_))
        })
        .await
        .expect("op 13");
    assert!(matches!(left, ServerMessage::ClientDisconnect(d) if d.user_id == UserId(4242)));
    assert_eq!(
        client.last_seq, 5,
        "Ready, Session Description, op 11, op 5, op 13"
    );
}

#[tokio::test]
async fn loss_drops_and_delay_delays_server_media() {
    let user = |delay_ms| SimulatedUser {
        user_id: 1,
        join_after: Duration::ZERO,
        speak_after: Some(Duration::from_millis(delay_ms)),
        leave_after: None,
        frames: Arc::new(vec![vec![0xFC, 1]; 5]),
        dave: true,
    };
    // Total loss: op 5 still arrives, no packet does.
    let server = VoiceServer::start(config(Scenario {
        users: vec![user(0)],
        udp_loss: 1.0,
        ..Scenario::default()
    }))
    .await
    .expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    client.handshake(&info, AES).await.expect("handshake");
    client
        .recv_until(STEP_TIMEOUT, |m| matches!(m, ServerMessage::Speaking(_)))
        .await
        .expect("op 5");
    let mut buf = [0u8; 2048];
    assert!(
        tokio::time::timeout(Duration::from_millis(400), client.udp.recv_from(&mut buf))
            .await
            .is_err()
    );

    // Delay: the first packet comes at least 150 ms after op 5.
    let server = VoiceServer::start(config(Scenario {
        users: vec![user(0)],
        udp_delay: Duration::from_millis(150),
        ..Scenario::default()
    }))
    .await
    .expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    client.handshake(&info, AES).await.expect("handshake");
    client
        .recv_until(STEP_TIMEOUT, |m| matches!(m, ServerMessage::Speaking(_)))
        .await
        .expect("op 5");
    let spoke = Instant::now();
    tokio::time::timeout(STEP_TIMEOUT, client.udp.recv_from(&mut buf))
        .await
        .expect("arrives")
        .expect("recv");
    assert!(
        spoke.elapsed() >= Duration::from_millis(120),
        "{:?}",
        spoke.elapsed()
    );
}

#[tokio::test]
async fn voice_proto_engine_receives_a_simulated_speaker() {
    let frames: Vec<Vec<u8>> = (0..12u8).map(|i| vec![0xFC, i, 0xAB]).collect();
    let scenario = Scenario {
        users: vec![SimulatedUser {
            user_id: 777,
            join_after: Duration::ZERO,
            speak_after: Some(Duration::from_millis(50)),
            leave_after: Some(Duration::from_millis(700)),
            frames: Arc::new(frames.clone()),
            dave: true,
        }],
        ..Scenario::default()
    };
    let server = VoiceServer::start(config(scenario)).await.expect("starts");
    let info = server.expect_client();
    let mut client = voice_sim::testing::EngineClient::new(&server.ws_url(), info, Vec::new());
    client.linger = Duration::from_millis(900);
    let outcome = client.run().await.expect("runs");
    assert!(outcome.error.is_none(), "{:?}", outcome.events);
    let audio = outcome.frames(None);
    assert_eq!(
        audio.len(),
        17,
        "12 frames and 5 silence frames: {:?}",
        outcome.received
    );
    let opus: Vec<Vec<u8>> = audio
        .iter()
        .take(12)
        .map(|(_, f)| f.opus.to_vec())
        .collect();
    assert_eq!(opus, frames, "the engine strips the header extension");
    assert!(
        audio.iter().all(|(user, _)| *user == Some(UserId(777))),
        "op 5 mapped the SSRC"
    );
    assert!(outcome.events.iter().any(|e| matches!(e, voice_proto::Event::ClientsConnected { user_ids } if user_ids == &vec![UserId(777)])));
    assert!(outcome.events.iter().any(|e| matches!(e, voice_proto::Event::ClientDisconnected { user_id } if *user_id == UserId(777))));
    assert!(server.report().violations.is_empty());
}

#[tokio::test]
async fn withheld_session_description_and_delayed_frames() {
    // Op 4 never comes: a client's Session Description deadline is what gets exercised.
    let server = VoiceServer::start(config(Scenario {
        withhold: vec![4],
        ..Scenario::default()
    }))
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
    let select = serde_json::json!({"op": 1, "d": {"protocol": "udp", "data": {
        "address": at.ip().to_string(), "port": at.port(), "mode": AES.name()}}});
    client.send_text(select.to_string()).await.expect("send");
    let described = client
        .recv_until(Duration::from_millis(400), |m| {
            matches!(m, ServerMessage::SessionDescription(_))
        })
        .await;
    assert!(described.is_err(), "no Session Description");
    client.heartbeat(1).await.expect("heartbeat");
    client
        .recv_until(STEP_TIMEOUT, |m| {
            matches!(m, ServerMessage::HeartbeatAck(_))
        })
        .await
        .expect("other ops still flow");
    assert_eq!(
        client.last_seq, 1,
        "only Ready arrived; op 4 took seq 2 but was never sent"
    );

    // Every frame after Hello comes 200 ms late, in order.
    let server = VoiceServer::start(config(Scenario {
        ws_delay: Duration::from_millis(200),
        ..Scenario::default()
    }))
    .await
    .expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    let started = Instant::now();
    client.identify(&info).await.expect("identify");
    client.heartbeat(7).await.expect("heartbeat");
    client
        .recv_until(STEP_TIMEOUT, |m| matches!(m, ServerMessage::Ready(_)))
        .await
        .expect("ready");
    assert!(
        started.elapsed() >= Duration::from_millis(180),
        "{:?}",
        started.elapsed()
    );
    let ack = client
        .recv_until(STEP_TIMEOUT, |m| {
            matches!(m, ServerMessage::HeartbeatAck(_))
        })
        .await
        .expect("ack after Ready");
    assert!(matches!(ack, ServerMessage::HeartbeatAck(a) if a.t == 7));
}

/// Issue 14 row 1: the first websocket of each client ends right after Identify, with a code or
/// by dropping TCP; the second is served normally.
#[tokio::test]
async fn first_close_ends_the_first_websocket_after_identify() {
    for how in [
        voice_sim::FirstClose::Code(4006),
        voice_sim::FirstClose::Drop,
    ] {
        let scenario = Scenario {
            first_websocket: Some(how),
            ..Scenario::default()
        };
        let server = VoiceServer::start(config(scenario)).await.expect("starts");
        let info = server.expect_client();
        let mut first = RawClient::connect(&server.ws_url())
            .await
            .expect("connects");
        first.identify(&info).await.expect("identify");
        let expected = match how {
            voice_sim::FirstClose::Code(code) => Some(code),
            _ => None,
        };
        assert_eq!(first.closed(STEP_TIMEOUT).await, expected, "{how:?}");
        let mut second = RawClient::connect(&server.ws_url())
            .await
            .expect("connects again");
        second
            .handshake(&info, AES)
            .await
            .expect("the second websocket is served");
        let report = server.report();
        let me = &report.clients[0];
        assert_eq!((me.connections.len(), me.identifies), (2, 1), "{report}");
        assert_eq!(me.connections[0].server_close, expected, "{report}");
        assert!(report.violations.is_empty(), "{report}");
    }
}

/// Issue 14 row 1: the first IP discovery request of each client is lost; the next is answered.
#[tokio::test]
async fn lose_first_discovery_drops_one_request() {
    let scenario = Scenario {
        lose_first_discovery: true,
        ..Scenario::default()
    };
    let server = VoiceServer::start(config(scenario)).await.expect("starts");
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    let ready = client.identify_until_ready(&info).await.expect("Ready");
    let remote = format!("{}:{}", ready.ip, ready.port)
        .parse()
        .expect("address");
    assert!(
        client.discover(ready.ssrc, remote).await.is_err(),
        "the first is lost"
    );
    assert!(
        client.discover(ready.ssrc, remote).await.is_ok(),
        "the second is answered"
    );
    assert_eq!(server.report().clients[0].discovery_requests, 2);
}

#[tokio::test]
async fn an_impaired_simulated_speaker_reaches_the_engine_in_order_with_its_losses_reported() {
    use voice_sim::adapter_cases::{
        check_received, receive_impairment, sample_frames, speaker_speaks, SPEAKER,
    };
    let scenario = speaker_speaks(sample_frames(100), Some(receive_impairment()));
    let server = VoiceServer::start(config(scenario)).await.expect("starts");
    let info = server.expect_client();
    let mut client = voice_sim::testing::EngineClient::new(&server.ws_url(), info, Vec::new());
    client.linger = Duration::from_millis(3000);
    let outcome = client.run().await.expect("runs");
    assert!(outcome.error.is_none(), "{:?}", outcome.events);
    let figures = check_received(&server, 0, SPEAKER, &outcome.received);
    let spoken = server.spoken(0);
    assert!(
        spoken[0].netem.lost > 0 && spoken[0].netem.duplicated > 0,
        "{figures}"
    );
    assert_eq!(figures.spoken, 105);
    assert!(
        figures.recorded + figures.lost_on_the_way + figures.arrived_but_not_recorded
            >= figures.sent,
        "{figures}"
    );
}
