//! Property tests over the fuzz targets' invariants, cheap enough for every CI run.
//!
//! The same target bodies as `cargo fuzz` (`fuzz/src/targets.rs`), fed by proptest instead of
//! libFuzzer: scripted sessions that first complete a handshake and then do anything (the
//! [`targets::Driver`] checks, after every step, that nothing panics, counters only move forward,
//! no audio goes out before Session Description, every output is well-formed and the close-code
//! table is respected); frames in every connection state; datagrams in every negotiated mode; and
//! decode -> encode -> decode stability. `engine_properties.rs` covers raw input sequences without
//! a model; these add the model's oracles.

#[path = "../../fuzz/src/targets.rs"]
#[allow(dead_code)]
mod targets;

use proptest::prelude::*;
use targets::{ScriptConfig, ServerUpdate, SessionScript, StateUpdate, Step};

/// A script's bytes: settings, a scripted prefix (nothing, the first dispatches, or a whole
/// handshake in one of the modes), then arbitrary steps. Every byte string is a valid script.
fn script_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u64>(),
        any::<u8>(),
        0usize..4,
        proptest::collection::vec(any::<u8>(), 0..400),
    )
        .prop_map(|(rtp_seed, flags, prefix, tail)| {
            let steps = match prefix {
                0 => Vec::new(),
                1 => vec![
                    Step::StateUpdate(StateUpdate::Joined(1)),
                    Step::ServerUpdate(ServerUpdate::Endpoint(1)),
                    Step::Opened,
                ],
                2 => targets::handshake_steps(0b0001),
                _ => targets::handshake_steps(0b0010),
            };
            let mut bytes = SessionScript {
                config: ScriptConfig { rtp_seed, flags },
                steps,
            }
            .to_bytes();
            bytes.extend(tail);
            bytes
        })
}

/// JSON-shaped text: a known opcode with a plausible or garbled payload, or any string.
fn gateway_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            0u16..40,
            any::<u8>(),
            "[a-z_]{0,12}",
            any::<i64>(),
            any::<bool>()
        )
            .prop_map(|(op, shape, key, number, numbered)| {
                let d = match shape % 6 {
                    0 => "null".to_owned(),
                    1 => format!(r#"{{"{key}":{number}}}"#),
                    2 => format!(r#"{{"heartbeat_interval":{number}}}"#),
                    3 => format!(
                        r#"{{"ssrc":{number},"ip":"127.0.0.1","port":50001,"modes":["{key}"]}}"#
                    ),
                    4 => format!(r#"{{"mode":"{key}","secret_key":[{number}]}}"#),
                    _ => format!(r#"{{"user_id":"{number}","ssrc":1,"speaking":1}}"#),
                };
                let seq = if numbered {
                    format!(r#","seq":{number}"#)
                } else {
                    String::new()
                };
                format!(r#"{{"op":{op},"d":{d}{seq}}}"#)
            }),
        any::<String>(),
    ]
}

/// RTP-shaped datagrams (version 2, Opus, optional CSRCs, extension and padding bits) and any
/// bytes, including 74-byte discovery-sized ones.
fn datagram() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (
            any::<u8>(),
            any::<[u8; 10]>(),
            proptest::collection::vec(any::<u8>(), 0..80)
        )
            .prop_map(|(bits, header, rest)| {
                let mut packet = vec![0x80 | (bits & 0x3F), 0x78 | (bits & 0x80)];
                packet.extend_from_slice(&header);
                packet.extend(rest);
                packet
            }),
        proptest::collection::vec(any::<u8>(), 74..=74).prop_map(|mut packet| {
            packet[..4].copy_from_slice(&[0, 2, 0, 70]);
            packet
        }),
        proptest::collection::vec(any::<u8>(), 0..120),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn scripted_sessions_keep_every_invariant(bytes in script_bytes()) {
        targets::session_bytes(&bytes);
    }

    #[test]
    fn text_frames_in_every_state_keep_every_invariant(text in gateway_text()) {
        targets::gateway_text(text.as_bytes());
    }

    #[test]
    fn binary_frames_in_every_state_keep_every_invariant(
        frame in proptest::collection::vec(any::<u8>(), 0..64)
    ) {
        targets::gateway_binary(&frame);
    }

    #[test]
    fn datagrams_in_every_mode_keep_every_invariant(packet in datagram()) {
        targets::udp_datagram(&packet);
    }
}

proptest! {
    // Every case builds a DAVE session (P-256 keys, a key package) and may rebuild it.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn dave_scripts_keep_every_invariant(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        targets::dave_binary(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn decode_encode_decode_is_stable(
        text in gateway_text(),
        bytes in proptest::collection::vec(any::<u8>(), 0..96),
    ) {
        targets::payload_roundtrip(text.as_bytes());
        targets::payload_roundtrip(&bytes);
    }
}
