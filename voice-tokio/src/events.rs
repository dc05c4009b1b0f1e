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
///
/// An owned handle ([`Connection::events`](crate::Connection::events)): move it into a task of
/// its own, or turn it into a [`Stream`](futures_util::Stream) with
/// [`into_stream`](Self::into_stream). Clones read the same queue (each event goes to one of
/// them).
///
/// ```no_run
/// # async fn run(connection: voice_tokio::Connection) {
/// let events = connection.events();
/// tokio::spawn(async move {
///     while let Some(event) = events.recv().await {
///         println!("{event:?}");
///     }
/// });
/// // `connection` stays here: play, move, disconnect.
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Events {
    channel: Arc<EventChannel>,
}

impl Events {
    pub(crate) fn new(channel: Arc<EventChannel>) -> Self {
        Self { channel }
    }

    /// The next event, waiting for it; `None` once the connection has ended and every event
    /// was read.
    pub async fn recv(&self) -> Option<Event> {
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
    pub fn try_recv(&self) -> Option<Event> {
        self.channel.try_recv()
    }

    /// The events as a [`Stream`](futures_util::Stream), ending once the connection has ended
    /// and every event was read.
    pub fn into_stream(self) -> impl futures_util::Stream<Item = Event> + Send + 'static {
        futures_util::stream::unfold(self, |events| async move {
            let event = events.recv().await?;
            Some((event, events))
        })
    }
}
