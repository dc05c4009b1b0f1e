//! The voice websocket on a non-blocking socket, driven by readiness events: opening it (a
//! non-blocking TCP connect, then TLS and the HTTP upgrade resumed on every event until they are
//! done), the open socket (reads until `WouldBlock`, buffered writes flushed when the socket is
//! writable again) and closing it (the close handshake, bounded in time by the caller).

use std::io::{self, ErrorKind};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::{ClientHandshake, Request, Response};
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Connector, Message, WebSocket};

/// The websocket type of an open connection.
pub(crate) type Socket = WebSocket<MaybeTlsStream<TcpStream>>;
type Handshake = MidHandshake<ClientHandshake<MaybeTlsStream<TcpStream>>>;
type Handshaken =
    Result<(Socket, Response), HandshakeError<ClientHandshake<MaybeTlsStream<TcpStream>>>>;

/// DAVE proposals and welcomes grow with call size; stay well above what Discord sends.
const MAX_MESSAGE_SIZE: usize = 16 << 20;
/// Voice gateway messages are small: a read buffer of a few KiB instead of tungstenite's
/// 128 KiB default, which it keeps per connection and zeroes on every read (larger messages
/// still arrive whole, read in several steps).
const READ_BUFFER_SIZE: usize = 4 << 10;

/// Messages (or close-handshake reads) taken from one socket per readiness event before the
/// event loop serves the others; the rest are read in the loop's next round.
pub(crate) const READS_PER_EVENT: usize = 32;

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE))
}

fn would_block(error: &tungstenite::Error) -> bool {
    matches!(error, tungstenite::Error::Io(e) if e.kind() == ErrorKind::WouldBlock)
}

/// A websocket being opened, and until when it may take.
pub(crate) struct Opening {
    stage: Stage,
    /// The connect timeout: resolving, TCP, TLS and the upgrade together.
    pub(crate) deadline: Instant,
}

enum Stage {
    /// The host is a name: the resolver thread looks it up.
    Resolving { request: Box<Request>, port: u16 },
    /// The TCP connect is under way; `rest` are the other addresses of the host.
    Connecting {
        stream: TcpStream,
        request: Box<Request>,
        rest: Vec<SocketAddr>,
    },
    /// TLS and the HTTP upgrade, resumed on every readiness event.
    Handshaking(Box<Handshake>),
}

/// Where opening got to.
pub(crate) enum Step {
    /// Waiting for readiness (or the resolver).
    Pending(Opening),
    /// Open: feed `WebSocketOpened`, then read (the upgrade may have read the first frames).
    Open(Box<Socket>),
    /// Failed: feed `WebSocketClosed` without a code.
    Failed(String),
}

/// What starting to open a websocket gave.
pub(crate) enum Started {
    /// Connecting (the host was an IP address).
    Connecting(Opening),
    /// The host is a name: resolve `host` and `port`, then [`Opening::resolved`].
    Resolve {
        /// Waiting for the address.
        opening: Opening,
        /// The host name.
        host: String,
        /// The port.
        port: u16,
    },
}

impl Opening {
    /// Starts opening `url` (`ws://` or `wss://`); its socket is registered with `token`.
    pub(crate) fn start(
        url: &str,
        deadline: Instant,
        registry: &Registry,
        token: Token,
    ) -> Result<Started, String> {
        let request = Box::new(url.into_client_request().map_err(|e| e.to_string())?);
        let uri = request.uri();
        let secure = uri.scheme_str() == Some("wss");
        let host = uri
            .host()
            .ok_or_else(|| format!("no host in {url}"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        match host.parse::<IpAddr>() {
            Ok(ip) => {
                let address = SocketAddr::new(ip, port);
                let stage = connect(address, request, Vec::new(), registry, token)?;
                Ok(Started::Connecting(Self { stage, deadline }))
            }
            Err(_) => Ok(Started::Resolve {
                opening: Self {
                    stage: Stage::Resolving { request, port },
                    deadline,
                },
                host,
                port,
            }),
        }
    }

    /// The resolver's answer: connects to the first address (the others are tried in turn when
    /// a connect fails).
    pub(crate) fn resolved(
        self,
        addresses: io::Result<Vec<SocketAddr>>,
        registry: &Registry,
        token: Token,
    ) -> Step {
        let deadline = self.deadline;
        let Stage::Resolving { request, port } = self.stage else {
            return Step::Pending(self);
        };
        let mut addresses = match addresses {
            Ok(addresses) => addresses,
            Err(error) => return Step::Failed(format!("cannot resolve the host: {error}")),
        };
        addresses.reverse();
        let Some(first) = addresses.pop() else {
            return Step::Failed(format!("the host resolved to no address (port {port})"));
        };
        match connect(first, request, addresses, registry, token) {
            Ok(stage) => Step::Pending(Self { stage, deadline }),
            Err(error) => Step::Failed(error),
        }
    }

    /// Goes as far as the socket lets it; called on every readiness event of its token.
    pub(crate) fn progress(
        self,
        tls: &Arc<rustls::ClientConfig>,
        registry: &Registry,
        token: Token,
    ) -> Step {
        let deadline = self.deadline;
        match self.stage {
            stage @ Stage::Resolving { .. } => Step::Pending(Self { stage, deadline }),
            Stage::Connecting {
                stream,
                request,
                mut rest,
            } => match connected(&stream) {
                Ok(false) => Step::Pending(Self {
                    stage: Stage::Connecting {
                        stream,
                        request,
                        rest,
                    },
                    deadline,
                }),
                Ok(true) => {
                    // Audio never rides the websocket; small control frames should not wait.
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%error, "TCP_NODELAY not set");
                    }
                    let connector = Connector::Rustls(Arc::clone(tls));
                    let handshaken = tungstenite::client_tls_with_config(
                        *request,
                        stream,
                        Some(config()),
                        Some(connector),
                    );
                    handshake_step(handshaken, deadline)
                }
                Err(error) => {
                    drop(stream);
                    let Some(next) = rest.pop() else {
                        return Step::Failed(error.to_string());
                    };
                    tracing::debug!(%error, %next, "voice websocket: trying the next address");
                    match connect(next, request, rest, registry, token) {
                        Ok(stage) => Step::Pending(Self { stage, deadline }),
                        Err(error) => Step::Failed(error),
                    }
                }
            },
            Stage::Handshaking(handshake) => handshake_step((*handshake).handshake(), deadline),
        }
    }
}

/// Starts a non-blocking connect to `address`, registered for both readiness kinds (mio's
/// events are edge-triggered: registering once is enough for the socket's whole life).
fn connect(
    address: SocketAddr,
    request: Box<Request>,
    rest: Vec<SocketAddr>,
    registry: &Registry,
    token: Token,
) -> Result<Stage, String> {
    let mut stream =
        TcpStream::connect(address).map_err(|e| format!("cannot connect to {address}: {e}"))?;
    registry
        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
        .map_err(|e| format!("cannot watch the socket: {e}"))?;
    Ok(Stage::Connecting {
        stream,
        request,
        rest,
    })
}

/// Whether a non-blocking connect has completed (mio's recipe: a pending error fails it, a
/// peer address says it is established, `NotConnected` means not yet).
fn connected(stream: &TcpStream) -> io::Result<bool> {
    if let Some(error) = stream.take_error()? {
        return Err(error);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(error) if error.kind() == ErrorKind::NotConnected => Ok(false),
        Err(error) => Err(error),
    }
}

fn handshake_step(handshaken: Handshaken, deadline: Instant) -> Step {
    match handshaken {
        Ok((socket, _response)) => Step::Open(Box::new(socket)),
        Err(HandshakeError::Interrupted(handshake)) => Step::Pending(Opening {
            stage: Stage::Handshaking(Box::new(handshake)),
            deadline,
        }),
        Err(HandshakeError::Failure(error)) => Step::Failed(error.to_string()),
    }
}

/// An open websocket. Writes that the socket could not take at once stay in tungstenite's
/// buffer and are flushed on the next writable event.
pub(crate) struct Open {
    socket: Box<Socket>,
    unflushed: bool,
}

impl Open {
    pub(crate) fn new(socket: Box<Socket>) -> Self {
        Self {
            socket,
            unflushed: false,
        }
    }

    /// Queues `message` and writes out as much as the socket takes. An error means the
    /// websocket is gone.
    pub(crate) fn send(&mut self, message: Message) -> Result<(), tungstenite::Error> {
        match self.socket.send(message) {
            Ok(()) => self.unflushed = false,
            Err(error) if would_block(&error) => self.unflushed = true,
            Err(error) => return Err(error),
        }
        Ok(())
    }

    /// Writes out what earlier sends left buffered.
    pub(crate) fn flush(&mut self) -> Result<(), tungstenite::Error> {
        if self.unflushed {
            match self.socket.flush() {
                Ok(()) => self.unflushed = false,
                Err(error) if would_block(&error) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// The next message, or `None` when nothing more can be read until the next readable
    /// event. An error means the websocket is gone.
    pub(crate) fn read(&mut self) -> Result<Option<Message>, tungstenite::Error> {
        match self.socket.read() {
            Ok(message) => Ok(Some(message)),
            Err(error) if would_block(&error) => Ok(None),
            Err(error) => Err(error),
        }
    }

    pub(crate) fn into_socket(self) -> Box<Socket> {
        self.socket
    }
}

/// A websocket whose close handshake is under way: our close frame (or our reply to the
/// server's) goes out, then whatever the server still sends is read and dropped until it closes
/// the connection. The owner drops it at its deadline if the server never does.
pub(crate) struct Closing {
    socket: Box<Socket>,
    /// When to give up on the server and drop the socket.
    pub(crate) deadline: Instant,
}

impl Closing {
    /// Sends a close frame with `code` (`None` after the server's close: tungstenite already
    /// queued the reply) and goes as far as the socket lets it. `None`: already done.
    pub(crate) fn start(
        mut socket: Box<Socket>,
        code: Option<u16>,
        deadline: Instant,
    ) -> Option<Self> {
        if let Some(code) = code {
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: "".into(),
            };
            match socket.close(Some(frame)) {
                Ok(()) => {}
                Err(error) if would_block(&error) => {}
                Err(_) => return None,
            }
        }
        let mut closing = Self { socket, deadline };
        closing.progress().then_some(closing)
    }

    /// Drives the close handshake on a readiness event; `false` once it is over (the socket can
    /// be dropped).
    pub(crate) fn progress(&mut self) -> bool {
        match self.socket.flush() {
            Ok(()) => {}
            Err(error) if would_block(&error) => {}
            Err(_) => return false,
        }
        for _ in 0..READS_PER_EVENT {
            match self.socket.read() {
                Ok(_) => {}
                Err(error) if would_block(&error) => return true,
                // `ConnectionClosed`: the server closed the connection, as it should.
                Err(_) => return false,
            }
        }
        true
    }
}
