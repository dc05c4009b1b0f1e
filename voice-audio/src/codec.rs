//! The Opus encoder and decoder (the pure-Rust `opus-pure` crate: no C library, no build
//! script, nothing to install), and the PCM helpers around them: a FIFO of 48 kHz stereo
//! samples, a windowed-sinc resampler, a channel downmix and the mix's soft clipper.

use crate::error::AudioError;
use crate::opus_packet::MAX_PACKET_BYTES;

/// Samples per channel of one 20 ms frame at 48 kHz.
pub const FRAME_SAMPLES: usize = 960;
/// Interleaved stereo samples of one 20 ms frame at 48 kHz.
pub const FRAME_PCM_LEN: usize = FRAME_SAMPLES * 2;
/// The output sample rate.
pub const SAMPLE_RATE: u32 = 48_000;

/// What the encoder optimises for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Application {
    /// Speech (libopus `OPUS_APPLICATION_VOIP`).
    Voice,
    /// Music and general audio (libopus `OPUS_APPLICATION_AUDIO`), the default.
    #[default]
    Music,
}

/// How PCM is encoded to Opus: 20 ms frames, 48 kHz stereo, at this bitrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Target bitrate in bits per second (6,000..=510,000; Discord channels carry 64,000 to
    /// 384,000 depending on the server's boost level). Default 96,000.
    pub bitrate: u32,
    /// Voice or music.
    pub application: Application,
    /// Encoder complexity 0..=10 (CPU for quality). Default 10, as libopus.
    pub complexity: u8,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            bitrate: 96_000,
            application: Application::Music,
            complexity: 10,
        }
    }
}

fn codec_error(e: opus_pure::Error) -> AudioError {
    AudioError::Codec(e.to_string())
}

/// An Opus encoder for 20 ms frames of 48 kHz stereo.
pub struct Encoder {
    inner: opus_pure::OpusEncoder,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").finish_non_exhaustive()
    }
}

impl Encoder {
    /// A new encoder.
    pub fn new(config: EncoderConfig) -> Result<Self, AudioError> {
        let application = match config.application {
            Application::Voice => opus_pure::Application::Voip,
            Application::Music => opus_pure::Application::Audio,
        };
        let mut inner =
            opus_pure::OpusEncoder::new(SAMPLE_RATE as i32, 2, application).map_err(codec_error)?;
        inner.bitrate_bps = config.bitrate.clamp(6_000, 510_000) as i32;
        inner.complexity = i32::from(config.complexity.min(10));
        Ok(Encoder { inner })
    }

    /// Encodes one 20 ms frame (interleaved stereo) into `out`; returns the packet's length
    /// (at most [`MAX_PACKET_BYTES`]).
    pub fn encode(
        &mut self,
        pcm: &[f32; FRAME_PCM_LEN],
        out: &mut [u8],
    ) -> Result<usize, AudioError> {
        let budget = out.len().min(MAX_PACKET_BYTES);
        let out = out
            .get_mut(..budget)
            .ok_or_else(|| AudioError::Codec("no room for a packet".into()))?;
        self.inner
            .encode(pcm, FRAME_SAMPLES, out)
            .map_err(codec_error)
    }

    /// Forgets the signal so far (before encoding a stream that does not continue the last).
    pub fn reset(&mut self) {
        let _ = self.inner.reset_state();
    }
}

/// An Opus decoder to 48 kHz stereo (mono packets come out on both channels).
pub struct Decoder {
    inner: opus_pure::OpusDecoder,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").finish_non_exhaustive()
    }
}

/// Samples per channel of the longest Opus packet (120 ms).
pub const MAX_PACKET_SAMPLES: usize = 5760;

impl Decoder {
    /// A new decoder.
    pub fn new() -> Result<Self, AudioError> {
        Ok(Decoder {
            inner: opus_pure::OpusDecoder::new(SAMPLE_RATE as i32, 2).map_err(codec_error)?,
        })
    }

    /// Decodes one packet into `out` (interleaved stereo, at least
    /// `2 * MAX_PACKET_SAMPLES` long); returns samples per channel.
    pub fn decode(&mut self, packet: &[u8], out: &mut [f32]) -> Result<usize, AudioError> {
        if packet.is_empty() {
            return Err(AudioError::Codec("empty Opus packet".into()));
        }
        let frame = (out.len() / 2).min(MAX_PACKET_SAMPLES);
        self.inner.decode(packet, frame, out).map_err(codec_error)
    }

    /// Conceals one lost 20 ms frame (packet-loss concealment from the stream so far) into
    /// `out` (interleaved stereo, at least [`FRAME_PCM_LEN`] long); returns samples per channel.
    pub fn conceal(&mut self, out: &mut [f32]) -> Result<usize, AudioError> {
        self.inner
            .decode(&[], FRAME_SAMPLES, out)
            .map_err(codec_error)
    }

    /// Rebuilds the lost 20 ms frame before `next` from `next`'s in-band forward error correction
    /// (concealment when it carries none) into `out` (at least [`FRAME_PCM_LEN`] long).
    pub fn decode_fec(&mut self, next: &[u8], out: &mut [f32]) -> Result<usize, AudioError> {
        if next.is_empty() {
            return self.conceal(out);
        }
        self.inner
            .decode_fec(next, FRAME_SAMPLES, out)
            .map_err(codec_error)
    }

    /// Forgets the stream so far (after a seek).
    pub fn reset(&mut self) {
        let _ = self.inner.reset_state();
    }
}

/// A FIFO of interleaved 48 kHz stereo samples, handed out 20 ms at a time.
#[derive(Debug, Default)]
pub(crate) struct PcmFifo {
    buf: Vec<f32>,
    read: usize,
}

impl PcmFifo {
    pub(crate) fn len(&self) -> usize {
        self.buf.len() - self.read
    }

    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.read = 0;
    }

    fn compact(&mut self) {
        if self.read > 0 && self.read >= self.buf.len() / 2 {
            self.buf.drain(..self.read);
            self.read = 0;
        }
    }

    pub(crate) fn push(&mut self, samples: &[f32]) {
        self.compact();
        self.buf.extend_from_slice(samples);
    }

    /// Takes one 20 ms frame when there is one; with `pad`, a shorter remainder is padded with
    /// silence.
    pub(crate) fn take(&mut self, out: &mut [f32; FRAME_PCM_LEN], pad: bool) -> bool {
        let available = self.len();
        if available == 0 || (available < FRAME_PCM_LEN && !pad) {
            return false;
        }
        let n = available.min(FRAME_PCM_LEN);
        out[..n].copy_from_slice(&self.buf[self.read..self.read + n]);
        out[n..].fill(0.0);
        self.read += n;
        true
    }
}

/// Converts interleaved samples of `channels` channels to stereo: mono on both sides, the
/// first two channels as left and right, further channels (centre, surround) mixed into both
/// at -6 dB and the result scaled to keep full scale.
pub(crate) fn to_stereo(input: &[f32], channels: usize, out: &mut Vec<f32>) {
    out.clear();
    match channels {
        0 => {}
        1 => out.extend(input.iter().flat_map(|&s| [s, s])),
        2 => out.extend_from_slice(input),
        n => {
            let extra = (n - 2) as f32 * 0.5;
            let scale = 1.0 / (1.0 + extra);
            for frame in input.chunks_exact(n) {
                let rest: f32 = frame[2..].iter().sum::<f32>() * 0.5;
                out.push((frame[0] + rest) * scale);
                out.push((frame[1] + rest) * scale);
            }
        }
    }
}

/// Zero crossings of the sinc on each side of the resampler's kernel.
const ZERO_CROSSINGS: usize = 16;
/// Table points per zero crossing (linear interpolation between them).
const TABLE_RESOLUTION: usize = 256;

/// A streaming windowed-sinc resampler of interleaved stereo to 48 kHz. The kernel is a
/// Blackman-windowed sinc with 16 zero crossings a side, its cut-off at 95 % of the lower
/// Nyquist frequency; positions are kept as exact fractions of the two rates, so it does not
/// drift.
#[derive(Debug)]
pub(crate) struct Resampler {
    in_rate: u64,
    /// Kernel half-width in input samples.
    half_width: usize,
    /// Cut-off as a fraction of the input's Nyquist frequency.
    cutoff: f64,
    table: Vec<f32>,
    /// Per-phase kernels when the rates' ratio has few phases (every common rate): `phases`
    /// rows of `2 * half_width` taps, gain included; empty otherwise.
    polyphase: Vec<f32>,
    /// Output positions fall on multiples of `48000 / phases` in `numer`.
    phase_step: u64,
    /// Input not yet consumed (interleaved stereo), with `half_width` frames of history.
    input: Vec<f32>,
    /// Position of the next output sample in input frames, as `index + numer / 48000`.
    index: usize,
    numer: u64,
}

impl Resampler {
    pub(crate) fn new(in_rate: u32) -> Self {
        let in_rate = u64::from(in_rate.max(1));
        let cutoff = (SAMPLE_RATE as f64 / in_rate as f64).min(1.0) * 0.95;
        let half_width = (ZERO_CROSSINGS as f64 / cutoff).ceil() as usize;
        let points = ZERO_CROSSINGS * TABLE_RESOLUTION + 2;
        let table = (0..points)
            .map(|i| {
                // x in zero crossings of the cut-off sinc.
                let x = i as f64 / TABLE_RESOLUTION as f64;
                let sinc = if x == 0.0 {
                    1.0
                } else {
                    (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
                };
                let t = (x / ZERO_CROSSINGS as f64).min(1.0);
                // Blackman window over [-1, 1], evaluated at t.
                let w = 0.42
                    + 0.5 * (std::f64::consts::PI * t).cos()
                    + 0.08 * (2.0 * std::f64::consts::PI * t).cos();
                (sinc * w.max(0.0)) as f32
            })
            .collect();
        let mut input = Vec::with_capacity(16_384);
        // History of silence so the first output is centred on the first input sample.
        input.resize(half_width * 2, 0.0);
        let mut resampler = Resampler {
            in_rate,
            half_width,
            cutoff,
            table,
            polyphase: Vec::new(),
            phase_step: 1,
            input,
            index: half_width,
            numer: 0,
        };
        // Output sample n sits at n * in / 48000 input samples: its fractional part takes
        // 48000 / gcd(in, 48000) values. Tabulate the kernel for each when that is small.
        let phases = u64::from(SAMPLE_RATE) / gcd(in_rate, u64::from(SAMPLE_RATE));
        if phases <= 2048 {
            let taps = 2 * half_width;
            let step = u64::from(SAMPLE_RATE) / phases;
            let mut polyphase = Vec::with_capacity(phases as usize * taps);
            for phase in 0..phases {
                let frac = (phase * step) as f64 / f64::from(SAMPLE_RATE);
                for j in 0..taps {
                    let distance = (j as f64 + 1.0 - half_width as f64) - frac;
                    polyphase.push(resampler.kernel(distance) * cutoff as f32);
                }
            }
            resampler.polyphase = polyphase;
            resampler.phase_step = step;
        }
        resampler
    }

    pub(crate) fn in_rate(&self) -> u32 {
        self.in_rate as u32
    }

    /// Forgets the signal (after a seek).
    pub(crate) fn reset(&mut self) {
        self.input.clear();
        self.input.resize(self.half_width * 2, 0.0);
        self.index = self.half_width;
        self.numer = 0;
    }

    fn kernel(&self, distance: f64) -> f32 {
        // distance in input samples; scaled to zero crossings of the cut-off sinc.
        let x = distance.abs() * self.cutoff * TABLE_RESOLUTION as f64;
        let i = x as usize;
        let frac = (x - i as f64) as f32;
        match (self.table.get(i), self.table.get(i + 1)) {
            (Some(&a), Some(&b)) => a + (b - a) * frac,
            _ => 0.0,
        }
    }

    /// Feeds interleaved stereo at the input rate; appends 48 kHz stereo to `out`. With
    /// `flush`, the input is followed by silence long enough to bring out its last samples.
    pub(crate) fn process(&mut self, stereo: &[f32], flush: bool, out: &mut PcmFifo) {
        self.input.extend_from_slice(stereo);
        if flush {
            self.input
                .extend(std::iter::repeat_n(0.0, self.half_width * 2 + 2));
        }
        let frames = self.input.len() / 2;
        let gain = self.cutoff as f32;
        let step_whole = (self.in_rate / u64::from(SAMPLE_RATE)) as usize;
        let step_numer = self.in_rate % u64::from(SAMPLE_RATE);
        let taps = 2 * self.half_width;
        while self.index + self.half_width + 1 < frames {
            let first = self.index + 1 - self.half_width;
            let mut left = 0.0f32;
            let mut right = 0.0f32;
            let window = self
                .input
                .get(2 * first..2 * (first + taps))
                .unwrap_or_default();
            let phase = (self.numer / self.phase_step) as usize;
            match self.polyphase.get(phase * taps..(phase + 1) * taps) {
                Some(kernel) => {
                    for (w, pair) in kernel.iter().zip(window.chunks_exact(2)) {
                        left += pair[0] * w;
                        right += pair[1] * w;
                    }
                }
                None => {
                    let frac = self.numer as f64 / f64::from(SAMPLE_RATE);
                    for (j, pair) in window.chunks_exact(2).enumerate() {
                        let w =
                            self.kernel((j as f64 + 1.0 - self.half_width as f64) - frac) * gain;
                        left += pair[0] * w;
                        right += pair[1] * w;
                    }
                }
            }
            out.push(&[left, right]);
            self.index += step_whole;
            self.numer += step_numer;
            if self.numer >= u64::from(SAMPLE_RATE) {
                self.numer -= u64::from(SAMPLE_RATE);
                self.index += 1;
            }
        }
        // Drop consumed input, keeping the kernel's history.
        let keep_from = self.index.saturating_sub(self.half_width);
        if keep_from > 0 {
            let drop = (2 * keep_from).min(self.input.len());
            self.input.drain(..drop);
            self.index -= drop / 2;
        }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a.max(1)
    } else {
        gcd(b, a % b)
    }
}

/// Limits the mix to full scale without a hard edge: samples within ±0.9 pass unchanged,
/// louder ones approach ±1 along a tanh knee (continuous and smooth at ±0.9).
pub(crate) fn soft_clip(samples: &mut [f32]) {
    const KNEE: f32 = 0.9;
    const HEADROOM: f32 = 1.0 - KNEE;
    for s in samples {
        let a = s.abs();
        if a > KNEE {
            let limited = KNEE + HEADROOM * ((a - KNEE) / HEADROOM).tanh();
            *s = limited.copysign(*s);
        } else if s.is_nan() {
            *s = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f64, seconds: f64) -> Vec<f32> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .flat_map(|i| {
                let s = (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin()
                    as f32
                    * 0.5;
                [s, s]
            })
            .collect()
    }

    fn resample_all(rate: u32, input: &[f32]) -> Vec<f32> {
        let mut r = Resampler::new(rate);
        let mut out = PcmFifo::default();
        for chunk in input.chunks(2 * 1000) {
            r.process(chunk, false, &mut out);
        }
        r.process(&[], true, &mut out);
        out.buf[out.read..].to_vec()
    }

    #[test]
    fn resampling_keeps_length_and_frequency() {
        for rate in [8_000, 22_050, 44_100, 96_000, 47_999] {
            let input = sine(rate, 440.0, 1.0);
            let out = resample_all(rate, &input);
            let frames = out.len() / 2;
            assert!(
                (frames as i64 - 48_000).abs() <= 2,
                "{rate} Hz: {frames} frames out"
            );
            // Compare with an ideal 48 kHz sine away from the edges.
            let ideal = sine(48_000, 440.0, 1.0);
            let mut err = 0.0f64;
            let mut power = 0.0f64;
            for i in (2_000..46_000).map(|i| i * 2) {
                err += f64::from(out[i] - ideal[i]).powi(2);
                power += f64::from(ideal[i]).powi(2);
            }
            let snr = 10.0 * (power / err).log10();
            assert!(snr > 50.0, "{rate} Hz: SNR {snr:.1} dB");
        }
    }

    #[test]
    fn soft_clip_is_transparent_below_the_knee_and_bounded_above() {
        let mut s = [0.5, -0.89, 1.5, -3.0, 0.95, f32::NAN];
        soft_clip(&mut s);
        assert_eq!(&s[..2], &[0.5, -0.89]);
        assert!(s[2] > 0.9 && s[2] <= 1.0);
        assert!(s[3] < -0.9 && s[3] >= -1.0);
        assert!(s[4] > 0.9 && s[4] < 0.95);
        assert_eq!(s[5], 0.0);
    }

    #[test]
    fn downmix_to_stereo() {
        let mut out = Vec::new();
        to_stereo(&[0.1, 0.2], 1, &mut out);
        assert_eq!(out, vec![0.1, 0.1, 0.2, 0.2]);
        to_stereo(&[1.0, 0.0, 1.0, 1.0], 4, &mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|s| s.abs() <= 1.0));
    }

    #[test]
    fn encode_decode_round_trip() {
        let mut enc = Encoder::new(EncoderConfig::default()).unwrap();
        let mut dec = Decoder::new().unwrap();
        let input = sine(48_000, 440.0, 0.2);
        let mut packet = [0u8; MAX_PACKET_BYTES];
        let mut pcm = vec![0.0; 2 * MAX_PACKET_SAMPLES];
        for chunk in input.chunks_exact(FRAME_PCM_LEN) {
            let frame: &[f32; FRAME_PCM_LEN] = chunk.try_into().unwrap();
            let n = enc.encode(frame, &mut packet).unwrap();
            assert!(n > 0 && n <= MAX_PACKET_BYTES);
            assert_eq!(dec.decode(&packet[..n], &mut pcm).unwrap(), FRAME_SAMPLES);
        }
        assert!(dec.decode(&[], &mut pcm).is_err());
    }
}
