//! The player: tracks, a queue, mixing, and the 20 ms Opus frames a connection sends.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use crate::codec::{soft_clip, Decoder, Encoder, EncoderConfig, FRAME_PCM_LEN, MAX_PACKET_SAMPLES};
use crate::error::AudioError;
use crate::input::Input;
use crate::opus_packet::MAX_PACKET_BYTES;
use crate::source::{Chunk, FrameBuf, Source};

mod handle;

use handle::{Command, Control, TrackShared};
pub use handle::{
    EndReason, LoopMode, PlayerEvent, PlayerHandle, TrackHandle, TrackId, TrackState,
};

/// One frame: 20 ms.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);

/// How a [`Player`] encodes and reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlayerConfig {
    /// The Opus encoder for everything that is not passed through.
    pub encoder: EncoderConfig,
    /// How often each playing track reports [`PlayerEvent::Position`] (in track time);
    /// `Duration::ZERO` turns the events off. Default 1 s.
    pub position_interval: Duration,
}

impl Default for PlayerConfig {
    fn default() -> Self {
        PlayerConfig {
            encoder: EncoderConfig::default(),
            position_interval: Duration::from_secs(1),
        }
    }
}

struct Track {
    id: TrackId,
    input: Input,
    source: Option<Box<dyn Source>>,
    shared: Arc<TrackShared>,
    /// In the sequential queue (else mixed).
    queued: bool,
    paused: bool,
    volume: f32,
    /// The gain applied at the end of the last frame (ramps to `volume`).
    applied: f32,
    looping: LoopMode,
    frames: u64,
    seek_to: Option<Duration>,
    decoder: Option<Decoder>,
    buf: Box<FrameBuf>,
    ended: bool,
}

impl Track {
    fn set_state(&self, state: TrackState) {
        self.shared.state.store(state.to_u8(), Ordering::Relaxed);
    }

    fn set_frames(&mut self, frames: u64) {
        self.frames = frames;
        self.shared.frames.store(frames, Ordering::Relaxed);
    }
}

/// How the frame in `Player::out` was made.
enum Frame {
    Passthrough,
    Encoded,
}

/// What one track contributed to a frame.
enum Produced {
    Opus,
    Pcm,
    /// Ended or failed (already reported); nothing this frame.
    Gone,
}

/// Tracks, a queue and a mixer producing 20 ms Opus frames.
///
/// [`Player::next_frame`] is the whole engine: every call is 20 ms of audio (the caller is the
/// clock), so it runs the same in a test, on a thread ([`Pump`](crate::Pump)) or in an
/// application's own loop. Control goes through cloneable handles ([`PlayerHandle`],
/// [`TrackHandle`]) usable from any thread; their commands take effect at the next frame.
///
/// - The **queue** plays one track after another ([`PlayerHandle::enqueue`]); tracks started
///   with [`PlayerHandle::play`] play at once, **mixed** with the queue and each other.
/// - **Passthrough**: while exactly one track plays, its input yields Opus and its volume is
///   1.0, its packets go out as they are (no decode, no encode, no allocation). Otherwise every
///   playing track is decoded to PCM, scaled by its volume (ramped over one frame when it
///   changes), summed, soft-clipped and encoded once.
/// - A **paused** track produces nothing; when nothing plays, `next_frame` returns `None` at
///   once and a pump sleeps until a command comes: an idle player costs nothing per 20 ms.
pub struct Player {
    config: PlayerConfig,
    control: Arc<Control>,
    tracks: Vec<Track>,
    encoder: Option<Encoder>,
    /// The encoder's state continues the last frame (false after passthrough or silence).
    encoder_warm: bool,
    mix: Box<[f32; FRAME_PCM_LEN]>,
    decoded: Vec<f32>,
    out: [u8; MAX_PACKET_BYTES],
    out_len: usize,
    events: VecDeque<PlayerEvent>,
    was_busy: bool,
    position_every: u64,
    /// Reused list of the tracks playing this frame.
    ready: Vec<usize>,
}

impl std::fmt::Debug for Player {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Player")
            .field("tracks", &self.tracks.len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Default for Player {
    fn default() -> Self {
        Self::new(PlayerConfig::default())
    }
}

impl Player {
    /// A player with no tracks.
    pub fn new(config: PlayerConfig) -> Self {
        let interval = config.position_interval.as_millis() / FRAME_DURATION.as_millis();
        Player {
            config,
            control: Arc::default(),
            tracks: Vec::new(),
            encoder: None,
            encoder_warm: false,
            mix: Box::new([0.0; FRAME_PCM_LEN]),
            decoded: vec![0.0; 2 * MAX_PACKET_SAMPLES],
            out: [0; MAX_PACKET_BYTES],
            out_len: 0,
            events: VecDeque::new(),
            was_busy: false,
            ready: Vec::with_capacity(8),
            position_every: u64::try_from(interval).unwrap_or(u64::MAX),
        }
    }

    /// A handle to control this player from anywhere.
    pub fn handle(&self) -> PlayerHandle {
        PlayerHandle {
            control: Arc::clone(&self.control),
        }
    }

    /// [`PlayerHandle::enqueue`].
    pub fn enqueue(&self, input: Input) -> TrackHandle {
        self.handle().enqueue(input)
    }

    /// [`PlayerHandle::play`].
    pub fn play(&self, input: Input) -> TrackHandle {
        self.handle().play(input)
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<PlayerEvent> {
        self.events.pop_front()
    }

    /// Whether nothing plays and no command waits: [`next_frame`](Self::next_frame) would
    /// return `None` at once.
    pub fn is_idle(&self) -> bool {
        let pending = !self
            .control
            .commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty();
        !pending && !self.tracks.iter().any(|t| self.is_active(t))
    }

    /// Tracks that exist (queued, playing or paused).
    pub fn track_count(&self) -> usize {
        self.tracks.len()
    }

    fn is_queue_head(&self, track: &Track) -> bool {
        self.tracks
            .iter()
            .find(|t| t.queued && !t.ended)
            .map(|t| t.id)
            == Some(track.id)
    }

    fn is_active(&self, track: &Track) -> bool {
        !track.paused && !track.ended && (!track.queued || self.is_queue_head(track))
    }

    fn apply_commands(&mut self) {
        let commands: Vec<Command> = {
            let mut queue = self
                .control
                .commands
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if queue.is_empty() {
                return;
            }
            queue.drain(..).collect()
        };
        for command in commands {
            self.apply(command);
        }
    }

    fn track_mut(&mut self, id: TrackId) -> Option<&mut Track> {
        self.tracks.iter_mut().find(|t| t.id == id && !t.ended)
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Add {
                id,
                input,
                shared,
                queued,
            } => self.tracks.push(Track {
                id,
                input,
                source: None,
                shared,
                queued,
                paused: false,
                volume: 1.0,
                applied: 1.0,
                looping: LoopMode::Off,
                frames: 0,
                seek_to: None,
                decoder: None,
                buf: Box::default(),
                ended: false,
            }),
            Command::Pause(id) => {
                if let Some(t) = self.track_mut(id) {
                    t.paused = true;
                    t.set_state(TrackState::Paused);
                }
            }
            Command::Resume(id) => {
                let Some(index) = self.tracks.iter().position(|t| t.id == id && !t.ended) else {
                    return;
                };
                let head = self.is_queue_head(&self.tracks[index]);
                let t = &mut self.tracks[index];
                t.paused = false;
                let state = if t.queued && !head {
                    TrackState::Queued
                } else {
                    TrackState::Playing
                };
                t.set_state(state);
            }
            Command::Stop(id) => self.end(id, EndReason::Stopped),
            Command::Seek(id, to) => {
                if let Some(t) = self.track_mut(id) {
                    t.seek_to = Some(to);
                }
            }
            Command::Volume(id, volume) => {
                if let Some(t) = self.track_mut(id) {
                    t.volume = if volume.is_finite() {
                        volume.clamp(0.0, 4.0)
                    } else {
                        1.0
                    };
                }
            }
            Command::Loop(id, mode) => {
                if let Some(t) = self.track_mut(id) {
                    t.looping = mode;
                }
            }
            Command::Skip => {
                if let Some(id) = self
                    .tracks
                    .iter()
                    .find(|t| t.queued && !t.ended)
                    .map(|t| t.id)
                {
                    self.end(id, EndReason::Skipped);
                }
            }
            Command::StopAll => {
                let ids: Vec<TrackId> = self.tracks.iter().map(|t| t.id).collect();
                for id in ids {
                    self.end(id, EndReason::Stopped);
                }
            }
        }
    }

    /// Ends a track with an event (once).
    fn end(&mut self, id: TrackId, reason: EndReason) {
        if let Some(t) = self.track_mut(id) {
            t.ended = true;
            t.set_state(TrackState::Ended);
            t.source = None;
            self.events
                .push_back(PlayerEvent::Ended { track: id, reason });
        }
    }

    fn fail(&mut self, index: usize, error: AudioError) {
        if let Some(t) = self.tracks.get_mut(index) {
            if !t.ended {
                t.ended = true;
                t.set_state(TrackState::Ended);
                t.source = None;
                tracing::debug!(track = t.id.0, %error, "track failed");
                self.events
                    .push_back(PlayerEvent::Errored { track: t.id, error });
            }
        }
    }

    /// Removes ended tracks; reports `Idle` when the last one went.
    fn sweep(&mut self) {
        self.tracks.retain(|t| !t.ended);
        for i in 0..self.tracks.len() {
            let head = self.is_queue_head(&self.tracks[i]);
            let t = &self.tracks[i];
            if t.queued && head && !t.paused && t.shared.state.load(Ordering::Relaxed) == 0 {
                t.set_state(TrackState::Playing);
            }
        }
        let busy = !self.tracks.is_empty();
        if self.was_busy && !busy {
            self.events.push_back(PlayerEvent::Idle);
        }
        self.was_busy = busy;
    }

    /// Opens a track's input if needed and applies a pending seek. False when it failed.
    fn prepare(&mut self, index: usize) -> bool {
        let Some(t) = self.tracks.get_mut(index) else {
            return false;
        };
        if t.source.is_none() {
            match t.input.open() {
                Ok(source) => {
                    let duration = source.duration();
                    t.shared.duration_ns.store(
                        duration.map_or(u64::MAX, |d| {
                            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1)
                        }),
                        Ordering::Relaxed,
                    );
                    self.events.push_back(PlayerEvent::Started {
                        track: t.id,
                        description: source.describe(),
                        duration,
                    });
                    t.source = Some(source);
                    t.set_state(TrackState::Playing);
                }
                Err(error) => {
                    self.fail(index, error);
                    return false;
                }
            }
        }
        if let (Some(to), Some(source)) = (t.seek_to.take(), t.source.as_mut()) {
            match source.seek(to) {
                Ok(at) => {
                    let frames = (at.as_nanos() / FRAME_DURATION.as_nanos()) as u64;
                    t.set_frames(frames);
                    if let Some(d) = &mut t.decoder {
                        d.reset();
                    }
                    self.events.push_back(PlayerEvent::Seeked {
                        track: t.id,
                        position: at,
                    });
                }
                Err(error) => self
                    .events
                    .push_back(PlayerEvent::SeekFailed { track: t.id, error }),
            }
        }
        true
    }

    /// Reads the next 20 ms of track `index` into its buffer, looping or ending it at its end.
    fn read_track(&mut self, index: usize) -> Produced {
        for _ in 0..3 {
            let Some(t) = self.tracks.get_mut(index) else {
                return Produced::Gone;
            };
            let Some(source) = t.source.as_mut() else {
                return Produced::Gone;
            };
            match source.read(&mut t.buf) {
                Ok(Some(chunk)) => {
                    let frames = t.frames + 1;
                    t.set_frames(frames);
                    if self.position_every > 0 && frames % self.position_every == 0 {
                        self.events.push_back(PlayerEvent::Position {
                            track: t.id,
                            position: FRAME_DURATION * frames as u32,
                        });
                    }
                    return match chunk {
                        Chunk::Opus => Produced::Opus,
                        Chunk::Pcm => Produced::Pcm,
                    };
                }
                Ok(None) => {
                    let again = match t.looping {
                        LoopMode::Off => false,
                        LoopMode::Forever => true,
                        LoopMode::Times(n) => {
                            t.looping = if n > 1 {
                                LoopMode::Times(n - 1)
                            } else {
                                LoopMode::Off
                            };
                            n > 0
                        }
                    };
                    if !again || t.frames == 0 {
                        let id = t.id;
                        self.end(id, EndReason::Finished);
                        return Produced::Gone;
                    }
                    let restarted = match source.seek(Duration::ZERO) {
                        Ok(_) => Ok(()),
                        Err(_) => t.input.open().map(|s| t.source = Some(s)),
                    };
                    if let Err(error) = restarted {
                        self.fail(index, error);
                        return Produced::Gone;
                    }
                    t.set_frames(0);
                    if let Some(d) = &mut t.decoder {
                        d.reset();
                    }
                    self.events.push_back(PlayerEvent::Looped { track: t.id });
                }
                Err(error) => {
                    self.fail(index, error);
                    return Produced::Gone;
                }
            }
        }
        Produced::Gone
    }

    /// Adds track `index`'s frame, at its volume, to the mix. False when it has nothing.
    fn mix_track(&mut self, index: usize, produced: Produced) -> Result<bool, AudioError> {
        let Some(t) = self.tracks.get_mut(index) else {
            return Ok(false);
        };
        let pcm: &[f32] = match produced {
            Produced::Gone => return Ok(false),
            Produced::Pcm => t.buf.pcm(),
            Produced::Opus => {
                let decoder = match &mut t.decoder {
                    Some(d) => d,
                    slot => slot.insert(Decoder::new()?),
                };
                let samples = decoder.decode(t.buf.opus(), &mut self.decoded)?;
                self.decoded
                    .get(..2 * samples.min(FRAME_PCM_LEN / 2))
                    .unwrap_or_default()
            }
        };
        let from = t.applied;
        let to = t.volume;
        let n = (pcm.len() / 2).max(1) as f32;
        for (i, (m, pair)) in self
            .mix
            .chunks_exact_mut(2)
            .zip(pcm.chunks_exact(2))
            .enumerate()
        {
            let gain = from + (to - from) * (i as f32 + 1.0) / n;
            m[0] += pair[0] * gain;
            m[1] += pair[1] * gain;
        }
        t.applied = to;
        Ok(true)
    }

    /// The next 20 ms Opus frame, or `None` when nothing plays (see [`Player`]). Opening an
    /// input happens here, on the caller's thread, when its track
    /// starts.
    pub fn next_frame(&mut self) -> Option<&[u8]> {
        self.apply_commands();
        // Tracks that end during this call leave their place to the next in the queue at once.
        let mut ready = std::mem::take(&mut self.ready);
        let frame = self.produce(&mut ready);
        self.ready = ready;
        match frame {
            Some(Frame::Passthrough) | Some(Frame::Encoded) => Some(&self.out[..self.out_len]),
            None => None,
        }
    }

    /// One frame into `self.out`; `ready` is a reused list of track indexes.
    fn produce(&mut self, ready: &mut Vec<usize>) -> Option<Frame> {
        // Tracks that end during this call leave their place to the next in the queue at once.
        for _ in 0..64 {
            self.sweep();
            ready.clear();
            for i in 0..self.tracks.len() {
                if self.is_active(&self.tracks[i]) && self.prepare(i) {
                    ready.push(i);
                }
            }
            if ready.is_empty() {
                if self.tracks.iter().any(|t| self.is_active(t)) {
                    continue; // some failed to open: the next in the queue may play
                }
                self.encoder_warm = false;
                return None;
            }
            // Passthrough: one track, gain 1.0, Opus from its input.
            if let [only] = ready[..] {
                let unity = self
                    .tracks
                    .get(only)
                    .is_some_and(|t| t.volume == 1.0 && t.applied == 1.0);
                if unity {
                    match self.read_track(only) {
                        Produced::Opus => {
                            let packet = self.tracks[only].buf.opus();
                            self.out[..packet.len()].copy_from_slice(packet);
                            self.out_len = packet.len();
                            self.encoder_warm = false;
                            return Some(Frame::Passthrough);
                        }
                        Produced::Pcm => {
                            self.mix.fill(0.0);
                            if let Err(e) = self.mix_track(only, Produced::Pcm) {
                                self.fail(only, e);
                                continue;
                            }
                            return self.encode_mix();
                        }
                        Produced::Gone => continue,
                    }
                }
            }
            self.mix.fill(0.0);
            let mut any = false;
            for &i in ready.iter() {
                let produced = self.read_track(i);
                match self.mix_track(i, produced) {
                    Ok(contributed) => any |= contributed,
                    Err(e) => self.fail(i, e),
                }
            }
            if any {
                return self.encode_mix();
            }
        }
        None
    }

    fn encode_mix(&mut self) -> Option<Frame> {
        soft_clip(&mut self.mix[..]);
        if self.encoder.is_none() {
            match Encoder::new(self.config.encoder) {
                Ok(e) => self.encoder = Some(e),
                Err(error) => {
                    tracing::warn!(%error, "no Opus encoder");
                    return None;
                }
            }
        }
        let encoder = self.encoder.as_mut()?;
        if !self.encoder_warm {
            encoder.reset();
        }
        match encoder.encode(&self.mix, &mut self.out) {
            Ok(n) => {
                self.out_len = n;
                self.encoder_warm = true;
                Some(Frame::Encoded)
            }
            Err(error) => {
                tracing::warn!(%error, "encoding a frame failed");
                None
            }
        }
    }
}
