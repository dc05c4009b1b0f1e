//! The voice gateway opcode table (docs/protocol.md 2.2).

use core::fmt;

macro_rules! opcodes {
    ($($(#[$doc:meta])* $name:ident = $value:literal,)*) => {
        /// Every voice gateway opcode known to this crate, 0 through 32 (docs/protocol.md 2.2).
        ///
        /// Opcodes outside this table are not an error anywhere in this crate: they decode to the
        /// `Unknown`/`UnknownBinary` message variants and carry the raw `u8`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Opcode {
            $($(#[$doc])* $name = $value,)*
        }

        impl Opcode {
            /// Every opcode in numeric order.
            pub const ALL: [Opcode; 33] = [$(Opcode::$name,)*];

            /// The opcode for a wire value, or `None` when it is outside the table.
            pub const fn from_u8(value: u8) -> Option<Opcode> {
                match value {
                    $($value => Some(Opcode::$name),)*
                    _ => None,
                }
            }

            /// The wire value.
            pub const fn as_u8(self) -> u8 {
                self as u8
            }

            /// The variant name, e.g. `"SessionDescription"`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Opcode::$name => stringify!($name),)*
                }
            }
        }
    };
}

opcodes! {
    /// 0, C: start a voice session.
    Identify = 0,
    /// 1, C: the UDP address/port found by IP discovery and the chosen encryption mode.
    SelectProtocol = 1,
    /// 2, S: SSRC, UDP address and the offered encryption modes.
    Ready = 2,
    /// 3, C (S may send it to ask for an immediate heartbeat).
    Heartbeat = 3,
    /// 4, S: the negotiated mode, `secret_key` and DAVE protocol version.
    SessionDescription = 4,
    /// 5, C & S: speaking flags (and, from the server, which user owns an SSRC).
    Speaking = 5,
    /// 6, S: heartbeat acknowledgement echoing the nonce.
    HeartbeatAck = 6,
    /// 7, C: resume a session on a new websocket.
    Resume = 7,
    /// 8, S: the heartbeat interval, sent right after the websocket opens.
    Hello = 8,
    /// 9, S: a resume succeeded.
    Resumed = 9,
    /// 10: legacy video/signal; not used by bots.
    Video = 10,
    /// 11, S: users present in the call.
    ClientsConnect = 11,
    /// 12, S: legacy single-client connect (audio/video SSRCs); no longer observed for bots.
    ClientConnect = 12,
    /// 13, S: a user left the call.
    ClientDisconnect = 13,
    /// 14, C & S: codec/session changes (unofficial).
    SessionUpdate = 14,
    /// 15, C & S: media sink wants (unofficial).
    MediaSinkWants = 15,
    /// 16, C & S: voice backend version (unofficial).
    VoiceBackendVersion = 16,
    /// 17, S: channel options update (deprecated, unofficial).
    ChannelOptionsUpdate = 17,
    /// 18, S: another client's flags (unofficial).
    ClientFlags = 18,
    /// 19, S: speed test (unofficial).
    SpeedTest = 19,
    /// 20, S: another client's platform (unofficial).
    ClientPlatform = 20,
    /// 21, S: DAVE prepare transition.
    DavePrepareTransition = 21,
    /// 22, S: DAVE execute transition.
    DaveExecuteTransition = 22,
    /// 23, C: DAVE transition ready.
    DaveTransitionReady = 23,
    /// 24, S: DAVE prepare epoch.
    DavePrepareEpoch = 24,
    /// 25, S, binary: DAVE MLS external sender.
    DaveMlsExternalSender = 25,
    /// 26, C, binary: DAVE MLS key package.
    DaveMlsKeyPackage = 26,
    /// 27, S, binary: DAVE MLS proposals.
    DaveMlsProposals = 27,
    /// 28, C, binary: DAVE MLS commit (+ welcome).
    DaveMlsCommitWelcome = 28,
    /// 29, S, binary: DAVE MLS announce commit transition.
    DaveMlsAnnounceCommitTransition = 29,
    /// 30, S, binary: DAVE MLS welcome.
    DaveMlsWelcome = 30,
    /// 31, C: DAVE MLS invalid commit/welcome.
    DaveMlsInvalidCommitWelcome = 31,
    /// 32, C: no route (unofficial; user clients).
    NoRoute = 32,
}

impl Opcode {
    /// Whether this opcode travels in websocket binary frames (DAVE ops 25..=30).
    pub const fn is_binary(self) -> bool {
        matches!(self.as_u8(), 25..=30)
    }
}

/// Shows the name and the wire value, e.g. `Ready (2)`, so error messages name both.
impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.as_u8())
    }
}

impl From<Opcode> for u8 {
    fn from(op: Opcode) -> u8 {
        op.as_u8()
    }
}
