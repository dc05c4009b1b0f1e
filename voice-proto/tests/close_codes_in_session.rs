//! What the session does for each close code: 4014 waits for a move, 4017/4016/4021 are fatal
//! with a clear error, 4004 rejoins once then is fatal, the rest resume or reconnect.

mod support;

use support::*;
use voice_proto::close::{disposition, CloseDisposition, FatalReason};
use voice_proto::{DisconnectReason, Error, Event, Input, Output, Recovery};

fn connected() -> Harness {
    let mut h = Harness::join(test_config());
    h.connect();
    h
}

#[test]
fn close_4014_reports_disconnected_then_a_move_works() {
    let mut h = connected();
    let outs = h.feed(Input::WebSocketClosed { code: Some(4014) });
    assert!(events(&outs).contains(&Event::Disconnected {
        reason: DisconnectReason::Closed { code: 4014 }
    }));
    assert!(
        !outs
            .iter()
            .any(|o| matches!(o, Output::OpenWebSocket { .. })),
        "no reconnect by itself"
    );
    // The move: the main gateway sends a new server (and our new channel).
    let outs = h.feed(Input::VoiceServerUpdate(server_dispatch("move-token")));
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::OpenWebSocket { .. })));
    h.handshake_on_new_socket();
    assert!(h.session().is_connected());
}

#[test]
fn close_4014_without_a_new_server_ends_with_disconnected() {
    let mut h = connected();
    h.feed(Input::WebSocketClosed { code: Some(4014) });
    let deadline = h.now + test_config().move_timeout;
    h.run_until(deadline);
    assert_eq!(
        h.state.error(),
        Some(&Error::Disconnected { code: Some(4014) })
    );
}

#[test]
fn fatal_codes_end_with_a_clear_error() {
    for (code, reason) in [
        (4016, FatalReason::UnknownEncryptionMode),
        (4017, FatalReason::DaveRequired),
        (4021, FatalReason::RateLimited),
    ] {
        let mut h = connected();
        let outs = h.feed(Input::WebSocketClosed { code: Some(code) });
        let error = Error::Fatal { code, reason };
        assert!(events(&outs).contains(&Event::Closed {
            error: error.clone()
        }));
        assert_eq!(outs.last(), Some(&Output::Idle));
        assert!(!outs
            .iter()
            .any(|o| matches!(o, Output::OpenWebSocket { .. })));
        assert_eq!(leaves(&outs), 1, "the bot leaves the channel (row 2)");
        if code == 4017 {
            assert!(error.to_string().contains("DAVE"), "{error}");
        }
    }
}

#[test]
fn fatal_codes_during_the_handshake_are_fatal_too() {
    let mut h = Harness::join(test_config());
    h.feed(Input::VoiceStateUpdate(state_dispatch()));
    h.feed(Input::VoiceServerUpdate(server_dispatch(TOKEN)));
    h.feed(Input::WebSocketOpened);
    let hello = h.server.hello();
    h.text(&hello);
    h.feed(Input::WebSocketClosed { code: Some(4017) });
    assert_eq!(
        h.state.error(),
        Some(&Error::Fatal {
            code: 4017,
            reason: FatalReason::DaveRequired
        })
    );
}

#[test]
fn every_code_does_what_the_table_says() {
    let mut codes: Vec<Option<u16>> = vec![None];
    codes.extend([1000, 1001, 1006, 3000].map(Some));
    codes.extend((4000..=4025).map(Some));
    codes.push(Some(4999));
    for code in codes {
        let mut h = connected();
        let outs = h.feed(Input::WebSocketClosed { code });
        let expected = disposition(code, false);
        assert!(events(&outs).contains(&Event::CloseHandled {
            code,
            disposition: expected
        }));
        let evs = events(&outs);
        match expected {
            CloseDisposition::Resume | CloseDisposition::Finished => assert!(
                evs.iter().any(|e| matches!(
                    e,
                    Event::Reconnecting {
                        recovery: Recovery::Resume,
                        ..
                    }
                )),
                "{code:?}: {evs:?}"
            ),
            CloseDisposition::Reconnect | CloseDisposition::RejoinOnce(_) => assert!(
                evs.iter().any(|e| matches!(
                    e,
                    Event::Reconnecting {
                        recovery: Recovery::Reconnect,
                        ..
                    }
                )),
                "{code:?}: {evs:?}"
            ),
            CloseDisposition::AwaitMove => assert!(
                evs.iter().any(|e| matches!(e, Event::Disconnected { .. })),
                "{code:?}: {evs:?}"
            ),
            CloseDisposition::Fatal(_) => assert!(
                evs.iter().any(|e| matches!(e, Event::Closed { .. })),
                "{code:?}: {evs:?}"
            ),
        }
    }
}

#[test]
fn disconnect_leaves_through_the_main_gateway_and_closes_1000() {
    let mut h = connected();
    h.session().disconnect();
    let outs = h.collect();
    let Some(Output::MainGateway(leave)) = outs.first() else {
        panic!("{outs:?}")
    };
    assert_eq!(leave.channel_id, None);
    assert!(outs.contains(&Output::CloseWebSocket { code: 1000 }));
    assert_eq!(outs.last(), Some(&Output::Idle));
    assert_eq!(h.state.error(), Some(&Error::ClosedByApplication));
    // Nothing more happens after the end.
    assert!(h.state.handle_input(h.now, Input::Timer).is_err());
}

fn leaves(outs: &[Output]) -> usize {
    outs.iter()
        .filter(|o| matches!(o, Output::MainGateway(op4) if op4.channel_id.is_none()))
        .count()
}

/// Issue 14 row 9: 4004 rejoins once through op 4 (a new token), reusing the session id held;
/// a second 4004 before a session is fatal, with one leave.
#[test]
fn close_4004_rejoins_once_through_the_main_gateway_then_is_fatal() {
    let mut h = connected();
    let outs = h.feed(Input::WebSocketClosed { code: Some(4004) });
    assert!(events(&outs).iter().any(|e| matches!(
        e,
        Event::Reconnecting {
            recovery: Recovery::Reconnect,
            code: Some(4004),
            attempt: 1
        }
    )));
    let until = h.now + test_config().reconnect_backoff_initial;
    let outs = h.run_until(until);
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::MainGateway(op4) if op4.channel_id.is_some())),
        "a rejoin through op 4: {outs:?}"
    );
    // Discord sends only VOICE_SERVER_UPDATE for an unchanged channel: the held session id is
    // used (row 9).
    let outs = h.feed(Input::VoiceServerUpdate(server_dispatch("fresh-token")));
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::OpenWebSocket { .. })));
    let outs = h.feed(Input::WebSocketOpened);
    assert!(matches!(
        &client_messages(&outs)[..],
        [voice_proto::payload::ClientMessage::Identify(i)]
            if i.token.expose() == "fresh-token" && i.session_id == SESSION_ID
    ));
    let outs = h.feed(Input::WebSocketClosed { code: Some(4004) });
    let error = Error::Fatal {
        code: 4004,
        reason: FatalReason::AuthenticationFailed,
    };
    assert!(events(&outs).contains(&Event::Closed { error }), "{outs:?}");
    assert_eq!(leaves(&h.log), 1, "exactly one leave");
}

#[test]
fn close_4004_after_a_good_rejoin_rejoins_again() {
    let mut h = connected();
    h.feed(Input::WebSocketClosed { code: Some(4004) });
    let until = h.now + test_config().reconnect_backoff_initial;
    h.run_until(until);
    h.feed(Input::VoiceServerUpdate(server_dispatch("fresh-token")));
    h.handshake_on_new_socket();
    assert!(h.session().is_connected());
    // A session came of it: the next 4004 is again worth one rejoin.
    let outs = h.feed(Input::WebSocketClosed { code: Some(4004) });
    assert!(h.state.error().is_none(), "{outs:?}");
    assert!(events(&outs).iter().any(|e| matches!(
        e,
        Event::Reconnecting {
            code: Some(4004),
            ..
        }
    )));
}

#[test]
fn close_4004_without_a_main_gateway_is_fatal_at_once() {
    let mut h = Harness::connect_without_gateway(test_config());
    h.handshake_on_new_socket();
    let outs = h.feed(Input::WebSocketClosed { code: Some(4004) });
    assert!(events(&outs).contains(&Event::Closed {
        error: Error::Fatal {
            code: 4004,
            reason: FatalReason::AuthenticationFailed
        }
    }));
    assert_eq!(leaves(&outs), 0, "no main gateway, no op 4");
}
