//! The voice gateway: one task per websocket, validating every client frame.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use voice_proto::close::describe as describe_close;
use voice_proto::crypto::{EncryptionMode, TransportCipher};
use voice_proto::id::UserId;
use voice_proto::payload::{ClientDisconnect, ClientsConnect};
use voice_proto::payload::{
    ClientMessage, Encoded, Heartbeat, HeartbeatAck, Hello, Identify, Ready, Resume,
    SelectProtocol, ServerFrame, ServerMessage, SessionDescription, Speaking,
};
use voice_proto::secret::SecretKey;

use crate::config::{AckPolicy, FirstClose, Scenario};
use crate::report::{ConnectionReport, ViolationKind};
use crate::server::{ConnHandle, Control, Shared, State};
use crate::validate;

/// Opcodes a client may send that the server ignores without complaint (video, session update,
/// media sink wants, backend version, no route: user-client features).
const TOLERATED_OPS: [u8; 5] = [12, 14, 15, 16, 32];

/// How long a websocket (and TLS) handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts TCP connections until shutdown, one task each.
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                let shutdown = shutdown.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(stream)) => serve(shared, stream, shutdown).await,
                                _ => {
                                    tracing::debug!(%peer, "TLS handshake failed");
                                    shared.lock().failed_handshakes += 1;
                                }
                            }
                        }
                        None => serve(shared, stream, shutdown).await,
                    }
                });
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// One websocket connection.
struct Conn {
    id: u64,
    tx: mpsc::UnboundedSender<Control>,
    /// The client, once Identify or Resume named a known session.
    client: Option<usize>,
    /// Index in the client's connection list.
    index: Option<usize>,
    /// Identify or Resume succeeded on this websocket.
    authenticated: bool,
    /// This is the client's first websocket (heartbeat scenarios apply).
    first: bool,
    heartbeats_acked: u32,
    report: ConnectionReport,
    /// A bad `v=` query, not yet recorded: `(at_ms, detail)`.
    version_problem: Option<(u64, String)>,
    /// When Hello went out or the last heartbeat arrived.
    last_beat: Instant,
}

async fn serve<S>(shared: Arc<Shared>, stream: S, mut shutdown: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut path = String::new();
    #[allow(clippy::result_large_err)] // tungstenite's callback signature
    let callback = |request: &Request, response: Response| {
        path = request.uri().to_string();
        Ok(response)
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(shared.config.max_message_size))
        .max_frame_size(Some(shared.config.max_message_size));
    let accepted = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)),
    )
    .await;
    let mut ws = match accepted {
        Ok(Ok(ws)) => ws,
        _ => {
            shared.lock().failed_handshakes += 1;
            return;
        }
    };
    let opened = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = shared.lock().next_conn_id();
    let mut conn = Conn {
        id,
        tx,
        client: None,
        index: None,
        authenticated: false,
        first: false,
        heartbeats_acked: 0,
        version_problem: None,
        last_beat: opened,
        report: ConnectionReport {
            opened_ms: shared.ms(opened),
            path: path.clone(),
            ..ConnectionReport::default()
        },
    };
    let version = query_version(&path);
    if version.as_deref() != Some("8") {
        let detail = match version {
            Some(v) => format!("websocket URL `{path}` asks for gateway version {v}, expected v=8"),
            None => format!("websocket URL `{path}` has no v= query parameter, expected v=8"),
        };
        // Recorded once the client names itself (Identify/Resume), or at the end if it never does.
        conn.version_problem = Some((shared.ms(opened), detail));
    }

    // Hello right after open (unnumbered, like Discord's).
    let hello = ServerFrame::new(ServerMessage::Hello(Hello {
        heartbeat_interval: shared.config.heartbeat_interval.as_secs_f64() * 1000.0,
        v: Some(8),
    }))
    .encode();
    let scenario = &shared.config.scenario;
    if !withheld(scenario, &hello) && ws.send(to_message(hello)).await.is_err() {
        finish(&shared, &conn, None);
        return;
    }

    // Frames held back by `Scenario::ws_delay`, with the time each is due.
    let mut delayed: VecDeque<(tokio::time::Instant, Encoded)> = VecDeque::new();
    let mut client_close = None;
    loop {
        let next_due = delayed.front().map(|(due, _)| *due);
        tokio::select! {
            _ = sleep_until(next_due) => {
                if let Some((_, frame)) = delayed.pop_front() {
                    let Ok(()) = ws.send(to_message(frame)).await else { break };
                }
            }
            incoming = ws.next() => {
                match incoming {
                    None => break,
                    Some(Err(error)) => {
                        // A dropped transport is not a protocol violation (clients resume after it).
                        let dropped = matches!(
                            error,
                            WsError::ConnectionClosed
                                | WsError::AlreadyClosed
                                | WsError::Io(_)
                                | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)
                        );
                        if !dropped {
                            let mut state = shared.lock();
                            let at = shared.ms(Instant::now());
                            state.violate(at, conn.client, ViolationKind::WebSocket, format!("websocket error: {error}"));
                        }
                        break;
                    }
                    Some(Ok(Message::Text(text))) => on_text(&shared, &mut conn, text.as_str()),
                    Some(Ok(Message::Binary(bytes))) => on_binary(&shared, &mut conn, &bytes),
                    Some(Ok(Message::Close(frame))) => {
                        client_close = Some(frame.map_or(1005, |f| u16::from(f.code)));
                        break;
                    }
                    Some(Ok(_)) => {}
                }
            }
            control = rx.recv() => {
                match control {
                    Some(Control::Send(frame)) if withheld(scenario, &frame) => {}
                    Some(Control::Send(frame)) if !scenario.ws_delay.is_zero() => {
                        delayed.push_back((tokio::time::Instant::now() + scenario.ws_delay, frame));
                    }
                    Some(Control::Send(frame)) => {
                        let Ok(()) = ws.send(to_message(frame)).await else { break };
                    }
                    Some(Control::Close(code)) => {
                        conn.report.server_close = Some(code);
                        let frame = CloseFrame { code: CloseCode::from(code), reason: describe_close(code).into() };
                        let _ = ws.send(Message::Close(Some(frame))).await;
                        // Wait briefly for the client's close reply.
                        let _ = tokio::time::timeout(Duration::from_secs(1), async {
                            while let Some(Ok(message)) = ws.next().await {
                                if let Message::Close(frame) = message {
                                    client_close = Some(frame.map_or(1005, |f| u16::from(f.code)));
                                    break;
                                }
                            }
                        }).await;
                        break;
                    }
                    Some(Control::Drop) => break,
                    None => {}
                }
            }
            _ = shutdown.changed() => {
                let frame = CloseFrame { code: CloseCode::Away, reason: "server shutting down".into() };
                let _ = ws.send(Message::Close(Some(frame))).await;
                break;
            }
        }
    }
    finish(&shared, &conn, client_close);
}

/// Records the end of a connection and detaches it from its client.
fn finish(shared: &Shared, conn: &Conn, client_close: Option<u16>) {
    let now = Instant::now();
    let mut state = shared.lock();
    if let Some((at, detail)) = conn.version_problem.clone() {
        state.violate(at, conn.client, ViolationKind::GatewayVersion, detail);
    }
    let Some(client) = conn.client.and_then(|c| state.clients.get_mut(c)) else {
        return;
    };
    let current = client.conn.as_ref().is_some_and(|h| h.id == conn.id);
    if current {
        client.conn = None;
    }
    let leaving = current && client_close == Some(1000);
    let user = UserId(client.expected.user_id);
    if leaving {
        if let Some(voice) = client.voice.as_mut() {
            voice.left = true;
        }
    }
    if let Some(report) = conn
        .index
        .and_then(|i| client.report.connections.get_mut(i))
    {
        report.client_close = client_close;
        report.closed_ms = Some(shared.ms(now));
        report.heartbeats = report.heartbeats.max(conn.report.heartbeats);
        if report.server_close.is_none() {
            report.server_close = conn.report.server_close;
        }
    }
    let channel = client.expected.channel_id;
    if leaving {
        let at = shared.ms(now);
        let effects = state
            .dave
            .get_mut(&channel)
            .map(|ch| ch.leave(user.0, now))
            .unwrap_or_default();
        state.apply_dave(at, effects);
        if let Some(index) = conn.client {
            for peer in state.peers(index) {
                state.send_numbered(
                    peer,
                    ServerMessage::ClientDisconnect(ClientDisconnect { user_id: user }),
                );
            }
        }
    }
}

async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Whether the scenario never sends this frame's opcode.
fn withheld(scenario: &Scenario, frame: &Encoded) -> bool {
    if scenario.withhold.is_empty() {
        return false;
    }
    let op = match frame {
        Encoded::Text(text) => serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("op").and_then(serde_json::Value::as_u64))
            .and_then(|op| u8::try_from(op).ok()),
        Encoded::Binary(bytes) => bytes.get(2).copied(),
    };
    op.is_some_and(|op| scenario.withhold.contains(&op))
}

fn query_version(path: &str) -> Option<String> {
    let query = path.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "v")
        .map(|(_, value)| value.to_owned())
}

fn to_message(frame: Encoded) -> Message {
    match frame {
        Encoded::Text(text) => Message::text(text),
        Encoded::Binary(bytes) => Message::binary(bytes),
    }
}

fn on_text(shared: &Arc<Shared>, conn: &mut Conn, text: &str) {
    let now = Instant::now();
    let at = shared.ms(now);
    let mut state = shared.lock();
    let envelope = match validate::envelope(text) {
        Ok(envelope) => envelope,
        Err((kind, detail)) => {
            state.violate(at, conn.client, kind, detail);
            return;
        }
    };
    let issues = validate::check(&envelope);
    let had_issues = !issues.is_empty();
    for (kind, detail) in issues {
        state.violate(at, conn.client, kind, detail);
    }
    let message = match ClientMessage::decode_text(text) {
        Ok(message) => message,
        Err(error) => {
            if !had_issues {
                state.violate(
                    at,
                    conn.client,
                    ViolationKind::InvalidPayload,
                    error.to_string(),
                );
            }
            return;
        }
    };
    // A websocket replaced by a newer one of the same client: only heartbeats are answered.
    let stale = conn.authenticated
        && conn.client.is_some_and(|c| {
            state
                .clients
                .get(c)
                .is_none_or(|client| client.conn.as_ref().is_none_or(|h| h.id != conn.id))
        });
    if !conn.authenticated || stale {
        match &message {
            ClientMessage::Identify(_) | ClientMessage::Resume(_) | ClientMessage::Heartbeat(_) => {
            }
            other if !stale => {
                state.violate(
                    at,
                    conn.client,
                    ViolationKind::NotAuthenticated,
                    format!(
                        "op {} before Identify/Resume (Discord closes with 4003)",
                        other.op()
                    ),
                );
                return;
            }
            _ => return,
        }
    }
    match message {
        ClientMessage::Identify(identify) => {
            on_identify(shared, &mut state, conn, now, identify, &envelope.d)
        }
        ClientMessage::Resume(resume) => on_resume(shared, &mut state, conn, now, resume),
        ClientMessage::Heartbeat(heartbeat) => {
            on_heartbeat(shared, &mut state, conn, now, heartbeat)
        }
        ClientMessage::SelectProtocol(select) => {
            on_select_protocol(shared, &mut state, conn, now, select)
        }
        ClientMessage::Speaking(speaking) => on_speaking(shared, &mut state, conn, now, speaking),
        ClientMessage::DaveTransitionReady(_) | ClientMessage::DaveMlsInvalidCommitWelcome(_)
            if dave_member(shared, &mut state, conn.client).is_some() =>
        {
            let Some((_, channel, user)) = dave_member(shared, &mut state, conn.client) else {
                return;
            };
            let effects = match (state.dave.get_mut(&channel), message) {
                (Some(ch), ClientMessage::DaveTransitionReady(ready)) => {
                    ch.transition_ready(user, ready.transition_id, now)
                }
                (Some(ch), ClientMessage::DaveMlsInvalidCommitWelcome(invalid)) => {
                    ch.invalid_commit_welcome(user, invalid.transition_id, now)
                }
                _ => Vec::new(),
            };
            state.apply_dave(at, effects);
        }
        ClientMessage::DaveTransitionReady(_) | ClientMessage::DaveMlsInvalidCommitWelcome(_) => {
            state.violate(
                at,
                conn.client,
                ViolationKind::OpOrder,
                "DAVE transition op while dave_protocol_version is 0",
            );
        }
        ClientMessage::DaveMlsKeyPackage(_) | ClientMessage::DaveMlsCommitWelcome(_) => {
            // decode_text never yields these (binary only); kept for exhaustiveness.
        }
        ClientMessage::Ignored { op } if TOLERATED_OPS.contains(&op.as_u8()) => {}
        ClientMessage::Ignored { op } => {
            state.violate(
                at,
                conn.client,
                ViolationKind::UnknownOpcode,
                format!("op {} ({op:?}) is not a client message", op.as_u8()),
            );
        }
        ClientMessage::Unknown { op, .. } | ClientMessage::UnknownBinary { op, .. } => {
            state.violate(
                at,
                conn.client,
                ViolationKind::UnknownOpcode,
                format!("op {op} is outside the opcode table"),
            );
        }
    }
}

/// The client's voice channel and user id when it is a member of the channel's DAVE group.
fn dave_member(
    shared: &Shared,
    state: &mut State,
    client: Option<usize>,
) -> Option<(usize, u64, u64)> {
    let client = client?;
    let c = state.clients.get(client)?;
    let (channel, user) = (c.expected.channel_id, c.expected.user_id);
    let member = state
        .dave_channel(&shared.config, channel)
        .is_some_and(|ch| ch.is_member(user));
    member.then_some((client, channel, user))
}

fn on_binary(shared: &Shared, conn: &mut Conn, bytes: &[u8]) {
    let now = Instant::now();
    let at = shared.ms(now);
    let mut state = shared.lock();
    let decoded = ClientMessage::decode_binary(bytes);
    if let (Ok(message), Some((_, channel, user))) =
        (&decoded, dave_member(shared, &mut state, conn.client))
    {
        let effects = match (state.dave.get_mut(&channel), message) {
            (Some(ch), ClientMessage::DaveMlsKeyPackage(key_package)) => {
                Some(ch.key_package(user, key_package, now))
            }
            (Some(ch), ClientMessage::DaveMlsCommitWelcome(commit)) => {
                Some(ch.commit_welcome(user, commit, now))
            }
            _ => None,
        };
        if let Some(effects) = effects {
            state.apply_dave(at, effects);
            return;
        }
    }
    let detail = match decoded {
        Ok(ClientMessage::DaveMlsKeyPackage(_)) | Ok(ClientMessage::DaveMlsCommitWelcome(_)) => {
            state.violate(
                at,
                conn.client,
                ViolationKind::OpOrder,
                format!(
                    "binary op {} (DAVE MLS) while dave_protocol_version is 0",
                    bytes.first().copied().unwrap_or(0)
                ),
            );
            return;
        }
        Ok(other) => format!(
            "binary frame with op {} ({} bytes)",
            other.op(),
            bytes.len()
        ),
        Err(error) => format!("binary frame of {} bytes: {error}", bytes.len()),
    };
    state.violate(at, conn.client, ViolationKind::UnexpectedBinary, detail);
}

/// Attaches the websocket to `client` (replacing any other), starting a connection report.
fn attach(state: &mut State, conn: &mut Conn, client: usize, how: &str) {
    let Some(c) = state.clients.get_mut(client) else {
        return;
    };
    conn.first = c.report.connections.is_empty();
    conn.client = Some(client);
    if let Some((at, detail)) = conn.version_problem.take() {
        state.violate(at, Some(client), ViolationKind::GatewayVersion, detail);
    }
    let Some(c) = state.clients.get_mut(client) else {
        return;
    };
    conn.authenticated = true;
    conn.report.started_with = Some(how.to_owned());
    let index = c.report.connections.len();
    c.report.connections.push(conn.report.clone());
    conn.index = Some(index);
    c.conn = Some(ConnHandle {
        id: conn.id,
        tx: conn.tx.clone(),
        index,
    });
}

fn on_identify(
    shared: &Shared,
    state: &mut State,
    conn: &mut Conn,
    now: Instant,
    identify: Identify,
    raw: &serde_json::Value,
) {
    let at = shared.ms(now);
    if conn.authenticated {
        state.violate(
            at,
            conn.client,
            ViolationKind::AlreadyAuthenticated,
            "second Identify on one websocket (Discord closes with 4005)",
        );
        return;
    }
    let Some(&client) = state.by_session.get(&identify.session_id) else {
        state.violate(
            at,
            None,
            ViolationKind::UnknownSession,
            "Identify with a session_id the server never handed out; closing with 4006",
        );
        let _ = conn.tx.send(Control::Close(4006));
        return;
    };
    conn.client = Some(client);
    let Some(expected) = state.clients.get(client).map(|c| c.expected.clone()) else {
        return;
    };
    let mut wrong = Vec::new();
    if identify.token.expose() != expected.token {
        wrong.push("token");
    }
    if identify.user_id.get() != expected.user_id {
        wrong.push("user_id");
    }
    if identify.server_id.get() != expected.guild_id {
        wrong.push("server_id");
    }
    if !wrong.is_empty() {
        state.violate(
            at,
            Some(client),
            ViolationKind::AuthenticationFailed,
            format!(
                "Identify with wrong {}; closing with 4004",
                wrong.join(", ")
            ),
        );
        let _ = conn.tx.send(Control::Close(4004));
        return;
    }
    attach(state, conn, client, "identify");
    // A bad start on purpose: the client's first websocket ends before Ready.
    if let Some(how) = shared
        .config
        .scenario
        .first_websocket
        .filter(|_| conn.first)
    {
        let control = match how {
            FirstClose::Code(code) => {
                if let Some(report) = state.clients.get_mut(client).and_then(|c| {
                    c.report
                        .connections
                        .get_mut(conn.index.unwrap_or(usize::MAX))
                }) {
                    report.server_close = Some(code);
                }
                Control::Close(code)
            }
            FirstClose::Drop => Control::Drop,
        };
        if let Some(c) = state.clients.get_mut(client) {
            c.conn = None;
        }
        let _ = conn.tx.send(control);
        return;
    }
    let max_dave = raw
        .get("max_dave_protocol_version")
        .and_then(serde_json::Value::as_u64);
    if max_dave.unwrap_or(0) == 0 {
        state.violate(
            at,
            Some(client),
            ViolationKind::NoDaveSupport,
            "Identify without max_dave_protocol_version >= 1 (Discord closes non-Stage calls with 4017)",
        );
        if shared.config.dave.enabled && shared.config.dave.required {
            if let Some(c) = state.clients.get_mut(client) {
                c.report.max_dave_protocol_version = max_dave;
            }
            state.close_client(client, 4017);
            return;
        }
    }
    let Some(ssrc) = state.new_voice_session(client) else {
        return;
    };
    if let Some(c) = state.clients.get_mut(client) {
        c.report.identifies += 1;
        c.report.max_dave_protocol_version = max_dave;
    }
    let ready = Ready {
        ssrc,
        ip: shared.udp_addr.ip().to_string(),
        port: shared.udp_addr.port(),
        modes: shared.config.modes.clone(),
    };
    state.send_numbered(client, ServerMessage::Ready(ready));
}

fn on_resume(shared: &Shared, state: &mut State, conn: &mut Conn, now: Instant, resume: Resume) {
    let at = shared.ms(now);
    if conn.authenticated {
        state.violate(
            at,
            conn.client,
            ViolationKind::AlreadyAuthenticated,
            "Resume on an already authenticated websocket",
        );
        return;
    }
    let Some(&client) = state.by_session.get(&resume.session_id) else {
        state.violate(
            at,
            None,
            ViolationKind::UnknownSession,
            "Resume with a session_id the server never handed out; closing with 4006",
        );
        let _ = conn.tx.send(Control::Close(4006));
        return;
    };
    conn.client = Some(client);
    let Some(c) = state.clients.get(client) else {
        return;
    };
    if resume.token.expose() != c.expected.token || resume.server_id.get() != c.expected.guild_id {
        state.violate(
            at,
            Some(client),
            ViolationKind::AuthenticationFailed,
            "Resume with a wrong token or server_id; closing with 4004",
        );
        let _ = conn.tx.send(Control::Close(4004));
        return;
    }
    let resumable = c.voice.as_ref().is_some_and(|v| v.resumable);
    let last_close = c.last_server_close;
    if !resumable {
        if let Some(code) = last_close.filter(|code| *code >= 4000 && *code != 4015) {
            state.violate(
                at,
                Some(client),
                ViolationKind::OpOrder,
                format!("Resume after close {code} ({}), which does not allow resuming (docs/protocol.md §5)", describe_close(code)),
            );
        }
        let _ = conn.tx.send(Control::Close(4006));
        return;
    }
    let last_seq = c.voice.as_ref().map_or(0, |v| v.seq);
    if resume.seq_ack > last_seq as i64 || resume.seq_ack < -1 {
        state.violate(
            at,
            Some(client),
            ViolationKind::SeqAck,
            format!(
                "Resume seq_ack {} but the last seq sent was {last_seq}",
                resume.seq_ack
            ),
        );
    }
    // A missed message that is no longer buffered cannot be replayed: the session is gone.
    let oldest = state
        .clients
        .get(client)
        .and_then(|c| c.voice.as_ref())
        .and_then(|v| v.buffer.front())
        .map(|(seq, _)| *seq as i64);
    if oldest.is_some_and(|oldest| resume.seq_ack.max(0) + 1 < oldest) {
        let _ = conn.tx.send(Control::Close(4006));
        return;
    }
    attach(state, conn, client, "resume");
    let Some(c) = state.clients.get_mut(client) else {
        return;
    };
    c.report.resumes += 1;
    let _ = conn.tx.send(Control::Send(
        ServerFrame::new(ServerMessage::Resumed).encode(),
    ));
    if let Some(voice) = c.voice.as_mut() {
        for (seq, frame) in &voice.buffer {
            if (*seq as i64) > resume.seq_ack {
                let _ = conn.tx.send(Control::Send(frame.clone()));
            }
        }
        voice.awaiting_speaking_after_resume = true;
        voice.unresumed_since = None;
    }
}

fn on_heartbeat(
    shared: &Shared,
    state: &mut State,
    conn: &mut Conn,
    now: Instant,
    heartbeat: Heartbeat,
) {
    let at = shared.ms(now);
    conn.report.heartbeats += 1;
    let interval = shared.config.heartbeat_interval;
    let allowed = interval + interval / 2 + Duration::from_millis(250);
    let gap = now.saturating_duration_since(conn.last_beat);
    conn.last_beat = now;
    if gap > allowed {
        state.violate(
            at,
            conn.client,
            ViolationKind::HeartbeatLate,
            format!(
                "heartbeat {} ms after the previous one (or Hello); the interval is {} ms",
                gap.as_millis(),
                interval.as_millis()
            ),
        );
    }
    if let Some(report) = conn
        .client
        .zip(conn.index)
        .and_then(|(c, i)| state.clients.get_mut(c)?.report.connections.get_mut(i))
    {
        report.heartbeats = conn.report.heartbeats;
    }
    if let Some(client) = conn.client.filter(|_| conn.authenticated) {
        let last_seq = state
            .clients
            .get(client)
            .and_then(|c| c.voice.as_ref())
            .map_or(0, |v| v.seq);
        if heartbeat.seq_ack > last_seq as i64 || heartbeat.seq_ack < -1 {
            state.violate(
                at,
                Some(client),
                ViolationKind::SeqAck,
                format!(
                    "Heartbeat seq_ack {} but the last seq sent was {last_seq}",
                    heartbeat.seq_ack
                ),
            );
        }
    }
    let ack = match (conn.first, shared.config.scenario.heartbeat_acks) {
        (false, _) | (_, AckPolicy::Always) => true,
        (true, AckPolicy::Never) => false,
        (true, AckPolicy::StopAfter(n)) => conn.heartbeats_acked < n,
    };
    if ack {
        conn.heartbeats_acked += 1;
        let frame =
            ServerFrame::new(ServerMessage::HeartbeatAck(HeartbeatAck { t: heartbeat.t })).encode();
        let _ = conn.tx.send(Control::Send(frame));
    }
}

fn on_select_protocol(
    shared: &Arc<Shared>,
    state: &mut State,
    conn: &mut Conn,
    now: Instant,
    select: SelectProtocol,
) {
    let at = shared.ms(now);
    let Some(client) = conn.client else { return };
    let Some(voice) = state.clients.get(client).and_then(|c| c.voice.as_ref()) else {
        return;
    };
    if voice.selected {
        state.violate(
            at,
            Some(client),
            ViolationKind::OpOrder,
            "Select Protocol sent twice in one session (ignored)",
        );
        return;
    }
    let discovered = voice.discovered;
    if select.protocol != "udp" {
        state.violate(
            at,
            Some(client),
            ViolationKind::ProtocolNotUdp,
            format!("Select Protocol protocol is a {}-byte string other than \"udp\"; closing with 4012", select.protocol.len()),
        );
        state.close_client(client, 4012);
        return;
    }
    let mode_name = select.data.mode.clone();
    let offered = shared.config.modes.contains(&mode_name);
    let mode = EncryptionMode::from_name(&mode_name);
    let Some(mode) = mode.filter(|_| offered) else {
        let why = if offered {
            "offered but not supported by the server"
        } else {
            "not offered in Ready"
        };
        state.violate(
            at,
            Some(client),
            ViolationKind::ModeNotOffered,
            format!("Select Protocol mode `{mode_name}` is {why}; closing with 4016"),
        );
        state.close_client(client, 4016);
        return;
    };
    match discovered {
        None => state.violate(
            at,
            Some(client),
            ViolationKind::OpOrder,
            "Select Protocol before any IP discovery request",
        ),
        Some(addr) => {
            if select.data.address != addr.ip().to_string() || select.data.port != addr.port() {
                state.violate(
                    at,
                    Some(client),
                    ViolationKind::SelectProtocolAddress,
                    format!(
                        "Select Protocol names {}:{} but IP discovery answered {addr}",
                        select.data.address, select.data.port
                    ),
                );
            }
        }
    }
    let mut key = [0u8; 32];
    state.rng.fill(&mut key);
    let secret = SecretKey::new(key);
    let cipher = Arc::new(TransportCipher::new(mode, &secret));
    let Some(c) = state.clients.get_mut(client) else {
        return;
    };
    c.report.mode = Some(mode_name.clone());
    let start_scenario = !c.scenario_started;
    c.scenario_started = true;
    let epoch = c.epoch;
    if let Some(voice) = c.voice.as_mut() {
        voice.selected = true;
        voice.cipher = Some(cipher);
        voice.mode = Some(mode);
    }
    // DAVE: the call's version for a client that can speak it; 0 (and a downgrade) otherwise.
    let (channel, user, max_dave) = state
        .clients
        .get(client)
        .map(|c| {
            (
                c.expected.channel_id,
                c.expected.user_id,
                c.report.max_dave_protocol_version.unwrap_or(0),
            )
        })
        .unwrap_or_default();
    let dave_version = match state.dave_channel(&shared.config, channel) {
        Some(ch) if max_dave >= u64::from(crate::dave::PROTOCOL_VERSION) => ch.version(),
        _ => 0,
    };
    state.send_numbered(
        client,
        ServerMessage::SessionDescription(SessionDescription {
            mode: mode_name,
            secret_key: secret,
            dave_protocol_version: dave_version,
        }),
    );
    // Channel members: the newcomer learns who is there, the others learn about it.
    let peers = state.peers(client);
    if !peers.is_empty() {
        let me = state
            .clients
            .get(client)
            .map(|c| UserId(c.expected.user_id));
        let others: Vec<UserId> = peers
            .iter()
            .filter_map(|p| state.clients.get(*p).map(|c| UserId(c.expected.user_id)))
            .collect();
        state.send_numbered(
            client,
            ServerMessage::ClientsConnect(ClientsConnect { user_ids: others }),
        );
        if let Some(me) = me {
            for peer in peers {
                state.send_numbered(
                    peer,
                    ServerMessage::ClientsConnect(ClientsConnect { user_ids: vec![me] }),
                );
            }
        }
    }
    // Simulated users already in the call (from earlier sessions' timelines) are announced
    // before any DAVE message that names them, as Discord announces everyone present.
    let present = state
        .dave
        .get(&channel)
        .map(|ch| ch.simulated_users())
        .unwrap_or_default();
    if !present.is_empty() {
        state.send_numbered(
            client,
            ServerMessage::ClientsConnect(ClientsConnect {
                user_ids: present.into_iter().map(UserId).collect(),
            }),
        );
    }
    let effects = match state.dave_channel(&shared.config, channel) {
        Some(ch) if max_dave >= u64::from(crate::dave::PROTOCOL_VERSION) => {
            ch.join_remote(client, user, now)
        }
        Some(ch) => ch.join_plain(user, now),
        None => Vec::new(),
    };
    state.apply_dave(at, effects);
    if start_scenario {
        crate::scenario::start(shared, state, client, epoch);
    }
}

fn on_speaking(
    shared: &Shared,
    state: &mut State,
    conn: &mut Conn,
    now: Instant,
    speaking: Speaking,
) {
    let at = shared.ms(now);
    let Some(client) = conn.client else { return };
    let grace = shared.config.speaking_grace;
    let Some(c) = state.clients.get_mut(client) else {
        return;
    };
    let flags = speaking.speaking.bits();
    c.report.speaking.push(flags);
    let Some(voice) = c.voice.as_mut() else {
        return;
    };
    let mut problems = Vec::new();
    if !voice.selected {
        problems.push((
            ViolationKind::OpOrder,
            "Speaking before Session Description".to_owned(),
        ));
    }
    if speaking.ssrc != voice.ssrc {
        problems.push((
            ViolationKind::SpeakingSsrc,
            format!(
                "Speaking for ssrc {} but Ready gave ssrc {}",
                speaking.ssrc, voice.ssrc
            ),
        ));
    }
    voice.speaking = flags;
    if flags != 0 {
        if let Some((since, _)) = voice.unannounced_since {
            if now.saturating_duration_since(since) <= grace {
                voice.unannounced_since = None;
            }
        }
        if voice.awaiting_speaking_after_resume {
            voice.awaiting_speaking_after_resume = false;
            if voice
                .unresumed_since
                .is_some_and(|since| now.saturating_duration_since(since) <= grace)
            {
                voice.unresumed_since = None;
            }
        }
    }
    let own_ssrc = voice.ssrc;
    let user = UserId(c.expected.user_id);
    for (kind, detail) in problems {
        state.violate(at, Some(client), kind, detail);
    }
    // Tell the channel who owns the SSRC (server op 5 carries the user id).
    for peer in state.peers(client) {
        let mut relayed = Speaking::new(speaking.speaking, own_ssrc);
        relayed.user_id = Some(user);
        state.send_numbered(peer, ServerMessage::Speaking(relayed));
    }
}
