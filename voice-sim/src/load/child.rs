//! The load server in a child process, so the client's CPU is measured without the server in
//! its process.
//!
//! The parent ([`LoadServerProcess::spawn`]) starts its own executable with [`CHILD_MARKER`],
//! the number of clients and the [`LoadServerConfig`] as JSON; the child's `main` calls
//! [`serve_if_child`] first thing, which runs a counting-mode [`VoiceServer`] until its stdin
//! closes. They talk in JSON lines: commands on the child's stdin, replies on its stdout, each
//! reply line starting with `voice-sim-load ` (other output on stdout is ignored).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::ServerConfig;
use crate::error::SimError;
use crate::load::config::CountingConfig;
use crate::load::report::{LoadReport, LoadStatus};
use crate::server::{ExpectedClient, VoiceServer};

/// The first argument that makes [`serve_if_child`] run the load server.
pub const CHILD_MARKER: &str = "--voice-sim-load-server";

/// Every reply line starts with this.
const REPLY_PREFIX: &str = "voice-sim-load ";

/// How long the parent waits for the child's first line (certificates, sockets) and for a reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// How often [`LoadServerProcess::wait_until_sending`] asks.
const STATUS_POLL: Duration = Duration::from_millis(200);

/// How the load server child is set up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadServerConfig {
    /// Serve `wss://` with a freshly generated CA (its PEM is in [`LoadServerReady::ca_pem`]).
    pub tls: bool,
    /// `heartbeat_interval` sent in Hello.
    pub heartbeat_interval: Duration,
    /// Seed for ids, SSRCs and keys (`None`: from the OS).
    pub seed: Option<u64>,
    /// Worker threads of the child's Tokio runtime (the gateway; the counting thread is apart).
    pub gateway_threads: usize,
    /// The counting settings.
    pub counting: CountingConfig,
}

impl Default for LoadServerConfig {
    fn default() -> Self {
        Self {
            tls: true,
            heartbeat_interval: ServerConfig::default().heartbeat_interval,
            seed: None,
            gateway_threads: 2,
            counting: CountingConfig::default(),
        }
    }
}

/// What the child says once it listens: where, the CA, and every expected client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadServerReady {
    /// The VOICE_SERVER_UPDATE endpoint, `127.0.0.1:PORT`.
    pub endpoint: String,
    /// The websocket URL (`wss://` or `ws://`).
    pub ws_url: String,
    /// The media server's UDP address.
    pub udp: SocketAddr,
    /// The CA certificate (PEM) to trust, with TLS.
    pub ca_pem: Option<String>,
    /// One entry per requested client, in order.
    pub clients: Vec<ExpectedClient>,
    /// The child's process id.
    pub pid: u32,
}

/// A command on the child's stdin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ChildCommand {
    OpenWindow,
    CloseWindow,
    Status,
}

/// A reply line on the child's stdout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ChildReply {
    Ready(LoadServerReady),
    Opened,
    Report(Box<LoadReport>),
    Status(LoadStatus),
    Error(String),
}

/// Encodes a reply as its line (without the newline).
fn reply_line(reply: &ChildReply) -> String {
    let json = serde_json::to_string(reply)
        .unwrap_or_else(|error| format!("{{\"error\":\"cannot encode the reply: {error}\"}}"));
    format!("{REPLY_PREFIX}{json}")
}

/// Decodes a stdout line: `None` for lines that are not replies.
fn parse_reply(line: &str) -> Option<Result<ChildReply, SimError>> {
    let json = line.strip_prefix(REPLY_PREFIX)?;
    Some(serde_json::from_str(json).map_err(|error| {
        SimError::LoadServer(format!("expected a JSON reply, got `{json:.200}`: {error}"))
    }))
}

/// A load server running in a child process; the child is killed when this is dropped.
#[derive(Debug)]
pub struct LoadServerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: mpsc::Receiver<String>,
    ready: LoadServerReady,
}

impl LoadServerProcess {
    /// Starts this executable as the load server child (its `main` must call
    /// [`serve_if_child`] first) expecting `clients` clients, and waits until it listens.
    pub fn spawn(clients: usize, config: &LoadServerConfig) -> Result<Self, SimError> {
        let program = std::env::current_exe()?;
        Self::spawn_program(&program, clients, config)
    }

    /// Like [`spawn`](Self::spawn) with another program that calls [`serve_if_child`] (e.g. the
    /// `voice-sim` binary).
    pub fn spawn_program(
        program: &Path,
        clients: usize,
        config: &LoadServerConfig,
    ) -> Result<Self, SimError> {
        let config_json = serde_json::to_string(config)
            .map_err(|error| SimError::LoadServer(format!("cannot encode the config: {error}")))?;
        let mut child = Command::new(program)
            .arg(CHILD_MARKER)
            .arg(clients.to_string())
            .arg(config_json)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|error| {
                SimError::LoadServer(format!("cannot start {}: {error}", program.display()))
            })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let (sender, replies) = mpsc::channel();
        if let Some(stdout) = stdout {
            std::thread::Builder::new()
                .name("voice-sim-load-reader".to_owned())
                .spawn(move || {
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        if line.starts_with(REPLY_PREFIX) {
                            if sender.send(line).is_err() {
                                break;
                            }
                        } else {
                            tracing::debug!(%line, "load server child printed a non-protocol line");
                        }
                    }
                })?;
        }
        let mut process = Self {
            child,
            stdin,
            replies,
            ready: LoadServerReady {
                endpoint: String::new(),
                ws_url: String::new(),
                udp: SocketAddr::from(([127, 0, 0, 1], 0)),
                ca_pem: None,
                clients: Vec::new(),
                pid: 0,
            },
        };
        match process.next_reply("the ready line")? {
            ChildReply::Ready(ready) if ready.clients.len() == clients => process.ready = ready,
            ChildReply::Ready(ready) => {
                return Err(SimError::LoadServer(format!(
                    "expected {clients} clients in the ready line, got {}",
                    ready.clients.len()
                )))
            }
            other => return Err(unexpected("the ready line", &other)),
        }
        Ok(process)
    }

    /// Where the server listens, its CA, and the clients' connection info.
    pub fn ready(&self) -> &LoadServerReady {
        &self.ready
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Opens a new measurement window in the server.
    pub fn open_window(&mut self) -> Result<(), SimError> {
        match self.command(ChildCommand::OpenWindow)? {
            ChildReply::Opened => Ok(()),
            other => Err(unexpected("opened", &other)),
        }
    }

    /// The server's figures since the window opened.
    pub fn close_window(&mut self) -> Result<LoadReport, SimError> {
        match self.command(ChildCommand::CloseWindow)? {
            ChildReply::Report(report) => Ok(*report),
            other => Err(unexpected("a report", &other)),
        }
    }

    /// Streams described, streams sending, packets counted.
    pub fn status(&mut self) -> Result<LoadStatus, SimError> {
        match self.command(ChildCommand::Status)? {
            ChildReply::Status(status) => Ok(status),
            other => Err(unexpected("a status", &other)),
        }
    }

    /// Waits until at least `streams` streams sent a packet within the last second, asking every
    /// 200 ms; errors with the last status after `timeout`.
    pub fn wait_until_sending(
        &mut self,
        streams: usize,
        timeout: Duration,
    ) -> Result<LoadStatus, SimError> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status()?;
            if status.sending >= streams {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(SimError::LoadServer(format!(
                    "expected {streams} streams sending within {timeout:?}, got {} ({} described)",
                    status.sending, status.streams
                )));
            }
            std::thread::sleep(STATUS_POLL);
        }
    }

    /// Closes the child's stdin (it stops serving) and waits for it to exit.
    pub fn shutdown(mut self) -> Result<(), SimError> {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(SimError::LoadServer(format!("exited with {status}")))
                };
            }
            if Instant::now() >= deadline {
                return Err(SimError::LoadServer(
                    "did not exit within 10 s of its stdin closing".to_owned(),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn command(&mut self, command: ChildCommand) -> Result<ChildReply, SimError> {
        let line = serde_json::to_string(&command)
            .map_err(|error| SimError::LoadServer(format!("cannot encode a command: {error}")))?;
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| SimError::LoadServer("its stdin is closed".to_owned()))?;
        if let Err(error) = writeln!(stdin, "{line}").and_then(|()| stdin.flush()) {
            return Err(self.died(&format!("sending {line} failed: {error}")));
        }
        self.next_reply(&line)
    }

    fn next_reply(&mut self, waiting_for: &str) -> Result<ChildReply, SimError> {
        match self.replies.recv_timeout(REPLY_TIMEOUT) {
            Ok(line) => match parse_reply(&line) {
                Some(Ok(ChildReply::Error(error))) => Err(SimError::LoadServer(error)),
                Some(reply) => reply,
                None => Err(SimError::LoadServer(format!(
                    "unexpected line `{line:.200}`"
                ))),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => Err(SimError::LoadServer(format!(
                "no answer to {waiting_for} within {REPLY_TIMEOUT:?}"
            ))),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(self.died(&format!("waiting for {waiting_for}")))
            }
        }
    }

    /// The error for a child that stopped answering: with its exit status when it exited.
    fn died(&mut self, doing: &str) -> SimError {
        // The reader saw end of file: give the process a moment to be reaped.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return SimError::LoadServer(format!("exited with {status} while {doing}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        SimError::LoadServer(format!("closed its stdout while {doing}"))
    }
}

fn unexpected(expected: &str, got: &ChildReply) -> SimError {
    let got = match got {
        ChildReply::Ready(_) => "a ready line",
        ChildReply::Opened => "opened",
        ChildReply::Report(_) => "a report",
        ChildReply::Status(_) => "a status",
        ChildReply::Error(_) => "an error",
    };
    SimError::LoadServer(format!("expected {expected}, got {got}"))
}

impl Drop for LoadServerProcess {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Runs the load server and exits the process when this process was started by
/// [`LoadServerProcess::spawn`] (its first argument is [`CHILD_MARKER`]); returns at once
/// otherwise. Call it first thing in `main`, before anything prints to stdout.
///
/// The child serves until its stdin closes, then exits with status 0 (2 on a setup error,
/// which is also sent to the parent as an error reply).
pub fn serve_if_child() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some(CHILD_MARKER) {
        return;
    }
    let code = match run_child(args.next(), args.next()) {
        Ok(()) => 0,
        Err(error) => {
            send(&ChildReply::Error(error.to_string()));
            2
        }
    };
    std::process::exit(code);
}

/// Writes one reply line on stdout, flushed: the protocol with the parent.
fn send(reply: &ChildReply) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", reply_line(reply)).and_then(|()| stdout.flush());
}

fn run_child(clients: Option<String>, config: Option<String>) -> Result<(), SimError> {
    let clients: usize = clients
        .as_deref()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            SimError::LoadServer(format!(
                "expected the number of clients after {CHILD_MARKER}, got {clients:?}"
            ))
        })?;
    let config: LoadServerConfig = serde_json::from_str(config.as_deref().unwrap_or("{}"))
        .map_err(|error| {
            SimError::LoadServer(format!("expected a JSON LoadServerConfig: {error}"))
        })?;
    // A websocket per client.
    crate::load::process::raise_nofile_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.gateway_threads.max(1))
        .thread_name("voice-sim-gateway")
        .enable_all()
        .build()?;
    runtime.block_on(serve_child(clients, config))
}

async fn serve_child(clients: usize, config: LoadServerConfig) -> Result<(), SimError> {
    let server = VoiceServer::start(ServerConfig {
        tls: config.tls,
        heartbeat_interval: config.heartbeat_interval,
        seed: config.seed,
        keep_frames: false,
        counting: Some(config.counting),
        ..ServerConfig::default()
    })
    .await?;
    let expected = (0..clients).map(|_| server.expect_client()).collect();
    send(&ChildReply::Ready(LoadServerReady {
        endpoint: server.endpoint().to_owned(),
        ws_url: server.ws_url(),
        udp: server.udp_addr(),
        ca_pem: server.ca_pem().map(str::to_owned),
        clients: expected,
        pid: std::process::id(),
    }));
    let (sender, mut commands) = tokio::sync::mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("voice-sim-load-stdin".to_owned())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        })?;
    while let Some(line) = commands.recv().await {
        let reply = match serde_json::from_str::<ChildCommand>(line.trim()) {
            Ok(ChildCommand::OpenWindow) => server.open_window().map(|()| ChildReply::Opened),
            Ok(ChildCommand::CloseWindow) => server
                .close_window()
                .map(|report| ChildReply::Report(Box::new(report))),
            Ok(ChildCommand::Status) => server.load_status().map(ChildReply::Status),
            Err(error) => Err(SimError::LoadServer(format!(
                "expected a command (\"open_window\", \"close_window\", \"status\"), got `{line:.200}`: {error}"
            ))),
        };
        send(&reply.unwrap_or_else(|error| ChildReply::Error(error.to_string())));
    }
    server.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_round_trip_through_their_lines() {
        let report = LoadReport {
            streams: 12,
            kernel_drops: Some(0),
            ..LoadReport::default()
        };
        for reply in [
            ChildReply::Opened,
            ChildReply::Report(Box::new(report)),
            ChildReply::Status(LoadStatus {
                streams: 3,
                sending: 2,
                packets: 7,
            }),
            ChildReply::Error("boom".to_owned()),
        ] {
            let line = reply_line(&reply);
            assert!(!line.contains('\n'));
            let parsed = parse_reply(&line).and_then(Result::ok);
            assert_eq!(parsed, Some(reply));
        }
        assert!(parse_reply("running 1 test").is_none());
        assert!(matches!(
            parse_reply("voice-sim-load {not json"),
            Some(Err(SimError::LoadServer(_)))
        ));
    }

    #[test]
    fn commands_and_config_have_stable_json() {
        assert_eq!(
            serde_json::to_string(&ChildCommand::CloseWindow)
                .ok()
                .as_deref(),
            Some("\"close_window\"")
        );
        let config: LoadServerConfig =
            serde_json::from_str(r#"{"tls":false,"counting":{"decrypt_every":1}}"#)
                .unwrap_or_default();
        assert!(!config.tls);
        assert_eq!(config.counting.decrypt_every, 1);
        assert_eq!(config.counting.pause_threshold, Duration::from_millis(200));
    }
}
