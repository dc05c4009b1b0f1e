//! Property tests over the fuzz targets' invariants, cheap enough for every CI run.
//!
//! The same target bodies as `cargo fuzz` (`fuzz/src/targets/`), fed by proptest instead of
//! libFuzzer: scripted sessions that first complete a handshake and then do anything (the
//! [`targets::Driver`] checks, after every step, that nothing panics, counters only move forward,
//! no audio goes out before Session Description, every output is well-formed and the close-code
//! table is respected); playout scripts (queue, polls, time, holds) against the model's playout
//! rules; frames in every connection state; datagrams in every negotiated mode; and
//! decode -> encode -> decode stability. `engine_properties.rs` covers raw input sequences without
//! a model; these add the model's oracles.

#[path = "../../fuzz/src/targets/mod.rs"]
#[allow(dead_code)]
mod targets;

#[path = "../../fuzz/src/jitter_buffer.rs"]
#[allow(dead_code)]
mod jitter_buffer;

use proptest::prelude::*;
use targets::{ScriptConfig, ServerText, ServerUpdate, SessionScript, StateUpdate, Step};

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

/// Playout scripts: a handshake (default or small queue), then steps that are mostly
/// `queue_opus`, polls and time, with stops, speaking flags, resumes (whole or cut short) and fresh
/// reconnects among them, so that the model's playout invariants meet late polls, holds and
/// spurt ends far more often than in byte-level scripts.
fn playout_script() -> impl Strategy<Value = SessionScript> {
    let hello = || Step::Text {
        message: ServerText::Hello { quarter_ms: 4000 },
        numbered: false,
    };
    let numbered = |message| Step::Text {
        message,
        numbered: true,
    };
    let chunk = prop_oneof![
        6 => (0u16..1400, any::<u8>(), any::<bool>()).prop_map(|(len, fill, queue_only)| {
            vec![Step::QueueOpus { len, fill, queue_only }]
        }),
        5 => Just(vec![Step::PollTransmit]),
        3 => (0u16..260).prop_map(|ms| vec![Step::Advance(ms)]),
        3 => Just(vec![Step::AdvanceToWake]),
        1 => Just(vec![Step::StopSpeaking]),
        1 => (0u32..8).prop_map(|flags| vec![Step::Speaking(flags)]),
        1 => Just(vec![Step::ServerClose(Some(4015))]),
        1 => Just(vec![
            Step::ServerClose(Some(4015)),
            Step::Opened,
            hello(),
            numbered(ServerText::Resumed),
        ]),
        1 => Just({
            let mut steps = vec![Step::ServerClose(Some(4006))];
            steps.extend(targets::handshake_steps(0b0011));
            steps
        }),
    ];
    (
        any::<u64>(),
        prop_oneof![Just(0u8), Just(0b1_0000)],
        proptest::collection::vec(chunk, 0..60),
    )
        .prop_map(|(rtp_seed, flags, chunks)| {
            let mut steps = targets::handshake_steps(0b0011);
            steps.extend(chunks.into_iter().flatten());
            steps.truncate(targets::MAX_STEPS);
            SessionScript {
                config: ScriptConfig { rtp_seed, flags },
                steps,
            }
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
    fn playout_scripts_keep_every_invariant(script in playout_script()) {
        targets::session(script);
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
