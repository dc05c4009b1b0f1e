//! Deadlines: handshake stages, backoff, IP discovery retries, heartbeats, UDP keepalive, the
//! receive buffers.

use std::time::Instant;

use super::{Engine, Phase, ABANDON_CLOSE_CODE};
use crate::discovery::discovery_request;
use crate::error::{Error, Stage};
use crate::heartbeat::Beat;
use crate::io::{Output, Recovery};
use crate::payload::ClientMessage;

impl Engine {
    pub(super) fn run_timers(&mut self, now: Instant) {
        if let Some(streams) = self.receive.as_mut() {
            streams.poll(now);
        }
        for held in self.unmapped.take_expired(now) {
            self.drop_unmapped(held, "no op 5 mapped its SSRC to a user in time");
        }
        if self.join_deadline.is_some_and(|deadline| now >= deadline) {
            self.join_deadline_passed(now);
            return;
        }
        match self.phase.clone() {
            Phase::AwaitingServerUpdate { deadline, stage } if now >= deadline => {
                let after = match stage {
                    Stage::Move => self.config.move_timeout,
                    _ => self.config.server_update_timeout,
                };
                let error = if stage == Stage::Move {
                    Error::Disconnected {
                        code: self.last_close,
                    }
                } else {
                    Error::Timeout { stage, after }
                };
                self.fail_attempt(now, error);
            }
            Phase::Backoff { until, recovery } if now >= until => match recovery {
                Recovery::Resume => self.begin_connecting(now, Recovery::Resume),
                Recovery::Reconnect => self.begin_fresh(now),
            },
            Phase::Connecting { recovery, deadline } if now >= deadline => {
                let stage = match recovery {
                    Recovery::Resume => Stage::Resumed,
                    Recovery::Reconnect => Stage::Ready,
                };
                let after = self.config.handshake_timeout;
                self.fail_attempt(now, Error::Timeout { stage, after });
            }
            Phase::Discovering {
                remote,
                ssrc,
                mode,
                sent,
                next_retry,
            } if now >= next_retry => {
                if sent >= self.config.discovery_attempts {
                    let after = self.config.discovery_retry_interval * sent;
                    self.fail_attempt(
                        now,
                        Error::Timeout {
                            stage: Stage::IpDiscovery,
                            after,
                        },
                    );
                } else {
                    self.out.push_back(Output::Transmit {
                        to: remote,
                        data: discovery_request(ssrc).to_vec(),
                    });
                    self.phase = Phase::Discovering {
                        remote,
                        ssrc,
                        mode,
                        sent: sent + 1,
                        next_retry: now + self.config.discovery_retry_interval,
                    };
                }
            }
            Phase::SelectingProtocol { deadline, .. } if now >= deadline => {
                let after = self.config.session_description_timeout;
                self.fail_attempt(
                    now,
                    Error::Timeout {
                        stage: Stage::SessionDescription,
                        after,
                    },
                );
            }
            _ => {}
        }
        if self.is_closed() {
            return;
        }
        if let Some(heartbeat) = self.heartbeat.as_mut() {
            match heartbeat.poll(now) {
                Some(Beat::Send { nonce }) => {
                    let seq_ack = self.seq.and_then(|s| i64::try_from(s).ok()).unwrap_or(-1);
                    self.send(&ClientMessage::Heartbeat(crate::payload::Heartbeat {
                        t: nonce,
                        seq_ack,
                    }));
                }
                Some(Beat::Dead { .. }) => {
                    self.out.push_back(Output::CloseWebSocket {
                        code: ABANDON_CLOSE_CODE,
                    });
                    self.ws_open = false;
                    self.heartbeat = None;
                    self.on_connection_lost(now, None);
                }
                None => {}
            }
        }
        if let (Some(at), Some(media)) = (self.keepalive_at, self.media.as_ref()) {
            if now >= at {
                // 8 bytes like @discordjs/voice: a little-endian counter and four zero bytes.
                let mut data = vec![0u8; 8];
                data[..4].copy_from_slice(&self.keepalive_counter.to_le_bytes());
                self.keepalive_counter = self.keepalive_counter.wrapping_add(1);
                self.out.push_back(Output::Transmit {
                    to: media.remote,
                    data,
                });
                self.keepalive_at = Some(now + self.config.udp_keepalive_interval);
            }
        }
    }
}
