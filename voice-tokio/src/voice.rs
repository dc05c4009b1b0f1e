//! `Voice`: made once per application, joins channels through the application's main gateway.

use std::sync::Arc;

use tokio::sync::mpsc;
use voice_adapter::{Dispatch, SharedVoice};
use voice_proto::gateway::{GatewayError, VoiceServerDispatch, VoiceStateDispatch};
use voice_proto::id::{ChannelId, GuildId, UserId};

use crate::{Connection, GatewayLink, JoinError, JoinOptions, VoiceConfig};

/// The voice side of a bot: made once with [`Voice::new`], kept, and fed the two voice dispatches
/// from the main gateway.
#[derive(Clone, Debug)]
pub struct Voice {
    shared: Arc<SharedVoice<mpsc::UnboundedSender<Dispatch>>>,
}

impl Voice {
    /// `user_id` is the bot's own id; `gateway` sends op 4 on the main gateway.
    pub fn new(user_id: UserId, gateway: impl GatewayLink, config: VoiceConfig) -> Self {
        Self {
            shared: Arc::new(SharedVoice::new(user_id, gateway, config)),
        }
    }

    /// Forwards a VOICE_STATE_UPDATE dispatch (others' are ignored by the connection).
    pub fn handle_voice_state_update(&self, dispatch: VoiceStateDispatch) {
        self.shared.handle_voice_state_update(dispatch);
    }

    /// Forwards a VOICE_SERVER_UPDATE dispatch.
    pub fn handle_voice_server_update(&self, dispatch: VoiceServerDispatch) {
        self.shared.handle_voice_server_update(dispatch);
    }

    /// Forwards a raw dispatch by event name and `d` JSON. Returns `Ok(false)` for events that are
    /// not voice events.
    pub fn handle_dispatch(&self, event: &str, d: &str) -> Result<bool, GatewayError> {
        self.shared.handle_dispatch(event, d)
    }

    /// Joins a voice channel: sends op 4, waits for both dispatches (bounded by the configured
    /// timeout), then runs the whole handshake. Returns when audio can flow.
    pub async fn join_channel(
        &self,
        guild_id: GuildId,
        channel_id: ChannelId,
        options: JoinOptions,
    ) -> Result<Connection, JoinError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = self.shared.begin_join(guild_id, channel_id, options, tx)?;
        let gateway = Some(self.shared.gateway());
        let result = Connection::spawn(state, gateway, Some(rx), self.shared.config()).await;
        if result.is_err() {
            self.shared.abandon_join(guild_id);
        }
        result
    }
}
