//! Bad input never crashes the server or mixes up clients; voice-proto's own engine, driven over
//! real sockets, is a clean client.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use voice_proto::crypto::EncryptionMode;
use voice_proto::discovery::discovery_request;
use voice_sim::testing::{EngineClient, RawClient, STEP_TIMEOUT};
use voice_sim::{ServerConfig, ViolationKind, VoiceServer};

const AES: EncryptionMode = EncryptionMode::AeadAes256GcmRtpSize;

fn config() -> ServerConfig {
    ServerConfig {
        heartbeat_interval: Duration::from_millis(400),
        max_message_size: 64 * 1024,
        seed: Some(3),
        ..ServerConfig::default()
    }
}

#[tokio::test]
async fn garbage_from_everywhere_does_not_disturb_a_streaming_client() {
    let server = VoiceServer::start(config()).await.expect("starts");
    let good = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    let session = client.handshake(&good, AES).await.expect("handshake");
    client
        .speaking(1, session.ready.ssrc)
        .await
        .expect("speaking");
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut media = client.media(&session, 100, 5000).expect("media");

    // A foreign UDP socket sends junk of every shape, including RTP with the good client's SSRC.
    let junk = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let udp = server.udp_addr();
    let mut foreign_rtp = media.packet(&[0xFC, 0xEE]);
    foreign_rtp[3] ^= 0x55; // another sequence number, same SSRC
    let datagrams: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x80],
        vec![0xFF; 3000],
        vec![0x80, 0x78, 0, 1],
        vec![
            0x90, 0x78, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xBE, 0xDE, 0xFF, 0xFF,
        ],
        vec![0x81, 0xC8, 0, 6, 1, 2, 3, 4],
        discovery_request(0xDEAD_BEEF).to_vec(),
        vec![0u8; 74],
        foreign_rtp,
    ];
    let mut seed = 0x1234_5678u32;
    for i in 0..60 {
        for d in &datagrams {
            junk.send_to(d, udp).await.expect("send");
        }
        let random: Vec<u8> = (0..(i * 7 % 200))
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect();
        junk.send_to(&random, udp).await.expect("send");
    }
    // Websocket abuse: raw TCP garbage, a websocket that drops mid-handshake, an oversized frame.
    let mut tcp = tokio::net::TcpStream::connect(server.tcp_addr())
        .await
        .expect("tcp");
    tcp.write_all(b"GET / HTTP/1.1\r\n\r\n\x00\x01garbage")
        .await
        .expect("write");
    drop(tcp);
    let dropped = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    drop(dropped);
    let intruder = server.expect_client();
    let mut big = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    big.identify(&intruder).await.expect("identify");
    big.send_text("x".repeat(100 * 1024)).await.ok();

    let frames: Vec<Vec<u8>> = (0..20u8).map(|i| vec![0xFC, i]).collect();
    for f in &frames {
        media.send(&client.udp, f).await.expect("send");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ssrc = session.ready.ssrc;
    let (report, done) = server
        .wait_until(Duration::from_secs(3), |r| {
            r.stream(ssrc).is_some_and(|s| s.stats.packets == 20)
        })
        .await;
    assert!(done, "{report}");
    let received: Vec<Vec<u8>> = server.frames(ssrc).into_iter().map(|f| f.opus).collect();
    assert_eq!(received, frames, "the good client's stream is untouched");
    let stream = report.stream(ssrc).expect("stream");
    assert_eq!(
        (
            stream.stats.decrypt_failures,
            stream.stats.gaps,
            stream.stats.duplicates
        ),
        (0, 0, 0)
    );
    assert!(report.stray_datagrams >= 60, "{report}");
    assert!(report.failed_handshakes >= 1, "{report}");
    // Nothing is blamed on the good client; the oversized frame is blamed on the intruder.
    assert!(
        report.violations.iter().all(|v| v.client != Some(0)),
        "{report}"
    );
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.kind == ViolationKind::WebSocket && v.client == Some(1)),
        "{report}"
    );
    // The server still serves new clients.
    let late = server.expect_client();
    let mut again = RawClient::connect(&server.ws_url())
        .await
        .expect("still accepting");
    again.handshake(&late, AES).await.expect("handshake");
    again.heartbeat(1).await.expect("heartbeat");
    assert!(again.recv(STEP_TIMEOUT).await.is_some());
}

#[tokio::test]
async fn many_clients_share_the_udp_port_and_are_kept_apart() {
    let server = VoiceServer::start(config()).await.expect("starts");
    let mut sessions = Vec::new();
    for i in 0..6 {
        let info = server.expect_client();
        let mut client = RawClient::connect(&server.ws_url())
            .await
            .expect("connects");
        let mode = if i % 2 == 0 {
            AES
        } else {
            EncryptionMode::AeadXChaCha20Poly1305RtpSize
        };
        let session = client.handshake(&info, mode).await.expect("handshake");
        client
            .speaking(1, session.ready.ssrc)
            .await
            .expect("speaking");
        sessions.push((client, session));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut senders: Vec<_> = sessions
        .iter()
        .map(|(c, s)| c.media(s, 0, 0).expect("media"))
        .collect();
    for n in 0..10u8 {
        for (i, ((client, _), media)) in sessions.iter().zip(senders.iter_mut()).enumerate() {
            media
                .send(&client.udp, &[0xFC, i as u8, n])
                .await
                .expect("send");
        }
    }
    let ssrcs: Vec<u32> = sessions.iter().map(|(_, s)| s.ready.ssrc).collect();
    let (report, done) = server
        .wait_until(Duration::from_secs(3), |r| {
            ssrcs
                .iter()
                .all(|ssrc| r.stream(*ssrc).is_some_and(|s| s.stats.packets == 10))
        })
        .await;
    assert!(done, "{report}");
    for (i, ssrc) in ssrcs.iter().enumerate() {
        let frames = server.frames(*ssrc);
        assert!(
            frames.iter().all(|f| f.opus[1] == i as u8),
            "client {i} got someone else's frames"
        );
        assert_eq!(report.stream(*ssrc).map(|s| s.client), Some(i));
    }
    assert!(report.violations.is_empty(), "{report}");
}

#[tokio::test]
async fn voice_proto_engine_over_real_sockets_is_a_clean_client() {
    let server = VoiceServer::start(config()).await.expect("starts");
    let info = server.expect_client();
    let frames: Vec<Vec<u8>> = (0..40u8).map(|i| vec![0xFC, i, 0x55]).collect();
    let outcome = EngineClient::new(&server.ws_url(), info, frames.clone())
        .run()
        .await
        .expect("runs");
    assert!(outcome.error.is_none(), "{:?}", outcome.events);
    assert!(
        outcome
            .events
            .iter()
            .any(|e| matches!(e, voice_proto::Event::Connected { .. })),
        "{:?}",
        outcome.events
    );
    let ssrc = server.ssrcs(0)[0];
    let (report, done) = server
        .wait_until(Duration::from_secs(3), |r| {
            r.clients[0]
                .connections
                .last()
                .is_some_and(|c| c.closed_ms.is_some())
        })
        .await;
    assert!(done, "{report}");
    let received: Vec<Vec<u8>> = server
        .frames(ssrc)
        .into_iter()
        .filter(|f| !f.is_silence())
        .map(|f| f.opus)
        .collect();
    assert_eq!(received, frames);
    let stream = report.stream(ssrc).expect("stream");
    assert_eq!(
        stream.stats.silence_frames, 5,
        "voice-proto sends five silence frames"
    );
    assert_eq!(
        (
            stream.stats.gaps,
            stream.stats.timestamp_errors,
            stream.stats.decrypt_failures
        ),
        (0, 0, 0)
    );
    assert!(report.violations.is_empty(), "{report}");
    assert!(report.advisories.is_empty(), "{report}");
    assert_eq!(report.clients[0].connections[0].client_close, Some(1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_concurrent_clients_handshake_and_stream() {
    let server = std::sync::Arc::new(VoiceServer::start(config()).await.expect("starts"));
    let mut tasks = Vec::new();
    for i in 0..40u8 {
        let info = server.expect_client();
        let url = server.ws_url();
        tasks.push(tokio::spawn(async move {
            let mut client = RawClient::connect(&url).await.expect("connects");
            let session = client.handshake(&info, AES).await.expect("handshake");
            client
                .speaking(1, session.ready.ssrc)
                .await
                .expect("speaking");
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut media = client.media(&session, 0, 0).expect("media");
            for n in 0..10u8 {
                media.send(&client.udp, &[0xFC, i, n]).await.expect("send");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (session.ready.ssrc, client)
        }));
    }
    let mut clients = Vec::new();
    for task in tasks {
        clients.push(task.await.expect("client task"));
    }
    let ssrcs: Vec<u32> = clients.iter().map(|(ssrc, _)| *ssrc).collect();
    let (report, done) = server
        .wait_until(Duration::from_secs(5), |r| {
            ssrcs
                .iter()
                .all(|s| r.stream(*s).is_some_and(|st| st.stats.packets == 10))
        })
        .await;
    assert!(done, "{report}");
    assert_eq!(report.streams.len(), 40);
    let unique: std::collections::HashSet<u32> = ssrcs.iter().copied().collect();
    assert_eq!(unique.len(), 40, "every client has its own SSRC");
    for ssrc in &ssrcs {
        let frames = server.frames(*ssrc);
        let client = report.stream(*ssrc).map(|s| s.client).expect("stream");
        assert!(
            frames.iter().all(|f| f.opus[1] == client as u8),
            "frames stay with their client"
        );
    }
    assert!(report.violations.is_empty(), "{report}");
}
