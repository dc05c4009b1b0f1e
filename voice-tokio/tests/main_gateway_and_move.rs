//! Joining through a main gateway (`Voice::join_channel`): op 4 out, both dispatches in; a 4014
//! reports a disconnect and a following VOICE_SERVER_UPDATE (a move) brings audio back; leaving
//! sends op 4 with a null channel.

mod common;

use std::time::Duration;

use common::*;
use tokio::sync::mpsc;
use voice_proto::gateway::VoiceServerDispatch;
use voice_proto::id::{ChannelId, GuildId, UserId};
use voice_proto::secret::Token;
use voice_proto::DisconnectReason;
use voice_sim::Scenario;
use voice_tokio::{Event, JoinOptions, Voice};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_then_4014_then_move_then_leave() {
    let server = start_server(false, moved_after_4014()).await;
    let client = server.expect_client();
    let (gateway, ops) = mpsc::unbounded_channel::<String>();
    let (log_tx, mut log) = mpsc::unbounded_channel();
    let voice = Voice::new(UserId(client.user_id), gateway, client_config(&server));
    let token = client.token.clone();
    let endpoint = client.endpoint.clone();
    fake_main_gateway(
        voice.clone(),
        client.clone(),
        ops,
        log_tx,
        endpoint,
        move |_| token.clone(),
    );

    let mut connection = voice
        .join_channel(
            GuildId(client.guild_id),
            ChannelId(client.channel_id),
            JoinOptions::default(),
        )
        .await
        .expect("joins");
    let join = log.recv().await.expect("op 4 sent");
    assert_eq!(join["op"], 4);
    assert_eq!(join["d"]["channel_id"], client.channel_id.to_string());
    assert_eq!(join["d"]["self_mute"], false);

    // Exactly as many frames as the server takes before it closes with 4014.
    let first = sample_frames(CLOSE_AFTER_PACKETS as usize);
    play(&connection, &first).await;
    let disconnected = wait_for_event(&mut connection, Duration::from_secs(3), |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
    assert_eq!(
        disconnected,
        Some(Event::Disconnected {
            reason: DisconnectReason::Closed { code: 4014 }
        })
    );
    // The move: the main gateway assigns a (here: the same) voice server again.
    voice.handle_voice_server_update(VoiceServerDispatch {
        token: Token::new(client.token.clone()),
        guild_id: GuildId(client.guild_id),
        endpoint: Some(client.endpoint.clone()),
    });
    let mut seen = Vec::new();
    let connected = wait_for_event(&mut connection, Duration::from_secs(3), |e| {
        seen.push(format!("{e:?}"));
        matches!(e, Event::Connected { .. })
    })
    .await;
    assert!(
        connected.is_some(),
        "connected again after the move; events: {seen:#?}\n{}",
        server.report()
    );
    let second = sample_frames(50).split_off(first.len());
    play(&connection, &second).await;
    connection.disconnect().await;
    let leave = log.recv().await.expect("op 4 leave sent");
    assert!(leave["d"]["channel_id"].is_null(), "{leave}");

    // A fresh Identify and a new SSRC after the move; every frame arrived, the first 20 on the
    // old SSRC and the rest on the new one.
    assert_sessions(&server, client.client, 2, 0);
    let mut expected = first.clone();
    expected.extend(second);
    assert_byte_exact(&server, client.client, &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_times_out_without_voice_server_update() {
    let server = start_server(false, Scenario::default()).await;
    let (gateway, _ops) = mpsc::unbounded_channel::<String>();
    let voice = Voice::new(UserId(1), gateway, client_config(&server));
    let result = voice
        .join_channel(GuildId(2), ChannelId(3), JoinOptions::default())
        .await;
    assert!(
        matches!(
            result,
            Err(voice_tokio::JoinError::Protocol(
                voice_proto::Error::Timeout {
                    stage: voice_proto::Stage::ServerUpdate,
                    ..
                }
            ))
        ),
        "{result:?}"
    );
    // The guild can be joined again after a failed join.
    let again = voice
        .join_channel(GuildId(2), ChannelId(3), JoinOptions::default())
        .await;
    assert!(
        matches!(again, Err(voice_tokio::JoinError::Protocol(_))),
        "{again:?}"
    );
}
