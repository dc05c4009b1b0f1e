//! Telling the caller of `join_channel` or `Connection::connect` how its join ended, and noticing
//! when that caller went away.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use voice_proto::gateway::VoiceStateUpdate;
use voice_proto::{AnyState, Event};

use crate::{GatewayLink, JoinError};

/// A join whose caller still waits (on a oneshot channel for a task, a sync channel for a
/// thread), held by the driver: told exactly once, when the session is established or the join
/// fails first.
///
/// Made with [`PendingJoin::with_caller`], it also knows when the caller stopped waiting (a
/// dropped `join_channel` future): [`caller_left`](Self::caller_left) is then `true` and the
/// driver must end the connection with `AnyState::disconnect()`, which leaves the channel on the
/// main gateway, so that no bot stays shown in a channel nobody drives (issue 14, row 2).
pub struct PendingJoin {
    tell: Option<Tell>,
    caller: Option<Arc<AtomicBool>>,
}

type Tell = Box<dyn FnOnce(Result<(), JoinError>) + Send>;

/// Held by the caller waiting for a join (inside the `join_channel` future or the blocking
/// call). Dropping it before the join completed tells the driver that nobody waits any more: the
/// flag [`PendingJoin::caller_left`] reads is set and the driver is woken.
pub struct JoinCaller {
    left: Arc<AtomicBool>,
    wake: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for JoinCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinCaller").finish_non_exhaustive()
    }
}

impl Drop for JoinCaller {
    fn drop(&mut self) {
        self.left.store(true, Ordering::Release);
        (self.wake)();
    }
}

impl PendingJoin {
    /// `tell` hands the outcome to the waiting caller (one that stopped waiting is no error).
    pub fn new(tell: impl FnOnce(Result<(), JoinError>) + Send + 'static) -> Self {
        Self {
            tell: Some(Box::new(tell)),
            caller: None,
        }
    }

    /// Like [`new`](Self::new), and the [`JoinCaller`] the waiting caller holds: when the caller
    /// drops it before the outcome was told, `wake` is called (it must not block: say, notify
    /// the driver's task) and [`caller_left`](Self::caller_left) becomes `true`.
    pub fn with_caller(
        tell: impl FnOnce(Result<(), JoinError>) + Send + 'static,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> (Self, JoinCaller) {
        let left = Arc::new(AtomicBool::new(false));
        let join = Self {
            tell: Some(Box::new(tell)),
            caller: Some(Arc::clone(&left)),
        };
        let caller = JoinCaller {
            left,
            wake: Box::new(wake),
        };
        (join, caller)
    }

    /// The caller went away while the join was still pending (its outcome was never told): the
    /// driver must end the connection, which leaves the channel.
    pub fn caller_left(&self) -> bool {
        self.tell.is_some()
            && self
                .caller
                .as_ref()
                .is_some_and(|left| left.load(Ordering::Acquire))
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
        let waiting = self.tell.is_some();
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
        if let Some(tell) = self.tell.take() {
            tell(outcome);
        }
    }
}
