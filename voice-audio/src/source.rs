//! What a track plays from: a [`Source`] yields 20 ms units, either an Opus packet ready to
//! send (passthrough) or 48 kHz stereo PCM (to be mixed and encoded).

use std::time::Duration;

use crate::codec::{Decoder, PcmFifo, Resampler, FRAME_PCM_LEN, MAX_PACKET_SAMPLES, SAMPLE_RATE};
use crate::error::AudioError;
use crate::opus_packet::{ReframeError, Reframer, MAX_PACKET_BYTES};

/// One 20 ms unit, written by a [`Source`] into the caller's buffers (no allocation).
#[derive(Debug, Clone)]
pub struct FrameBuf {
    opus: [u8; MAX_PACKET_BYTES],
    opus_len: usize,
    pcm: [f32; FRAME_PCM_LEN],
}

impl Default for FrameBuf {
    fn default() -> Self {
        FrameBuf {
            opus: [0; MAX_PACKET_BYTES],
            opus_len: 0,
            pcm: [0.0; FRAME_PCM_LEN],
        }
    }
}

impl FrameBuf {
    /// The Opus packet of the last [`Chunk::Opus`].
    pub fn opus(&self) -> &[u8] {
        &self.opus[..self.opus_len.min(MAX_PACKET_BYTES)]
    }

    /// Stores an Opus packet (1..=1275 bytes of exactly 20 ms); returns false, storing nothing,
    /// when it is empty or too long.
    pub fn set_opus(&mut self, packet: &[u8]) -> bool {
        match self.opus.get_mut(..packet.len()) {
            Some(slot) if !packet.is_empty() => {
                slot.copy_from_slice(packet);
                self.opus_len = packet.len();
                true
            }
            _ => false,
        }
    }

    /// Room for a packet of up to 1275 bytes; follow with [`set_opus_len`](Self::set_opus_len).
    pub fn opus_mut(&mut self) -> &mut [u8; MAX_PACKET_BYTES] {
        &mut self.opus
    }

    /// The length of the packet written through [`opus_mut`](Self::opus_mut).
    pub fn set_opus_len(&mut self, len: usize) {
        self.opus_len = len.min(MAX_PACKET_BYTES);
    }

    /// The PCM of the last [`Chunk::Pcm`]: 960 interleaved stereo samples at 48 kHz.
    pub fn pcm(&self) -> &[f32; FRAME_PCM_LEN] {
        &self.pcm
    }

    /// The PCM to fill for a [`Chunk::Pcm`].
    pub fn pcm_mut(&mut self) -> &mut [f32; FRAME_PCM_LEN] {
        &mut self.pcm
    }
}

/// What [`Source::read`] wrote into the [`FrameBuf`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// A 20 ms Opus packet, in [`FrameBuf::opus`].
    Opus,
    /// 20 ms of 48 kHz stereo PCM, in [`FrameBuf::pcm`].
    Pcm,
}

/// A track's audio, 20 ms at a time. Implemented by every input of this crate; an application
/// can implement it for audio of its own (synthesised, received, ...) and play it with
/// [`Input::source`](crate::Input::source).
pub trait Source: Send {
    /// Writes the next 20 ms into `buf`; `Ok(None)` at the end. An error ends the track.
    fn read(&mut self, buf: &mut FrameBuf) -> Result<Option<Chunk>, AudioError>;

    /// Moves to `to` (or the nearest point before it the input allows); returns the position
    /// reached. The default cannot seek.
    fn seek(&mut self, to: Duration) -> Result<Duration, AudioError> {
        let _ = to;
        Err(AudioError::NotSeekable)
    }

    /// The total duration, when known.
    fn duration(&self) -> Option<Duration> {
        None
    }

    /// A short description for logs and progress lines ("Ogg Opus, passthrough").
    fn describe(&self) -> String;
}

impl<P: PacketSource + ?Sized> PacketSource for Box<P> {
    fn next_packet(&mut self) -> Result<Option<&[u8]>, AudioError> {
        (**self).next_packet()
    }
    fn seek(&mut self, to: Duration) -> Result<Duration, AudioError> {
        (**self).seek(to)
    }
    fn duration(&self) -> Option<Duration> {
        (**self).duration()
    }
    fn channels(&self) -> u8 {
        (**self).channels()
    }
}

impl Source for Box<dyn Source> {
    fn read(&mut self, buf: &mut FrameBuf) -> Result<Option<Chunk>, AudioError> {
        (**self).read(buf)
    }
    fn seek(&mut self, to: Duration) -> Result<Duration, AudioError> {
        (**self).seek(to)
    }
    fn duration(&self) -> Option<Duration> {
        (**self).duration()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// A demuxer of Opus packets (Ogg, WebM).
pub(crate) trait PacketSource: Send {
    /// The next Opus packet (any framing); `Ok(None)` at the end.
    fn next_packet(&mut self) -> Result<Option<&[u8]>, AudioError>;
    /// Moves so the next packet is the one containing `to`; returns that packet's start.
    fn seek(&mut self, to: Duration) -> Result<Duration, AudioError>;
    fn duration(&self) -> Option<Duration>;
    fn channels(&self) -> u8;
}

/// Opus packets to 20 ms units: passed through byte-exact (repacketized where the framing
/// asks for it, see [`Reframer`]); from the first packet that cannot be split without
/// decoding (a 40 or 60 ms SILK frame, ...) to the end of the track, decoded to PCM instead
/// (the player re-encodes it).
pub(crate) struct OpusStream<P> {
    packets: P,
    format: &'static str,
    reframer: Reframer,
    decoding: bool,
    decoder: Option<Decoder>,
    fifo: PcmFifo,
    scratch: Vec<f32>,
    partial: [u8; MAX_PACKET_BYTES],
    ended: bool,
}

impl<P: PacketSource> OpusStream<P> {
    pub(crate) fn new(packets: P, format: &'static str) -> Self {
        OpusStream {
            packets,
            format,
            reframer: Reframer::new(),
            decoding: false,
            decoder: None,
            fifo: PcmFifo::default(),
            scratch: Vec::new(),
            partial: [0; MAX_PACKET_BYTES],
            ended: false,
        }
    }
}

fn decode_into(
    decoder: &mut Option<Decoder>,
    scratch: &mut Vec<f32>,
    fifo: &mut PcmFifo,
    packet: &[u8],
) -> Result<(), AudioError> {
    let decoder = match decoder {
        Some(d) => d,
        None => decoder.insert(Decoder::new()?),
    };
    scratch.resize(2 * MAX_PACKET_SAMPLES, 0.0);
    let samples = decoder.decode(packet, scratch)?;
    fifo.push(scratch.get(..2 * samples).unwrap_or_default());
    Ok(())
}

impl<P: PacketSource> Source for OpusStream<P> {
    fn read(&mut self, buf: &mut FrameBuf) -> Result<Option<Chunk>, AudioError> {
        loop {
            if !self.decoding {
                if let Some(n) = self.reframer.pop(buf.opus_mut()) {
                    buf.set_opus_len(n);
                    return Ok(Some(Chunk::Opus));
                }
            } else if self.fifo.take(buf.pcm_mut(), self.ended) {
                return Ok(Some(Chunk::Pcm));
            }
            if self.ended {
                return Ok(None);
            }
            let Self {
                packets,
                reframer,
                decoding,
                decoder,
                fifo,
                scratch,
                partial,
                format,
                ..
            } = self;
            let Some(packet) = packets.next_packet()? else {
                self.ended = true;
                continue;
            };
            if *decoding {
                decode_into(decoder, scratch, fifo, packet)?;
                continue;
            }
            match reframer.push(packet) {
                Ok(()) => {}
                Err(ReframeError::Malformed(e)) => {
                    return Err(AudioError::corrupt(format, e.to_string()));
                }
                Err(why) => {
                    tracing::debug!(%why, "Opus passthrough switches to decoding");
                    *decoding = true;
                    if let Some(n) = reframer.take_partial(partial) {
                        decode_into(decoder, scratch, fifo, &partial[..n])?;
                    }
                    decode_into(decoder, scratch, fifo, packet)?;
                }
            }
        }
    }

    fn seek(&mut self, to: Duration) -> Result<Duration, AudioError> {
        let at = self.packets.seek(to)?;
        self.reframer.reset();
        self.fifo.clear();
        if let Some(d) = &mut self.decoder {
            d.reset();
        }
        self.ended = false;
        Ok(at)
    }

    fn duration(&self) -> Option<Duration> {
        self.packets.duration()
    }

    fn describe(&self) -> String {
        let channels = if self.packets.channels() == 1 {
            "mono"
        } else {
            "stereo"
        };
        if self.decoding {
            format!(
                "{}, {channels}, re-encoded (frames longer than 20 ms)",
                self.format
            )
        } else {
            format!("{}, {channels}, passthrough", self.format)
        }
    }
}

/// A decoder of PCM at any rate and channel count (symphonia, raw PCM).
pub(crate) trait PcmSource: Send {
    /// The next block of interleaved samples, with its channel count and rate; `Ok(None)` at
    /// the end.
    fn next_block(&mut self) -> Result<Option<PcmBlock<'_>>, AudioError>;
    fn seek(&mut self, to: Duration) -> Result<Duration, AudioError>;
    fn duration(&self) -> Option<Duration>;
    fn describe(&self) -> String;
}

/// Interleaved samples from a [`PcmSource`].
pub(crate) struct PcmBlock<'a> {
    pub(crate) samples: &'a [f32],
    pub(crate) channels: usize,
    pub(crate) rate: u32,
}

/// PCM of any rate and channel count to 20 ms units of 48 kHz stereo.
pub(crate) struct PcmStream<P> {
    input: P,
    resampler: Option<Resampler>,
    stereo: Vec<f32>,
    fifo: PcmFifo,
    ended: bool,
}

impl<P: PcmSource> PcmStream<P> {
    pub(crate) fn new(input: P) -> Self {
        PcmStream {
            input,
            resampler: None,
            stereo: Vec::new(),
            fifo: PcmFifo::default(),
            ended: false,
        }
    }
}

impl<P: PcmSource> Source for PcmStream<P> {
    fn read(&mut self, buf: &mut FrameBuf) -> Result<Option<Chunk>, AudioError> {
        loop {
            if self.fifo.take(buf.pcm_mut(), self.ended) {
                return Ok(Some(Chunk::Pcm));
            }
            if self.ended {
                return Ok(None);
            }
            match self.input.next_block()? {
                None => {
                    self.ended = true;
                    if let Some(r) = &mut self.resampler {
                        r.process(&[], true, &mut self.fifo);
                    }
                }
                Some(block) => {
                    crate::codec::to_stereo(block.samples, block.channels, &mut self.stereo);
                    if block.rate == SAMPLE_RATE {
                        self.fifo.push(&self.stereo);
                    } else {
                        let resampler = match &mut self.resampler {
                            Some(r) if r.in_rate() == block.rate => r,
                            slot => slot.insert(Resampler::new(block.rate)),
                        };
                        resampler.process(&self.stereo, false, &mut self.fifo);
                    }
                }
            }
        }
    }

    fn seek(&mut self, to: Duration) -> Result<Duration, AudioError> {
        let at = self.input.seek(to)?;
        self.fifo.clear();
        if let Some(r) = &mut self.resampler {
            r.reset();
        }
        self.ended = false;
        Ok(at)
    }

    fn duration(&self) -> Option<Duration> {
        self.input.duration()
    }

    fn describe(&self) -> String {
        self.input.describe()
    }
}
