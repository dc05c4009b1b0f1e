//! The `play` example's audio side: voice-audio's player and pump feeding the connection, a
//! progress bar, and the frames sent (for the embedded server's byte-exact check).

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use voice_audio::{FrameSink, Input, Player, PlayerConfig, PlayerEvent, Pump, SinkClosed};
use voice_tokio::{Connection, OpusSender};

/// The connection's sender, keeping a copy of every frame sent (to compare with what the
/// embedded server received).
struct RecordingSink {
    sender: OpusSender,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl FrameSink for RecordingSink {
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

/// Plays `path` into the connection behind `sender`, drawing progress, until the track ends.
pub async fn play_file(connection: &Connection, path: &Path) -> Result<Played, String> {
    let sender = connection.opus_send();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let sink = RecordingSink {
        sender,
        sent: Arc::clone(&sent),
    };
    let player = Player::new(PlayerConfig::default());
    let track = player.enqueue(Input::file(path));
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let pump = Pump::spawn(player, sink, move |event| {
        let _ = events_tx.send(event);
    })
    .map_err(|e| format!("starting the audio pump thread failed: {e}"))?;
    let started = Instant::now();
    let mut passthrough = false;
    let mut opened = false;
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    let result = loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(PlayerEvent::Started { description, duration, .. }) => {
                    opened = true;
                    passthrough = description.contains("passthrough");
                    let total = duration.map_or("unknown length".to_owned(), clock);
                    println!("input: {} ({description}, {total})", path.display());
                }
                Some(PlayerEvent::Errored { error, .. }) => {
                    println!();
                    break Err(format!("playing {} failed: {error}", path.display()));
                }
                Some(PlayerEvent::Ended { .. }) | None => break Ok(()),
                Some(_) => {}
            },
            _ = ticker.tick(), if opened => draw(heard(connection, track.position()), track.duration(), started.elapsed()),
        }
    };
    drop(pump.stop());
    result?;
    // The rest of the queue plays out with the bar moving.
    while connection.stats().frames_queued > 0 && !connection.is_finished() {
        draw(
            heard(connection, track.position()),
            track.duration(),
            started.elapsed(),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    draw(track.position(), track.duration(), started.elapsed());
    println!();
    let frames = std::mem::take(&mut *sent.lock().unwrap_or_else(PoisonError::into_inner));
    if frames.is_empty() {
        return Err(format!("{} holds no audio", path.display()));
    }
    Ok(Played {
        frames,
        passthrough,
    })
}

/// What the listener has heard: the track's position less what waits in the playout queue.
fn heard(connection: &Connection, produced: Duration) -> Duration {
    let queued = connection.stats().frames_queued;
    produced.saturating_sub(Duration::from_millis(20 * queued))
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
