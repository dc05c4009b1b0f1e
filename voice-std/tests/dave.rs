//! DAVE through the blocking adapter, against voice-sim's DAVE role with a simulated member that
//! decrypts what we send: playback end to end over wss, a member joining and leaving mid-stream,
//! a downgrade for a user without DAVE and the upgrade after, receiving a member's DAVE audio (also
//! when its op 5 comes late), and close 4017 for a client configured without DAVE.

mod common;

use std::time::{Duration, Instant};

use common::*;
use voice_proto::close::FatalReason;
use voice_proto::id::UserId;
use voice_proto::rtp::SILENCE_FRAME;
use voice_sim::{DaveChannelReport, Report, Scenario};
use voice_std::{Connection, Event, Item, JoinError};

/// What one DAVE call left behind.
struct Played {
    sim: Sim,
    /// Every event the connection delivered while playing.
    events: Vec<Event>,
    /// The server's report before we left (leaving is one more commit: the others remove us).
    report: Report,
}

/// Connects to a DAVE-required server running `scenario`, plays `frames`, waits until the
/// connection reported `transitions` DAVE transitions, takes the server's report and leaves.
fn play_dave(tls: bool, scenario: Scenario, frames: &[Vec<u8>], transitions: usize) -> Played {
    let sim = Sim::with_config(dave_server_config(tls, scenario));
    let client = sim.expect_client();
    let connection =
        Connection::connect(client.connection_info(), client_config(&sim)).expect("connects");
    play(&connection, frames);
    let mut events: Vec<Event> = connection.events().try_iter().collect();
    // The last transition executed long before the last frame; this only bounds a broken run.
    let deadline = Instant::now() + Duration::from_secs(3);
    while transitions_in(&events).len() < transitions {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        match connection.events().recv_timeout(left) {
            Some(event) => events.push(event),
            None => break,
        }
    }
    let report = sim.report();
    connection.disconnect();
    assert_client_closed_with(&sim, client.client, 1000);
    Played {
        sim,
        events,
        report,
    }
}

fn dave_channel(report: &Report) -> &DaveChannelReport {
    report.dave.first().expect("a DAVE channel in the report")
}

/// The DAVE transitions the connection reported, as `(from, to)`.
fn transitions_in(events: &[Event]) -> Vec<(u16, u16)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::DaveTransition { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect()
}

/// No DAVE failure of any kind was reported to the application.
fn assert_no_dave_trouble(events: &[Event]) {
    let trouble: Vec<&Event> = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::DaveDecryptFailed { .. }
                    | Event::DaveRecovery { .. }
                    | Event::DaveMessageFailed { .. }
                    | Event::Closed { .. }
            )
        })
        .collect();
    assert!(trouble.is_empty(), "{trouble:?}");
}

#[test]
fn playback_over_wss_is_encrypted_end_to_end_and_byte_exact() {
    let frames = sample_frames(60);
    let Played {
        sim,
        events,
        report,
    } = play_dave(true, dave_call(), &frames, 1);
    assert_dave_byte_exact(&sim, 0, &frames, frames.len());

    // The connection says DAVE is on: negotiated at connect, then keyed.
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Connected {
                dave_protocol_version: 1,
                ..
            }
        )),
        "{events:?}"
    );
    let ready = events.iter().find_map(|e| match e {
        Event::DaveReady {
            protocol_version,
            epoch,
            privacy_code,
        } => Some((*protocol_version, *epoch, privacy_code.clone())),
        _ => None,
    });
    let Some((1, 1, Some(code))) = ready else {
        panic!("expected DaveReady for version 1, epoch 1, with a privacy code: {events:?}");
    };
    assert!(
        code.len() == 30 && code.bytes().all(|b| b.is_ascii_digit()),
        "30 digits: {code}"
    );
    // The group's creation: Session Description already said version 1.
    assert_eq!(transitions_in(&events), vec![(1, 1)], "{events:?}");
    assert_no_dave_trouble(&events);

    let channel = dave_channel(&report);
    assert_eq!(channel.protocol_version, 1, "{report}");
    assert_eq!(
        (channel.commits_announced, channel.client_commits),
        (1, 1),
        "we commit the group into existence\n{report}"
    );
    assert_eq!(channel.transitions_executed, 1, "{report}");
}

#[test]
fn a_member_joins_and_leaves_mid_stream_and_no_frame_is_lost() {
    let frames = sample_frames(DAVE_FRAMES);
    let Played {
        sim,
        events,
        report,
    } = play_dave(false, dave_member_joins_and_leaves(), &frames, 3);
    assert_dave_byte_exact(&sim, 0, &frames, frames.len());
    assert_no_dave_trouble(&events);
    // Creation, then the visitor's add and its remove: every one re-keys our audio.
    assert_eq!(transitions_in(&events), vec![(1, 1); 3], "{events:?}");

    let channel = dave_channel(&report);
    assert_eq!(
        channel.commits_announced, 3,
        "creation, the visitor's add, its remove\n{report}"
    );
    assert_eq!(channel.transitions_executed, 3, "{report}");
    assert_eq!(channel.epoch, 3, "{report}");
}

fn downgrade_and_back(scenario: Scenario) {
    let frames = sample_frames(DAVE_FRAMES);
    // Creation, the downgrade, the upgrade.
    let Played {
        sim,
        events,
        report,
    } = play_dave(false, scenario, &frames, 3);
    let plain: u64 = report.streams.iter().map(|s| s.stats.dave_plain).sum();
    assert_eq!(
        plain, 0,
        "no plain frame while end-to-end encrypted\n{report}"
    );
    // The frames sent while downgraded are plain; the rest were decrypted.
    assert_dave_byte_exact(&sim, 0, &frames, frames.len() / 2);
    assert_no_dave_trouble(&events);
    let seen = transitions_in(&events);
    assert!(
        seen.windows(2).any(|w| w == [(1, 0), (0, 1)]),
        "down to 0 and back up to 1: {seen:?}"
    );

    let channel = dave_channel(&report);
    assert_eq!((channel.downgrades, channel.upgrades), (1, 1), "{report}");
    assert_eq!(channel.protocol_version, 1, "{report}");
}

#[test]
fn the_call_downgrades_for_a_user_without_dave_and_upgrades_after() {
    downgrade_and_back(dave_downgrade_and_back());
}

/// The upgrade takes several round trips (op 24, 26, 27, 28, 29, 23, 22): with a real network's
/// latency, audio sent plain meanwhile would reach the server well after the call became end-to-end
/// encrypted. It must be held instead, and still arrive, every frame of it.
#[test]
fn with_websocket_latency_no_plain_frame_reaches_the_upgraded_call() {
    downgrade_and_back(Scenario {
        ws_delay: Duration::from_millis(100),
        ..dave_downgrade_and_back()
    });
}

#[test]
fn a_member_s_dave_audio_is_received_byte_exact_and_attributed() {
    receive_member_audio(Duration::ZERO);
}

/// The speaker's op 5 reaches us 100 ms after its first frames: those frames can only be decrypted
/// once op 5 names their sender, so they wait for it instead of being lost.
#[test]
fn a_member_s_first_frames_before_its_op_5_are_not_lost() {
    receive_member_audio(Duration::from_millis(100));
}

/// Hears a simulated member speak 40 DAVE frames, with every websocket frame from the server
/// held back by `ws_delay`, and checks each arrived byte exact and attributed.
fn receive_member_audio(ws_delay: Duration) {
    let spoken = sample_frames(40);
    let scenario = Scenario {
        ws_delay,
        ..dave_speaker(spoken.clone())
    };
    let sim = Sim::with_config(dave_server_config(false, scenario));
    let client = sim.expect_client();
    let connection = Connection::connect(client.connection_info(), client_config(&sim).receiving())
        .expect("connects");
    let stream = connection.receiver().subscribe(UserId(DAVE_LISTENER));
    // Everything up to the end of the speaker's spurt (its trailing silence).
    let items = until_spurt_end(&stream, Duration::from_secs(10));
    let events: Vec<Event> = connection.events().try_iter().collect();
    connection.disconnect();

    let opus: Vec<&[u8]> = items
        .iter()
        .filter_map(|r| match &r.item {
            Item::Frame(frame) if frame.opus.as_ref() != SILENCE_FRAME => Some(frame.opus.as_ref()),
            _ => None,
        })
        .collect();
    assert_eq!(opus, spoken, "{items:?}");
    assert!(
        items
            .iter()
            .all(|r| r.user_id == Some(UserId(DAVE_LISTENER))),
        "{items:?}"
    );
    assert_no_dave_trouble(&events);
    let report = sim.shutdown();
    assert!(report.violations.is_empty(), "{report}");
}

#[test]
fn a_client_without_dave_gets_a_dave_required_error() {
    let sim = Sim::with_config(dave_server_config(false, dave_call()));
    let client = sim.expect_client();
    let mut config = client_config(&sim);
    config.core.max_dave_protocol_version = 0;
    let result = Connection::connect(client.connection_info(), config);
    let Err(error) = result else {
        panic!("connected without DAVE to a DAVE-required server");
    };
    assert!(
        matches!(
            &error,
            JoinError::Protocol(voice_proto::Error::Fatal {
                code: 4017,
                reason: FatalReason::DaveRequired
            })
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("DAVE"), "{error}");

    let report = sim.shutdown();
    let closes: Vec<Option<u16>> = report.clients[0]
        .connections
        .iter()
        .map(|c| c.server_close)
        .collect();
    assert_eq!(closes, vec![Some(4017)], "closed once, no retry\n{report}");
}
