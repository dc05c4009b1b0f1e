//! The connection task: real I/O around the core's drain loop. No protocol decision lives here.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::Connector;
use voice_adapter::{udp_bind_address, Dispatch, GatewayLink, PendingJoin};
use voice_proto::pacing::Pacer;
use voice_proto::payload::SpeakingFlags;
use voice_proto::rtp::MAX_PACKET_LEN;
use voice_proto::{AnyState, Event, Input, Output};

use crate::ws::{self, VoiceSocket};

/// Receive buffer: larger than any RTP packet Discord sends.
const RECEIVE_BUFFER: usize = 2048;

/// What the application asks of a running connection.
#[derive(Debug)]
pub(crate) enum Command {
    Speaking(SpeakingFlags),
    StopSpeaking,
    /// Answer once every queued frame went out, with the trailing silence unless the session
    /// dropped meanwhile.
    Flush(oneshot::Sender<()>),
    Disconnect(oneshot::Sender<()>),
}

/// An input owned by the driver (borrowed inputs are built from it when fed).
enum Owned {
    Closed(Option<u16>),
}

type Opening = Pin<Box<dyn Future<Output = Result<VoiceSocket, tungstenite::Error>> + Send>>;

/// What woke the driver.
enum Wake {
    Command(Option<Command>),
    Dispatch(Option<Dispatch>),
    Socket(Option<Result<Message, tungstenite::Error>>),
    Opened(Box<Result<VoiceSocket, tungstenite::Error>>),
    Datagram(std::io::Result<(usize, SocketAddr)>),
    Timer,
    FrameDue,
    FirstFrame(Option<Bytes>),
}

/// What became of one 20 ms tick.
enum Tick {
    /// A datagram went out (or the frame was unusable and dropped): keep the clock running.
    Sent,
    /// The stream went quiet (the trailing silence is out).
    Quiet,
    /// The core cannot send audio right now (DAVE keys pending, reconnecting): the frame is held
    /// and the clock pauses until [`Session::is_connected`](voice_proto::Session::is_connected).
    Held,
}

pub(crate) struct Channels {
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    pub(crate) dispatches: Option<mpsc::UnboundedReceiver<Dispatch>>,
    pub(crate) frames: mpsc::Receiver<Bytes>,
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) join: PendingJoin,
}

pub(crate) struct Driver {
    state: AnyState,
    gateway: Option<Arc<dyn GatewayLink>>,
    connector: Connector,
    close_timeout: std::time::Duration,
    socket: Option<VoiceSocket>,
    opening: Option<Opening>,
    udp: Option<UdpSocket>,
    commands: mpsc::UnboundedReceiver<Command>,
    dispatches: Option<mpsc::UnboundedReceiver<Dispatch>>,
    frames: mpsc::Receiver<Bytes>,
    frames_open: bool,
    /// A frame taken from the queue that the core could not send yet; it goes out first.
    held: Option<Bytes>,
    events: mpsc::Sender<Event>,
    events_dropped: u64,
    join: PendingJoin,
    wake_at: Option<Instant>,
    pacer: Pacer,
    flushes: Vec<oneshot::Sender<()>>,
    pending: Vec<Owned>,
    packet: Box<[u8; MAX_PACKET_LEN]>,
    receive: Vec<u8>,
    finished: bool,
}

impl Driver {
    pub(crate) fn new(
        state: AnyState,
        gateway: Option<Arc<dyn GatewayLink>>,
        connector: Connector,
        close_timeout: std::time::Duration,
        channels: Channels,
    ) -> Self {
        Self {
            state,
            gateway,
            connector,
            close_timeout,
            socket: None,
            opening: None,
            udp: None,
            commands: channels.commands,
            dispatches: channels.dispatches,
            frames: channels.frames,
            frames_open: true,
            held: None,
            events: channels.events,
            events_dropped: 0,
            join: channels.join,
            wake_at: None,
            pacer: Pacer::new(),
            flushes: Vec::new(),
            pending: Vec::new(),
            packet: Box::new([0; MAX_PACKET_LEN]),
            receive: vec![0; RECEIVE_BUFFER],
            finished: false,
        }
    }

    /// Runs until the connection ends (fatal error, disconnect, or the `Connection` is dropped).
    pub(crate) async fn run(mut self) {
        loop {
            self.drain().await;
            while let Some(Owned::Closed(code)) = self.pending.pop() {
                self.feed(Input::WebSocketClosed { code });
                self.drain().await;
            }
            if self.finished {
                break;
            }
            let wake = self.wait().await;
            self.on_wake(wake).await;
        }
        self.join.driver_stopped(&self.state);
        if self.events_dropped > 0 {
            tracing::warn!(
                dropped = self.events_dropped,
                "voice events dropped: the application did not read them"
            );
        }
        self.close_socket(1000, true).await;
    }

    async fn wait(&mut self) -> Wake {
        let connected = self.state.session().is_some_and(|s| s.is_connected());
        if connected && self.pacer.is_quiet() {
            if let Some(frame) = self.held.take() {
                return Wake::FirstFrame(Some(frame));
            }
        }
        let wants_first_frame = self.pacer.is_quiet() && connected && self.frames_open;
        let wake_at = self.wake_at.map(tokio::time::Instant::from_std);
        let frame_at = self.pacer.due().map(tokio::time::Instant::from_std);
        let socket = &mut self.socket;
        let opening = &mut self.opening;
        let udp = &self.udp;
        let receive = &mut self.receive;
        let dispatches = &mut self.dispatches;
        tokio::select! {
            command = self.commands.recv() => Wake::Command(command),
            dispatch = next_dispatch(dispatches) => Wake::Dispatch(dispatch),
            message = next_message(socket) => Wake::Socket(message),
            opened = finish_opening(opening) => Wake::Opened(Box::new(opened)),
            datagram = receive_datagram(udp, receive) => Wake::Datagram(datagram),
            () = sleep_until(wake_at) => Wake::Timer,
            () = sleep_until(frame_at) => Wake::FrameDue,
            frame = self.frames.recv(), if wants_first_frame => Wake::FirstFrame(frame),
        }
    }

    async fn on_wake(&mut self, wake: Wake) {
        match wake {
            Wake::Command(Some(Command::Speaking(flags))) => {
                if let Some(session) = self.state.session() {
                    session.speaking(flags);
                }
            }
            Wake::Command(Some(Command::StopSpeaking)) => {
                if let Some(session) = self.state.session() {
                    session.stop_speaking();
                    if session.silence_pending() {
                        self.pacer.wake_now(Instant::now());
                    }
                }
            }
            Wake::Command(Some(Command::Flush(done))) => {
                self.flushes.push(done);
                // Queued frames start the clock in `wait` once the session can send them.
                if self.pacer.is_quiet() && self.nothing_queued() {
                    self.flushed();
                }
            }
            Wake::Command(Some(Command::Disconnect(done))) => {
                self.disconnect().await;
                let _ = done.send(());
            }
            // The `Connection` was dropped: leave cleanly.
            Wake::Command(None) => self.disconnect().await,
            Wake::Dispatch(Some(Dispatch::State(d))) => self.feed(Input::VoiceStateUpdate(d)),
            Wake::Dispatch(Some(Dispatch::Server(d))) => self.feed(Input::VoiceServerUpdate(d)),
            Wake::Dispatch(None) => self.dispatches = None,
            Wake::Socket(Some(Ok(message))) => match message {
                Message::Text(text) => self.feed(Input::Text(text.as_str())),
                Message::Binary(bytes) => self.feed(Input::Binary(&bytes)),
                Message::Close(frame) => {
                    self.socket = None;
                    let code = frame.map(|f| u16::from(f.code));
                    self.feed(Input::WebSocketClosed { code });
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            },
            Wake::Socket(Some(Err(_)) | None) => {
                self.socket = None;
                self.feed(Input::WebSocketClosed { code: None });
            }
            Wake::Opened(result) => {
                self.opening = None;
                match *result {
                    Ok(socket) => {
                        self.socket = Some(socket);
                        self.feed(Input::WebSocketOpened);
                    }
                    Err(error) => {
                        tracing::debug!(%error, "voice websocket did not open");
                        self.feed(Input::WebSocketClosed { code: None });
                    }
                }
            }
            Wake::Datagram(Ok((len, from))) => {
                let data = self.receive.get(..len).unwrap_or_default().to_vec();
                self.feed(Input::Datagram { from, data: &data });
            }
            Wake::Datagram(Err(error)) => {
                // ICMP errors surface here on some platforms; the core's timers decide.
                tracing::debug!(%error, "UDP receive failed");
            }
            Wake::Timer => self.feed(Input::Timer),
            Wake::FrameDue => self.pace().await,
            Wake::FirstFrame(Some(frame)) => {
                self.pacer.start(Instant::now());
                if let Tick::Held = self.send_tick(Some(frame)).await {
                    self.pacer.stop();
                }
            }
            Wake::FirstFrame(None) => self.frames_open = false,
        }
    }

    /// One 20 ms tick: the next queued frame, or the core's underrun policy (silence, then quiet).
    async fn pace(&mut self) {
        let connected = self.state.session().is_some_and(|s| s.is_connected());
        if !connected {
            // Paused until the session is back; queued frames wait (backpressure), none are lost.
            self.pacer.stop();
            if self.nothing_queued() {
                self.flushed();
            }
            return;
        }
        let frame = self.held.take().or_else(|| self.frames.try_recv().ok());
        match self.send_tick(frame).await {
            Tick::Sent => self.pacer.advance(Instant::now()),
            // Resumes from `wait` once the session can send again.
            Tick::Held => self.pacer.stop(),
            Tick::Quiet => {
                // The queue was empty and the trailing silence is out.
                self.pacer.stop();
                self.flushed();
            }
        }
    }

    /// No frame waits to be sent (neither held nor queued).
    fn nothing_queued(&self) -> bool {
        self.held.is_none() && self.frames.is_empty()
    }

    fn flushed(&mut self) {
        for done in self.flushes.drain(..) {
            let _ = done.send(());
        }
    }

    /// Hands one tick to the core and sends the datagram. A frame the core refuses because it
    /// cannot send audio right now is held, never lost (`Session::tick`'s contract).
    async fn send_tick(&mut self, frame: Option<Bytes>) -> Tick {
        let Some(session) = self.state.session() else {
            if frame.is_none() {
                return Tick::Quiet;
            }
            self.held = frame;
            return Tick::Held;
        };
        let len = match session.tick(Instant::now(), frame.as_deref(), &mut self.packet[..]) {
            Ok(Some(packet)) => packet.len(),
            Ok(None) => return Tick::Quiet,
            Err(error) => {
                tracing::debug!(%error, "audio tick failed");
                if frame.is_none() {
                    return Tick::Quiet;
                }
                if session.is_connected() {
                    // Not a pause (an unusable frame): drop it rather than offer it forever.
                    return Tick::Sent;
                }
                self.held = frame;
                return Tick::Held;
            }
        };
        // Op 5 queued by the first frame of a spurt goes out before the audio.
        self.drain().await;
        self.transmit_packet(len).await;
        Tick::Sent
    }

    async fn transmit_packet(&mut self, len: usize) {
        let remote = self.state.session().and_then(|s| s.remote());
        if let (Some(udp), Some(remote), Some(packet)) =
            (self.udp.as_ref(), remote, self.packet.get(..len))
        {
            if let Err(error) = udp.send_to(packet, remote).await {
                tracing::debug!(%error, "UDP send failed");
            }
        }
    }

    fn feed(&mut self, input: Input<'_>) {
        if let Err(error) = self.state.handle_input(Instant::now(), input) {
            tracing::debug!(%error, "voice connection ended");
        }
    }

    async fn disconnect(&mut self) {
        if let Some(session) = self.state.session() {
            session.disconnect();
        } else {
            // Still in the handshake: nothing to leave on the voice server; tell the main gateway.
            self.finished = true;
        }
        self.drain().await;
        self.finished = true;
    }

    /// The drain rule: carry out outputs until `WakeAt` or `Idle`.
    async fn drain(&mut self) {
        loop {
            match self.state.poll_output() {
                Output::MainGateway(update) => {
                    let gateway = self.gateway.as_deref();
                    if self.join.send_voice_state_update(gateway, &update) {
                        self.finished = true;
                    }
                }
                Output::OpenWebSocket { url } => {
                    self.socket = None;
                    self.opening = Some(Box::pin(ws::open(url, self.connector.clone())));
                }
                Output::SendText(text) => self.send_message(Message::text(text)).await,
                Output::SendBinary(bytes) => self.send_message(Message::binary(bytes)).await,
                Output::CloseWebSocket { code } => {
                    self.opening = None;
                    // When leaving for good, finish the close handshake before the task ends.
                    let wait = self.state.error().is_some();
                    self.close_socket(code, wait).await;
                }
                Output::BindUdp { remote } => {
                    match UdpSocket::bind(udp_bind_address(remote)).await {
                        Ok(socket) => self.udp = Some(socket),
                        Err(error) => {
                            tracing::warn!(%error, "could not bind a UDP socket");
                            self.udp = None;
                        }
                    }
                }
                Output::Transmit { to, data } => {
                    if let Some(udp) = &self.udp {
                        if let Err(error) = udp.send_to(&data, to).await {
                            tracing::debug!(%error, "UDP send failed");
                        }
                    }
                }
                Output::Event(event) => self.on_event(event),
                Output::WakeAt(at) => {
                    self.wake_at = Some(at);
                    return;
                }
                Output::Idle => {
                    self.wake_at = None;
                    if self.state.error().is_some() {
                        self.finished = true;
                    }
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        self.join.on_event(&event);
        if matches!(event, Event::Closed { .. }) {
            self.finished = true;
        }
        if self.events.try_send(event).is_err() {
            self.events_dropped += 1;
        }
    }

    async fn send_message(&mut self, message: Message) {
        let Some(socket) = self.socket.as_mut() else {
            return;
        };
        if let Err(error) = socket.send(message).await {
            tracing::debug!(%error, "voice websocket send failed");
            self.socket = None;
            self.pending.push(Owned::Closed(None));
        }
    }

    async fn close_socket(&mut self, code: u16, wait: bool) {
        let Some(mut socket) = self.socket.take() else {
            return;
        };
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        };
        let timeout = self.close_timeout;
        let close = async move {
            let _ = tokio::time::timeout(timeout, async {
                if socket.close(Some(frame)).await.is_ok() {
                    while let Some(Ok(_)) = socket.next().await {}
                }
            })
            .await;
        };
        if wait {
            close.await;
        } else {
            // Abandoning a socket for a new one: finish its close in the background.
            tokio::spawn(close);
        }
    }
}

async fn next_dispatch(
    dispatches: &mut Option<mpsc::UnboundedReceiver<Dispatch>>,
) -> Option<Dispatch> {
    match dispatches {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_message(
    socket: &mut Option<VoiceSocket>,
) -> Option<Result<Message, tungstenite::Error>> {
    match socket {
        Some(socket) => socket.next().await,
        None => std::future::pending().await,
    }
}

async fn finish_opening(opening: &mut Option<Opening>) -> Result<VoiceSocket, tungstenite::Error> {
    match opening {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

async fn receive_datagram(
    udp: &Option<UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match udp {
        Some(udp) => udp.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
