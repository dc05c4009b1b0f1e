//! `voice-proto`: the sans-IO core of a Discord voice connection.
//!
//! Everything a Discord voice client must decide, and nothing else: no sockets, no clock reads,
//! no threads, no async. Bytes and events go in with the current [`Instant`](std::time::Instant);
//! actions come out. The `voice-tokio` and `voice-std` crates wrap it with real I/O; anyone can
//! drive it from their own event loop, or fuzz it.
//!
//! It speaks the current protocol: voice gateway v8 (`seq_ack`, buffered resume), IP discovery,
//! the AEAD `*_rtpsize` transport modes (AES-256-GCM preferred, XChaCha20-Poly1305 required), DAVE
//! end-to-end encryption (the [`dave`] module, on by default), and the close-code policy (resume,
//! reconnect, wait for a move, or stop with a clear error).
//!
//! The documentation and comments cite the project's protocol notes, `docs/protocol.md` in the
//! repository: sections as "§8.2", conformance checklist items as "C1" to "C50", each of which
//! names the page of Discord's developer documentation it comes from.
//!
//! # DAVE end-to-end encryption
//!
//! With the default `dave` feature, Identify offers `max_dave_protocol_version: 1` and a Session
//! Description with version 1 starts the MLS handshake (ops 21-31) inside the engine: key
//! packages, commits, welcomes and transitions are outputs like any other frame. Audio is
//! DAVE-encrypted inside [`Session::poll_transmit`] once a sending key is in place; before that,
//! queued frames wait ([`Event::PlayoutHeld`]) and [`Session::is_connected`] is `false`. Received
//! frames are DAVE-decrypted with the sender's user id (from op 5); failures are counted and
//! reported as [`Event::DaveDecryptFailed`], never fatal (with receive on; off, nothing is
//! decrypted). Version 0 (Stage channels) is plain
//! Opus. Without the feature, version 0 is offered and only Stage channels work: Discord closes
//! other calls with 4017, a fatal "DAVE required" error.
//!
//! The one exception to "no clock reads": the `davey` crate reads `Instant::now()` inside the
//! DAVE calls, to expire old receive keys and passthrough windows; see [`dave`].
//!
//! # The states
//!
//! [`AwaitingServerUpdate`] → [`Identifying`] → [`Discovering`] → [`Session`]. Each transition
//! consumes the old state (`into_identifying`, `into_discovering`, `into_session`) and gives it
//! back unchanged while it is not complete, so audio cannot be sent before a Session Description
//! and misuse does not compile. After the handshake, resumes, reconnects and moves are run-time
//! events inside [`Session`]. [`AnyState`] holds whichever state a connection is in and advances
//! by itself; adapters keep one of those.
//!
//! # Lifecycle
//!
//! A join survives a bad start: before the first session as after it, a websocket that closes
//! or drops, a stage that times out or IP discovery without an answer are retried after a
//! jittered backoff ([`Config::backoff_range`], the first retry too), within
//! [`Config::join_timeout`] and [`Config::max_reconnect_attempts`]; the attempt counter starts
//! again only after a session stayed up [`Config::reconnect_reset_after`]. Every end of a
//! connection joined through the main gateway sends the op 4 leave exactly once. What each close
//! code does, and why, is the [`close`] module; the bounds on what the network can make the
//! core hold are [`limits`].
//!
//! # The drain rule
//!
//! After every `handle_input(now, input)` (and after every application call such as
//! [`Session::speaking`], [`Session::queue_opus`] or [`Session::disconnect`]), call
//! [`Session::poll_transmit`] until it returns `None`, then `poll_output` until it returns
//! [`Output::WakeAt`] or [`Output::Idle`], carrying out every other output in order. When the
//! wake-up time comes, feed [`Input::Timer`] (for the playout alone, polling transmits is enough).
//! That is the whole contract; both adapters and the loopback server's tests run exactly this
//! loop. With receive on ([`Config::receive`]), take [`Session::poll_received`] until `None` as
//! well: received audio is kept apart from the outputs.
//!
//! # Receiving
//!
//! Off by default: media datagrams are not decrypted. On, each sender's frames go through a
//! playout (jitter) buffer (order, duplicates and late packets, loss markers after a bounded
//! wait, talk spurts; its deadlines are part of [`Session::next_timer`]) and wait in bounded
//! queues for [`Session::poll_received`]; see [`receive`] for every rule.
//!
//! Audio is the exception to "outputs": the application queues Opus frames
//! ([`Session::queue_opus`]) and [`Session::poll_transmit`] writes each encrypted RTP datagram,
//! when its 20 ms slot has come, into a buffer the caller owns (no allocation per packet). The
//! playout rules (pacing, holding while the session cannot send, op 5 first, trailing silence)
//! are the core's: see [`playout`]. A driver may run the playout apart from the websocket (a
//! media worker shared by many connections): [`Session::next_transmit`] and
//! [`Session::next_timer`] give the two halves of `WakeAt`.
//!
//! # A complete connection, driven by hand
//!
//! Here the "server" is scripted inline with this crate's own payload types; an adapter would
//! send the outputs over a websocket and a UDP socket instead.
//!
//! ```
//! use std::time::Instant;
//! use voice_proto::discovery::{discovery_response, parse_discovery_request};
//! use voice_proto::gateway::{VoiceServerDispatch, VoiceStateDispatch};
//! use voice_proto::id::{ChannelId, GuildId, UserId};
//! use voice_proto::payload::{Encoded, Hello, Ready, ServerFrame, ServerMessage, SessionDescription};
//! use voice_proto::secret::{SecretKey, Token};
//! use voice_proto::{AwaitingServerUpdate, Config, Event, Input, JoinRequest, Output};
//!
//! // Server side of the script: JSON text frames numbered from 1.
//! let text = |seq, message| match (ServerFrame { seq, message }).encode() {
//!     Encoded::Text(text) => text,
//!     Encoded::Binary(_) => unreachable!(),
//! };
//! let (guild, channel, me) = (GuildId(1), ChannelId(2), UserId(3));
//! let media_server = "127.0.0.1:50001".parse().unwrap();
//! let now = Instant::now();
//!
//! // 1. Ask the main gateway to join: the first output is the op-4 payload.
//! let mut awaiting = AwaitingServerUpdate::new(now, Config::default(), JoinRequest::new(guild, channel, me));
//! let Output::MainGateway(op4) = awaiting.poll_output() else { unreachable!() };
//! assert!(op4.to_gateway_json().starts_with(r#"{"op":4"#));
//!
//! // 2. Forward both dispatches (either order).
//! awaiting.handle_input(now, Input::VoiceStateUpdate(VoiceStateDispatch {
//!     guild_id: Some(guild), channel_id: Some(channel), user_id: me, session_id: "abc".into(),
//! }))?;
//! awaiting.handle_input(now, Input::VoiceServerUpdate(VoiceServerDispatch {
//!     token: Token::new("secret"), guild_id: guild, endpoint: Some("voice.example:2048".into()),
//! }))?;
//! let mut identifying = awaiting.into_identifying().expect("both dispatches arrived");
//! let Output::OpenWebSocket { url } = identifying.poll_output() else { unreachable!() };
//! assert_eq!(url, "wss://voice.example:2048/?v=8");
//!
//! // 3. The websocket opened: Identify goes out. Hello starts heartbeats; Ready starts discovery.
//! identifying.handle_input(now, Input::WebSocketOpened)?;
//! let Output::SendText(identify) = identifying.poll_output() else { unreachable!() };
//! assert!(identify.contains(r#""op":0"#));
//! identifying.handle_input(now, Input::Text(&text(None, ServerMessage::Hello(Hello { heartbeat_interval: 13750.0, v: Some(8) }))))?;
//! identifying.handle_input(now, Input::Text(&text(Some(1), ServerMessage::Ready(Ready {
//!     ssrc: 12345, ip: "127.0.0.1".into(), port: 50001, modes: vec!["aead_aes256_gcm_rtpsize".into()],
//! }))))?;
//! let mut discovering = identifying.into_discovering().expect("Ready arrived");
//! assert_eq!(discovering.poll_output(), Output::BindUdp { remote: media_server });
//! let Output::Transmit { to, data: request } = discovering.poll_output() else { unreachable!() };
//!
//! // 4. The UDP answer carries our public address; Select Protocol goes out.
//! let ssrc = parse_discovery_request(&request).unwrap();
//! let answer = discovery_response(ssrc, "203.0.113.7".parse().unwrap(), 50004);
//! discovering.handle_input(now, Input::Datagram { from: to, data: &answer })?;
//! let Output::SendText(select) = discovering.poll_output() else { unreachable!() };
//! assert!(select.contains("203.0.113.7"));
//!
//! // 5. Session Description: the session is ready.
//! discovering.handle_input(now, Input::Text(&text(Some(2), ServerMessage::SessionDescription(SessionDescription {
//!     mode: "aead_aes256_gcm_rtpsize".into(), secret_key: SecretKey::new([7; 32]), dave_protocol_version: 0,
//! }))))?;
//! let mut session = discovering.into_session().expect("Session Description arrived");
//! assert!(matches!(session.poll_output(), Output::Event(Event::Connected { ssrc: 12345, .. })));
//!
//! // 6. Audio: queue 20 ms Opus frames; each comes out as one encrypted RTP packet in its slot.
//! session.queue_opus(&[0xFC, 0xFF, 0xFE]).unwrap();
//! session.queue_opus(&[0xFC, 0xFF, 0xFD]).unwrap();
//! let mut buf = [0u8; voice_proto::rtp::MAX_PACKET_LEN];
//! // The first poll queues op 5 Speaking, which must go out on the websocket first.
//! assert_eq!(session.poll_transmit(now, &mut buf), None);
//! assert!(matches!(session.poll_output(), Output::SendText(t) if t.contains(r#""op":5"#)));
//! let packet = session.poll_transmit(now, &mut buf).expect("the first frame is due");
//! assert_eq!((packet.destination, packet.len), (media_server, 12 + 3 + 20));
//! // The second frame is due 20 ms later, and the next wake-up says so.
//! assert_eq!(session.poll_transmit(now, &mut buf), None);
//! let later = now + voice_proto::playout::FRAME_DURATION;
//! assert_eq!(session.next_transmit(), Some(later));
//! assert!(session.poll_transmit(later, &mut buf).is_some());
//! # Ok::<(), voice_proto::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod close;
pub mod config;
pub mod crypto;
pub mod dave;
pub mod discovery;
mod engine;
pub mod error;
pub mod gateway;
pub mod heartbeat;
pub mod id;
pub mod io;
pub mod join;
pub mod limits;
pub mod payload;
pub mod playout;
pub mod receive;
pub mod rtp;
pub mod secret;
pub mod state;

pub use config::Config;
pub use engine::Stats;
pub use error::{Error, NotReady, ProtocolError, Stage};
pub use io::{DisconnectReason, Event, Input, Output, Recovery};
pub use join::{ConnectionInfo, JoinRequest};
pub use receive::{ReceiveConfig, Received};
pub use state::{AnyState, AwaitingServerUpdate, Discovering, Identifying, Session};
