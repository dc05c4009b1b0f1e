//! Received datagrams: the IP discovery answer, then (when receive is on) transport- and
//! DAVE-decrypted audio into the senders' playout buffers.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use super::unmapped::HeldFrame;
use super::{Engine, PacketInfo, Phase};
use crate::dave::Incoming;
use crate::discovery::parse_discovery_response;
use crate::error::Error;
use crate::id::UserId;
use crate::io::{Event, Output};
use crate::payload::{ClientMessage, SelectProtocol};
use crate::receive::{BufferStats, ReceiveStats, Received};
use crate::rtp::{classify, PacketKind, ReceivedRtp};

impl Engine {
    pub(super) fn on_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        match self.phase {
            Phase::Discovering {
                remote, ssrc, mode, ..
            } if from == remote && classify(data) == PacketKind::Discovery => {
                match parse_discovery_response(data) {
                    Ok(found) => {
                        self.send(&ClientMessage::SelectProtocol(SelectProtocol::udp(
                            found.ip.to_string(),
                            found.port,
                            mode.name().to_owned(),
                        )));
                        self.phase = Phase::SelectingProtocol {
                            remote,
                            ssrc,
                            mode,
                            deadline: now + self.config.session_description_timeout,
                        };
                    }
                    Err(error) => {
                        self.stats.datagrams_ignored += 1;
                        tracing::debug!(%error, "bad IP discovery answer");
                    }
                }
            }
            _ => self.on_media_datagram(now, from, data),
        }
    }

    pub(super) fn on_media_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        // Receive off: nothing past a look at the source and the first bytes.
        let (Some(media), Some(streams)) = (self.media.as_ref(), self.receive.as_mut()) else {
            self.stats.datagrams_ignored += 1;
            return;
        };
        if from != media.remote || classify(data) != PacketKind::Rtp {
            self.stats.datagrams_ignored += 1;
            return;
        }
        let header = match ReceivedRtp::parse(data) {
            Ok(header) if header.ssrc != media.ssrc => header,
            _ => {
                self.stats.datagrams_ignored += 1;
                return;
            }
        };
        // A duplicate, or a packet whose frame was given up, costs no decryption (and a
        // replayed DAVE frame never counts as a DAVE failure).
        if !streams.check(header.ssrc, header.sequence) {
            self.stats.packets_skipped += 1;
            return;
        }
        // Taken out (no allocation) so that `deliver` can borrow the engine mutably.
        let mut scratch = std::mem::take(&mut self.rx_scratch);
        scratch.clear();
        scratch.extend_from_slice(data);
        let opus = media
            .cipher
            .open(&mut scratch, header.aad_len)
            .map_err(Error::from)
            .and_then(|range| {
                let plain = scratch.get(range).unwrap_or_default();
                header.payload(plain).map_err(Error::from)
            });
        match opus {
            Ok(opus) => {
                let packet = PacketInfo {
                    ssrc: header.ssrc,
                    sequence: header.sequence,
                    timestamp: header.timestamp,
                };
                self.deliver(now, packet, opus);
            }
            Err(_) => self.stats.decrypt_failures += 1,
        }
        self.rx_scratch = scratch;
    }

    /// The DAVE stage for a transport-decrypted frame: decrypt with the sender's user id (silence
    /// and plain frames pass), then into the sender's playout buffer. A DAVE frame whose SSRC is
    /// not mapped yet waits for its op 5.
    pub(super) fn deliver(&mut self, now: Instant, packet: PacketInfo, opus: &[u8]) {
        let user_id = self.ssrc_users.get(packet.ssrc);
        let opus = match self
            .dave
            .decrypt(user_id, opus, self.channel_id, &mut self.out)
        {
            Incoming::Plain => Bytes::copy_from_slice(opus),
            Incoming::Decrypted(frame) => {
                self.stats.dave_frames_decrypted += 1;
                Bytes::copy_from_slice(frame)
            }
            Incoming::UnknownSender => {
                if let Some(evicted) = self.unmapped.hold(now, packet, opus) {
                    self.drop_unmapped(evicted, "too many frames were waiting for their op 5");
                }
                return;
            }
            Incoming::Failed {
                reason,
                consecutive,
            } => {
                self.stats.dave_decrypt_failures += 1;
                self.out.push_back(Output::Event(Event::DaveDecryptFailed {
                    ssrc: packet.ssrc,
                    user_id,
                    consecutive,
                    reason,
                }));
                return;
            }
        };
        self.stats.packets_received += 1;
        if let Some(streams) = self.receive.as_mut() {
            streams.insert(
                now,
                packet.ssrc,
                user_id,
                packet.sequence,
                packet.timestamp,
                opus,
            );
        }
    }

    /// Forgets the media session, and with it who sent on which SSRC and the frames that came on
    /// it and still wait for their sender: a new session (another voice server, or a fresh
    /// Identify) hands SSRCs out anew and brings new DAVE keys (row 4).
    pub(super) fn end_media(&mut self) {
        self.media = None;
        self.ssrc_users.clear();
        if let Some(streams) = self.receive.as_mut() {
            streams.end_all();
        }
        self.playout.end_spurt();
        for held in self.unmapped.take_all() {
            self.drop_unmapped(held, "the media session it came on ended");
        }
    }

    /// Gives up on a frame whose sender never became known.
    pub(super) fn drop_unmapped(&mut self, held: HeldFrame, why: &str) {
        self.stats.dave_decrypt_failures += 1;
        self.out.push_back(Output::Event(Event::DaveDecryptFailed {
            ssrc: held.packet.ssrc,
            user_id: None,
            consecutive: self.dave.consecutive_failures(),
            reason: format!("unknown sender: {why}"),
        }));
    }

    /// The next item of received audio (receive on).
    pub(crate) fn poll_received(&mut self) -> Option<Received> {
        self.receive.as_mut()?.poll_received()
    }

    /// Counters of the receive side, when it is on.
    pub(crate) fn receive_stats(&self) -> Option<ReceiveStats> {
        let streams = self.receive.as_ref()?;
        Some(ReceiveStats {
            buffers: streams.stats(),
            dropped: streams.dropped(),
            streams: streams.len(),
        })
    }

    /// One sender's buffer counters and current depth.
    pub(crate) fn receive_stream_stats(&self, ssrc: u32) -> Option<(BufferStats, usize)> {
        self.receive.as_ref()?.stream_stats(ssrc)
    }

    pub(crate) fn ssrc_user(&self, ssrc: u32) -> Option<UserId> {
        self.ssrc_users.get(ssrc)
    }
}
