//! Fixtures the tests make themselves: sines, WAV, Ogg Opus and WebM files, and helpers to run
//! a player and decode what it produced.
#![allow(dead_code)]

use std::time::Duration;

use voice_audio::{
    Decoder, Encoder, EncoderConfig, Input, Player, PlayerConfig, PlayerEvent, FRAME_PCM_LEN,
};

/// Interleaved samples of a sine at `freq` Hz, amplitude `amp`, `channels` channels.
pub fn sine(rate: u32, channels: usize, freq: f64, amp: f64, seconds: f64) -> Vec<f32> {
    let n = (f64::from(rate) * seconds).round() as usize;
    (0..n)
        .flat_map(|i| {
            let s = (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() * amp;
            std::iter::repeat_n(s as f32, channels)
        })
        .collect()
}

/// A 16-bit PCM WAV file.
pub fn wav(rate: u32, channels: u16, samples: &[f32]) -> Vec<u8> {
    let data: Vec<u8> = samples
        .iter()
        .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
        .collect();
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
    out.extend_from_slice(&(channels * 2).to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

/// 20 ms Opus packets of a 48 kHz stereo signal.
pub fn opus_packets(pcm: &[f32]) -> Vec<Vec<u8>> {
    let mut encoder = Encoder::new(EncoderConfig::default()).unwrap();
    let mut out = [0u8; 1275];
    pcm.chunks(FRAME_PCM_LEN)
        .map(|chunk| {
            let mut frame = [0.0f32; FRAME_PCM_LEN];
            frame[..chunk.len()].copy_from_slice(chunk);
            let n = encoder.encode(&frame, &mut out).unwrap();
            out[..n].to_vec()
        })
        .collect()
}

/// `seconds` of a 440 Hz stereo tone as 20 ms Opus packets.
pub fn tone_packets(seconds: f64) -> Vec<Vec<u8>> {
    opus_packets(&sine(48_000, 2, 440.0, 0.3, seconds))
}

/// An Ogg Opus file of 20 ms packets.
pub fn ogg_opus(packets: &[Vec<u8>]) -> Vec<u8> {
    voice_audio::ogg_write::ogg_opus(packets, &[], 50, 312)
}

/// EBML variable-size integer for a size.
fn vint_size(n: usize) -> Vec<u8> {
    let n = n as u64;
    for len in 1..=8u32 {
        if n < (1u64 << (7 * len)) - 1 {
            let marked = n | (1u64 << (7 * len));
            return marked.to_be_bytes()[(8 - len as usize)..].to_vec();
        }
    }
    unreachable!()
}

fn element(id: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = id.to_vec();
    out.extend(vint_size(body.len()));
    out.extend_from_slice(body);
    out
}

fn uint(id: &[u8], v: u64) -> Vec<u8> {
    element(id, &v.to_be_bytes())
}

/// A WebM file with one Opus track holding `packets` as SimpleBlocks (20 ms apart), clusters
/// of 50 blocks.
pub fn webm_opus(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut head = b"OpusHead".to_vec();
    head.extend_from_slice(&[1, 2]);
    head.extend_from_slice(&312u16.to_le_bytes());
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&[0, 0, 0]);
    let ebml = element(
        &[0x1A, 0x45, 0xDF, 0xA3],
        &[
            uint(&[0x42, 0x86], 1),
            uint(&[0x42, 0xF7], 1),
            uint(&[0x42, 0xF2], 4),
            uint(&[0x42, 0xF3], 8),
            element(&[0x42, 0x82], b"webm"),
            uint(&[0x42, 0x87], 4),
            uint(&[0x42, 0x85], 2),
        ]
        .concat(),
    );
    let duration_ms = packets.len() as f64 * 20.0;
    let info = element(
        &[0x15, 0x49, 0xA9, 0x66],
        &[
            uint(&[0x2A, 0xD7, 0xB1], 1_000_000),
            element(&[0x44, 0x89], &duration_ms.to_be_bytes()),
            element(&[0x4D, 0x80], b"voice-audio tests"),
            element(&[0x57, 0x41], b"voice-audio tests"),
        ]
        .concat(),
    );
    let track = element(
        &[0xAE],
        &[
            uint(&[0xD7], 1),
            uint(&[0x73, 0xC5], 1),
            uint(&[0x83], 2),
            element(&[0x86], b"A_OPUS"),
            element(&[0x63, 0xA2], &head),
            element(
                &[0xE1],
                &[element(&[0xB5], &48_000f64.to_be_bytes()), uint(&[0x9F], 2)].concat(),
            ),
        ]
        .concat(),
    );
    let tracks = element(&[0x16, 0x54, 0xAE, 0x6B], &track);
    let mut clusters = Vec::new();
    for (c, chunk) in packets.chunks(50).enumerate() {
        let base = c as u64 * 1000;
        let mut body = uint(&[0xE7], base);
        for (i, p) in chunk.iter().enumerate() {
            let mut block = vec![0x81];
            block.extend_from_slice(&((i * 20) as i16).to_be_bytes());
            block.push(0x80);
            block.extend_from_slice(p);
            body.extend(element(&[0xA3], &block));
        }
        clusters.extend(element(&[0x1F, 0x43, 0xB6, 0x75], &body));
    }
    let segment = element(
        &[0x18, 0x53, 0x80, 0x67],
        &[info, tracks, clusters].concat(),
    );
    [ebml, segment].concat()
}

/// Runs `player` until it is idle (at most `max_frames`), returning the frames and events.
pub fn run(player: &mut Player, max_frames: usize) -> (Vec<Vec<u8>>, Vec<PlayerEvent>) {
    let mut frames = Vec::new();
    let mut events = Vec::new();
    for _ in 0..max_frames {
        let frame = player.next_frame().map(<[u8]>::to_vec);
        while let Some(e) = player.poll_event() {
            events.push(e);
        }
        match frame {
            Some(f) => frames.push(f),
            None => break,
        }
    }
    (frames, events)
}

/// Plays one input to its end.
pub fn play_all(input: Input) -> (Vec<Vec<u8>>, Vec<PlayerEvent>) {
    let mut player = Player::new(PlayerConfig::default());
    player.enqueue(input);
    run(&mut player, 100_000)
}

/// Decodes 20 ms Opus frames to interleaved 48 kHz stereo.
pub fn decode(frames: &[Vec<u8>]) -> Vec<f32> {
    let mut decoder = Decoder::new().unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0.0f32; 2 * 5760];
    for f in frames {
        let n = decoder.decode(f, &mut buf).unwrap();
        assert_eq!(n, 960, "every frame lasts 20 ms");
        out.extend_from_slice(&buf[..2 * n]);
    }
    out
}

/// The dominant frequency of the left channel by zero crossings, between `from` and `to`
/// seconds.
pub fn frequency(stereo48k: &[f32], from: f64, to: f64) -> f64 {
    let a = (from * 48_000.0) as usize;
    let b = ((to * 48_000.0) as usize).min(stereo48k.len() / 2);
    let left: Vec<f32> = (a..b).map(|i| stereo48k[2 * i]).collect();
    let crossings = left
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    crossings as f64 / 2.0 / ((b - a) as f64 / 48_000.0)
}

/// RMS of the left channel between `from` and `to` seconds.
pub fn rms(stereo48k: &[f32], from: f64, to: f64) -> f64 {
    let a = (from * 48_000.0) as usize;
    let b = ((to * 48_000.0) as usize).min(stereo48k.len() / 2);
    let sum: f64 = (a..b).map(|i| f64::from(stereo48k[2 * i]).powi(2)).sum();
    (sum / (b - a) as f64).sqrt()
}

/// The error of the first `Errored` event.
pub fn error_of(events: &[PlayerEvent]) -> Option<voice_audio::AudioError> {
    events.iter().find_map(|e| match e {
        PlayerEvent::Errored { error, .. } => Some(error.clone()),
        _ => None,
    })
}

/// Seconds as a `Duration`.
pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}
