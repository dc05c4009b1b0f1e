//! The websocket's life: opening, Identify or Resume, losing it, the close-code policy,
//! backoff, giving up, leaving.

use std::time::Instant;

use super::{Engine, Phase, ABANDON_CLOSE_CODE, NORMAL_CLOSE_CODE};
use crate::close::{self, CloseDisposition};
use crate::error::{Error, Stage};
use crate::gateway::VoiceStateUpdate;
use crate::io::{DisconnectReason, Event, Output, Recovery};
use crate::payload::{ClientMessage, Identify, Resume};

impl Engine {
    pub(super) fn begin_connecting(&mut self, now: Instant, recovery: Recovery) {
        let Some(url) = self.url.clone() else {
            self.close(Error::Disconnected {
                code: self.last_close,
            });
            return;
        };
        self.heartbeat = None;
        self.ws_open = false;
        if recovery == Recovery::Reconnect {
            self.seq = None;
            self.end_media();
            self.keepalive_at = None;
            // A fresh Identify means a new MLS membership: a new DAVE session (C49).
            self.dave.reset();
        }
        self.playout.forget_announcement();
        self.out.push_back(Output::OpenWebSocket { url });
        self.phase = Phase::Connecting {
            recovery,
            deadline: now + self.config.handshake_timeout,
        };
    }

    /// A fresh session: through the main gateway when we have one, else with the same credentials.
    pub(super) fn begin_fresh(&mut self, now: Instant) {
        self.end_media();
        if let Some(join) = &self.join {
            self.out.push_back(Output::MainGateway(VoiceStateUpdate {
                guild_id: join.guild_id,
                channel_id: self.channel_id.or(Some(join.channel_id)),
                self_mute: join.self_mute,
                self_deaf: join.self_deaf,
            }));
            self.wait_for_server(now, Stage::ServerUpdate);
        } else {
            self.begin_connecting(now, Recovery::Reconnect);
        }
    }

    pub(super) fn wait_for_server(&mut self, now: Instant, stage: Stage) {
        self.heartbeat = None;
        self.ws_open = false;
        self.fresh_server = false;
        self.fresh_state = false;
        let timeout = match stage {
            Stage::Move => self.config.move_timeout,
            _ => self.config.server_update_timeout,
        };
        self.phase = Phase::AwaitingServerUpdate {
            deadline: now + timeout,
            stage,
        };
    }

    pub(super) fn on_ws_opened(&mut self) {
        let Phase::Connecting { recovery, .. } = self.phase else {
            return;
        };
        if self.ws_open {
            return;
        }
        self.ws_open = true;
        let (Some(session_id), Some(token)) = (self.session_id.clone(), self.token.clone()) else {
            return;
        };
        let message = match recovery {
            Recovery::Reconnect => ClientMessage::Identify(Identify {
                server_id: self.guild_id,
                user_id: self.user_id,
                session_id,
                token,
                max_dave_protocol_version: self.config.offered_dave_protocol_version(),
            }),
            Recovery::Resume => ClientMessage::Resume(Resume {
                server_id: self.guild_id,
                session_id,
                token,
                seq_ack: self.seq.and_then(|s| i64::try_from(s).ok()).unwrap_or(-1),
            }),
        };
        self.send(&message);
    }

    pub(super) fn on_ws_closed(&mut self, now: Instant, code: Option<u16>) {
        if matches!(
            self.phase,
            Phase::AwaitingServerUpdate { .. } | Phase::Backoff { .. } | Phase::Closed
        ) {
            return; // a stale socket we already left behind
        }
        self.ws_open = false;
        self.heartbeat = None;
        self.on_connection_lost(now, code);
    }

    /// The websocket is gone (closed by the server, dropped, or declared dead by us).
    pub(super) fn on_connection_lost(&mut self, now: Instant, code: Option<u16>) {
        self.last_close = code.or(self.last_close);
        let disposition = close::disposition(code, false);
        self.out
            .push_back(Output::Event(Event::CloseHandled { code, disposition }));
        if let CloseDisposition::Fatal(reason) = disposition {
            let code = code.unwrap_or_default();
            self.close(Error::Fatal { code, reason });
            return;
        }
        if !self.established_once {
            self.close(Error::HandshakeClosed { code });
            return;
        }
        match disposition {
            CloseDisposition::AwaitMove => {
                let code = code.unwrap_or_default();
                self.leave_voice_server(now, DisconnectReason::Closed { code });
            }
            CloseDisposition::Resume | CloseDisposition::Finished if self.media.is_some() => {
                self.start_recovery(now, Recovery::Resume, code);
            }
            _ => self.start_recovery(now, Recovery::Reconnect, code),
        }
    }

    /// Stops using the current voice server and waits for a new one (moves, 4014, null endpoint).
    pub(super) fn leave_voice_server(&mut self, now: Instant, reason: DisconnectReason) {
        if self.ws_open {
            self.out.push_back(Output::CloseWebSocket {
                code: NORMAL_CLOSE_CODE,
            });
        }
        self.end_media();
        self.keepalive_at = None;
        self.playout.forget_announcement();
        // The MLS membership ends with the voice server; the next one starts a new session.
        self.dave.reset();
        self.out
            .push_back(Output::Event(Event::Disconnected { reason }));
        self.wait_for_server(now, Stage::Move);
    }

    pub(super) fn start_recovery(&mut self, now: Instant, recovery: Recovery, code: Option<u16>) {
        self.reconnect_attempts += 1;
        let attempt = self.reconnect_attempts;
        if attempt > self.config.max_reconnect_attempts {
            self.close(Error::TooManyReconnects {
                attempts: attempt - 1,
                last_code: self.last_close,
            });
            return;
        }
        self.out.push_back(Output::Event(Event::Reconnecting {
            recovery,
            code,
            attempt,
        }));
        self.heartbeat = None;
        self.ws_open = false;
        let delay = self.config.backoff(attempt);
        if delay.is_zero() {
            match recovery {
                Recovery::Resume => self.begin_connecting(now, Recovery::Resume),
                Recovery::Reconnect => self.begin_fresh(now),
            }
        } else {
            self.phase = Phase::Backoff {
                until: now + delay,
                recovery,
            };
        }
    }

    /// A stage failed (timeout): fatal before the first session, another recovery attempt after.
    pub(super) fn fail_attempt(&mut self, now: Instant, error: Error) {
        let is_move_wait = matches!(
            self.phase,
            Phase::AwaitingServerUpdate {
                stage: Stage::Move,
                ..
            }
        );
        if !self.established_once || is_move_wait {
            if self.ws_open {
                self.out.push_back(Output::CloseWebSocket {
                    code: NORMAL_CLOSE_CODE,
                });
            }
            self.close(error);
            return;
        }
        if self.ws_open {
            self.out.push_back(Output::CloseWebSocket {
                code: ABANDON_CLOSE_CODE,
            });
        }
        tracing::debug!(%error, "recovery attempt failed");
        self.start_recovery(now, Recovery::Reconnect, None);
    }

    pub(super) fn close(&mut self, error: Error) {
        self.phase = Phase::Closed;
        self.playout.close();
        self.heartbeat = None;
        self.end_media();
        self.dave.reset();
        self.keepalive_at = None;
        self.ws_open = false;
        self.out.push_back(Output::Event(Event::Closed {
            error: error.clone(),
        }));
        self.error = Some(error);
    }

    /// The application leaves: op 4 with a null channel, close 1000.
    pub(crate) fn disconnect(&mut self) {
        if self.is_closed() {
            return;
        }
        if let Some(join) = &self.join {
            self.out.push_back(Output::MainGateway(VoiceStateUpdate {
                guild_id: join.guild_id,
                channel_id: None,
                self_mute: join.self_mute,
                self_deaf: join.self_deaf,
            }));
        }
        if !matches!(
            self.phase,
            Phase::AwaitingServerUpdate { .. } | Phase::Backoff { .. }
        ) {
            self.out.push_back(Output::CloseWebSocket {
                code: NORMAL_CLOSE_CODE,
            });
        }
        self.close(Error::ClosedByApplication);
    }
}
