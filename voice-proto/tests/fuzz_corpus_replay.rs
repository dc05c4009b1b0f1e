//! Replays the fuzz corpus on the stable toolchain.
//!
//! The fuzz target bodies live in `fuzz/src/targets.rs`, included here unchanged, so every file of
//! `fuzz/corpus/<target>/` (seeds, inputs libFuzzer found interesting, and the inputs of every
//! crash ever fixed) runs through exactly the code libFuzzer runs, as part of
//! `cargo test --workspace`. No nightly needed.
//!
//! The seed files are written by the ignored test `write_seed_corpus` from PROTOCOL.md's examples,
//! the golden payloads and scripted sessions: `cargo test -p voice-proto --test fuzz_corpus_replay
//! -- --ignored write_seed_corpus`.

#[path = "../../fuzz/src/targets.rs"]
mod targets;

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use targets::{
    AudioPacket, Driver, ScriptConfig, ServerText, ServerUpdate, SessionScript, StateUpdate, Step,
};
use voice_proto::discovery::{discovery_request, discovery_response};
use voice_proto::id::UserId;
use voice_proto::payload::{
    ClientDisconnect, ClientMessage, ClientsConnect, DaveExecuteTransition, DavePrepareEpoch,
    DavePrepareTransition, DaveTransitionReady, Encoded, Heartbeat, HeartbeatAck, Hello,
    ProposalsOperation, Ready, ServerFrame, ServerMessage, SessionDescription, Speaking,
    SpeakingFlags,
};
use voice_proto::secret::SecretKey;

/// A target body: one input, panics on a broken invariant.
type Target = fn(&[u8]);

/// Every target and its body.
const TARGETS: [(&str, Target); 5] = [
    ("gateway_text", targets::gateway_text),
    ("gateway_binary", targets::gateway_binary),
    ("udp_datagram", targets::udp_datagram),
    ("session", targets::session_bytes),
    ("payload_roundtrip", targets::payload_roundtrip),
];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {} is missing: {e}", dir.display()))
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_replays_through_its_target() {
    let mut failures = Vec::new();
    for (target, body) in TARGETS {
        let files = corpus_files(target);
        assert!(!files.is_empty(), "fuzz/corpus/{target}/ is empty");
        let started = std::time::Instant::now();
        let count = files.len();
        for file in files {
            // A running fuzzer may replace corpus files under our feet.
            let Ok(data) = fs::read(&file) else { continue };
            if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
                failures.push(format!("{target}: {}", file.display()));
            }
        }
        eprintln!("{target}: {count} files in {:?}", started.elapsed());
    }
    assert!(
        failures.is_empty(),
        "corpus inputs that fail: {failures:#?}"
    );
}

#[test]
fn every_seed_is_in_the_corpus() {
    for (target, seeds) in seeds() {
        let dir = corpus_dir(target);
        for (name, bytes) in seeds {
            let path = dir.join(format!("seed-{name}"));
            let on_disk = fs::read(&path).unwrap_or_else(|e| {
                panic!("{} is missing ({e}); run write_seed_corpus", path.display())
            });
            assert_eq!(
                on_disk,
                bytes,
                "{} is stale; run write_seed_corpus",
                path.display()
            );
        }
    }
}

#[test]
fn session_scripts_survive_their_byte_layout() {
    for (name, script) in session_seeds() {
        let bytes = script.to_bytes();
        let read = SessionScript::arbitrary(&mut Unstructured::new(&bytes)).expect("a script");
        assert_eq!(read, script, "seed {name} does not read back");
    }
}

#[test]
fn the_scripted_handshake_reaches_a_live_media_session() {
    let mut driver = Driver::join(
        ScriptConfig {
            rtp_seed: 0,
            flags: 0,
        }
        .config(),
    );
    driver.run(&targets::handshake_steps(0b0011));
    assert!(driver.has_media() && !driver.is_closed());
    // And a whole call on top of it: audio, silence, resume, more audio, leave.
    driver.run(&call_steps());
    assert!(driver.is_closed());
}

#[test]
#[ignore = "writes fuzz/corpus/*/seed-*; run by hand after changing the seeds"]
fn write_seed_corpus() {
    for (target, seeds) in seeds() {
        let dir = corpus_dir(target);
        fs::create_dir_all(&dir).expect("corpus directory");
        for (name, bytes) in seeds {
            fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed written");
        }
    }
}

// ---- seeds ----------------------------------------------------------------------------------

type Seeds = Vec<(String, Vec<u8>)>;

fn seeds() -> Vec<(&'static str, Seeds)> {
    let text = text_seeds();
    let binary = binary_seeds();
    let prefixed = |prefix: &str, seeds: &Seeds| {
        seeds
            .iter()
            .map(|(name, bytes)| (format!("{prefix}-{name}"), bytes.clone()))
            .collect::<Seeds>()
    };
    let mut roundtrip = prefixed("text", &text);
    roundtrip.extend(prefixed("binary", &binary));
    vec![
        ("gateway_text", text),
        ("gateway_binary", binary),
        ("udp_datagram", datagram_seeds()),
        (
            "session",
            session_seeds()
                .into_iter()
                .map(|(name, script)| (name.to_owned(), script.to_bytes()))
                .collect(),
        ),
        ("payload_roundtrip", roundtrip),
    ]
}

fn named<T: Into<Vec<u8>>>(items: Vec<(&str, T)>) -> Seeds {
    items
        .into_iter()
        .map(|(name, bytes)| (name.to_owned(), bytes.into()))
        .collect()
}

const KEY_JSON: &str =
    "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32]";

fn encoded_text(frame: ServerFrame) -> String {
    match frame.encode() {
        Encoded::Text(text) => text,
        Encoded::Binary(_) => unreachable!("JSON seeds only"),
    }
}

/// PROTOCOL.md's examples, the golden payloads' shapes, and one encoding of every server message.
fn text_seeds() -> Seeds {
    let description = format!(
        r#"{{"op":4,"d":{{"mode":"aead_aes256_gcm_rtpsize","secret_key":{KEY_JSON},"dave_protocol_version":1,"media_session_id":"89f1d62f166b948746f7646713d39dbb","audio_codec":"opus"}},"seq":3}}"#
    );
    let mut seeds = named(vec![
        ("hello", r#"{"op":8,"d":{"heartbeat_interval":13750,"v":8}}"#.to_owned()),
        ("hello-fractional", r#"{"op":8,"d":{"heartbeat_interval":41250.5}}"#.to_owned()),
        ("ready-docs", r#"{"op":2,"d":{"ssrc":1,"ip":"127.0.0.1","port":1234,"modes":["aead_aes256_gcm_rtpsize","aead_xchacha20_poly1305_rtpsize","xsalsa20_poly1305"],"heartbeat_interval":1,"experiments":["fixed_keyframe_interval"]},"seq":1}"#.to_owned()),
        ("session-description", description),
        ("select-protocol", r#"{"op":1,"d":{"protocol":"udp","data":{"address":"203.0.113.7","port":50004,"mode":"aead_aes256_gcm_rtpsize"}}}"#.to_owned()),
        ("heartbeat-v8", r#"{"op":3,"d":{"t":1732500000000,"seq_ack":10}}"#.to_owned()),
        ("heartbeat-legacy", r#"{"op":3,"d":1501184119561}"#.to_owned()),
        ("ack-v8", r#"{"op":6,"d":{"t":1501184119561}}"#.to_owned()),
        ("ack-legacy", r#"{"op":6,"d":1501184119561}"#.to_owned()),
        ("speaking-client", r#"{"op":5,"d":{"speaking":1,"delay":0,"ssrc":12345}}"#.to_owned()),
        ("speaking-server", r#"{"op":5,"d":{"user_id":"104694319306248192","ssrc":13,"speaking":1},"seq":4}"#.to_owned()),
        ("speaking-legacy-bool", r#"{"op":5,"d":{"user_id":7,"ssrc":13,"speaking":true}}"#.to_owned()),
        ("identify", r#"{"op":0,"d":{"server_id":"41771983423143937","user_id":"104694319306248192","session_id":"my_session_id","token":"my_token","max_dave_protocol_version":1}}"#.to_owned()),
        ("resume", r#"{"op":7,"d":{"server_id":"41771983423143937","session_id":"my_session_id","token":"my_token","seq_ack":10}}"#.to_owned()),
        ("resumed", r#"{"op":9,"d":null}"#.to_owned()),
        ("clients-connect", r#"{"op":11,"d":{"user_ids":["1234",5678]},"seq":2}"#.to_owned()),
        ("client-disconnect", r#"{"op":13,"d":{"user_id":"1234"},"seq":5}"#.to_owned()),
        ("dave-prepare-transition", r#"{"op":21,"d":{"protocol_version":1,"transition_id":5},"seq":6}"#.to_owned()),
        ("dave-execute-transition", r#"{"op":22,"d":{"transition_id":5},"seq":7}"#.to_owned()),
        ("dave-prepare-epoch", r#"{"op":24,"d":{"protocol_version":1,"epoch":1},"seq":8}"#.to_owned()),
        ("unknown-op", r#"{"op":99,"d":{"anything":[1,2,{"x":null}]},"seq":12}"#.to_owned()),
        ("ignored-op", r#"{"op":16,"d":{"voice":"0.9.2","rtc_worker":"0.4.1"}}"#.to_owned()),
        ("binary-op-in-text", r#"{"op":25,"d":{}}"#.to_owned()),
        ("bad-op", r#"{"op":300}"#.to_owned()),
        ("bad-secret-key", r#"{"op":4,"d":{"mode":"m","secret_key":[1,2,300]}}"#.to_owned()),
        ("token-as-number", r#"{"op":0,"d":{"server_id":"1","user_id":"2","session_id":"s","token":987654321987}}"#.to_owned()),
        ("voice-state-dispatch", r#"{"t":"VOICE_STATE_UPDATE","s":2,"op":0,"d":{"guild_id":"41771983423143937","channel_id":"127121515262115840","user_id":"80351110224678912","session_id":"abc"}}"#.to_owned()),
        ("voice-server-dispatch", r#"{"token":"my_token","guild_id":"41771983423143937","endpoint":"sweetwater-12345.discord.media:2048"}"#.to_owned()),
        ("endpoint", "wss://c-ewr12-283a171b.discord.media:2096/?v=8".to_owned()),
        ("not-json", "{\"op\":8,\"d\":{".to_owned()),
    ]);
    let messages = [
        ServerMessage::Hello(Hello {
            heartbeat_interval: 1.0,
            v: None,
        }),
        ServerMessage::Ready(Ready {
            ssrc: 0x8000_3039,
            ip: "127.0.0.1".into(),
            port: 50001,
            modes: vec!["aead_xchacha20_poly1305_rtpsize".into()],
        }),
        ServerMessage::SessionDescription(SessionDescription {
            mode: "aead_xchacha20_poly1305_rtpsize".into(),
            secret_key: SecretKey::new([7; 32]),
            dave_protocol_version: 0,
        }),
        ServerMessage::HeartbeatAck(HeartbeatAck { t: 1000 }),
        ServerMessage::Speaking(Speaking {
            speaking: SpeakingFlags::MICROPHONE,
            delay: 0,
            ssrc: 0x0102_0304,
            user_id: Some(UserId(12_345_678_901_234_567)),
        }),
        ServerMessage::ClientsConnect(ClientsConnect {
            user_ids: vec![UserId(1), UserId(2)],
        }),
        ServerMessage::ClientDisconnect(ClientDisconnect {
            user_id: UserId(12_345_678_901_234_567),
        }),
        ServerMessage::DavePrepareTransition(DavePrepareTransition {
            protocol_version: 0,
            transition_id: 0,
        }),
        ServerMessage::DaveExecuteTransition(DaveExecuteTransition { transition_id: 3 }),
        ServerMessage::DavePrepareEpoch(DavePrepareEpoch {
            protocol_version: 1,
            epoch: 2,
        }),
        ServerMessage::HeartbeatRequest,
    ];
    for (i, message) in messages.into_iter().enumerate() {
        let text = encoded_text(ServerFrame {
            seq: Some(i as u64 + 1),
            message,
        });
        seeds.push((format!("encoded-{i:02}"), text.into_bytes()));
    }
    seeds
}

/// Server binary frames `[seq u16][op u8][payload]` of every binary opcode, client frames, and
/// the short and wrong-direction cases.
fn binary_seeds() -> Seeds {
    let mut seeds = named(vec![
        (
            "external-sender",
            vec![
                0, 1, 25, 0x40, 0x41, 4, 1, 2, 3, 4, 0, 1, 8, 0, 0, 0, 0, 0, 0, 0, 1,
            ],
        ),
        ("proposals-append", vec![0, 2, 27, 0, 0x40, 0x10, 1, 2, 3]),
        ("proposals-revoke", vec![0, 3, 27, 1, 0x04, 0x03, 1, 2, 3]),
        ("announce-commit", vec![0, 4, 29, 0, 5, 0, 1, 0, 1, 2]),
        ("welcome", vec![0xFF, 0xFF, 30, 0, 7, 0, 1, 0, 3]),
        ("unknown-op", vec![0, 9, 200, 1, 2, 3]),
        ("key-package-from-client", vec![26, 0, 1, 0, 1]),
        ("commit-welcome-from-client", vec![0, 5, 28, 1, 2]),
        ("json-op-in-binary", vec![0, 6, 8, 1]),
        ("proposals-without-operation", vec![0, 7, 27]),
        ("commit-without-transition", vec![0, 8, 29, 1]),
        ("two-bytes", vec![0, 1]),
        ("empty", vec![]),
    ]);
    let client = ClientMessage::DaveMlsKeyPackage(vec![0, 1, 0, 1, 0, 2]);
    if let Encoded::Binary(bytes) = client.encode() {
        seeds.push(("encoded-key-package".to_owned(), bytes));
    }
    let server = ServerFrame {
        seq: Some(10),
        message: ServerMessage::DaveMlsProposals {
            operation: ProposalsOperation::Unknown(9),
            proposals: vec![1; 8],
        },
    };
    if let Encoded::Binary(bytes) = server.encode() {
        seeds.push(("encoded-proposals-unknown-operation".to_owned(), bytes));
    }
    // JSON client messages as binary garbage.
    let heartbeat = ClientMessage::Heartbeat(Heartbeat { t: 5, seq_ack: -1 });
    if let Encoded::Text(text) = heartbeat.encode() {
        seeds.push(("json-as-binary".to_owned(), text.into_bytes()));
    }
    let ready = ClientMessage::DaveTransitionReady(DaveTransitionReady { transition_id: 1 });
    if let Encoded::Text(text) = ready.encode() {
        seeds.push(("json-op-23-as-binary".to_owned(), text.into_bytes()));
    }
    seeds
}

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|byte| u8::from_str_radix(byte, 16).expect("hex byte"))
        .collect()
}

/// PROTOCOL.md 6 and 8.3: discovery packets, the three worked RTP examples, their plaintext
/// forms (for the sealed path), RTCP, keepalives.
fn datagram_seeds() -> Seeds {
    let public = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    let mut bad_address = discovery_response(12345, public, 50004);
    bad_address[8..12].copy_from_slice(b"abcd");
    named(vec![
        ("discovery-request-12345", discovery_request(12345).to_vec()),
        ("discovery-response", discovery_response(0x8000_3039, public, 50004).to_vec()),
        ("discovery-response-ipv6", discovery_response(1, "2001:db8::7".parse().unwrap(), 9).to_vec()),
        ("discovery-response-bad-address", bad_address.to_vec()),
        ("aes-gcm-example", hex("80 78 00 01 00 00 03 c0 00 00 30 39 bc c9 33 52 17 7d 15 56 c7 9e 0e bd e4 2f 85 4c a2 77 51 00 00 00 01")),
        ("xchacha-example", hex("80 78 00 01 00 00 03 c0 00 00 30 39 f1 58 af f8 0f fd d7 29 b8 52 7e ea dc eb 6a a6 33 3a 05 00 00 00 01")),
        ("extension-example", hex("90 78 00 02 00 00 07 80 00 00 30 39 be de 00 01 bc fc 5a ce 6a ff 08 8c 55 9d 35 f3 0b 78 d5 cc d7 cc 21 81 87 f7 d0 00 00 00 02")),
        ("plain-silence", hex("80 78 00 01 00 00 03 c0 01 02 03 04 f8 ff fe")),
        ("plain-extension", hex("90 78 00 02 00 00 07 80 01 02 03 04 be de 00 01 10 80 00 00 f8 ff fe")),
        ("plain-padding", hex("a0 78 00 03 00 00 0b 40 01 02 03 04 fc ff fe 00 00 03")),
        ("plain-csrc", hex("82 f8 00 04 00 00 0f 00 01 02 03 04 00 00 00 01 00 00 00 02 fc")),
        ("plain-extension-too-long", hex("90 78 00 05 00 00 12 c0 01 02 03 04 be de ff ff 00")),
        // PROTOCOL.md 9.4's first DAVE frame vector (ends with the FA FA marker), from a member.
        ("plain-dave-frame", hex("80 78 00 06 00 00 16 80 01 02 03 04 2d da 55 ea 4d 83 e7 aa 95 bc 52 9d d5 b3 01 0c fa fa")),
        ("own-ssrc", hex("80 78 00 01 00 00 03 c0 80 00 30 39 f8 ff fe")),
        ("rtcp-receiver-report", hex("81 c9 00 07 00 00 30 39 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00")),
        ("keepalive-djs", vec![1, 0, 0, 0, 0, 0, 0, 0]),
        ("keepalive-ssrc", vec![0x00, 0x00, 0x30, 0x39]),
        ("video-payload-type", hex("80 65 00 01 00 00 03 c0 01 02 03 04 00")),
    ])
}

fn text(message: ServerText) -> Step {
    Step::Text {
        message,
        numbered: true,
    }
}

fn opus(len: u16) -> Step {
    Step::SendOpus {
        len,
        fill: 0xFC,
        small_buffer: false,
    }
}

fn audio(sequence: u16, extension_words: Option<u8>, padding: Option<u8>) -> Step {
    Step::Audio(AudioPacket {
        ssrc: 0,
        sequence,
        extension_words,
        padding,
        opus: vec![0xFC, 0xFF, 0xFE],
        corrupt: false,
        wrong_key: false,
    })
}

/// Audio, silence, a resume after 4015 with buffered seq, more audio, then leave.
fn call_steps() -> Vec<Step> {
    vec![
        Step::Speaking(5),
        opus(3),
        opus(1275),
        Step::StopSpeaking,
        Step::SendSilence,
        Step::SendSilence,
        Step::SendSilence,
        Step::SendSilence,
        Step::SendSilence,
        Step::SendSilence,
        Step::AdvanceToWake,
        Step::ServerClose(Some(4015)),
        Step::Opened,
        Step::Text {
            message: ServerText::Hello { quarter_ms: 4000 },
            numbered: false,
        },
        text(ServerText::Resumed),
        opus(20),
        Step::Disconnect,
    ]
}

fn session_seeds() -> Vec<(&'static str, SessionScript)> {
    let config = ScriptConfig {
        rtp_seed: 0xFFFF_FFFF_FFFF_FFF0,
        flags: 0,
    };
    let handshake = targets::handshake_steps(0b0011);
    let with = |more: Vec<Step>| {
        let mut steps = handshake.clone();
        steps.extend(more);
        steps
    };
    let script = |steps: Vec<Step>| SessionScript { config, steps };
    vec![
        ("handshake", script(handshake.clone())),
        ("call-with-resume", script(with(call_steps()))),
        (
            "receive-audio",
            script(with(vec![
                text(ServerText::Speaking {
                    user: 0,
                    ssrc: 0,
                    flags: 1,
                }),
                audio(1, None, None),
                audio(2, Some(1), None),
                audio(3, None, Some(3)),
                audio(4, None, Some(0)),
                audio(5, Some(15), None),
                text(ServerText::ClientDisconnect { user: 0 }),
                audio(6, None, None),
                Step::Datagram {
                    foreign: false,
                    data: vec![0x81, 0xC9, 0, 1],
                },
                Step::Datagram {
                    foreign: true,
                    data: vec![0x80, 0x78, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0],
                },
            ])),
        ),
        (
            "heartbeats-acked-then-missed",
            script(with(vec![
                Step::AdvanceToWake,
                text(ServerText::HeartbeatAck { t: None }),
                Step::Advance(1000),
                Step::Advance(1000),
                Step::Advance(1000),
                Step::Opened,
                text(ServerText::Resumed),
            ])),
        ),
        (
            "reconnect-after-4006",
            script(with(vec![
                Step::ServerClose(Some(4006)),
                Step::StateUpdate(StateUpdate::Joined(2)),
                Step::ServerUpdate(ServerUpdate::Endpoint(2)),
                Step::Opened,
                text(ServerText::Ready {
                    ssrc: 77,
                    modes: 0b0010,
                    bad_ip: false,
                    port: 50002,
                }),
                Step::DiscoveryAnswer(1),
                text(ServerText::SessionDescription {
                    mode: 0,
                    key_byte: 9,
                    dave: 0,
                }),
                opus(10),
            ])),
        ),
        (
            "moved-after-4014",
            script(with(vec![
                Step::ServerClose(Some(4014)),
                Step::ServerUpdate(ServerUpdate::Endpoint(3)),
                Step::Opened,
                text(ServerText::Ready {
                    ssrc: 0,
                    modes: 1,
                    bad_ip: false,
                    port: 0,
                }),
                Step::DiscoveryAnswer(0),
                text(ServerText::SessionDescription {
                    mode: 0,
                    key_byte: 1,
                    dave: 0,
                }),
            ])),
        ),
        (
            "null-endpoint-then-timeout",
            script(with(vec![
                Step::ServerUpdate(ServerUpdate::NullEndpoint),
                Step::Advance(10_000),
            ])),
        ),
        (
            "fatal-4017",
            script(with(vec![Step::ServerClose(Some(4017)), opus(3)])),
        ),
        (
            "closed-during-handshake",
            script(vec![
                Step::ServerUpdate(ServerUpdate::Endpoint(1)),
                Step::StateUpdate(StateUpdate::Joined(1)),
                Step::Opened,
                Step::ServerClose(None),
            ]),
        ),
        (
            "discovery-retries-time-out",
            script(vec![
                Step::StateUpdate(StateUpdate::Joined(1)),
                Step::ServerUpdate(ServerUpdate::Endpoint(1)),
                Step::Opened,
                text(ServerText::Ready {
                    ssrc: 0,
                    modes: 0b1111,
                    bad_ip: false,
                    port: 0,
                }),
                Step::DiscoveryAnswer(2),
                Step::DiscoveryAnswer(4),
                Step::AdvanceToWake,
                Step::AdvanceToWake,
                Step::AdvanceToWake,
                Step::AdvanceToWake,
                Step::AdvanceToWake,
            ]),
        ),
        (
            "mode-mismatch",
            script(vec![
                Step::StateUpdate(StateUpdate::Joined(1)),
                Step::ServerUpdate(ServerUpdate::Endpoint(1)),
                Step::Opened,
                text(ServerText::Ready {
                    ssrc: 0,
                    modes: 1,
                    bad_ip: false,
                    port: 0,
                }),
                Step::DiscoveryAnswer(0),
                text(ServerText::SessionDescription {
                    mode: 1,
                    key_byte: 1,
                    dave: 0,
                }),
            ]),
        ),
        (
            "garbage-while-connected",
            script(with(vec![
                Step::RawText(r#"{"op":2,"d":{"ssrc":1,"ip":"x","port":1,"modes":[]}}"#.into()),
                Step::Binary(vec![0, 9, 29, 1]),
                text(ServerText::Unknown { op: 200 }),
                text(ServerText::Ignored { which: 3 }),
                text(ServerText::DavePrepareEpoch {
                    version: 1,
                    epoch: 1,
                }),
                text(ServerText::HeartbeatRequest),
                text(ServerText::ClientsConnect { first: 1, count: 3 }),
                opus(0),
                Step::SendOpus {
                    len: 100,
                    fill: 1,
                    small_buffer: true,
                },
                opus(1300),
                opus(100),
            ])),
        ),
        (
            "dave-config",
            SessionScript {
                config: ScriptConfig {
                    rtp_seed: 0xFFFF,
                    flags: 0b1111,
                },
                steps: vec![
                    Step::StateUpdate(StateUpdate::Joined(1)),
                    Step::ServerUpdate(ServerUpdate::Endpoint(1)),
                    Step::Opened,
                    Step::Text {
                        message: ServerText::Hello { quarter_ms: 1 },
                        numbered: false,
                    },
                    text(ServerText::Ready {
                        ssrc: 0,
                        modes: 0b0010,
                        bad_ip: false,
                        port: 0,
                    }),
                    Step::DiscoveryAnswer(0),
                    text(ServerText::SessionDescription {
                        mode: 0,
                        key_byte: 3,
                        dave: 1,
                    }),
                    Step::Advance(1),
                    Step::Advance(1),
                    Step::Advance(1),
                    Step::Advance(1),
                    Step::ServerClose(Some(4022)),
                    Step::Advance(20_000),
                ],
            },
        ),
        (
            "other-users-dispatches",
            script(vec![
                Step::StateUpdate(StateUpdate::OtherUser),
                Step::ServerUpdate(ServerUpdate::OtherGuild),
                Step::StateUpdate(StateUpdate::OtherGuild),
                Step::ServerUpdate(ServerUpdate::BadEndpoint),
                Step::StateUpdate(StateUpdate::Left),
                Step::ServerUpdate(ServerUpdate::Endpoint(1)),
                Step::StateUpdate(StateUpdate::Joined(1)),
                Step::Opened,
                Step::Text {
                    message: ServerText::Hello { quarter_ms: 0 },
                    numbered: false,
                },
            ]),
        ),
    ]
}

/// Debugging aid: `FUZZ_INPUT=path cargo test -p voice-proto --test fuzz_corpus_replay --
/// --ignored show_session_script --nocapture` prints the script a `session` input reads as.
#[test]
#[ignore = "debugging aid, needs FUZZ_INPUT"]
fn show_session_script() {
    let path = std::env::var("FUZZ_INPUT").expect("FUZZ_INPUT=path of a session input");
    let data = fs::read(path).expect("a readable input");
    let script = SessionScript::arbitrary(&mut Unstructured::new(&data)).expect("a script");
    println!("{:?}", script.config);
    let mut driver = Driver::join(script.config.config());
    for (i, step) in script.steps.iter().enumerate() {
        println!("{i:3}: {step:?}");
        driver.step(step);
        println!("     -> {:?}", driver.outputs());
    }
    driver.run_timers(2);
}
