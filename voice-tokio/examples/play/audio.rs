//! The audio side that voice-tokio's `play` and voice-std's `play_blocking` examples share
//! (voice-std's includes this file by path): voice-audio's player and pump feeding the
//! connection's sender through a sink that records every frame, the progress bar of what the
//! listener has heard, and the embedded server's byte-exact check. Runtime-independent: each
//! example waits for the pump's events in its own way and hands them to [`Playback`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use voice_audio::{
    FrameSink, Input, Player, PlayerConfig, PlayerEvent, Pump, SinkClosed, TrackHandle,
};

/// How often the progress bar is drawn while the track plays.
pub const DRAW_EVERY: Duration = Duration::from_millis(250);

/// A connection's sender, keeping a copy of every frame sent (to compare with what the
/// embedded server received).
struct RecordingSink<S> {
    sender: S,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl<S: FrameSink> FrameSink for RecordingSink<S> {
    fn send_frame(&mut self, frame: &[u8]) -> Result<(), SinkClosed> {
        self.sender.send_frame(frame)?;
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(frame.to_vec());
        Ok(())
    }
}

/// What was played.
pub struct Played {
    /// Every frame sent, in order.
    pub frames: Vec<Vec<u8>>,
    /// The input was passed through (its packets sent as they are).
    pub passthrough: bool,
}

/// One file playing into a connection: its track, what was sent, what the progress bar shows.
pub struct Playback {
    path: PathBuf,
    track: TrackHandle,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
    started: Instant,
    opened: bool,
    passthrough: bool,
}

impl Playback {
    /// Starts playing `path` into `sender` on a pump thread; `on_event` gets the player's
    /// events (on the pump thread: forward them to the example's own loop).
    pub fn start(
        path: &Path,
        sender: impl FrameSink,
        on_event: impl FnMut(PlayerEvent) + Send + 'static,
    ) -> Result<(Self, Pump), String> {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let sink = RecordingSink {
            sender,
            sent: Arc::clone(&sent),
        };
        let player = Player::new(PlayerConfig::default());
        let track = player.enqueue(Input::file(path));
        let pump = Pump::spawn(player, sink, on_event)
            .map_err(|e| format!("starting the audio pump thread failed: {e}"))?;
        let playback = Self {
            path: path.to_owned(),
            track,
            sent,
            started: Instant::now(),
            opened: false,
            passthrough: false,
        };
        Ok((playback, pump))
    }

    /// One of the player's events (`None`: the pump has gone): `Some` once the track has
    /// ended, with whether it played to its end.
    pub fn on_event(&mut self, event: Option<PlayerEvent>) -> Option<Result<(), String>> {
        match event {
            Some(PlayerEvent::Started {
                description,
                duration,
                ..
            }) => {
                self.opened = true;
                self.passthrough = description.contains("passthrough");
                let total = duration.map_or("unknown length".to_owned(), clock);
                println!("input: {} ({description}, {total})", self.path.display());
                None
            }
            Some(PlayerEvent::Errored { error, .. }) => {
                println!();
                Some(Err(format!(
                    "playing {} failed: {error}",
                    self.path.display()
                )))
            }
            Some(PlayerEvent::Ended { .. }) | None => Some(Ok(())),
            Some(_) => None,
        }
    }

    /// Draws the progress bar (once the input has opened) with `frames_queued` frames still
    /// waiting in the connection's playout queue.
    pub fn draw(&self, frames_queued: u64) {
        if self.opened {
            draw(
                heard(self.track.position(), frames_queued),
                self.track.duration(),
                self.started.elapsed(),
            );
        }
    }

    /// The track has ended and the connection's queue has played out: the bar at its end, and
    /// every frame sent.
    pub fn finish(self) -> Result<Played, String> {
        draw(
            self.track.position(),
            self.track.duration(),
            self.started.elapsed(),
        );
        println!();
        let frames = std::mem::take(&mut *self.sent.lock().unwrap_or_else(PoisonError::into_inner));
        if frames.is_empty() {
            return Err(format!("{} holds no audio", self.path.display()));
        }
        Ok(Played {
            frames,
            passthrough: self.passthrough,
        })
    }
}

/// What the listener has heard: the track's position less what waits in the playout queue.
fn heard(produced: Duration, frames_queued: u64) -> Duration {
    produced.saturating_sub(Duration::from_millis(20 * frames_queued))
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}.{}", s / 60, s % 60, d.subsec_millis() / 100)
}

/// `[#########.........] 0:04.2 / 0:08.0` in place.
fn draw(position: Duration, total: Option<Duration>, wall: Duration) {
    const WIDTH: usize = 30;
    let line = match total.filter(|t| !t.is_zero()) {
        Some(total) => {
            let done = (position.as_secs_f64() / total.as_secs_f64()).clamp(0.0, 1.0);
            let filled = (done * WIDTH as f64).round() as usize;
            format!(
                "[{}{}] {} / {} ({:>3.0}%)",
                "#".repeat(filled),
                ".".repeat(WIDTH - filled),
                clock(position),
                clock(total),
                done * 100.0
            )
        }
        None => format!("[{}] {}", "?".repeat(WIDTH), clock(position)),
    };
    print!("\rplaying {line}, {:.1} s wall", wall.as_secs_f64());
    let _ = std::io::stdout().flush();
}

/// Every frame the server received (silence aside) is the frame sent, byte for byte.
pub fn byte_exact(played: &Played, received: &[voice_sim::ReceivedFrame]) -> Result<(), String> {
    let audio: Vec<&[u8]> = received
        .iter()
        .filter(|f| !f.is_silence())
        .map(|f| f.opus.as_slice())
        .collect();
    let same = audio.len() == played.frames.len()
        && audio
            .iter()
            .zip(&played.frames)
            .all(|(a, b)| *a == b.as_slice());
    let how = if played.passthrough {
        "passed through from the file"
    } else {
        "encoded by voice-audio"
    };
    if !same {
        return Err(format!(
            "the server's frames differ from the {} frames sent ({how})",
            played.frames.len()
        ));
    }
    println!(
        "verdict: {} frames ({how}) received byte-exact after decryption",
        played.frames.len()
    );
    Ok(())
}
