//! [`Encoded`]: one websocket frame ready to send, and the binary frame helpers.

use core::fmt;

use super::DecodeError;

/// One websocket frame ready to send: JSON messages go in text frames, DAVE MLS messages
/// (ops 25..=30) in binary frames.
///
/// `Debug` shows only the kind and length: an encoded Identify or Resume contains the token in
/// clear, and frames are exactly what an adapter is tempted to log.
#[derive(Clone, PartialEq, Eq)]
pub enum Encoded {
    /// A websocket text frame (JSON).
    Text(String),
    /// A websocket binary frame.
    Binary(Vec<u8>),
}

impl Encoded {
    /// The JSON text, if this is a text frame.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            Self::Binary(_) => None,
        }
    }

    /// The bytes, if this is a binary frame.
    pub fn as_binary(&self) -> Option<&[u8]> {
        match self {
            Self::Text(_) => None,
            Self::Binary(bytes) => Some(bytes),
        }
    }
}

impl fmt::Debug for Encoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => write!(f, "Text(<{} bytes>)", text.len()),
            Self::Binary(bytes) => write!(f, "Binary(<{} bytes>)", bytes.len()),
        }
    }
}

/// Splits a `u16 BE transition_id` + body payload (ops 29 and 30, C36).
pub(crate) fn split_transition(
    payload: &[u8],
    prefix_len: usize,
    what: &'static str,
) -> Result<(u16, Vec<u8>), DecodeError> {
    match payload {
        [hi, lo, body @ ..] => Ok((u16::from_be_bytes([*hi, *lo]), body.to_vec())),
        _ => Err(DecodeError::TooShort {
            what,
            needed: prefix_len + 2,
            actual: prefix_len + payload.len(),
        }),
    }
}

/// Builds a binary frame: optional prefix (the server's seq), opcode, then the parts in order.
pub(crate) fn binary(prefix: &[u8], op: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = prefix.len() + 1 + parts.iter().map(|part| part.len()).sum::<usize>();
    let mut frame = Vec::with_capacity(len);
    frame.extend_from_slice(prefix);
    frame.push(op);
    for part in parts {
        frame.extend_from_slice(part);
    }
    frame
}
