//! Voice websocket close codes as data: what each one means and what to do next (docs/protocol.md 5).
//!
//! [`disposition`] is the whole policy; [`VOICE_CLOSE_CODES`] is the table behind it for the
//! Discord-specific codes, and [`describe`] gives a human meaning for logs.
//!
//! # What the engine does with a disposition
//!
//! Every retry waits a jittered backoff first ([`Config::backoff_range`](crate::Config::backoff_range):
//! half to all of 0.5 s, 1 s, 2 s, ... up to 30 s by default), also the first; the attempt
//! counter starts again only after a session stayed up for
//! [`Config::reconnect_reset_after`](crate::Config::reconnect_reset_after) (60 s), and after
//! [`Config::max_reconnect_attempts`](crate::Config::max_reconnect_attempts) (5) in a row the
//! connection ends with [`Error::TooManyReconnects`](crate::Error::TooManyReconnects). Before the
//! first session, a close that is not fatal is retried the same way within the join deadline
//! ([`Config::join_timeout`](crate::Config::join_timeout), 30 s; discord.py retries a failed
//! handshake five times), ending with [`Error::JoinFailed`](crate::Error::JoinFailed). Every end
//! of a connection joined through the main gateway sends the op 4 leave, once.
//!
//! # 4004: one rejoin, then fatal
//!
//! 4004 ("authentication failed") means the token in Identify or Resume was refused. Discord's
//! documentation gives no action; @discordjs/voice rejoins through op 4 on every close other than
//! 4014, 4021 and 4022 (`VoiceConnection.onNetworkingClose`, counting `rejoinAttempts`), and
//! discord.py's `_poll_voice_ws` treats it like any unhandled code: backoff, then a full
//! reconnect that sends op 4 again. A token can go stale in the short race between a
//! `VOICE_SERVER_UPDATE` and the Identify that uses it, and a rejoin through op 4 makes Discord
//! issue a new one, so we rejoin too, but only **once** ([`CloseDisposition::RejoinOnce`]): a
//! second 4004 before a session is established means the token cannot be fixed by asking again
//! and the connection ends with [`FatalReason::AuthenticationFailed`]. Without a main gateway
//! ([`ConnectionInfo`](crate::ConnectionInfo)) no new token can come, so 4004 is fatal at once.
//! A rejoin reuses the session id we hold until a new `VOICE_STATE_UPDATE` brings another one:
//! Discord sends only `VOICE_SERVER_UPDATE` when the channel is unchanged.

use CloseDisposition::{AwaitMove, Fatal, Reconnect, RejoinOnce, Resume};

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
    /// Rejoin once through main-gateway op 4 so that Discord issues a new token; end with the
    /// reason when it happens again before a session is established, or when no main gateway is
    /// attached (4004; see the module docs).
    RejoinOnce(FatalReason),
    /// We closed normally (1000) because the connection was finished.
    Finished,
}

/// Why a close code ends the connection for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum FatalReason {
    /// 4004 (fatal when a rejoin did not help, or without a main gateway).
    #[error(
        "the voice server rejected the token (close 4004 authentication failed), and a rejoin did \
         not bring a token it accepts (or no main gateway is attached to ask for one); check \
         that the VOICE_SERVER_UPDATE and VOICE_STATE_UPDATE forwarded are this bot's, for this \
         guild"
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
/// | code | disposition | why |
/// |---|---|---|
/// | 4001, 4002, 4003, 4005, 4012, 4020 | `Reconnect` | a client bug; a fresh session usually clears it, and backoff plus the attempt limit keep a real bug from looping |
/// | 4004 | `RejoinOnce(AuthenticationFailed)` | a new token through op 4, once (discord.js and discord.py rejoin); fatal when it repeats before a session, or without a main gateway (module docs) |
/// | 4006, 4011 | `Reconnect` | the session is gone: a fresh join through op 4 (C12) |
/// | 4009 | `Reconnect` | session timeout: libraries disagree (songbird resumes, discord.js rejoins); a timed-out session cannot be resumed reliably |
/// | 4013 | `Resume` | unofficial (UDOC): WebRTC crashed |
/// | 4014, 4022 | `AwaitMove` | kicked, moved or call ended: never resume; connect again only if a new `VOICE_SERVER_UPDATE` comes within `move_timeout` |
/// | 4015 | `Resume` | voice server crashed (every peer resumes) |
/// | 4016 | `Fatal(UnknownEncryptionMode)` | our bug: retrying selects the same mode |
/// | 4017 | `Fatal(DaveRequired)` | never retry without DAVE (C11) |
/// | 4021 | `Fatal(RateLimited)` | retrying makes it worse (Discord's docs: do not reconnect) |
///
/// Every other 4xxx code reconnects (with backoff); 1000..=3999 and a dropped transport resume.
// One row per line reads as the table it is.
#[rustfmt::skip]
pub const VOICE_CLOSE_CODES: [CloseCode; 17] = [
    row(4001, "unknown opcode: the client sent an invalid opcode", Reconnect),
    row(4002, "failed to decode payload: the client sent an invalid payload", Reconnect),
    row(4003, "not authenticated: a payload was sent before Identify", Reconnect),
    row(4004, "authentication failed: the token in Identify is wrong", RejoinOnce(FatalReason::AuthenticationFailed)),
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
