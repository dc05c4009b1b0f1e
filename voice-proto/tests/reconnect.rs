//! Fresh reconnect after 4006: through the main gateway when attached, else with the same
//! credentials; new UDP, new key, new SSRC.

mod support;

use support::*;
use voice_proto::payload::ClientMessage;
use voice_proto::playout::HoldReason;
use voice_proto::{Event, Input, Output, Recovery};

#[test]
fn close_4006_rejoins_through_the_main_gateway_and_identifies_afresh() {
    let mut h = Harness::join(test_config());
    h.connect();
    h.send_frame(&[1, 2, 3]);
    let outs = h.feed(Input::WebSocketClosed { code: Some(4006) });
    assert!(events(&outs).contains(&Event::Reconnecting {
        recovery: Recovery::Reconnect,
        code: Some(4006),
        attempt: 1,
    }));
    let outs = h.wait_out_backoff();
    let Some(Output::MainGateway(op4)) = outs.iter().find(|o| matches!(o, Output::MainGateway(_)))
    else {
        panic!("expected op 4 again (C12), got {outs:?}")
    };
    assert_eq!(op4.channel_id, Some(CHANNEL));
    // No audio while a fresh session is negotiated: a frame queued now waits for it.
    h.session().queue_opus(&[1]).unwrap();
    assert_eq!(h.play_next().1, None);
    assert_eq!(h.session().playout_hold(), Some(HoldReason::Reconnecting));

    h.feed(Input::VoiceStateUpdate(state_dispatch()));
    let outs = h.feed(Input::VoiceServerUpdate(server_dispatch("new-token")));
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::OpenWebSocket { .. })));
    h.server.ssrc = 777;
    h.server.key = [9; 32];
    let outs = h.handshake_on_new_socket();
    let sent = client_messages(&outs);
    assert!(matches!(&sent[0], ClientMessage::Identify(i) if i.token.expose() == "new-token"));
    assert!(
        outs.iter().any(|o| matches!(o, Output::BindUdp { .. })),
        "new UDP socket"
    );
    assert!(events(&outs)
        .iter()
        .any(|e| matches!(e, Event::Connected { ssrc: 777, .. })));

    // The held frame goes out first on the new session, after op 5 with the new SSRC.
    let (outs, held) = h.play_next();
    assert!(client_messages(&outs)
        .iter()
        .any(|m| matches!(m, ClientMessage::Speaking(s) if s.ssrc == 777)));
    let (header, opus) = h.server.open_audio(&held.expect("the held frame"));
    assert_eq!((header.ssrc, opus.as_slice()), (777, &[1u8][..]));
    let reason = HoldReason::Reconnecting;
    let holds: Vec<_> = events(&h.log)
        .into_iter()
        .filter(|e| matches!(e, Event::PlayoutHeld { .. } | Event::PlayoutResumed { .. }))
        .collect();
    assert_eq!(
        holds,
        [
            Event::PlayoutHeld { reason },
            Event::PlayoutResumed { reason }
        ],
        "the wait is reported once, start and end"
    );
    let (_, datagram) = h.send_frame(&[4, 5, 6]);
    let (header, opus) = h.server.open_audio(&datagram);
    assert_eq!((header.ssrc, opus.as_slice()), (777, &[4u8, 5, 6][..]));
    assert_eq!(h.session().stats().reconnects, 1);
}

#[test]
fn without_a_main_gateway_a_fresh_reconnect_identifies_with_the_same_credentials() {
    let mut h = Harness::connect_without_gateway(test_config());
    h.handshake_on_new_socket();
    assert!(h.state.session().is_some());
    h.feed(Input::WebSocketClosed { code: Some(4006) });
    let outs = h.wait_out_backoff();
    assert!(!outs.iter().any(|o| matches!(o, Output::MainGateway(_))));
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::OpenWebSocket { .. })));
    let outs = h.handshake_on_new_socket();
    let sent = client_messages(&outs);
    assert!(
        matches!(&sent[0], ClientMessage::Identify(i) if i.token.expose() == TOKEN && i.session_id == SESSION_ID)
    );
}

#[test]
fn a_new_voice_server_while_connected_is_a_move_with_a_fresh_identify() {
    let mut h = Harness::join(test_config());
    h.connect();
    let mut moved = server_dispatch("moved-token");
    moved.endpoint = Some("c-ewr12-283a171b.discord.media:2096".to_owned());
    let outs = h.feed(Input::VoiceServerUpdate(moved));
    assert!(outs.contains(&Output::CloseWebSocket { code: 1000 }));
    assert!(outs.contains(&Output::OpenWebSocket {
        url: "wss://c-ewr12-283a171b.discord.media:2096/?v=8".to_owned()
    }));
    let outs = h.handshake_on_new_socket();
    assert!(
        matches!(&client_messages(&outs)[0], ClientMessage::Identify(i) if i.token.expose() == "moved-token")
    );
}
