//! Connection management on `Voice`, blocking, against voice-sim on 127.0.0.1: the registry
//! keeps a joined connection until it is left (or the `Voice` dropped), `join_channel` on a
//! connected guild moves the bot, mute and deafen after the join, events on a thread of their
//! own, the connection's span.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::*;
use voice_sim::{ExpectedClient, Scenario};
use voice_std::{ChannelId, Event, GuildId, JoinOptions, UserId, Voice};

/// A main gateway for `client` that answers its first join with both dispatches, then only logs
/// op 4 as (channel_id, self_mute, self_deaf): it lets go of the `Voice` once the join is
/// answered, so that the test can drop the last one.
/// The op 4 payloads as (channel_id, self_mute, self_deaf).
type Op4Log = mpsc::Receiver<(Option<String>, bool, bool)>;

fn answering_once(client: &ExpectedClient, voice: Voice, ops: mpsc::Receiver<String>) -> Op4Log {
    let (log_tx, log) = mpsc::channel();
    let client = client.clone();
    std::thread::spawn(move || {
        let mut voice = Some(voice);
        for op4 in ops {
            let value: serde_json::Value = serde_json::from_str(&op4).expect("op 4 is JSON");
            let d = &value["d"];
            let _ = log_tx.send((
                d["channel_id"].as_str().map(str::to_owned),
                d["self_mute"].as_bool().unwrap_or_default(),
                d["self_deaf"].as_bool().unwrap_or_default(),
            ));
            if let Some(voice) = voice.take() {
                for (event, d) in join_dispatches(&client) {
                    voice
                        .handle_dispatch(event, &d)
                        .expect("a well-formed dispatch");
                }
            }
        }
    });
    log
}

fn op4s(log: &Op4Log, wait: Duration) -> Vec<(Option<String>, bool, bool)> {
    let mut seen = Vec::new();
    while let Ok(op4) = log.recv_timeout(wait) {
        seen.push(op4);
    }
    seen
}

fn joined(sim: &Sim) -> (Voice, ExpectedClient, Op4Log) {
    let client = sim.expect_client();
    let (gateway, ops) = mpsc::channel::<String>();
    let voice = Voice::new(UserId(client.user_id), gateway, client_config(sim));
    let log = answering_once(&client, voice.clone(), ops);
    let connection = voice
        .join_channel(
            GuildId(client.guild_id),
            ChannelId(client.channel_id),
            JoinOptions::default(),
        )
        .expect("joins");
    drop(connection);
    (voice, client, log)
}

#[test]
fn the_voice_keeps_a_joined_connection_until_it_is_left() {
    let sim = Sim::start(false, Scenario::default());
    let (voice, client, log) = joined(&sim);
    let guild = GuildId(client.guild_id);
    assert_eq!(
        op4s(&log, Duration::from_millis(300)),
        [(Some(client.channel_id.to_string()), false, false)],
        "the join, and no leave when the application's handle was dropped"
    );
    let connection = voice.connection(guild).expect("kept by the Voice");
    assert_eq!(connection.guild_id(), guild);
    assert!(!connection.is_finished());
    assert_eq!(voice.connections().len(), 1);
    drop(connection);
    assert!(voice.leave(guild));
    assert_eq!(
        op4s(&log, Duration::from_millis(300)),
        [(None, false, false)]
    );
    assert!(voice.connection(guild).is_none() && voice.connections().is_empty());
    assert!(!voice.leave(guild), "nothing left to leave");
    assert_sessions(&sim, client.client, 1, 0);
}

#[test]
fn dropping_the_voice_leaves_its_channels() {
    let sim = Sim::start(false, Scenario::default());
    let (voice, client, log) = joined(&sim);
    let events = voice
        .connection(GuildId(client.guild_id))
        .expect("kept by the Voice")
        .events();
    drop(voice);
    let seen = op4s(&log, Duration::from_millis(500));
    assert_eq!(seen.len(), 2, "the join and one leave: {seen:?}");
    assert_eq!(seen[1].0, None);
    let last = events.try_iter().last();
    assert!(matches!(last, Some(Event::Closed { .. })), "{last:?}");
}

#[test]
fn join_channel_on_a_connected_guild_moves_the_bot_and_mute_and_deaf_follow() {
    let sim = Sim::start(false, Scenario::default());
    let (voice, client, log) = joined(&sim);
    let guild = GuildId(client.guild_id);
    let first = client.channel_id.to_string();
    op4s(&log, Duration::from_millis(100));

    let connection = voice.connection(guild).expect("joined");
    assert!(connection.set_self_mute(true));
    assert!(connection.set_self_deaf(true));
    let moved = voice
        .join_channel(guild, ChannelId(4242), JoinOptions::default())
        .expect("moves instead of failing");
    assert_eq!(moved.voice_state(), Some((ChannelId(4242), true, true)));
    assert!(connection.set_self_mute(false));
    assert_eq!(
        op4s(&log, Duration::from_millis(300)),
        [
            (Some(first.clone()), true, false),
            (Some(first), true, true),
            (Some("4242".to_owned()), true, true),
            (Some("4242".to_owned()), false, true),
        ]
    );
    voice
        .join_channel(guild, ChannelId(4242), JoinOptions::default())
        .expect("already there");
    assert!(op4s(&log, Duration::from_millis(100)).is_empty());
    drop((connection, moved));
    assert!(voice.leave(guild));
}

#[test]
fn events_are_read_on_a_thread_of_their_own_while_the_handle_plays() {
    let sim = Sim::start(false, Scenario::default());
    let client = sim.expect_client();
    let connection = voice_std::Connection::connect(client.connection_info(), client_config(&sim))
        .expect("connects");
    let events = connection.events();
    let reader =
        std::thread::spawn(move || std::iter::from_fn(|| events.recv()).collect::<Vec<_>>());
    play(&connection, &sample_frames(10));
    let stats = connection.stats();
    assert!(stats.packets_sent >= 10 && stats.bytes_sent > stats.packets_sent * 12);
    assert!(
        stats.datagrams_received >= 1,
        "the discovery answer at least"
    );
    connection.disconnect();
    let events = reader.join().expect("the reader thread");
    assert!(
        matches!(events.last(), Some(Event::Closed { .. })),
        "{events:?}"
    );
}
