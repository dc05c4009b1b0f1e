//! The media workers: a few threads that send the audio of every connection.
//!
//! Each worker keeps a min-heap of "connection X has a datagram due at T" and sleeps until the
//! earliest; when it wakes it serves every entry due within [`GRANULARITY`] (the cores' playout
//! clocks are drift-free, so serving a slot up to that much early never shifts the schedule), and
//! each served connection tells it its next due time. No timer, task, wake-up or channel hop per
//! packet per connection: one wake-up per worker per granule, whatever the number of
//! connections. Threads are started with the first connection of a worker and end a moment after
//! its last one leaves, so an idle process keeps none.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use voice_proto::rtp::MAX_PACKET_LEN;

/// How early a worker serves a due slot: datagrams due within this much of the wake-up go out
/// together. Wake-ups per worker are bounded by 1 / `GRANULARITY` per second.
pub const GRANULARITY: Duration = Duration::from_millis(1);

/// How long a worker with no connection left stays before its thread ends.
const LINGER: Duration = Duration::from_secs(1);

/// After a connection was busy (its core locked by its driver), when to try again: past the
/// granule, so the worker sleeps instead of spinning on the lock.
const BUSY_RETRY: Duration = Duration::from_millis(2);

/// A connection a worker can serve.
pub trait Transmitter: Send + Sync {
    /// Sends every datagram due by `now`, using `buf` as scratch; `token` identifies the
    /// schedule entry. Says when the next one is due.
    fn transmit(&self, now: Instant, token: u64, buf: &mut [u8; MAX_PACKET_LEN]) -> Transmitted;
}

/// What became of one served entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transmitted {
    /// The next datagram is due at `at`; the entry to keep carries `token`.
    Next {
        /// When.
        at: Instant,
        /// The new schedule token.
        token: u64,
    },
    /// Nothing more to send until the connection schedules itself again.
    Idle,
    /// The entry was superseded by a newer one (a stale token): drop it.
    Stale,
    /// The connection's core was locked by its driver: try again very soon.
    Busy,
}

/// A due time announced to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    pub(crate) at: Instant,
    pub(crate) slot: u32,
    pub(crate) token: u64,
}

/// Everything other threads hand to a worker, behind one lock.
#[derive(Default)]
struct Inbox {
    entries: Vec<Entry>,
    added: Vec<(u32, Weak<dyn Transmitter>)>,
    removed: Vec<u32>,
    free_slots: Vec<u32>,
    next_slot: u32,
    /// Registered connections (the worker's load).
    connections: usize,
    /// The worker thread, while one runs.
    thread: Option<Thread>,
    /// When the running worker will wake up by itself (`None`: it waits for news).
    sleeping_until: Option<Instant>,
}

struct Worker {
    index: usize,
    inbox: Mutex<Inbox>,
}

impl Worker {
    fn lock(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A fixed set of media workers shared by every connection of a process (or of whoever built
/// it). Connections are spread over the workers by load.
pub struct MediaScheduler {
    workers: Vec<Arc<Worker>>,
}

impl std::fmt::Debug for MediaScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaScheduler")
            .field("workers", &self.workers.len())
            .finish()
    }
}

impl MediaScheduler {
    /// A scheduler with `workers` worker threads (at least one), started on demand.
    pub fn new(workers: usize) -> Arc<Self> {
        Arc::new(Self {
            workers: (0..workers.max(1))
                .map(|index| {
                    Arc::new(Worker {
                        index,
                        inbox: Mutex::new(Inbox::default()),
                    })
                })
                .collect(),
        })
    }

    /// The process-wide scheduler with `workers` threads; 0 means one per core. Every adapter
    /// connection made with the same setting shares it.
    pub fn shared(workers: usize) -> Arc<Self> {
        static SHARED: OnceLock<Mutex<Vec<Arc<MediaScheduler>>>> = OnceLock::new();
        let workers = if workers == 0 {
            thread::available_parallelism().map_or(1, usize::from)
        } else {
            workers
        };
        let mut all = SHARED
            .get_or_init(|| Mutex::new(Vec::new()))
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = all.iter().find(|s| s.workers.len() == workers) {
            return Arc::clone(found);
        }
        let scheduler = Self::new(workers);
        all.push(Arc::clone(&scheduler));
        scheduler
    }

    /// Number of worker threads (running or not).
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Adds a connection to the least-loaded worker. It is served until the registration is
    /// dropped or the connection itself is.
    pub fn register(&self, connection: Weak<dyn Transmitter>) -> std::io::Result<Registration> {
        let worker = self
            .workers
            .iter()
            .min_by_key(|w| w.lock().connections)
            .map(Arc::clone)
            .ok_or_else(|| std::io::Error::other("a scheduler without workers"))?;
        let slot = {
            let mut inbox = worker.lock();
            let slot = inbox.free_slots.pop().unwrap_or_else(|| {
                inbox.next_slot += 1;
                inbox.next_slot - 1
            });
            inbox.added.push((slot, connection));
            inbox.connections += 1;
            match &inbox.thread {
                Some(thread) => thread.unpark(),
                None => {
                    let name = format!("voice-media-{}", worker.index);
                    let for_thread = Arc::clone(&worker);
                    let handle = thread::Builder::new()
                        .name(name)
                        .spawn(move || run(&for_thread))?;
                    inbox.thread = Some(handle.thread().clone());
                }
            }
            slot
        };
        Ok(Registration { worker, slot })
    }
}

/// A connection's place on a worker. Dropping it removes the connection.
pub struct Registration {
    worker: Arc<Worker>,
    slot: u32,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("worker", &self.worker.index)
            .field("slot", &self.slot)
            .finish()
    }
}

impl Registration {
    /// Asks the worker to serve this connection at `at`, passing `token` to
    /// [`Transmitter::transmit`] (which answers [`Transmitted::Stale`] for a token it has
    /// superseded since); wakes the worker if it sleeps past `at`. [`SharedCore`] calls this
    /// itself; it is public for other [`Transmitter`]s.
    ///
    /// [`SharedCore`]: super::SharedCore
    pub fn schedule(&self, at: Instant, token: u64) {
        let mut inbox = self.worker.lock();
        inbox.entries.push(Entry {
            at,
            slot: self.slot,
            token,
        });
        if inbox.sleeping_until.is_none_or(|until| at < until) {
            if let Some(thread) = &inbox.thread {
                thread.unpark();
            }
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut inbox = self.worker.lock();
        inbox.removed.push(self.slot);
        if let Some(thread) = &inbox.thread {
            thread.unpark();
        }
    }
}

/// A worker thread: take news, serve due entries, sleep until the next due time.
fn run(worker: &Worker) {
    let mut slots: Vec<Option<Weak<dyn Transmitter>>> = Vec::new();
    let mut heap: BinaryHeap<Reverse<Entry>> = BinaryHeap::new();
    let mut later: Vec<Entry> = Vec::new();
    let mut buf = Box::new([0u8; MAX_PACKET_LEN]);
    let mut empty_since: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let deadline = {
            let mut inbox = worker.lock();
            take_news(&mut inbox, &mut slots, &mut heap);
            if inbox.connections == 0 {
                let since = *empty_since.get_or_insert(now);
                if now.duration_since(since) >= LINGER {
                    // Ends under the lock: a registration made after this starts a new thread.
                    inbox.thread = None;
                    inbox.sleeping_until = None;
                    return;
                }
            } else {
                empty_since = None;
            }
            let next_due = heap.peek().map(|Reverse(entry)| entry.at);
            let deadline = next_due.or(empty_since.map(|since| since + LINGER));
            inbox.sleeping_until = deadline;
            deadline
        };
        // News that arrives while asleep unparks the thread (a token that is kept if it comes
        // before the park, so nothing is missed).
        match deadline {
            None => thread::park(),
            Some(deadline) if deadline > now + GRANULARITY => thread::park_timeout(deadline - now),
            Some(_) => {}
        }
        serve_due(&slots, &mut heap, &mut later, &mut buf);
    }
}

/// Moves what other threads handed in into the worker's own slab and heap.
fn take_news(
    inbox: &mut Inbox,
    slots: &mut Vec<Option<Weak<dyn Transmitter>>>,
    heap: &mut BinaryHeap<Reverse<Entry>>,
) {
    for (slot, connection) in inbox.added.drain(..) {
        let index = slot as usize;
        if slots.len() <= index {
            slots.resize_with(index + 1, || None);
        }
        if let Some(place) = slots.get_mut(index) {
            *place = Some(connection);
        }
    }
    for slot in std::mem::take(&mut inbox.removed) {
        if let Some(place) = slots.get_mut(slot as usize) {
            *place = None;
        }
        inbox.free_slots.push(slot);
        inbox.connections = inbox.connections.saturating_sub(1);
    }
    heap.extend(inbox.entries.drain(..).map(Reverse));
}

/// Serves every heap entry due within [`GRANULARITY`] of now. Entries a connection hands back
/// are kept for the next round, so a busy connection is never spun on.
fn serve_due(
    slots: &[Option<Weak<dyn Transmitter>>],
    heap: &mut BinaryHeap<Reverse<Entry>>,
    later: &mut Vec<Entry>,
    buf: &mut [u8; MAX_PACKET_LEN],
) {
    let now = Instant::now();
    let horizon = now + GRANULARITY;
    while heap
        .peek()
        .is_some_and(|Reverse(entry)| entry.at <= horizon)
    {
        let Some(Reverse(entry)) = heap.pop() else {
            break;
        };
        let Some(connection) = slots
            .get(entry.slot as usize)
            .and_then(Option::as_ref)
            .and_then(Weak::upgrade)
        else {
            continue;
        };
        match connection.transmit(horizon, entry.token, buf) {
            Transmitted::Next { at, token } => later.push(Entry {
                at,
                slot: entry.slot,
                token,
            }),
            Transmitted::Busy => later.push(Entry {
                at: now + BUSY_RETRY,
                ..entry
            }),
            Transmitted::Idle | Transmitted::Stale => {}
        }
    }
    heap.extend(later.drain(..).map(Reverse));
}
