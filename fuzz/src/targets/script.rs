//! The script language of the [`session`](super::session) target: the steps a script is made of,
//! how any byte string reads as one, and how seed scripts are written back as bytes.

use super::*;

/// Little-endian byte reader over [`Unstructured`]; [`ScriptWriter`] is its exact inverse, so seed
/// scripts can be written as files.
pub(crate) struct ScriptReader<'u, 'a> {
    pub(crate) u: &'u mut Unstructured<'a>,
}

impl ScriptReader<'_, '_> {
    pub(crate) fn u8(&mut self) -> arbitrary::Result<u8> {
        u8::arbitrary(self.u)
    }
    pub(crate) fn u16(&mut self) -> arbitrary::Result<u16> {
        u16::arbitrary(self.u)
    }
    pub(crate) fn u32(&mut self) -> arbitrary::Result<u32> {
        u32::arbitrary(self.u)
    }
    pub(crate) fn u64(&mut self) -> arbitrary::Result<u64> {
        u64::arbitrary(self.u)
    }
    pub(crate) fn bool(&mut self) -> arbitrary::Result<bool> {
        Ok(self.u8()? & 1 == 1)
    }
    /// `u16` length then that many bytes (fewer when the input ends first).
    pub(crate) fn bytes(&mut self) -> arbitrary::Result<Vec<u8>> {
        let len = usize::from(self.u16()?).min(self.u.len());
        Ok(self.u.bytes(len)?.to_vec())
    }
    pub(crate) fn string(&mut self) -> arbitrary::Result<String> {
        Ok(String::from_utf8_lossy(&self.bytes()?).into_owned())
    }
}

/// Writes script values in the layout [`ScriptReader`] reads.
#[derive(Default)]
pub(crate) struct ScriptWriter {
    pub(crate) out: Vec<u8>,
}

impl ScriptWriter {
    pub(crate) fn u8(&mut self, v: u8) {
        self.out.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn bool(&mut self, v: bool) {
        self.out.push(u8::from(v));
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
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
