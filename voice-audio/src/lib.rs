//! `voice-audio`: what to play into a Discord voice connection, and a player to play it.
//!
//! Runtime-independent: nothing here owns a socket or a runtime. Inputs become 20 ms Opus
//! frames; a [`Player`] mixes tracks into those frames; a [`Pump`] thread pushes them into a
//! connection's playout queue (voice-tokio's `OpusSender` with the `tokio` feature,
//! voice-std's with the `std` feature, or any [`FrameSink`]).
//!
//! # Inputs ([`Input`])
//!
//! Probed by content (the file extension is only a hint):
//!
//! | input | how it plays |
//! |---|---|
//! | Ogg Opus, WebM/Matroska Opus | **passthrough**: the packets as they are, byte for byte; packets of several 20 ms frames split into single-frame packets, frames shorter than 20 ms grouped (RFC 6716 §3.2, [`opus_packet`]); a stream with 40/60 ms SILK frames decoded and re-encoded from that point |
//! | MP3, FLAC, WAV, AAC (ADTS, MP4/M4A), Ogg Vorbis | decoded by symphonia, resampled to 48 kHz stereo, encoded to Opus |
//! | raw PCM ([`Input::raw_pcm`]: s16le or f32le, any rate and channel count) | resampled, encoded |
//! | a child process ([`Input::command`], [`Input::ffmpeg`], [`Input::yt_dlp`]) | its stdout, probed like a file; a missing program or a failing one is a typed error |
//! | a [`Source`] of the application's own | as it yields (Opus or PCM) |
//!
//! A corrupt or truncated input ends its track with [`PlayerEvent::Errored`] and a typed
//! [`AudioError`]; nothing panics on input data.
//!
//! # Opus codec
//!
//! Encoding and decoding use `opus-pure`, a pure-Rust port of libopus 1.6 (no C library, no
//! build script, nothing to install): the default build needs nothing beyond cargo. See the
//! crate README for the measured cost.
//!
//! # Received audio
//!
//! [`OggOpusWriter`] records Opus packets as they come (e.g. what a connection's receiver hands
//! out) into an Ogg Opus file. With the `receive` feature, `ReceiveDecoder` decodes received
//! items (`voice_proto::receive`) to 48 kHz stereo PCM per sender, concealing lost frames
//! (packet-loss concealment, in-band FEC when the next frame carries it).
//!
//! # Example
//!
//! ```no_run
//! use voice_audio::{Input, Player, PlayerConfig, Pump};
//!
//! let player = Player::new(PlayerConfig::default());
//! let handle = player.handle();
//! let track = handle.enqueue(Input::file("song.mp3"));
//! handle.enqueue(Input::file("speech.ogg"));
//! // `sink`: `connection.opus_send()` of voice_tokio (feature `tokio`) or voice_std (feature
//! // `std`), or any FrameSink.
//! let sink = |frame: &[u8]| -> Result<(), voice_audio::SinkClosed> { let _ = frame; Ok(()) };
//! let pump = Pump::spawn(player, sink, |event| println!("{event:?}"))?;
//! track.set_volume(0.5);
//! println!("{:?} of {:?}", track.position(), track.duration());
//! # let _ = pump;
//! # Ok::<(), std::io::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "std")]
mod blocking;
mod codec;
mod decode;
mod error;
mod input;
mod ogg;
mod ogg_writer;
pub mod opus_packet;
mod pcm;
mod player;
mod process;
mod pump;
mod pump_pool;
#[cfg(feature = "receive")]
mod receive;
mod seekbuf;
mod source;
#[cfg(feature = "tokio")]
mod tokio;
mod webm;

pub use codec::{
    Application, Decoder, Encoder, EncoderConfig, FRAME_PCM_LEN, FRAME_SAMPLES, SAMPLE_RATE,
};
pub use error::AudioError;
pub use input::Input;
pub use ogg::write as ogg_write;
pub use ogg_writer::OggOpusWriter;
pub use pcm::{PcmFormat, SampleFormat};
pub use player::{
    EndReason, LoopMode, Player, PlayerConfig, PlayerEvent, PlayerHandle, TrackHandle, TrackId,
    TrackState, FRAME_DURATION,
};
pub use pump::{FrameSink, Pump, SinkClosed};
pub use pump_pool::{PooledPump, PumpPool, DEFAULT_INTERVAL as POOL_INTERVAL};
#[cfg(feature = "receive")]
pub use receive::{ReceiveDecoder, MAX_CONCEALED_FRAMES};
pub use source::{Chunk, FrameBuf, Source};
