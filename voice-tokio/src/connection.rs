//! The application's handle on one voice connection.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use tokio_tungstenite::Connector;
use tracing::Instrument;
use voice_adapter::media::{DriverWake, MediaScheduler, SharedCore};
use voice_adapter::{tls_client_config, AudioRouter, Dispatch, PendingJoin};
use voice_proto::id::{ChannelId, GuildId};
use voice_proto::payload::SpeakingFlags;
use voice_proto::{AnyState, ConnectionInfo, Identifying};

use crate::driver::{Channels, Driver};
use crate::events::{EventChannel, Events};
use crate::receiver::Receiver;
use crate::{GatewayLink, IntoChannelId, JoinError, SendError, VoiceConfig};

/// How the media worker and the application wake a connection's driver task and its senders.
#[derive(Debug, Default)]
pub(crate) struct TokioWake {
    /// The driver has outputs to carry out.
    pub(crate) driver: Notify,
    /// The playout queue has room again.
    senders: Notify,
}

impl DriverWake for TokioWake {
    fn wake_driver(&self) {
        self.driver.notify_one();
    }

    fn wake_senders(&self) {
        self.senders.notify_waiters();
    }
}

/// The core shared by a connection's driver task, its media worker and the application.
pub(crate) type Shared = Arc<SharedCore<TokioWake>>;

/// Queues Opus frames (one 20 ms frame each) on a connection's playout. Cheap to clone. Bounded:
/// [`send`](Self::send) waits while the queue is full, so a producer never runs ahead of real
/// time by more than the queue ([`Config::playout_queue_frames`](voice_proto::Config), one
/// second by default); it is woken when the queue is half empty again, not once per frame.
#[derive(Clone)]
pub struct OpusSender {
    shared: Shared,
}

impl std::fmt::Debug for OpusSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusSender").finish_non_exhaustive()
    }
}

impl OpusSender {
    /// Queues one frame, waiting while the queue is full. Frames queued while the connection
    /// resumes, reconnects or waits for DAVE keys wait in the queue; none is lost.
    pub async fn send(&self, frame: impl AsRef<[u8]>) -> Result<(), SendError> {
        let frame = frame.as_ref();
        loop {
            // Registered before looking at the queue, so a wake-up in between is not missed.
            let room = self.shared.wake().senders.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.shared.try_queue_opus(frame)? {
                return Ok(());
            }
            room.await;
        }
    }

    /// Queues one frame if there is room now.
    pub fn try_send(&self, frame: impl AsRef<[u8]>) -> Result<bool, SendError> {
        self.shared.try_queue_opus(frame.as_ref())
    }
}

/// A joined voice channel: a handle, cheap to clone, shared by the application's tasks.
///
/// A connection made by [`Voice::join_channel`](crate::Voice::join_channel) is also kept by its
/// `Voice` ([`Voice::connection`](crate::Voice::connection)) until [`disconnect`](Self::disconnect),
/// [`Voice::leave`](crate::Voice::leave) or its end: dropping the application's handles does
/// not leave the channel, dropping the `Voice` does. One made by [`connect`](Self::connect)
/// leaves when its last handle is dropped.
#[derive(Clone, Debug)]
pub struct Connection {
    inner: Arc<Inner>,
}

/// What every handle of one connection shares; dropping it (the last handle) stops the driver,
/// which leaves the channel.
#[derive(Debug)]
struct Inner {
    shared: Shared,
    disconnect: mpsc::UnboundedSender<oneshot::Sender<()>>,
    events: Arc<EventChannel>,
    router: Arc<AudioRouter>,
    task: Mutex<Option<JoinHandle<()>>>,
    guild_id: GuildId,
}

impl Connection {
    /// Connects with connection info the caller already holds (endpoint, token, session id),
    /// without a main gateway: Lavalink-style audio nodes, tests against a local server. A fresh
    /// reconnect identifies again with the same credentials.
    pub async fn connect(info: ConnectionInfo, config: VoiceConfig) -> Result<Self, JoinError> {
        let span = connection_span(info.guild_id, info.channel_id);
        let state = Identifying::connect(Instant::now(), config.core_with_fresh_seeds(), info)?;
        Self::spawn(AnyState::from(state), None, None, &config, span).await
    }

    /// Starts the driver task for `state` and waits until the session is established. When this
    /// future is dropped before that (the caller gave up on the join), the driver notices and
    /// leaves the channel.
    pub(crate) async fn spawn(
        state: AnyState,
        gateway: Option<Arc<dyn GatewayLink>>,
        dispatches: Option<mpsc::UnboundedReceiver<Dispatch>>,
        config: &VoiceConfig,
        span: tracing::Span,
    ) -> Result<Self, JoinError> {
        let guild_id = state.guild_id();
        let connector = Connector::Rustls(tls_client_config(&config.extra_root_certificates)?);
        let scheduler = MediaScheduler::shared(config.media_workers);
        let router = Arc::new(AudioRouter::new(state.config().receive));
        let shared = SharedCore::new(state, TokioWake::default(), &scheduler)
            .map_err(|e| JoinError::Thread(e.to_string()))?;
        let (disconnect, disconnects) = mpsc::unbounded_channel();
        let events = Arc::new(EventChannel::new(config.event_queue));
        let (ready_tx, ready) = oneshot::channel();
        let wake = Arc::clone(&shared);
        // Held until this future returns or is dropped: dropping it early wakes the driver,
        // which then leaves the channel (issue 14, row 2).
        let (join, _caller) = PendingJoin::with_caller(
            move |outcome| {
                let _ = ready_tx.send(outcome);
            },
            move || wake.wake().driver.notify_one(),
        );
        let driver = Driver::new(
            Arc::clone(&shared),
            gateway,
            connector,
            config.close_timeout,
            Channels {
                disconnects,
                dispatches,
                events: Arc::clone(&events),
                join,
                router: Arc::clone(&router),
            },
        );
        let task = tokio::spawn(driver.run().instrument(span));
        match ready.await {
            Ok(Ok(())) => Ok(Self {
                inner: Arc::new(Inner {
                    shared,
                    disconnect,
                    events,
                    router,
                    task: Mutex::new(Some(task)),
                    guild_id,
                }),
            }),
            Ok(Err(error)) => {
                let _ = task.await;
                Err(error)
            }
            Err(_) => Err(JoinError::DriverEnded),
        }
    }

    /// Sets the speaking flags (op 5): Microphone, Soundshare, Priority. Audio announces
    /// Microphone by itself if this is never called.
    pub fn speaking(&self, flags: SpeakingFlags) {
        self.inner.shared.speaking(flags);
    }

    /// The guild of this connection.
    pub fn guild_id(&self) -> GuildId {
        self.inner.guild_id
    }

    /// The channel op 4 last asked for, and the self-mute and self-deafen flags it carried;
    /// `None` for a connection made without a main gateway ([`connect`](Self::connect)).
    pub fn voice_state(&self) -> Option<(ChannelId, bool, bool)> {
        self.inner.shared.lock().state.voice_state()
    }

    /// Mutes or unmutes the bot (op 4 with the same channel). `false` without a main gateway
    /// or once the connection ended.
    pub fn set_self_mute(&self, mute: bool) -> bool {
        (self.inner.shared).update_voice_state(|channel, _, deaf| (channel, mute, deaf))
    }

    /// Deafens or undeafens the bot (op 4 with the same channel). `false` without a main
    /// gateway or once the connection ended.
    pub fn set_self_deaf(&self, deaf: bool) -> bool {
        (self.inner.shared).update_voice_state(|channel, mute, _| (channel, mute, deaf))
    }

    /// Moves the bot to another voice channel of the guild: op 4 with `channel_id`; the
    /// connection follows Discord's answer like any move (a fresh session on the server
    /// Discord names, [`Event::Reconnecting`](voice_proto::Event::Reconnecting) then
    /// `Connected`), queued audio waiting meanwhile. `false` without a main gateway or once the
    /// connection ended. [`Voice::join_channel`](crate::Voice::join_channel) on a connected
    /// guild does this.
    pub fn move_to(&self, channel_id: impl IntoChannelId) -> bool {
        let channel_id = channel_id.into_channel_id();
        (self.inner.shared).update_voice_state(|_, mute, deaf| (channel_id, mute, deaf))
    }

    /// A sender of Opus frames for the connection's playout: one frame per 20 ms on a drift-free
    /// schedule; when the queue runs dry, the five silence frames follow and the stream goes
    /// quiet until frames come again. While the session cannot send audio (reconnecting,
    /// resuming, or DAVE keys pending) frames wait in the queue
    /// ([`Event::PlayoutHeld`](voice_proto::Event::PlayoutHeld) says so); none is lost or sent
    /// unencrypted into an end-to-end encrypted call.
    pub fn opus_send(&self) -> OpusSender {
        OpusSender {
            shared: Arc::clone(&self.inner.shared),
        }
    }

    /// Waits until every frame queued so far has been sent, followed by the five trailing
    /// silence frames. Returns early if the connection ends.
    pub fn flush(&self) -> impl Future<Output = ()> + Send + 'static {
        let (done, wait) = oneshot::channel();
        self.inner.shared.lock().when_flushed(move || {
            let _ = done.send(());
        });
        async move {
            let _ = wait.await;
        }
    }

    /// Drops the queued frames and ends the talk spurt now: the five silence frames follow, then
    /// Speaking 0. Returns how many frames were dropped.
    pub fn stop_speaking(&self) -> usize {
        self.inner.shared.stop_speaking()
    }

    /// Figures of the connection ([`Stats`](voice_proto::Stats)): packets and bytes sent and
    /// received, the websocket's round trip (heartbeat ACK) and the media path's (UDP
    /// keepalive echo, when the server echoes), resumes and reconnects, the DAVE epoch and
    /// frame counters, frames queued.
    pub fn stats(&self) -> voice_proto::Stats {
        self.inner.shared.stats()
    }

    /// Counters of the receive side: every sender's playout buffer added up (frames, losses,
    /// late packets, duplicates, spurts), frames the core dropped for want of room, senders
    /// followed. `None` with receive off.
    pub fn receive_stats(&self) -> Option<voice_proto::receive::ReceiveStats> {
        self.inner.shared.receive_stats()
    }

    /// The connection's events, as a handle the application can move into a task of its own
    /// while keeping this one: speaking, clients joining or leaving, reconnects, holds of the
    /// playout, the end. Control events are never dropped for the others ([`Events`]).
    /// Received audio is not among them: see [`receiver`](Self::receiver). Every call gives a
    /// handle on the same queue: each event goes to one reader.
    pub fn events(&self) -> Events {
        Events::new(Arc::clone(&self.inner.events))
    }

    /// Streams of the audio other members send (receive must be on:
    /// [`VoiceConfig::receiving`](crate::VoiceConfig::receiving) or
    /// [`JoinOptions::receive`](crate::JoinOptions::receive)): `receiver().subscribe(user)` for
    /// one user, `subscribe_all()` for everyone, each ordered by the core's playout buffer with
    /// loss markers and talk-spurt boundaries, and bounded without ever holding up the
    /// connection.
    pub fn receiver(&self) -> Receiver {
        Receiver::new(Arc::clone(&self.inner.router))
    }

    /// Leaves the channel (op 4 with a null channel when joined through a main gateway), closes the
    /// websocket with 1000 and the UDP socket, and waits for the task to end. After the
    /// connection ended by itself (a fatal close, too many reconnects; it left the channel then)
    /// this only waits for the task.
    /// Other handles of the connection see it ended.
    pub async fn disconnect(self) {
        let (done, wait) = oneshot::channel();
        if self.inner.disconnect.send(done).is_ok() {
            let _ = wait.await;
        }
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Whether the connection's task has ended (after a fatal error or a disconnect).
    pub fn is_finished(&self) -> bool {
        // The driver holds the receiving end until it stops.
        self.inner.disconnect.is_closed()
    }
}

/// The span every log line of one connection's driver is in: its guild and channel, never a
/// token, a session id or a key.
pub(crate) fn connection_span(guild_id: GuildId, channel_id: Option<ChannelId>) -> tracing::Span {
    tracing::info_span!(
        "voice_connection",
        guild_id = guild_id.0,
        channel_id = channel_id.map(|c| c.0),
    )
}
