//! Other members' audio in blocking form: per-user streams and an all-users stream, each bounded
//! (`voice_adapter::AudioRouter`).

use std::sync::Arc;
use std::time::Duration;

use voice_adapter::{AudioRouter, Inbox, InboxItem, Subscription};
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
    /// has not named yet are not theirs.
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
        AudioStream {
            inbox: self.router.subscribe(subscription, None),
        }
    }
}

/// One subscription's received audio, oldest first, in blocking form; also an [`Iterator`] that
/// blocks for the next item and ends with the connection. Bounded: each sender's items wait in
/// a queue of [`ReceiveConfig::queue_frames`](voice_proto::ReceiveConfig::queue_frames) frames;
/// frames a slow reader leaves there beyond it are dropped, counted
/// ([`dropped`](Self::dropped)) and reported to it as one
/// [`Item::Lost`](voice_proto::receive::Item::Lost), and the connection never waits for the
/// reader. Dropping the stream ends the subscription.
///
/// ```no_run
/// # fn run(connection: voice_std::Connection, user: voice_proto::id::UserId) {
/// use voice_std::Item;
/// for received in connection.receiver().subscribe(user) {
///     if let Item::Frame(frame) = received.item {
///         println!("{} bytes of Opus, sequence {}", frame.opus.len(), frame.sequence);
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct AudioStream {
    inbox: Arc<Inbox>,
}

impl AudioStream {
    /// The next item, blocking until one comes; `None` once the connection has ended and every
    /// item was read.
    pub fn recv(&self) -> Option<Received> {
        match self.inbox.recv_timeout(None) {
            InboxItem::Item(received) => Some(received),
            _ => None,
        }
    }

    /// The next item, blocking at most `timeout`; `None` when nothing came in time or the
    /// connection has ended (see [`is_finished`](Self::is_finished)).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Received> {
        match self.inbox.recv_timeout(Some(timeout)) {
            InboxItem::Item(received) => Some(received),
            _ => None,
        }
    }

    /// The next item if one waits, without blocking.
    pub fn try_recv(&self) -> Option<Received> {
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

impl Iterator for AudioStream {
    type Item = Received;

    fn next(&mut self) -> Option<Received> {
        self.recv()
    }
}
