//! The application's main gateway, as far as voice needs it: a way to send op 4.

use voice_proto::gateway::VoiceStateUpdate;

/// Sends the op-4 Voice State Update on the application's main gateway.
///
/// Implemented for closures, for `std::sync::mpsc::Sender<String>` and, with the `tokio` feature
/// (which `voice-tokio` turns on), for `tokio::sync::mpsc::UnboundedSender<String>`. Both
/// senders receive the complete `{"op":4,"d":{..}}` JSON text.
pub trait GatewayLink: Send + Sync + 'static {
    /// Sends the payload; an error is reported to the caller of `join_channel`.
    fn send_voice_state_update(&self, update: &VoiceStateUpdate) -> Result<(), String>;
}

const CHANNEL_CLOSED: &str = "the main-gateway channel is closed";

impl GatewayLink for std::sync::mpsc::Sender<String> {
    fn send_voice_state_update(&self, update: &VoiceStateUpdate) -> Result<(), String> {
        self.send(update.to_gateway_json())
            .map_err(|_| CHANNEL_CLOSED.to_owned())
    }
}

#[cfg(feature = "tokio")]
impl GatewayLink for tokio::sync::mpsc::UnboundedSender<String> {
    fn send_voice_state_update(&self, update: &VoiceStateUpdate) -> Result<(), String> {
        self.send(update.to_gateway_json())
            .map_err(|_| CHANNEL_CLOSED.to_owned())
    }
}

impl<F> GatewayLink for F
where
    F: Fn(&VoiceStateUpdate) -> Result<(), String> + Send + Sync + 'static,
{
    fn send_voice_state_update(&self, update: &VoiceStateUpdate) -> Result<(), String> {
        self(update)
    }
}
