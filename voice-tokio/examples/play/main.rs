//! Plays an Ogg Opus file into a Discord voice channel — or, with no Discord credentials, into an
//! embedded loopback voice server (`voice-sim`), and prints the server's verdict.
//!
//! ```text
//! cargo run --release -p voice-tokio --example play                     # embedded server, bundled sample
//! cargo run --release -p voice-tokio --example play -- --input my.ogg   # embedded server, your file
//! cargo run --release -p voice-tokio --example play -- --endpoint HOST:PORT --guild-id G \
//!     --user-id U --session-id S --token T [--ca-file ca.pem] [--input my.ogg]   # raw connection info
//! DISCORD_TOKEN=... cargo run --release -p voice-tokio --example play -- --guild-id G --channel-id C
//! ```
//!
//! Every flag can also come from the environment: VOICE_ENDPOINT (or VOICE_ENDPOINT_URL for a full
//! ws:// or wss:// URL), VOICE_GUILD_ID, VOICE_USER_ID, VOICE_SESSION_ID, VOICE_TOKEN,
//! VOICE_INPUT, VOICE_CA_FILE; DISCORD_TOKEN and VOICE_CHANNEL_ID for real Discord.
//!
//! It exits 0 only when the whole file was sent (and, against the embedded server, every frame
//! arrived); otherwise it prints one line saying which step failed and what to do.

mod discord;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use voice_proto::id::{ChannelId, GuildId, UserId};
use voice_proto::secret::Token;
use voice_proto::ConnectionInfo;
use voice_sim::{ServerConfig, VoiceServer};
use voice_tokio::{Connection, SpeakingFlags, VoiceConfig};

const BUNDLED_SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../voice-sim/assets/sample.ogg"
);

const HELP: &str = "\
play: stream an Ogg Opus file into a Discord voice channel (voice-tokio example)

USAGE: play [OPTIONS]

With no connection options it starts an embedded loopback voice server (voice-sim) and plays
into it, then prints the server's verdict.

OPTIONS (each also read from the environment variable in brackets):
  --input FILE.ogg     Ogg Opus file to play, 48 kHz, 20 ms frames [VOICE_INPUT]
                       (default: the bundled voice-sim/assets/sample.ogg)
  --endpoint HOST:PORT voice server endpoint as in VOICE_SERVER_UPDATE, or a full ws:// or
                       wss:// URL [VOICE_ENDPOINT or VOICE_ENDPOINT_URL]
  --guild-id ID        guild id [VOICE_GUILD_ID]
  --user-id ID         your user id [VOICE_USER_ID]
  --session-id ID      session id from VOICE_STATE_UPDATE [VOICE_SESSION_ID]
  --token TOKEN        token from VOICE_SERVER_UPDATE [VOICE_TOKEN]
  --ca-file PEM        extra trusted root certificate [VOICE_CA_FILE]
  --channel-id ID      voice channel, for real Discord [VOICE_CHANNEL_ID]
  -h, --help           this text

REAL DISCORD: set DISCORD_TOKEN (a bot token) and give --guild-id and --channel-id: the example
connects to Discord's main gateway (twilight-gateway), joins the channel and plays. Discord
requires DAVE end-to-end encryption in non-Stage channels since March 2026 (close 4017); until
this library negotiates DAVE, that works in Stage channels only.";

/// Options from flags, then the environment.
#[derive(Debug, Default)]
struct Options {
    input: Option<PathBuf>,
    endpoint: Option<String>,
    guild_id: Option<u64>,
    user_id: Option<u64>,
    session_id: Option<String>,
    token: Option<String>,
    ca_file: Option<PathBuf>,
    channel_id: Option<u64>,
}

fn parse_options() -> Result<Options, String> {
    let mut flags = std::collections::HashMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            println!("{HELP}");
            std::process::exit(0);
        }
        let name = arg
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {arg:?} (see --help)"))?
            .to_owned();
        let value = args
            .next()
            .ok_or_else(|| format!("--{name} needs a value (see --help)"))?;
        flags.insert(name, value);
    }
    let get = |flag: &str, env: &[&str]| -> Option<String> {
        flags
            .get(flag)
            .cloned()
            .or_else(|| env.iter().find_map(|e| std::env::var(e).ok()))
            .filter(|v| !v.is_empty())
    };
    let id = |flag: &str, env: &str| -> Result<Option<u64>, String> {
        get(flag, &[env])
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("--{flag} must be a numeric id, got {v:?}"))
            })
            .transpose()
    };
    let known = [
        "input",
        "endpoint",
        "guild-id",
        "user-id",
        "session-id",
        "token",
        "ca-file",
        "channel-id",
    ];
    if let Some(unknown) = flags.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("unknown option --{unknown} (see --help)"));
    }
    Ok(Options {
        input: get("input", &["VOICE_INPUT"]).map(PathBuf::from),
        endpoint: get("endpoint", &["VOICE_ENDPOINT", "VOICE_ENDPOINT_URL"]),
        guild_id: id("guild-id", "VOICE_GUILD_ID")?,
        user_id: id("user-id", "VOICE_USER_ID")?,
        session_id: get("session-id", &["VOICE_SESSION_ID"]),
        token: get("token", &["VOICE_TOKEN"]),
        ca_file: get("ca-file", &["VOICE_CA_FILE"]).map(PathBuf::from),
        channel_id: id("channel-id", "VOICE_CHANNEL_ID")?,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(line) => {
            eprintln!("play: {line}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let options = parse_options()?;
    let input = options
        .input
        .clone()
        .unwrap_or_else(|| PathBuf::from(BUNDLED_SAMPLE));
    let frames = voice_sim::ogg_opus::read_file(&input).map_err(|e| {
        format!(
            "reading {}: {e} (give an Ogg Opus file with --input)",
            input.display()
        )
    })?;
    if frames.is_empty() {
        return Err(format!("{} holds no Opus packets", input.display()));
    }
    println!(
        "input: {} ({} Opus frames, {:.1} s)",
        input.display(),
        frames.len(),
        frames.len() as f64 * 0.02
    );

    if std::env::var("DISCORD_TOKEN").is_ok_and(|t| !t.is_empty()) {
        let (Some(guild), Some(channel)) = (options.guild_id, options.channel_id) else {
            return Err("with DISCORD_TOKEN, give --guild-id and --channel-id".to_owned());
        };
        let connection = discord::join(GuildId(guild), ChannelId(channel)).await?;
        return play(connection, &frames).await;
    }

    if options.endpoint.is_some() {
        let missing = |what: &str| format!("raw connection info needs --{what} (see --help)");
        let info = ConnectionInfo {
            endpoint: options.endpoint.clone().unwrap_or_default(),
            guild_id: GuildId(options.guild_id.ok_or_else(|| missing("guild-id"))?),
            channel_id: options.channel_id.map(ChannelId),
            user_id: UserId(options.user_id.ok_or_else(|| missing("user-id"))?),
            session_id: options
                .session_id
                .clone()
                .ok_or_else(|| missing("session-id"))?,
            token: Token::new(options.token.clone().ok_or_else(|| missing("token"))?),
        };
        let mut config = VoiceConfig::default();
        if let Some(ca) = &options.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("reading --ca-file {}: {e}", ca.display()))?;
            config.extra_root_certificates.push(pem);
        }
        let connection = Connection::connect(info, config)
            .await
            .map_err(|e| format!("connecting to the voice server failed: {e}"))?;
        return play(connection, &frames).await;
    }

    // No credentials: the embedded loopback voice server.
    let server = VoiceServer::start(ServerConfig {
        tls: true,
        ..ServerConfig::default()
    })
    .await
    .map_err(|e| format!("starting the embedded voice server failed: {e}"))?;
    let expected = server.expect_client();
    println!(
        "embedded voice server: wss://{}/?v=8, UDP {}",
        server.endpoint(),
        server.udp_addr()
    );
    let mut config = VoiceConfig::default();
    if let Some(pem) = server.ca_pem() {
        config.extra_root_certificates.push(pem.as_bytes().to_vec());
    }
    let connection = Connection::connect(expected.connection_info(), config)
        .await
        .map_err(|e| format!("connecting to the embedded voice server failed: {e}"))?;
    play(connection, &frames).await?;

    // Let the last datagrams and the close land, then ask the server what it heard.
    server
        .wait_until(Duration::from_secs(2), |report| {
            report
                .clients
                .first()
                .and_then(|c| c.connections.last())
                .is_some_and(|w| w.closed_ms.is_some())
        })
        .await;
    let report = server.shutdown().await;
    println!("{report}");
    verdict(&report, frames.len())
}

/// Streams every frame (paced by the driver at 20 ms) with a progress line, then leaves.
async fn play(mut connection: Connection, frames: &[Vec<u8>]) -> Result<(), String> {
    connection.speaking(SpeakingFlags::MICROPHONE);
    let sender = connection.opus_send();
    let started = Instant::now();
    let total = frames.len();
    for (i, frame) in frames.iter().enumerate() {
        if sender.send(Bytes::copy_from_slice(frame)).await.is_err() {
            return Err(format!(
                "the connection ended after {i} of {total} frames: {}",
                last_error(&mut connection)
            ));
        }
        if (i + 1) % 50 == 0 || i + 1 == total {
            print!(
                "\rsending: {:>5}/{total} frames, {:>5.1} s",
                i + 1,
                started.elapsed().as_secs_f64()
            );
            use std::io::Write;
            let _ = std::io::stdout().flush();
        }
    }
    // Wait until the queue has drained and the five silence frames went out.
    connection.flush().await;
    println!();
    if connection.is_finished() {
        return Err(format!(
            "the connection ended before the end: {}",
            last_error(&mut connection)
        ));
    }
    connection.disconnect().await;
    println!(
        "sent {total} frames in {:.1} s; disconnected with close 1000",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn last_error(connection: &mut Connection) -> String {
    let mut last = "no reason given".to_owned();
    while let Ok(event) = connection.events().try_recv() {
        if let voice_tokio::Event::Closed { error } = event {
            last = error.to_string();
        }
    }
    last
}

/// The embedded server's verdict: every frame arrived, decryptable, in order.
fn verdict(report: &voice_sim::Report, expected: usize) -> Result<(), String> {
    let Some(stream) = report.streams.first() else {
        return Err("the server received no audio stream (see the report above)".to_owned());
    };
    let stats = &stream.stats;
    let audio = stats.packets - stats.silence_frames;
    println!(
        "verdict: {audio}/{expected} frames received, {} silence frames, {} decrypt failures, \
         {} missing, jitter p50 {:.2} ms p99 {:.2} ms max {:.2} ms, {} violations",
        stats.silence_frames,
        stats.decrypt_failures,
        stats.missing,
        stats.jitter.p50_ms,
        stats.jitter.p99_ms,
        stats.jitter.max_ms,
        report.violations.len()
    );
    if audio != expected as u64 || stats.decrypt_failures > 0 || !report.violations.is_empty() {
        return Err(
            "the server did not receive the whole file intact (see the report above)".to_owned(),
        );
    }
    Ok(())
}
