//! The close-code policy, row by row (docs/protocol.md 5, C11, C12).

use voice_proto::close::{describe, disposition, CloseDisposition, FatalReason, VOICE_CLOSE_CODES};
use CloseDisposition::{AwaitMove, Fatal, Finished, Reconnect, RejoinOnce, Resume};

/// (code sent by the server, expected disposition, why).
const SERVER_CLOSES: &[(u16, CloseDisposition, &str)] = &[
    (
        1000,
        Resume,
        "normal close by the server: resume (DJS); a dead session fails the resume",
    ),
    (1001, Resume, "going away: transport loss"),
    (1002, Resume, "websocket protocol error: transport loss"),
    (1005, Resume, "no status: transport loss"),
    (1006, Resume, "abnormal closure: transport loss"),
    (1011, Resume, "internal error: transport loss"),
    (1012, Resume, "service restart: transport loss"),
    (1015, Resume, "TLS failure: transport loss"),
    (2000, Resume, "unassigned < 4000: transport loss"),
    (3000, Resume, "registered < 4000: transport loss"),
    (3999, Resume, "top of the < 4000 range"),
    (4000, Reconnect, "undocumented 4xxx"),
    (
        4001,
        Reconnect,
        "unknown opcode: client bug, fresh connect once",
    ),
    (4002, Reconnect, "failed to decode payload: client bug"),
    (4003, Reconnect, "not authenticated: client bug"),
    (
        4004,
        RejoinOnce(FatalReason::AuthenticationFailed),
        "authentication failed: one rejoin for a new token, then fatal",
    ),
    (4005, Reconnect, "already authenticated: client bug"),
    (
        4006,
        Reconnect,
        "session no longer valid: full rejoin (C12)",
    ),
    (4007, Reconnect, "undocumented 4xxx"),
    (4008, Reconnect, "undocumented 4xxx"),
    (4009, Reconnect, "session timeout: fresh rejoin"),
    (4010, Reconnect, "undocumented 4xxx"),
    (4011, Reconnect, "server not found: full rejoin (C12)"),
    (4012, Reconnect, "unknown protocol: client bug"),
    (4013, Resume, "WebRTC crashed (unofficial): resume"),
    (4014, AwaitMove, "disconnected/moved: never resume (C11)"),
    (4015, Resume, "voice server crashed: resume (C11)"),
    (
        4016,
        Fatal(FatalReason::UnknownEncryptionMode),
        "unknown encryption mode",
    ),
    (
        4017,
        Fatal(FatalReason::DaveRequired),
        "DAVE required: never retry without DAVE (C11)",
    ),
    (4018, Reconnect, "undocumented 4xxx"),
    (4019, Reconnect, "undocumented 4xxx"),
    (4020, Reconnect, "bad request: client bug"),
    (
        4021,
        Fatal(FatalReason::RateLimited),
        "rate limited: never reconnect (C11)",
    ),
    (4022, AwaitMove, "call terminated: never resume (C11)"),
    (4023, Reconnect, "undocumented 4xxx"),
    (4999, Reconnect, "top of the 4xxx range"),
    (0, Reconnect, "not a websocket close code"),
    (999, Reconnect, "below the websocket range"),
    (5000, Reconnect, "above the 4xxx range"),
    (65535, Reconnect, "largest u16"),
];

#[test]
fn every_server_close_code_row() {
    for &(code, expected, why) in SERVER_CLOSES {
        assert_eq!(
            disposition(Some(code), false),
            expected,
            "close {code} ({why})"
        );
    }
}

#[test]
fn transport_loss_without_close_frame_resumes() {
    assert_eq!(disposition(None, false), Resume);
    assert_eq!(disposition(None, true), Resume);
}

#[test]
fn our_own_closes() {
    // We closed normally: the connection is over.
    assert_eq!(disposition(Some(1000), true), Finished);
    // Any other code we chose (e.g. 4000 after missed ACKs, C10) is not the server's verdict.
    for code in [1001, 1006, 3000, 4000, 4004, 4006, 4014, 4017, 4021, 5000] {
        assert_eq!(disposition(Some(code), true), Resume, "our close {code}");
    }
}

#[test]
fn every_code_in_the_table_agrees_with_disposition() {
    for row in VOICE_CLOSE_CODES {
        assert!((4000..5000).contains(&row.code));
        assert_eq!(
            disposition(Some(row.code), false),
            row.disposition,
            "{}",
            row.code
        );
        assert_eq!(describe(row.code), row.meaning);
        assert!(!row.meaning.is_empty());
    }
    // Strictly increasing: sorted, no duplicate rows.
    assert!(VOICE_CLOSE_CODES
        .windows(2)
        .all(|pair| pair[0].code < pair[1].code));
}

#[test]
fn the_policy_never_resumes_a_fatal_or_moved_session() {
    // C11: 4014, 4017, 4021, 4022 never lead to an automatic resume.
    for code in [4014, 4017, 4021, 4022] {
        assert_ne!(disposition(Some(code), false), Resume, "{code}");
    }
    // C12: 4006 and 4011 lead to a fresh join, not to Resume (4004: one rejoin for a new token).
    for code in [4004, 4006, 4011] {
        assert_ne!(disposition(Some(code), false), Resume, "{code}");
    }
}

#[test]
fn fatal_reasons_explain_themselves() {
    for (reason, code, needle) in [
        (FatalReason::AuthenticationFailed, 4004, "token"),
        (FatalReason::UnknownEncryptionMode, 4016, "encryption mode"),
        (
            FatalReason::DaveRequired,
            4017,
            "requires DAVE end-to-end encryption",
        ),
        (FatalReason::RateLimited, 4021, "rate-limited"),
    ] {
        assert_eq!(reason.close_code(), code);
        let expected = if code == 4004 {
            RejoinOnce(reason)
        } else {
            Fatal(reason)
        };
        assert_eq!(disposition(Some(code), false), expected);
        let message = reason.to_string();
        assert!(message.contains(&format!("close {code}")), "{message}");
        assert!(message.contains(needle), "{message}");
    }
    assert!(FatalReason::DaveRequired
        .to_string()
        .starts_with("the voice server requires DAVE end-to-end encryption (close 4017); "));
}

#[test]
fn describe_known_and_unknown_codes() {
    assert_eq!(describe(1000), "normal closure");
    assert!(describe(1006).contains("abnormal"));
    assert_eq!(describe(4015), "voice server crashed");
    assert_eq!(describe(4017), "E2EE/DAVE protocol required");
    assert_eq!(describe(4000), "unknown close code");
    assert_eq!(describe(4018), "unknown close code");
    assert_eq!(describe(0), "unknown close code");
    assert_eq!(describe(65535), "unknown close code");
}
