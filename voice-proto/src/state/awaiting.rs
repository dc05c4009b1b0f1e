//! First state: op 4 sent on the main gateway, waiting for both dispatches.

use std::time::Instant;

use super::{sans_io, Identifying};
use crate::config::Config;
use crate::engine::{Engine, Phase};
use crate::join::JoinRequest;

/// Waiting for our VOICE_STATE_UPDATE and the VOICE_SERVER_UPDATE, in either order (C3).
///
/// Made with [`AwaitingServerUpdate::new`], whose first output is the op-4 payload for the main
/// gateway. Feed both dispatches as [`Input::VoiceStateUpdate`](crate::Input::VoiceStateUpdate) and
/// [`Input::VoiceServerUpdate`](crate::Input::VoiceServerUpdate), then call
/// [`into_identifying`](Self::into_identifying).
#[derive(Debug)]
pub struct AwaitingServerUpdate {
    pub(crate) engine: Box<Engine>,
}

impl AwaitingServerUpdate {
    /// Starts a join at `now`. The first output is [`Output::MainGateway`](crate::Output::MainGateway).
    pub fn new(now: Instant, config: Config, join: JoinRequest) -> Self {
        Self {
            engine: Box::new(Engine::join(now, config, join)),
        }
    }

    sans_io!();

    /// Both dispatches arrived (with a non-null endpoint): the websocket is being opened.
    /// Otherwise the state comes back unchanged.
    pub fn into_identifying(self) -> Result<Identifying, Self> {
        if matches!(
            self.engine.phase,
            Phase::AwaitingServerUpdate { .. } | Phase::Closed
        ) {
            Err(self)
        } else {
            Ok(Identifying {
                engine: self.engine,
            })
        }
    }
}
