//! The bodies of the `voice-proto` fuzz targets, as plain functions.
//!
//! This one file is compiled twice: by the cargo-fuzz crate (`fuzz/src/lib.rs`, used by
//! `fuzz/fuzz_targets/*.rs` under libFuzzer) and, on stable, by
//! `voice-proto/tests/fuzz_corpus_replay.rs`, which replays every file of `fuzz/corpus/<target>/`
//! through the same functions. It may only use `voice_proto`, `arbitrary` and `serde_json`.
//!
//! Every function panics (an `assert!`) when an invariant breaks; returning means the input was
//! handled as the bad-input policy demands: no panic, no unbounded allocation, no endless loop and
//! no state corruption. Malformed input ends as a typed error or an ignored/unknown event.
//!
//! The targets:
//!
//! - [`gateway_text`]: any string as a voice gateway text frame, decoded on its own and fed to a
//!   connection in every state; then time runs on and the connection must stay consistent.
//! - [`gateway_binary`]: the same for binary frames (`[seq u16][op u8][payload]`).
//! - [`udp_datagram`]: any bytes as an IP discovery answer and as inbound RTP/RTCP in every
//!   negotiated mode; the bytes are also sealed with the session key so that the decrypt path and
//!   the extension/padding stripping behind it are reached, with the expected Opus as the oracle.
//! - [`session`]: a [`SessionScript`] of inputs and application calls (the playout's
//!   `queue_opus`, `poll_transmit` and `stop_speaking` among them) driven from
//!   `AwaitingServerUpdate` through the whole flow by a model of the server and the adapter
//!   ([`Driver`]) that checks the invariants after every step.
//! - [`payload_roundtrip`]: decode -> encode -> decode is stable for text, binary, dispatches, and
//!   for generated messages of every opcode.
//! - [`dave_binary`]: a [`DaveScript`] of DAVE messages, media and audio on a connection that
//!   negotiated DAVE, with a model of the DAVE state on top of the [`Driver`].

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use voice_proto::close::{self, CloseDisposition};
use voice_proto::crypto::{EncryptionMode, TransportCipher};
use voice_proto::dave::DaveStatus;
use voice_proto::discovery::{
    discovery_request, discovery_response, parse_discovery_request, parse_discovery_response,
};
use voice_proto::gateway::{
    secure_voice_gateway_url, voice_gateway_url, VoiceServerDispatch, VoiceStateDispatch,
    VoiceStateUpdate,
};
use voice_proto::id::{ChannelId, GuildId, UserId};
use voice_proto::limits;
use voice_proto::payload::{
    ClientDisconnect, ClientMessage, ClientsConnect, DaveExecuteTransition,
    DaveMlsInvalidCommitWelcome, DavePrepareEpoch, DavePrepareTransition, DaveTransitionReady,
    Encoded, Heartbeat, HeartbeatAck, Hello, Identify, Opcode, ProposalsOperation, Ready, Resume,
    SelectProtocol, ServerFrame, ServerMessage, SessionDescription, Speaking, SpeakingFlags,
};
use voice_proto::playout::{HoldReason, QueueError, DEFAULT_QUEUE_FRAMES, FRAME_DURATION, MAX_LAG};
use voice_proto::receive::{Item, ReceiveConfig, Received};

use crate::jitter_buffer::SpurtGrammar;
use voice_proto::rtp::{
    classify, PacketKind, ReceivedRtp, MAX_OPUS_FRAME_LEN, MAX_PACKET_LEN, RTP_HEADER_LEN,
    SILENCE_FRAME, SILENCE_FRAME_COUNT,
};
use voice_proto::secret::{SecretKey, Token};
use voice_proto::{
    AnyState, AwaitingServerUpdate, Config, Error, Event, Input, JoinRequest, Output, Recovery,
    Stats,
};

/// Our guild.
pub const GUILD: GuildId = GuildId(41_771_983_423_143_937);
/// The channel we join.
pub const CHANNEL: ChannelId = ChannelId(127_121_515_262_115_840);
/// Our user id.
pub const USER: UserId = UserId(80_351_110_224_678_912);
/// The voice server endpoint from VOICE_SERVER_UPDATE.
pub const ENDPOINT: &str = "sweetwater-12345.discord.media:2048";
/// Our SSRC unless a script's Ready says otherwise (above 2^31 on purpose).
pub const SSRC: u32 = 0x8000_3039;
/// The SSRC of the other member whose audio the scripts send us.
pub const OTHER_SSRC: u32 = 0x0102_0304;
/// The other member's user id.
pub const OTHER_USER: UserId = UserId(12_345_678_901_234_567);
/// The transport key the scripted server hands out unless a script says otherwise.
pub const KEY: [u8; 32] = [7; 32];

/// Longest script the [`session`] target runs (keeps every input fast).
pub const MAX_STEPS: usize = 256;
/// A drain longer than this is an endless output loop.
const MAX_DRAIN: usize = 10_000;
/// The playout queue of scripts with flag bit 4 (small, so that `Full` is reached).
pub const SMALL_QUEUE: usize = 3;
/// More datagrams than this from one poll pass is an endless playout loop (the schedule owes at
/// most `MAX_LAG / FRAME_DURATION + 2` at once).
const MAX_BURST: usize = 64;
/// Heartbeat nonces are JSON-safe integers (C7).
const MAX_NONCE: u64 = (1 << 53) - 1;

/// The voice server's media address (Ready's `ip:port` unless a script changes the port).
pub fn server_udp() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 50_001)
}

/// Where the scripted server says it saw us.
pub fn client_public() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)), 50_004)
}

/// A source address that is not the voice server.
fn stranger() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9)), 50_001)
}

fn text_of(frame: ServerFrame) -> String {
    match frame.encode() {
        Encoded::Text(text) => text,
        Encoded::Binary(bytes) => panic!(
            "a JSON server message encoded as {} binary bytes",
            bytes.len()
        ),
    }
}

// ---- the script language --------------------------------------------------------------------

/// Little-endian byte reader over [`Unstructured`]; [`ScriptWriter`] is its exact inverse, so seed
/// scripts can be written as files.
struct ScriptReader<'u, 'a> {
    u: &'u mut Unstructured<'a>,
}

impl ScriptReader<'_, '_> {
    fn u8(&mut self) -> arbitrary::Result<u8> {
        u8::arbitrary(self.u)
    }
    fn u16(&mut self) -> arbitrary::Result<u16> {
        u16::arbitrary(self.u)
    }
    fn u32(&mut self) -> arbitrary::Result<u32> {
        u32::arbitrary(self.u)
    }
    fn u64(&mut self) -> arbitrary::Result<u64> {
        u64::arbitrary(self.u)
    }
    fn bool(&mut self) -> arbitrary::Result<bool> {
        Ok(self.u8()? & 1 == 1)
    }
    /// `u16` length then that many bytes (fewer when the input ends first).
    fn bytes(&mut self) -> arbitrary::Result<Vec<u8>> {
        let len = usize::from(self.u16()?).min(self.u.len());
        Ok(self.u.bytes(len)?.to_vec())
    }
    fn string(&mut self) -> arbitrary::Result<String> {
        Ok(String::from_utf8_lossy(&self.bytes()?).into_owned())
    }
}

/// Writes script values in the layout [`ScriptReader`] reads.
#[derive(Default)]
struct ScriptWriter {
    out: Vec<u8>,
}

impl ScriptWriter {
    fn u8(&mut self, v: u8) {
        self.out.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn bool(&mut self, v: bool) {
        self.out.push(u8::from(v));
    }
    fn bytes(&mut self, v: &[u8]) {
        let len = u16::try_from(v.len()).expect("script byte strings are below 64 KiB");
        self.u16(len);
        self.out.extend_from_slice(v);
    }
}

/// Which of our own VOICE_STATE_UPDATE variants a step forwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateUpdate {
    /// Ours, in the channel, with session id `sess-N`.
    Joined(u8),
    /// Ours, `channel_id: null` (we left or were kicked).
    Left,
    /// Another user's (ignored).
    OtherUser,
    /// Another guild's (ignored).
    OtherGuild,
}

/// Which VOICE_SERVER_UPDATE a step forwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerUpdate {
    /// Endpoint [`ENDPOINT`] and token `token-N`; for `N >= 128` the endpoint says `ws://`, which
    /// the engine must refuse (the token never travels in clear).
    Endpoint(u8),
    /// `endpoint: null`: the server is being reallocated.
    NullEndpoint,
    /// An endpoint no URL can be made of.
    BadEndpoint,
    /// Another guild's (ignored).
    OtherGuild,
}

/// A structured server text message; `numbered` adds the next `seq`.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerText {
    /// Op 8 with `heartbeat_interval = quarter_ms / 4` milliseconds.
    Hello {
        /// Interval in quarter milliseconds (0 is invalid on purpose).
        quarter_ms: u32,
    },
    /// Op 2. `ssrc` 0 means [`SSRC`]; `modes` is a bitmask over AES, XChaCha, a legacy mode and a
    /// bogus name; `port` 0 means the usual port.
    Ready {
        /// Our SSRC (0: [`SSRC`]).
        ssrc: u32,
        /// Bitmask of offered modes.
        modes: u8,
        /// An `ip` that is not an address.
        bad_ip: bool,
        /// Media port (0: the usual one).
        port: u16,
    },
    /// Op 4. `mode` 0: the selected one, 1: the other AEAD mode, else a bogus name.
    SessionDescription {
        /// Which mode name to send.
        mode: u8,
        /// Every key byte.
        key_byte: u8,
        /// DAVE protocol version.
        dave: u16,
    },
    /// Op 9.
    Resumed,
    /// Op 6 echoing the last heartbeat nonce, or `t` when given.
    HeartbeatAck {
        /// A nonce other than the outstanding one.
        t: Option<u64>,
    },
    /// Op 3 from the server.
    HeartbeatRequest,
    /// Op 5 mapping `ssrc` to `user`.
    Speaking {
        /// The user (0 = no `user_id` field).
        user: u64,
        /// Their SSRC (0: [`OTHER_SSRC`]).
        ssrc: u32,
        /// Their flags.
        flags: u32,
    },
    /// Op 11 with `count` users starting at `first`.
    ClientsConnect {
        /// First user id.
        first: u64,
        /// How many (capped at 16).
        count: u8,
    },
    /// Op 13.
    ClientDisconnect {
        /// The user (0: [`OTHER_USER`]).
        user: u64,
    },
    /// Op 21.
    DavePrepareTransition {
        /// Protocol version.
        version: u16,
        /// Transition id.
        transition: u16,
    },
    /// Op 22.
    DaveExecuteTransition {
        /// Transition id.
        transition: u16,
    },
    /// Op 24.
    DavePrepareEpoch {
        /// Protocol version.
        version: u16,
        /// Epoch.
        epoch: u64,
    },
    /// A known opcode the client ignores (10, 12, 14..=20) with an empty object.
    Ignored {
        /// Picks the opcode.
        which: u8,
    },
    /// An opcode outside the table (33..=255).
    Unknown {
        /// The opcode (values below 33 are moved up).
        op: u8,
    },
}

/// One received audio packet from another member, sealed by the scripted server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioPacket {
    /// Sender SSRC (0: [`OTHER_SSRC`]).
    pub ssrc: u32,
    /// RTP sequence number.
    pub sequence: u16,
    /// Extension words (X bit) when `Some`.
    pub extension_words: Option<u8>,
    /// Padding count (P bit) when `Some`.
    pub padding: Option<u8>,
    /// The Opus payload.
    pub opus: Vec<u8>,
    /// Flip a tag bit so authentication fails.
    pub corrupt: bool,
    /// Seal with a key the client does not have.
    pub wrong_key: bool,
}

/// One step of a [`SessionScript`].
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Forward our VOICE_STATE_UPDATE (or someone else's).
    StateUpdate(StateUpdate),
    /// Forward a VOICE_SERVER_UPDATE.
    ServerUpdate(ServerUpdate),
    /// The requested websocket opened (skipped when none is opening).
    Opened,
    /// The server closes the websocket (skipped when none is open or opening).
    ServerClose(Option<u16>),
    /// A structured text frame from the server (skipped when the websocket is not open).
    Text {
        /// The message.
        message: ServerText,
        /// Whether it carries the next `seq`.
        numbered: bool,
    },
    /// Any text frame.
    RawText(String),
    /// Any binary frame.
    Binary(Vec<u8>),
    /// An IP discovery answer: 0 ok, 1 IPv6, 2 bad address text, 3 a request echoed, else ok
    /// from a stranger.
    DiscoveryAnswer(u8),
    /// A sealed audio packet from another member.
    Audio(AudioPacket),
    /// Any datagram, from the server or (when `foreign`) from a stranger.
    Datagram {
        /// From a stranger.
        foreign: bool,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The clock moves on by this many milliseconds; a timer input follows.
    Advance(u16),
    /// The clock moves to the last `WakeAt`; a timer input follows.
    AdvanceToWake,
    /// `Session::speaking(flags)`.
    Speaking(u32),
    /// `Session::queue_opus` with a frame of `len % 1400` bytes of `fill` (0 and lengths above
    /// 1275 included; exactly `F8 FF FE` for three bytes of `F8`; from 8 bytes on the frame's
    /// number in its last four bytes), then (unless `queue_only`) a [`Step::PollTransmit`].
    QueueOpus {
        /// Frame length (modulo 1400).
        len: u16,
        /// Frame byte.
        fill: u8,
        /// Only queue; the frame goes out at a later poll.
        queue_only: bool,
    },
    /// `Session::stop_speaking`.
    StopSpeaking,
    /// `Session::poll_transmit` at the current time until it has nothing more, then a drain (an
    /// op 5 it queued is taken there; the datagram after it needs another poll).
    PollTransmit,
    /// `Session::disconnect`.
    Disconnect,
}

const STEP_KINDS: u8 = 17;

impl Step {
    fn read(r: &mut ScriptReader<'_, '_>) -> arbitrary::Result<Self> {
        Ok(match r.u8()? % STEP_KINDS {
            0 => Step::StateUpdate(match r.u8()? % 4 {
                0 => StateUpdate::Joined(r.u8()?),
                1 => StateUpdate::Left,
                2 => StateUpdate::OtherUser,
                _ => StateUpdate::OtherGuild,
            }),
            1 => Step::ServerUpdate(match r.u8()? % 4 {
                0 => ServerUpdate::Endpoint(r.u8()?),
                1 => ServerUpdate::NullEndpoint,
                2 => ServerUpdate::BadEndpoint,
                _ => ServerUpdate::OtherGuild,
            }),
            2 => Step::Opened,
            3 => Step::ServerClose(match r.u8()? {
                0 => None,
                n @ 1..=17 => Some(close::VOICE_CLOSE_CODES[usize::from(n - 1)].code),
                18 => Some(1000),
                19 => Some(1006),
                _ => Some(r.u16()?),
            }),
            4 => {
                let numbered = r.bool()?;
                Step::Text {
                    message: ServerText::read(r)?,
                    numbered,
                }
            }
            5 => Step::RawText(r.string()?),
            6 => Step::Binary(r.bytes()?),
            7 => Step::DiscoveryAnswer(r.u8()?),
            8 => {
                let flags = r.u8()?;
                let ssrc = r.u32()?;
                let sequence = r.u16()?;
                let extension_words = (flags & 1 != 0).then_some(flags >> 4);
                let padding = if flags & 2 != 0 { Some(r.u8()?) } else { None };
                Step::Audio(AudioPacket {
                    ssrc,
                    sequence,
                    extension_words,
                    padding,
                    corrupt: flags & 4 != 0,
                    wrong_key: flags & 8 != 0,
                    opus: r.bytes()?,
                })
            }
            9 => Step::Datagram {
                foreign: r.bool()?,
                data: r.bytes()?,
            },
            10 => Step::Advance(r.u16()?),
            11 => Step::AdvanceToWake,
            12 => Step::Speaking(r.u32()?),
            13 => Step::QueueOpus {
                len: r.u16()?,
                fill: r.u8()?,
                queue_only: r.bool()?,
            },
            14 => Step::StopSpeaking,
            15 => Step::PollTransmit,
            _ => Step::Disconnect,
        })
    }

    fn write(&self, w: &mut ScriptWriter) {
        match self {
            Step::StateUpdate(update) => {
                w.u8(0);
                match update {
                    StateUpdate::Joined(n) => {
                        w.u8(0);
                        w.u8(*n);
                    }
                    StateUpdate::Left => w.u8(1),
                    StateUpdate::OtherUser => w.u8(2),
                    StateUpdate::OtherGuild => w.u8(3),
                }
            }
            Step::ServerUpdate(update) => {
                w.u8(1);
                match update {
                    ServerUpdate::Endpoint(n) => {
                        w.u8(0);
                        w.u8(*n);
                    }
                    ServerUpdate::NullEndpoint => w.u8(1),
                    ServerUpdate::BadEndpoint => w.u8(2),
                    ServerUpdate::OtherGuild => w.u8(3),
                }
            }
            Step::Opened => w.u8(2),
            Step::ServerClose(code) => {
                w.u8(3);
                match code {
                    None => w.u8(0),
                    Some(code) => {
                        w.u8(255);
                        w.u16(*code);
                    }
                }
            }
            Step::Text { message, numbered } => {
                w.u8(4);
                w.bool(*numbered);
                message.write(w);
            }
            Step::RawText(text) => {
                w.u8(5);
                w.bytes(text.as_bytes());
            }
            Step::Binary(bytes) => {
                w.u8(6);
                w.bytes(bytes);
            }
            Step::DiscoveryAnswer(kind) => {
                w.u8(7);
                w.u8(*kind);
            }
            Step::Audio(packet) => {
                w.u8(8);
                let mut flags = 0u8;
                if let Some(words) = packet.extension_words {
                    flags |= 1 | (words.min(15) << 4);
                }
                if packet.padding.is_some() {
                    flags |= 2;
                }
                if packet.corrupt {
                    flags |= 4;
                }
                if packet.wrong_key {
                    flags |= 8;
                }
                w.u8(flags);
                w.u32(packet.ssrc);
                w.u16(packet.sequence);
                if let Some(pad) = packet.padding {
                    w.u8(pad);
                }
                w.bytes(&packet.opus);
            }
            Step::Datagram { foreign, data } => {
                w.u8(9);
                w.bool(*foreign);
                w.bytes(data);
            }
            Step::Advance(ms) => {
                w.u8(10);
                w.u16(*ms);
            }
            Step::AdvanceToWake => w.u8(11),
            Step::Speaking(flags) => {
                w.u8(12);
                w.u32(*flags);
            }
            Step::QueueOpus {
                len,
                fill,
                queue_only,
            } => {
                w.u8(13);
                w.u16(*len);
                w.u8(*fill);
                w.bool(*queue_only);
            }
            Step::StopSpeaking => w.u8(14),
            Step::PollTransmit => w.u8(15),
            Step::Disconnect => w.u8(16),
        }
    }
}

impl ServerText {
    fn read(r: &mut ScriptReader<'_, '_>) -> arbitrary::Result<Self> {
        Ok(match r.u8()? % 14 {
            0 => ServerText::Hello {
                quarter_ms: r.u32()?,
            },
            1 => ServerText::Ready {
                ssrc: r.u32()?,
                modes: r.u8()?,
                bad_ip: r.bool()?,
                port: r.u16()?,
            },
            2 => ServerText::SessionDescription {
                mode: r.u8()?,
                key_byte: r.u8()?,
                dave: r.u16()?,
            },
            3 => ServerText::Resumed,
            4 => ServerText::HeartbeatAck {
                t: if r.bool()? { Some(r.u64()?) } else { None },
            },
            5 => ServerText::HeartbeatRequest,
            6 => ServerText::Speaking {
                user: r.u64()?,
                ssrc: r.u32()?,
                flags: r.u32()?,
            },
            7 => ServerText::ClientsConnect {
                first: r.u64()?,
                count: r.u8()?,
            },
            8 => ServerText::ClientDisconnect { user: r.u64()? },
            9 => ServerText::DavePrepareTransition {
                version: r.u16()?,
                transition: r.u16()?,
            },
            10 => ServerText::DaveExecuteTransition {
                transition: r.u16()?,
            },
            11 => ServerText::DavePrepareEpoch {
                version: r.u16()?,
                epoch: r.u64()?,
            },
            12 => ServerText::Ignored { which: r.u8()? },
            _ => ServerText::Unknown { op: r.u8()? },
        })
    }

    fn write(&self, w: &mut ScriptWriter) {
        match self {
            ServerText::Hello { quarter_ms } => {
                w.u8(0);
                w.u32(*quarter_ms);
            }
            ServerText::Ready {
                ssrc,
                modes,
                bad_ip,
                port,
            } => {
                w.u8(1);
                w.u32(*ssrc);
                w.u8(*modes);
                w.bool(*bad_ip);
                w.u16(*port);
            }
            ServerText::SessionDescription {
                mode,
                key_byte,
                dave,
            } => {
                w.u8(2);
                w.u8(*mode);
                w.u8(*key_byte);
                w.u16(*dave);
            }
            ServerText::Resumed => w.u8(3),
            ServerText::HeartbeatAck { t } => {
                w.u8(4);
                w.bool(t.is_some());
                if let Some(t) = t {
                    w.u64(*t);
                }
            }
            ServerText::HeartbeatRequest => w.u8(5),
            ServerText::Speaking { user, ssrc, flags } => {
                w.u8(6);
                w.u64(*user);
                w.u32(*ssrc);
                w.u32(*flags);
            }
            ServerText::ClientsConnect { first, count } => {
                w.u8(7);
                w.u64(*first);
                w.u8(*count);
            }
            ServerText::ClientDisconnect { user } => {
                w.u8(8);
                w.u64(*user);
            }
            ServerText::DavePrepareTransition {
                version,
                transition,
            } => {
                w.u8(9);
                w.u16(*version);
                w.u16(*transition);
            }
            ServerText::DaveExecuteTransition { transition } => {
                w.u8(10);
                w.u16(*transition);
            }
            ServerText::DavePrepareEpoch { version, epoch } => {
                w.u8(11);
                w.u16(*version);
                w.u64(*epoch);
            }
            ServerText::Ignored { which } => {
                w.u8(12);
                w.u8(*which);
            }
            ServerText::Unknown { op } => {
                w.u8(13);
                w.u8(*op);
            }
        }
    }
}

/// Connection settings a script chooses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptConfig {
    /// Initial RTP sequence/timestamp seed (values near the wrap points included).
    pub rtp_seed: u64,
    /// Bit 0: `max_dave_protocol_version = 1`; bit 1: heartbeat capped at 5 s; bit 2: at most one
    /// reconnect attempt; bit 3: three missed heartbeats instead of two; bit 4: a playout queue of
    /// [`SMALL_QUEUE`] frames instead of the default; bits 5-6: the receive buffer's depth (0-3
    /// frames; receive is always on).
    pub flags: u8,
}

impl ScriptConfig {
    /// The engine configuration.
    pub fn config(&self) -> Config {
        {
            let mut config = Config::default();
            config.rtp_seed = self.rtp_seed;
            config.max_dave_protocol_version = u16::from(self.flags & 1);
            config.max_heartbeat_interval = (self.flags & 2 != 0).then(|| Duration::from_secs(5));
            config.max_reconnect_attempts = if self.flags & 4 != 0 { 1 } else { 5 };
            config.max_missed_heartbeats = if self.flags & 8 != 0 { 3 } else { 2 };
            config.playout_queue_frames = if self.flags & 16 != 0 {
                SMALL_QUEUE
            } else {
                DEFAULT_QUEUE_FRAMES
            };
            config.receive = Some(ReceiveConfig {
                depth: usize::from((self.flags >> 5) & 3),
                max_depth: 4,
                ..ReceiveConfig::default()
            });
            config
        }
    }
}

/// Input of the [`session`] target: settings, then up to [`MAX_STEPS`] steps.
///
/// Its `Arbitrary` layout is a small byte language (a tag byte per step, little-endian integers,
/// `u16`-length-prefixed byte strings) so that [`SessionScript::to_bytes`] can write seed files;
/// reading never fails, every byte string is a script.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionScript {
    /// Connection settings.
    pub config: ScriptConfig,
    /// What happens, in order.
    pub steps: Vec<Step>,
}

impl<'a> Arbitrary<'a> for SessionScript {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut r = ScriptReader { u };
        let config = ScriptConfig {
            rtp_seed: r.u64()?,
            flags: r.u8()?,
        };
        let mut steps = Vec::new();
        while !r.u.is_empty() && steps.len() < MAX_STEPS {
            steps.push(Step::read(&mut r)?);
        }
        Ok(Self { config, steps })
    }
}

impl SessionScript {
    /// The bytes that [`Arbitrary`] reads back as this script (for seed files).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = ScriptWriter::default();
        w.u64(self.config.rtp_seed);
        w.u8(self.config.flags);
        for step in &self.steps {
            step.write(&mut w);
        }
        w.out
    }
}

// ---- the driver: a scripted server and adapter that check every output ------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ws {
    None,
    Opening,
    Open,
}

/// What the model knows about the live media session (engine `media` is `Some`).
#[derive(Clone, Debug)]
struct MediaModel {
    ssrc: u32,
    mode: EncryptionMode,
    key: [u8; 32],
    remote: SocketAddr,
    /// (sequence, timestamp, nonce) of our last packet under this key.
    last: Option<(u16, u32, u32)>,
}

/// What the session reports about its playout, read in one borrow.
struct PlayoutView {
    queued: usize,
    capacity: usize,
    idle: bool,
    hold: Option<HoldReason>,
    next_transmit: Option<Instant>,
}

/// What the model knows about the playout: the frames queued and not yet sent, the talk spurt
/// and its trailing silence, the 20 ms schedule, and the hold the events reported.
#[derive(Clone, Debug)]
struct PlayoutModel {
    capacity: usize,
    /// Frames `queue_opus` accepted and that have not gone out (or been dropped), oldest first.
    queue: VecDeque<Vec<u8>>,
    /// Audio went out and the spurt's trailing silence is not over.
    talking: bool,
    /// Trailing silence frames the spurt still owes (five after every audio frame; a stop does
    /// not restart a silence that has begun).
    silence_left: usize,
    /// The fifth silence frame went out: op 5 with flags 0 must be taken before anything else.
    speaking_zero_due: bool,
    /// The earliest time of the next datagram: its slot on the running schedule, or while the
    /// schedule is paused one frame after the last datagram (`None` before the first datagram of
    /// a media session).
    slot: Option<Instant>,
    /// The schedule runs: the next datagram is due at `slot` (late polls get the overdue ones at
    /// once, up to [`MAX_LAG`]). A hold or the end of a spurt pauses it; the datagram that ends
    /// the pause goes when polled (not before `slot`) and starts the schedule anew from there.
    running: bool,
    /// The hold of the latest `PlayoutHeld`, until a `PlayoutResumed`.
    reported: Option<HoldReason>,
    /// `PlayoutHeld` events for DAVE keys.
    dave_holds: u32,
    /// Datagrams `poll_transmit` gave.
    datagrams: u64,
}

impl PlayoutModel {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            queue: VecDeque::new(),
            talking: false,
            silence_left: 0,
            speaking_zero_due: false,
            slot: None,
            running: false,
            reported: None,
            dave_holds: 0,
            datagrams: 0,
        }
    }

    /// Something to send: queued frames, or a spurt whose trailing silence is not out.
    fn has_work(&self) -> bool {
        !self.queue.is_empty() || self.talking
    }

    /// The media session ended: a spurt it cut ends without its trailing silence, and the next
    /// session's stream (a new SSRC and RTP counters) starts a schedule of its own.
    fn end_spurt(&mut self) {
        self.talking = false;
        self.silence_left = 0;
        self.speaking_zero_due = false;
        self.slot = None;
        self.running = false;
    }

    /// The connection ended: nothing more will be sent, nothing is held.
    fn close(&mut self) {
        self.end_spurt();
        self.queue.clear();
        self.reported = None;
    }

    /// A slot was used at `now`: the next is one frame after it on the drift-free schedule, or
    /// one frame from now when the schedule was paused or the poll came more than [`MAX_LAG`]
    /// late (the schedule restarts instead of bursting on).
    fn advance(&mut self, now: Instant) {
        let next = match self.slot {
            Some(slot) if self.running && now <= slot + FRAME_DURATION + MAX_LAG => {
                slot + FRAME_DURATION
            }
            _ => now + FRAME_DURATION,
        };
        self.slot = Some(next);
        self.running = true;
    }
}

/// Drives one connection (an [`AnyState`]) as a correct adapter would, plays the voice server,
/// and checks the invariants after every input and application call:
///
/// - every drain ends with `WakeAt` or `Idle` (only once closed), and nothing but `Idle` comes out
///   of a closed connection; `WakeAt` is the earlier of `next_timer()` (never in the past) and
///   `next_transmit()`;
/// - every frame we send decodes, goes on an open websocket, and carries the right token, session
///   id, SSRC and `seq_ack`; one Identify or Resume per websocket, of the kind the recovery asked
///   for; datagrams go to the bound server address;
/// - statistics counters never go back (`frames_queued` is a gauge: the model's queue length);
/// - a server close is run through the close-code table and its consequence follows;
///
/// and the playout, against a model of its queue, talk spurt and 20 ms schedule
/// (`PlayoutModel`):
///
/// - `queue_opus` gives exactly the result the model predicts (`Closed`, `BadFrameLength` outside
///   1..=1275 bytes, `Full` at capacity, else `Ok`), and `stop_speaking()` drops exactly the
///   frames the model has queued;
/// - no datagram before Session Description, on a websocket that is not live (reconnecting,
///   resuming), or before op 5 with non-zero flags was taken from `poll_output` on the current
///   websocket (C20; op 5 is announced once per websocket and spurt, with the application's
///   flags); no queued frame while DAVE keys are pending (C48);
/// - every datagram is well-formed RTP that opens under the key the server gave, sequence,
///   timestamp and nonce each one step on (C19, C25), counted once, and carries what comes next:
///   the oldest queued frame (FIFO, none lost, none twice; plain, or DAVE-encrypted exactly when
///   DAVE is active, C43), else a trailing silence frame `F8 FF FE` (never DAVE-encrypted, C46);
///   five silence frames after the last audio of a spurt (or a stop), then op 5 with flags 0
///   taken before anything else (C21); a cut spurt's silence is never sent on the next session;
/// - the schedule: no datagram before its slot, so never two in one 20 ms slot; a poll late on
///   a running schedule gets the overdue slots at once, a poll more than `MAX_LAG` late one and
///   a new schedule; a hold or the end of a spurt pauses the schedule (nothing owed for it) and
///   the datagram that ends the pause starts a new one; after a poll nothing due is left unsent;
/// - `playout_hold()` is the model's (reconnecting, resuming, DAVE keys pending), every change of
///   it comes as one `PlayoutHeld`/`PlayoutResumed` (a `Closed` ends a hold silently);
///   `playout_idle()`, `queued_frames()`, `queue_capacity()` and `next_transmit()` (`None`
///   exactly when nothing can be sent; else the slot, or a time not after now) agree.
pub struct Driver {
    state: AnyState,
    config: Config,
    /// When the script started (for traces).
    start: Instant,
    now: Instant,
    ws: Ws,
    /// Kind of the current websocket: fresh Identify or Resume.
    socket_kind: Recovery,
    pending_recovery: Option<Recovery>,
    handshakes_on_socket: u32,
    live_on_socket: bool,
    announced: bool,
    udp: Option<SocketAddr>,
    /// The last Ready we sent: (remote, ssrc, modes); committed when the engine binds UDP.
    pending_ready: Option<(SocketAddr, u32, Vec<String>)>,
    ready_ssrc: Option<u32>,
    offered_modes: Vec<String>,
    selected_mode: Option<EncryptionMode>,
    answered: Option<(IpAddr, u16)>,
    pending_key: Option<(String, [u8; 32])>,
    media: Option<MediaModel>,
    established: bool,
    closed: bool,
    token: String,
    session_id: String,
    seq: u64,
    last_seq: Option<u64>,
    last_nonce: Option<u64>,
    ssrc_users: HashMap<u32, UserId>,
    /// What the playout must do next.
    playout: PlayoutModel,
    /// The flags of the application's latest `speaking` call (audio announces Microphone when
    /// there was none, or it was empty).
    app_flags: SpeakingFlags,
    /// Frames made by `Driver::opus_frame` so far (each carries its number when long enough).
    frames_made: u32,
    stats: Stats,
    last_wake: Option<Instant>,
    /// Outputs of the latest drain.
    outputs: Vec<Output>,
    /// The latest datagram that carried a queued frame.
    last_packet: Option<Vec<u8>>,
    /// Every output of every drain since the last [`Driver::take_log`], when logging.
    log: Option<Vec<Output>>,
    /// Op 4 leaves (channel null) seen: exactly one once the connection has ended, none before.
    leaves: u32,
    /// The model of the recovery attempt counter: attempts in a row since the last session that
    /// stayed up `reconnect_reset_after`.
    attempts: u32,
    /// When the current session will have stayed up long enough to reset the counter.
    stable_at: Option<Instant>,
    /// The earliest time the attempt announced by the latest `Reconnecting` may start (its
    /// backoff's lower bound): no retry without a backoff.
    retry_not_before: Option<Instant>,
    /// A 4004 was answered with a rejoin and no session was established since.
    rejoined_after_4004: bool,
    /// Per SSRC: where its received items stand (the grammar of spurts, frames and losses).
    received: HashMap<u32, SpurtGrammar>,
    /// Every payload sealed into a packet from another member, per (SSRC, sequence), and whether
    /// it passes the DAVE stage untouched: a received frame must be one of them (or come out of
    /// DAVE decryption).
    sealed_frames: HashMap<(u32, u16), Vec<SealedFrame>>,
    /// Frames received so far.
    frames_received: u64,
}

/// A payload sealed into a packet from another member, and whether it passes the DAVE stage
/// untouched.
type SealedFrame = (Vec<u8>, bool);

impl Driver {
    /// A join through the main gateway, already drained (op 4 is out).
    pub fn join(config: Config) -> Self {
        let now = Instant::now();
        let state = AnyState::from(AwaitingServerUpdate::new(
            now,
            config.clone(),
            JoinRequest::new(GUILD, CHANNEL, USER),
        ));
        let capacity = config.playout_queue_frames;
        let mut driver = Self {
            state,
            config,
            start: now,
            now,
            ws: Ws::None,
            socket_kind: Recovery::Reconnect,
            pending_recovery: None,
            handshakes_on_socket: 0,
            live_on_socket: false,
            announced: false,
            udp: None,
            pending_ready: None,
            ready_ssrc: None,
            offered_modes: Vec::new(),
            selected_mode: None,
            answered: None,
            pending_key: None,
            media: None,
            established: false,
            closed: false,
            token: String::new(),
            session_id: String::new(),
            seq: 0,
            last_seq: None,
            last_nonce: None,
            ssrc_users: HashMap::new(),
            playout: PlayoutModel::new(capacity),
            app_flags: SpeakingFlags::NONE,
            frames_made: 0,
            stats: Stats::default(),
            last_wake: None,
            outputs: Vec::new(),
            last_packet: None,
            log: None,
            leaves: 0,
            attempts: 0,
            stable_at: None,
            retry_not_before: None,
            rejoined_after_4004: false,
            received: HashMap::new(),
            sealed_frames: HashMap::new(),
            frames_received: 0,
        };
        driver.drain();
        driver
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The error that ended the connection, if it has ended.
    pub fn error(&self) -> Option<&Error> {
        self.state.error()
    }

    /// Starts keeping every output (for [`Driver::events_logged`]).
    pub fn keep_log(&mut self) {
        self.log = Some(Vec::new());
    }

    /// The events among the outputs kept since [`Driver::keep_log`].
    pub fn events_logged(&self) -> Vec<Event> {
        self.log
            .iter()
            .flatten()
            .filter_map(|o| match o {
                Output::Event(event) => Some(event.clone()),
                _ => None,
            })
            .collect()
    }

    /// Whether a media session is live (the engine can send audio).
    pub fn has_media(&self) -> bool {
        self.media.is_some()
    }

    /// The outputs of the latest drain.
    pub fn outputs(&self) -> &[Output] {
        &self.outputs
    }

    /// Datagrams `poll_transmit` gave so far.
    pub fn datagrams(&self) -> u64 {
        self.playout.datagrams
    }

    /// The model's playout, for traces: time, datagrams, queue, spurt, schedule and hold.
    pub fn playout_trace(&self) -> String {
        let ms = |at: Instant| at.saturating_duration_since(self.start).as_millis();
        let p = &self.playout;
        format!(
            "t={}ms datagrams={} queued={} talking={} silence_left={} slot={:?} running={} \
             hold={:?} announced={}",
            ms(self.now),
            p.datagrams,
            p.queue.len(),
            p.talking,
            p.silence_left,
            p.slot.map(ms),
            p.running,
            p.reported,
            self.announced
        )
    }

    /// Runs every step in order.
    pub fn run(&mut self, steps: &[Step]) {
        for step in steps {
            self.step(step);
        }
    }

    /// Feeds one input, bypassing the adapter model (for raw frames in any state), and drains.
    pub fn feed_raw(&mut self, input: Input<'_>) {
        let stray = matches!(input, Input::Text(_) | Input::Binary(_)) && self.ws != Ws::Open;
        if !stray {
            self.mirror_input(&input);
        }
        let _ = self.state.handle_input(self.now, input);
        self.drain();
        if stray {
            // A frame with no open websocket is stale: an ignored event at most, nothing else.
            assert!(
                self.outputs.iter().all(|o| matches!(
                    o,
                    Output::Event(Event::Ignored { .. }) | Output::WakeAt(_) | Output::Idle
                ) || matches!(o, Output::Transmit { data, .. } if data.len() == 8)),
                "a stray frame changed the state: {:?}",
                self.outputs
            );
        }
    }

    /// Lets time run to each wake-up until the attempt a `Reconnecting` announced starts (its
    /// jittered backoff is over: a websocket opens or op 4 rejoins), or the connection ends.
    pub fn wait_out_backoff(&mut self) {
        for _ in 0..64 {
            if self.retry_not_before.is_none() || self.closed {
                return;
            }
            self.step(&Step::AdvanceToWake);
        }
    }

    /// Lets time run through `wakeups` successive wake-up times, then one minute more.
    pub fn run_timers(&mut self, wakeups: usize) {
        for _ in 0..wakeups {
            self.step(&Step::AdvanceToWake);
        }
        self.step(&Step::Advance(60_000));
    }

    fn feed(&mut self, input: Input<'_>) {
        self.feed_raw(input);
    }

    /// What the engine will learn from a frame we deliver, mirrored in the model.
    fn mirror_input(&mut self, input: &Input<'_>) {
        if self.closed {
            return;
        }
        let frame = match input {
            Input::Text(text) => ServerFrame::decode_text(text).ok(),
            Input::Binary(bytes) => ServerFrame::decode_binary(bytes).ok(),
            _ => None,
        };
        let Some(frame) = frame else { return };
        if let Some(seq) = frame.seq {
            self.last_seq = Some(seq);
        }
        match frame.message {
            ServerMessage::Ready(ready) => {
                if let Ok(ip) = ready.ip.trim().parse::<IpAddr>() {
                    let remote = SocketAddr::new(ip, ready.port);
                    self.pending_ready = Some((remote, ready.ssrc, ready.modes));
                }
            }
            ServerMessage::SessionDescription(description) => {
                self.pending_key = Some((description.mode, *description.secret_key.expose()));
            }
            ServerMessage::Speaking(Speaking {
                ssrc,
                user_id: Some(user),
                ..
            }) => {
                self.ssrc_users.insert(ssrc, user);
            }
            ServerMessage::ClientDisconnect(ClientDisconnect { user_id }) => {
                self.ssrc_users.retain(|_, user| *user != user_id);
            }
            _ => {}
        }
    }

    fn deliver_text(&mut self, text: &str) {
        if self.ws == Ws::Open {
            self.feed(Input::Text(text));
        }
    }

    fn next_seq(&mut self, numbered: bool) -> Option<u64> {
        numbered.then(|| {
            self.seq += 1;
            self.seq
        })
    }

    /// Carries out one scripted step and checks the invariants.
    pub fn step(&mut self, step: &Step) {
        // A correct adapter feeds a timer that is due before anything else happens. (A playout
        // slot that is due waits for a poll step: the script decides how late the driver is.)
        let due = self.state.next_timer().is_some_and(|at| at <= self.now);
        if due && !matches!(step, Step::Advance(_) | Step::AdvanceToWake) {
            self.feed(Input::Timer);
        }
        match step {
            Step::StateUpdate(which) => {
                let (user_id, guild_id, channel_id, session) = match which {
                    StateUpdate::Joined(n) => (USER, GUILD, Some(CHANNEL), format!("sess-{n}")),
                    StateUpdate::Left => (USER, GUILD, None, "sess-left".to_owned()),
                    StateUpdate::OtherUser => (OTHER_USER, GUILD, Some(CHANNEL), "x".to_owned()),
                    StateUpdate::OtherGuild => (USER, GuildId(1), Some(CHANNEL), "y".to_owned()),
                };
                if user_id == USER && guild_id == GUILD && !self.closed {
                    self.session_id = session.clone();
                }
                self.feed(Input::VoiceStateUpdate(VoiceStateDispatch {
                    guild_id: Some(guild_id),
                    channel_id,
                    user_id,
                    session_id: session,
                }));
            }
            Step::ServerUpdate(which) => {
                let (guild_id, endpoint, token) = match which {
                    ServerUpdate::Endpoint(n) => {
                        let endpoint = if n & 0x80 != 0 {
                            format!("ws://{ENDPOINT}")
                        } else {
                            ENDPOINT.to_owned()
                        };
                        (GUILD, Some(endpoint), format!("token-{n}"))
                    }
                    ServerUpdate::NullEndpoint => (GUILD, None, "token-null".to_owned()),
                    ServerUpdate::BadEndpoint => (
                        GUILD,
                        Some("bad host:99999".to_owned()),
                        "token-bad".to_owned(),
                    ),
                    ServerUpdate::OtherGuild => (
                        GuildId(1),
                        Some(ENDPOINT.to_owned()),
                        "token-other".to_owned(),
                    ),
                };
                // Only wss:// from Discord (row 8): a ws:// endpoint is refused like a bad one.
                let usable = endpoint
                    .as_deref()
                    .is_some_and(|e| secure_voice_gateway_url(e).is_ok());
                let insecure = endpoint.as_deref().is_some_and(|e| {
                    voice_gateway_url(e).is_ok() && secure_voice_gateway_url(e).is_err()
                });
                if guild_id == GUILD && usable && !self.closed {
                    self.token = token.clone();
                    // A new server is a move: whatever recovery was pending becomes a fresh
                    // Identify (C49), at once (a move is no retry).
                    self.pending_recovery = None;
                    self.retry_not_before = None;
                }
                self.feed(Input::VoiceServerUpdate(VoiceServerDispatch {
                    token: Token::new(token),
                    guild_id,
                    endpoint,
                }));
                if insecure && guild_id == GUILD {
                    assert!(
                        !self
                            .outputs
                            .iter()
                            .any(|o| matches!(o, Output::OpenWebSocket { .. })),
                        "a ws:// endpoint from VOICE_SERVER_UPDATE was used (row 8)"
                    );
                }
            }
            Step::Opened => {
                if self.ws == Ws::Opening {
                    self.ws = Ws::Open;
                    self.feed(Input::WebSocketOpened);
                }
            }
            Step::ServerClose(code) => self.server_close(*code),
            Step::Text { message, numbered } => {
                if self.ws == Ws::Open {
                    let seq = self.next_seq(*numbered);
                    let text = self.server_text(message, seq);
                    let expect_ack = matches!(message, ServerText::HeartbeatAck { t: None })
                        && self.last_nonce.is_some();
                    self.deliver_text(&text);
                    if expect_ack {
                        self.last_nonce = None;
                        assert!(
                            self.closed
                                || self.outputs.iter().any(|o| matches!(
                                    o,
                                    Output::Event(Event::HeartbeatAcknowledged { .. })
                                )),
                            "an ACK of the outstanding heartbeat was not acknowledged"
                        );
                    }
                }
            }
            Step::RawText(text) => self.deliver_text(text),
            Step::Binary(bytes) => {
                if self.ws == Ws::Open {
                    self.feed(Input::Binary(bytes));
                }
            }
            Step::DiscoveryAnswer(kind) => self.discovery_answer(*kind),
            Step::Audio(packet) => self.audio(packet),
            Step::Datagram { foreign, data } => {
                if let Some(remote) = self.udp {
                    let from = if *foreign { stranger() } else { remote };
                    self.datagram(from, data);
                }
            }
            Step::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.feed(Input::Timer);
            }
            Step::AdvanceToWake => {
                if let Some(at) = self.last_wake {
                    self.now = self.now.max(at);
                }
                // A driver with one loop: the timer input, then every datagram due.
                self.feed(Input::Timer);
                self.play_due();
            }
            Step::Speaking(flags) => self.speaking(SpeakingFlags::from_bits(*flags)),
            Step::QueueOpus {
                len,
                fill,
                queue_only,
            } => {
                let frame = self.opus_frame(usize::from(*len) % 1400, *fill);
                self.queue_opus(&frame);
                if !queue_only {
                    self.poll_pass();
                }
            }
            Step::StopSpeaking => self.stop_speaking(),
            Step::PollTransmit => {
                self.poll_pass();
            }
            Step::Disconnect => self.disconnect(),
        }
    }

    fn server_text(&mut self, message: &ServerText, seq: Option<u64>) -> String {
        let message = match message {
            ServerText::Hello { quarter_ms } => ServerMessage::Hello(Hello {
                heartbeat_interval: f64::from(*quarter_ms) / 4.0,
                v: Some(8),
            }),
            ServerText::Ready {
                ssrc,
                modes,
                bad_ip,
                port,
            } => {
                let names = [
                    "aead_aes256_gcm_rtpsize",
                    "aead_xchacha20_poly1305_rtpsize",
                    "xsalsa20_poly1305",
                    "bogus_mode",
                ];
                let modes: Vec<String> = names
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| modes & (1 << i) != 0)
                    .map(|(_, name)| (*name).to_owned())
                    .collect();
                let ssrc = if *ssrc == 0 { SSRC } else { *ssrc };
                let port = if *port == 0 {
                    server_udp().port()
                } else {
                    *port
                };
                ServerMessage::Ready(Ready {
                    ssrc,
                    ip: if *bad_ip {
                        "not-an-ip".to_owned()
                    } else {
                        server_udp().ip().to_string()
                    },
                    port,
                    modes,
                })
            }
            ServerText::SessionDescription {
                mode,
                key_byte,
                dave,
            } => {
                let selected = self
                    .selected_mode
                    .unwrap_or(EncryptionMode::AeadAes256GcmRtpSize);
                let name = match mode % 3 {
                    0 => selected.name(),
                    1 => match selected {
                        EncryptionMode::AeadAes256GcmRtpSize => {
                            EncryptionMode::AeadXChaCha20Poly1305RtpSize.name()
                        }
                        _ => EncryptionMode::AeadAes256GcmRtpSize.name(),
                    },
                    _ => "bogus_mode",
                };
                let key = [*key_byte; 32];
                ServerMessage::SessionDescription(SessionDescription {
                    mode: name.to_owned(),
                    secret_key: SecretKey::new(key),
                    dave_protocol_version: *dave,
                })
            }
            ServerText::Resumed => ServerMessage::Resumed,
            ServerText::HeartbeatAck { t } => ServerMessage::HeartbeatAck(HeartbeatAck {
                t: t.or(self.last_nonce).unwrap_or(0),
            }),
            ServerText::HeartbeatRequest => ServerMessage::HeartbeatRequest,
            ServerText::Speaking { user, ssrc, flags } => ServerMessage::Speaking(Speaking {
                speaking: SpeakingFlags::from_bits(*flags),
                delay: 0,
                ssrc: if *ssrc == 0 { OTHER_SSRC } else { *ssrc },
                user_id: (*user != 0).then_some(UserId(*user)),
            }),
            ServerText::ClientsConnect { first, count } => {
                ServerMessage::ClientsConnect(ClientsConnect {
                    user_ids: (0..u64::from(*count % 17))
                        .map(|i| UserId(first.wrapping_add(i)))
                        .collect(),
                })
            }
            ServerText::ClientDisconnect { user } => {
                ServerMessage::ClientDisconnect(ClientDisconnect {
                    user_id: if *user == 0 {
                        OTHER_USER
                    } else {
                        UserId(*user)
                    },
                })
            }
            ServerText::DavePrepareTransition {
                version,
                transition,
            } => ServerMessage::DavePrepareTransition(DavePrepareTransition {
                protocol_version: *version,
                transition_id: *transition,
            }),
            ServerText::DaveExecuteTransition { transition } => {
                ServerMessage::DaveExecuteTransition(DaveExecuteTransition {
                    transition_id: *transition,
                })
            }
            ServerText::DavePrepareEpoch { version, epoch } => {
                ServerMessage::DavePrepareEpoch(DavePrepareEpoch {
                    protocol_version: *version,
                    epoch: *epoch,
                })
            }
            ServerText::Ignored { which } => {
                let ops = [10u8, 12, 14, 15, 16, 17, 18, 19, 20];
                let op = ops[usize::from(*which) % ops.len()];
                let text = match seq {
                    Some(seq) => format!(r#"{{"op":{op},"d":{{}},"seq":{seq}}}"#),
                    None => format!(r#"{{"op":{op},"d":{{}}}}"#),
                };
                return text;
            }
            ServerText::Unknown { op } => ServerMessage::Unknown {
                op: (*op).max(33),
                raw: r#"{"x":[1,2,null]}"#.to_owned(),
            },
        };
        text_of(ServerFrame { seq, message })
    }

    fn server_close(&mut self, code: Option<u16>) {
        if self.ws == Ws::None {
            return;
        }
        let was_closed = self.closed;
        let established = self.established;
        let had_media = self.media.is_some();
        let rejoined = self.rejoined_after_4004;
        self.ws = Ws::None;
        self.feed(Input::WebSocketClosed { code });
        if was_closed {
            return;
        }
        let disposition = close::disposition(code, false);
        let handled: Vec<_> = self
            .outputs
            .iter()
            .filter_map(|o| match o {
                Output::Event(Event::CloseHandled { code, disposition }) => {
                    Some((*code, *disposition))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            handled,
            [(code, disposition)],
            "a server close must be run through the close-code table exactly once"
        );
        let events: Vec<&Event> = self
            .outputs
            .iter()
            .filter_map(|o| match o {
                Output::Event(event) => Some(event),
                _ => None,
            })
            .collect();
        // Out of attempts (or, before the first session, out of time for another).
        let gave_up = events.iter().any(|e| {
            matches!(
                e,
                Event::Closed {
                    error: Error::TooManyReconnects { .. } | Error::JoinFailed { .. }
                }
            )
        });
        let too_many = gave_up;
        let fatal = |reason| {
            events.iter().any(|e| {
                **e == Event::Closed {
                    error: Error::Fatal {
                        code: code.unwrap_or_default(),
                        reason,
                    },
                }
            })
        };
        let ok = match disposition {
            CloseDisposition::Fatal(reason) => fatal(reason),
            // 4004: one rejoin through op 4 (we always have a main gateway here), then fatal.
            CloseDisposition::RejoinOnce(reason) if rejoined => fatal(reason),
            CloseDisposition::RejoinOnce(_) => {
                let rejoin = events.iter().any(|e| {
                    matches!(e, Event::Reconnecting { recovery: Recovery::Reconnect, code: c, .. } if *c == code)
                });
                if rejoin {
                    self.rejoined_after_4004 = true;
                }
                gave_up || rejoin
            }
            // Before the first session a close is retried like after it (row 1).
            CloseDisposition::AwaitMove => events.iter().any(|e| {
                matches!(e, Event::Disconnected { reason: voice_proto::DisconnectReason::Closed { code: c } } if Some(*c) == code)
            }),
            CloseDisposition::Resume | CloseDisposition::Finished if had_media => {
                too_many
                    || events.iter().any(|e| {
                        matches!(e, Event::Reconnecting { recovery: Recovery::Resume, code: c, .. } if *c == code)
                    })
            }
            _ => {
                too_many
                    || events.iter().any(|e| {
                        matches!(e, Event::Reconnecting { recovery: Recovery::Reconnect, code: c, .. } if *c == code)
                    })
            }
        };
        assert!(
            ok,
            "close {code:?} ({disposition:?}, established {established}, media {had_media}) \
             led to {events:?}"
        );
        assert!(
            !events.iter().any(|e| matches!(
                e,
                Event::Closed {
                    error: Error::HandshakeClosed { .. }
                }
            )),
            "a close during the handshake ended the join instead of a retry (row 1)"
        );
    }

    fn discovery_answer(&mut self, kind: u8) {
        let Some(remote) = self.udp else { return };
        let ssrc = self.ready_ssrc.unwrap_or(SSRC);
        let (from, data) = match kind % 5 {
            0 => (
                remote,
                discovery_response(ssrc, client_public().ip(), client_public().port()),
            ),
            1 => (
                remote,
                discovery_response(
                    ssrc,
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7)),
                    9,
                ),
            ),
            2 => {
                let mut data =
                    discovery_response(ssrc, client_public().ip(), client_public().port());
                data[8..14].copy_from_slice(b"999.1.");
                (remote, data)
            }
            3 => (remote, discovery_request(ssrc)),
            _ => (
                stranger(),
                discovery_response(ssrc, client_public().ip(), client_public().port()),
            ),
        };
        self.datagram(from, &data);
    }

    /// Feeds a datagram and checks the accounting: every datagram a session sees is counted once
    /// (received, failed to decrypt, waiting for its sender, or ignored) unless it was the
    /// discovery answer.
    fn datagram(&mut self, from: SocketAddr, data: &[u8]) {
        let before = self.session_stats();
        if let Ok(found) = parse_discovery_response(data) {
            if Some(from) == self.udp {
                self.answered = Some((found.ip, found.port));
            }
        }
        self.feed(Input::Datagram { from, data });
        let selected = self
            .outputs
            .iter()
            .any(|o| matches!(o, Output::SendText(t) if t.starts_with(r#"{"op":1,"#)));
        if let (Some(before), Some(after)) = (before, self.session_stats()) {
            if !self.closed && !selected {
                assert_eq!(
                    datagrams_accounted(after),
                    datagrams_accounted(before) + 1,
                    "a datagram was not accounted for once"
                );
            }
        }
    }

    fn audio(&mut self, packet: &AudioPacket) {
        let Some(remote) = self.udp else { return };
        let (mode, key) = match &self.media {
            Some(media) => (media.mode, media.key),
            None => (EncryptionMode::AeadAes256GcmRtpSize, KEY),
        };
        let key = if packet.wrong_key { [!key[0]; 32] } else { key };
        let ssrc = if packet.ssrc == 0 {
            OTHER_SSRC
        } else {
            packet.ssrc
        };
        let mut b0 = 0x80u8;
        let mut header = Vec::new();
        let mut plain = Vec::new();
        if let Some(words) = packet.extension_words {
            b0 |= 0x10;
            header.extend_from_slice(&[0xBE, 0xDE, 0, words]);
            plain.extend((0..4 * usize::from(words)).map(|i| i as u8));
        }
        if packet.padding.is_some() {
            b0 |= 0x20;
        }
        let opus: Vec<u8> = packet
            .opus
            .iter()
            .copied()
            .take(MAX_OPUS_FRAME_LEN)
            .collect();
        plain.extend_from_slice(&opus);
        if let Some(pad) = packet.padding {
            plain.extend(std::iter::repeat_n(0, usize::from(pad.max(1)) - 1));
            plain.push(pad);
        }
        let mut datagram = vec![b0, 0x78];
        datagram.extend_from_slice(&packet.sequence.to_be_bytes());
        datagram.extend_from_slice(&u32::from(packet.sequence).wrapping_mul(960).to_be_bytes());
        datagram.extend_from_slice(&ssrc.to_be_bytes());
        datagram.extend_from_slice(&header);
        let aad_len = datagram.len();
        datagram.extend_from_slice(&plain);
        datagram.resize(aad_len + plain.len() + mode.overhead(), 0);
        let cipher = TransportCipher::new(mode, &SecretKey::new(key));
        let len = cipher
            .seal(
                &mut datagram,
                aad_len,
                plain.len(),
                u32::from(packet.sequence),
            )
            .expect("sealing a test packet");
        assert_eq!(len, datagram.len());
        if packet.corrupt {
            let tag_at = aad_len + plain.len();
            datagram[tag_at] ^= 1;
        }
        // The oracle: what the engine must make of it.
        let expected = match (&self.media, ReceivedRtp::parse(&datagram)) {
            (Some(media), Ok(header))
                if header.ssrc != media.ssrc && !packet.corrupt && !packet.wrong_key =>
            {
                header.payload(&plain).ok().map(<[u8]>::to_vec)
            }
            _ => None,
        };
        self.received_packet(remote, &datagram, ssrc, packet.sequence, expected);
    }

    /// Feeds a packet from another member whose payload is `expected` (`None`: it must not
    /// decrypt) and checks what became of it: a packet that decrypts is received, waits for its
    /// sender, fails DAVE decryption or is skipped by its sender's buffer (a duplicate, late);
    /// one that must not decrypt is never received. What its buffer releases is checked against
    /// `sealed_frames` when it comes out of `poll_received`.
    fn received_packet(
        &mut self,
        remote: SocketAddr,
        datagram: &[u8],
        ssrc: u32,
        sequence: u16,
        expected: Option<Vec<u8>>,
    ) {
        if let Some(opus) = &expected {
            let plain = self.plain_path(opus);
            self.sealed_frames
                .entry((ssrc, sequence))
                .or_default()
                .push((opus.clone(), plain));
        }
        let before = self.session_stats();
        self.datagram(remote, datagram);
        if self.closed {
            return;
        }
        let (Some(before), Some(after)) = (before, self.session_stats()) else {
            return;
        };
        let received = after.packets_received - before.packets_received;
        match expected {
            Some(opus) if self.state.session().is_some() && self.plain_path(&opus) => {
                assert_eq!(
                    received + after.packets_skipped - before.packets_skipped,
                    1,
                    "a valid packet from {ssrc:#x} was neither received nor skipped"
                );
            }
            Some(_) => {}
            None => assert_eq!(received, 0, "a packet that must be dropped was received"),
        }
    }

    /// One item out of `poll_received`: per SSRC, a spurt starts before its frames and losses
    /// and ends after them, each frame or loss carries the sequence after the previous one, and a
    /// frame carries a payload sealed with its sequence (or one DAVE decrypted).
    fn observe_received(&mut self, received: Received) {
        self.received
            .entry(received.ssrc)
            .or_default()
            .check(&received.item);
        if let Item::Frame(frame) = received.item {
            self.frames_received += 1;
            let sealed = self
                .sealed_frames
                .get(&(received.ssrc, frame.sequence))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let known = sealed.iter().any(|(opus, _)| opus.as_slice() == frame.opus);
            let through_dave = sealed.iter().any(|(_, plain)| !plain);
            assert!(
                known || through_dave,
                "received {:?} for {:#x}/{}, sealed {sealed:?}",
                frame.opus,
                received.ssrc,
                frame.sequence
            );
        }
    }

    /// Whether a received frame certainly passes the DAVE stage untouched: silence, or a frame
    /// without the DAVE marker while DAVE is off (C46, C47). Other frames meet `davey`.
    fn plain_path(&mut self, opus: &[u8]) -> bool {
        let version = self
            .state
            .session()
            .map_or(0, |s| s.dave_active_protocol_version());
        opus == SILENCE_FRAME || (version == 0 && !opus.ends_with(&[0xFA, 0xFA]))
    }

    fn session_stats(&mut self) -> Option<Stats> {
        self.state.session().map(|s| s.stats())
    }

    fn speaking(&mut self, flags: SpeakingFlags) {
        let Some(session) = self.state.session() else {
            return;
        };
        session.speaking(flags);
        self.app_flags = flags;
        self.drain();
        if self.ws == Ws::Open && self.live_on_socket && self.media.is_some() && !self.closed {
            let sent = self.outputs.iter().any(|o| match o {
                Output::SendText(t) => matches!(
                    ClientMessage::decode_text(t),
                    Ok(ClientMessage::Speaking(s)) if s.speaking == flags
                ),
                _ => false,
            });
            assert!(sent, "speaking({flags:?}) on a live websocket sent no op 5");
        }
    }

    /// A frame of `len` bytes of `fill` for `queue_opus`: exactly `F8 FF FE` for length 3 and
    /// fill `F8` (a queued frame that looks like silence), and from 8 bytes on its number in its
    /// last four bytes, so that a frame lost, sent twice or out of order shows.
    fn opus_frame(&mut self, len: usize, fill: u8) -> Vec<u8> {
        self.frames_made = self.frames_made.wrapping_add(1);
        let mut frame = vec![fill; len];
        if len == SILENCE_FRAME.len() && fill == SILENCE_FRAME[0] {
            frame.copy_from_slice(&SILENCE_FRAME);
        }
        if len >= 8 {
            frame[len - 4..].copy_from_slice(&self.frames_made.to_be_bytes());
        }
        frame
    }

    /// `queue_opus`, whose result the model predicts exactly: `Closed` once the connection has
    /// ended, else `BadFrameLength` outside 1..=1275 bytes, else `Full` at capacity, else `Ok`.
    fn queue_opus(&mut self, frame: &[u8]) {
        let closed = self.closed;
        let queued = self.playout.queue.len();
        let capacity = self.playout.capacity;
        let Some(session) = self.state.session() else {
            return;
        };
        let result = session.queue_opus(frame);
        let expected = if closed {
            Err(QueueError::Closed)
        } else if !(1..=MAX_OPUS_FRAME_LEN).contains(&frame.len()) {
            Err(QueueError::BadFrameLength { len: frame.len() })
        } else if queued >= capacity {
            Err(QueueError::Full { capacity })
        } else {
            Ok(())
        };
        assert_eq!(
            result,
            expected,
            "queue_opus of {} bytes with {queued} of {capacity} frames queued",
            frame.len()
        );
        if result.is_ok() {
            self.playout.queue.push_back(frame.to_vec());
        }
        self.drain();
    }

    fn stop_speaking(&mut self) {
        let queued = self.playout.queue.len();
        let Some(session) = self.state.session() else {
            return;
        };
        let dropped = session.stop_speaking();
        assert_eq!(
            dropped, queued,
            "stop_speaking() dropped another number of frames than were queued"
        );
        // The spurt, if one is on, ends with its trailing silence (five frames from the last
        // audio frame, fewer when it had begun).
        self.playout.queue.clear();
        self.drain();
    }

    /// The clock moves to `at` (never back) and the timer input follows.
    fn advance_to(&mut self, at: Instant) {
        self.now = self.now.max(at);
        self.feed(Input::Timer);
    }

    /// A driver's playout wake-up: poll passes until no op 5 stands before the datagram (the
    /// pass that queues op 5 ends with the drain that takes it).
    fn play_due(&mut self) {
        for _ in 0..3 {
            if !self.poll_pass() {
                break;
            }
        }
    }

    /// `poll_transmit` at the current time until it returns nothing, every datagram checked
    /// against the model, then a drain. Returns whether the polls queued op 5 announcing audio
    /// (the datagram it precedes needs another pass). Afterwards nothing the schedule owes at
    /// this time is left unsent.
    fn poll_pass(&mut self) -> bool {
        let now = self.now;
        let was_announced = self.announced;
        let mut handled = 0usize;
        loop {
            let Some(session) = self.state.session() else {
                return false;
            };
            let before = session.stats();
            let mut buf = [0u8; MAX_PACKET_LEN];
            let transmit = session.poll_transmit(now, &mut buf);
            let after = session.stats();
            let dropped = after.frames_dropped - before.frames_dropped;
            match transmit {
                Some(transmit) => {
                    assert_eq!(
                        dropped, 0,
                        "a frame dropped and a datagram sent by one poll"
                    );
                    self.check_datagram(
                        now,
                        transmit.destination,
                        &buf[..transmit.len],
                        before,
                        after,
                    );
                }
                None if dropped > 0 => {
                    // A frame DAVE cannot encrypt at all is dropped, and its slot passes.
                    assert_eq!(dropped, 1, "one poll dropped {dropped} frames");
                    assert_eq!(after.packets_sent, before.packets_sent);
                    self.check_send_allowed(now, true);
                    assert!(
                        self.playout.queue.pop_front().is_some(),
                        "a frame dropped from an empty queue"
                    );
                    self.playout.advance(now);
                }
                None => {
                    assert_eq!(
                        after.packets_sent, before.packets_sent,
                        "a datagram counted but not returned"
                    );
                    break;
                }
            }
            handled += 1;
            assert!(
                handled <= MAX_BURST,
                "poll_transmit at one instant gave more than {MAX_BURST} datagrams"
            );
        }
        self.drain();
        let expected_flags = if self.app_flags.is_empty() {
            SpeakingFlags::MICROPHONE
        } else {
            self.app_flags
        };
        let mut announced = false;
        for output in &self.outputs {
            if let Output::SendText(text) = output {
                if let Ok(ClientMessage::Speaking(speaking)) = ClientMessage::decode_text(text) {
                    if !speaking.speaking.is_empty() {
                        assert_eq!(
                            speaking.speaking, expected_flags,
                            "op 5 before audio with other flags than the application's"
                        );
                        announced = true;
                    }
                }
            }
        }
        if self.closed {
            return false;
        }
        assert!(
            !(announced && was_announced),
            "op 5 announced audio again on a websocket where it had been"
        );
        assert!(
            !self.playout.speaking_zero_due,
            "no op 5 with flags 0 right after the fifth silence frame (C21)"
        );
        if !announced {
            let due = self.expected_next_transmit();
            assert!(
                due.is_none_or(|at| at > now),
                "poll_transmit left a datagram the schedule owes (due {due:?}, polled at {now:?})"
            );
        }
        announced
    }

    /// A datagram (or a dropped frame) may be sent now: not closed, a media session on a live
    /// websocket that op 5 announced audio on, no op 5 with flags 0 owed, its slot has come, and
    /// for queued audio no DAVE keys pending.
    fn check_send_allowed(&mut self, now: Instant, audio: bool) {
        assert!(!self.closed, "a datagram from a closed connection");
        assert!(
            self.media.is_some(),
            "a datagram without a media session (before Session Description)"
        );
        assert!(
            self.ws == Ws::Open && self.live_on_socket,
            "a datagram while the websocket is not live (resuming or reconnecting)"
        );
        assert!(
            self.announced,
            "a datagram before op 5 Speaking was taken on this websocket (C20)"
        );
        assert!(
            !self.playout.speaking_zero_due,
            "a datagram after the fifth silence frame before op 5 with flags 0 (C21)"
        );
        if let Some(slot) = self.playout.slot {
            assert!(
                slot <= now,
                "a datagram before its slot (two for one 20 ms slot): due {slot:?}, polled at \
                 {now:?}"
            );
        }
        if audio {
            let status = self.state.session().map(|s| s.dave_status());
            assert_ne!(
                status,
                Some(DaveStatus::Negotiating),
                "a queued frame went out while DAVE keys are pending (C48)"
            );
        }
    }

    /// One datagram from `poll_transmit`: allowed now, to the server's media address, counted
    /// once, and carrying what the model says comes next: the oldest queued frame (plain, or
    /// DAVE-encrypted while DAVE is active), else a trailing silence frame of the spurt.
    fn check_datagram(
        &mut self,
        now: Instant,
        destination: SocketAddr,
        packet: &[u8],
        before: Stats,
        after: Stats,
    ) {
        let audio = !self.playout.queue.is_empty();
        self.check_send_allowed(now, audio);
        let remote = self.media.as_ref().map(|m| m.remote);
        assert_eq!(
            Some(destination),
            remote,
            "a datagram to another address than Ready's"
        );
        assert_eq!(
            Some(destination),
            self.udp,
            "a datagram to an unbound address"
        );
        assert_eq!(
            after.packets_sent,
            before.packets_sent + 1,
            "a datagram not counted exactly once"
        );
        let encrypted = after.dave_frames_encrypted - before.dave_frames_encrypted;
        let status = self.state.session().map(|s| s.dave_status());
        match self.playout.queue.pop_front() {
            Some(frame) => {
                let dave = status == Some(DaveStatus::Active) && frame != SILENCE_FRAME;
                assert_eq!(
                    encrypted,
                    u64::from(dave),
                    "DAVE frames counted for one frame in status {status:?}"
                );
                let payload = self.check_packet(packet, (!dave).then_some(&frame[..]));
                if dave {
                    // C43: ciphertext (as long as the frame) ‖ tag ‖ nonce ‖ size ‖ FA FA.
                    let supplemental = usize::from(payload[payload.len() - 3]);
                    assert!(
                        (12..=16).contains(&supplemental)
                            && payload.len() == frame.len() + supplemental,
                        "a DAVE frame of {} bytes (supplemental {supplemental}) for a {}-byte \
                         frame",
                        payload.len(),
                        frame.len()
                    );
                }
                self.playout.talking = true;
                self.playout.silence_left = SILENCE_FRAME_COUNT;
                self.last_packet = Some(packet.to_vec());
            }
            None => {
                assert!(
                    self.playout.talking && self.playout.silence_left > 0,
                    "a silence frame outside the trailing silence of a spurt (C21)"
                );
                assert_eq!(encrypted, 0, "a silence frame DAVE-encrypted (C46)");
                self.check_packet(packet, Some(&SILENCE_FRAME));
                self.playout.silence_left -= 1;
                if self.playout.silence_left == 0 {
                    self.playout.talking = false;
                    self.playout.speaking_zero_due = true;
                }
            }
        }
        self.playout.advance(now);
        self.playout.datagrams += 1;
    }

    /// Why the model says queued audio waits now: no media session (reconnecting), a websocket
    /// not live (resuming, or a reconnect's backoff), DAVE keys pending for a queued frame.
    fn expected_hold(&mut self) -> Option<HoldReason> {
        if self.closed || !self.playout.has_work() {
            return None;
        }
        if self.media.is_none() {
            return Some(HoldReason::Reconnecting);
        }
        if !(self.live_on_socket && self.ws == Ws::Open) {
            let recovery = self.pending_recovery.unwrap_or(self.socket_kind);
            return Some(match recovery {
                Recovery::Resume => HoldReason::Resuming,
                Recovery::Reconnect => HoldReason::Reconnecting,
            });
        }
        let negotiating = self
            .state
            .session()
            .is_some_and(|s| s.dave_status() == DaveStatus::Negotiating);
        (negotiating && !self.playout.queue.is_empty()).then_some(HoldReason::DaveKeysPending)
    }

    /// When the model says `poll_transmit` has the next datagram: `None` while idle or held,
    /// else its slot (now, when the schedule is paused and its slot has passed).
    fn expected_next_transmit(&mut self) -> Option<Instant> {
        if self.closed || !self.playout.has_work() || self.expected_hold().is_some() {
            return None;
        }
        let slot = self.playout.slot.unwrap_or(self.now);
        Some(if self.playout.running {
            slot
        } else {
            slot.max(self.now)
        })
    }

    fn disconnect(&mut self) {
        let was_closed = self.closed;
        let Some(session) = self.state.session() else {
            return;
        };
        session.disconnect();
        self.drain();
        assert!(self.closed, "disconnect() did not end the connection");
        if !was_closed {
            assert!(
                self.outputs.iter().any(|o| matches!(
                    o,
                    Output::MainGateway(VoiceStateUpdate {
                        channel_id: None,
                        ..
                    })
                )),
                "disconnect() did not leave the channel on the main gateway"
            );
            assert_eq!(self.state.error(), Some(&Error::ClosedByApplication));
        }
    }

    /// One of our audio packets: well-formed, opens under the server's key, counters step by one.
    /// Returns the RTP payload (the frame, or its DAVE frame when `frame` is `None`).
    fn check_packet(&mut self, packet: &[u8], frame: Option<&[u8]>) -> Vec<u8> {
        let media = self
            .media
            .as_mut()
            .expect("a packet implies a media session");
        if let Some(frame) = frame {
            assert_eq!(
                packet.len(),
                RTP_HEADER_LEN + frame.len() + media.mode.overhead()
            );
        }
        assert_eq!(
            &packet[..2],
            &[0x80, 0x78],
            "RTP header must be 80 78 (C18)"
        );
        let header = ReceivedRtp::parse(packet).expect("our packet parses as RTP");
        assert_eq!(header.ssrc, media.ssrc, "audio with the wrong SSRC");
        let mut copy = packet.to_vec();
        let cipher = TransportCipher::new(media.mode, &SecretKey::new(media.key));
        let range = cipher
            .open(&mut copy, header.aad_len)
            .expect("our packet opens with the key the server gave");
        let payload = copy[range].to_vec();
        match frame {
            Some(frame) => assert_eq!(payload, frame, "the packet does not carry the frame"),
            None => assert!(
                payload.ends_with(&[0xFA, 0xFA]),
                "a DAVE frame without its marker"
            ),
        }
        let nonce_bytes: [u8; 4] = packet[packet.len() - 4..].try_into().expect("4 bytes");
        let now = (
            header.sequence,
            header.timestamp,
            u32::from_be_bytes(nonce_bytes),
        );
        if let Some((sequence, timestamp, nonce)) = media.last {
            assert_eq!(
                now,
                (
                    sequence.wrapping_add(1),
                    timestamp.wrapping_add(960),
                    nonce.wrapping_add(1)
                ),
                "sequence, timestamp and nonce must each move forward by one step (C19, C25)"
            );
        }
        media.last = Some(now);
        payload
    }

    /// Drains per the drain rule and checks every output.
    fn drain(&mut self) {
        let was_closed = self.closed;
        let mut outputs = Vec::new();
        loop {
            let output = self.state.poll_output();
            let last = matches!(output, Output::WakeAt(_) | Output::Idle);
            outputs.push(output);
            if last {
                break;
            }
            assert!(
                outputs.len() <= MAX_DRAIN,
                "poll_output never reached WakeAt/Idle"
            );
        }
        if let Some(log) = self.log.as_mut() {
            log.extend(outputs.iter().cloned());
        }
        for output in &outputs {
            if was_closed {
                assert_eq!(*output, Output::Idle, "output from a closed connection");
            }
            self.observe(output);
        }
        self.outputs = outputs;
        // Receive is on: its items are part of the drain rule.
        let mut received = Vec::new();
        if let Some(session) = self.state.session() {
            while let Some(item) = session.poll_received() {
                received.push(item);
                assert!(received.len() <= MAX_DRAIN, "poll_received never ends");
            }
        }
        for item in received {
            self.observe_received(item);
        }
        assert_eq!(
            self.leaves,
            u32::from(self.closed),
            "the op 4 leave must come with the end of the connection, once (row 2)"
        );
        self.check_state();
    }

    fn observe(&mut self, output: &Output) {
        match output {
            Output::MainGateway(update) => {
                assert_eq!(update.guild_id, GUILD);
                if update.channel_id.is_some() {
                    assert_eq!(update.channel_id, Some(CHANNEL));
                    assert_eq!(self.leaves, 0, "op 4 joins again after the leave");
                    self.check_retry_waited();
                } else {
                    // Row 2: every end of a connection joined through the main gateway leaves,
                    // exactly once.
                    self.leaves += 1;
                    assert_eq!(self.leaves, 1, "a second op 4 leave");
                }
                self.end_media();
            }
            Output::OpenWebSocket { url } => {
                // Row 8: the endpoint comes from VOICE_SERVER_UPDATE (no override): wss:// only.
                assert!(
                    url.starts_with("wss://") && url.contains("v=8"),
                    "bad voice gateway URL {url:?}"
                );
                self.check_retry_waited();
                self.ws = Ws::Opening;
                self.socket_kind = self.pending_recovery.take().unwrap_or(Recovery::Reconnect);
                if self.socket_kind == Recovery::Reconnect {
                    self.end_media();
                    self.last_seq = None;
                }
                self.handshakes_on_socket = 0;
                self.live_on_socket = false;
                self.announced = false;
                self.last_nonce = None;
            }
            Output::SendText(text) => {
                assert_eq!(
                    self.ws,
                    Ws::Open,
                    "a text frame for a websocket that is not open"
                );
                let message = ClientMessage::decode_text(text)
                    .unwrap_or_else(|e| panic!("our own frame does not decode: {e}"));
                self.observe_client_message(message);
            }
            Output::SendBinary(bytes) => {
                assert_eq!(
                    self.ws,
                    Ws::Open,
                    "a binary frame for a websocket that is not open"
                );
                let message = ClientMessage::decode_binary(bytes)
                    .unwrap_or_else(|e| panic!("our own binary frame does not decode: {e}"));
                assert!(
                    matches!(
                        message,
                        ClientMessage::DaveMlsKeyPackage(_)
                            | ClientMessage::DaveMlsCommitWelcome(_)
                    ),
                    "unexpected binary client message {message:?}"
                );
                assert!(
                    self.dave_offered(),
                    "a DAVE MLS message without DAVE offered"
                );
            }
            Output::CloseWebSocket { code } => {
                assert!(
                    matches!(code, 1000 | 4000),
                    "we close with 1000 or 4000, not {code}"
                );
                self.ws = Ws::None;
                self.last_nonce = None;
            }
            Output::BindUdp { remote } => {
                let (ready_remote, ssrc, modes) = self
                    .pending_ready
                    .take()
                    .expect("UDP bound without a Ready");
                assert_eq!(
                    *remote, ready_remote,
                    "UDP bound to another address than Ready's"
                );
                self.udp = Some(*remote);
                self.ready_ssrc = Some(ssrc);
                self.offered_modes = modes;
            }
            Output::Transmit { to, data } => {
                assert_eq!(
                    Some(*to),
                    self.udp,
                    "datagram to an address that is not bound"
                );
                match data.len() {
                    74 => assert_eq!(
                        parse_discovery_request(data).ok(),
                        self.ready_ssrc,
                        "discovery request for another SSRC (C13)"
                    ),
                    8 => assert!(self.media.is_some(), "keepalive without a media session"),
                    n => panic!("unexpected {n}-byte datagram"),
                }
            }
            Output::Event(event) => self.observe_event(event),
            Output::WakeAt(at) => {
                assert!(!self.closed, "WakeAt from a closed connection");
                // The control deadlines never lie in the past; the playout's slot may (a driver
                // that has not polled yet): WakeAt is the earlier of the two.
                let timer = self.state.next_timer();
                let transmit = self.state.next_transmit();
                assert!(
                    timer.is_none_or(|at| at >= self.now),
                    "a control deadline in the past: a due timer was not run"
                );
                assert_eq!(
                    Some(*at),
                    [timer, transmit].into_iter().flatten().min(),
                    "WakeAt is not the earlier of next_timer() and next_transmit()"
                );
                self.last_wake = Some(*at);
            }
            Output::Idle => {
                assert!(
                    self.closed,
                    "Idle (no timer at all) while the connection is alive"
                );
                self.last_wake = None;
            }
        }
    }

    fn observe_client_message(&mut self, message: ClientMessage) {
        match message {
            ClientMessage::Identify(Identify {
                server_id,
                user_id,
                session_id,
                token,
                max_dave_protocol_version,
            }) => {
                assert_eq!(
                    self.socket_kind,
                    Recovery::Reconnect,
                    "Identify on a resume socket"
                );
                assert_eq!(
                    self.handshakes_on_socket, 0,
                    "a second Identify/Resume (C5)"
                );
                self.handshakes_on_socket += 1;
                assert_eq!((server_id, user_id), (GUILD, USER));
                assert_eq!(
                    session_id, self.session_id,
                    "Identify with a stale session id"
                );
                assert_eq!(token.expose(), self.token, "Identify with a stale token");
                assert_eq!(
                    max_dave_protocol_version,
                    self.config.offered_dave_protocol_version()
                );
            }
            ClientMessage::Resume(Resume {
                server_id,
                session_id,
                token,
                seq_ack,
            }) => {
                assert_eq!(
                    self.socket_kind,
                    Recovery::Resume,
                    "Resume on a fresh socket"
                );
                assert_eq!(
                    self.handshakes_on_socket, 0,
                    "a second Identify/Resume (C5)"
                );
                self.handshakes_on_socket += 1;
                assert_eq!(server_id, GUILD);
                assert_eq!(
                    session_id, self.session_id,
                    "Resume with a stale session id"
                );
                assert_eq!(token.expose(), self.token, "Resume with a stale token");
                assert_eq!(
                    seq_ack,
                    self.seq_ack(),
                    "Resume seq_ack is not the last seq (C9)"
                );
            }
            ClientMessage::Heartbeat(Heartbeat { t, seq_ack }) => {
                assert!(t <= MAX_NONCE, "heartbeat nonce above 2^53-1 (C7)");
                assert_eq!(
                    seq_ack,
                    self.seq_ack(),
                    "heartbeat seq_ack is not the last seq (C8)"
                );
                self.last_nonce = Some(t);
            }
            ClientMessage::SelectProtocol(SelectProtocol { protocol, data }) => {
                assert_eq!(protocol, "udp");
                let (ip, port) = self
                    .answered
                    .expect("Select Protocol before a discovery answer");
                assert_eq!(
                    (data.address.as_str(), data.port),
                    (ip.to_string().as_str(), port)
                );
                assert!(
                    self.offered_modes.contains(&data.mode),
                    "selected a mode Ready did not offer (C16)"
                );
                assert!(
                    EncryptionMode::from_name(&data.mode)
                        .is_some_and(|mode| { self.config.modes.modes().contains(&mode) }),
                    "selected a mode we do not prefer"
                );
                self.selected_mode = EncryptionMode::from_name(&data.mode);
            }
            ClientMessage::Speaking(Speaking {
                speaking,
                delay,
                ssrc,
                user_id,
            }) => {
                let media = self.media.as_ref().expect("op 5 without a media session");
                assert_eq!(ssrc, media.ssrc, "op 5 with the wrong SSRC");
                assert_eq!((delay, user_id), (0, None));
                self.announced = !speaking.is_empty();
                if speaking.is_empty() {
                    self.playout.speaking_zero_due = false;
                }
            }
            ClientMessage::DaveTransitionReady(_)
            | ClientMessage::DaveMlsInvalidCommitWelcome(_) => {
                assert!(self.dave_offered(), "a DAVE message without DAVE offered");
            }
            other => panic!("unexpected client message {other:?}"),
        }
    }

    fn dave_offered(&self) -> bool {
        self.config.offered_dave_protocol_version() > 0
    }

    fn seq_ack(&self) -> i64 {
        self.last_seq
            .and_then(|s| i64::try_from(s).ok())
            .unwrap_or(-1)
    }

    fn observe_event(&mut self, event: &Event) {
        match event {
            Event::Connected {
                ssrc,
                mode,
                dave_protocol_version,
            } => {
                assert_eq!(Some(*ssrc), self.ready_ssrc, "connected with another SSRC");
                assert_eq!(Some(*mode), self.selected_mode, "connected in another mode");
                assert!(*dave_protocol_version <= self.config.offered_dave_protocol_version());
                let (name, key) = self
                    .pending_key
                    .take()
                    .expect("connected without Session Description");
                assert_eq!(name, mode.name(), "connected despite a mode mismatch");
                self.media = Some(MediaModel {
                    ssrc: *ssrc,
                    mode: *mode,
                    key,
                    remote: self.udp.expect("connected without UDP"),
                    last: None,
                });
                self.established = true;
                self.live_on_socket = true;
                self.announced = false;
                self.stable_at = Some(self.now + self.config.reconnect_reset_after);
                self.rejoined_after_4004 = false;
            }
            Event::Resumed => {
                self.stable_at = Some(self.now + self.config.reconnect_reset_after);
                assert_eq!(
                    self.socket_kind,
                    Recovery::Resume,
                    "Resumed on a fresh socket"
                );
                assert!(self.media.is_some(), "resumed without the media session");
                self.live_on_socket = true;
                self.announced = false;
            }
            Event::Reconnecting {
                recovery, attempt, ..
            } => {
                assert!(
                    (1..=self.config.max_reconnect_attempts).contains(attempt),
                    "reconnect attempt {attempt} out of range"
                );
                // Row 3: the counter starts again only after a session stayed up
                // `reconnect_reset_after`; otherwise every failure counts.
                if self.stable_at.is_some_and(|at| self.now >= at) {
                    self.attempts = 0;
                }
                self.stable_at = None;
                self.attempts += 1;
                assert_eq!(
                    *attempt, self.attempts,
                    "the attempt counter reset before a session stayed up {:?}, or skipped one",
                    self.config.reconnect_reset_after
                );
                // No retry without a backoff: the attempt starts no sooner than the lower bound
                // of its jittered delay, which is never zero.
                let not_before = *self.config.backoff_range(*attempt).start();
                assert!(!not_before.is_zero(), "a retry without backoff");
                self.retry_not_before = Some(self.now + not_before);
                if *recovery == Recovery::Reconnect {
                    // The session is gone: its media (and who sent on which SSRC) with it.
                    self.end_media();
                }
                if *recovery == Recovery::Resume {
                    assert!(
                        self.media.is_some(),
                        "resume without a media session to resume"
                    );
                }
                self.pending_recovery = Some(*recovery);
                self.ws = Ws::None;
                self.live_on_socket = false;
                self.last_nonce = None;
            }
            Event::Disconnected { .. } => {
                self.end_media();
                self.stable_at = None;
                self.retry_not_before = None;
                self.ws = Ws::None;
                self.pending_recovery = None;
                self.live_on_socket = false;
                self.last_nonce = None;
            }
            Event::Closed { error } => {
                match error {
                    Error::TooManyReconnects { attempts, .. } => {
                        assert!(self.established, "TooManyReconnects before any session");
                        assert_eq!(
                            (*attempts, self.attempts),
                            (
                                self.config.max_reconnect_attempts,
                                self.config.max_reconnect_attempts
                            ),
                            "gave up before the attempt limit"
                        );
                    }
                    Error::JoinFailed { elapsed, .. } => {
                        assert!(!self.established, "JoinFailed after a session");
                        assert_eq!(*elapsed, self.now - self.start, "JoinFailed's elapsed time");
                    }
                    Error::HandshakeClosed { .. } => {
                        panic!("a close during the handshake ended the connection (row 1)")
                    }
                    _ => {}
                }
                self.stable_at = None;
                self.retry_not_before = None;
                self.closed = true;
                self.end_media();
                self.playout.close();
                self.ws = Ws::None;
                self.live_on_socket = false;
            }
            Event::CloseHandled { code, disposition } => {
                assert_eq!(
                    *disposition,
                    close::disposition(*code, false),
                    "close table bypassed"
                );
            }
            Event::UnknownOpcode { raw, .. } => {
                assert!(
                    raw.len() <= limits::UNKNOWN_OPCODE_PAYLOAD + 32,
                    "an unknown opcode's payload of {} bytes in an event (row 6)",
                    raw.len()
                );
            }
            Event::PlayoutHeld { reason } => {
                assert_ne!(
                    self.playout.reported,
                    Some(*reason),
                    "PlayoutHeld again without a new reason"
                );
                self.playout.reported = Some(*reason);
                if *reason == HoldReason::DaveKeysPending {
                    self.playout.dave_holds += 1;
                }
            }
            Event::PlayoutResumed { reason } => {
                assert_eq!(
                    self.playout.reported,
                    Some(*reason),
                    "PlayoutResumed for another hold than the one reported"
                );
                self.playout.reported = None;
            }
            _ => {}
        }
    }

    /// The media session ends (fresh reconnect, move, end): a spurt it cut is over, its trailing
    /// silence never sent; queued frames wait for the next session.
    fn end_media(&mut self) {
        self.media = None;
        // Row 4: who sent on which SSRC belongs to the media session.
        self.ssrc_users.clear();
        self.playout.end_spurt();
    }

    /// An attempt announced by `Reconnecting` starts (a websocket opens, or op 4 rejoins): not
    /// before its backoff.
    fn check_retry_waited(&mut self) {
        if let Some(not_before) = self.retry_not_before.take() {
            assert!(
                self.now >= not_before,
                "a retry {:?} before its backoff ended (row 3)",
                not_before - self.now
            );
        }
    }

    /// The application goes away at the end of a script (say a dropped `join_channel` future):
    /// in whatever state, `disconnect()` ends the connection, and the connection has left the
    /// channel exactly once (a no-op when it had ended already).
    pub fn finish(&mut self) {
        let was_closed = self.closed;
        self.state.disconnect();
        self.drain();
        assert!(self.closed, "disconnect() did not end the connection");
        assert_eq!(self.leaves, 1, "the connection did not leave exactly once");
        if !was_closed {
            assert_eq!(self.state.error(), Some(&Error::ClosedByApplication));
        }
    }

    fn check_state(&mut self) {
        assert_eq!(
            self.state.error().is_some(),
            self.closed,
            "error() disagrees with the Closed event"
        );
        // Row 1: a join is retried only until its deadline (timers run before every input).
        assert!(
            self.closed || self.established || self.now < self.start + self.config.join_timeout,
            "a join still going {:?} after it started (deadline {:?})",
            self.now - self.start,
            self.config.join_timeout
        );
        let media = self.media.clone();
        let closed = self.closed;
        match self.state.session() {
            Some(session) => {
                assert_eq!(session.is_closed(), closed);
                assert_eq!(
                    session.has_media(),
                    media.is_some(),
                    "has_media() disagrees with the events (media {media:?})"
                );
                let keyed = session.dave_status() != DaveStatus::Negotiating;
                assert_eq!(session.is_connected(), media.is_some() && keyed);
                if let Some(media) = &media {
                    assert_eq!(session.ssrc(), Some(media.ssrc));
                    assert_eq!(session.mode(), Some(media.mode));
                    assert_eq!(session.remote(), Some(media.remote));
                }
                let stats = session.stats();
                let old = self.stats;
                assert!(
                    stats.packets_sent >= old.packets_sent
                        && stats.packets_received >= old.packets_received
                        && stats.packets_skipped >= old.packets_skipped
                        && stats.decrypt_failures >= old.decrypt_failures
                        && stats.datagrams_ignored >= old.datagrams_ignored
                        && stats.frames_ignored >= old.frames_ignored
                        && stats.resumes >= old.resumes
                        && stats.reconnects >= old.reconnects
                        && stats.dave_frames_encrypted >= old.dave_frames_encrypted
                        && stats.dave_frames_decrypted >= old.dave_frames_decrypted
                        && stats.dave_decrypt_failures >= old.dave_decrypt_failures
                        && stats.frames_dropped >= old.frames_dropped,
                    "a counter went back: {old:?} -> {stats:?}"
                );
                // Row 6: nothing from the network grows without bound; row 4: the SSRC map is
                // the media session's (the model's map is emptied with it).
                assert!(stats.ssrcs_mapped <= limits::SSRC_USERS as u64);
                assert!(stats.dave_recognised_users <= limits::DAVE_RECOGNISED_USERS as u64);
                assert!(stats.dave_frames_waiting <= limits::HELD_FRAMES as u64);
                if let Some(receive) = session.receive_stats() {
                    assert!(receive.streams <= limits::RECEIVE_STREAMS);
                    assert!(
                        receive.buffers.frames >= self.frames_received,
                        "more frames received than the buffers delivered"
                    );
                }
                assert_eq!(
                    stats.ssrcs_mapped,
                    self.ssrc_users.len() as u64,
                    "the SSRC map outlived its media session, or lost a mapping"
                );
                // A frame waiting for its sender leaves the gauge only into another total.
                assert!(
                    datagrams_accounted(stats) >= datagrams_accounted(old),
                    "a datagram was forgotten: {old:?} -> {stats:?}"
                );
                self.stats = stats;
                let playout = PlayoutView {
                    queued: session.queued_frames(),
                    capacity: session.queue_capacity(),
                    idle: session.playout_idle(),
                    hold: session.playout_hold(),
                    next_transmit: session.next_transmit(),
                };
                self.check_playout(&playout);
            }
            None => assert!(media.is_none(), "a media session before the Session state"),
        }
    }

    /// The playout as the session reports it agrees with the model: the queue (length and
    /// gauge), idle, the hold (and the events that reported it), and when the next datagram is
    /// due. A hold or an idle stream stops the schedule: the next datagram starts a new one.
    fn check_playout(&mut self, seen: &PlayoutView) {
        let queued = self.playout.queue.len();
        assert_eq!(
            seen.queued, queued,
            "queued_frames() disagrees with the model"
        );
        assert_eq!(
            self.stats.frames_queued, queued as u64,
            "the frames_queued gauge"
        );
        assert_eq!(seen.capacity, self.playout.capacity, "queue_capacity()");
        assert_eq!(
            seen.idle,
            self.closed || !self.playout.has_work(),
            "playout_idle() with {queued} frames queued, talking {}",
            self.playout.talking
        );
        let hold = self.expected_hold();
        assert_eq!(
            seen.hold, hold,
            "playout_hold() is not what the model expects"
        );
        assert_eq!(
            self.playout.reported, hold,
            "PlayoutHeld/PlayoutResumed did not report the change of playout_hold()"
        );
        if hold.is_some() || !self.playout.has_work() || self.closed {
            // The clock pauses while held and at the end of a spurt.
            self.playout.running = false;
        }
        let now = self.now;
        match (seen.next_transmit, self.expected_next_transmit()) {
            (None, None) => {}
            (Some(at), Some(due)) if due > now => assert_eq!(
                at, due,
                "next_transmit() is off the 20 ms schedule the model keeps"
            ),
            (Some(at), Some(_)) => assert!(
                at <= now,
                "next_transmit() {at:?} in the future for a datagram due now ({now:?})"
            ),
            (seen, expected) => panic!(
                "next_transmit() {seen:?}, the model expects {expected:?} (hold {hold:?}, \
                 {queued} queued, talking {})",
                self.playout.talking
            ),
        }
    }
}

/// Every datagram a session has seen, by what became of it (a frame waiting for the op 5 that
/// names its sender is counted as waiting until it is delivered or given up).
fn datagrams_accounted(stats: Stats) -> u64 {
    stats.packets_received
        + stats.packets_skipped
        + stats.decrypt_failures
        + stats.datagrams_ignored
        + stats.dave_decrypt_failures
        + stats.dave_frames_waiting
}

// ---- states for the frame and datagram targets ----------------------------------------------

fn text_step(message: ServerText) -> Step {
    Step::Text {
        message,
        numbered: true,
    }
}

/// The scripted handshake: both dispatches, open, Hello, Ready, discovery, Session Description.
pub fn handshake_steps(mode_bits: u8) -> Vec<Step> {
    vec![
        Step::StateUpdate(StateUpdate::Joined(1)),
        Step::ServerUpdate(ServerUpdate::Endpoint(1)),
        Step::Opened,
        Step::Text {
            message: ServerText::Hello { quarter_ms: 4000 },
            numbered: false,
        },
        text_step(ServerText::Ready {
            ssrc: 0,
            modes: mode_bits,
            bad_ip: false,
            port: 0,
        }),
        Step::DiscoveryAnswer(0),
        text_step(ServerText::SessionDescription {
            mode: 0,
            key_byte: KEY[0],
            dave: 0,
        }),
    ]
}

/// Scripts that leave a connection in each state a frame or datagram can meet: waiting for the
/// dispatches, websocket opening, open, after Hello, discovering, selecting the protocol,
/// connected (AES and XChaCha), resuming, backing off, waiting for a move, closed, connected
/// with audio playing and queued, and connected with DAVE negotiated and the MLS external sender
/// set.
pub fn state_scripts() -> Vec<(ScriptConfig, Vec<Step>)> {
    let plain = ScriptConfig {
        rtp_seed: 0,
        flags: 0,
    };
    let dave = ScriptConfig {
        rtp_seed: 0,
        flags: 1,
    };
    let mut dave_handshake = handshake_steps(0b0001);
    if let Some(Step::Text {
        message: ServerText::SessionDescription { dave: version, .. },
        ..
    }) = dave_handshake.last_mut()
    {
        *version = 1;
    }
    let mut scripts: Vec<(ScriptConfig, Vec<Step>)> = plain_state_scripts()
        .into_iter()
        .map(|steps| (plain, steps))
        .collect();
    // DAVE negotiated (version 1) with the gateway's external sender set: MLS messages reach
    // `davey`'s group logic, and the other member's SSRC is mapped to a user so their frames reach
    // DAVE decryption. (One such state only: creating a DAVE session costs milliseconds.)
    dave_handshake.push(Step::Text {
        message: ServerText::Speaking {
            user: OTHER_USER.0,
            ssrc: 0,
            flags: 1,
        },
        numbered: true,
    });
    dave_handshake.push(Step::Binary(external_sender()));
    scripts.push((dave, dave_handshake));
    scripts
}

/// A well-formed op 25 frame: `ExternalSender { signature_key<V> (65-byte P-256 point),
/// Credential { credential_type = 1 (basic), identity<V> (8 bytes) } }` after `[seq][25]`.
pub fn external_sender() -> Vec<u8> {
    let mut frame = vec![0, 9, 25, 0x40, 65, 0x04];
    frame.extend_from_slice(&[0x11; 64]);
    frame.extend_from_slice(&[0x00, 0x01, 0x08, 0, 0, 0, 0, 0, 0, 0, 1]);
    frame
}

fn plain_state_scripts() -> Vec<Vec<Step>> {
    let handshake = handshake_steps(0b0111);
    let prefix = |n: usize| handshake[..n].to_vec();
    let with = |mut base: Vec<Step>, more: &[Step]| {
        base.extend_from_slice(more);
        base
    };
    vec![
        Vec::new(),
        prefix(2),
        prefix(3),
        prefix(4),
        prefix(5),
        prefix(6),
        handshake.clone(),
        handshake_steps(0b0010),
        // Resuming (the backoff waited out), and backing off before the next attempt.
        with(
            handshake.clone(),
            &[
                Step::ServerClose(Some(4015)),
                Step::AdvanceToWake,
                Step::Opened,
            ],
        ),
        with(
            handshake.clone(),
            &[
                Step::ServerClose(Some(4015)),
                Step::AdvanceToWake,
                Step::Opened,
                Step::ServerClose(Some(4015)),
            ],
        ),
        with(handshake.clone(), &[Step::ServerClose(Some(4014))]),
        with(handshake.clone(), &[Step::Disconnect]),
        // Audio playing: the first frame out, two more queued.
        with(handshake, &{
            let frame = |fill| Step::QueueOpus {
                len: 20,
                fill,
                queue_only: true,
            };
            [
                frame(1),
                frame(2),
                frame(3),
                Step::PollTransmit,
                Step::PollTransmit,
            ]
        }),
    ]
}

/// Connections in every state of [`state_scripts`]; the DAVE-negotiated ones only `with_dave`
/// (creating a DAVE session costs milliseconds, so inputs that cannot reach the DAVE stage skip
/// them).
fn drivers(with_dave: bool) -> Vec<Driver> {
    state_scripts()
        .iter()
        .filter(|(config, _)| with_dave || config.flags & 1 == 0)
        .map(|(config, script)| {
            let mut driver = Driver::join(config.config());
            driver.run(script);
            driver
        })
        .collect()
}

// ---- the targets ----------------------------------------------------------------------------

/// Any bytes (as UTF-8, lossily) as a voice gateway text frame: decoded by both directions'
/// decoders, the dispatch parsers and the URL builder, then fed to a connection in every state,
/// after which time runs on. Nothing may panic and every invariant of [`Driver`] must hold.
pub fn gateway_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_text_decoders(&text);
    let with_dave = ServerFrame::decode_text(&text).is_ok_and(|frame| {
        matches!(
            frame.message,
            ServerMessage::DavePrepareTransition(_)
                | ServerMessage::DaveExecuteTransition(_)
                | ServerMessage::DavePrepareEpoch(_)
                | ServerMessage::ClientsConnect(_)
                | ServerMessage::ClientDisconnect(_)
        )
    });
    for mut driver in drivers(with_dave) {
        driver.feed_raw(Input::Text(&text));
        driver.run_timers(3);
    }
}

/// Any bytes as a binary websocket frame (`[seq u16][op u8][payload]` from the server,
/// `[op u8][payload]` from the client), decoded and fed to a connection in every state.
pub fn gateway_binary(data: &[u8]) {
    check_binary_decoders(data);
    let with_dave = ServerFrame::decode_binary(data).is_ok_and(|frame| frame.message.is_binary());
    for mut driver in drivers(with_dave) {
        driver.feed_raw(Input::Binary(data));
        driver.run_timers(3);
    }
}

/// Any bytes as a UDP datagram: parsed as a discovery answer and request, classified, parsed as
/// RTP, opened by every transport mode; fed to connections in every state from the server and from
/// a stranger; and sealed with the session key (the bytes as header + plaintext) so the decrypt
/// path runs to the end, where the received Opus must be exactly what the header says.
pub fn udp_datagram(data: &[u8]) {
    check_datagram_parsers(data);
    // Only frames that end with the DAVE marker meet `davey` (C47).
    let with_dave = ReceivedRtp::parse(data)
        .is_ok_and(|header| data[header.aad_len..].ends_with(&[0xFA, 0xFA]));
    for mut driver in drivers(with_dave) {
        if let Some(remote) = driver.udp {
            driver.datagram(remote, data);
            driver.datagram(stranger(), data);
            driver.sealed(data);
            if with_dave && data.len() >= RTP_HEADER_LEN {
                // As the member op 5 mapped to a user: the frame goes to DAVE decryption.
                let mut mapped = data.to_vec();
                mapped[8..12].copy_from_slice(&OTHER_SSRC.to_be_bytes());
                driver.sealed(&mapped);
            }
            driver.run_timers(1);
        }
    }
}

impl Driver {
    /// Seals `data[aad_len..]` under the live key (when there is one) and feeds it.
    fn sealed(&mut self, data: &[u8]) {
        let (Some(media), Some(remote)) = (self.media.clone(), self.udp) else {
            return;
        };
        let Ok(header) = ReceivedRtp::parse(data) else {
            return;
        };
        if data.len() > MAX_PACKET_LEN * 2 {
            return;
        }
        let plain = &data[header.aad_len..];
        let mut packet = data.to_vec();
        packet.resize(data.len() + media.mode.overhead(), 0);
        let cipher = TransportCipher::new(media.mode, &SecretKey::new(media.key));
        cipher
            .seal(&mut packet, header.aad_len, plain.len(), 9)
            .expect("sealing a header + plaintext");
        let expected = (classify(&packet) == PacketKind::Rtp && header.ssrc != media.ssrc)
            .then(|| header.payload(plain).ok().map(<[u8]>::to_vec))
            .flatten();
        self.received_packet(remote, &packet, header.ssrc, header.sequence, expected);
    }
}

/// The [`session`] target: runs the script from `AwaitingServerUpdate`, checking every step.
pub fn session(input: SessionScript) {
    let mut driver = Driver::join(input.config.config());
    driver.run(&input.steps);
    driver.run_timers(2);
    driver.finish();
}

/// [`session`] over raw bytes, as libFuzzer and the corpus replay call it.
pub fn session_bytes(data: &[u8]) {
    let mut u = Unstructured::new(data);
    if let Ok(script) = SessionScript::arbitrary(&mut u) {
        session(script);
    }
}

/// decode -> encode -> decode is stable: for the bytes as a server and a client text frame, as
/// server and client binary frames, as both dispatches, and for messages of every opcode generated
/// from the bytes.
pub fn payload_roundtrip(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    roundtrip_text(&text);
    roundtrip_binary(data);
    roundtrip_dispatches(&text);
    let mut u = Unstructured::new(data);
    for _ in 0..4 {
        if u.is_empty() {
            break;
        }
        if let Ok(message) = arb_server_message(&mut u) {
            roundtrip_server_frame(message);
        }
        if let Ok(message) = arb_client_message(&mut u) {
            roundtrip_client_message(&message);
        }
    }
}

// ---- the DAVE script (`dave_binary`) ----------------------------------------------------------

/// Longest DAVE script the [`dave_binary`] target runs (each input builds a DAVE session and may
/// re-initialise it: keep inputs fast).
pub const MAX_DAVE_STEPS: usize = 48;

/// One byte of an echoed message changed: `xor` at `at % len` (nothing when `xor == 0`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tamper {
    /// Where (modulo the length).
    pub at: u16,
    /// What to xor in (0: leave the message as it is).
    pub xor: u8,
}

impl Tamper {
    fn apply(self, bytes: &mut [u8]) {
        if self.xor != 0 && !bytes.is_empty() {
            let at = usize::from(self.at) % bytes.len();
            bytes[at] ^= self.xor;
        }
    }

    fn read(r: &mut ScriptReader<'_, '_>) -> arbitrary::Result<Self> {
        Ok(Self {
            at: r.u16()?,
            xor: r.u8()?,
        })
    }

    fn write(self, w: &mut ScriptWriter) {
        w.u16(self.at);
        w.u8(self.xor);
    }
}

/// One step of a [`DaveScript`]: a DAVE message from the voice gateway (binary ops 25, 27, 29, 30;
/// JSON ops 21, 22, 24; the op 11/13 membership that validates proposals and welcomes), media
/// through the DAVE stage in both directions, or a resume/reconnect around them. Messages are
/// delivered only while the websocket is open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaveStep {
    /// Op 25 with these bytes as the payload.
    ExternalSender(Vec<u8>),
    /// Op 25 built from its parts: `signature_key<V>`, `Credential { credential_type, identity<V> }`.
    ExternalSenderParts {
        /// The signature key (65 bytes for an uncompressed P-256 point).
        key: Vec<u8>,
        /// 1 is basic.
        credential_type: u16,
        /// The identity (8 bytes in DAVE).
        identity: Vec<u8>,
    },
    /// Op 27: the operation byte, then `data` behind its variable-length prefix (`wrapped`) or
    /// as it is.
    Proposals {
        /// 0 append, 1 revoke, anything else unknown.
        operation: u8,
        /// Put the `<V>` length prefix in front of `data`.
        wrapped: bool,
        /// Concatenated MLSMessages (append) or ProposalRefs (revoke).
        data: Vec<u8>,
    },
    /// Op 29 with these commit bytes.
    Commit {
        /// Transition id.
        transition: u16,
        /// The MLSMessage.
        commit: Vec<u8>,
    },
    /// Op 30 with these welcome bytes.
    Welcome {
        /// Transition id.
        transition: u16,
        /// The Welcome.
        welcome: Vec<u8>,
    },
    /// Op 29 with the commit of our latest op 28 (the gateway announcing our own commit as the
    /// winner), possibly with one byte changed. Skipped when we never committed.
    EchoCommit {
        /// Transition id.
        transition: u16,
        /// The change.
        tamper: Tamper,
    },
    /// Op 30 with the welcome of our latest op 28 (meant for the member we added).
    EchoWelcome {
        /// Transition id.
        transition: u16,
        /// The change.
        tamper: Tamper,
    },
    /// Op 21.
    Prepare {
        /// Protocol version.
        version: u16,
        /// Transition id.
        transition: u16,
    },
    /// Op 22.
    Execute {
        /// Transition id.
        transition: u16,
    },
    /// Op 22 for the transition of our latest op 23 (0 when none).
    ExecuteLatest,
    /// Op 24.
    Epoch {
        /// Protocol version.
        version: u16,
        /// Epoch.
        epoch: u64,
    },
    /// Op 11 with `count % 17` users from `first` (0: [`OTHER_USER`]).
    Connect {
        /// First user id.
        first: u64,
        /// How many.
        count: u8,
    },
    /// Op 13 (0: [`OTHER_USER`]).
    Disconnect {
        /// The user.
        user: u64,
    },
    /// A datagram from the other member (SSRC mapped to [`OTHER_USER`]) carrying `payload`, with
    /// a DAVE trailer `[size] FA FA` appended when `marker` is given.
    Media {
        /// The frame.
        payload: Vec<u8>,
        /// The supplemental-size byte of an appended trailer.
        marker: Option<u8>,
    },
    /// Our latest audio frame (DAVE-encrypted when it was) back from the other member's SSRC.
    Loopback {
        /// The change.
        tamper: Tamper,
    },
    /// `queue_opus` with a frame of `len % 1400` bytes of `fill`, then the playout's next slot
    /// (held while DAVE keys are pending).
    Send {
        /// Frame length.
        len: u16,
        /// Frame byte.
        fill: u8,
    },
    /// Close 4015, then a resume (keeps the DAVE session).
    Resume,
    /// Close 4006, then a fresh Identify and handshake (a new DAVE session).
    Reconnect,
    /// `[seq][25 + op % 6][data]`: any binary DAVE frame, client-only opcodes included.
    Raw {
        /// Picks the opcode.
        op: u8,
        /// The payload.
        data: Vec<u8>,
    },
    /// Close 4006 and a fresh handshake in which the next `early % 8` steps arrive after Ready
    /// and IP discovery but before Session Description, i.e. before the DAVE session exists
    /// (an op 25 is kept for it, C34).
    Rejoin {
        /// How many of the following steps come early.
        early: u8,
    },
}

const DAVE_STEP_KINDS: u8 = 20;

impl DaveStep {
    fn read(r: &mut ScriptReader<'_, '_>) -> arbitrary::Result<Self> {
        Ok(match r.u8()? % DAVE_STEP_KINDS {
            0 => DaveStep::ExternalSender(r.bytes()?),
            1 => DaveStep::ExternalSenderParts {
                key: r.bytes()?,
                credential_type: r.u16()?,
                identity: r.bytes()?,
            },
            2 => DaveStep::Proposals {
                operation: r.u8()?,
                wrapped: r.bool()?,
                data: r.bytes()?,
            },
            3 => DaveStep::Commit {
                transition: r.u16()?,
                commit: r.bytes()?,
            },
            4 => DaveStep::Welcome {
                transition: r.u16()?,
                welcome: r.bytes()?,
            },
            5 => DaveStep::EchoCommit {
                transition: r.u16()?,
                tamper: Tamper::read(r)?,
            },
            6 => DaveStep::EchoWelcome {
                transition: r.u16()?,
                tamper: Tamper::read(r)?,
            },
            7 => DaveStep::Prepare {
                version: r.u16()?,
                transition: r.u16()?,
            },
            8 => DaveStep::Execute {
                transition: r.u16()?,
            },
            9 => DaveStep::ExecuteLatest,
            10 => DaveStep::Epoch {
                version: r.u16()?,
                epoch: r.u64()?,
            },
            11 => DaveStep::Connect {
                first: r.u64()?,
                count: r.u8()?,
            },
            12 => DaveStep::Disconnect { user: r.u64()? },
            13 => {
                let marked = r.bool()?;
                DaveStep::Media {
                    marker: if marked { Some(r.u8()?) } else { None },
                    payload: r.bytes()?,
                }
            }
            14 => DaveStep::Loopback {
                tamper: Tamper::read(r)?,
            },
            15 => DaveStep::Send {
                len: r.u16()?,
                fill: r.u8()?,
            },
            16 => DaveStep::Resume,
            17 => DaveStep::Reconnect,
            18 => DaveStep::Raw {
                op: r.u8()?,
                data: r.bytes()?,
            },
            _ => DaveStep::Rejoin { early: r.u8()? },
        })
    }

    fn write(&self, w: &mut ScriptWriter) {
        match self {
            DaveStep::ExternalSender(bytes) => {
                w.u8(0);
                w.bytes(bytes);
            }
            DaveStep::ExternalSenderParts {
                key,
                credential_type,
                identity,
            } => {
                w.u8(1);
                w.bytes(key);
                w.u16(*credential_type);
                w.bytes(identity);
            }
            DaveStep::Proposals {
                operation,
                wrapped,
                data,
            } => {
                w.u8(2);
                w.u8(*operation);
                w.bool(*wrapped);
                w.bytes(data);
            }
            DaveStep::Commit { transition, commit } => {
                w.u8(3);
                w.u16(*transition);
                w.bytes(commit);
            }
            DaveStep::Welcome {
                transition,
                welcome,
            } => {
                w.u8(4);
                w.u16(*transition);
                w.bytes(welcome);
            }
            DaveStep::EchoCommit { transition, tamper } => {
                w.u8(5);
                w.u16(*transition);
                tamper.write(w);
            }
            DaveStep::EchoWelcome { transition, tamper } => {
                w.u8(6);
                w.u16(*transition);
                tamper.write(w);
            }
            DaveStep::Prepare {
                version,
                transition,
            } => {
                w.u8(7);
                w.u16(*version);
                w.u16(*transition);
            }
            DaveStep::Execute { transition } => {
                w.u8(8);
                w.u16(*transition);
            }
            DaveStep::ExecuteLatest => w.u8(9),
            DaveStep::Epoch { version, epoch } => {
                w.u8(10);
                w.u16(*version);
                w.u64(*epoch);
            }
            DaveStep::Connect { first, count } => {
                w.u8(11);
                w.u64(*first);
                w.u8(*count);
            }
            DaveStep::Disconnect { user } => {
                w.u8(12);
                w.u64(*user);
            }
            DaveStep::Media { payload, marker } => {
                w.u8(13);
                w.bool(marker.is_some());
                if let Some(size) = marker {
                    w.u8(*size);
                }
                w.bytes(payload);
            }
            DaveStep::Loopback { tamper } => {
                w.u8(14);
                tamper.write(w);
            }
            DaveStep::Send { len, fill } => {
                w.u8(15);
                w.u16(*len);
                w.u8(*fill);
            }
            DaveStep::Resume => w.u8(16),
            DaveStep::Reconnect => w.u8(17),
            DaveStep::Raw { op, data } => {
                w.u8(18);
                w.u8(*op);
                w.bytes(data);
            }
            DaveStep::Rejoin { early } => {
                w.u8(19);
                w.u8(*early);
            }
        }
    }
}

/// Input of the [`dave_binary`] target: up to [`MAX_DAVE_STEPS`] steps, run on a connection that
/// negotiated DAVE version 1 (Session Description `dave_protocol_version: 1`, channel id known,
/// the other member's SSRC mapped to [`OTHER_USER`] by op 5) and has sent its first key package.
///
/// The byte layout is the small language of [`SessionScript`] (a tag byte per step, little-endian
/// integers, `u16`-length-prefixed byte strings), so seed files carrying real MLS messages can be
/// written with [`DaveScript::to_bytes`] and mutated in place by libFuzzer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DaveScript {
    /// What happens, in order.
    pub steps: Vec<DaveStep>,
}

impl<'a> Arbitrary<'a> for DaveScript {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut r = ScriptReader { u };
        let mut steps = Vec::new();
        while !r.u.is_empty() && steps.len() < MAX_DAVE_STEPS {
            steps.push(DaveStep::read(&mut r)?);
        }
        Ok(Self { steps })
    }
}

impl DaveScript {
    /// The bytes that [`Arbitrary`] reads back as this script (for seed files).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = ScriptWriter::default();
        for step in &self.steps {
            step.write(&mut w);
        }
        w.out
    }
}

/// What a [`DaveScript`] made the connection do: the milestones a seed is expected to reach.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DaveReport {
    /// Op 26 key packages sent after the handshake's first one (re-initialisations).
    pub key_packages: u32,
    /// Op 28 commits sent.
    pub commits: u32,
    /// Op 23 sent.
    pub transitions_ready: u32,
    /// Op 31 sent (recoveries).
    pub invalid_commit_welcomes: u32,
    /// `DaveTransition` events.
    pub transitions: u32,
    /// `DaveReady` events.
    pub ready: u32,
    /// `DaveMessageFailed` events.
    pub message_failures: u32,
    /// Highest MLS epoch seen.
    pub max_epoch: u64,
    /// Frames we sent DAVE-encrypted.
    pub dave_frames_sent: u64,
    /// Received frames that failed DAVE decryption.
    pub dave_decrypt_failures: u64,
    /// `PlayoutHeld` events for DAVE keys (queued audio waiting for them).
    pub dave_holds: u32,
}

/// What the input fed to the connection, for deciding which DAVE outputs may follow.
enum Fed {
    /// A server message (decoded from what was sent).
    Message(ServerMessage),
    /// A datagram (a decrypt-failure recovery may follow).
    Media,
    /// A fresh reconnect (a new DAVE session and key package follow).
    Reconnect,
    /// Nothing DAVE may react to.
    Other,
}

/// The [`dave_binary`] target's model of the engine's DAVE state, rebuilt from its outputs, and
/// the connection it drives (a [`Driver`], which checks everything else).
struct DaveRun {
    driver: Driver,
    /// The protocol version our audio uses (`dave_active_protocol_version()`).
    version: u16,
    /// Transitions answered with op 23 and not executed yet.
    prepared: BTreeSet<u16>,
    /// The latest op 23.
    latest_ready: Option<u16>,
    /// The latest executed transition (a decrypt-failure recovery reports it).
    last_executed: u16,
    /// Commit and welcome of our latest op 28.
    commit: Option<Vec<u8>>,
    welcome: Option<Vec<u8>>,
    /// The recovery announced by the latest `Reconnecting`.
    recovery: Option<Recovery>,
    /// Sequence number of the next media packet from the other member.
    media_sequence: u16,
    report: DaveReport,
    /// Print every step's outputs (a debugging aid).
    trace: bool,
    /// Steps still to come before Session Description in a [`DaveStep::Rejoin`].
    early: Option<u8>,
    /// Op 24 started a new group while at version 0: audio is held (`Negotiating`) until a
    /// transition executes.
    upgrading: bool,
    /// An op 25 arrived before Session Description: the engine keeps it and applies it when the
    /// DAVE session starts, so a malformed one fails then (C34).
    early_external_sender: bool,
}

/// The scripted DAVE handshake: both dispatches, Hello, Ready (AES-GCM), discovery, Session
/// Description with `dave_protocol_version: 1`, then op 5 mapping the other member's SSRC.
pub fn dave_handshake_steps() -> Vec<Step> {
    let mut steps = handshake_steps(0b0001);
    if let Some(Step::Text {
        message: ServerText::SessionDescription { dave, .. },
        ..
    }) = steps.last_mut()
    {
        *dave = 1;
    }
    steps.push(text_step(ServerText::Speaking {
        user: OTHER_USER.0,
        ssrc: 0,
        flags: 1,
    }));
    steps
}

/// The configuration the [`dave_binary`] target connects with: DAVE version 1 offered.
pub fn dave_config() -> ScriptConfig {
    ScriptConfig {
        rtp_seed: 0,
        flags: 1,
    }
}

impl DaveRun {
    fn start() -> Self {
        // Reconnects are a DAVE step here, not a limit to reach: the attempt counter does not
        // reset between back-to-back reconnects (row 3), so the limit is lifted.
        let mut config = dave_config().config();
        config.max_reconnect_attempts = u32::MAX;

        let mut driver = Driver::join(config);
        driver.run(&dave_handshake_steps());
        let connected = driver
            .state
            .session()
            .is_some_and(|s| s.has_media() && s.dave_status() == DaveStatus::Negotiating);
        assert!(
            connected,
            "the DAVE handshake did not reach a negotiating session"
        );
        driver.log = Some(Vec::new());
        Self {
            driver,
            version: 1,
            prepared: BTreeSet::new(),
            latest_ready: None,
            last_executed: 0,
            commit: None,
            welcome: None,
            recovery: None,
            media_sequence: 0,
            report: DaveReport::default(),
            trace: false,
            early: None,
            upgrading: false,
            early_external_sender: false,
        }
    }

    /// Sends a server message (text or binary by its opcode) with the next `seq`.
    fn server(&mut self, message: ServerMessage) {
        if self.driver.ws != Ws::Open {
            return;
        }
        let seq = self.driver.next_seq(true);
        let frame = ServerFrame {
            seq,
            message: message.clone(),
        };
        match frame.encode() {
            Encoded::Text(text) => self.driver.feed(Input::Text(&text)),
            Encoded::Binary(bytes) => self.driver.feed(Input::Binary(&bytes)),
        }
        self.check(&Fed::Message(message));
    }

    fn step(&mut self, step: &DaveStep) {
        match step {
            DaveStep::ExternalSender(bytes) => {
                self.server(ServerMessage::DaveMlsExternalSender(bytes.clone()));
            }
            DaveStep::ExternalSenderParts {
                key,
                credential_type,
                identity,
            } => {
                let mut payload = varint_vector(key);
                payload.extend_from_slice(&credential_type.to_be_bytes());
                payload.extend(varint_vector(identity));
                self.server(ServerMessage::DaveMlsExternalSender(payload));
            }
            DaveStep::Proposals {
                operation,
                wrapped,
                data,
            } => {
                let proposals = if *wrapped {
                    varint_vector(data)
                } else {
                    data.clone()
                };
                self.server(ServerMessage::DaveMlsProposals {
                    operation: ProposalsOperation::from_u8(*operation),
                    proposals,
                });
            }
            DaveStep::Commit { transition, commit } => {
                self.server(ServerMessage::DaveMlsAnnounceCommitTransition {
                    transition_id: *transition,
                    commit: commit.clone(),
                });
            }
            DaveStep::Welcome {
                transition,
                welcome,
            } => {
                self.server(ServerMessage::DaveMlsWelcome {
                    transition_id: *transition,
                    welcome: welcome.clone(),
                });
            }
            DaveStep::EchoCommit { transition, tamper } => {
                if let Some(mut commit) = self.commit.clone() {
                    tamper.apply(&mut commit);
                    self.server(ServerMessage::DaveMlsAnnounceCommitTransition {
                        transition_id: *transition,
                        commit,
                    });
                }
            }
            DaveStep::EchoWelcome { transition, tamper } => {
                if let Some(mut welcome) = self.welcome.clone() {
                    tamper.apply(&mut welcome);
                    self.server(ServerMessage::DaveMlsWelcome {
                        transition_id: *transition,
                        welcome,
                    });
                }
            }
            DaveStep::Prepare {
                version,
                transition,
            } => self.server(ServerMessage::DavePrepareTransition(
                DavePrepareTransition {
                    protocol_version: *version,
                    transition_id: *transition,
                },
            )),
            DaveStep::Execute { transition } => {
                self.server(ServerMessage::DaveExecuteTransition(
                    DaveExecuteTransition {
                        transition_id: *transition,
                    },
                ));
            }
            DaveStep::ExecuteLatest => {
                let transition_id = self.latest_ready.unwrap_or(0);
                self.server(ServerMessage::DaveExecuteTransition(
                    DaveExecuteTransition { transition_id },
                ));
            }
            DaveStep::Epoch { version, epoch } => {
                self.server(ServerMessage::DavePrepareEpoch(DavePrepareEpoch {
                    protocol_version: *version,
                    epoch: *epoch,
                }));
            }
            DaveStep::Connect { first, count } => {
                let first = if *first == 0 { OTHER_USER.0 } else { *first };
                self.server(ServerMessage::ClientsConnect(ClientsConnect {
                    user_ids: (0..u64::from(*count % 17))
                        .map(|i| UserId(first.wrapping_add(i)))
                        .collect(),
                }));
            }
            DaveStep::Disconnect { user } => {
                let user_id = if *user == 0 {
                    OTHER_USER
                } else {
                    UserId(*user)
                };
                self.server(ServerMessage::ClientDisconnect(ClientDisconnect {
                    user_id,
                }));
            }
            DaveStep::Media { payload, marker } => {
                let mut frame: Vec<u8> = payload
                    .iter()
                    .copied()
                    .take(MAX_OPUS_FRAME_LEN - 3)
                    .collect();
                if let Some(size) = marker {
                    frame.extend_from_slice(&[*size, 0xFA, 0xFA]);
                }
                self.media(frame);
            }
            DaveStep::Loopback { tamper } => {
                if let Some(mut frame) = self.last_frame() {
                    tamper.apply(&mut frame);
                    self.media(frame);
                }
            }
            DaveStep::Send { len, fill } => self.send(usize::from(*len) % 1400, *fill),
            DaveStep::Resume => self.resume(),
            DaveStep::Reconnect => self.reconnect(None),
            DaveStep::Rejoin { early } => self.reconnect(Some(*early % 8)),
            DaveStep::Raw { op, data } => {
                if self.driver.ws != Ws::Open {
                    return;
                }
                let seq = self.driver.next_seq(true).unwrap_or_default();
                let mut frame = (seq as u16).to_be_bytes().to_vec();
                frame.push(25 + op % 6);
                frame.extend_from_slice(data);
                self.driver.feed(Input::Binary(&frame));
                let fed = match ServerFrame::decode_binary(&frame) {
                    Ok(decoded) => Fed::Message(decoded.message),
                    Err(_) => Fed::Other,
                };
                self.check(&fed);
            }
        }
    }

    /// A datagram from the other member carrying `frame`; the [`Driver`] checks what comes out
    /// (exactly the frame for silence and plain frames while DAVE is off, at most one frame
    /// otherwise).
    fn media(&mut self, frame: Vec<u8>) {
        self.media_sequence = self.media_sequence.wrapping_add(1);
        let packet = AudioPacket {
            ssrc: 0,
            sequence: self.media_sequence,
            extension_words: None,
            padding: None,
            opus: frame,
            corrupt: false,
            wrong_key: false,
        };
        self.driver.audio(&packet);
        self.check(&Fed::Media);
    }

    /// The frame inside our latest audio packet (transport-decrypted).
    fn last_frame(&self) -> Option<Vec<u8>> {
        let packet = self.driver.last_packet.as_ref()?;
        let media = self.driver.media.as_ref()?;
        let header = ReceivedRtp::parse(packet).ok()?;
        let mut copy = packet.clone();
        let cipher = TransportCipher::new(media.mode, &SecretKey::new(media.key));
        let range = cipher.open(&mut copy, header.aad_len).ok()?;
        copy.get(range).map(<[u8]>::to_vec)
    }

    /// `queue_opus`, then the playout wakes at its next slot (at most one frame later) and sends
    /// what is due: nothing while DAVE keys are pending (the frame is held, C48), the oldest
    /// queued frame DAVE-encrypted while DAVE is active, plain while it is off. Frames held for
    /// keys go out first, in order, once the keys are in (the [`Driver`] checks every datagram
    /// against its queue).
    fn send(&mut self, len: usize, fill: u8) {
        if self.driver.state.session().is_none() {
            return;
        }
        let frame = self.driver.opus_frame(len, fill);
        self.driver.queue_opus(&frame);
        self.check(&Fed::Other);
        if let Some(at) = self.driver.state.next_transmit() {
            if at > self.driver.now {
                self.driver.advance_to(at);
                self.check(&Fed::Other);
            }
        }
        let Some(front) = self.driver.playout.queue.front().cloned() else {
            return;
        };
        let hold = self.driver.expected_hold();
        let Some(session) = self.driver.state.session() else {
            return;
        };
        let status = session.dave_status();
        let before = session.stats();
        if status == DaveStatus::Negotiating && self.driver.media.is_some() {
            assert!(
                hold.is_some(),
                "a queued frame not held while DAVE keys are pending (C48)"
            );
        }
        self.driver.play_due();
        let Some(session) = self.driver.state.session() else {
            return;
        };
        let after = session.stats();
        let sent = after.packets_sent - before.packets_sent;
        let dropped = after.frames_dropped - before.frames_dropped;
        let encrypted = after.dave_frames_encrypted - before.dave_frames_encrypted;
        let expected = match (hold, status) {
            (Some(_), _) => (0, 0),
            (None, DaveStatus::Active) if front != SILENCE_FRAME => (1, 1),
            (None, _) => (1, 0),
        };
        assert_eq!(
            (sent + dropped, encrypted + dropped),
            expected,
            "the next slot in DAVE status {status:?} (hold {hold:?}): (packets, DAVE frames) sent"
        );
        self.check(&Fed::Other);
    }

    /// A driver polls its playout after every input: what is due now goes out (frames held for
    /// DAVE keys as soon as the keys are in).
    fn play(&mut self) {
        if self.driver.state.session().is_some() {
            self.driver.play_due();
            self.check(&Fed::Other);
        }
    }

    fn resume(&mut self) {
        if self.driver.ws != Ws::Open || self.driver.media.is_none() {
            return;
        }
        self.driver.step(&Step::ServerClose(Some(4015)));
        self.driver.wait_out_backoff();
        self.driver.step(&Step::Opened);
        self.driver.step(&Step::Text {
            message: ServerText::Hello { quarter_ms: 4000 },
            numbered: false,
        });
        self.driver.step(&text_step(ServerText::Resumed));
        self.check(&Fed::Other);
    }

    /// Close 4006: the session is gone; the engine asks the main gateway again (op 4), and the
    /// dispatches and the whole handshake follow, with the last two steps (Session Description,
    /// the other member's op 5) held back for `early` script steps.
    fn reconnect(&mut self, early: Option<u8>) {
        if self.driver.ws != Ws::Open {
            return;
        }
        self.finish_handshake();
        self.driver.step(&Step::ServerClose(Some(4006)));
        self.driver.wait_out_backoff();
        let steps = dave_handshake_steps();
        let (now, later) = steps.split_at(steps.len() - 2);
        self.driver.run(now);
        match early {
            Some(early) if early > 0 => {
                self.check(&Fed::Other);
                self.early = Some(early);
            }
            _ => {
                self.driver.run(later);
                self.check(&Fed::Reconnect);
            }
        }
    }

    /// Counts a step against a held-back handshake and completes it when its time has come.
    fn early_step_done(&mut self) {
        if let Some(left) = self.early.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.finish_handshake();
            }
        }
    }

    /// Session Description and op 5 of a handshake held back by [`DaveStep::Rejoin`], if any.
    fn finish_handshake(&mut self) {
        if self.early.take().is_some() {
            let steps = dave_handshake_steps();
            self.driver.run(&steps[steps.len() - 2..]);
            self.check(&Fed::Reconnect);
        }
    }

    /// Checks the outputs logged since the last check against the model, then the state.
    fn check(&mut self, fed: &Fed) {
        let log = self.driver.log.replace(Vec::new()).unwrap_or_default();
        if self.trace {
            println!("     after {}: {log:?}", fed_name(fed));
        }
        let dave_message = match fed {
            Fed::Message(message) => matches!(
                message,
                ServerMessage::DaveMlsExternalSender(_)
                    | ServerMessage::DaveMlsProposals { .. }
                    | ServerMessage::DaveMlsAnnounceCommitTransition { .. }
                    | ServerMessage::DaveMlsWelcome { .. }
                    | ServerMessage::DavePrepareTransition(_)
                    | ServerMessage::DaveExecuteTransition(_)
                    | ServerMessage::DavePrepareEpoch(_)
            ),
            _ => false,
        };
        // The transition a commit or welcome carried.
        let joined = match fed {
            Fed::Message(
                ServerMessage::DaveMlsAnnounceCommitTransition { transition_id, .. }
                | ServerMessage::DaveMlsWelcome { transition_id, .. },
            ) => Some(*transition_id),
            _ => None,
        };
        let prepare = match fed {
            Fed::Message(ServerMessage::DavePrepareTransition(p))
                if supported(p.protocol_version) =>
            {
                Some(p.transition_id)
            }
            _ => None,
        };
        let execute = match fed {
            Fed::Message(ServerMessage::DaveExecuteTransition(e)) => Some(e.transition_id),
            _ => None,
        };
        let was_prepared = execute.is_some_and(|t| self.prepared.contains(&t));
        let new_group = match fed {
            Fed::Message(ServerMessage::DavePrepareEpoch(p)) => {
                p.epoch == 1 && p.protocol_version > 0 && supported(p.protocol_version)
            }
            Fed::Reconnect => true,
            _ => false,
        };
        if new_group && dave_message {
            // An upgrade from version 0 holds audio until it executes.
            self.upgrading = self.version == 0;
        }
        if self.early.is_some()
            && matches!(fed, Fed::Message(ServerMessage::DaveMlsExternalSender(_)))
        {
            self.early_external_sender = true;
        }
        // Session Description applies an op 25 that came before it.
        let applies_early_external_sender =
            matches!(fed, Fed::Reconnect) && std::mem::take(&mut self.early_external_sender);
        let mut recoveries = 0u32;
        let mut invalid = 0u32;
        let mut executed = None;
        let mut connected = false;
        let mut ignored = false;
        let mut ready_events = Vec::new();
        for output in &log {
            match output {
                Output::SendBinary(bytes) => match ClientMessage::decode_binary(bytes) {
                    Ok(ClientMessage::DaveMlsKeyPackage(key_package)) => {
                        assert!(
                            mls::key_package(&key_package),
                            "op 26 is not one KeyPackage: {key_package:02x?}"
                        );
                        assert!(
                            invalid > 0 || (new_group && (connected || dave_message)),
                            "op 26 without a recovery, a new group or a new session"
                        );
                        self.prepared.clear();
                        self.latest_ready = None;
                        self.report.key_packages += 1;
                    }
                    Ok(ClientMessage::DaveMlsCommitWelcome(payload)) => {
                        assert!(
                            matches!(fed, Fed::Message(ServerMessage::DaveMlsProposals { .. })),
                            "op 28 without op 27 proposals"
                        );
                        let (commit, welcome) =
                            mls::split_commit_welcome(&payload).unwrap_or_else(|| {
                                panic!("op 28 is not a commit and a welcome: {payload:02x?}")
                            });
                        self.commit = Some(commit.to_vec());
                        self.welcome = welcome.map(<[u8]>::to_vec);
                        self.report.commits += 1;
                    }
                    other => panic!("unexpected binary frame {other:?}"),
                },
                Output::SendText(text) => match ClientMessage::decode_text(text) {
                    Ok(ClientMessage::DaveTransitionReady(ready)) => {
                        let t = ready.transition_id;
                        assert_ne!(t, 0, "op 23 for transition 0, which executes at once");
                        assert!(
                            prepare == Some(t) || joined == Some(t),
                            "op 23 for transition {t}, which nothing announced"
                        );
                        self.prepared.insert(t);
                        self.latest_ready = Some(t);
                        self.report.transitions_ready += 1;
                    }
                    Ok(ClientMessage::DaveMlsInvalidCommitWelcome(bad)) => {
                        let t = bad.transition_id;
                        assert!(
                            joined == Some(t)
                                || (matches!(fed, Fed::Media) && t == self.last_executed),
                            "op 31 for transition {t} (last executed {}) after {}",
                            self.last_executed,
                            fed_name(fed)
                        );
                        invalid += 1;
                        self.report.invalid_commit_welcomes += 1;
                    }
                    Ok(_) => {}
                    Err(error) => panic!("our own frame does not decode: {error}"),
                },
                Output::OpenWebSocket { .. } => {
                    // A resume keeps the DAVE session; any other new websocket starts afresh.
                    let resumed = self.recovery.take() == Some(Recovery::Resume);
                    if !resumed {
                        self.fresh(0);
                    }
                }
                Output::Event(event) => match event {
                    Event::Connected {
                        dave_protocol_version,
                        ..
                    } => {
                        // Session Description starts the DAVE session: nothing prepared before
                        // it survives (frames that came early may have prepared some).
                        self.version = *dave_protocol_version;
                        self.prepared.clear();
                        self.latest_ready = None;
                        self.upgrading = false;
                        connected = true;
                    }
                    Event::Reconnecting { recovery, .. } => self.recovery = Some(*recovery),
                    Event::Disconnected { .. } => self.fresh(0),
                    Event::Closed { error } => {
                        panic!(
                            "DAVE script step ({}) ended the connection: {error}",
                            fed_name(fed)
                        )
                    }
                    Event::DaveTransition {
                        transition_id,
                        from,
                        to,
                    } => {
                        let t = *transition_id;
                        assert_eq!(*from, self.version, "transition from another version");
                        assert!(supported(*to), "transition to unsupported version {to}");
                        match execute {
                            Some(e) => assert!(
                                e == t && was_prepared,
                                "op 22 {e} executed transition {t} (prepared: {was_prepared})"
                            ),
                            None => assert!(
                                t == 0 && (prepare == Some(0) || joined == Some(0)),
                                "transition {t} took effect without op 22"
                            ),
                        }
                        self.prepared.remove(&t);
                        self.version = *to;
                        self.upgrading = false;
                        self.last_executed = t;
                        executed = Some(t);
                        self.report.transitions += 1;
                    }
                    Event::DaveReady {
                        protocol_version,
                        epoch,
                        ..
                    } => {
                        assert_eq!(
                            *protocol_version, self.version,
                            "DaveReady for another version"
                        );
                        assert!(executed.is_some(), "DaveReady without a transition");
                        ready_events.push(*epoch);
                        self.report.ready += 1;
                    }
                    Event::DaveRecovery { .. } => recoveries += 1,
                    Event::DaveMessageFailed { op, .. } => {
                        assert!(
                            dave_message
                                || (applies_early_external_sender
                                    && *op == Opcode::DaveMlsExternalSender),
                            "DaveMessageFailed for op {op:?} after {}",
                            fed_name(fed)
                        );
                        self.report.message_failures += 1;
                    }
                    Event::Ignored { .. } => ignored = true,
                    _ => {}
                },
                _ => {}
            }
        }
        assert_eq!(recoveries, invalid, "every DaveRecovery sends one op 31");
        if let Some(e) = execute {
            if was_prepared {
                assert_eq!(
                    executed,
                    Some(e),
                    "op 22 for prepared transition {e} did nothing"
                );
            } else {
                assert!(
                    executed.is_none() && ignored,
                    "op 22 for unprepared transition {e} was not ignored"
                );
            }
        }
        self.check_state(&ready_events);
    }

    /// A new voice connection: no DAVE state carries over.
    fn fresh(&mut self, version: u16) {
        self.version = version;
        self.upgrading = false;
        self.prepared.clear();
        self.latest_ready = None;
        self.last_executed = 0;
        self.commit = None;
        self.welcome = None;
    }

    fn check_state(&mut self, ready_epochs: &[u64]) {
        let Some(session) = self.driver.state.session() else {
            return;
        };
        assert!(!session.is_closed(), "DAVE input closed the session");
        assert_eq!(
            session.dave_active_protocol_version(),
            self.version,
            "dave_active_protocol_version() disagrees with the transitions"
        );
        let status = session.dave_status();
        if session.has_media() {
            let expected = match (self.version, self.upgrading) {
                (0, false) => Some(DaveStatus::Off),
                (0, true) => Some(DaveStatus::Negotiating),
                _ => None,
            };
            assert!(
                expected.map_or(status != DaveStatus::Off, |expected| status == expected),
                "dave_status() {status:?} with protocol version {} (upgrading: {})",
                self.version,
                self.upgrading
            );
        }
        let epoch = session.dave_epoch();
        if let Some(&last) = ready_epochs.last() {
            assert_eq!(
                last,
                epoch.unwrap_or_default(),
                "DaveReady with another epoch"
            );
            assert_eq!(status, DaveStatus::Active, "DaveReady while {status:?}");
        }
        if let Some(members) = session.dave_group_members() {
            assert!(
                members.contains(&USER),
                "our own group without us: {members:?}"
            );
        }
        let _ = session.dave_privacy_code();
        let stats = session.stats();
        self.report.max_epoch = self.report.max_epoch.max(epoch.unwrap_or_default());
        self.report.dave_frames_sent = stats.dave_frames_encrypted;
        self.report.dave_decrypt_failures = stats.dave_decrypt_failures;
        self.report.dave_holds = self.driver.playout.dave_holds;
    }

    /// After the script: the receive path still delivers silence, and sending still follows the
    /// DAVE status.
    fn finish(&mut self) {
        self.finish_handshake();
        if self.driver.media.is_some() {
            self.media(SILENCE_FRAME.to_vec());
            self.send(20, 0xFC);
        }
    }
}

/// Whether this build speaks DAVE protocol `version` (0 included).
fn supported(version: u16) -> bool {
    (0..=voice_proto::dave::SUPPORTED_PROTOCOL_VERSION).contains(&version)
}

fn fed_name(fed: &Fed) -> String {
    match fed {
        Fed::Message(message) => format!("server op {}", message.op()),
        Fed::Media => "a datagram".to_owned(),
        Fed::Reconnect => "a reconnect".to_owned(),
        Fed::Other => "a non-DAVE step".to_owned(),
    }
}

/// `bytes` behind an RFC 9420 variable-length prefix.
fn varint_vector(bytes: &[u8]) -> Vec<u8> {
    let len = bytes.len();
    let mut out = match len {
        0..=0x3F => vec![len as u8],
        0x40..=0x3FFF => (0x4000 | len as u16).to_be_bytes().to_vec(),
        _ => (0x8000_0000 | (len as u32 & 0x3FFF_FFFF))
            .to_be_bytes()
            .to_vec(),
    };
    out.extend_from_slice(bytes);
    out
}

/// Just enough of the MLS wire format (RFC 9420) to check the structure of what we send (op 26 is
/// one bare KeyPackage, op 28 one PublicMessage commit followed by an optional bare Welcome) and to
/// split op 28 the way the gateway does, without an MLS implementation in the harness.
pub mod mls {
    /// A cursor over TLS-encoded bytes.
    struct Tls<'a> {
        data: &'a [u8],
        pos: usize,
    }

    impl<'a> Tls<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            let end = self.pos.checked_add(n)?;
            let bytes = self.data.get(self.pos..end)?;
            self.pos = end;
            Some(bytes)
        }
        fn u8(&mut self) -> Option<u8> {
            Some(self.take(1)?[0])
        }
        fn u16(&mut self) -> Option<u16> {
            Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
        }
        fn skip(&mut self, n: usize) -> Option<()> {
            self.take(n).map(|_| ())
        }
        /// A `<V>` vector: QUIC-style variable-length length, then the bytes.
        fn vector(&mut self) -> Option<&'a [u8]> {
            let first = self.u8()?;
            let len = match first >> 6 {
                0 => usize::from(first & 0x3F),
                1 => (usize::from(first & 0x3F) << 8) | usize::from(self.u8()?),
                2 => {
                    let rest = self.take(3)?;
                    (usize::from(first & 0x3F) << 24)
                        | (usize::from(rest[0]) << 16)
                        | (usize::from(rest[1]) << 8)
                        | usize::from(rest[2])
                }
                _ => return None,
            };
            self.take(len)
        }
        fn at_end(&self) -> bool {
            self.pos == self.data.len()
        }
    }

    fn credential(t: &mut Tls<'_>) -> Option<()> {
        match t.u16()? {
            // basic: identity<V>; x509: certificates<V>
            1 | 2 => t.vector().map(|_| ()),
            _ => None,
        }
    }

    fn leaf_node(t: &mut Tls<'_>) -> Option<()> {
        t.vector()?; // encryption_key
        t.vector()?; // signature_key
        credential(t)?;
        for _ in 0..5 {
            t.vector()?; // capabilities: versions, cipher suites, extensions, proposals, credentials
        }
        match t.u8()? {
            1 => t.skip(16)?, // key_package: lifetime
            2 => {}           // update
            3 => {
                t.vector()?; // commit: parent_hash
            }
            _ => return None,
        }
        t.vector()?; // extensions
        t.vector()?; // signature
        Some(())
    }

    fn key_package_fields(t: &mut Tls<'_>) -> Option<()> {
        (t.u16()? == 1 && t.u16()? == 2).then_some(())?; // mls10, cipher suite 2
        t.vector()?; // init_key
        leaf_node(t)?;
        t.vector()?; // extensions
        t.vector()?; // signature
        Some(())
    }

    /// Whether `bytes` is exactly one KeyPackage of MLS 1.0 with cipher suite 2 (op 26).
    pub fn key_package(bytes: &[u8]) -> bool {
        let mut t = Tls {
            data: bytes,
            pos: 0,
        };
        key_package_fields(&mut t).is_some() && t.at_end()
    }

    /// The length of the PublicMessage commit at the start of `bytes`.
    fn public_commit(bytes: &[u8]) -> Option<usize> {
        let mut t = Tls {
            data: bytes,
            pos: 0,
        };
        (t.u16()? == 1 && t.u16()? == 1).then_some(())?; // mls10, public message
        t.vector()?; // group_id
        t.skip(8)?; // epoch
        let sender = t.u8()?;
        match sender {
            1 | 2 => t.skip(4)?, // member leaf index, external sender index
            3 | 4 => {}
            _ => return None,
        }
        t.vector()?; // authenticated_data
        (t.u8()? == 3).then_some(())?; // commit
        t.vector()?; // proposals
        match t.u8()? {
            0 => {}
            1 => {
                leaf_node(&mut t)?;
                t.vector()?; // nodes
            }
            _ => return None,
        }
        t.vector()?; // signature
        t.vector()?; // confirmation_tag
        if sender == 1 {
            t.vector()?; // membership_tag
        }
        Some(t.pos)
    }

    fn welcome_fields(t: &mut Tls<'_>) -> Option<()> {
        (t.u16()? == 2).then_some(())?; // cipher suite
        t.vector()?; // secrets
        t.vector()?; // encrypted_group_info
        Some(())
    }

    /// Whether `bytes` is exactly one bare Welcome with cipher suite 2.
    pub fn welcome(bytes: &[u8]) -> bool {
        let mut t = Tls {
            data: bytes,
            pos: 0,
        };
        welcome_fields(&mut t).is_some() && t.at_end()
    }

    /// Splits an op 28 payload `MLSMessage commit ‖ [Welcome]`; `None` when it is not one.
    pub fn split_commit_welcome(payload: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
        let at = public_commit(payload)?;
        let (commit, rest) = payload.split_at(at);
        if rest.is_empty() {
            return Some((commit, None));
        }
        welcome(rest).then_some((commit, Some(rest)))
    }
}

/// A [`DaveScript`] on a DAVE-negotiated connection, checking after every step that DAVE input
/// never ends the connection, that every DAVE output answers something (op 26 after a recovery,
/// a new group or a new session; op 28 after proposals; op 23 for an announced transition; op 31
/// for a failed commit or welcome or after decrypt failures), that op 26 and op 28 carry one
/// well-formed KeyPackage and one commit plus welcome, that transitions take effect exactly when
/// op 22 names a prepared one (or at once for id 0), that `dave_status()`,
/// `dave_active_protocol_version()` and `dave_epoch()` agree with the events, and that sending
/// and receiving follow the status; every [`Driver`] invariant holds as well.
pub fn dave_script(script: &DaveScript) -> DaveReport {
    run_dave_script(script, false)
}

/// [`dave_script`] printing every step and its outputs (a debugging aid).
pub fn dave_script_traced(script: &DaveScript) -> DaveReport {
    run_dave_script(script, true)
}

fn run_dave_script(script: &DaveScript, trace: bool) -> DaveReport {
    let mut run = DaveRun::start();
    run.trace = trace;
    for (i, step) in script.steps.iter().enumerate() {
        if trace {
            println!("{i:3}: {step:?}");
        }
        run.step(step);
        // A reconnect completes a held-back handshake first and may hold back its own.
        if !matches!(step, DaveStep::Reconnect | DaveStep::Rejoin { .. }) {
            run.early_step_done();
        }
        run.play();
    }
    run.finish();
    if trace {
        println!("{:?}", run.report);
    }
    run.report
}

/// [`dave_script`] over raw bytes, as libFuzzer and the corpus replay call it; `None` when this
/// build cannot speak DAVE (the `dave` feature of `voice-proto` is off) or the bytes end early.
pub fn dave_binary_report(data: &[u8]) -> Option<DaveReport> {
    if voice_proto::dave::SUPPORTED_PROTOCOL_VERSION == 0 {
        return None;
    }
    let script = DaveScript::arbitrary(&mut Unstructured::new(data)).ok()?;
    Some(dave_script(&script))
}

/// The `dave_binary` target: the bytes as a [`DaveScript`] of DAVE ops 21, 22, 24, 25, 27, 29, 30
/// (with real MLS messages from the seeds, and our own commits and welcomes echoed back) and
/// media, run by [`dave_script`].
pub fn dave_binary(data: &[u8]) {
    let _ = dave_binary_report(data);
}

// ---- decoder checks -------------------------------------------------------------------------

fn check_text_decoders(text: &str) {
    if let Ok(frame) = ServerFrame::decode_text(text) {
        assert!(
            !frame.message.is_binary(),
            "a text frame decoded to a binary message"
        );
    }
    let _ = ClientMessage::decode_text(text);
    let _ = VoiceStateDispatch::from_dispatch_json(text);
    let _ = VoiceServerDispatch::from_dispatch_json(text);
    if let Ok(url) = voice_gateway_url(text) {
        assert!(url.starts_with("wss://") || url.starts_with("ws://"));
        assert!(url.contains("v="), "URL without a version: {url}");
    }
}

fn check_binary_decoders(data: &[u8]) {
    match ServerFrame::decode_binary(data) {
        Ok(frame) => {
            assert!(
                frame.message.is_binary(),
                "a binary frame decoded to a JSON message"
            );
            assert_eq!(
                frame.seq,
                Some(u64::from(u16::from_be_bytes([data[0], data[1]])))
            );
            assert_eq!(
                frame.encode(),
                Encoded::Binary(data.to_vec()),
                "binary re-encoding differs"
            );
        }
        Err(_) => {
            if data.len() >= 3 {
                let op = Opcode::from_u8(data[2]);
                assert!(
                    op.is_some(),
                    "an unknown binary opcode must not be an error (C31)"
                );
            }
        }
    }
    if let Ok(message) = ClientMessage::decode_binary(data) {
        assert_eq!(message.encode(), Encoded::Binary(data.to_vec()));
    }
}

fn check_datagram_parsers(data: &[u8]) {
    let kind = classify(data);
    if let Ok(found) = parse_discovery_response(data) {
        assert_eq!(data.len(), 74);
        assert_eq!(kind, PacketKind::Discovery);
        let rebuilt = discovery_response(found.ssrc, found.ip, found.port);
        assert_eq!(parse_discovery_response(&rebuilt), Ok(found));
    }
    if let Ok(ssrc) = parse_discovery_request(data) {
        assert_eq!(data.len(), 74);
        assert_eq!(parse_discovery_request(&discovery_request(ssrc)), Ok(ssrc));
    }
    if kind == PacketKind::Rtp {
        assert!(data.len() >= RTP_HEADER_LEN);
    }
    if let Ok(header) = ReceivedRtp::parse(data) {
        assert!(header.aad_len <= data.len(), "AAD beyond the packet");
        for &mode in EncryptionMode::ALL {
            let cipher = TransportCipher::new(mode, &SecretKey::new(KEY));
            let mut copy = data.to_vec();
            if let Ok(range) = cipher.open(&mut copy, header.aad_len) {
                let plain = copy
                    .get(range)
                    .expect("open returns a range inside the packet");
                let _ = header.payload(plain);
            }
            // Seal the plaintext ourselves and open it again: the same bytes must come back.
            let plain = &data[header.aad_len..];
            let mut sealed = data.to_vec();
            sealed.resize(data.len() + mode.overhead(), 0);
            cipher
                .seal(&mut sealed, header.aad_len, plain.len(), 1)
                .expect("sealing fits the buffer");
            let range = cipher
                .open(&mut sealed, header.aad_len)
                .expect("own packet opens");
            assert_eq!(&sealed[range], plain, "seal/open round trip differs");
            if let Ok(opus) = header.payload(plain) {
                assert!(opus.len() <= plain.len());
            }
        }
    }
    for &mode in EncryptionMode::ALL {
        let cipher = TransportCipher::new(mode, &SecretKey::new(KEY));
        for aad_len in [0, 8, RTP_HEADER_LEN, data.len(), usize::MAX] {
            let mut copy = data.to_vec();
            if let Ok(range) = cipher.open(&mut copy, aad_len) {
                assert!(range.end <= copy.len());
            }
        }
    }
}

// ---- round trips ----------------------------------------------------------------------------

fn roundtrip_text(text: &str) {
    if let Ok(first) = ServerFrame::decode_text(text) {
        roundtrip_server_frame_decoded(first);
    }
    if let Ok(first) = ClientMessage::decode_text(text) {
        let Encoded::Text(encoded) = first.encode() else {
            panic!("a decoded client text message re-encoded as binary");
        };
        let second = ClientMessage::decode_text(&encoded)
            .unwrap_or_else(|e| panic!("re-encoded client message does not decode: {e}"));
        assert!(
            same_client_message(&second, &first),
            "client text decode -> encode -> decode differs: {first:?} -> {second:?}"
        );
    }
}

fn roundtrip_binary(data: &[u8]) {
    if let Ok(first) = ServerFrame::decode_binary(data) {
        roundtrip_server_frame_decoded(first);
    }
    if let Ok(first) = ClientMessage::decode_binary(data) {
        roundtrip_client_message(&first);
    }
}

/// A frame that came out of a decoder must survive encode -> decode unchanged.
fn roundtrip_server_frame_decoded(first: ServerFrame) {
    let encoded = first.encode();
    let second = decode_server(&encoded)
        .unwrap_or_else(|e| panic!("re-encoded server frame does not decode: {e}"));
    assert!(
        same_server_frame(&second, &first),
        "server decode -> encode -> decode differs: {first:?} -> {second:?}"
    );
}

/// Equality, except that floats (a Hello interval, numbers inside an unknown opcode's raw JSON)
/// may move by a few units in the last place: serde_json without its `float_roundtrip` feature
/// parses some 16- and 17-digit decimals a few ULP off. Intervals with up to 15 significant
/// digits, i.e. every real one, round-trip exactly.
fn same_server_frame(a: &ServerFrame, b: &ServerFrame) -> bool {
    match (&a.message, &b.message) {
        (ServerMessage::Hello(x), ServerMessage::Hello(y)) => {
            a.seq == b.seq && x.v == y.v && floats_close(x.heartbeat_interval, y.heartbeat_interval)
        }
        (ServerMessage::Unknown { op: x, raw: r }, ServerMessage::Unknown { op: y, raw: s }) => {
            a.seq == b.seq && x == y && json_close(r, s)
        }
        _ => a == b,
    }
}

/// Equality with the same float tolerance for an unknown opcode's raw JSON.
fn same_client_message(a: &ClientMessage, b: &ClientMessage) -> bool {
    match (a, b) {
        (ClientMessage::Unknown { op: x, raw: r }, ClientMessage::Unknown { op: y, raw: s }) => {
            x == y && json_close(r, s)
        }
        _ => a == b,
    }
}

fn floats_close(x: f64, y: f64) -> bool {
    x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-14
}

fn json_close(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(x), Ok(y)) => values_close(&x, &y),
        _ => a == b,
    }
}

fn values_close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            matches!((x.as_f64(), y.as_f64()), (Some(x), Some(y)) if floats_close(x, y))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| values_close(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, v)| y.get(key).is_some_and(|w| values_close(v, w)))
        }
        _ => a == b,
    }
}

fn decode_server(encoded: &Encoded) -> Result<ServerFrame, voice_proto::payload::DecodeError> {
    match encoded {
        Encoded::Text(text) => ServerFrame::decode_text(text),
        Encoded::Binary(bytes) => ServerFrame::decode_binary(bytes),
    }
}

/// A generated server message: encode -> decode gives it back (binary frames carry a u16 seq,
/// ops the client ignores lose their payload), and a second round is stable.
fn roundtrip_server_frame(frame: ServerFrame) {
    let encoded = frame.encode();
    let first = decode_server(&encoded).unwrap_or_else(|e| {
        panic!(
            "our encoding of {:?} does not decode: {e}",
            frame.message.op()
        )
    });
    let expected_seq = if frame.message.is_binary() {
        Some(frame.seq.unwrap_or(0) & 0xFFFF)
    } else {
        frame.seq
    };
    assert_eq!(first.seq, expected_seq);
    assert_eq!(
        first.message, frame.message,
        "server encode -> decode differs"
    );
    roundtrip_server_frame_decoded(first);
}

fn roundtrip_client_message(message: &ClientMessage) {
    let encoded = message.encode();
    let decoded = match &encoded {
        Encoded::Text(text) => ClientMessage::decode_text(text),
        Encoded::Binary(bytes) => ClientMessage::decode_binary(bytes),
    }
    .unwrap_or_else(|e| {
        panic!(
            "our encoding of client op {} does not decode: {e}",
            message.op()
        )
    });
    assert_eq!(&decoded, message, "client encode -> decode differs");
    assert_eq!(
        decoded.encode(),
        encoded,
        "client re-encoding is not stable"
    );
}

fn roundtrip_dispatches(text: &str) {
    if let Ok(first) = VoiceStateDispatch::from_dispatch_json(text) {
        let json = serde_json::to_string(&first).expect("a dispatch serializes");
        let second =
            VoiceStateDispatch::from_dispatch_json(&json).expect("re-encoded state parses");
        assert_eq!(second, first);
    }
    if let Ok(first) = VoiceServerDispatch::from_dispatch_json(text) {
        let json = serde_json::to_string(&first).expect("a dispatch serializes");
        let second =
            VoiceServerDispatch::from_dispatch_json(&json).expect("re-encoded server parses");
        assert_eq!(second, first);
    }
}

// ---- generated messages of every opcode ------------------------------------------------------

fn arb_string(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    let len = u.int_in_range(0..=24)?;
    let bytes = u.bytes(len.min(u.len()))?;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

fn arb_bytes(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>> {
    let len = u.int_in_range(0..=64)?;
    Ok(u.bytes(len.min(u.len()))?.to_vec())
}

fn arb_raw_json(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    Ok(match u.int_in_range(0..=3)? {
        0 => "null".to_owned(),
        1 => u64::arbitrary(u)?.to_string(),
        2 => format!(r#"{{"x":{}}}"#, i32::arbitrary(u)?),
        _ => serde_json::Value::String(arb_string(u)?).to_string(),
    })
}

fn arb_interval(u: &mut Unstructured<'_>) -> arbitrary::Result<f64> {
    // Milliseconds with microsecond precision: what a server can mean, and exact through JSON.
    Ok(f64::from(u32::arbitrary(u)?) / 1000.0)
}

/// A server frame for an opcode chosen by the input, with generated fields.
fn arb_server_message(u: &mut Unstructured<'_>) -> arbitrary::Result<ServerFrame> {
    let op = u8::arbitrary(u)?;
    let message = match Opcode::from_u8(op) {
        Some(Opcode::Ready) => ServerMessage::Ready(Ready {
            ssrc: u32::arbitrary(u)?,
            ip: arb_string(u)?,
            port: u16::arbitrary(u)?,
            modes: vec![arb_string(u)?, arb_string(u)?],
        }),
        Some(Opcode::SessionDescription) => ServerMessage::SessionDescription(SessionDescription {
            mode: arb_string(u)?,
            secret_key: SecretKey::new(<[u8; 32]>::arbitrary(u)?),
            dave_protocol_version: u16::arbitrary(u)?,
        }),
        Some(Opcode::Speaking) => ServerMessage::Speaking(Speaking {
            speaking: SpeakingFlags::from_bits(u32::arbitrary(u)?),
            delay: u32::arbitrary(u)?,
            ssrc: u32::arbitrary(u)?,
            user_id: Option::<u64>::arbitrary(u)?.map(UserId),
        }),
        Some(Opcode::HeartbeatAck) => ServerMessage::HeartbeatAck(HeartbeatAck {
            t: u64::arbitrary(u)?,
        }),
        Some(Opcode::Hello) => ServerMessage::Hello(Hello {
            heartbeat_interval: arb_interval(u)?,
            v: Option::<u8>::arbitrary(u)?,
        }),
        Some(Opcode::Resumed) => ServerMessage::Resumed,
        Some(Opcode::Heartbeat) => ServerMessage::HeartbeatRequest,
        Some(Opcode::ClientsConnect) => ServerMessage::ClientsConnect(ClientsConnect {
            user_ids: vec![UserId(u64::arbitrary(u)?); usize::from(u8::arbitrary(u)? % 4)],
        }),
        Some(Opcode::ClientDisconnect) => ServerMessage::ClientDisconnect(ClientDisconnect {
            user_id: UserId(u64::arbitrary(u)?),
        }),
        Some(Opcode::DavePrepareTransition) => {
            ServerMessage::DavePrepareTransition(DavePrepareTransition {
                protocol_version: u16::arbitrary(u)?,
                transition_id: u16::arbitrary(u)?,
            })
        }
        Some(Opcode::DaveExecuteTransition) => {
            ServerMessage::DaveExecuteTransition(DaveExecuteTransition {
                transition_id: u16::arbitrary(u)?,
            })
        }
        Some(Opcode::DavePrepareEpoch) => ServerMessage::DavePrepareEpoch(DavePrepareEpoch {
            protocol_version: u16::arbitrary(u)?,
            epoch: u64::arbitrary(u)?,
        }),
        Some(Opcode::DaveMlsExternalSender) => ServerMessage::DaveMlsExternalSender(arb_bytes(u)?),
        Some(Opcode::DaveMlsProposals) => ServerMessage::DaveMlsProposals {
            operation: ProposalsOperation::from_u8(u8::arbitrary(u)?),
            proposals: arb_bytes(u)?,
        },
        Some(Opcode::DaveMlsAnnounceCommitTransition) => {
            ServerMessage::DaveMlsAnnounceCommitTransition {
                transition_id: u16::arbitrary(u)?,
                commit: arb_bytes(u)?,
            }
        }
        Some(Opcode::DaveMlsWelcome) => ServerMessage::DaveMlsWelcome {
            transition_id: u16::arbitrary(u)?,
            welcome: arb_bytes(u)?,
        },
        // Client-only binary opcodes cannot come from the server.
        Some(Opcode::DaveMlsKeyPackage | Opcode::DaveMlsCommitWelcome) => {
            ServerMessage::UnknownBinary {
                op: 33u8.saturating_add(op),
                payload: arb_bytes(u)?,
            }
        }
        Some(other) => ServerMessage::Ignored { op: other },
        None if bool::arbitrary(u)? => ServerMessage::Unknown {
            op,
            raw: arb_raw_json(u)?,
        },
        None => ServerMessage::UnknownBinary {
            op,
            payload: arb_bytes(u)?,
        },
    };
    Ok(ServerFrame {
        seq: Option::<u64>::arbitrary(u)?,
        message,
    })
}

/// A client message for an opcode chosen by the input, with generated fields.
fn arb_client_message(u: &mut Unstructured<'_>) -> arbitrary::Result<ClientMessage> {
    let op = u8::arbitrary(u)?;
    Ok(match Opcode::from_u8(op) {
        Some(Opcode::Identify) => ClientMessage::Identify(Identify {
            server_id: GuildId(u64::arbitrary(u)?),
            user_id: UserId(u64::arbitrary(u)?),
            session_id: arb_string(u)?,
            token: Token::new(arb_string(u)?),
            max_dave_protocol_version: u16::arbitrary(u)?,
        }),
        Some(Opcode::SelectProtocol) => ClientMessage::SelectProtocol(SelectProtocol::udp(
            arb_string(u)?,
            u16::arbitrary(u)?,
            arb_string(u)?,
        )),
        Some(Opcode::Heartbeat) => ClientMessage::Heartbeat(Heartbeat {
            t: u64::arbitrary(u)?,
            seq_ack: i64::arbitrary(u)?,
        }),
        Some(Opcode::Speaking) => ClientMessage::Speaking(Speaking {
            speaking: SpeakingFlags::from_bits(u32::arbitrary(u)?),
            delay: u32::arbitrary(u)?,
            ssrc: u32::arbitrary(u)?,
            user_id: None,
        }),
        Some(Opcode::Resume) => ClientMessage::Resume(Resume {
            server_id: GuildId(u64::arbitrary(u)?),
            session_id: arb_string(u)?,
            token: Token::new(arb_string(u)?),
            seq_ack: i64::arbitrary(u)?,
        }),
        Some(Opcode::DaveTransitionReady) => {
            ClientMessage::DaveTransitionReady(DaveTransitionReady {
                transition_id: u16::arbitrary(u)?,
            })
        }
        Some(Opcode::DaveMlsInvalidCommitWelcome) => {
            ClientMessage::DaveMlsInvalidCommitWelcome(DaveMlsInvalidCommitWelcome {
                transition_id: u16::arbitrary(u)?,
            })
        }
        Some(Opcode::DaveMlsKeyPackage) => ClientMessage::DaveMlsKeyPackage(arb_bytes(u)?),
        Some(Opcode::DaveMlsCommitWelcome) => ClientMessage::DaveMlsCommitWelcome(arb_bytes(u)?),
        // Server-only binary opcodes cannot come from the client.
        Some(other) if other.is_binary() => ClientMessage::UnknownBinary {
            op: 33u8.saturating_add(op),
            payload: arb_bytes(u)?,
        },
        Some(other) => ClientMessage::Ignored { op: other },
        None if bool::arbitrary(u)? => ClientMessage::Unknown {
            op,
            raw: arb_raw_json(u)?,
        },
        None => ClientMessage::UnknownBinary {
            op,
            payload: arb_bytes(u)?,
        },
    })
}
