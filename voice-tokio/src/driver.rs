//! The driver task: the websocket side of one connection around the core's drain loop. It is
//! woken only by events (a websocket message, a datagram, a dispatch, a control deadline, the
//! media worker saying the core has outputs): the audio goes out from the shared media workers,
//! never from here. Received audio comes in here (datagrams, the receive buffers' deadlines among
//! the control timers) and goes to the subscriptions. No protocol decision lives here.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::Connector;
use voice_adapter::{AudioRouter, Dispatch, GatewayLink, PendingJoin};
use voice_proto::{Event, Input, Output, Received};

use crate::connection::Shared;
use crate::events::EventChannel;
use crate::ws::{self, VoiceSocket};

/// Receive buffer: larger than any RTP packet Discord sends.
const RECEIVE_BUFFER: usize = 2048;

type Opening = Pin<Box<dyn Future<Output = Result<VoiceSocket, tungstenite::Error>> + Send>>;

/// What woke the driver.
enum Wake {
    Disconnect(Option<oneshot::Sender<()>>),
    Dispatch(Option<Dispatch>),
    Socket(Option<Result<Message, tungstenite::Error>>),
    Opened(Box<Result<VoiceSocket, tungstenite::Error>>),
    Datagram(std::io::Result<(usize, SocketAddr)>),
    Timer,
    /// The media worker or the application left outputs in the core.
    Outputs,
}

pub(crate) struct Channels {
    pub(crate) disconnects: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    pub(crate) dispatches: Option<mpsc::UnboundedReceiver<Dispatch>>,
    pub(crate) events: Arc<EventChannel>,
    pub(crate) join: PendingJoin,
    pub(crate) router: Arc<AudioRouter>,
}

pub(crate) struct Driver {
    shared: Shared,
    gateway: Option<Arc<dyn GatewayLink>>,
    connector: Connector,
    close_timeout: std::time::Duration,
    socket: Option<VoiceSocket>,
    opening: Option<Opening>,
    /// The media socket, registered for reading only: audio is sent on its clone by the media
    /// worker, and write readiness would wake this task for every datagram sent.
    udp: Option<AsyncFd<std::net::UdpSocket>>,
    disconnects: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    dispatches: Option<mpsc::UnboundedReceiver<Dispatch>>,
    events: Arc<EventChannel>,
    join: PendingJoin,
    /// Received audio's subscriptions.
    router: Arc<AudioRouter>,
    /// Received audio taken from the core, routed once its lock is released.
    received: Vec<Received>,
    /// The next control deadline (heartbeat, keepalive, handshake stage); not the playout's.
    timer: Option<Instant>,
    /// Outputs taken from the core, carried out after its lock is released.
    outputs: VecDeque<Output>,
    receive: Box<[u8; RECEIVE_BUFFER]>,
    finished: bool,
}

impl Driver {
    pub(crate) fn new(
        shared: Shared,
        gateway: Option<Arc<dyn GatewayLink>>,
        connector: Connector,
        close_timeout: std::time::Duration,
        channels: Channels,
    ) -> Self {
        Self {
            shared,
            gateway,
            connector,
            close_timeout,
            socket: None,
            opening: None,
            udp: None,
            disconnects: channels.disconnects,
            dispatches: channels.dispatches,
            events: channels.events,
            join: channels.join,
            router: channels.router,
            received: Vec::new(),
            timer: None,
            outputs: VecDeque::new(),
            receive: Box::new([0; RECEIVE_BUFFER]),
            finished: false,
        }
    }

    /// Runs until the connection ends (fatal error, disconnect, the `Connection` is dropped, or
    /// the caller of `join_channel` went away before the join completed).
    pub(crate) async fn run(mut self) {
        let mut done = Vec::new();
        self.drain();
        self.carry_out().await;
        while !self.finished {
            let wake = self.wait().await;
            if let Wake::Disconnect(Some(reply)) = wake {
                done.push(reply);
                self.disconnect().await;
                continue;
            }
            self.on_wake(wake).await;
            if !self.finished && self.join.caller_left() {
                // A dropped `join_channel` future: nobody will ever drive this connection, so
                // it leaves the channel instead of staying there (issue 14, row 2).
                tracing::debug!("the caller of join_channel went away; leaving");
                self.disconnect().await;
            }
        }
        // However the driver stops, the core ends: an end it reached by itself already sent
        // the op 4 leave (and this is a no-op); any other stop sends it now, once.
        self.disconnect().await;
        {
            let core = self.shared.lock();
            self.join.driver_stopped(&core.state);
        }
        let dropped = self.events.dropped();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "voice events dropped: the application did not read them"
            );
        }
        self.close_socket(1000, true).await;
        // The worker stops sending on this connection's socket.
        {
            let mut core = self.shared.lock();
            core.set_media_socket(None);
            core.take_received(&mut self.received);
        }
        self.router.route(&mut self.received);
        self.router.end();
        self.events.end();
        for reply in done {
            let _ = reply.send(());
        }
    }

    async fn wait(&mut self) -> Wake {
        let timer = self.timer.map(tokio::time::Instant::from_std);
        let shared = Arc::clone(&self.shared);
        let socket = &mut self.socket;
        let opening = &mut self.opening;
        let udp = &self.udp;
        let receive = &mut self.receive[..];
        let dispatches = &mut self.dispatches;
        tokio::select! {
            reply = self.disconnects.recv() => Wake::Disconnect(reply),
            dispatch = next_dispatch(dispatches) => Wake::Dispatch(dispatch),
            message = next_message(socket) => Wake::Socket(message),
            opened = finish_opening(opening) => Wake::Opened(Box::new(opened)),
            datagram = receive_datagram(udp, receive) => Wake::Datagram(datagram),
            () = sleep_until(timer) => Wake::Timer,
            () = shared.wake().driver.notified() => Wake::Outputs,
        }
    }

    async fn on_wake(&mut self, wake: Wake) {
        match wake {
            // The `Connection` was dropped: leave cleanly.
            Wake::Disconnect(_) => self.disconnect().await,
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
                let data = self.receive.get(..len).unwrap_or_default();
                feed(
                    &self.shared,
                    Input::Datagram { from, data },
                    &mut self.outputs,
                    &mut self.timer,
                    &mut self.received,
                );
            }
            Wake::Datagram(Err(error)) => {
                // ICMP errors surface here on some platforms; the core's timers decide.
                tracing::debug!(%error, "UDP receive failed");
            }
            Wake::Timer => self.feed(Input::Timer),
            Wake::Outputs => self.drain(),
        }
        // Received audio goes to its subscribers apart from the events, the core unlocked.
        self.router.route(&mut self.received);
        self.carry_out().await;
    }

    fn feed(&mut self, input: Input<'_>) {
        feed(
            &self.shared,
            input,
            &mut self.outputs,
            &mut self.timer,
            &mut self.received,
        );
    }

    /// Takes the outputs the core holds (left by the media worker or the application).
    fn drain(&mut self) {
        let mut core = self.shared.lock();
        self.timer = core.take_outputs(&mut self.outputs);
        core.take_received(&mut self.received);
    }

    /// Ends the connection in whatever state it is (a no-op for the core once it has ended):
    /// the op 4 leave when joined through the main gateway, close 1000.
    async fn disconnect(&mut self) {
        {
            let mut core = self.shared.lock();
            core.state.disconnect();
            self.timer = core.take_outputs(&mut self.outputs);
        }
        self.carry_out().await;
        self.finished = true;
    }

    /// Carries out the outputs taken from the core, in order, with its lock released. Outputs
    /// that need the core again (a closed socket, a bound UDP socket) feed it and come back here.
    async fn carry_out(&mut self) {
        while let Some(output) = self.outputs.pop_front() {
            match output {
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
                    let wait = self.shared.lock().state.error().is_some();
                    self.close_socket(code, wait).await;
                }
                Output::BindUdp { remote } => self.bind_udp(remote),
                Output::Transmit { to, data } => {
                    // IP discovery and keepalives: rare and small; a full buffer loses one, as
                    // the network may, and the core retries.
                    if let Some(udp) = &self.udp {
                        if let Err(error) = udp.get_ref().send_to(&data, to) {
                            tracing::debug!(%error, "UDP send failed");
                        }
                    }
                }
                Output::Event(event) => self.on_event(event),
                Output::WakeAt(_) => {}
                Output::Idle => {
                    if self.shared.lock().state.error().is_some() {
                        self.finished = true;
                    }
                }
            }
        }
    }

    fn bind_udp(&mut self, remote: SocketAddr) {
        self.udp = self.shared.bind_media(remote, |receive| {
            // Read interest only (tokio's UdpSocket always asks for write readiness too, and
            // every datagram the worker sends on the clone would wake the reactor). The safe
            // constructor is deprecated in favour of an `unsafe` one for sockets whose fd could
            // be closed behind tokio's back; this one is owned by the `AsyncFd` until dropped.
            #[allow(deprecated)]
            AsyncFd::with_interest(receive, Interest::READABLE)
        });
    }

    fn on_event(&mut self, event: Event) {
        self.join.on_event(&event);
        if matches!(event, Event::Closed { .. }) {
            self.finished = true;
        }
        self.events.push(event);
    }

    async fn send_message(&mut self, message: Message) {
        let Some(socket) = self.socket.as_mut() else {
            return;
        };
        if let Err(error) = socket.send(message).await {
            tracing::debug!(%error, "voice websocket send failed");
            self.socket = None;
            // Reported after the outputs already taken, in order.
            let mut later = std::mem::take(&mut self.outputs);
            feed(
                &self.shared,
                Input::WebSocketClosed { code: None },
                &mut self.outputs,
                &mut self.timer,
                &mut self.received,
            );
            later.append(&mut self.outputs);
            self.outputs = later;
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

/// Feeds one input to the core and takes its outputs and received audio (the drain rule), under
/// one lock.
fn feed(
    shared: &Shared,
    input: Input<'_>,
    outputs: &mut VecDeque<Output>,
    timer: &mut Option<Instant>,
    received: &mut Vec<Received>,
) {
    let mut core = shared.lock();
    *timer = core.feed(input, outputs);
    core.take_received(received);
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
    udp: &Option<AsyncFd<std::net::UdpSocket>>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match udp {
        Some(udp) => {
            udp.async_io(Interest::READABLE, |socket| socket.recv_from(buf))
                .await
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
