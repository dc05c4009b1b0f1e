//! What the application holds of a player: track ids, states and events, and the handles that
//! send commands to it from any thread.

use super::*;

/// A track's identity within its player.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u64);

impl std::fmt::Display for TrackId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "track {}", self.0)
    }
}

/// Where a track is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrackState {
    /// In the queue behind the track that plays.
    Queued,
    /// Playing (or about to: its input is opened at the next frame).
    Playing,
    /// Paused: produces nothing, holds its position (and the queue behind it).
    Paused,
    /// Over (finished, stopped, skipped or failed).
    Ended,
}

impl TrackState {
    pub(super) fn to_u8(self) -> u8 {
        match self {
            TrackState::Queued => 0,
            TrackState::Playing => 1,
            TrackState::Paused => 2,
            TrackState::Ended => 3,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => TrackState::Queued,
            1 => TrackState::Playing,
            2 => TrackState::Paused,
            _ => TrackState::Ended,
        }
    }
}

/// How many times a track plays again after its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoopMode {
    /// Once (the default).
    #[default]
    Off,
    /// This many more times.
    Times(u32),
    /// Until stopped.
    Forever,
}

/// Why a track ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// Its input ended (after its loops).
    Finished,
    /// [`TrackHandle::stop`] or [`PlayerHandle::stop_all`].
    Stopped,
    /// [`PlayerHandle::skip`].
    Skipped,
}

/// What happened to the tracks. Each track sends `Started` once it opens (or `Errored` if it
/// cannot), then ends with exactly one `Ended` or `Errored`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PlayerEvent {
    /// The track's input opened and plays.
    Started {
        /// The track.
        track: TrackId,
        /// What its input turned out to be ("Ogg Opus, stereo, passthrough", "mp3, ...").
        description: String,
        /// Its duration, when known.
        duration: Option<Duration>,
    },
    /// The track's position, every [`PlayerConfig::position_interval`] of its audio.
    Position {
        /// The track.
        track: TrackId,
        /// Where it is.
        position: Duration,
    },
    /// A seek landed (at the nearest point the input allows at or before the target).
    Seeked {
        /// The track.
        track: TrackId,
        /// Where it is now.
        position: Duration,
    },
    /// A seek could not be done; the track plays on from where it was.
    SeekFailed {
        /// The track.
        track: TrackId,
        /// Why (for instance [`AudioError::NotSeekable`]).
        error: AudioError,
    },
    /// The track started again from the beginning ([`LoopMode`]).
    Looped {
        /// The track.
        track: TrackId,
    },
    /// The track ended.
    Ended {
        /// The track.
        track: TrackId,
        /// Why.
        reason: EndReason,
    },
    /// The track ended on an error: its input could not be opened, read or decoded (a missing
    /// file, a corrupt or truncated one, a program that failed).
    Errored {
        /// The track.
        track: TrackId,
        /// What went wrong.
        error: AudioError,
    },
    /// No track is left (all ended); the player produces nothing until one is added.
    Idle,
}

/// The part of a track its handles read without asking the player.
#[derive(Debug)]
pub(super) struct TrackShared {
    /// Position in frames.
    pub(super) frames: AtomicU64,
    /// Duration in nanoseconds, `u64::MAX` when unknown.
    pub(super) duration_ns: AtomicU64,
    pub(super) state: AtomicU8,
}

pub(super) enum Command {
    Add {
        id: TrackId,
        input: Input,
        shared: Arc<TrackShared>,
        queued: bool,
    },
    Pause(TrackId),
    Resume(TrackId),
    Stop(TrackId),
    Seek(TrackId, Duration),
    Volume(TrackId, f32),
    Loop(TrackId, LoopMode),
    Skip,
    StopAll,
}

#[derive(Default)]
pub(super) struct Control {
    pub(super) commands: Mutex<VecDeque<Command>>,
    pub(super) work: Condvar,
    /// A pool thread serving this player, woken by every command.
    pub(super) waker: Mutex<Option<std::thread::Thread>>,
    pub(super) next_id: AtomicU64,
    pub(super) closed: AtomicBool,
}

/// Controls a [`Player`] from any thread (cheap to clone). Commands take effect at the
/// player's next frame and wake a pump that sleeps.
#[derive(Clone)]
pub struct PlayerHandle {
    pub(super) control: Arc<Control>,
}

impl std::fmt::Debug for PlayerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlayerHandle").finish_non_exhaustive()
    }
}

impl PlayerHandle {
    fn send(&self, command: Command) {
        self.control
            .commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(command);
        self.control.work.notify_all();
        self.wake_pool();
    }

    /// Wakes the pool thread serving this player, if any.
    fn wake_pool(&self) {
        let waker = self
            .control
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(thread) = waker.as_ref() {
            thread.unpark();
        }
    }

    /// From now on every command also wakes `thread` (a [`PumpPool`](crate::PumpPool) thread).
    pub(crate) fn wake_with(&self, thread: std::thread::Thread) {
        *self
            .control
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(thread);
    }

    fn add(&self, input: Input, queued: bool) -> TrackHandle {
        let id = TrackId(self.control.next_id.fetch_add(1, Ordering::Relaxed));
        let shared = Arc::new(TrackShared {
            frames: AtomicU64::new(0),
            duration_ns: AtomicU64::new(u64::MAX),
            state: AtomicU8::new(if queued {
                TrackState::Queued.to_u8()
            } else {
                TrackState::Playing.to_u8()
            }),
        });
        self.send(Command::Add {
            id,
            input,
            shared: Arc::clone(&shared),
            queued,
        });
        TrackHandle {
            id,
            shared,
            player: self.clone(),
        }
    }

    /// Adds a track at the end of the queue: it plays when the tracks before it have ended.
    pub fn enqueue(&self, input: Input) -> TrackHandle {
        self.add(input, true)
    }

    /// Starts a track now, mixed with the queue's current track and the other tracks playing.
    pub fn play(&self, input: Input) -> TrackHandle {
        self.add(input, false)
    }

    /// Ends the queue's current track ([`EndReason::Skipped`]); the next one starts.
    pub fn skip(&self) {
        self.send(Command::Skip);
    }

    /// Ends every track, queued ones included ([`EndReason::Stopped`]).
    pub fn stop_all(&self) {
        self.send(Command::StopAll);
    }

    /// Ends the pump driving this player (the player itself stays usable).
    pub fn close(&self) {
        self.control.closed.store(true, Ordering::Release);
        self.control.work.notify_all();
        self.wake_pool();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.control.closed.load(Ordering::Acquire)
    }

    /// Blocks until a command is waiting or the handle is closed.
    pub(crate) fn wait_for_work(&self) {
        let mut commands = self
            .control
            .commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while commands.is_empty() && !self.is_closed() {
            commands = self
                .control
                .work
                .wait(commands)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Controls and observes one track (cheap to clone). Commands to a track that has ended are
/// ignored.
#[derive(Clone)]
pub struct TrackHandle {
    id: TrackId,
    shared: Arc<TrackShared>,
    player: PlayerHandle,
}

impl std::fmt::Debug for TrackHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackHandle")
            .field("id", &self.id)
            .field("state", &self.state())
            .field("position", &self.position())
            .finish()
    }
}

impl TrackHandle {
    /// The track's id (in its events).
    pub fn id(&self) -> TrackId {
        self.id
    }

    /// Where the track is: the audio it has produced so far (what the listener hears lags by
    /// the connection's playout queue, at most its capacity).
    pub fn position(&self) -> Duration {
        FRAME_DURATION * self.shared.frames.load(Ordering::Relaxed) as u32
    }

    /// Its duration, once its input is open and if the input knows it.
    pub fn duration(&self) -> Option<Duration> {
        match self.shared.duration_ns.load(Ordering::Relaxed) {
            u64::MAX => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// Where it is in its life.
    pub fn state(&self) -> TrackState {
        TrackState::from_u8(self.shared.state.load(Ordering::Relaxed))
    }

    /// Pauses it (a paused queue track holds the queue).
    pub fn pause(&self) {
        self.player.send(Command::Pause(self.id));
    }

    /// Resumes it.
    pub fn resume(&self) {
        self.player.send(Command::Resume(self.id));
    }

    /// Ends it ([`EndReason::Stopped`]).
    pub fn stop(&self) {
        self.player.send(Command::Stop(self.id));
    }

    /// Moves it to `position` where its input can seek ([`PlayerEvent::Seeked`]), or reports
    /// [`PlayerEvent::SeekFailed`].
    pub fn seek(&self, position: Duration) {
        self.player.send(Command::Seek(self.id, position));
    }

    /// Sets its gain (1.0 = unchanged, 0.5 = -6 dB, 0.0 = silent; at most 4.0). A track
    /// whose gain is not 1.0 is decoded and re-encoded.
    pub fn set_volume(&self, volume: f32) {
        self.player.send(Command::Volume(self.id, volume));
    }

    /// Sets how many times it plays again after its end.
    pub fn set_loop(&self, mode: LoopMode) {
        self.player.send(Command::Loop(self.id, mode));
    }
}
