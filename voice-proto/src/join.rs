//! What a connection starts from: a join request (through the main gateway) or connection info
//! the caller already holds.

use crate::id::{ChannelId, GuildId, UserId};
use crate::secret::Token;

/// Join a voice channel through the application's main gateway: the engine emits the op-4 payload
/// and waits for VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// The guild whose voice channel to join.
    pub guild_id: GuildId,
    /// The voice channel.
    pub channel_id: ChannelId,
    /// Our (the bot's) user id: only our own VOICE_STATE_UPDATE counts.
    pub user_id: UserId,
    /// Join muted.
    pub self_mute: bool,
    /// Join deafened.
    pub self_deaf: bool,
}

impl JoinRequest {
    /// A join with mute and deafen off.
    pub fn new(guild_id: GuildId, channel_id: ChannelId, user_id: UserId) -> Self {
        Self {
            guild_id,
            channel_id,
            user_id,
            self_mute: false,
            self_deaf: false,
        }
    }
}

/// Everything needed to open the voice websocket without a main gateway (Lavalink-style nodes,
/// tests against a local server). Redacts the token in `Debug`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// `host:port` as in VOICE_SERVER_UPDATE, or a full `ws://`/`wss://` URL.
    pub endpoint: String,
    /// The guild (`server_id` in the voice gateway).
    pub guild_id: GuildId,
    /// The voice channel, when known (needed later as the DAVE group id).
    pub channel_id: Option<ChannelId>,
    /// Our user id.
    pub user_id: UserId,
    /// `session_id` from our VOICE_STATE_UPDATE.
    pub session_id: String,
    /// `token` from VOICE_SERVER_UPDATE.
    pub token: Token,
}
