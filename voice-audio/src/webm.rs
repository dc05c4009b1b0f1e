//! WebM / Matroska Opus demuxing with the `matroska-demuxer` crate: the first Opus audio track's
//! blocks (laced or not) are the Opus packets, byte for byte.

use std::time::Duration;

use matroska_demuxer::{Frame, MatroskaFile, TrackType};

use crate::error::AudioError;
use crate::ogg::OpusHead;
use crate::seekbuf::SeekBuf;
use crate::source::PacketSource;

const FORMAT: &str = "WebM/Matroska Opus";

/// The EBML magic that starts every Matroska and WebM file.
pub(crate) const EBML_MAGIC: [u8; 4] = [0x1A, 0x45, 0xDF, 0xA3];

fn demux_error(e: matroska_demuxer::DemuxError) -> AudioError {
    use matroska_demuxer::DemuxError as E;
    match e {
        E::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            AudioError::truncated(FORMAT, io.to_string())
        }
        E::IoError(io) => AudioError::io(FORMAT, io),
        E::ElementSizeExceedsStream { .. } => AudioError::truncated(FORMAT, e.to_string()),
        other => AudioError::corrupt(FORMAT, other.to_string()),
    }
}

/// What [`probe`] found in a Matroska file.
pub(crate) enum Probed {
    /// An Opus track: passthrough.
    Opus(Box<WebmOpusReader>),
    /// Audio in another codec (symphonia decodes it): the codec id.
    OtherCodec(String),
}

/// Opens a Matroska file and finds its first audio track.
pub(crate) fn probe(io: SeekBuf) -> Result<Probed, AudioError> {
    let file = MatroskaFile::open(io).map_err(demux_error)?;
    let Some(track) = file
        .tracks()
        .iter()
        .find(|t| t.track_type() == TrackType::Audio)
    else {
        return Err(AudioError::unsupported(FORMAT, "no audio track"));
    };
    if track.codec_id() != "A_OPUS" {
        return Ok(Probed::OtherCodec(track.codec_id().to_owned()));
    }
    let head = match track.codec_private() {
        Some(private) => OpusHead::parse(FORMAT, private)?,
        // CodecPrivate is mandatory for Opus, but the packets carry what passthrough needs.
        None => OpusHead {
            channels: track.audio().map_or(2, |a| a.channels().get().min(2) as u8),
            pre_skip: 0,
        },
    };
    let number = track.track_number().get();
    let scale = file.info().timestamp_scale().get();
    let duration = file
        .info()
        .duration()
        .filter(|d| d.is_finite() && *d >= 0.0)
        .map(|d| Duration::from_nanos((d * scale as f64) as u64));
    Ok(Probed::Opus(Box::new(WebmOpusReader {
        file,
        track: number,
        scale,
        head,
        duration,
        frame: Frame::default(),
    })))
}

/// Reads the Opus packets of one track.
pub(crate) struct WebmOpusReader {
    file: MatroskaFile<SeekBuf>,
    track: u64,
    /// Nanoseconds per timestamp tick.
    scale: u64,
    head: OpusHead,
    duration: Option<Duration>,
    frame: Frame,
}

impl PacketSource for WebmOpusReader {
    fn next_packet(&mut self) -> Result<Option<&[u8]>, AudioError> {
        loop {
            if !self.file.next_frame(&mut self.frame).map_err(demux_error)? {
                return Ok(None);
            }
            if self.frame.track == self.track {
                return Ok(Some(&self.frame.data));
            }
        }
    }

    fn seek(&mut self, to: Duration) -> Result<Duration, AudioError> {
        let ticks = (to.as_nanos() / u128::from(self.scale.max(1))) as u64;
        self.file.seek(ticks).map_err(demux_error)?;
        // The demuxer lands on the first frame at or after the target; report where that is
        // by peeking at it would need a frame buffer of its own: report the target.
        Ok(to)
    }

    fn duration(&self) -> Option<Duration> {
        self.duration
    }

    fn channels(&self) -> u8 {
        self.head.channels
    }
}
