//! RTP as Discord uses it (docs/protocol.md §7): the outgoing header, its counters, silence frames,
//! demultiplexing of received datagrams (§10) and strict parsing of received headers.

/// Length of the fixed RTP header (no CSRCs, no extension), which is all we send.
pub const RTP_HEADER_LEN: usize = 12;

/// RTP payload type Discord uses for Opus.
pub const OPUS_PAYLOAD_TYPE: u8 = 120;

/// One Opus silence frame; five of them are sent when audio stops (docs/protocol.md C21).
pub const SILENCE_FRAME: [u8; 3] = [0xF8, 0xFF, 0xFE];

/// How many silence frames to send before stopping transmission.
pub const SILENCE_FRAME_COUNT: usize = 5;

/// RTP timestamp increment per packet: one 20 ms Opus frame at 48 kHz.
pub const SAMPLES_PER_FRAME: u32 = 960;

/// Largest Opus packet (RFC 6716 §3.2.1).
pub const MAX_OPUS_FRAME_LEN: usize = 1275;

/// Largest transport overhead of any mode, compiled in or not (`xsalsa20_poly1305_suffix`: 16-byte
/// tag + 24-byte nonce), so the constant does not change with features.
const MAX_TRANSPORT_OVERHEAD: usize = 40;

/// Largest DAVE trailer on an Opus frame (8-byte tag, ULEB128 nonce of up to 5 bytes, size byte,
/// `FA FA` marker); same value as [`crate::dave::MAX_FRAME_OVERHEAD`], counted here with or
/// without the `dave` feature so the constant does not change with features.
const MAX_E2EE_OVERHEAD: usize = 16;

/// Largest datagram `Session::poll_transmit` can produce in any mode: header + max Opus frame + the largest
/// DAVE trailer + the largest transport overhead (1343 bytes). Callers size buffers with it. Opus
/// frames keep their full 1..=1275-byte range under DAVE: the margin is in the packet, not taken
/// from the frame.
pub const MAX_PACKET_LEN: usize =
    RTP_HEADER_LEN + MAX_OPUS_FRAME_LEN + MAX_E2EE_OVERHEAD + MAX_TRANSPORT_OVERHEAD;

/// First byte of every header we send: V=2, P=0, X=0, CC=0.
const VERSION_BYTE: u8 = 0x80;

/// Length of an IP discovery packet, which shares the socket (docs/protocol.md §6).
const DISCOVERY_LEN: usize = 74;

/// The header of an outgoing packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    /// Sequence number, +1 per packet.
    pub sequence: u16,
    /// Timestamp in 48 kHz samples, +960 per packet.
    pub timestamp: u32,
    /// Our SSRC from Ready.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Writes `80 78 | sequence | timestamp | ssrc`, all big-endian (docs/protocol.md C18).
    pub fn write(&self, out: &mut [u8; RTP_HEADER_LEN]) {
        let [s0, s1] = self.sequence.to_be_bytes();
        let [t0, t1, t2, t3] = self.timestamp.to_be_bytes();
        let [c0, c1, c2, c3] = self.ssrc.to_be_bytes();
        *out = [
            VERSION_BYTE,
            OPUS_PAYLOAD_TYPE,
            s0,
            s1,
            t0,
            t1,
            t2,
            t3,
            c0,
            c1,
            c2,
            c3,
        ];
    }
}

/// Outgoing counters: sequence +1, timestamp +960, transport nonce +1 per packet; all wrap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpCounters {
    sequence: u16,
    timestamp: u32,
    nonce: u32,
}

impl RtpCounters {
    /// Counters whose next packet uses exactly these values.
    pub fn new(sequence: u16, timestamp: u32, nonce: u32) -> Self {
        Self {
            sequence,
            timestamp,
            nonce,
        }
    }

    /// Sequence number of the next packet.
    pub fn sequence(&self) -> u16 {
        self.sequence
    }

    /// Timestamp of the next packet.
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    /// Transport nonce counter of the next packet.
    pub fn nonce(&self) -> u32 {
        self.nonce
    }

    /// Returns `(sequence, timestamp, nonce)` for the next packet and advances (wrapping) all three.
    pub fn advance(&mut self) -> (u16, u32, u32) {
        let current = (self.sequence, self.timestamp, self.nonce);
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(SAMPLES_PER_FRAME);
        self.nonce = self.nonce.wrapping_add(1);
        current
    }
}

/// What a received datagram is (docs/protocol.md §10 demultiplexing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketKind {
    /// An RTP packet carrying Opus (version 2, payload type 120).
    Rtp,
    /// RTCP: second byte in 192..=223 (RFC 5761).
    Rtcp,
    /// A 74-byte IP discovery response (type 2), e.g. a late reply to a retried request.
    Discovery,
    /// Anything else: keepalive echoes, other payload types, junk.
    Other,
}

/// Classifies a received datagram. Only looks at the first bytes; the real parsers stay strict.
pub fn classify(datagram: &[u8]) -> PacketKind {
    let first = datagram.first().copied();
    let second = datagram.get(1).copied();
    if datagram.len() == DISCOVERY_LEN && first == Some(0) && second == Some(2) {
        return PacketKind::Discovery;
    }
    match (first, second) {
        (_, Some(192..=223)) => PacketKind::Rtcp,
        (Some(b0), Some(b1))
            if b0 >> 6 == 2
                && b1 & 0x7F == OPUS_PAYLOAD_TYPE
                && datagram.len() >= RTP_HEADER_LEN =>
        {
            PacketKind::Rtp
        }
        _ => PacketKind::Other,
    }
}

/// Parsed view of a received RTP header (strict, bounds-checked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceivedRtp {
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp (48 kHz samples).
    pub timestamp: u32,
    /// Sender's SSRC; map it to a user through server op 5.
    pub ssrc: u32,
    /// The M bit.
    pub marker: bool,
    /// Payload type (always 120 once parsed).
    pub payload_type: u8,
    /// P=1: the plaintext ends with padding whose last byte is its length.
    pub has_padding: bool,
    /// Number of CSRCs (CC).
    pub csrc_count: u8,
    /// If X=1, the extension length in 32-bit words from the clear preamble; the extension body
    /// itself is encrypted and starts the plaintext.
    pub extension_words: Option<u16>,
    /// Bytes of clear header = AAD (12 + 4*CC + 4 if X).
    pub aad_len: usize,
}

impl ReceivedRtp {
    /// Parses the clear part of a received RTP packet: version 2, payload type 120, and enough
    /// bytes for the CSRCs and extension preamble the header announces.
    pub fn parse(packet: &[u8]) -> Result<Self, RtpError> {
        let too_short = |needed| RtpError::TooShort {
            needed,
            actual: packet.len(),
        };
        let fixed: &[u8; RTP_HEADER_LEN] = packet
            .first_chunk()
            .ok_or_else(|| too_short(RTP_HEADER_LEN))?;
        let [b0, b1, s0, s1, t0, t1, t2, t3, c0, c1, c2, c3] = *fixed;
        let version = b0 >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let payload_type = b1 & 0x7F;
        if payload_type != OPUS_PAYLOAD_TYPE {
            return Err(RtpError::NotOpus { payload_type });
        }
        let csrc_count = b0 & 0x0F;
        let has_extension = b0 & 0x10 != 0;
        // At most 12 + 60 + 4 bytes: no overflow possible.
        let csrc_end = RTP_HEADER_LEN + 4 * usize::from(csrc_count);
        let (extension_words, aad_len) = if has_extension {
            let aad_len = csrc_end + 4;
            let preamble = packet
                .get(csrc_end..aad_len)
                .ok_or_else(|| too_short(aad_len))?;
            let words = match *preamble {
                [_, _, w0, w1] => u16::from_be_bytes([w0, w1]),
                _ => return Err(too_short(aad_len)),
            };
            (Some(words), aad_len)
        } else {
            if packet.len() < csrc_end {
                return Err(too_short(csrc_end));
            }
            (None, csrc_end)
        };
        Ok(Self {
            sequence: u16::from_be_bytes([s0, s1]),
            timestamp: u32::from_be_bytes([t0, t1, t2, t3]),
            ssrc: u32::from_be_bytes([c0, c1, c2, c3]),
            marker: b1 & 0x80 != 0,
            payload_type,
            has_padding: b0 & 0x20 != 0,
            csrc_count,
            extension_words,
            aad_len,
        })
    }

    /// After transport decryption: strips the extension body (4*words bytes) and padding (last
    /// byte = pad count) from the plaintext, returning the Opus frame (docs/protocol.md C27). Errors
    /// if the counts exceed the plaintext.
    pub fn payload<'a>(&self, plaintext: &'a [u8]) -> Result<&'a [u8], RtpError> {
        let rest = match self.extension_words {
            Some(words) => {
                let body_len = 4 * usize::from(words);
                plaintext
                    .get(body_len..)
                    .ok_or(RtpError::ExtensionTooLong {
                        words,
                        available: plaintext.len(),
                    })?
            }
            None => plaintext,
        };
        if !self.has_padding {
            return Ok(rest);
        }
        let available = rest.len();
        // The count includes itself (RFC 3550 §5.1), so 0 is malformed too.
        let pad = rest.last().copied().unwrap_or(0);
        let keep = available
            .checked_sub(usize::from(pad))
            .filter(|_| pad != 0)
            .ok_or(RtpError::BadPadding { pad, available })?;
        rest.get(..keep)
            .ok_or(RtpError::BadPadding { pad, available })
    }
}

/// Why a received RTP packet was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    /// Fewer bytes than the header announces.
    #[error("RTP packet too short: the header needs {needed} bytes, got {actual}")]
    TooShort {
        /// Bytes the clear header needs.
        needed: usize,
        /// Bytes received.
        actual: usize,
    },
    /// The version bits were not 2.
    #[error("RTP version must be 2, got {0}")]
    BadVersion(u8),
    /// Payload type other than Opus (120), e.g. video or probes.
    #[error("RTP payload type must be {OPUS_PAYLOAD_TYPE} (Opus), got {payload_type}")]
    NotOpus {
        /// The payload type received (M bit masked off).
        payload_type: u8,
    },
    /// The extension length exceeds the decrypted plaintext.
    #[error(
        "RTP extension of {words} words (4 bytes each) exceeds the {available}-byte plaintext"
    )]
    ExtensionTooLong {
        /// Extension length from the preamble, in 32-bit words.
        words: u16,
        /// Plaintext bytes there were.
        available: usize,
    },
    /// The padding count is 0 or exceeds what follows the extension.
    #[error("RTP padding count must be 1..={available}, got {pad}")]
    BadPadding {
        /// The pad count (last plaintext byte; 0 if there was no byte).
        pad: u8,
        /// Bytes after the extension body.
        available: usize,
    },
}
