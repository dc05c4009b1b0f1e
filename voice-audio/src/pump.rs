//! Driving a [`Player`] into a connection: a pump thread pulls 20 ms frames from the player
//! and pushes them into the connection's playout queue, whose backpressure paces it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::player::{Player, PlayerEvent, PlayerHandle};

/// The connection has ended: no frame will be taken any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the voice connection has ended")]
pub struct SinkClosed;

/// Where a pump puts frames: a connection's Opus sender, in blocking form.
///
/// `voice_tokio::OpusSender` implements it with the `tokio` feature, `voice_std::OpusSender`
/// with the `std` feature; a test's `Vec` or a channel can implement it in a few lines (a
/// closure is one).
pub trait FrameSink: Send + 'static {
    /// Queues one 20 ms Opus frame, blocking while the connection's playout queue is full.
    fn send_frame(&mut self, frame: &[u8]) -> Result<(), SinkClosed>;

    /// Queues one frame if there is room now: `Ok(false)` (nothing queued) when the queue is
    /// full. A [`PumpPool`](crate::PumpPool) uses only this; the default blocks in
    /// [`send_frame`](Self::send_frame), which would hold up the pool thread's other players, so
    /// real connection sinks implement it (both adapters' `OpusSender`s do).
    fn try_send_frame(&mut self, frame: &[u8]) -> Result<bool, SinkClosed> {
        self.send_frame(frame).map(|()| true)
    }
}

impl<F: FnMut(&[u8]) -> Result<(), SinkClosed> + Send + 'static> FrameSink for F {
    fn send_frame(&mut self, frame: &[u8]) -> Result<(), SinkClosed> {
        self(frame)
    }
}

/// A thread that feeds a player's frames to a [`FrameSink`] (one per connection).
///
/// It loops: frame from the player, into the sink (blocking while the connection's queue is
/// full, so it runs at most a queue ahead of real time), events to the callback. When nothing
/// plays it sleeps on the player's command queue: no wake-up until a handle is used. It ends
/// when the sink closes or [`stop`](Self::stop) is called.
///
/// The latency of a command (pause, volume, seek) is what the connection has queued: the
/// queue's capacity at most (`voice_proto::Config::playout_queue_frames`, 50 frames = 1 s by
/// default; 10 frames keeps control within 200 ms).
#[derive(Debug)]
pub struct Pump {
    handle: PlayerHandle,
    frames_sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<Player>>,
}

impl Pump {
    /// Starts the pump thread (`voice-audio-pump`); `on_event` runs on it for every
    /// [`PlayerEvent`] (forward them to a channel of the application's runtime).
    pub fn spawn(
        mut player: Player,
        mut sink: impl FrameSink,
        mut on_event: impl FnMut(PlayerEvent) + Send + 'static,
    ) -> std::io::Result<Pump> {
        let handle = player.handle();
        let frames_sent = Arc::new(AtomicU64::new(0));
        let thread = {
            let handle = handle.clone();
            let frames_sent = Arc::clone(&frames_sent);
            std::thread::Builder::new()
                .name("voice-audio-pump".into())
                .spawn(move || {
                    while !handle.is_closed() {
                        let sent = match player.next_frame() {
                            Some(frame) => {
                                if sink.send_frame(frame).is_err() {
                                    break;
                                }
                                frames_sent.fetch_add(1, Ordering::Relaxed);
                                true
                            }
                            None => false,
                        };
                        while let Some(event) = player.poll_event() {
                            on_event(event);
                        }
                        if !sent {
                            handle.wait_for_work();
                        }
                    }
                    while let Some(event) = player.poll_event() {
                        on_event(event);
                    }
                    player
                })?
        };
        Ok(Pump {
            handle,
            frames_sent,
            thread: Some(thread),
        })
    }

    /// The player's handle.
    pub fn handle(&self) -> &PlayerHandle {
        &self.handle
    }

    /// Frames handed to the sink so far.
    pub fn frames_sent(&self) -> u64 {
        self.frames_sent.load(Ordering::Relaxed)
    }

    /// Whether the thread has ended (the sink closed).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops the thread (after the frame it is sending) and returns the player.
    pub fn stop(mut self) -> Option<Player> {
        self.handle.close();
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.handle.close();
    }
}
