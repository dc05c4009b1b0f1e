//! Second state: the voice websocket is open (or opening); Identify, Hello, Ready.

use std::time::Instant;

use super::{sans_io, Discovering};
use crate::config::Config;
use crate::engine::{Engine, Phase};
use crate::error::Error;
use crate::join::ConnectionInfo;

/// The voice websocket is being opened; Identify goes out on
/// [`Input::WebSocketOpened`](crate::Input::WebSocketOpened), heartbeats start on Hello, and
/// Ready moves on to [`Discovering`].
#[derive(Debug)]
pub struct Identifying {
    pub(crate) engine: Box<Engine>,
}

impl Identifying {
    /// Starts from connection info the caller already holds (no main gateway). The first output
    /// is [`Output::OpenWebSocket`](crate::Output::OpenWebSocket).
    pub fn connect(now: Instant, config: Config, info: ConnectionInfo) -> Result<Self, Error> {
        Engine::connect(now, config, info).map(|engine| Self {
            engine: Box::new(engine),
        })
    }

    sans_io!();

    /// Ready arrived: IP discovery has started. Otherwise the state comes back unchanged.
    pub fn into_discovering(self) -> Result<Discovering, Self> {
        match self.engine.phase {
            Phase::Discovering { .. } | Phase::SelectingProtocol { .. } | Phase::Connected => {
                Ok(Discovering {
                    engine: self.engine,
                })
            }
            _ => Err(self),
        }
    }
}
