//! The driver thread: the core's drain loop, timers and the 20 ms audio clock. No protocol
//! decision lives here.

use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use voice_adapter::{Dispatch, GatewayLink, PendingJoin};
use voice_proto::pacing::{Pacer, FRAME_DURATION};
use voice_proto::payload::SpeakingFlags;
use voice_proto::rtp::MAX_PACKET_LEN;
use voice_proto::{AnyState, Event, Input, Output};

use crate::udp::{self, UdpHandle};
use crate::ws::{self, WsCommand, WsEvent, WsHandle};

/// What the application asks of a running connection.
#[derive(Debug)]
pub(crate) enum Command {
    Speaking(SpeakingFlags),
    StopSpeaking,
    /// Answer once every queued frame went out, with the trailing silence unless the session
    /// dropped meanwhile.
    Flush(SyncSender<()>),
    /// Leave; the sender (if any) is told when the driver has finished.
    Disconnect(Option<SyncSender<()>>),
}

/// Everything that reaches the driver thread, through one channel.
#[derive(Debug)]
pub(crate) enum DriverInput {
    Command(Command),
    Dispatch(Dispatch),
    /// From the websocket thread of that generation.
    Ws(u64, WsEvent),
    /// From the UDP receive thread of that generation.
    Udp(u64, SocketAddr, Vec<u8>),
    /// Ignored: lets `Voice` tell a live route from one whose driver has ended.
    Probe,
}

pub(crate) struct Driver {
    pub(crate) state: AnyState,
    pub(crate) gateway: Option<Arc<dyn GatewayLink>>,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) connect_timeout: Duration,
    pub(crate) inbox: Receiver<DriverInput>,
    /// Handed to each websocket and UDP thread.
    pub(crate) inbox_sender: Sender<DriverInput>,
    pub(crate) frames: Receiver<Bytes>,
    pub(crate) events: SyncSender<Event>,
    pub(crate) join: PendingJoin,
}

struct Io {
    ws: Option<WsHandle>,
    udp: Option<UdpHandle>,
    generation: u64,
    threads: Vec<JoinHandle<()>>,
    wake_at: Option<Instant>,
    pacer: Pacer,
    /// A frame taken from the queue to see whether it was empty.
    peeked: Option<Bytes>,
    flushes: Vec<SyncSender<()>>,
    frames_open: bool,
    packet: Box<[u8; MAX_PACKET_LEN]>,
    finished: bool,
    events_dropped: u64,
    done: Vec<SyncSender<()>>,
}

impl Driver {
    /// Runs until the connection ends; joins every thread it started before returning.
    pub(crate) fn run(mut self) {
        let mut io = Io {
            ws: None,
            udp: None,
            generation: 0,
            threads: Vec::new(),
            wake_at: None,
            pacer: Pacer::new(),
            peeked: None,
            flushes: Vec::new(),
            frames_open: true,
            packet: Box::new([0; MAX_PACKET_LEN]),
            finished: false,
            events_dropped: 0,
            done: Vec::new(),
        };
        loop {
            self.drain(&mut io);
            if io.finished {
                break;
            }
            let now = Instant::now();
            let connected = self.connected();
            // While quiet, look for new frames every frame period (std channels cannot be awaited
            // together with the inbox).
            let poll_frames =
                (connected && io.pacer.is_quiet() && io.frames_open).then(|| now + FRAME_DURATION);
            let deadline = [io.wake_at, io.pacer.due(), poll_frames]
                .into_iter()
                .flatten()
                .min();
            let received = match deadline {
                Some(at) => self.inbox.recv_timeout(at.saturating_duration_since(now)),
                None => self
                    .inbox
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            match received {
                Ok(input) => self.on_input(&mut io, input),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.disconnect(&mut io),
            }
            self.run_clocks(&mut io);
        }
        self.join.driver_stopped(&self.state);
        if io.events_dropped > 0 {
            tracing::warn!(
                dropped = io.events_dropped,
                "voice events dropped: the application did not read them"
            );
        }
        // Dropping the handles tells the threads to end; then wait for all of them.
        io.ws = None;
        io.udp = None;
        drop(self.inbox_sender);
        for thread in io.threads.drain(..) {
            let _ = thread.join();
        }
        for done in io.done {
            let _ = done.send(());
        }
    }

    fn connected(&mut self) -> bool {
        self.state.session().is_some_and(|s| s.is_connected())
    }

    fn run_clocks(&mut self, io: &mut Io) {
        if io.finished {
            return;
        }
        let now = Instant::now();
        if io.wake_at.is_some_and(|at| at <= now) {
            self.feed(Input::Timer);
            self.drain(io);
        }
        let connected = self.connected();
        if io.pacer.due().is_some_and(|at| at <= now) {
            if !connected {
                // Paused until the session is back; queued frames wait, none are lost.
                io.pacer.stop();
                if self.queue_is_empty(io) {
                    Self::flushed(io);
                }
            } else {
                let frame = self.next_frame(io);
                if self.tick(io, frame.as_deref()) {
                    io.pacer.advance(Instant::now());
                } else {
                    // The queue was empty and the trailing silence is out.
                    io.pacer.stop();
                    Self::flushed(io);
                }
            }
        } else if connected && io.pacer.is_quiet() && io.frames_open {
            if let Some(frame) = self.next_frame(io) {
                io.pacer.start(Instant::now());
                self.tick(io, Some(&frame));
            }
        }
    }

    fn next_frame(&mut self, io: &mut Io) -> Option<Bytes> {
        if let Some(frame) = io.peeked.take() {
            return Some(frame);
        }
        match self.frames.try_recv() {
            Ok(frame) => Some(frame),
            Err(std::sync::mpsc::TryRecvError::Empty) => None,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                io.frames_open = false;
                None
            }
        }
    }

    fn queue_is_empty(&mut self, io: &mut Io) -> bool {
        if io.peeked.is_none() {
            io.peeked = self.next_frame(io);
        }
        io.peeked.is_none()
    }

    fn flushed(io: &mut Io) {
        for done in io.flushes.drain(..) {
            let _ = done.send(());
        }
    }

    /// Hands one audio tick to the core and sends the datagram; `false` when quiet.
    fn tick(&mut self, io: &mut Io, frame: Option<&[u8]>) -> bool {
        let Some(session) = self.state.session() else {
            return false;
        };
        let len = match session.tick(Instant::now(), frame, &mut io.packet[..]) {
            Ok(Some(packet)) => packet.len(),
            Ok(None) => return false,
            Err(error) => {
                tracing::debug!(%error, "audio tick failed");
                return frame.is_some();
            }
        };
        // Op 5 queued by the first frame of a spurt goes out before the audio.
        self.drain(io);
        let remote = self.state.session().and_then(|s| s.remote());
        if let (Some(udp), Some(remote), Some(packet)) = (&io.udp, remote, io.packet.get(..len)) {
            if let Err(error) = udp.socket.send_to(packet, remote) {
                tracing::debug!(%error, "UDP send failed");
            }
        }
        true
    }

    fn on_input(&mut self, io: &mut Io, input: DriverInput) {
        match input {
            DriverInput::Command(Command::Speaking(flags)) => {
                if let Some(session) = self.state.session() {
                    session.speaking(flags);
                }
            }
            DriverInput::Command(Command::StopSpeaking) => {
                if let Some(session) = self.state.session() {
                    session.stop_speaking();
                    if session.silence_pending() {
                        io.pacer.wake_now(Instant::now());
                    }
                }
            }
            DriverInput::Command(Command::Flush(done)) => {
                io.flushes.push(done);
                if io.pacer.is_quiet() && self.queue_is_empty(io) {
                    Self::flushed(io);
                }
            }
            DriverInput::Command(Command::Disconnect(done)) => {
                io.done.extend(done);
                self.disconnect(io);
            }
            DriverInput::Dispatch(Dispatch::State(d)) => self.feed(Input::VoiceStateUpdate(d)),
            DriverInput::Dispatch(Dispatch::Server(d)) => self.feed(Input::VoiceServerUpdate(d)),
            DriverInput::Ws(generation, event) => {
                if io.ws.as_ref().map(|w| w.generation) != Some(generation) {
                    return; // a socket we already left behind
                }
                match event {
                    WsEvent::Opened => self.feed(Input::WebSocketOpened),
                    WsEvent::Text(text) => self.feed(Input::Text(&text)),
                    WsEvent::Binary(bytes) => self.feed(Input::Binary(&bytes)),
                    WsEvent::Closed(code) => {
                        io.ws = None;
                        self.feed(Input::WebSocketClosed { code });
                    }
                }
            }
            DriverInput::Probe => {}
            DriverInput::Udp(generation, from, data) => {
                if io.udp.as_ref().map(|u| u.generation) == Some(generation) {
                    self.feed(Input::Datagram { from, data: &data });
                }
            }
        }
    }

    fn feed(&mut self, input: Input<'_>) {
        if let Err(error) = self.state.handle_input(Instant::now(), input) {
            tracing::debug!(%error, "voice connection ended");
        }
    }

    fn disconnect(&mut self, io: &mut Io) {
        if let Some(session) = self.state.session() {
            session.disconnect();
            self.drain(io);
        }
        io.finished = true;
    }

    /// The drain rule: carry out outputs until `WakeAt` or `Idle`.
    fn drain(&mut self, io: &mut Io) {
        loop {
            match self.state.poll_output() {
                Output::MainGateway(update) => {
                    let gateway = self.gateway.as_deref();
                    if self.join.send_voice_state_update(gateway, &update) {
                        io.finished = true;
                    }
                }
                Output::OpenWebSocket { url } => {
                    io.generation += 1;
                    io.ws = None;
                    match ws::spawn(
                        io.generation,
                        url,
                        Arc::clone(&self.tls),
                        self.connect_timeout,
                        self.inbox_sender.clone(),
                    ) {
                        Ok((handle, thread)) => {
                            io.ws = Some(handle);
                            io.threads.push(thread);
                        }
                        Err(error) => {
                            tracing::warn!(%error, "could not start the websocket thread");
                            self.feed(Input::WebSocketClosed { code: None });
                        }
                    }
                }
                Output::SendText(text) => Self::to_socket(io, WsCommand::Text(text)),
                Output::SendBinary(bytes) => Self::to_socket(io, WsCommand::Binary(bytes)),
                Output::CloseWebSocket { code } => {
                    if let Some(ws) = io.ws.take() {
                        ws.send(WsCommand::Close(code));
                    }
                }
                Output::BindUdp { remote } => {
                    io.generation += 1;
                    io.udp = None;
                    match udp::spawn(io.generation, remote, self.inbox_sender.clone()) {
                        Ok((handle, thread)) => {
                            io.udp = Some(handle);
                            io.threads.push(thread);
                        }
                        Err(error) => tracing::warn!(%error, "could not bind a UDP socket"),
                    }
                }
                Output::Transmit { to, data } => {
                    if let Some(udp) = &io.udp {
                        if let Err(error) = udp.socket.send_to(&data, to) {
                            tracing::debug!(%error, "UDP send failed");
                        }
                    }
                }
                Output::Event(event) => self.on_event(io, event),
                Output::WakeAt(at) => {
                    io.wake_at = Some(at);
                    return;
                }
                Output::Idle => {
                    io.wake_at = None;
                    if self.state.error().is_some() {
                        io.finished = true;
                    }
                    return;
                }
            }
        }
    }

    fn to_socket(io: &mut Io, command: WsCommand) {
        if let Some(ws) = &io.ws {
            ws.send(command);
        }
    }

    fn on_event(&mut self, io: &mut Io, event: Event) {
        self.join.on_event(&event);
        if matches!(event, Event::Closed { .. }) {
            io.finished = true;
        }
        if self.events.try_send(event).is_err() {
            io.events_dropped += 1;
        }
    }
}
