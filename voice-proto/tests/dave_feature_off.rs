//! Without the `dave` feature: nothing is offered (version 0, only Stage channels work) and a
//! Session Description asking for DAVE ends the connection with a clear error.
#![cfg(not(feature = "dave"))]

mod support;

use support::*;
use voice_proto::payload::ClientMessage;
use voice_proto::{Config, Error, ProtocolError};

#[test]
fn nothing_is_offered_and_dave_1_is_refused() {
    assert_eq!(Config::default().max_dave_protocol_version, 0);
    assert_eq!(voice_proto::dave::SUPPORTED_PROTOCOL_VERSION, 0);
    // Even a config asking for DAVE offers 0: this build cannot speak it.
    let mut h = Harness::join({
        let mut config = test_config();
        config.max_dave_protocol_version = 1;
        config
    });
    h.server.dave_protocol_version = 1;
    let outs = h.connect();
    let offered = client_messages(&outs).into_iter().find_map(|m| match m {
        ClientMessage::Identify(identify) => Some(identify.max_dave_protocol_version),
        _ => None,
    });
    assert_eq!(offered, Some(0));
    assert_eq!(
        h.state.error(),
        Some(&Error::Protocol(ProtocolError::UnsupportedDaveVersion {
            requested: 1,
            offered: 0
        }))
    );
}
