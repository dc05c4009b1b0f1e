//! One connection's core, shared by the three parties that touch it: the adapter's driver (the
//! websocket side: inputs, outputs, control timers), a media worker (the playout: one
//! `poll_transmit` per 20 ms), and the application (queueing frames, flushing).
//!
//! Every touch goes through [`SharedCore::lock`], whose guard settles the consequences when it
//! is dropped, with the lock still held: the worker learns the connection's next due time only
//! when it got earlier, flushes complete once the playout is idle, senders that waited for room
//! are woken when the queue is half empty again (one wake-up per half queue, not per frame), and
//! the driver is woken when the core has outputs for it. So no rule of the playout lives here:
//! the core decides, this only routes the wake-ups.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, TryLockError, Weak};
use std::time::Instant;

use voice_proto::id::ChannelId;
use voice_proto::payload::SpeakingFlags;
use voice_proto::playout::QueueError;
use voice_proto::rtp::MAX_PACKET_LEN;
use voice_proto::{AnyState, Input, Output, Received, Stats};

use super::scheduler::{MediaScheduler, Registration, Transmitted, Transmitter};
use super::socket::bind_media_socket;
use crate::SendError;

/// How an adapter is woken by what other threads did to its connection's core.
pub trait DriverWake: Send + Sync + 'static {
    /// The core has outputs for the websocket side (an op 5 the playout queued, an event).
    /// Called with the core locked: must not block.
    fn wake_driver(&self);
    /// The playout queue has room again for senders that waited
    /// ([`CoreState::wait_for_room`]). Called with the core locked: must not block.
    fn wake_senders(&self);
}

type Flushed = Box<dyn FnOnce() + Send>;

/// The state behind the lock: the protocol state and the media socket it sends on.
pub struct CoreState {
    /// The connection's protocol state.
    pub state: AnyState,
    media_socket: Option<UdpSocket>,
    flushes: Vec<Flushed>,
    senders_waiting: bool,
    /// When the worker holds an entry for this connection, and the token that entry carries.
    scheduled: Option<Instant>,
    token: u64,
    send_errors: u64,
}

impl std::fmt::Debug for CoreState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreState")
            .field("state", &self.state.name())
            .field("scheduled", &self.scheduled)
            .field("send_errors", &self.send_errors)
            .finish_non_exhaustive()
    }
}

impl CoreState {
    /// Sets (or clears) the socket audio datagrams go out on: a clone of the media socket the
    /// driver bound for the latest `Output::BindUdp`.
    pub fn set_media_socket(&mut self, socket: Option<UdpSocket>) {
        self.media_socket = socket;
    }

    /// Calls `done` once every frame queued so far and the trailing silence are out, or the
    /// connection has ended (at once if that is already so, when the guard is dropped).
    pub fn when_flushed(&mut self, done: impl FnOnce() + Send + 'static) {
        self.flushes.push(Box::new(done));
    }

    /// A sender found the queue full: [`DriverWake::wake_senders`] will tell when it is half
    /// empty again (blocking senders use [`SharedCore::wait_for_room`] instead).
    pub fn wait_for_room(&mut self) {
        self.senders_waiting = true;
    }

    /// Feeds one input to the core (at the current time) and takes its outputs by the drain
    /// rule ([`take_outputs`](Self::take_outputs)). An input that ends the connection is only
    /// logged here: the outputs carry its `Closed` event.
    pub fn feed(&mut self, input: Input<'_>, outputs: &mut VecDeque<Output>) -> Option<Instant> {
        if let Err(error) = self.state.handle_input(Instant::now(), input) {
            tracing::debug!(%error, "voice connection ended");
        }
        self.take_outputs(outputs)
    }

    /// The drain rule: moves every output up to and including `WakeAt` or `Idle` into
    /// `outputs`, to be carried out once the lock is released. Returns the driver's next
    /// control deadline ([`AnyState::next_timer`]: heartbeats, keepalives, handshake stages);
    /// the playout's due times belong to the media worker.
    pub fn take_outputs(&mut self, outputs: &mut VecDeque<Output>) -> Option<Instant> {
        loop {
            let output = self.state.poll_output();
            let last = matches!(output, Output::WakeAt(_) | Output::Idle);
            outputs.push_back(output);
            if last {
                return self.state.next_timer();
            }
        }
    }

    /// Moves the received audio waiting in the core into `received` (receive on; nothing before
    /// the session). Part of the drain rule: the driver calls it after every input and routes
    /// the items with the lock released ([`AudioRouter`](crate::AudioRouter)).
    pub fn take_received(&mut self, received: &mut Vec<Received>) {
        if let Some(session) = self.state.session() {
            while let Some(item) = session.poll_received() {
                received.push(item);
            }
        }
    }

    /// Audio datagrams the operating system refused to send (a full socket buffer, a network
    /// error): they were lost, like a datagram lost on the way.
    pub fn send_errors(&self) -> u64 {
        self.send_errors
    }

    /// Whether a sender that found the queue full may try again: it is half empty, or the
    /// connection has ended (before the session nothing can be queued; after a failed join
    /// nothing will be).
    fn room_for_senders(&mut self) -> bool {
        let room = self.state.session().is_none_or(|session| {
            session.is_closed() || session.queued_frames() * 2 <= session.queue_capacity()
        });
        room || self.state.error().is_some()
    }

    /// Settles the consequences of whatever was done to the core (see the module docs); returns
    /// a new schedule entry for the worker when the next due time got earlier.
    fn settle(&mut self, wake: &dyn DriverWake, room: &Condvar) -> Option<(Instant, u64)> {
        // Before the session nothing can be queued; after a failed join nothing will be.
        let idle = self
            .state
            .session()
            .is_none_or(|session| session.playout_idle());
        if idle {
            for done in self.flushes.drain(..) {
                done();
            }
        }
        if self.senders_waiting && self.room_for_senders() {
            self.senders_waiting = false;
            wake.wake_senders();
            room.notify_all();
        }
        if self.state.has_output() {
            wake.wake_driver();
        }
        let next = self.state.next_transmit()?;
        if self.scheduled.is_some_and(|scheduled| scheduled <= next) {
            return None;
        }
        self.token = self.token.wrapping_add(1);
        self.scheduled = Some(next);
        Some((next, self.token))
    }
}

/// A connection's core and the hooks that wake its driver; registered with a media worker.
pub struct SharedCore<W: DriverWake> {
    core: Mutex<CoreState>,
    room: Condvar,
    registration: OnceLock<Registration>,
    wake: W,
}

impl<W: DriverWake> std::fmt::Debug for SharedCore<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCore")
            .field("registration", &self.registration.get())
            .finish_non_exhaustive()
    }
}

impl<W: DriverWake> SharedCore<W> {
    /// Shares `state` and registers the connection with one of `scheduler`'s workers (it stays
    /// registered until the `SharedCore` is dropped).
    pub fn new(state: AnyState, wake: W, scheduler: &MediaScheduler) -> std::io::Result<Arc<Self>> {
        let shared = Arc::new(Self {
            core: Mutex::new(CoreState {
                state,
                media_socket: None,
                flushes: Vec::new(),
                senders_waiting: false,
                scheduled: None,
                token: 0,
                send_errors: 0,
            }),
            room: Condvar::new(),
            registration: OnceLock::new(),
            wake,
        });
        let as_transmitter: Arc<dyn Transmitter> = shared.clone();
        let weak: Weak<dyn Transmitter> = Arc::downgrade(&as_transmitter);
        drop(as_transmitter);
        let registration = scheduler.register(weak)?;
        let _ = shared.registration.set(registration);
        Ok(shared)
    }

    /// Locks the core. Dropping the guard settles what was done (module docs).
    pub fn lock(&self) -> CoreGuard<'_, W> {
        CoreGuard {
            guard: self.core.lock().unwrap_or_else(PoisonError::into_inner),
            shared: self,
        }
    }

    /// Queues one Opus frame on the playout if there is room: `Ok(false)` when the queue is
    /// full, and the caller is then marked as waiting for room: [`DriverWake::wake_senders`]
    /// (or [`wait_for_room`](Self::wait_for_room) for a blocking sender) tells when to try
    /// again.
    pub fn try_queue_opus(&self, frame: &[u8]) -> Result<bool, SendError> {
        let mut core = self.lock();
        let result = match core.state.session() {
            Some(session) => session.queue_opus(frame),
            None => Err(QueueError::Closed),
        };
        match result {
            Ok(()) => Ok(true),
            Err(QueueError::Full { .. }) => {
                core.wait_for_room();
                Ok(false)
            }
            Err(error) => Err(SendError::from(error)),
        }
    }

    /// Sets the session's speaking flags (op 5); nothing before the session is established.
    pub fn speaking(&self, flags: SpeakingFlags) {
        if let Some(session) = self.lock().state.session() {
            session.speaking(flags);
        }
    }

    /// Drops the queued frames and ends the talk spurt (the silence frames follow, then
    /// Speaking 0); returns how many frames were dropped.
    pub fn stop_speaking(&self) -> usize {
        self.lock()
            .state
            .session()
            .map_or(0, |session| session.stop_speaking())
    }

    /// Changes the voice state through the main gateway (see
    /// [`AnyState::update_voice_state`]): `change` gets the channel, self-mute and self-deafen
    /// op 4 last asked for and returns the new ones; the op 4 goes out from the driver, which
    /// the guard wakes. `false` without a main gateway or once the connection ended.
    pub fn update_voice_state(
        &self,
        change: impl FnOnce(ChannelId, bool, bool) -> (ChannelId, bool, bool),
    ) -> bool {
        let mut core = self.lock();
        let Some((channel, mute, deaf)) = core.state.voice_state() else {
            return false;
        };
        let (channel, mute, deaf) = change(channel, mute, deaf);
        core.state.update_voice_state(channel, mute, deaf)
    }

    /// The session's counters (zero before it is established).
    pub fn stats(&self) -> Stats {
        self.lock()
            .state
            .session()
            .map(|session| session.stats())
            .unwrap_or_default()
    }

    /// The session's receive counters (`None` before it is established or with receive off).
    pub fn receive_stats(&self) -> Option<voice_proto::receive::ReceiveStats> {
        self.lock()
            .state
            .session()
            .and_then(|session| session.receive_stats())
    }

    /// Carries out `Output::BindUdp`: binds a media socket for `remote`, makes its receive
    /// handle the driver's with `receive` (e.g. into a runtime's socket, registered with an event
    /// loop) and gives the core the send handle, dropping the previous one. When a step fails
    /// the core is left without a socket (audio is lost until the next bind; the core's timers
    /// decide what follows) and the error is logged.
    pub fn bind_media<R>(
        &self,
        remote: SocketAddr,
        receive: impl FnOnce(UdpSocket) -> std::io::Result<R>,
    ) -> Option<R> {
        let bound = bind_media_socket(remote)
            .and_then(|socket| Ok((receive(socket.receive)?, socket.send)));
        let (receive, send) = match bound {
            Ok((receive, send)) => (Some(receive), Some(send)),
            Err(error) => {
                tracing::warn!(%error, "could not bind a UDP socket");
                (None, None)
            }
        };
        self.lock().set_media_socket(send);
        receive
    }

    /// Blocks the calling thread until the playout queue is half empty again or the connection
    /// has ended: for blocking senders that found it full (the media worker settles after every
    /// packet, so the wait ends within a frame of there being room).
    pub fn wait_for_room(&self) {
        let mut core = self.core.lock().unwrap_or_else(PoisonError::into_inner);
        // The room (or the end) may have come between the caller finding the queue full and
        // this call, its wake-up spent on nobody: look before waiting.
        if core.room_for_senders() {
            return;
        }
        core.senders_waiting = true;
        drop(
            self.room
                .wait_while(core, |core| core.senders_waiting)
                .unwrap_or_else(PoisonError::into_inner),
        );
    }

    /// The adapter's wake-up hooks.
    pub fn wake(&self) -> &W {
        &self.wake
    }
}

impl<W: DriverWake> Transmitter for SharedCore<W> {
    fn transmit(&self, now: Instant, token: u64, buf: &mut [u8; MAX_PACKET_LEN]) -> Transmitted {
        let mut core = match self.core.try_lock() {
            Ok(core) => core,
            Err(TryLockError::WouldBlock) => return Transmitted::Busy,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        };
        if core.token != token {
            return Transmitted::Stale;
        }
        core.scheduled = None;
        let core = &mut *core;
        if let Some(session) = core.state.session() {
            while let Some(transmit) = session.poll_transmit(now, buf) {
                let Some(socket) = &core.media_socket else {
                    continue;
                };
                let datagram = buf.get(..transmit.len).unwrap_or_default();
                if let Err(error) = socket.send_to(datagram, transmit.destination) {
                    core.send_errors += 1;
                    tracing::trace!(%error, "audio datagram not sent");
                }
            }
        }
        match core.settle(&self.wake, &self.room) {
            Some((at, token)) => Transmitted::Next { at, token },
            None => Transmitted::Idle,
        }
    }
}

/// The locked core of a [`SharedCore`]; settles on drop.
pub struct CoreGuard<'a, W: DriverWake> {
    guard: MutexGuard<'a, CoreState>,
    shared: &'a SharedCore<W>,
}

impl<W: DriverWake> Deref for CoreGuard<'_, W> {
    type Target = CoreState;

    fn deref(&self) -> &CoreState {
        &self.guard
    }
}

impl<W: DriverWake> DerefMut for CoreGuard<'_, W> {
    fn deref_mut(&mut self) -> &mut CoreState {
        &mut self.guard
    }
}

impl<W: DriverWake> Drop for CoreGuard<'_, W> {
    fn drop(&mut self) {
        if let Some((at, token)) = self.guard.settle(&self.shared.wake, &self.shared.room) {
            if let Some(registration) = self.shared.registration.get() {
                registration.schedule(at, token);
            }
        }
    }
}
