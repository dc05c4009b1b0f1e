//! `Voice`: made once per application, joins channels through the application's main gateway.

use std::sync::{mpsc, Arc};

use voice_adapter::{Dispatch, DispatchRoute, SharedVoice};
use voice_proto::gateway::{GatewayError, VoiceServerDispatch, VoiceStateDispatch};
use voice_proto::id::{ChannelId, GuildId, UserId};

use crate::event_loop::Reservation;
use crate::link::Link;
use crate::{Connection, GatewayLink, JoinError, JoinOptions, VoiceConfig};

/// The voice side of a bot: made once with [`Voice::new`], kept, and fed the two voice dispatches
/// from the main gateway.
#[derive(Clone, Debug)]
pub struct Voice {
    shared: Arc<SharedVoice<DriverRoute>>,
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
    /// timeout), then runs the whole handshake. Blocks until audio can flow or the join failed.
    pub fn join_channel(
        &self,
        guild_id: GuildId,
        channel_id: ChannelId,
        options: JoinOptions,
    ) -> Result<Connection, JoinError> {
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
        let result = Connection::start(
            state,
            gateway,
            Some(received),
            reservation,
            self.shared.config(),
        );
        if result.is_err() {
            self.shared.abandon_join(guild_id);
        }
        result
    }
}
