//! Call membership: op 11 Clients Connect and op 13 Client Disconnect.

use serde::{Deserialize, Serialize};

use crate::id::UserId;

/// Op 11 Clients Connect (server -> client): users present at join, and later joiners.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientsConnect {
    /// The users who are (now) in the call.
    pub user_ids: Vec<UserId>,
}

/// Op 13 Client Disconnect (server -> client): a user left; drop their SSRC mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientDisconnect {
    /// The user who left.
    pub user_id: UserId,
}
