//! CPU per 20 ms frame of the player: passthrough (Ogg Opus and WebM Opus), decode + resample
//! + encode (WAV and MP3 at 44.1 kHz), a mix of two tracks, and the Opus encoder alone.
//!
//! `cargo bench -p voice-audio --bench player`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use voice_audio::{Encoder, EncoderConfig, Input, LoopMode, Player, FRAME_PCM_LEN};

fn sine(rate: u32, channels: usize, freq: f64, seconds: f64) -> Vec<f32> {
    let n = (f64::from(rate) * seconds) as usize;
    (0..n)
        .flat_map(|i| {
            let s = (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() * 0.4;
            std::iter::repeat_n(s as f32, channels)
        })
        .collect()
}

fn packets(seconds: f64) -> Vec<Vec<u8>> {
    let pcm = sine(48_000, 2, 440.0, seconds);
    let mut encoder = Encoder::new(EncoderConfig::default()).unwrap();
    let mut out = [0u8; 1275];
    pcm.chunks_exact(FRAME_PCM_LEN)
        .map(|c| {
            let n = encoder.encode(c.try_into().unwrap(), &mut out).unwrap();
            out[..n].to_vec()
        })
        .collect()
}

fn wav(rate: u32, samples: &[f32]) -> Vec<u8> {
    let data: Vec<u8> = samples
        .iter()
        .flat_map(|s| ((s * 32767.0) as i16).to_le_bytes())
        .collect();
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    for v in [16u32] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

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
    let opus = packets(10.0);
    let ogg = voice_audio::ogg_write::ogg_opus(&opus, &[], 50, 312);
    let mp3 = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tone.mp3"
    ))
    .unwrap();
    let wav44 = wav(44_100, &sine(44_100, 1, 440.0, 10.0));

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
    let pcm = sine(48_000, 2, 440.0, 0.02);
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
