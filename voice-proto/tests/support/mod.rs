//! Test support: a scripted in-memory voice server and a fake clock.
//!
//! The server speaks through the crate's own payload types (server-encode, client-decode), so these
//! tests exercise both directions of the wire format.
#![allow(dead_code)]

pub mod counting_alloc;
#[cfg(feature = "dave")]
pub mod dave;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use voice_proto::crypto::{EncryptionMode, TransportCipher};
use voice_proto::discovery::{discovery_response, parse_discovery_request};
use voice_proto::gateway::{VoiceServerDispatch, VoiceStateDispatch};
use voice_proto::id::{ChannelId, GuildId, UserId};
use voice_proto::payload::{
    ClientMessage, Encoded, HeartbeatAck, Hello, Ready, ServerFrame, ServerMessage,
    SessionDescription,
};
use voice_proto::receive::{Item, ReceiveConfig, Received};
use voice_proto::rtp::ReceivedRtp;
use voice_proto::secret::{SecretKey, Token};
use voice_proto::{AnyState, Config, Error, Input, JoinRequest, Output};

pub const GUILD: GuildId = GuildId(41771983423143937);
pub const CHANNEL: ChannelId = ChannelId(127121515262115840);
pub const USER: UserId = UserId(80351110224678912);
pub const OTHER_USER: UserId = UserId(12345678901234567);
pub const SESSION_ID: &str = "f2b2e8f7c1d34f3ea8d0b35d6d4f7a01";
pub const TOKEN: &str = "my-secret-voice-token";
pub const ENDPOINT: &str = "sweetwater-12345.discord.media:2048";
pub const SSRC: u32 = 0x8000_3039; // above 2^31 on purpose: SSRCs are u32
pub const HEARTBEAT_MS: u64 = 1000;
pub const KEY: [u8; 32] = [7; 32];

pub fn server_udp() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 50_001)
}

/// Where the server says it saw us.
pub fn client_public() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)), 50_004)
}

/// The tests' settings: a fixed RTP seed, and receive on with no waiting (depth 0), so that
/// every frame of an in-order stream comes out of `poll_received` as soon as it arrives (the
/// playout buffer's own rules are tested in `receive_buffer.rs` and `receive_audio.rs`).
pub fn test_config() -> Config {
    {
        let mut config = Config::default();
        config.rtp_seed = 0x1234_5678_9abc;
        config.receive = Some(immediate_receive());
        config
    }
}

/// Receive settings that release an in-order frame at once (depth 0, no adaptation).
pub fn immediate_receive() -> ReceiveConfig {
    ReceiveConfig {
        depth: 0,
        max_depth: 0,
        ..ReceiveConfig::default()
    }
}

/// A received item, compactly: `S` spurt started, `F<seq>` frame, `Z<seq>` silence frame,
/// `L<seq>x<count>` lost, `E<reason>` spurt ended.
pub fn compact(item: Item) -> String {
    match item {
        Item::SpurtStarted => "S".to_owned(),
        Item::Frame(frame) if frame.is_silence() => format!("Z{}", frame.sequence),
        Item::Frame(frame) => format!("F{}", frame.sequence),
        Item::Lost {
            sequence, count, ..
        } => format!("L{sequence}x{count}"),
        Item::SpurtEnded(reason) => format!("E{reason:?}"),
        other => format!("{other:?}"),
    }
}

/// `&str`s as `String`s, to compare with [`compact`] items.
pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// One received frame, flattened for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard {
    pub ssrc: u32,
    pub user_id: Option<UserId>,
    pub sequence: u16,
    pub timestamp: u32,
    pub opus: Vec<u8>,
}

/// The frames received since the last call (markers left out).
pub fn audio_events(h: &mut Harness) -> Vec<Heard> {
    h.received
        .drain(..)
        .filter_map(|r| match r.item {
            Item::Frame(frame) => Some(Heard {
                ssrc: r.ssrc,
                user_id: r.user_id,
                sequence: frame.sequence,
                timestamp: frame.timestamp,
                opus: frame.opus.to_vec(),
            }),
            _ => None,
        })
        .collect()
}

/// What a connection without a main gateway starts from: our endpoint, ids, session and token.
pub fn connection_info() -> voice_proto::ConnectionInfo {
    voice_proto::ConnectionInfo {
        endpoint: ENDPOINT.to_owned(),
        guild_id: GUILD,
        channel_id: Some(CHANNEL),
        user_id: USER,
        session_id: SESSION_ID.to_owned(),
        token: Token::new(TOKEN),
    }
}

pub fn join_request() -> JoinRequest {
    JoinRequest::new(GUILD, CHANNEL, USER)
}

pub fn state_dispatch() -> VoiceStateDispatch {
    VoiceStateDispatch {
        guild_id: Some(GUILD),
        channel_id: Some(CHANNEL),
        user_id: USER,
        session_id: SESSION_ID.to_owned(),
    }
}

pub fn server_dispatch(token: &str) -> VoiceServerDispatch {
    VoiceServerDispatch {
        token: Token::new(token),
        guild_id: GUILD,
        endpoint: Some(ENDPOINT.to_owned()),
    }
}

/// Anything that speaks the sans-IO protocol.
pub trait Drive {
    fn input(&mut self, now: Instant, input: Input<'_>) -> Result<(), Error>;
    fn poll(&mut self) -> Output;
}

macro_rules! impl_drive {
    ($($t:ty),*) => {$(
        impl Drive for $t {
            fn input(&mut self, now: Instant, input: Input<'_>) -> Result<(), Error> {
                self.handle_input(now, input)
            }
            fn poll(&mut self) -> Output {
                self.poll_output()
            }
        }
    )*};
}
impl_drive!(
    AnyState,
    voice_proto::AwaitingServerUpdate,
    voice_proto::Identifying,
    voice_proto::Discovering,
    voice_proto::Session
);

/// Drains outputs per the drain rule: until `WakeAt` or `Idle`; returns them with the final one.
pub fn drain(state: &mut impl Drive) -> Vec<Output> {
    let mut outputs = Vec::new();
    for _ in 0..10_000 {
        let output = state.poll();
        let last = matches!(output, Output::WakeAt(_) | Output::Idle);
        outputs.push(output);
        if last {
            return outputs;
        }
    }
    panic!("poll_output never reached WakeAt/Idle")
}

/// The scripted voice server: numbers its messages from 1, answers discovery, opens audio.
pub struct FakeServer {
    pub seq: u64,
    pub ssrc: u32,
    pub mode: EncryptionMode,
    pub modes: Vec<String>,
    pub key: [u8; 32],
    /// Session Description's `dave_protocol_version`: 0 by default, i.e. a Stage channel with
    /// plain Opus (the DAVE tests set 1).
    pub dave_protocol_version: u16,
}

impl Default for FakeServer {
    fn default() -> Self {
        Self {
            seq: 0,
            ssrc: SSRC,
            mode: EncryptionMode::AeadAes256GcmRtpSize,
            modes: vec![
                "aead_aes256_gcm_rtpsize".to_owned(),
                "aead_xchacha20_poly1305_rtpsize".to_owned(),
                "xsalsa20_poly1305".to_owned(),
            ],
            key: KEY,
            dave_protocol_version: 0,
        }
    }
}

impl FakeServer {
    pub fn frame(&mut self, message: ServerMessage) -> String {
        self.seq += 1;
        match (ServerFrame {
            seq: Some(self.seq),
            message,
        })
        .encode()
        {
            Encoded::Text(text) => text,
            Encoded::Binary(_) => panic!("expected a JSON message"),
        }
    }

    /// Unnumbered (Hello and Heartbeat ACK carry no seq on Discord).
    pub fn unnumbered(&self, message: ServerMessage) -> String {
        match (ServerFrame { seq: None, message }).encode() {
            Encoded::Text(text) => text,
            Encoded::Binary(_) => panic!("expected a JSON message"),
        }
    }

    pub fn hello(&self) -> String {
        self.unnumbered(ServerMessage::Hello(Hello {
            heartbeat_interval: HEARTBEAT_MS as f64,
            v: Some(8),
        }))
    }

    pub fn ack(&self, t: u64) -> String {
        self.unnumbered(ServerMessage::HeartbeatAck(HeartbeatAck { t }))
    }

    pub fn ready(&mut self) -> String {
        let ready = Ready {
            ssrc: self.ssrc,
            ip: server_udp().ip().to_string(),
            port: server_udp().port(),
            modes: self.modes.clone(),
        };
        self.frame(ServerMessage::Ready(ready))
    }

    pub fn session_description(&mut self) -> String {
        let description = SessionDescription {
            mode: self.mode.name().to_owned(),
            secret_key: SecretKey::new(self.key),
            dave_protocol_version: self.dave_protocol_version,
        };
        self.frame(ServerMessage::SessionDescription(description))
    }

    pub fn discovery_answer(&self, request: &[u8]) -> Vec<u8> {
        let ssrc = parse_discovery_request(request).expect("a well-formed discovery request");
        assert_eq!(ssrc, self.ssrc, "discovery request carries our SSRC");
        discovery_response(ssrc, client_public().ip(), client_public().port()).to_vec()
    }

    /// Transport-decrypts one of the client's audio packets: (header, opus).
    pub fn open_audio(&self, datagram: &[u8]) -> (ReceivedRtp, Vec<u8>) {
        let header = ReceivedRtp::parse(datagram).expect("client RTP header");
        let mut packet = datagram.to_vec();
        let cipher = TransportCipher::new(self.mode, &SecretKey::new(self.key));
        let range = cipher
            .open(&mut packet, header.aad_len)
            .expect("client packet decrypts");
        let opus = header.payload(&packet[range]).expect("payload").to_vec();
        (header, opus)
    }
}

/// A transport-encrypted RTP packet from another member as the SFU relays it (X=1 with a
/// one-byte extension), carrying `payload` (plain Opus or a DAVE frame), sealed under `key` with
/// transport nonce `nonce`.
pub fn relayed_packet(
    mode: EncryptionMode,
    key: [u8; 32],
    ssrc: u32,
    sequence: u16,
    nonce: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut packet = vec![0x90, 0x78];
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(&(u32::from(sequence).wrapping_mul(960)).to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01]);
    let aad_len = packet.len();
    packet.extend_from_slice(&[0x10, 0x80, 0x00, 0x00]);
    packet.extend_from_slice(payload);
    let payload_len = packet.len() - aad_len;
    packet.resize(packet.len() + mode.overhead(), 0);
    let cipher = TransportCipher::new(mode, &SecretKey::new(key));
    let len = cipher
        .seal(&mut packet, aad_len, payload_len, nonce)
        .expect("a test packet seals");
    packet.truncate(len);
    packet
}

/// Decodes every text/binary frame the client sent among `outputs`.
pub fn client_messages(outputs: &[Output]) -> Vec<ClientMessage> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::SendText(text) => Some(ClientMessage::decode_text(text).expect("client JSON")),
            Output::SendBinary(bytes) => {
                Some(ClientMessage::decode_binary(bytes).expect("client binary"))
            }
            _ => None,
        })
        .collect()
}

pub fn events(outputs: &[Output]) -> Vec<voice_proto::Event> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

pub fn transmits(outputs: &[Output]) -> Vec<(SocketAddr, Vec<u8>)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Transmit { to, data } => Some((*to, data.clone())),
            _ => None,
        })
        .collect()
}

pub fn wake_at(outputs: &[Output]) -> Option<Instant> {
    match outputs.last() {
        Some(Output::WakeAt(t)) => Some(*t),
        _ => None,
    }
}

/// A whole connection driven through `AnyState` with a fake clock.
pub struct Harness {
    pub state: AnyState,
    pub server: FakeServer,
    pub now: Instant,
    pub start: Instant,
    /// Every output seen so far.
    pub log: Vec<Output>,
    /// Received audio taken by `poll_received` after each input, not yet looked at.
    pub received: Vec<Received>,
}

impl Harness {
    pub fn join(config: Config) -> Self {
        let now = Instant::now();
        let state = AnyState::from(voice_proto::AwaitingServerUpdate::new(
            now,
            config,
            join_request(),
        ));
        Self::started(now, state)
    }

    /// A harness around a state just made at `now`, its first outputs drained.
    fn started(now: Instant, state: AnyState) -> Self {
        let mut harness = Self {
            state,
            server: FakeServer::default(),
            now,
            start: now,
            log: Vec::new(),
            received: Vec::new(),
        };
        harness.collect();
        harness
    }

    /// Drains the outputs (returned) and the received audio (kept in `received`).
    pub fn collect(&mut self) -> Vec<Output> {
        let outputs = drain(&mut self.state);
        self.log.extend(outputs.iter().cloned());
        if let Some(session) = self.state.session() {
            while let Some(received) = session.poll_received() {
                self.received.push(received);
            }
        }
        outputs
    }

    pub fn feed(&mut self, input: Input<'_>) -> Vec<Output> {
        let _ = self.state.handle_input(self.now, input);
        self.collect()
    }

    pub fn text(&mut self, text: &str) -> Vec<Output> {
        self.feed(Input::Text(text))
    }

    pub fn advance(&mut self, by: Duration) -> Vec<Output> {
        self.now += by;
        self.feed(Input::Timer)
    }

    /// Moves the clock to each wake-up until `until`, collecting everything.
    pub fn run_until(&mut self, until: Instant) -> Vec<Output> {
        let mut all = Vec::new();
        loop {
            let next = wake_at(self.log.last().map(std::slice::from_ref).unwrap_or(&[]));
            match next {
                Some(t) if t <= until => {
                    self.now = t.max(self.now);
                    all.extend(self.feed(Input::Timer));
                }
                _ => {
                    self.now = until;
                    all.extend(self.feed(Input::Timer));
                    return all;
                }
            }
        }
    }

    /// Runs the clock through a recovery's backoff (from one wake-up to the next) until the
    /// attempt starts: a websocket opens (a resume, or a reconnect without a main gateway) or op 4
    /// goes out (a rejoin). Returns every output on the way.
    pub fn wait_out_backoff(&mut self) -> Vec<Output> {
        let mut all = Vec::new();
        for _ in 0..1000 {
            let Some(at) = wake_at(self.log.last().map(std::slice::from_ref).unwrap_or(&[])) else {
                panic!("no wake-up while backing off; outputs: {all:?}")
            };
            self.now = self.now.max(at);
            let outs = self.feed(Input::Timer);
            let started = outs
                .iter()
                .any(|o| matches!(o, Output::OpenWebSocket { .. } | Output::MainGateway(_)));
            all.extend(outs);
            if started {
                return all;
            }
        }
        panic!("the backoff never ended; outputs: {all:?}")
    }

    /// Drives the complete first handshake; returns all outputs from websocket open on.
    pub fn connect(&mut self) -> Vec<Output> {
        let mut outs = self.feed(Input::VoiceStateUpdate(state_dispatch()));
        outs.extend(self.feed(Input::VoiceServerUpdate(server_dispatch(TOKEN))));
        outs.extend(self.handshake_on_new_socket());
        outs
    }

    /// Websocket opens, Hello, Ready, discovery, Session Description.
    pub fn handshake_on_new_socket(&mut self) -> Vec<Output> {
        let mut outs = self.feed(Input::WebSocketOpened);
        outs.extend(self.connect_rest());
        outs
    }

    /// The handshake after the websocket opened: Hello, Ready, discovery, Session Description.
    pub fn connect_rest(&mut self) -> Vec<Output> {
        let mut outs = self.connect_until_selected();
        let description = self.server.session_description();
        outs.extend(self.text(&description));
        outs
    }

    /// Hello, Ready and the discovery answer: Select Protocol goes out; the Session Description
    /// is the caller's.
    pub fn connect_until_selected(&mut self) -> Vec<Output> {
        let mut outs = Vec::new();
        let hello = self.server.hello();
        outs.extend(self.text(&hello));
        let ready = self.server.ready();
        let after_ready = self.text(&ready);
        let (to, request) = transmits(&after_ready)
            .into_iter()
            .next()
            .expect("a discovery request after Ready");
        assert_eq!(to, server_udp());
        outs.extend(after_ready);
        let answer = self.server.discovery_answer(&request);
        outs.extend(self.feed(Input::Datagram {
            from: server_udp(),
            data: &answer,
        }));
        outs
    }

    /// A connection from [`connection_info`] without a main gateway (`Identifying::connect`),
    /// drained: the websocket is being opened.
    pub fn connect_without_gateway(config: Config) -> Self {
        let now = Instant::now();
        let state = voice_proto::Identifying::connect(now, config, connection_info())
            .expect("a usable endpoint");
        Self::started(now, state.into())
    }

    pub fn session(&mut self) -> &mut voice_proto::Session {
        self.state.session().expect("session established")
    }

    /// Queues one frame and plays the next packet out: returns (the outputs that came with it,
    /// e.g. op 5, and the datagram). Panics if the playout holds it.
    pub fn send_frame(&mut self, frame: &[u8]) -> (Vec<Output>, Vec<u8>) {
        self.session().queue_opus(frame).expect("queue_opus");
        match self.play_next() {
            (outputs, Some(datagram)) => (outputs, datagram),
            (outputs, None) => panic!("the playout held the frame; outputs: {outputs:?}"),
        }
    }

    /// Plays the next packet of the playout: moves the fake clock to its slot, polls it out and
    /// drains the outputs (an op 5 it queued first). `None` when nothing is due or it is held.
    pub fn play_next(&mut self) -> (Vec<Output>, Option<Vec<u8>>) {
        let mut outputs = Vec::new();
        // At most: the poll that queues op 5, then the one that sends.
        for _ in 0..3 {
            let Some(at) = self.session().next_transmit() else {
                return (outputs, None);
            };
            self.now = self.now.max(at);
            let now = self.now;
            let mut buf = [0u8; voice_proto::rtp::MAX_PACKET_LEN];
            let transmit = self.session().poll_transmit(now, &mut buf);
            outputs.extend(self.collect());
            if let Some(transmit) = transmit {
                assert_eq!(transmit.destination, server_udp());
                return (outputs, Some(buf[..transmit.len].to_vec()));
            }
        }
        (outputs, None)
    }

    /// Plays out everything queued, the trailing silence included: every datagram in order.
    pub fn play_all(&mut self) -> Vec<Vec<u8>> {
        let mut datagrams = Vec::new();
        while let (_, Some(datagram)) = self.play_next() {
            datagrams.push(datagram);
            assert!(datagrams.len() < 100_000, "the playout never ends");
        }
        datagrams
    }

    /// Fills the playout queue and plays its first packet (op 5 and the queue's growth happen
    /// here), so that [`steady_playout`](Self::steady_playout) measures the steady state.
    pub fn warm_up_playout(&mut self, frame: &[u8]) {
        while self.session().queue_opus(frame).is_ok() {}
        assert!(self.play_next().1.is_some(), "the first frame goes out");
    }

    /// `packets` rounds of one `queue_opus` and one `poll_transmit` in its slot on a full queue:
    /// the per-packet path with nothing else (no timers, no outputs). Calls `check` with each
    /// datagram's length.
    pub fn steady_playout(&mut self, frame: &[u8], packets: u32, mut check: impl FnMut(usize)) {
        let session = self.state.session().expect("session established");
        let mut now = session.next_transmit().expect("a frame is due");
        let mut buf = [0u8; voice_proto::rtp::MAX_PACKET_LEN];
        for _ in 0..packets {
            session.queue_opus(frame).expect("room for one frame");
            let transmit = session.poll_transmit(now, &mut buf).expect("due");
            check(transmit.len);
            now += voice_proto::playout::FRAME_DURATION;
        }
        self.now = self.now.max(now);
    }
}
