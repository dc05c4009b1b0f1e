//! The one engine behind every typestate: phases, timers, the close-code policy, and the message
//! handlers. The public typestates in [`crate::state`] are typed views of it.

mod media;
mod unmapped;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::close::{self, CloseDisposition};
use crate::config::Config;
use crate::crypto::EncryptionMode;
use crate::dave::{Dave, DaveStatus, Incoming};
use crate::discovery::{discovery_request, parse_discovery_response};
use crate::error::{Error, NotReady, ProtocolError, Stage};
use crate::gateway::{
    voice_gateway_url, VoiceServerDispatch, VoiceStateDispatch, VoiceStateUpdate,
};
use crate::heartbeat::{Beat, Heartbeat};
use crate::id::{ChannelId, GuildId, UserId};
use crate::io::{DisconnectReason, Event, Input, Output, ReceivedAudio, Recovery};
use crate::join::{ConnectionInfo, JoinRequest};
use crate::payload::{
    ClientMessage, Encoded, Identify, Opcode, Ready, Resume, SelectProtocol, ServerFrame,
    ServerMessage, SessionDescription, Speaking, SpeakingFlags,
};
use crate::rtp::{classify, PacketKind, ReceivedRtp, SILENCE_FRAME, SILENCE_FRAME_COUNT};
use crate::secret::Token;

pub(crate) use media::Media;
use unmapped::{HeldFrame, UnmappedFrames};

/// Close code we send when we abandon a websocket whose heartbeats went unanswered.
const ABANDON_CLOSE_CODE: u16 = 4000;
/// Close code we send when we leave or switch servers.
const NORMAL_CLOSE_CODE: u16 = 1000;

/// Where the engine is. The typestates map onto these.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Phase {
    /// Waiting for main-gateway dispatches: the first join, a rejoin, or a move.
    AwaitingServerUpdate { deadline: Instant, stage: Stage },
    /// Waiting before the next recovery attempt.
    Backoff { until: Instant, recovery: Recovery },
    /// Websocket requested; Identify or Resume goes out once it is open.
    Connecting {
        recovery: Recovery,
        deadline: Instant,
    },
    /// Ready seen; IP discovery under way.
    Discovering {
        remote: SocketAddr,
        ssrc: u32,
        mode: EncryptionMode,
        sent: u32,
        next_retry: Instant,
    },
    /// Select Protocol sent; waiting for Session Description.
    SelectingProtocol {
        remote: SocketAddr,
        ssrc: u32,
        mode: EncryptionMode,
        deadline: Instant,
    },
    /// Session established.
    Connected,
    /// Ended; the error says why.
    Closed,
}

/// Counters the application can read (`Session::stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Encrypted audio packets written by `send_opus`/`send_silence`.
    pub packets_sent: u64,
    /// Received audio packets that decrypted.
    pub packets_received: u64,
    /// Received RTP packets that failed transport decryption or parsing.
    pub decrypt_failures: u64,
    /// Datagrams ignored (foreign source, RTCP, not RTP, late discovery answers).
    pub datagrams_ignored: u64,
    /// Gateway frames that were malformed or out of place.
    pub frames_ignored: u64,
    /// Audio frames sent DAVE-encrypted (a subset of `packets_sent`).
    pub dave_frames_encrypted: u64,
    /// Received audio frames that were DAVE-decrypted.
    pub dave_frames_decrypted: u64,
    /// Received audio frames dropped because DAVE decryption failed (transport decryption
    /// succeeded; these are not in `decrypt_failures`).
    pub dave_decrypt_failures: u64,
    /// Received DAVE frames waiting now for the op 5 that names their sender (a gauge, not a
    /// counter: each frame leaves it within a second as `packets_received` or
    /// `dave_decrypt_failures`).
    pub dave_frames_waiting: u64,
    /// Resumes that succeeded.
    pub resumes: u32,
    /// Fresh sessions established after the first.
    pub reconnects: u32,
}

/// Where a received frame came from in the RTP stream.
#[derive(Debug, Clone, Copy)]
struct PacketInfo {
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
}

/// Our own speaking announcement (op 5) and the trailing silence after a talk spurt.
#[derive(Debug, Clone)]
struct SpeakingState {
    /// Flags used when audio starts (the application's choice, Microphone by default).
    flags: SpeakingFlags,
    /// Op 5 with non-zero flags went out on the current websocket.
    announced: bool,
    /// Between the first frame of a spurt and the end of its silence frames.
    talking: bool,
    /// Silence frames still to send.
    silence_remaining: usize,
}

#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) config: Config,
    /// Present when a main gateway is attached (joins and rejoins go through op 4).
    join: Option<JoinRequest>,
    user_id: UserId,
    guild_id: GuildId,
    pub(crate) channel_id: Option<ChannelId>,
    session_id: Option<String>,
    token: Option<Token>,
    url: Option<String>,
    /// Fresh dispatches since the current wait began.
    fresh_state: bool,
    fresh_server: bool,
    pub(crate) phase: Phase,
    pub(crate) error: Option<Error>,
    out: VecDeque<Output>,
    /// Last `seq` from the server on this voice session (kept across resumes).
    seq: Option<u64>,
    heartbeat: Option<Heartbeat>,
    ws_open: bool,
    pub(crate) media: Option<Media>,
    pub(crate) dave_protocol_version: u16,
    /// End-to-end encryption state of the current voice connection.
    pub(crate) dave: Dave,
    speaking: SpeakingState,
    ssrc_users: HashMap<u32, UserId>,
    /// DAVE frames that arrived before their SSRC's op 5.
    unmapped: UnmappedFrames,
    keepalive_at: Option<Instant>,
    keepalive_counter: u32,
    reconnect_attempts: u32,
    last_close: Option<u16>,
    established_once: bool,
    rx_scratch: Vec<u8>,
    pub(crate) stats: Stats,
}

impl Engine {
    fn blank(config: Config, user_id: UserId, guild_id: GuildId, phase: Phase) -> Self {
        Self {
            config,
            join: None,
            user_id,
            guild_id,
            channel_id: None,
            session_id: None,
            token: None,
            url: None,
            fresh_state: false,
            fresh_server: false,
            phase,
            error: None,
            out: VecDeque::new(),
            seq: None,
            heartbeat: None,
            ws_open: false,
            media: None,
            dave_protocol_version: 0,
            dave: Dave::new(user_id),
            speaking: SpeakingState {
                flags: SpeakingFlags::MICROPHONE,
                announced: false,
                talking: false,
                silence_remaining: 0,
            },
            ssrc_users: HashMap::new(),
            unmapped: UnmappedFrames::default(),
            keepalive_at: None,
            keepalive_counter: 0,
            reconnect_attempts: 0,
            last_close: None,
            established_once: false,
            rx_scratch: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// A closed engine used only as a stand-in while a state is moved (see `AnyState`).
    pub(crate) fn placeholder() -> Self {
        Self::blank(Config::default(), UserId(0), GuildId(0), Phase::Closed)
    }

    /// Starts a join through the main gateway: op 4 goes out, then both dispatches are awaited.
    pub(crate) fn join(now: Instant, config: Config, join: JoinRequest) -> Self {
        let deadline = now + config.server_update_timeout;
        let mut engine = Self::blank(
            config,
            join.user_id,
            join.guild_id,
            Phase::AwaitingServerUpdate {
                deadline,
                stage: Stage::ServerUpdate,
            },
        );
        engine.channel_id = Some(join.channel_id);
        engine.out.push_back(Output::MainGateway(VoiceStateUpdate {
            guild_id: join.guild_id,
            channel_id: Some(join.channel_id),
            self_mute: join.self_mute,
            self_deaf: join.self_deaf,
        }));
        engine.join = Some(join);
        engine
    }

    /// Starts from connection info the caller already holds: the websocket opens at once.
    pub(crate) fn connect(
        now: Instant,
        config: Config,
        info: ConnectionInfo,
    ) -> Result<Self, Error> {
        let url = match &config.gateway_url_override {
            Some(url) => voice_gateway_url(url)?,
            None => voice_gateway_url(&info.endpoint)?,
        };
        let mut engine = Self::blank(config, info.user_id, info.guild_id, Phase::Closed);
        engine.channel_id = info.channel_id;
        engine.session_id = Some(info.session_id);
        engine.token = Some(info.token);
        engine.url = Some(url);
        engine.begin_connecting(now, Recovery::Reconnect);
        Ok(engine)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    pub(crate) fn poll_output(&mut self) -> Output {
        if let Some(output) = self.out.pop_front() {
            return output;
        }
        match self.next_deadline() {
            Some(at) => Output::WakeAt(at),
            None => Output::Idle,
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::AwaitingServerUpdate { deadline, .. }
            | Phase::Connecting { deadline, .. }
            | Phase::SelectingProtocol { deadline, .. } => Some(*deadline),
            Phase::Backoff { until, .. } => Some(*until),
            Phase::Discovering { next_retry, .. } => Some(*next_retry),
            Phase::Connected => None,
            Phase::Closed => return None,
        };
        [
            phase,
            self.heartbeat.as_ref().map(Heartbeat::deadline),
            self.keepalive_at.filter(|_| self.media.is_some()),
            self.unmapped.next_expiry(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Feeds one input. `Err` means the connection has ended (the same error is also queued as
    /// [`Event::Closed`]).
    pub(crate) fn handle_input(&mut self, now: Instant, input: Input<'_>) -> Result<(), Error> {
        if self.is_closed() {
            return Err(self.error.clone().unwrap_or(Error::ClosedByApplication));
        }
        self.run_timers(now);
        if !self.is_closed() {
            match input {
                Input::VoiceStateUpdate(dispatch) => self.on_voice_state(now, dispatch),
                Input::VoiceServerUpdate(dispatch) => self.on_voice_server(now, dispatch),
                Input::WebSocketOpened => self.on_ws_opened(),
                // A frame with no open websocket is stale (buffered before a close we already
                // handled): it must not touch the state.
                Input::Text(_) | Input::Binary(_) if !self.ws_open => {
                    self.ignore_frame("a frame arrived while no websocket is open".to_owned());
                }
                Input::Text(text) => match ServerFrame::decode_text(text) {
                    Ok(frame) => self.on_frame(now, frame),
                    Err(error) => self.ignore_frame(format!("undecodable text frame: {error}")),
                },
                Input::Binary(bytes) => match ServerFrame::decode_binary(bytes) {
                    Ok(frame) => self.on_frame(now, frame),
                    Err(error) => self.ignore_frame(format!("undecodable binary frame: {error}")),
                },
                Input::WebSocketClosed { code } => self.on_ws_closed(now, code),
                Input::Datagram { from, data } => self.on_datagram(now, from, data),
                Input::Timer => {}
            }
        }
        match &self.error {
            Some(error) if self.is_closed() => Err(error.clone()),
            _ => Ok(()),
        }
    }

    // ---- timers -------------------------------------------------------------------------------

    fn run_timers(&mut self, now: Instant) {
        for held in self.unmapped.take_expired(now) {
            self.drop_unmapped(held, "no op 5 mapped its SSRC to a user in time");
        }
        match self.phase.clone() {
            Phase::AwaitingServerUpdate { deadline, stage } if now >= deadline => {
                let after = match stage {
                    Stage::Move => self.config.move_timeout,
                    _ => self.config.server_update_timeout,
                };
                let error = if stage == Stage::Move {
                    Error::Disconnected {
                        code: self.last_close,
                    }
                } else {
                    Error::Timeout { stage, after }
                };
                self.fail_attempt(now, error);
            }
            Phase::Backoff { until, recovery } if now >= until => match recovery {
                Recovery::Resume => self.begin_connecting(now, Recovery::Resume),
                Recovery::Reconnect => self.begin_fresh(now),
            },
            Phase::Connecting { recovery, deadline } if now >= deadline => {
                let stage = match recovery {
                    Recovery::Resume => Stage::Resumed,
                    Recovery::Reconnect => Stage::Ready,
                };
                let after = self.config.handshake_timeout;
                self.fail_attempt(now, Error::Timeout { stage, after });
            }
            Phase::Discovering {
                remote,
                ssrc,
                mode,
                sent,
                next_retry,
            } if now >= next_retry => {
                if sent >= self.config.discovery_attempts {
                    let after = self.config.discovery_retry_interval * sent;
                    self.fail_attempt(
                        now,
                        Error::Timeout {
                            stage: Stage::IpDiscovery,
                            after,
                        },
                    );
                } else {
                    self.out.push_back(Output::Transmit {
                        to: remote,
                        data: discovery_request(ssrc).to_vec(),
                    });
                    self.phase = Phase::Discovering {
                        remote,
                        ssrc,
                        mode,
                        sent: sent + 1,
                        next_retry: now + self.config.discovery_retry_interval,
                    };
                }
            }
            Phase::SelectingProtocol { deadline, .. } if now >= deadline => {
                let after = self.config.session_description_timeout;
                self.fail_attempt(
                    now,
                    Error::Timeout {
                        stage: Stage::SessionDescription,
                        after,
                    },
                );
            }
            _ => {}
        }
        if self.is_closed() {
            return;
        }
        if let Some(heartbeat) = self.heartbeat.as_mut() {
            match heartbeat.poll(now) {
                Some(Beat::Send { nonce }) => {
                    let seq_ack = self.seq.and_then(|s| i64::try_from(s).ok()).unwrap_or(-1);
                    self.send(&ClientMessage::Heartbeat(crate::payload::Heartbeat {
                        t: nonce,
                        seq_ack,
                    }));
                }
                Some(Beat::Dead { .. }) => {
                    self.out.push_back(Output::CloseWebSocket {
                        code: ABANDON_CLOSE_CODE,
                    });
                    self.ws_open = false;
                    self.heartbeat = None;
                    self.on_connection_lost(now, None);
                }
                None => {}
            }
        }
        if let (Some(at), Some(media)) = (self.keepalive_at, self.media.as_ref()) {
            if now >= at {
                // 8 bytes like @discordjs/voice: a little-endian counter and four zero bytes.
                let mut data = vec![0u8; 8];
                data[..4].copy_from_slice(&self.keepalive_counter.to_le_bytes());
                self.keepalive_counter = self.keepalive_counter.wrapping_add(1);
                self.out.push_back(Output::Transmit {
                    to: media.remote,
                    data,
                });
                self.keepalive_at = Some(now + self.config.udp_keepalive_interval);
            }
        }
    }

    // ---- main gateway -------------------------------------------------------------------------

    fn on_voice_state(&mut self, now: Instant, dispatch: VoiceStateDispatch) {
        if dispatch.user_id != self.user_id
            || dispatch
                .guild_id
                .is_some_and(|guild| guild != self.guild_id)
        {
            return;
        }
        self.session_id = Some(dispatch.session_id);
        self.channel_id = dispatch.channel_id;
        self.fresh_state = true;
        if dispatch.channel_id.is_none() {
            // Kicked or left: the voice gateway follows with 4014. Nothing to start.
            return;
        }
        self.try_start_from_dispatches(now);
    }

    fn on_voice_server(&mut self, now: Instant, dispatch: VoiceServerDispatch) {
        if dispatch.guild_id != self.guild_id {
            return;
        }
        let Some(endpoint) = dispatch.endpoint.as_deref() else {
            // The server is being reallocated: drop this one, wait for the next (C2).
            if !matches!(self.phase, Phase::AwaitingServerUpdate { .. }) {
                self.leave_voice_server(now, DisconnectReason::EndpointRemoved);
            }
            return;
        };
        let url = match &self.config.gateway_url_override {
            Some(url) => voice_gateway_url(url),
            None => voice_gateway_url(endpoint),
        };
        let url = match url {
            Ok(url) => url,
            Err(error) => {
                self.ignore_frame(format!("unusable VOICE_SERVER_UPDATE endpoint: {error}"));
                return;
            }
        };
        self.url = Some(url);
        self.token = Some(dispatch.token);
        self.fresh_server = true;
        match self.phase {
            Phase::AwaitingServerUpdate { .. } => self.try_start_from_dispatches(now),
            Phase::Closed => {}
            // A new server while connected or connecting: a move. Fresh Identify, new UDP (C49).
            _ => {
                if self.ws_open || !matches!(self.phase, Phase::Backoff { .. }) {
                    self.out.push_back(Output::CloseWebSocket {
                        code: NORMAL_CLOSE_CODE,
                    });
                }
                self.end_media();
                self.begin_connecting(now, Recovery::Reconnect);
            }
        }
    }

    fn try_start_from_dispatches(&mut self, now: Instant) {
        let Phase::AwaitingServerUpdate { stage, .. } = self.phase else {
            return;
        };
        // A move only needs the new server; a (re)join needs both dispatches afresh (C3).
        let ready = match stage {
            Stage::Move => self.fresh_server,
            _ => self.fresh_server && self.fresh_state,
        };
        if ready && self.session_id.is_some() && self.token.is_some() && self.url.is_some() {
            self.begin_connecting(now, Recovery::Reconnect);
        }
    }

    // ---- websocket ----------------------------------------------------------------------------

    fn begin_connecting(&mut self, now: Instant, recovery: Recovery) {
        let Some(url) = self.url.clone() else {
            self.close(Error::Disconnected {
                code: self.last_close,
            });
            return;
        };
        self.heartbeat = None;
        self.ws_open = false;
        if recovery == Recovery::Reconnect {
            self.seq = None;
            self.end_media();
            self.keepalive_at = None;
            // A fresh Identify means a new MLS membership: a new DAVE session (C49).
            self.dave.reset();
        }
        self.speaking.announced = false;
        self.out.push_back(Output::OpenWebSocket { url });
        self.phase = Phase::Connecting {
            recovery,
            deadline: now + self.config.handshake_timeout,
        };
    }

    /// A fresh session: through the main gateway when we have one, else with the same credentials.
    fn begin_fresh(&mut self, now: Instant) {
        self.end_media();
        if let Some(join) = &self.join {
            self.out.push_back(Output::MainGateway(VoiceStateUpdate {
                guild_id: join.guild_id,
                channel_id: self.channel_id.or(Some(join.channel_id)),
                self_mute: join.self_mute,
                self_deaf: join.self_deaf,
            }));
            self.wait_for_server(now, Stage::ServerUpdate);
        } else {
            self.begin_connecting(now, Recovery::Reconnect);
        }
    }

    fn wait_for_server(&mut self, now: Instant, stage: Stage) {
        self.heartbeat = None;
        self.ws_open = false;
        self.fresh_server = false;
        self.fresh_state = false;
        let timeout = match stage {
            Stage::Move => self.config.move_timeout,
            _ => self.config.server_update_timeout,
        };
        self.phase = Phase::AwaitingServerUpdate {
            deadline: now + timeout,
            stage,
        };
    }

    fn on_ws_opened(&mut self) {
        let Phase::Connecting { recovery, .. } = self.phase else {
            return;
        };
        if self.ws_open {
            return;
        }
        self.ws_open = true;
        let (Some(session_id), Some(token)) = (self.session_id.clone(), self.token.clone()) else {
            return;
        };
        let message = match recovery {
            Recovery::Reconnect => ClientMessage::Identify(Identify {
                server_id: self.guild_id,
                user_id: self.user_id,
                session_id,
                token,
                max_dave_protocol_version: self.config.offered_dave_protocol_version(),
            }),
            Recovery::Resume => ClientMessage::Resume(Resume {
                server_id: self.guild_id,
                session_id,
                token,
                seq_ack: self.seq.and_then(|s| i64::try_from(s).ok()).unwrap_or(-1),
            }),
        };
        self.send(&message);
    }

    fn on_ws_closed(&mut self, now: Instant, code: Option<u16>) {
        if matches!(
            self.phase,
            Phase::AwaitingServerUpdate { .. } | Phase::Backoff { .. } | Phase::Closed
        ) {
            return; // a stale socket we already left behind
        }
        self.ws_open = false;
        self.heartbeat = None;
        self.on_connection_lost(now, code);
    }

    /// The websocket is gone (closed by the server, dropped, or declared dead by us).
    fn on_connection_lost(&mut self, now: Instant, code: Option<u16>) {
        self.last_close = code.or(self.last_close);
        let disposition = close::disposition(code, false);
        self.out
            .push_back(Output::Event(Event::CloseHandled { code, disposition }));
        if let CloseDisposition::Fatal(reason) = disposition {
            let code = code.unwrap_or_default();
            self.close(Error::Fatal { code, reason });
            return;
        }
        if !self.established_once {
            self.close(Error::HandshakeClosed { code });
            return;
        }
        match disposition {
            CloseDisposition::AwaitMove => {
                let code = code.unwrap_or_default();
                self.leave_voice_server(now, DisconnectReason::Closed { code });
            }
            CloseDisposition::Resume | CloseDisposition::Finished if self.media.is_some() => {
                self.start_recovery(now, Recovery::Resume, code);
            }
            _ => self.start_recovery(now, Recovery::Reconnect, code),
        }
    }

    /// Stops using the current voice server and waits for a new one (moves, 4014, null endpoint).
    fn leave_voice_server(&mut self, now: Instant, reason: DisconnectReason) {
        if self.ws_open {
            self.out.push_back(Output::CloseWebSocket {
                code: NORMAL_CLOSE_CODE,
            });
        }
        self.end_media();
        self.keepalive_at = None;
        self.speaking.announced = false;
        // The MLS membership ends with the voice server; the next one starts a new session.
        self.dave.reset();
        self.out
            .push_back(Output::Event(Event::Disconnected { reason }));
        self.wait_for_server(now, Stage::Move);
    }

    fn start_recovery(&mut self, now: Instant, recovery: Recovery, code: Option<u16>) {
        self.reconnect_attempts += 1;
        let attempt = self.reconnect_attempts;
        if attempt > self.config.max_reconnect_attempts {
            self.close(Error::TooManyReconnects {
                attempts: attempt - 1,
                last_code: self.last_close,
            });
            return;
        }
        self.out.push_back(Output::Event(Event::Reconnecting {
            recovery,
            code,
            attempt,
        }));
        self.heartbeat = None;
        self.ws_open = false;
        let delay = self.config.backoff(attempt);
        if delay.is_zero() {
            match recovery {
                Recovery::Resume => self.begin_connecting(now, Recovery::Resume),
                Recovery::Reconnect => self.begin_fresh(now),
            }
        } else {
            self.phase = Phase::Backoff {
                until: now + delay,
                recovery,
            };
        }
    }

    /// A stage failed (timeout): fatal before the first session, another recovery attempt after.
    fn fail_attempt(&mut self, now: Instant, error: Error) {
        let is_move_wait = matches!(
            self.phase,
            Phase::AwaitingServerUpdate {
                stage: Stage::Move,
                ..
            }
        );
        if !self.established_once || is_move_wait {
            if self.ws_open {
                self.out.push_back(Output::CloseWebSocket {
                    code: NORMAL_CLOSE_CODE,
                });
            }
            self.close(error);
            return;
        }
        if self.ws_open {
            self.out.push_back(Output::CloseWebSocket {
                code: ABANDON_CLOSE_CODE,
            });
        }
        tracing::debug!(%error, "recovery attempt failed");
        self.start_recovery(now, Recovery::Reconnect, None);
    }

    fn close(&mut self, error: Error) {
        self.phase = Phase::Closed;
        self.heartbeat = None;
        self.end_media();
        self.dave.reset();
        self.keepalive_at = None;
        self.ws_open = false;
        self.out.push_back(Output::Event(Event::Closed {
            error: error.clone(),
        }));
        self.error = Some(error);
    }

    /// The application leaves: op 4 with a null channel, close 1000.
    pub(crate) fn disconnect(&mut self) {
        if self.is_closed() {
            return;
        }
        if let Some(join) = &self.join {
            self.out.push_back(Output::MainGateway(VoiceStateUpdate {
                guild_id: join.guild_id,
                channel_id: None,
                self_mute: join.self_mute,
                self_deaf: join.self_deaf,
            }));
        }
        if !matches!(
            self.phase,
            Phase::AwaitingServerUpdate { .. } | Phase::Backoff { .. }
        ) {
            self.out.push_back(Output::CloseWebSocket {
                code: NORMAL_CLOSE_CODE,
            });
        }
        self.close(Error::ClosedByApplication);
    }

    // ---- gateway messages ---------------------------------------------------------------------

    fn on_frame(&mut self, now: Instant, frame: ServerFrame) {
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
            ServerMessage::Resumed => self.on_resumed(),
            ServerMessage::HeartbeatAck(ack) => {
                if let Some(latency) = self
                    .heartbeat
                    .as_mut()
                    .and_then(|hb| hb.acknowledge(now, ack.t))
                {
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
            }
            ServerMessage::ClientsConnect(clients) => {
                self.dave.add_users(&clients.user_ids);
                self.out.push_back(Output::Event(Event::ClientsConnected {
                    user_ids: clients.user_ids,
                }));
            }
            ServerMessage::ClientDisconnect(client) => {
                self.ssrc_users.retain(|_, user| *user != client.user_id);
                self.dave.remove_user(client.user_id);
                self.out.push_back(Output::Event(Event::ClientDisconnected {
                    user_id: client.user_id,
                }));
            }
            ServerMessage::Unknown { op, raw } => {
                self.out
                    .push_back(Output::Event(Event::UnknownOpcode { op, raw }));
            }
            ServerMessage::UnknownBinary { op, payload } => {
                let raw = payload.iter().map(|b| format!("{b:02x}")).collect();
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
    fn on_dave_message(&mut self, message: ServerMessage) {
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

    fn on_ready(&mut self, now: Instant, ready: Ready) {
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

    fn on_session_description(&mut self, now: Instant, description: SessionDescription) {
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
        self.reconnect_attempts = 0;
        self.keepalive_at = Some(now);
        self.phase = Phase::Connected;
        self.out.push_back(Output::Event(Event::Connected {
            ssrc,
            mode,
            dave_protocol_version: description.dave_protocol_version,
        }));
        self.out.extend(dave_out);
        self.reannounce_speaking();
    }

    fn on_resumed(&mut self) {
        let Phase::Connecting {
            recovery: Recovery::Resume,
            ..
        } = self.phase
        else {
            self.unexpected(Opcode::Resumed);
            return;
        };
        self.reconnect_attempts = 0;
        self.stats.resumes += 1;
        self.phase = Phase::Connected;
        self.out.push_back(Output::Event(Event::Resumed));
        self.reannounce_speaking();
    }

    fn unexpected(&mut self, op: Opcode) {
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

    fn ignore_frame(&mut self, reason: String) {
        self.stats.frames_ignored += 1;
        tracing::debug!(%reason, "ignored voice gateway input");
        self.out.push_back(Output::Event(Event::Ignored { reason }));
    }

    fn send(&mut self, message: &ClientMessage) {
        self.out.push_back(match message.encode() {
            Encoded::Text(text) => Output::SendText(text),
            Encoded::Binary(bytes) => Output::SendBinary(bytes),
        });
    }

    // ---- UDP ----------------------------------------------------------------------------------

    fn on_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        match self.phase {
            Phase::Discovering {
                remote, ssrc, mode, ..
            } if from == remote && classify(data) == PacketKind::Discovery => {
                match parse_discovery_response(data) {
                    Ok(found) => {
                        self.send(&ClientMessage::SelectProtocol(SelectProtocol::udp(
                            found.ip.to_string(),
                            found.port,
                            mode.name().to_owned(),
                        )));
                        self.phase = Phase::SelectingProtocol {
                            remote,
                            ssrc,
                            mode,
                            deadline: now + self.config.session_description_timeout,
                        };
                    }
                    Err(error) => {
                        self.stats.datagrams_ignored += 1;
                        tracing::debug!(%error, "bad IP discovery answer");
                    }
                }
            }
            _ => self.on_media_datagram(now, from, data),
        }
    }

    fn on_media_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let Some(media) = self.media.as_ref() else {
            self.stats.datagrams_ignored += 1;
            return;
        };
        if from != media.remote || classify(data) != PacketKind::Rtp {
            self.stats.datagrams_ignored += 1;
            return;
        }
        let header = match ReceivedRtp::parse(data) {
            Ok(header) if header.ssrc != media.ssrc => header,
            _ => {
                self.stats.datagrams_ignored += 1;
                return;
            }
        };
        // Taken out (no allocation) so that `deliver` can borrow the engine mutably.
        let mut scratch = std::mem::take(&mut self.rx_scratch);
        scratch.clear();
        scratch.extend_from_slice(data);
        let opus = media
            .cipher
            .open(&mut scratch, header.aad_len)
            .map_err(Error::from)
            .and_then(|range| {
                let plain = scratch.get(range).unwrap_or_default();
                header.payload(plain).map_err(Error::from)
            });
        match opus {
            Ok(opus) => {
                let packet = PacketInfo {
                    ssrc: header.ssrc,
                    sequence: header.sequence,
                    timestamp: header.timestamp,
                };
                self.deliver(now, packet, opus);
            }
            Err(_) => self.stats.decrypt_failures += 1,
        }
        self.rx_scratch = scratch;
    }

    /// The DAVE stage for a transport-decrypted frame: decrypt with the sender's user id (silence
    /// and plain frames pass), then hand the audio to the application. A DAVE frame whose SSRC is
    /// not mapped yet waits for its op 5.
    fn deliver(&mut self, now: Instant, packet: PacketInfo, opus: &[u8]) {
        let user_id = self.ssrc_users.get(&packet.ssrc).copied();
        let opus = match self
            .dave
            .decrypt(user_id, opus, self.channel_id, &mut self.out)
        {
            Incoming::Plain => opus.to_vec(),
            Incoming::Decrypted(frame) => {
                self.stats.dave_frames_decrypted += 1;
                frame.to_vec()
            }
            Incoming::UnknownSender => {
                if let Some(evicted) = self.unmapped.hold(now, packet, opus) {
                    self.drop_unmapped(evicted, "too many frames were waiting for their op 5");
                }
                return;
            }
            Incoming::Failed {
                reason,
                consecutive,
            } => {
                self.stats.dave_decrypt_failures += 1;
                self.out.push_back(Output::Event(Event::DaveDecryptFailed {
                    ssrc: packet.ssrc,
                    user_id,
                    consecutive,
                    reason,
                }));
                return;
            }
        };
        let audio = ReceivedAudio {
            ssrc: packet.ssrc,
            user_id,
            sequence: packet.sequence,
            timestamp: packet.timestamp,
            opus,
        };
        self.stats.packets_received += 1;
        self.out.push_back(Output::Event(Event::Audio(audio)));
    }

    /// Forgets the media session, and with it the frames that came on it and still wait for their
    /// sender (a new session brings new SSRCs and new DAVE keys).
    fn end_media(&mut self) {
        self.media = None;
        for held in self.unmapped.take_all() {
            self.drop_unmapped(held, "the media session it came on ended");
        }
    }

    /// Gives up on a frame whose sender never became known.
    fn drop_unmapped(&mut self, held: HeldFrame, why: &str) {
        self.stats.dave_decrypt_failures += 1;
        self.out.push_back(Output::Event(Event::DaveDecryptFailed {
            ssrc: held.packet.ssrc,
            user_id: None,
            consecutive: self.dave.consecutive_failures(),
            reason: format!("unknown sender: {why}"),
        }));
    }

    /// Counters with the gauge of frames waiting for their sender filled in.
    pub(crate) fn stats(&self) -> Stats {
        Stats {
            dave_frames_waiting: self.unmapped.len() as u64,
            ..self.stats
        }
    }

    // ---- sending ------------------------------------------------------------------------------

    fn media_mut(&mut self) -> Result<&mut Media, Error> {
        if self.is_closed() {
            return Err(Error::NotReady(NotReady::Closed));
        }
        self.media
            .as_mut()
            .ok_or(Error::NotReady(NotReady::Reconnecting))
    }

    pub(crate) fn set_speaking(&mut self, flags: SpeakingFlags) {
        self.speaking.flags = flags;
        if self.media.is_some() && self.ws_open && self.phase == Phase::Connected {
            self.announce(flags);
        }
    }

    fn announce(&mut self, flags: SpeakingFlags) {
        let Some(ssrc) = self.media.as_ref().map(|m| m.ssrc) else {
            return;
        };
        self.send(&ClientMessage::Speaking(Speaking {
            speaking: flags,
            delay: 0,
            ssrc,
            user_id: None,
        }));
        self.speaking.announced = flags != SpeakingFlags::NONE;
    }

    fn reannounce_speaking(&mut self) {
        self.speaking.announced = false;
        if self.speaking.talking {
            self.announce(self.speaking_flags_for_audio());
        }
    }

    fn speaking_flags_for_audio(&self) -> SpeakingFlags {
        if self.speaking.flags == SpeakingFlags::NONE {
            SpeakingFlags::MICROPHONE
        } else {
            self.speaking.flags
        }
    }

    pub(crate) fn send_opus<'b>(
        &mut self,
        _now: Instant,
        frame: &[u8],
        buf: &'b mut [u8],
    ) -> Result<&'b [u8], Error> {
        self.media_mut()?;
        // Refuse before touching anything: a frame refused for want of DAVE keys (C48) leaves
        // counters and speaking state as they were, so the caller can offer it again.
        if frame != SILENCE_FRAME && self.dave.status() == DaveStatus::Negotiating {
            return Err(Error::NotReady(NotReady::E2eeNotReady));
        }
        // Op 5 must precede the first audio of a spurt and of every websocket (C20).
        if !self.speaking.announced && self.ws_open && self.phase == Phase::Connected {
            self.announce(self.speaking_flags_for_audio());
        }
        self.speaking.talking = true;
        self.speaking.silence_remaining = 0;
        let encrypted = self.dave.status() == DaveStatus::Active && frame != SILENCE_FRAME;
        let media = self
            .media
            .as_mut()
            .ok_or(Error::NotReady(NotReady::Reconnecting))?;
        let len = media.write_packet(frame, &mut self.dave, buf)?;
        self.stats.packets_sent += 1;
        if encrypted {
            self.stats.dave_frames_encrypted += 1;
        }
        buf.get(..len)
            .ok_or(Error::NotReady(NotReady::BufferTooSmall {
                needed: len,
                available: 0,
            }))
    }

    pub(crate) fn stop_speaking(&mut self) {
        if self.speaking.talking {
            self.speaking.silence_remaining = SILENCE_FRAME_COUNT;
        }
    }

    pub(crate) fn silence_pending(&self) -> bool {
        self.speaking.silence_remaining > 0
    }

    pub(crate) fn send_silence<'b>(
        &mut self,
        buf: &'b mut [u8],
    ) -> Result<Option<&'b [u8]>, Error> {
        if self.speaking.silence_remaining == 0 {
            return Ok(None);
        }
        self.media_mut()?;
        let media = self
            .media
            .as_mut()
            .ok_or(Error::NotReady(NotReady::Reconnecting))?;
        let len = media.write_packet(&SILENCE_FRAME, &mut self.dave, buf)?;
        self.stats.packets_sent += 1;
        self.speaking.silence_remaining -= 1;
        if self.speaking.silence_remaining == 0 {
            self.speaking.talking = false;
            if self.speaking.announced && self.ws_open {
                self.announce(SpeakingFlags::NONE);
            }
            self.speaking.announced = false;
        }
        Ok(buf.get(..len))
    }

    /// One pacing tick: the application's next frame if it had one in time, else the underrun
    /// policy (five silence frames once after audio, then quiet).
    pub(crate) fn tick<'b>(
        &mut self,
        now: Instant,
        frame: Option<&[u8]>,
        buf: &'b mut [u8],
    ) -> Result<Option<&'b [u8]>, Error> {
        match frame {
            Some(frame) => self.send_opus(now, frame, buf).map(Some),
            None => {
                if self.speaking.talking && self.speaking.silence_remaining == 0 {
                    self.stop_speaking();
                }
                self.send_silence(buf)
            }
        }
    }

    pub(crate) fn ssrc_user(&self, ssrc: u32) -> Option<UserId> {
        self.ssrc_users.get(&ssrc).copied()
    }
}
