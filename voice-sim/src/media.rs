//! The UDP media server: IP discovery answers and per-SSRC validation of every client packet.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use voice_proto::crypto::NONCE_SUFFIX_LEN;
use voice_proto::discovery::{discovery_response, parse_discovery_request, DISCOVERY_PACKET_LEN};
use voice_proto::rtp::{
    classify, PacketKind, ReceivedRtp, OPUS_PAYLOAD_TYPE, RTP_HEADER_LEN, SILENCE_FRAME,
};

use crate::dave::FrameCheck;
use crate::report::ViolationKind;
use crate::server::{ReceivedFrame, Shared, State, Stream};
use crate::stats::StreamStats;

/// Receive buffer: larger than any valid packet, so oversized datagrams are seen whole.
const RECV_BUFFER: usize = 2048;

/// Receives datagrams until shutdown.
pub(crate) async fn udp_loop(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let Some(udp) = shared.udp.clone() else {
        return;
    };
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        tokio::select! {
            received = udp.recv_from(&mut buf) => {
                let (len, from) = match received {
                    Ok(received) => received,
                    // E.g. ICMP port unreachable from an earlier send: not fatal for a server.
                    Err(error) => {
                        tracing::debug!(%error, "udp receive error");
                        continue;
                    }
                };
                let datagram = buf.get(..len).unwrap_or_default().to_vec();
                for (data, to) in handle_datagram(&shared, Instant::now(), from, datagram) {
                    let _ = udp.send_to(&data, to).await;
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Handles one datagram; returns the datagrams to send (a discovery answer, relayed audio).
pub(crate) fn handle_datagram(
    shared: &Shared,
    now: Instant,
    from: SocketAddr,
    mut datagram: Vec<u8>,
) -> Vec<(Vec<u8>, SocketAddr)> {
    let at = shared.ms(now);
    let mut state = shared.lock();
    state.sweep(now, shared.config.speaking_grace, shared.start);
    let known = state.by_addr.get(&from).copied();
    let len = datagram.len();

    if len == DISCOVERY_PACKET_LEN && datagram.starts_with(&[0, 1]) {
        return discovery(shared, &mut state, at, from, &datagram)
            .into_iter()
            .collect();
    }
    if len == 8 || len == 4 {
        // Keepalives: DJS sends 8 bytes (u32 LE counter), songbird the 4-byte SSRC.
        match known {
            Some(client) => {
                if let Some(c) = state.clients.get_mut(client) {
                    c.report.keepalives += 1;
                }
            }
            None => state.stray_datagrams += 1,
        }
        return Vec::new();
    }
    match classify(&datagram) {
        PacketKind::Rtp => {
            return rtp(shared, &mut state, now, from, &mut datagram);
        }
        PacketKind::Rtcp => match known {
            Some(client) => {
                if let Some(c) = state.clients.get_mut(client) {
                    c.report.rtcp_packets += 1;
                }
            }
            None => state.stray_datagrams += 1,
        },
        PacketKind::Discovery | PacketKind::Other => match known {
            Some(client) => state.violate(
                at,
                Some(client),
                ViolationKind::MalformedPacket,
                format!(
                    "{len}-byte datagram that is neither RTP, RTCP, IP discovery nor a keepalive"
                ),
            ),
            None => state.stray_datagrams += 1,
        },
    }
    Vec::new()
}

/// Audio from `client` goes to every other member of its channel, re-encrypted with each
/// receiver's key (plain RTP header, the sender's SSRC, sequence number and timestamp).
fn relay(
    state: &mut State,
    client: usize,
    header: &ReceivedRtp,
    opus: &[u8],
) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut out = Vec::new();
    for peer in state.peers(client) {
        let Some(voice) = state.clients.get_mut(peer).and_then(|c| c.voice.as_mut()) else {
            continue;
        };
        let (Some(to), Some(cipher)) = (voice.discovered, voice.cipher.clone()) else {
            continue;
        };
        voice.server_nonce = voice.server_nonce.wrapping_add(1);
        let mut buf = Vec::with_capacity(RTP_HEADER_LEN + opus.len() + cipher.mode().overhead());
        buf.push(0x80);
        buf.push(OPUS_PAYLOAD_TYPE | if header.marker { 0x80 } else { 0 });
        buf.extend_from_slice(&header.sequence.to_be_bytes());
        buf.extend_from_slice(&header.timestamp.to_be_bytes());
        buf.extend_from_slice(&header.ssrc.to_be_bytes());
        buf.extend_from_slice(opus);
        buf.resize(buf.len() + cipher.mode().overhead(), 0);
        if let Ok(len) = cipher.seal(&mut buf, RTP_HEADER_LEN, opus.len(), voice.server_nonce) {
            buf.truncate(len);
            out.push((buf, to));
        }
    }
    out
}

/// Answers an IP discovery request (or records why not); returns the answer to send.
pub(crate) fn discovery(
    shared: &Shared,
    state: &mut State,
    at: u64,
    from: SocketAddr,
    datagram: &[u8],
) -> Option<(Vec<u8>, SocketAddr)> {
    let ssrc = match parse_discovery_request(datagram) {
        Ok(ssrc) => ssrc,
        Err(error) => {
            let client = state.by_addr.get(&from).copied();
            state.violate(
                at,
                client,
                ViolationKind::BadDiscoveryRequest,
                format!("from {from}: {error}"),
            );
            return None;
        }
    };
    let Some(&client) = state.by_ssrc.get(&ssrc) else {
        state.violate(
            at,
            None,
            ViolationKind::BadDiscoveryRequest,
            format!("from {from} for unknown ssrc {ssrc}"),
        );
        return None;
    };
    let previous = {
        let c = state.clients.get_mut(client)?;
        c.report.discovery_requests += 1;
        let voice = c.voice.as_mut()?;
        voice.discovered.replace(from)
    };
    if let Some(old) = previous.filter(|old| *old != from) {
        state.by_addr.remove(&old);
    }
    state.by_addr.insert(from, client);
    if !shared.config.scenario.answer_discovery {
        return None;
    }
    let first = state
        .clients
        .get(client)
        .is_some_and(|c| c.report.discovery_requests == 1);
    if first && shared.config.scenario.lose_first_discovery {
        return None;
    }
    Some((
        discovery_response(ssrc, from.ip(), from.port()).to_vec(),
        from,
    ))
}

fn rtp(
    shared: &Shared,
    state: &mut State,
    now: Instant,
    from: SocketAddr,
    packet: &mut [u8],
) -> Vec<(Vec<u8>, SocketAddr)> {
    let at = shared.ms(now);
    let known = state.by_addr.get(&from).copied();
    let header = match ReceivedRtp::parse(packet) {
        Ok(header) => header,
        Err(error) => {
            match known {
                Some(client) => state.violate(
                    at,
                    Some(client),
                    ViolationKind::MalformedPacket,
                    format!("RTP header: {error}"),
                ),
                None => state.stray_datagrams += 1,
            }
            return Vec::new();
        }
    };
    let Some(&client) = state.by_ssrc.get(&header.ssrc) else {
        match known {
            Some(client) => state.violate(
                at,
                Some(client),
                ViolationKind::MalformedPacket,
                format!(
                    "RTP packet with ssrc {} that is not the client's",
                    header.ssrc
                ),
            ),
            None => state.stray_datagrams += 1,
        }
        return Vec::new();
    };
    let Some(voice) = state.clients.get(client).and_then(|c| c.voice.as_ref()) else {
        return Vec::new();
    };
    if voice.discovered.is_some_and(|addr| addr != from) {
        // Blame the sender if it is a known client, never the SSRC's owner.
        state.violate(
            at,
            known,
            ViolationKind::ForeignSource,
            format!(
                "RTP for ssrc {} (client {client}) from {from}, not from the address that client discovered; ignored",
                header.ssrc
            ),
        );
        return Vec::new();
    }
    let Some(cipher) = voice.cipher.clone() else {
        state.violate(
            at,
            Some(client),
            ViolationKind::AudioBeforeSessionDescription,
            format!(
                "RTP packet seq {} before Session Description",
                header.sequence
            ),
        );
        return Vec::new();
    };
    let mode = voice.mode;
    let last_nonce = voice.last_nonce;
    let ssrc = header.ssrc;
    let nonce = packet
        .len()
        .checked_sub(NONCE_SUFFIX_LEN)
        .and_then(|start| packet.get(start..))
        .and_then(|tail| <[u8; 4]>::try_from(tail).ok())
        .map(u32::from_be_bytes);
    let keep_frames = shared.config.keep_frames;
    let stream = state.streams.entry(ssrc).or_insert_with(|| Stream {
        client,
        mode,
        stats: StreamStats::new(),
        frames: Vec::new(),
        last_at: None,
    });
    stream.last_at = Some(now);
    let plaintext = match cipher.open(packet, header.aad_len) {
        Ok(range) => range,
        Err(error) => {
            stream.stats.decrypt_failure();
            state.violate(
                at,
                Some(client),
                ViolationKind::DecryptFailure,
                format!(
                    "RTP seq {} on ssrc {ssrc} ({} bytes): {error}",
                    header.sequence,
                    packet.len()
                ),
            );
            return Vec::new();
        }
    };
    let opus = match packet.get(plaintext).map(|p| header.payload(p)) {
        Some(Ok(opus)) => opus.to_vec(),
        Some(Err(error)) => {
            state.violate(
                at,
                Some(client),
                ViolationKind::MalformedPacket,
                format!("RTP seq {}: {error}", header.sequence),
            );
            return Vec::new();
        }
        None => return Vec::new(),
    };
    let anomalies = stream
        .stats
        .observe(now, header.sequence, header.timestamp, &opus);
    let silence = opus == SILENCE_FRAME;
    // DAVE: what is relayed is the end-to-end encrypted frame; what is kept is what a member
    // of the call hears.
    let (channel, user) = state
        .clients
        .get(client)
        .map(|c| (c.expected.channel_id, c.expected.user_id))
        .unwrap_or_default();
    let check = state
        .dave
        .get_mut(&channel)
        .map(|ch| ch.inspect(user, &opus, now, shared.config.speaking_grace));
    let heard = match &check {
        Some(FrameCheck::Decrypted(plain)) => plain.clone(),
        _ => opus.clone(),
    };
    if let Some(stream) = state.streams.get_mut(&ssrc) {
        if let Some(check) = &check {
            stream.stats.dave(check);
        }
        if keep_frames {
            stream.frames.push(ReceivedFrame {
                sequence: header.sequence,
                timestamp: header.timestamp,
                at_ms: at,
                opus: heard,
            });
        }
    }
    match check {
        Some(FrameCheck::Failed(error)) => state.violate(
            at,
            Some(client),
            ViolationKind::DaveDecryptFailure,
            format!(
                "ssrc {ssrc} seq {}: a DAVE frame the group's simulated member could not decrypt: {error}",
                header.sequence
            ),
        ),
        Some(FrameCheck::Plain { keyed: true }) => state.violate(
            at,
            Some(client),
            ViolationKind::DavePlaintext,
            format!(
                "ssrc {ssrc} seq {}: {}-byte audio frame without DAVE after the client's end-to-end encryption transition",
                header.sequence,
                opus.len()
            ),
        ),
        Some(FrameCheck::Plain { keyed: false }) => state.violate(
            at,
            Some(client),
            ViolationKind::DavePlainBeforeKeyed,
            format!(
                "ssrc {ssrc} seq {}: audio without DAVE in an end-to-end encrypted call before the client held its keys",
                header.sequence
            ),
        ),
        _ => {}
    }
    let opus_for_relay = opus;
    if let Some((expected, actual)) = anomalies.timestamp_step {
        state.violate(
            at,
            Some(client),
            ViolationKind::TimestampStep,
            format!(
                "ssrc {ssrc} seq {}: timestamp advanced {actual}, expected {expected}",
                header.sequence
            ),
        );
    }
    if let (Some(nonce), Some(last)) = (nonce, last_nonce) {
        // A wrap from near 2^32 to a small value is allowed.
        let wrapped = last > u32::MAX - (1 << 16) && nonce < (1 << 16);
        if nonce <= last && !wrapped {
            state.violate(
                at,
                Some(client),
                ViolationKind::NonceReuse,
                format!("ssrc {ssrc}: transport nonce {nonce} after {last}"),
            );
        }
    }
    let Some(c) = state.clients.get_mut(client) else {
        return Vec::new();
    };
    let Some(voice) = c.voice.as_mut() else {
        return Vec::new();
    };
    if let Some(nonce) = nonce {
        voice.last_nonce = Some(voice.last_nonce.map_or(nonce, |last| {
            if nonce > last || last > u32::MAX - (1 << 16) {
                nonce
            } else {
                last
            }
        }));
    }
    voice.packets += 1;
    if !silence {
        if voice.speaking == 0 && voice.unannounced_since.is_none() {
            voice.unannounced_since = Some((now, header.sequence));
        }
        if voice.awaiting_speaking_after_resume && voice.unresumed_since.is_none() {
            voice.unresumed_since = Some(now);
        }
        let pending = voice.unannounced_since.is_some() || voice.unresumed_since.is_some();
        state.pending_checks |= pending;
    }
    let packets = voice.packets;
    // Close rules counting packets.
    let mut fire = Vec::new();
    for (index, rule) in shared.config.scenario.close.iter().enumerate() {
        if let crate::config::Trigger::AfterPackets(n) = rule.trigger {
            if packets >= n && !c.close_fired.get(index).copied().unwrap_or(true) {
                if let Some(flag) = c.close_fired.get_mut(index) {
                    *flag = true;
                }
                fire.push(rule.code);
            }
        }
    }
    for code in fire {
        state.close_client(client, code);
    }
    relay(state, client, &header, &opus_for_relay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ServerConfig, VoiceServer};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    /// Any datagram, from a stranger or from a client's own address with its own SSRC in the
    /// header, is handled without a panic, and a discovery answer only ever goes to the sender.
    #[tokio::test]
    async fn arbitrary_datagrams_never_panic() {
        let server = VoiceServer::start(ServerConfig {
            seed: Some(1),
            ..ServerConfig::default()
        })
        .await
        .expect("starts");
        let info = server.expect_client();
        let shared = server.shared();
        let client_addr: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        let ssrc = shared
            .lock()
            .new_voice_session(info.client)
            .expect("session");
        // Discover, so the client's address is known and its packets are checked in depth.
        let reply = handle_datagram(
            &shared,
            Instant::now(),
            client_addr,
            discovery_request_for(ssrc),
        );
        let destinations: Vec<SocketAddr> = reply.into_iter().map(|(_, to)| to).collect();
        assert_eq!(destinations, vec![client_addr]);
        let mut runner = TestRunner::new(Config {
            cases: 2000,
            ..Config::default()
        });
        let strategy = (
            proptest::collection::vec(any::<u8>(), 0..1600),
            any::<bool>(),
            any::<bool>(),
        );
        runner
            .run(&strategy, |(mut bytes, own_ssrc, from_client)| {
                if own_ssrc && bytes.len() >= 12 {
                    bytes[0] = 0x80 | (bytes[0] & 0x3F);
                    bytes[1] = 0x78;
                    bytes[8..12].copy_from_slice(&ssrc.to_be_bytes());
                }
                let from: SocketAddr = if from_client {
                    client_addr
                } else {
                    "127.0.0.1:40001".parse().expect("addr")
                };
                for (_, to) in handle_datagram(&shared, Instant::now(), from, bytes) {
                    prop_assert_eq!(to, from);
                }
                Ok(())
            })
            .expect("no panic, replies only to the sender");
        let report = server.report();
        assert!(report
            .violations
            .iter()
            .all(|v| v.client.is_none() || v.client == Some(0)));
    }

    fn discovery_request_for(ssrc: u32) -> Vec<u8> {
        voice_proto::discovery::discovery_request(ssrc).to_vec()
    }
}
