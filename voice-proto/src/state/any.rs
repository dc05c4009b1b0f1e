//! Whichever state a connection is in, for adapters that keep one field.

use std::time::Instant;

use super::{AwaitingServerUpdate, Discovering, Identifying, Session};
use crate::error::Error;
use crate::io::{Input, Output};

/// One of the four states. [`AnyState::handle_input`] advances to the next state by itself.
#[derive(Debug)]
pub enum AnyState {
    /// Waiting for the main-gateway dispatches.
    AwaitingServerUpdate(AwaitingServerUpdate),
    /// Websocket, Identify, Hello, Ready.
    Identifying(Identifying),
    /// IP discovery, Select Protocol, Session Description.
    Discovering(Discovering),
    /// Established.
    Ready(Session),
}

impl AnyState {
    /// Feeds one input and moves to the next state when the current one is complete.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) -> Result<(), Error> {
        let result = match self {
            AnyState::AwaitingServerUpdate(s) => s.handle_input(now, input),
            AnyState::Identifying(s) => s.handle_input(now, input),
            AnyState::Discovering(s) => s.handle_input(now, input),
            AnyState::Ready(s) => s.handle_input(now, input),
        };
        self.advance();
        result
    }

    /// The next output of whichever state this is.
    pub fn poll_output(&mut self) -> Output {
        match self {
            AnyState::AwaitingServerUpdate(s) => s.poll_output(),
            AnyState::Identifying(s) => s.poll_output(),
            AnyState::Discovering(s) => s.poll_output(),
            AnyState::Ready(s) => s.poll_output(),
        }
    }

    /// The next deadline of everything but the playout clock (see
    /// [`Session::next_timer`]): what a driver that runs the playout elsewhere waits for.
    pub fn next_timer(&self) -> Option<Instant> {
        self.engine().next_timer()
    }

    /// When the playout has its next datagram (see [`Session::next_transmit`]); `None` before
    /// the session is established.
    pub fn next_transmit(&self) -> Option<Instant> {
        self.engine().next_transmit()
    }

    /// The configuration in use.
    pub fn config(&self) -> &crate::Config {
        &self.engine().config
    }

    /// Whether `poll_output` has something other than a wake-up time to give.
    pub fn has_output(&self) -> bool {
        self.engine().has_output()
    }

    fn engine(&self) -> &crate::engine::Engine {
        match self {
            AnyState::AwaitingServerUpdate(s) => &s.engine,
            AnyState::Identifying(s) => &s.engine,
            AnyState::Discovering(s) => &s.engine,
            AnyState::Ready(s) => &s.engine,
        }
    }

    /// Leaves, whichever state the connection is in (see [`Session::disconnect`]): what a
    /// driver calls when the application goes away before the join completed (a dropped
    /// `join_channel` future), so that the bot does not stay in the channel. A no-op once ended.
    pub fn disconnect(&mut self) {
        match self {
            AnyState::AwaitingServerUpdate(s) => s.disconnect(),
            AnyState::Identifying(s) => s.disconnect(),
            AnyState::Discovering(s) => s.disconnect(),
            AnyState::Ready(s) => s.disconnect(),
        }
    }

    /// Changes our voice state through the main gateway (see
    /// [`Session::update_voice_state`]): a move to `channel_id`, self-mute, self-deafen.
    /// Returns `false`, sending nothing, without a main gateway or once ended.
    pub fn update_voice_state(
        &mut self,
        channel_id: crate::id::ChannelId,
        self_mute: bool,
        self_deaf: bool,
    ) -> bool {
        match self {
            AnyState::AwaitingServerUpdate(s) => {
                s.update_voice_state(channel_id, self_mute, self_deaf)
            }
            AnyState::Identifying(s) => s.update_voice_state(channel_id, self_mute, self_deaf),
            AnyState::Discovering(s) => s.update_voice_state(channel_id, self_mute, self_deaf),
            AnyState::Ready(s) => s.update_voice_state(channel_id, self_mute, self_deaf),
        }
    }

    /// The guild this connection is for.
    pub fn guild_id(&self) -> crate::id::GuildId {
        self.engine().guild_id()
    }

    /// What op 4 last asked for: the channel, self-mute and self-deafen; `None` without a main
    /// gateway.
    pub fn voice_state(&self) -> Option<(crate::id::ChannelId, bool, bool)> {
        self.engine().voice_state()
    }

    /// Whether the connection has ended (an error is set and nothing more will happen).
    pub fn is_closed(&self) -> bool {
        self.engine().is_closed()
    }

    /// The session, once established.
    pub fn session(&mut self) -> Option<&mut Session> {
        match self {
            AnyState::Ready(s) => Some(s),
            _ => None,
        }
    }

    /// The error that ended the connection, if it has ended.
    pub fn error(&self) -> Option<&Error> {
        match self {
            AnyState::AwaitingServerUpdate(s) => s.error(),
            AnyState::Identifying(s) => s.error(),
            AnyState::Discovering(s) => s.error(),
            AnyState::Ready(s) => s.error(),
        }
    }

    /// A short name of the state, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            AnyState::AwaitingServerUpdate(_) => "awaiting-server-update",
            AnyState::Identifying(_) => "identifying",
            AnyState::Discovering(_) => "discovering",
            AnyState::Ready(_) => "ready",
        }
    }

    fn advance(&mut self) {
        // Several steps can complete at once only in theory; loop until nothing moves.
        while self.can_advance() {
            let now = self.engine().started();
            let placeholder = AnyState::Ready(Session {
                engine: Box::new(crate::engine::Engine::placeholder(now)),
            });
            let current = core::mem::replace(self, placeholder);
            let (next, moved) = match current {
                AnyState::AwaitingServerUpdate(s) => match s.into_identifying() {
                    Ok(n) => (AnyState::Identifying(n), true),
                    Err(s) => (AnyState::AwaitingServerUpdate(s), false),
                },
                AnyState::Identifying(s) => match s.into_discovering() {
                    Ok(n) => (AnyState::Discovering(n), true),
                    Err(s) => (AnyState::Identifying(s), false),
                },
                AnyState::Discovering(s) => match s.into_session() {
                    Ok(n) => (AnyState::Ready(n), true),
                    Err(s) => (AnyState::Discovering(s), false),
                },
                ready @ AnyState::Ready(_) => (ready, false),
            };
            *self = next;
            if !moved {
                return;
            }
        }
    }

    /// Checked by reference first so the per-input path never builds a placeholder.
    fn can_advance(&self) -> bool {
        use crate::engine::Phase;
        match self {
            AnyState::AwaitingServerUpdate(s) => !matches!(
                s.engine.phase,
                Phase::AwaitingServerUpdate { .. } | Phase::Closed
            ),
            AnyState::Identifying(s) => matches!(
                s.engine.phase,
                Phase::Discovering { .. } | Phase::SelectingProtocol { .. } | Phase::Connected
            ),
            AnyState::Discovering(s) => s.engine.phase == Phase::Connected,
            AnyState::Ready(_) => false,
        }
    }
}

impl From<AwaitingServerUpdate> for AnyState {
    fn from(s: AwaitingServerUpdate) -> Self {
        AnyState::AwaitingServerUpdate(s)
    }
}

impl From<Identifying> for AnyState {
    fn from(s: Identifying) -> Self {
        AnyState::Identifying(s)
    }
}

impl From<Session> for AnyState {
    fn from(s: Session) -> Self {
        AnyState::Ready(s)
    }
}
