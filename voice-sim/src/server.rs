//! [`VoiceServer`]: the listening sockets, the state shared by the gateway and media tasks, and
//! the public API.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use voice_proto::crypto::{EncryptionMode, TransportCipher};
use voice_proto::payload::{Encoded, ServerFrame, ServerMessage};
use voice_proto::rtp::SILENCE_FRAME;

use crate::config::ServerConfig;
use crate::dave::{DaveChannel, Effect};
use crate::error::SimError;
use crate::load::counting::CountingServer;
use crate::load::{LoadReport, LoadStatus};
use crate::report::{ClientReport, Report, SpokenStream, StreamReport, Violation, ViolationKind};
use crate::stats::StreamStats;
use crate::tls::TlsMaterial;

/// Most violations of one kind listed per client; further ones are only counted.
const MAX_VIOLATIONS_PER_KIND: u32 = 20;

/// What a client needs to connect: the values of VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE.
///
/// Ids serialize as strings, as Discord sends them. The token is included in clear: these are
/// throw-away credentials of a loopback test server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedClient {
    /// Index of the client in the report.
    pub client: usize,
    /// `127.0.0.1:PORT`, the VOICE_SERVER_UPDATE endpoint.
    pub endpoint: String,
    /// Guild id (`server_id` in the voice gateway).
    #[serde(with = "string_u64")]
    pub guild_id: u64,
    /// Voice channel id.
    #[serde(with = "string_u64")]
    pub channel_id: u64,
    /// The client's user id.
    #[serde(with = "string_u64")]
    pub user_id: u64,
    /// Session id (from VOICE_STATE_UPDATE).
    pub session_id: String,
    /// Token (from VOICE_SERVER_UPDATE).
    pub token: String,
}

impl ExpectedClient {
    /// The same values as voice-proto's [`ConnectionInfo`](voice_proto::ConnectionInfo).
    pub fn connection_info(&self) -> voice_proto::ConnectionInfo {
        voice_proto::ConnectionInfo {
            endpoint: self.endpoint.clone(),
            guild_id: voice_proto::id::GuildId(self.guild_id),
            channel_id: Some(voice_proto::id::ChannelId(self.channel_id)),
            user_id: voice_proto::id::UserId(self.user_id),
            session_id: self.session_id.clone(),
            token: voice_proto::secret::Token::new(self.token.clone()),
        }
    }
}

mod string_u64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One received Opus frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedFrame {
    /// RTP sequence number.
    pub sequence: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Milliseconds since server start at arrival.
    pub at_ms: u64,
    /// The Opus frame, extension body and padding stripped.
    pub opus: Vec<u8>,
}

impl ReceivedFrame {
    /// Whether this is the Opus silence frame `F8 FF FE`.
    pub fn is_silence(&self) -> bool {
        self.opus == SILENCE_FRAME
    }
}

/// A command for a websocket task.
#[derive(Debug)]
pub(crate) enum Control {
    /// Send this frame.
    Send(Encoded),
    /// Send a close frame with this code and end the connection.
    Close(u16),
    /// End the connection without a close frame (the TCP connection is dropped).
    Drop,
}

/// The authenticated websocket of a client.
#[derive(Debug)]
pub(crate) struct ConnHandle {
    pub(crate) id: u64,
    pub(crate) tx: mpsc::UnboundedSender<Control>,
    /// Index of this connection in the client's report.
    pub(crate) index: usize,
}

/// A voice session (from a fresh Identify until the next one).
#[derive(Debug)]
pub(crate) struct VoiceSession {
    pub(crate) ssrc: u32,
    /// Last seq handed out (0: none yet).
    pub(crate) seq: u64,
    pub(crate) buffer: VecDeque<(u64, Encoded)>,
    pub(crate) resumable: bool,
    pub(crate) discovered: Option<SocketAddr>,
    pub(crate) selected: bool,
    pub(crate) cipher: Option<Arc<TransportCipher>>,
    pub(crate) mode: Option<EncryptionMode>,
    pub(crate) speaking: u32,
    /// First non-silence packet not (yet) covered by op 5.
    pub(crate) unannounced_since: Option<(Instant, u16)>,
    /// First non-silence packet after a resume not (yet) covered by a new op 5.
    pub(crate) unresumed_since: Option<Instant>,
    pub(crate) awaiting_speaking_after_resume: bool,
    pub(crate) packets: u64,
    pub(crate) last_nonce: Option<u32>,
    /// Transport nonce counter for media the server sends (simulated users, relayed audio).
    pub(crate) server_nonce: u32,
    /// The client left the channel (closed with 1000); it no longer receives relayed audio.
    pub(crate) left: bool,
}

impl VoiceSession {
    fn new(ssrc: u32) -> Self {
        Self {
            ssrc,
            seq: 0,
            buffer: VecDeque::new(),
            resumable: true,
            discovered: None,
            selected: false,
            cipher: None,
            mode: None,
            speaking: 0,
            unannounced_since: None,
            unresumed_since: None,
            awaiting_speaking_after_resume: false,
            packets: 0,
            last_nonce: None,
            // Far from where clients start theirs (0, 1 or random): nonces must not repeat
            // under one key, whichever side sends.
            server_nonce: 0x8000_0000,
            left: false,
        }
    }
}

/// Everything the server tracks for one expected client.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) expected: ExpectedClient,
    pub(crate) report: ClientReport,
    pub(crate) conn: Option<ConnHandle>,
    pub(crate) voice: Option<VoiceSession>,
    /// Incremented by every fresh Identify; timelines of an older epoch stop.
    pub(crate) epoch: u64,
    pub(crate) close_fired: Vec<bool>,
    pub(crate) scenario_started: bool,
    pub(crate) last_server_close: Option<u16>,
}

/// Media of one SSRC.
#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) client: usize,
    pub(crate) mode: Option<EncryptionMode>,
    pub(crate) stats: StreamStats,
    pub(crate) frames: Vec<ReceivedFrame>,
    pub(crate) last_at: Option<Instant>,
}

/// The mutable state behind one lock.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) clients: Vec<Client>,
    pub(crate) by_session: HashMap<String, usize>,
    pub(crate) by_ssrc: HashMap<u32, usize>,
    pub(crate) by_addr: HashMap<SocketAddr, usize>,
    pub(crate) streams: BTreeMap<u32, Stream>,
    violations: Vec<Violation>,
    advisories: Vec<Violation>,
    counts: HashMap<(Option<usize>, ViolationKind), u32>,
    suppressed: u64,
    pub(crate) stray_datagrams: u64,
    pub(crate) failed_handshakes: u64,
    pub(crate) rng: StdRng,
    next_conn_id: u64,
    /// Some client has an "audio before Speaking" observation waiting for its grace period.
    pub(crate) pending_checks: bool,
    /// [`ServerConfig::replay_buffer`].
    replay_buffer: usize,
    /// The DAVE role per voice channel (created when the first member arrives).
    pub(crate) dave: BTreeMap<u64, DaveChannel>,
    /// What simulated users said, per client and user.
    pub(crate) spoken: Vec<SpokenStream>,
}

/// What the gateway and media tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) start: Instant,
    /// The media socket as Tokio sees it (`None` in counting mode, where the counting thread
    /// owns it).
    pub(crate) udp: Option<Arc<UdpSocket>>,
    pub(crate) udp_addr: SocketAddr,
    pub(crate) endpoint: String,
    pub(crate) tls: bool,
    state: Mutex<State>,
}

impl Shared {
    /// The state. A panic elsewhere never makes it unusable (no poisoning).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Milliseconds since start.
    pub(crate) fn ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_millis() as u64
    }
}

impl State {
    /// Records a violation (or an advisory, by kind), at most [`MAX_VIOLATIONS_PER_KIND`] per
    /// client and kind.
    pub(crate) fn violate(
        &mut self,
        at_ms: u64,
        client: Option<usize>,
        kind: ViolationKind,
        detail: impl Into<String>,
    ) {
        let count = self.counts.entry((client, kind)).or_insert(0);
        *count += 1;
        if *count > MAX_VIOLATIONS_PER_KIND {
            self.suppressed += 1;
            return;
        }
        let detail = detail.into();
        tracing::debug!(?client, %kind, %detail, "client deviation");
        let entry = Violation {
            at_ms,
            client,
            kind,
            detail,
        };
        if kind.is_advisory() {
            self.advisories.push(entry);
        } else {
            self.violations.push(entry);
        }
    }

    pub(crate) fn next_conn_id(&mut self) -> u64 {
        self.next_conn_id += 1;
        self.next_conn_id
    }

    /// Sends a numbered message on the client's session: the seq is assigned here, the frame is
    /// kept for replay and goes out now if the client has a websocket.
    pub(crate) fn send_numbered(&mut self, client: usize, message: ServerMessage) {
        let keep = self.replay_buffer;
        let Some(c) = self.clients.get_mut(client) else {
            return;
        };
        let Some(voice) = c.voice.as_mut() else {
            return;
        };
        voice.seq += 1;
        let frame = ServerFrame {
            seq: Some(voice.seq),
            message,
        }
        .encode();
        voice.buffer.push_back((voice.seq, frame.clone()));
        while voice.buffer.len() > keep {
            voice.buffer.pop_front();
        }
        if let Some(conn) = &c.conn {
            let _ = conn.tx.send(Control::Send(frame));
        }
    }

    /// Sends an unnumbered message to the client's current websocket, if any.
    pub(crate) fn send_plain(&mut self, client: usize, frame: Encoded) {
        if let Some(conn) = self.clients.get(client).and_then(|c| c.conn.as_ref()) {
            let _ = conn.tx.send(Control::Send(frame));
        }
    }

    /// Closes the client's current websocket with `code`. After 4015 or a code below 4000 the
    /// session stays resumable; after any other code a Resume is refused with 4006.
    pub(crate) fn close_client(&mut self, client: usize, code: u16) -> bool {
        let Some(c) = self.clients.get_mut(client) else {
            return false;
        };
        c.last_server_close = Some(code);
        if let Some(voice) = c.voice.as_mut() {
            voice.resumable = code == 4015 || code < 4000;
        }
        match c.conn.take() {
            Some(conn) => {
                if let Some(report) = c.report.connections.get_mut(conn.index) {
                    report.server_close = Some(code);
                }
                conn.tx.send(Control::Close(code)).is_ok()
            }
            None => false,
        }
    }

    /// Turns pending "audio before Speaking" observations older than `grace` into violations.
    pub(crate) fn sweep(&mut self, now: Instant, grace: Duration, start: Instant) {
        // Called per datagram: skip the walk over all clients when nothing is pending.
        if !self.pending_checks {
            return;
        }
        self.pending_checks = false;
        let mut found = Vec::new();
        for (index, client) in self.clients.iter_mut().enumerate() {
            let Some(voice) = client.voice.as_mut() else {
                continue;
            };
            if voice.unannounced_since.is_some() || voice.unresumed_since.is_some() {
                self.pending_checks = true;
            }
            if let Some((since, seq)) = voice.unannounced_since {
                if now.saturating_duration_since(since) > grace {
                    voice.unannounced_since = None;
                    found.push((
                        since,
                        index,
                        ViolationKind::AudioBeforeSpeaking,
                        format!(
                            "RTP packet seq {seq} on ssrc {} carried audio while speaking flags were {} \
                             (no op 5 with non-zero flags within {} ms)",
                            voice.ssrc,
                            voice.speaking,
                            grace.as_millis()
                        ),
                    ));
                }
            }
            if let Some(since) = voice.unresumed_since {
                if now.saturating_duration_since(since) > grace {
                    voice.unresumed_since = None;
                    voice.awaiting_speaking_after_resume = false;
                    found.push((
                        since,
                        index,
                        ViolationKind::NoSpeakingAfterResume,
                        format!(
                            "audio on ssrc {} after a resume without a new op 5",
                            voice.ssrc
                        ),
                    ));
                }
            }
        }
        for (since, client, kind, detail) in found {
            let at = since.saturating_duration_since(start).as_millis() as u64;
            self.violate(at, Some(client), kind, detail);
        }
    }

    fn report(&self, shared: &Shared, now: Instant) -> Report {
        let mut advisories = self.advisories.clone();
        let mut streams = Vec::new();
        for (&ssrc, stream) in &self.streams {
            let stats = stream.stats.summary();
            let quiet = stream.last_at.is_none_or(|last| {
                now.saturating_duration_since(last) >= Duration::from_millis(500)
            });
            let count = stats.spurts.len();
            for (i, spurt) in stats.spurts.iter().enumerate() {
                let finished = i + 1 < count || quiet;
                if finished && spurt.frames > 0 && spurt.trailing_silence < 5 {
                    advisories.push(Violation {
                        at_ms: shared.ms(now),
                        client: Some(stream.client),
                        kind: ViolationKind::FewSilenceFrames,
                        detail: format!(
                            "ssrc {ssrc} talk spurt {} ({} frames) ended with {} silence frame(s), docs/protocol.md C21 asks for 5",
                            i + 1,
                            spurt.frames,
                            spurt.trailing_silence
                        ),
                    });
                }
            }
            streams.push(StreamReport {
                ssrc,
                client: stream.client,
                mode: stream.mode.map(|m| m.name().to_owned()),
                stats,
            });
        }
        Report {
            duration_ms: shared.ms(now),
            endpoint: shared.endpoint.clone(),
            udp: shared.udp_addr.to_string(),
            tls: shared.tls,
            clients: self.clients.iter().map(|c| c.report.clone()).collect(),
            streams,
            violations: self.violations.clone(),
            advisories,
            suppressed: self.suppressed,
            stray_datagrams: self.stray_datagrams,
            failed_handshakes: self.failed_handshakes,
            dave: self.dave.values().map(DaveChannel::report).collect(),
            spoken: self.spoken.clone(),
        }
    }

    /// The DAVE role of `channel`, created on first use; `None` when DAVE is off (or the
    /// external sender's key could not be made, which is reported as a simulated error).
    pub(crate) fn dave_channel(
        &mut self,
        config: &ServerConfig,
        channel: u64,
    ) -> Option<&mut DaveChannel> {
        if !config.dave.enabled {
            return None;
        }
        match self.dave.entry(channel) {
            std::collections::btree_map::Entry::Occupied(entry) => Some(entry.into_mut()),
            std::collections::btree_map::Entry::Vacant(entry) => {
                match DaveChannel::new(channel, &config.dave) {
                    Ok(created) => Some(entry.insert(created)),
                    Err(error) => {
                        tracing::error!(%error, "cannot run the DAVE role");
                        None
                    }
                }
            }
        }
    }

    /// Carries out what a channel's DAVE role decided.
    pub(crate) fn apply_dave(&mut self, at_ms: u64, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send { client, message } => self.send_numbered(client, message),
                Effect::Violation {
                    client,
                    kind,
                    detail,
                } => self.violate(at_ms, Some(client), kind, detail),
            }
        }
    }

    /// Other clients in `client`'s voice channel with a described session that did not leave.
    pub(crate) fn peers(&self, client: usize) -> Vec<usize> {
        let Some(me) = self.clients.get(client) else {
            return Vec::new();
        };
        let channel = me.expected.channel_id;
        self.clients
            .iter()
            .enumerate()
            .filter(|(i, c)| {
                *i != client
                    && c.expected.channel_id == channel
                    && c.voice.as_ref().is_some_and(|v| v.selected && !v.left)
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// A fresh random SSRC no current session uses.
    pub(crate) fn fresh_ssrc(&mut self) -> u32 {
        loop {
            let ssrc: u32 = self.rng.random();
            if ssrc != 0 && !self.by_ssrc.contains_key(&ssrc) && !self.streams.contains_key(&ssrc) {
                return ssrc;
            }
        }
    }

    /// Starts a new voice session for `client` (fresh Identify): new SSRC, seq from 1, the old
    /// SSRC and address forgotten.
    pub(crate) fn new_voice_session(&mut self, client: usize) -> Option<u32> {
        let ssrc = self.fresh_ssrc();
        let c = self.clients.get_mut(client)?;
        if let Some(old) = c.voice.take() {
            self.by_ssrc.remove(&old.ssrc);
            if let Some(addr) = old.discovered {
                self.by_addr.remove(&addr);
            }
        }
        c.voice = Some(VoiceSession::new(ssrc));
        c.epoch += 1;
        c.scenario_started = false;
        c.report.ssrcs.push(ssrc);
        self.by_ssrc.insert(ssrc, client);
        Some(ssrc)
    }
}

/// A loopback Discord voice server: voice gateway (websocket, v8) and media (UDP) on 127.0.0.1.
///
/// Dropping it stops every task.
pub struct VoiceServer {
    shared: Arc<Shared>,
    tcp_addr: SocketAddr,
    ca_pem: Option<String>,
    ca_pem_path: Option<PathBuf>,
    temp_dir: Option<PathBuf>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The counting thread, in counting mode.
    counting: Option<CountingServer>,
}

impl std::fmt::Debug for VoiceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceServer")
            .field("endpoint", &self.shared.endpoint)
            .field("udp", &self.shared.udp_addr)
            .field("tls", &self.shared.tls)
            .finish_non_exhaustive()
    }
}

impl VoiceServer {
    /// Binds the sockets on 127.0.0.1, generates the certificates when `config.tls` is set, and
    /// starts serving.
    pub async fn start(config: ServerConfig) -> Result<Self, SimError> {
        if config.counting.is_some() && config.dave.enabled {
            return Err(SimError::Config(
                "counting mode runs without DAVE (ServerConfig::dave.enabled is set)".to_owned(),
            ));
        }
        if config.counting.is_some() && !config.scenario.users.is_empty() {
            return Err(SimError::Config(
                "counting mode has no simulated users (ServerConfig::scenario.users is not empty)"
                    .to_owned(),
            ));
        }
        let listener = TcpListener::bind(("127.0.0.1", config.tcp_port)).await?;
        let tcp_addr = listener.local_addr()?;
        let (udp, counting_socket, udp_addr) = if config.counting.is_some() {
            // The counting thread owns the socket. It is not registered with Tokio at all:
            // an edge-triggered registration would wake the runtime for every datagram.
            let socket = std::net::UdpSocket::bind(("127.0.0.1", config.udp_port))?;
            let addr = socket.local_addr()?;
            (None, Some(socket), addr)
        } else {
            let socket = UdpSocket::bind(("127.0.0.1", config.udp_port)).await?;
            let addr = socket.local_addr()?;
            (Some(Arc::new(socket)), None, addr)
        };
        let tls = if config.tls {
            Some(TlsMaterial::generate()?)
        } else {
            None
        };
        let mut temp_dir = None;
        let mut ca_pem_path = None;
        if let Some(material) = &tls {
            let path = match &config.ca_pem_path {
                Some(path) => path.clone(),
                None => {
                    let dir = std::env::temp_dir().join(format!(
                        "voice-sim-{}-{}",
                        std::process::id(),
                        tcp_addr.port()
                    ));
                    std::fs::create_dir_all(&dir)?;
                    temp_dir = Some(dir.clone());
                    dir.join("ca.pem")
                }
            };
            std::fs::write(&path, &material.ca_pem)?;
            ca_pem_path = Some(path);
        }
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let shared = Arc::new(Shared {
            start: Instant::now(),
            udp,
            udp_addr,
            endpoint: tcp_addr.to_string(),
            tls: tls.is_some(),
            state: Mutex::new(State {
                clients: Vec::new(),
                by_session: HashMap::new(),
                by_ssrc: HashMap::new(),
                by_addr: HashMap::new(),
                streams: BTreeMap::new(),
                violations: Vec::new(),
                advisories: Vec::new(),
                counts: HashMap::new(),
                suppressed: 0,
                stray_datagrams: 0,
                failed_handshakes: 0,
                rng,
                next_conn_id: 0,
                pending_checks: false,
                replay_buffer: config.replay_buffer,
                dave: BTreeMap::new(),
                spoken: Vec::new(),
            }),
            config,
        });
        let counting = match (counting_socket, shared.config.counting.clone()) {
            (Some(socket), Some(counting)) => Some(CountingServer::start(
                Arc::clone(&shared),
                socket,
                counting,
            )?),
            _ => None,
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let acceptor = tls
            .as_ref()
            .map(|m| tokio_rustls::TlsAcceptor::from(Arc::clone(&m.server_config)));
        let mut tasks = vec![
            tokio::spawn(crate::gateway::accept_loop(
                Arc::clone(&shared),
                listener,
                acceptor,
                shutdown_rx.clone(),
            )),
            tokio::spawn(dave_deadlines(Arc::clone(&shared), shutdown_rx.clone())),
        ];
        if counting.is_none() {
            tasks.push(tokio::spawn(crate::media::udp_loop(
                Arc::clone(&shared),
                shutdown_rx,
            )));
        }
        tracing::info!(endpoint = %shared.endpoint, udp = %udp_addr, tls = shared.tls, "voice-sim listening");
        Ok(Self {
            shared,
            tcp_addr,
            ca_pem: tls.map(|m| m.ca_pem),
            ca_pem_path,
            temp_dir,
            shutdown,
            tasks,
            counting,
        })
    }

    /// The VOICE_SERVER_UPDATE endpoint: `127.0.0.1:PORT` (an IP, not `localhost`, which Node may
    /// resolve to `::1`).
    pub fn endpoint(&self) -> &str {
        &self.shared.endpoint
    }

    /// The websocket URL, `ws://` or `wss://127.0.0.1:PORT/?v=8`.
    pub fn ws_url(&self) -> String {
        let scheme = if self.shared.tls { "wss" } else { "ws" };
        format!("{scheme}://{}/?v=8", self.shared.endpoint)
    }

    /// The gateway's TCP address.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// The media server's UDP address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.shared.udp_addr
    }

    /// The CA certificate (PEM) clients must trust for `wss://`, when TLS is on.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Where the CA certificate was written (e.g. for `NODE_EXTRA_CA_CERTS`), when TLS is on.
    pub fn ca_pem_path(&self) -> Option<&Path> {
        self.ca_pem_path.as_deref()
    }

    /// Registers a client the server will accept, with random ids, session id and token.
    pub fn expect_client(&self) -> ExpectedClient {
        self.expect(None)
    }

    /// Registers a client in the same guild and voice channel as client `peer`: the server
    /// relays audio between them (re-encrypted for each receiver), sends op 11 when the other
    /// joins, op 5 when the other speaks and op 13 when the other leaves (closes with 1000).
    /// An unknown `peer` gives a client in a channel of its own.
    pub fn expect_client_in(&self, peer: usize) -> ExpectedClient {
        self.expect(Some(peer))
    }

    fn expect(&self, peer: Option<usize>) -> ExpectedClient {
        let mut state = self.shared.lock();
        let client = state.clients.len();
        // Snowflake-sized ids (18-19 digits).
        let id = |rng: &mut StdRng| {
            rng.random_range(100_000_000_000_000_000..1_000_000_000_000_000_000u64)
        };
        let shared_channel = peer
            .and_then(|p| state.clients.get(p))
            .map(|c| (c.expected.guild_id, c.expected.channel_id));
        let (guild_id, channel_id) = match shared_channel {
            Some(ids) => ids,
            None => (id(&mut state.rng), id(&mut state.rng)),
        };
        let user_id = id(&mut state.rng);
        let session_id = format!("{:032x}", state.rng.random::<u128>());
        let token = format!("{:024x}", state.rng.random::<u128>() >> 32);
        let expected = ExpectedClient {
            client,
            endpoint: self.shared.endpoint.clone(),
            guild_id,
            channel_id,
            user_id,
            session_id: session_id.clone(),
            token,
        };
        let report = ClientReport {
            client,
            user_id: user_id.to_string(),
            session_id: session_id.clone(),
            ..ClientReport::default()
        };
        let close_rules = self.shared.config.scenario.close.len();
        state.clients.push(Client {
            expected: expected.clone(),
            report,
            conn: None,
            voice: None,
            epoch: 0,
            close_fired: vec![false; close_rules],
            scenario_started: false,
            last_server_close: None,
        });
        state.by_session.insert(session_id, client);
        expected
    }

    /// The report so far (pending checks are settled first).
    pub fn report(&self) -> Report {
        let now = Instant::now();
        let mut state = self.shared.lock();
        state.sweep(now, self.shared.config.speaking_grace, self.shared.start);
        state.report(&self.shared, now)
    }

    /// The violations so far (not the advisories).
    pub fn violations(&self) -> Vec<Violation> {
        self.report().violations
    }

    /// Every Opus frame received on `ssrc`, in arrival order, silence frames included (see
    /// [`ReceivedFrame::is_silence`]). Empty if `keep_frames` is off or the SSRC is unknown.
    pub fn frames(&self, ssrc: u32) -> Vec<ReceivedFrame> {
        self.shared
            .lock()
            .streams
            .get(&ssrc)
            .map(|s| s.frames.clone())
            .unwrap_or_default()
    }

    /// What the simulated users said to `client`, one stream per talk (user and SSRC), with
    /// what the network emulator did to each frame.
    pub fn spoken(&self, client: usize) -> Vec<SpokenStream> {
        self.shared
            .lock()
            .spoken
            .iter()
            .filter(|s| s.client == client)
            .cloned()
            .collect()
    }

    /// The SSRCs handed to `client`, in order (one per fresh Identify).
    pub fn ssrcs(&self, client: usize) -> Vec<u32> {
        self.shared
            .lock()
            .clients
            .get(client)
            .map(|c| c.report.ssrcs.clone())
            .unwrap_or_default()
    }

    /// Closes `client`'s websocket now with `code` (see [`ServerConfig::scenario`] for timed
    /// closes). Returns whether a websocket was open.
    pub fn close_client(&self, client: usize, code: u16) -> bool {
        self.shared.lock().close_client(client, code)
    }

    /// Waits until `done(report)` holds, polling every 20 ms, for at most `timeout`. Returns the
    /// last report and whether the condition held.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&Report) -> bool,
    ) -> (Report, bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let report = self.report();
            if done(&report) {
                return (report, true);
            }
            if tokio::time::Instant::now() >= deadline {
                return (report, false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The shared state, for in-crate tests that call the handlers directly.
    #[cfg(test)]
    pub(crate) fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Whether the server runs in counting mode ([`ServerConfig::counting`]).
    pub fn is_counting(&self) -> bool {
        self.counting.is_some()
    }

    fn counting(&self) -> Result<&CountingServer, SimError> {
        self.counting.as_ref().ok_or(SimError::NotCounting)
    }

    /// Counting mode: opens a new measurement window (every count restarts from zero now).
    pub fn open_window(&self) -> Result<(), SimError> {
        self.counting()?.open_window();
        Ok(())
    }

    /// Counting mode: the figures since the window opened, with the gateway's violations so
    /// far. The window stays open; a later call covers the same start.
    pub fn close_window(&self) -> Result<LoadReport, SimError> {
        let mut report = self.counting()?.close_window();
        report.gateway_violations = self.violations().len();
        Ok(report)
    }

    /// Counting mode: streams described, streams sending, packets counted in the window.
    pub fn load_status(&self) -> Result<LoadStatus, SimError> {
        Ok(self.counting()?.status())
    }

    /// Stops serving and returns the final report.
    pub async fn shutdown(mut self) -> Report {
        let _ = self.shutdown.send(true);
        if let Some(counting) = self.counting.as_mut() {
            counting.stop();
        }
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        self.report()
    }
}

/// Runs the DAVE deadlines (missing commits, missing op 23) every 50 ms.
async fn dave_deadlines(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    if !shared.config.dave.enabled {
        return;
    }
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let now = Instant::now();
                let at = shared.ms(now);
                let mut state = shared.lock();
                let effects: Vec<Effect> = state
                    .dave
                    .values_mut()
                    .flat_map(|channel| channel.tick(now))
                    .collect();
                state.apply_dave(at, effects);
            }
            _ = shutdown.changed() => return,
        }
    }
}

impl Drop for VoiceServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for task in &self.tasks {
            task.abort();
        }
        if let Some(dir) = &self.temp_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
