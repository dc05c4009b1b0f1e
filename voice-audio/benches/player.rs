//! CPU per 20 ms frame of the player: passthrough (Ogg Opus and WebM Opus), decode + resample
//! + encode (WAV and MP3 at 44.1 kHz), a mix of two tracks, and the Opus encoder alone.
//!
//! `cargo bench -p voice-audio --bench player`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use voice_audio::{Encoder, EncoderConfig, Input, LoopMode, Player, FRAME_PCM_LEN};

#[path = "../tests/common/mod.rs"]
mod common;
use common::{ogg_opus, sine, tone_packets, wav};

/// A player looping `inputs` forever, all playing at once.
fn looping(inputs: Vec<Input>) -> Player {
    let mut player = Player::default();
    for input in inputs {
        player.play(input).set_loop(LoopMode::Forever);
    }
    for _ in 0..10 {
        player.next_frame();
    }
    player
}

fn frame(player: &mut Player) -> usize {
    let n = player.next_frame().map_or(0, <[u8]>::len);
    while player.poll_event().is_some() {}
    n
}

fn bench(c: &mut Criterion) {
    let ogg = ogg_opus(&tone_packets(10.0));
    let mp3 = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tone.mp3"
    ))
    .unwrap();
    let wav44 = wav(44_100, 1, &sine(44_100, 1, 440.0, 0.4, 10.0));

    let mut group = c.benchmark_group("per 20 ms frame");
    let mut player = looping(vec![Input::bytes(ogg.clone())]);
    group.bench_function("passthrough Ogg Opus", |b| {
        b.iter(|| black_box(frame(&mut player)))
    });
    let mut player = looping(vec![Input::bytes(wav44)]);
    group.bench_function("WAV 44.1 kHz mono: decode + resample + encode", |b| {
        b.iter(|| black_box(frame(&mut player)))
    });
    let mut player = looping(vec![Input::bytes(mp3).with_extension_hint("mp3")]);
    group.bench_function("MP3 44.1 kHz mono: decode + resample + encode", |b| {
        b.iter(|| black_box(frame(&mut player)))
    });
    let mut player = looping(vec![Input::bytes(ogg.clone()), Input::bytes(ogg)]);
    group.bench_function(
        "mix of two Ogg Opus tracks: 2 decodes + mix + encode",
        |b| b.iter(|| black_box(frame(&mut player))),
    );
    let pcm = sine(48_000, 2, 440.0, 0.4, 0.02);
    let pcm: &[f32; FRAME_PCM_LEN] = pcm[..FRAME_PCM_LEN].try_into().unwrap();
    let mut encoder = Encoder::new(EncoderConfig::default()).unwrap();
    let mut out = [0u8; 1275];
    group.bench_function("Opus encode alone (96 kbit/s, complexity 10)", |b| {
        b.iter(|| black_box(encoder.encode(black_box(pcm), &mut out).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
