//! The application's stream of a connection's events, with room kept for control events
//! (`voice_adapter::EventQueue`): received audio or unknown opcodes that the application does
//! not read in time are dropped, `Connected`, `Reconnecting`, `Resumed`, `Disconnected`,
//! `Closed` never are.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;
use voice_adapter::EventQueue;
use voice_proto::Event;

/// What the driver and the application's [`Events`] share.
#[derive(Debug)]
pub(crate) struct EventChannel {
    state: Mutex<ChannelState>,
    ready: Notify,
}

#[derive(Debug)]
struct ChannelState {
    queue: EventQueue,
    /// The driver has ended: no event will come after those queued.
    ended: bool,
}

impl EventChannel {
    /// A channel keeping at most `capacity` data events (control events besides).
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(ChannelState {
                queue: EventQueue::new(capacity),
                ended: false,
            }),
            ready: Notify::new(),
        })
    }

    /// Queues an event for the application; `false` when one was dropped to make it fit.
    pub(crate) fn push(&self, event: Event) -> bool {
        let kept = self.lock().queue.push(event);
        self.ready.notify_one();
        kept
    }

    /// The driver ends: the application reads what is queued, then the end of the stream.
    pub(crate) fn end(&self) {
        self.lock().ended = true;
        self.ready.notify_one();
    }

    /// Events dropped because the application did not read them in time.
    pub(crate) fn dropped(&self) -> u64 {
        self.lock().queue.dropped()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ChannelState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection's events, oldest first: speaking, clients joining or leaving, received audio,
/// reconnects, holds of the playout, the end. Bounded
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
            let ready = self.channel.ready.notified();
            {
                let mut state = self.channel.lock();
                if let Some(event) = state.queue.pop() {
                    return Some(event);
                }
                if state.ended {
                    return None;
                }
            }
            ready.await;
        }
    }

    /// The next event if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.channel.lock().queue.pop()
    }
}
