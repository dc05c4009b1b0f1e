//! Speaking (op 5) and the end of a talk spurt: five silence frames, then Speaking 0 (C20, C21).

mod support;

use support::*;
use voice_proto::payload::{ClientMessage, SpeakingFlags};
use voice_proto::rtp::{MAX_PACKET_LEN, SILENCE_FRAME};

#[test]
fn explicit_flags_are_announced_once_and_used_for_audio() {
    let mut h = Harness::join(test_config());
    h.connect();
    let flags = SpeakingFlags::MICROPHONE | SpeakingFlags::PRIORITY;
    h.session().speaking(flags);
    let sent = client_messages(&h.collect());
    assert!(matches!(sent.as_slice(), [ClientMessage::Speaking(s)] if s.speaking == flags));
    let (outs, _) = h.send_frame(&[1]);
    assert!(client_messages(&outs).is_empty(), "already announced");
}

#[test]
fn stop_speaking_sends_five_silence_frames_then_speaking_zero() {
    let mut h = Harness::join(test_config());
    h.connect();
    let (_, first) = h.send_frame(&[9, 9]);
    let (first_header, _) = h.server.open_audio(&first);
    h.session().stop_speaking();
    let mut buf = [0u8; MAX_PACKET_LEN];
    let mut silences = Vec::new();
    while let Some(packet) = h.session().send_silence(&mut buf).unwrap() {
        silences.push(packet.to_vec());
        if silences.len() < 5 {
            assert!(client_messages(&h.collect()).is_empty());
        }
    }
    assert_eq!(silences.len(), 5);
    for (i, packet) in silences.iter().enumerate() {
        let (header, opus) = h.server.open_audio(packet);
        assert_eq!(opus, SILENCE_FRAME);
        let step = u16::try_from(i + 1).unwrap();
        assert_eq!(header.sequence, first_header.sequence.wrapping_add(step));
        assert_eq!(
            header.timestamp,
            first_header.timestamp.wrapping_add(960 * u32::from(step))
        );
    }
    let sent = client_messages(&h.collect());
    assert!(
        matches!(sent.as_slice(), [ClientMessage::Speaking(s)] if s.speaking == SpeakingFlags::NONE)
    );
    assert!(!h.session().silence_pending());
    // The next spurt announces again.
    let (outs, _) = h.send_frame(&[1]);
    assert!(
        matches!(client_messages(&outs).as_slice(), [ClientMessage::Speaking(s)] if s.speaking == SpeakingFlags::MICROPHONE)
    );
}

#[test]
fn stop_without_audio_sends_nothing() {
    let mut h = Harness::join(test_config());
    h.connect();
    h.session().stop_speaking();
    let mut buf = [0u8; MAX_PACKET_LEN];
    assert_eq!(h.session().send_silence(&mut buf).unwrap(), None);
}

#[test]
fn frames_and_buffers_are_checked() {
    let mut h = Harness::join(test_config());
    h.connect();
    let now = h.now;
    let mut small = [0u8; 20];
    assert!(matches!(
        h.session().send_opus(now, &[1, 2, 3], &mut small),
        Err(voice_proto::Error::NotReady(
            voice_proto::NotReady::BufferTooSmall { .. }
        ))
    ));
    let mut buf = [0u8; MAX_PACKET_LEN];
    assert!(h.session().send_opus(now, &[], &mut buf).is_err());
    assert!(h.session().send_opus(now, &[0; 1276], &mut buf).is_err());
    assert!(h.session().send_opus(now, &[0; 1275], &mut buf).is_ok());
}

#[test]
fn tick_underrun_sends_five_silences_once_then_goes_quiet() {
    let mut h = Harness::join(test_config());
    h.connect();
    let now = h.now;
    let mut buf = [0u8; MAX_PACKET_LEN];
    // Quiet before any audio: an underrun tick sends nothing.
    assert_eq!(h.session().tick(now, None, &mut buf).unwrap(), None);
    let packet = h
        .session()
        .tick(now, Some(&[1, 2, 3]), &mut buf)
        .unwrap()
        .map(<[u8]>::to_vec);
    let (_, opus) = h.server.open_audio(&packet.unwrap());
    assert_eq!(opus, [1, 2, 3]);
    let mut silences = 0;
    while let Some(packet) = h.session().tick(now, None, &mut buf).unwrap() {
        let packet = packet.to_vec();
        assert_eq!(h.server.open_audio(&packet).1, SILENCE_FRAME);
        silences += 1;
        assert!(silences <= 5);
    }
    assert_eq!(silences, 5);
    // Still quiet on the next underrun; audio again restarts the spurt.
    assert_eq!(h.session().tick(now, None, &mut buf).unwrap(), None);
    assert!(h
        .session()
        .tick(now, Some(&[4]), &mut buf)
        .unwrap()
        .is_some());
}
