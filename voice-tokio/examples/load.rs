//! Load benchmark: N connections in this process, each playing the bundled sample in a loop
//! (Opus passthrough, one feeder task per connection, as an application would write it),
//! against a counting voice server (`voice-sim` in counting mode, wss://) in a child process.
//!
//! ```text
//! cargo run --release -p voice-tokio --example load -- --connections 1600 --seconds 10
//! ```
//!
//! Prints the client's CPU per packet (this process's CPU over the window / packets the server
//! counted), RSS per connection, threads, and the server's per-stream rate, jitter (from kernel
//! receive timestamps), missing packets and pauses. `--help` lists the options.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use voice_sim::load::{bench_main, sample_frames, Bench, BenchArgs};
use voice_tokio::{Connection, VoiceConfig};

fn main() -> ExitCode {
    // This executable is also the load server's child process.
    bench_main(run)
}

fn run() -> Result<(), String> {
    let args = BenchArgs::from_env()?;
    let frames: Arc<Vec<Bytes>> = Arc::new(
        sample_frames()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(Bytes::from)
            .collect(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
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
        "joining {} connections to {} ({} media workers)...",
        args.connections,
        server.ws_url,
        if args.media_workers == 0 {
            "one per core".to_owned()
        } else {
            args.media_workers.to_string()
        }
    );
    let connections = runtime.block_on(async {
        let joins = Arc::new(tokio::sync::Semaphore::new(args.join_concurrency));
        let mut tasks = Vec::with_capacity(server.clients.len());
        for client in &server.clients {
            let (info, config, joins) =
                (client.connection_info(), config.clone(), Arc::clone(&joins));
            tasks.push(tokio::spawn(async move {
                let _permit = joins.acquire().await;
                Connection::connect(info, config).await
            }));
        }
        let mut connections = Vec::with_capacity(tasks.len());
        for task in tasks {
            let connection = task
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("a connection failed to join: {e}"))?;
            connections.push(connection);
        }
        // One feeder per connection, looping the sample forever.
        for connection in &connections {
            let sender = connection.opus_send();
            let frames = Arc::clone(&frames);
            tokio::spawn(async move {
                for frame in frames.iter().cycle() {
                    if sender.send(frame).await.is_err() {
                        return;
                    }
                }
            });
        }
        Ok::<_, String>(connections)
    })?;
    let figures = bench.measure().map_err(|e| e.to_string())?;
    println!("{figures}");
    let leaving = Instant::now();
    runtime.block_on(async {
        for connection in connections {
            connection.disconnect().await;
        }
    });
    println!("disconnected in {:.1} s", leaving.elapsed().as_secs_f64());
    bench.finish().map_err(|e| e.to_string())?;
    figures.outcome()
}
