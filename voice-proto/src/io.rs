//! The sans-IO vocabulary: what happened ([`Input`]), what to do ([`Output`]) and what to tell the
//! application ([`Event`]).

use core::time::Duration;
use std::net::SocketAddr;
use std::time::Instant;

use crate::close::CloseDisposition;
use crate::crypto::EncryptionMode;
use crate::error::Error;
use crate::gateway::{VoiceServerDispatch, VoiceStateDispatch, VoiceStateUpdate};
use crate::id::UserId;
use crate::payload::SpeakingFlags;
use crate::playout::HoldReason;

/// Something that happened, fed to `handle_input` together with the current time.
///
/// Frames and datagrams are borrowed: the engine copies what it keeps.
///
/// `Debug` never shows a secret: a Session Description text frame is shown decoded, with the
/// `secret_key` redacted (and the token of a `VOICE_SERVER_UPDATE` is redacted by its type).
#[derive(Clone, PartialEq)]
pub enum Input<'a> {
    /// Our VOICE_STATE_UPDATE dispatch from the main gateway (others' are ignored).
    VoiceStateUpdate(VoiceStateDispatch),
    /// A VOICE_SERVER_UPDATE dispatch from the main gateway.
    VoiceServerUpdate(VoiceServerDispatch),
    /// The websocket asked for by the latest [`Output::OpenWebSocket`] is open.
    WebSocketOpened,
    /// A text frame arrived on the voice websocket.
    Text(&'a str),
    /// A binary frame arrived on the voice websocket.
    Binary(&'a [u8]),
    /// The voice websocket closed. `code` is `None` when the transport dropped without a close
    /// frame. Not to be reported for a socket the engine itself closed ([`Output::CloseWebSocket`]).
    WebSocketClosed {
        /// The close code from the server's close frame.
        code: Option<u16>,
    },
    /// A UDP datagram arrived on the socket bound by the latest [`Output::BindUdp`].
    Datagram {
        /// Who sent it.
        from: SocketAddr,
        /// Its bytes.
        data: &'a [u8],
    },
    /// The time given by [`Output::WakeAt`] has come (any input also runs due timers).
    Timer,
}

impl core::fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Input::VoiceStateUpdate(d) => f.debug_tuple("VoiceStateUpdate").field(d).finish(),
            Input::VoiceServerUpdate(d) => f.debug_tuple("VoiceServerUpdate").field(d).finish(),
            Input::WebSocketOpened => f.write_str("WebSocketOpened"),
            Input::Text(text) => f
                .debug_tuple("Text")
                .field(&RedactedServerText(text))
                .finish(),
            Input::Binary(bytes) => f.debug_tuple("Binary").field(bytes).finish(),
            Input::WebSocketClosed { code } => f
                .debug_struct("WebSocketClosed")
                .field("code", code)
                .finish(),
            Input::Datagram { from, data } => f
                .debug_struct("Datagram")
                .field("from", from)
                .field("data", data)
                .finish(),
            Input::Timer => f.write_str("Timer"),
        }
    }
}

/// A server text frame in `Debug`: as is, unless it carries a `secret_key` (Session
/// Description), which is shown decoded with the key redacted.
struct RedactedServerText<'a>(&'a str);

impl core::fmt::Debug for RedactedServerText<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if !self.0.contains("secret_key") {
            return core::fmt::Debug::fmt(self.0, f);
        }
        match crate::payload::ServerFrame::decode_text(self.0) {
            Ok(frame) => core::fmt::Debug::fmt(&frame, f),
            Err(_) => f.write_str("<a frame with a secret_key, redacted>"),
        }
    }
}

/// Something to do, returned by `poll_output`. Drain until [`Output::WakeAt`] or
/// [`Output::Idle`].
///
/// `Debug` never shows a secret: Identify and Resume frames are shown decoded, with the token
/// redacted.
#[derive(Clone, PartialEq)]
pub enum Output {
    /// Send this op-4 payload on the application's main gateway.
    MainGateway(VoiceStateUpdate),
    /// Open a new voice websocket at this URL, dropping any previous one without reporting its close.
    OpenWebSocket {
        /// `wss://host:port/?v=8`, or the configured override.
        url: String,
    },
    /// Send a text frame on the voice websocket.
    SendText(String),
    /// Send a binary frame on the voice websocket.
    SendBinary(Vec<u8>),
    /// Close the voice websocket with this code and report nothing more about it.
    CloseWebSocket {
        /// The close code to send (1000 when we leave, 4000 when we abandon a dead socket).
        code: u16,
    },
    /// Bind a fresh UDP socket (dropping any previous one) for media with this server.
    BindUdp {
        /// The voice server's media address from Ready.
        remote: SocketAddr,
    },
    /// Send this datagram on the UDP socket (IP discovery, keepalive). Audio goes through the
    /// allocation-free [`Session::poll_transmit`](crate::Session::poll_transmit) instead.
    Transmit {
        /// Destination.
        to: SocketAddr,
        /// The datagram.
        data: Vec<u8>,
    },
    /// Tell the application.
    Event(Event),
    /// Nothing more to do until this time (or the next input): then feed [`Input::Timer`].
    WakeAt(Instant),
    /// Nothing more to do and no timer: the connection has ended.
    Idle,
}

impl core::fmt::Debug for Output {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Output::MainGateway(update) => f.debug_tuple("MainGateway").field(update).finish(),
            Output::OpenWebSocket { url } => {
                f.debug_struct("OpenWebSocket").field("url", url).finish()
            }
            Output::SendText(text) => f
                .debug_tuple("SendText")
                .field(&RedactedText(text))
                .finish(),
            Output::SendBinary(bytes) => f.debug_tuple("SendBinary").field(bytes).finish(),
            Output::CloseWebSocket { code } => f
                .debug_struct("CloseWebSocket")
                .field("code", code)
                .finish(),
            Output::BindUdp { remote } => {
                f.debug_struct("BindUdp").field("remote", remote).finish()
            }
            Output::Transmit { to, data } => f
                .debug_struct("Transmit")
                .field("to", to)
                .field("data", data)
                .finish(),
            Output::Event(event) => f.debug_tuple("Event").field(event).finish(),
            Output::WakeAt(at) => f.debug_tuple("WakeAt").field(at).finish(),
            Output::Idle => f.write_str("Idle"),
        }
    }
}

/// A websocket text frame of ours in `Debug`: as is, unless it carries the token (Identify,
/// Resume), which is shown decoded with the token redacted.
struct RedactedText<'a>(&'a str);

impl core::fmt::Debug for RedactedText<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if !self.0.contains("\"token\"") {
            return core::fmt::Debug::fmt(self.0, f);
        }
        match crate::payload::ClientMessage::decode_text(self.0) {
            Ok(message) => core::fmt::Debug::fmt(&message, f),
            Err(_) => f.write_str("<a frame with a token, redacted>"),
        }
    }
}

/// How the engine is coming back after the websocket closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Op 7 Resume on a new websocket; SSRC, UDP and keys are kept.
    Resume,
    /// A fresh Identify (after a new op 4 when a main gateway is attached); new UDP and keys.
    Reconnect,
}

/// Why the engine is waiting for a new voice server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// Close 4014 (kicked, moved, main-gateway session dropped) or 4022 (call terminated).
    Closed {
        /// The close code.
        code: u16,
    },
    /// VOICE_SERVER_UPDATE carried `endpoint: null`: a new server is being allocated.
    EndpointRemoved,
    /// Our VOICE_STATE_UPDATE said we are in no channel any more.
    LeftChannel,
}

/// Something the application may want to know.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A session is established (first connection or after a fresh reconnect).
    Connected {
        /// Our SSRC.
        ssrc: u32,
        /// The negotiated transport mode.
        mode: EncryptionMode,
        /// DAVE version from Session Description (0 = none).
        dave_protocol_version: u16,
    },
    /// An attempt failed (the websocket closed or was declared dead, a stage timed out), before
    /// the first session or after it, and the engine tries again after a jittered backoff
    /// ([`Config::backoff_range`](crate::Config::backoff_range) for `attempt`).
    Reconnecting {
        /// Resume or fresh reconnect.
        recovery: Recovery,
        /// The close code that caused it (`None`: dropped, or dead heartbeat).
        code: Option<u16>,
        /// 1-based attempt number, counting failures in a row (the counter starts again once a
        /// session stayed up [`Config::reconnect_reset_after`](crate::Config::reconnect_reset_after)).
        attempt: u32,
    },
    /// A resume succeeded (op 9): audio goes on with the same SSRC and keys.
    Resumed,
    /// We were removed from the voice server; waiting for a new one.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
    /// The connection has ended for good; nothing more will happen.
    Closed {
        /// Why.
        error: Error,
    },
    /// Someone's speaking state (server op 5).
    Speaking {
        /// Who.
        user_id: UserId,
        /// Their SSRC.
        ssrc: u32,
        /// Their flags.
        flags: SpeakingFlags,
    },
    /// Users present at join or joining later (op 11).
    ClientsConnected {
        /// Their ids.
        user_ids: Vec<UserId>,
    },
    /// A user left (op 13); their SSRC mapping is dropped.
    ClientDisconnected {
        /// Who.
        user_id: UserId,
    },
    /// A heartbeat was acknowledged.
    HeartbeatAcknowledged {
        /// Round trip time.
        latency: Duration,
    },
    /// An opcode outside the table: ignored, reported for curiosity.
    UnknownOpcode {
        /// The opcode.
        op: u8,
        /// The raw payload: JSON text, or binary bytes as hex; at most
        /// [`limits::UNKNOWN_OPCODE_PAYLOAD`](crate::limits::UNKNOWN_OPCODE_PAYLOAD) bytes of
        /// it, a longer one cut and marked `... (N bytes, cut)`.
        raw: String,
    },
    /// A frame or datagram was malformed or out of place and was ignored.
    Ignored {
        /// What was wrong.
        reason: String,
    },
    /// A DAVE transition took effect (op 22, or at once for transition id 0): the protocol version
    /// and keys of our outgoing audio changed.
    DaveTransition {
        /// The transition (0 = (re)initialisation, executed without op 22).
        transition_id: u16,
        /// Protocol version before (0 = no end-to-end encryption).
        from: u16,
        /// Protocol version now.
        to: u16,
    },
    /// Our audio is end-to-end encrypted from now on (sent after each executed transition that
    /// leaves us with a sending key).
    DaveReady {
        /// The DAVE protocol version.
        protocol_version: u16,
        /// The MLS epoch of the group.
        epoch: u64,
        /// The voice privacy code users can compare, if known: 30 ASCII digits without
        /// separators (Discord's UI shows them in groups of 5).
        privacy_code: Option<String>,
    },
    /// A received frame could not be DAVE-decrypted and was dropped (never fatal).
    DaveDecryptFailed {
        /// Sender's SSRC.
        ssrc: u32,
        /// Sender's user id, if op 5 told us.
        user_id: Option<UserId>,
        /// Consecutive failures so far; more than 36 with keys and no pending transition trigger
        /// the op 31 recovery ([`Event::DaveRecovery`]).
        consecutive: u32,
        /// What went wrong.
        reason: String,
    },
    /// A DAVE commit or welcome failed (or too many frames failed to decrypt): op 31 went out, the
    /// DAVE session was re-initialised and a new key package sent. Audio waits
    /// ([`Event::PlayoutHeld`] with [`HoldReason::DaveKeysPending`]) only if no key is left.
    DaveRecovery {
        /// The transition reported as invalid.
        transition_id: u16,
        /// Why.
        reason: String,
    },
    /// A DAVE message from the gateway could not be used (bad proposals, an external sender that
    /// does not parse, ...). The connection goes on.
    DaveMessageFailed {
        /// The opcode concerned.
        op: crate::payload::Opcode,
        /// What went wrong.
        reason: String,
    },
    /// Queued audio waits instead of going out (sent once per new reason; see
    /// [`playout`](crate::playout)). Nothing is dropped: frames stay queued and the application's
    /// producer sees backpressure until [`Event::PlayoutResumed`].
    PlayoutHeld {
        /// Why.
        reason: HoldReason,
    },
    /// The wait reported by [`Event::PlayoutHeld`] is over: audio flows again (or the queue was
    /// emptied by a stop).
    PlayoutResumed {
        /// What it had waited for last.
        reason: HoldReason,
    },
    /// The close code table was consulted (for logs and tests).
    CloseHandled {
        /// The code, `None` for a dropped transport.
        code: Option<u16>,
        /// What the table said.
        disposition: CloseDisposition,
    },
}
