//! The application's handle on one voice connection.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use tokio_tungstenite::Connector;
use voice_adapter::media::{DriverWake, MediaScheduler, SharedCore};
use voice_adapter::{tls_client_config, AudioRouter, Dispatch, PendingJoin};
use voice_proto::payload::SpeakingFlags;
use voice_proto::{AnyState, ConnectionInfo, Identifying};

use crate::driver::{Channels, Driver};
use crate::events::{EventChannel, Events};
use crate::receiver::Receiver;
use crate::{GatewayLink, JoinError, SendError, VoiceConfig};

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

/// A joined voice channel. Dropping it leaves the channel and ends its task.
#[derive(Debug)]
pub struct Connection {
    shared: Shared,
    disconnect: mpsc::UnboundedSender<oneshot::Sender<()>>,
    events: Events,
    router: Arc<AudioRouter>,
    task: Option<JoinHandle<()>>,
}

impl Connection {
    /// Connects with connection info the caller already holds (endpoint, token, session id),
    /// without a main gateway: Lavalink-style audio nodes, tests against a local server. A fresh
    /// reconnect identifies again with the same credentials.
    pub async fn connect(info: ConnectionInfo, config: VoiceConfig) -> Result<Self, JoinError> {
        let state = Identifying::connect(Instant::now(), config.core_with_fresh_seeds(), info)?;
        Self::spawn(AnyState::from(state), None, None, &config).await
    }

    /// Starts the driver task for `state` and waits until the session is established. When this
    /// future is dropped before that (the caller gave up on the join), the driver notices and
    /// leaves the channel.
    pub(crate) async fn spawn(
        state: AnyState,
        gateway: Option<Arc<dyn GatewayLink>>,
        dispatches: Option<mpsc::UnboundedReceiver<Dispatch>>,
        config: &VoiceConfig,
    ) -> Result<Self, JoinError> {
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
        let task = tokio::spawn(driver.run());
        match ready.await {
            Ok(Ok(())) => Ok(Self {
                shared,
                disconnect,
                events: Events::new(events),
                router,
                task: Some(task),
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
        self.shared.speaking(flags);
    }

    /// A sender of Opus frames for the connection's playout: one frame per 20 ms on a drift-free
    /// schedule; when the queue runs dry, the five silence frames follow and the stream goes
    /// quiet until frames come again. While the session cannot send audio (reconnecting,
    /// resuming, or DAVE keys pending) frames wait in the queue
    /// ([`Event::PlayoutHeld`](voice_proto::Event::PlayoutHeld) says so); none is lost or sent
    /// unencrypted into an end-to-end encrypted call.
    pub fn opus_send(&self) -> OpusSender {
        OpusSender {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Waits until every frame queued so far has been sent, followed by the five trailing
    /// silence frames. Returns early if the connection ends.
    pub fn flush(&self) -> impl Future<Output = ()> + Send + 'static {
        let (done, wait) = oneshot::channel();
        self.shared.lock().when_flushed(move || {
            let _ = done.send(());
        });
        async move {
            let _ = wait.await;
        }
    }

    /// Drops the queued frames and ends the talk spurt now: the five silence frames follow, then
    /// Speaking 0. Returns how many frames were dropped.
    pub fn stop_speaking(&self) -> usize {
        self.shared.stop_speaking()
    }

    /// Counters of the connection: packets sent and received, frames queued, resumes,
    /// reconnects, DAVE figures.
    pub fn stats(&self) -> voice_proto::Stats {
        self.shared.stats()
    }

    /// Counters of the receive side: every sender's playout buffer added up (frames, losses,
    /// late packets, duplicates, spurts), frames the core dropped for want of room, senders
    /// followed. `None` with receive off.
    pub fn receive_stats(&self) -> Option<voice_proto::receive::ReceiveStats> {
        self.shared.receive_stats()
    }

    /// Events: speaking, clients joining or leaving, reconnects, holds of the playout, the end.
    /// Control events are never dropped for the others ([`Events`]). Received audio is not among
    /// them: see [`receiver`](Self::receiver).
    pub fn events(&mut self) -> &mut Events {
        &mut self.events
    }

    /// Streams of the audio other members send (receive must be on:
    /// [`VoiceConfig::receiving`](crate::VoiceConfig::receiving) or
    /// [`JoinOptions::receive`](crate::JoinOptions::receive)): `receiver().subscribe(user)` for
    /// one user, `subscribe_all()` for everyone, each ordered by the core's playout buffer with
    /// loss markers and talk-spurt boundaries, and bounded without ever holding up the
    /// connection.
    pub fn receiver(&self) -> Receiver {
        Receiver::new(Arc::clone(&self.router))
    }

    /// Leaves the channel (op 4 with a null channel when joined through a main gateway), closes the
    /// websocket with 1000 and the UDP socket, and waits for the task to end. After the
    /// connection ended by itself (a fatal close, too many reconnects; it left the channel then)
    /// this only waits for the task.
    pub async fn disconnect(mut self) {
        let (done, wait) = oneshot::channel();
        if self.disconnect.send(done).is_ok() {
            let _ = wait.await;
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Whether the connection's task has ended (after a fatal error or a disconnect).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }
}
