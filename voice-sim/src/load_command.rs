//! `voice-sim load`: the reference load generator against a counting load server in a child
//! process, to measure the server's own cost (and the generator's).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use voice_proto::crypto::EncryptionMode;
use voice_sim::load::{
    raise_nofile_limit, CountingConfig, LoadServerConfig, LoadServerProcess, ProcessSample,
    ReferenceLoad,
};
use voice_sim::SimError;

/// Runs N raw reference streams (no adapter: RawClient handshakes over ws://, then encrypted
/// RTP every 20 ms) against a counting voice-sim in a child process, and prints the server's
/// window report: packets, per-stream rate, jitter from kernel timestamps, gaps, server CPU.
#[derive(Debug, Parser)]
#[command(name = "voice-sim load")]
struct LoadArgs {
    /// Streams (connections) to run.
    #[arg(long, default_value_t = 100)]
    streams: usize,
    /// Length of the measurement window, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Time between the last join and the window, in seconds.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Transport-decrypt one packet in this many.
    #[arg(long, default_value_t = 64)]
    decrypt_every: u32,
    /// Handshakes run at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Sender tasks (and runtime threads) the streams are split over.
    #[arg(long, default_value_t = 2)]
    senders: usize,
    /// Print the report as JSON on stdout instead of the summary.
    #[arg(long)]
    json: bool,
}

/// `voice-sim load ARGS` (the arguments after `load`).
pub fn main(args: impl Iterator<Item = String>) -> ExitCode {
    let args = LoadArgs::parse_from(args);
    match run(&args) {
        Ok(clean) if clean => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(error) => {
            eprintln!("voice-sim load: {error}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &LoadArgs) -> Result<bool, SimError> {
    raise_nofile_limit();
    let config = LoadServerConfig {
        tls: false,
        counting: CountingConfig {
            decrypt_every: args.decrypt_every,
            ..CountingConfig::default()
        },
        ..LoadServerConfig::default()
    };
    let mut server = LoadServerProcess::spawn(args.streams, &config)?;
    let ready = server.ready().clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.senders.max(1))
        .enable_all()
        .build()?;
    eprintln!(
        "voice-sim load: server pid {} on {}; joining {} streams",
        ready.pid, ready.ws_url, args.streams
    );
    let load = runtime.block_on(ReferenceLoad::join(
        &ready.ws_url,
        &ready.clients,
        EncryptionMode::AeadAes256GcmRtpSize,
        0,
        args.concurrency,
    ))?;
    let warmup = Duration::from_secs_f64(args.warmup.max(0.0));
    let window = Duration::from_secs_f64(args.seconds.max(0.1));
    // Play past the end of the window so the streams never stop inside it.
    let packets = ((warmup + window).as_secs_f64() / 0.020).ceil() as u64 + 50;
    let players: Vec<_> = load
        .split(args.senders)
        .into_iter()
        .map(|mut part| runtime.spawn(async move { part.play(packets).await.map(|_| part) }))
        .collect();
    std::thread::sleep(warmup);
    let before = ProcessSample::now();
    server.open_window()?;
    std::thread::sleep(window);
    let report = server.close_window()?;
    let after = ProcessSample::now();
    let generator = after.since(&before);
    for player in players {
        if let Ok(Err(error)) = runtime.block_on(player) {
            eprintln!("voice-sim load: a sender failed: {error}");
        }
    }
    if args.json {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|error| SimError::LoadServer(format!("cannot encode the report: {error}")))?;
        println!("{json}");
    } else {
        println!("{report}");
        let micros = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e6);
        println!(
            "generator: {:.2} µs CPU per packet, {:.2} cores; server counting thread {:.2} µs per packet",
            micros(generator.cpu_per(report.totals.packets)),
            generator.cores().unwrap_or(f64::NAN),
            micros(
                report
                    .counting_thread_cpu
                    .zip(u32::try_from(report.totals.packets).ok().filter(|p| *p > 0))
                    .map(|(cpu, packets)| cpu / packets)
            ),
        );
    }
    server.shutdown()?;
    Ok(report.is_clean() && report.silent_streams == 0)
}
