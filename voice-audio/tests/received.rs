//! Received audio: the streaming Ogg Opus writer (read back by the `ogg` crate: headers,
//! packets, granule positions, end of stream) and, with the `receive` feature, the decoder of
//! received items (20 ms of 48 kHz stereo per frame, lost frames concealed up to a bound, one
//! decoder per sender, a frame that does not decode an error).

mod common;

use std::io::Cursor;

use voice_audio::OggOpusWriter;

#[test]
fn the_writer_makes_an_ogg_opus_file_of_the_packets_as_they_came() {
    let packets: Vec<Vec<u8>> = (0..130u16)
        .map(|i| {
            let mut packet = vec![0xFC; 1 + usize::from(i) * 7 % 700];
            packet[0] = (i % 251) as u8;
            packet
        })
        .collect();
    let mut writer = OggOpusWriter::new(Vec::new(), 2, 0xABCD).expect("headers");
    for packet in &packets {
        writer.write_packet(packet, 960).expect("written");
    }
    assert_eq!(writer.packets(), 130);
    let file = writer.finish().expect("finished");

    let mut reader = ogg::PacketReader::new(Cursor::new(file));
    let head = reader.read_packet_expected().expect("OpusHead");
    assert_eq!(&head.data[..8], b"OpusHead");
    assert_eq!(head.data[9], 2, "stereo");
    assert_eq!(
        u32::from_le_bytes(head.data[12..16].try_into().unwrap()),
        48_000
    );
    assert!(head.first_in_stream());
    let tags = reader.read_packet_expected().expect("OpusTags");
    assert_eq!(&tags.data[..8], b"OpusTags");
    let mut read = Vec::new();
    let mut last = None;
    while let Some(packet) = reader.read_packet().expect("a well-formed page") {
        assert_eq!(packet.stream_serial(), 0xABCD);
        last = Some((packet.absgp_page(), packet.last_in_stream()));
        read.push(packet.data);
    }
    assert_eq!(read, packets, "every packet, byte for byte, in order");
    assert_eq!(last, Some((130 * 960, true)), "granule and end of stream");
}

#[test]
fn an_empty_recording_is_still_a_valid_file() {
    let file = OggOpusWriter::new(Vec::new(), 2, 1)
        .and_then(OggOpusWriter::finish)
        .expect("written");
    let mut reader = ogg::PacketReader::new(Cursor::new(file));
    assert!(reader.read_packet_expected().is_ok());
    assert!(reader.read_packet_expected().is_ok());
    let rest = reader.read_packet().expect("well formed");
    assert!(rest.is_none_or(|p| p.data.is_empty() && p.last_in_stream()));
}

#[cfg(feature = "receive")]
mod decoding {
    use bytes::Bytes;
    use voice_audio::{ReceiveDecoder, MAX_CONCEALED_FRAMES};
    use voice_proto::receive::{Frame, Item, Received, SpurtEnd};

    use super::common::{frequency, tone_packets};

    fn frame(ssrc: u32, sequence: u16, opus: &[u8]) -> Received {
        Received {
            ssrc,
            user_id: None,
            item: Item::Frame(Frame {
                sequence,
                timestamp: u32::from(sequence) * 960,
                opus: Bytes::copy_from_slice(opus),
            }),
        }
    }

    fn lost(ssrc: u32, sequence: u16, count: u32) -> Received {
        Received {
            ssrc,
            user_id: None,
            item: Item::Lost {
                sequence,
                timestamp: 0,
                count,
            },
        }
    }

    #[test]
    fn frames_decode_to_20_ms_of_stereo_and_a_loss_is_concealed_before_the_next_frame() {
        let packets = tone_packets(1.0);
        let mut decoder = ReceiveDecoder::new();
        let mut pcm = Vec::new();
        let mut samples = Vec::new();
        for (i, packet) in packets.iter().enumerate().take(20) {
            samples.push(
                decoder
                    .decode(&frame(7, i as u16, packet), &mut pcm)
                    .unwrap(),
            );
        }
        assert!(samples.iter().all(|&n| n == 960));
        // Frames 20 and 21 lost: nothing at the marker, three frames' worth at the next frame.
        assert_eq!(decoder.decode(&lost(7, 20, 2), &mut pcm).unwrap(), 0);
        let before = pcm.len();
        assert_eq!(
            decoder
                .decode(&frame(7, 22, &packets[22]), &mut pcm)
                .unwrap(),
            3 * 960
        );
        assert_eq!(pcm.len(), 20 * 1920 + 3 * 1920);
        // The concealment carries the tone on, not silence.
        let concealed = &pcm[before..before + 1920];
        let energy: f64 = concealed.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / 1920.0;
        assert!(energy.sqrt() > 0.02, "concealed rms {}", energy.sqrt());
        let tone = frequency(&pcm, 0.1, 0.4);
        assert!((tone - 440.0).abs() < 15.0, "{tone} Hz");
    }

    #[test]
    fn a_long_loss_is_concealed_for_a_bounded_time_and_a_loss_at_the_end_not_at_all() {
        let packets = tone_packets(0.2);
        let mut decoder = ReceiveDecoder::new();
        let mut pcm = Vec::new();
        decoder.decode(&frame(1, 0, &packets[0]), &mut pcm).unwrap();
        decoder.decode(&lost(1, 1, 500), &mut pcm).unwrap();
        let n = decoder
            .decode(&frame(1, 501, &packets[1]), &mut pcm)
            .unwrap();
        assert_eq!(n, (MAX_CONCEALED_FRAMES as usize + 1) * 960);
        decoder.decode(&lost(1, 502, 3), &mut pcm).unwrap();
        let end = Received {
            ssrc: 1,
            user_id: None,
            item: Item::SpurtEnded(SpurtEnd::Silence),
        };
        assert_eq!(decoder.decode(&end, &mut pcm).unwrap(), 0);
        assert_eq!(
            decoder
                .decode(&frame(1, 600, &packets[2]), &mut pcm)
                .unwrap(),
            960,
            "the next spurt starts clean"
        );
    }

    #[test]
    fn senders_have_their_own_decoders_and_a_bad_frame_is_an_error() {
        let packets = tone_packets(0.1);
        let mut decoder = ReceiveDecoder::new();
        let mut pcm = Vec::new();
        decoder.decode(&lost(2, 0, 1), &mut pcm).unwrap();
        assert_eq!(
            decoder.decode(&frame(1, 0, &packets[0]), &mut pcm).unwrap(),
            960
        );
        assert_eq!(
            decoder.decode(&frame(2, 1, &packets[1]), &mut pcm).unwrap(),
            2 * 960,
            "sender 2's loss is its own"
        );
        let before = pcm.len();
        // A code 3 packet announcing more frames than it has bytes for.
        assert!(decoder
            .decode(&frame(1, 1, &[0xFF, 0xFF]), &mut pcm)
            .is_err());
        assert_eq!(pcm.len(), before, "nothing appended");
        assert_eq!(
            decoder.decode(&frame(1, 2, &packets[2]), &mut pcm).unwrap(),
            960
        );
        let silence = decoder
            .decode(&frame(3, 0, &voice_proto::rtp::SILENCE_FRAME), &mut pcm)
            .unwrap();
        assert_eq!(silence, 960);
    }
}
