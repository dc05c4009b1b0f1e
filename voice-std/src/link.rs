//! What the application's side of a connection (its `Connection`, its dispatch route, the media
//! worker through the shared core) and the event loop that runs it share: how to wake it, and
//! whether it has ended.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use voice_adapter::media::{DriverWake, SharedCore};

use crate::event_loop::{EventLoop, News};

/// One connection's link to the event loop that runs its driver.
pub(crate) struct Link {
    event_loop: Arc<EventLoop>,
    id: u64,
    /// A wake-up is in the loop's inbox and the driver has not looked yet: no second one is
    /// sent (one per burst of outputs, dispatches or requests, not one each).
    woken: AtomicBool,
    /// The application asked to leave.
    leave: AtomicBool,
    /// The driver has ended and every socket of the connection is closed.
    ended: Mutex<bool>,
    ended_signal: Condvar,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("id", &self.id)
            .field("ended", &self.is_ended())
            .finish_non_exhaustive()
    }
}

impl Link {
    pub(crate) fn new(event_loop: Arc<EventLoop>, id: u64) -> Self {
        Self {
            event_loop,
            id,
            woken: AtomicBool::new(false),
            leave: AtomicBool::new(false),
            ended: Mutex::new(false),
            ended_signal: Condvar::new(),
        }
    }

    /// The connection's id on its event loop.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn event_loop(&self) -> &Arc<EventLoop> {
        &self.event_loop
    }

    /// Asks the driver to look at its core, its dispatches and the leave request. Never blocks
    /// (it may be called with the core locked).
    pub(crate) fn wake(&self) {
        if !self.woken.swap(true, Ordering::AcqRel) {
            self.event_loop.send(News::Wake(self.id));
        }
    }

    /// The driver is looking now: a wake-up from here on sends a new one.
    pub(crate) fn woken(&self) {
        self.woken.store(false, Ordering::Release);
    }

    /// Asks the driver to leave the channel and end.
    pub(crate) fn leave(&self) {
        self.leave.store(true, Ordering::Release);
        self.wake();
    }

    pub(crate) fn wants_to_leave(&self) -> bool {
        self.leave.load(Ordering::Acquire)
    }

    /// The driver has ended and closed every socket; wakes whoever waits for that.
    pub(crate) fn end(&self) {
        *self.ended.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.ended_signal.notify_all();
    }

    pub(crate) fn is_ended(&self) -> bool {
        *self.ended.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until [`end`](Self::end).
    pub(crate) fn wait_ended(&self) {
        let ended = self.ended.lock().unwrap_or_else(PoisonError::into_inner);
        drop(
            self.ended_signal
                .wait_while(ended, |ended| !*ended)
                .unwrap_or_else(PoisonError::into_inner),
        );
    }
}

/// How the media worker and the application wake a connection's driver: through its link.
/// Blocking senders wait on the core itself ([`SharedCore::wait_for_room`]), so there is no
/// sender to wake here.
#[derive(Debug)]
pub(crate) struct StdWake(pub(crate) Arc<Link>);

impl DriverWake for StdWake {
    fn wake_driver(&self) {
        self.0.wake();
    }

    fn wake_senders(&self) {}
}

/// The core shared by a connection's driver, its media worker and the application.
pub(crate) type Shared = Arc<SharedCore<StdWake>>;
