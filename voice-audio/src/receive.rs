//! Decoding received audio (feature `receive`): the items a connection's receiver hands out
//! (`voice_proto::receive`) to 48 kHz stereo PCM, with packet-loss concealment for what was lost.

use voice_proto::receive::{Item, Received};

use crate::codec::{Decoder, MAX_PACKET_SAMPLES};
use crate::error::AudioError;

/// Frames of a loss that are concealed at most (100 ms); the rest of a longer loss is skipped
/// (concealment of a long gap is noise, not speech).
pub const MAX_CONCEALED_FRAMES: u32 = 5;

/// Senders whose decoder state is kept at once (the least recently used is forgotten).
const DECODERS: usize = 16;

/// Decodes received items, one Opus decoder per sender (SSRC), to 48 kHz interleaved stereo
/// `f32` PCM.
///
/// - [`Item::Frame`]: its PCM (960 samples per channel for Discord's 20 ms frames).
/// - [`Item::Lost`]: nothing yet; the next frame of that sender first gets the missing frames
///   concealed (at most [`MAX_CONCEALED_FRAMES`]), the last of them rebuilt from the frame's
///   in-band forward error correction when it carries any, then its own 20 ms. A loss right before
///   the end of a spurt is not concealed.
/// - [`Item::SpurtStarted`], [`Item::SpurtEnded`]: nothing.
///
/// A frame that does not decode is an error (nothing appended); the stream goes on with the next.
pub struct ReceiveDecoder {
    /// (SSRC, decoder, frames lost before its next frame), most recently used last.
    decoders: Vec<(u32, Decoder, u32)>,
    pcm: Vec<f32>,
}

impl std::fmt::Debug for ReceiveDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiveDecoder")
            .field("senders", &self.decoders.len())
            .finish_non_exhaustive()
    }
}

impl Default for ReceiveDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ReceiveDecoder {
    /// A decoder with no sender yet.
    pub fn new() -> Self {
        Self {
            decoders: Vec::new(),
            pcm: vec![0.0; 2 * MAX_PACKET_SAMPLES],
        }
    }

    /// Decodes one item, appending its PCM to `out`; returns the samples per channel appended.
    pub fn decode(&mut self, received: &Received, out: &mut Vec<f32>) -> Result<usize, AudioError> {
        match &received.item {
            Item::Frame(frame) => {
                let (_, decoder, lost) = entry(&mut self.decoders, received.ssrc)?;
                let mut appended = 0;
                let concealed = std::mem::take(lost).min(MAX_CONCEALED_FRAMES);
                for i in 0..concealed {
                    let samples = if i + 1 == concealed {
                        decoder.decode_fec(&frame.opus, &mut self.pcm)?
                    } else {
                        decoder.conceal(&mut self.pcm)?
                    };
                    appended += append(out, &self.pcm, samples);
                }
                let samples = decoder.decode(&frame.opus, &mut self.pcm)?;
                Ok(appended + append(out, &self.pcm, samples))
            }
            Item::Lost { count, .. } => {
                let (_, _, lost) = entry(&mut self.decoders, received.ssrc)?;
                *lost = lost.saturating_add(*count);
                Ok(0)
            }
            Item::SpurtEnded(_) => {
                if let Some(entry) = self.decoders.iter_mut().find(|e| e.0 == received.ssrc) {
                    entry.2 = 0;
                }
                Ok(0)
            }
            _ => Ok(0),
        }
    }
}

/// The entry of `ssrc` (its decoder made on first use), moved to the most recently used place.
fn entry(
    decoders: &mut Vec<(u32, Decoder, u32)>,
    ssrc: u32,
) -> Result<&mut (u32, Decoder, u32), AudioError> {
    let entry = match decoders.iter().position(|e| e.0 == ssrc) {
        Some(at) => decoders.remove(at),
        None => {
            if decoders.len() >= DECODERS {
                decoders.remove(0);
            }
            (ssrc, Decoder::new()?, 0)
        }
    };
    decoders.push(entry);
    decoders
        .last_mut()
        .ok_or_else(|| AudioError::Codec("no decoder".into()))
}

fn append(out: &mut Vec<f32>, pcm: &[f32], samples: usize) -> usize {
    let samples = samples.min(pcm.len() / 2);
    out.extend_from_slice(pcm.get(..samples * 2).unwrap_or_default());
    samples
}
