//! Media from other members: packets sealed and fed, and the checks on what the session hands
//! out of its receive side.

use super::*;

impl Driver {
    pub(crate) fn audio(&mut self, packet: &AudioPacket) {
        let Some(remote) = self.udp else { return };
        let (mode, key) = match &self.media {
            Some(media) => (media.mode, media.key),
            None => (EncryptionMode::AeadAes256GcmRtpSize, KEY),
        };
        let key = if packet.wrong_key { [!key[0]; 32] } else { key };
        let ssrc = if packet.ssrc == 0 {
            OTHER_SSRC
        } else {
            packet.ssrc
        };
        let mut b0 = 0x80u8;
        let mut header = Vec::new();
        let mut plain = Vec::new();
        if let Some(words) = packet.extension_words {
            b0 |= 0x10;
            header.extend_from_slice(&[0xBE, 0xDE, 0, words]);
            plain.extend((0..4 * usize::from(words)).map(|i| i as u8));
        }
        if packet.padding.is_some() {
            b0 |= 0x20;
        }
        let opus: Vec<u8> = packet
            .opus
            .iter()
            .copied()
            .take(MAX_OPUS_FRAME_LEN)
            .collect();
        plain.extend_from_slice(&opus);
        if let Some(pad) = packet.padding {
            plain.extend(std::iter::repeat_n(0, usize::from(pad.max(1)) - 1));
            plain.push(pad);
        }
        let mut datagram = vec![b0, 0x78];
        datagram.extend_from_slice(&packet.sequence.to_be_bytes());
        datagram.extend_from_slice(&u32::from(packet.sequence).wrapping_mul(960).to_be_bytes());
        datagram.extend_from_slice(&ssrc.to_be_bytes());
        datagram.extend_from_slice(&header);
        let aad_len = datagram.len();
        datagram.extend_from_slice(&plain);
        datagram.resize(aad_len + plain.len() + mode.overhead(), 0);
        let cipher = TransportCipher::new(mode, &SecretKey::new(key));
        let len = cipher
            .seal(
                &mut datagram,
                aad_len,
                plain.len(),
                u32::from(packet.sequence),
            )
            .expect("sealing a test packet");
        assert_eq!(len, datagram.len());
        if packet.corrupt {
            let tag_at = aad_len + plain.len();
            datagram[tag_at] ^= 1;
        }
        // The oracle: what the engine must make of it.
        let expected = match (&self.media, ReceivedRtp::parse(&datagram)) {
            (Some(media), Ok(header))
                if header.ssrc != media.ssrc && !packet.corrupt && !packet.wrong_key =>
            {
                header.payload(&plain).ok().map(<[u8]>::to_vec)
            }
            _ => None,
        };
        self.received_packet(remote, &datagram, ssrc, packet.sequence, expected);
    }

    /// Feeds a packet from another member whose payload is `expected` (`None`: it must not
    /// decrypt) and checks what became of it: a packet that decrypts is received, waits for its
    /// sender, fails DAVE decryption or is skipped by its sender's buffer (a duplicate, late);
    /// one that must not decrypt is never received. What its buffer releases is checked against
    /// `sealed_frames` when it comes out of `poll_received`.
    fn received_packet(
        &mut self,
        remote: SocketAddr,
        datagram: &[u8],
        ssrc: u32,
        sequence: u16,
        expected: Option<Vec<u8>>,
    ) {
        if let Some(opus) = &expected {
            let plain = self.plain_path(opus);
            self.sealed_frames
                .entry((ssrc, sequence))
                .or_default()
                .push((opus.clone(), plain));
        }
        let before = self.session_stats();
        self.datagram(remote, datagram);
        if self.closed {
            return;
        }
        let (Some(before), Some(after)) = (before, self.session_stats()) else {
            return;
        };
        let received = after.packets_received - before.packets_received;
        match expected {
            Some(opus) if self.state.session().is_some() && self.plain_path(&opus) => {
                assert_eq!(
                    received + after.packets_skipped - before.packets_skipped,
                    1,
                    "a valid packet from {ssrc:#x} was neither received nor skipped"
                );
            }
            Some(_) => {}
            None => assert_eq!(received, 0, "a packet that must be dropped was received"),
        }
    }

    /// One item out of `poll_received`: per SSRC, a spurt starts before its frames and losses
    /// and ends after them, each frame or loss carries the sequence after the previous one, and a
    /// frame carries a payload sealed with its sequence (or one DAVE decrypted).
    pub(super) fn observe_received(&mut self, received: Received) {
        self.received
            .entry(received.ssrc)
            .or_default()
            .check(&received.item);
        if let Item::Frame(frame) = received.item {
            self.frames_received += 1;
            let sealed = self
                .sealed_frames
                .get(&(received.ssrc, frame.sequence))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let known = sealed.iter().any(|(opus, _)| opus.as_slice() == frame.opus);
            let through_dave = sealed.iter().any(|(_, plain)| !plain);
            assert!(
                known || through_dave,
                "received {:?} for {:#x}/{}, sealed {sealed:?}",
                frame.opus,
                received.ssrc,
                frame.sequence
            );
        }
    }

    /// Whether a received frame certainly passes the DAVE stage untouched: silence, or a frame
    /// without the DAVE marker while DAVE is off (C46, C47). Other frames meet `davey`.
    fn plain_path(&mut self, opus: &[u8]) -> bool {
        let version = self
            .state
            .session()
            .map_or(0, |s| s.dave_active_protocol_version());
        opus == SILENCE_FRAME || (version == 0 && !opus.ends_with(&[0xFA, 0xFA]))
    }

    pub(super) fn session_stats(&mut self) -> Option<Stats> {
        self.state.session().map(|s| s.stats())
    }

    /// Seals `data[aad_len..]` under the live key (when there is one) and feeds it.
    pub(crate) fn sealed(&mut self, data: &[u8]) {
        let (Some(media), Some(remote)) = (self.media.clone(), self.udp) else {
            return;
        };
        let Ok(header) = ReceivedRtp::parse(data) else {
            return;
        };
        if data.len() > MAX_PACKET_LEN * 2 {
            return;
        }
        let plain = &data[header.aad_len..];
        let mut packet = data.to_vec();
        packet.resize(data.len() + media.mode.overhead(), 0);
        let cipher = TransportCipher::new(media.mode, &SecretKey::new(media.key));
        cipher
            .seal(&mut packet, header.aad_len, plain.len(), 9)
            .expect("sealing a header + plaintext");
        let expected = (classify(&packet) == PacketKind::Rtp && header.ssrc != media.ssrc)
            .then(|| header.payload(plain).ok().map(<[u8]>::to_vec))
            .flatten();
        self.received_packet(remote, &packet, header.ssrc, header.sequence, expected);
    }
}
