//! Raw PCM: interleaved little-endian samples at a rate and channel count the caller gives.

use std::io::{Seek, SeekFrom};
use std::time::Duration;

use crate::error::AudioError;
use crate::seekbuf::{read_full, SeekBuf};
use crate::source::{PcmBlock, PcmSource};

const FORMAT: &str = "raw PCM";

/// The sample encoding of raw PCM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SampleFormat {
    /// Signed 16-bit little-endian (`ffmpeg -f s16le`).
    S16Le,
    /// 32-bit float little-endian (`ffmpeg -f f32le`), nominally within ±1.
    F32Le,
}

impl SampleFormat {
    fn bytes(self) -> usize {
        match self {
            SampleFormat::S16Le => 2,
            SampleFormat::F32Le => 4,
        }
    }
}

/// How raw PCM is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcmFormat {
    /// The sample encoding.
    pub sample: SampleFormat,
    /// Samples per second per channel (any rate; resampled to 48 kHz).
    pub rate: u32,
    /// Interleaved channels (1 = mono, 2 = stereo, more are downmixed).
    pub channels: u16,
}

impl PcmFormat {
    /// 48 kHz stereo signed 16-bit: what `ffmpeg -f s16le -ar 48000 -ac 2 -` writes, sent to
    /// Discord without resampling.
    pub const DISCORD_S16LE: PcmFormat = PcmFormat {
        sample: SampleFormat::S16Le,
        rate: 48_000,
        channels: 2,
    };

    fn frame_bytes(&self) -> usize {
        self.sample.bytes() * usize::from(self.channels)
    }
}

/// Reads raw PCM 20 ms at a time.
pub(crate) struct PcmReader {
    io: SeekBuf,
    format: PcmFormat,
    bytes: Vec<u8>,
    samples: Vec<f32>,
}

impl PcmReader {
    pub(crate) fn new(io: SeekBuf, format: PcmFormat) -> Result<Self, AudioError> {
        if format.rate == 0 || format.channels == 0 {
            return Err(AudioError::unsupported(
                FORMAT,
                format!("{} Hz, {} channels", format.rate, format.channels),
            ));
        }
        Ok(PcmReader {
            io,
            format,
            bytes: Vec::new(),
            samples: Vec::new(),
        })
    }
}

impl PcmSource for PcmReader {
    fn next_block(&mut self) -> Result<Option<PcmBlock<'_>>, AudioError> {
        let frame = self.format.frame_bytes();
        let frames = (self.format.rate as usize / 50).max(1);
        self.bytes.resize(frames * frame, 0);
        let n = read_full(&mut self.io, &mut self.bytes).map_err(|e| AudioError::io(FORMAT, e))?;
        // A trailing partial sample frame (a cut pipe) is dropped.
        let whole = n / frame * frame;
        if whole == 0 {
            return Ok(None);
        }
        self.samples.clear();
        match self.format.sample {
            SampleFormat::S16Le => self.samples.extend(
                self.bytes[..whole]
                    .chunks_exact(2)
                    .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0),
            ),
            SampleFormat::F32Le => self.samples.extend(
                self.bytes[..whole]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .map(|s| if s.is_finite() { s } else { 0.0 }),
            ),
        }
        Ok(Some(PcmBlock {
            samples: &self.samples,
            channels: usize::from(self.format.channels),
            rate: self.format.rate,
        }))
    }

    fn seek(&mut self, to: Duration) -> Result<Duration, AudioError> {
        if !self.io.is_seekable() {
            return Err(AudioError::NotSeekable);
        }
        let frame = (to.as_nanos() * u128::from(self.format.rate) / 1_000_000_000) as u64;
        let byte = frame.saturating_mul(self.format.frame_bytes() as u64);
        let byte = byte.min(self.io.len().unwrap_or(u64::MAX));
        self.io
            .seek(SeekFrom::Start(byte))
            .map_err(|e| AudioError::io(FORMAT, e))?;
        let frame = byte / self.format.frame_bytes() as u64;
        Ok(Duration::from_nanos(
            frame * 1_000_000_000 / u64::from(self.format.rate),
        ))
    }

    fn duration(&self) -> Option<Duration> {
        let frames = self.io.len()? / self.format.frame_bytes() as u64;
        Some(Duration::from_nanos(
            frames.saturating_mul(1_000_000_000) / u64::from(self.format.rate),
        ))
    }

    fn describe(&self) -> String {
        format!(
            "raw PCM {:?} {} Hz {} ch, encoded",
            self.format.sample, self.format.rate, self.format.channels
        )
    }
}
