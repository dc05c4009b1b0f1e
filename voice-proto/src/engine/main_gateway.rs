//! The two main-gateway dispatches (VOICE_STATE_UPDATE, VOICE_SERVER_UPDATE): joins, rejoins
//! and moves.

use std::time::Instant;

use super::{Engine, Phase, NORMAL_CLOSE_CODE};
use crate::error::Stage;
use crate::gateway::{
    secure_voice_gateway_url, voice_gateway_url, VoiceServerDispatch, VoiceStateDispatch,
    VoiceStateUpdate,
};
use crate::id::ChannelId;
use crate::io::{DisconnectReason, Output, Recovery};

impl Engine {
    /// The application changes its voice state: op 4 with `channel_id` (a move when it differs
    /// from the channel we are in) and the mute and deafen flags, which later rejoins repeat.
    /// Discord answers a move with VOICE_STATE_UPDATE (the new channel: the DAVE group id) and
    /// VOICE_SERVER_UPDATE, handled as any move. Returns `false`, sending nothing, when the
    /// connection has no main gateway (`connect`) or has ended.
    pub(crate) fn update_voice_state(
        &mut self,
        channel_id: ChannelId,
        self_mute: bool,
        self_deaf: bool,
    ) -> bool {
        if self.is_closed() {
            return false;
        }
        let Some(join) = self.join.as_mut() else {
            return false;
        };
        join.channel_id = channel_id;
        join.self_mute = self_mute;
        join.self_deaf = self_deaf;
        self.out.push_back(Output::MainGateway(VoiceStateUpdate {
            guild_id: join.guild_id,
            channel_id: Some(channel_id),
            self_mute,
            self_deaf,
        }));
        true
    }

    /// The channel op 4 last asked for and the mute and deafen flags it carried, when joined
    /// through a main gateway.
    pub(crate) fn voice_state(&self) -> Option<(ChannelId, bool, bool)> {
        self.join
            .as_ref()
            .map(|join| (join.channel_id, join.self_mute, join.self_deaf))
    }

    pub(super) fn on_voice_state(&mut self, now: Instant, dispatch: VoiceStateDispatch) {
        if dispatch.user_id != self.user_id
            || dispatch
                .guild_id
                .is_some_and(|guild| guild != self.guild_id)
        {
            return;
        }
        let changed = self.session_id.as_deref() != Some(dispatch.session_id.as_str());
        self.session_id = Some(dispatch.session_id);
        self.channel_id = dispatch.channel_id;
        self.fresh_state = true;
        if dispatch.channel_id.is_none() {
            // Kicked or left: the voice gateway follows with 4014. Nothing to start.
            return;
        }
        match self.phase {
            Phase::AwaitingServerUpdate { .. } => self.try_start_from_dispatches(now),
            // A rejoin started with the session id we held (row 9) and Discord sent a new one
            // after all: identify again with it on a new websocket before the old one is refused.
            Phase::Connecting {
                recovery: Recovery::Reconnect,
                ..
            } if changed => {
                if self.ws_open {
                    self.out.push_back(Output::CloseWebSocket {
                        code: NORMAL_CLOSE_CODE,
                    });
                }
                self.begin_connecting(now, Recovery::Reconnect);
            }
            _ => {}
        }
    }

    pub(super) fn on_voice_server(&mut self, now: Instant, dispatch: VoiceServerDispatch) {
        if dispatch.guild_id != self.guild_id {
            return;
        }
        let Some(endpoint) = dispatch.endpoint.as_deref() else {
            // The server is being reallocated: drop this one, wait for the next (C2).
            if !matches!(self.phase, Phase::AwaitingServerUpdate { .. }) {
                self.leave_voice_server(now, DisconnectReason::EndpointRemoved);
            }
            return;
        };
        // Only `wss://` from Discord: a `ws://` endpoint would send the token in clear (row 8).
        // The explicit override (a loopback test server) may say `ws://`.
        let url = match &self.config.gateway_url_override {
            Some(url) => voice_gateway_url(url),
            None => secure_voice_gateway_url(endpoint),
        };
        let url = match url {
            Ok(url) => url,
            Err(error) => {
                self.ignore_frame(format!("unusable VOICE_SERVER_UPDATE endpoint: {error}"));
                return;
            }
        };
        self.url = Some(url);
        self.token = Some(dispatch.token);
        self.fresh_server = true;
        match self.phase {
            Phase::AwaitingServerUpdate { .. } => self.try_start_from_dispatches(now),
            Phase::Closed => {}
            // A new server while connected or connecting: a move. Fresh Identify, new UDP (C49).
            _ => {
                if self.ws_open || !matches!(self.phase, Phase::Backoff { .. }) {
                    self.out.push_back(Output::CloseWebSocket {
                        code: NORMAL_CLOSE_CODE,
                    });
                }
                self.end_media();
                self.begin_connecting(now, Recovery::Reconnect);
            }
        }
    }

    pub(super) fn try_start_from_dispatches(&mut self, now: Instant) {
        let Phase::AwaitingServerUpdate { stage, .. } = self.phase else {
            return;
        };
        // A move only needs the new server. The first join needs both dispatches (C3); a rejoin
        // reuses the session id we hold until a new VOICE_STATE_UPDATE brings another, since
        // Discord sends none when the channel is unchanged (row 9).
        let ready = match stage {
            Stage::Move => self.fresh_server,
            _ => self.fresh_server && (self.fresh_state || self.session_id.is_some()),
        };
        if ready && self.session_id.is_some() && self.token.is_some() && self.url.is_some() {
            self.begin_connecting(now, Recovery::Reconnect);
        }
    }
}
