//! The application's handle on one voice connection.

use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::Connector;
use voice_adapter::{tls_client_config, Dispatch, PendingJoin};
use voice_proto::payload::SpeakingFlags;
use voice_proto::{AnyState, ConnectionInfo, Event, Identifying};

use crate::driver::{Channels, Command, Driver};
use crate::{GatewayLink, JoinError, VoiceConfig};

/// Sends Opus frames (one 20 ms frame each) to a connection. Bounded: `send` waits when the queue
/// is full, so a producer can never run ahead of real time by more than the queue.
pub type OpusSender = mpsc::Sender<Bytes>;

/// A joined voice channel. Dropping it leaves the channel and ends its task.
#[derive(Debug)]
pub struct Connection {
    commands: mpsc::UnboundedSender<Command>,
    frames: OpusSender,
    events: mpsc::Receiver<Event>,
    task: Option<JoinHandle<()>>,
}

impl Connection {
    /// Connects with connection info the caller already holds (endpoint, token, session id),
    /// without a main gateway: Lavalink-style audio nodes, tests against a local server. A fresh
    /// reconnect identifies again with the same credentials.
    pub async fn connect(info: ConnectionInfo, config: VoiceConfig) -> Result<Self, JoinError> {
        let state = Identifying::connect(Instant::now(), config.core_with_fresh_rtp_seed(), info)?;
        Self::spawn(AnyState::from(state), None, None, &config).await
    }

    /// Starts the driver task for `state` and waits until the session is established.
    pub(crate) async fn spawn(
        state: AnyState,
        gateway: Option<std::sync::Arc<dyn GatewayLink>>,
        dispatches: Option<mpsc::UnboundedReceiver<Dispatch>>,
        config: &VoiceConfig,
    ) -> Result<Self, JoinError> {
        let connector = Connector::Rustls(tls_client_config(&config.extra_root_certificates)?);
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (frames_tx, frames) = mpsc::channel(config.opus_queue_frames.max(1));
        let (events_tx, events) = mpsc::channel(config.event_queue.max(1));
        let (ready_tx, ready) = oneshot::channel();
        let driver = Driver::new(
            state,
            gateway,
            connector,
            config.close_timeout,
            Channels {
                commands,
                dispatches,
                frames,
                events: events_tx,
                join: PendingJoin::new(move |outcome| {
                    let _ = ready_tx.send(outcome);
                }),
            },
        );
        let task = tokio::spawn(driver.run());
        match ready.await {
            Ok(Ok(())) => Ok(Self {
                commands: commands_tx,
                frames: frames_tx,
                events,
                task: Some(task),
            }),
            Ok(Err(error)) => {
                let _ = task.await;
                Err(error)
            }
            Err(_) => Err(JoinError::DriverEnded),
        }
    }

    /// Sets the speaking flags (op 5): Microphone, Soundshare, Priority.
    pub fn speaking(&self, flags: SpeakingFlags) {
        let _ = self.commands.send(Command::Speaking(flags));
    }

    /// A sender of Opus frames. The driver sends one per 20 ms on a drift-free schedule; when the
    /// queue runs dry it sends the five silence frames and goes quiet until frames come again.
    pub fn opus_send(&self) -> OpusSender {
        self.frames.clone()
    }

    /// Waits until every frame queued so far has been sent, followed by the five trailing silence
    /// frames (which are skipped when the session dropped right then). Returns early if the
    /// connection ends.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// Ends the talk spurt now: the five silence frames follow, then Speaking 0.
    pub fn stop_speaking(&self) {
        let _ = self.commands.send(Command::StopSpeaking);
    }

    /// Events: speaking, clients joining or leaving, received audio, reconnects, the end.
    pub fn events(&mut self) -> &mut mpsc::Receiver<Event> {
        &mut self.events
    }

    /// Leaves the channel (op 4 with a null channel when joined through a main gateway), closes the
    /// websocket with 1000 and the UDP socket, and waits for the task to end.
    pub async fn disconnect(mut self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Disconnect(done)).is_ok() {
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
