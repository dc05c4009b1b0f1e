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
        self.phase_deadline(now);
        if self.is_closed() {
            return;
        }
        self.heartbeat_due(now);
        self.keepalive_due(now);
    }

    /// The current phase's deadline: a wait that timed out fails the attempt (retried within the
    /// join deadline), a backoff that ended starts the next attempt, a discovery request that got
    /// no answer is sent again.
    fn phase_deadline(&mut self, now: Instant) {
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
    }

    /// Op 3 when its interval has passed; a websocket whose heartbeats go unacknowledged is
    /// abandoned and recovered.
    fn heartbeat_due(&mut self, now: Instant) {
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
    }

    /// The UDP keepalive when its interval has passed, remembered for its echo (round trip).
    fn keepalive_due(&mut self, now: Instant) {
        if let (Some(at), Some(media)) = (self.keepalive_at, self.media.as_ref()) {
            if now >= at {
                // 8 bytes like @discordjs/voice: a little-endian counter and four zero bytes.
                let mut data = vec![0u8; 8];
                data[..4].copy_from_slice(&self.keepalive_counter.to_le_bytes());
                if self.keepalives_sent.len() >= KEEPALIVES_REMEMBERED {
                    self.keepalives_sent.pop_front();
                }
                self.keepalives_sent
                    .push_back((self.keepalive_counter, now));
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

/// Keepalives remembered for their echo: a minute at the default 5 s interval (@discordjs/voice
/// gives up on the UDP path after 12 unanswered ones; we only measure).
const KEEPALIVES_REMEMBERED: usize = 12;

impl Engine {
    /// An 8-byte datagram from the media server carrying the counter of a keepalive we sent
    /// is its echo: the UDP round trip (`Stats::udp_round_trip`). Returns whether `data` was
    /// one; anything else goes on to the media path.
    pub(super) fn on_keepalive_echo(
        &mut self,
        now: Instant,
        from: std::net::SocketAddr,
        data: &[u8],
    ) -> bool {
        let Some(media) = self.media.as_ref() else {
            return false;
        };
        let counter = match data {
            [a, b, c, d, _, _, _, _] if from == media.remote => {
                u32::from_le_bytes([*a, *b, *c, *d])
            }
            _ => return false,
        };
        let Some(index) = self
            .keepalives_sent
            .iter()
            .position(|(sent, _)| *sent == counter)
        else {
            return false;
        };
        if let Some((_, sent_at)) = self.keepalives_sent.get(index) {
            self.stats.udp_round_trip = Some(now.saturating_duration_since(*sent_at));
        }
        // The echo of a later keepalive answers for the earlier ones too.
        self.keepalives_sent.drain(..=index);
        true
    }
}
