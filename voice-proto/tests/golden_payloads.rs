//! Golden payloads: the examples from docs/protocol.md and the shapes of the Discord docs decode into
//! the expected values and re-encode to the same JSON (compared as `serde_json::Value`) or bytes.

use std::time::Duration;

use serde_json::Value;
use voice_proto::id::{GuildId, UserId};
use voice_proto::payload::{
    ClientDisconnect, ClientMessage, ClientsConnect, DaveExecuteTransition,
    DaveMlsInvalidCommitWelcome, DavePrepareEpoch, DavePrepareTransition, DaveTransitionReady,
    DecodeError, Encoded, Heartbeat, HeartbeatAck, Hello, Identify, Opcode, ProposalsOperation,
    Ready, Resume, SelectProtocol, ServerFrame, ServerMessage, SessionDescription, Speaking,
    SpeakingFlags, NO_SEQ,
};
use voice_proto::secret::{SecretKey, Token};

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("test JSON is valid")
}

fn text_of(encoded: &Encoded) -> &str {
    encoded.as_text().expect("expected a text frame")
}

fn bytes_of(encoded: &Encoded) -> &[u8] {
    encoded.as_binary().expect("expected a binary frame")
}

/// Decodes a server text frame and checks that it re-encodes to `canonical` (the input minus
/// ignored fields, plus defaulted ones).
fn server_round_trip(input: &str, canonical: &str) -> ServerFrame {
    let frame = ServerFrame::decode_text(input).expect("golden server payload decodes");
    assert_eq!(
        json(text_of(&frame.encode())),
        json(canonical),
        "re-encoding {input}"
    );
    let again = ServerFrame::decode_text(text_of(&frame.encode())).expect("re-encoded decodes");
    assert_eq!(again, frame);
    frame
}

/// Same for client text frames.
fn client_round_trip(input: &str, canonical: &str) -> ClientMessage {
    let message = ClientMessage::decode_text(input).expect("golden client payload decodes");
    assert_eq!(
        json(text_of(&message.encode())),
        json(canonical),
        "re-encoding {input}"
    );
    let again = ClientMessage::decode_text(text_of(&message.encode())).expect("re-encoded decodes");
    assert_eq!(again, message);
    message
}

const KEY_JSON: &str =
    "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31]";

fn key_bytes() -> [u8; 32] {
    core::array::from_fn(|i| i as u8)
}

// ---- client -> server ----

#[test]
fn identify() {
    let input = r#"{"op":0,"d":{"server_id":"41771983423143937","user_id":"104694319306248192","session_id":"my_session_id","token":"my_token","max_dave_protocol_version":1}}"#;
    let message = client_round_trip(input, input);
    let expected = Identify {
        server_id: GuildId(41771983423143937),
        user_id: UserId(104694319306248192),
        session_id: "my_session_id".into(),
        token: Token::new("my_token"),
        max_dave_protocol_version: 1,
    };
    assert_eq!(message, ClientMessage::Identify(expected.clone()));
    // C5: field order and types exactly as Discord documents them.
    assert_eq!(text_of(&ClientMessage::from(expected).encode()), input);
}

#[test]
fn identify_with_numeric_ids_and_extra_fields() {
    let input = r#"{"op":0,"d":{"server_id":41771983423143937,"user_id":104694319306248192,"session_id":"s","token":"t","max_dave_protocol_version":1,"video":true,"streams":[]}}"#;
    let canonical = r#"{"op":0,"d":{"server_id":"41771983423143937","user_id":"104694319306248192","session_id":"s","token":"t","max_dave_protocol_version":1}}"#;
    client_round_trip(input, canonical);
}

#[test]
fn identify_without_dave_version_defaults_to_zero() {
    let input = r#"{"op":0,"d":{"server_id":"1","user_id":"2","session_id":"s","token":"t"}}"#;
    let ClientMessage::Identify(identify) = ClientMessage::decode_text(input).unwrap() else {
        panic!("expected Identify");
    };
    assert_eq!(identify.max_dave_protocol_version, 0);
}

#[test]
fn select_protocol() {
    let input = r#"{"op":1,"d":{"protocol":"udp","data":{"address":"203.0.113.7","port":50004,"mode":"aead_aes256_gcm_rtpsize"}}}"#;
    let message = client_round_trip(input, input);
    let expected = SelectProtocol::udp("203.0.113.7", 50004, "aead_aes256_gcm_rtpsize");
    assert_eq!(message, ClientMessage::SelectProtocol(expected.clone()));
    assert_eq!(text_of(&ClientMessage::from(expected).encode()), input);
}

#[test]
fn heartbeat_v8_is_exact() {
    let input = r#"{"op":3,"d":{"t":1732500000000,"seq_ack":10}}"#;
    let message = client_round_trip(input, input);
    let heartbeat = Heartbeat {
        t: 1732500000000,
        seq_ack: 10,
    };
    assert_eq!(message, ClientMessage::Heartbeat(heartbeat));
    // C7: exactly this text, `t` a JSON number.
    assert_eq!(text_of(&ClientMessage::from(heartbeat).encode()), input);
    let first = Heartbeat {
        t: 9_007_199_254_740_991,
        seq_ack: NO_SEQ,
    };
    assert_eq!(
        text_of(&ClientMessage::from(first).encode()),
        r#"{"op":3,"d":{"t":9007199254740991,"seq_ack":-1}}"#
    );
}

#[test]
fn heartbeat_lenient_forms() {
    // seq_ack omitted before any numbered message.
    assert_eq!(
        ClientMessage::decode_text(r#"{"op":3,"d":{"t":5}}"#).unwrap(),
        ClientMessage::Heartbeat(Heartbeat { t: 5, seq_ack: -1 })
    );
    // v < 8: bare integer nonce.
    assert_eq!(
        ClientMessage::decode_text(r#"{"op":3,"d":1501184119561}"#).unwrap(),
        ClientMessage::Heartbeat(Heartbeat {
            t: 1501184119561,
            seq_ack: -1
        })
    );
}

#[test]
fn speaking_client() {
    let input = r#"{"op":5,"d":{"speaking":1,"delay":0,"ssrc":12345}}"#;
    let message = client_round_trip(input, input);
    let speaking = Speaking::new(SpeakingFlags::MICROPHONE, 12345);
    assert_eq!(message, ClientMessage::Speaking(speaking));
    assert_eq!(text_of(&ClientMessage::from(speaking).encode()), input);
    // 5 = microphone + priority.
    let both = Speaking::new(SpeakingFlags::MICROPHONE | SpeakingFlags::PRIORITY, 1);
    assert_eq!(
        text_of(&ClientMessage::from(both).encode()),
        r#"{"op":5,"d":{"speaking":5,"delay":0,"ssrc":1}}"#
    );
}

#[test]
fn resume() {
    let input = r#"{"op":7,"d":{"server_id":"41771983423143937","session_id":"my_session_id","token":"my_token","seq_ack":10}}"#;
    let message = client_round_trip(input, input);
    let expected = Resume {
        server_id: GuildId(41771983423143937),
        session_id: "my_session_id".into(),
        token: Token::new("my_token"),
        seq_ack: 10,
    };
    assert_eq!(message, ClientMessage::Resume(expected.clone()));
    assert_eq!(text_of(&ClientMessage::from(expected).encode()), input);
}

#[test]
fn dave_client_json() {
    let ready = r#"{"op":23,"d":{"transition_id":5}}"#;
    assert_eq!(
        client_round_trip(ready, ready),
        ClientMessage::DaveTransitionReady(DaveTransitionReady { transition_id: 5 })
    );
    let invalid = r#"{"op":31,"d":{"transition_id":7}}"#;
    assert_eq!(
        client_round_trip(invalid, invalid),
        ClientMessage::DaveMlsInvalidCommitWelcome(DaveMlsInvalidCommitWelcome {
            transition_id: 7
        })
    );
}

#[test]
fn dave_client_binary_has_no_seq_prefix() {
    let key_package = [26u8, 0x00, 0x01, 0xAA, 0xBB];
    let message = ClientMessage::decode_binary(&key_package).unwrap();
    assert_eq!(
        message,
        ClientMessage::DaveMlsKeyPackage(vec![0x00, 0x01, 0xAA, 0xBB])
    );
    assert_eq!(bytes_of(&message.encode()), key_package);

    let commit_welcome = [28u8, 1, 2, 3, 4, 5];
    let message = ClientMessage::decode_binary(&commit_welcome).unwrap();
    assert_eq!(
        message,
        ClientMessage::DaveMlsCommitWelcome(vec![1, 2, 3, 4, 5])
    );
    assert_eq!(bytes_of(&message.encode()), commit_welcome);

    // An empty payload is still a frame.
    assert_eq!(
        ClientMessage::decode_binary(&[26]).unwrap(),
        ClientMessage::DaveMlsKeyPackage(Vec::new())
    );
}

// ---- server -> client ----

#[test]
fn ready_ignores_extra_fields_including_heartbeat_interval() {
    let input = r#"{"op":2,"d":{"ssrc":1,"ip":"127.0.0.1","port":1234,"modes":["aead_aes256_gcm_rtpsize","aead_xchacha20_poly1305_rtpsize","xsalsa20_poly1305"],"heartbeat_interval":1,"experiments":["fixed_keyframe_interval"],"streams":[{"type":"video","ssrc":2,"rtx_ssrc":3,"rid":"","quality":0,"active":false}]},"seq":1}"#;
    let canonical = r#"{"op":2,"d":{"ssrc":1,"ip":"127.0.0.1","port":1234,"modes":["aead_aes256_gcm_rtpsize","aead_xchacha20_poly1305_rtpsize","xsalsa20_poly1305"]},"seq":1}"#;
    let frame = server_round_trip(input, canonical);
    assert_eq!(frame.seq, Some(1));
    assert_eq!(
        frame.message,
        ServerMessage::Ready(Ready {
            ssrc: 1,
            ip: "127.0.0.1".into(),
            port: 1234,
            modes: vec![
                "aead_aes256_gcm_rtpsize".into(),
                "aead_xchacha20_poly1305_rtpsize".into(),
                "xsalsa20_poly1305".into()
            ],
        })
    );
}

#[test]
fn ready_ssrc_above_2_pow_31() {
    let input = r#"{"op":2,"d":{"ssrc":4294967295,"ip":"1.2.3.4","port":50000,"modes":[]}}"#;
    let frame = server_round_trip(input, input);
    let ServerMessage::Ready(ready) = frame.message else {
        panic!("expected Ready")
    };
    assert_eq!(ready.ssrc, u32::MAX);
}

#[test]
fn heartbeat_ack_v8() {
    let input = r#"{"op":6,"d":{"t":1501184119561}}"#;
    let frame = server_round_trip(input, input);
    assert_eq!(frame.seq, None);
    assert_eq!(
        frame.message,
        ServerMessage::HeartbeatAck(HeartbeatAck { t: 1501184119561 })
    );
    // v < 8 bare integer, accepted on input.
    let legacy = ServerFrame::decode_text(r#"{"op":6,"d":1501184119561}"#).unwrap();
    assert_eq!(legacy.message, frame.message);
}

#[test]
fn session_description_with_extras() {
    let input = format!(
        r#"{{"op":4,"d":{{"mode":"aead_aes256_gcm_rtpsize","secret_key":{KEY_JSON},"dave_protocol_version":1,"media_session_id":"89f1d62f166b948746f7646713d39dbb","audio_codec":"opus","video_codec":"H264","secure_frames_version":0}},"seq":3}}"#
    );
    let canonical = format!(
        r#"{{"op":4,"d":{{"mode":"aead_aes256_gcm_rtpsize","secret_key":{KEY_JSON},"dave_protocol_version":1}},"seq":3}}"#
    );
    let frame = server_round_trip(&input, &canonical);
    assert_eq!(frame.seq, Some(3));
    let expected = SessionDescription {
        mode: "aead_aes256_gcm_rtpsize".into(),
        secret_key: SecretKey::new(key_bytes()),
        dave_protocol_version: 1,
    };
    assert_eq!(frame.message, ServerMessage::SessionDescription(expected));
}

#[test]
fn session_description_without_dave_version() {
    let input = format!(
        r#"{{"op":4,"d":{{"mode":"aead_xchacha20_poly1305_rtpsize","secret_key":{KEY_JSON}}}}}"#
    );
    let frame = ServerFrame::decode_text(&input).unwrap();
    let ServerMessage::SessionDescription(description) = frame.message else {
        panic!("expected SessionDescription")
    };
    assert_eq!(description.dave_protocol_version, 0);
    assert_eq!(description.secret_key.expose(), &key_bytes());
}

fn session_description_with_key(key: &str) -> Result<ServerFrame, DecodeError> {
    ServerFrame::decode_text(&format!(
        r#"{{"op":4,"d":{{"mode":"aead_aes256_gcm_rtpsize","secret_key":{key},"dave_protocol_version":1}}}}"#
    ))
}

#[test]
fn secret_key_must_be_exactly_32_bytes() {
    let thirty_one = format!("[{}]", vec!["7"; 31].join(","));
    let thirty_three = format!("[{}]", vec!["7"; 33].join(","));
    let with_256 = format!("[{},256]", vec!["7"; 31].join(","));
    let with_negative = format!("[{},-1]", vec!["7"; 31].join(","));
    let with_string = format!("[{},\"77\"]", vec!["7"; 31].join(","));
    let with_float = format!("[{},7.5]", vec!["7"; 31].join(","));
    let as_string = "\"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0ISE=\"".to_owned();
    for (key, found) in [
        (thirty_one, "an array of 31 elements"),
        (thirty_three, "an array of 33 elements"),
        (with_256, "element 31 is not an integer in 0..=255"),
        (with_negative, "element 31 is not an integer in 0..=255"),
        (with_string, "element 31 is not an integer in 0..=255"),
        (with_float, "element 31 is not an integer in 0..=255"),
        (as_string, "a string of 40 bytes"),
        ("null".to_owned(), "null"),
        ("{}".to_owned(), "an object with 0 fields"),
    ] {
        let error = session_description_with_key(&key).expect_err(&key);
        let DecodeError::InvalidPayload { op, detail } = &error else {
            panic!("expected InvalidPayload, got {error:?}");
        };
        assert_eq!(*op, Opcode::SessionDescription);
        assert!(
            detail.contains(found),
            "{detail:?} should mention {found:?}"
        );
        let message = error.to_string();
        assert!(message.contains("expected an array of exactly 32 integers in 0..=255"));
        // Never echo the key material.
        assert!(!message.contains("c2VjcmV0"), "{message}");
        assert!(!message.contains("77"), "{message}");
        assert!(!message.contains("7,"), "{message}");
    }
    let missing = ServerFrame::decode_text(r#"{"op":4,"d":{"mode":"m"}}"#).unwrap_err();
    assert!(missing.to_string().contains("missing field `secret_key`"));
}

#[test]
fn speaking_from_server_maps_ssrc_to_user() {
    let input = r#"{"op":5,"d":{"user_id":"104694319306248192","ssrc":13,"speaking":1},"seq":4}"#;
    let canonical =
        r#"{"op":5,"d":{"speaking":1,"delay":0,"ssrc":13,"user_id":"104694319306248192"},"seq":4}"#;
    let frame = server_round_trip(input, canonical);
    assert_eq!(
        frame.message,
        ServerMessage::Speaking(Speaking {
            speaking: SpeakingFlags::MICROPHONE,
            delay: 0,
            ssrc: 13,
            user_id: Some(UserId(104694319306248192)),
        })
    );
    // Numeric user id and a legacy boolean flag are accepted.
    let numeric =
        ServerFrame::decode_text(r#"{"op":5,"d":{"user_id":7,"ssrc":13,"speaking":true}}"#)
            .unwrap();
    let ServerMessage::Speaking(speaking) = numeric.message else {
        panic!("expected Speaking")
    };
    assert_eq!(speaking.user_id, Some(UserId(7)));
    assert_eq!(speaking.speaking, SpeakingFlags::MICROPHONE);
}

#[test]
fn hello_integer_and_fractional() {
    let frame = server_round_trip(
        r#"{"op":8,"d":{"heartbeat_interval":13750,"v":8}}"#,
        r#"{"op":8,"d":{"heartbeat_interval":13750,"v":8}}"#,
    );
    let ServerMessage::Hello(hello) = &frame.message else {
        panic!("expected Hello")
    };
    assert_eq!(hello.v, Some(8));
    assert_eq!(hello.interval(), Ok(Duration::from_millis(13750)));

    let frame = server_round_trip(
        r#"{"op":8,"d":{"heartbeat_interval":41250.5}}"#,
        r#"{"op":8,"d":{"heartbeat_interval":41250.5}}"#,
    );
    let ServerMessage::Hello(hello) = &frame.message else {
        panic!("expected Hello")
    };
    assert_eq!(hello.v, None);
    assert_eq!(hello.interval(), Ok(Duration::from_micros(41_250_500)));

    // The DOCS example without `v`, written as a float by some servers.
    let frame = ServerFrame::decode_text(r#"{"op":8,"d":{"heartbeat_interval":41250.0}}"#).unwrap();
    assert_eq!(
        text_of(&frame.encode()),
        r#"{"op":8,"d":{"heartbeat_interval":41250}}"#
    );
}

#[test]
fn hello_interval_rejects_nonsense() {
    for millis in [
        0.0,
        -0.0,
        -1.0,
        0.5,
        1e-300,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        3_600_000.5,
        1e300,
    ] {
        let hello = Hello {
            heartbeat_interval: millis,
            v: Some(8),
        };
        let error = hello.interval().expect_err("nonsense interval");
        assert!(error.to_string().contains("heartbeat_interval"));
    }
    for (millis, expected) in [
        (1.0, Duration::from_millis(1)),
        (5000.0, Duration::from_secs(5)),
        (3_600_000.0, Duration::from_secs(3600)),
    ] {
        let hello = Hello {
            heartbeat_interval: millis,
            v: None,
        };
        assert_eq!(hello.interval(), Ok(expected));
    }
}

#[test]
fn resumed_with_null_or_absent_d() {
    let frame = server_round_trip(r#"{"op":9,"d":null}"#, r#"{"op":9,"d":null}"#);
    assert_eq!(frame.message, ServerMessage::Resumed);
    let frame = ServerFrame::decode_text(r#"{"op":9}"#).unwrap();
    assert_eq!(frame.message, ServerMessage::Resumed);
}

#[test]
fn clients_connect_and_disconnect() {
    let input = r#"{"op":11,"d":{"user_ids":["1234","5678"]},"seq":2}"#;
    let frame = server_round_trip(input, input);
    assert_eq!(
        frame.message,
        ServerMessage::ClientsConnect(ClientsConnect {
            user_ids: vec![UserId(1234), UserId(5678)]
        })
    );
    // Numeric ids re-encode as strings.
    server_round_trip(
        r#"{"op":11,"d":{"user_ids":[1234,"5678"]},"seq":2}"#,
        r#"{"op":11,"d":{"user_ids":["1234","5678"]},"seq":2}"#,
    );

    let input = r#"{"op":13,"d":{"user_id":"1234"},"seq":5}"#;
    let frame = server_round_trip(input, input);
    assert_eq!(
        frame.message,
        ServerMessage::ClientDisconnect(ClientDisconnect {
            user_id: UserId(1234)
        })
    );
}

#[test]
fn dave_server_json() {
    let input = r#"{"op":21,"d":{"protocol_version":1,"transition_id":5},"seq":6}"#;
    assert_eq!(
        server_round_trip(input, input).message,
        ServerMessage::DavePrepareTransition(DavePrepareTransition {
            protocol_version: 1,
            transition_id: 5
        })
    );
    let input = r#"{"op":22,"d":{"transition_id":5},"seq":7}"#;
    assert_eq!(
        server_round_trip(input, input).message,
        ServerMessage::DaveExecuteTransition(DaveExecuteTransition { transition_id: 5 })
    );
    let input = r#"{"op":24,"d":{"protocol_version":1,"epoch":1},"seq":8}"#;
    assert_eq!(
        server_round_trip(input, input).message,
        ServerMessage::DavePrepareEpoch(DavePrepareEpoch {
            protocol_version: 1,
            epoch: 1
        })
    );
}

#[test]
fn dave_server_binary_with_seq_prefix() {
    // op 25: the whole payload is the ExternalSender.
    let frame_bytes = [0x00, 0x05, 25, 0x41, 0x04, 0xAB, 0x00, 0x01, 0x08];
    let frame = ServerFrame::decode_binary(&frame_bytes).unwrap();
    assert_eq!(frame.seq, Some(5));
    assert_eq!(
        frame.message,
        ServerMessage::DaveMlsExternalSender(vec![0x41, 0x04, 0xAB, 0x00, 0x01, 0x08])
    );
    assert_eq!(bytes_of(&frame.encode()), frame_bytes);

    // op 27: operation byte, then proposals (C35).
    let frame_bytes = [0x01, 0x00, 27, 0x00, 0xDE, 0xAD];
    let frame = ServerFrame::decode_binary(&frame_bytes).unwrap();
    assert_eq!(frame.seq, Some(256));
    assert_eq!(
        frame.message,
        ServerMessage::DaveMlsProposals {
            operation: ProposalsOperation::Append,
            proposals: vec![0xDE, 0xAD]
        }
    );
    assert_eq!(bytes_of(&frame.encode()), frame_bytes);
    let revoke = ServerFrame::decode_binary(&[0, 1, 27, 1]).unwrap();
    assert_eq!(
        revoke.message,
        ServerMessage::DaveMlsProposals {
            operation: ProposalsOperation::Revoke,
            proposals: vec![]
        }
    );
    let odd = ServerFrame::decode_binary(&[0, 1, 27, 9, 1]).unwrap();
    assert_eq!(
        odd.message,
        ServerMessage::DaveMlsProposals {
            operation: ProposalsOperation::Unknown(9),
            proposals: vec![1]
        }
    );
    assert_eq!(bytes_of(&odd.encode()), [0, 1, 27, 9, 1]);

    // op 29: u16 BE transition id, then the commit (C36).
    let frame_bytes = [0xFF, 0xFF, 29, 0x01, 0x02, 0xC0, 0x01];
    let frame = ServerFrame::decode_binary(&frame_bytes).unwrap();
    assert_eq!(frame.seq, Some(65535));
    assert_eq!(
        frame.message,
        ServerMessage::DaveMlsAnnounceCommitTransition {
            transition_id: 0x0102,
            commit: vec![0xC0, 0x01]
        }
    );
    assert_eq!(bytes_of(&frame.encode()), frame_bytes);

    // op 30: u16 BE transition id, then the welcome.
    let frame_bytes = [0x00, 0x09, 30, 0x00, 0x00, 0x57];
    let frame = ServerFrame::decode_binary(&frame_bytes).unwrap();
    assert_eq!(
        frame.message,
        ServerMessage::DaveMlsWelcome {
            transition_id: 0,
            welcome: vec![0x57]
        }
    );
    assert_eq!(bytes_of(&frame.encode()), frame_bytes);
}

#[test]
fn server_binary_seq_is_truncated_to_u16_and_defaults_to_zero() {
    let frame = ServerFrame {
        seq: Some(65536 + 3),
        message: ServerMessage::DaveMlsExternalSender(vec![1]),
    };
    assert_eq!(bytes_of(&frame.encode()), [0, 3, 25, 1]);
    let frame = ServerFrame::new(ServerMessage::DaveMlsExternalSender(vec![1]));
    assert_eq!(bytes_of(&frame.encode()), [0, 0, 25, 1]);
}

// ---- unknown and ignored ----

#[test]
fn unknown_opcode_99_is_not_an_error() {
    let input = r#"{"op":99,"d":{"anything":[1,2,{"x":null}]},"seq":12}"#;
    let frame = ServerFrame::decode_text(input).unwrap();
    assert_eq!(frame.seq, Some(12));
    let ServerMessage::Unknown { op, raw } = &frame.message else {
        panic!("expected Unknown, got {:?}", frame.message)
    };
    assert_eq!(*op, 99);
    assert_eq!(json(raw), json(r#"{"anything":[1,2,{"x":null}]}"#));
    assert_eq!(json(text_of(&frame.encode())), json(input));
    assert_eq!(frame.message.opcode(), None);
    assert_eq!(frame.message.op(), 99);

    let client = ClientMessage::decode_text(r#"{"op":99}"#).unwrap();
    assert_eq!(
        client,
        ClientMessage::Unknown {
            op: 99,
            raw: "null".into()
        }
    );

    let frame = ServerFrame::decode_binary(&[0, 7, 99, 1, 2, 3]).unwrap();
    assert_eq!(frame.seq, Some(7));
    assert_eq!(
        frame.message,
        ServerMessage::UnknownBinary {
            op: 99,
            payload: vec![1, 2, 3]
        }
    );
    assert_eq!(bytes_of(&frame.encode()), [0, 7, 99, 1, 2, 3]);

    let client = ClientMessage::decode_binary(&[99, 4]).unwrap();
    assert_eq!(
        client,
        ClientMessage::UnknownBinary {
            op: 99,
            payload: vec![4]
        }
    );
    assert_eq!(bytes_of(&client.encode()), [99, 4]);
}

#[test]
fn known_but_unused_ops_are_ignored() {
    for (input, op) in [
        (r#"{"op":10,"d":{}}"#, Opcode::Video),
        (
            r#"{"op":12,"d":{"user_id":"1","audio_ssrc":2,"video_ssrc":0}}"#,
            Opcode::ClientConnect,
        ),
        (
            r#"{"op":14,"d":{"audio_codec":"opus"}}"#,
            Opcode::SessionUpdate,
        ),
        (r#"{"op":15,"d":{"any":100}}"#, Opcode::MediaSinkWants),
        (
            r#"{"op":16,"d":{"voice":"0.9.2","rtc_worker":"0.4.1"}}"#,
            Opcode::VoiceBackendVersion,
        ),
        (r#"{"op":17,"d":null}"#, Opcode::ChannelOptionsUpdate),
        (
            r#"{"op":18,"d":{"user_id":"1","flags":2},"seq":3}"#,
            Opcode::ClientFlags,
        ),
        (r#"{"op":19,"d":{}}"#, Opcode::SpeedTest),
        (
            r#"{"op":20,"d":{"user_id":"1","platform":0}}"#,
            Opcode::ClientPlatform,
        ),
        (r#"{"op":0,"d":{}}"#, Opcode::Identify),
        (r#"{"op":32,"d":{}}"#, Opcode::NoRoute),
    ] {
        let frame = ServerFrame::decode_text(input).unwrap();
        assert_eq!(frame.message, ServerMessage::Ignored { op }, "{input}");
    }
    assert_eq!(
        ClientMessage::decode_text(r#"{"op":16,"d":{}}"#).unwrap(),
        ClientMessage::Ignored {
            op: Opcode::VoiceBackendVersion
        }
    );
    // A server-sent op 3 asks for an immediate heartbeat.
    let frame = ServerFrame::decode_text(r#"{"op":3,"d":null}"#).unwrap();
    assert_eq!(frame.message, ServerMessage::HeartbeatRequest);
}

// ---- errors ----

#[test]
fn envelope_errors_say_what_was_expected() {
    let cases: [(&str, DecodeError); 8] = [
        (
            "",
            DecodeError::NotJson {
                detail: "EOF while parsing a value at line 1 column 0".into(),
            },
        ),
        (
            "[1,2,3]",
            DecodeError::NotAnObject {
                found: "an array of 3 elements".into(),
            },
        ),
        (r#"{"d":{}}"#, DecodeError::MissingField { field: "op" }),
        (
            r#"{"op":"2"}"#,
            DecodeError::InvalidOpcode {
                found: "a string of 1 byte".into(),
            },
        ),
        (
            r#"{"op":300}"#,
            DecodeError::InvalidOpcode {
                found: "the number 300".into(),
            },
        ),
        (
            r#"{"op":-1}"#,
            DecodeError::InvalidOpcode {
                found: "the number -1".into(),
            },
        ),
        (
            r#"{"op":2}"#,
            DecodeError::MissingPayload { op: Opcode::Ready },
        ),
        (
            r#"{"op":25,"d":{}}"#,
            DecodeError::ExpectedBinary {
                op: Opcode::DaveMlsExternalSender,
            },
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(ServerFrame::decode_text(input), Err(expected), "{input:?}");
    }
    let error =
        ServerFrame::decode_text(r#"{"op":2,"d":{"ssrc":"x","ip":"1","port":1,"modes":[]}}"#)
            .unwrap_err();
    assert!(
        matches!(&error, DecodeError::InvalidPayload { op: Opcode::Ready, detail } if detail.contains("expected u32")),
        "{error:?}"
    );
    let error = ServerFrame::decode_text(r#"{"op":2,"d":[1]}"#).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid payload for op Ready (2): expected an object, found an array of 1 element"
    );
}

#[test]
fn weird_seq_is_ignored_not_fatal() {
    for seq in ["-1", "1.5", "\"7\"", "null", "[]", "18446744073709551616"] {
        let input = format!(r#"{{"op":6,"d":{{"t":1}},"seq":{seq}}}"#);
        let frame = ServerFrame::decode_text(&input).expect(&input);
        assert_eq!(frame.seq, None, "{input}");
        assert_eq!(
            frame.message,
            ServerMessage::HeartbeatAck(HeartbeatAck { t: 1 })
        );
    }
}

#[test]
fn binary_errors_say_what_was_expected() {
    assert_eq!(
        ServerFrame::decode_binary(&[]),
        Err(DecodeError::EmptyFrame)
    );
    assert_eq!(
        ClientMessage::decode_binary(&[]),
        Err(DecodeError::EmptyFrame)
    );
    assert_eq!(
        ServerFrame::decode_binary(&[0, 1]),
        Err(DecodeError::TooShort {
            what: "the [seq u16][op u8] prefix",
            needed: 3,
            actual: 2
        })
    );
    assert_eq!(
        ServerFrame::decode_binary(&[0, 1, 27]),
        Err(DecodeError::TooShort {
            what: "the op 27 operation byte",
            needed: 4,
            actual: 3
        })
    );
    assert_eq!(
        ServerFrame::decode_binary(&[0, 1, 29, 7]),
        Err(DecodeError::TooShort {
            what: "the op 29 transition id",
            needed: 5,
            actual: 4
        })
    );
    assert_eq!(
        ServerFrame::decode_binary(&[0, 1, 30]),
        Err(DecodeError::TooShort {
            what: "the op 30 transition id",
            needed: 5,
            actual: 3
        })
    );
    assert_eq!(
        ServerFrame::decode_binary(&[0, 1, 2, b'{']),
        Err(DecodeError::ExpectedText { op: Opcode::Ready })
    );
    assert_eq!(
        ServerFrame::decode_binary(&[0, 1, 26]),
        Err(DecodeError::WrongDirection {
            op: Opcode::DaveMlsKeyPackage,
            sent_by: "by the client"
        })
    );
    assert_eq!(
        ClientMessage::decode_binary(&[25, 1]),
        Err(DecodeError::WrongDirection {
            op: Opcode::DaveMlsExternalSender,
            sent_by: "by the server"
        })
    );
    assert_eq!(
        ClientMessage::decode_binary(&[0]),
        Err(DecodeError::ExpectedText {
            op: Opcode::Identify
        })
    );
    assert_eq!(
        ClientMessage::decode_text(r#"{"op":26,"d":null}"#),
        Err(DecodeError::ExpectedBinary {
            op: Opcode::DaveMlsKeyPackage
        })
    );
    let message = ServerFrame::decode_binary(&[0, 1]).unwrap_err().to_string();
    assert_eq!(
        message,
        "binary frame too short for the [seq u16][op u8] prefix: expected at least 3 bytes, found 2"
    );
}

// ---- secrets stay out of Debug and errors ----

#[test]
fn debug_never_shows_secrets() {
    let identify = Identify {
        server_id: GuildId(1),
        user_id: UserId(2),
        session_id: "session".into(),
        token: Token::new("super-secret-token-value"),
        max_dave_protocol_version: 1,
    };
    let shown = format!("{identify:?} {:?}", ClientMessage::from(identify.clone()));
    assert!(!shown.contains("super-secret-token-value"), "{shown}");
    assert!(shown.contains("<redacted>"));

    let encoded = ClientMessage::from(identify).encode();
    assert!(text_of(&encoded).contains("super-secret-token-value"));
    let shown = format!("{encoded:?}");
    assert!(!shown.contains("super-secret-token-value"), "{shown}");

    let resume = Resume {
        server_id: GuildId(1),
        session_id: "session".into(),
        token: Token::new("super-secret-token-value"),
        seq_ack: 1,
    };
    assert!(!format!("{resume:?}").contains("super-secret-token-value"));

    let description = SessionDescription {
        mode: "aead_aes256_gcm_rtpsize".into(),
        secret_key: SecretKey::new([0xAB; 32]),
        dave_protocol_version: 1,
    };
    let shown = format!("{description:?}");
    assert!(!shown.contains("171") && !shown.contains("AB") && !shown.contains("ab,"));
}

#[test]
fn token_errors_never_echo_the_token() {
    for input in [
        r#"{"op":0,"d":{"server_id":"1","user_id":"2","session_id":"s","token":987654321987,"max_dave_protocol_version":1}}"#,
        r#"{"op":7,"d":{"server_id":"1","session_id":"s","token":987654321987,"seq_ack":1}}"#,
        r#"{"op":7,"d":{"server_id":"1","session_id":"s","token":[987654321987],"seq_ack":1}}"#,
    ] {
        let error = ClientMessage::decode_text(input).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("field `token`: expected a string"),
            "{message}"
        );
        assert!(!message.contains("987654321987"), "{message}");
    }
    // A payload that is not an object is described, not quoted.
    let error = ClientMessage::decode_text(r#"{"op":0,"d":"my-token-987"}"#).unwrap_err();
    assert!(!error.to_string().contains("my-token-987"));
}

// ---- opcode table ----

#[test]
fn opcode_table() {
    for value in 0..=32u8 {
        let op = Opcode::from_u8(value).expect("0..=32 are known");
        assert_eq!(op.as_u8(), value);
        assert_eq!(u8::from(op), value);
    }
    for value in 33..=255u8 {
        assert_eq!(Opcode::from_u8(value), None);
    }
    assert_eq!(Opcode::ALL.len(), 33);
    assert_eq!(Opcode::from_u8(4), Some(Opcode::SessionDescription));
    assert_eq!(Opcode::from_u8(10), Some(Opcode::Video));
    assert_eq!(
        Opcode::from_u8(29),
        Some(Opcode::DaveMlsAnnounceCommitTransition)
    );
    assert_eq!(Opcode::from_u8(32), Some(Opcode::NoRoute));
    assert_eq!(Opcode::Hello.to_string(), "Hello (8)");
    let binary: Vec<u8> = Opcode::ALL
        .iter()
        .filter(|op| op.is_binary())
        .map(|op| op.as_u8())
        .collect();
    assert_eq!(binary, [25, 26, 27, 28, 29, 30]);
}

#[test]
fn speaking_flags() {
    let flags = SpeakingFlags::MICROPHONE | SpeakingFlags::PRIORITY;
    assert_eq!(flags.bits(), 5);
    assert!(flags.contains(SpeakingFlags::MICROPHONE));
    assert!(flags.contains(SpeakingFlags::PRIORITY));
    assert!(!flags.contains(SpeakingFlags::SOUNDSHARE));
    assert!(flags.contains(SpeakingFlags::NONE));
    assert_eq!(format!("{flags:?}"), "SpeakingFlags(MICROPHONE | PRIORITY)");
    assert_eq!(format!("{:?}", SpeakingFlags::NONE), "SpeakingFlags(NONE)");
    assert_eq!(
        format!("{:?}", SpeakingFlags::from_bits(0x12)),
        "SpeakingFlags(SOUNDSHARE | 0x10)"
    );
    assert_eq!(serde_json::to_string(&flags).unwrap(), "5");
    assert_eq!(
        serde_json::from_str::<SpeakingFlags>("2").unwrap(),
        SpeakingFlags::SOUNDSHARE
    );
    assert_eq!(
        serde_json::from_str::<SpeakingFlags>("false").unwrap(),
        SpeakingFlags::NONE
    );
    assert!(serde_json::from_str::<SpeakingFlags>("-1").is_err());
    assert!(serde_json::from_str::<SpeakingFlags>("4294967296").is_err());
    let mut flags = SpeakingFlags::NONE;
    flags |= SpeakingFlags::SOUNDSHARE;
    assert_eq!(flags, SpeakingFlags::SOUNDSHARE);
}
