//! [`ReferenceLoad`]: a deliberately simple load generator with no adapter in it, to prove the
//! counting and measure the server's own cost. Each stream does the handshake with a
//! [`RawClient`] (plain `ws://`), then sends correctly encrypted RTP built by a [`MediaSender`]
//! every 20 ms; [`Fault`]s injected at chosen packets check each counter exactly.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::UdpSocket;
use tokio::time::MissedTickBehavior;
use voice_proto::crypto::EncryptionMode;

use crate::error::SimError;
use crate::server::ExpectedClient;
use crate::testing::{MediaSender, RawClient};

/// Something wrong done on purpose at one packet of one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Build the packet (its sequence number is used) but do not send it: one missing.
    Skip,
    /// Send the packet twice: one duplicate.
    Duplicate,
    /// Send the packet after the stream's next one: one reorder.
    SwapWithNext,
    /// Add this many samples to the timestamp from this packet on: one wrong timestamp step.
    TimestampJump(u32),
    /// Also send a copy from another socket: one foreign source.
    ForeignCopy,
    /// Also send a copy with payload type 0x60: one bad header.
    BadHeaderCopy,
    /// Also send a copy with another SSRC: one unknown SSRC.
    UnknownSsrcCopy,
    /// Flip a byte of the encrypted payload: a decrypt failure when the packet is sampled.
    Corrupt,
}

/// One stream of a [`ReferenceLoad`]: its handshaken client (the websocket stays open) and its
/// packet builder.
#[derive(Debug)]
pub struct ReferenceStream {
    /// The client (websocket and UDP socket).
    pub client: RawClient,
    /// Builds the stream's packets.
    pub sender: MediaSender,
    /// A packet held back by [`Fault::SwapWithNext`].
    held: Option<Vec<u8>>,
}

/// What [`ReferenceLoad::play`] sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SentSummary {
    /// Packets sent from the streams' own sockets with their own SSRC, duplicates included
    /// (what the server should count).
    pub packets: u64,
    /// Extra datagrams the server should reject (foreign, bad header, unknown SSRC copies).
    pub rejected: u64,
    /// Packets built but never sent ([`Fault::Skip`]).
    pub skipped: u64,
}

/// Many raw streams sending 20 ms packets, spread evenly over each 20 ms.
#[derive(Debug)]
pub struct ReferenceLoad {
    streams: Vec<ReferenceStream>,
    faults: BTreeMap<(usize, u64), Vec<Fault>>,
    foreign: Option<UdpSocket>,
    /// Packets played so far per stream (the index of the next one).
    played: u64,
}

/// The Opus payload every reference packet carries (a plausible 20 ms frame size).
const FRAME: [u8; 120] = [0x5A; 120];

/// Ticks per 20 ms frame: streams are split into this many groups sent 2 ms apart.
const GROUPS: u64 = 10;

impl ReferenceLoad {
    /// Handshakes every client (`concurrency` at a time) on `ws_url` with `mode`, sends op 5,
    /// and prepares each stream to start at `first_sequence`.
    pub async fn join(
        ws_url: &str,
        clients: &[ExpectedClient],
        mode: EncryptionMode,
        first_sequence: u16,
        concurrency: usize,
    ) -> Result<Self, SimError> {
        let joined: Vec<Result<ReferenceStream, SimError>> =
            futures_util::stream::iter(clients.iter().cloned())
                .map(|info| async move {
                    let mut client = RawClient::connect(ws_url).await?;
                    let session = client.handshake(&info, mode).await?;
                    client.speaking(1, session.ready.ssrc).await?;
                    let sender = client.media(&session, first_sequence, 0)?;
                    Ok(ReferenceStream {
                        client,
                        sender,
                        held: None,
                    })
                })
                .buffered(concurrency.max(1))
                .collect()
                .await;
        let streams = joined.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            streams,
            faults: BTreeMap::new(),
            foreign: None,
            played: 0,
        })
    }

    /// The streams, in the order of the clients given to [`join`](Self::join).
    pub fn streams(&self) -> &[ReferenceStream] {
        &self.streams
    }

    /// Splits the streams into `parts` loads (stream `i` goes to part `i % parts`, injected
    /// faults with it) that can play on separate tasks, e.g. one per core.
    pub fn split(self, parts: usize) -> Vec<ReferenceLoad> {
        let parts = parts.max(1);
        let mut loads: Vec<ReferenceLoad> = (0..parts)
            .map(|_| ReferenceLoad {
                streams: Vec::new(),
                faults: BTreeMap::new(),
                foreign: None,
                played: self.played,
            })
            .collect();
        for (number, stream) in self.streams.into_iter().enumerate() {
            if let Some(load) = loads.get_mut(number % parts) {
                load.streams.push(stream);
            }
        }
        for ((number, packet), faults) in self.faults {
            if let Some(load) = loads.get_mut(number % parts) {
                load.faults.insert((number / parts, packet), faults);
            }
        }
        loads
    }

    /// Does `fault` at packet `packet` (0-based, counted over all [`play`](Self::play) calls)
    /// of stream `stream`.
    pub fn inject(&mut self, stream: usize, packet: u64, fault: Fault) {
        self.faults.entry((stream, packet)).or_default().push(fault);
    }

    /// Sends `packets` packets on every stream, one per stream every 20 ms, the streams spread
    /// over ten 2 ms ticks; a packet held by [`Fault::SwapWithNext`] at the very end is sent
    /// last.
    pub async fn play(&mut self, packets: u64) -> Result<SentSummary, SimError> {
        let mut summary = SentSummary::default();
        if self.foreign.is_none() && !self.faults.is_empty() {
            self.foreign = Some(UdpSocket::bind("127.0.0.1:0").await?);
        }
        let mut ticker = tokio::time::interval(Duration::from_millis(20) / GROUPS as u32);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let end = self.played + packets;
        for index in self.played..end {
            for group in 0..GROUPS {
                ticker.tick().await;
                for number in (group as usize..self.streams.len()).step_by(GROUPS as usize) {
                    self.send(number, index, &mut summary).await?;
                }
            }
        }
        self.played = end;
        for stream in &mut self.streams {
            if let Some(held) = stream.held.take() {
                stream
                    .client
                    .udp
                    .send_to(&held, stream.sender.server)
                    .await?;
                summary.packets += 1;
            }
        }
        Ok(summary)
    }

    /// Builds packet `index` of stream `number`, applies its faults, sends it.
    async fn send(
        &mut self,
        number: usize,
        index: u64,
        summary: &mut SentSummary,
    ) -> Result<(), SimError> {
        let faults = self.faults.remove(&(number, index)).unwrap_or_default();
        let Some(stream) = self.streams.get_mut(number) else {
            return Ok(());
        };
        for fault in &faults {
            if let Fault::TimestampJump(extra) = fault {
                stream.sender.timestamp = stream.sender.timestamp.wrapping_add(*extra);
            }
        }
        let mut packet = stream.sender.packet(&FRAME);
        let server = stream.sender.server;
        let mut copies = 1;
        let mut hold = false;
        for fault in &faults {
            match fault {
                Fault::Skip => copies = 0,
                Fault::Duplicate => copies += 1,
                Fault::SwapWithNext => hold = true,
                Fault::Corrupt => {
                    // Inside the ciphertext and tag, before the 4-byte nonce suffix.
                    let at = packet.len().saturating_sub(8);
                    if let Some(byte) = packet.get_mut(at) {
                        *byte ^= 0x55;
                    }
                }
                Fault::ForeignCopy => {
                    if let Some(foreign) = &self.foreign {
                        foreign.send_to(&packet, server).await?;
                        summary.rejected += 1;
                    }
                }
                Fault::BadHeaderCopy => {
                    let mut copy = packet.clone();
                    if let Some(byte) = copy.get_mut(1) {
                        *byte = 0x60;
                    }
                    stream.client.udp.send_to(&copy, server).await?;
                    summary.rejected += 1;
                }
                Fault::UnknownSsrcCopy => {
                    let mut copy = packet.clone();
                    if let Some(byte) = copy.get_mut(11) {
                        *byte ^= 0xFF;
                    }
                    stream.client.udp.send_to(&copy, server).await?;
                    summary.rejected += 1;
                }
                Fault::TimestampJump(_) => {}
            }
        }
        if copies == 0 {
            summary.skipped += 1;
        } else if hold {
            stream.held = Some(packet);
            return Ok(());
        }
        for _ in 0..copies {
            stream.client.udp.send_to(&packet, server).await?;
            summary.packets += 1;
        }
        if let Some(held) = stream.held.take().filter(|_| copies > 0) {
            stream.client.udp.send_to(&held, server).await?;
            summary.packets += 1;
        }
        Ok(())
    }
}
