//! Strict shape checks of client text frames, on top of voice-proto's (deliberately lenient)
//! decoder: voice-proto accepts numeric snowflakes and legacy bare-integer heartbeats so a client
//! survives odd servers; a test server must flag them instead.
//!
//! Each check returns the problems found as `(kind, detail)`; details describe JSON types, never
//! values of secret fields.

use serde_json::{Map, Value};

use crate::report::ViolationKind;

/// The largest integer every JSON implementation represents exactly (2^53 - 1).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A problem found in a frame.
pub type Issue = (ViolationKind, String);

/// The envelope of a client text frame: `op` and the `d` value (`Null` if absent).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The opcode.
    pub op: u8,
    /// The payload.
    pub d: Value,
}

/// Parses the `{op, d}` envelope, or says why the frame is not one.
pub fn envelope(text: &str) -> Result<Envelope, Issue> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| (ViolationKind::MalformedJson, format!("not valid JSON: {e}")))?;
    let Value::Object(mut map) = value else {
        return Err((
            ViolationKind::MalformedJson,
            format!("expected a JSON object, found {}", describe(&value)),
        ));
    };
    let op = match map.get("op") {
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u8::try_from(n).ok()),
        _ => None,
    };
    let Some(op) = op else {
        let found = map.get("op").map_or("nothing".to_owned(), describe);
        return Err((
            ViolationKind::MalformedJson,
            format!("expected `op` to be an integer in 0..=255, found {found}"),
        ));
    };
    let d = map.remove("d").unwrap_or(Value::Null);
    Ok(Envelope { op, d })
}

/// Checks the payload shape of a client message by opcode. Unknown opcodes are not checked here.
pub fn check(envelope: &Envelope) -> Vec<Issue> {
    let mut issues = Vec::new();
    let d = &envelope.d;
    match envelope.op {
        0 => with_object(d, "Identify", &mut issues, |m, issues| {
            for field in ["server_id", "user_id"] {
                snowflake(m, field, "Identify", issues);
            }
            for field in ["session_id", "token"] {
                string(m, field, "Identify", issues);
            }
            if let Some(v) = m.get("max_dave_protocol_version") {
                if !v.is_u64() {
                    issues.push(invalid(format!(
                        "Identify `max_dave_protocol_version`: expected a non-negative integer, found {}",
                        describe(v)
                    )));
                }
            }
        }),
        1 => with_object(d, "Select Protocol", &mut issues, |m, issues| {
            string(m, "protocol", "Select Protocol", issues);
            match m.get("data") {
                Some(Value::Object(data)) => {
                    string(data, "address", "Select Protocol data", issues);
                    match data.get("port") {
                        Some(Value::Number(n)) if n.as_u64().is_some_and(|p| (1..=65535).contains(&p)) => {}
                        other => issues.push(invalid(format!(
                            "Select Protocol data `port`: expected an integer in 1..=65535, found {}",
                            other.map_or("nothing".to_owned(), describe)
                        ))),
                    }
                    string(data, "mode", "Select Protocol data", issues);
                }
                other => issues.push(invalid(format!(
                    "Select Protocol `data`: expected an object, found {}",
                    other.map_or("nothing".to_owned(), describe)
                ))),
            }
        }),
        3 => match d {
            Value::Object(m) => {
                match m.get("t") {
                    Some(Value::Number(n)) if n.as_u64().is_some_and(|t| t <= MAX_SAFE_INTEGER) => {
                    }
                    other => issues.push((
                        ViolationKind::HeartbeatShape,
                        format!(
                            "Heartbeat `t`: expected an integer in 0..=2^53-1, found {}",
                            other.map_or("nothing".to_owned(), describe)
                        ),
                    )),
                }
                match m.get("seq_ack") {
                    Some(Value::Number(n)) if n.is_i64() => {}
                    other => issues.push((
                        ViolationKind::HeartbeatShape,
                        format!(
                            "Heartbeat `seq_ack`: expected an integer (v8), found {}",
                            other.map_or("nothing".to_owned(), describe)
                        ),
                    )),
                }
            }
            other => issues.push((
                ViolationKind::HeartbeatShape,
                format!(
                    "Heartbeat `d`: expected {{t, seq_ack}} (v8), found {}",
                    describe(other)
                ),
            )),
        },
        5 => with_object(d, "Speaking", &mut issues, |m, issues| {
            unsigned(m, "speaking", "Speaking", u64::from(u32::MAX), issues);
            unsigned(m, "ssrc", "Speaking", u64::from(u32::MAX), issues);
            if m.contains_key("delay") {
                unsigned(m, "delay", "Speaking", u64::from(u32::MAX), issues);
            } else {
                issues.push(invalid(
                    "Speaking: expected field `delay` (0 for bots), found nothing".into(),
                ));
            }
        }),
        7 => with_object(d, "Resume", &mut issues, |m, issues| {
            snowflake(m, "server_id", "Resume", issues);
            for field in ["session_id", "token"] {
                string(m, field, "Resume", issues);
            }
            match m.get("seq_ack") {
                Some(Value::Number(n)) if n.is_i64() => {}
                other => issues.push(invalid(format!(
                    "Resume `seq_ack`: expected an integer (v8), found {}",
                    other.map_or("nothing".to_owned(), describe)
                ))),
            }
        }),
        23 | 31 => with_object(d, "DAVE transition", &mut issues, |m, issues| {
            unsigned(
                m,
                "transition_id",
                "DAVE transition",
                u64::from(u16::MAX),
                issues,
            );
        }),
        _ => {}
    }
    issues
}

fn invalid(detail: String) -> Issue {
    (ViolationKind::InvalidPayload, detail)
}

fn with_object(
    d: &Value,
    what: &str,
    issues: &mut Vec<Issue>,
    body: impl FnOnce(&Map<String, Value>, &mut Vec<Issue>),
) {
    match d {
        Value::Object(m) => body(m, issues),
        other => issues.push(invalid(format!(
            "{what} `d`: expected an object, found {}",
            describe(other)
        ))),
    }
}

fn string(m: &Map<String, Value>, field: &str, what: &str, issues: &mut Vec<Issue>) {
    match m.get(field) {
        Some(Value::String(_)) => {}
        other => issues.push(invalid(format!(
            "{what} `{field}`: expected a string, found {}",
            other.map_or("nothing".to_owned(), describe)
        ))),
    }
}

fn snowflake(m: &Map<String, Value>, field: &str, what: &str, issues: &mut Vec<Issue>) {
    match m.get(field) {
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) => {}
        other => issues.push(invalid(format!(
            "{what} `{field}`: expected a snowflake as a string of digits, found {}",
            other.map_or("nothing".to_owned(), describe)
        ))),
    }
}

fn unsigned(m: &Map<String, Value>, field: &str, what: &str, max: u64, issues: &mut Vec<Issue>) {
    match m.get(field) {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v <= max) => {}
        other => issues.push(invalid(format!(
            "{what} `{field}`: expected an integer in 0..={max}, found {}",
            other.map_or("nothing".to_owned(), describe)
        ))),
    }
}

/// A JSON value's type, never its content (it may be a secret).
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(n) if n.is_f64() => "a fractional number".into(),
        Value::Number(n) if n.is_i64() && n.as_i64().is_some_and(|v| v < 0) => {
            "a negative integer".into()
        }
        Value::Number(_) => "an integer".into(),
        Value::String(s) => format!("a string of {} bytes", s.len()),
        Value::Array(a) => format!("an array of {} elements", a.len()),
        Value::Object(o) => format!("an object with {} fields", o.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(text: &str) -> Vec<ViolationKind> {
        match envelope(text) {
            Ok(e) => check(&e).into_iter().map(|(k, _)| k).collect(),
            Err((k, _)) => vec![k],
        }
    }

    #[test]
    fn well_formed_client_messages_pass() {
        for text in [
            r#"{"op":0,"d":{"server_id":"1","user_id":"2","session_id":"s","token":"t","max_dave_protocol_version":1}}"#,
            r#"{"op":1,"d":{"protocol":"udp","data":{"address":"127.0.0.1","port":5000,"mode":"aead_aes256_gcm_rtpsize"}}}"#,
            r#"{"op":3,"d":{"t":1732500000000,"seq_ack":-1}}"#,
            r#"{"op":5,"d":{"speaking":1,"delay":0,"ssrc":4294967295}}"#,
            r#"{"op":7,"d":{"server_id":"1","session_id":"s","token":"t","seq_ack":3}}"#,
        ] {
            assert_eq!(issues(text), vec![], "{text}");
        }
    }

    #[test]
    fn malformed_frames_are_named() {
        assert_eq!(issues("{\"op\":"), vec![ViolationKind::MalformedJson]);
        assert_eq!(issues("[1,2]"), vec![ViolationKind::MalformedJson]);
        assert_eq!(
            issues(r#"{"op":"0","d":{}}"#),
            vec![ViolationKind::MalformedJson]
        );
        assert_eq!(issues(r#"{"op":300}"#), vec![ViolationKind::MalformedJson]);
    }

    #[test]
    fn numeric_snowflakes_and_wrong_types_are_invalid_payloads() {
        let text = r#"{"op":0,"d":{"server_id":1,"user_id":"2","session_id":"s","token":5}}"#;
        let (kind, detail) = check(&envelope(text).expect("envelope")).remove(0);
        assert_eq!(kind, ViolationKind::InvalidPayload);
        assert!(detail.contains("server_id"), "{detail}");
        assert_eq!(issues(text).len(), 2);
        let secret =
            r#"{"op":0,"d":{"server_id":"1","user_id":"2","session_id":"s","token":12345678}}"#;
        let details: Vec<String> = check(&envelope(secret).expect("envelope"))
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        assert!(
            details.iter().all(|d| !d.contains("12345678")),
            "secrets are never quoted: {details:?}"
        );
    }

    #[test]
    fn heartbeat_must_be_v8_shaped() {
        assert_eq!(
            issues(r#"{"op":3,"d":1234}"#),
            vec![ViolationKind::HeartbeatShape]
        );
        assert_eq!(
            issues(r#"{"op":3,"d":{"t":1}}"#),
            vec![ViolationKind::HeartbeatShape]
        );
        assert_eq!(
            issues(r#"{"op":3,"d":{"t":"1","seq_ack":1}}"#),
            vec![ViolationKind::HeartbeatShape]
        );
        assert_eq!(
            issues(r#"{"op":3,"d":{"t":9007199254740992,"seq_ack":1}}"#),
            vec![ViolationKind::HeartbeatShape]
        );
    }

    #[test]
    fn select_protocol_and_speaking_fields_are_checked() {
        assert_eq!(
            issues(
                r#"{"op":1,"d":{"protocol":"udp","data":{"address":"x","port":70000,"mode":"m"}}}"#
            ),
            vec![ViolationKind::InvalidPayload]
        );
        assert_eq!(
            issues(r#"{"op":1,"d":{"protocol":"udp"}}"#),
            vec![ViolationKind::InvalidPayload]
        );
        assert_eq!(
            issues(r#"{"op":5,"d":{"speaking":true,"ssrc":1,"delay":0}}"#),
            vec![ViolationKind::InvalidPayload]
        );
        assert_eq!(
            issues(r#"{"op":5,"d":{"speaking":1,"ssrc":1}}"#),
            vec![ViolationKind::InvalidPayload]
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn any_text_is_checked_without_panic(text in ".{0,300}") {
            if let Ok(envelope) = envelope(&text) {
                let _ = check(&envelope);
            }
        }

        #[test]
        fn any_payload_shape_under_any_client_op_is_checked_without_panic(
            op in 0u8..40,
            d in prop_oneof![
                Just("null".to_owned()),
                Just("{}".to_owned()),
                Just("[1,2]".to_owned()),
                Just(r#"{"t":-1,"seq_ack":1.5,"data":7,"port":-3,"speaking":"x"}"#.to_owned()),
                any::<i64>().prop_map(|n| n.to_string()),
                ".{0,40}".prop_map(|s| serde_json::Value::String(s).to_string()),
            ],
        ) {
            let text = format!(r#"{{"op":{op},"d":{d}}}"#);
            let envelope = envelope(&text).expect("a valid envelope");
            let _ = check(&envelope);
        }
    }
}
