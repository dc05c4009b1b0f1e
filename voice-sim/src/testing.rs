//! Test support shared by voice-sim's own tests and the adapters' tests.
//!
//! - [`RawClient`]: a hand-scripted client over a real websocket and UDP socket, speaking raw
//!   JSON, so a test can send anything, well-formed or not.
//! - [`MediaSender`]: builds encrypted RTP packets with voice-proto's [`TransportCipher`].
//! - [`EngineClient`]: voice-proto's own engine ([`AnyState`]) driven over real sockets with the
//!   drain rule (`handle_input`, `poll_transmit` until `None`, then `poll_output` until
//!   `WakeAt`/`Idle`), playing a list of Opus frames through the core's playout.
//!
//! Everything here is plain `ws://` on 127.0.0.1.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use voice_proto::crypto::{EncryptionMode, TransportCipher};
use voice_proto::discovery::{discovery_request, parse_discovery_response};
use voice_proto::payload::{Hello, Ready, ServerFrame, ServerMessage, SessionDescription};
use voice_proto::receive::{Frame, Item};
use voice_proto::rtp::{RtpHeader, RTP_HEADER_LEN};
use voice_proto::secret::SecretKey;
use voice_proto::{AnyState, Config, Event, Identifying, Input, Output, Received};

use crate::error::SimError;
use crate::server::ExpectedClient;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long the helpers wait for an expected message.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(5);

fn fail(what: impl Into<String>) -> SimError {
    SimError::Client(what.into())
}

/// What arrived on a [`RawClient`]'s websocket.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A frame voice-proto could decode.
    Frame(ServerFrame),
    /// A text frame voice-proto could not decode (e.g. garbage on purpose).
    BadText(String),
    /// A binary frame voice-proto could not decode.
    BadBinary(Vec<u8>),
    /// The server closed the websocket (with this code, if any).
    Closed(Option<u16>),
}

/// The negotiated session of a [`RawClient::handshake`].
#[derive(Debug)]
pub struct RawSession {
    /// Ready.
    pub ready: Ready,
    /// The address IP discovery reported.
    pub discovered: SocketAddr,
    /// Session Description.
    pub description: SessionDescription,
    /// The negotiated mode.
    pub mode: EncryptionMode,
}

/// A scripted client speaking raw frames.
pub struct RawClient {
    ws: Ws,
    /// The client's UDP socket (bound on 127.0.0.1).
    pub udp: UdpSocket,
    /// Hello as received right after connecting.
    pub hello: Hello,
    /// The last `seq` received (-1 before any).
    pub last_seq: i64,
    /// Every frame received so far, in order.
    pub received: Vec<Incoming>,
}

impl std::fmt::Debug for RawClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawClient")
            .field("last_seq", &self.last_seq)
            .finish_non_exhaustive()
    }
}

impl RawClient {
    /// Opens the websocket at `url` (e.g. [`VoiceServer::ws_url`](crate::VoiceServer::ws_url)),
    /// binds a UDP socket, and waits for Hello.
    pub async fn connect(url: &str) -> Result<Self, SimError> {
        let (ws, _) = tokio::time::timeout(STEP_TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .map_err(|_| fail("websocket connect timed out"))?
            .map_err(|e| fail(format!("websocket connect: {e}")))?;
        let udp = UdpSocket::bind("127.0.0.1:0").await?;
        let mut client = Self {
            ws,
            udp,
            hello: Hello {
                heartbeat_interval: 0.0,
                v: None,
            },
            last_seq: -1,
            received: Vec::new(),
        };
        match client
            .recv_until(STEP_TIMEOUT, |m| matches!(m, ServerMessage::Hello(_)))
            .await?
        {
            ServerMessage::Hello(hello) => client.hello = hello,
            _ => return Err(fail("expected Hello")),
        }
        Ok(client)
    }

    /// Sends a text frame as is.
    pub async fn send_text(&mut self, text: impl Into<String>) -> Result<(), SimError> {
        self.ws
            .send(Message::text(text.into()))
            .await
            .map_err(|e| fail(format!("send: {e}")))
    }

    /// Sends a binary frame as is.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> Result<(), SimError> {
        self.ws
            .send(Message::binary(bytes))
            .await
            .map_err(|e| fail(format!("send: {e}")))
    }

    /// Sends a close frame with `code`.
    pub async fn close(&mut self, code: u16) -> Result<(), SimError> {
        let frame = CloseFrame {
            code: code.into(),
            reason: "".into(),
        };
        self.ws
            .send(Message::Close(Some(frame)))
            .await
            .map_err(|e| fail(format!("close: {e}")))
    }

    /// The next websocket event, or `None` after `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Option<Incoming> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            let incoming = match next {
                None | Some(Err(_)) => Incoming::Closed(None),
                Some(Ok(Message::Close(frame))) => {
                    Incoming::Closed(frame.map(|f| u16::from(f.code)))
                }
                Some(Ok(Message::Text(text))) => match ServerFrame::decode_text(text.as_str()) {
                    Ok(frame) => Incoming::Frame(frame),
                    Err(_) => Incoming::BadText(text.as_str().to_owned()),
                },
                Some(Ok(Message::Binary(bytes))) => match ServerFrame::decode_binary(&bytes) {
                    Ok(frame) => Incoming::Frame(frame),
                    Err(_) => Incoming::BadBinary(bytes.to_vec()),
                },
                Some(Ok(_)) => continue,
            };
            if let Incoming::Frame(ServerFrame { seq: Some(seq), .. }) = &incoming {
                self.last_seq = *seq as i64;
            }
            self.received.push(incoming.clone());
            return Some(incoming);
        }
    }

    /// Waits for a decodable message matching `want` (other frames are kept in `received`).
    pub async fn recv_until(
        &mut self,
        timeout: Duration,
        want: impl Fn(&ServerMessage) -> bool,
    ) -> Result<ServerMessage, SimError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                None => return Err(fail("timed out waiting for a message")),
                Some(Incoming::Closed(code)) => return Err(fail(format!("closed with {code:?}"))),
                Some(Incoming::Frame(frame)) if want(&frame.message) => return Ok(frame.message),
                Some(_) => {}
            }
        }
    }

    /// Waits for the server to close the websocket; returns its close code.
    pub async fn closed(&mut self, timeout: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await? {
                Incoming::Closed(code) => return code,
                _ => continue,
            }
        }
    }

    /// Sends a well-formed Identify for `info` (with `max_dave_protocol_version: 1`).
    pub async fn identify(&mut self, info: &ExpectedClient) -> Result<(), SimError> {
        let text = serde_json::json!({"op": 0, "d": {
            "server_id": info.guild_id.to_string(), "user_id": info.user_id.to_string(),
            "session_id": info.session_id, "token": info.token, "max_dave_protocol_version": 1}});
        self.send_text(text.to_string()).await
    }

    /// Sends a well-formed v8 heartbeat with the last seq seen.
    pub async fn heartbeat(&mut self, t: u64) -> Result<(), SimError> {
        let text = serde_json::json!({"op": 3, "d": {"t": t, "seq_ack": self.last_seq}});
        self.send_text(text.to_string()).await
    }

    /// Sends op 5 Speaking.
    pub async fn speaking(&mut self, flags: u32, ssrc: u32) -> Result<(), SimError> {
        let text = serde_json::json!({"op": 5, "d": {"speaking": flags, "delay": 0, "ssrc": ssrc}});
        self.send_text(text.to_string()).await
    }

    /// Sends a discovery request for `ssrc` to `server` and returns the address in the answer.
    pub async fn discover(
        &mut self,
        ssrc: u32,
        server: SocketAddr,
    ) -> Result<SocketAddr, SimError> {
        self.udp.send_to(&discovery_request(ssrc), server).await?;
        let mut buf = [0u8; 128];
        let (len, _) = tokio::time::timeout(Duration::from_secs(2), self.udp.recv_from(&mut buf))
            .await
            .map_err(|_| fail("no IP discovery answer"))??;
        let answer = parse_discovery_response(buf.get(..len).unwrap_or_default())
            .map_err(|e| fail(format!("discovery answer: {e}")))?;
        Ok(SocketAddr::new(answer.ip, answer.port))
    }

    /// Identify for `info`, then waits for Ready.
    pub async fn identify_until_ready(&mut self, info: &ExpectedClient) -> Result<Ready, SimError> {
        self.identify(info).await?;
        match self
            .recv_until(STEP_TIMEOUT, |m| matches!(m, ServerMessage::Ready(_)))
            .await?
        {
            ServerMessage::Ready(ready) => Ok(ready),
            _ => Err(fail("expected Ready")),
        }
    }

    /// The whole handshake done right: Identify, Ready, IP discovery, Select Protocol with
    /// `mode`, Session Description.
    pub async fn handshake(
        &mut self,
        info: &ExpectedClient,
        mode: EncryptionMode,
    ) -> Result<RawSession, SimError> {
        let ready = self.identify_until_ready(info).await?;
        let server: SocketAddr = format!("{}:{}", ready.ip, ready.port)
            .parse()
            .map_err(|_| fail("Ready has a bad address"))?;
        let discovered = self.discover(ready.ssrc, server).await?;
        let select = serde_json::json!({"op": 1, "d": {"protocol": "udp", "data": {
            "address": discovered.ip().to_string(), "port": discovered.port(), "mode": mode.name()}}});
        self.send_text(select.to_string()).await?;
        let ServerMessage::SessionDescription(description) = self
            .recv_until(STEP_TIMEOUT, |m| {
                matches!(m, ServerMessage::SessionDescription(_))
            })
            .await?
        else {
            return Err(fail("expected Session Description"));
        };
        Ok(RawSession {
            ready,
            discovered,
            description,
            mode,
        })
    }

    /// A packet builder for this session, starting at `sequence`/`timestamp`, nonce 1.
    pub fn media(
        &self,
        session: &RawSession,
        sequence: u16,
        timestamp: u32,
    ) -> Result<MediaSender, SimError> {
        let server: SocketAddr = format!("{}:{}", session.ready.ip, session.ready.port)
            .parse()
            .map_err(|_| fail("Ready has a bad address"))?;
        Ok(MediaSender::new(
            session.mode,
            &session.description.secret_key,
            session.ready.ssrc,
            sequence,
            timestamp,
            server,
        ))
    }
}

/// Builds encrypted RTP packets for one SSRC (header without extension, like bots send).
#[derive(Debug)]
pub struct MediaSender {
    cipher: TransportCipher,
    /// The SSRC.
    pub ssrc: u32,
    /// Next sequence number.
    pub sequence: u16,
    /// Next timestamp.
    pub timestamp: u32,
    /// Last nonce used.
    pub nonce: u32,
    /// Where packets go.
    pub server: SocketAddr,
}

impl MediaSender {
    /// A packet builder for `ssrc` under `mode` and `key`, starting at `sequence`/`timestamp`,
    /// nonce 1, sending to `server`.
    pub fn new(
        mode: EncryptionMode,
        key: &SecretKey,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        server: SocketAddr,
    ) -> Self {
        Self {
            cipher: TransportCipher::new(mode, key),
            ssrc,
            sequence,
            timestamp,
            nonce: 0,
            server,
        }
    }

    /// The next packet carrying `opus`; sequence +1, timestamp +960, nonce +1.
    pub fn packet(&mut self, opus: &[u8]) -> Vec<u8> {
        self.nonce = self.nonce.wrapping_add(1);
        let mut header = [0u8; RTP_HEADER_LEN];
        RtpHeader {
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
        }
        .write(&mut header);
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(960);
        let mut buf = header.to_vec();
        buf.extend_from_slice(opus);
        buf.resize(buf.len() + self.cipher.mode().overhead(), 0);
        let len = self
            .cipher
            .seal(&mut buf, RTP_HEADER_LEN, opus.len(), self.nonce)
            .unwrap_or(0);
        buf.truncate(len);
        buf
    }

    /// Seals an arbitrary clear `header` (the AAD) and `plaintext` with the next nonce, for
    /// packets no well-behaved client would build (padding, extensions, wrong fields).
    pub fn seal_raw(&mut self, header: &[u8], plaintext: &[u8]) -> Vec<u8> {
        self.nonce = self.nonce.wrapping_add(1);
        let mut buf = header.to_vec();
        buf.extend_from_slice(plaintext);
        buf.resize(buf.len() + self.cipher.mode().overhead(), 0);
        let len = self
            .cipher
            .seal(&mut buf, header.len(), plaintext.len(), self.nonce)
            .unwrap_or(0);
        buf.truncate(len);
        buf
    }

    /// Builds and sends the next packet from `udp`.
    pub async fn send(&mut self, udp: &UdpSocket, opus: &[u8]) -> Result<(), SimError> {
        let packet = self.packet(opus);
        udp.send_to(&packet, self.server).await?;
        Ok(())
    }
}

/// What an [`EngineClient`] run saw.
#[derive(Debug, Default)]
pub struct EngineOutcome {
    /// Every event the engine emitted, in order.
    pub events: Vec<Event>,
    /// Opus frames sent (silence included).
    pub frames_sent: usize,
    /// Other members' audio as `poll_received` gave it (receive is on in
    /// [`EngineClient::new`]'s settings).
    pub received: Vec<Received>,
    /// The error that ended the engine, if any (leaving on purpose is not one).
    pub error: Option<String>,
}

impl EngineOutcome {
    /// The frames received from `ssrc` (`None`: from anyone), in playout order, with the user
    /// each was attributed to.
    pub fn frames(&self, ssrc: Option<u32>) -> Vec<(Option<voice_proto::id::UserId>, &Frame)> {
        self.received
            .iter()
            .filter(|r| ssrc.is_none_or(|ssrc| r.ssrc == ssrc))
            .filter_map(|r| match &r.item {
                Item::Frame(frame) => Some((r.user_id, frame)),
                _ => None,
            })
            .collect()
    }
}

/// Drives voice-proto's engine over real sockets: connects with `info`, plays `frames` (one per
/// 20 ms) once connected, ends the talk spurt with silence, and leaves.
#[derive(Debug)]
pub struct EngineClient {
    /// Engine settings (the websocket URL override is set by [`EngineClient::new`]).
    pub config: Config,
    /// Connection info.
    pub info: ExpectedClient,
    /// Frames to play.
    pub frames: Vec<Vec<u8>>,
    /// Stop after this long regardless.
    pub max_duration: Duration,
    /// Keep running this long after the last frame before leaving (e.g. to receive audio).
    pub linger: Duration,
}

impl EngineClient {
    /// A client for `info` that connects to `ws_url` with short test deadlines.
    pub fn new(ws_url: &str, info: ExpectedClient, frames: Vec<Vec<u8>>) -> Self {
        let mut config = Config::default();
        config.gateway_url_override = Some(ws_url.to_owned());
        config.handshake_timeout = Duration::from_secs(5);
        config.session_description_timeout = Duration::from_secs(5);
        config.discovery_retry_interval = Duration::from_millis(300);
        config.reconnect_backoff_initial = Duration::from_millis(50);
        config.max_dave_protocol_version = 1;
        config.rtp_seed = 0x5EED;
        config.receive = Some(voice_proto::ReceiveConfig::default());
        Self {
            config,
            info,
            frames,
            max_duration: Duration::from_secs(20),
            linger: Duration::ZERO,
        }
    }

    /// Runs until the engine is idle (it left or gave up) or `max_duration` passed.
    pub async fn run(self) -> Result<EngineOutcome, SimError> {
        let deadline = tokio::time::Instant::now() + self.max_duration;
        let identifying = Identifying::connect(
            Instant::now(),
            self.config.clone(),
            self.info.connection_info(),
        )
        .map_err(|e| fail(format!("engine: {e}")))?;
        let mut engine = AnyState::Identifying(identifying);
        let mut io = EngineIo::default();
        let mut queue = self.frames.into_iter().peekable();
        let mut finished_at: Option<tokio::time::Instant> = None;
        let mut buf = [0u8; voice_proto::rtp::MAX_PACKET_LEN];
        let mut udp_buf = vec![0u8; 2048];
        loop {
            // The playout is the core's: queue what fits, send what is due, then drain (an op 5
            // the playout queued goes out before its datagram, which the next round sends).
            if let Some(session) = engine.session() {
                while let Some(frame) = queue.peek() {
                    if session.queue_opus(frame).is_err() {
                        break;
                    }
                    queue.next();
                }
                while let Some(transmit) = session.poll_transmit(Instant::now(), &mut buf) {
                    io.outcome.frames_sent += 1;
                    if let Some(socket) = io.udp.as_ref() {
                        let datagram = buf.get(..transmit.len).unwrap_or_default();
                        let _ = socket.send_to(datagram, transmit.destination).await;
                    }
                }
                if io.playing && queue.peek().is_none() && session.playout_idle() {
                    let since = *finished_at.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= self.linger && !session.is_closed() {
                        session.disconnect();
                    }
                }
            }
            let idle = io.drain(&mut engine).await?;
            if let Some(session) = engine.session() {
                while let Some(received) = session.poll_received() {
                    io.outcome.received.push(received);
                }
            }
            if idle || tokio::time::Instant::now() >= deadline {
                return Ok(io.outcome);
            }
            let mut wake_at = io.wake.unwrap_or(deadline).min(deadline);
            if let Some(since) = finished_at {
                wake_at = wake_at.min(since + self.linger);
            }
            tokio::select! {
                message = next_ws(&mut io.ws) => {
                    let now = Instant::now();
                    let _ = match message {
                        Some(Ok(Message::Text(text))) => engine.handle_input(now, Input::Text(text.as_str())),
                        Some(Ok(Message::Binary(bytes))) => engine.handle_input(now, Input::Binary(&bytes)),
                        Some(Ok(Message::Close(frame))) => {
                            io.ws = None;
                            engine.handle_input(now, Input::WebSocketClosed { code: frame.map(|f| u16::from(f.code)) })
                        }
                        Some(Ok(_)) => Ok(()),
                        Some(Err(_)) | None => {
                            io.ws = None;
                            engine.handle_input(now, Input::WebSocketClosed { code: None })
                        }
                    };
                }
                received = recv_udp(&io.udp, &mut udp_buf) => {
                    if let Some((len, from)) = received {
                        let data = udp_buf.get(..len).unwrap_or_default();
                        let _ = engine.handle_input(Instant::now(), Input::Datagram { from, data });
                    }
                }
                _ = tokio::time::sleep_until(wake_at) => {
                    let _ = engine.handle_input(Instant::now(), Input::Timer);
                }
            }
        }
    }
}

/// The sockets of an [`EngineClient`] and what it collected.
#[derive(Default)]
struct EngineIo {
    ws: Option<Ws>,
    udp: Option<UdpSocket>,
    wake: Option<tokio::time::Instant>,
    playing: bool,
    outcome: EngineOutcome,
}

impl EngineIo {
    /// The drain rule: carry out every output until `WakeAt` (remembered) or `Idle` (true).
    async fn drain(&mut self, engine: &mut AnyState) -> Result<bool, SimError> {
        loop {
            match engine.poll_output() {
                Output::OpenWebSocket { url } => {
                    self.ws = None;
                    let connected = tokio::time::timeout(
                        STEP_TIMEOUT,
                        tokio_tungstenite::connect_async(url.as_str()),
                    )
                    .await;
                    let input = match connected {
                        Ok(Ok((socket, _))) => {
                            self.ws = Some(socket);
                            Input::WebSocketOpened
                        }
                        _ => Input::WebSocketClosed { code: None },
                    };
                    let _ = engine.handle_input(Instant::now(), input);
                }
                Output::SendText(text) => {
                    if let Some(socket) = self.ws.as_mut() {
                        let _ = socket.send(Message::text(text)).await;
                    }
                }
                Output::SendBinary(bytes) => {
                    if let Some(socket) = self.ws.as_mut() {
                        let _ = socket.send(Message::binary(bytes)).await;
                    }
                }
                Output::CloseWebSocket { code } => {
                    if let Some(mut socket) = self.ws.take() {
                        let frame = CloseFrame {
                            code: code.into(),
                            reason: "".into(),
                        };
                        let _ = socket.send(Message::Close(Some(frame))).await;
                    }
                }
                Output::BindUdp { .. } => {
                    self.udp = Some(UdpSocket::bind("127.0.0.1:0").await?);
                }
                Output::Transmit { to, data } => {
                    if let Some(socket) = self.udp.as_ref() {
                        let _ = socket.send_to(&data, to).await;
                    }
                }
                Output::MainGateway(_) => {}
                Output::Event(event) => {
                    if matches!(event, Event::Connected { .. }) {
                        self.playing = true;
                    }
                    if let Event::Closed { error } = &event {
                        if !matches!(error, voice_proto::Error::ClosedByApplication) {
                            self.outcome.error = Some(error.to_string());
                        }
                    }
                    self.outcome.events.push(event);
                }
                Output::WakeAt(at) => {
                    self.wake = Some(tokio::time::Instant::from_std(at));
                    return Ok(false);
                }
                Output::Idle => return Ok(true),
            }
        }
    }
}

async fn next_ws(
    ws: &mut Option<Ws>,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match ws.as_mut() {
        Some(socket) => socket.next().await,
        None => std::future::pending().await,
    }
}

async fn recv_udp(udp: &Option<UdpSocket>, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
    match udp.as_ref() {
        Some(socket) => socket.recv_from(buf).await.ok(),
        None => std::future::pending().await,
    }
}
