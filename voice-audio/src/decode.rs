//! Everything symphonia decodes (MP3, FLAC, WAV, AAC in ADTS or MP4/M4A, Vorbis in Ogg or
//! WebM, ...), probed by content with the file extension as a hint.

use std::time::Duration;

use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, SeekMode, SeekTo, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::units::{Time, TimeBase, Timestamp};

use crate::error::AudioError;
use crate::seekbuf::SeekBuf;
use crate::source::{PcmBlock, PcmSource};

const FORMAT: &str = "decoded audio";

/// Consecutive undecodable packets skipped before the track ends with an error.
const MAX_DECODE_ERRORS: u32 = 8;

fn symphonia_error(e: SymphoniaError) -> AudioError {
    match e {
        SymphoniaError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            AudioError::truncated(FORMAT, io.to_string())
        }
        SymphoniaError::IoError(io) => AudioError::io(FORMAT, io),
        SymphoniaError::Unsupported(what) => AudioError::unsupported(FORMAT, what),
        other => AudioError::corrupt(FORMAT, other.to_string()),
    }
}

/// A symphonia demuxer and decoder over one audio track.
pub(crate) struct SymphoniaSource {
    format: Box<dyn FormatReader + 'static>,
    decoder: Box<dyn AudioDecoder>,
    track: u32,
    time_base: Option<TimeBase>,
    duration: Option<Duration>,
    codec: String,
    samples: Vec<f32>,
    /// Frames still to drop after an accurate seek landed before its target.
    skip_frames: u64,
}

fn time_to_duration(t: Time) -> Duration {
    Duration::from_nanos(u64::try_from(t.as_nanos()).unwrap_or(0))
}

impl SymphoniaSource {
    /// Probes `io` (the extension, if any, is a hint; the content decides).
    pub(crate) fn open(io: SeekBuf, extension: Option<&str>) -> Result<Self, AudioError> {
        let mut hint = Hint::new();
        if let Some(ext) = extension {
            hint.with_extension(ext);
        }
        let mss = MediaSourceStream::new(Box::new(io), MediaSourceStreamOptions::default());
        let format = symphonia::default::get_probe()
            .probe(
                &hint,
                mss,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
            .map_err(|e| match e {
                SymphoniaError::Unsupported(_) => AudioError::UnknownFormat {
                    detail: "no container or codec this crate reads".into(),
                },
                other => symphonia_error(other),
            })?;
        let track = format
            .default_track(TrackType::Audio)
            .ok_or_else(|| AudioError::unsupported(FORMAT, "no audio track"))?;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or_else(|| AudioError::unsupported(FORMAT, "an audio track without parameters"))?;
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(params, &AudioDecoderOptions::default())
            .map_err(symphonia_error)?;
        let codec = decoder.codec_info().short_name.to_owned();
        let time_base = track.time_base;
        let duration = match (time_base, track.duration) {
            (Some(tb), Some(d)) => tb.calc_duration(d).map(time_to_duration),
            _ => match (track.num_frames, params.sample_rate) {
                (Some(n), Some(rate)) if rate > 0 => Some(Duration::from_nanos(
                    n.saturating_mul(1_000_000_000) / u64::from(rate),
                )),
                _ => None,
            },
        };
        let track = track.id;
        Ok(SymphoniaSource {
            format,
            decoder,
            track,
            time_base,
            duration,
            codec,
            samples: Vec::new(),
            skip_frames: 0,
        })
    }
}

impl PcmSource for SymphoniaSource {
    fn next_block(&mut self) -> Result<Option<PcmBlock<'_>>, AudioError> {
        let mut errors = 0;
        loop {
            let packet = match self.format.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(None),
                Err(SymphoniaError::ResetRequired) => {
                    self.decoder.reset();
                    continue;
                }
                Err(e) => return Err(symphonia_error(e)),
            };
            if packet.track_id != self.track {
                continue;
            }
            let decoded = match self.decoder.decode(&packet) {
                Ok(d) => d,
                Err(SymphoniaError::DecodeError(why)) if errors < MAX_DECODE_ERRORS => {
                    tracing::debug!(why, "skipping an undecodable packet");
                    errors += 1;
                    continue;
                }
                Err(e) => return Err(symphonia_error(e)),
            };
            let channels = decoded.spec().channels().count();
            let rate = decoded.spec().rate();
            if channels == 0 || rate == 0 {
                return Err(AudioError::corrupt(
                    FORMAT,
                    "a block without channels or rate",
                ));
            }
            self.samples.resize(decoded.samples_interleaved(), 0.0);
            decoded.copy_to_slice_interleaved(&mut self.samples[..]);
            let mut start = 0;
            if self.skip_frames > 0 {
                let frames = (self.samples.len() / channels) as u64;
                let skip = self.skip_frames.min(frames);
                self.skip_frames -= skip;
                start = skip as usize * channels;
            }
            if start >= self.samples.len() {
                continue;
            }
            return Ok(Some(PcmBlock {
                samples: &self.samples[start..],
                channels,
                rate,
            }));
        }
    }

    fn seek(&mut self, to: Duration) -> Result<Duration, AudioError> {
        let time = Time::try_from_nanos_u128(to.as_nanos())
            .ok_or_else(|| AudioError::corrupt(FORMAT, "seek target out of range"))?;
        let seeked = self
            .format
            .seek(
                SeekMode::Accurate,
                SeekTo::Time {
                    time,
                    track_id: Some(self.track),
                },
            )
            .map_err(|e| match e {
                SymphoniaError::SeekError(_) | SymphoniaError::Unsupported(_) => {
                    AudioError::NotSeekable
                }
                other => symphonia_error(other),
            })?;
        self.decoder.reset();
        let required = seeked.required_ts;
        let actual = seeked.actual_ts;
        self.skip_frames = u64::try_from(required.get().saturating_sub(actual.get())).unwrap_or(0);
        let at = self
            .time_base
            .and_then(|tb| tb.calc_time(Timestamp::new(required.get().max(0))))
            .map_or(to, time_to_duration);
        Ok(at)
    }

    fn duration(&self) -> Option<Duration> {
        self.duration
    }

    fn describe(&self) -> String {
        format!("{}, decoded and re-encoded", self.codec)
    }
}
