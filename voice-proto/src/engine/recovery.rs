//! The websocket's life: opening, Identify or Resume, losing it, the close-code policy,
//! backoff, giving up, leaving.
//!
//! The rules (issue 14, rows 1-3 and 9):
//!
//! - Every retry waits a jittered backoff first, the first one too
//!   ([`Config::backoff_range`](crate::Config::backoff_range)).
//! - The attempt counter starts again only once a session stayed up for
//!   [`Config::reconnect_reset_after`](crate::Config::reconnect_reset_after); past
//!   [`Config::max_reconnect_attempts`](crate::Config::max_reconnect_attempts) in a row the
//!   connection ends.
//! - Before the first session, failures (a close that is not fatal, a stage timeout, IP discovery
//!   without an answer) are retried the same way within the join deadline, then the join ends
//!   with [`Error::JoinFailed`] naming what failed last.
//! - Every end of a connection joined through the main gateway sends the op 4 leave, once.

use std::time::{Duration, Instant};

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
        if !self.established_once {
            self.websocket_attempts = self.websocket_attempts.saturating_add(1);
        }
        self.playout.forget_announcement();
        self.out.push_back(Output::OpenWebSocket { url });
        self.attempt_started = now;
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
        self.attempt_started = now;
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

    /// The websocket is gone (closed by the server, dropped, or declared dead by us): the
    /// close-code table decides, before the first session as after it.
    pub(super) fn on_connection_lost(&mut self, now: Instant, code: Option<u16>) {
        self.last_close = code.or(self.last_close);
        let disposition = close::disposition(code, false);
        self.out
            .push_back(Output::Event(Event::CloseHandled { code, disposition }));
        let failure = Error::HandshakeClosed { code };
        match disposition {
            CloseDisposition::Fatal(reason) => self.close(Error::Fatal {
                code: code.unwrap_or_default(),
                reason,
            }),
            // 4004: a new token through op 4, once (see `close`'s module docs).
            CloseDisposition::RejoinOnce(reason) => {
                if self.join.is_none() || self.rejoined_after_4004 {
                    self.close(Error::Fatal {
                        code: code.unwrap_or_default(),
                        reason,
                    });
                } else {
                    self.rejoined_after_4004 = true;
                    self.start_recovery(now, Recovery::Reconnect, code, failure);
                }
            }
            CloseDisposition::AwaitMove => {
                if !self.established_once {
                    self.last_failure = Some(failure);
                }
                let code = code.unwrap_or_default();
                self.leave_voice_server(now, DisconnectReason::Closed { code });
            }
            CloseDisposition::Resume | CloseDisposition::Finished if self.media.is_some() => {
                self.start_recovery(now, Recovery::Resume, code, failure);
            }
            _ => self.start_recovery(now, Recovery::Reconnect, code, failure),
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
        self.stable_at = None;
        self.playout.forget_announcement();
        // The MLS membership ends with the voice server; the next one starts a new session.
        self.dave.reset();
        self.out
            .push_back(Output::Event(Event::Disconnected { reason }));
        self.wait_for_server(now, Stage::Move);
    }

    /// Schedules the next attempt after `failure`: counted, limited, after a jittered backoff.
    pub(super) fn start_recovery(
        &mut self,
        now: Instant,
        recovery: Recovery,
        code: Option<u16>,
        failure: Error,
    ) {
        if self.established_once {
            tracing::debug!(%failure, "voice connection lost; recovering");
        } else {
            self.last_failure = Some(failure);
        }
        // Only a session that stayed up long enough wipes the slate (row 3).
        if self.stable_at.is_some_and(|stable| now >= stable) {
            self.reconnect_attempts = 0;
        }
        self.stable_at = None;
        self.heartbeat = None;
        self.ws_open = false;
        self.reconnect_attempts = self.reconnect_attempts.saturating_add(1);
        let attempt = self.reconnect_attempts;
        if attempt > self.config.max_reconnect_attempts {
            self.give_up(now);
            return;
        }
        let delay = self.draw_backoff(attempt);
        let Some(until) = now.checked_add(delay) else {
            self.give_up(now);
            return;
        };
        // No attempt can start before the join deadline: give up now rather than wait for it.
        if self.join_deadline.is_some_and(|deadline| until >= deadline) {
            self.give_up(now);
            return;
        }
        self.out.push_back(Output::Event(Event::Reconnecting {
            recovery,
            code,
            attempt,
        }));
        if recovery == Recovery::Reconnect {
            // The session is gone: no keepalives to it while backing off, and the frames that
            // came on it and still wait for their sender are given up now.
            self.end_media();
            self.keepalive_at = None;
        }
        if delay.is_zero() {
            match recovery {
                Recovery::Resume => self.begin_connecting(now, Recovery::Resume),
                Recovery::Reconnect => self.begin_fresh(now),
            }
        } else {
            self.phase = Phase::Backoff { until, recovery };
        }
    }

    /// A stage failed (a timeout, an unusable Ready): another attempt after a backoff, unless it
    /// was the wait for a move or the first wait for the main gateway's dispatches (a join
    /// Discord does not answer: a full channel, a missing permission or intent; asking again
    /// does not help).
    pub(super) fn fail_attempt(&mut self, now: Instant, error: Error) {
        let (is_move_wait, is_first_wait) = match self.phase {
            Phase::AwaitingServerUpdate { stage, .. } => (
                stage == Stage::Move,
                !self.established_once && self.reconnect_attempts == 0,
            ),
            _ => (false, false),
        };
        if is_move_wait || is_first_wait {
            self.close(error);
            return;
        }
        if self.ws_open {
            self.out.push_back(Output::CloseWebSocket {
                code: ABANDON_CLOSE_CODE,
            });
        }
        self.ws_open = false;
        self.start_recovery(now, Recovery::Reconnect, None, error);
    }

    /// The attempts ran out (or the next cannot start before the join deadline).
    fn give_up(&mut self, now: Instant) {
        if self.established_once {
            self.close(Error::TooManyReconnects {
                attempts: self.reconnect_attempts.saturating_sub(1),
                last_code: self.last_close,
            });
        } else {
            let last = self
                .last_failure
                .take()
                .unwrap_or_else(|| self.stage_timeout(now));
            self.close(self.join_failed(now, last));
        }
    }

    /// The join deadline passed before a session was established: the attempt under way is
    /// abandoned, and the error names the stage it was in (or the failure it waits to retry).
    pub(super) fn join_deadline_passed(&mut self, now: Instant) {
        let last = match self.phase {
            Phase::Backoff { .. } => self
                .last_failure
                .take()
                .unwrap_or_else(|| self.stage_timeout(now)),
            _ => self.stage_timeout(now),
        };
        if self.ws_open {
            self.out.push_back(Output::CloseWebSocket {
                code: NORMAL_CLOSE_CODE,
            });
        }
        self.close(self.join_failed(now, last));
    }

    fn join_failed(&self, now: Instant, last: Error) -> Error {
        Error::JoinFailed {
            attempts: self.websocket_attempts,
            elapsed: now.saturating_duration_since(self.join_started),
            last: Box::new(last),
        }
    }

    /// A timeout of the stage the current attempt is in, as long as it has lasted.
    fn stage_timeout(&self, now: Instant) -> Error {
        let stage = match self.phase {
            Phase::AwaitingServerUpdate { stage, .. } => stage,
            Phase::Connecting {
                recovery: Recovery::Resume,
                ..
            } => Stage::Resumed,
            Phase::Discovering { .. } => Stage::IpDiscovery,
            Phase::SelectingProtocol { .. } => Stage::SessionDescription,
            Phase::Connecting { .. } | Phase::Backoff { .. } | Phase::Connected | Phase::Closed => {
                Stage::Ready
            }
        };
        Error::Timeout {
            stage,
            after: now.saturating_duration_since(self.attempt_started),
        }
    }

    /// The backoff before attempt `attempt`, drawn from [`Config::backoff_range`] with the
    /// jitter seed (splitmix64: the core reads no entropy of its own).
    ///
    /// [`Config::backoff_range`]: crate::Config::backoff_range
    fn draw_backoff(&mut self, attempt: u32) -> Duration {
        let range = self.config.backoff_range(attempt);
        let (low, high) = (*range.start(), *range.end());
        let spread = high
            .saturating_sub(low)
            .as_nanos()
            .min(u128::from(u64::MAX));
        if spread == 0 {
            return low;
        }
        self.jitter_state = self.jitter_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.jitter_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let offset = (spread * u128::from(z)) >> 64;
        low + Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
    }

    /// The session is up (Session Description, or op 9 after a resume): the attempt counter
    /// starts again once it has stayed up `reconnect_reset_after`.
    pub(super) fn session_up(&mut self, now: Instant) {
        self.stable_at = now.checked_add(self.config.reconnect_reset_after);
    }

    pub(super) fn close(&mut self, error: Error) {
        self.leave_main_gateway();
        self.phase = Phase::Closed;
        self.playout.close();
        self.heartbeat = None;
        self.end_media();
        self.dave.reset();
        self.keepalive_at = None;
        self.ws_open = false;
        self.join_deadline = None;
        self.stable_at = None;
        self.out.push_back(Output::Event(Event::Closed {
            error: error.clone(),
        }));
        self.error = Some(error);
    }

    /// Op 4 with a null channel, when joined through the main gateway: exactly once, whichever
    /// way the connection ends (the bot must never stay shown in the channel, row 2).
    fn leave_main_gateway(&mut self) {
        if self.left_main_gateway {
            return;
        }
        if let Some(join) = &self.join {
            self.out.push_back(Output::MainGateway(VoiceStateUpdate {
                guild_id: join.guild_id,
                channel_id: None,
                self_mute: join.self_mute,
                self_deaf: join.self_deaf,
            }));
            self.left_main_gateway = true;
        }
    }

    /// The application leaves: op 4 with a null channel, close 1000. A no-op once ended.
    pub(crate) fn disconnect(&mut self) {
        if self.is_closed() {
            return;
        }
        self.leave_main_gateway();
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
