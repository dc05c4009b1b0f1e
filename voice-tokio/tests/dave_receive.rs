//! A simulated DAVE member speaks: its frames reach the application through the connection's
//! receiver, DAVE-decrypted, byte-exact and attributed to the member, also when they arrive before
//! the op 5 that names their sender.

mod common;

use std::time::Duration;

use common::*;
use voice_proto::id::UserId;
use voice_tokio::{Connection, Event, Item};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_s_dave_audio_arrives_decrypted_and_attributed() {
    receive_member_audio(Duration::ZERO).await;
}

/// The speaker's op 5 reaches us 100 ms after its first frames: those frames can only be decrypted
/// once op 5 names their sender, so they wait for it instead of being lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_s_first_frames_before_its_op_5_are_not_lost() {
    receive_member_audio(Duration::from_millis(100)).await;
}

/// Hears a simulated member speak 40 DAVE frames, with every websocket frame from the server
/// held back by `ws_delay`, and checks each arrived byte exact and attributed.
async fn receive_member_audio(ws_delay: Duration) {
    let spoken = sample_frames(40);
    let scenario = voice_sim::Scenario {
        ws_delay,
        ..dave_speaker(spoken.clone())
    };
    let server = start_dave_server(false, scenario).await;
    let client = server.expect_client();
    let mut connection =
        Connection::connect(client.connection_info(), client_config(&server).receiving())
            .await
            .expect("connects");
    let mut stream = connection.receiver().subscribe(UserId(DAVE_LISTENER));
    // Everything up to the end of the speaker's spurt (its trailing silence).
    let items = until_spurt_end(&mut stream, Duration::from_secs(10)).await;
    let events = queued_events(&mut connection);
    connection.disconnect().await;

    let frames: Vec<&[u8]> = items
        .iter()
        .filter_map(|r| match &r.item {
            Item::Frame(frame) if !frame.is_silence() => Some(frame.opus.as_ref()),
            _ => None,
        })
        .collect();
    assert_eq!(frames, spoken, "{items:?}");
    assert!(
        items
            .iter()
            .all(|r| r.user_id == Some(UserId(DAVE_LISTENER))),
        "every item attributed to the speaker: {items:?}"
    );
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Speaking { user_id, .. } if *user_id == UserId(DAVE_LISTENER)
        )),
        "op 5 maps the speaker's SSRC: {events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::DaveDecryptFailed { .. })),
        "{events:?}"
    );
    let report = server.report();
    assert!(report.violations.is_empty(), "{report}");
}
