//! A simulated DAVE member speaks: its frames reach the application through the connection's
//! events, DAVE-decrypted, byte-exact and attributed to the member.

mod common;

use std::time::Duration;

use common::*;
use voice_proto::id::UserId;
use voice_proto::rtp::SILENCE_FRAME;
use voice_tokio::{Connection, Event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_s_dave_audio_arrives_decrypted_and_attributed() {
    let spoken = sample_frames(40);
    let server = start_dave_server(false, dave_speaker(spoken.clone())).await;
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
