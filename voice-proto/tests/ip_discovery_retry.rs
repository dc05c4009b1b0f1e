//! IP discovery: the request is retried on timeout, foreign or malformed answers are ignored, and
//! giving up is a typed error.

mod support;

use std::net::SocketAddr;

use support::*;
use voice_proto::payload::ClientMessage;
use voice_proto::{Error, Event, Input, Output, Recovery, Stage};

fn until_ready() -> (Harness, Vec<u8>) {
    // Heartbeats are never acknowledged here; keep them out of the way of the discovery timers.
    let mut config = test_config();
    config.max_missed_heartbeats = 100;

    let mut h = Harness::join(config);
    h.feed(Input::VoiceStateUpdate(state_dispatch()));
    h.feed(Input::VoiceServerUpdate(server_dispatch(TOKEN)));
    h.feed(Input::WebSocketOpened);
    let hello = h.server.hello();
    h.text(&hello);
    let ready = h.server.ready();
    let outs = h.text(&ready);
    let (_, request) = transmits(&outs).remove(0);
    (h, request)
}

#[test]
fn request_is_retried_then_the_answer_is_taken() {
    let (mut h, request) = until_ready();
    let retry = test_config().discovery_retry_interval;
    let outs = h.advance(retry);
    let resent = transmits(&outs);
    assert_eq!(resent.len(), 1);
    assert_eq!(resent[0], (server_udp(), request.clone()));
    let answer = h.server.discovery_answer(&request);
    let outs = h.feed(Input::Datagram {
        from: server_udp(),
        data: &answer,
    });
    assert!(client_messages(&outs)
        .iter()
        .any(|m| matches!(m, ClientMessage::SelectProtocol(_))));
}

#[test]
fn after_the_configured_attempts_the_attempt_is_retried_on_a_new_websocket() {
    let (mut h, _) = until_ready();
    let config = test_config();
    let deadline = h.now + config.discovery_retry_interval * config.discovery_attempts;
    let outs = h.run_until(deadline);
    assert_eq!(transmits(&outs).len() as u32, config.discovery_attempts - 1);
    // Before the first session too, a failed attempt is retried (issue 14 row 1): the websocket
    // is abandoned, and after a backoff the join starts again through op 4.
    assert!(h.state.error().is_none(), "{:?}", h.state.error());
    assert!(outs.contains(&Output::CloseWebSocket { code: 4000 }));
    assert!(events(&outs).contains(&Event::Reconnecting {
        recovery: Recovery::Reconnect,
        code: None,
        attempt: 1,
    }));
    let outs = h.wait_out_backoff();
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::MainGateway(op4) if op4.channel_id.is_some())));
    h.feed(Input::VoiceServerUpdate(server_dispatch(TOKEN)));
    h.handshake_on_new_socket();
    assert!(h.state.session().is_some_and(|s| s.is_connected()));
    assert!(!matches!(
        h.state.error(),
        Some(Error::Timeout {
            stage: Stage::IpDiscovery,
            ..
        })
    ));
}

#[test]
fn answers_from_elsewhere_or_malformed_are_ignored() {
    let (mut h, request) = until_ready();
    let answer = h.server.discovery_answer(&request);
    let stranger: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let outs = h.feed(Input::Datagram {
        from: stranger,
        data: &answer,
    });
    assert!(client_messages(&outs).is_empty());
    let mut bad = answer.clone();
    bad[1] = 7; // wrong type
    let outs = h.feed(Input::Datagram {
        from: server_udp(),
        data: &bad,
    });
    assert!(client_messages(&outs).is_empty());
    let outs = h.feed(Input::Datagram {
        from: server_udp(),
        data: &answer[..40],
    });
    assert!(client_messages(&outs).is_empty());
    assert!(h.state.error().is_none());
}
