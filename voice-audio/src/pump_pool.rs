//! Many players on a few threads: a [`PumpPool`] tops up the playout queue of every connection
//! it serves, so a node playing to thousands of connections runs a fixed number of threads.
//!
//! Each pool thread serves its players in turn: a player's frames go into its sink with the
//! non-blocking [`FrameSink::try_send_frame`] until the connection's queue is full (one frame
//! that did not fit waits in the entry, copied, for the next turn). Then the thread sleeps for
//! [`PumpPool::interval`] or until a command of one of its players wakes it. A paused or idle
//! player produces nothing and costs one look per interval; a playing one costs its frames.
//! The interval must be well below the connection's queue length (one second by default), so the
//! queue never runs dry between two turns: 100 ms by default.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, Thread};
use std::time::Duration;

use crate::player::{Player, PlayerEvent, PlayerHandle};
use crate::pump::FrameSink;

/// How often a pool thread tops up its connections' queues by default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);

/// Frames one player may produce in one turn: enough to fill a one-second queue, bounded so a
/// sink that never says "full" cannot keep the thread from the other players.
const FRAMES_PER_TURN: usize = 64;

type EventCallback = Box<dyn FnMut(PlayerEvent) + Send>;

/// One player served by a pool thread.
struct Entry {
    player: Player,
    handle: PlayerHandle,
    sink: Box<dyn FrameSink>,
    on_event: EventCallback,
    /// A frame the sink had no room for, sent first next turn.
    waiting: Vec<u8>,
    has_waiting: bool,
    state: Arc<PooledState>,
}

#[derive(Default)]
struct PooledState {
    frames_sent: AtomicU64,
    finished: AtomicBool,
}

#[derive(Default)]
struct Inbox {
    added: Vec<Entry>,
    players: usize,
}

struct PoolThread {
    inbox: Mutex<Inbox>,
    thread: Thread,
}

/// A fixed set of threads (`voice-audio-pool-N`) that drive many players into their
/// connections (see the module docs). Players are spread over the threads by count.
pub struct PumpPool {
    threads: Vec<Arc<PoolThread>>,
    interval: Duration,
}

impl std::fmt::Debug for PumpPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PumpPool")
            .field("threads", &self.threads.len())
            .field("interval", &self.interval)
            .finish()
    }
}

impl PumpPool {
    /// A pool of `threads` threads (at least one) topping up queues every
    /// [`DEFAULT_INTERVAL`].
    pub fn new(threads: usize) -> std::io::Result<Self> {
        Self::with_interval(threads, DEFAULT_INTERVAL)
    }

    /// A pool topping up queues every `interval` (keep it well below the connections' queue
    /// length).
    pub fn with_interval(threads: usize, interval: Duration) -> std::io::Result<Self> {
        let threads = (0..threads.max(1))
            .map(|index| {
                let (started, thread) = std::sync::mpsc::channel();
                let handle = thread::Builder::new()
                    .name(format!("voice-audio-pool-{index}"))
                    .spawn(move || {
                        // The thread waits for its own record before serving.
                        if let Ok(me) = thread.recv() {
                            run(me, interval);
                        }
                    })?;
                let me = Arc::new(PoolThread {
                    inbox: Mutex::new(Inbox::default()),
                    thread: handle.thread().clone(),
                });
                let _ = started.send(Arc::clone(&me));
                Ok(me)
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self { threads, interval })
    }

    /// The top-up interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Drives `player` into `sink` from one of the pool's threads; `on_event` runs there for every
    /// [`PlayerEvent`]. It is served until the sink closes or the returned handle is stopped or
    /// dropped.
    pub fn add(
        &self,
        player: Player,
        sink: impl FrameSink,
        on_event: impl FnMut(PlayerEvent) + Send + 'static,
    ) -> PooledPump {
        let handle = player.handle();
        let state = Arc::new(PooledState::default());
        let Some(thread) = self.threads.iter().min_by_key(|t| lock(&t.inbox).players) else {
            // `new` makes at least one thread.
            state.finished.store(true, Ordering::Release);
            return PooledPump { handle, state };
        };
        handle.wake_with(thread.thread.clone());
        {
            let mut inbox = lock(&thread.inbox);
            inbox.players += 1;
            inbox.added.push(Entry {
                player,
                handle: handle.clone(),
                sink: Box::new(sink),
                on_event: Box::new(on_event),
                waiting: Vec::new(),
                has_waiting: false,
                state: Arc::clone(&state),
            });
        }
        thread.thread.unpark();
        PooledPump { handle, state }
    }
}

impl Drop for PumpPool {
    fn drop(&mut self) {
        // The threads end once their players have (each holds its own record).
        for thread in &self.threads {
            thread.thread.unpark();
        }
    }
}

/// A player served by a [`PumpPool`]. Dropping it stops serving the player (at its next turn).
#[derive(Debug)]
pub struct PooledPump {
    handle: PlayerHandle,
    state: Arc<PooledState>,
}

impl std::fmt::Debug for PooledState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledState")
            .field("frames_sent", &self.frames_sent.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl PooledPump {
    /// The player's handle.
    pub fn handle(&self) -> &PlayerHandle {
        &self.handle
    }

    /// Frames handed to the sink so far.
    pub fn frames_sent(&self) -> u64 {
        self.state.frames_sent.load(Ordering::Relaxed)
    }

    /// Whether the pool has stopped serving the player (the sink closed, or it was stopped).
    pub fn is_finished(&self) -> bool {
        self.state.finished.load(Ordering::Acquire)
    }

    /// Stops serving the player (at its next turn).
    pub fn stop(self) {}
}

impl Drop for PooledPump {
    fn drop(&mut self) {
        self.handle.close();
    }
}

fn lock(inbox: &Mutex<Inbox>) -> std::sync::MutexGuard<'_, Inbox> {
    inbox.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A pool thread: take new players, give every player its turn, sleep.
fn run(me: Arc<PoolThread>, interval: Duration) {
    let mut entries: Vec<Entry> = Vec::new();
    loop {
        {
            let mut inbox = lock(&me.inbox);
            entries.append(&mut inbox.added);
        }
        let before = entries.len();
        entries.retain_mut(|entry| {
            let keep = serve(entry);
            if !keep {
                entry.state.finished.store(true, Ordering::Release);
            }
            keep
        });
        let ended = before - entries.len();
        if ended > 0 {
            let mut inbox = lock(&me.inbox);
            inbox.players = inbox.players.saturating_sub(ended);
        }
        // A pool that was dropped with no player left ends its threads; otherwise sleep until
        // the next turn or a command.
        if entries.is_empty() && Arc::strong_count(&me) == 1 {
            return;
        }
        thread::park_timeout(interval);
    }
}

/// One turn of one player; `false` when it is no longer served.
fn serve(entry: &mut Entry) -> bool {
    if entry.handle.is_closed() {
        return false;
    }
    if entry.has_waiting {
        match entry.sink.try_send_frame(&entry.waiting) {
            Ok(true) => {
                entry.has_waiting = false;
                entry.state.frames_sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok(false) => return forward_events(entry),
            Err(_) => return false,
        }
    }
    for _ in 0..FRAMES_PER_TURN {
        let Some(frame) = entry.player.next_frame() else {
            break;
        };
        match entry.sink.try_send_frame(frame) {
            Ok(true) => {
                entry.state.frames_sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok(false) => {
                entry.waiting.clear();
                entry.waiting.extend_from_slice(frame);
                entry.has_waiting = true;
                break;
            }
            Err(_) => {
                forward_events(entry);
                return false;
            }
        }
    }
    forward_events(entry)
}

fn forward_events(entry: &mut Entry) -> bool {
    while let Some(event) = entry.player.poll_event() {
        (entry.on_event)(event);
    }
    true
}
