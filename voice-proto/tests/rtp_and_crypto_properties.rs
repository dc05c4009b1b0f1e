//! Property tests: RTP header round trips, counters wrapping, seal/open round trips in every
//! compiled mode, and no panic on arbitrary network bytes.

use proptest::prelude::*;
use voice_proto::crypto::{
    CryptoError, EncryptionMode, ModePreference, NoCommonMode, TransportCipher,
};
use voice_proto::discovery::parse_discovery_response;
use voice_proto::rtp::{
    classify, PacketKind, ReceivedRtp, RtpCounters, RtpError, RtpHeader, MAX_OPUS_FRAME_LEN,
    MAX_PACKET_LEN, OPUS_PAYLOAD_TYPE, RTP_HEADER_LEN, SAMPLES_PER_FRAME,
};
use voice_proto::secret::SecretKey;

fn any_mode() -> impl Strategy<Value = EncryptionMode> {
    proptest::sample::select(EncryptionMode::ALL)
}

proptest! {
    #[test]
    fn header_write_then_parse_round_trips(sequence: u16, timestamp: u32, ssrc: u32) {
        let header = RtpHeader { sequence, timestamp, ssrc };
        let mut bytes = [0u8; RTP_HEADER_LEN];
        header.write(&mut bytes);
        prop_assert_eq!(bytes[0], 0x80);
        prop_assert_eq!(bytes[1], 0x78);
        prop_assert_eq!(classify(&bytes), PacketKind::Rtp);
        let parsed = ReceivedRtp::parse(&bytes).unwrap();
        prop_assert_eq!(parsed.sequence, sequence);
        prop_assert_eq!(parsed.timestamp, timestamp);
        prop_assert_eq!(parsed.ssrc, ssrc);
        prop_assert!(!parsed.marker);
        prop_assert_eq!(parsed.payload_type, OPUS_PAYLOAD_TYPE);
        prop_assert!(!parsed.has_padding);
        prop_assert_eq!(parsed.csrc_count, 0);
        prop_assert_eq!(parsed.extension_words, None);
        prop_assert_eq!(parsed.aad_len, RTP_HEADER_LEN);
    }

    #[test]
    fn seal_then_open_round_trips_in_every_mode(
        mode in any_mode(),
        key: [u8; 32],
        header: [u8; RTP_HEADER_LEN],
        payload in proptest::collection::vec(any::<u8>(), 0..=MAX_OPUS_FRAME_LEN),
        nonce: u32,
        slack in 0usize..8,
    ) {
        let cipher = TransportCipher::new(mode, &SecretKey::new(key));
        let mut buf = vec![0u8; RTP_HEADER_LEN + payload.len() + mode.overhead() + slack];
        buf[..RTP_HEADER_LEN].copy_from_slice(&header);
        buf[RTP_HEADER_LEN..RTP_HEADER_LEN + payload.len()].copy_from_slice(&payload);
        let len = cipher.seal(&mut buf, RTP_HEADER_LEN, payload.len(), nonce).unwrap();
        prop_assert_eq!(len, RTP_HEADER_LEN + payload.len() + mode.overhead());
        prop_assert!(len <= MAX_PACKET_LEN);
        prop_assert_eq!(&buf[..RTP_HEADER_LEN], &header[..]);

        let packet = &mut buf[..len];
        let range = cipher.open(packet, RTP_HEADER_LEN).unwrap();
        prop_assert_eq!(range.len(), payload.len());
        prop_assert_eq!(&packet[range], payload.as_slice());
    }

    #[test]
    fn seal_refuses_a_buffer_one_byte_short(
        mode in any_mode(),
        payload_len in 0usize..64,
        aad_len in RTP_HEADER_LEN..32,
    ) {
        let cipher = TransportCipher::new(mode, &SecretKey::new([1; 32]));
        let needed = aad_len + payload_len + mode.overhead();
        let mut buf = vec![0u8; needed - 1];
        prop_assert_eq!(
            cipher.seal(&mut buf, aad_len, payload_len, 0),
            Err(CryptoError::BufferTooSmall { needed, available: needed - 1 })
        );
    }

    #[test]
    fn open_with_wrong_key_fails(mode in any_mode(), key: [u8; 32], other: [u8; 32], nonce: u32) {
        prop_assume!(key != other);
        let mut buf = [0u8; 64];
        buf[..RTP_HEADER_LEN].copy_from_slice(&[0x80, 0x78, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
        let len = TransportCipher::new(mode, &SecretKey::new(key))
            .seal(&mut buf, RTP_HEADER_LEN, 3, nonce)
            .unwrap();
        prop_assert_eq!(
            TransportCipher::new(mode, &SecretKey::new(other)).open(&mut buf[..len], RTP_HEADER_LEN),
            Err(CryptoError::AuthenticationFailed)
        );
    }

    #[test]
    fn counters_step_and_wrap(sequence: u16, timestamp: u32, nonce: u32, steps in 0usize..300) {
        let mut counters = RtpCounters::new(sequence, timestamp, nonce);
        for step in 0..steps {
            let expected = (
                sequence.wrapping_add(step as u16),
                timestamp.wrapping_add(SAMPLES_PER_FRAME.wrapping_mul(step as u32)),
                nonce.wrapping_add(step as u32),
            );
            prop_assert_eq!(counters.advance(), expected);
        }
        prop_assert_eq!(counters.sequence(), sequence.wrapping_add(steps as u16));
        prop_assert_eq!(counters.nonce(), nonce.wrapping_add(steps as u32));
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        if let Ok(rtp) = ReceivedRtp::parse(&bytes) {
            prop_assert!(rtp.aad_len <= bytes.len());
            prop_assert_eq!(rtp.aad_len, 12 + 4 * usize::from(rtp.csrc_count) + if rtp.extension_words.is_some() { 4 } else { 0 });
            // Whatever follows the header, used as "plaintext", strips without panicking.
            if let Ok(payload) = rtp.payload(&bytes[rtp.aad_len..]) {
                prop_assert!(payload.len() <= bytes.len() - rtp.aad_len);
            }
        }
    }

    #[test]
    fn payload_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 12..64),
        plaintext in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        if let Ok(rtp) = ReceivedRtp::parse(&bytes) {
            let _ = rtp.payload(&plaintext);
        }
    }

    #[test]
    fn classify_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
        let kind = classify(&bytes);
        if kind == PacketKind::Rtp {
            prop_assert!(bytes.len() >= RTP_HEADER_LEN);
        }
    }

    #[test]
    fn open_never_panics(
        mode in any_mode(),
        key: [u8; 32],
        mut bytes in proptest::collection::vec(any::<u8>(), 0..128),
        aad_len in 0usize..160,
    ) {
        let cipher = TransportCipher::new(mode, &SecretKey::new(key));
        let len = bytes.len();
        if let Ok(range) = cipher.open(&mut bytes, aad_len) {
            prop_assert!(range.end <= len);
        }
    }

    #[test]
    fn open_with_huge_aad_len_never_panics(mode in any_mode(), aad_len in (usize::MAX - 64)..=usize::MAX) {
        let cipher = TransportCipher::new(mode, &SecretKey::new([0; 32]));
        let mut bytes = [0u8; 64];
        let result = cipher.open(&mut bytes, aad_len);
        prop_assert!(matches!(result, Err(CryptoError::PacketTooShort { .. })), "{:?}", result);
    }

    #[test]
    fn seal_with_huge_lengths_never_panics(mode in any_mode(), aad_len: usize, payload_len: usize) {
        let cipher = TransportCipher::new(mode, &SecretKey::new([0; 32]));
        let mut bytes = [0u8; 64];
        let _ = cipher.seal(&mut bytes, aad_len, payload_len, 0);
    }

    #[test]
    fn discovery_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
        let _ = parse_discovery_response(&bytes);
    }

    #[test]
    fn discovery_parse_never_panics_on_74_bytes(
        tail in proptest::collection::vec(any::<u8>(), 70),
        ascii in proptest::collection::vec(prop_oneof![Just(0u8), 0x2Eu8..=0x3A, any::<u8>()], 64),
    ) {
        let mut bytes = vec![0, 2, 0, 70];
        bytes.extend_from_slice(&tail[..4]);
        bytes.extend_from_slice(&ascii);
        bytes.extend_from_slice(&tail[68..]);
        let _ = parse_discovery_response(&bytes);
    }
}

#[test]
fn counters_wrap_at_their_limits() {
    let mut counters = RtpCounters::new(u16::MAX, u32::MAX - 959, u32::MAX);
    assert_eq!(counters.advance(), (u16::MAX, u32::MAX - 959, u32::MAX));
    assert_eq!(counters.sequence(), 0);
    assert_eq!(counters.timestamp(), 0);
    assert_eq!(counters.nonce(), 0);
    assert_eq!(counters.advance(), (0, 0, 0));
    assert_eq!(counters.advance(), (1, 960, 1));

    let mut near = RtpCounters::new(65_534, u32::MAX - 100, u32::MAX - 1);
    near.advance();
    near.advance();
    assert_eq!(near.sequence(), 0);
    assert_eq!(near.timestamp(), 2 * 960 - 101);
    assert_eq!(near.nonce(), 0);
}

#[test]
fn mode_names_round_trip() {
    for &mode in EncryptionMode::ALL {
        assert_eq!(EncryptionMode::from_name(mode.name()), Some(mode));
        assert_eq!(mode.to_string(), mode.name());
    }
    assert_eq!(
        EncryptionMode::from_name("aead_aes256_gcm_rtpsize"),
        Some(EncryptionMode::AeadAes256GcmRtpSize)
    );
    assert_eq!(
        EncryptionMode::from_name("aead_xchacha20_poly1305_rtpsize"),
        Some(EncryptionMode::AeadXChaCha20Poly1305RtpSize)
    );
    assert_eq!(EncryptionMode::from_name("aead_aes256_gcm"), None);
    assert_eq!(EncryptionMode::from_name("AEAD_AES256_GCM_RTPSIZE"), None);
    assert_eq!(EncryptionMode::AeadAes256GcmRtpSize.overhead(), 20);
    assert_eq!(EncryptionMode::AeadXChaCha20Poly1305RtpSize.overhead(), 20);
    #[cfg(not(feature = "legacy-xsalsa20"))]
    {
        assert_eq!(EncryptionMode::ALL.len(), 2);
        assert_eq!(EncryptionMode::from_name("xsalsa20_poly1305"), None);
    }
    #[cfg(feature = "legacy-xsalsa20")]
    {
        assert_eq!(EncryptionMode::ALL.len(), 5);
        assert_eq!(EncryptionMode::XSalsa20Poly1305.overhead(), 16);
        assert_eq!(EncryptionMode::XSalsa20Poly1305Suffix.overhead(), 40);
        assert_eq!(EncryptionMode::XSalsa20Poly1305Lite.overhead(), 20);
        assert_eq!(
            EncryptionMode::from_name("xsalsa20_poly1305_lite"),
            Some(EncryptionMode::XSalsa20Poly1305Lite)
        );
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|name| (*name).to_owned()).collect()
}

#[test]
fn mode_preference_follows_c16() {
    let default = ModePreference::default();
    assert_eq!(
        default.modes(),
        [
            EncryptionMode::AeadAes256GcmRtpSize,
            EncryptionMode::AeadXChaCha20Poly1305RtpSize
        ]
    );
    let ready_modes = names(&[
        "aead_xchacha20_poly1305_rtpsize",
        "aead_aes256_gcm_rtpsize",
        "xsalsa20_poly1305_lite",
    ]);
    assert_eq!(
        default.choose(&ready_modes),
        Ok(EncryptionMode::AeadAes256GcmRtpSize)
    );
    let no_aes = names(&["xsalsa20_poly1305", "aead_xchacha20_poly1305_rtpsize"]);
    assert_eq!(
        default.choose(&no_aes),
        Ok(EncryptionMode::AeadXChaCha20Poly1305RtpSize)
    );
    // Deprecated modes are never chosen by default, even when they are all that is offered.
    let legacy_only = names(&[
        "xsalsa20_poly1305",
        "xsalsa20_poly1305_suffix",
        "xsalsa20_poly1305_lite",
    ]);
    let error = default.choose(&legacy_only).unwrap_err();
    assert_eq!(
        error,
        NoCommonMode {
            offered: legacy_only.clone(),
            supported: vec!["aead_aes256_gcm_rtpsize", "aead_xchacha20_poly1305_rtpsize"],
        }
    );
    assert!(error.to_string().contains("xsalsa20_poly1305_lite"));
    assert!(error.to_string().contains("aead_aes256_gcm_rtpsize"));
    assert!(default.choose(&[]).is_err());

    let xchacha_first = ModePreference::new(vec![
        EncryptionMode::AeadXChaCha20Poly1305RtpSize,
        EncryptionMode::AeadAes256GcmRtpSize,
    ]);
    assert_eq!(
        xchacha_first.choose(&ready_modes),
        Ok(EncryptionMode::AeadXChaCha20Poly1305RtpSize)
    );
}

#[test]
fn open_rejects_short_packets_with_what_it_needed() {
    let cipher = TransportCipher::new(
        EncryptionMode::AeadAes256GcmRtpSize,
        &SecretKey::new([0; 32]),
    );
    let mut packet = [0u8; 31];
    assert_eq!(
        cipher.open(&mut packet, RTP_HEADER_LEN),
        Err(CryptoError::PacketTooShort {
            needed: 32,
            actual: 31
        })
    );
    // Exactly header + overhead is an empty payload, which authenticates only if sealed.
    let mut buf = [0u8; 32];
    let len = cipher.seal(&mut buf, RTP_HEADER_LEN, 0, 9).unwrap();
    assert_eq!(len, 32);
    assert_eq!(cipher.open(&mut buf, RTP_HEADER_LEN), Ok(12..12));
}

#[test]
fn rtcp_seals_and_opens_with_an_eight_byte_header() {
    let cipher = TransportCipher::new(
        EncryptionMode::AeadXChaCha20Poly1305RtpSize,
        &SecretKey::new([5; 32]),
    );
    let mut buf = [0u8; 64];
    let rtcp = [0x80, 201, 0, 1, 0, 0, 0x30, 0x39, 1, 2, 3, 4];
    buf[..rtcp.len()].copy_from_slice(&rtcp);
    let len = cipher.seal(&mut buf, 8, 4, 77).unwrap();
    assert_eq!(classify(&buf[..len]), PacketKind::Rtcp);
    let range = cipher.open(&mut buf[..len], 8).unwrap();
    assert_eq!(&buf[range], &[1, 2, 3, 4]);
}

#[test]
fn classify_demultiplexes_per_section_10() {
    let mut discovery = [0u8; 74];
    discovery[1] = 2;
    assert_eq!(classify(&discovery), PacketKind::Discovery);
    let mut request = discovery;
    request[1] = 1;
    assert_eq!(classify(&request), PacketKind::Other);
    assert_eq!(classify(&discovery[..73]), PacketKind::Other);

    for pt in 192..=223u8 {
        assert_eq!(classify(&[0x80, pt, 0, 1]), PacketKind::Rtcp, "{pt}");
    }
    let mut rtp = [0u8; 12];
    rtp[0] = 0x80;
    rtp[1] = 0x78;
    assert_eq!(classify(&rtp), PacketKind::Rtp);
    rtp[1] = 0xF8; // marker bit set
    assert_eq!(classify(&rtp), PacketKind::Rtp);
    rtp[1] = 96; // probe / other payload type
    assert_eq!(classify(&rtp), PacketKind::Other);
    rtp[1] = 0x78;
    rtp[0] = 0x40; // version 1
    assert_eq!(classify(&rtp), PacketKind::Other);
    rtp[0] = 0x80;
    assert_eq!(classify(&rtp[..11]), PacketKind::Other);
    assert_eq!(classify(&[]), PacketKind::Other);
    assert_eq!(classify(&[0x80]), PacketKind::Other);
    assert_eq!(classify(&[0x00, 0x00, 0x30, 0x39]), PacketKind::Other); // keepalive echo
}

#[test]
fn parse_reads_every_header_field() {
    // V=2 P=1 X=1 CC=2, M=1 PT=120, then 2 CSRCs and a 3-word extension preamble.
    let mut packet = vec![0xB2, 0xF8, 0xAB, 0xCD, 1, 2, 3, 4, 0xFF, 0xEE, 0xDD, 0xCC];
    packet.extend_from_slice(&[0; 8]);
    packet.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x03]);
    let rtp = ReceivedRtp::parse(&packet).unwrap();
    assert_eq!(rtp.sequence, 0xABCD);
    assert_eq!(rtp.timestamp, 0x0102_0304);
    assert_eq!(rtp.ssrc, 0xFFEE_DDCC);
    assert!(rtp.marker);
    assert_eq!(rtp.payload_type, 120);
    assert!(rtp.has_padding);
    assert_eq!(rtp.csrc_count, 2);
    assert_eq!(rtp.extension_words, Some(3));
    assert_eq!(rtp.aad_len, 24);

    // Extension body 12 bytes, Opus 3 bytes, 2 bytes of padding (count 2).
    let mut plaintext = vec![0xAA; 12];
    plaintext.extend_from_slice(&[0xF8, 0xFF, 0xFE, 0x00, 0x02]);
    assert_eq!(rtp.payload(&plaintext), Ok(&[0xF8, 0xFF, 0xFE][..]));
}

#[test]
fn parse_rejects_with_what_it_expected() {
    assert_eq!(
        ReceivedRtp::parse(&[0x80, 0x78, 0]),
        Err(RtpError::TooShort {
            needed: 12,
            actual: 3
        })
    );
    let mut header = [0x80u8, 0x78, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    header[0] = 0x40;
    assert_eq!(ReceivedRtp::parse(&header), Err(RtpError::BadVersion(1)));
    header[0] = 0x80;
    header[1] = 0x60;
    assert_eq!(
        ReceivedRtp::parse(&header),
        Err(RtpError::NotOpus { payload_type: 96 })
    );
    header[1] = 0x78;
    header[0] = 0x83; // CC=3 needs 24 bytes
    assert_eq!(
        ReceivedRtp::parse(&header),
        Err(RtpError::TooShort {
            needed: 24,
            actual: 12
        })
    );
    header[0] = 0x90; // X=1 needs the 4-byte preamble
    assert_eq!(
        ReceivedRtp::parse(&header),
        Err(RtpError::TooShort {
            needed: 16,
            actual: 12
        })
    );
}

#[test]
fn payload_rejects_counts_beyond_the_plaintext() {
    let mut packet = vec![
        0x90, 0x78, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0x00, 0x02,
    ];
    let rtp = ReceivedRtp::parse(&packet).unwrap();
    assert_eq!(
        rtp.payload(&[0; 7]),
        Err(RtpError::ExtensionTooLong {
            words: 2,
            available: 7
        })
    );
    assert_eq!(rtp.payload(&[0; 8]), Ok(&[][..]));

    packet[0] = 0xA0; // P=1, no extension
    let rtp = ReceivedRtp::parse(&packet[..12]).unwrap();
    assert_eq!(
        rtp.payload(&[1, 2, 4]),
        Err(RtpError::BadPadding {
            pad: 4,
            available: 3
        })
    );
    assert_eq!(
        rtp.payload(&[1, 2, 0]),
        Err(RtpError::BadPadding {
            pad: 0,
            available: 3
        })
    );
    assert_eq!(
        rtp.payload(&[]),
        Err(RtpError::BadPadding {
            pad: 0,
            available: 0
        })
    );
    assert_eq!(rtp.payload(&[1, 2, 3]), Ok(&[][..]));
    assert_eq!(rtp.payload(&[9, 1]), Ok(&[9][..]));
}

#[test]
fn max_packet_len_covers_the_largest_frame_in_every_mode() {
    for &mode in EncryptionMode::ALL {
        // The largest Opus frame with the largest DAVE trailer (16 bytes) still fits.
        assert!(RTP_HEADER_LEN + MAX_OPUS_FRAME_LEN + 16 + mode.overhead() <= MAX_PACKET_LEN);
    }
    assert_eq!(MAX_PACKET_LEN, 12 + 1275 + 16 + 40);
}

#[cfg(feature = "legacy-xsalsa20")]
#[test]
fn plain_xsalsa20_needs_the_rtp_header_as_nonce() {
    let cipher = TransportCipher::new(EncryptionMode::XSalsa20Poly1305, &SecretKey::new([3; 32]));
    let mut buf = [0u8; 64];
    assert_eq!(
        cipher.seal(&mut buf, 8, 3, 0),
        Err(CryptoError::HeaderTooShort {
            needed: 12,
            actual: 8
        })
    );
    assert_eq!(
        cipher.open(&mut buf, 8),
        Err(CryptoError::HeaderTooShort {
            needed: 12,
            actual: 8
        })
    );
}
