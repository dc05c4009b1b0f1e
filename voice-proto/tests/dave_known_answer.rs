//! Known-answer tests of docs/protocol.md 9.4 (C43, C44, C45): the sender-key ratchet and both Opus
//! frame vectors, reproduced with an independent implementation (hkdf/sha2/aes-gcm), which the
//! DAVE handshake tests then use to check the frames our send path produces.
#![cfg(feature = "dave")]

mod support;

use support::dave::{decrypt_frame, encrypt_frame, parse_frame, ratchet_key};

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

const BASE: &str = "ce dd 61 b1 b8 a1 ca 69 04 65 54 28 2c f7 0b 7b";
const OPUS: [u8; 6] = [0xfc, 0xff, 0xfe, 0x01, 0x02, 0x03];

#[test]
fn ratchet_base_secret_to_generation_0_key() {
    let key = ratchet_key(&hex(BASE), 0);
    assert_eq!(
        key.to_vec(),
        hex("75 30 f9 a9 94 5e 2d 2e 06 d0 65 1f 7b 2a 86 4b")
    );
}

#[test]
fn first_and_second_frame_vectors() {
    let key = ratchet_key(&hex(BASE), 0);
    let first = encrypt_frame(&key, 1, &OPUS);
    assert_eq!(
        first,
        hex("2d da 55 ea 4d 83 e7 aa 95 bc 52 9d d5 b3 01 0c fa fa")
    );
    let second = encrypt_frame(&key, 2, &OPUS);
    assert_eq!(
        second,
        hex("e2 78 ad 89 2d 6e a2 c4 4c a7 bf 13 d9 51 02 0c fa fa")
    );
    // The layout: ciphertext (frame length) | 8-byte tag | ULEB128 nonce | size = 11 + len | FA FA.
    let parsed = parse_frame(&first);
    assert_eq!(parsed.ciphertext.len(), OPUS.len());
    assert_eq!(
        (parsed.nonce, parsed.nonce_len, parsed.size_byte),
        (1, 1, 12)
    );
    assert_eq!(decrypt_frame(&key, &first), OPUS);
    assert_eq!(decrypt_frame(&key, &second), OPUS);
}

#[test]
fn long_nonces_use_more_uleb128_bytes_and_a_larger_size_byte() {
    let key = ratchet_key(&hex(BASE), 0);
    for (nonce, len) in [
        (127u32, 1usize),
        (128, 2),
        (16_383, 2),
        (16_384, 3),
        (u32::MAX, 5),
    ] {
        let frame = encrypt_frame(&key, nonce, &OPUS);
        let parsed = parse_frame(&frame);
        assert_eq!(parsed.nonce, nonce);
        assert_eq!(parsed.nonce_len, len);
        assert_eq!(usize::from(parsed.size_byte), 11 + len, "C43");
        assert_eq!(frame.len(), OPUS.len() + 11 + len);
        assert!(frame.len() - OPUS.len() <= voice_proto::dave::MAX_FRAME_OVERHEAD);
    }
}
