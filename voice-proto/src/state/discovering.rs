//! Third state: IP discovery over UDP, Select Protocol, Session Description.

use super::{sans_io, Session};
use crate::engine::{Engine, Phase};

/// Ready was received: a UDP socket is bound, the 74-byte discovery request is out (and retried),
/// then Select Protocol goes out and Session Description completes the handshake.
#[derive(Debug)]
pub struct Discovering {
    pub(crate) engine: Box<Engine>,
}

impl Discovering {
    sans_io!();

    /// Session Description arrived: the session can send audio. Otherwise the state comes back
    /// unchanged.
    pub fn into_session(self) -> Result<Session, Self> {
        if self.engine.phase == Phase::Connected {
            Ok(Session {
                engine: self.engine,
            })
        } else {
            Err(self)
        }
    }
}
