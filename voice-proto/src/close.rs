//! Voice websocket close codes as data: what each one means and what to do next (PROTOCOL.md 5).
//!
//! [`disposition`] is the whole policy; [`VOICE_CLOSE_CODES`] is the table behind it for the
//! Discord-specific codes, and [`describe`] gives a human meaning for logs.

use CloseDisposition::{AwaitMove, Fatal, Reconnect, Resume};

/// What to do after the voice websocket closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseDisposition {
    /// Open a new websocket to the same endpoint and send op 7 Resume with the last `seq_ack`;
    /// keep SSRC, UDP socket, `secret_key`, nonce counter and DAVE state.
    Resume,
    /// Start over without resuming: join again through main-gateway op 4, then Identify afresh
    /// (new session, new SSRC, new key). The engine caps how often this repeats.
    Reconnect,
    /// Do not reconnect by itself (kicked, moved, call ended): wait briefly for a new
    /// `VOICE_SERVER_UPDATE` / `VOICE_STATE_UPDATE` and connect fresh if one comes, else end.
    AwaitMove,
    /// Give up and report the reason; retrying cannot help.
    Fatal(FatalReason),
    /// We closed normally (1000) because the connection was finished.
    Finished,
}

/// Why a close code ends the connection for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum FatalReason {
    /// 4004.
    #[error(
        "the voice server rejected the token (close 4004 authentication failed); join the channel \
         again so Discord issues a new VOICE_SERVER_UPDATE token"
    )]
    AuthenticationFailed,
    /// 4016.
    #[error(
        "the voice server does not know the selected encryption mode (close 4016 unknown \
         encryption mode); this is a client bug: only a mode listed in Ready's `modes` may be \
         selected"
    )]
    UnknownEncryptionMode,
    /// 4017.
    #[error(
        "the voice server requires DAVE end-to-end encryption (close 4017); DAVE required: \
         connect with DAVE enabled (voice-proto's `dave` feature, on by default, and \
         max_dave_protocol_version >= 1); retrying without it always fails"
    )]
    DaveRequired,
    /// 4021.
    #[error(
        "the voice server rate-limited this client (close 4021); stop reconnecting, wait, and \
         connect less often"
    )]
    RateLimited,
}

impl FatalReason {
    /// The close code that means this.
    pub const fn close_code(self) -> u16 {
        match self {
            Self::AuthenticationFailed => 4004,
            Self::UnknownEncryptionMode => 4016,
            Self::DaveRequired => 4017,
            Self::RateLimited => 4021,
        }
    }
}

/// One Discord voice close code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CloseCode {
    /// The code.
    pub code: u16,
    /// What it means.
    pub meaning: &'static str,
    /// What to do when the server closes with it.
    pub disposition: CloseDisposition,
}

const fn row(code: u16, meaning: &'static str, disposition: CloseDisposition) -> CloseCode {
    CloseCode {
        code,
        meaning,
        disposition,
    }
}

/// The documented Discord voice close codes (4000..=4999) and their dispositions.
///
/// Codes that point at a client bug (4001, 4002, 4003, 4005, 4012, 4020) reconnect rather than end,
/// because a fresh session usually clears them; the engine caps repeats so a real bug cannot loop.
/// 4009 (session timeout) reconnects: libraries disagree, and a timed-out session cannot be resumed
/// reliably. 4013 is unofficial (UDOC) and resumes.
// One row per line reads as the table it is.
#[rustfmt::skip]
pub const VOICE_CLOSE_CODES: [CloseCode; 17] = [
    row(4001, "unknown opcode: the client sent an invalid opcode", Reconnect),
    row(4002, "failed to decode payload: the client sent an invalid payload", Reconnect),
    row(4003, "not authenticated: a payload was sent before Identify", Reconnect),
    row(4004, "authentication failed: the token in Identify is wrong", Fatal(FatalReason::AuthenticationFailed)),
    row(4005, "already authenticated: a second Identify was sent", Reconnect),
    row(4006, "session no longer valid", Reconnect),
    row(4009, "session timeout", Reconnect),
    row(4011, "server not found", Reconnect),
    row(4012, "unknown protocol: Select Protocol named a protocol other than \"udp\"", Reconnect),
    row(4013, "WebRTC crashed (unofficial)", Resume),
    row(4014, "disconnected: kicked, moved to another channel, or the main-gateway session dropped", AwaitMove),
    row(4015, "voice server crashed", Resume),
    row(4016, "unknown encryption mode", Fatal(FatalReason::UnknownEncryptionMode)),
    row(4017, "E2EE/DAVE protocol required", Fatal(FatalReason::DaveRequired)),
    row(4020, "bad request: a malformed payload was sent", Reconnect),
    row(4021, "rate limited", Fatal(FatalReason::RateLimited)),
    row(4022, "call terminated: the channel was deleted, the voice server changed, ...", AwaitMove),
];

/// What to do after the voice websocket closed with `code` (`None`: no close frame, the transport
/// was lost).
///
/// `closed_by_us` says whether this side initiated the close. Our own 1000 means the connection is
/// [`Finished`](CloseDisposition::Finished). Any other code we chose ourselves (e.g. 4000 after
/// missed heartbeat ACKs, C10) is not a verdict from the server, so it resumes. For codes from the
/// server: 1000..=3999 and transport loss resume (C11); Discord's 4xxx codes follow
/// [`VOICE_CLOSE_CODES`]; any other code reconnects.
pub fn disposition(code: Option<u16>, closed_by_us: bool) -> CloseDisposition {
    let Some(code) = code else {
        return Resume;
    };
    if closed_by_us {
        return if code == 1000 {
            CloseDisposition::Finished
        } else {
            Resume
        };
    }
    match code {
        // 1000 from the server: DJS resumes, DPY treats it as the end; resuming is harmless when the
        // session is really gone (the server then rejects the resume and we reconnect).
        1000..=3999 => Resume,
        4000..=4999 => lookup(code).map_or(Reconnect, |row| row.disposition),
        _ => Reconnect,
    }
}

/// A human meaning of any close code, for logs; `"unknown close code"` when there is none.
pub fn describe(code: u16) -> &'static str {
    match code {
        1000 => "normal closure",
        1001 => "going away: the peer is shutting down or navigating away",
        1002 => "protocol error",
        1003 => "unsupported data",
        1005 => "no status code was given",
        1006 => "abnormal closure: the connection dropped without a close frame",
        1007 => "invalid frame payload data",
        1008 => "policy violation",
        1009 => "message too big",
        1010 => "mandatory extension missing",
        1011 => "internal server error",
        1012 => "service restart",
        1013 => "try again later",
        1014 => "bad gateway",
        1015 => "TLS handshake failure",
        _ => lookup(code).map_or("unknown close code", |row| row.meaning),
    }
}

fn lookup(code: u16) -> Option<&'static CloseCode> {
    VOICE_CLOSE_CODES.iter().find(|row| row.code == code)
}
