//! The bodies of the `voice-proto` fuzz targets, as plain functions.
//!
//! This module is compiled twice (a directory with a `mod.rs`, so that its files resolve the same
//! way from both): by the cargo-fuzz crate (`fuzz/src/lib.rs`, used by
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

mod dave;
mod driver;
mod fixtures;
mod payload;
mod script;

pub use dave::*;
pub use driver::Driver;
use driver::Ws;
pub use fixtures::*;
use payload::*;
pub use script::*;

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
