//! [`Counter`]: counting mode's per-datagram work, with no I/O: demultiplex by SSRC through a
//! flat table, check the header and the source address, account sequence, timestamp and
//! arrival time, decrypt a sample; and the window figures ([`LoadReport`]).
//!
//! Sessions (SSRC, client, cipher, discovered address) belong to the gateway; the counter asks
//! for them through [`Sessions`] only when it meets an SSRC it does not know yet, when a known
//! SSRC arrives from another address (the client may have rediscovered), and when a window
//! opens or closes.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use voice_proto::crypto::TransportCipher;
use voice_proto::discovery::DISCOVERY_PACKET_LEN;
use voice_proto::rtp::{classify, PacketKind, ReceivedRtp};

use crate::load::config::CountingConfig;
use crate::load::histogram::Histogram;
use crate::load::report::{
    LoadReport, LoadStatus, RateSummary, Rejected, StreamFigures, StreamWindow,
};
use crate::load::sequence::SequenceTracker;

/// A described voice session, as the gateway knows it.
#[derive(Clone, Debug)]
pub(crate) struct SessionInfo {
    /// The client's index.
    pub(crate) client: usize,
    /// The session's transport cipher.
    pub(crate) cipher: Arc<TransportCipher>,
    /// The address the client's IP discovery came from.
    pub(crate) address: Option<SocketAddr>,
}

/// Where the counter looks sessions up.
pub(crate) trait Sessions {
    /// The described session that owns `ssrc` now.
    fn session(&mut self, ssrc: u32) -> Option<SessionInfo>;
    /// Every described session now, by SSRC.
    fn current(&mut self) -> Vec<(u32, SessionInfo)>;
}

/// Where and when a datagram arrived.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Arrival {
    /// Its source address.
    pub(crate) from: SocketAddr,
    /// Kernel receive timestamp, in nanoseconds (`None` when the kernel gave none).
    pub(crate) at_ns: Option<i64>,
    /// Now on the same clock, used when there is no timestamp.
    pub(crate) now_ns: i64,
}

/// What a datagram was, for the caller's part of the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handled {
    /// An IP discovery request: the caller answers it.
    Discovery,
    /// Everything else (counted or rejected here).
    Done,
}

/// Hashes an SSRC with one multiplication (Fibonacci hashing), spreading it to the high bits
/// the table's control bytes use.
#[derive(Default)]
pub(crate) struct SsrcHasher(u64);

impl Hasher for SsrcHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, value: u32) {
        self.0 = u64::from(value).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// One stream's slot in the flat table.
#[derive(Debug)]
struct Slot {
    ssrc: u32,
    client: usize,
    cipher: Arc<TransportCipher>,
    address: Option<SocketAddr>,
    /// The SSRC still belongs to a described session (not replaced by a fresh Identify).
    current: bool,
    tracker: SequenceTracker,
    counts: StreamFigures,
}

/// Datagram counts that belong to no stream.
#[derive(Clone, Debug, Default)]
struct Totals {
    packets: u64,
    decrypt_checked: u64,
    decrypt_failed: u64,
    rejected: Rejected,
    keepalives: u64,
    rtcp: u64,
    discovery_requests: u64,
    untimestamped: u64,
}

/// Counting mode's state: streams in a flat table, the window's totals and jitter histogram.
#[derive(Debug)]
pub(crate) struct Counter {
    config: CountingConfig,
    table: HashMap<u32, usize, BuildHasherDefault<SsrcHasher>>,
    slots: Vec<Slot>,
    jitter: Histogram,
    totals: Totals,
    /// Packets to count before the next decrypt sample.
    until_sample: u32,
}

impl std::fmt::Debug for SsrcHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SsrcHasher")
    }
}

impl Counter {
    /// An empty counter.
    pub(crate) fn new(config: CountingConfig) -> Self {
        Self {
            config,
            table: HashMap::default(),
            slots: Vec::new(),
            jitter: Histogram::default(),
            totals: Totals::default(),
            until_sample: 0,
        }
    }

    /// Handles one datagram. `data` may be decrypted in place.
    pub(crate) fn observe(
        &mut self,
        data: &mut [u8],
        arrival: Arrival,
        sessions: &mut impl Sessions,
    ) -> Handled {
        let len = data.len();
        if len == DISCOVERY_PACKET_LEN && data.starts_with(&[0, 1]) {
            self.totals.discovery_requests += 1;
            return Handled::Discovery;
        }
        if len == 8 || len == 4 {
            // Keepalives: DJS sends 8 bytes (u32 LE counter), songbird the 4-byte SSRC.
            self.totals.keepalives += 1;
            return Handled::Done;
        }
        match classify(data) {
            PacketKind::Rtcp => self.totals.rtcp += 1,
            PacketKind::Discovery => self.totals.rejected.other += 1,
            PacketKind::Other => self.totals.rejected.bad_header += 1,
            PacketKind::Rtp => self.rtp(data, arrival, sessions),
        }
        Handled::Done
    }

    fn rtp(&mut self, data: &mut [u8], arrival: Arrival, sessions: &mut impl Sessions) {
        let Ok(header) = ReceivedRtp::parse(data) else {
            self.totals.rejected.bad_header += 1;
            return;
        };
        let Some(index) = self.slot(header.ssrc, sessions) else {
            self.totals.rejected.unknown_ssrc += 1;
            return;
        };
        if !self.source_matches(index, header.ssrc, arrival.from, sessions) {
            self.totals.rejected.foreign_source += 1;
            return;
        }
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        let at = arrival.at_ns.unwrap_or_else(|| {
            self.totals.untimestamped += 1;
            arrival.now_ns
        });
        let observed = slot.tracker.observe(
            header.sequence,
            header.timestamp,
            at,
            self.config.pause_threshold,
            &mut slot.counts,
        );
        self.totals.packets += 1;
        if let Some(gap) = observed.inter_arrival {
            self.jitter.record(gap.abs_diff(self.config.frame_interval));
        }
        if self.until_sample == 0 {
            self.until_sample = self.config.decrypt_every.max(1) - 1;
            self.totals.decrypt_checked += 1;
            if slot.cipher.open(data, header.aad_len).is_err() {
                self.totals.decrypt_failed += 1;
                tracing::debug!(
                    ssrc = header.ssrc,
                    sequence = header.sequence,
                    "sampled packet failed to decrypt"
                );
            }
        } else {
            self.until_sample -= 1;
        }
    }

    /// The slot of `ssrc`, registering a described session the first time it is met.
    fn slot(&mut self, ssrc: u32, sessions: &mut impl Sessions) -> Option<usize> {
        if let Some(&index) = self.table.get(&ssrc) {
            return self
                .slots
                .get(index)
                .filter(|slot| slot.current)
                .map(|_| index);
        }
        let info = sessions.session(ssrc)?;
        Some(self.register(ssrc, info))
    }

    /// Adds or refreshes the slot of `ssrc`; returns its index.
    fn register(&mut self, ssrc: u32, info: SessionInfo) -> usize {
        if let Some(slot) = self
            .table
            .get(&ssrc)
            .and_then(|&index| self.slots.get_mut(index))
        {
            slot.client = info.client;
            slot.cipher = info.cipher;
            slot.address = info.address;
            slot.current = true;
        } else {
            self.table.insert(ssrc, self.slots.len());
            self.slots.push(Slot {
                ssrc,
                client: info.client,
                cipher: info.cipher,
                address: info.address,
                current: true,
                tracker: SequenceTracker::default(),
                counts: StreamFigures::default(),
            });
        }
        self.table.get(&ssrc).copied().unwrap_or_default()
    }

    /// Whether `from` is the address the slot's client discovered (asking the gateway again on
    /// a mismatch, in case the client discovered anew).
    fn source_matches(
        &mut self,
        index: usize,
        ssrc: u32,
        from: SocketAddr,
        sessions: &mut impl Sessions,
    ) -> bool {
        if self.slots.get(index).and_then(|s| s.address) == Some(from) {
            return true;
        }
        let Some(info) = sessions.session(ssrc) else {
            return false;
        };
        let matches = info.address == Some(from);
        self.register(ssrc, info);
        matches
    }

    /// Registers every described session and retires SSRCs no session owns any more.
    pub(crate) fn sync(&mut self, sessions: &mut impl Sessions) {
        for slot in &mut self.slots {
            slot.current = false;
        }
        for (ssrc, info) in sessions.current() {
            self.register(ssrc, info);
        }
    }

    /// Starts a new window: every count, the jitter histogram and the sequence gaps are reset
    /// (the sequence state itself is kept, so the first packet of the window is no gap).
    pub(crate) fn open_window(&mut self, sessions: &mut impl Sessions) {
        self.sync(sessions);
        for slot in &mut self.slots {
            slot.counts = StreamFigures::default();
            slot.tracker.open_window();
        }
        self.jitter.clear();
        self.totals = Totals::default();
    }

    /// The figures since the window opened, `window` long. Process figures (CPU, kernel drops,
    /// receive buffer, gateway violations) are the caller's to fill in.
    pub(crate) fn report(&mut self, window: Duration, sessions: &mut impl Sessions) -> LoadReport {
        self.sync(sessions);
        let seconds = window.as_secs_f64().max(1e-9);
        let mut report = LoadReport {
            window,
            jitter: self.jitter.summary(),
            decrypt_checked: self.totals.decrypt_checked,
            decrypt_failed: self.totals.decrypt_failed,
            rejected: self.totals.rejected.clone(),
            keepalives: self.totals.keepalives,
            rtcp: self.totals.rtcp,
            discovery_requests: self.totals.discovery_requests,
            untimestamped: self.totals.untimestamped,
            ..LoadReport::default()
        };
        let mut rates = Vec::new();
        for slot in self.slots.iter().filter(|slot| slot.current) {
            let mut figures = slot.counts.clone();
            figures.missing += slot.tracker.pending_missing();
            report.totals.add(&figures);
            if figures.packets == 0 {
                report.silent_streams += 1;
            }
            rates.push(figures.packets as f64 / seconds);
            report.per_stream.push(StreamWindow {
                ssrc: slot.ssrc,
                client: slot.client,
                figures,
            });
        }
        report.per_stream.sort_by_key(|s| s.ssrc);
        report.streams = report.per_stream.len();
        rates.sort_by(f64::total_cmp);
        report.rate = RateSummary {
            median_per_second: median(&rates),
            min_per_second: rates.first().copied().unwrap_or(0.0),
            max_per_second: rates.last().copied().unwrap_or(0.0),
        };
        report
    }

    /// Streams, streams heard from within the last second before `now_ns`, and packets so far.
    pub(crate) fn status(&mut self, now_ns: i64, sessions: &mut impl Sessions) -> LoadStatus {
        self.sync(sessions);
        let recent = now_ns.saturating_sub(1_000_000_000);
        let current = || self.slots.iter().filter(|slot| slot.current);
        LoadStatus {
            streams: current().count(),
            sending: current()
                .filter(|slot| {
                    slot.tracker
                        .last_arrival_ns()
                        .is_some_and(|at| at >= recent)
                })
                .count(),
            packets: self.totals.packets,
        }
    }
}

/// The median of sorted values (the mean of the middle two for an even count); 0 when empty.
fn median(sorted: &[f64]) -> f64 {
    let mid = sorted.len() / 2;
    match (sorted.len() % 2, sorted.get(mid)) {
        (_, None) => 0.0,
        (1, Some(&value)) => value,
        (_, Some(&upper)) => {
            let lower = mid.checked_sub(1).and_then(|i| sorted.get(i)).copied();
            lower.map_or(upper, |lower| (lower + upper) / 2.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voice_proto::crypto::EncryptionMode;
    use voice_proto::secret::SecretKey;

    use crate::testing::MediaSender;

    const MS: i64 = 1_000_000;

    /// One session, `ssrc` 42 of client 0 at 127.0.0.1:5000.
    struct OneSession {
        cipher: Arc<TransportCipher>,
        lookups: usize,
    }

    impl OneSession {
        fn info(&self) -> SessionInfo {
            SessionInfo {
                client: 0,
                cipher: Arc::clone(&self.cipher),
                address: Some(client_addr()),
            }
        }
    }

    impl Sessions for OneSession {
        fn session(&mut self, ssrc: u32) -> Option<SessionInfo> {
            self.lookups += 1;
            (ssrc == 42).then(|| self.info())
        }

        fn current(&mut self) -> Vec<(u32, SessionInfo)> {
            vec![(42, self.info())]
        }
    }

    fn arrival(from: SocketAddr, at_ns: Option<i64>) -> Arrival {
        Arrival {
            from,
            at_ns,
            now_ns: 5 * MS,
        }
    }

    fn client_addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 5000))
    }

    fn setup(decrypt_every: u32) -> (Counter, OneSession, MediaSender) {
        let key = SecretKey::new([7; 32]);
        let mode = EncryptionMode::AeadAes256GcmRtpSize;
        let sessions = OneSession {
            cipher: Arc::new(TransportCipher::new(mode, &key)),
            lookups: 0,
        };
        let sender = MediaSender::new(mode, &key, 42, 100, 5_000, client_addr());
        let config = CountingConfig {
            decrypt_every,
            ..CountingConfig::default()
        };
        (Counter::new(config), sessions, sender)
    }

    #[test]
    fn counts_a_clean_stream_and_looks_the_session_up_once() {
        let (mut counter, mut sessions, mut sender) = setup(4);
        counter.open_window(&mut sessions);
        for i in 0..20 {
            let mut packet = sender.packet(&[0xAB; 60]);
            let at = Some(i * 20 * MS + if i % 2 == 0 { 0 } else { MS });
            counter.observe(&mut packet, arrival(client_addr(), at), &mut sessions);
        }
        let report = counter.report(Duration::from_millis(400), &mut sessions);
        assert_eq!(sessions.lookups, 0, "open_window registered the session");
        assert_eq!((report.streams, report.totals.packets), (1, 20));
        assert_eq!(report.decrypt_checked, 5);
        assert_eq!(report.decrypt_failed, 0);
        assert!(report.is_clean(), "{report}");
        // Inter-arrivals alternate 21 and 19 ms: every sample deviates by 1 ms.
        assert_eq!(report.jitter.samples, 19);
        assert!((report.jitter.p50_ms - 1.0).abs() < 1e-9);
        assert!((report.rate.median_per_second - 50.0).abs() < 1e-9);
    }

    #[test]
    fn rejects_by_reason_and_ignores_keepalives_and_rtcp() {
        let (mut counter, mut sessions, mut sender) = setup(64);
        let good = sender.packet(&[1; 20]);
        let mut stranger = good.clone();
        if let Some(byte) = stranger.get_mut(11) {
            *byte ^= 1;
        }
        let mut wrong_type = good.clone();
        if let Some(byte) = wrong_type.get_mut(1) {
            *byte = 0x60;
        }
        let elsewhere = SocketAddr::from(([127, 0, 0, 1], 5001));
        let datagrams: [(&[u8], SocketAddr); 6] = [
            (&good, elsewhere),
            (&stranger, client_addr()),
            (&wrong_type, client_addr()),
            (&[0; 8], client_addr()),
            (&[0x80, 200, 0, 1, 0, 0, 0, 42, 0, 0, 0, 0], client_addr()),
            (&[1, 2, 3], client_addr()),
        ];
        for (data, from) in datagrams {
            let mut data = data.to_vec();
            counter.observe(&mut data, arrival(from, Some(0)), &mut sessions);
        }
        let mut discovery = voice_proto::discovery::discovery_request(42).to_vec();
        let handled = counter.observe(&mut discovery, arrival(client_addr(), None), &mut sessions);
        assert_eq!(handled, Handled::Discovery);
        let report = counter.report(Duration::from_secs(1), &mut sessions);
        assert_eq!(report.totals.packets, 0);
        assert_eq!(report.silent_streams, 1);
        assert_eq!(
            report.rejected,
            Rejected {
                bad_header: 2,
                unknown_ssrc: 1,
                foreign_source: 1,
                other: 0
            }
        );
        assert_eq!((report.keepalives, report.rtcp), (1, 1));
        assert_eq!(report.discovery_requests, 1);
    }

    #[test]
    fn a_corrupted_payload_fails_the_decrypt_sample() {
        let (mut counter, mut sessions, mut sender) = setup(1);
        let mut packet = sender.packet(&[9; 40]);
        if let Some(byte) = packet.get_mut(20) {
            *byte ^= 0xFF;
        }
        counter.observe(&mut packet, arrival(client_addr(), None), &mut sessions);
        let report = counter.report(Duration::from_secs(1), &mut sessions);
        assert_eq!((report.decrypt_checked, report.decrypt_failed), (1, 1));
        assert_eq!((report.totals.packets, report.untimestamped), (1, 1));
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0]), 3.0);
        assert_eq!(median(&[1.0, 3.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 10.0]), 2.0);
    }
}
