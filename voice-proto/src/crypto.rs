//! Transport encryption of RTP/RTCP packets (docs/protocol.md §8).
//!
//! [`TransportCipher`] seals and opens packets in place in a caller-owned buffer, with no heap
//! allocation. The two current modes are AEADs over the `rtpsize` layout:
//!
//! ```text
//! | clear header = AAD (aad_len) | ciphertext (payload_len) | tag (16) | nonce counter u32 BE (4) |
//! ```
//!
//! With the `legacy-xsalsa20` feature the three `xsalsa20_poly1305*` modes Discord switched off in
//! November 2024 are available too. They use NaCl `crypto_secretbox`, whose output puts the tag
//! *before* the ciphertext, and authenticate no header bytes:
//!
//! ```text
//! xsalsa20_poly1305:        | clear header | tag (16) | ciphertext |                    nonce = header[..12] + 12 zeros
//! xsalsa20_poly1305_suffix: | clear header | tag (16) | ciphertext | nonce (24) |       nonce = counter u32 BE + 20 zeros
//! xsalsa20_poly1305_lite:   | clear header | tag (16) | ciphertext | counter u32 BE (4) | nonce = counter + 20 zeros
//! ```
//!
//! Discord's `_suffix` mode used 24 random bytes; the core receives no randomness, so it derives
//! the nonce from the caller's counter instead. Only uniqueness under one key matters for
//! XSalsa20, and the counter gives exactly that.

use core::fmt;
use core::ops::Range;

use aes_gcm::aead::{AeadCore, AeadInOut, KeyInit, Nonce, Tag};
use aes_gcm::Aes256Gcm;
use chacha20poly1305::XChaCha20Poly1305;

use crate::secret::SecretKey;

/// Length of the Poly1305 / GCM authentication tag every mode adds.
pub const TAG_LEN: usize = 16;

/// Length of the big-endian nonce counter the `rtpsize` modes append.
pub const NONCE_SUFFIX_LEN: usize = 4;

/// A transport encryption mode, as named in Ready `modes` and Select Protocol `mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncryptionMode {
    /// `aead_aes256_gcm_rtpsize`: preferred when the server offers it.
    AeadAes256GcmRtpSize,
    /// `aead_xchacha20_poly1305_rtpsize`: always offered, every client must support it.
    AeadXChaCha20Poly1305RtpSize,
    /// `xsalsa20_poly1305` (discontinued): nonce is the 12-byte RTP header padded with zeros.
    #[cfg(feature = "legacy-xsalsa20")]
    XSalsa20Poly1305,
    /// `xsalsa20_poly1305_suffix` (discontinued): 24-byte nonce appended.
    #[cfg(feature = "legacy-xsalsa20")]
    XSalsa20Poly1305Suffix,
    /// `xsalsa20_poly1305_lite` (discontinued): 4-byte counter appended.
    #[cfg(feature = "legacy-xsalsa20")]
    XSalsa20Poly1305Lite,
}

impl EncryptionMode {
    /// Every mode compiled into this build, current modes first.
    #[cfg(not(feature = "legacy-xsalsa20"))]
    pub const ALL: &'static [EncryptionMode] = &[
        EncryptionMode::AeadAes256GcmRtpSize,
        EncryptionMode::AeadXChaCha20Poly1305RtpSize,
    ];

    /// Every mode compiled into this build, current modes first.
    #[cfg(feature = "legacy-xsalsa20")]
    pub const ALL: &'static [EncryptionMode] = &[
        EncryptionMode::AeadAes256GcmRtpSize,
        EncryptionMode::AeadXChaCha20Poly1305RtpSize,
        EncryptionMode::XSalsa20Poly1305,
        EncryptionMode::XSalsa20Poly1305Suffix,
        EncryptionMode::XSalsa20Poly1305Lite,
    ];

    /// The wire name, e.g. `"aead_aes256_gcm_rtpsize"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::AeadAes256GcmRtpSize => "aead_aes256_gcm_rtpsize",
            Self::AeadXChaCha20Poly1305RtpSize => "aead_xchacha20_poly1305_rtpsize",
            #[cfg(feature = "legacy-xsalsa20")]
            Self::XSalsa20Poly1305 => "xsalsa20_poly1305",
            #[cfg(feature = "legacy-xsalsa20")]
            Self::XSalsa20Poly1305Suffix => "xsalsa20_poly1305_suffix",
            #[cfg(feature = "legacy-xsalsa20")]
            Self::XSalsa20Poly1305Lite => "xsalsa20_poly1305_lite",
        }
    }

    /// The mode with this exact wire name, if it is compiled into this build.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|mode| mode.name() == name)
    }

    /// Bytes a sealed packet is longer than `header + payload`: the tag plus whatever nonce is
    /// carried on the wire (20 for the `rtpsize` AEADs).
    pub const fn overhead(self) -> usize {
        TAG_LEN + self.suffix_len()
    }

    /// Bytes of nonce carried after the ciphertext (and tag).
    const fn suffix_len(self) -> usize {
        match self {
            Self::AeadAes256GcmRtpSize | Self::AeadXChaCha20Poly1305RtpSize => NONCE_SUFFIX_LEN,
            #[cfg(feature = "legacy-xsalsa20")]
            Self::XSalsa20Poly1305 => 0,
            #[cfg(feature = "legacy-xsalsa20")]
            Self::XSalsa20Poly1305Suffix => legacy::NONCE_LEN,
            #[cfg(feature = "legacy-xsalsa20")]
            Self::XSalsa20Poly1305Lite => NONCE_SUFFIX_LEN,
        }
    }
}

impl fmt::Display for EncryptionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Our order of preference when picking a mode from the server's offer.
#[derive(Clone, Debug, PartialEq)]
pub struct ModePreference(Vec<EncryptionMode>);

/// AES-256-GCM, then XChaCha20-Poly1305 (docs/protocol.md C16). Legacy modes are never in the
/// default, even when compiled in: Discord no longer accepts them.
impl Default for ModePreference {
    fn default() -> Self {
        Self(vec![
            EncryptionMode::AeadAes256GcmRtpSize,
            EncryptionMode::AeadXChaCha20Poly1305RtpSize,
        ])
    }
}

impl ModePreference {
    /// A preference list, most preferred first.
    pub fn new(order: Vec<EncryptionMode>) -> Self {
        Self(order)
    }

    /// The modes, most preferred first.
    pub fn modes(&self) -> &[EncryptionMode] {
        &self.0
    }

    /// The first of our modes that the server offered (Ready `modes`).
    pub fn choose(&self, offered: &[String]) -> Result<EncryptionMode, NoCommonMode> {
        self.0
            .iter()
            .copied()
            .find(|mode| offered.iter().any(|name| name == mode.name()))
            .ok_or_else(|| NoCommonMode {
                offered: offered.to_vec(),
                supported: self.0.iter().map(|mode| mode.name()).collect(),
            })
    }
}

/// The server offered none of the modes we are willing to use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no common encryption mode: the server offered {offered:?}, we support {supported:?}")]
pub struct NoCommonMode {
    /// The names from Ready `modes`, as received.
    pub offered: Vec<String>,
    /// Our preference list, by wire name.
    pub supported: Vec<&'static str>,
}

/// Why a packet could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The output buffer cannot hold header + payload + overhead.
    #[error("buffer too small to seal: needed {needed} bytes, the buffer has {available}")]
    BufferTooSmall {
        /// Bytes the sealed packet needs.
        needed: usize,
        /// Length of the buffer given.
        available: usize,
    },
    /// The received packet cannot hold the clear header plus the mode's overhead.
    #[error("packet too short to open: needed at least {needed} bytes, got {actual}")]
    PacketTooShort {
        /// Minimum length: clear header + tag + nonce suffix.
        needed: usize,
        /// Length of the packet received.
        actual: usize,
    },
    /// `xsalsa20_poly1305` takes its nonce from the 12-byte RTP header, which was not there.
    #[error("clear header too short for a header nonce: needed {needed} bytes, got {actual}")]
    HeaderTooShort {
        /// Bytes of RTP header the nonce needs (12).
        needed: usize,
        /// The `aad_len` given.
        actual: usize,
    },
    /// The cipher refused a payload this long (beyond its per-message limit).
    #[error("payload of {len} bytes exceeds the cipher's per-message limit")]
    PayloadTooLong {
        /// Length of the payload given.
        len: usize,
    },
    /// The tag did not verify: wrong key, wrong mode, a tampered packet or a wrong `aad_len`.
    #[error("authentication failed: the tag does not match the packet under this key and mode")]
    AuthenticationFailed,
}

/// The keyed cipher of the negotiated mode. The key lives only inside the RustCrypto cipher
/// values, which zeroize it on drop.
///
/// Boxed so that moving a `TransportCipher` around never leaves stale copies of the key schedule
/// behind; the allocation happens once per session, never per packet.
enum Keyed {
    Aes(Box<Aes256Gcm>),
    XChaCha(Box<XChaCha20Poly1305>),
    #[cfg(feature = "legacy-xsalsa20")]
    XSalsa(Box<crypto_secretbox::XSalsa20Poly1305>),
}

/// Seals and opens transport packets under the session's `secret_key` (docs/protocol.md §8).
pub struct TransportCipher {
    mode: EncryptionMode,
    keyed: Keyed,
}

/// Prints only the mode: key material never reaches logs.
impl fmt::Debug for TransportCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportCipher")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl TransportCipher {
    /// Keys the cipher for `mode` with the 32-byte key from Session Description.
    pub fn new(mode: EncryptionMode, key: &SecretKey) -> Self {
        let keyed = match mode {
            EncryptionMode::AeadAes256GcmRtpSize => {
                Keyed::Aes(Box::new(Aes256Gcm::new(key.expose().into())))
            }
            EncryptionMode::AeadXChaCha20Poly1305RtpSize => {
                Keyed::XChaCha(Box::new(XChaCha20Poly1305::new(key.expose().into())))
            }
            #[cfg(feature = "legacy-xsalsa20")]
            EncryptionMode::XSalsa20Poly1305
            | EncryptionMode::XSalsa20Poly1305Suffix
            | EncryptionMode::XSalsa20Poly1305Lite => {
                Keyed::XSalsa(Box::new(legacy::new_cipher(key)))
            }
        };
        Self { mode, keyed }
    }

    /// The mode this cipher was keyed for.
    pub fn mode(&self) -> EncryptionMode {
        self.mode
    }

    /// Seals an RTP (or RTCP) packet in place. `buf[..aad_len]` is the clear header (AAD),
    /// `buf[aad_len..aad_len + payload_len]` the plaintext. For the AEAD modes the ciphertext
    /// replaces the plaintext, then the 16-byte tag and the 4-byte big-endian `nonce` counter
    /// follow. Returns the total packet length (`aad_len + payload_len + mode.overhead()`).
    ///
    /// Legacy modes write `tag | ciphertext` after the header (NaCl layout, so the plaintext is
    /// moved 16 bytes forward) and then their nonce suffix; `xsalsa20_poly1305` ignores `nonce`
    /// and uses `buf[..12]` instead.
    ///
    /// The caller must never reuse a `nonce` value under one key (docs/protocol.md C25).
    pub fn seal(
        &self,
        buf: &mut [u8],
        aad_len: usize,
        payload_len: usize,
        nonce: u32,
    ) -> Result<usize, CryptoError> {
        let available = buf.len();
        let needed = aad_len
            .checked_add(payload_len)
            .and_then(|len| len.checked_add(self.mode.overhead()))
            .unwrap_or(usize::MAX);
        let too_small = CryptoError::BufferTooSmall { needed, available };
        let packet = buf.get_mut(..needed).ok_or(too_small.clone())?;
        let (header, body) = packet.split_at_mut_checked(aad_len).ok_or(too_small)?;
        match &self.keyed {
            Keyed::Aes(cipher) => {
                seal_aead(
                    &**cipher,
                    &aes_nonce(nonce),
                    header,
                    body,
                    payload_len,
                    nonce,
                )?;
            }
            Keyed::XChaCha(cipher) => {
                seal_aead(
                    &**cipher,
                    &xchacha_nonce(nonce),
                    header,
                    body,
                    payload_len,
                    nonce,
                )?;
            }
            #[cfg(feature = "legacy-xsalsa20")]
            Keyed::XSalsa(cipher) => {
                legacy::seal(cipher, self.mode, header, body, payload_len, nonce)?;
            }
        }
        Ok(needed)
    }

    /// Opens a received packet in place: `packet[..aad_len]` is the clear header including CSRCs
    /// and, if X=1, the 4-byte extension preamble ([`ReceivedRtp::aad_len`]). Returns the
    /// plaintext's range within `packet`; it still starts with the extension body and may end
    /// with padding ([`ReceivedRtp::payload`] strips both).
    ///
    /// [`ReceivedRtp::aad_len`]: crate::rtp::ReceivedRtp::aad_len
    /// [`ReceivedRtp::payload`]: crate::rtp::ReceivedRtp::payload
    ///
    /// On failure the packet may have been partly overwritten; drop it.
    pub fn open(&self, packet: &mut [u8], aad_len: usize) -> Result<Range<usize>, CryptoError> {
        let actual = packet.len();
        let needed = aad_len.saturating_add(self.mode.overhead());
        let too_short = CryptoError::PacketTooShort { needed, actual };
        if actual < needed {
            return Err(too_short);
        }
        let (header, body) = packet.split_at_mut_checked(aad_len).ok_or(too_short)?;
        match &self.keyed {
            Keyed::Aes(cipher) => open_aead(&**cipher, aes_nonce, header, body, aad_len),
            Keyed::XChaCha(cipher) => open_aead(&**cipher, xchacha_nonce, header, body, aad_len),
            #[cfg(feature = "legacy-xsalsa20")]
            Keyed::XSalsa(cipher) => legacy::open(cipher, self.mode, header, body, aad_len),
        }
    }
}

/// AES-256-GCM nonce: counter BE in bytes 0..4, then 8 zeros (docs/protocol.md C22).
fn aes_nonce(counter: u32) -> Nonce<Aes256Gcm> {
    let mut nonce = Nonce::<Aes256Gcm>::default();
    nonce[..4].copy_from_slice(&counter.to_be_bytes());
    nonce
}

/// XChaCha20-Poly1305 nonce: counter BE in bytes 0..4, then 20 zeros (docs/protocol.md C22).
fn xchacha_nonce(counter: u32) -> Nonce<XChaCha20Poly1305> {
    let mut nonce = Nonce::<XChaCha20Poly1305>::default();
    nonce[..4].copy_from_slice(&counter.to_be_bytes());
    nonce
}

/// `body` is exactly `payload_len + 20` bytes: plaintext, then room for tag and counter.
fn seal_aead<C: AeadInOut>(
    cipher: &C,
    nonce: &Nonce<C>,
    header: &[u8],
    body: &mut [u8],
    payload_len: usize,
    counter: u32,
) -> Result<(), CryptoError> {
    let too_long = CryptoError::PayloadTooLong { len: payload_len };
    let (msg, trailer) = body
        .split_at_mut_checked(payload_len)
        .ok_or(too_long.clone())?;
    let (tag_out, counter_out) = trailer
        .split_at_mut_checked(TAG_LEN)
        .ok_or(too_long.clone())?;
    let tag = cipher
        .encrypt_inout_detached(nonce, header, msg.into())
        .map_err(|_| too_long)?;
    tag_out.copy_from_slice(&tag);
    counter_out.copy_from_slice(&counter.to_be_bytes());
    Ok(())
}

/// `body` is at least 20 bytes (checked by the caller): ciphertext, tag, counter.
fn open_aead<C: AeadInOut>(
    cipher: &C,
    make_nonce: fn(u32) -> Nonce<C>,
    header: &[u8],
    body: &mut [u8],
    aad_len: usize,
) -> Result<Range<usize>, CryptoError> {
    let too_short = CryptoError::PacketTooShort {
        needed: aad_len.saturating_add(TAG_LEN + NONCE_SUFFIX_LEN),
        actual: aad_len.saturating_add(body.len()),
    };
    let ct_len = body
        .len()
        .checked_sub(TAG_LEN + NONCE_SUFFIX_LEN)
        .ok_or(too_short.clone())?;
    let (msg, trailer) = body.split_at_mut_checked(ct_len).ok_or(too_short.clone())?;
    let (tag, counter) = trailer.split_at_checked(TAG_LEN).ok_or(too_short.clone())?;
    let tag = Tag::<C>::try_from(tag).map_err(|_| too_short.clone())?;
    let counter = u32::from_be_bytes(counter.try_into().map_err(|_| too_short)?);
    cipher
        .decrypt_inout_detached(&make_nonce(counter), header, msg.into(), &tag)
        .map_err(|_| CryptoError::AuthenticationFailed)?;
    Ok(aad_len..aad_len + ct_len)
}

// Both AEADs must use the 16-byte tag the wire layout reserves.
const _: () = {
    use aes_gcm::aead::array::typenum::Unsigned;
    assert!(<<Aes256Gcm as AeadCore>::TagSize as Unsigned>::USIZE == TAG_LEN);
    assert!(<<XChaCha20Poly1305 as AeadCore>::TagSize as Unsigned>::USIZE == TAG_LEN);
};

/// The NaCl `crypto_secretbox` modes (off by default).
#[cfg(feature = "legacy-xsalsa20")]
mod legacy {
    use core::ops::Range;

    use crypto_secretbox::{AeadInPlace, KeyInit, XSalsa20Poly1305};

    use super::{CryptoError, EncryptionMode, TAG_LEN};
    use crate::rtp::RTP_HEADER_LEN;
    use crate::secret::SecretKey;

    /// XSalsa20 nonce length.
    pub(super) const NONCE_LEN: usize = 24;

    pub(super) fn new_cipher(key: &SecretKey) -> XSalsa20Poly1305 {
        XSalsa20Poly1305::new(key.expose().into())
    }

    /// The 24-byte nonce for `mode`: from the header (plain) or the counter (suffix, lite).
    fn nonce(
        mode: EncryptionMode,
        header: &[u8],
        counter: u32,
    ) -> Result<[u8; NONCE_LEN], CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        if mode == EncryptionMode::XSalsa20Poly1305 {
            let rtp = header
                .get(..RTP_HEADER_LEN)
                .ok_or(CryptoError::HeaderTooShort {
                    needed: RTP_HEADER_LEN,
                    actual: header.len(),
                })?;
            nonce[..RTP_HEADER_LEN].copy_from_slice(rtp);
        } else {
            nonce[..4].copy_from_slice(&counter.to_be_bytes());
        }
        Ok(nonce)
    }

    /// `body` is exactly `payload_len + overhead` bytes with the plaintext at its start.
    pub(super) fn seal(
        cipher: &XSalsa20Poly1305,
        mode: EncryptionMode,
        header: &[u8],
        body: &mut [u8],
        payload_len: usize,
        counter: u32,
    ) -> Result<(), CryptoError> {
        let nonce = nonce(mode, header, counter)?;
        let too_long = CryptoError::PayloadTooLong { len: payload_len };
        // NaCl layout: the tag goes first, so shift the plaintext past it.
        let end = payload_len.checked_add(TAG_LEN).ok_or(too_long.clone())?;
        if body.len() < end {
            return Err(too_long);
        }
        body.copy_within(..payload_len, TAG_LEN);
        let (tag_out, rest) = body.split_at_mut_checked(TAG_LEN).ok_or(too_long.clone())?;
        let (msg, suffix) = rest
            .split_at_mut_checked(payload_len)
            .ok_or(too_long.clone())?;
        let tag = cipher
            .encrypt_in_place_detached((&nonce).into(), b"", msg)
            .map_err(|_| too_long)?;
        tag_out.copy_from_slice(&tag);
        // Lengths match by construction: `body` was cut to `payload_len + mode.overhead()`.
        match mode {
            EncryptionMode::XSalsa20Poly1305Suffix => suffix.copy_from_slice(&nonce),
            EncryptionMode::XSalsa20Poly1305Lite => suffix.copy_from_slice(&counter.to_be_bytes()),
            _ => {}
        }
        Ok(())
    }

    /// `body` holds at least the mode's overhead (checked by the caller).
    pub(super) fn open(
        cipher: &XSalsa20Poly1305,
        mode: EncryptionMode,
        header: &[u8],
        body: &mut [u8],
        aad_len: usize,
    ) -> Result<Range<usize>, CryptoError> {
        let too_short = CryptoError::PacketTooShort {
            needed: aad_len.saturating_add(mode.overhead()),
            actual: aad_len.saturating_add(body.len()),
        };
        let suffix_len = mode.suffix_len();
        let sealed_len = body
            .len()
            .checked_sub(suffix_len)
            .ok_or(too_short.clone())?;
        let (sealed, suffix) = body
            .split_at_mut_checked(sealed_len)
            .ok_or(too_short.clone())?;
        let (tag, msg) = sealed
            .split_at_mut_checked(TAG_LEN)
            .ok_or(too_short.clone())?;
        let tag: [u8; TAG_LEN] = (&*tag).try_into().map_err(|_| too_short.clone())?;
        let nonce = match mode {
            EncryptionMode::XSalsa20Poly1305Suffix => {
                <[u8; NONCE_LEN]>::try_from(&*suffix).map_err(|_| too_short)?
            }
            EncryptionMode::XSalsa20Poly1305Lite => {
                let counter: [u8; 4] = (&*suffix).try_into().map_err(|_| too_short)?;
                nonce(mode, header, u32::from_be_bytes(counter))?
            }
            _ => nonce(mode, header, 0)?,
        };
        let ct_len = msg.len();
        cipher
            .decrypt_in_place_detached((&nonce).into(), b"", msg, (&tag).into())
            .map_err(|_| CryptoError::AuthenticationFailed)?;
        let start = aad_len + TAG_LEN;
        Ok(start..start + ct_len)
    }
}
