//! Joining through a main gateway (`Voice::join_channel`, blocking): op 4 out, both dispatches
//! in; 4014 then a move; a join without VOICE_SERVER_UPDATE times out.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::*;
use voice_proto::id::{ChannelId, GuildId, UserId};
use voice_proto::DisconnectReason;
use voice_sim::Scenario;
use voice_std::{Event, JoinOptions, Voice};

#[test]
fn join_then_4014_then_move_then_leave() {
    let sim = Sim::start(false, moved_after_4014());
    let client = sim.expect_client();
    let (gateway, ops) = mpsc::channel::<String>();
    let (log_tx, log) = mpsc::channel();
    let voice = Voice::new(UserId(client.user_id), gateway, client_config(&sim));
    fake_main_gateway(voice.clone(), client.clone(), ops, log_tx);

    let connection = voice
        .join_channel(
            GuildId(client.guild_id),
            ChannelId(client.channel_id),
            JoinOptions::default(),
        )
        .expect("joins");
    let join = log.recv().expect("op 4 sent");
    assert_eq!(join["d"]["channel_id"], client.channel_id.to_string());

    let first = sample_frames(CLOSE_AFTER_PACKETS as usize);
    play(&connection, &first);
    let disconnected = wait_for_event(&connection.events(), Duration::from_secs(3), |e| {
        matches!(e, Event::Disconnected { .. })
    });
    assert_eq!(
        disconnected,
        Some(Event::Disconnected {
            reason: DisconnectReason::Closed { code: 4014 }
        })
    );
    voice.handle_voice_server_update(server_update(&client));
    assert!(
        wait_for_event(&connection.events(), Duration::from_secs(3), |e| matches!(
            e,
            Event::Connected { .. }
        ))
        .is_some()
    );
    let second = sample_frames(50).split_off(first.len());
    play(&connection, &second);
    connection.disconnect();
    let leave = log.recv().expect("op 4 leave sent");
    assert!(leave["d"]["channel_id"].is_null(), "{leave}");

    assert_sessions(&sim, client.client, 2, 0);
    let mut expected = first;
    expected.extend(second);
    assert_byte_exact(&sim, client.client, &expected);
}

#[test]
fn join_times_out_without_voice_server_update() {
    let sim = Sim::start(false, Scenario::default());
    let (gateway, _ops) = mpsc::channel::<String>();
    let voice = Voice::new(UserId(1), gateway, client_config(&sim));
    let result = voice.join_channel(GuildId(2), ChannelId(3), JoinOptions::default());
    assert!(
        matches!(
            &result,
            Err(voice_std::JoinError::Protocol(
                voice_proto::Error::Timeout {
                    stage: voice_proto::Stage::ServerUpdate,
                    ..
                }
            ))
        ),
        "{result:?}"
    );
}
