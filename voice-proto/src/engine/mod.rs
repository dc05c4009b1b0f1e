//! The one engine behind every typestate: phases, timers, the close-code policy, and the message
//! handlers. The public typestates in [`crate::state`] are typed views of it.

mod frames;
mod main_gateway;
mod media;
mod playout;
mod receive;
mod recovery;
mod ssrc_users;
mod streams;
mod timers;
mod unmapped;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use crate::config::Config;
use crate::crypto::EncryptionMode;
use crate::dave::Dave;
use crate::error::{Error, Stage};
use crate::gateway::{voice_gateway_url, VoiceStateUpdate};
use crate::heartbeat::Heartbeat;
use crate::id::{ChannelId, GuildId, UserId};
use crate::io::{Input, Output, Recovery};
use crate::join::{ConnectionInfo, JoinRequest};
use crate::payload::ServerFrame;
use crate::secret::Token;

pub(crate) use media::Media;
use playout::Playout;
use ssrc_users::SsrcUsers;
use streams::Streams;
use unmapped::UnmappedFrames;

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

/// Counters the application can read (`Session::stats`). New fields may be added in any
/// release (`#[non_exhaustive]`): read them, start from `Stats::default()` to build one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Audio packets written by `poll_transmit` (queued frames and trailing silence).
    pub packets_sent: u64,
    /// Queued frames that could not be sent at all (a DAVE encryption failure) and were dropped.
    pub frames_dropped: u64,
    /// Frames waiting in the playout queue now (a gauge).
    pub frames_queued: u64,
    /// Received audio packets that decrypted.
    pub packets_received: u64,
    /// Received RTP packets that failed transport decryption or parsing.
    pub decrypt_failures: u64,
    /// Datagrams ignored (foreign source, RTCP, not RTP, late discovery answers; every media
    /// datagram when receive is off).
    pub datagrams_ignored: u64,
    /// Received audio packets not decrypted because their sender's playout buffer had their
    /// sequence already (a duplicate) or had given it up (late).
    pub packets_skipped: u64,
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
    /// SSRCs mapped to users by op 5 in the current media session (a gauge, at most
    /// [`limits::SSRC_USERS`](crate::limits::SSRC_USERS)).
    pub ssrcs_mapped: u64,
    /// Users DAVE recognises now, ourselves included (a gauge, at most
    /// [`limits::DAVE_RECOGNISED_USERS`](crate::limits::DAVE_RECOGNISED_USERS); 0 without the
    /// `dave` feature).
    pub dave_recognised_users: u64,
    /// Resumes that succeeded.
    pub resumes: u32,
    /// Fresh sessions established after the first.
    pub reconnects: u32,
    /// Bytes of the audio datagrams written by `poll_transmit` (RTP header, encrypted payload
    /// and tag: what goes on the wire above UDP).
    pub bytes_sent: u64,
    /// Datagrams received on the media socket, whatever they were (audio, RTCP, keepalive
    /// echoes, discovery answers).
    pub datagrams_received: u64,
    /// Bytes of those datagrams.
    pub bytes_received: u64,
    /// The voice websocket's latest round trip: heartbeat (op 3) to its ACK (op 6) carrying
    /// the same nonce. `None` until the first ACK.
    pub websocket_round_trip: Option<core::time::Duration>,
    /// The media path's latest round trip: a UDP keepalive to the server's echo of it (the
    /// 8-byte datagram with the same counter, as @discordjs/voice measures it). `None` while
    /// no echo came: Discord does not document echoing keepalives.
    pub udp_round_trip: Option<core::time::Duration>,
    /// The DAVE (MLS) epoch of the current group, when DAVE is on and the group formed.
    pub dave_epoch: Option<u64>,
}

/// Where a received frame came from in the RTP stream.
#[derive(Debug, Clone, Copy)]
struct PacketInfo {
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
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
    /// Outputs taken by `poll_output` so far (to know when a queued op 5 has left).
    outputs_taken: u64,
    /// Last `seq` from the server on this voice session (kept across resumes).
    seq: Option<u64>,
    heartbeat: Option<Heartbeat>,
    ws_open: bool,
    pub(crate) media: Option<Media>,
    pub(crate) dave_protocol_version: u16,
    /// End-to-end encryption state of the current voice connection.
    pub(crate) dave: Dave,
    /// Outgoing audio: queue, clock, op 5 announcement, trailing silence.
    playout: Playout,
    /// SSRC → user from op 5, for the current media session.
    ssrc_users: SsrcUsers,
    /// DAVE frames that arrived before their SSRC's op 5.
    unmapped: UnmappedFrames,
    /// The senders' playout buffers, when receive is on.
    receive: Option<Streams>,
    keepalive_at: Option<Instant>,
    keepalive_counter: u32,
    /// Keepalives sent and not echoed yet, oldest first (bounded: `KEEPALIVES_REMEMBERED`).
    keepalives_sent: VecDeque<(u32, Instant)>,
    /// Recovery attempts in a row (reset once a session stayed up `reconnect_reset_after`).
    reconnect_attempts: u32,
    last_close: Option<u16>,
    established_once: bool,
    /// When the join (or `connect`) started, and the deadline of its first session; the deadline
    /// is cleared once a session is established.
    join_started: Instant,
    join_deadline: Option<Instant>,
    /// What made the latest attempt before the first session fail.
    last_failure: Option<Error>,
    /// Websockets opened before the first session.
    websocket_attempts: u32,
    /// When the current attempt (a websocket, or the wait for dispatches) began.
    attempt_started: Instant,
    /// When the current session will have stayed up long enough to reset the attempt counter.
    stable_at: Option<Instant>,
    /// A 4004 was answered with a rejoin and no session followed yet.
    rejoined_after_4004: bool,
    /// The op 4 leave went out (at most once).
    left_main_gateway: bool,
    /// State of the backoff jitter's generator (seeded from `Config::jitter_seed`).
    jitter_state: u64,
    rx_scratch: Vec<u8>,
    pub(crate) stats: Stats,
}

impl Engine {
    fn blank(
        now: Instant,
        config: Config,
        user_id: UserId,
        guild_id: GuildId,
        phase: Phase,
    ) -> Self {
        let playout = Playout::new(config.playout_queue_frames);
        let receive = config.receive.map(Streams::new);
        let join_deadline = now.checked_add(config.join_timeout);
        let jitter_state = config.jitter_seed;
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
            outputs_taken: 0,
            seq: None,
            heartbeat: None,
            ws_open: false,
            media: None,
            dave_protocol_version: 0,
            dave: Dave::new(user_id),
            playout,
            ssrc_users: SsrcUsers::default(),
            unmapped: UnmappedFrames::default(),
            receive,
            keepalive_at: None,
            keepalive_counter: 0,
            keepalives_sent: VecDeque::new(),
            reconnect_attempts: 0,
            last_close: None,
            established_once: false,
            join_started: now,
            join_deadline,
            last_failure: None,
            websocket_attempts: 0,
            attempt_started: now,
            stable_at: None,
            rejoined_after_4004: false,
            left_main_gateway: false,
            jitter_state,
            rx_scratch: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// A closed engine used only as a stand-in while a state is moved (see `AnyState`); `now` is
    /// any instant (the core reads no clock).
    pub(crate) fn placeholder(now: Instant) -> Self {
        Self::blank(now, Config::default(), UserId(0), GuildId(0), Phase::Closed)
    }

    /// Starts a join through the main gateway: op 4 goes out, then both dispatches are awaited.
    pub(crate) fn join(now: Instant, config: Config, join: JoinRequest) -> Self {
        let deadline = now + config.server_update_timeout;
        let mut engine = Self::blank(
            now,
            config,
            join.user_id,
            join.guild_id,
            Phase::AwaitingServerUpdate {
                deadline,
                stage: Stage::ServerUpdate,
            },
        );
        engine.playout.observe(now);
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
        let mut engine = Self::blank(now, config, info.user_id, info.guild_id, Phase::Closed);
        engine.playout.observe(now);
        engine.channel_id = info.channel_id;
        engine.session_id = Some(info.session_id);
        engine.token = Some(info.token);
        engine.url = Some(url);
        engine.begin_connecting(now, Recovery::Reconnect);
        Ok(engine)
    }

    /// Counters with the gauge of frames waiting for their sender filled in.
    pub(crate) fn stats(&self) -> Stats {
        Stats {
            dave_frames_waiting: self.unmapped.len() as u64,
            ssrcs_mapped: self.ssrc_users.len() as u64,
            dave_recognised_users: self.dave.recognised_users() as u64,
            frames_queued: self.playout.queue.len() as u64,
            dave_epoch: self.dave.epoch(),
            ..self.stats
        }
    }

    /// The guild this connection is for.
    pub(crate) fn guild_id(&self) -> GuildId {
        self.guild_id
    }

    /// When the join (or `connect`) started.
    pub(crate) fn started(&self) -> Instant {
        self.join_started
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    pub(crate) fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    pub(crate) fn poll_output(&mut self) -> Output {
        if let Some(output) = self.out.pop_front() {
            self.outputs_taken += 1;
            return output;
        }
        match [self.next_timer(), self.next_transmit()]
            .into_iter()
            .flatten()
            .min()
        {
            Some(at) => Output::WakeAt(at),
            None => Output::Idle,
        }
    }

    /// The next deadline of the control side (handshake stages, heartbeats, keepalive, frames
    /// waiting for their sender, the receive buffers), without the playout clock.
    pub(crate) fn next_timer(&self) -> Option<Instant> {
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
            self.join_deadline,
            self.heartbeat.as_ref().map(Heartbeat::deadline),
            self.keepalive_at.filter(|_| self.media.is_some()),
            self.unmapped.next_expiry(),
            self.receive.as_ref().and_then(Streams::next_deadline),
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
        self.playout.observe(now);
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
                Input::Datagram { from, data } => {
                    self.stats.datagrams_received += 1;
                    self.stats.bytes_received += data.len() as u64;
                    if !self.on_keepalive_echo(now, from, data) {
                        self.on_datagram(now, from, data);
                    }
                }
                Input::Timer => {}
            }
        }
        if !self.is_closed() {
            self.sync_hold();
        }
        match &self.error {
            Some(error) if self.is_closed() => Err(error.clone()),
            _ => Ok(()),
        }
    }
}
