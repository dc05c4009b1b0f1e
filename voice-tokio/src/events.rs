//! The application's stream of a connection's events: `voice_adapter::EventChannel` with a
//! `Notify` to wait on. Speaking updates or unknown opcodes that the application does not read
//! in time are dropped, `Connected`, `Reconnecting`, `Resumed`, `Disconnected`, `Closed` never
//! are. (Received audio has streams of its own: `Connection::receiver`.)

use std::sync::Arc;

use tokio::sync::Notify;
use voice_adapter::Next;
use voice_proto::Event;

/// What the driver and the application's [`Events`] share.
pub(crate) type EventChannel = voice_adapter::EventChannel<Notify>;

/// A connection's events, oldest first: speaking, clients joining or leaving, reconnects, holds
/// of the playout, the end. Bounded
/// ([`VoiceConfig::event_queue`](crate::VoiceConfig::event_queue) data events, dropped and
/// counted when the application reads too slowly), except for control events, which are never
/// dropped for the others.
#[derive(Debug)]
pub struct Events {
    channel: Arc<EventChannel>,
}

impl Events {
    pub(crate) fn new(channel: Arc<EventChannel>) -> Self {
        Self { channel }
    }

    /// The next event, waiting for it; `None` once the connection has ended and every event
    /// was read.
    pub async fn recv(&mut self) -> Option<Event> {
        loop {
            let ready = self.channel.signal().notified();
            match self.channel.next_event() {
                Next::Event(event) => return Some(event),
                Next::Ended => return None,
                Next::Wait => ready.await,
            }
        }
    }

    /// The next event if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.channel.try_recv()
    }
}
