//! CPU per received 20 ms frame of `ReceiveDecoder` (feature `receive`): decoding the bundled
//! speech sample (48 kbit/s, what Discord clients send) and a 96 kbit/s tone, and the same with
//! one frame in ten lost (concealment, then the next frame). The core's part of receiving
//! (decryption, playout buffer) is `cargo bench -p voice-proto --bench receive`.
//!
//! `cargo bench -p voice-audio --features receive --bench receive`

use std::hint::black_box;
use std::io::Cursor;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use voice_audio::ReceiveDecoder;
use voice_proto::receive::{Frame, Item, Received};

#[path = "../tests/common/mod.rs"]
mod common;
use common::tone_packets;

/// The Opus packets of the bundled 8-second speech sample.
fn speech() -> Vec<Vec<u8>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../voice-sim/assets/sample.ogg"
    );
    let file = std::fs::read(path).expect("the bundled sample");
    let mut reader = ogg::PacketReader::new(Cursor::new(file));
    std::iter::from_fn(|| reader.read_packet().ok().flatten())
        .map(|packet| packet.data)
        .skip(2)
        .collect()
}

/// The packets as received items of one sender; with `lose_every`, every n-th is a loss.
fn items(packets: &[Vec<u8>], lose_every: Option<usize>) -> Vec<Received> {
    packets
        .iter()
        .enumerate()
        .map(|(i, packet)| {
            let sequence = i as u16;
            let item = match lose_every {
                Some(n) if i % n == n - 1 => Item::Lost {
                    sequence,
                    timestamp: u32::from(sequence) * 960,
                    count: 1,
                },
                _ => Item::Frame(Frame {
                    sequence,
                    timestamp: u32::from(sequence) * 960,
                    opus: Bytes::copy_from_slice(packet),
                }),
            };
            Received {
                ssrc: 1,
                user_id: None,
                item,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("per received 20 ms frame");
    group.throughput(Throughput::Elements(1));
    for (name, packets) in [
        ("speech 48 kbit/s", speech()),
        ("tone 96 kbit/s", tone_packets(8.0)),
    ] {
        for (what, lose_every) in [("decode", None), ("decode, 1 in 10 lost", Some(10))] {
            let items = items(&packets, lose_every);
            let mut decoder = ReceiveDecoder::new();
            let mut pcm = Vec::with_capacity(48_000);
            let mut next = items.iter().cycle();
            group.bench_function(format!("{what}: {name}"), |b| {
                b.iter(|| {
                    pcm.clear();
                    let received = next.next().expect("a cycle never ends");
                    black_box(decoder.decode(received, &mut pcm).ok())
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
