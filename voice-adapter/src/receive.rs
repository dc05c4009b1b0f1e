//! Received audio for the application: subscriptions to one user's audio or everyone's, each a
//! bounded inbox that never blocks the connection.
//!
//! The driver takes the core's received items after every input
//! ([`CoreState::take_received`](crate::media::CoreState::take_received)) and hands them to the
//! connection's [`AudioRouter`], which puts each into every matching [`Inbox`]. An inbox keeps
//! each sender's items in its own [`ReceiveQueue`](voice_proto::receive::ReceiveQueue) of
//! [`ReceiveConfig::queue_frames`](voice_proto::ReceiveConfig::queue_frames) frames (the senders
//! taken in turn): a subscriber that reads too slowly loses frames, counted
//! ([`Inbox::dropped`]) and reported to it as a loss marker, and the connection never waits for
//! it. The media workers have no part in this: only the driver receives.
//!
//! Both adapters wrap an inbox in their own waiting (a `Notify` for Tokio, the inbox's
//! condition variable for blocking threads).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use voice_proto::id::UserId;
use voice_proto::limits::RECEIVE_STREAMS;
use voice_proto::receive::{ReceiveQueues, Received};

/// Called when an inbox gets an item or ends (for async waiters); must not block.
pub type InboxWake = Box<dyn Fn() + Send + Sync>;

/// Which received audio a subscription wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Subscription {
    /// One user's audio (all their SSRCs; items whose sender op 5 has not named yet are not
    /// theirs).
    User(UserId),
    /// Everyone's, senders not named yet included.
    All,
}

impl Subscription {
    fn wants(self, received: &Received) -> bool {
        match self {
            Subscription::All => true,
            Subscription::User(user) => received.user_id == Some(user),
        }
    }
}

/// A connection's subscriptions; the driver routes every received item through it.
pub struct AudioRouter {
    subscribers: Mutex<Vec<Weak<Inbox>>>,
    /// Frames each inbox keeps per sender.
    queue_frames: usize,
    /// Whether the connection receives at all (`Config::receive`).
    enabled: bool,
    ended: Mutex<bool>,
}

impl std::fmt::Debug for AudioRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioRouter")
            .field("queue_frames", &self.queue_frames)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl AudioRouter {
    /// A router for a connection whose core receives with `receive` (`None`: receive is off,
    /// subscriptions will only end).
    pub fn new(receive: Option<voice_proto::ReceiveConfig>) -> Self {
        Self {
            subscribers: Mutex::new(Vec::new()),
            queue_frames: receive.map_or(1, |config| config.queue_frames),
            enabled: receive.is_some(),
            ended: Mutex::new(false),
        }
    }

    /// Whether the connection receives audio at all.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// A new inbox for `subscription`; `wake` is called whenever it gets an item or ends. An
    /// inbox made after the connection ended is ended already.
    pub fn subscribe(&self, subscription: Subscription, wake: Option<InboxWake>) -> Arc<Inbox> {
        if !self.enabled {
            tracing::warn!("subscribing to received audio while receive is off: nothing will come");
        }
        let inbox = Arc::new(Inbox {
            subscription,
            state: Mutex::new(InboxState {
                queues: ReceiveQueues::new(self.queue_frames, RECEIVE_STREAMS),
                ended: false,
            }),
            ready: Condvar::new(),
            wake,
        });
        let mut subscribers = lock(&self.subscribers);
        if *lock(&self.ended) {
            inbox.end();
        } else {
            subscribers.push(Arc::downgrade(&inbox));
        }
        inbox
    }

    /// Hands items to every inbox that wants them (each inbox is woken once).
    pub fn route(&self, items: &mut Vec<Received>) {
        if items.is_empty() {
            return;
        }
        let mut subscribers = lock(&self.subscribers);
        subscribers.retain(|weak| weak.strong_count() > 0);
        for inbox in subscribers.iter().filter_map(Weak::upgrade) {
            inbox.push(items.iter().filter(|r| inbox.subscription.wants(r)));
        }
        items.clear();
    }

    /// The connection has ended: every inbox ends once its items are read.
    pub fn end(&self) {
        let mut subscribers = lock(&self.subscribers);
        *lock(&self.ended) = true;
        for inbox in subscribers.drain(..).filter_map(|weak| weak.upgrade()) {
            inbox.end();
        }
    }

    /// Subscriptions alive now.
    pub fn subscribers(&self) -> usize {
        lock(&self.subscribers)
            .iter()
            .filter(|weak| weak.strong_count() > 0)
            .count()
    }
}

/// What [`Inbox::recv_timeout`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InboxItem {
    /// The next item.
    Item(Received),
    /// The connection has ended and every item was read.
    Ended,
    /// Nothing came in time.
    TimedOut,
}

/// One subscription's received items, bounded per sender (see the module docs).
pub struct Inbox {
    subscription: Subscription,
    state: Mutex<InboxState>,
    ready: Condvar,
    wake: Option<InboxWake>,
}

struct InboxState {
    queues: ReceiveQueues,
    ended: bool,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("subscription", &self.subscription)
            .finish_non_exhaustive()
    }
}

impl Inbox {
    /// What this inbox receives.
    pub fn subscription(&self) -> Subscription {
        self.subscription
    }

    /// The next item if one waits.
    pub fn try_recv(&self) -> Option<Received> {
        self.lock().queues.pop()
    }

    /// Whether the connection has ended and every item was read.
    pub fn is_finished(&self) -> bool {
        let state = self.lock();
        state.ended && state.queues.is_empty()
    }

    /// Waits (blocking the thread) for the next item, the end, or `timeout` (`None`: no limit).
    pub fn recv_timeout(&self, timeout: Option<Duration>) -> InboxItem {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut state = self.lock();
        loop {
            if let Some(received) = state.queues.pop() {
                return InboxItem::Item(received);
            }
            if state.ended {
                return InboxItem::Ended;
            }
            state = match deadline {
                None => self
                    .ready
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return InboxItem::TimedOut;
                    }
                    self.ready
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    /// Frames dropped because this subscriber did not read them in time (each reported to it as
    /// part of a loss marker).
    pub fn dropped(&self) -> u64 {
        self.lock().queues.dropped()
    }

    fn push<'a>(&self, items: impl Iterator<Item = &'a Received>) {
        let mut pushed = false;
        {
            let mut state = self.lock();
            for received in items {
                state.queues.push(received.clone());
                pushed = true;
            }
        }
        if pushed {
            self.notify();
        }
    }

    fn end(&self) {
        self.lock().ended = true;
        self.notify();
    }

    fn notify(&self) {
        self.ready.notify_all();
        if let Some(wake) = &self.wake {
            wake();
        }
    }

    fn lock(&self) -> MutexGuard<'_, InboxState> {
        lock(&self.state)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
