//! The outgoing media path: RTP header, counters, transport seal, written into a caller's buffer.

use std::net::SocketAddr;

use crate::crypto::{EncryptionMode, TransportCipher};
use crate::dave::Dave;
use crate::error::{Error, NotReady};
use crate::rtp::{RtpCounters, RtpHeader, MAX_OPUS_FRAME_LEN, RTP_HEADER_LEN};
use crate::secret::SecretKey;

/// Keys and counters of one negotiated media session (one `secret_key`). Kept across a resume,
/// replaced on a fresh reconnect.
#[derive(Debug)]
pub(crate) struct Media {
    pub(crate) cipher: TransportCipher,
    pub(crate) counters: RtpCounters,
    pub(crate) ssrc: u32,
    pub(crate) remote: SocketAddr,
    pub(crate) packets_sent: u64,
}

impl Media {
    pub(crate) fn new(
        mode: EncryptionMode,
        key: &SecretKey,
        ssrc: u32,
        remote: SocketAddr,
        seed: u64,
    ) -> Self {
        // Initial sequence and timestamp come from the adapter's entropy; the nonce counter starts
        // at 1 like @discordjs/voice. Truncating the seed is the point.
        #[allow(clippy::cast_possible_truncation)]
        let counters = RtpCounters::new(seed as u16, (seed >> 16) as u32, 1);
        Self {
            cipher: TransportCipher::new(mode, key),
            counters,
            ssrc,
            remote,
            packets_sent: 0,
        }
    }

    /// Writes one encrypted RTP packet carrying `frame` into `buf`; returns its length.
    ///
    /// This is the hot path: no allocation in steady state. Without DAVE: one copy of the frame,
    /// one in-place seal. With DAVE: the frame is end-to-end encrypted into `dave`'s reused
    /// buffer first (silence `F8 FF FE` is not, C46), then copied and sealed. Nothing advances
    /// when the DAVE stage refuses the frame.
    pub(crate) fn write_packet(
        &mut self,
        frame: &[u8],
        dave: &mut Dave,
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        if frame.is_empty() || frame.len() > MAX_OPUS_FRAME_LEN {
            return Err(Error::NotReady(NotReady::BadFrameLength {
                len: frame.len(),
            }));
        }
        let needed_plain = RTP_HEADER_LEN + frame.len() + self.cipher.mode().overhead();
        if buf.len() < needed_plain {
            return Err(Error::NotReady(NotReady::BufferTooSmall {
                needed: needed_plain,
                available: buf.len(),
            }));
        }
        // The end-to-end stage: Opus -> DAVE frame (or the frame itself when DAVE is off).
        let frame = dave.encrypt(frame)?;
        let needed = RTP_HEADER_LEN + frame.len() + self.cipher.mode().overhead();
        if buf.len() < needed {
            return Err(Error::NotReady(NotReady::BufferTooSmall {
                needed,
                available: buf.len(),
            }));
        }
        let (sequence, timestamp, nonce) = self.counters.advance();
        let (header, rest) = buf.split_at_mut(RTP_HEADER_LEN);
        let header: &mut [u8; RTP_HEADER_LEN] = header.try_into().map_err(|_| {
            Error::NotReady(NotReady::BufferTooSmall {
                needed,
                available: 0,
            })
        })?;
        RtpHeader {
            sequence,
            timestamp,
            ssrc: self.ssrc,
        }
        .write(header);
        // Opus (or its DAVE frame) -> RTP payload -> transport AEAD.
        rest[..frame.len()].copy_from_slice(frame);
        let len = self.cipher.seal(buf, RTP_HEADER_LEN, frame.len(), nonce)?;
        self.packets_sent += 1;
        Ok(len)
    }
}
