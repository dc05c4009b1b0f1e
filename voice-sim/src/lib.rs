//! `voice-sim`: a loopback Discord voice server for tests.
//!
//! [`VoiceServer::start`] binds a voice gateway (websocket, `ws://` or `wss://` with a freshly
//! generated CA) and a UDP media server on 127.0.0.1, hands out connection info per expected
//! client ([`VoiceServer::expect_client`]), plays the server side of gateway v8 (docs/protocol.md), and
//! checks everything a client does. Deviations become [`Violation`]s in a [`Report`]; nothing a
//! client sends can crash the server or disturb another client. Received Opus frames are kept per
//! SSRC ([`VoiceServer::frames`]) so tests can assert byte-exact delivery.
//!
//! The protocol types are voice-proto's: payloads ([`voice_proto::payload`]), IP discovery,
//! transport crypto and RTP parsing are never re-implemented here.
//!
//! ```no_run
//! # async fn demo() -> Result<(), voice_sim::SimError> {
//! use voice_sim::{ServerConfig, VoiceServer};
//! let server = VoiceServer::start(ServerConfig { tls: true, ..ServerConfig::default() }).await?;
//! let client = server.expect_client();        // endpoint, guild/channel/user ids, session, token
//! println!("{}", serde_json::to_string(&client).unwrap_or_default());
//! // ... let the client under test connect to `client.endpoint` ...
//! let report = server.shutdown().await;
//! assert!(report.violations.is_empty(), "{report}");
//! # Ok(()) }
//! ```
//!
//! # What the server does
//!
//! - Hello (`heartbeat_interval` from [`ServerConfig::heartbeat_interval`], `v: 8`) right after
//!   the websocket opens, unnumbered; any path and query are accepted.
//! - Identify → Ready (`ssrc` random, `ip` 127.0.0.1, the UDP port, [`ServerConfig::modes`]).
//!   Wrong token/ids → close 4004; unknown session → close 4006.
//! - IP discovery requests are answered on the shared UDP socket with the observed address.
//! - Select Protocol → Session Description with a random 32-byte key and
//!   `dave_protocol_version` 0, or 1 with the DAVE role on ([`DaveConfig`], below).
//! - Heartbeat → ACK echoing `t` (unless a scenario says otherwise).
//! - `seq` numbers every Ready, Session Description, Speaking, Clients Connect, Client Disconnect
//!   and garbage message, from 1, one counter per voice session shared by JSON and binary frames
//!   (Hello, Heartbeat ACK and Resumed are unnumbered). A fresh Identify restarts the counter.
//! - Resume → Resumed (op 9), then the replay of every buffered message with `seq > seq_ack`.
//!   After a server close with 4015 or a code below 4000 the session stays resumable; after any
//!   other code a Resume is refused with 4006, and so is a Resume that missed a message no longer
//!   in the replay buffer ([`ServerConfig::replay_buffer`]).
//! - A dropped websocket (no close frame) is not a violation: clients resume after it.
//! - Many clients share the UDP port; packets are demultiplexed by SSRC and checked against the
//!   address each client discovered.
//! - Clients registered in one channel ([`VoiceServer::expect_client_in`]) hear each other: each
//!   client's audio is relayed to the others re-encrypted with the receiver's key, and the server
//!   sends op 11 when a member's session starts, op 5 (with `user_id`) when it speaks and op 13
//!   when it leaves (closes with 1000).
//!
//! # DAVE (end-to-end encryption)
//!
//! With [`ServerConfig::dave`] enabled the server plays the voice gateway's DAVE role
//! (docs/protocol.md 9): it is each channel's MLS external sender (openmls, the version davey uses),
//! sends op 25 after Session Description, turns op 26 key packages into external Add/Remove
//! proposals (op 27), announces the first valid commit (op 29) and delivers its welcome (op 30),
//! runs transitions (op 23 from every participant, then op 22), downgrades the call to version 0
//! while a user without DAVE is there (op 21/22) and upgrades it after (op 24 and a new group).
//! With [`DaveConfig::required`] a client whose Identify does not allow DAVE is closed with 4017.
//! Simulated users ([`SimulatedUser::dave`]) are real group members: davey sessions inside the
//! server that DAVE-encrypt what they say and decrypt what clients send, so the media checks see
//! through both layers ([`VoiceServer::frames`] keeps the decrypted Opus). A lone member gets no
//! key, as on Discord; DAVE cases therefore put a simulated listener in the call
//! ([`adapter_cases::dave_call`]).
//!
//! # What is validated (the checklist)
//!
//! | check | kind | docs/protocol.md |
//! |---|---|---|
//! | websocket URL has `v=8` | [`GatewayVersion`](ViolationKind::GatewayVersion) | 1.2 |
//! | text frame is a JSON object with an integer `op` in 0..=255 | `MalformedJson` | 2.1 |
//! | Identify: `server_id`/`user_id` digit strings, `session_id`/`token` strings, `max_dave_protocol_version` integer | `InvalidPayload` | C5 |
//! | Select Protocol: `protocol` string, `data.{address: string, port: 1..=65535, mode: string}` | `InvalidPayload` | C15 |
//! | Speaking: `speaking`, `ssrc` u32 integers, `delay` present | `InvalidPayload` | C20 |
//! | Resume: ids/token strings, integer `seq_ack` | `InvalidPayload` | C9 |
//! | Heartbeat is `{t: integer ≤ 2^53-1, seq_ack: integer}` | `HeartbeatShape` | C7 |
//! | `seq_ack` (heartbeat, resume) is in -1..=last seq sent | `SeqAck` | C8 |
//! | nothing but Identify/Resume/Heartbeat before Identify/Resume | `NotAuthenticated` | 5 (4003) |
//! | Identify/Resume only once per websocket | `AlreadyAuthenticated` | C5 (4005) |
//! | token, user id and guild id match | `AuthenticationFailed` | 5 (4004) |
//! | session id known | `UnknownSession` | 5 (4006) |
//! | Select Protocol after IP discovery, only once; Speaking after Session Description; no DAVE ops when DAVE is 0; no Resume after a close that forbids it | `OpOrder` | 1.3, C11-C12 |
//! | Select Protocol address/port equal the discovery answer | `SelectProtocolAddress` | C15 |
//! | `protocol` is `"udp"` (else close 4012) | `ProtocolNotUdp` | 5 |
//! | mode is one Ready offered and the server implements (else close 4016) | `ModeNotOffered` | C16 |
//! | Speaking's `ssrc` is the client's | `SpeakingSsrc` | C20 |
//! | no audio (non-silence) while speaking flags are 0 (250 ms grace for the websocket/UDP race) | `AudioBeforeSpeaking` | C20 |
//! | no RTP before Session Description | `AudioBeforeSessionDescription` | 1.3 |
//! | datagrams from a client are RTP v2 PT 120, RTCP, discovery or 4/8-byte keepalives; RTP headers, extension and padding consistent | `MalformedPacket` | 7, 10 |
//! | every RTP packet decrypts under the negotiated mode and key | `DecryptFailure` | 8.2 |
//! | transport nonce strictly increases (wrap allowed) | `NonceReuse` | C25 |
//! | in-order packets advance the timestamp 960 per sequence step | `TimestampStep` | C19 |
//! | RTP for a client's SSRC comes from the address it discovered | `ForeignSource` | 6 |
//! | discovery requests are 74 bytes, type 1, known SSRC | `BadDiscoveryRequest` | C13 |
//! | websocket framing, message size ≤ [`ServerConfig::max_message_size`] | `WebSocket` | 11 |
//! | client binary frames are only ops 26/28 (and only with DAVE) | `UnexpectedBinary` | C32 |
//! | opcodes are client opcodes from the table (12, 14, 15, 16, 32 tolerated) | `UnknownOpcode` | 2.2 |
//! | op 26 is a valid KeyPackage: ciphersuite 2, credential = user id (8 bytes BE); op 28 is a PublicMessage commit for the channel's group and the proposals' epoch, with a Welcome exactly when it adds members; a commit within the timeout | `DaveMls` | 9.1-9.3 |
//! | op 23 names a transition the server announced, and comes within the timeout | `DaveTransition` | 9.3 |
//! | DAVE frames decrypt with a group member's key | `DaveDecryptFailure` | 9.4 |
//! | no non-silence audio without DAVE after the client's E2EE transition executed | `DavePlaintext` | 9.3 |
//!
//! Advisories (reported apart, never failures): fewer than five trailing silence frames per talk
//! spurt (`FewSilenceFrames`; @discordjs/voice sends four), Identify without DAVE support
//! (`NoDaveSupport`), plain audio in an end-to-end encrypted call before the client held its keys
//! (`DavePlainBeforeKeyed`; @discordjs/voice does this), audio after a resume before a new op 5 (`NoSpeakingAfterResume`), a
//! heartbeat later than 1.5 intervals + 250 ms after Hello or the previous one (`HeartbeatLate`).
//!
//! Media statistics per SSRC (packets, bytes, decrypt failures, gaps, missing, duplicates,
//! reordering, timestamp errors, jitter p50/p99/max, talk spurts and their trailing silence) are
//! in [`stats`] and each [`StreamReport`].
//!
//! # Scenarios
//!
//! [`Scenario`] makes the server misbehave on purpose: close with a code after a time or a packet
//! count, stop acknowledging heartbeats, send garbage (unknown opcode, malformed JSON, unexpected
//! binary frame), never answer IP discovery, simulated users who join (op 11), speak (op 5 and
//! encrypted RTP with a header extension) and leave (op 13), impaired by a sans-IO network
//! emulator ([`netem`]: loss, bursts, duplication, reordering, jitter; what it did to each frame
//! is in [`VoiceServer::spoken`]), loss and delay on server-sent media,
//! delay on server-sent websocket frames, opcodes the server never sends (to exercise a
//! client's handshake deadlines), and a bad start: each client's first websocket ended right
//! after Identify (a close code, or TCP dropped) and its first IP discovery request lost.
//! The `voice-sim` binary exposes all of it (`voice-sim --help`).
//!
//! # Counting mode (load benchmarks)
//!
//! [`ServerConfig::counting`] keeps the gateway as it is and replaces the media path with a cheap
//! counter on its own thread (header, SSRC, source address, sequence, timestamp step, kernel
//! receive timestamps, one packet in 64 decrypted), with measurement windows
//! ([`VoiceServer::open_window`], [`VoiceServer::close_window`] → [`load::LoadReport`]). The
//! [`load`] module runs it as a child process for benchmarks, measures the client process, and
//! has a reference load generator; its docs say what every figure means.
//!
//! # Test support
//!
//! [`testing`] has a raw scripted client ([`testing::RawClient`], any frame well-formed or not),
//! an RTP packet builder ([`testing::MediaSender`]) and voice-proto's own engine driven over real
//! sockets with the drain rule ([`testing::EngineClient`]). [`adapter_cases`] holds the
//! scenarios and assertions both adapters' test suites share. `tests/interop_discordjs.rs` runs
//! the real @discordjs/voice client against the server (see the crate README).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod adapter_cases;
pub mod config;
mod dave;
pub mod error;
mod gateway;
pub mod load;
mod media;
pub mod netem;
pub mod ogg_opus;
pub mod report;
mod scenario;
mod server;
pub mod stats;
pub mod testing;
pub mod tls;
pub mod validate;

pub use config::{
    AckPolicy, CloseRule, DaveConfig, FirstClose, Garbage, Scenario, ScenarioStep, ServerConfig,
    SimulatedUser, Trigger, DEFAULT_MODES,
};
pub use error::SimError;
pub use netem::NetemConfig;
pub use report::{
    ClientReport, ConnectionReport, DaveChannelReport, NetemReport, Report, SpokenFrame,
    SpokenStream, StreamReport, Violation, ViolationKind,
};
pub use server::{ExpectedClient, ReceivedFrame, VoiceServer};
