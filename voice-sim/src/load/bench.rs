//! The adapters' load examples, minus the adapter: arguments, the load server child, the
//! measurement window and the printed figures. An example joins the connections its own way
//! between [`Bench::start`] and [`Bench::measure`].

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::SimError;
use crate::load::{
    raise_nofile_limit, LoadReport, LoadServerConfig, LoadServerProcess, LoadServerReady,
    ProcessSample,
};

/// The `main` of a load example: serves as the load server child when this process is one
/// (before anything else), else runs `run` and turns its outcome into the exit code.
pub fn bench_main(run: impl FnOnce() -> Result<(), String>) -> std::process::ExitCode {
    crate::load::serve_if_child();
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The bundled sample (8 s of speech, 20 ms Opus frames) the load examples loop.
pub fn sample_frames() -> Result<Vec<Vec<u8>>, SimError> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/sample.ogg");
    crate::ogg_opus::read_file(&path)
}

/// What a load example was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchArgs {
    /// Connections to join.
    pub connections: usize,
    /// Length of the measurement window.
    pub seconds: f64,
    /// Time between every stream flowing and the window opening.
    pub warmup: f64,
    /// `wss://` (true, the default) or `ws://`.
    pub tls: bool,
    /// Media worker threads of the adapter (0: one per core).
    pub media_workers: usize,
    /// Joins in flight at once.
    pub join_concurrency: usize,
}

impl Default for BenchArgs {
    fn default() -> Self {
        Self {
            connections: 400,
            seconds: 10.0,
            warmup: 2.0,
            tls: true,
            media_workers: 0,
            join_concurrency: 64,
        }
    }
}

const USAGE: &str = "options:
  --connections N     connections, each playing the bundled sample in a loop (default 400)
  --seconds S         measurement window (default 10)
  --warmup S          wait after every stream flows, before measuring (default 2)
  --no-tls            ws:// instead of wss://
  --media-workers W   the adapter's media worker threads (default 0: one per core)
  --join-concurrency J  joins in flight at once (default 64)";

impl BenchArgs {
    /// Parses `--connections N --seconds S ...` from the command line (`--help` prints usage
    /// and exits).
    pub fn from_env() -> Result<Self, String> {
        Self::parse(std::env::args().skip(1))
    }

    /// Parses the arguments after the program name.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut parsed = Self::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .ok_or_else(|| format!("{name} expects a value\n{USAGE}"))
            };
            match arg.as_str() {
                "--connections" => parsed.connections = number(&value("--connections")?)?,
                "--seconds" => parsed.seconds = number(&value("--seconds")?)?,
                "--warmup" => parsed.warmup = number(&value("--warmup")?)?,
                "--media-workers" => parsed.media_workers = number(&value("--media-workers")?)?,
                "--join-concurrency" => {
                    parsed.join_concurrency = number(&value("--join-concurrency")?)?;
                }
                "--no-tls" => parsed.tls = false,
                "--help" | "-h" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
            }
        }
        if parsed.connections == 0 || parsed.seconds <= 0.0 || parsed.warmup < 0.0 {
            return Err(format!(
                "--connections and --seconds must be positive, --warmup not negative\n{USAGE}"
            ));
        }
        parsed.join_concurrency = parsed.join_concurrency.max(1);
        Ok(parsed)
    }
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("expected a number, got `{text}`"))
}

/// A load run in progress: the server child, and the client process's figures before it joined.
#[derive(Debug)]
pub struct Bench {
    args: BenchArgs,
    server: LoadServerProcess,
    before_join: ProcessSample,
    started: Instant,
}

impl Bench {
    /// Raises the file limit, samples the process and starts the load server child (the
    /// example's `main` must call [`serve_if_child`](crate::load::serve_if_child) first).
    pub fn start(args: BenchArgs) -> Result<Self, SimError> {
        raise_nofile_limit();
        let before_join = ProcessSample::now();
        let config = LoadServerConfig {
            tls: args.tls,
            ..LoadServerConfig::default()
        };
        let server = LoadServerProcess::spawn(args.connections, &config)?;
        Ok(Self {
            args,
            server,
            before_join,
            started: Instant::now(),
        })
    }

    /// The arguments.
    pub fn args(&self) -> &BenchArgs {
        &self.args
    }

    /// Where to connect: credentials per client, the CA to trust.
    pub fn server(&self) -> &LoadServerReady {
        self.server.ready()
    }

    /// Waits until every stream flows, warms up, then measures one window.
    pub fn measure(&mut self) -> Result<BenchFigures, SimError> {
        let joined_after = self.started.elapsed();
        let flowing = self
            .server
            .wait_until_sending(self.args.connections, Duration::from_secs(120));
        if let Err(error) = flowing {
            let status = self.server.status()?;
            return Err(SimError::LoadServer(format!(
                "{error} ({} of {} streams flowing)",
                status.sending, self.args.connections
            )));
        }
        std::thread::sleep(Duration::from_secs_f64(self.args.warmup));
        let before = ProcessSample::now();
        self.server.open_window()?;
        std::thread::sleep(Duration::from_secs_f64(self.args.seconds));
        let report = self.server.close_window()?;
        let after = ProcessSample::now();
        let usage = after.since(&before);
        let connections = self.args.connections as u64;
        Ok(BenchFigures {
            connections: self.args.connections,
            joined_after,
            client_cpu_per_packet: usage.cpu_per(report.totals.packets),
            client_cores: usage.cores(),
            rss_per_connection: after
                .rss_bytes
                .zip(self.before_join.rss_bytes)
                .map(|(now, then)| now.saturating_sub(then) / connections.max(1)),
            threads: after.threads,
            report,
        })
    }

    /// Stops the server child.
    pub fn finish(self) -> Result<(), SimError> {
        self.server.shutdown()
    }
}

/// What one load run measured.
#[derive(Debug, Clone)]
pub struct BenchFigures {
    /// Connections joined.
    pub connections: usize,
    /// From the start until every connection was joined and feeding.
    pub joined_after: Duration,
    /// The client process's CPU time over the window divided by the packets the server counted.
    pub client_cpu_per_packet: Option<Duration>,
    /// Cores the client process used on average over the window.
    pub client_cores: Option<f64>,
    /// Resident memory grown since before the first join, per connection.
    pub rss_per_connection: Option<u64>,
    /// Threads of the client process.
    pub threads: Option<usize>,
    /// The server's figures over the window.
    pub report: LoadReport,
}

impl BenchFigures {
    /// The run's outcome for an exit code: late packets ("degraded") are the machine's business;
    /// lost, rejected or undecryptable ones are a failure.
    pub fn outcome(&self) -> Result<(), String> {
        match self.verdict() {
            "failed" => Err(format!(
                "the server counted lost, rejected or undecryptable packets:\n{}",
                self.report
            )),
            _ => Ok(()),
        }
    }

    /// Every stream at 50 packets/s with jitter p99 ≤ 15 ms, no pause, nothing missing or
    /// rejected, every sampled payload decrypted.
    pub fn verdict(&self) -> &'static str {
        let r = &self.report;
        let steady = r.rate.min_per_second >= 49.0
            && r.jitter.p99_ms <= 15.0
            && r.totals.pauses == 0
            && r.totals.missing == 0
            && r.silent_streams == 0;
        match (steady, r.is_clean()) {
            (true, true) => "ok",
            (false, true) => "degraded",
            (_, false) => "failed",
        }
    }
}

impl std::fmt::Display for BenchFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let micros = |d: Option<Duration>| {
            d.map_or_else(
                || "unknown".to_owned(),
                |d| format!("{:.2} µs", d.as_secs_f64() * 1e6),
            )
        };
        let r = &self.report;
        writeln!(
            f,
            "connections {}: {} (joined and feeding after {:.1} s)",
            self.connections,
            self.verdict(),
            self.joined_after.as_secs_f64()
        )?;
        writeln!(
            f,
            "client CPU per packet {} ({} cores); RSS per connection {}; threads {}",
            micros(self.client_cpu_per_packet),
            self.client_cores
                .map_or_else(|| "unknown".to_owned(), |c| format!("{c:.2}")),
            self.rss_per_connection.map_or_else(
                || "unknown".to_owned(),
                |b| format!("{:.1} KiB", b as f64 / 1024.0)
            ),
            self.threads
                .map_or_else(|| "unknown".to_owned(), |t| t.to_string()),
        )?;
        writeln!(
            f,
            "per-stream rate median {:.2}/s min {:.2}/s; jitter p50 {:.2} ms p99 {:.2} ms; missing {}; pauses {}",
            r.rate.median_per_second,
            r.rate.min_per_second,
            r.jitter.p50_ms,
            r.jitter.p99_ms,
            r.totals.missing,
            r.totals.pauses
        )?;
        writeln!(
            f,
            "server CPU per packet {} (kernel drops {})",
            micros(r.server_cpu_per_packet()),
            r.kernel_drops
                .map_or_else(|| "unknown".to_owned(), |d| d.to_string())
        )?;
        write!(f, "--- server report ---\n{r}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<BenchArgs, String> {
        BenchArgs::parse(list.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn arguments_parse_and_are_checked() {
        let parsed = args(&["--connections", "20", "--seconds", "3", "--no-tls"]).unwrap();
        assert_eq!(parsed.connections, 20);
        assert!((parsed.seconds - 3.0).abs() < f64::EPSILON);
        assert!(!parsed.tls);
        assert!(args(&["--connections", "0"]).is_err());
        assert!(args(&["--connections"]).is_err());
        assert!(args(&["--connections", "many"]).is_err());
        assert!(args(&["--bogus"]).is_err());
    }

    #[test]
    fn the_sample_loads() {
        let frames = sample_frames().unwrap();
        assert!(frames.len() > 300);
    }
}
