//! The DAVE rules the server enforces, driven by a scripted client holding its own davey session:
//! bad key packages and commits, missing commits and op 23, unknown transitions, and arbitrary
//! binary frames.

use std::num::NonZeroU16;
use std::time::Duration;

use davey::{DaveSession, ProposalsOperationType};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use voice_proto::crypto::EncryptionMode;
use voice_proto::payload::{ClientMessage, Encoded, ServerMessage};
use voice_sim::adapter_cases::{dave_call, dave_server_config};
use voice_sim::testing::{RawClient, STEP_TIMEOUT};
use voice_sim::{ExpectedClient, Report, ServerConfig, ViolationKind, VoiceServer};

const AES: EncryptionMode = EncryptionMode::AeadAes256GcmRtpSize;
const SHORT: Duration = Duration::from_millis(300);

fn config() -> ServerConfig {
    let mut config = dave_server_config(false, dave_call());
    config.dave.commit_timeout = SHORT;
    config.dave.transition_timeout = SHORT;
    config.seed = Some(7);
    config
}

fn binary(message: ClientMessage) -> Vec<u8> {
    match message.encode() {
        Encoded::Binary(bytes) => bytes,
        Encoded::Text(text) => panic!("expected a binary message, got {text}"),
    }
}

/// A client through the handshake with DAVE, holding a davey session with the server's
/// external sender.
async fn joined(server: &VoiceServer) -> (RawClient, ExpectedClient, DaveSession) {
    let info = server.expect_client();
    let mut client = RawClient::connect(&server.ws_url())
        .await
        .expect("connects");
    let session = client.handshake(&info, AES).await.expect("handshake");
    assert_eq!(session.description.dave_protocol_version, 1);
    let ServerMessage::DaveMlsExternalSender(sender) = client
        .recv_until(STEP_TIMEOUT, |m| {
            matches!(m, ServerMessage::DaveMlsExternalSender(_))
        })
        .await
        .expect("op 25 after Session Description")
    else {
        unreachable!()
    };
    let mut dave =
        DaveSession::new(NonZeroU16::MIN, info.user_id, info.channel_id, None).expect("session");
    dave.set_external_sender(&sender)
        .expect("a valid external sender");
    (client, info, dave)
}

async fn violations_of(server: &VoiceServer, kind: ViolationKind, n: usize) -> Report {
    let (report, found) = server
        .wait_until(Duration::from_secs(3), |r| r.violations_of(kind).len() >= n)
        .await;
    assert!(found, "expected {n} {kind} violation(s):\n{report}");
    report
}

#[tokio::test]
async fn key_packages_must_be_valid_and_the_client_s_own() {
    let server = VoiceServer::start(config()).await.expect("starts");
    let (mut client, _info, _dave) = joined(&server).await;
    client
        .send_binary(binary(ClientMessage::DaveMlsKeyPackage(vec![1, 2, 3])))
        .await
        .expect("sends");
    // Someone else's key package (another user id in the credential).
    let mut other = DaveSession::new(NonZeroU16::MIN, 42, 43, None).expect("session");
    let kp = other.create_key_package().expect("key package");
    client
        .send_binary(binary(ClientMessage::DaveMlsKeyPackage(kp)))
        .await
        .expect("sends");
    let report = violations_of(&server, ViolationKind::DaveMls, 2).await;
    let details: Vec<&str> = report
        .violations_of(ViolationKind::DaveMls)
        .iter()
        .map(|v| v.detail.as_str())
        .collect();
    assert!(details[0].contains("op 26"), "{report}");
    assert!(details[1].contains("expected the user id"), "{report}");
}

#[tokio::test]
async fn a_client_that_never_commits_or_confirms_is_reported_and_the_call_goes_on() {
    let server = VoiceServer::start(config()).await.expect("starts");
    let (mut client, _info, mut dave) = joined(&server).await;
    let kp = dave.create_key_package().expect("key package");
    client
        .send_binary(binary(ClientMessage::DaveMlsKeyPackage(kp)))
        .await
        .expect("sends");
    // The listener's key package makes two: the client is asked to commit. It does not.
    let ServerMessage::DaveMlsProposals { proposals, .. } = client
        .recv_until(STEP_TIMEOUT, |m| {
            matches!(m, ServerMessage::DaveMlsProposals { .. })
        })
        .await
        .expect("op 27")
    else {
        unreachable!()
    };
    dave.process_proposals(ProposalsOperationType::APPEND, &proposals, None)
        .expect("valid proposals");
    // After the commit timeout the listener's commit is used: we are welcomed.
    let ServerMessage::DaveMlsWelcome {
        transition_id,
        welcome,
    } = client
        .recv_until(STEP_TIMEOUT, |m| {
            matches!(m, ServerMessage::DaveMlsWelcome { .. })
        })
        .await
        .expect("op 30")
    else {
        unreachable!()
    };
    dave.process_welcome(&welcome, None).expect("valid welcome");
    // No op 23: executed anyway after the transition timeout.
    let executed = client
        .recv_until(STEP_TIMEOUT, |m| {
            matches!(m, ServerMessage::DaveExecuteTransition(t) if t.transition_id == transition_id)
        })
        .await;
    assert!(executed.is_ok(), "op 22 without our op 23");
    violations_of(&server, ViolationKind::DaveMls, 1).await;
    let report = violations_of(&server, ViolationKind::DaveTransition, 1).await;
    assert!(
        report.violations_of(ViolationKind::DaveMls)[0]
            .detail
            .contains("no op 28"),
        "{report}"
    );
    assert_eq!(report.dave[0].transitions_executed, 1, "{report}");
}

#[tokio::test]
async fn op_23_for_a_transition_never_announced_is_a_violation() {
    let server = VoiceServer::start(config()).await.expect("starts");
    let (mut client, _info, _dave) = joined(&server).await;
    client
        .send_text(r#"{"op":23,"d":{"transition_id":999}}"#)
        .await
        .expect("sends");
    let report = violations_of(&server, ViolationKind::DaveTransition, 1).await;
    assert!(
        report.violations_of(ViolationKind::DaveTransition)[0]
            .detail
            .contains("never announced"),
        "{report}"
    );
}

/// Arbitrary op 26/28 payloads from a DAVE client are violations at worst: the server keeps
/// answering and its simulated member keeps working.
#[tokio::test]
async fn arbitrary_dave_binary_frames_never_break_the_server() {
    let server = VoiceServer::start(config()).await.expect("starts");
    let (mut client, _info, _dave) = joined(&server).await;
    let mut runner = TestRunner::new(Config::default());
    let strategy = proptest::collection::vec(
        (
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..600),
        ),
        200,
    );
    let cases = strategy.new_tree(&mut runner).expect("generates").current();
    let frames: Vec<Vec<u8>> = cases
        .into_iter()
        .map(|(commit, payload)| {
            binary(if commit {
                ClientMessage::DaveMlsCommitWelcome(payload)
            } else {
                ClientMessage::DaveMlsKeyPackage(payload)
            })
        })
        .collect();
    for frame in frames {
        client.send_binary(frame).await.expect("sends");
    }
    client.heartbeat(1).await.expect("sends");
    let ack = client
        .recv_until(STEP_TIMEOUT, |m| {
            matches!(m, ServerMessage::HeartbeatAck(_))
        })
        .await;
    assert!(ack.is_ok(), "the server still answers");
    let report = server.report();
    assert!(
        report
            .violations
            .iter()
            .all(|v| v.kind == ViolationKind::DaveMls),
        "{report}"
    );
    assert!(report.dave[0].simulated_errors.is_empty(), "{report}");
}
