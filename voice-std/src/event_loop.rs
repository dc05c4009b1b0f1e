//! The event loops: a fixed pool of threads (`voice-io-N`) that run the websocket side of every
//! connection. Each loop waits in `mio` for readiness of its connections' websockets and media
//! sockets, for the earliest of their control deadlines (one heap for the loop), and for its
//! inbox (a `mio::Waker`): new connections, and wake-ups of a connection whose core has outputs,
//! whose dispatches arrived or whose application asked it to leave. Audio is not sent here: the
//! media workers of `voice_adapter::media` do that.
//!
//! A loop's thread starts with its first connection and ends a moment after its last one, so an
//! idle process keeps none. Connections are spread over the loops by load.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Registry, Token, Waker};
use voice_adapter::media::MediaScheduler;
use voice_adapter::{JoinError, VoiceConfig};

use crate::driver::Driver;
use crate::link::Link;

/// How long a loop with no connection left stays before its thread ends.
const LINGER: Duration = Duration::from_secs(1);
/// Readiness events taken per wait.
const EVENTS: usize = 1024;
/// Larger than any RTP packet Discord sends; one buffer per loop, reused for every datagram.
const RECEIVE_BUFFER: usize = 2048;
/// The inbox's token; connections' tokens are `slot * 2` (websocket) and `slot * 2 + 1` (media).
const WAKER: Token = Token(usize::MAX);

/// The websocket token of the connection in `slot` (also its sockets being closed).
pub(crate) fn tcp_token(slot: usize) -> Token {
    Token(slot * 2)
}

/// The media socket token of the connection in `slot`.
pub(crate) fn udp_token(slot: usize) -> Token {
    Token(slot * 2 + 1)
}

/// What other threads hand to a loop.
pub(crate) enum News {
    /// A new connection, reserved before.
    Add(Box<Driver>),
    /// Connection `id` has something to look at (see [`Link::wake`]).
    Wake(u64),
    /// The resolver's answer for connection `id`'s websocket attempt `attempt`.
    Resolved {
        id: u64,
        attempt: u64,
        addresses: io::Result<Vec<SocketAddr>>,
    },
}

struct Inbox {
    news: Vec<News>,
    /// Connections reserved on this loop and not yet ended (its load).
    connections: usize,
    next_id: u64,
    /// The running thread's waker (`None`: no thread runs).
    waker: Option<Arc<Waker>>,
}

/// One event loop's shared half: its inbox.
pub(crate) struct EventLoop {
    index: usize,
    inbox: Mutex<Inbox>,
}

impl EventLoop {
    fn lock(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `news` to the loop and wakes it (once per batch: a non-empty inbox was woken
    /// already). Never blocks.
    pub(crate) fn send(&self, news: News) {
        let mut inbox = self.lock();
        let wake = inbox.news.is_empty();
        inbox.news.push(news);
        if let (true, Some(waker)) = (wake, &inbox.waker) {
            if let Err(error) = waker.wake() {
                tracing::warn!(%error, "could not wake a voice event loop");
            }
        }
    }

    /// Adds a reserved connection, starting the loop's thread if none runs.
    fn add(self: &Arc<Self>, driver: Driver) -> io::Result<()> {
        let mut inbox = self.lock();
        if inbox.waker.is_none() {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let event_loop = Arc::clone(self);
            thread::Builder::new()
                .name(format!("voice-io-{}", self.index))
                .spawn(move || run(&event_loop, poll))?;
            inbox.waker = Some(waker);
        }
        inbox.news.push(News::Add(Box::new(driver)));
        if let Some(waker) = &inbox.waker {
            if let Err(error) = waker.wake() {
                tracing::warn!(%error, "could not wake a voice event loop");
            }
        }
        Ok(())
    }

    /// One connection fewer (ended, or never added).
    fn release(&self) {
        let mut inbox = self.lock();
        inbox.connections = inbox.connections.saturating_sub(1);
        if let Some(waker) = &inbox.waker {
            let _ = waker.wake();
        }
    }
}

/// The pool of event loops shared by every connection made with the same setting.
pub(crate) struct EventLoops {
    loops: Vec<Arc<EventLoop>>,
}

impl EventLoops {
    /// The process-wide pool of `count` loops (at least one).
    fn shared(count: usize) -> Arc<Self> {
        static SHARED: OnceLock<Mutex<Vec<Arc<EventLoops>>>> = OnceLock::new();
        let count = count.max(1);
        let mut all = SHARED
            .get_or_init(|| Mutex::new(Vec::new()))
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = all.iter().find(|pool| pool.loops.len() == count) {
            return Arc::clone(found);
        }
        let pool = Arc::new(Self {
            loops: (0..count)
                .map(|index| {
                    Arc::new(EventLoop {
                        index,
                        inbox: Mutex::new(Inbox {
                            news: Vec::new(),
                            connections: 0,
                            next_id: 0,
                            waker: None,
                        }),
                    })
                })
                .collect(),
        });
        all.push(Arc::clone(&pool));
        pool
    }
}

/// A place for one connection on the least-loaded loop, taken before its driver exists (a join
/// needs the connection's link for its dispatch route first). Dropped without
/// [`start`](Self::start), it gives the place back.
pub(crate) struct Reservation {
    link: Arc<Link>,
    scheduler: Arc<MediaScheduler>,
    started: bool,
}

impl Reservation {
    /// Reserves a place in the pools `config` selects: the media workers
    /// ([`VoiceConfig::media_workers`]) and as many event loops.
    pub(crate) fn new(config: &VoiceConfig) -> Result<Self, JoinError> {
        let scheduler = MediaScheduler::shared(config.media_workers);
        let pool = EventLoops::shared(scheduler.workers());
        let event_loop = pool
            .loops
            .iter()
            .min_by_key(|l| l.lock().connections)
            .map(Arc::clone)
            .ok_or_else(|| JoinError::Thread("an event loop pool without loops".to_owned()))?;
        let id = {
            let mut inbox = event_loop.lock();
            inbox.connections += 1;
            inbox.next_id += 1;
            inbox.next_id
        };
        Ok(Self {
            link: Arc::new(Link::new(event_loop, id)),
            scheduler,
            started: false,
        })
    }

    pub(crate) fn link(&self) -> &Arc<Link> {
        &self.link
    }

    pub(crate) fn scheduler(&self) -> &MediaScheduler {
        &self.scheduler
    }

    /// Hands the connection's driver to its loop.
    pub(crate) fn start(mut self, driver: Driver) -> Result<(), JoinError> {
        let added = self.link.event_loop().add(driver);
        self.started = added.is_ok();
        added.map_err(|e| JoinError::Thread(e.to_string()))
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.started {
            self.link.event_loop().release();
            self.link.end();
        }
    }
}

/// What a driver needs from its loop while it runs.
pub(crate) struct Io<'a> {
    pub(crate) registry: &'a Registry,
    pub(crate) event_loop: &'a Arc<EventLoop>,
}

struct Entry {
    driver: Box<Driver>,
    /// The earliest deadline of this driver in the heap (later entries fire harmlessly).
    armed: Option<Instant>,
}

/// A loop thread's own state.
struct Loop {
    event_loop: Arc<EventLoop>,
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    slots: HashMap<u64, usize>,
    /// Control deadlines: (when, slot, connection id).
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    /// Sockets that had more to read than one event's share.
    again: Vec<Token>,
    news: Vec<News>,
    due: Vec<usize>,
    receive: Box<[u8; RECEIVE_BUFFER]>,
    idle_since: Option<Instant>,
}

/// Ends the thread's tenure in the inbox however the thread ends (a panic included: the
/// drivers it held are dropped, which ends their connections, and the next connection starts a
/// new thread).
struct Running<'a>(&'a EventLoop);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut inbox = self.0.lock();
        inbox.waker = None;
        if thread::panicking() {
            // The connections it held have ended (their drivers were dropped); so have those
            // still in the inbox.
            inbox.news.clear();
            inbox.connections = 0;
        }
    }
}

fn run(event_loop: &Arc<EventLoop>, mut poll: Poll) {
    let _running = Running(event_loop);
    let mut state = Loop {
        event_loop: Arc::clone(event_loop),
        entries: Vec::new(),
        free: Vec::new(),
        slots: HashMap::new(),
        timers: BinaryHeap::new(),
        again: Vec::new(),
        news: Vec::new(),
        due: Vec::new(),
        receive: Box::new([0; RECEIVE_BUFFER]),
        idle_since: None,
    };
    let mut events = Events::with_capacity(EVENTS);
    loop {
        let timeout = state.timeout(Instant::now());
        if let Err(error) = poll.poll(&mut events, timeout) {
            if error.kind() != io::ErrorKind::Interrupted {
                tracing::warn!(%error, "voice event loop: waiting for events failed");
            }
        }
        let registry = poll.registry();
        for token in std::mem::take(&mut state.again) {
            state.on_ready(registry, token);
        }
        for event in events.iter() {
            if event.token() != WAKER {
                state.on_ready(registry, event.token());
            }
        }
        if !state.take_news(registry) {
            return;
        }
        state.run_timers(registry, Instant::now());
    }
}

impl Loop {
    /// How long to wait: until the earliest deadline, at once when a socket has more to read,
    /// until the end of the linger when no connection is left.
    fn timeout(&mut self, now: Instant) -> Option<Duration> {
        if !self.again.is_empty() {
            return Some(Duration::ZERO);
        }
        let next_timer = self.timers.peek().map(|Reverse((at, _, _))| *at);
        let linger = self.idle_since.map(|since| since + LINGER);
        [next_timer, linger]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(now))
    }

    /// Runs `serve` on the driver in `slot`, then re-arms its deadline or removes it once it has
    /// ended.
    fn serve(
        &mut self,
        registry: &Registry,
        slot: usize,
        serve: impl FnOnce(&mut Driver, &mut Io<'_>, &mut [u8]) -> bool,
    ) -> bool {
        let Some(Some(entry)) = self.entries.get_mut(slot) else {
            return false;
        };
        let mut io = Io {
            registry,
            event_loop: &self.event_loop,
        };
        // Every log line of the driver and its core is in its connection's span.
        let span = entry.driver.span().clone();
        let more = span.in_scope(|| serve(&mut entry.driver, &mut io, &mut self.receive[..]));
        if entry.driver.is_done() {
            self.remove(slot);
            return false;
        }
        if entry.driver.take_read_again() {
            self.again.push(tcp_token(slot));
        }
        if let Some(at) = entry.driver.deadline() {
            if entry.armed.is_none_or(|armed| at < armed) {
                entry.armed = Some(at);
                self.timers.push(Reverse((at, slot, entry.driver.id())));
            }
        }
        more
    }

    fn on_ready(&mut self, registry: &Registry, token: Token) {
        let slot = token.0 / 2;
        let websocket = token == tcp_token(slot);
        let more = self.serve(registry, slot, |driver, io, receive| {
            if websocket {
                driver.on_websocket_ready(io);
                false
            } else {
                driver.on_media_ready(io, receive)
            }
        });
        if more {
            self.again.push(token);
        }
    }

    /// Takes the inbox's news; `false` when the loop ends (no connection for the linger time).
    fn take_news(&mut self, registry: &Registry) -> bool {
        {
            let mut inbox = self.event_loop.lock();
            if inbox.news.is_empty() && inbox.connections == 0 && self.entries_empty() {
                let now = Instant::now();
                let since = *self.idle_since.get_or_insert(now);
                if now.duration_since(since) >= LINGER {
                    // Ends under the lock: a connection added after this starts a new thread.
                    inbox.waker = None;
                    return false;
                }
            }
            std::mem::swap(&mut inbox.news, &mut self.news);
        }
        let mut news = std::mem::take(&mut self.news);
        for item in news.drain(..) {
            match item {
                News::Add(driver) => self.add(registry, driver),
                News::Wake(id) => {
                    if let Some(&slot) = self.slots.get(&id) {
                        self.serve(registry, slot, |driver, io, _| {
                            driver.wake(io);
                            false
                        });
                    }
                }
                News::Resolved {
                    id,
                    attempt,
                    addresses,
                } => {
                    if let Some(&slot) = self.slots.get(&id) {
                        self.serve(registry, slot, |driver, io, _| {
                            driver.on_resolved(io, attempt, addresses);
                            false
                        });
                    }
                }
            }
        }
        // Keeps the buffer's capacity for the next swap.
        self.news = news;
        if !self.entries_empty() {
            self.idle_since = None;
        }
        true
    }

    fn entries_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn add(&mut self, registry: &Registry, driver: Box<Driver>) {
        let slot = self.free.pop().unwrap_or(self.entries.len());
        if slot == self.entries.len() {
            self.entries.push(None);
        }
        self.slots.insert(driver.id(), slot);
        if let Some(place) = self.entries.get_mut(slot) {
            *place = Some(Entry {
                driver,
                armed: None,
            });
        }
        self.serve(registry, slot, |driver, io, _| {
            driver.start(io, slot);
            false
        });
    }

    fn remove(&mut self, slot: usize) {
        let Some(entry) = self.entries.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.slots.remove(&entry.driver.id());
        self.free.push(slot);
        self.event_loop.release();
        // Dropping the driver ends the connection's link: `disconnect()` returns.
        drop(entry);
    }

    /// Serves every driver whose deadline has come.
    fn run_timers(&mut self, registry: &Registry, now: Instant) {
        let mut due = std::mem::take(&mut self.due);
        while let Some(Reverse((at, slot, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(Some(entry)) = self.entries.get_mut(slot) else {
                continue;
            };
            if entry.driver.id() != id {
                continue;
            }
            if entry.armed == Some(at) {
                entry.armed = None;
            }
            due.push(slot);
        }
        for slot in due.drain(..) {
            self.serve(registry, slot, |driver, io, _| {
                driver.on_time(io, now);
                false
            });
        }
        self.due = due;
    }
}
