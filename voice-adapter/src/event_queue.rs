//! The events waiting for the application, with room reserved for the ones that matter.
//!
//! A connection reports what the application must not miss (it connected, it is reconnecting,
//! it resumed, it was disconnected, it ended, its audio waits or flows again) among a stream of
//! events that can come fast and in any number (speaking updates, unknown opcodes, DAVE decrypt
//! failures; received audio has queues of its own, [`AudioRouter`](crate::AudioRouter)). An
//! application that reads slowly must lose the latter, never the former (issue 14, row 6). So
//! the queue keeps one order for all events, but bounds the two kinds apart:
//!
//! - **data events** (everything not listed below) take at most `capacity` places; one more is
//!   dropped and counted;
//! - **control events** ([`is_control_event`]) are always queued, whatever the data events
//!   fill; only if the application leaves [`CONTROL_EVENTS`] of them unread is the oldest
//!   control event dropped (counted) for the new one: the latest state, `Closed` last of all,
//!   is always there to read.
//!
//! The queue also knows when its stream has ended (the driver stopped: no event comes after
//! those queued), so that [`EventQueue::next_event`] tells a reader to wait or to stop. Both
//! adapters share it through an [`EventChannel`](crate::EventChannel), with their own wake-up
//! (a task's `Notify`, a condition variable).

use std::collections::VecDeque;

use voice_proto::Event;

/// Control events kept unread at most (far more than a connection produces between two reads of
/// any application that reads at all: each is a change of the connection's state).
pub const CONTROL_EVENTS: usize = 256;

/// Whether an event reports a change of the connection's state that the application must see:
/// `Connected`, `Reconnecting`, `Resumed`, `Disconnected`, `Closed`, and the playout's
/// `PlayoutHeld` / `PlayoutResumed` (e.g. audio waiting for DAVE keys).
pub fn is_control_event(event: &Event) -> bool {
    matches!(
        event,
        Event::Connected { .. }
            | Event::Reconnecting { .. }
            | Event::Resumed
            | Event::Disconnected { .. }
            | Event::Closed { .. }
            | Event::PlayoutHeld { .. }
            | Event::PlayoutResumed { .. }
    )
}

/// Events in the order they happened; data events bounded by `capacity`, control events by
/// [`CONTROL_EVENTS`] (see the module docs).
#[derive(Debug)]
pub struct EventQueue {
    events: VecDeque<Event>,
    capacity: usize,
    data: usize,
    control: usize,
    dropped: u64,
    ended: bool,
}

/// What a reader finds in an [`EventQueue`]: the oldest event, nothing yet, or the end.
#[derive(Debug)]
pub enum Next {
    /// The oldest event waiting.
    Event(Event),
    /// No event waits, and more may come: wait for the next push (or the end).
    Wait,
    /// No event waits, and none will come: the stream has ended.
    Ended,
}

impl EventQueue {
    /// A queue holding at most `capacity` data events (at least one) besides the control
    /// events.
    pub fn new(capacity: usize) -> Self {
        Self {
            events: VecDeque::new(),
            capacity: capacity.max(1),
            data: 0,
            control: 0,
            dropped: 0,
            ended: false,
        }
    }

    /// Queues `event`. Returns `false` when an event was dropped to make it fit: the new one if
    /// it is a data event and the data events are at capacity, or the oldest control event if
    /// [`CONTROL_EVENTS`] of them wait unread.
    pub fn push(&mut self, event: Event) -> bool {
        if is_control_event(&event) {
            let mut kept = true;
            if self.control >= CONTROL_EVENTS {
                if let Some(oldest) = self.events.iter().position(is_control_event) {
                    self.events.remove(oldest);
                    self.control -= 1;
                    self.dropped += 1;
                    kept = false;
                }
            }
            self.control += 1;
            self.events.push_back(event);
            return kept;
        }
        if self.data >= self.capacity {
            self.dropped += 1;
            return false;
        }
        self.data += 1;
        self.events.push_back(event);
        true
    }

    /// The oldest event.
    pub fn pop(&mut self) -> Option<Event> {
        let event = self.events.pop_front()?;
        if is_control_event(&event) {
            self.control -= 1;
        } else {
            self.data -= 1;
        }
        Some(event)
    }

    /// The oldest event; or, when none waits, whether more may come ([`Next::Wait`]) or the
    /// stream has ended ([`Next::Ended`]). Events queued before the end are read first.
    pub fn next_event(&mut self) -> Next {
        match self.pop() {
            Some(event) => Next::Event(event),
            None if self.ended => Next::Ended,
            None => Next::Wait,
        }
    }

    /// No event will come after those queued: the driver stopped.
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// Whether [`end`](Self::end) was called.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event waits.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Events dropped so far (the application did not read them in time).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}
