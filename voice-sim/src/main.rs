//! `voice-sim`: run the loopback Discord voice server from the command line.
//!
//! Prints one JSON line with the ports and the connection info of every expected client, runs
//! until Ctrl-C, `--duration` or `--exit-after-clients`, then writes the report. Exits 0 when no
//! client violated the protocol, 1 when one did, 2 on a setup error.
//!
//! `voice-sim load --streams N --seconds S` instead runs the reference load generator against a
//! counting-mode server in a child process and prints the server's window report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use voice_sim::{
    DaveConfig, Report, Scenario, ScenarioStep, ServerConfig, VoiceServer, DEFAULT_MODES,
};

mod load_command;

/// A loopback Discord voice server (voice gateway v8 + UDP media on 127.0.0.1) that validates
/// every client message and packet against the protocol and reports what it saw.
#[derive(Debug, Parser)]
#[command(name = "voice-sim", version, after_help = SCENARIO_HELP)]
struct Args {
    /// Serve wss:// with a freshly generated CA (its PEM path is in the start line; give it to
    /// the client, e.g. NODE_EXTRA_CA_CERTS).
    #[arg(long)]
    tls: bool,
    /// Where to write the CA certificate (with --tls); a temporary file by default.
    #[arg(long, value_name = "PATH")]
    ca_pem: Option<PathBuf>,
    /// TCP port of the voice gateway (0 = ephemeral).
    #[arg(long, default_value_t = 0)]
    tcp_port: u16,
    /// UDP port of the media server (0 = ephemeral).
    #[arg(long, default_value_t = 0)]
    udp_port: u16,
    /// heartbeat_interval sent in Hello, in milliseconds.
    #[arg(long, default_value_t = 13_750)]
    heartbeat_ms: u64,
    /// Encryption modes offered in Ready, comma-separated, in order.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_MODES.map(str::to_owned))]
    modes: Vec<String>,
    /// How many clients to expect (each gets its own ids, session and token).
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Put all expected clients in one guild and voice channel: they hear each other (audio is
    /// relayed, with op 11, op 5 and op 13).
    #[arg(long)]
    same_channel: bool,
    /// Server misbehaviour; repeatable (see below).
    #[arg(long = "scenario", value_name = "STEP")]
    scenarios: Vec<ScenarioStep>,
    /// Ogg Opus file simulated users speak (default: the committed 8 s sample if present, else
    /// 2 s of synthetic frames).
    #[arg(long, value_name = "FILE")]
    user_audio: Option<PathBuf>,
    /// Write each received stream as DIR/ssrc-<SSRC>.ogg (Ogg Opus).
    #[arg(long, value_name = "DIR")]
    record: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Stop once this many clients have connected and have had no websocket for a second.
    #[arg(long, value_name = "N")]
    exit_after_clients: Option<usize>,
    /// Seed for ids, SSRCs, keys and simulated loss (random by default).
    #[arg(long)]
    seed: Option<u64>,
    /// Run the DAVE role (end-to-end encryption): Session Description offers version 1 to
    /// clients that allow it, the server is the channel's MLS external sender, and simulated
    /// users (--scenario user=...) are DAVE members unless marked plain=1.
    #[arg(long)]
    dave: bool,
    /// With --dave: close clients that do not allow DAVE with 4017, as Discord does.
    #[arg(long, requires = "dave")]
    require_dave: bool,
}

const SCENARIO_HELP: &str = "\
Scenario steps (--scenario, repeatable):
  close=CODE@ms=N         close each client's websocket with CODE N ms after its Session Description
  close=CODE@packets=N    ... once N RTP packets of its SSRC arrived (each rule fires once per client)
  no-acks[@after=N]       stop acknowledging heartbeats (after N) on each client's first websocket
  garbage=KIND            after Session Description send unknown-op | malformed-json | binary | all
  no-discovery            never answer IP discovery
  user=ID@join=MS[,speak=MS][,leave=MS][,plain=1]
                          a simulated user: op 11 at join, op 5 + encrypted RTP (with a header
                          extension) from --user-audio at speak, op 13 at leave; with --dave it
                          is an MLS member that DAVE-encrypts its audio and decrypts the clients'
                          for the media checks (plain=1: no DAVE, the call downgrades)
  loss=P                  drop server-sent media packets with probability P
  delay=MS                delay server-sent media packets
  ws-delay=MS             delay every websocket frame after Hello (order kept)
  withhold=OP[+OP...]     never send these opcodes (e.g. 4: no Session Description, 6: no ACKs)
  first-close=CODE|drop   end each client's first websocket right after its Identify, with CODE
                          or by dropping TCP (the client must retry its join)
  lose-first-discovery    drop each client's first IP discovery request (it must be sent again)
  impair@loss=PCT,dup=PCT,reorder=PCT,jitter=MS,delay=MS,seed=N
                          simulated users' audio through a network emulator (percent of packets
                          lost, duplicated, held back 30 ms; extra random delay); the report's
                          `spoken` lists every frame they said and its fate
Example: voice-sim --tls --heartbeat-ms 1000 --scenario close=4015@packets=100 --report r.json
Load:    voice-sim load --streams 1000 --seconds 10  (counting server cost; `voice-sim load --help`)
DAVE:    voice-sim --tls --dave --require-dave --scenario user=42@join=0 --report r.json";

fn main() -> ExitCode {
    // Started by `LoadServerProcess` (the load benchmarks, `voice-sim load`): serve and exit.
    voice_sim::load::serve_if_child();
    if std::env::args().nth(1).as_deref() == Some("load") {
        return load_command::main(std::env::args().skip(1));
    }
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("voice-sim: cannot start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(report) if report.violations.is_empty() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(error) => {
            eprintln!("voice-sim: {error}");
            ExitCode::from(2)
        }
    }
}

fn user_audio(path: Option<&PathBuf>) -> Result<Vec<Vec<u8>>, voice_sim::SimError> {
    if let Some(path) = path {
        return voice_sim::ogg_opus::read_file(path);
    }
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/sample.ogg");
    if sample.exists() {
        return voice_sim::ogg_opus::read_file(&sample);
    }
    // 2 s of a valid Opus CELT frame (silence-like content, TOC 0xFC).
    Ok(vec![vec![0xFC, 0xFF, 0xFE]; 100])
}

async fn run(args: Args) -> Result<Report, voice_sim::SimError> {
    let needs_audio = args
        .scenarios
        .iter()
        .any(|s| matches!(s, ScenarioStep::User { .. }));
    let audio = if needs_audio {
        user_audio(args.user_audio.as_ref())?
    } else {
        Vec::new()
    };
    let config = ServerConfig {
        tls: args.tls,
        tcp_port: args.tcp_port,
        udp_port: args.udp_port,
        heartbeat_interval: Duration::from_millis(args.heartbeat_ms.max(1)),
        modes: args.modes.clone(),
        ca_pem_path: args.ca_pem.clone(),
        seed: args.seed,
        scenario: Scenario::from_steps(&args.scenarios, Arc::new(audio)),
        dave: DaveConfig {
            enabled: args.dave,
            required: args.require_dave,
            ..DaveConfig::default()
        },
        ..ServerConfig::default()
    };
    let server = VoiceServer::start(config).await?;
    let clients: Vec<_> = (0..args.clients)
        .map(|i| {
            if args.same_channel && i > 0 {
                server.expect_client_in(0)
            } else {
                server.expect_client()
            }
        })
        .collect();
    let start = serde_json::json!({
        "endpoint": server.endpoint(),
        "ws_url": server.ws_url(),
        "udp": server.udp_addr().to_string(),
        "tls": args.tls,
        "ca_pem_path": server.ca_pem_path().map(|p| p.display().to_string()),
        "clients": clients,
    });
    println!("{start}");

    let deadline = args
        .duration
        .filter(|d| d.is_finite() && *d >= 0.0)
        .map(|d| tokio::time::Instant::now() + Duration::from_secs_f64(d));
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = sleep_until(deadline) => break,
            _ = poll.tick() => {
                if let Some(n) = args.exit_after_clients {
                    if clients_done(&server.report()) >= n {
                        break;
                    }
                }
            }
        }
    }

    let report = server.report();
    if let Some(dir) = &args.record {
        std::fs::create_dir_all(dir)?;
        for stream in &report.streams {
            let frames: Vec<Vec<u8>> = server
                .frames(stream.ssrc)
                .into_iter()
                .map(|f| f.opus)
                .collect();
            voice_sim::ogg_opus::write_file(
                &dir.join(format!("ssrc-{}.ogg", stream.ssrc)),
                &frames,
            )?;
        }
    }
    let report = server.shutdown().await;
    if let Some(path) = &args.report {
        report.write_json(path)?;
    }
    eprint!("{report}");
    Ok(report)
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Clients that connected and have had no open websocket for at least a second.
fn clients_done(report: &Report) -> usize {
    report
        .clients
        .iter()
        .filter(|c| {
            !c.connections.is_empty()
                && c.connections.iter().all(|conn| {
                    conn.closed_ms
                        .is_some_and(|closed| report.duration_ms.saturating_sub(closed) >= 1000)
                })
        })
        .count()
}
