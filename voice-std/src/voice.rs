//! `Voice`: made once per application, joins channels through the application's main gateway.

use std::sync::{mpsc, Arc};

use voice_adapter::{Dispatch, DispatchRoute, SharedVoice};
use voice_proto::gateway::{GatewayError, VoiceServerDispatch, VoiceStateDispatch};
use voice_proto::id::{ChannelId, GuildId, UserId};

use crate::connection::connection_span;
use crate::event_loop::Reservation;
use crate::link::Link;
use crate::{Connection, GatewayLink, JoinError, JoinOptions, VoiceConfig};

/// The voice side of a bot: made once with [`Voice::new`], kept, and fed the two voice dispatches
/// from the main gateway. Cheap to clone (the clones share everything).
///
/// It keeps the connection of each guild it joined ([`connection`](Self::connection),
/// [`connections`](Self::connections), [`leave`](Self::leave)) until it is left or ends by
/// itself; dropping the last clone of the `Voice` leaves every channel.
#[derive(Clone, Debug)]
pub struct Voice {
    shared: Arc<SharedVoice<DriverRoute, Connection>>,
}

/// A guild's route to its connection's driver: dispatches wait in a channel and its link wakes
/// the driver's event loop (dispatches that come before the driver runs wait for it).
struct DriverRoute {
    dispatches: mpsc::Sender<Dispatch>,
    link: Arc<Link>,
}

impl DispatchRoute for DriverRoute {
    fn deliver(&self, dispatch: Dispatch) -> bool {
        if self.dispatches.send(dispatch).is_err() {
            return false;
        }
        self.link.wake();
        true
    }

    fn is_open(&self) -> bool {
        !self.link.is_ended()
    }
}

impl Voice {
    /// `user_id` is the bot's own id; `gateway` sends op 4 on the main gateway. It is called on
    /// an event-loop thread that serves other connections too: it must not block.
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
    /// timeout), then runs the whole handshake. Blocks until audio can flow or the join failed;
    /// the `Voice` keeps the connection too ([`connection`](Self::connection)).
    ///
    /// On a guild that is already connected it moves the bot instead
    /// ([`Connection::move_to`]: op 4 with the new channel, mute and deafen as they are) and
    /// returns that connection at once; the move completes in the background
    /// (`Reconnecting`, then `Connected` on its events). While a join of the guild is still in
    /// progress it fails with [`JoinError::AlreadyConnected`].
    pub fn join_channel(
        &self,
        guild_id: GuildId,
        channel_id: ChannelId,
        options: JoinOptions,
    ) -> Result<Connection, JoinError> {
        if let Some(connection) = self.shared.connection(guild_id) {
            if connection.voice_state().map(|(channel, ..)| channel) != Some(channel_id) {
                connection.move_to(channel_id);
            }
            return Ok(connection);
        }
        let reservation = Reservation::new(self.shared.config())?;
        let (dispatches, received) = mpsc::channel();
        let route = DriverRoute {
            dispatches,
            link: Arc::clone(reservation.link()),
        };
        let state = self
            .shared
            .begin_join(guild_id, channel_id, options, route)?;
        let gateway = Some(self.shared.gateway());
        let span = connection_span(guild_id, Some(channel_id));
        let config = self.shared.config();
        match Connection::start(state, gateway, Some(received), reservation, config, span) {
            Ok(connection) => {
                self.shared.register(guild_id, connection.clone());
                Ok(connection)
            }
            Err(error) => {
                self.shared.abandon_join(guild_id);
                Err(error)
            }
        }
    }

    /// The connection of `guild_id`, while it is joined (not left, not ended).
    pub fn connection(&self, guild_id: GuildId) -> Option<Connection> {
        self.shared.connection(guild_id)
    }

    /// Every joined connection, with its guild.
    pub fn connections(&self) -> Vec<(GuildId, Connection)> {
        self.shared.connections()
    }

    /// Leaves `guild_id`'s channel ([`Connection::disconnect`]: op 4 with a null channel,
    /// close 1000, blocking until the sockets are closed) and forgets the connection. Returns
    /// `false` when the guild had none.
    pub fn leave(&self, guild_id: GuildId) -> bool {
        match self.shared.remove(guild_id) {
            Some(connection) => {
                connection.disconnect();
                true
            }
            None => false,
        }
    }
}
