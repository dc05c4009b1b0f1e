//! Load benchmark, blocking twin of voice-tokio's `load`: N connections in this process, each
//! playing the bundled sample in a loop (Opus passthrough), against a counting voice server
//! (`voice-sim` in counting mode, wss://) in a child process. Two feeder threads keep every
//! connection's queue topped up with `try_send`, as an application serving many streams from a
//! few threads would.
//!
//! ```text
//! cargo run --release -p voice-std --example load_blocking -- --connections 1600 --seconds 10
//! ```
//!
//! Prints the client's CPU per packet (this process's CPU over the window / packets the server
//! counted), RSS per connection, threads, and the server's per-stream rate, jitter (from kernel
//! receive timestamps), missing packets and pauses. `--help` lists the options.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use voice_sim::load::{bench_main, sample_frames, Bench, BenchArgs};
use voice_std::{Connection, OpusSender, VoiceConfig};

/// Feeder threads of the application.
const FEEDERS: usize = 2;
/// How often a feeder tops up its connections' queues (one second of audio each).
const TOP_UP: Duration = Duration::from_millis(200);

fn main() -> ExitCode {
    // This executable is also the load server's child process.
    bench_main(run)
}

fn run() -> Result<(), String> {
    let args = BenchArgs::from_env()?;
    let frames = Arc::new(sample_frames().map_err(|e| e.to_string())?);
    let mut bench = Bench::start(args.clone()).map_err(|e| e.to_string())?;
    let server = bench.server().clone();
    let mut config = VoiceConfig::default();
    config.extra_root_certificates = server
        .ca_pem
        .iter()
        .map(|pem| pem.as_bytes().to_vec())
        .collect();
    config.media_workers = args.media_workers;

    println!(
        "joining {} connections to {}...",
        args.connections, server.ws_url
    );
    let connections = join_all(&server.clients, &config, args.join_concurrency)?;
    let running = Arc::new(AtomicBool::new(true));
    let senders: Vec<OpusSender> = connections.iter().map(Connection::opus_send).collect();
    let per_feeder = senders.len().div_ceil(FEEDERS);
    let mut feeders = Vec::new();
    let mut senders = senders.into_iter();
    for _ in 0..FEEDERS {
        let mine: Vec<(OpusSender, usize)> =
            senders.by_ref().take(per_feeder).map(|s| (s, 0)).collect();
        let (frames, running) = (Arc::clone(&frames), Arc::clone(&running));
        feeders.push(std::thread::spawn(move || feed(mine, &frames, &running)));
    }
    let figures = bench.measure().map_err(|e| e.to_string())?;
    println!("{figures}");
    running.store(false, Ordering::SeqCst);
    for feeder in feeders {
        let _ = feeder.join();
    }
    let leaving = Instant::now();
    for connection in connections {
        connection.disconnect();
    }
    println!("disconnected in {:.1} s", leaving.elapsed().as_secs_f64());
    bench.finish().map_err(|e| e.to_string())?;
    figures.outcome()
}

/// Joins every client, `concurrency` at a time (each join blocks its thread until established).
fn join_all(
    clients: &[voice_sim::ExpectedClient],
    config: &VoiceConfig,
    concurrency: usize,
) -> Result<Vec<Connection>, String> {
    let pending = Arc::new(Mutex::new(
        clients.iter().cloned().enumerate().collect::<Vec<_>>(),
    ));
    let (done, joined) = mpsc::channel();
    let threads: Vec<_> = (0..concurrency.min(clients.len()))
        .map(|_| {
            let (pending, done, config) = (Arc::clone(&pending), done.clone(), config.clone());
            std::thread::spawn(move || loop {
                let next = pending.lock().ok().and_then(|mut p| p.pop());
                let Some((index, client)) = next else { return };
                let joined = Connection::connect(client.connection_info(), config.clone());
                if done.send((index, joined)).is_err() {
                    return;
                }
            })
        })
        .collect();
    drop(done);
    let mut connections: Vec<Option<Connection>> = (0..clients.len()).map(|_| None).collect();
    for (index, joined) in joined {
        let connection = joined.map_err(|e| format!("a connection failed to join: {e}"))?;
        if let Some(place) = connections.get_mut(index) {
            *place = Some(connection);
        }
    }
    for thread in threads {
        let _ = thread.join();
    }
    connections
        .into_iter()
        .map(|c| c.ok_or_else(|| "a join thread ended early".to_owned()))
        .collect()
}

/// Tops up each connection's queue every [`TOP_UP`], looping the sample.
fn feed(mut connections: Vec<(OpusSender, usize)>, frames: &[Vec<u8>], running: &AtomicBool) {
    while running.load(Ordering::SeqCst) {
        for (sender, next) in &mut connections {
            while let Some(frame) = frames.get(*next % frames.len().max(1)) {
                match sender.try_send(frame) {
                    Ok(true) => *next += 1,
                    Ok(false) | Err(_) => break,
                }
            }
        }
        std::thread::sleep(TOP_UP);
    }
}
