//! The two main-gateway dispatches (VOICE_STATE_UPDATE, VOICE_SERVER_UPDATE): joins, rejoins
//! and moves.

use std::time::Instant;

use super::{Engine, Phase, NORMAL_CLOSE_CODE};
use crate::error::Stage;
use crate::gateway::{voice_gateway_url, VoiceServerDispatch, VoiceStateDispatch};
use crate::io::{DisconnectReason, Output, Recovery};

impl Engine {
    pub(super) fn on_voice_state(&mut self, now: Instant, dispatch: VoiceStateDispatch) {
        if dispatch.user_id != self.user_id
            || dispatch
                .guild_id
                .is_some_and(|guild| guild != self.guild_id)
        {
            return;
        }
        self.session_id = Some(dispatch.session_id);
        self.channel_id = dispatch.channel_id;
        self.fresh_state = true;
        if dispatch.channel_id.is_none() {
            // Kicked or left: the voice gateway follows with 4014. Nothing to start.
            return;
        }
        self.try_start_from_dispatches(now);
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
        let url = match &self.config.gateway_url_override {
            Some(url) => voice_gateway_url(url),
            None => voice_gateway_url(endpoint),
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
        // A move only needs the new server; a (re)join needs both dispatches afresh (C3).
        let ready = match stage {
            Stage::Move => self.fresh_server,
            _ => self.fresh_server && self.fresh_state,
        };
        if ready && self.session_id.is_some() && self.token.is_some() && self.url.is_some() {
            self.begin_connecting(now, Recovery::Reconnect);
        }
    }
}
