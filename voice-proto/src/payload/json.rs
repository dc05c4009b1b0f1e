//! Shared JSON plumbing: the `{op, d, seq}` envelope, payload decoding and secret-safe checks.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{DecodeError, Opcode};
use crate::secret::SECRET_KEY_LEN;

/// A parsed text frame: opcode, payload (`None` when absent or `null`) and sequence number.
pub(crate) struct Envelope {
    pub(crate) op: u8,
    pub(crate) d: Option<Value>,
    pub(crate) seq: Option<u64>,
}

impl Envelope {
    /// Parses `{"op":N,"d":...,"seq":N}`; other top-level fields are ignored.
    pub(crate) fn parse(text: &str) -> Result<Self, DecodeError> {
        // serde_json's syntax errors name a position, never the input, and its recursion limit
        // turns deeply nested input into an error instead of a stack overflow.
        let value: Value = serde_json::from_str(text).map_err(|error| DecodeError::NotJson {
            detail: error.to_string(),
        })?;
        let Value::Object(mut map) = value else {
            return Err(DecodeError::NotAnObject {
                found: describe(&value),
            });
        };
        let op = match map.get("op") {
            None => return Err(DecodeError::MissingField { field: "op" }),
            Some(op) => op
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| DecodeError::InvalidOpcode {
                    found: match op {
                        Value::Number(n) => format!("the number {n}"),
                        other => describe(other),
                    },
                })?,
        };
        let d = match map.remove("d") {
            None | Some(Value::Null) => None,
            Some(d) => Some(d),
        };
        // The seq only feeds the seq_ack we echo back. A malformed one (negative, fractional, a
        // string) must not cost us the message it came with (say a Session Description), so it is
        // ignored; the worst outcome is a slightly older seq_ack and a replayed message on resume.
        let seq = map.get("seq").and_then(Value::as_u64);
        Ok(Self { op, d, seq })
    }

    /// The raw `d` JSON text for an unknown opcode (`null` when absent).
    pub(crate) fn raw_d(&self) -> String {
        self.d
            .as_ref()
            .map_or_else(|| "null".to_owned(), Value::to_string)
    }

    /// Deserializes `d` into a payload struct.
    ///
    /// `d` must be an object; its type is described without quoting it, since a misplaced secret
    /// could be sitting there.
    pub(crate) fn payload<T>(&self, op: Opcode) -> Result<T, DecodeError>
    where
        T: for<'de> Deserialize<'de>,
    {
        let d = self.object(op)?;
        T::deserialize(d).map_err(|error| DecodeError::InvalidPayload {
            op,
            detail: error.to_string(),
        })
    }

    /// A payload that is an object in v8 but a bare integer nonce in older versions (ops 3 and 6).
    pub(crate) fn nonce_payload<T>(
        &self,
        op: Opcode,
        legacy: impl FnOnce(u64) -> T,
    ) -> Result<T, DecodeError>
    where
        T: for<'de> Deserialize<'de>,
    {
        match self.d.as_ref().and_then(Value::as_u64) {
            Some(nonce) => Ok(legacy(nonce)),
            None => self.payload(op),
        }
    }

    /// `d` as an object, or an error that names only its JSON type.
    fn object(&self, op: Opcode) -> Result<&Value, DecodeError> {
        match &self.d {
            None => Err(DecodeError::MissingPayload { op }),
            Some(d @ Value::Object(_)) => Ok(d),
            Some(other) => Err(DecodeError::InvalidPayload {
                op,
                detail: format!("expected an object, found {}", describe(other)),
            }),
        }
    }

    /// Checks that `token`, if present, is a string before serde sees it: serde would quote a
    /// non-string token in its error message.
    pub(crate) fn check_token(&self, op: Opcode) -> Result<(), DecodeError> {
        match self.object(op)?.get("token") {
            None | Some(Value::String(_)) => Ok(()),
            Some(other) => Err(DecodeError::InvalidPayload {
                op,
                detail: format!(
                    "field `token`: expected a string, found {}",
                    describe(other)
                ),
            }),
        }
    }

    /// Checks that `secret_key`, if present, is exactly 32 integers in 0..=255 (C17), describing a
    /// bad key by shape only: serde would quote the offending element.
    pub(crate) fn check_secret_key(&self, op: Opcode) -> Result<(), DecodeError> {
        let problem = match self.object(op)?.get("secret_key") {
            None => return Ok(()),
            Some(Value::Array(items)) if items.len() != SECRET_KEY_LEN => {
                format!("an array of {}", count(items.len(), "element"))
            }
            Some(Value::Array(items)) => {
                match items.iter().position(|item| match item.as_u64() {
                    Some(byte) => byte > 255,
                    None => true,
                }) {
                    None => return Ok(()),
                    Some(index) => format!(
                        "an array of {SECRET_KEY_LEN} elements whose element {index} is not an \
                         integer in 0..=255"
                    ),
                }
            }
            Some(other) => describe(other),
        };
        Err(DecodeError::InvalidPayload {
            op,
            detail: format!(
                "field `secret_key`: expected an array of exactly {SECRET_KEY_LEN} integers in \
                 0..=255, found {problem}"
            ),
        })
    }
}

/// A JSON value's type and size, never its content.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(_) => "a boolean".to_owned(),
        Value::Number(_) => "a number".to_owned(),
        Value::String(s) => format!("a string of {}", count(s.len(), "byte")),
        Value::Array(items) => format!("an array of {}", count(items.len(), "element")),
        Value::Object(map) => format!("an object with {}", count(map.len(), "field")),
    }
}

/// `1 byte`, `2 bytes`.
pub(crate) fn count(n: usize, unit: &str) -> String {
    let plural = if n == 1 { "" } else { "s" };
    format!("{n} {unit}{plural}")
}

/// The outgoing envelope; field order matches Discord's examples.
#[derive(Serialize)]
struct OutEnvelope<'a, T: Serialize> {
    op: u8,
    d: &'a T,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

/// Encodes `{"op":op,"d":d}` (plus `"seq"` when given).
pub(crate) fn encode<T: Serialize>(op: u8, d: &T, seq: Option<u64>) -> String {
    // Serializing our payload types into a String cannot fail (no maps with non-string keys, no
    // fallible Serialize impls, no I/O), so the fallback is unreachable; it only keeps encoding
    // total without a panic.
    serde_json::to_string(&OutEnvelope { op, d, seq })
        .unwrap_or_else(|_| format!("{{\"op\":{op},\"d\":null}}"))
}

/// Encodes an unknown opcode's raw `d` text: embedded as JSON when it parses, else as a JSON string
/// so the output is always valid JSON.
pub(crate) fn encode_raw(op: u8, raw: &str, seq: Option<u64>) -> String {
    let d = serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
    encode(op, &d, seq)
}
