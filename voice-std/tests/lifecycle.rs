//! Issue 14 against voice-sim on 127.0.0.1, blocking: a join survives a bad start (row 1) after
//! a backoff the server can measure (row 3); every end leaves the channel once, a refused op 4
//! included, and `disconnect()` after an end still returns (row 2); control events survive a
//! flood of received audio, and the events end with the connection (row 6).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use voice_proto::gateway::VoiceStateUpdate;
use voice_proto::id::{ChannelId, GuildId, UserId};
use voice_proto::Error;
use voice_sim::{ExpectedClient, FirstClose};
use voice_std::{Connection, Event, JoinError, JoinOptions, Voice, VoiceConfig};

/// Long enough for anything on loopback; only a hang reaches it.
const HANG: Duration = Duration::from_secs(10);

/// A `Voice` whose main gateway answers every join for `client`; the op 4 log.
fn voice_with_gateway(
    client: &ExpectedClient,
    config: VoiceConfig,
) -> (Voice, mpsc::Receiver<serde_json::Value>) {
    let (gateway, ops) = mpsc::channel::<String>();
    let (log_tx, log) = mpsc::channel();
    let voice = Voice::new(UserId(client.user_id), gateway, config);
    fake_main_gateway(voice.clone(), client.clone(), ops, log_tx);
    (voice, log)
}

fn join(voice: &Voice, client: &ExpectedClient) -> Result<Connection, JoinError> {
    voice.join_channel(
        GuildId(client.guild_id),
        ChannelId(client.channel_id),
        JoinOptions::default(),
    )
}

/// The op 4 payloads logged so far: (joins, leaves).
fn op4_counts(log: &mpsc::Receiver<serde_json::Value>) -> (usize, usize) {
    let mut counts = (0, 0);
    for op4 in log.try_iter() {
        if op4["d"]["channel_id"].is_null() {
            counts.1 += 1;
        } else {
            counts.0 += 1;
        }
    }
    counts
}

/// Waits (up to two seconds) until `log` has shown `leaves` leaves; returns all counts.
fn wait_for_leaves(log: &mpsc::Receiver<serde_json::Value>, leaves: usize) -> (usize, usize) {
    let mut counts = (0, 0);
    while counts.1 < leaves {
        let Ok(op4) = log.recv_timeout(Duration::from_secs(2)) else {
            break;
        };
        if op4["d"]["channel_id"].is_null() {
            counts.1 += 1;
        } else {
            counts.0 += 1;
        }
    }
    let more = op4_counts(log);
    (counts.0 + more.0, counts.1 + more.1)
}

/// Runs `f` on a thread of its own: its result, or `None` if it has not returned within
/// [`HANG`].
fn returns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(f());
    });
    result.recv_timeout(HANG).ok()
}

// ---- row 1 ---------------------------------------------------------------------------------

#[test]
fn a_join_survives_its_first_websocket_ending_after_identify() {
    for how in [FirstClose::Code(4006), FirstClose::Drop] {
        let sim = Sim::start(false, first_websocket_ends(how));
        let client = sim.expect_client();
        let config = client_config(&sim);
        let backoff = config.core.backoff_range(1);
        let connection = Connection::connect(client.connection_info(), config)
            .unwrap_or_else(|e| panic!("{how:?}: the join survives: {e}\n{}", sim.report()));
        let events: Vec<Event> = connection.events().try_iter().collect();
        assert_reconnecting_after_the_bad_start(how, &events);
        let frames = sample_frames(25);
        play(&connection, &frames);
        connection.disconnect();
        assert_recovered_from_the_bad_start(&sim, client.client, &frames, *backoff.start());
    }
}

// ---- row 2 ---------------------------------------------------------------------------------

#[test]
fn a_fatal_close_leaves_the_channel_once_and_disconnect_still_returns() {
    let sim = Sim::start(false, dave_required_4017());
    let client = sim.expect_client();
    let (voice, log) = voice_with_gateway(&client, client_config(&sim));
    let connection = join(&voice, &client).expect("joins");
    // `recv` blocks until the end comes, then reports it once and the end of the events.
    let (connection, closed, after) = returns(move || {
        let closed = std::iter::from_fn(|| connection.events().recv())
            .find(|e| matches!(e, Event::Closed { .. }));
        let after = connection.events().recv();
        (connection, closed, after)
    })
    .expect("recv returns at the end");
    assert!(
        matches!(
            closed,
            Some(Event::Closed {
                error: Error::Fatal { code: 4017, .. }
            })
        ),
        "{closed:?}"
    );
    assert_eq!(after, None, "nothing after Closed: the events have ended");
    assert_eq!(wait_for_leaves(&log, 1), (1, 1));
    // Ended by itself: disconnect() returns and leaves no second time.
    returns(move || connection.disconnect()).expect("disconnect returns");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(op4_counts(&log), (0, 0));
}

#[test]
fn a_refused_rejoin_ends_the_join_and_still_leaves_the_channel() {
    // The first websocket is closed with 4006 before the first session: the join goes on
    // through a rejoin (op 4), which the main gateway refuses. The bot may still be shown in
    // the channel after the first op 4: the driver that stops for that leaves it.
    let sim = Sim::start(false, first_websocket_ends(FirstClose::Code(4006)));
    let client = sim.expect_client();
    let (answer, ops) = mpsc::channel::<String>();
    let (log_tx, log) = mpsc::channel();
    let (sent_tx, sent) = mpsc::channel();
    let calls = AtomicUsize::new(0);
    let gateway = move |update: &VoiceStateUpdate| {
        let json = update.to_gateway_json();
        let refused = calls.fetch_add(1, Ordering::Relaxed) == 1;
        let _ = sent_tx.send((json.clone(), refused));
        if refused {
            return Err("the main gateway is reconnecting".to_owned());
        }
        answer.send(json).map_err(|e| e.to_string())
    };
    let voice = Voice::new(UserId(client.user_id), gateway, client_config(&sim));
    fake_main_gateway(voice.clone(), client.clone(), ops, log_tx);
    let result = join(&voice, &client);
    assert!(matches!(result, Err(JoinError::Gateway(_))), "{result:?}");
    assert_eq!(
        wait_for_leaves(&log, 1),
        (1, 1),
        "the join and the leave went out"
    );
    let calls: Vec<(String, bool)> = sent.try_iter().collect();
    assert_eq!(calls.len(), 3, "join, refused rejoin, leave: {calls:?}");
    assert!(calls[1].1 && !calls[1].0.contains(r#""channel_id":null"#));
    assert!(calls[2].0.contains(r#""channel_id":null"#), "{calls:?}");
}

// ---- row 6 ---------------------------------------------------------------------------------

#[test]
fn control_events_survive_a_flood_of_received_audio() {
    let sim = Sim::start(false, resume_while_a_user_speaks(sample_frames(200)));
    let client = sim.expect_client();
    let mut config = client_config(&sim).receiving();
    config.event_queue = 8;
    if let Some(receive) = config.core.receive.as_mut() {
        receive.queue_frames = 20;
    }
    let connection = Connection::connect(client.connection_info(), config).expect("connects");
    // Received audio has queues of its own: a subscription nobody reads, bounded.
    let unread = connection.receiver().subscribe_all();
    // Nothing is read while the audio flows and the server closes with 4015 mid-stream.
    play(&connection, &sample_frames(60));
    std::thread::sleep(Duration::from_millis(300));
    let events: Vec<Event> = connection.events().try_iter().collect();
    assert_control_events_survived_the_flood(&events, 8, voice_adapter::is_control_event);
    assert_the_flood_went_to_the_receiver(connection.receive_stats(), unread.dropped());
    connection.disconnect();
    assert_sessions(&sim, client.client, 1, 1);
}
