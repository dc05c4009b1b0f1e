//! DAVE JSON payloads (ops 21, 22, 23, 24, 31) and the binary proposals operation (op 27).
//!
//! The binary MLS messages themselves (ops 25..=30) are opaque bytes here; they are split into
//! their fixed prefix and the MLS body by the frame codec (docs/protocol.md 9.2).

use serde::{Deserialize, Serialize};

/// Op 21 DAVE Prepare Transition (server -> client).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DavePrepareTransition {
    /// The protocol version after the transition; 0 is a downgrade to no E2EE.
    pub protocol_version: u16,
    /// The transition; 0 means execute at once and send no op 23.
    pub transition_id: u16,
}

/// Op 22 DAVE Execute Transition (server -> client).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DaveExecuteTransition {
    /// The transition to execute now.
    pub transition_id: u16,
}

/// Op 23 DAVE Transition Ready (client -> server).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DaveTransitionReady {
    /// The transition this client is ready for.
    pub transition_id: u16,
}

/// Op 24 DAVE Prepare Epoch (server -> client).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DavePrepareEpoch {
    /// The protocol version of the coming epoch.
    pub protocol_version: u16,
    /// The epoch; 1 means a new MLS group is being created (re-init and send a new key package).
    pub epoch: u64,
}

/// Op 31 DAVE MLS Invalid Commit Welcome (client -> server).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DaveMlsInvalidCommitWelcome {
    /// The transition whose commit or welcome failed to process.
    pub transition_id: u16,
}

/// The operation byte at the start of an op 27 DAVE MLS Proposals payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProposalsOperation {
    /// 0: append the proposals that follow.
    Append,
    /// 1: revoke the proposal references that follow.
    Revoke,
    /// Any other value, kept so the frame re-encodes unchanged.
    Unknown(u8),
}

impl ProposalsOperation {
    /// The operation for a wire byte.
    pub const fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Append,
            1 => Self::Revoke,
            other => Self::Unknown(other),
        }
    }

    /// The wire byte.
    pub const fn as_u8(self) -> u8 {
        match self {
            Self::Append => 0,
            Self::Revoke => 1,
            Self::Unknown(other) => other,
        }
    }
}
