//! A simulated DAVE member speaks: its frames reach the application through the connection's
//! events, DAVE-decrypted, byte-exact and attributed to the member, also when they arrive before
//! the op 5 that names their sender.

mod common;

use std::time::Duration;

use common::*;
use voice_proto::id::UserId;
use voice_proto::rtp::SILENCE_FRAME;
use voice_tokio::{Connection, Event};

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
    let mut connection = Connection::connect(client.connection_info(), client_config(&server))
        .await
        .expect("connects");
    // Everything up to the speaker's trailing silence.
    let mut heard = 0;
    let events = events_until(&mut connection, Duration::from_secs(10), |e| match e {
        Event::Audio(audio) if audio.opus == SILENCE_FRAME => heard == spoken.len(),
        Event::Audio(_) => {
            heard += 1;
            false
        }
        _ => false,
    })
    .await;
    connection.disconnect().await;

    let audio: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Audio(audio) => Some(audio),
            _ => None,
        })
        .collect();
    let frames: Vec<&[u8]> = audio
        .iter()
        .filter(|a| a.opus != SILENCE_FRAME)
        .map(|a| a.opus.as_slice())
        .collect();
    assert_eq!(frames, spoken, "{events:?}");
    assert!(
        audio
            .iter()
            .all(|a| a.user_id == Some(UserId(DAVE_LISTENER))),
        "every frame attributed to the speaker: {events:?}"
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
