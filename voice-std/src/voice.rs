//! `Voice`: made once per application, joins channels through the application's main gateway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use std::sync::mpsc;
use voice_proto::gateway::{GatewayError, VoiceServerDispatch, VoiceStateDispatch};
use voice_proto::id::{ChannelId, GuildId, UserId};
use voice_proto::{AnyState, AwaitingServerUpdate, JoinRequest};

use crate::config::{JoinOptions, VoiceConfig};
use crate::connection::{entropy, Connection};
use crate::driver::{Dispatch, DriverInput};
use crate::error::JoinError;
use crate::gateway_link::GatewayLink;

/// The voice side of a bot: made once with [`Voice::new`], kept, and fed the two voice dispatches
/// from the main gateway.
#[derive(Clone)]
pub struct Voice {
    inner: Arc<Inner>,
}

struct Inner {
    user_id: UserId,
    gateway: Arc<dyn GatewayLink>,
    config: VoiceConfig,
    routes: Mutex<HashMap<GuildId, mpsc::Sender<DriverInput>>>,
}

impl core::fmt::Debug for Voice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Voice")
            .field("user_id", &self.inner.user_id)
            .finish_non_exhaustive()
    }
}

impl Voice {
    /// `user_id` is the bot's own id; `gateway` sends op 4 on the main gateway.
    pub fn new(user_id: UserId, gateway: impl GatewayLink, config: VoiceConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                user_id,
                gateway: Arc::new(gateway),
                config,
                routes: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Forwards a VOICE_STATE_UPDATE dispatch (others' are ignored by the connection).
    pub fn handle_voice_state_update(&self, dispatch: VoiceStateDispatch) {
        if let Some(guild) = dispatch.guild_id {
            self.route(guild, Dispatch::State(dispatch));
        }
    }

    /// Forwards a VOICE_SERVER_UPDATE dispatch.
    pub fn handle_voice_server_update(&self, dispatch: VoiceServerDispatch) {
        self.route(dispatch.guild_id, Dispatch::Server(dispatch));
    }

    /// Forwards a raw dispatch by event name and `d` JSON. Returns `Ok(false)` for events that are
    /// not voice events.
    pub fn handle_dispatch(&self, event: &str, d: &str) -> Result<bool, GatewayError> {
        match event {
            VoiceStateDispatch::EVENT => {
                self.handle_voice_state_update(VoiceStateDispatch::from_dispatch_json(d)?);
                Ok(true)
            }
            VoiceServerDispatch::EVENT => {
                self.handle_voice_server_update(VoiceServerDispatch::from_dispatch_json(d)?);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn route(&self, guild: GuildId, dispatch: Dispatch) {
        let mut routes = self
            .inner
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(route) = routes.get(&guild) {
            if route.send(DriverInput::Dispatch(dispatch)).is_err() {
                routes.remove(&guild);
            }
        }
    }

    /// Joins a voice channel: sends op 4, waits for both dispatches (bounded by the configured
    /// timeout), then runs the whole handshake. Blocks until audio can flow or the join failed.
    pub fn join_channel(
        &self,
        guild_id: GuildId,
        channel_id: ChannelId,
        options: JoinOptions,
    ) -> Result<Connection, JoinError> {
        let (tx, rx) = mpsc::channel();
        {
            let mut routes = self
                .inner
                .routes
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // A route whose driver has ended refuses input.
            if routes
                .get(&guild_id)
                .is_some_and(|r| r.send(DriverInput::Probe).is_ok())
            {
                return Err(JoinError::AlreadyConnected(guild_id));
            }
            routes.insert(guild_id, tx.clone());
        }
        let join = JoinRequest {
            guild_id,
            channel_id,
            user_id: self.inner.user_id,
            self_mute: options.self_mute,
            self_deaf: options.self_deaf,
        };
        let mut core = self.inner.config.core.clone();
        core.rtp_seed = entropy();
        let state = AnyState::from(AwaitingServerUpdate::new(Instant::now(), core, join));
        let result = Connection::spawn(
            state,
            Some(Arc::clone(&self.inner.gateway)),
            tx,
            rx,
            &self.inner.config,
        );
        if result.is_err() {
            let mut routes = self
                .inner
                .routes
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            routes.remove(&guild_id);
        }
        result
    }
}
