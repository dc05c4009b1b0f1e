//! One connection's websocket side, run by an event loop: the core's drain loop around a
//! non-blocking websocket, the receive half of the media socket and the control timers. It runs
//! only when something happened (readiness, a deadline, a wake-up from its link); the audio goes
//! out from the shared media workers, never from here. Received audio comes in here (datagrams,
//! the receive buffers' deadlines among the control timers) and goes to the subscriptions. No
//! protocol decision lives here.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::Interest;
use tungstenite::Message;
use voice_adapter::{AudioRouter, Dispatch, GatewayLink, PendingJoin};
use voice_proto::{Event, Input, Output, Received};

use crate::event_loop::{tcp_token, udp_token, Io, News};
use crate::events::EventChannel;
use crate::link::{Link, Shared};
use crate::resolver;
use crate::ws::{Closing, Open, Opening, Started, Step, READS_PER_EVENT};

/// The voice websocket of a connection.
enum Websocket {
    None,
    Opening(Opening),
    Open(Open),
}

/// What a driver is made of; the connection builds it, its loop runs it.
pub(crate) struct Setup {
    pub(crate) link: Arc<Link>,
    pub(crate) shared: Shared,
    pub(crate) gateway: Option<Arc<dyn GatewayLink>>,
    pub(crate) dispatches: Option<Receiver<Dispatch>>,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) connect_timeout: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) events: Arc<EventChannel>,
    pub(crate) join: PendingJoin,
    /// Received audio's subscriptions.
    pub(crate) router: Arc<AudioRouter>,
    /// The connection's span (guild and channel), entered whenever the driver runs.
    pub(crate) span: tracing::Span,
}

pub(crate) struct Driver {
    setup: Setup,
    /// Where the loop keeps it: its sockets' tokens.
    slot: usize,
    websocket: Websocket,
    /// Counts websocket openings, so that a late resolver answer for an abandoned one is
    /// ignored.
    attempt: u64,
    /// Websockets whose close handshake is under way (registered under the same token).
    closing: Vec<Closing>,
    udp: Option<UdpSocket>,
    /// The next control deadline (heartbeat, keepalive, handshake stage); not the playout's.
    timer: Option<Instant>,
    /// Outputs taken from the core, carried out after its lock is released.
    outputs: VecDeque<Output>,
    /// Received audio taken from the core, routed to the subscriptions once its lock is
    /// released.
    received: Vec<Received>,
    /// Written to the websocket since it was last read until `WouldBlock`: with TLS, a write
    /// may read what arrived meanwhile into rustls's buffer, where no readiness event will tell
    /// of it; so every run that wrote ends with a read.
    wrote: bool,
    /// Messages are left to read after the last run's share.
    read_again: bool,
    /// The connection has ended (fatal error, disconnect): only its sockets' closes remain.
    finished: bool,
    stopped: bool,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Every socket of the connection is closed by now (dropped with the driver at the
        // latest): tell whoever waits in `disconnect()`. The events ended when it stopped (here
        // too if its loop dropped it without a stop: a reader never waits for nothing).
        self.setup.events.end();
        self.setup.router.end();
        self.setup.link.end();
    }
}

impl Driver {
    pub(crate) fn new(setup: Setup) -> Self {
        Self {
            setup,
            slot: 0,
            websocket: Websocket::None,
            attempt: 0,
            closing: Vec::new(),
            udp: None,
            timer: None,
            outputs: VecDeque::new(),
            received: Vec::new(),
            wrote: false,
            read_again: false,
            finished: false,
            stopped: false,
        }
    }

    pub(crate) fn span(&self) -> &tracing::Span {
        &self.setup.span
    }

    pub(crate) fn id(&self) -> u64 {
        self.setup.link.id()
    }

    /// Its first run, in `slot` of its loop: carries out what the core holds already (op 4, or
    /// opening the websocket).
    pub(crate) fn start(&mut self, io: &mut Io<'_>, slot: usize) {
        self.slot = slot;
        self.wake(io);
    }

    /// Its link woke it: the application asked to leave, dispatches arrived, or the core holds
    /// outputs (left by the media worker or the application).
    pub(crate) fn wake(&mut self, io: &mut Io<'_>) {
        self.setup.link.woken();
        if self.setup.link.wants_to_leave() && !self.finished {
            self.disconnect(io);
        }
        while !self.finished {
            let Some(dispatch) = self
                .setup
                .dispatches
                .as_ref()
                .and_then(|d| d.try_recv().ok())
            else {
                break;
            };
            match dispatch {
                Dispatch::State(d) => self.feed(Input::VoiceStateUpdate(d)),
                Dispatch::Server(d) => self.feed(Input::VoiceServerUpdate(d)),
            }
            self.carry_out(io);
        }
        if !self.finished {
            self.take_outputs();
            self.carry_out(io);
        }
        self.settle(io);
    }

    /// Readiness of the websocket (or of one being opened or closed).
    pub(crate) fn on_websocket_ready(&mut self, io: &mut Io<'_>) {
        self.closing.retain_mut(Closing::progress);
        if !self.finished {
            self.progress_opening(io);
            self.read_again = self.serve_websocket(io);
        }
        self.settle(io);
    }

    /// Whether the loop should serve the websocket again soon: messages were left after one
    /// event's share (taking the answer).
    pub(crate) fn take_read_again(&mut self) -> bool {
        std::mem::take(&mut self.read_again)
    }

    /// Readiness of the media socket: every datagram waiting goes to the core, read into the
    /// loop's one `receive` buffer. `true` when datagrams are left after this event's share.
    pub(crate) fn on_media_ready(&mut self, io: &mut Io<'_>, receive: &mut [u8]) -> bool {
        let mut more = true;
        for _ in 0..READS_PER_EVENT {
            let Some(udp) = self.udp.as_ref().filter(|_| !self.finished) else {
                more = false;
                break;
            };
            match udp.recv_from(receive) {
                Ok((len, from)) => {
                    let data = receive.get(..len).unwrap_or_default();
                    self.feed(Input::Datagram { from, data });
                    self.carry_out(io);
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => {
                    more = false;
                    break;
                }
                // ICMP errors surface here on some platforms; the core's timers decide.
                Err(error) => tracing::debug!(%error, "UDP receive failed"),
            }
        }
        self.settle(io);
        more
    }

    /// The resolver's answer for websocket attempt `attempt`.
    pub(crate) fn on_resolved(
        &mut self,
        io: &mut Io<'_>,
        attempt: u64,
        addresses: std::io::Result<Vec<SocketAddr>>,
    ) {
        if attempt == self.attempt && !self.finished {
            if let Some(opening) = self.take_opening() {
                let step = opening.resolved(addresses, io.registry, tcp_token(self.slot));
                self.apply(io, step);
            }
        }
        self.settle(io);
    }

    /// A deadline of this driver has come: the core's control timer, the connect timeout, or a
    /// close handshake's end.
    pub(crate) fn on_time(&mut self, io: &mut Io<'_>, now: Instant) {
        self.closing.retain(|closing| closing.deadline > now);
        let timed_out = matches!(&self.websocket, Websocket::Opening(o) if o.deadline <= now);
        if timed_out && !self.finished {
            self.opening_failed("the connect timeout passed".to_owned());
            self.carry_out(io);
        }
        if !self.finished && self.timer.is_some_and(|at| at <= now) {
            self.feed(Input::Timer);
            self.carry_out(io);
        }
        self.settle(io);
    }

    /// The earliest deadline the loop must wake this driver for.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let opening = match &self.websocket {
            Websocket::Opening(opening) => Some(opening.deadline),
            _ => None,
        };
        let timer = self.timer.filter(|_| !self.finished);
        [timer, opening]
            .into_iter()
            .flatten()
            .chain(self.closing.iter().map(|closing| closing.deadline))
            .min()
    }

    /// Ended, with every socket closed: the loop drops it.
    pub(crate) fn is_done(&self) -> bool {
        self.stopped && self.closing.is_empty()
    }

    /// Feeds one input to the core and takes its outputs and received audio (the drain rule),
    /// under one lock; the audio goes to its subscriptions once the lock is released.
    fn feed(&mut self, input: Input<'_>) {
        {
            let mut core = self.setup.shared.lock();
            self.timer = core.feed(input, &mut self.outputs);
            core.take_received(&mut self.received);
        }
        self.setup.router.route(&mut self.received);
    }

    /// Takes the outputs and received audio the core holds (left by the media worker or the
    /// application, or a disconnect).
    fn take_outputs(&mut self) {
        {
            let mut core = self.setup.shared.lock();
            self.timer = core.take_outputs(&mut self.outputs);
            core.take_received(&mut self.received);
        }
        self.setup.router.route(&mut self.received);
    }

    /// Ends the connection in whatever state it is (a no-op for the core once it has ended):
    /// the op 4 leave when joined through the main gateway, close 1000.
    fn disconnect(&mut self, io: &mut Io<'_>) {
        self.setup.shared.lock().state.disconnect();
        self.take_outputs();
        self.carry_out(io);
        self.finished = true;
    }

    /// After each run: reads the websocket if the run wrote to it (see `wrote`); once the
    /// connection has ended, stops (once).
    fn settle(&mut self, io: &mut Io<'_>) {
        if std::mem::take(&mut self.wrote) && !self.finished {
            self.read_again |= self.serve_websocket(io);
        }
        if self.finished && !self.stopped {
            self.stop(io);
        }
    }

    /// The connection has ended: end the core if it has not ended by itself (a refused op 4),
    /// which leaves the channel; tell a caller still waiting for the join; close the websocket
    /// (1000, with its close handshake) and the media socket; end the application's events.
    fn stop(&mut self, io: &mut Io<'_>) {
        self.stopped = true;
        // However the driver stops, the core ends: an end it reached by itself already sent
        // the op 4 leave; any other stop (a refused op 4) sends it now, once.
        if !self.setup.shared.lock().state.is_closed() {
            self.disconnect(io);
        }
        {
            let core = self.setup.shared.lock();
            self.setup.join.driver_stopped(&core.state);
        }
        let dropped = self.setup.events.dropped();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "voice events dropped: the application did not read them"
            );
        }
        if let Websocket::Open(open) = std::mem::replace(&mut self.websocket, Websocket::None) {
            self.start_closing(open, Some(1000));
        }
        if let Some(mut udp) = self.udp.take() {
            // Explicitly: the media worker's handle is a duplicate of the same socket.
            let _ = io.registry.deregister(&mut udp);
        }
        // The worker stops sending on this connection's socket.
        self.setup.shared.lock().set_media_socket(None);
        self.setup.dispatches = None;
        self.timer = None;
        self.setup.events.end();
        self.setup.router.end();
    }

    /// Carries out the outputs taken from the core, in order, with its lock released. Outputs
    /// that feed the core again (a websocket that failed) append theirs and are carried out
    /// here too.
    fn carry_out(&mut self, io: &mut Io<'_>) {
        while let Some(output) = self.outputs.pop_front() {
            match output {
                Output::MainGateway(update) => {
                    let gateway = self.setup.gateway.as_deref();
                    if self.setup.join.send_voice_state_update(gateway, &update) {
                        self.finished = true;
                    }
                }
                Output::OpenWebSocket { url } => self.open_websocket(io, &url),
                Output::SendText(text) => self.send_message(Message::text(text)),
                Output::SendBinary(bytes) => self.send_message(Message::binary(bytes)),
                Output::CloseWebSocket { code } => {
                    match std::mem::replace(&mut self.websocket, Websocket::None) {
                        Websocket::Open(open) => self.start_closing(open, Some(code)),
                        // An opening is abandoned as it is.
                        Websocket::Opening(_) | Websocket::None => {}
                    }
                }
                Output::BindUdp { remote } => self.bind_udp(io, remote),
                Output::Transmit { to, data } => {
                    if let Some(udp) = &self.udp {
                        if let Err(error) = udp.send_to(&data, to) {
                            tracing::debug!(%error, "UDP send failed");
                        }
                    }
                }
                Output::Event(event) => self.on_event(event),
                Output::WakeAt(_) => {}
                Output::Idle => {
                    if self.setup.shared.lock().state.error().is_some() {
                        self.finished = true;
                    }
                }
            }
        }
    }

    fn open_websocket(&mut self, io: &mut Io<'_>, url: &str) {
        // The core drops a previous websocket without reporting its close: close it politely.
        if let Websocket::Open(open) = std::mem::replace(&mut self.websocket, Websocket::None) {
            self.start_closing(open, Some(1000));
        }
        self.attempt += 1;
        let deadline = Instant::now() + self.setup.connect_timeout;
        match Opening::start(url, deadline, io.registry, tcp_token(self.slot)) {
            Ok(Started::Connecting(opening)) => self.websocket = Websocket::Opening(opening),
            Ok(Started::Resolve {
                opening,
                host,
                port,
            }) => {
                self.websocket = Websocket::Opening(opening);
                let event_loop = Arc::clone(io.event_loop);
                let (id, attempt) = (self.id(), self.attempt);
                let asked = resolver::resolve(host, port, move |addresses| {
                    event_loop.send(News::Resolved {
                        id,
                        attempt,
                        addresses,
                    });
                });
                if let Err(error) = asked {
                    self.opening_failed(format!("could not start the resolver: {error}"));
                }
            }
            Err(error) => self.opening_failed(error),
        }
    }

    /// Goes on opening the websocket after a readiness event.
    fn progress_opening(&mut self, io: &mut Io<'_>) {
        if let Some(opening) = self.take_opening() {
            let step = opening.progress(&self.setup.tls, io.registry, tcp_token(self.slot));
            self.apply(io, step);
        }
    }

    /// The websocket being opened, if that is where it is (any other state stays).
    fn take_opening(&mut self) -> Option<Opening> {
        if !matches!(self.websocket, Websocket::Opening(_)) {
            return None;
        }
        match std::mem::replace(&mut self.websocket, Websocket::None) {
            Websocket::Opening(opening) => Some(opening),
            _ => None,
        }
    }

    fn apply(&mut self, io: &mut Io<'_>, step: Step) {
        match step {
            Step::Pending(opening) => self.websocket = Websocket::Opening(opening),
            Step::Open(socket) => {
                self.websocket = Websocket::Open(Open::new(socket));
                self.feed(Input::WebSocketOpened);
                self.carry_out(io);
            }
            Step::Failed(error) => {
                self.opening_failed(error);
                self.carry_out(io);
            }
        }
    }

    fn opening_failed(&mut self, error: String) {
        tracing::debug!(%error, "voice websocket did not open");
        self.websocket = Websocket::None;
        self.feed(Input::WebSocketClosed { code: None });
    }

    /// Flushes what waits to be written, then reads messages (at most one event's share) and
    /// feeds them. `true` when more may be waiting.
    fn serve_websocket(&mut self, io: &mut Io<'_>) -> bool {
        if let Websocket::Open(open) = &mut self.websocket {
            self.wrote = true;
            if let Err(error) = open.flush() {
                self.websocket_failed(&error);
                self.carry_out(io);
                return false;
            }
        }
        for _ in 0..READS_PER_EVENT {
            if self.finished {
                return false;
            }
            let Websocket::Open(open) = &mut self.websocket else {
                return false;
            };
            self.wrote = false;
            let message = match open.read() {
                Ok(Some(message)) => message,
                Ok(None) => return false,
                Err(error) => {
                    self.websocket_failed(&error);
                    self.carry_out(io);
                    return false;
                }
            };
            match message {
                Message::Text(text) => self.feed(Input::Text(text.as_str())),
                Message::Binary(bytes) => self.feed(Input::Binary(&bytes)),
                Message::Close(frame) => {
                    let code = frame.map(|f| u16::from(f.code));
                    if let Websocket::Open(open) =
                        std::mem::replace(&mut self.websocket, Websocket::None)
                    {
                        // Tungstenite queued the reply; finish the handshake in the background.
                        self.start_closing(open, None);
                    }
                    self.feed(Input::WebSocketClosed { code });
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
            self.carry_out(io);
        }
        true
    }

    fn send_message(&mut self, message: Message) {
        let Websocket::Open(open) = &mut self.websocket else {
            return;
        };
        self.wrote = true;
        if let Err(error) = open.send(message) {
            // Reported after the outputs already taken, in order.
            self.websocket_failed(&error);
        }
    }

    /// The websocket broke (no close frame): drop it and tell the core.
    fn websocket_failed(&mut self, error: &tungstenite::Error) {
        tracing::debug!(%error, "voice websocket failed");
        self.websocket = Websocket::None;
        self.feed(Input::WebSocketClosed { code: None });
    }

    fn start_closing(&mut self, open: Open, code: Option<u16>) {
        let deadline = Instant::now() + self.setup.close_timeout;
        if let Some(closing) = Closing::start(open.into_socket(), code, deadline) {
            self.closing.push(closing);
        }
    }

    fn bind_udp(&mut self, io: &mut Io<'_>, remote: SocketAddr) {
        if let Some(mut old) = self.udp.take() {
            let _ = io.registry.deregister(&mut old);
        }
        let token = udp_token(self.slot);
        self.udp = self.setup.shared.bind_media(remote, |socket| {
            let mut receive = UdpSocket::from_std(socket);
            io.registry
                .register(&mut receive, token, Interest::READABLE)?;
            Ok(receive)
        });
    }

    fn on_event(&mut self, event: Event) {
        self.setup.join.on_event(&event);
        if matches!(event, Event::Closed { .. }) {
            self.finished = true;
        }
        self.setup.events.push(event);
    }
}
