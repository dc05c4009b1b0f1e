//! Found by fuzzing (`gateway_binary` inputs replayed on stable): a malformed DAVE MLS payload
//! from the voice server must end as a `DaveMessageFailed` event, not a panic, in debug builds too.
//!
//! The engine hands the op 25 payload to `davey::DaveSession::set_external_sender`, which
//! deserializes it with `tls_codec`. On a truncated variable-length vector `tls_codec` 0.4.2 runs
//! `debug_assert_eq!(remaining_len, length, ..)` (`src/quic_vec.rs:368`) before returning its
//! decoding error, so with debug assertions on one bad frame (op 25, 27, 29 or 30) panicked the
//! connection. The workspace manifest now builds `tls_codec` without debug assertions
//! (`[profile.dev.package.tls_codec]`); this test keeps it that way.
#![cfg(feature = "dave")]

mod support;

use support::*;
use voice_proto::{Event, Input, Output};

/// `[seq u16][op 25]` then an `ExternalSender` whose first vector claims 260 bytes (QUIC varint
/// `41 04`) but carries 12.
const TRUNCATED_EXTERNAL_SENDER: [u8; 17] =
    [0, 9, 25, 0x41, 0x04, 0, 1, 1, 0x08, 0, 0, 0, 0, 0, 0, 0, 1];

#[test]
fn a_truncated_external_sender_is_an_event_not_a_panic() {
    let mut h = Harness::join({
        let mut config = test_config();
        config.max_dave_protocol_version = 1;
        config
    });
    h.server.dave_protocol_version = 1;
    h.connect();
    assert!(h.state.session().is_some_and(|s| s.has_media()));
    let outputs = h.feed(Input::Binary(&TRUNCATED_EXTERNAL_SENDER));
    assert!(outputs
        .iter()
        .any(|o| matches!(o, Output::Event(Event::DaveMessageFailed { .. }))));
    assert!(matches!(outputs.last(), Some(Output::WakeAt(_))));
    assert!(h.state.error().is_none());
}
