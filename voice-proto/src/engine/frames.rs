//! Voice gateway messages: Hello, Ready, Session Description, Resumed, ACKs, Speaking, clients,
//! DAVE, unknown opcodes.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::{Engine, Media, Phase};
use crate::discovery::discovery_request;
use crate::error::{Error, ProtocolError};
use crate::heartbeat::Heartbeat;
use crate::io::{Event, Output, Recovery};
use crate::limits::UNKNOWN_OPCODE_PAYLOAD;
use crate::payload::{
    ClientMessage, Encoded, Opcode, Ready, ServerFrame, ServerMessage, SessionDescription,
};

impl Engine {
    pub(super) fn on_frame(&mut self, now: Instant, frame: ServerFrame) {
        if let Some(seq) = frame.seq {
            self.seq = Some(seq);
        }
        match frame.message {
            ServerMessage::Hello(hello) => {
                if self.heartbeat.is_some() {
                    self.ignore_frame("a second Hello on the same websocket".to_owned());
                    return;
                }
                match hello.interval() {
                    Ok(interval) => {
                        let interval = self
                            .config
                            .max_heartbeat_interval
                            .map_or(interval, |max| interval.min(max));
                        self.heartbeat = Some(Heartbeat::new(
                            now,
                            interval,
                            self.config.max_missed_heartbeats,
                        ));
                    }
                    Err(_) => self.close(Error::Protocol(ProtocolError::BadHeartbeatInterval {
                        interval_ms: hello.heartbeat_interval,
                    })),
                }
            }
            ServerMessage::Ready(ready) => self.on_ready(now, ready),
            ServerMessage::SessionDescription(description) => {
                self.on_session_description(now, description);
            }
            ServerMessage::Resumed => self.on_resumed(now),
            ServerMessage::HeartbeatAck(ack) => {
                if let Some(latency) = self
                    .heartbeat
                    .as_mut()
                    .and_then(|hb| hb.acknowledge(now, ack.t))
                {
                    self.stats.websocket_round_trip = Some(latency);
                    self.out
                        .push_back(Output::Event(Event::HeartbeatAcknowledged { latency }));
                }
            }
            ServerMessage::Speaking(speaking) => {
                let Some(user_id) = speaking.user_id else {
                    self.ignore_frame("a server Speaking without user_id".to_owned());
                    return;
                };
                self.ssrc_users.insert(speaking.ssrc, user_id);
                self.out.push_back(Output::Event(Event::Speaking {
                    user_id,
                    ssrc: speaking.ssrc,
                    flags: speaking.speaking,
                }));
                for held in self.unmapped.take_ssrc(speaking.ssrc) {
                    self.deliver(now, held.packet, &held.frame);
                }
                if let Some(streams) = self.receive.as_mut() {
                    streams.on_speaking(speaking.ssrc, user_id, speaking.speaking);
                }
            }
            ServerMessage::ClientsConnect(clients) => {
                let refused = self.dave.add_users(&clients.user_ids);
                if refused > 0 {
                    self.ignore_frame(format!(
                        "op 11 named {refused} users beyond the {} DAVE recognises at most; \
                         their proposals will be refused",
                        crate::limits::DAVE_RECOGNISED_USERS
                    ));
                }
                self.out.push_back(Output::Event(Event::ClientsConnected {
                    user_ids: clients.user_ids,
                }));
            }
            ServerMessage::ClientDisconnect(client) => {
                self.ssrc_users.remove_user(client.user_id);
                if let Some(streams) = self.receive.as_mut() {
                    streams.on_user_left(client.user_id);
                }
                self.dave.remove_user(client.user_id);
                self.out.push_back(Output::Event(Event::ClientDisconnected {
                    user_id: client.user_id,
                }));
            }
            ServerMessage::Unknown { op, raw } => {
                let raw = capped_text(raw);
                self.out
                    .push_back(Output::Event(Event::UnknownOpcode { op, raw }));
            }
            ServerMessage::UnknownBinary { op, payload } => {
                let raw = capped_hex(&payload);
                self.out
                    .push_back(Output::Event(Event::UnknownOpcode { op, raw }));
            }
            message @ (ServerMessage::DavePrepareTransition(_)
            | ServerMessage::DaveExecuteTransition(_)
            | ServerMessage::DavePrepareEpoch(_)
            | ServerMessage::DaveMlsExternalSender(_)
            | ServerMessage::DaveMlsProposals { .. }
            | ServerMessage::DaveMlsAnnounceCommitTransition { .. }
            | ServerMessage::DaveMlsWelcome { .. }) => self.on_dave_message(message),
            // Informational opcodes are ignored.
            _ => {}
        }
    }

    /// DAVE ops 21, 22, 24, 25, 27, 29, 30: handled when we offered DAVE in Identify (a call
    /// that starts at version 0 can still be upgraded by op 24), ignored as before otherwise.
    pub(super) fn on_dave_message(&mut self, message: ServerMessage) {
        if self.config.offered_dave_protocol_version() == 0 {
            return;
        }
        if let Err(error) = self
            .dave
            .on_message(message, self.channel_id, &mut self.out)
        {
            self.close(Error::Dave(error));
        }
    }

    pub(super) fn on_ready(&mut self, now: Instant, ready: Ready) {
        let Phase::Connecting {
            recovery: Recovery::Reconnect,
            ..
        } = self.phase
        else {
            self.unexpected(Opcode::Ready);
            return;
        };
        let ip: IpAddr = match ready.ip.trim().parse() {
            Ok(ip) => ip,
            Err(_) => {
                let error = ProtocolError::BadServerAddress { ip: ready.ip };
                self.fail_attempt(now, Error::Protocol(error));
                return;
            }
        };
        let mode = match self.config.modes.choose(&ready.modes) {
            Ok(mode) => mode,
            Err(error) => {
                self.close(Error::NoCommonMode(error));
                return;
            }
        };
        let remote = SocketAddr::new(ip, ready.port);
        self.out.push_back(Output::BindUdp { remote });
        self.out.push_back(Output::Transmit {
            to: remote,
            data: discovery_request(ready.ssrc).to_vec(),
        });
        self.phase = Phase::Discovering {
            remote,
            ssrc: ready.ssrc,
            mode,
            sent: 1,
            next_retry: now + self.config.discovery_retry_interval,
        };
    }

    pub(super) fn on_session_description(&mut self, now: Instant, description: SessionDescription) {
        let Phase::SelectingProtocol {
            remote, ssrc, mode, ..
        } = self.phase
        else {
            self.unexpected(Opcode::SessionDescription);
            return;
        };
        if description.mode != mode.name() {
            self.close(Error::Protocol(ProtocolError::ModeMismatch {
                selected: mode.name(),
                received: description.mode,
            }));
            return;
        }
        let offered = self.config.offered_dave_protocol_version();
        if description.dave_protocol_version > offered {
            self.close(Error::Protocol(ProtocolError::UnsupportedDaveVersion {
                requested: description.dave_protocol_version,
                offered,
            }));
            return;
        }
        let seed = self.config.rtp_seed ^ u64::from(self.stats.reconnects);
        self.media = Some(Media::new(
            mode,
            &description.secret_key,
            ssrc,
            remote,
            seed,
        ));
        self.dave_protocol_version = description.dave_protocol_version;
        // Version 0 (Stage channels): plain Opus. Version 1: a DAVE session and op 26 (C33),
        // queued after the Connected event.
        let mut dave_out = VecDeque::new();
        if let Err(error) = self.dave.on_session_description(
            description.dave_protocol_version,
            self.channel_id,
            &mut dave_out,
        ) {
            self.close(Error::Dave(error));
            return;
        }
        if self.established_once {
            self.stats.reconnects += 1;
        }
        self.established_once = true;
        self.join_deadline = None;
        self.last_failure = None;
        self.rejoined_after_4004 = false;
        self.session_up(now);
        self.keepalive_at = Some(now);
        self.phase = Phase::Connected;
        self.out.push_back(Output::Event(Event::Connected {
            ssrc,
            mode,
            dave_protocol_version: description.dave_protocol_version,
        }));
        self.out.extend(dave_out);
    }

    pub(super) fn on_resumed(&mut self, now: Instant) {
        let Phase::Connecting {
            recovery: Recovery::Resume,
            ..
        } = self.phase
        else {
            self.unexpected(Opcode::Resumed);
            return;
        };
        self.session_up(now);
        self.stats.resumes += 1;
        self.phase = Phase::Connected;
        self.out.push_back(Output::Event(Event::Resumed));
    }

    pub(super) fn unexpected(&mut self, op: Opcode) {
        let stage = match self.phase {
            Phase::AwaitingServerUpdate { .. } => "waiting for the voice server",
            Phase::Backoff { .. } => "waiting to reconnect",
            Phase::Connecting { .. } => "waiting for Ready or Resumed",
            Phase::Discovering { .. } => "discovering our address",
            Phase::SelectingProtocol { .. } => "waiting for Session Description",
            Phase::Connected => "connected",
            Phase::Closed => "closed",
        };
        let error = ProtocolError::Unexpected { op, stage };
        self.ignore_frame(error.to_string());
    }

    pub(super) fn ignore_frame(&mut self, reason: String) {
        self.stats.frames_ignored += 1;
        tracing::debug!(%reason, "ignored voice gateway input");
        self.out.push_back(Output::Event(Event::Ignored { reason }));
    }

    pub(super) fn send(&mut self, message: &ClientMessage) {
        self.out.push_back(match message.encode() {
            Encoded::Text(text) => Output::SendText(text),
            Encoded::Binary(bytes) => Output::SendBinary(bytes),
        });
    }
}

/// An unknown opcode's JSON text, cut to [`UNKNOWN_OPCODE_PAYLOAD`] bytes (on a character
/// boundary) with a note of its length.
fn capped_text(raw: String) -> String {
    if raw.len() <= UNKNOWN_OPCODE_PAYLOAD {
        return raw;
    }
    let mut end = UNKNOWN_OPCODE_PAYLOAD;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    let kept = raw.get(..end).unwrap_or_default();
    format!("{kept}... ({} bytes, cut)", raw.len())
}

/// An unknown binary payload as hex, at most [`UNKNOWN_OPCODE_PAYLOAD`] characters of it.
fn capped_hex(payload: &[u8]) -> String {
    let shown = payload.get(..UNKNOWN_OPCODE_PAYLOAD / 2).unwrap_or(payload);
    let mut hex: String = shown.iter().map(|b| format!("{b:02x}")).collect();
    if shown.len() < payload.len() {
        hex.push_str(&format!("... ({} bytes, cut)", payload.len()));
    }
    hex
}
