//! Secrets never reach `Debug`: the token inside queued Identify and Resume frames, in the
//! outputs themselves and in the whole state around them, and the transport key.

mod support;

use support::*;
use voice_proto::Input;

fn assert_no_secret(what: &str, debug: &str) {
    assert!(!debug.contains(TOKEN), "{what} shows the token: {debug}");
    assert!(
        !debug.contains("7, 7, 7, 7"),
        "{what} shows the key: {debug}"
    );
}

#[test]
fn identify_and_resume_are_redacted_in_outputs_and_states() {
    let mut h = Harness::join(test_config());
    h.feed(Input::VoiceStateUpdate(state_dispatch()));
    h.feed(Input::VoiceServerUpdate(server_dispatch(TOKEN)));
    // Identify queued, not taken yet: the state holds it.
    let _ = h.state.handle_input(h.now, Input::WebSocketOpened);
    assert_no_secret("the state with Identify queued", &format!("{:?}", h.state));
    let outputs = h.collect();
    let shown = format!("{outputs:?}");
    assert_no_secret("the Identify output", &shown);
    assert!(shown.contains("Identify"), "still shown, decoded: {shown}");

    h.connect_rest();
    assert_no_secret("the session", &format!("{:?}", h.state));
    h.feed(Input::WebSocketClosed { code: Some(4015) });
    let _ = h.state.handle_input(h.now, Input::WebSocketOpened);
    assert_no_secret("the state with Resume queued", &format!("{:?}", h.state));
    let shown = format!("{:?}", h.collect());
    assert_no_secret("the Resume output", &shown);
    assert!(shown.contains("Resume"), "still shown, decoded: {shown}");
}
