//! The application's handle on one voice connection.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use voice_adapter::media::SharedCore;
use voice_adapter::{tls_client_config, AudioRouter, Dispatch, PendingJoin};
use voice_proto::id::{ChannelId, GuildId};
use voice_proto::payload::SpeakingFlags;
use voice_proto::{AnyState, ConnectionInfo, Identifying};

use crate::driver::{Driver, Setup};
use crate::event_loop::Reservation;
use crate::events::{EventChannel, Events};
use crate::link::{Shared, StdWake};
use crate::receiver::Receiver;
use crate::{GatewayLink, JoinError, SendError, VoiceConfig};

/// Queues Opus frames (one 20 ms frame each) on a connection's playout. Cheap to clone. Bounded:
/// [`send`](Self::send) blocks while the queue is full, so a producer never runs ahead of real
/// time by more than the queue ([`Config::playout_queue_frames`](voice_proto::Config), one
/// second by default); it wakes when the queue is half empty again, not once per frame.
#[derive(Clone, Debug)]
pub struct OpusSender {
    shared: Shared,
}

impl OpusSender {
    /// Queues one frame, blocking while the queue is full. Frames queued while the connection
    /// resumes, reconnects or waits for DAVE keys wait in the queue; none is lost.
    pub fn send(&self, frame: impl AsRef<[u8]>) -> Result<(), SendError> {
        let frame = frame.as_ref();
        while !self.shared.try_queue_opus(frame)? {
            self.shared.wait_for_room();
        }
        Ok(())
    }

    /// Queues one frame if there is room now: `Ok(false)` when the queue is full.
    pub fn try_send(&self, frame: impl AsRef<[u8]>) -> Result<bool, SendError> {
        self.shared.try_queue_opus(frame.as_ref())
    }
}

/// A joined voice channel: a handle, cheap to clone, shared by the application's threads.
///
/// A connection made by [`Voice::join_channel`](crate::Voice::join_channel) is also kept by its
/// `Voice` ([`Voice::connection`](crate::Voice::connection)) until [`disconnect`](Self::disconnect),
/// [`Voice::leave`](crate::Voice::leave) or its end: dropping the application's handles does
/// not leave the channel, dropping the `Voice` does. One made by [`connect`](Self::connect)
/// leaves when its last handle is dropped (blocking until its sockets are closed, like
/// [`disconnect`](Self::disconnect)).
#[derive(Clone, Debug)]
pub struct Connection {
    inner: Arc<Inner>,
}

/// What every handle of one connection shares; dropping it (the last handle) leaves.
#[derive(Debug)]
struct Inner {
    shared: Shared,
    events: Arc<EventChannel>,
    guild_id: GuildId,
    router: Arc<AudioRouter>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        leave(&self.shared);
    }
}

/// Asks the driver to leave (a no-op once it is leaving or has ended) and blocks until the
/// connection's sockets are closed.
fn leave(shared: &Shared) {
    let link = &shared.wake().0;
    link.leave();
    link.wait_ended();
}

impl Connection {
    /// Connects with connection info the caller already holds (endpoint, token, session id),
    /// without a main gateway: Lavalink-style audio nodes, tests against a local server. A fresh
    /// reconnect identifies again with the same credentials. Blocks until the session is
    /// established or has failed.
    pub fn connect(info: ConnectionInfo, config: VoiceConfig) -> Result<Self, JoinError> {
        let span = connection_span(info.guild_id, info.channel_id);
        let state = Identifying::connect(Instant::now(), config.core_with_fresh_seeds(), info)?;
        let reservation = Reservation::new(&config)?;
        Self::start(
            AnyState::from(state),
            None,
            None,
            reservation,
            &config,
            span,
        )
    }

    /// Hands the driver for `state` to the event loop `reservation` holds a place on, and
    /// blocks until the session is established.
    pub(crate) fn start(
        state: AnyState,
        gateway: Option<Arc<dyn GatewayLink>>,
        dispatches: Option<mpsc::Receiver<Dispatch>>,
        reservation: Reservation,
        config: &VoiceConfig,
        span: tracing::Span,
    ) -> Result<Self, JoinError> {
        let guild_id = state.guild_id();
        let tls = tls_client_config(&config.extra_root_certificates)?;
        let link = Arc::clone(reservation.link());
        let router = Arc::new(AudioRouter::new(state.config().receive));
        let shared = SharedCore::new(state, StdWake(Arc::clone(&link)), reservation.scheduler())
            .map_err(|e| JoinError::Thread(e.to_string()))?;
        let events = Arc::new(EventChannel::new(config.event_queue));
        let (ready_tx, ready) = mpsc::sync_channel(1);
        let driver = Driver::new(Setup {
            link: Arc::clone(&link),
            shared: Arc::clone(&shared),
            gateway,
            dispatches,
            tls,
            connect_timeout: config.core.handshake_timeout,
            close_timeout: config.close_timeout,
            events: Arc::clone(&events),
            join: PendingJoin::new(move |outcome| {
                let _ = ready_tx.send(outcome);
            }),
            router: Arc::clone(&router),
            span,
        });
        reservation.start(driver)?;
        match ready.recv() {
            Ok(Ok(())) => Ok(Self {
                inner: Arc::new(Inner {
                    shared,
                    events,
                    guild_id,
                    router,
                }),
            }),
            Ok(Err(error)) => {
                link.wait_ended();
                Err(error)
            }
            Err(_) => {
                link.wait_ended();
                Err(JoinError::DriverEnded)
            }
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
    pub fn move_to(&self, channel_id: ChannelId) -> bool {
        (self.inner.shared).update_voice_state(|_, mute, deaf| (channel_id, mute, deaf))
    }

    /// A sender of Opus frames for the connection's playout: one frame per 20 ms on a drift-free
    /// schedule; when the queue runs dry, the five silence frames follow and the stream goes
    /// quiet until frames come again. While the session cannot send audio (reconnecting,
    /// resuming, or DAVE keys pending: joining the MLS group, or an upgrade after a downgrade)
    /// frames wait in the queue ([`Event::PlayoutHeld`](voice_proto::Event::PlayoutHeld) says
    /// so); none is lost or sent unencrypted into an end-to-end encrypted call.
    pub fn opus_send(&self) -> OpusSender {
        OpusSender {
            shared: Arc::clone(&self.inner.shared),
        }
    }

    /// Blocks until every frame queued so far has been sent, followed by the five trailing
    /// silence frames. Returns early if the connection ends.
    pub fn flush(&self) {
        let (done, wait) = mpsc::sync_channel(1);
        self.inner.shared.lock().when_flushed(move || {
            let _ = done.send(());
        });
        let _ = wait.recv();
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

    /// Events: speaking, clients joining or leaving, reconnects, DAVE transitions and readiness,
    /// holds of the playout, the end. Control events are never dropped for the others
    /// ([`Events`]). Received audio is not among them: see [`receiver`](Self::receiver).
    ///
    /// An owned handle: move it to a thread of its own while keeping this one. Every call
    /// gives a handle on the same queue (each event goes to one reader).
    pub fn events(&self) -> Events {
        Events::new(Arc::clone(&self.inner.events))
    }

    /// Streams of the audio other members send (receive must be on:
    /// [`VoiceConfig::receiving`](crate::VoiceConfig::receiving) or
    /// [`JoinOptions::receive`](crate::JoinOptions::receive)): `receiver().subscribe(user)` for
    /// one user, `subscribe_all()` for everyone, each a blocking iterator ordered by the core's
    /// playout buffer with loss markers and talk-spurt boundaries, bounded without ever holding
    /// up the connection. The event loops receive; the media workers only send.
    pub fn receiver(&self) -> Receiver {
        Receiver::new(Arc::clone(&self.inner.router))
    }

    /// Leaves the channel (op 4 with a null channel when joined through a main gateway), closes
    /// the websocket with 1000 (waiting for the close handshake up to
    /// [`VoiceConfig::close_timeout`]) and the UDP socket, and blocks until they are closed.
    /// After the connection ended by itself (a fatal close, too many reconnects: it left the
    /// channel then, once) this only waits for its sockets to be closed. Other handles of the
    /// connection see it ended.
    pub fn disconnect(self) {
        leave(&self.inner.shared);
    }

    /// Whether the connection has ended (after a fatal error or a disconnect) and its sockets
    /// are closed.
    pub fn is_finished(&self) -> bool {
        self.inner.shared.wake().0.is_ended()
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
