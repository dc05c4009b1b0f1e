//! The behaviours every adapter (voice-tokio, voice-std) is tested for against this server: the
//! scenario of each case, the client settings that make it fast, and the assertions on what the
//! server observed. Both adapters' test suites use these, so the two are held to one standard.
//!
//! Everything here is synchronous; an adapter's tests add only how they run their client.

use std::path::Path;
use std::time::Duration;

use std::sync::Arc;

use crate::config::{
    AckPolicy, CloseRule, DaveConfig, FirstClose, Garbage, Scenario, ServerConfig, SimulatedUser,
    Trigger,
};
use crate::netem::NetemConfig;
use crate::report::{NetemReport, SpokenStream};
use crate::server::VoiceServer;
use voice_proto::{Event, Recovery};

/// Short heartbeats keep resume and missed-ACK cases fast.
pub const HEARTBEAT: Duration = Duration::from_millis(250);

/// Packets after which the mid-stream close cases close the websocket.
pub const CLOSE_AFTER_PACKETS: u64 = 20;

/// What Discord's main gateway sends `client` for its join, as `(event name, d JSON)` pairs in
/// the order of an adapter's `Voice::handle_dispatch`: VOICE_SERVER_UPDATE (its server, its
/// token) and VOICE_STATE_UPDATE (its channel and session).
pub fn join_dispatches(client: &crate::ExpectedClient) -> [(&'static str, String); 2] {
    let server = serde_json::json!({
        "token": client.token,
        "guild_id": client.guild_id.to_string(),
        "endpoint": client.endpoint,
    });
    let state = serde_json::json!({
        "guild_id": client.guild_id.to_string(),
        "channel_id": client.channel_id.to_string(),
        "user_id": client.user_id.to_string(),
        "session_id": client.session_id,
    });
    [
        ("VOICE_SERVER_UPDATE", server.to_string()),
        ("VOICE_STATE_UPDATE", state.to_string()),
    ]
}

/// The first `n` Opus frames of the bundled 8-second sample (398 frames).
///
/// # Panics
/// If the bundled sample is missing or shorter than `n` (a broken checkout).
pub fn sample_frames(n: usize) -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/sample.ogg");
    let mut frames = crate::ogg_opus::read_file(&path).unwrap_or_default();
    assert!(
        frames.len() >= n,
        "{} holds fewer than {n} frames",
        path.display()
    );
    frames.truncate(n);
    frames
}

/// The server for one case: 127.0.0.1, short heartbeats, `scenario`.
pub fn server_config(tls: bool, scenario: Scenario) -> ServerConfig {
    ServerConfig {
        tls,
        heartbeat_interval: HEARTBEAT,
        scenario,
        ..ServerConfig::default()
    }
}

/// The client's protocol settings for `server`: its ws:// URL when it has no TLS (with TLS, trust
/// [`VoiceServer::ca_pem`] instead) and deadlines short enough for tests.
pub fn client_core_config(server: &VoiceServer) -> voice_proto::Config {
    {
        let mut config = voice_proto::Config::default();
        config.gateway_url_override = server.ca_pem().is_none().then(|| server.ws_url());
        config.server_update_timeout = Duration::from_millis(300);
        config.handshake_timeout = Duration::from_secs(3);
        config.session_description_timeout = Duration::from_secs(3);
        config.discovery_retry_interval = Duration::from_millis(200);
        config.reconnect_backoff_initial = Duration::from_millis(100);
        config.move_timeout = Duration::from_secs(3);
        config
    }
}

fn close_after_packets(code: u16) -> Scenario {
    Scenario {
        close: vec![CloseRule {
            code,
            trigger: Trigger::AfterPackets(CLOSE_AFTER_PACKETS),
        }],
        ..Scenario::default()
    }
}

/// Close 4015 mid-stream: the client must resume.
pub fn resume_after_4015() -> Scenario {
    close_after_packets(4015)
}

/// Close 4006 mid-stream: the client must identify afresh.
pub fn reconnect_after_4006() -> Scenario {
    close_after_packets(4006)
}

/// Close 4014 mid-stream: the client must wait for a move.
pub fn moved_after_4014() -> Scenario {
    close_after_packets(4014)
}

/// Close 4017 shortly after the session starts: the client must stop for good.
pub fn dave_required_4017() -> Scenario {
    Scenario {
        close: vec![CloseRule {
            code: 4017,
            trigger: Trigger::AfterSession(Duration::from_millis(100)),
        }],
        ..Scenario::default()
    }
}

/// No heartbeat is ever acknowledged on the first websocket.
pub fn missed_acks() -> Scenario {
    Scenario {
        heartbeat_acks: AckPolicy::Never,
        ..Scenario::default()
    }
}

/// Every kind of garbage right after Session Description.
pub fn garbage() -> Scenario {
    Scenario {
        garbage: vec![
            Garbage::UnknownOpcode,
            Garbage::MalformedJson,
            Garbage::UnexpectedBinary,
        ],
        ..Scenario::default()
    }
}

/// IP discovery is never answered.
pub fn no_discovery() -> Scenario {
    Scenario {
        answer_discovery: false,
        ..Scenario::default()
    }
}

/// How a join against [`no_discovery`] ends, with `max_reconnect_attempts = 1`: `error` is
/// `JoinFailed` after the first attempt and one retry, naming IP discovery as what failed
/// last, and the server saw two websockets and `per_attempt` discovery requests on each.
///
/// # Panics
/// With the error or the server's report when anything differs.
pub fn assert_discovery_failed_twice(
    server: &VoiceServer,
    client: usize,
    error: &voice_proto::Error,
    per_attempt: u32,
) {
    let voice_proto::Error::JoinFailed { attempts, last, .. } = error else {
        panic!("{error:?}")
    };
    assert!(
        matches!(
            **last,
            voice_proto::Error::Timeout {
                stage: voice_proto::Stage::IpDiscovery,
                ..
            }
        ),
        "{last:?}"
    );
    assert_eq!(*attempts, 2, "the first attempt and one retry");
    let report = server.report();
    assert_eq!(
        report.clients[client].discovery_requests,
        attempts * per_attempt,
        "{report}"
    );
    assert_eq!(report.clients[client].connections.len(), 2, "{report}");
}

/// Each client's first websocket ends right after Identify (`how`): the join must survive its
/// bad start with a new websocket after a backoff (issue 14 row 1).
pub fn first_websocket_ends(how: FirstClose) -> Scenario {
    Scenario {
        first_websocket: Some(how),
        ..Scenario::default()
    }
}

/// Each client's first IP discovery request is lost: the client sends it again.
pub fn first_discovery_lost() -> Scenario {
    Scenario {
        lose_first_discovery: true,
        ..Scenario::default()
    }
}

/// [`resume_after_4015`] while a simulated user speaks `frames` from the start: a flood of
/// received audio around the control events of a resume (issue 14 row 6).
pub fn resume_while_a_user_speaks(frames: Vec<Vec<u8>>) -> Scenario {
    Scenario {
        users: vec![SimulatedUser {
            user_id: DAVE_LISTENER,
            join_after: Duration::ZERO,
            speak_after: Some(Duration::ZERO),
            leave_after: None,
            frames: Arc::new(frames),
            dave: false,
        }],
        ..resume_after_4015()
    }
}

/// A DAVE call the listener joins only after `join_after`: until then the client is alone,
/// holds no key, and its audio waits (issue 14 row 10).
pub fn dave_listener_joins_after(join_after: Duration) -> Scenario {
    Scenario {
        users: vec![simulated(DAVE_LISTENER, join_after, None)],
        ..Scenario::default()
    }
}

/// The time between the end of `client`'s websocket number `index` and the opening of the next
/// one, as the server saw it: the client's backoff (plus loopback latency).
///
/// # Panics
/// With the server's report when the client has no such pair of websockets.
pub fn reconnect_gap(server: &VoiceServer, client: usize, index: usize) -> Duration {
    let report = server.report();
    let connections = report
        .clients
        .get(client)
        .map(|c| c.connections.as_slice())
        .unwrap_or_default();
    let (Some(closed), Some(next)) = (
        connections.get(index).and_then(|c| c.closed_ms),
        connections.get(index + 1).map(|c| c.opened_ms),
    ) else {
        panic!(
            "no websocket {index} and {} of client {client}\n{report}",
            index + 1
        )
    };
    Duration::from_millis(next.saturating_sub(closed))
}

/// What a client tells its application after the bad start of [`first_websocket_ends`]: a
/// fresh reconnect, attempt 1, for the close `how` (its code, or none for a dropped TCP
/// connection).
///
/// # Panics
/// With the events when no such `Reconnecting` is among them.
pub fn assert_reconnecting_after_the_bad_start(how: FirstClose, events: &[Event]) {
    let code = match how {
        FirstClose::Code(code) => Some(code),
        FirstClose::Drop => None,
    };
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Reconnecting { recovery: Recovery::Reconnect, code: c, attempt: 1 } if *c == code
        )),
        "{how:?}: {events:?}"
    );
}

/// What the server saw of `client` that survived the bad start of [`first_websocket_ends`] and
/// played `frames`: two websockets, one session, every frame byte-exact, and between the two
/// websockets at least `backoff_floor` (the shortest first backoff: no retry without one).
///
/// # Panics
/// With the server's report when anything differs.
pub fn assert_recovered_from_the_bad_start(
    server: &VoiceServer,
    client: usize,
    frames: &[Vec<u8>],
    backoff_floor: Duration,
) {
    let report = server.report();
    assert_eq!(report.clients[client].connections.len(), 2, "{report}");
    assert_sessions(server, client, 1, 0);
    assert_byte_exact(server, client, frames);
    let gap = reconnect_gap(server, client, 0);
    assert!(
        gap >= backoff_floor,
        "{gap:?} < {backoff_floor:?}\n{report}"
    );
}

/// What a client that read nothing during [`resume_while_a_user_speaks`] finds queued: the data
/// events stay within the `room` kept for them (received audio is no event at all: it has
/// bounded queues of its own, issue 15), and the resume's control events are there all the same
/// (issue 14 row 6). `is_control` tells the two kinds apart (the adapters'
/// `voice_adapter::is_control_event`).
///
/// # Panics
/// With the events when anything differs.
pub fn assert_control_events_survived_the_flood(
    events: &[Event],
    room: usize,
    is_control: impl Fn(&Event) -> bool,
) {
    let data = events.iter().filter(|e| !is_control(e)).count();
    assert!(data <= room, "more data events than their room: {events:?}");
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Reconnecting {
                recovery: Recovery::Resume,
                code: Some(4015),
                ..
            }
        )),
        "{events:?}"
    );
    assert!(events.contains(&Event::Resumed), "{events:?}");
}

/// The flood of [`resume_while_a_user_speaks`] went to the receiver, not the events: the
/// connection received it (`receive`, its receive counters) and a subscription nobody read
/// dropped frames beyond its bound (`unread_dropped`), counted, while the connection went on.
///
/// # Panics
/// With the counters when either is not so.
pub fn assert_the_flood_went_to_the_receiver(
    receive: Option<voice_proto::receive::ReceiveStats>,
    unread_dropped: u64,
) {
    let Some(stats) = receive else {
        panic!("receive is off")
    };
    assert!(
        stats.buffers.frames > 40,
        "the flood was received: {stats:?}"
    );
    assert!(
        unread_dropped > 0,
        "the unread subscription dropped frames, counted: {stats:?}"
    );
}

/// The simulated DAVE user in every DAVE case: in the call from the start, it decrypts what the
/// client sends (so the server can check it end to end) and, in [`dave_speaker`], speaks.
pub const DAVE_LISTENER: u64 = 500_000_000_000_000_001;

/// A second simulated DAVE user who joins and leaves in [`dave_member_joins_and_leaves`].
pub const DAVE_VISITOR: u64 = 500_000_000_000_000_002;

/// The simulated user without DAVE in [`dave_downgrade_and_back`].
pub const PLAIN_VISITOR: u64 = 500_000_000_000_000_003;

/// When the visitors of the DAVE cases join and leave, after the client's Session Description.
pub const VISIT: (Duration, Duration) = (Duration::from_millis(1200), Duration::from_millis(2200));

/// Frames the DAVE cases play (3.2 s: the visits fall inside the stream).
pub const DAVE_FRAMES: usize = 160;

fn simulated(user_id: u64, join_after: Duration, leave_after: Option<Duration>) -> SimulatedUser {
    SimulatedUser {
        user_id,
        join_after,
        speak_after: None,
        leave_after,
        frames: Arc::new(Vec::new()),
        dave: true,
    }
}

/// The server for a DAVE case: [`server_config`] with DAVE on and required (close 4017
/// otherwise), as on Discord since March 2026.
pub fn dave_server_config(tls: bool, scenario: Scenario) -> ServerConfig {
    ServerConfig {
        dave: DaveConfig::required(),
        ..server_config(tls, scenario)
    }
}

/// A DAVE call with one listener: the client forms the MLS group with it and plays end to end
/// encrypted.
pub fn dave_call() -> Scenario {
    Scenario {
        users: vec![simulated(DAVE_LISTENER, Duration::ZERO, None)],
        ..Scenario::default()
    }
}

/// [`dave_call`], and a second DAVE member joins and leaves mid-stream (two commits and two
/// transitions while the client plays).
pub fn dave_member_joins_and_leaves() -> Scenario {
    let mut scenario = dave_call();
    scenario
        .users
        .push(simulated(DAVE_VISITOR, VISIT.0, Some(VISIT.1)));
    scenario
}

/// [`dave_call`], and a user without DAVE joins and leaves mid-stream: the call downgrades to
/// version 0 and upgrades back (op 21/22, then op 24 and a new group).
pub fn dave_downgrade_and_back() -> Scenario {
    let mut scenario = dave_call();
    scenario.users.push(SimulatedUser {
        dave: false,
        ..simulated(PLAIN_VISITOR, VISIT.0, Some(VISIT.1))
    });
    scenario
}

/// [`dave_server_config`] whose first commit and welcome to each client are corrupted: the client
/// must answer op 31, send a new key package, get welcomed again and lose no frame.
pub fn dave_recovery_server_config(tls: bool, scenario: Scenario) -> ServerConfig {
    let mut config = dave_server_config(tls, scenario);
    config.dave.corrupt_first_handshake = true;
    config
}

/// A DAVE call whose listener speaks `frames` (DAVE-encrypted) 300 ms after the client joined
/// and then stays.
pub fn dave_speaker(frames: Vec<Vec<u8>>) -> Scenario {
    Scenario {
        users: vec![SimulatedUser {
            speak_after: Some(Duration::from_millis(300)),
            frames: Arc::new(frames),
            ..simulated(DAVE_LISTENER, Duration::ZERO, None)
        }],
        ..Scenario::default()
    }
}

/// The server got exactly `frames` from `client` after transport and DAVE decryption, with no
/// violation; every frame sent while the call was end-to-end encrypted decrypted, none failed,
/// and no simulated member hit an MLS error. `e2ee_frames` is how many frames must have been
/// DAVE-decrypted at least (all of them without a downgrade).
///
/// # Panics
/// With the server's report when anything differs.
pub fn assert_dave_byte_exact(
    server: &VoiceServer,
    client: usize,
    frames: &[Vec<u8>],
    e2ee_frames: usize,
) {
    assert_byte_exact(server, client, frames);
    let report = server.report();
    let mut decrypted = 0;
    for stream in report.streams.iter().filter(|s| s.client == client) {
        let stats = &stream.stats;
        assert_eq!(stats.dave_failures, 0, "{report}");
        assert_eq!(stats.dave_unverified, 0, "{report}");
        decrypted += stats.dave_decrypted;
    }
    assert!(
        decrypted >= e2ee_frames as u64,
        "{decrypted} frames DAVE-decrypted, expected at least {e2ee_frames}\n{report}"
    );
    for channel in &report.dave {
        assert!(channel.simulated_errors.is_empty(), "{report}");
    }
}

/// Every non-silence frame the server received from `client`, across all its SSRCs, in order.
pub fn received_audio(server: &VoiceServer, client: usize) -> Vec<Vec<u8>> {
    server
        .ssrcs(client)
        .into_iter()
        .flat_map(|ssrc| server.frames(ssrc))
        .filter(|f| !f.is_silence())
        .map(|f| f.opus)
        .collect()
}

/// The server got exactly `frames` from `client`, byte for byte and in order, decryptable, with
/// no protocol violation.
///
/// # Panics
/// With the server's report when anything differs.
pub fn assert_byte_exact(server: &VoiceServer, client: usize, frames: &[Vec<u8>]) {
    let report = server.report();
    assert!(
        report.violations.is_empty(),
        "violations: {:#?}\n{report}",
        report.violations
    );
    let received = received_audio(server, client);
    assert_eq!(received.len(), frames.len(), "frame count\n{report}");
    for (i, (got, sent)) in received.iter().zip(frames).enumerate() {
        assert_eq!(got, sent, "frame {i} differs\n{report}");
    }
    for stream in report.streams.iter().filter(|s| s.client == client) {
        let stats = &stream.stats;
        assert_eq!(stats.decrypt_failures, 0, "{report}");
        assert_eq!(stats.duplicates, 0, "{report}");
        assert_eq!(stats.reordered, 0, "{report}");
        assert_eq!(stats.timestamp_errors, 0, "{report}");
    }
}

/// `client` identified `identifies` times and resumed `resumes` times, with one SSRC per Identify.
///
/// # Panics
/// With the server's report when the counts differ.
pub fn assert_sessions(server: &VoiceServer, client: usize, identifies: u32, resumes: u32) {
    let report = server.report();
    let Some(me) = report.clients.get(client) else {
        panic!("no client {client}\n{report}");
    };
    assert_eq!(
        (me.identifies, me.resumes),
        (identifies, resumes),
        "{report}"
    );
    assert_eq!(
        me.ssrcs.len(),
        identifies as usize,
        "one SSRC per Identify\n{report}"
    );
}

/// The last websocket of `client` was closed by the client with `code`.
///
/// # Panics
/// With the server's report otherwise.
pub fn assert_client_closed_with(server: &VoiceServer, client: usize, code: u16) {
    let report = server.report();
    let last = report
        .clients
        .get(client)
        .and_then(|c| c.connections.last())
        .and_then(|c| c.client_close);
    assert_eq!(last, Some(code), "{report}");
}

// ---- receiving (issue 15) ---------------------------------------------------------------------

/// The simulated user who speaks in the plain (no DAVE) receive cases.
pub const SPEAKER: u64 = 500_000_000_000_000_004;

/// Frames the speaker says in the receive cases (3 s).
pub const RECEIVE_FRAMES: usize = 150;

/// When the speaker starts, after the client's Session Description.
pub const SPEAK_AFTER: Duration = Duration::from_millis(300);

/// The impairment of the receive cases: 5 % loss, 5 % duplicates, 10 % of the packets held back
/// 30 ms (overtaken by the next one or two), up to 15 ms of jitter; all within the client's
/// default depth (60 ms), so that a packet that comes at all comes in time.
pub fn receive_impairment() -> NetemConfig {
    NetemConfig {
        loss: 0.05,
        duplicate: 0.05,
        reorder: 0.1,
        reorder_by: Duration::from_millis(30),
        jitter: Duration::from_millis(15),
        seed: 15,
        ..NetemConfig::default()
    }
}

/// A call (no DAVE) in which [`SPEAKER`] says `frames` from [`SPEAK_AFTER`] on, through
/// `impairment` if any.
pub fn speaker_speaks(frames: Vec<Vec<u8>>, impairment: Option<NetemConfig>) -> Scenario {
    Scenario {
        users: vec![SimulatedUser {
            user_id: SPEAKER,
            join_after: Duration::ZERO,
            speak_after: Some(SPEAK_AFTER),
            leave_after: None,
            frames: Arc::new(frames),
            dave: false,
        }],
        impairment,
        ..Scenario::default()
    }
}

/// [`dave_speaker`] (the DAVE member [`DAVE_LISTENER`] speaks `frames`, DAVE-encrypted) through
/// `impairment` if any.
pub fn dave_speaker_impaired(frames: Vec<Vec<u8>>, impairment: Option<NetemConfig>) -> Scenario {
    Scenario {
        impairment,
        ..dave_speaker(frames)
    }
}

/// What a receive case measured: what the speaker said, what the network did, what the client
/// recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiveFigures {
    /// Frames the speaker said (its five trailing silence frames included).
    pub spoken: usize,
    /// Frames that went out as packets.
    pub sent: usize,
    /// Packets the network emulator lost.
    pub lost_on_the_way: usize,
    /// Extra copies it made.
    pub duplicated: usize,
    /// Packets it held back for later ones to overtake.
    pub reordered: usize,
    /// Frames the client recorded (silence frames included).
    pub recorded: usize,
    /// Frames the client reported lost (in `Lost` items).
    pub reported_lost: u64,
    /// Sequences that reached the client's network but not its recording (came too late).
    pub arrived_but_not_recorded: usize,
}

impl std::fmt::Display for ReceiveFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "spoken {}, sent {}, lost on the way {}, duplicated {}, reordered {}; recorded {}, \
             reported lost {}, arrived but not recorded {}",
            self.spoken,
            self.sent,
            self.lost_on_the_way,
            self.duplicated,
            self.reordered,
            self.recorded,
            self.reported_lost,
            self.arrived_but_not_recorded
        )
    }
}

/// Checks what `client` recorded of simulated user `user` (`items`: its subscription's items,
/// in order) against what the user said and what the network emulator did to it, and returns
/// the figures:
/// - the items follow the spurt grammar (a start, frames and losses, each carrying the sequence
///   after the previous one, an end);
/// - every recorded frame is a frame the user said with that sequence, byte for byte, that the
///   network delivered; none twice, none out of order;
/// - between the first and the last frame recorded, every sequence is recorded or reported lost,
///   and every sequence the network lost there is reported lost;
/// - without impairment, everything said is recorded.
///
/// # Panics
/// With the server's report when anything differs.
pub fn check_received(
    server: &VoiceServer,
    client: usize,
    user: u64,
    items: &[voice_proto::Received],
) -> ReceiveFigures {
    use voice_proto::receive::Item;
    let report = server.report();
    let spoken: Vec<SpokenStream> = server
        .spoken(client)
        .into_iter()
        .filter(|s| s.user_id == user)
        .collect();
    let [stream] = spoken.as_slice() else {
        panic!("expected one spoken stream of user {user}: {spoken:?}\n{report}")
    };
    let said = |sequence: u16| stream.frames.iter().find(|f| f.sequence == sequence);
    let mut figures = ReceiveFigures {
        spoken: stream.frames.len(),
        sent: stream.frames.iter().filter(|f| f.sent).count(),
        lost_on_the_way: stream.frames.iter().filter(|f| f.sent && f.lost).count(),
        duplicated: stream.frames.iter().filter(|f| f.duplicated).count(),
        reordered: stream.frames.iter().filter(|f| f.reordered).count(),
        ..ReceiveFigures::default()
    };
    let mut in_spurt = false;
    let mut next: Option<u16> = None;
    let mut recorded: Vec<u16> = Vec::new();
    let mut reported: Vec<u16> = Vec::new();
    for received in items.iter().filter(|r| r.ssrc == stream.ssrc) {
        match &received.item {
            Item::SpurtStarted => {
                assert!(!in_spurt, "a spurt inside a spurt: {items:?}");
                in_spurt = true;
            }
            Item::Frame(frame) => {
                assert!(in_spurt, "a frame outside a spurt: {items:?}");
                assert!(
                    next.is_none_or(|n| n == frame.sequence),
                    "frame {} where {next:?} was due",
                    frame.sequence
                );
                let Some(spoken) = said(frame.sequence) else {
                    panic!("recorded frame {} was never said\n{report}", frame.sequence)
                };
                assert_eq!(spoken.opus, frame.opus.as_ref(), "frame {}", frame.sequence);
                assert!(
                    spoken.sent && !spoken.lost,
                    "recorded frame {} the network lost",
                    frame.sequence
                );
                assert_eq!(received.user_id, Some(voice_proto::id::UserId(user)));
                recorded.push(frame.sequence);
                next = Some(frame.sequence.wrapping_add(1));
            }
            Item::Lost {
                sequence, count, ..
            } => {
                assert!(in_spurt, "a loss outside a spurt: {items:?}");
                assert!(next.is_none_or(|n| n == *sequence), "loss at {sequence}");
                figures.reported_lost += u64::from(*count);
                for i in 0..*count {
                    reported.push(sequence.wrapping_add(i as u16));
                }
                next = Some(sequence.wrapping_add(*count as u16));
            }
            Item::SpurtEnded(_) => {
                assert!(in_spurt, "an end outside a spurt: {items:?}");
                in_spurt = false;
            }
            _ => {}
        }
    }
    figures.recorded = recorded.len();
    // Between the first and the last frame recorded, the network's losses are reported.
    if let (Some(first), Some(last)) = (recorded.first(), recorded.last()) {
        let span = last.wrapping_sub(*first);
        for frame in &stream.frames {
            let inside = frame.sequence.wrapping_sub(*first) <= span;
            if inside && frame.sent && frame.lost {
                assert!(
                    reported.contains(&frame.sequence),
                    "frame {} lost on the way but not reported lost\n{report}",
                    frame.sequence
                );
            }
        }
    }
    figures.arrived_but_not_recorded = stream
        .delivered()
        .filter(|f| !recorded.contains(&f.sequence))
        .count();
    if server_config_has_no_impairment(stream) {
        assert_eq!(
            (figures.recorded, figures.reported_lost),
            (figures.spoken, 0),
            "without impairment everything said is recorded: {figures}\n{report}"
        );
    }
    figures
}

fn server_config_has_no_impairment(stream: &SpokenStream) -> bool {
    stream.netem == NetemReport::default() && stream.frames.iter().all(|f| f.sent && !f.lost)
}
