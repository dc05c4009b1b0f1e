//! Server settings and scenarios (what the server does to its clients on purpose).

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::SimError;

/// The modes offered in Ready by default (the two current AEAD modes, AES first).
pub const DEFAULT_MODES: [&str; 2] = ["aead_aes256_gcm_rtpsize", "aead_xchacha20_poly1305_rtpsize"];

/// How the server is set up.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Serve `wss://` with a freshly generated CA (otherwise plain `ws://`).
    pub tls: bool,
    /// TCP port of the voice gateway on 127.0.0.1 (0: ephemeral).
    pub tcp_port: u16,
    /// UDP port of the media server on 127.0.0.1 (0: ephemeral).
    pub udp_port: u16,
    /// `heartbeat_interval` sent in Hello.
    pub heartbeat_interval: Duration,
    /// `modes` offered in Ready, in order.
    pub modes: Vec<String>,
    /// Where to write the CA certificate (PEM) when `tls` is on; a temporary directory if `None`.
    pub ca_pem_path: Option<PathBuf>,
    /// Largest websocket message accepted from a client; bigger ones end the connection with a
    /// [`WebSocket`](crate::ViolationKind::WebSocket) violation.
    pub max_message_size: usize,
    /// Keep every received Opus frame for [`VoiceServer::frames`](crate::VoiceServer::frames).
    pub keep_frames: bool,
    /// How long a packet may precede the op 5 Speaking that announces it (the websocket and UDP
    /// paths race on loopback) before it counts as audio before Speaking.
    pub speaking_grace: Duration,
    /// Seed for ids, SSRCs, keys and simulated loss (`None`: from the OS).
    pub seed: Option<u64>,
    /// Numbered messages kept per session for replay after a resume. A Resume whose `seq_ack`
    /// misses a message no longer kept is refused with 4006 (docs/protocol.md §3).
    pub replay_buffer: usize,
    /// The server's DAVE role (end-to-end encryption, docs/protocol.md 9).
    pub dave: DaveConfig,
    /// What to do to clients on purpose.
    pub scenario: Scenario,
    /// Counting mode for load benchmarks ([`crate::load`]): the gateway stays the same, the media
    /// path becomes a cheap counter on a thread of its own (no per-packet report, no frames
    /// kept, no relay). Requires DAVE off. `None`: the validating media server.
    pub counting: Option<crate::load::CountingConfig>,
}

/// The server's DAVE role. Off by default: the server then always answers
/// `dave_protocol_version: 0`, as in a Stage channel.
#[derive(Clone, Debug)]
pub struct DaveConfig {
    /// Offer DAVE version 1 to clients whose Identify allows it and run each channel's MLS group
    /// as its external sender (see the `dave` section of the crate docs).
    pub enabled: bool,
    /// Close clients whose Identify does not allow DAVE with 4017, as Discord has done since
    /// March 2026 (only with `enabled`). Off: such a client joins and the call downgrades to
    /// version 0 while it is there.
    pub required: bool,
    /// How long the server waits for a client's op 28 commit before using a simulated member's.
    pub commit_timeout: Duration,
    /// How long the server waits for every op 23 before executing a transition anyway.
    pub transition_timeout: Duration,
    /// Corrupt (flip the last byte of) the first op 29 commit and the first op 30 welcome each
    /// client gets, to exercise its recovery: op 31, a new key package, and a fresh welcome.
    pub corrupt_first_handshake: bool,
}

impl Default for DaveConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            required: false,
            commit_timeout: Duration::from_secs(2),
            transition_timeout: Duration::from_secs(2),
            corrupt_first_handshake: false,
        }
    }
}

impl DaveConfig {
    /// DAVE on and required, as Discord runs non-Stage channels today.
    pub fn required() -> Self {
        Self {
            enabled: true,
            required: true,
            ..Self::default()
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            tls: false,
            tcp_port: 0,
            udp_port: 0,
            heartbeat_interval: Duration::from_millis(13_750),
            modes: DEFAULT_MODES.iter().map(|m| (*m).to_owned()).collect(),
            ca_pem_path: None,
            max_message_size: 1 << 20,
            keep_frames: true,
            speaking_grace: Duration::from_millis(250),
            seed: None,
            replay_buffer: 512,
            dave: DaveConfig::default(),
            scenario: Scenario::default(),
            counting: None,
        }
    }
}

/// Deliberate misbehaviour of the server. Everything is off by default.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Close rules; each fires at most once per client.
    pub close: Vec<CloseRule>,
    /// Whether heartbeats are acknowledged (applies to each client's first websocket only, so a
    /// client that resumes gets acknowledgements again).
    pub heartbeat_acks: AckPolicy,
    /// Garbage sent to each client right after its first Session Description.
    pub garbage: Vec<Garbage>,
    /// Answer IP discovery requests (off: requests are counted and dropped).
    pub answer_discovery: bool,
    /// Simulated users in the call, on a timeline that starts at each client's Session
    /// Description.
    pub users: Vec<SimulatedUser>,
    /// Probability in `0.0..=1.0` that a media packet the server sends is dropped.
    pub udp_loss: f64,
    /// Delay added to every media packet the server sends.
    pub udp_delay: Duration,
    /// Delay added to every websocket frame the server sends after Hello (order is kept).
    pub ws_delay: Duration,
    /// Opcodes the server never sends (e.g. 4 to test a Session Description timeout, 6 for
    /// heartbeat ACKs, 8 for Hello, 9 for Resumed). Numbered ones still take their seq.
    pub withhold: Vec<u8>,
    /// End each client's first websocket right after its Identify (before Ready), as Discord
    /// does to fresh connections now and then: the client must try again (a bad start,
    /// issue 14 row 1).
    pub first_websocket: Option<FirstClose>,
    /// Drop (count, do not answer) each client's first IP discovery request: the client must
    /// send it again.
    pub lose_first_discovery: bool,
    /// What the network does to simulated users' audio on its way to each client: loss,
    /// duplication, reordering, jitter (one emulator per user and client, seeded from this
    /// seed, the user and the client). `None`: untouched.
    pub impairment: Option<crate::netem::NetemConfig>,
}

/// How [`Scenario::first_websocket`] ends a client's first websocket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FirstClose {
    /// A close frame with this code (4006 "session no longer valid" is Discord's usual).
    Code(u16),
    /// The TCP connection is dropped without a close frame.
    Drop,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            close: Vec::new(),
            heartbeat_acks: AckPolicy::Always,
            garbage: Vec::new(),
            answer_discovery: true,
            users: Vec::new(),
            udp_loss: 0.0,
            udp_delay: Duration::ZERO,
            ws_delay: Duration::ZERO,
            withhold: Vec::new(),
            first_websocket: None,
            lose_first_discovery: false,
            impairment: None,
        }
    }
}

/// Close a client's websocket with `code` when `trigger` happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseRule {
    /// The close code, e.g. 4015 (resume expected), 4006 (fresh identify expected), 4014.
    pub code: u16,
    /// When.
    pub trigger: Trigger,
}

/// When a [`CloseRule`] fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// This long after the client's first Session Description.
    AfterSession(Duration),
    /// When this many RTP packets of the client's current SSRC have been received.
    AfterPackets(u64),
}

/// Heartbeat acknowledgement policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckPolicy {
    /// Acknowledge every heartbeat.
    Always,
    /// Never acknowledge (on the client's first websocket).
    Never,
    /// Acknowledge this many, then stop (on the client's first websocket).
    StopAfter(u32),
}

/// A kind of garbage the server can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Garbage {
    /// `{"op":99,"d":{...},"seq":N}`: a numbered message with an opcode outside the table.
    UnknownOpcode,
    /// A text frame that is not JSON.
    MalformedJson,
    /// A binary frame `[seq][op 99][bytes]` with an opcode outside the table.
    UnexpectedBinary,
}

/// A user that joins the call, speaks and leaves, as seen by each client.
#[derive(Clone, Debug)]
pub struct SimulatedUser {
    /// The user id.
    pub user_id: u64,
    /// When op 11 Clients Connect is sent.
    pub join_after: Duration,
    /// When op 5 Speaking and the audio start (`None`: never speaks).
    pub speak_after: Option<Duration>,
    /// When op 13 Client Disconnect is sent (`None`: stays).
    pub leave_after: Option<Duration>,
    /// The Opus frames it says, one per 20 ms, followed by five silence frames.
    pub frames: Arc<Vec<Vec<u8>>>,
    /// Whether it speaks DAVE. When the server's DAVE role is on, a DAVE user joins the
    /// channel's MLS group (a davey session inside the server), DAVE-encrypts what it says and
    /// decrypts what clients send for the media checks; a user without DAVE downgrades the call
    /// to version 0 while it is there. Ignored when DAVE is off.
    pub dave: bool,
}

/// One `--scenario` item of the command line.
#[derive(Clone, Debug)]
pub enum ScenarioStep {
    /// `close=CODE@ms=N` or `close=CODE@packets=N`.
    Close(CloseRule),
    /// `no-acks` or `no-acks@after=N`.
    Acks(AckPolicy),
    /// `garbage=unknown-op|malformed-json|binary|all`.
    Garbage(Vec<Garbage>),
    /// `no-discovery`.
    NoDiscovery,
    /// `user=ID@join=MS,speak=MS,leave=MS[,plain=1]` (frames come from `--user-audio`).
    User {
        /// The user id.
        user_id: u64,
        /// Join time.
        join_after: Duration,
        /// Speak time.
        speak_after: Option<Duration>,
        /// Leave time.
        leave_after: Option<Duration>,
        /// Speaks DAVE (`plain=1` makes a user without DAVE, which downgrades a DAVE call).
        dave: bool,
    },
    /// `loss=P` (0..=1) on server-sent media.
    Loss(f64),
    /// `delay=MS` on server-sent media.
    Delay(Duration),
    /// `ws-delay=MS` on server-sent websocket frames.
    WsDelay(Duration),
    /// `withhold=OP[+OP...]`: never send these opcodes.
    Withhold(Vec<u8>),
    /// `first-close=CODE` or `first-close=drop`: end each client's first websocket right after
    /// its Identify.
    FirstClose(FirstClose),
    /// `lose-first-discovery`: drop each client's first IP discovery request.
    LoseFirstDiscovery,
    /// `impair@loss=PCT,dup=PCT,reorder=PCT,jitter=MS,delay=MS,seed=N`: simulated users' audio
    /// through the network emulator (percentages of packets; every key optional).
    Impair(crate::netem::NetemConfig),
}

impl FromStr for ScenarioStep {
    type Err = SimError;

    fn from_str(input: &str) -> Result<Self, SimError> {
        let bad = |reason: &str| SimError::Scenario {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let (head, params) = match input.split_once('@') {
            Some((head, params)) => (head, Some(params)),
            None => (input, None),
        };
        let (name, value) = match head.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (head, None),
        };
        let number = |text: &str| {
            text.trim()
                .parse::<u64>()
                .map_err(|_| bad("expected a whole number"))
        };
        let param = |key: &str| -> Result<Option<u64>, SimError> {
            let Some(params) = params else {
                return Ok(None);
            };
            for pair in params.split(',') {
                if let Some((k, v)) = pair.split_once('=') {
                    if k.trim() == key {
                        return number(v).map(Some);
                    }
                }
            }
            Ok(None)
        };
        match (name, value) {
            ("close", Some(code)) => {
                let code = u16::try_from(number(code)?).map_err(|_| bad("close code out of range"))?;
                let trigger = match (param("ms")?, param("packets")?) {
                    (Some(ms), None) => Trigger::AfterSession(Duration::from_millis(ms)),
                    (None, Some(n)) => Trigger::AfterPackets(n),
                    _ => return Err(bad("expected exactly one of @ms=N or @packets=N")),
                };
                Ok(Self::Close(CloseRule { code, trigger }))
            }
            ("no-acks", None) => Ok(Self::Acks(match param("after")? {
                Some(n) => AckPolicy::StopAfter(u32::try_from(n).map_err(|_| bad("too many"))?),
                None => AckPolicy::Never,
            })),
            ("garbage", Some(kind)) => Ok(Self::Garbage(match kind {
                "unknown-op" => vec![Garbage::UnknownOpcode],
                "malformed-json" => vec![Garbage::MalformedJson],
                "binary" => vec![Garbage::UnexpectedBinary],
                "all" => vec![Garbage::UnknownOpcode, Garbage::MalformedJson, Garbage::UnexpectedBinary],
                _ => return Err(bad("expected unknown-op, malformed-json, binary or all")),
            })),
            ("no-discovery", None) => Ok(Self::NoDiscovery),
            ("user", Some(id)) => Ok(Self::User {
                user_id: number(id)?,
                join_after: Duration::from_millis(param("join")?.unwrap_or(0)),
                speak_after: param("speak")?.map(Duration::from_millis),
                leave_after: param("leave")?.map(Duration::from_millis),
                dave: param("plain")?.unwrap_or(0) == 0,
            }),
            ("loss", Some(p)) => {
                let p: f64 = p.parse().map_err(|_| bad("expected a probability"))?;
                if !(0.0..=1.0).contains(&p) {
                    return Err(bad("expected a probability in 0..=1"));
                }
                Ok(Self::Loss(p))
            }
            ("delay", Some(ms)) => Ok(Self::Delay(Duration::from_millis(number(ms)?))),
            ("ws-delay", Some(ms)) => Ok(Self::WsDelay(Duration::from_millis(number(ms)?))),
            ("withhold", Some(ops)) => ops
                .split('+')
                .map(|op| u8::try_from(number(op)?).map_err(|_| bad("opcodes are 0..=255")))
                .collect::<Result<Vec<u8>, SimError>>()
                .map(Self::Withhold),
            ("first-close", Some("drop")) => Ok(Self::FirstClose(FirstClose::Drop)),
            ("first-close", Some(code)) => u16::try_from(number(code)?)
                .map(|code| Self::FirstClose(FirstClose::Code(code)))
                .map_err(|_| bad("close code out of range")),
            ("lose-first-discovery", None) => Ok(Self::LoseFirstDiscovery),
            ("impair", None) => {
                let percent = |key: &str| -> Result<f64, SimError> {
                    match param(key)? {
                        Some(p) if p <= 100 => Ok(p as f64 / 100.0),
                        Some(_) => Err(bad("percentages are 0..=100")),
                        None => Ok(0.0),
                    }
                };
                let defaults = crate::netem::NetemConfig::default();
                Ok(Self::Impair(crate::netem::NetemConfig {
                    loss: percent("loss")?,
                    duplicate: percent("dup")?,
                    reorder: percent("reorder")?,
                    jitter: Duration::from_millis(param("jitter")?.unwrap_or(0)),
                    delay: Duration::from_millis(param("delay")?.unwrap_or(0)),
                    seed: param("seed")?.unwrap_or(defaults.seed),
                    ..defaults
                }))
            }
            _ => Err(bad(
                "expected close=CODE@ms=N|@packets=N, no-acks[@after=N], garbage=KIND, no-discovery, \
                 user=ID@join=MS[,speak=MS][,leave=MS][,plain=1], loss=P, delay=MS, ws-delay=MS, \
                 withhold=OP[+OP], first-close=CODE|drop, lose-first-discovery or \
                 impair@loss=PCT,dup=PCT,reorder=PCT,jitter=MS,delay=MS,seed=N",
            )),
        }
    }
}

impl Scenario {
    /// Builds a scenario from command-line steps; simulated users speak `user_audio`.
    pub fn from_steps(steps: &[ScenarioStep], user_audio: Arc<Vec<Vec<u8>>>) -> Self {
        let mut scenario = Scenario::default();
        for step in steps {
            match step {
                ScenarioStep::Close(rule) => scenario.close.push(*rule),
                ScenarioStep::Acks(policy) => scenario.heartbeat_acks = *policy,
                ScenarioStep::Garbage(kinds) => scenario.garbage.extend(kinds),
                ScenarioStep::NoDiscovery => scenario.answer_discovery = false,
                ScenarioStep::User {
                    user_id,
                    join_after,
                    speak_after,
                    leave_after,
                    dave,
                } => scenario.users.push(SimulatedUser {
                    user_id: *user_id,
                    join_after: *join_after,
                    speak_after: *speak_after,
                    leave_after: *leave_after,
                    frames: Arc::clone(&user_audio),
                    dave: *dave,
                }),
                ScenarioStep::Loss(p) => scenario.udp_loss = *p,
                ScenarioStep::Delay(d) => scenario.udp_delay = *d,
                ScenarioStep::WsDelay(d) => scenario.ws_delay = *d,
                ScenarioStep::Withhold(ops) => scenario.withhold.extend(ops),
                ScenarioStep::FirstClose(how) => scenario.first_websocket = Some(*how),
                ScenarioStep::LoseFirstDiscovery => scenario.lose_first_discovery = true,
                ScenarioStep::Impair(netem) => scenario.impairment = Some(*netem),
            }
        }
        scenario
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_impairment_parses_from_percentages_and_milliseconds() {
        let step: ScenarioStep = "impair@loss=10,dup=5,reorder=20,jitter=30,seed=7"
            .parse()
            .expect("parses");
        let ScenarioStep::Impair(netem) = step else {
            panic!("{step:?}")
        };
        assert_eq!(
            (
                netem.loss,
                netem.duplicate,
                netem.reorder,
                netem.jitter,
                netem.seed
            ),
            (0.1, 0.05, 0.2, Duration::from_millis(30), 7)
        );
        assert!("impair@loss=101".parse::<ScenarioStep>().is_err());
    }

    #[test]
    fn scenario_steps_parse() {
        let close: ScenarioStep = "close=4015@packets=50".parse().expect("parses");
        assert!(matches!(
            close,
            ScenarioStep::Close(CloseRule {
                code: 4015,
                trigger: Trigger::AfterPackets(50)
            })
        ));
        let close: ScenarioStep = "close=4006@ms=1500".parse().expect("parses");
        assert!(
            matches!(close, ScenarioStep::Close(CloseRule { code: 4006, trigger: Trigger::AfterSession(d) }) if d == Duration::from_millis(1500))
        );
        assert!(matches!(
            "no-acks".parse::<ScenarioStep>(),
            Ok(ScenarioStep::Acks(AckPolicy::Never))
        ));
        assert!(matches!(
            "no-acks@after=2".parse::<ScenarioStep>(),
            Ok(ScenarioStep::Acks(AckPolicy::StopAfter(2)))
        ));
        assert!(
            matches!("garbage=all".parse::<ScenarioStep>(), Ok(ScenarioStep::Garbage(g)) if g.len() == 3)
        );
        assert!(matches!(
            "no-discovery".parse::<ScenarioStep>(),
            Ok(ScenarioStep::NoDiscovery)
        ));
        let user: ScenarioStep = "user=42@join=100,speak=200,leave=900"
            .parse()
            .expect("parses");
        assert!(matches!(
            user,
            ScenarioStep::User {
                user_id: 42,
                speak_after: Some(_),
                leave_after: Some(_),
                ..
            }
        ));
        assert!(matches!(
            "user=42@join=0".parse::<ScenarioStep>(),
            Ok(ScenarioStep::User { dave: true, .. })
        ));
        assert!(matches!(
            "user=42@join=0,plain=1".parse::<ScenarioStep>(),
            Ok(ScenarioStep::User { dave: false, .. })
        ));
        assert!(
            matches!("loss=0.25".parse::<ScenarioStep>(), Ok(ScenarioStep::Loss(p)) if p == 0.25)
        );
        assert!(matches!(
            "delay=30".parse::<ScenarioStep>(),
            Ok(ScenarioStep::Delay(_))
        ));
        assert!(matches!(
            "first-close=4006".parse::<ScenarioStep>(),
            Ok(ScenarioStep::FirstClose(FirstClose::Code(4006)))
        ));
        assert!(matches!(
            "first-close=drop".parse::<ScenarioStep>(),
            Ok(ScenarioStep::FirstClose(FirstClose::Drop))
        ));
        assert!(matches!(
            "lose-first-discovery".parse::<ScenarioStep>(),
            Ok(ScenarioStep::LoseFirstDiscovery)
        ));
    }

    #[test]
    fn bad_scenario_steps_are_errors() {
        for bad in [
            "close=4015",
            "close=99999@ms=1",
            "close=x@ms=1",
            "loss=2",
            "frobnicate",
            "garbage=foo",
            "close=4015@ms=1,packets=2",
            "first-close=70000",
            "first-close=",
        ] {
            assert!(bad.parse::<ScenarioStep>().is_err(), "{bad}");
        }
    }
}
