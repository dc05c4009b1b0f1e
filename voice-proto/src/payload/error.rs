//! Why a voice gateway frame could not be decoded.

use super::Opcode;

/// A voice gateway frame that could not be decoded.
///
/// Each message says what was expected and what arrived. None of them ever contains a secret value
/// (`token`, `secret_key`): fields holding secrets are checked before serde sees them and described
/// by their JSON type and size only.
///
/// An error concerns one frame. Unknown opcodes are never an error (they decode to the `Unknown`
/// variants), so a caller can usually log the error and drop the frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A text frame that is not valid JSON.
    #[error("expected a JSON text frame, but it is not valid JSON: {detail}")]
    NotJson {
        /// serde_json's description of the syntax error (it never quotes the input).
        detail: String,
    },
    /// Valid JSON whose top level is not an object.
    #[error("expected a JSON object envelope {{\"op\":..,\"d\":..}}, found {found}")]
    NotAnObject {
        /// The JSON type that arrived, e.g. `an array of 3 elements`.
        found: String,
    },
    /// A required envelope field is absent.
    #[error("expected field `{field}` in the message envelope, but it is missing")]
    MissingField {
        /// The missing field.
        field: &'static str,
    },
    /// `op` is not an integer in `0..=255`.
    #[error("expected `op` to be an integer in 0..=255, found {found}")]
    InvalidOpcode {
        /// What arrived instead, e.g. `a string of 5 bytes` or `the number 300`.
        found: String,
    },
    /// A message that needs a `d` payload has none (absent or `null`).
    #[error("expected a `d` payload for op {op}, but it is missing or null")]
    MissingPayload {
        /// The message's opcode.
        op: Opcode,
    },
    /// The `d` payload does not have the shape of the opcode's message.
    #[error("invalid payload for op {op}: {detail}")]
    InvalidPayload {
        /// The message's opcode.
        op: Opcode,
        /// What was wrong, in serde_json's words or ours.
        detail: String,
    },
    /// A binary frame with no bytes at all.
    #[error("expected a binary frame with at least an opcode byte, found 0 bytes")]
    EmptyFrame,
    /// A binary frame shorter than its fixed-size fields.
    #[error("binary frame too short for {what}: expected at least {needed} bytes, found {actual}")]
    TooShort {
        /// The part that did not fit, e.g. `the [seq u16][op u8] prefix`.
        what: &'static str,
        /// Minimum frame length in bytes.
        needed: usize,
        /// Actual frame length in bytes.
        actual: usize,
    },
    /// A JSON opcode arrived in a binary frame.
    #[error(
        "op {op} is a JSON message, expected in a text frame, but it arrived in a binary frame"
    )]
    ExpectedText {
        /// The opcode found in the binary frame.
        op: Opcode,
    },
    /// A binary (DAVE MLS) opcode arrived in a text frame.
    #[error(
        "op {op} is a binary message, expected in a binary frame, but it arrived in a text frame"
    )]
    ExpectedBinary {
        /// The opcode found in the text frame.
        op: Opcode,
    },
    /// A binary opcode that only the other side sends.
    #[error("op {op} is a binary message sent only {sent_by}, but it arrived from the other side")]
    WrongDirection {
        /// The opcode found in the frame.
        op: Opcode,
        /// Who sends this opcode: `by the client` or `by the server`.
        sent_by: &'static str,
    },
}
