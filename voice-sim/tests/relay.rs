//! Two real clients in one channel: the server relays audio between them, re-encrypted for the
//! receiver, and tells each about the other (op 11, op 5 with the user id, op 13 on leaving).

use std::time::Duration;

use voice_proto::id::UserId;
use voice_proto::Event;
use voice_sim::testing::EngineClient;
use voice_sim::{ServerConfig, VoiceServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_is_relayed_between_two_engine_clients_in_one_channel() {
    let server = VoiceServer::start(ServerConfig {
        heartbeat_interval: Duration::from_millis(500),
        seed: Some(21),
        ..ServerConfig::default()
    })
    .await
    .expect("starts");
    let listener_info = server.expect_client();
    let speaker_info = server.expect_client_in(listener_info.client);
    assert_eq!(
        (speaker_info.guild_id, speaker_info.channel_id),
        (listener_info.guild_id, listener_info.channel_id)
    );
    assert_ne!(speaker_info.user_id, listener_info.user_id);

    let mut listener = EngineClient::new(&server.ws_url(), listener_info.clone(), Vec::new());
    listener.linger = Duration::from_millis(1800);
    let frames_sent: Vec<Vec<u8>> = (0..20u8).map(|i| vec![0xFC, i, 0x33, 0x44]).collect();
    let speaker = EngineClient::new(&server.ws_url(), speaker_info.clone(), frames_sent.clone());
    let listening = tokio::spawn(listener.run());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spoke = speaker.run().await.expect("speaker runs");
    assert!(spoke.error.is_none(), "{:?}", spoke.events);
    let heard = listening.await.expect("joins").expect("listener runs");
    assert!(heard.error.is_none(), "{:?}", heard.events);

    let speaker_user = UserId(speaker_info.user_id);
    // The speaker's SSRC, as op 5 announced it. Its first packet may overtake that op 5 (UDP and
    // the websocket race on loopback), so audio is matched by SSRC, and attribution is checked
    // for every packet after the announcement.
    let speaker_ssrc = heard
        .events
        .iter()
        .find_map(|e| match e {
            Event::Speaking { user_id, ssrc, .. } if *user_id == speaker_user => Some(*ssrc),
            _ => None,
        })
        .expect("op 5 announced the speaker's SSRC");
    // Frames leave the listener's playout buffer after op 5 named their sender (a new sender is
    // held for the buffer's depth first). The speaker's last silence frames race its op 13 (the
    // relay's UDP and the websocket on loopback): those that arrive after it start no spurt.
    let frames = heard.frames(Some(speaker_ssrc));
    let audio: Vec<Vec<u8>> = frames
        .iter()
        .filter(|(_, f)| !f.is_silence())
        .map(|(_, f)| f.opus.to_vec())
        .collect();
    assert_eq!(
        audio, frames_sent,
        "byte for byte through the relay, in order"
    );
    assert!(
        frames.iter().all(|(user, _)| *user == Some(speaker_user)),
        "attributed to the speaker: {frames:?}"
    );
    let silence = frames.iter().filter(|(_, f)| f.is_silence()).count();
    assert!(silence <= 5, "{silence} silence frames");
    assert!(heard.events.iter().any(
        |e| matches!(e, Event::ClientsConnected { user_ids } if user_ids == &vec![speaker_user])
    ));
    assert!(heard
        .events
        .iter()
        .any(|e| matches!(e, Event::Speaking { user_id, .. } if *user_id == speaker_user)));
    assert!(heard
        .events
        .iter()
        .any(|e| matches!(e, Event::ClientDisconnected { user_id } if *user_id == speaker_user)));
    // The speaker learned about the listener already in the channel.
    let listener_user = UserId(listener_info.user_id);
    assert!(spoke.events.iter().any(
        |e| matches!(e, Event::ClientsConnected { user_ids } if user_ids == &vec![listener_user])
    ));
    assert!(server.report().violations.is_empty(), "{}", server.report());
}
