//! The typestates of a voice connection.
//!
//! `AwaitingServerUpdate -> Identifying -> Discovering -> Session`: each transition consumes the
//! old state and, when the state is not finished yet, hands it back unchanged (`Err(self)`), so a
//! caller can never send audio before a Session Description or identify twice. Every state speaks
//! the same sans-IO language (`handle_input`, `poll_output`); [`AnyState`] holds whichever state a
//! connection is in and advances by itself.

mod any;
mod awaiting;
mod discovering;
mod identifying;
mod ready;

pub use any::AnyState;
pub use awaiting::AwaitingServerUpdate;
pub use discovering::Discovering;
pub use identifying::Identifying;
pub use ready::Session;

/// The sans-IO methods every state shares; they all drive the one engine inside.
macro_rules! sans_io {
    () => {
        /// Feeds one input that happened at `now`, then runs any timer that is due.
        ///
        /// Returns `Err` when the connection has ended; the same error is also queued as
        /// [`Event::Closed`](crate::Event::Closed). After every call, drain
        /// [`poll_output`](Self::poll_output) until it returns
        /// [`Output::WakeAt`](crate::Output::WakeAt) or [`Output::Idle`](crate::Output::Idle).
        pub fn handle_input(
            &mut self,
            now: std::time::Instant,
            input: crate::Input<'_>,
        ) -> Result<(), crate::Error> {
            self.engine.handle_input(now, input)
        }

        /// The next thing to do; [`Output::WakeAt`](crate::Output::WakeAt) or
        /// [`Output::Idle`](crate::Output::Idle) when nothing is queued.
        pub fn poll_output(&mut self) -> crate::Output {
            self.engine.poll_output()
        }

        /// Whether [`poll_output`](Self::poll_output) has something other than a wake-up time
        /// to give (e.g. an op 5 queued by [`Session::poll_transmit`](crate::Session::poll_transmit)
        /// on another thread): a driver that runs the playout apart uses it to know when the
        /// websocket side must drain.
        pub fn has_output(&self) -> bool {
            self.engine.has_output()
        }

        /// The error that ended the connection, if it has ended.
        pub fn error(&self) -> Option<&crate::Error> {
            self.engine.error.as_ref()
        }

        /// The configuration in use.
        pub fn config(&self) -> &crate::Config {
            &self.engine.config
        }

        /// Leaves, in any state: op 4 with a null channel when joined through a main gateway,
        /// close 1000 when a websocket is open or opening; the connection ends with
        /// [`Error::ClosedByApplication`](crate::Error::ClosedByApplication). A no-op once the
        /// connection has ended (it already left then: every end of a connection joined through
        /// the main gateway sends the leave, once).
        pub fn disconnect(&mut self) {
            self.engine.disconnect();
        }

        /// Changes our voice state through the main gateway: op 4 with `channel_id` (another
        /// channel of the guild moves the bot there: Discord answers with the two dispatches
        /// and the connection follows like any move) and the self-mute and self-deafen flags,
        /// which later rejoins repeat. Returns `false`, sending nothing, without a main gateway
        /// (a connection made from [`ConnectionInfo`](crate::ConnectionInfo)) or once ended.
        pub fn update_voice_state(
            &mut self,
            channel_id: crate::id::ChannelId,
            self_mute: bool,
            self_deaf: bool,
        ) -> bool {
            self.engine
                .update_voice_state(channel_id, self_mute, self_deaf)
        }

        /// What op 4 last asked for: the channel, self-mute and self-deafen; `None` without a
        /// main gateway.
        pub fn voice_state(&self) -> Option<(crate::id::ChannelId, bool, bool)> {
            self.engine.voice_state()
        }
    };
}
pub(crate) use sans_io;
