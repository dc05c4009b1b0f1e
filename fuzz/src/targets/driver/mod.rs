//! The driver: a scripted voice server and a correct adapter around one connection, checking
//! every output against a model. Its rules are split by concern: what the server sends
//! (`server`), received media (`receive`), the playout (`playout`), and the checks on what the
//! connection outputs (`observe`).

mod observe;
mod playout;
mod receive;
mod server;

use super::*;
use playout::{PlayoutModel, PlayoutView};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ws {
    None,
    Opening,
    Open,
}

/// What the model knows about the live media session (engine `media` is `Some`).
#[derive(Clone, Debug)]
pub(crate) struct MediaModel {
    ssrc: u32,
    pub(crate) mode: EncryptionMode,
    pub(crate) key: [u8; 32],
    remote: SocketAddr,
    /// (sequence, timestamp, nonce) of our last packet under this key.
    last: Option<(u16, u32, u32)>,
}

/// Drives one connection (an [`AnyState`]) as a correct adapter would, plays the voice server,
/// and checks the invariants after every input and application call:
///
/// - every drain ends with `WakeAt` or `Idle` (only once closed), and nothing but `Idle` comes out
///   of a closed connection; `WakeAt` is the earlier of `next_timer()` (never in the past) and
///   `next_transmit()`;
/// - every frame we send decodes, goes on an open websocket, and carries the right token, session
///   id, SSRC and `seq_ack`; one Identify or Resume per websocket, of the kind the recovery asked
///   for; datagrams go to the bound server address;
/// - statistics counters never go back (`frames_queued` is a gauge: the model's queue length);
/// - a server close is run through the close-code table and its consequence follows;
///
/// and the playout, against a model of its queue, talk spurt and 20 ms schedule
/// (`PlayoutModel`):
///
/// - `queue_opus` gives exactly the result the model predicts (`Closed`, `BadFrameLength` outside
///   1..=1275 bytes, `Full` at capacity, else `Ok`), and `stop_speaking()` drops exactly the
///   frames the model has queued;
/// - no datagram before Session Description, on a websocket that is not live (reconnecting,
///   resuming), or before op 5 with non-zero flags was taken from `poll_output` on the current
///   websocket (C20; op 5 is announced once per websocket and spurt, with the application's
///   flags); no queued frame while DAVE keys are pending (C48);
/// - every datagram is well-formed RTP that opens under the key the server gave, sequence,
///   timestamp and nonce each one step on (C19, C25), counted once, and carries what comes next:
///   the oldest queued frame (FIFO, none lost, none twice; plain, or DAVE-encrypted exactly when
///   DAVE is active, C43), else a trailing silence frame `F8 FF FE` (never DAVE-encrypted, C46);
///   five silence frames after the last audio of a spurt (or a stop), then op 5 with flags 0
///   taken before anything else (C21); a cut spurt's silence is never sent on the next session;
/// - the schedule: no datagram before its slot, so never two in one 20 ms slot; a poll late on
///   a running schedule gets the overdue slots at once, a poll more than `MAX_LAG` late one and
///   a new schedule; a hold or the end of a spurt pauses the schedule (nothing owed for it) and
///   the datagram that ends the pause starts a new one; after a poll nothing due is left unsent;
/// - `playout_hold()` is the model's (reconnecting, resuming, DAVE keys pending), every change of
///   it comes as one `PlayoutHeld`/`PlayoutResumed` (a `Closed` ends a hold silently);
///   `playout_idle()`, `queued_frames()`, `queue_capacity()` and `next_transmit()` (`None`
///   exactly when nothing can be sent; else the slot, or a time not after now) agree.
pub struct Driver {
    pub(crate) state: AnyState,
    config: Config,
    /// When the script started (for traces).
    start: Instant,
    pub(crate) now: Instant,
    pub(crate) ws: Ws,
    /// Kind of the current websocket: fresh Identify or Resume.
    socket_kind: Recovery,
    pending_recovery: Option<Recovery>,
    handshakes_on_socket: u32,
    live_on_socket: bool,
    announced: bool,
    pub(crate) udp: Option<SocketAddr>,
    /// The last Ready we sent: (remote, ssrc, modes); committed when the engine binds UDP.
    pending_ready: Option<(SocketAddr, u32, Vec<String>)>,
    ready_ssrc: Option<u32>,
    offered_modes: Vec<String>,
    selected_mode: Option<EncryptionMode>,
    answered: Option<(IpAddr, u16)>,
    pending_key: Option<(String, [u8; 32])>,
    pub(crate) media: Option<MediaModel>,
    established: bool,
    closed: bool,
    token: String,
    session_id: String,
    seq: u64,
    last_seq: Option<u64>,
    last_nonce: Option<u64>,
    ssrc_users: HashMap<u32, UserId>,
    /// What the playout must do next.
    pub(crate) playout: PlayoutModel,
    /// The flags of the application's latest `speaking` call (audio announces Microphone when
    /// there was none, or it was empty).
    app_flags: SpeakingFlags,
    /// Frames made by `Driver::opus_frame` so far (each carries its number when long enough).
    frames_made: u32,
    stats: Stats,
    last_wake: Option<Instant>,
    /// Outputs of the latest drain.
    pub(crate) outputs: Vec<Output>,
    /// The latest datagram that carried a queued frame.
    pub(crate) last_packet: Option<Vec<u8>>,
    /// Every output of every drain since the last [`Driver::take_log`], when logging.
    pub(crate) log: Option<Vec<Output>>,
    /// Op 4 leaves (channel null) seen: exactly one once the connection has ended, none before.
    leaves: u32,
    /// The model of the recovery attempt counter: attempts in a row since the last session that
    /// stayed up `reconnect_reset_after`.
    attempts: u32,
    /// When the current session will have stayed up long enough to reset the counter.
    stable_at: Option<Instant>,
    /// The earliest time the attempt announced by the latest `Reconnecting` may start (its
    /// backoff's lower bound): no retry without a backoff.
    retry_not_before: Option<Instant>,
    /// A 4004 was answered with a rejoin and no session was established since.
    rejoined_after_4004: bool,
    /// Per SSRC: where its received items stand (the grammar of spurts, frames and losses).
    received: HashMap<u32, SpurtGrammar>,
    /// Every payload sealed into a packet from another member, per (SSRC, sequence), and whether
    /// it passes the DAVE stage untouched: a received frame must be one of them (or come out of
    /// DAVE decryption).
    sealed_frames: HashMap<(u32, u16), Vec<SealedFrame>>,
    /// Frames received so far.
    frames_received: u64,
}

/// A payload sealed into a packet from another member, and whether it passes the DAVE stage
/// untouched.
type SealedFrame = (Vec<u8>, bool);

impl Driver {
    /// A join through the main gateway, already drained (op 4 is out).
    pub fn join(config: Config) -> Self {
        let now = Instant::now();
        let state = AnyState::from(AwaitingServerUpdate::new(
            now,
            config.clone(),
            JoinRequest::new(GUILD, CHANNEL, USER),
        ));
        let capacity = config.playout_queue_frames;
        let mut driver = Self {
            state,
            config,
            start: now,
            now,
            ws: Ws::None,
            socket_kind: Recovery::Reconnect,
            pending_recovery: None,
            handshakes_on_socket: 0,
            live_on_socket: false,
            announced: false,
            udp: None,
            pending_ready: None,
            ready_ssrc: None,
            offered_modes: Vec::new(),
            selected_mode: None,
            answered: None,
            pending_key: None,
            media: None,
            established: false,
            closed: false,
            token: String::new(),
            session_id: String::new(),
            seq: 0,
            last_seq: None,
            last_nonce: None,
            ssrc_users: HashMap::new(),
            playout: PlayoutModel::new(capacity),
            app_flags: SpeakingFlags::NONE,
            frames_made: 0,
            stats: Stats::default(),
            last_wake: None,
            outputs: Vec::new(),
            last_packet: None,
            log: None,
            leaves: 0,
            attempts: 0,
            stable_at: None,
            retry_not_before: None,
            rejoined_after_4004: false,
            received: HashMap::new(),
            sealed_frames: HashMap::new(),
            frames_received: 0,
        };
        driver.drain();
        driver
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The error that ended the connection, if it has ended.
    pub fn error(&self) -> Option<&Error> {
        self.state.error()
    }

    /// Starts keeping every output (for [`Driver::events_logged`]).
    pub fn keep_log(&mut self) {
        self.log = Some(Vec::new());
    }

    /// The events among the outputs kept since [`Driver::keep_log`].
    pub fn events_logged(&self) -> Vec<Event> {
        self.log
            .iter()
            .flatten()
            .filter_map(|o| match o {
                Output::Event(event) => Some(event.clone()),
                _ => None,
            })
            .collect()
    }

    /// Whether a media session is live (the engine can send audio).
    pub fn has_media(&self) -> bool {
        self.media.is_some()
    }

    /// The outputs of the latest drain.
    pub fn outputs(&self) -> &[Output] {
        &self.outputs
    }

    /// Datagrams `poll_transmit` gave so far.
    pub fn datagrams(&self) -> u64 {
        self.playout.datagrams
    }

    /// The model's playout, for traces: time, datagrams, queue, spurt, schedule and hold.
    pub fn playout_trace(&self) -> String {
        let ms = |at: Instant| at.saturating_duration_since(self.start).as_millis();
        let p = &self.playout;
        format!(
            "t={}ms datagrams={} queued={} talking={} silence_left={} slot={:?} running={} \
             hold={:?} announced={}",
            ms(self.now),
            p.datagrams,
            p.queue.len(),
            p.talking,
            p.silence_left,
            p.slot.map(ms),
            p.running,
            p.reported,
            self.announced
        )
    }

    /// Runs every step in order.
    pub fn run(&mut self, steps: &[Step]) {
        for step in steps {
            self.step(step);
        }
    }

    /// Feeds one input, bypassing the adapter model (for raw frames in any state), and drains.
    pub fn feed_raw(&mut self, input: Input<'_>) {
        let stray = matches!(input, Input::Text(_) | Input::Binary(_)) && self.ws != Ws::Open;
        if !stray {
            self.mirror_input(&input);
        }
        let _ = self.state.handle_input(self.now, input);
        self.drain();
        if stray {
            // A frame with no open websocket is stale: an ignored event at most, nothing else.
            assert!(
                self.outputs.iter().all(|o| matches!(
                    o,
                    Output::Event(Event::Ignored { .. }) | Output::WakeAt(_) | Output::Idle
                ) || matches!(o, Output::Transmit { data, .. } if data.len() == 8)),
                "a stray frame changed the state: {:?}",
                self.outputs
            );
        }
    }

    /// Lets time run to each wake-up until the attempt a `Reconnecting` announced starts (its
    /// jittered backoff is over: a websocket opens or op 4 rejoins), or the connection ends.
    pub fn wait_out_backoff(&mut self) {
        for _ in 0..64 {
            if self.retry_not_before.is_none() || self.closed {
                return;
            }
            self.step(&Step::AdvanceToWake);
        }
    }

    /// Lets time run through `wakeups` successive wake-up times, then one minute more.
    pub fn run_timers(&mut self, wakeups: usize) {
        for _ in 0..wakeups {
            self.step(&Step::AdvanceToWake);
        }
        self.step(&Step::Advance(60_000));
    }

    pub(crate) fn feed(&mut self, input: Input<'_>) {
        self.feed_raw(input);
    }

    /// What the engine will learn from a frame we deliver, mirrored in the model.
    fn mirror_input(&mut self, input: &Input<'_>) {
        if self.closed {
            return;
        }
        let frame = match input {
            Input::Text(text) => ServerFrame::decode_text(text).ok(),
            Input::Binary(bytes) => ServerFrame::decode_binary(bytes).ok(),
            _ => None,
        };
        let Some(frame) = frame else { return };
        if let Some(seq) = frame.seq {
            self.last_seq = Some(seq);
        }
        match frame.message {
            ServerMessage::Ready(ready) => {
                if let Ok(ip) = ready.ip.trim().parse::<IpAddr>() {
                    let remote = SocketAddr::new(ip, ready.port);
                    self.pending_ready = Some((remote, ready.ssrc, ready.modes));
                }
            }
            ServerMessage::SessionDescription(description) => {
                self.pending_key = Some((description.mode, *description.secret_key.expose()));
            }
            ServerMessage::Speaking(Speaking {
                ssrc,
                user_id: Some(user),
                ..
            }) => {
                self.ssrc_users.insert(ssrc, user);
            }
            ServerMessage::ClientDisconnect(ClientDisconnect { user_id }) => {
                self.ssrc_users.retain(|_, user| *user != user_id);
            }
            _ => {}
        }
    }

    fn deliver_text(&mut self, text: &str) {
        if self.ws == Ws::Open {
            self.feed(Input::Text(text));
        }
    }

    pub(crate) fn next_seq(&mut self, numbered: bool) -> Option<u64> {
        numbered.then(|| {
            self.seq += 1;
            self.seq
        })
    }

    /// Carries out one scripted step and checks the invariants.
    pub fn step(&mut self, step: &Step) {
        // A correct adapter feeds a timer that is due before anything else happens. (A playout
        // slot that is due waits for a poll step: the script decides how late the driver is.)
        let due = self.state.next_timer().is_some_and(|at| at <= self.now);
        if due && !matches!(step, Step::Advance(_) | Step::AdvanceToWake) {
            self.feed(Input::Timer);
        }
        match step {
            Step::StateUpdate(which) => {
                let (user_id, guild_id, channel_id, session) = match which {
                    StateUpdate::Joined(n) => (USER, GUILD, Some(CHANNEL), format!("sess-{n}")),
                    StateUpdate::Left => (USER, GUILD, None, "sess-left".to_owned()),
                    StateUpdate::OtherUser => (OTHER_USER, GUILD, Some(CHANNEL), "x".to_owned()),
                    StateUpdate::OtherGuild => (USER, GuildId(1), Some(CHANNEL), "y".to_owned()),
                };
                if user_id == USER && guild_id == GUILD && !self.closed {
                    self.session_id = session.clone();
                }
                self.feed(Input::VoiceStateUpdate(VoiceStateDispatch {
                    guild_id: Some(guild_id),
                    channel_id,
                    user_id,
                    session_id: session,
                }));
            }
            Step::ServerUpdate(which) => {
                let (guild_id, endpoint, token) = match which {
                    ServerUpdate::Endpoint(n) => {
                        let endpoint = if n & 0x80 != 0 {
                            format!("ws://{ENDPOINT}")
                        } else {
                            ENDPOINT.to_owned()
                        };
                        (GUILD, Some(endpoint), format!("token-{n}"))
                    }
                    ServerUpdate::NullEndpoint => (GUILD, None, "token-null".to_owned()),
                    ServerUpdate::BadEndpoint => (
                        GUILD,
                        Some("bad host:99999".to_owned()),
                        "token-bad".to_owned(),
                    ),
                    ServerUpdate::OtherGuild => (
                        GuildId(1),
                        Some(ENDPOINT.to_owned()),
                        "token-other".to_owned(),
                    ),
                };
                // Only wss:// from Discord (row 8): a ws:// endpoint is refused like a bad one.
                let usable = endpoint
                    .as_deref()
                    .is_some_and(|e| secure_voice_gateway_url(e).is_ok());
                let insecure = endpoint.as_deref().is_some_and(|e| {
                    voice_gateway_url(e).is_ok() && secure_voice_gateway_url(e).is_err()
                });
                if guild_id == GUILD && usable && !self.closed {
                    self.token = token.clone();
                    // A new server is a move: whatever recovery was pending becomes a fresh
                    // Identify (C49), at once (a move is no retry).
                    self.pending_recovery = None;
                    self.retry_not_before = None;
                }
                self.feed(Input::VoiceServerUpdate(VoiceServerDispatch {
                    token: Token::new(token),
                    guild_id,
                    endpoint,
                }));
                if insecure && guild_id == GUILD {
                    assert!(
                        !self
                            .outputs
                            .iter()
                            .any(|o| matches!(o, Output::OpenWebSocket { .. })),
                        "a ws:// endpoint from VOICE_SERVER_UPDATE was used (row 8)"
                    );
                }
            }
            Step::Opened => {
                if self.ws == Ws::Opening {
                    self.ws = Ws::Open;
                    self.feed(Input::WebSocketOpened);
                }
            }
            Step::ServerClose(code) => self.server_close(*code),
            Step::Text { message, numbered } => {
                if self.ws == Ws::Open {
                    let seq = self.next_seq(*numbered);
                    let text = self.server_text(message, seq);
                    let expect_ack = matches!(message, ServerText::HeartbeatAck { t: None })
                        && self.last_nonce.is_some();
                    self.deliver_text(&text);
                    if expect_ack {
                        self.last_nonce = None;
                        assert!(
                            self.closed
                                || self.outputs.iter().any(|o| matches!(
                                    o,
                                    Output::Event(Event::HeartbeatAcknowledged { .. })
                                )),
                            "an ACK of the outstanding heartbeat was not acknowledged"
                        );
                    }
                }
            }
            Step::RawText(text) => self.deliver_text(text),
            Step::Binary(bytes) => {
                if self.ws == Ws::Open {
                    self.feed(Input::Binary(bytes));
                }
            }
            Step::DiscoveryAnswer(kind) => self.discovery_answer(*kind),
            Step::Audio(packet) => self.audio(packet),
            Step::Datagram { foreign, data } => {
                if let Some(remote) = self.udp {
                    let from = if *foreign { stranger() } else { remote };
                    self.datagram(from, data);
                }
            }
            Step::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.feed(Input::Timer);
            }
            Step::AdvanceToWake => {
                if let Some(at) = self.last_wake {
                    self.now = self.now.max(at);
                }
                // A driver with one loop: the timer input, then every datagram due.
                self.feed(Input::Timer);
                self.play_due();
            }
            Step::Speaking(flags) => self.speaking(SpeakingFlags::from_bits(*flags)),
            Step::QueueOpus {
                len,
                fill,
                queue_only,
            } => {
                let frame = self.opus_frame(usize::from(*len) % 1400, *fill);
                self.queue_opus(&frame);
                if !queue_only {
                    self.poll_pass();
                }
            }
            Step::StopSpeaking => self.stop_speaking(),
            Step::PollTransmit => {
                self.poll_pass();
            }
            Step::Disconnect => self.disconnect(),
        }
    }
}
