//! The application's handle on one voice connection.

use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use voice_adapter::{tls_client_config, PendingJoin};
use voice_proto::payload::SpeakingFlags;
use voice_proto::{AnyState, ConnectionInfo, Event, Identifying};

use crate::driver::{Command, Driver, DriverInput};
use crate::{GatewayLink, JoinError, VoiceConfig};

/// Sends Opus frames (one 20 ms frame each) to a connection. Bounded: `send` blocks while the
/// queue is full, so a producer can never run ahead of real time by more than the queue.
pub type OpusSender = SyncSender<Bytes>;

/// A joined voice channel. Dropping it leaves the channel and ends its threads.
#[derive(Debug)]
pub struct Connection {
    inbox: Sender<DriverInput>,
    frames: OpusSender,
    events: Receiver<Event>,
    thread: Option<JoinHandle<()>>,
}

impl Connection {
    /// Connects with connection info the caller already holds (endpoint, token, session id),
    /// without a main gateway. A fresh reconnect identifies again with the same credentials.
    /// Blocks until the session is established or has failed.
    pub fn connect(info: ConnectionInfo, config: VoiceConfig) -> Result<Self, JoinError> {
        let state = Identifying::connect(Instant::now(), config.core_with_fresh_rtp_seed(), info)?;
        let (inbox_sender, inbox) = mpsc::channel();
        Self::spawn(AnyState::from(state), None, inbox_sender, inbox, &config)
    }

    /// Starts the driver thread for `state` and blocks until the session is established.
    pub(crate) fn spawn(
        state: AnyState,
        gateway: Option<Arc<dyn GatewayLink>>,
        inbox_sender: Sender<DriverInput>,
        inbox: Receiver<DriverInput>,
        config: &VoiceConfig,
    ) -> Result<Self, JoinError> {
        let tls = tls_client_config(&config.extra_root_certificates)?;
        let (frames_tx, frames) = mpsc::sync_channel(config.opus_queue_frames.max(1));
        let (events_tx, events) = mpsc::sync_channel(config.event_queue.max(1));
        let (ready_tx, ready) = mpsc::sync_channel(1);
        let driver = Driver {
            state,
            gateway,
            tls,
            connect_timeout: config.core.handshake_timeout,
            inbox,
            inbox_sender: inbox_sender.clone(),
            frames,
            events: events_tx,
            join: PendingJoin::new(move |outcome| {
                let _ = ready_tx.send(outcome);
            }),
        };
        let thread = std::thread::Builder::new()
            .name("voice-driver".to_owned())
            .spawn(move || driver.run())
            .map_err(|e| JoinError::Thread(e.to_string()))?;
        match ready.recv() {
            Ok(Ok(())) => Ok(Self {
                inbox: inbox_sender,
                frames: frames_tx,
                events,
                thread: Some(thread),
            }),
            Ok(Err(error)) => {
                let _ = thread.join();
                Err(error)
            }
            Err(_) => {
                let _ = thread.join();
                Err(JoinError::DriverEnded)
            }
        }
    }

    /// Sets the speaking flags (op 5): Microphone, Soundshare, Priority.
    pub fn speaking(&self, flags: SpeakingFlags) {
        let _ = self
            .inbox
            .send(DriverInput::Command(Command::Speaking(flags)));
    }

    /// A sender of Opus frames. The driver sends one per 20 ms on a drift-free schedule; when the
    /// queue runs dry it sends the five silence frames and goes quiet until frames come again.
    /// While the session cannot send audio (reconnecting, or DAVE keys pending: joining the MLS
    /// group, or an upgrade after a downgrade) frames wait in the queue; none is lost or sent
    /// unencrypted into an end-to-end encrypted call.
    pub fn opus_send(&self) -> OpusSender {
        self.frames.clone()
    }

    /// Blocks until every frame queued so far has been sent, followed by the five trailing silence
    /// frames (which are skipped when the session dropped right then). Returns early if the
    /// connection ends.
    pub fn flush(&self) {
        let (done, wait) = mpsc::sync_channel(1);
        if self
            .inbox
            .send(DriverInput::Command(Command::Flush(done)))
            .is_ok()
        {
            let _ = wait.recv();
        }
    }

    /// Ends the talk spurt now: the five silence frames follow, then Speaking 0.
    pub fn stop_speaking(&self) {
        let _ = self.inbox.send(DriverInput::Command(Command::StopSpeaking));
    }

    /// Events: speaking, clients joining or leaving, received audio (DAVE-decrypted and attributed
    /// to its sender), reconnects, DAVE transitions and readiness, the end.
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// Leaves the channel (op 4 with a null channel when joined through a main gateway), closes the
    /// websocket with 1000 and the UDP socket, and waits until every thread has ended.
    pub fn disconnect(mut self) {
        self.shut_down();
    }

    /// Whether the connection's threads have ended (after a fatal error or a disconnect).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    fn shut_down(&mut self) {
        let (done, wait) = mpsc::sync_channel(1);
        if self
            .inbox
            .send(DriverInput::Command(Command::Disconnect(Some(done))))
            .is_ok()
        {
            let _ = wait.recv();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shut_down();
        }
    }
}
