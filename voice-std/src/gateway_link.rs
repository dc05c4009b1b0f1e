//! The application's main gateway, as far as voice needs it: a way to send op 4.

use voice_proto::gateway::VoiceStateUpdate;

/// Sends the op-4 Voice State Update on the application's main gateway.
///
/// Implemented for `std::sync::mpsc::Sender<String>` (receives the complete `{"op":4,"d":{..}}`
/// JSON text) and for closures.
pub trait GatewayLink: Send + Sync + 'static {
    /// Sends the payload; an error is reported to the caller of `join_channel`.
    fn send_voice_state_update(&self, update: &VoiceStateUpdate) -> Result<(), String>;
}

impl GatewayLink for std::sync::mpsc::Sender<String> {
    fn send_voice_state_update(&self, update: &VoiceStateUpdate) -> Result<(), String> {
        self.send(update.to_gateway_json())
            .map_err(|_| "the main-gateway channel is closed".to_owned())
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
