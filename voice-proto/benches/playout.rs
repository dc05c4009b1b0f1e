//! The playout's packet path (`queue_opus` + `poll_transmit` in its slot) on a 120-byte frame per
//! mode, beside the bare AEAD seal of the same bytes.
//!
//! Run: `cargo bench -p voice-proto --bench playout`. The goal is a per-packet cost within
//! 1.15x of the bare seal: everything the playout adds (queue, clock, counters, header, copies,
//! checks) must be small next to the cipher. The `dave_*` group measures the same call with DAVE frame encryption
//! (the `davey` crate) in front of the transport seal.

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use support::{test_config, Harness};
use voice_proto::crypto::{EncryptionMode, TransportCipher};
use voice_proto::rtp::{MAX_PACKET_LEN, RTP_HEADER_LEN};
use voice_proto::secret::SecretKey;

const FRAME_LEN: usize = 120;

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
                buf[RTP_HEADER_LEN..RTP_HEADER_LEN + FRAME_LEN].copy_from_slice(black_box(&frame));
                nonce = nonce.wrapping_add(1);
                black_box(cipher.seal(&mut buf, RTP_HEADER_LEN, FRAME_LEN, nonce))
            });
        });

        // A session negotiated against the scripted in-memory server.
        let mut h = Harness::join(test_config());
        h.server.modes = vec![mode.name().to_owned()];
        h.server.mode = mode;
        h.connect();
        bench_playout(&mut group, &mut h, &frame);
        group.finish();
    }

    // The same with DAVE end-to-end encryption in front of the AES-256-GCM transport.
    #[cfg(feature = "dave")]
    {
        let mut group = c.benchmark_group("dave_aead_aes256_gcm_rtpsize");
        group.throughput(Throughput::Elements(1));
        let (mut h, _peer) = support::dave::keyed_call();
        bench_playout(&mut group, &mut h, &frame);
        group.finish();
    }
}

/// `playout_120B`: one `queue_opus` and one `poll_transmit` in its slot, in steady state (the
/// first frame, which announces Speaking, and the queue's growth are warmed up first).
fn bench_playout(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    h: &mut Harness,
    frame: &[u8],
) {
    h.warm_up_playout(frame);
    group.bench_function("playout_120B", |b| {
        b.iter(|| {
            h.steady_playout(black_box(frame), 1, |len| {
                black_box(len);
            })
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
