//! Received datagrams: the IP discovery answer, then transport- and DAVE-decrypted audio.

use std::net::SocketAddr;
use std::time::Instant;

use super::unmapped::HeldFrame;
use super::{Engine, PacketInfo, Phase};
use crate::dave::Incoming;
use crate::discovery::parse_discovery_response;
use crate::error::Error;
use crate::id::UserId;
use crate::io::{Event, Output, ReceivedAudio};
use crate::payload::{ClientMessage, SelectProtocol};
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
        let Some(media) = self.media.as_ref() else {
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
    /// and plain frames pass), then hand the audio to the application. A DAVE frame whose SSRC is
    /// not mapped yet waits for its op 5.
    pub(super) fn deliver(&mut self, now: Instant, packet: PacketInfo, opus: &[u8]) {
        let user_id = self.ssrc_users.get(packet.ssrc);
        let opus = match self
            .dave
            .decrypt(user_id, opus, self.channel_id, &mut self.out)
        {
            Incoming::Plain => opus.to_vec(),
            Incoming::Decrypted(frame) => {
                self.stats.dave_frames_decrypted += 1;
                frame.to_vec()
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
        let audio = ReceivedAudio {
            ssrc: packet.ssrc,
            user_id,
            sequence: packet.sequence,
            timestamp: packet.timestamp,
            opus,
        };
        self.stats.packets_received += 1;
        self.out.push_back(Output::Event(Event::Audio(audio)));
    }

    /// Forgets the media session, and with it who sent on which SSRC and the frames that came on
    /// it and still wait for their sender: a new session (another voice server, or a fresh
    /// Identify) hands SSRCs out anew and brings new DAVE keys (row 4).
    pub(super) fn end_media(&mut self) {
        self.media = None;
        self.ssrc_users.clear();
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

    pub(crate) fn ssrc_user(&self, ssrc: u32) -> Option<UserId> {
        self.ssrc_users.get(ssrc)
    }
}
