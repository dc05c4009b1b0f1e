//! A small sans-IO network emulator for what the server sends: loss (random or in bursts),
//! duplication, reordering and jitter, deterministic from a seed. Packets go in with the time
//! they are sent ([`Netem::send`]); [`Netem::poll`] gives each when its (impaired) time has come,
//! and [`Netem::next_due`] says when to poll next. No clock, no socket, no task of its own: the
//! simulated speakers drive it ([`Scenario::impairment`](crate::Scenario::impairment)), and the
//! tests read what it did to every packet ([`NetemStats`], [`Fate`]).
//!
//! Inspired by Linux `tc netem` and str0m's sans-IO netem (same shape: packets in with a time, a
//! priority queue of due times, a seeded generator; the Gilbert-Elliott two-state burst model
//! for loss).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// What to do to packets. Everything is off by default (packets pass untouched, at once).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetemConfig {
    /// Probability in `0.0..=1.0` that a packet is lost (in the good state of the burst model).
    pub loss: f64,
    /// Loss in bursts: `Some((p, r))` runs a Gilbert-Elliott model whose bad state is entered
    /// with probability `p` per packet and left with probability `r`; every packet sent in the
    /// bad state is lost. `None`: independent losses only.
    pub burst: Option<(f64, f64)>,
    /// Probability that a packet is sent twice (the copy after the same delay, plus jitter).
    pub duplicate: f64,
    /// Probability that a packet is held back by [`reorder_by`](Self::reorder_by), so that the
    /// packets after it overtake it.
    pub reorder: f64,
    /// How long a reordered packet is held back.
    pub reorder_by: Duration,
    /// Delay added to every packet.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` for every packet (packets may overtake
    /// each other when it exceeds their spacing).
    pub jitter: Duration,
    /// Seed of the generator: the same seed and packets give the same fates.
    pub seed: u64,
}

impl Default for NetemConfig {
    fn default() -> Self {
        Self {
            loss: 0.0,
            burst: None,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_by: Duration::from_millis(30),
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            seed: 0x005E_ED0F_5EED,
        }
    }
}

impl NetemConfig {
    /// Whether it changes anything at all.
    pub fn is_off(&self) -> bool {
        self.loss <= 0.0
            && self.burst.is_none()
            && self.duplicate <= 0.0
            && self.reorder <= 0.0
            && self.delay.is_zero()
            && self.jitter.is_zero()
    }
}

/// What became of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fate {
    /// Lost: never delivered.
    pub lost: bool,
    /// Delivered twice.
    pub duplicated: bool,
    /// Held back so that later packets overtake it.
    pub reordered: bool,
}

/// Counts of what the emulator did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetemStats {
    /// Packets sent into it.
    pub sent: u64,
    /// Packets lost.
    pub lost: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Packets held back.
    pub reordered: u64,
    /// Packets (copies included) handed out by [`Netem::poll`].
    pub delivered: u64,
}

#[derive(Debug)]
struct Queued<T> {
    due: Instant,
    /// Tie-breaker: packets due at the same time leave in the order they were queued.
    order: u64,
    packet: T,
}

impl<T> PartialEq for Queued<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}

impl<T> Eq for Queued<T> {}

impl<T> PartialOrd for Queued<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Queued<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

/// The emulator (see the module docs).
#[derive(Debug)]
pub struct Netem<T> {
    config: NetemConfig,
    rng: SplitMix64,
    in_burst: bool,
    queue: BinaryHeap<Reverse<Queued<T>>>,
    order: u64,
    stats: NetemStats,
}

impl<T: Clone> Netem<T> {
    /// An emulator with `config`.
    pub fn new(config: NetemConfig) -> Self {
        Self {
            config,
            rng: SplitMix64(config.seed),
            in_burst: false,
            queue: BinaryHeap::new(),
            order: 0,
            stats: NetemStats::default(),
        }
    }

    /// A packet sent at `now`: decides its fate and queues what survives.
    pub fn send(&mut self, now: Instant, packet: T) -> Fate {
        self.stats.sent += 1;
        let lost = self.lose();
        // Every decision is drawn for every packet, so that one setting does not shift the
        // fates another one draws.
        let duplicated = self.chance(self.config.duplicate);
        let reordered = self.chance(self.config.reorder);
        let fate = Fate {
            lost,
            duplicated: duplicated && !lost,
            reordered: reordered && !lost,
        };
        let first = self.delay();
        let second = self.delay();
        if lost {
            self.stats.lost += 1;
            return fate;
        }
        let held = if reordered {
            self.stats.reordered += 1;
            self.config.reorder_by
        } else {
            Duration::ZERO
        };
        if duplicated {
            self.stats.duplicated += 1;
            self.queue_at(now + second + held, packet.clone());
        }
        self.queue_at(now + first + held, packet);
        fate
    }

    /// The next packet whose time has come at `now`.
    pub fn poll(&mut self, now: Instant) -> Option<T> {
        if self.queue.peek().is_some_and(|Reverse(q)| q.due <= now) {
            let Reverse(queued) = self.queue.pop()?;
            self.stats.delivered += 1;
            return Some(queued.packet);
        }
        None
    }

    /// When the next packet is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(q)| q.due)
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no packet waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// What it did so far.
    pub fn stats(&self) -> NetemStats {
        self.stats
    }

    fn queue_at(&mut self, due: Instant, packet: T) {
        self.order += 1;
        self.queue.push(Reverse(Queued {
            due,
            order: self.order,
            packet,
        }));
    }

    fn lose(&mut self) -> bool {
        if let Some((enter, leave)) = self.config.burst {
            if self.in_burst {
                if self.chance(leave) {
                    self.in_burst = false;
                }
            } else if self.chance(enter) {
                self.in_burst = true;
            }
        }
        let random = self.chance(self.config.loss);
        self.in_burst || random
    }

    fn delay(&mut self) -> Duration {
        let jitter = self.config.jitter.as_nanos();
        let extra = if jitter == 0 {
            0
        } else {
            u128::from(self.rng.next()) % (jitter + 1)
        };
        self.config.delay + Duration::from_nanos(u64::try_from(extra).unwrap_or(u64::MAX))
    }

    fn chance(&mut self, probability: f64) -> bool {
        let draw = self.rng.unit();
        probability > 0.0 && draw < probability
    }
}

/// SplitMix64: small, fast, good enough to spread fates, and the same on every platform.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0.0..1.0`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(config: NetemConfig, packets: u32) -> (Vec<u32>, NetemStats) {
        let start = Instant::now();
        let mut netem = Netem::new(config);
        let mut out = Vec::new();
        for i in 0..packets {
            let now = start + Duration::from_millis(20 * u64::from(i));
            while let Some(p) = netem.poll(now) {
                out.push(p);
            }
            netem.send(now, i);
        }
        let end = start + Duration::from_secs(3600);
        while let Some(p) = netem.poll(end) {
            out.push(p);
        }
        (out, netem.stats())
    }

    #[test]
    fn off_passes_every_packet_at_once_in_order() {
        let config = NetemConfig::default();
        assert!(config.is_off());
        let (out, stats) = run(config, 100);
        assert_eq!(out, (0..100).collect::<Vec<_>>());
        assert_eq!((stats.sent, stats.delivered, stats.lost), (100, 100, 0));
    }

    #[test]
    fn loss_duplication_and_reordering_happen_at_about_their_rates_and_add_up() {
        let config = NetemConfig {
            loss: 0.1,
            duplicate: 0.05,
            reorder: 0.1,
            ..NetemConfig::default()
        };
        let (out, stats) = run(config, 10_000);
        assert!((800..1200).contains(&stats.lost), "{stats:?}");
        assert!((350..650).contains(&stats.duplicated), "{stats:?}");
        assert!((700..1100).contains(&stats.reordered), "{stats:?}");
        assert_eq!(stats.delivered, stats.sent - stats.lost + stats.duplicated);
        assert_eq!(out.len() as u64, stats.delivered);
        let overtaken = out.windows(2).filter(|w| w[0] > w[1]).count();
        assert!(
            overtaken > 500,
            "reordered packets are overtaken: {overtaken}"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_fates_and_another_seed_others() {
        let config = NetemConfig {
            loss: 0.2,
            jitter: Duration::from_millis(50),
            ..NetemConfig::default()
        };
        assert_eq!(run(config, 500), run(config, 500));
        let other = NetemConfig { seed: 7, ..config };
        assert_ne!(run(config, 500).0, run(other, 500).0);
    }

    #[test]
    fn bursts_lose_packets_in_runs() {
        let config = NetemConfig {
            burst: Some((0.02, 0.3)),
            ..NetemConfig::default()
        };
        let (out, stats) = run(config, 10_000);
        assert!(stats.lost > 200, "{stats:?}");
        let runs = out.windows(2).filter(|w| w[1] - w[0] > 2).count();
        assert!(runs > 50, "losses of more than one packet in a row: {runs}");
    }

    #[test]
    fn delay_and_jitter_stay_within_their_bounds() {
        let start = Instant::now();
        let config = NetemConfig {
            delay: Duration::from_millis(40),
            jitter: Duration::from_millis(10),
            ..NetemConfig::default()
        };
        let mut netem = Netem::new(config);
        netem.send(start, 1u8);
        let due = netem.next_due().expect("queued");
        assert!(
            due >= start + Duration::from_millis(40) && due <= start + Duration::from_millis(50)
        );
        assert_eq!(netem.poll(due - Duration::from_nanos(1)), None);
        assert_eq!(netem.poll(due), Some(1));
        assert!(netem.is_empty());
    }
}
