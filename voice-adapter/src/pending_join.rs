//! Telling the caller of `join_channel` or `Connection::connect` how its join ended.

use voice_proto::gateway::VoiceStateUpdate;
use voice_proto::{AnyState, Event};

use crate::{GatewayLink, JoinError};

/// A join whose caller still waits (on a oneshot channel for a task, a sync channel for a
/// thread), held by the driver: told exactly once, when the session is established or the join
/// fails first.
pub struct PendingJoin(Option<Tell>);

type Tell = Box<dyn FnOnce(Result<(), JoinError>) + Send>;

impl PendingJoin {
    /// `tell` hands the outcome to the waiting caller (one that stopped waiting is no error).
    pub fn new(tell: impl FnOnce(Result<(), JoinError>) + Send + 'static) -> Self {
        Self(Some(Box::new(tell)))
    }

    /// A core event: `Connected` establishes the join, `Closed` fails it with the core's error.
    pub fn on_event(&mut self, event: &Event) {
        match event {
            Event::Connected { .. } => self.tell(Ok(())),
            Event::Closed { error } => self.tell(Err(JoinError::Protocol(error.clone()))),
            _ => {}
        }
    }

    /// Carries out `Output::MainGateway`: sends op 4 through `gateway`, if one is attached. A
    /// refusal while the caller waits fails the join and returns `true`: the driver then stops.
    pub fn send_voice_state_update(
        &mut self,
        gateway: Option<&dyn GatewayLink>,
        update: &VoiceStateUpdate,
    ) -> bool {
        let Some(gateway) = gateway else {
            tracing::debug!("no main gateway attached; op 4 not sent");
            return false;
        };
        let Err(error) = gateway.send_voice_state_update(update) else {
            return false;
        };
        tracing::warn!(%error, "main gateway refused op 4");
        let waiting = self.0.is_some();
        self.tell(Err(JoinError::Gateway(error)));
        waiting
    }

    /// The driver stops: a caller still waiting gets the core's error, or
    /// [`JoinError::DriverEnded`] when the core has none (e.g. a disconnect during the handshake).
    pub fn driver_stopped(&mut self, state: &AnyState) {
        let error = state
            .error()
            .cloned()
            .map_or(JoinError::DriverEnded, JoinError::Protocol);
        self.tell(Err(error));
    }

    fn tell(&mut self, outcome: Result<(), JoinError>) {
        if let Some(tell) = self.0.take() {
            tell(outcome);
        }
    }
}
