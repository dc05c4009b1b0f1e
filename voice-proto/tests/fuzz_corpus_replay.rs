//! Replays the fuzz corpus on the stable toolchain.
//!
//! The fuzz target bodies live in `fuzz/src/targets/`, included here unchanged, so every file of
//! `fuzz/corpus/<target>/` (seeds, inputs libFuzzer found interesting, and the inputs of every
//! crash ever fixed) runs through exactly the code libFuzzer runs, as part of
//! `cargo test --workspace`. No nightly needed.
//!
//! The seed files are written by the ignored test `write_seed_corpus` from docs/protocol.md's examples,
//! the golden payloads and scripted sessions: `cargo test -p voice-proto --test fuzz_corpus_replay
//! -- --ignored write_seed_corpus`.

#[path = "../../fuzz/src/targets/mod.rs"]
mod targets;

#[path = "../../fuzz/src/jitter_buffer.rs"]
mod jitter_buffer;

mod support;

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use jitter_buffer::BufferScript;
use targets::{
    AudioPacket, DaveScript, Driver, ScriptConfig, ServerText, ServerUpdate, SessionScript,
    StateUpdate, Step,
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
use voice_proto::{Error, Event};

/// A target body: one input, panics on a broken invariant.
type Target = fn(&[u8]);

/// Every target and its body.
const TARGETS: [(&str, Target); 7] = [
    ("gateway_text", targets::gateway_text),
    ("gateway_binary", targets::gateway_binary),
    ("udp_datagram", targets::udp_datagram),
    ("session", targets::session_bytes),
    ("payload_roundtrip", targets::payload_roundtrip),
    ("dave_binary", targets::dave_binary),
    ("jitter_buffer", jitter_buffer::jitter_buffer),
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
fn dave_scripts_survive_their_byte_layout() {
    use targets::{DaveStep as D, Tamper};
    let tamper = Tamper { at: 513, xor: 0x80 };
    let script = DaveScript {
        steps: vec![
            D::ExternalSender(vec![0x40, 0x41, 4]),
            D::ExternalSenderParts {
                key: vec![4; 65],
                credential_type: 1,
                identity: vec![0, 1],
            },
            D::Proposals {
                operation: 1,
                wrapped: true,
                data: vec![32; 33],
            },
            D::Commit {
                transition: 7,
                commit: vec![0, 1, 0, 1],
            },
            D::Welcome {
                transition: 0xFFFF,
                welcome: vec![0, 2],
            },
            D::EchoCommit {
                transition: 3,
                tamper,
            },
            D::EchoWelcome {
                transition: 4,
                tamper,
            },
            D::Prepare {
                version: 0,
                transition: 5,
            },
            D::Execute { transition: 5 },
            D::ExecuteLatest,
            D::Epoch {
                version: 1,
                epoch: u64::MAX,
            },
            D::Connect {
                first: 9,
                count: 16,
            },
            D::Disconnect { user: 9 },
            D::Media {
                payload: vec![1, 2, 3],
                marker: Some(11),
            },
            D::Media {
                payload: Vec::new(),
                marker: None,
            },
            D::Loopback { tamper },
            D::Send { len: 1275, fill: 1 },
            D::Resume,
            D::Reconnect,
            D::Raw {
                op: 5,
                data: vec![0, 9],
            },
            D::Rejoin { early: 2 },
        ],
    };
    let bytes = script.to_bytes();
    let read = DaveScript::arbitrary(&mut Unstructured::new(&bytes)).expect("a script");
    assert_eq!(read, script);
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
    // One frame, five silence frames, one frame after the resume (then its silence was cut by
    // the end).
    assert_eq!(driver.datagrams(), 7);
}

/// The playout seeds play what they were written for (the model checks each datagram; these are
/// the totals).
#[test]
fn playout_seeds_play_what_they_were_written_for() {
    let expected = [
        ("call-with-resume", 7),
        ("playout-schedule", 9),
        ("playout-new-spurt-after-a-pause", 8),
        ("playout-resume-mid-spurt", 3),
        ("playout-reconnect-keeps-the-queue", 4),
        ("playout-backoff-before-a-reconnect", 1),
        ("playout-small-queue", 2),
        ("playout-dave-keys-pending", 0),
    ];
    let seeds = session_seeds();
    for (name, datagrams) in expected {
        let (_, script) = seeds
            .iter()
            .find(|(seed, _)| *seed == name)
            .unwrap_or_else(|| panic!("no seed {name}"));
        let mut driver = Driver::join(script.config.config());
        driver.run(&script.steps);
        assert_eq!(driver.datagrams(), datagrams, "datagrams of seed {name}");
    }
}

/// The `jitter_buffer` seeds read back and deliver what they were written for (the target checks
/// every rule on the way; these are the totals).
#[test]
fn buffer_seeds_deliver_what_they_were_written_for() {
    for (name, script, (frames, lost, spurts, late, duplicates)) in buffer_seeds() {
        let read = BufferScript::read(&script.to_bytes());
        assert_eq!(read, script, "seed {name} does not read back");
        let outcome = jitter_buffer::run_buffer_script(&script);
        assert_eq!(
            (
                outcome.frames,
                outcome.lost_reported,
                outcome.spurts,
                outcome.late,
                outcome.duplicates
            ),
            (frames, lost, spurts, late, duplicates),
            "seed {name}: {outcome:?}"
        );
    }
}

/// The lifecycle seeds (issue 14) end as they were written to: the model checks every rule on
/// the way; these are the outcomes.
#[test]
fn lifecycle_seeds_end_as_written() {
    let seeds = session_seeds();
    let run = |name: &str| {
        let (_, script) = seeds
            .iter()
            .find(|(seed, _)| *seed == name)
            .unwrap_or_else(|| panic!("no seed {name}"));
        let mut driver = Driver::join(script.config.config());
        driver.keep_log();
        driver.run(&script.steps);
        driver
    };
    let attempts = |driver: &Driver| -> Vec<u32> {
        driver
            .events_logged()
            .iter()
            .filter_map(|e| match e {
                Event::Reconnecting { attempt, .. } => Some(*attempt),
                _ => None,
            })
            .collect()
    };
    let driver = run("closed-during-handshake");
    assert!(
        driver.has_media() && !driver.is_closed(),
        "the join survived its bad start"
    );
    let driver = run("join-fails-at-its-deadline");
    assert!(
        matches!(driver.error(), Some(Error::JoinFailed { last, .. }) if matches!(**last, Error::HandshakeClosed { code: Some(4006) })),
        "{:?}",
        driver.error()
    );
    let driver = run("rejoin-after-4004-then-fatal");
    assert!(matches!(
        driver.error(),
        Some(Error::Fatal { code: 4004, .. })
    ));
    assert_eq!(attempts(&driver), [1]);
    let driver = run("insecure-endpoint-refused");
    assert!(!driver.is_closed());
    assert!(driver.events_logged().iter().any(
        |e| matches!(e, Event::Ignored { reason } if reason.contains("ws:// endpoint would send the token in clear"))
    ));
    let driver = run("reconnect-loop-meets-the-limit");
    assert!(matches!(
        driver.error(),
        Some(Error::TooManyReconnects { attempts: 5, .. })
    ));
    assert_eq!(attempts(&driver), [1, 2, 3, 4, 5]);
    let driver = run("a-stable-session-resets-the-counter");
    assert!(!driver.is_closed());
    assert_eq!(attempts(&driver), [1, 1, 2]);
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
    #[cfg(feature = "dave")]
    {
        let dir = corpus_dir("dave_binary");
        fs::create_dir_all(&dir).expect("corpus directory");
        for (name, script, _) in dave_seeds() {
            fs::write(dir.join(format!("seed-{name}")), script.to_bytes()).expect("seed written");
        }
    }
}

/// The `dave_binary` seeds, freshly made and as committed, reach what they were written for
/// (their MLS messages are random, so the files are checked by what they do, not byte for byte).
#[cfg(feature = "dave")]
#[test]
fn dave_binary_seeds_reach_their_milestones() {
    for (name, script, (what, reached)) in dave_seeds() {
        let bytes = script.to_bytes();
        let read = DaveScript::arbitrary(&mut Unstructured::new(&bytes)).expect("a script");
        assert_eq!(read, script, "seed {name} does not read back");
        let report = targets::dave_script(&script);
        assert!(
            reached(&report),
            "seed {name} does not reach its milestone ({what}): {report:?}"
        );
        let path = corpus_dir("dave_binary").join(format!("seed-{name}"));
        let on_disk = fs::read(&path).unwrap_or_else(|e| {
            panic!("{} is missing ({e}); run write_seed_corpus", path.display())
        });
        let report = targets::dave_binary_report(&on_disk).expect("a DAVE script");
        assert!(
            reached(&report),
            "{} no longer reaches its milestone ({what}): {report:?}; run write_seed_corpus",
            path.display()
        );
    }
}

/// The harness's MLS reader (it checks our op 26 and op 28 and splits op 28 without an MLS
/// implementation) agrees with openmls on real messages.
#[cfg(feature = "dave")]
#[test]
fn the_harness_reads_mls_like_openmls() {
    use davey::ProposalsOperationType;
    use support::dave::{peer, split_commit_welcome, Gateway};
    use support::{CHANNEL, OTHER_USER, USER};
    use targets::mls;

    let gateway = Gateway::new(CHANNEL);
    let mut alice = peer(USER, &gateway);
    let mut bob = peer(OTHER_USER, &gateway);
    let key_package = bob.create_key_package().expect("key package");
    assert!(mls::key_package(&key_package));
    assert!(!mls::key_package(&key_package[1..]));
    let mut longer = key_package.clone();
    longer.push(0);
    assert!(!mls::key_package(&longer));
    let commit_welcome = alice
        .process_proposals(
            ProposalsOperationType::APPEND,
            &gateway.propose_add(0, &key_package),
            Some(&[USER.0, OTHER_USER.0]),
        )
        .expect("alice commits")
        .expect("a commit");
    let mut payload = commit_welcome.commit.clone();
    payload.extend(commit_welcome.welcome.clone().expect("a welcome"));
    let (commit, welcome) = split_commit_welcome(&payload);
    let (ours, our_welcome) = mls::split_commit_welcome(&payload).expect("op 28 splits");
    assert_eq!(ours, &commit[..]);
    assert_eq!(our_welcome.map(<[u8]>::to_vec), welcome);
    let (alone, none) = mls::split_commit_welcome(&commit).expect("a commit alone");
    assert_eq!((alone, none), (&commit[..], None));
    assert!(mls::split_commit_welcome(&payload[..payload.len() - 1]).is_none());
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
        (
            "jitter_buffer",
            buffer_seeds()
                .into_iter()
                .map(|(name, script, _)| (name.to_owned(), script.to_bytes()))
                .collect(),
        ),
    ]
}

/// What a `jitter_buffer` seed delivers: (frames, frames reported lost, spurts, late,
/// duplicates).
type BufferTotals = (u64, u64, u64, u64, u64);

/// The `jitter_buffer` seeds and what each delivers.
fn buffer_seeds() -> Vec<(&'static str, BufferScript, BufferTotals)> {
    use jitter_buffer::BufferStep as B;
    let in_order = |n: usize| vec![B::InOrder { after_ms: 20 }; n];
    let silence = |n: usize| vec![B::Silence { after_ms: 20 }; n];
    let script = |first_sequence: u16, steps: Vec<Vec<B>>| BufferScript {
        depth: 3,
        max_depth: 10,
        timeout: 48,
        first_sequence,
        steps: steps.concat(),
    };
    vec![
        (
            "spurt-with-trailing-silence",
            script(100, vec![in_order(10), silence(5), vec![B::PollAtDeadline]]),
            (15, 0, 1, 0, 0),
        ),
        (
            "reordered-within-the-depth",
            script(
                7,
                vec![
                    in_order(3),
                    vec![
                        B::Jump {
                            after_ms: 20,
                            jump: 2,
                        },
                        B::Jump {
                            after_ms: 10,
                            jump: -1,
                        },
                    ],
                    in_order(3),
                    vec![B::PollAtDeadline],
                ],
            ),
            (8, 0, 1, 0, 0),
        ),
        (
            "loss-reported-after-the-depth",
            script(
                65_530,
                vec![
                    in_order(4),
                    vec![B::Jump {
                        after_ms: 40,
                        jump: 3,
                    }],
                    in_order(4),
                    vec![B::PollAtDeadline, B::PollAtDeadline],
                ],
            ),
            (9, 2, 1, 0, 0),
        ),
        (
            "duplicates-and-a-late-packet",
            script(
                1,
                vec![
                    in_order(3),
                    vec![
                        B::Again {
                            after_ms: 5,
                            index: 1,
                        },
                        B::Jump {
                            after_ms: 20,
                            jump: 2,
                        },
                        B::Poll { after_ms: 200 },
                        B::Jump {
                            after_ms: 1,
                            jump: -1,
                        },
                        B::Again {
                            after_ms: 1,
                            index: 0,
                        },
                    ],
                ],
            ),
            (4, 1, 1, 1, 2),
        ),
        (
            "resync-after-a-jump",
            script(
                1000,
                vec![
                    in_order(3),
                    vec![B::Poll { after_ms: 100 }],
                    vec![B::Jump {
                        after_ms: 20,
                        jump: 300,
                    }],
                    in_order(2),
                    vec![
                        B::PollAtDeadline,
                        B::Jump {
                            after_ms: 20,
                            jump: 127,
                        },
                        B::PollAtDeadline,
                    ],
                ],
            ),
            (7, 126, 2, 0, 0),
        ),
        (
            "timeout-then-a-new-spurt",
            script(
                40_000,
                vec![
                    in_order(3),
                    vec![B::Poll { after_ms: 2000 }],
                    in_order(2),
                    vec![B::End],
                ],
            ),
            (5, 0, 2, 0, 0),
        ),
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

/// docs/protocol.md's examples, the golden payloads' shapes, and one encoding of every server message.
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

/// docs/protocol.md 6 and 8.3: discovery packets, the three worked RTP examples, their plaintext
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
        // docs/protocol.md 9.4's first DAVE frame vector (ends with the FA FA marker), from a member.
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

/// Queues a frame of `len` bytes and polls the playout at once.
fn opus(len: u16) -> Step {
    Step::QueueOpus {
        len,
        fill: 0xFC,
        queue_only: false,
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

/// Queues a frame of `len` bytes of `fill` without polling.
fn queued(len: u16, fill: u8) -> Step {
    Step::QueueOpus {
        len,
        fill,
        queue_only: true,
    }
}

/// The handshake once both dispatches are in: open, Hello, Ready, discovery, Session
/// Description.
fn after_the_dispatches() -> Vec<Step> {
    targets::handshake_steps(0b0001).split_off(2)
}

/// A resume after 4015: close, the backoff (the next wake-up), the new websocket opens, Hello,
/// op 9.
fn resume_steps() -> Vec<Step> {
    vec![
        Step::ServerClose(Some(4015)),
        Step::AdvanceToWake,
        Step::Opened,
        Step::Text {
            message: ServerText::Hello { quarter_ms: 4000 },
            numbered: false,
        },
        text(ServerText::Resumed),
    ]
}

/// Audio, silence, a resume after 4015 with buffered seq, more audio, then leave.
fn call_steps() -> Vec<Step> {
    let mut steps = vec![
        Step::Speaking(5),
        opus(3),
        opus(1275),
        // The second frame is queued, then dropped by the stop: five silence frames follow,
        // one per slot, then op 5 with flags 0 (the sixth wake-up is the next timer).
        Step::StopSpeaking,
        Step::AdvanceToWake,
        Step::AdvanceToWake,
        Step::AdvanceToWake,
        Step::AdvanceToWake,
        Step::AdvanceToWake,
        Step::AdvanceToWake,
        Step::AdvanceToWake,
    ];
    steps.extend(resume_steps());
    steps.extend([
        opus(20),           // op 5 again on the new websocket
        Step::PollTransmit, // the frame
        Step::Disconnect,
    ]);
    steps
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
                Step::AdvanceToWake, // the backoff before the resume
                Step::Opened,
                text(ServerText::Resumed),
            ])),
        ),
        (
            "reconnect-after-4006",
            script(with(vec![
                Step::ServerClose(Some(4006)),
                Step::AdvanceToWake, // the backoff, then op 4 again
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
            script(
                vec![
                    Step::ServerUpdate(ServerUpdate::Endpoint(1)),
                    Step::StateUpdate(StateUpdate::Joined(1)),
                    Step::Opened,
                    Step::ServerClose(None),
                    // Row 1: retried after a backoff through op 4; the rejoin needs only the
                    // server update (row 9), and the join goes on to a session.
                    Step::AdvanceToWake,
                    Step::ServerUpdate(ServerUpdate::Endpoint(2)),
                ]
                .into_iter()
                .chain(after_the_dispatches())
                .collect(),
            ),
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
                Step::QueueOpus {
                    len: 100,
                    fill: 1,
                    queue_only: true,
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
        (
            "playout-schedule",
            script(with(vec![
                queued(40, 1),
                queued(60, 2),
                queued(3, 0xF8), // F8 FF FE queued as audio
                queued(1275, 4),
                Step::PollTransmit, // op 5
                Step::PollTransmit, // the first frame
                Step::PollTransmit, // nothing: its slot is 20 ms on
                Step::Advance(19),
                Step::PollTransmit,
                Step::Advance(1),
                Step::PollTransmit, // the second frame
                Step::Advance(100),
                Step::PollTransmit, // late: the rest at once, then silence on the same grid
                Step::Advance(1000),
                Step::PollTransmit, // a stall: one silence frame, then the schedule restarts
                Step::AdvanceToWake,
                Step::AdvanceToWake,
                Step::AdvanceToWake,
                Step::AdvanceToWake,
            ])),
        ),
        (
            "playout-new-spurt-after-a-pause",
            script(with(vec![
                opus(30),            // op 5 (the frame waits for the next poll)
                Step::AdvanceToWake, // the frame
                Step::AdvanceToWake,
                Step::AdvanceToWake,
                Step::AdvanceToWake,
                Step::AdvanceToWake,
                Step::AdvanceToWake, // the fifth silence frame and op 5 with flags 0
                Step::Advance(100),
                queued(30, 5),
                queued(30, 6),
                queued(30, 7),
                Step::PollTransmit, // op 5 for the new spurt
                Step::PollTransmit, // one frame: nothing was owed while quiet
                Step::StopSpeaking,
                Step::Advance(5),
                opus(10), // during the trailing silence: not before its slot
                Step::AdvanceToWake,
            ])),
        ),
        (
            "playout-resume-mid-spurt",
            script(with({
                let mut steps = vec![
                    queued(20, 1),
                    queued(20, 2),
                    queued(20, 3),
                    queued(20, 4),
                    Step::PollTransmit,
                    Step::PollTransmit,
                    Step::Advance(100),
                ];
                steps.extend(resume_steps());
                steps.extend([
                    Step::PollTransmit, // op 5 again on the new websocket
                    Step::PollTransmit, // one frame: nothing owed for the hold
                    Step::PollTransmit,
                    Step::AdvanceToWake,
                    Step::ServerClose(Some(4015)),
                    Step::PollTransmit, // held, the clock paused
                    Step::AdvanceToWake,
                    Step::Opened,
                ]);
                steps
            })),
        ),
        (
            "playout-reconnect-keeps-the-queue",
            script(with(vec![
                queued(20, 1),
                queued(20, 2),
                Step::PollTransmit,
                Step::PollTransmit,
                Step::ServerClose(Some(4006)),
                queued(20, 3),
                Step::PollTransmit,  // held: reconnecting
                Step::AdvanceToWake, // the backoff, then op 4 again
                Step::StateUpdate(StateUpdate::Joined(2)),
                Step::ServerUpdate(ServerUpdate::Endpoint(2)),
                Step::Opened,
                text(ServerText::Ready {
                    ssrc: 0,
                    modes: 0b0011,
                    bad_ip: false,
                    port: 0,
                }),
                Step::DiscoveryAnswer(0),
                text(ServerText::SessionDescription {
                    mode: 0,
                    key_byte: 5,
                    dave: 0,
                }),
                Step::PollTransmit,
                Step::PollTransmit, // the queued frames on the new session, in order
                Step::AdvanceToWake,
                Step::AdvanceToWake,
            ])),
        ),
        (
            "playout-backoff-before-a-reconnect",
            script(with({
                vec![
                    queued(20, 1),
                    Step::PollTransmit,
                    Step::PollTransmit,
                    Step::ServerClose(Some(4015)),
                    queued(20, 2),
                    // The resume's websocket never opens: after the backoff and the handshake
                    // timeout a fresh reconnect follows a second backoff (held as reconnecting,
                    // not resuming).
                    Step::Advance(11_000),
                    Step::PollTransmit,
                    Step::AdvanceToWake, // the backoff ends: op 4 for a fresh session
                ]
            })),
        ),
        (
            "playout-small-queue",
            SessionScript {
                config: ScriptConfig {
                    rtp_seed: 7,
                    flags: 0b1_0000,
                },
                steps: {
                    let mut steps = handshake.clone();
                    steps.extend([
                        queued(0, 1),
                        queued(1276, 1),
                        queued(1, 1),
                        queued(2, 2),
                        queued(3, 3),
                        queued(4, 4), // full
                        Step::PollTransmit,
                        Step::PollTransmit,
                        queued(4, 4),
                        Step::StopSpeaking, // drops three
                        Step::AdvanceToWake,
                        Step::Disconnect,
                        queued(4, 4), // closed
                    ]);
                    steps
                },
            },
        ),
        (
            "playout-dave-keys-pending",
            SessionScript {
                config: ScriptConfig {
                    rtp_seed: 0,
                    flags: 1,
                },
                steps: {
                    let mut steps = targets::dave_handshake_steps();
                    steps.extend([
                        queued(20, 1),
                        Step::PollTransmit, // held for the keys
                        Step::StopSpeaking,
                        queued(20, 2),
                    ]);
                    steps.extend(resume_steps());
                    steps.push(Step::PollTransmit);
                    steps
                },
            },
        ),
        // Issue 14: the lifecycle rules.
        (
            "join-fails-at-its-deadline",
            script({
                // Every websocket is dropped right after it opens: retried with growing
                // backoffs until the join deadline, then JoinFailed and one leave.
                let mut steps = vec![
                    Step::StateUpdate(StateUpdate::Joined(1)),
                    Step::ServerUpdate(ServerUpdate::Endpoint(1)),
                ];
                for n in 2..8 {
                    steps.extend([
                        Step::Opened,
                        Step::ServerClose(Some(4006)),
                        Step::AdvanceToWake,
                        Step::ServerUpdate(ServerUpdate::Endpoint(n)),
                    ]);
                }
                steps.push(Step::Advance(30_000));
                steps
            }),
        ),
        (
            "rejoin-after-4004-then-fatal",
            script(with(vec![
                Step::ServerClose(Some(4004)),
                Step::AdvanceToWake, // op 4: a new token
                Step::ServerUpdate(ServerUpdate::Endpoint(9)),
                Step::Opened,
                Step::ServerClose(Some(4004)), // again before a session: fatal
            ])),
        ),
        (
            "insecure-endpoint-refused",
            script(vec![
                Step::StateUpdate(StateUpdate::Joined(1)),
                Step::ServerUpdate(ServerUpdate::Endpoint(0x81)), // ws://: refused
                Step::ServerUpdate(ServerUpdate::Endpoint(1)),
                Step::Opened,
            ]),
        ),
        (
            "reconnect-loop-meets-the-limit",
            script(with({
                // The server closes every session right after it starts: the counter does not
                // reset (no session stays up 60 s), the backoffs grow, the limit ends it.
                let mut steps = Vec::new();
                for n in 2..9 {
                    steps.extend([
                        Step::ServerClose(Some(4006)),
                        Step::AdvanceToWake,
                        Step::ServerUpdate(ServerUpdate::Endpoint(n)),
                    ]);
                    steps.extend(after_the_dispatches());
                }
                steps
            })),
        ),
        (
            "a-stable-session-resets-the-counter",
            script({
                let mut steps = handshake.clone();
                // Heartbeats a minute apart: the session can stay up past
                // `reconnect_reset_after` with nothing to acknowledge.
                if let Some(Step::Text {
                    message: ServerText::Hello { quarter_ms },
                    ..
                }) = steps.get_mut(3)
                {
                    *quarter_ms = 4 * 65_000;
                }
                steps.extend([
                    Step::ServerClose(Some(4015)),
                    Step::AdvanceToWake,
                    Step::Opened,
                    text(ServerText::Resumed),
                    Step::Advance(61_000),
                    Step::ServerClose(Some(4015)), // attempt 1 again
                    Step::AdvanceToWake,
                    Step::Opened,
                    Step::ServerClose(Some(4015)), // attempt 2
                ]);
                steps
            }),
        ),
    ]
}

// ---- dave_binary seeds ----------------------------------------------------------------------

/// A milestone a `dave_binary` seed must reach, checked on the report of its run.
#[cfg(feature = "dave")]
type Milestone = (&'static str, fn(&targets::DaveReport) -> bool);

/// `dave_binary` seeds with real MLS messages: an external sender, external Add/Remove proposals
/// signed by it, a proposal reference, a commit and a welcome from another client's join, a
/// commit by a member at epoch 1, and a DAVE frame from that member. MLS key material is random,
/// so these are written by `write_seed_corpus` but checked by what they reach (see
/// `dave_binary_seeds_reach_their_milestones`), not byte for byte.
#[cfg(feature = "dave")]
fn dave_seeds() -> Vec<(&'static str, DaveScript, Milestone)> {
    use davey::ProposalsOperationType;
    use support::dave::{peer, proposal_ref, split_commit_welcome, Gateway};
    use support::{CHANNEL, OTHER_USER, USER};
    use targets::{DaveStep as D, Tamper};

    const THIRD: UserId = UserId(3_333_333_333_333_333);
    let gateway = Gateway::new(CHANNEL);
    let external_sender = gateway.external_sender();
    // Another client of ours (same user id) and the peer it adds: the "real exchange".
    let mut alice = peer(USER, &gateway);
    let mut bob = peer(OTHER_USER, &gateway);
    let bob_key_package = bob.create_key_package().expect("key package");
    let add_bob = gateway.add_message(0, &bob_key_package);
    let wrapped = |messages: &[&[u8]]| {
        let mut out = Vec::new();
        for message in messages {
            out.extend_from_slice(message);
        }
        out
    };
    let commit_welcome = alice
        .process_proposals(
            ProposalsOperationType::APPEND,
            &gateway.propose_add(0, &bob_key_package),
            Some(&[USER.0, OTHER_USER.0]),
        )
        .expect("alice commits")
        .expect("a commit");
    let commit0 = commit_welcome.commit.clone();
    let welcome0 = commit_welcome.welcome.clone().expect("a welcome for bob");
    assert!(alice.process_commit(&commit0).expect("own commit"));
    bob.process_welcome(&welcome0, Some(&[USER.0, OTHER_USER.0]))
        .expect("bob welcomed");
    bob.prepare_transition(0, 1).expect("bob keys");
    let bob_frame = bob
        .encrypt_opus(&[0xFC, 0xFF, 0xFE, 1, 2, 3])
        .expect("bob encrypts")
        .to_vec();
    // Bob commits a third member's addition at epoch 1 (a commit with a member sender).
    let mut third = peer(THIRD, &gateway);
    let third_key_package = third.create_key_package().expect("key package");
    let add_third = gateway.add_message(1, &third_key_package);
    let bob_commit = bob
        .process_proposals(
            ProposalsOperationType::APPEND,
            &gateway.propose_add(1, &third_key_package),
            Some(&[USER.0, OTHER_USER.0, THIRD.0]),
        )
        .expect("bob commits")
        .expect("a commit");
    let (commit1, _) = split_commit_welcome(&{
        let mut payload = bob_commit.commit.clone();
        payload.extend(bob_commit.welcome.clone().unwrap_or_default());
        payload
    });
    let remove_bob = gateway.remove_message(1, 1);
    let mut revoke = vec![32u8];
    revoke.extend(proposal_ref(&add_bob));

    let es = || D::ExternalSender(external_sender.clone());
    let connect = |first: u64| D::Connect { first, count: 1 };
    let propose = |messages: &[&[u8]]| D::Proposals {
        operation: 0,
        wrapped: true,
        data: wrapped(messages),
    };
    let echo = |transition: u16| D::EchoCommit {
        transition,
        tamper: Tamper::default(),
    };
    let send = D::Send {
        len: 20,
        fill: 0xFC,
    };
    let join = || vec![es(), connect(0), propose(&[&add_bob]), echo(0)];
    let with = |mut steps: Vec<D>, more: Vec<D>| {
        steps.extend(more);
        steps
    };
    let script = |steps: Vec<D>| DaveScript { steps };

    vec![
        (
            "held-until-keyed",
            script(vec![
                es(),
                connect(0),
                send.clone(),
                send.clone(),
                propose(&[&add_bob]),
                echo(0),
                send.clone(),
                send.clone(),
            ]),
            ("frames held for the keys, then sent DAVE-encrypted", |r| {
                r.dave_holds == 1 && r.ready == 1 && r.dave_frames_sent >= 4
            }),
        ),
        (
            "join",
            script(with(
                join(),
                vec![
                    send.clone(),
                    D::Loopback {
                        tamper: Tamper::default(),
                    },
                    D::Media {
                        payload: bob_frame.clone(),
                        marker: None,
                    },
                ],
            )),
            ("committed, keyed, sent a DAVE frame", |r| {
                r.commits == 1 && r.ready == 1 && r.max_epoch == 1 && r.dave_frames_sent >= 1
            }),
        ),
        (
            "join-with-transition",
            script(vec![
                es(),
                connect(0),
                propose(&[&add_bob]),
                echo(5),
                D::ExecuteLatest,
                send.clone(),
            ]),
            ("op 23, then keyed on op 22", |r| {
                r.transitions_ready == 1 && r.ready == 1 && r.dave_frames_sent >= 1
            }),
        ),
        (
            "join-then-remove",
            script(with(
                join(),
                vec![
                    propose(&[&remove_bob]),
                    echo(9),
                    D::Execute { transition: 9 },
                    D::Disconnect { user: 0 },
                    send.clone(),
                ],
            )),
            ("epoch 2 after removing the member", |r| {
                r.commits == 2 && r.max_epoch == 2 && r.ready == 2
            }),
        ),
        (
            "revoke",
            script(vec![
                es(),
                connect(0),
                propose(&[&add_bob]),
                D::Proposals {
                    operation: 1,
                    wrapped: true,
                    data: revoke.clone(),
                },
                echo(0),
            ]),
            ("the revoke withdrew the proposal", |r| {
                r.commits == 1 && r.message_failures == 0 && r.ready == 0
            }),
        ),
        (
            "foreign-commit",
            script(vec![
                es(),
                connect(0),
                propose(&[&add_bob]),
                D::Commit {
                    transition: 3,
                    commit: commit0.clone(),
                },
            ]),
            ("op 31 and a new key package", |r| {
                r.invalid_commit_welcomes == 1 && r.key_packages == 1
            }),
        ),
        (
            "welcome-for-another",
            script(vec![
                es(),
                connect(0),
                D::Welcome {
                    transition: 4,
                    welcome: welcome0.clone(),
                },
            ]),
            ("op 31 and a new key package", |r| {
                r.invalid_commit_welcomes == 1 && r.key_packages == 1
            }),
        ),
        (
            "member-commit",
            script(with(
                join(),
                vec![
                    connect(THIRD.0),
                    propose(&[&add_third]),
                    D::Commit {
                        transition: 6,
                        commit: commit1.clone(),
                    },
                ],
            )),
            ("our commit at epoch 1, the member's refused", |r| {
                r.commits == 2 && r.invalid_commit_welcomes == 1
            }),
        ),
        (
            "own-welcome",
            script(vec![
                es(),
                connect(0),
                propose(&[&add_bob]),
                D::EchoWelcome {
                    transition: 2,
                    tamper: Tamper::default(),
                },
            ]),
            ("op 31 for a welcome that is not ours", |r| {
                r.commits == 1 && r.invalid_commit_welcomes == 1
            }),
        ),
        (
            "tampered-echo",
            script(vec![
                es(),
                connect(0),
                propose(&[&add_bob]),
                D::EchoCommit {
                    transition: 1,
                    tamper: Tamper { at: 40, xor: 1 },
                },
            ]),
            ("op 31 for a changed commit", |r| {
                r.invalid_commit_welcomes == 1 && r.ready == 0
            }),
        ),
        (
            "downgrade-and-upgrade",
            script(with(
                join(),
                vec![
                    D::Prepare {
                        version: 0,
                        transition: 11,
                    },
                    D::Execute { transition: 11 },
                    send.clone(),
                    D::Media {
                        payload: vec![0xFC, 1, 2, 3],
                        marker: None,
                    },
                    // The upgrade: a new group (op 24 epoch 1), joined under transition 12.
                    D::Epoch {
                        version: 1,
                        epoch: 1,
                    },
                    es(),
                    propose(&[&add_bob]),
                    echo(12),
                    D::Execute { transition: 12 },
                    send.clone(),
                ],
            )),
            ("down to 0 and back to 1 in a new group", |r| {
                r.transitions == 3 && r.ready == 2 && r.key_packages == 1 && r.dave_frames_sent >= 1
            }),
        ),
        (
            "new-epoch",
            script(with(
                join(),
                vec![
                    D::Epoch {
                        version: 1,
                        epoch: 1,
                    },
                    es(),
                    propose(&[&add_bob]),
                    echo(0),
                ],
            )),
            ("a new group after op 24", |r| {
                r.key_packages == 1 && r.commits == 2 && r.ready == 2
            }),
        ),
        (
            "resume",
            script(with(join(), vec![D::Resume, send.clone()])),
            ("keyed across a resume", |r| r.dave_frames_sent >= 1),
        ),
        (
            "reconnect",
            script(with(
                with(join(), vec![D::Reconnect]),
                with(join(), vec![send.clone()]),
            )),
            ("a new session after a reconnect, joined again", |r| {
                r.key_packages == 1 && r.commits == 2 && r.ready == 2
            }),
        ),
        (
            "early-external-sender",
            script(with(
                join(),
                vec![
                    // A new connection: op 25, op 11 and an op 21 reach it before Session
                    // Description; the session keeps the external sender.
                    D::Rejoin { early: 3 },
                    es(),
                    connect(0),
                    D::Prepare {
                        version: 1,
                        transition: 0,
                    },
                    propose(&[&add_bob]),
                    echo(0),
                    send.clone(),
                ],
            )),
            ("joined with an external sender that came early", |r| {
                r.key_packages == 1 && r.commits == 2 && r.ready == 2 && r.message_failures == 0
            }),
        ),
        (
            "decrypt-failures",
            script(with(
                join(),
                vec![
                    D::Media {
                        payload: bob_frame.clone(),
                        marker: None,
                    };
                    38
                ],
            )),
            ("op 31 after 37 failed frames", |r| {
                r.invalid_commit_welcomes == 1 && r.dave_decrypt_failures >= 37
            }),
        ),
        (
            "external-sender-parts",
            script(vec![
                D::ExternalSenderParts {
                    // `signature_key<V>`: a 2-byte length (65) and the P-256 point.
                    key: external_sender[2..67].to_vec(),
                    credential_type: 1,
                    identity: vec![0, 1, 1, 0],
                },
                connect(0),
                propose(&[&add_bob]),
            ]),
            ("the external sender rebuilt from its parts", |r| {
                r.commits == 1 && r.message_failures == 0
            }),
        ),
        (
            "json",
            script(vec![
                D::Prepare {
                    version: 1,
                    transition: 0,
                },
                D::Prepare {
                    version: 2,
                    transition: 1,
                },
                D::Prepare {
                    version: 1,
                    transition: 7,
                },
                D::ExecuteLatest,
                D::Execute { transition: 8 },
                D::Epoch {
                    version: 1,
                    epoch: 2,
                },
                D::Epoch {
                    version: 7,
                    epoch: 1,
                },
                D::Epoch {
                    version: 1,
                    epoch: 1,
                },
            ]),
            ("transitions without a group, a re-initialisation", |r| {
                r.transitions == 2 && r.key_packages == 1 && r.message_failures == 2
            }),
        ),
        (
            "raw",
            script(vec![
                connect(0),
                D::Raw {
                    op: 1,
                    data: bob_key_package.clone(),
                },
                D::Raw {
                    op: 0,
                    data: external_sender.clone(),
                },
                D::Raw {
                    op: 2,
                    data: {
                        let mut data = vec![0];
                        data.extend(gateway.propose_add(0, &bob_key_package));
                        data
                    },
                },
                D::Raw {
                    op: 3,
                    data: vec![1, 2],
                },
                D::Raw {
                    op: 4,
                    data: vec![0, 9],
                },
                D::Raw {
                    op: 5,
                    data: welcome0.clone(),
                },
                D::Raw {
                    op: 3,
                    data: vec![],
                },
            ]),
            ("binary frames of every DAVE opcode", |r| r.commits == 1),
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
        println!("     playout: {}", driver.playout_trace());
    }
    driver.run_timers(2);
}

/// Debugging aid: `FUZZ_INPUT=path cargo test -p voice-proto --test fuzz_corpus_replay --
/// --ignored show_dave_script --nocapture` prints the steps a `dave_binary` input reads as, with
/// the outputs of each.
#[test]
#[ignore = "debugging aid, needs FUZZ_INPUT"]
fn show_dave_script() {
    let path = std::env::var("FUZZ_INPUT").expect("FUZZ_INPUT=path of a dave_binary input");
    let data = fs::read(path).expect("a readable input");
    let script = DaveScript::arbitrary(&mut Unstructured::new(&data)).expect("a script");
    targets::dave_script_traced(&script);
}
