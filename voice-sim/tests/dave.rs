//! The server's DAVE role end to end, with voice-proto's engine as the client (the adapters run
//! the same cases in their own suites).

use std::time::Duration;

use voice_proto::id::UserId;
use voice_proto::Event;
use voice_sim::adapter_cases::{
    assert_dave_byte_exact, assert_sessions, dave_call, dave_downgrade_and_back,
    dave_member_joins_and_leaves, dave_recovery_server_config, dave_server_config, dave_speaker,
    reconnect_after_4006, resume_after_4015, sample_frames, DAVE_FRAMES, DAVE_LISTENER,
};
use voice_sim::testing::EngineClient;
use voice_sim::{Report, Scenario, ServerConfig, VoiceServer};

async fn play(scenario: Scenario, frames: &[Vec<u8>]) -> (VoiceServer, Report) {
    play_on(dave_server_config(false, scenario), frames).await
}

async fn play_on(config: ServerConfig, frames: &[Vec<u8>]) -> (VoiceServer, Report) {
    let server = VoiceServer::start(config).await.expect("starts");
    let info = server.expect_client();
    let mut client = EngineClient::new(&server.ws_url(), info, frames.to_vec());
    client.linger = Duration::from_millis(200);
    let outcome = client.run().await.expect("runs");
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    // The server has seen the client leave (its removal from the group is part of the story).
    let (report, closed) = server
        .wait_until(Duration::from_secs(3), |r| {
            r.clients[0]
                .connections
                .last()
                .is_some_and(|c| c.closed_ms.is_some())
        })
        .await;
    assert!(closed, "{report}");
    (server, report)
}

#[tokio::test]
async fn a_dave_call_is_encrypted_end_to_end() {
    let frames = sample_frames(60);
    let (server, report) = play(dave_call(), &frames).await;
    assert_dave_byte_exact(&server, 0, &frames, frames.len());
    let channel = report.dave.first().expect("a DAVE channel");
    assert_eq!(channel.protocol_version, 1, "{report}");
    // The client commits the group into existence; after it left, the listener commits its
    // removal.
    assert_eq!(
        (channel.commits_announced, channel.client_commits),
        (2, 1),
        "{report}"
    );
    assert_eq!(channel.transitions_executed, 2, "{report}");
    assert_eq!(channel.epoch, 2, "{report}");
    assert_eq!(
        channel.leaves,
        vec![None, Some(DAVE_LISTENER.to_string())],
        "{report}"
    );
    assert!(report.advisories.is_empty(), "{report}");
}

#[tokio::test]
async fn a_member_joins_and_leaves_mid_stream_and_no_frame_is_lost() {
    let frames = sample_frames(DAVE_FRAMES);
    let (server, report) = play(dave_member_joins_and_leaves(), &frames).await;
    assert_dave_byte_exact(&server, 0, &frames, frames.len());
    let channel = report.dave.first().expect("a DAVE channel");
    assert_eq!(
        channel.commits_announced, 4,
        "creation, the visitor's add, its removal, the client's removal\n{report}"
    );
    assert_eq!(channel.transitions_executed, 4, "{report}");
    assert_eq!(channel.epoch, 4, "{report}");
}

#[tokio::test]
async fn the_call_downgrades_for_a_user_without_dave_and_upgrades_after() {
    let frames = sample_frames(DAVE_FRAMES);
    let (server, report) = play(dave_downgrade_and_back(), &frames).await;
    let channel = report.dave.first().expect("a DAVE channel");
    assert_eq!((channel.downgrades, channel.upgrades), (1, 1), "{report}");
    assert_eq!(channel.protocol_version, 1, "{report}");
    let plain: u64 = report.streams.iter().map(|s| s.stats.dave_plain).sum();
    assert_eq!(
        plain, 0,
        "no plain frame while end-to-end encrypted\n{report}"
    );
    // The frames sent while downgraded are plain; the rest were decrypted.
    assert_dave_byte_exact(&server, 0, &frames, frames.len() / 2);
}

#[tokio::test]
async fn a_simulated_member_s_dave_audio_is_decrypted_by_the_client() {
    let spoken: Vec<Vec<u8>> = sample_frames(40);
    let server = VoiceServer::start(dave_server_config(false, dave_speaker(spoken.clone())))
        .await
        .expect("starts");
    let info = server.expect_client();
    let mut client = EngineClient::new(&server.ws_url(), info, Vec::new());
    client.linger = Duration::from_millis(2500);
    let outcome = client.run().await.expect("runs");
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    let audio = outcome.frames(None);
    let heard: Vec<Vec<u8>> = audio
        .iter()
        .filter(|(_, f)| !f.is_silence())
        .map(|(_, f)| f.opus.to_vec())
        .collect();
    assert_eq!(heard, spoken, "{:?}", outcome.received);
    assert!(audio
        .iter()
        .all(|(user, _)| *user == Some(UserId(DAVE_LISTENER))));
    assert!(
        !outcome
            .events
            .iter()
            .any(|e| matches!(e, Event::DaveDecryptFailed { .. })),
        "{:?}",
        outcome.events
    );
    let report = server.report();
    assert!(report.violations.is_empty(), "{report}");
}

#[tokio::test]
async fn a_client_without_dave_is_closed_with_4017() {
    let server = VoiceServer::start(dave_server_config(false, dave_call()))
        .await
        .expect("starts");
    let info = server.expect_client();
    let mut client = EngineClient::new(&server.ws_url(), info, sample_frames(5));
    client.config.max_dave_protocol_version = 0;
    let outcome = client.run().await.expect("runs");
    let error = outcome.error.expect("the connection ends with an error");
    assert!(error.contains("DAVE"), "{error}");
    let report = server.report();
    let closes: Vec<Option<u16>> = report.clients[0]
        .connections
        .iter()
        .map(|c| c.server_close)
        .collect();
    assert_eq!(closes, vec![Some(4017)], "{report}");
}

#[tokio::test]
async fn a_corrupted_commit_is_answered_with_op_31_and_the_client_rejoins() {
    let frames = sample_frames(60);
    let (server, report) = play_on(dave_recovery_server_config(false, dave_call()), &frames).await;
    assert_dave_byte_exact(&server, 0, &frames, frames.len());
    let channel = report.dave.first().expect("a DAVE channel");
    assert_eq!(channel.invalid_commit_welcomes, 1, "{report}");
    // Its own commit failed to apply; it re-initialised, sent a new key package and was
    // welcomed by the listener (whose removal of the old leaf and addition was the 2nd commit).
    assert!(channel.key_packages >= 3, "{report}");
    assert!(channel.welcomes_sent >= 2, "{report}");
}

#[tokio::test]
async fn a_resume_keeps_the_dave_group_and_no_frame_is_lost() {
    let frames = sample_frames(80);
    let scenario = Scenario {
        close: resume_after_4015().close,
        ..dave_call()
    };
    let (server, report) = play(scenario, &frames).await;
    assert_dave_byte_exact(&server, 0, &frames, frames.len());
    assert_sessions(&server, 0, 1, 1);
    let channel = report.dave.first().expect("a DAVE channel");
    // The group outlives the resume: no new key package, no new commit until the client left.
    assert_eq!(channel.key_packages, 2, "{report}");
    assert_eq!(channel.commits_announced, 2, "{report}");
}

#[tokio::test]
async fn a_fresh_identify_rejoins_the_dave_group_and_no_frame_is_lost() {
    let frames = sample_frames(80);
    let scenario = Scenario {
        close: reconnect_after_4006().close,
        ..dave_call()
    };
    let (server, report) = play(scenario, &frames).await;
    assert_dave_byte_exact(&server, 0, &frames, frames.len());
    assert_sessions(&server, 0, 2, 0);
    let channel = report.dave.first().expect("a DAVE channel");
    // The new session's key package replaces the old leaf (the listener commits remove + add
    // and welcomes it); then the client leaves.
    assert_eq!(channel.key_packages, 3, "{report}");
    assert_eq!(channel.commits_announced, 3, "{report}");
    assert_eq!(channel.welcomes_sent, 2, "{report}");
    assert_eq!(channel.invalid_commit_welcomes, 0, "{report}");
}
