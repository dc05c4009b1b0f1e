//! Issue 14 against voice-sim on 127.0.0.1: a join survives a bad start (row 1) after a backoff
//! the server can measure (row 3), every end leaves the channel once, a dropped `join_channel`
//! future included (row 2), control events survive a flood of audio (row 6), a `ws://` endpoint
//! from Discord is never used (row 8), a stale token costs one rejoin (row 9), audio waiting for
//! DAVE keys is reported (row 10).

mod common;

use std::time::Duration;

use common::*;
use tokio::sync::mpsc;
use voice_proto::close::FatalReason;
use voice_proto::id::{ChannelId, GuildId, UserId};
use voice_proto::playout::HoldReason;
use voice_proto::{Error, Stage};
use voice_sim::{ExpectedClient, FirstClose, Scenario};
use voice_tokio::{Connection, Event, JoinError, JoinOptions, Voice, VoiceConfig};

/// A `Voice` whose main gateway answers every join for `client`; the op 4 log.
fn voice_with_gateway(
    client: &ExpectedClient,
    config: VoiceConfig,
    token: impl Fn(usize) -> String + Send + 'static,
) -> (Voice, mpsc::UnboundedReceiver<serde_json::Value>) {
    voice_with_gateway_at(client, config, client.endpoint.clone(), token)
}

/// [`voice_with_gateway`] whose VOICE_SERVER_UPDATE names `endpoint`.
fn voice_with_gateway_at(
    client: &ExpectedClient,
    config: VoiceConfig,
    endpoint: String,
    token: impl Fn(usize) -> String + Send + 'static,
) -> (Voice, mpsc::UnboundedReceiver<serde_json::Value>) {
    let (gateway, ops) = mpsc::unbounded_channel::<String>();
    let (log_tx, log) = mpsc::unbounded_channel();
    let voice = Voice::new(UserId(client.user_id), gateway, config);
    fake_main_gateway(voice.clone(), client.clone(), ops, log_tx, endpoint, token);
    (voice, log)
}

async fn join(voice: &Voice, client: &ExpectedClient) -> Result<Connection, JoinError> {
    voice
        .join_channel(
            GuildId(client.guild_id),
            ChannelId(client.channel_id),
            JoinOptions::default(),
        )
        .await
}

/// The op 4 payloads logged so far: (joins, leaves).
fn op4_counts(log: &mut mpsc::UnboundedReceiver<serde_json::Value>) -> (usize, usize) {
    let mut counts = (0, 0);
    while let Ok(op4) = log.try_recv() {
        if op4["d"]["channel_id"].is_null() {
            counts.1 += 1;
        } else {
            counts.0 += 1;
        }
    }
    counts
}

/// Waits (up to two seconds) until `log` has shown `leaves` leaves; returns all counts.
async fn wait_for_leaves(
    log: &mut mpsc::UnboundedReceiver<serde_json::Value>,
    leaves: usize,
) -> (usize, usize) {
    let mut counts = (0, 0);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while counts.1 < leaves {
            let Some(op4) = log.recv().await else { return };
            if op4["d"]["channel_id"].is_null() {
                counts.1 += 1;
            } else {
                counts.0 += 1;
            }
        }
    })
    .await;
    let more = op4_counts(log);
    (counts.0 + more.0, counts.1 + more.1)
}

// ---- row 1 ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_survives_its_first_websocket_ending_after_identify() {
    for how in [FirstClose::Code(4006), FirstClose::Drop] {
        let server = start_server(false, first_websocket_ends(how)).await;
        let client = server.expect_client();
        let config = client_config(&server);
        let backoff = config.core.backoff_range(1);
        let mut connection = Connection::connect(client.connection_info(), config)
            .await
            .unwrap_or_else(|e| panic!("{how:?}: the join survives: {e}\n{}", server.report()));
        assert_reconnecting_after_the_bad_start(how, &queued_events(&mut connection));
        let frames = sample_frames(25);
        play(&connection, &frames).await;
        connection.disconnect().await;
        assert_recovered_from_the_bad_start(&server, client.client, &frames, *backoff.start());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_through_the_main_gateway_survives_its_bad_start_with_one_rejoin() {
    let server = start_server(false, first_websocket_ends(FirstClose::Code(4006))).await;
    let client = server.expect_client();
    let token = client.token.clone();
    let (voice, mut log) =
        voice_with_gateway(&client, client_config(&server), move |_| token.clone());
    let connection = join(&voice, &client).await.expect("joins after a rejoin");
    assert_eq!(op4_counts(&mut log), (2, 0), "the join and one rejoin");
    connection.disconnect().await;
    assert_eq!(op4_counts(&mut log), (0, 1), "one leave");
    assert_eq!(server.report().clients[0].connections.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_first_discovery_request_is_sent_again() {
    let server = start_server(false, first_discovery_lost()).await;
    let client = server.expect_client();
    let connection = Connection::connect(client.connection_info(), client_config(&server))
        .await
        .expect("connects");
    connection.disconnect().await;
    let report = server.report();
    assert_eq!(report.clients[0].discovery_requests, 2, "{report}");
    assert_eq!(
        report.clients[0].connections.len(),
        1,
        "on the same websocket"
    );
}

// ---- row 2 ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_join_future_leaves_the_channel() {
    let server = start_server(false, Scenario::default()).await;
    let client = server.expect_client();
    // A main gateway that never answers: the join waits for its dispatches.
    let (gateway, mut ops) = mpsc::unbounded_channel::<String>();
    let mut config = client_config(&server);
    config.core.server_update_timeout = Duration::from_secs(30);
    let voice = Voice::new(UserId(client.user_id), gateway, config);
    let joining = join(&voice, &client);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), joining)
            .await
            .is_err(),
        "still joining"
    );
    // The future is gone: the driver leaves the channel by itself.
    let mut leaves = 0;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(op4) = ops.recv().await {
            if op4.contains(r#""channel_id":null"#) {
                leaves += 1;
                return;
            }
        }
    })
    .await;
    assert_eq!(leaves, 1, "op 4 leave after the caller went away");
    // And the guild can be joined again.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let again = tokio::time::timeout(Duration::from_millis(200), join(&voice, &client)).await;
    assert!(
        !matches!(again, Ok(Err(JoinError::AlreadyConnected(_)))),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_close_leaves_the_channel_once_and_disconnect_still_returns() {
    let server = start_server(false, dave_required_4017()).await;
    let client = server.expect_client();
    let token = client.token.clone();
    let (voice, mut log) =
        voice_with_gateway(&client, client_config(&server), move |_| token.clone());
    let mut connection = join(&voice, &client).await.expect("joins");
    let closed = wait_for_event(&mut connection, Duration::from_secs(3), |e| {
        matches!(e, Event::Closed { .. })
    })
    .await;
    assert!(matches!(
        closed,
        Some(Event::Closed {
            error: Error::Fatal { code: 4017, .. }
        })
    ));
    assert_eq!(wait_for_leaves(&mut log, 1).await, (1, 1));
    // Ended by itself: disconnect() returns at once and leaves no second time.
    tokio::time::timeout(Duration::from_secs(2), connection.disconnect())
        .await
        .expect("disconnect returns");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(op4_counts(&mut log), (0, 0));
}

// ---- row 6 ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_events_survive_a_flood_of_received_audio() {
    let server = start_server(false, resume_while_a_user_speaks(sample_frames(200))).await;
    let client = server.expect_client();
    let mut config = client_config(&server).receiving();
    config.event_queue = 8;
    if let Some(receive) = config.core.receive.as_mut() {
        receive.queue_frames = 20;
    }
    let mut connection = Connection::connect(client.connection_info(), config)
        .await
        .expect("connects");
    // Received audio has queues of its own: a subscription nobody reads, bounded.
    let unread = connection.receiver().subscribe_all();
    // Nothing is read while the audio flows and the server closes with 4015 mid-stream.
    play(&connection, &sample_frames(60)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_control_events_survived_the_flood(
        &queued_events(&mut connection),
        8,
        voice_adapter::is_control_event,
    );
    assert_the_flood_went_to_the_receiver(connection.receive_stats(), unread.dropped());
    connection.disconnect().await;
    assert_sessions(&server, client.client, 1, 1);
}

// ---- row 8 ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ws_endpoint_from_voice_server_update_is_never_used() {
    let server = start_server(false, Scenario::default()).await;
    let client = server.expect_client();
    let mut config = client_config(&server);
    config.core.gateway_url_override = None;
    let token = client.token.clone();
    // Discord (here: a fake) names the loopback server with ws://.
    let (voice, mut log) =
        voice_with_gateway_at(&client, config, server.ws_url(), move |_| token.clone());
    let result = join(&voice, &client).await;
    assert!(
        matches!(
            result,
            Err(JoinError::Protocol(Error::Timeout {
                stage: Stage::ServerUpdate,
                ..
            }))
        ),
        "{result:?}"
    );
    let report = server.report();
    assert!(
        report.clients[0].connections.is_empty() && report.failed_handshakes == 0,
        "the token never reached a plain-text websocket\n{report}"
    );
    assert_eq!(wait_for_leaves(&mut log, 1).await, (1, 1));
}

// ---- row 9 ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_token_costs_one_rejoin_and_a_bad_one_ends_the_join() {
    // The first VOICE_SERVER_UPDATE carries a token the server refuses (4004); the rejoin's is
    // good.
    let server = start_server(false, Scenario::default()).await;
    let client = server.expect_client();
    let token = client.token.clone();
    let (voice, mut log) = voice_with_gateway(&client, client_config(&server), move |n| {
        if n == 0 {
            "stale".to_owned()
        } else {
            token.clone()
        }
    });
    let connection = join(&voice, &client).await.expect("one rejoin fixes it");
    assert_eq!(op4_counts(&mut log), (2, 0));
    connection.disconnect().await;

    // Always refused: fatal after the one rejoin, and the bot leaves.
    let server = start_server(false, Scenario::default()).await;
    let client = server.expect_client();
    let (voice, mut log) =
        voice_with_gateway(&client, client_config(&server), |_| "bad".to_owned());
    let result = join(&voice, &client).await;
    assert!(
        matches!(
            result,
            Err(JoinError::Protocol(Error::Fatal {
                code: 4004,
                reason: FatalReason::AuthenticationFailed
            }))
        ),
        "{result:?}"
    );
    assert_eq!(wait_for_leaves(&mut log, 1).await, (2, 1));
}

// ---- row 10 --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_waiting_for_dave_keys_is_reported_and_then_flows() {
    let server =
        start_dave_server(false, dave_listener_joins_after(Duration::from_millis(600))).await;
    let client = server.expect_client();
    let mut connection = Connection::connect(client.connection_info(), client_config(&server))
        .await
        .expect("connects");
    let frames = sample_frames(30);
    let sender = connection.opus_send();
    sender
        .send(bytes::Bytes::copy_from_slice(&frames[0]))
        .await
        .expect("queued");
    let reason = HoldReason::DaveKeysPending;
    let held = wait_for_event(&mut connection, Duration::from_secs(2), |e| {
        *e == Event::PlayoutHeld { reason }
    })
    .await;
    assert!(held.is_some(), "alone in the call: the wait is reported");
    let resumed = wait_for_event(&mut connection, Duration::from_secs(5), |e| {
        *e == Event::PlayoutResumed { reason }
    })
    .await;
    assert!(
        resumed.is_some(),
        "the listener joined: the keys are in\n{}",
        server.report()
    );
    for frame in &frames[1..] {
        sender
            .send(bytes::Bytes::copy_from_slice(frame))
            .await
            .expect("queued");
    }
    connection.flush().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    connection.disconnect().await;
    assert_dave_byte_exact(&server, client.client, &frames, frames.len());
}
