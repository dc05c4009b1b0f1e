//! The media scheduler with fake connections: each is served at (never before) its due time,
//! once per entry, stale entries are dropped, a busy connection is retried, removed connections
//! are not served, connections spread over the workers, and the threads end after the last
//! connection leaves. Assertions are on order and counts; time only as lower bounds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use voice_adapter::media::{MediaScheduler, Transmitted, Transmitter, GRANULARITY};
use voice_proto::rtp::MAX_PACKET_LEN;

/// A connection that wants `remaining` transmits, `period` apart, and records when it was served.
struct Fake {
    state: Mutex<FakeState>,
    busy_first: AtomicU64,
}

struct FakeState {
    token: u64,
    next: Option<Instant>,
    period: Duration,
    remaining: u32,
    served: Vec<(Instant, Instant)>,
    stale: u32,
}

impl Fake {
    fn new(remaining: u32, period: Duration) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(FakeState {
                token: 0,
                next: None,
                period,
                remaining,
                served: Vec::new(),
                stale: 0,
            }),
            busy_first: AtomicU64::new(0),
        })
    }

    /// The first entry: due at `at`.
    fn start(&self, at: Instant) -> u64 {
        let mut state = self.state.lock().unwrap();
        state.token += 1;
        state.next = Some(at);
        state.token
    }

    fn served(&self) -> Vec<(Instant, Instant)> {
        self.state.lock().unwrap().served.clone()
    }
}

impl Transmitter for Fake {
    fn transmit(&self, now: Instant, token: u64, _buf: &mut [u8; MAX_PACKET_LEN]) -> Transmitted {
        if self
            .busy_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Transmitted::Busy;
        }
        let mut state = self.state.lock().unwrap();
        if token != state.token {
            state.stale += 1;
            return Transmitted::Stale;
        }
        let due = state
            .next
            .take()
            .expect("an entry with the live token has a due time");
        assert!(now >= due, "served at {now:?}, before its due time {due:?}");
        state.served.push((due, Instant::now()));
        state.remaining -= 1;
        if state.remaining == 0 {
            return Transmitted::Idle;
        }
        state.token += 1;
        let next = due + state.period;
        state.next = Some(next);
        Transmitted::Next {
            at: next,
            token: state.token,
        }
    }
}

fn register(scheduler: &MediaScheduler, fake: &Arc<Fake>) -> voice_adapter::media::Registration {
    let as_transmitter: Arc<dyn Transmitter> = fake.clone();
    let weak: Weak<dyn Transmitter> = Arc::downgrade(&as_transmitter);
    scheduler.register(weak).unwrap()
}

/// Waits (polling) until `done` holds, up to a generous limit that only catches a hang.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let limit = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < limit, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn media_threads(prefix: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim().starts_with(prefix))
        .count()
}

#[test]
fn every_entry_is_served_once_never_early_and_in_order() {
    let scheduler = MediaScheduler::new(2);
    let fakes: Vec<_> = (0..40)
        .map(|_| Fake::new(10, Duration::from_millis(5)))
        .collect();
    let registrations: Vec<_> = fakes.iter().map(|f| register(&scheduler, f)).collect();
    let start = Instant::now() + Duration::from_millis(10);
    for (i, (fake, registration)) in fakes.iter().zip(&registrations).enumerate() {
        let at = start + Duration::from_micros(137 * i as u64);
        registration.schedule(at, fake.start(at));
    }
    for fake in &fakes {
        eventually("ten transmits", || fake.served().len() == 10);
        let served = fake.served();
        for pair in served.windows(2) {
            assert_eq!(pair[1].0 - pair[0].0, Duration::from_millis(5), "due times");
            assert!(pair[1].1 >= pair[0].1, "served in order");
        }
        for (due, at) in served {
            assert!(at + GRANULARITY >= due, "at most one granule early");
        }
    }
}

#[test]
fn a_superseded_entry_is_dropped_and_a_busy_connection_is_retried() {
    let scheduler = MediaScheduler::new(1);
    let fake = Fake::new(1, Duration::from_millis(5));
    let registration = register(&scheduler, &fake);
    let later = Instant::now() + Duration::from_millis(30);
    let old_token = fake.start(later);
    registration.schedule(later, old_token);
    // An earlier due time supersedes it (a new token); the worker is busy twice first.
    fake.busy_first.store(2, Ordering::SeqCst);
    let sooner = Instant::now() + Duration::from_millis(5);
    registration.schedule(sooner, fake.start(sooner));
    eventually("served once", || fake.served().len() == 1);
    eventually("the old entry found stale", || {
        fake.state.lock().unwrap().stale == 1
    });
    assert_eq!(
        fake.busy_first.load(Ordering::SeqCst),
        0,
        "both busy answers seen"
    );
    assert_eq!(fake.served()[0].0, sooner);
}

#[test]
fn a_removed_connection_is_not_served_and_threads_end_after_the_last_one() {
    let scheduler = MediaScheduler::new(3);
    assert_eq!(scheduler.workers(), 3);
    let fakes: Vec<_> = (0..6)
        .map(|_| Fake::new(1000, Duration::from_millis(2)))
        .collect();
    let registrations: Vec<_> = fakes.iter().map(|f| register(&scheduler, f)).collect();
    // Spread by load: two connections per worker, so three threads.
    eventually("three worker threads", || {
        media_threads("voice-media-") >= 3
    });
    let at = Instant::now();
    for (fake, registration) in fakes.iter().zip(&registrations) {
        registration.schedule(at, fake.start(at));
    }
    eventually("all served", || fakes.iter().all(|f| f.served().len() >= 3));
    drop(registrations);
    let counts: Vec<usize> = fakes.iter().map(|f| f.served().len()).collect();
    // A transmit under way while the registration went may finish; none starts after.
    std::thread::sleep(Duration::from_millis(50));
    let settled: Vec<usize> = fakes.iter().map(|f| f.served().len()).collect();
    std::thread::sleep(Duration::from_millis(50));
    let after: Vec<usize> = fakes.iter().map(|f| f.served().len()).collect();
    assert_eq!(settled, after, "not served after removal");
    for (before, after) in counts.iter().zip(&after) {
        assert!(after <= &(before + 1));
    }
    drop(fakes);
    eventually("every worker thread ended", || {
        media_threads("voice-media-") == 0
    });
}
