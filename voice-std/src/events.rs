//! The application's stream of a connection's events, in blocking form:
//! `voice_adapter::EventChannel` with a condition variable to wait on. Speaking updates or
//! unknown opcodes that the application does not read in time are dropped, `Connected`,
//! `Reconnecting`, `Resumed`, `Disconnected`, `Closed` never are. (Received audio has streams of
//! its own: `Connection::receiver`.)

use std::sync::{Arc, Condvar, PoisonError};
use std::time::{Duration, Instant};

use voice_adapter::Next;
use voice_proto::Event;

/// What the driver and the application's [`Events`] share.
pub(crate) type EventChannel = voice_adapter::EventChannel<Condvar>;

/// A connection's events, oldest first: speaking, clients joining or leaving, reconnects, holds
/// of the playout, the end ([`Event::Closed`], the last event of every connection).
///
/// Bounded: at most [`VoiceConfig::event_queue`](crate::VoiceConfig::event_queue) data events
/// wait; one more that finds them unread is dropped (counted in a warning when the connection
/// ends). Control events (`Connected`, `Reconnecting`, `Resumed`, `Disconnected`, `Closed`,
/// `PlayoutHeld`, `PlayoutResumed`) are never dropped for the others, so an application that
/// reads slowly still sees every change of the connection's state
/// ([`voice_adapter::EventQueue`]).
///
/// Memory grows with what waits, not with the bound: a connection whose events are read keeps
/// almost nothing here.
///
/// The methods take `&self` and never hold a lock while the application handles an event; more
/// than one thread may read (each event goes to one of them).
///
/// ```no_run
/// # fn run(connection: voice_std::Connection) {
/// use std::time::Duration;
/// use voice_std::Event;
///
/// // Everything that came while the application was busy:
/// for event in connection.events().try_iter() {
///     println!("{event:?}");
/// }
/// // Or wait, with a bound:
/// if let Some(Event::Closed { error }) = connection.events().recv_timeout(Duration::from_secs(1)) {
///     eprintln!("the connection ended: {error}");
/// }
/// // Or a thread of its own, until the connection has ended:
/// while let Some(event) = connection.events().recv() {
///     println!("{event:?}");
/// }
/// # }
/// ```
///
/// An owned handle ([`Connection::events`](crate::Connection::events)): move it to a thread of
/// its own while the application keeps the connection. Clones read the same queue.
#[derive(Clone, Debug)]
pub struct Events {
    channel: Arc<EventChannel>,
}

impl Events {
    pub(crate) fn new(channel: Arc<EventChannel>) -> Self {
        Self { channel }
    }

    /// The next event, blocking until one comes; `None` once the connection has ended and
    /// every event was read (the last one is [`Event::Closed`]).
    pub fn recv(&self) -> Option<Event> {
        self.recv_until(None)
    }

    /// The next event if one waits, without blocking.
    pub fn try_recv(&self) -> Option<Event> {
        self.channel.try_recv()
    }

    /// The next event, blocking at most `timeout`; `None` when none came in time, or the
    /// connection has ended and every event was read
    /// ([`Connection::is_finished`](crate::Connection::is_finished) tells which).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        // A timeout too long for an `Instant` waits like `recv`.
        self.recv_until(Instant::now().checked_add(timeout))
    }

    /// The events waiting now, oldest first, without blocking: ends when none is left (events
    /// that come meanwhile are included).
    pub fn try_iter(&self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(|| self.try_recv())
    }

    /// Waits until `deadline` (`None`: without bound) for an event or the end.
    fn recv_until(&self, deadline: Option<Instant>) -> Option<Event> {
        let signal = self.channel.signal();
        let mut queue = self.channel.lock();
        loop {
            match queue.next_event() {
                Next::Event(event) => return Some(event),
                Next::Ended => return None,
                Next::Wait => {}
            }
            // A poisoned lock still guards a consistent queue: nothing panics while holding it.
            queue = match deadline {
                None => signal.wait(queue).unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.checked_duration_since(Instant::now())?;
                    let waited = signal.wait_timeout(queue, left);
                    waited.unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
    }
}
