//! What a connection's driver and the application's events handle share: the [`EventQueue`]
//! behind a mutex, and the wake-up of a reader waiting for it. The adapters differ only in that
//! wake-up (voice-tokio's `tokio::sync::Notify`, voice-std's `std::sync::Condvar`) and in how
//! their reader waits on it.

use std::sync::{Mutex, MutexGuard, PoisonError};

use voice_proto::Event;

use crate::event_queue::{EventQueue, Next};

/// Wakes a reader waiting for an [`EventChannel`]: called after every push and at the end, with
/// the queue's lock released. Implemented for `std::sync::Condvar` and, with the `tokio`
/// feature, for `tokio::sync::Notify`.
pub trait EventSignal: Default + Send + Sync + 'static {
    /// Wakes the waiting reader (or the next one to wait).
    fn signal(&self);
}

impl EventSignal for std::sync::Condvar {
    fn signal(&self) {
        self.notify_all();
    }
}

#[cfg(feature = "tokio")]
impl EventSignal for tokio::sync::Notify {
    fn signal(&self) {
        // Stores a permit when no task waits yet: a push between a reader's check and its wait
        // is not lost.
        self.notify_one();
    }
}

/// A connection's events on their way from its driver to the application: an [`EventQueue`]
/// (control events never dropped for data events, the end of the stream) and the wake-up `S`
/// of its reader.
#[derive(Debug)]
pub struct EventChannel<S> {
    queue: Mutex<EventQueue>,
    signal: S,
}

impl<S: EventSignal> EventChannel<S> {
    /// A channel keeping at most `capacity` data events (control events besides).
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: Mutex::new(EventQueue::new(capacity)),
            signal: S::default(),
        }
    }

    /// Queues an event for the application and wakes its reader; `false` when one was dropped
    /// to make it fit ([`EventQueue::push`]).
    pub fn push(&self, event: Event) -> bool {
        let kept = self.lock().push(event);
        self.signal.signal();
        kept
    }

    /// The driver has stopped: the reader reads what is queued, then the end.
    pub fn end(&self) {
        self.lock().end();
        self.signal.signal();
    }

    /// The oldest event, or whether to wait or stop ([`EventQueue::next_event`]).
    pub fn next_event(&self) -> Next {
        self.lock().next_event()
    }

    /// The oldest event, if one waits.
    pub fn try_recv(&self) -> Option<Event> {
        self.lock().pop()
    }

    /// Events dropped because the application did not read them in time.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped()
    }

    /// The queue itself, locked: a reader that waits on a condition variable needs the guard.
    pub fn lock(&self) -> MutexGuard<'_, EventQueue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The reader's wake-up, to wait on.
    pub fn signal(&self) -> &S {
        &self.signal
    }
}
