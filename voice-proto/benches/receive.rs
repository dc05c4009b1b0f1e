//! The receive path per packet, on a 120-byte frame per mode: the bare AEAD open of the packet;
//! a session with receive off (the datagram is ignored after a look at its first bytes); a
//! session receiving (transport decryption, the playout buffer, the queue, `poll_received`); and
//! with DAVE, the same with the member's frame DAVE-decrypted in between. Every iteration feeds a
//! fresh packet (the next sequence and nonce), made outside the timing.
//!
//! Run: `cargo bench -p voice-proto --bench receive`. Decoding the frame to PCM is measured by
//! `cargo bench -p voice-audio --features receive --bench receive`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use support::{relayed_packet, server_udp, test_config, Harness};
use voice_proto::crypto::{EncryptionMode, TransportCipher};
use voice_proto::receive::ReceiveConfig;
use voice_proto::rtp::ReceivedRtp;
use voice_proto::secret::SecretKey;
use voice_proto::Input;

const FRAME_LEN: usize = 120;
const THEIR_SSRC: u32 = 4242;

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

fn bench(c: &mut Criterion) {
    let frame = [0xFCu8; FRAME_LEN];
    for mode in [
        EncryptionMode::AeadAes256GcmRtpSize,
        EncryptionMode::AeadXChaCha20Poly1305RtpSize,
    ] {
        let mut group = c.benchmark_group(format!("receive_{}", mode.name()));
        group.throughput(Throughput::Elements(1));

        let key = [7u8; 32];
        let cipher = TransportCipher::new(mode, &SecretKey::new(key));
        let mut sequence = 0u16;
        group.bench_function("bare_open_120B", |b| {
            b.iter_batched(
                || {
                    sequence = sequence.wrapping_add(1);
                    relayed_packet(mode, key, THEIR_SSRC, sequence, u32::from(sequence), &frame)
                },
                |mut packet| {
                    let aad_len = ReceivedRtp::parse(&packet).map_or(0, |h| h.aad_len);
                    black_box(cipher.open(&mut packet, aad_len)).ok()
                },
                BatchSize::SmallInput,
            );
        });

        for (name, receive) in [
            ("off_ignored_120B", None),
            ("decrypt_and_buffer_120B", Some(ReceiveConfig::default())),
        ] {
            let mut config = test_config();
            config.receive = receive;
            let mut h = Harness::join(config);
            h.server.modes = vec![mode.name().to_owned()];
            h.server.mode = mode;
            h.connect();
            bench_receive(&mut group, name, &mut h, || frame.to_vec());
        }
        group.finish();
    }

    // A DAVE member's frames: DAVE decryption between the transport and the buffer.
    #[cfg(feature = "dave")]
    {
        let mut group = c.benchmark_group("receive_dave_aead_aes256_gcm_rtpsize");
        group.throughput(Throughput::Elements(1));
        let (mut h, mut member) = support::dave::keyed_call();
        let mut op5 = voice_proto::payload::Speaking::new(
            voice_proto::payload::SpeakingFlags::MICROPHONE,
            THEIR_SSRC,
        );
        op5.user_id = Some(support::OTHER_USER);
        h.json(voice_proto::payload::ServerMessage::Speaking(op5));
        bench_receive(&mut group, "decrypt_and_buffer_120B", &mut h, || {
            member
                .encrypt_opus(&frame)
                .map(|f| f.to_vec())
                .unwrap_or_default()
        });
        assert_eq!(h.session().stats().dave_decrypt_failures, 0);
        group.finish();
    }
}

/// One packet of the next sequence fed as a datagram, then every received item taken; the
/// clock does not move (the buffer's steady state: each frame leaves on arrival).
fn bench_receive(
    group: &mut Group<'_>,
    name: &str,
    h: &mut Harness,
    mut payload: impl FnMut() -> Vec<u8>,
) {
    let (mode, key) = (h.server.mode, h.server.key);
    let mut sequence = 0u16;
    let mut next = |payload: Vec<u8>| {
        sequence = sequence.wrapping_add(1);
        relayed_packet(
            mode,
            key,
            THEIR_SSRC,
            sequence,
            u32::from(sequence),
            &payload,
        )
    };
    // The new sender's first frame is held for the depth: let it go, then measure.
    let first = next(payload());
    h.feed(Input::Datagram {
        from: server_udp(),
        data: &first,
    });
    h.advance(Duration::from_millis(100));
    h.received.clear();
    let now = h.now;
    let session = h.state.session().expect("connected");
    group.bench_function(name, |b| {
        b.iter_batched(
            || next(payload()),
            |packet| {
                let _ = session.handle_input(
                    now,
                    Input::Datagram {
                        from: server_udp(),
                        data: &packet,
                    },
                );
                while let Some(received) = session.poll_received() {
                    black_box(received);
                }
            },
            BatchSize::SmallInput,
        );
    });
    let stats = session.stats();
    assert_eq!(
        stats.packets_skipped + stats.decrypt_failures,
        0,
        "{stats:?}"
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
