//! The runtime-independent half of each adapter's `Voice`: joins, the routes of main-gateway
//! dispatches to each guild's connection driver, and the registry of the connections made
//! through it (one per guild).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use voice_proto::gateway::{GatewayError, VoiceServerDispatch, VoiceStateDispatch};
use voice_proto::id::{ChannelId, GuildId, UserId};
use voice_proto::{AnyState, AwaitingServerUpdate, JoinRequest};

use crate::{GatewayLink, JoinError, JoinOptions, VoiceConfig};

/// A main-gateway dispatch routed to one connection's driver.
#[derive(Debug)]
pub enum Dispatch {
    /// VOICE_STATE_UPDATE.
    State(VoiceStateDispatch),
    /// VOICE_SERVER_UPDATE.
    Server(VoiceServerDispatch),
}

/// The way into one connection driver's inbox, kept by [`SharedVoice`] for the guild it joins.
pub trait DispatchRoute {
    /// Hands `dispatch` to the driver; `false` when the driver has ended.
    fn deliver(&self, dispatch: Dispatch) -> bool;
    /// Whether the driver still listens (its connection is joining or connected).
    fn is_open(&self) -> bool;
}

#[cfg(feature = "tokio")]
impl DispatchRoute for tokio::sync::mpsc::UnboundedSender<Dispatch> {
    fn deliver(&self, dispatch: Dispatch) -> bool {
        self.send(dispatch).is_ok()
    }

    fn is_open(&self) -> bool {
        !self.is_closed()
    }
}

/// What an adapter's `Voice` holds apart from how it runs connections: made once, fed the two
/// voice dispatches, asked to start and abandon joins, and keeping the connections it made.
/// `R` is the adapter's way into a driver, `C` its handle on a connection (cheap to clone).
///
/// A connection stays registered while its driver listens ([`DispatchRoute::is_open`]): the
/// registry holds a handle until [`remove`](Self::remove) or the connection's end, so the
/// connection lives on when the application drops its own handles (as songbird's `Call` and
/// discord.js's `VoiceConnection` do), and ends when the `Voice` is dropped.
pub struct SharedVoice<R, C = ()> {
    user_id: UserId,
    gateway: Arc<dyn GatewayLink>,
    config: VoiceConfig,
    routes: Mutex<HashMap<GuildId, Entry<R, C>>>,
}

/// One guild's driver and, once its join completed, its connection.
struct Entry<R, C> {
    route: R,
    connection: Option<C>,
}

impl<R, C> core::fmt::Debug for SharedVoice<R, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedVoice")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl<R: DispatchRoute, C: Clone> SharedVoice<R, C> {
    /// `user_id` is the bot's own id; `gateway` sends op 4 on the main gateway.
    pub fn new(user_id: UserId, gateway: impl GatewayLink, config: VoiceConfig) -> Self {
        Self {
            user_id,
            gateway: Arc::new(gateway),
            config,
            routes: Mutex::new(HashMap::new()),
        }
    }

    /// The settings every connection is made with.
    pub fn config(&self) -> &VoiceConfig {
        &self.config
    }

    /// The main-gateway link, for a connection's driver.
    pub fn gateway(&self) -> Arc<dyn GatewayLink> {
        Arc::clone(&self.gateway)
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

    /// Starts a join: from now on `guild_id`'s dispatches go to `route`, and the returned state
    /// (the new connection's first, op 4 queued) is for the driver behind it. Fails while a
    /// driver that still listens holds the guild; the route of one that ended is replaced.
    pub fn begin_join(
        &self,
        guild_id: GuildId,
        channel_id: ChannelId,
        options: JoinOptions,
        route: R,
    ) -> Result<AnyState, JoinError> {
        {
            let mut routes = self.routes();
            if routes
                .get(&guild_id)
                .is_some_and(|entry| entry.route.is_open())
            {
                return Err(JoinError::AlreadyConnected(guild_id));
            }
            let entry = Entry {
                route,
                connection: None,
            };
            routes.insert(guild_id, entry);
        }
        let join = JoinRequest {
            self_mute: options.self_mute,
            self_deaf: options.self_deaf,
            ..JoinRequest::new(guild_id, channel_id, self.user_id)
        };
        let mut core = self.config.core_with_fresh_seeds();
        if options.receive.is_some() {
            core.receive = options.receive;
        }
        Ok(AwaitingServerUpdate::new(Instant::now(), core, join).into())
    }

    /// Forgets `guild_id`'s route after its join failed, so that the guild can be joined again.
    pub fn abandon_join(&self, guild_id: GuildId) {
        self.routes().remove(&guild_id);
    }

    /// Registers the connection whose join just completed for `guild_id` (the route
    /// [`begin_join`](Self::begin_join) took). Does nothing when that route has gone meanwhile.
    pub fn register(&self, guild_id: GuildId, connection: C) {
        if let Some(entry) = self.routes().get_mut(&guild_id) {
            entry.connection = Some(connection);
        }
    }

    /// The connection of `guild_id`, while its driver listens (joined and not ended).
    pub fn connection(&self, guild_id: GuildId) -> Option<C> {
        let mut routes = self.routes();
        let entry = routes.get(&guild_id)?;
        if !entry.route.is_open() {
            routes.remove(&guild_id);
            return None;
        }
        entry.connection.clone()
    }

    /// Takes `guild_id`'s connection out of the registry (the caller leaves with it); a join
    /// still in progress for the guild is left alone.
    pub fn remove(&self, guild_id: GuildId) -> Option<C> {
        let mut routes = self.routes();
        let connection = routes.get(&guild_id)?.connection.clone()?;
        routes.remove(&guild_id);
        Some(connection)
    }

    /// Every registered connection whose driver still listens, with its guild; the ended ones
    /// are forgotten.
    pub fn connections(&self) -> Vec<(GuildId, C)> {
        let mut routes = self.routes();
        routes.retain(|_, entry| entry.route.is_open());
        routes
            .iter()
            .filter_map(|(guild, entry)| Some((*guild, entry.connection.clone()?)))
            .collect()
    }

    fn route(&self, guild: GuildId, dispatch: Dispatch) {
        let mut routes = self.routes();
        let delivered = routes
            .get(&guild)
            .map(|entry| entry.route.deliver(dispatch));
        if delivered == Some(false) {
            routes.remove(&guild);
        }
    }

    fn routes(&self) -> MutexGuard<'_, HashMap<GuildId, Entry<R, C>>> {
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
