//! Receiving: inbound packets (with a header extension) are decrypted for the negotiated mode and
//! attributed through the SSRC -> user map from op 5 / 13 (C27, C28, C29, C30).

mod support;

use support::*;
use voice_proto::crypto::TransportCipher;
use voice_proto::payload::{ClientDisconnect, ServerMessage, Speaking, SpeakingFlags};
use voice_proto::secret::SecretKey;
use voice_proto::{Event, Input};

const THEIR_SSRC: u32 = 4242;

/// A packet as Discord relays it: X=1 with a one-byte extension, then the Opus frame.
fn inbound(h: &Harness, sequence: u16, opus: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x90, 0x78];
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(&(u32::from(sequence) * 960).to_be_bytes());
    packet.extend_from_slice(&THEIR_SSRC.to_be_bytes());
    packet.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01]);
    let aad_len = packet.len();
    packet.extend_from_slice(&[0x10, 0x80, 0x00, 0x00]);
    packet.extend_from_slice(opus);
    let payload_len = packet.len() - aad_len;
    packet.resize(packet.len() + 20, 0);
    let cipher = TransportCipher::new(h.server.mode, &SecretKey::new(h.server.key));
    let len = cipher
        .seal(&mut packet, aad_len, payload_len, u32::from(sequence))
        .unwrap();
    packet.truncate(len);
    packet
}

fn audio_events(outs: &[voice_proto::Output]) -> Vec<voice_proto::ReceivedAudio> {
    events(outs)
        .into_iter()
        .filter_map(|e| match e {
            Event::Audio(a) => Some(a),
            _ => None,
        })
        .collect()
}

#[test]
fn audio_is_decrypted_and_attributed() {
    let mut h = Harness::join(test_config());
    h.connect();
    let packet = inbound(&h, 1, &[0xF8, 0xFF, 0xFE]);
    let outs = h.feed(Input::Datagram {
        from: server_udp(),
        data: &packet,
    });
    let audio = audio_events(&outs);
    assert_eq!(audio.len(), 1);
    assert_eq!(audio[0].opus, [0xF8, 0xFF, 0xFE]);
    assert_eq!(audio[0].user_id, None, "no op 5 yet");

    let speaking = h.server.frame(ServerMessage::Speaking(Speaking {
        speaking: SpeakingFlags::MICROPHONE,
        delay: 0,
        ssrc: THEIR_SSRC,
        user_id: Some(OTHER_USER),
    }));
    let outs = h.text(&speaking);
    assert!(events(&outs).contains(&Event::Speaking {
        user_id: OTHER_USER,
        ssrc: THEIR_SSRC,
        flags: SpeakingFlags::MICROPHONE
    }));
    let packet = inbound(&h, 2, &[1, 2, 3, 4]);
    let outs = h.feed(Input::Datagram {
        from: server_udp(),
        data: &packet,
    });
    let audio = audio_events(&outs);
    assert_eq!(audio[0].user_id, Some(OTHER_USER));
    assert_eq!(audio[0].sequence, 2);
    assert_eq!(h.session().user_for_ssrc(THEIR_SSRC), Some(OTHER_USER));

    let gone = h
        .server
        .frame(ServerMessage::ClientDisconnect(ClientDisconnect {
            user_id: OTHER_USER,
        }));
    h.text(&gone);
    assert_eq!(h.session().user_for_ssrc(THEIR_SSRC), None);
}

#[test]
fn tampered_rtcp_and_foreign_datagrams_are_counted_not_fatal() {
    let mut h = Harness::join(test_config());
    h.connect();
    let mut packet = inbound(&h, 1, &[1, 2, 3]);
    let last = packet.len() - 5;
    packet[last] ^= 1;
    h.feed(Input::Datagram {
        from: server_udp(),
        data: &packet,
    });
    let rtcp = [
        0x81, 0xC9, 0x00, 0x07, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    ];
    h.feed(Input::Datagram {
        from: server_udp(),
        data: &rtcp,
    });
    let good = inbound(&h, 3, &[1, 2, 3]);
    h.feed(Input::Datagram {
        from: "10.9.8.7:1".parse().unwrap(),
        data: &good,
    });
    let stats = h.session().stats();
    assert_eq!(stats.decrypt_failures, 1);
    assert_eq!(stats.datagrams_ignored, 2);
    assert_eq!(stats.packets_received, 0);
    assert!(h.state.error().is_none());
}
