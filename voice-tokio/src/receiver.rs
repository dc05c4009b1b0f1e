//! Other members' audio: per-user streams and an all-users stream, each bounded
//! (`voice_adapter::AudioRouter`).

use std::sync::Arc;

use tokio::sync::Notify;
use voice_adapter::{AudioRouter, Inbox, Subscription};
use voice_proto::id::UserId;
use voice_proto::receive::Received;

/// Hands out streams of the audio other members send on a connection
/// ([`Connection::receiver`](crate::Connection::receiver)). Cheap to clone.
///
/// Receive must be on: [`VoiceConfig::receiving`](crate::VoiceConfig::receiving), a `receive` in
/// [`VoiceConfig::core`](crate::VoiceConfig::core), or
/// [`JoinOptions::receive`](crate::JoinOptions::receive); otherwise the core decrypts nothing and
/// every stream only ends with the connection.
#[derive(Clone, Debug)]
pub struct Receiver {
    router: Arc<AudioRouter>,
}

impl Receiver {
    pub(crate) fn new(router: Arc<AudioRouter>) -> Self {
        Self { router }
    }

    /// `user`'s audio from now on: their frames in playout order (per SSRC), loss markers, and
    /// the start and end of each talk spurt ([`voice_proto::receive`]). Items whose sender op 5
    /// has not named yet are not theirs (the playout buffer's hold at a new sender's start
    /// usually gives op 5 the time to come).
    pub fn subscribe(&self, user: UserId) -> AudioStream {
        self.stream(Subscription::User(user))
    }

    /// Every member's audio from now on, the senders taken in turn.
    pub fn subscribe_all(&self) -> AudioStream {
        self.stream(Subscription::All)
    }

    /// Whether the connection receives audio at all.
    pub fn is_enabled(&self) -> bool {
        self.router.is_enabled()
    }

    fn stream(&self, subscription: Subscription) -> AudioStream {
        let ready = Arc::new(Notify::new());
        let wake = Arc::clone(&ready);
        let inbox = self
            .router
            .subscribe(subscription, Some(Box::new(move || wake.notify_one())));
        AudioStream { inbox, ready }
    }
}

/// One subscription's received audio, oldest first. Bounded: each sender's items wait in a queue
/// of [`ReceiveConfig::queue_frames`](voice_proto::ReceiveConfig::queue_frames) frames; frames a
/// slow reader leaves there beyond it are dropped, counted ([`dropped`](Self::dropped)) and
/// reported to it as one [`Item::Lost`](voice_proto::receive::Item::Lost), and the connection
/// never waits for the reader. Dropping the stream ends the subscription.
#[derive(Debug)]
pub struct AudioStream {
    inbox: Arc<Inbox>,
    ready: Arc<Notify>,
}

impl AudioStream {
    /// The next item, waiting for it; `None` once the connection has ended and every item was
    /// read.
    pub async fn recv(&mut self) -> Option<Received> {
        loop {
            // A wake-up between the look and the wait is kept as a permit by `notify_one`.
            let ready = self.ready.notified();
            if let Some(received) = self.inbox.try_recv() {
                return Some(received);
            }
            if self.inbox.is_finished() {
                return None;
            }
            ready.await;
        }
    }

    /// The next item if one waits, without waiting.
    pub fn try_recv(&mut self) -> Option<Received> {
        self.inbox.try_recv()
    }

    /// Frames dropped because this stream was not read in time.
    pub fn dropped(&self) -> u64 {
        self.inbox.dropped()
    }

    /// Whether the connection has ended and every item was read.
    pub fn is_finished(&self) -> bool {
        self.inbox.is_finished()
    }
}
