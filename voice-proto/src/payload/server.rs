//! Server -> client messages ([`ServerMessage`]) and their frame codec ([`ServerFrame`]).

use super::frame::{binary, split_transition};
use super::json::{encode, encode_raw, Envelope};
use super::{
    ClientDisconnect, ClientsConnect, DaveExecuteTransition, DavePrepareEpoch,
    DavePrepareTransition, DecodeError, Encoded, HeartbeatAck, Hello, Opcode, ProposalsOperation,
    Ready, SessionDescription, Speaking,
};

/// A message from the voice gateway to the client.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerMessage {
    /// Op 2.
    Ready(Ready),
    /// Op 4 (its `Debug` redacts the key).
    SessionDescription(SessionDescription),
    /// Op 5, with the `user_id` that owns the SSRC.
    Speaking(Speaking),
    /// Op 6.
    HeartbeatAck(HeartbeatAck),
    /// Op 8.
    Hello(Hello),
    /// Op 9, `d: null`: a resume succeeded.
    Resumed,
    /// Op 11.
    ClientsConnect(ClientsConnect),
    /// Op 13.
    ClientDisconnect(ClientDisconnect),
    /// Op 21.
    DavePrepareTransition(DavePrepareTransition),
    /// Op 22.
    DaveExecuteTransition(DaveExecuteTransition),
    /// Op 24.
    DavePrepareEpoch(DavePrepareEpoch),
    /// Op 25 (binary): the TLS-serialized `ExternalSender`, for `set_external_sender`.
    DaveMlsExternalSender(Vec<u8>),
    /// Op 27 (binary): `u8 operation` then the proposals or proposal refs (C35).
    DaveMlsProposals {
        /// Append or revoke.
        operation: ProposalsOperation,
        /// Everything after the operation byte, for `process_proposals`.
        proposals: Vec<u8>,
    },
    /// Op 29 (binary): `u16 BE transition_id` then an `MLSMessage` commit (C36).
    DaveMlsAnnounceCommitTransition {
        /// The transition the commit belongs to.
        transition_id: u16,
        /// The commit, for `process_commit`.
        commit: Vec<u8>,
    },
    /// Op 30 (binary): `u16 BE transition_id` then a `Welcome` (C36).
    DaveMlsWelcome {
        /// The transition the welcome belongs to.
        transition_id: u16,
        /// The welcome, for `process_welcome`.
        welcome: Vec<u8>,
    },
    /// Op 3 sent by the server: a request for an immediate heartbeat (UDOC only; its `d` is
    /// ignored).
    HeartbeatRequest,
    /// A known JSON opcode the client does not act on (10, 12, 14..=20, and client-only ops);
    /// its payload is dropped.
    Ignored {
        /// The opcode.
        op: Opcode,
    },
    /// A JSON message with an opcode outside the table (C31: ignore it, do not close).
    Unknown {
        /// The opcode.
        op: u8,
        /// The `d` payload as JSON text (`null` when absent).
        raw: String,
    },
    /// A binary message with an opcode outside the table (C31: ignore it, do not close).
    UnknownBinary {
        /// The opcode.
        op: u8,
        /// The bytes after the opcode.
        payload: Vec<u8>,
    },
}

impl ServerMessage {
    /// The wire opcode.
    pub fn op(&self) -> u8 {
        let op = match self {
            Self::Unknown { op, .. } | Self::UnknownBinary { op, .. } => return *op,
            Self::Ignored { op } => *op,
            Self::Ready(_) => Opcode::Ready,
            Self::SessionDescription(_) => Opcode::SessionDescription,
            Self::Speaking(_) => Opcode::Speaking,
            Self::HeartbeatAck(_) => Opcode::HeartbeatAck,
            Self::Hello(_) => Opcode::Hello,
            Self::Resumed => Opcode::Resumed,
            Self::ClientsConnect(_) => Opcode::ClientsConnect,
            Self::ClientDisconnect(_) => Opcode::ClientDisconnect,
            Self::DavePrepareTransition(_) => Opcode::DavePrepareTransition,
            Self::DaveExecuteTransition(_) => Opcode::DaveExecuteTransition,
            Self::DavePrepareEpoch(_) => Opcode::DavePrepareEpoch,
            Self::DaveMlsExternalSender(_) => Opcode::DaveMlsExternalSender,
            Self::DaveMlsProposals { .. } => Opcode::DaveMlsProposals,
            Self::DaveMlsAnnounceCommitTransition { .. } => Opcode::DaveMlsAnnounceCommitTransition,
            Self::DaveMlsWelcome { .. } => Opcode::DaveMlsWelcome,
            Self::HeartbeatRequest => Opcode::Heartbeat,
        };
        op.as_u8()
    }

    /// The table entry for [`ServerMessage::op`], or `None` when it is outside the table.
    pub fn opcode(&self) -> Option<Opcode> {
        Opcode::from_u8(self.op())
    }

    /// Whether this message travels in a binary frame.
    pub fn is_binary(&self) -> bool {
        matches!(
            self,
            Self::DaveMlsExternalSender(_)
                | Self::DaveMlsProposals { .. }
                | Self::DaveMlsAnnounceCommitTransition { .. }
                | Self::DaveMlsWelcome { .. }
                | Self::UnknownBinary { .. }
        )
    }
}

macro_rules! from_payload {
    ($($variant:ident),*) => {
        $(
            impl From<$variant> for ServerMessage {
                fn from(payload: $variant) -> Self {
                    Self::$variant(payload)
                }
            }
        )*
    };
}

from_payload!(
    Ready,
    SessionDescription,
    Speaking,
    HeartbeatAck,
    Hello,
    ClientsConnect,
    ClientDisconnect,
    DavePrepareTransition,
    DaveExecuteTransition,
    DavePrepareEpoch
);

/// One server -> client websocket frame: the message and its sequence number (v8, C8).
#[derive(Clone, Debug, PartialEq)]
pub struct ServerFrame {
    /// JSON top-level `seq`, or the u16 prefix of a binary frame (always `Some` there).
    /// Record it as the last seq seen; never compare it for ordering (it wraps).
    pub seq: Option<u64>,
    /// The message.
    pub message: ServerMessage,
}

/// Length of the server binary prefix: `[seq u16 BE][op u8]`.
const SERVER_PREFIX: usize = 3;

impl ServerFrame {
    /// A frame without a sequence number.
    pub fn new(message: ServerMessage) -> Self {
        Self { seq: None, message }
    }

    /// Decodes a websocket text frame `{"op":N,"d":...,"seq":N}`.
    ///
    /// Unknown fields are ignored, an unknown opcode becomes [`ServerMessage::Unknown`], and a
    /// malformed `seq` is treated as absent rather than failing the message.
    pub fn decode_text(text: &str) -> Result<Self, DecodeError> {
        if let Some(frame) = super::secret_json::session_description(text) {
            return Ok(frame);
        }
        let envelope = Envelope::parse(text)?;
        let Some(op) = Opcode::from_u8(envelope.op) else {
            return Ok(Self {
                seq: envelope.seq,
                message: ServerMessage::Unknown {
                    op: envelope.op,
                    raw: envelope.raw_d(),
                },
            });
        };
        let message = match op {
            Opcode::Ready => ServerMessage::Ready(envelope.payload(op)?),
            Opcode::SessionDescription => {
                envelope.check_secret_key(op)?;
                ServerMessage::SessionDescription(envelope.payload(op)?)
            }
            Opcode::Speaking => ServerMessage::Speaking(envelope.payload(op)?),
            Opcode::HeartbeatAck => {
                ServerMessage::HeartbeatAck(envelope.nonce_payload(op, |t| HeartbeatAck { t })?)
            }
            Opcode::Hello => ServerMessage::Hello(envelope.payload(op)?),
            Opcode::Resumed => ServerMessage::Resumed,
            Opcode::ClientsConnect => ServerMessage::ClientsConnect(envelope.payload(op)?),
            Opcode::ClientDisconnect => ServerMessage::ClientDisconnect(envelope.payload(op)?),
            Opcode::DavePrepareTransition => {
                ServerMessage::DavePrepareTransition(envelope.payload(op)?)
            }
            Opcode::DaveExecuteTransition => {
                ServerMessage::DaveExecuteTransition(envelope.payload(op)?)
            }
            Opcode::DavePrepareEpoch => ServerMessage::DavePrepareEpoch(envelope.payload(op)?),
            Opcode::Heartbeat => ServerMessage::HeartbeatRequest,
            binary_op if binary_op.is_binary() => {
                return Err(DecodeError::ExpectedBinary { op: binary_op })
            }
            other => ServerMessage::Ignored { op: other },
        };
        Ok(Self {
            seq: envelope.seq,
            message,
        })
    }

    /// Decodes a websocket binary frame `[seq u16 BE][op u8][payload...]` (v8, C32).
    ///
    /// `seq` is always `Some`. An unknown opcode becomes [`ServerMessage::UnknownBinary`].
    pub fn decode_binary(frame: &[u8]) -> Result<Self, DecodeError> {
        let [seq_hi, seq_lo, op, payload @ ..] = frame else {
            return Err(if frame.is_empty() {
                DecodeError::EmptyFrame
            } else {
                DecodeError::TooShort {
                    what: "the [seq u16][op u8] prefix",
                    needed: SERVER_PREFIX,
                    actual: frame.len(),
                }
            });
        };
        let seq = Some(u64::from(u16::from_be_bytes([*seq_hi, *seq_lo])));
        let Some(opcode) = Opcode::from_u8(*op) else {
            return Ok(Self {
                seq,
                message: ServerMessage::UnknownBinary {
                    op: *op,
                    payload: payload.to_vec(),
                },
            });
        };
        let message = match opcode {
            Opcode::DaveMlsExternalSender => ServerMessage::DaveMlsExternalSender(payload.to_vec()),
            Opcode::DaveMlsProposals => match payload.split_first() {
                Some((operation, proposals)) => ServerMessage::DaveMlsProposals {
                    operation: ProposalsOperation::from_u8(*operation),
                    proposals: proposals.to_vec(),
                },
                None => {
                    return Err(DecodeError::TooShort {
                        what: "the op 27 operation byte",
                        needed: SERVER_PREFIX + 1,
                        actual: frame.len(),
                    })
                }
            },
            Opcode::DaveMlsAnnounceCommitTransition => {
                let (transition_id, commit) =
                    split_transition(payload, SERVER_PREFIX, "the op 29 transition id")?;
                ServerMessage::DaveMlsAnnounceCommitTransition {
                    transition_id,
                    commit,
                }
            }
            Opcode::DaveMlsWelcome => {
                let (transition_id, welcome) =
                    split_transition(payload, SERVER_PREFIX, "the op 30 transition id")?;
                ServerMessage::DaveMlsWelcome {
                    transition_id,
                    welcome,
                }
            }
            client_op if client_op.is_binary() => {
                return Err(DecodeError::WrongDirection {
                    op: client_op,
                    sent_by: "by the client",
                })
            }
            json_op => return Err(DecodeError::ExpectedText { op: json_op }),
        };
        Ok(Self { seq, message })
    }

    /// Encodes the frame as the server sends it.
    ///
    /// JSON messages carry `"seq"` at top level when it is `Some`. Binary messages are
    /// `[seq u16 BE][op u8][payload]`; the seq is truncated to 16 bits (it wraps on the wire) and
    /// written as 0 when absent (v8 binary frames always carry one; clients such as discord.js
    /// ignore 0).
    pub fn encode(&self) -> Encoded {
        let seq = self.seq;
        let op = self.message.op();
        // Truncation is the wire format: the binary seq is a wrapping u16.
        let prefix = (seq.unwrap_or(0) as u16).to_be_bytes();
        match &self.message {
            ServerMessage::Ready(d) => Encoded::Text(encode(op, d, seq)),
            ServerMessage::SessionDescription(d) => Encoded::Text(encode(op, d, seq)),
            ServerMessage::Speaking(d) => Encoded::Text(encode(op, d, seq)),
            ServerMessage::HeartbeatAck(d) => Encoded::Text(encode(op, d, seq)),
            ServerMessage::Hello(d) => Encoded::Text(encode(op, d, seq)),
            ServerMessage::ClientsConnect(d) => Encoded::Text(encode(op, d, seq)),
            ServerMessage::ClientDisconnect(d) => Encoded::Text(encode(op, d, seq)),
            ServerMessage::DavePrepareTransition(d) => Encoded::Text(encode(op, d, seq)),
            ServerMessage::DaveExecuteTransition(d) => Encoded::Text(encode(op, d, seq)),
            ServerMessage::DavePrepareEpoch(d) => Encoded::Text(encode(op, d, seq)),
            ServerMessage::Resumed
            | ServerMessage::HeartbeatRequest
            | ServerMessage::Ignored { .. } => Encoded::Text(encode(op, &(), seq)),
            ServerMessage::Unknown { raw, .. } => Encoded::Text(encode_raw(op, raw, seq)),
            ServerMessage::DaveMlsExternalSender(payload)
            | ServerMessage::UnknownBinary { payload, .. } => {
                Encoded::Binary(binary(&prefix, op, &[payload]))
            }
            ServerMessage::DaveMlsProposals {
                operation,
                proposals,
            } => Encoded::Binary(binary(&prefix, op, &[&[operation.as_u8()], proposals])),
            ServerMessage::DaveMlsAnnounceCommitTransition {
                transition_id,
                commit: body,
            }
            | ServerMessage::DaveMlsWelcome {
                transition_id,
                welcome: body,
            } => Encoded::Binary(binary(&prefix, op, &[&transition_id.to_be_bytes(), body])),
        }
    }
}

impl From<ServerMessage> for ServerFrame {
    fn from(message: ServerMessage) -> Self {
        Self::new(message)
    }
}
