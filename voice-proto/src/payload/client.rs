//! Client -> server messages ([`ClientMessage`]) and their frame codec.

use super::frame::binary;
use super::json::{encode, encode_raw, Envelope};
use super::{
    DaveMlsInvalidCommitWelcome, DaveTransitionReady, DecodeError, Encoded, Heartbeat, Identify,
    Opcode, Resume, SelectProtocol, Speaking,
};

/// A message from the client to the voice gateway.
///
/// Client frames carry no sequence number; binary ones are `[op u8][payload]` (C32).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientMessage {
    /// Op 0 (its `Debug` redacts the token).
    Identify(Identify),
    /// Op 1.
    SelectProtocol(SelectProtocol),
    /// Op 3, v8 `{t, seq_ack}` (C7).
    Heartbeat(Heartbeat),
    /// Op 5.
    Speaking(Speaking),
    /// Op 7 (its `Debug` redacts the token).
    Resume(Resume),
    /// Op 23.
    DaveTransitionReady(DaveTransitionReady),
    /// Op 31.
    DaveMlsInvalidCommitWelcome(DaveMlsInvalidCommitWelcome),
    /// Op 26 (binary): a TLS-serialized `KeyPackage`.
    DaveMlsKeyPackage(Vec<u8>),
    /// Op 28 (binary): `MLSMessage` commit, followed by a `Welcome` when the commit adds members.
    DaveMlsCommitWelcome(Vec<u8>),
    /// A known JSON opcode that is not a modelled client message (e.g. 16, 32, or server-only
    /// ops); its payload is dropped. Encodes as `{"op":N,"d":null}`.
    Ignored {
        /// The opcode.
        op: Opcode,
    },
    /// A JSON message with an opcode outside the table.
    Unknown {
        /// The opcode.
        op: u8,
        /// The `d` payload as JSON text (`null` when absent).
        raw: String,
    },
    /// A binary message with an opcode outside the table.
    UnknownBinary {
        /// The opcode.
        op: u8,
        /// The bytes after the opcode.
        payload: Vec<u8>,
    },
}

impl ClientMessage {
    /// The wire opcode.
    pub fn op(&self) -> u8 {
        let op = match self {
            Self::Unknown { op, .. } | Self::UnknownBinary { op, .. } => return *op,
            Self::Ignored { op } => *op,
            Self::Identify(_) => Opcode::Identify,
            Self::SelectProtocol(_) => Opcode::SelectProtocol,
            Self::Heartbeat(_) => Opcode::Heartbeat,
            Self::Speaking(_) => Opcode::Speaking,
            Self::Resume(_) => Opcode::Resume,
            Self::DaveTransitionReady(_) => Opcode::DaveTransitionReady,
            Self::DaveMlsInvalidCommitWelcome(_) => Opcode::DaveMlsInvalidCommitWelcome,
            Self::DaveMlsKeyPackage(_) => Opcode::DaveMlsKeyPackage,
            Self::DaveMlsCommitWelcome(_) => Opcode::DaveMlsCommitWelcome,
        };
        op.as_u8()
    }

    /// The table entry for [`ClientMessage::op`], or `None` when it is outside the table.
    pub fn opcode(&self) -> Option<Opcode> {
        Opcode::from_u8(self.op())
    }

    /// Encodes the message: JSON in a text frame, ops 26/28 (and unknown binary) as
    /// `[op u8][payload]` in a binary frame.
    pub fn encode(&self) -> Encoded {
        let op = self.op();
        match self {
            Self::Identify(d) => Encoded::Text(encode(op, d, None)),
            Self::SelectProtocol(d) => Encoded::Text(encode(op, d, None)),
            Self::Heartbeat(d) => Encoded::Text(encode(op, d, None)),
            Self::Speaking(d) => Encoded::Text(encode(op, d, None)),
            Self::Resume(d) => Encoded::Text(encode(op, d, None)),
            Self::DaveTransitionReady(d) => Encoded::Text(encode(op, d, None)),
            Self::DaveMlsInvalidCommitWelcome(d) => Encoded::Text(encode(op, d, None)),
            Self::Ignored { .. } => Encoded::Text(encode(op, &(), None)),
            Self::Unknown { raw, .. } => Encoded::Text(encode_raw(op, raw, None)),
            Self::DaveMlsKeyPackage(payload)
            | Self::DaveMlsCommitWelcome(payload)
            | Self::UnknownBinary { payload, .. } => Encoded::Binary(binary(&[], op, &[payload])),
        }
    }

    /// Decodes a client text frame (the server side of the protocol, e.g. a test server).
    ///
    /// Unknown fields are ignored; an unknown opcode becomes [`ClientMessage::Unknown`]. A v < 8
    /// heartbeat (bare integer `d`) is accepted with `seq_ack = -1`.
    pub fn decode_text(text: &str) -> Result<Self, DecodeError> {
        // Identify and Resume carry the token: decoded without a `Value` in between.
        if let Some(message) = super::secret_json::identify_or_resume(text) {
            return Ok(message);
        }
        let envelope = Envelope::parse(text)?;
        let Some(op) = Opcode::from_u8(envelope.op) else {
            return Ok(Self::Unknown {
                op: envelope.op,
                raw: envelope.raw_d(),
            });
        };
        Ok(match op {
            Opcode::Identify => {
                envelope.check_token(op)?;
                Self::Identify(envelope.payload(op)?)
            }
            Opcode::SelectProtocol => Self::SelectProtocol(envelope.payload(op)?),
            Opcode::Heartbeat => Self::Heartbeat(envelope.nonce_payload(op, |t| Heartbeat {
                t,
                seq_ack: super::no_seq(),
            })?),
            Opcode::Speaking => Self::Speaking(envelope.payload(op)?),
            Opcode::Resume => {
                envelope.check_token(op)?;
                Self::Resume(envelope.payload(op)?)
            }
            Opcode::DaveTransitionReady => Self::DaveTransitionReady(envelope.payload(op)?),
            Opcode::DaveMlsInvalidCommitWelcome => {
                Self::DaveMlsInvalidCommitWelcome(envelope.payload(op)?)
            }
            binary_op if binary_op.is_binary() => {
                return Err(DecodeError::ExpectedBinary { op: binary_op })
            }
            other => Self::Ignored { op: other },
        })
    }

    /// Decodes a client binary frame `[op u8][payload...]` (no seq prefix, C32).
    pub fn decode_binary(frame: &[u8]) -> Result<Self, DecodeError> {
        let Some((op, payload)) = frame.split_first() else {
            return Err(DecodeError::EmptyFrame);
        };
        let Some(opcode) = Opcode::from_u8(*op) else {
            return Ok(Self::UnknownBinary {
                op: *op,
                payload: payload.to_vec(),
            });
        };
        match opcode {
            Opcode::DaveMlsKeyPackage => Ok(Self::DaveMlsKeyPackage(payload.to_vec())),
            Opcode::DaveMlsCommitWelcome => Ok(Self::DaveMlsCommitWelcome(payload.to_vec())),
            server_op if server_op.is_binary() => Err(DecodeError::WrongDirection {
                op: server_op,
                sent_by: "by the server",
            }),
            json_op => Err(DecodeError::ExpectedText { op: json_op }),
        }
    }
}

macro_rules! from_payload {
    ($($variant:ident),*) => {
        $(
            impl From<$variant> for ClientMessage {
                fn from(payload: $variant) -> Self {
                    Self::$variant(payload)
                }
            }
        )*
    };
}

from_payload!(
    Identify,
    SelectProtocol,
    Heartbeat,
    Speaking,
    Resume,
    DaveTransitionReady,
    DaveMlsInvalidCommitWelcome
);
