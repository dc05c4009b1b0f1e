//! `send_opus` on a 120-byte frame per mode, beside the bare AEAD seal of the same bytes.
//!
//! Run: `cargo bench -p voice-proto --bench send_opus`. The goal is a per-packet cost within
//! 1.15x of the bare seal: everything `send_opus` adds (counters, header, copy, checks) must be
//! small next to the cipher.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use voice_proto::crypto::{EncryptionMode, TransportCipher};
use voice_proto::discovery::{discovery_response, parse_discovery_request};
use voice_proto::gateway::{VoiceServerDispatch, VoiceStateDispatch};
use voice_proto::id::{ChannelId, GuildId, UserId};
use voice_proto::payload::{Encoded, Hello, Ready, ServerFrame, ServerMessage, SessionDescription};
use voice_proto::rtp::MAX_PACKET_LEN;
use voice_proto::secret::{SecretKey, Token};
use voice_proto::{AnyState, AwaitingServerUpdate, Config, Input, JoinRequest, Output, Session};

const FRAME_LEN: usize = 120;

fn text(seq: Option<u64>, message: ServerMessage) -> String {
    match (ServerFrame { seq, message }).encode() {
        Encoded::Text(text) => text,
        Encoded::Binary(_) => unreachable!("JSON message"),
    }
}

fn drain(state: &mut AnyState) -> Vec<Output> {
    let mut out = Vec::new();
    loop {
        match state.poll_output() {
            Output::WakeAt(_) | Output::Idle => return out,
            o => out.push(o),
        }
    }
}

/// A session negotiated in memory for `mode`.
fn session(mode: EncryptionMode) -> Session {
    let now = Instant::now();
    let (guild, me) = (GuildId(1), UserId(3));
    let media: SocketAddr = "127.0.0.1:50001".parse().expect("address");
    let join = JoinRequest::new(guild, ChannelId(2), me);
    let mut state = AnyState::from(AwaitingServerUpdate::new(now, Config::default(), join));
    let feed = |state: &mut AnyState, input: Input<'_>| {
        state.handle_input(now, input).expect("handshake step");
        drain(state)
    };
    feed(
        &mut state,
        Input::VoiceStateUpdate(VoiceStateDispatch {
            guild_id: Some(guild),
            channel_id: Some(ChannelId(2)),
            user_id: me,
            session_id: "s".into(),
        }),
    );
    feed(
        &mut state,
        Input::VoiceServerUpdate(VoiceServerDispatch {
            token: Token::new("t"),
            guild_id: guild,
            endpoint: Some("voice.example:443".into()),
        }),
    );
    feed(&mut state, Input::WebSocketOpened);
    let hello = text(
        None,
        ServerMessage::Hello(Hello {
            heartbeat_interval: 13750.0,
            v: Some(8),
        }),
    );
    feed(&mut state, Input::Text(&hello));
    let ready = text(
        Some(1),
        ServerMessage::Ready(Ready {
            ssrc: 1,
            ip: "127.0.0.1".into(),
            port: 50001,
            modes: vec![mode.name().into()],
        }),
    );
    let outs = feed(&mut state, Input::Text(&ready));
    let request = outs
        .into_iter()
        .find_map(|o| match o {
            Output::Transmit { data, .. } => Some(data),
            _ => None,
        })
        .expect("discovery request");
    let ssrc = parse_discovery_request(&request).expect("request");
    let answer = discovery_response(ssrc, "203.0.113.7".parse().expect("ip"), 5);
    feed(
        &mut state,
        Input::Datagram {
            from: media,
            data: &answer,
        },
    );
    let description = text(
        Some(2),
        ServerMessage::SessionDescription(SessionDescription {
            mode: mode.name().into(),
            secret_key: SecretKey::new([7; 32]),
            dave_protocol_version: 0,
        }),
    );
    feed(&mut state, Input::Text(&description));
    match state {
        AnyState::Ready(session) => session,
        other => panic!("handshake did not complete: {}", other.name()),
    }
}

fn bench(c: &mut Criterion) {
    let frame = [0x5Au8; FRAME_LEN];
    for mode in [
        EncryptionMode::AeadAes256GcmRtpSize,
        EncryptionMode::AeadXChaCha20Poly1305RtpSize,
    ] {
        let mut group = c.benchmark_group(mode.name());
        group.throughput(Throughput::Elements(1));
        let cipher = TransportCipher::new(mode, &SecretKey::new([7; 32]));
        let mut buf = [0u8; MAX_PACKET_LEN];
        let mut nonce = 0u32;
        group.bench_function("bare_seal_120B", |b| {
            b.iter(|| {
                buf[12..12 + FRAME_LEN].copy_from_slice(black_box(&frame));
                nonce = nonce.wrapping_add(1);
                black_box(cipher.seal(&mut buf, 12, FRAME_LEN, nonce).expect("seal"))
            });
        });
        let mut session = session(mode);
        let now = Instant::now();
        // Announce speaking once so the loop measures the steady state.
        session.send_opus(now, &frame, &mut buf).expect("send");
        while !matches!(session.poll_output(), Output::WakeAt(_) | Output::Idle) {}
        group.bench_function("send_opus_120B", |b| {
            b.iter(|| {
                black_box(
                    session
                        .send_opus(now, black_box(&frame), &mut buf)
                        .expect("send")
                        .len(),
                )
            });
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
