//! Secrets never reach `Debug`: the token inside queued Identify and Resume frames, in the
//! outputs themselves and in the whole state around them, and the transport key, also in the
//! Session Description input (issue 14 row 5). The messages that carry a secret decode without a
//! `serde_json::Value` in between (nothing of the secret is left in freed memory that was not
//! zeroed); these tests pin that the direct decoding gives exactly the general decoder's
//! results, malformed shapes included.

mod support;

use support::*;
use voice_proto::payload::{ClientMessage, DecodeError, Opcode, ServerFrame, ServerMessage};
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
    h.wait_out_backoff();
    let _ = h.state.handle_input(h.now, Input::WebSocketOpened);
    assert_no_secret("the state with Resume queued", &format!("{:?}", h.state));
    let shown = format!("{:?}", h.collect());
    assert_no_secret("the Resume output", &shown);
    assert!(shown.contains("Resume"), "still shown, decoded: {shown}");
}

#[test]
fn a_session_description_input_is_shown_with_the_key_redacted() {
    let mut server = FakeServer::default();
    let text = server.session_description();
    assert!(
        text.contains("7,7,7,7"),
        "the frame carries the key: {text}"
    );
    let shown = format!("{:?}", Input::Text(&text));
    assert!(
        !shown.contains("7,7,7,7") && !shown.contains("7, 7, 7, 7"),
        "{shown}"
    );
    assert!(
        shown.contains("SessionDescription") && shown.contains("redacted"),
        "{shown}"
    );
    // Other text frames are shown as they are.
    let hello = server.hello();
    assert_eq!(
        format!("{:?}", Input::Text(&hello)),
        format!("Text({hello:?})")
    );
}

fn key_json(byte: u8) -> String {
    format!("[{}]", vec![byte.to_string(); 32].join(","))
}

#[test]
fn session_descriptions_decode_as_the_general_decoder_does() {
    let key = key_json(7);
    let ok = |text: &str| match ServerFrame::decode_text(text) {
        Ok(ServerFrame {
            seq,
            message: ServerMessage::SessionDescription(d),
        }) => (seq, d.mode, *d.secret_key.expose(), d.dave_protocol_version),
        other => panic!("{text}: {other:?}"),
    };
    let plain = format!(r#"{{"op":4,"d":{{"mode":"m","secret_key":{key}}},"seq":3}}"#);
    assert_eq!(ok(&plain), (Some(3), "m".to_owned(), [7; 32], 0));
    // Extra fields, a seq that is no number, the fields in any order.
    let extra = format!(
        r#"{{"seq":"x","d":{{"audio_codec":"opus","dave_protocol_version":1,"secret_key":{key},"mode":"m"}},"t":null,"op":4}}"#
    );
    assert_eq!(ok(&extra), (None, "m".to_owned(), [7; 32], 1));
    // Duplicate keys: the general decoder keeps the last one.
    let twice = format!(
        r#"{{"op":4,"d":{{"mode":"a","secret_key":{key}}},"d":{{"mode":"b","secret_key":{}}}}}"#,
        key_json(9)
    );
    assert_eq!(ok(&twice), (None, "b".to_owned(), [9; 32], 0));
    let inner = format!(r#"{{"op":4,"d":{{"mode":"a","mode":"b","secret_key":{key}}}}}"#);
    assert_eq!(ok(&inner).1, "b");
    // Shapes the general decoder refuses stay refused, with its errors.
    let refused = [
        format!(r#"[4,{{"mode":"m","secret_key":{key}}}]"#),
        format!(r#"{{"op":4,"d":["m",{key},0]}}"#),
        r#"{"op":4,"d":null}"#.to_owned(),
        r#"{"op":4}"#.to_owned(),
        r#"{"op":4,"d":{"mode":"m","secret_key":[1,2,3]}}"#.to_owned(),
        format!(
            r#"{{"op":4,"d":{{"mode":"m","secret_key":{}}}}}"#,
            key_json(0).replace("0]", "256]")
        ),
    ];
    for text in &refused {
        let error = ServerFrame::decode_text(text).expect_err(text);
        assert!(
            matches!(
                error,
                DecodeError::NotAnObject { .. }
                    | DecodeError::MissingPayload {
                        op: Opcode::SessionDescription
                    }
                    | DecodeError::InvalidPayload {
                        op: Opcode::SessionDescription,
                        ..
                    }
            ),
            "{text}: {error:?}"
        );
        assert!(!error.to_string().contains("256"), "{error}");
    }
}

#[test]
fn identify_and_resume_decode_as_the_general_decoder_does() {
    let identify = r#"{"op":0,"d":{"server_id":"1","user_id":2,"session_id":"s","token":"t","max_dave_protocol_version":1}}"#;
    assert!(matches!(
        ClientMessage::decode_text(identify),
        Ok(ClientMessage::Identify(i)) if i.token.expose() == "t" && i.user_id.0 == 2
    ));
    let resume = r#"{"d":{"server_id":"1","session_id":"s","token":"t"},"op":7}"#;
    assert!(matches!(
        ClientMessage::decode_text(resume),
        Ok(ClientMessage::Resume(r)) if r.seq_ack == -1
    ));
    let bad_token =
        r#"{"op":0,"d":{"server_id":"1","user_id":"2","session_id":"s","token":12345}}"#;
    let error = ClientMessage::decode_text(bad_token).expect_err("a number is no token");
    assert!(
        error
            .to_string()
            .contains("expected a string, found a number"),
        "{error}"
    );
    assert!(!error.to_string().contains("12345"), "{error}");
}
