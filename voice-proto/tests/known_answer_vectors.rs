//! Known-answer vectors: docs/protocol.md §8.3 (transport encryption, C26) and §6 (discovery, C13).

use voice_proto::crypto::{CryptoError, EncryptionMode, TransportCipher};
use voice_proto::discovery::{discovery_request, DISCOVERY_PACKET_LEN};
use voice_proto::rtp::{ReceivedRtp, RtpHeader, MAX_PACKET_LEN, RTP_HEADER_LEN, SILENCE_FRAME};
use voice_proto::secret::SecretKey;

/// Parses the spaced hex used in docs/protocol.md (`|` separators allowed).
fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    assert_eq!(digits.len() % 2, 0, "odd number of hex digits");
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// Key = bytes 00 01 02 … 1f.
fn key() -> SecretKey {
    let mut bytes = [0u8; 32];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = index as u8;
    }
    SecretKey::new(bytes)
}

const HEADER: &str = "80 78 00 01 00 00 03 c0 00 00 30 39";

const AES_PACKET: &str = "80 78 00 01 00 00 03 c0 00 00 30 39 | bc c9 33 | 52 17 7d 15 56 c7 9e 0e bd e4 2f 85 4c a2 77 51 | 00 00 00 01";

const XCHACHA_PACKET: &str = "80 78 00 01 00 00 03 c0 00 00 30 39 | f1 58 af | f8 0f fd d7 29 b8 52 7e ea dc eb 6a a6 33 3a 05 | 00 00 00 01";

const EXTENSION_PACKET: &str = "90 78 00 02 00 00 07 80 00 00 30 39 be de 00 01 | bc fc 5a ce 6a ff 08 | 8c 55 9d 35 f3 0b 78 d5 cc d7 cc 21 81 87 f7 d0 | 00 00 00 02";

/// Seals header + silence with counter 1, the way `send_opus` does.
fn seal_silence(mode: EncryptionMode) -> Vec<u8> {
    let cipher = TransportCipher::new(mode, &key());
    let mut buf = [0u8; MAX_PACKET_LEN];
    let header: &mut [u8; RTP_HEADER_LEN] = (&mut buf[..RTP_HEADER_LEN]).try_into().unwrap();
    RtpHeader {
        sequence: 1,
        timestamp: 960,
        ssrc: 12345,
    }
    .write(header);
    assert_eq!(&buf[..RTP_HEADER_LEN], hex(HEADER).as_slice());
    buf[RTP_HEADER_LEN..RTP_HEADER_LEN + 3].copy_from_slice(&SILENCE_FRAME);
    let len = cipher
        .seal(&mut buf, RTP_HEADER_LEN, SILENCE_FRAME.len(), 1)
        .unwrap();
    buf[..len].to_vec()
}

/// Opens `packet` as a receiver would: parse, open with the parsed AAD length, strip.
fn open_received(mode: EncryptionMode, packet: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let cipher = TransportCipher::new(mode, &key());
    let rtp = ReceivedRtp::parse(packet).unwrap();
    let mut packet = packet.to_vec();
    let range = cipher.open(&mut packet, rtp.aad_len)?;
    Ok(rtp.payload(&packet[range]).unwrap().to_vec())
}

#[test]
fn aes256_gcm_seal_reproduces_the_example_packet() {
    let packet = seal_silence(EncryptionMode::AeadAes256GcmRtpSize);
    assert_eq!(packet.len(), 35);
    assert_eq!(packet, hex(AES_PACKET));
}

#[test]
fn xchacha20_seal_reproduces_the_example_packet() {
    let packet = seal_silence(EncryptionMode::AeadXChaCha20Poly1305RtpSize);
    assert_eq!(packet.len(), 35);
    assert_eq!(packet, hex(XCHACHA_PACKET));
}

#[test]
fn aes256_gcm_seal_reproduces_the_extension_packet() {
    let cipher = TransportCipher::new(EncryptionMode::AeadAes256GcmRtpSize, &key());
    let mut buf = [0u8; MAX_PACKET_LEN];
    let clear = hex("90 78 00 02 00 00 07 80 00 00 30 39 be de 00 01");
    let plaintext = hex("10 80 00 00 f8 ff fe");
    buf[..16].copy_from_slice(&clear);
    buf[16..23].copy_from_slice(&plaintext);
    let len = cipher.seal(&mut buf, 16, 7, 2).unwrap();
    assert_eq!(&buf[..len], hex(EXTENSION_PACKET).as_slice());
}

#[test]
fn open_accepts_the_example_packets() {
    for (mode, packet) in [
        (EncryptionMode::AeadAes256GcmRtpSize, AES_PACKET),
        (EncryptionMode::AeadXChaCha20Poly1305RtpSize, XCHACHA_PACKET),
    ] {
        let opus = open_received(mode, &hex(packet)).unwrap();
        assert_eq!(opus, SILENCE_FRAME, "{mode}");
    }
}

#[test]
fn open_accepts_the_extension_packet_and_strips_the_extension_body() {
    let packet = hex(EXTENSION_PACKET);
    let rtp = ReceivedRtp::parse(&packet).unwrap();
    assert_eq!(rtp.aad_len, 16);
    assert_eq!(rtp.extension_words, Some(1));
    assert_eq!(rtp.sequence, 2);
    assert_eq!(rtp.timestamp, 1920);
    assert_eq!(rtp.ssrc, 12345);

    let cipher = TransportCipher::new(EncryptionMode::AeadAes256GcmRtpSize, &key());
    let mut buf = packet.clone();
    let range = cipher.open(&mut buf, rtp.aad_len).unwrap();
    assert_eq!(range, 16..23);
    assert_eq!(&buf[range.clone()], hex("10 80 00 00 f8 ff fe").as_slice());
    assert_eq!(rtp.payload(&buf[range]).unwrap(), SILENCE_FRAME);
}

#[test]
fn any_tampered_byte_fails_authentication() {
    for (mode, packet) in [
        (EncryptionMode::AeadAes256GcmRtpSize, AES_PACKET),
        (EncryptionMode::AeadXChaCha20Poly1305RtpSize, XCHACHA_PACKET),
        (EncryptionMode::AeadAes256GcmRtpSize, EXTENSION_PACKET),
    ] {
        let packet = hex(packet);
        let aad_len = ReceivedRtp::parse(&packet).unwrap().aad_len;
        let cipher = TransportCipher::new(mode, &key());
        // Header (AAD), ciphertext, tag and nonce suffix are all covered.
        for index in 0..packet.len() {
            let mut tampered = packet.clone();
            tampered[index] ^= 0x01;
            assert_eq!(
                cipher.open(&mut tampered, aad_len),
                Err(CryptoError::AuthenticationFailed),
                "{mode}: flipped byte {index}"
            );
        }
    }
}

#[test]
fn wrong_key_or_wrong_mode_fails_authentication() {
    let packet = hex(AES_PACKET);
    let other_key = TransportCipher::new(
        EncryptionMode::AeadAes256GcmRtpSize,
        &SecretKey::new([7; 32]),
    );
    assert_eq!(
        other_key.open(&mut packet.clone(), RTP_HEADER_LEN),
        Err(CryptoError::AuthenticationFailed)
    );
    let other_mode = TransportCipher::new(EncryptionMode::AeadXChaCha20Poly1305RtpSize, &key());
    assert_eq!(
        other_mode.open(&mut packet.clone(), RTP_HEADER_LEN),
        Err(CryptoError::AuthenticationFailed)
    );
}

#[test]
fn cipher_debug_prints_no_key_material() {
    let cipher = TransportCipher::new(EncryptionMode::AeadAes256GcmRtpSize, &key());
    let debug = format!("{cipher:?}");
    assert!(debug.contains("AeadAes256GcmRtpSize"), "{debug}");
    assert!(!debug.contains("31"), "{debug}");
}

#[test]
fn discovery_request_for_ssrc_12345() {
    let mut expected = hex("00 01 00 46 00 00 30 39");
    expected.extend_from_slice(&[0; 64]);
    expected.extend_from_slice(&[0, 0]);
    assert_eq!(expected.len(), DISCOVERY_PACKET_LEN);
    assert_eq!(discovery_request(12345).as_slice(), expected.as_slice());
}

/// Legacy vectors computed with libsodium's `crypto_secretbox_easy` (output `tag || ciphertext`),
/// an implementation independent of RustCrypto, for the same header, key and counter 1.
#[cfg(feature = "legacy-xsalsa20")]
mod legacy {
    use super::*;

    const PLAIN: &str = "80780001000003c000003039 c835f9e090c872bf0b5cf08ea15f2536 0a0e25";
    const SUFFIX: &str = "80780001000003c000003039 373c50ba1774f0dedb75d5fd7d642512 36542b 000000010000000000000000000000000000000000000000";
    const LITE: &str = "80780001000003c000003039 373c50ba1774f0dedb75d5fd7d642512 36542b 00000001";

    const VECTORS: [(EncryptionMode, &str); 3] = [
        (EncryptionMode::XSalsa20Poly1305, PLAIN),
        (EncryptionMode::XSalsa20Poly1305Suffix, SUFFIX),
        (EncryptionMode::XSalsa20Poly1305Lite, LITE),
    ];

    #[test]
    fn seal_reproduces_libsodium() {
        for (mode, packet) in VECTORS {
            let sealed = seal_silence(mode);
            assert_eq!(sealed.len(), RTP_HEADER_LEN + 3 + mode.overhead(), "{mode}");
            assert_eq!(sealed, hex(packet), "{mode}");
        }
    }

    #[test]
    fn open_accepts_libsodium_packets() {
        for (mode, packet) in VECTORS {
            let opus = open_received(mode, &hex(packet)).unwrap();
            assert_eq!(opus, SILENCE_FRAME, "{mode}");
        }
    }

    #[test]
    fn tampered_payload_tag_or_nonce_fails_authentication() {
        for (mode, packet) in VECTORS {
            let packet = hex(packet);
            let cipher = TransportCipher::new(mode, &key());
            // The header is not authenticated in legacy modes, except as the plain mode's nonce.
            let first = if mode == EncryptionMode::XSalsa20Poly1305 {
                0
            } else {
                RTP_HEADER_LEN
            };
            for index in first..packet.len() {
                let mut tampered = packet.clone();
                tampered[index] ^= 0x80;
                assert_eq!(
                    cipher.open(&mut tampered, RTP_HEADER_LEN),
                    Err(CryptoError::AuthenticationFailed),
                    "{mode}: flipped byte {index}"
                );
            }
        }
    }
}
