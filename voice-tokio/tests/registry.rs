//! Connection management on `Voice`, against voice-sim on 127.0.0.1: the registry keeps a
//! joined connection until it is left (or the `Voice` dropped), `join_channel` on a connected
//! guild moves the bot, mute and deafen after the join, events read from a task of their own.

mod common;

use std::time::Duration;

use common::*;
use tokio::sync::mpsc;
use voice_sim::{ExpectedClient, Scenario};
use voice_tokio::{ChannelId, Event, GuildId, JoinOptions, UserId, Voice};

/// A main gateway for `client` that answers its first join with both dispatches, then only logs
/// op 4 (parsed): it lets go of the `Voice` once the join is answered, so that the test can drop
/// the last one.
fn answering_once(
    client: &ExpectedClient,
    voice: Voice,
    mut ops: mpsc::UnboundedReceiver<String>,
) -> mpsc::UnboundedReceiver<serde_json::Value> {
    let (log_tx, log) = mpsc::unbounded_channel();
    let client = client.clone();
    tokio::spawn(async move {
        let mut voice = Some(voice);
        while let Some(op4) = ops.recv().await {
            let value: serde_json::Value = serde_json::from_str(&op4).expect("op 4 is JSON");
            let _ = log_tx.send(value);
            if let Some(voice) = voice.take() {
                answer_join(&voice, &client);
            }
        }
    });
    log
}

/// Both dispatches for `client`'s join, as Discord sends them.
fn answer_join(voice: &Voice, client: &ExpectedClient) {
    for (event, d) in join_dispatches(client) {
        voice
            .handle_dispatch(event, &d)
            .expect("a well-formed dispatch");
    }
}

/// The op 4 payloads logged within `wait` as (channel_id, self_mute, self_deaf).
async fn op4s(
    log: &mut mpsc::UnboundedReceiver<serde_json::Value>,
    wait: Duration,
) -> Vec<(Option<String>, bool, bool)> {
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(wait, async {
        while let Some(op4) = log.recv().await {
            let d = &op4["d"];
            seen.push((
                d["channel_id"].as_str().map(str::to_owned),
                d["self_mute"].as_bool().unwrap_or_default(),
                d["self_deaf"].as_bool().unwrap_or_default(),
            ));
        }
    })
    .await;
    seen
}

async fn joined(
    server: &voice_sim::VoiceServer,
) -> (
    Voice,
    ExpectedClient,
    mpsc::UnboundedReceiver<serde_json::Value>,
) {
    let client = server.expect_client();
    let (gateway, ops) = mpsc::unbounded_channel::<String>();
    let voice = Voice::new(UserId(client.user_id), gateway, client_config(server));
    let log = answering_once(&client, voice.clone(), ops);
    let connection = voice
        .join_channel(
            GuildId(client.guild_id),
            ChannelId(client.channel_id),
            JoinOptions::default(),
        )
        .await
        .expect("joins");
    drop(connection);
    (voice, client, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_voice_keeps_a_joined_connection_until_it_is_left() {
    let server = start_server(false, Scenario::default()).await;
    let (voice, client, mut log) = joined(&server).await;
    let guild = GuildId(client.guild_id);
    let channel = client.channel_id.to_string();
    assert_eq!(
        op4s(&mut log, Duration::from_millis(300)).await,
        [(Some(channel), false, false)],
        "the join, and no leave when the application's handle was dropped"
    );
    let connection = voice.connection(guild).expect("kept by the Voice");
    assert_eq!(connection.guild_id(), guild);
    assert!(!connection.is_finished());
    let all = voice.connections();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0, guild);
    drop((connection, all));

    assert!(voice.leave(guild).await);
    assert_eq!(
        op4s(&mut log, Duration::from_millis(300)).await,
        [(None, false, false)],
        "one leave"
    );
    assert!(voice.connection(guild).is_none() && voice.connections().is_empty());
    assert!(!voice.leave(guild).await, "nothing left to leave");
    assert_sessions(&server, client.client, 1, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_voice_leaves_its_channels() {
    let server = start_server(false, Scenario::default()).await;
    let (voice, client, mut log) = joined(&server).await;
    let connection = voice
        .connection(GuildId(client.guild_id))
        .expect("kept by the Voice");
    let events = connection.events();
    drop((voice, connection));
    let seen = op4s(&mut log, Duration::from_millis(500)).await;
    assert_eq!(seen.len(), 2, "the join and one leave: {seen:?}");
    assert_eq!(seen[1].0, None);
    // The events end with `Closed`.
    let mut last = None;
    while let Some(event) = events.recv().await {
        last = Some(event);
    }
    assert!(matches!(last, Some(Event::Closed { .. })), "{last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_channel_on_a_connected_guild_moves_the_bot_and_mute_and_deaf_follow() {
    let server = start_server(false, Scenario::default()).await;
    let (voice, client, mut log) = joined(&server).await;
    let guild = GuildId(client.guild_id);
    let first = client.channel_id.to_string();
    op4s(&mut log, Duration::from_millis(100)).await;

    let connection = voice.connection(guild).expect("joined");
    assert!(connection.set_self_mute(true));
    assert!(connection.set_self_deaf(true));
    let moved = voice
        .join_channel(guild, ChannelId(4242), JoinOptions::default())
        .await
        .expect("moves instead of failing");
    assert_eq!(moved.guild_id(), guild);
    assert_eq!(moved.voice_state(), Some((ChannelId(4242), true, true)));
    assert!(connection.set_self_mute(false));
    assert_eq!(
        op4s(&mut log, Duration::from_millis(300)).await,
        [
            (Some(first.clone()), true, false),
            (Some(first), true, true),
            (Some("4242".to_owned()), true, true),
            (Some("4242".to_owned()), false, true),
        ]
    );
    // The same channel again: nothing to send.
    voice
        .join_channel(guild, ChannelId(4242), JoinOptions::default())
        .await
        .expect("already there");
    assert!(op4s(&mut log, Duration::from_millis(100)).await.is_empty());
    assert!(voice.leave(guild).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_read_in_a_task_of_their_own_while_the_handle_plays() {
    let server = start_server(false, Scenario::default()).await;
    let client = server.expect_client();
    let connection =
        voice_tokio::Connection::connect(client.connection_info(), client_config(&server))
            .await
            .expect("connects");
    let events = connection.events();
    let reader = tokio::spawn(async move {
        use futures_util::StreamExt;
        events.into_stream().collect::<Vec<Event>>().await
    });
    play(&connection, &sample_frames(10)).await;
    let stats = connection.stats();
    assert!(stats.packets_sent >= 10 && stats.bytes_sent > stats.packets_sent * 12);
    assert!(
        stats.datagrams_received >= 1,
        "the discovery answer at least"
    );
    connection.disconnect().await;
    let events = tokio::time::timeout(Duration::from_secs(2), reader)
        .await
        .expect("the stream ends with the connection")
        .expect("the reader task");
    assert!(
        matches!(events.last(), Some(Event::Closed { .. })),
        "{events:?}"
    );
}
