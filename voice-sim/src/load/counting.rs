//! The counting thread: counting mode's media path. It owns the UDP socket's reads, answers IP
//! discovery through the gateway's own code, and feeds everything else to the [`Counter`].
//!
//! It is a plain thread, not a task: it drains the socket with `recvmmsg`, then sleeps
//! [`CountingConfig::read_interval`], so it wakes about a thousand times a second however many
//! packets arrive (the figures come from kernel receive timestamps, so batching does not change
//! them).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::load::config::CountingConfig;
use crate::load::counter::{Arrival, Counter, Handled, SessionInfo, Sessions};
use crate::load::process::{cpu_time, current_thread_id, thread_cpu_time};
use crate::load::report::{LoadReport, LoadStatus};
use crate::load::socket::{configure, kernel_drops, now_ns, Receiver};
use crate::server::Shared;

/// How long the thread waits for a datagram before looking at the stop flag again.
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// Sessions as the gateway's state holds them (one lock per lookup; lookups are rare).
struct GatewaySessions<'a>(&'a Shared);

impl Sessions for GatewaySessions<'_> {
    fn session(&mut self, ssrc: u32) -> Option<SessionInfo> {
        let state = self.0.lock();
        let client = *state.by_ssrc.get(&ssrc)?;
        let voice = state.clients.get(client)?.voice.as_ref()?;
        Some(SessionInfo {
            client,
            cipher: voice.cipher.clone()?,
            address: voice.discovered,
        })
    }

    fn current(&mut self) -> Vec<(u32, SessionInfo)> {
        let state = self.0.lock();
        state
            .clients
            .iter()
            .enumerate()
            .filter_map(|(client, c)| {
                let voice = c.voice.as_ref()?;
                let info = SessionInfo {
                    client,
                    cipher: voice.cipher.clone()?,
                    address: voice.discovered,
                };
                Some((voice.ssrc, info))
            })
            .collect()
    }
}

/// Where the window started, for the process figures.
#[derive(Clone, Copy, Debug)]
struct WindowStart {
    at: Instant,
    cpu: Option<Duration>,
    thread_cpu: Option<Duration>,
    drops: Option<u64>,
}

/// What the counting thread and the server's handle share.
#[derive(Debug)]
struct Inner {
    counter: Mutex<Counter>,
    window: Mutex<WindowStart>,
    stop: AtomicBool,
    /// The counting thread's id (0 until it runs), for its CPU time.
    thread_id: AtomicU32,
    port: u16,
    receive_buffer: Option<usize>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The running counting thread; stops it when dropped.
#[derive(Debug)]
pub(crate) struct CountingServer {
    inner: Arc<Inner>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl CountingServer {
    /// Starts the counting thread on `socket` (bound, not yet configured).
    pub(crate) fn start(
        shared: Arc<Shared>,
        socket: UdpSocket,
        config: CountingConfig,
    ) -> std::io::Result<Self> {
        let port = socket.local_addr()?.port();
        let receive_buffer = configure(&socket, config.receive_buffer)?;
        let inner = Arc::new(Inner {
            counter: Mutex::new(Counter::new(config.clone())),
            window: Mutex::new(WindowStart {
                at: Instant::now(),
                cpu: cpu_time(),
                thread_cpu: None,
                drops: kernel_drops(port),
            }),
            stop: AtomicBool::new(false),
            thread_id: AtomicU32::new(0),
            port,
            receive_buffer,
        });
        tracing::info!(
            port,
            ?receive_buffer,
            decrypt_every = config.decrypt_every,
            "counting mode: media path is the counting thread"
        );
        let thread = std::thread::Builder::new()
            .name("voice-sim-count".to_owned())
            .spawn({
                let inner = Arc::clone(&inner);
                let shared = Arc::clone(&shared);
                move || run(&inner, &shared, Receiver::new(socket), config.read_interval)
            })?;
        Ok(Self {
            inner,
            shared,
            thread: Some(thread),
        })
    }

    fn thread_cpu(&self) -> Option<Duration> {
        match self.inner.thread_id.load(Ordering::Relaxed) {
            0 => None,
            tid => thread_cpu_time(tid),
        }
    }

    /// Opens a new measurement window: every count restarts from zero now.
    pub(crate) fn open_window(&self) {
        let mut sessions = GatewaySessions(&self.shared);
        lock(&self.inner.counter).open_window(&mut sessions);
        *lock(&self.inner.window) = WindowStart {
            at: Instant::now(),
            cpu: cpu_time(),
            thread_cpu: self.thread_cpu(),
            drops: kernel_drops(self.inner.port),
        };
    }

    /// The figures since the window opened (the window stays open: a later call covers the
    /// same start).
    pub(crate) fn close_window(&self) -> LoadReport {
        let start = *lock(&self.inner.window);
        let mut sessions = GatewaySessions(&self.shared);
        let mut report = lock(&self.inner.counter).report(start.at.elapsed(), &mut sessions);
        let since = |now: Option<Duration>, then: Option<Duration>| {
            now.zip(then).map(|(now, then)| now.saturating_sub(then))
        };
        report.server_cpu = since(cpu_time(), start.cpu);
        report.counting_thread_cpu = since(self.thread_cpu(), start.thread_cpu);
        report.kernel_drops = kernel_drops(self.inner.port)
            .zip(start.drops)
            .map(|(now, then)| now.saturating_sub(then));
        report.receive_buffer = self.inner.receive_buffer;
        report
    }

    /// Streams, streams sending, packets so far.
    pub(crate) fn status(&self) -> LoadStatus {
        let mut sessions = GatewaySessions(&self.shared);
        lock(&self.inner.counter).status(now_ns(), &mut sessions)
    }

    /// Stops the thread and waits for it.
    pub(crate) fn stop(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for CountingServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The counting thread's loop: drain, sleep, repeat; wait for readiness when idle.
fn run(inner: &Inner, shared: &Shared, mut receiver: Receiver, read_interval: Duration) {
    inner
        .thread_id
        .store(current_thread_id().unwrap_or(0), Ordering::Relaxed);
    let mut answers: Vec<(Vec<u8>, SocketAddr)> = Vec::new();
    while !inner.stop.load(Ordering::Relaxed) {
        let received = {
            let mut counter = lock(&inner.counter);
            let mut sessions = GatewaySessions(shared);
            let now = now_ns();
            receiver.drain(|data, from, at_ns| {
                let arrival = Arrival {
                    from,
                    at_ns,
                    now_ns: now,
                };
                if counter.observe(data, arrival, &mut sessions) == Handled::Discovery {
                    if let Some(answer) = discover(shared, from, data) {
                        answers.push(answer);
                    }
                }
            })
        };
        for (answer, to) in answers.drain(..) {
            let _ = receiver.socket().send_to(&answer, to);
        }
        match received {
            Ok(0) => {
                if let Err(error) = receiver.wait(IDLE_WAIT) {
                    tracing::warn!(%error, "counting socket wait failed");
                    std::thread::sleep(IDLE_WAIT);
                }
            }
            Ok(_) => std::thread::sleep(read_interval),
            Err(error) => {
                tracing::warn!(%error, "counting socket receive failed");
                std::thread::sleep(IDLE_WAIT);
            }
        }
    }
}

/// Answers an IP discovery request with the gateway's own handling (it records the address the
/// session's RTP must come from).
fn discover(shared: &Shared, from: SocketAddr, data: &[u8]) -> Option<(Vec<u8>, SocketAddr)> {
    let at = shared.ms(Instant::now());
    let mut state = shared.lock();
    crate::media::discovery(shared, &mut state, at, from, data)
}
