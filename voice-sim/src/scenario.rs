//! Runs a client's scenario timeline: timed closes, garbage, simulated users.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use voice_proto::crypto::TransportCipher;
use voice_proto::id::UserId;
use voice_proto::payload::{
    ClientDisconnect, ClientsConnect, Encoded, ServerMessage, Speaking, SpeakingFlags,
};
use voice_proto::rtp::{OPUS_PAYLOAD_TYPE, SAMPLES_PER_FRAME, SILENCE_FRAME, SILENCE_FRAME_COUNT};

use tokio::net::UdpSocket;

use crate::config::{Garbage, SimulatedUser, Trigger};
use crate::netem::{Netem, NetemConfig};
use crate::report::{NetemReport, SpokenFrame, SpokenStream};
use crate::server::{Shared, State};

/// The one-byte header extension every simulated packet carries: profile `BE DE`, one word,
/// element id 1 (audio level), length 1, value 0x80, two padding bytes.
const EXTENSION: [u8; 8] = [0xBE, 0xDE, 0x00, 0x01, 0x10, 0x80, 0x00, 0x00];

/// Starts the scenario of `client` after its first Session Description of `epoch`. Called with
/// the state locked; sends garbage at once and spawns tasks for everything timed.
pub(crate) fn start(shared: &Arc<Shared>, state: &mut State, client: usize, epoch: u64) {
    let scenario = &shared.config.scenario;
    for garbage in &scenario.garbage {
        match garbage {
            Garbage::UnknownOpcode => state.send_numbered(
                client,
                ServerMessage::Unknown {
                    op: 99,
                    raw: r#"{"voice_sim":"unknown opcode"}"#.to_owned(),
                },
            ),
            Garbage::MalformedJson => {
                state.send_plain(
                    client,
                    Encoded::Text(r#"{"op":5,"d":{"speaking":"#.to_owned()),
                );
            }
            Garbage::UnexpectedBinary => state.send_numbered(
                client,
                ServerMessage::UnknownBinary {
                    op: 99,
                    payload: vec![0xDE, 0xAD, 0xBE, 0xEF],
                },
            ),
        }
    }
    for (index, rule) in scenario.close.iter().enumerate() {
        if let Trigger::AfterSession(after) = rule.trigger {
            let shared = Arc::clone(shared);
            let code = rule.code;
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let mut state = shared.lock();
                let Some(c) = state.clients.get_mut(client) else {
                    return;
                };
                if c.close_fired.get(index).copied().unwrap_or(true) {
                    return;
                }
                if let Some(flag) = c.close_fired.get_mut(index) {
                    *flag = true;
                }
                state.close_client(client, code);
            });
        }
    }
    for user in &scenario.users {
        tokio::spawn(simulated_user(
            Arc::clone(shared),
            client,
            epoch,
            user.clone(),
        ));
    }
}

/// Where and how to send media to a client right now, if its session of `epoch` is up.
fn media_target(
    state: &mut State,
    client: usize,
    epoch: u64,
) -> Option<(SocketAddr, Arc<TransportCipher>, u32)> {
    let c = state.clients.get_mut(client)?;
    if c.epoch != epoch {
        return None;
    }
    let voice = c.voice.as_mut()?;
    let addr = voice.discovered?;
    let cipher = voice.cipher.clone()?;
    voice.server_nonce = voice.server_nonce.wrapping_add(1);
    Some((addr, cipher, voice.server_nonce))
}

fn alive(shared: &Shared, client: usize, epoch: u64) -> bool {
    shared
        .lock()
        .clients
        .get(client)
        .is_some_and(|c| c.epoch == epoch)
}

/// Builds one encrypted RTP packet with the header extension.
pub(crate) fn seal_packet(
    cipher: &TransportCipher,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    nonce: u32,
    opus: &[u8],
) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(12 + EXTENSION.len() + opus.len() + cipher.mode().overhead());
    buf.push(0x90); // V=2, X=1
    buf.push(OPUS_PAYLOAD_TYPE);
    buf.extend_from_slice(&sequence.to_be_bytes());
    buf.extend_from_slice(&timestamp.to_be_bytes());
    buf.extend_from_slice(&ssrc.to_be_bytes());
    buf.extend_from_slice(&EXTENSION);
    buf.extend_from_slice(opus);
    buf.resize(buf.len() + cipher.mode().overhead(), 0);
    // AAD: fixed header + extension preamble; plaintext: extension body + Opus.
    let len = cipher.seal(&mut buf, 16, 4 + opus.len(), nonce).ok()?;
    buf.truncate(len);
    Some(buf)
}

async fn simulated_user(shared: Arc<Shared>, client: usize, epoch: u64, user: SimulatedUser) {
    let start = tokio::time::Instant::now();
    tokio::time::sleep_until(start + user.join_after).await;
    if !alive(&shared, client, epoch) {
        return;
    }
    user_joins(&shared, client, &user);
    if let Some(speak_after) = user.speak_after {
        tokio::time::sleep_until(start + speak_after).await;
        if !user_speaks(&shared, client, epoch, &user).await {
            return;
        }
    }
    if let Some(leave_after) = user.leave_after {
        tokio::time::sleep_until(start + leave_after).await;
        if alive(&shared, client, epoch) {
            user_leaves(&shared, client, &user);
        }
    }
}

/// Op 11 for the user, then its DAVE membership (after op 11, so the client recognises the user
/// its proposals add).
fn user_joins(shared: &Shared, client: usize, user: &SimulatedUser) {
    let user_id = UserId(user.user_id);
    let mut state = shared.lock();
    state.send_numbered(
        client,
        ServerMessage::ClientsConnect(ClientsConnect {
            user_ids: vec![user_id],
        }),
    );
    let channel = channel_of(&state, client);
    let now = std::time::Instant::now();
    let effects = match state.dave_channel(&shared.config, channel) {
        Some(ch) if user.dave => ch.join_simulated(user.user_id, now),
        Some(ch) => ch.join_plain(user.user_id, now),
        None => Vec::new(),
    };
    state.apply_dave(shared.ms(now), effects);
}

/// The user's talk spurt: op 5, then its frames and five silence frames every 20 ms, through
/// the network emulator when there is one. `false` when the client went away meanwhile.
async fn user_speaks(shared: &Shared, client: usize, epoch: u64, user: &SimulatedUser) -> bool {
    // A DAVE speaker waits for its keys: it sends nothing it cannot encrypt.
    let keyed_by = tokio::time::Instant::now() + KEYS_WAIT;
    while !can_speak(shared, client, user.user_id) && tokio::time::Instant::now() < keyed_by {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (ssrc, mut sequence, mut timestamp, spoken) = start_spurt(shared, client, user);
    // One emulator per user and client, each with its own fates.
    let mut netem = shared.config.scenario.impairment.map(|config| {
        Netem::new(NetemConfig {
            seed: config.seed ^ user.user_id.rotate_left(17) ^ client as u64,
            ..config
        })
    });
    // No Tokio socket in counting mode, which refuses simulated users anyway.
    let udp = shared.udp.clone();
    let silence = std::iter::repeat_n(SILENCE_FRAME.to_vec(), SILENCE_FRAME_COUNT);
    let frames = user.frames.iter().cloned().chain(silence);
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for plain in frames {
        next_tick(&mut ticker, netem.as_mut(), udp.as_ref()).await;
        let mut record = SpokenFrame {
            sequence,
            opus: plain.clone(),
            ..SpokenFrame::default()
        };
        let (target, drop) = {
            let mut state = shared.lock();
            let target = media_target(&mut state, client, epoch);
            let loss = shared.config.scenario.udp_loss;
            let drop = loss > 0.0 && state.rng.random_bool(loss.clamp(0.0, 1.0));
            (target, drop)
        };
        let Some((to, cipher, nonce)) = target else {
            if alive(shared, client, epoch) {
                record_spoken(shared, spoken, record, netem.as_ref());
                continue;
            }
            return false;
        };
        let frame = {
            let mut state = shared.lock();
            let channel = channel_of(&state, client);
            match state.dave.get_mut(&channel) {
                Some(ch) => ch.encrypt(user.user_id, &plain),
                None => Some(plain),
            }
        };
        let Some(frame) = frame else {
            // No key right now (a re-key under way): the frame is not sent.
            sequence = sequence.wrapping_add(1);
            timestamp = timestamp.wrapping_add(SAMPLES_PER_FRAME);
            record_spoken(shared, spoken, record, netem.as_ref());
            continue;
        };
        let packet = seal_packet(&cipher, sequence, timestamp, ssrc, nonce, &frame);
        sequence = sequence.wrapping_add(1);
        timestamp = timestamp.wrapping_add(SAMPLES_PER_FRAME);
        let Some(packet) = packet else {
            record_spoken(shared, spoken, record, netem.as_ref());
            continue;
        };
        record.sent = true;
        if drop {
            record.lost = true;
            record_spoken(shared, spoken, record, netem.as_ref());
            continue;
        }
        let Some(udp) = udp.clone() else {
            continue;
        };
        if let Some(netem) = netem.as_mut() {
            let now = tokio::time::Instant::now().into_std();
            let fate = netem.send(now, (packet, to));
            (record.lost, record.duplicated, record.reordered) =
                (fate.lost, fate.duplicated, fate.reordered);
            send_due(netem, &udp).await;
            record_spoken(shared, spoken, record, Some(netem));
            continue;
        }
        record_spoken(shared, spoken, record, None);
        let delay = shared.config.scenario.udp_delay;
        if delay.is_zero() {
            let _ = udp.send_to(&packet, to).await;
        } else {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = udp.send_to(&packet, to).await;
            });
        }
    }
    // What the emulator still holds goes out when due.
    if let (Some(netem), Some(udp)) = (netem.as_mut(), udp.as_ref()) {
        while let Some(due) = netem.next_due() {
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            send_due(netem, udp).await;
        }
        if let Some(stream) = shared.lock().spoken.get_mut(spoken) {
            stream.netem = netem_report(netem);
        }
    }
    true
}

/// Op 5 naming the user's fresh SSRC, and the record of what it says: (SSRC, first sequence,
/// first timestamp, index of the record in `spoken`).
fn start_spurt(shared: &Shared, client: usize, user: &SimulatedUser) -> (u32, u16, u32, usize) {
    let user_id = UserId(user.user_id);
    let mut state = shared.lock();
    let ssrc = state.fresh_ssrc();
    let sequence: u16 = state.rng.random();
    let timestamp: u32 = state.rng.random();
    let mut speaking = Speaking::new(SpeakingFlags::MICROPHONE, ssrc);
    speaking.user_id = Some(user_id);
    state.send_numbered(client, ServerMessage::Speaking(speaking));
    state.spoken.push(SpokenStream {
        client,
        user_id: user.user_id,
        ssrc,
        ..SpokenStream::default()
    });
    (ssrc, sequence, timestamp, state.spoken.len() - 1)
}

/// Op 13 for the user, and its DAVE membership ends.
fn user_leaves(shared: &Shared, client: usize, user: &SimulatedUser) {
    let user_id = UserId(user.user_id);
    let mut state = shared.lock();
    state.send_numbered(
        client,
        ServerMessage::ClientDisconnect(ClientDisconnect { user_id }),
    );
    let channel = channel_of(&state, client);
    let now = std::time::Instant::now();
    let effects = state
        .dave
        .get_mut(&channel)
        .map(|ch| ch.leave(user.user_id, now))
        .unwrap_or_default();
    state.apply_dave(shared.ms(now), effects);
}

/// A packet on its way through the network emulator, and where it goes.
type Impaired = (Vec<u8>, SocketAddr);

/// Waits for the ticker's next tick, sending what the emulator has due meanwhile.
async fn next_tick(
    ticker: &mut tokio::time::Interval,
    mut netem: Option<&mut Netem<Impaired>>,
    udp: Option<&Arc<UdpSocket>>,
) {
    loop {
        let due = netem.as_ref().and_then(|n| n.next_due());
        let (Some(due), Some(netem), Some(udp)) = (due, netem.as_deref_mut(), udp) else {
            ticker.tick().await;
            return;
        };
        tokio::select! {
            _ = ticker.tick() => return,
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(due)) => {
                send_due(netem, udp).await;
            }
        }
    }
}

/// Sends every packet the emulator has due now.
async fn send_due(netem: &mut Netem<Impaired>, udp: &UdpSocket) {
    let now = tokio::time::Instant::now().into_std();
    while let Some((packet, to)) = netem.poll(now) {
        let _ = udp.send_to(&packet, to).await;
    }
}

/// Records one spoken frame (and the emulator's counts so far).
fn record_spoken(
    shared: &Shared,
    spoken: usize,
    frame: SpokenFrame,
    netem: Option<&Netem<Impaired>>,
) {
    let mut state = shared.lock();
    if let Some(stream) = state.spoken.get_mut(spoken) {
        stream.frames.push(frame);
        if let Some(netem) = netem {
            stream.netem = netem_report(netem);
        }
    }
}

fn netem_report(netem: &Netem<Impaired>) -> NetemReport {
    let stats = netem.stats();
    NetemReport {
        sent: stats.sent,
        lost: stats.lost,
        duplicated: stats.duplicated,
        reordered: stats.reordered,
        delivered: stats.delivered,
    }
}

/// How long a simulated DAVE speaker waits for its keys before speaking anyway (it then sends
/// nothing but what it can encrypt).
const KEYS_WAIT: Duration = Duration::from_secs(10);

fn channel_of(state: &State, client: usize) -> u64 {
    state
        .clients
        .get(client)
        .map_or(0, |c| c.expected.channel_id)
}

/// Whether simulated `user` can send audio now: no DAVE in its channel, or it holds a key.
fn can_speak(shared: &Shared, client: usize, user: u64) -> bool {
    let mut state = shared.lock();
    let channel = channel_of(&state, client);
    state
        .dave
        .get_mut(&channel)
        .is_none_or(|ch| ch.can_send(user))
}

#[cfg(test)]
mod tests {
    use super::*;
    use voice_proto::crypto::EncryptionMode;
    use voice_proto::rtp::ReceivedRtp;
    use voice_proto::secret::SecretKey;

    #[test]
    fn simulated_packets_carry_an_extension_and_open_to_the_frame() {
        for mode in [
            EncryptionMode::AeadAes256GcmRtpSize,
            EncryptionMode::AeadXChaCha20Poly1305RtpSize,
        ] {
            let cipher = TransportCipher::new(mode, &SecretKey::new([9; 32]));
            let opus = [0xFC, 1, 2, 3, 4];
            let mut packet = seal_packet(&cipher, 7, 960, 1234, 42, &opus).expect("seals");
            assert_eq!(packet.len(), 12 + 8 + opus.len() + 20);
            let header = ReceivedRtp::parse(&packet).expect("parses");
            assert_eq!(
                (
                    header.sequence,
                    header.timestamp,
                    header.ssrc,
                    header.extension_words
                ),
                (7, 960, 1234, Some(1))
            );
            let range = cipher.open(&mut packet, header.aad_len).expect("opens");
            let plaintext = packet.get(range).expect("in range");
            assert_eq!(header.payload(plaintext).expect("strips"), &opus);
        }
    }
}
