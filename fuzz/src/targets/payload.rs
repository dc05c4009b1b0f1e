//! Decoder checks and decode -> encode -> decode round trips (the [`payload_roundtrip`](super::payload_roundtrip)
//! target and the decoding half of the frame targets), with generators of messages of every opcode.

use super::*;

pub(super) fn check_text_decoders(text: &str) {
    if let Ok(frame) = ServerFrame::decode_text(text) {
        assert!(
            !frame.message.is_binary(),
            "a text frame decoded to a binary message"
        );
    }
    let _ = ClientMessage::decode_text(text);
    let _ = VoiceStateDispatch::from_dispatch_json(text);
    let _ = VoiceServerDispatch::from_dispatch_json(text);
    if let Ok(url) = voice_gateway_url(text) {
        assert!(url.starts_with("wss://") || url.starts_with("ws://"));
        assert!(url.contains("v="), "URL without a version: {url}");
    }
}

pub(super) fn check_binary_decoders(data: &[u8]) {
    match ServerFrame::decode_binary(data) {
        Ok(frame) => {
            assert!(
                frame.message.is_binary(),
                "a binary frame decoded to a JSON message"
            );
            assert_eq!(
                frame.seq,
                Some(u64::from(u16::from_be_bytes([data[0], data[1]])))
            );
            assert_eq!(
                frame.encode(),
                Encoded::Binary(data.to_vec()),
                "binary re-encoding differs"
            );
        }
        Err(_) => {
            if data.len() >= 3 {
                let op = Opcode::from_u8(data[2]);
                assert!(
                    op.is_some(),
                    "an unknown binary opcode must not be an error (C31)"
                );
            }
        }
    }
    if let Ok(message) = ClientMessage::decode_binary(data) {
        assert_eq!(message.encode(), Encoded::Binary(data.to_vec()));
    }
}

pub(super) fn check_datagram_parsers(data: &[u8]) {
    let kind = classify(data);
    if let Ok(found) = parse_discovery_response(data) {
        assert_eq!(data.len(), 74);
        assert_eq!(kind, PacketKind::Discovery);
        let rebuilt = discovery_response(found.ssrc, found.ip, found.port);
        assert_eq!(parse_discovery_response(&rebuilt), Ok(found));
    }
    if let Ok(ssrc) = parse_discovery_request(data) {
        assert_eq!(data.len(), 74);
        assert_eq!(parse_discovery_request(&discovery_request(ssrc)), Ok(ssrc));
    }
    if kind == PacketKind::Rtp {
        assert!(data.len() >= RTP_HEADER_LEN);
    }
    if let Ok(header) = ReceivedRtp::parse(data) {
        assert!(header.aad_len <= data.len(), "AAD beyond the packet");
        for &mode in EncryptionMode::ALL {
            let cipher = TransportCipher::new(mode, &SecretKey::new(KEY));
            let mut copy = data.to_vec();
            if let Ok(range) = cipher.open(&mut copy, header.aad_len) {
                let plain = copy
                    .get(range)
                    .expect("open returns a range inside the packet");
                let _ = header.payload(plain);
            }
            // Seal the plaintext ourselves and open it again: the same bytes must come back.
            let plain = &data[header.aad_len..];
            let mut sealed = data.to_vec();
            sealed.resize(data.len() + mode.overhead(), 0);
            cipher
                .seal(&mut sealed, header.aad_len, plain.len(), 1)
                .expect("sealing fits the buffer");
            let range = cipher
                .open(&mut sealed, header.aad_len)
                .expect("own packet opens");
            assert_eq!(&sealed[range], plain, "seal/open round trip differs");
            if let Ok(opus) = header.payload(plain) {
                assert!(opus.len() <= plain.len());
            }
        }
    }
    for &mode in EncryptionMode::ALL {
        let cipher = TransportCipher::new(mode, &SecretKey::new(KEY));
        for aad_len in [0, 8, RTP_HEADER_LEN, data.len(), usize::MAX] {
            let mut copy = data.to_vec();
            if let Ok(range) = cipher.open(&mut copy, aad_len) {
                assert!(range.end <= copy.len());
            }
        }
    }
}

pub(super) fn roundtrip_text(text: &str) {
    if let Ok(first) = ServerFrame::decode_text(text) {
        roundtrip_server_frame_decoded(first);
    }
    if let Ok(first) = ClientMessage::decode_text(text) {
        let Encoded::Text(encoded) = first.encode() else {
            panic!("a decoded client text message re-encoded as binary");
        };
        let second = ClientMessage::decode_text(&encoded)
            .unwrap_or_else(|e| panic!("re-encoded client message does not decode: {e}"));
        assert!(
            same_client_message(&second, &first),
            "client text decode -> encode -> decode differs: {first:?} -> {second:?}"
        );
    }
}

pub(super) fn roundtrip_binary(data: &[u8]) {
    if let Ok(first) = ServerFrame::decode_binary(data) {
        roundtrip_server_frame_decoded(first);
    }
    if let Ok(first) = ClientMessage::decode_binary(data) {
        roundtrip_client_message(&first);
    }
}

/// A frame that came out of a decoder must survive encode -> decode unchanged.
pub(super) fn roundtrip_server_frame_decoded(first: ServerFrame) {
    let encoded = first.encode();
    let second = decode_server(&encoded)
        .unwrap_or_else(|e| panic!("re-encoded server frame does not decode: {e}"));
    assert!(
        same_server_frame(&second, &first),
        "server decode -> encode -> decode differs: {first:?} -> {second:?}"
    );
}

/// Equality, except that floats (a Hello interval, numbers inside an unknown opcode's raw JSON)
/// may move by a few units in the last place: serde_json without its `float_roundtrip` feature
/// parses some 16- and 17-digit decimals a few ULP off. Intervals with up to 15 significant
/// digits, i.e. every real one, round-trip exactly.
pub(super) fn same_server_frame(a: &ServerFrame, b: &ServerFrame) -> bool {
    match (&a.message, &b.message) {
        (ServerMessage::Hello(x), ServerMessage::Hello(y)) => {
            a.seq == b.seq && x.v == y.v && floats_close(x.heartbeat_interval, y.heartbeat_interval)
        }
        (ServerMessage::Unknown { op: x, raw: r }, ServerMessage::Unknown { op: y, raw: s }) => {
            a.seq == b.seq && x == y && json_close(r, s)
        }
        _ => a == b,
    }
}

/// Equality with the same float tolerance for an unknown opcode's raw JSON.
pub(super) fn same_client_message(a: &ClientMessage, b: &ClientMessage) -> bool {
    match (a, b) {
        (ClientMessage::Unknown { op: x, raw: r }, ClientMessage::Unknown { op: y, raw: s }) => {
            x == y && json_close(r, s)
        }
        _ => a == b,
    }
}

pub(super) fn floats_close(x: f64, y: f64) -> bool {
    x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-14
}

pub(super) fn json_close(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(x), Ok(y)) => values_close(&x, &y),
        _ => a == b,
    }
}

pub(super) fn values_close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            matches!((x.as_f64(), y.as_f64()), (Some(x), Some(y)) if floats_close(x, y))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| values_close(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, v)| y.get(key).is_some_and(|w| values_close(v, w)))
        }
        _ => a == b,
    }
}

pub(super) fn decode_server(
    encoded: &Encoded,
) -> Result<ServerFrame, voice_proto::payload::DecodeError> {
    match encoded {
        Encoded::Text(text) => ServerFrame::decode_text(text),
        Encoded::Binary(bytes) => ServerFrame::decode_binary(bytes),
    }
}

/// A generated server message: encode -> decode gives it back (binary frames carry a u16 seq,
/// ops the client ignores lose their payload), and a second round is stable.
pub(super) fn roundtrip_server_frame(frame: ServerFrame) {
    let encoded = frame.encode();
    let first = decode_server(&encoded).unwrap_or_else(|e| {
        panic!(
            "our encoding of {:?} does not decode: {e}",
            frame.message.op()
        )
    });
    let expected_seq = if frame.message.is_binary() {
        Some(frame.seq.unwrap_or(0) & 0xFFFF)
    } else {
        frame.seq
    };
    assert_eq!(first.seq, expected_seq);
    assert_eq!(
        first.message, frame.message,
        "server encode -> decode differs"
    );
    roundtrip_server_frame_decoded(first);
}

pub(super) fn roundtrip_client_message(message: &ClientMessage) {
    let encoded = message.encode();
    let decoded = match &encoded {
        Encoded::Text(text) => ClientMessage::decode_text(text),
        Encoded::Binary(bytes) => ClientMessage::decode_binary(bytes),
    }
    .unwrap_or_else(|e| {
        panic!(
            "our encoding of client op {} does not decode: {e}",
            message.op()
        )
    });
    assert_eq!(&decoded, message, "client encode -> decode differs");
    assert_eq!(
        decoded.encode(),
        encoded,
        "client re-encoding is not stable"
    );
}

pub(super) fn roundtrip_dispatches(text: &str) {
    if let Ok(first) = VoiceStateDispatch::from_dispatch_json(text) {
        let json = serde_json::to_string(&first).expect("a dispatch serializes");
        let second =
            VoiceStateDispatch::from_dispatch_json(&json).expect("re-encoded state parses");
        assert_eq!(second, first);
    }
    if let Ok(first) = VoiceServerDispatch::from_dispatch_json(text) {
        let json = serde_json::to_string(&first).expect("a dispatch serializes");
        let second =
            VoiceServerDispatch::from_dispatch_json(&json).expect("re-encoded server parses");
        assert_eq!(second, first);
    }
}

pub(super) fn arb_string(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    let len = u.int_in_range(0..=24)?;
    let bytes = u.bytes(len.min(u.len()))?;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

pub(super) fn arb_bytes(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>> {
    let len = u.int_in_range(0..=64)?;
    Ok(u.bytes(len.min(u.len()))?.to_vec())
}

pub(super) fn arb_raw_json(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    Ok(match u.int_in_range(0..=3)? {
        0 => "null".to_owned(),
        1 => u64::arbitrary(u)?.to_string(),
        2 => format!(r#"{{"x":{}}}"#, i32::arbitrary(u)?),
        _ => serde_json::Value::String(arb_string(u)?).to_string(),
    })
}

pub(super) fn arb_interval(u: &mut Unstructured<'_>) -> arbitrary::Result<f64> {
    // Milliseconds with microsecond precision: what a server can mean, and exact through JSON.
    Ok(f64::from(u32::arbitrary(u)?) / 1000.0)
}

/// A server frame for an opcode chosen by the input, with generated fields.
pub(super) fn arb_server_message(u: &mut Unstructured<'_>) -> arbitrary::Result<ServerFrame> {
    let op = u8::arbitrary(u)?;
    let message = match Opcode::from_u8(op) {
        Some(Opcode::Ready) => ServerMessage::Ready(Ready {
            ssrc: u32::arbitrary(u)?,
            ip: arb_string(u)?,
            port: u16::arbitrary(u)?,
            modes: vec![arb_string(u)?, arb_string(u)?],
        }),
        Some(Opcode::SessionDescription) => ServerMessage::SessionDescription(SessionDescription {
            mode: arb_string(u)?,
            secret_key: SecretKey::new(<[u8; 32]>::arbitrary(u)?),
            dave_protocol_version: u16::arbitrary(u)?,
        }),
        Some(Opcode::Speaking) => ServerMessage::Speaking(Speaking {
            speaking: SpeakingFlags::from_bits(u32::arbitrary(u)?),
            delay: u32::arbitrary(u)?,
            ssrc: u32::arbitrary(u)?,
            user_id: Option::<u64>::arbitrary(u)?.map(UserId),
        }),
        Some(Opcode::HeartbeatAck) => ServerMessage::HeartbeatAck(HeartbeatAck {
            t: u64::arbitrary(u)?,
        }),
        Some(Opcode::Hello) => ServerMessage::Hello(Hello {
            heartbeat_interval: arb_interval(u)?,
            v: Option::<u8>::arbitrary(u)?,
        }),
        Some(Opcode::Resumed) => ServerMessage::Resumed,
        Some(Opcode::Heartbeat) => ServerMessage::HeartbeatRequest,
        Some(Opcode::ClientsConnect) => ServerMessage::ClientsConnect(ClientsConnect {
            user_ids: vec![UserId(u64::arbitrary(u)?); usize::from(u8::arbitrary(u)? % 4)],
        }),
        Some(Opcode::ClientDisconnect) => ServerMessage::ClientDisconnect(ClientDisconnect {
            user_id: UserId(u64::arbitrary(u)?),
        }),
        Some(Opcode::DavePrepareTransition) => {
            ServerMessage::DavePrepareTransition(DavePrepareTransition {
                protocol_version: u16::arbitrary(u)?,
                transition_id: u16::arbitrary(u)?,
            })
        }
        Some(Opcode::DaveExecuteTransition) => {
            ServerMessage::DaveExecuteTransition(DaveExecuteTransition {
                transition_id: u16::arbitrary(u)?,
            })
        }
        Some(Opcode::DavePrepareEpoch) => ServerMessage::DavePrepareEpoch(DavePrepareEpoch {
            protocol_version: u16::arbitrary(u)?,
            epoch: u64::arbitrary(u)?,
        }),
        Some(Opcode::DaveMlsExternalSender) => ServerMessage::DaveMlsExternalSender(arb_bytes(u)?),
        Some(Opcode::DaveMlsProposals) => ServerMessage::DaveMlsProposals {
            operation: ProposalsOperation::from_u8(u8::arbitrary(u)?),
            proposals: arb_bytes(u)?,
        },
        Some(Opcode::DaveMlsAnnounceCommitTransition) => {
            ServerMessage::DaveMlsAnnounceCommitTransition {
                transition_id: u16::arbitrary(u)?,
                commit: arb_bytes(u)?,
            }
        }
        Some(Opcode::DaveMlsWelcome) => ServerMessage::DaveMlsWelcome {
            transition_id: u16::arbitrary(u)?,
            welcome: arb_bytes(u)?,
        },
        // Client-only binary opcodes cannot come from the server.
        Some(Opcode::DaveMlsKeyPackage | Opcode::DaveMlsCommitWelcome) => {
            ServerMessage::UnknownBinary {
                op: 33u8.saturating_add(op),
                payload: arb_bytes(u)?,
            }
        }
        Some(other) => ServerMessage::Ignored { op: other },
        None if bool::arbitrary(u)? => ServerMessage::Unknown {
            op,
            raw: arb_raw_json(u)?,
        },
        None => ServerMessage::UnknownBinary {
            op,
            payload: arb_bytes(u)?,
        },
    };
    Ok(ServerFrame {
        seq: Option::<u64>::arbitrary(u)?,
        message,
    })
}

/// A client message for an opcode chosen by the input, with generated fields.
pub(super) fn arb_client_message(u: &mut Unstructured<'_>) -> arbitrary::Result<ClientMessage> {
    let op = u8::arbitrary(u)?;
    Ok(match Opcode::from_u8(op) {
        Some(Opcode::Identify) => ClientMessage::Identify(Identify {
            server_id: GuildId(u64::arbitrary(u)?),
            user_id: UserId(u64::arbitrary(u)?),
            session_id: arb_string(u)?,
            token: Token::new(arb_string(u)?),
            max_dave_protocol_version: u16::arbitrary(u)?,
        }),
        Some(Opcode::SelectProtocol) => ClientMessage::SelectProtocol(SelectProtocol::udp(
            arb_string(u)?,
            u16::arbitrary(u)?,
            arb_string(u)?,
        )),
        Some(Opcode::Heartbeat) => ClientMessage::Heartbeat(Heartbeat {
            t: u64::arbitrary(u)?,
            seq_ack: i64::arbitrary(u)?,
        }),
        Some(Opcode::Speaking) => ClientMessage::Speaking(Speaking {
            speaking: SpeakingFlags::from_bits(u32::arbitrary(u)?),
            delay: u32::arbitrary(u)?,
            ssrc: u32::arbitrary(u)?,
            user_id: None,
        }),
        Some(Opcode::Resume) => ClientMessage::Resume(Resume {
            server_id: GuildId(u64::arbitrary(u)?),
            session_id: arb_string(u)?,
            token: Token::new(arb_string(u)?),
            seq_ack: i64::arbitrary(u)?,
        }),
        Some(Opcode::DaveTransitionReady) => {
            ClientMessage::DaveTransitionReady(DaveTransitionReady {
                transition_id: u16::arbitrary(u)?,
            })
        }
        Some(Opcode::DaveMlsInvalidCommitWelcome) => {
            ClientMessage::DaveMlsInvalidCommitWelcome(DaveMlsInvalidCommitWelcome {
                transition_id: u16::arbitrary(u)?,
            })
        }
        Some(Opcode::DaveMlsKeyPackage) => ClientMessage::DaveMlsKeyPackage(arb_bytes(u)?),
        Some(Opcode::DaveMlsCommitWelcome) => ClientMessage::DaveMlsCommitWelcome(arb_bytes(u)?),
        // Server-only binary opcodes cannot come from the client.
        Some(other) if other.is_binary() => ClientMessage::UnknownBinary {
            op: 33u8.saturating_add(op),
            payload: arb_bytes(u)?,
        },
        Some(other) => ClientMessage::Ignored { op: other },
        None if bool::arbitrary(u)? => ClientMessage::Unknown {
            op,
            raw: arb_raw_json(u)?,
        },
        None => ClientMessage::UnknownBinary {
            op,
            payload: arb_bytes(u)?,
        },
    })
}
