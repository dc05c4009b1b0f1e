//! What voice-tokio's `play` and voice-std's `play_blocking` examples share: flags and
//! environment, the raw connection info, the embedded server and its verdict. (voice-std's
//! example includes this file by path.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use voice_proto::id::{ChannelId, GuildId, UserId};
use voice_proto::secret::Token;
use voice_proto::ConnectionInfo;

/// The bundled sample: 8 s of speech, 48 kbit/s, 20 ms frames.
pub const BUNDLED_SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../voice-sim/assets/sample.ogg"
);

/// The options part of `--help`.
pub const OPTIONS_HELP: &str = "\
With no connection options it starts an embedded loopback voice server (voice-sim) and plays
into it, then prints the server's verdict. Like Discord since March 2026, the embedded server
requires DAVE end-to-end encryption: a simulated listener forms the MLS group with the client
and DAVE-decrypts every frame it receives.

OPTIONS (each also read from the environment variable in brackets):
  --input FILE         audio file to play [VOICE_INPUT] (default: the bundled
                       voice-sim/assets/sample.ogg): Ogg or WebM Opus (passed through),
                       MP3, FLAC, WAV, AAC/M4A, Vorbis (transcoded)
  --endpoint HOST:PORT voice server endpoint as in VOICE_SERVER_UPDATE, or a full ws:// or
                       wss:// URL [VOICE_ENDPOINT or VOICE_ENDPOINT_URL]
  --guild-id ID        guild id [VOICE_GUILD_ID]
  --user-id ID         your user id [VOICE_USER_ID]
  --session-id ID      session id from VOICE_STATE_UPDATE [VOICE_SESSION_ID]
  --token TOKEN        token from VOICE_SERVER_UPDATE [VOICE_TOKEN]
  --ca-file PEM        extra trusted root certificate [VOICE_CA_FILE]
  --channel-id ID      voice channel; DAVE needs it as its group id [VOICE_CHANNEL_ID]
  --no-dave            embedded server only: DAVE off, transport encryption only (as in a
                       Stage channel) [VOICE_NO_DAVE=1]
  --record DIR         receive what every other user says and write it to DIR/<user_id>.ogg:
                       Ogg Opus (48 kHz, stereo OpusHead), one packet per received Opus frame
                       in playout order, silence frames included, lost frames left out
                       [VOICE_RECORD_DIR]. With the embedded server a simulated user speaks 3 s
                       of the sample while we play, and the verdict checks its file frame by
                       frame against what it said
  --stay-ms MS         stay connected MS milliseconds after the playback (default 0)
                       [VOICE_STAY_MS]
  -h, --help           this text

EXIT STATUS: 0 only when the whole file was sent (and, against the embedded server, every frame
arrived intact, DAVE-decrypted by the listener unless --no-dave); otherwise one line says which
step failed and what to do.";

/// Options from flags, then the environment.
#[derive(Debug, Default)]
pub struct Options {
    pub input: Option<PathBuf>,
    pub endpoint: Option<String>,
    pub guild_id: Option<u64>,
    pub user_id: Option<u64>,
    pub session_id: Option<String>,
    pub token: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub channel_id: Option<u64>,
    /// `--no-dave`: the embedded server runs without DAVE.
    pub no_dave: bool,
    /// `--record DIR`: other users' audio goes to `DIR/<user_id>.ogg`.
    pub record: Option<PathBuf>,
    /// `--stay-ms MS`: how long to stay connected after the playback.
    pub stay: Duration,
}

/// Parses the command line (printing `help` and exiting on `-h`/`--help`).
pub fn parse(help: &str) -> Result<Options, String> {
    let mut flags = HashMap::new();
    let mut no_dave = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            println!("{help}");
            std::process::exit(0);
        }
        if arg == "--no-dave" {
            no_dave = true;
            continue;
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
    let known = [
        "input",
        "endpoint",
        "guild-id",
        "user-id",
        "session-id",
        "token",
        "ca-file",
        "channel-id",
        "record",
        "stay-ms",
    ];
    if let Some(unknown) = flags.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("unknown option --{unknown} (see --help)"));
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
    Ok(Options {
        input: get("input", &["VOICE_INPUT"]).map(PathBuf::from),
        endpoint: get("endpoint", &["VOICE_ENDPOINT", "VOICE_ENDPOINT_URL"]),
        guild_id: id("guild-id", "VOICE_GUILD_ID")?,
        user_id: id("user-id", "VOICE_USER_ID")?,
        session_id: get("session-id", &["VOICE_SESSION_ID"]),
        token: get("token", &["VOICE_TOKEN"]),
        ca_file: get("ca-file", &["VOICE_CA_FILE"]).map(PathBuf::from),
        channel_id: id("channel-id", "VOICE_CHANNEL_ID")?,
        no_dave: no_dave || std::env::var("VOICE_NO_DAVE").is_ok_and(|v| v == "1"),
        record: get("record", &["VOICE_RECORD_DIR"]).map(PathBuf::from),
        stay: get("stay-ms", &["VOICE_STAY_MS"])
            .map(|v| {
                v.parse()
                    .map(Duration::from_millis)
                    .map_err(|_| format!("--stay-ms must be a number of milliseconds, got {v:?}"))
            })
            .transpose()?
            .unwrap_or(Duration::ZERO),
    })
}

impl Options {
    /// Raw connection info when `--endpoint` was given; every other field is then required.
    pub fn connection_info(&self) -> Option<Result<ConnectionInfo, String>> {
        let endpoint = self.endpoint.clone()?;
        let missing = |what: &str| format!("raw connection info needs --{what} (see --help)");
        Some((|| {
            Ok(ConnectionInfo {
                endpoint,
                guild_id: GuildId(self.guild_id.ok_or_else(|| missing("guild-id"))?),
                channel_id: self.channel_id.map(ChannelId),
                user_id: UserId(self.user_id.ok_or_else(|| missing("user-id"))?),
                session_id: self
                    .session_id
                    .clone()
                    .ok_or_else(|| missing("session-id"))?,
                token: Token::new(self.token.clone().ok_or_else(|| missing("token"))?),
            })
        })())
    }

    /// The embedded loopback server: TLS with its own CA and, unless `--no-dave`, DAVE required
    /// with one simulated DAVE listener in the call (`voice_sim::adapter_cases::dave_call`), so
    /// the client forms the MLS group with it and every frame is checked end to end. With
    /// `--record`, a simulated user also speaks 3 s of the sample (the DAVE listener, its frames
    /// DAVE-encrypted; without DAVE, a plain speaker) so that the recording has something in it.
    pub fn embedded_server_config(&self) -> voice_sim::ServerConfig {
        use voice_sim::adapter_cases::{dave_call, dave_speaker, sample_frames, speaker_speaks};
        let spoken = || sample_frames(voice_sim::adapter_cases::RECEIVE_FRAMES);
        let dave = match (self.no_dave, self.record.is_some()) {
            (true, false) => voice_sim::ServerConfig::default(),
            (true, true) => voice_sim::ServerConfig {
                scenario: speaker_speaks(spoken(), None),
                ..voice_sim::ServerConfig::default()
            },
            (false, record) => voice_sim::ServerConfig {
                dave: voice_sim::DaveConfig::required(),
                scenario: if record {
                    dave_speaker(spoken())
                } else {
                    dave_call()
                },
                ..voice_sim::ServerConfig::default()
            },
        };
        voice_sim::ServerConfig { tls: true, ..dave }
    }

    /// The extra root certificate from `--ca-file`, if any.
    pub fn extra_roots(&self) -> Result<Vec<Vec<u8>>, String> {
        match &self.ca_file {
            Some(ca) => std::fs::read(ca)
                .map(|pem| vec![pem])
                .map_err(|e| format!("reading --ca-file {}: {e}", ca.display())),
            None => Ok(Vec::new()),
        }
    }
}

/// Whether the client's last websocket to the embedded server is closed (what the examples wait
/// for before asking the server what it heard).
pub fn closed(report: &voice_sim::Report) -> bool {
    report
        .clients
        .first()
        .and_then(|c| c.connections.last())
        .is_some_and(|w| w.closed_ms.is_some())
}

/// The frames the embedded server received on the client's last stream.
pub fn received(server: &voice_sim::VoiceServer) -> Vec<voice_sim::ReceivedFrame> {
    server
        .ssrcs(0)
        .last()
        .map(|&ssrc| server.frames(ssrc))
        .unwrap_or_default()
}

/// Prints where the embedded server listens and returns the client configuration that trusts its
/// certificate authority.
pub fn embedded_client_config(server: &voice_sim::VoiceServer) -> voice_adapter::VoiceConfig {
    println!(
        "embedded voice server: wss://{}/?v=8, UDP {}",
        server.endpoint(),
        server.udp_addr()
    );
    {
        let mut config = voice_adapter::VoiceConfig::default();
        config.extra_root_certificates = server
            .ca_pem()
            .map(|pem| vec![pem.as_bytes().to_vec()])
            .unwrap_or_default();
        config
    }
}

/// The embedded server's verdict: every frame arrived, decryptable, in order, no violation; and
/// in a DAVE call (the server ran a DAVE channel), every frame DAVE-decrypted by the listener,
/// none failed or sent plain.
pub fn verdict(report: &voice_sim::Report, expected: usize) -> Result<(), String> {
    println!("{report}");
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
    let Some(channel) = report.dave.first() else {
        println!("verdict: DAVE off (transport encryption only)");
        return Ok(());
    };
    let simulated_errors: usize = report.dave.iter().map(|c| c.simulated_errors.len()).sum();
    println!(
        "verdict: DAVE v{}: {}/{expected} frames DAVE-decrypted by the listener, {} failed, \
         {} unverified, {} plain; group epoch {}, {} commit(s) ({} by the client), {} \
         transition(s), {} op 31",
        channel.protocol_version,
        stats.dave_decrypted,
        stats.dave_failures,
        stats.dave_unverified,
        stats.dave_plain,
        channel.epoch,
        channel.commits_announced,
        channel.client_commits,
        channel.transitions_executed,
        channel.invalid_commit_welcomes,
    );
    if stats.dave_decrypted != expected as u64
        || stats.dave_failures > 0
        || stats.dave_unverified > 0
        || stats.dave_plain > 0
        || simulated_errors > 0
    {
        return Err(
            "the call was not end-to-end encrypted throughout: not every frame was \
             DAVE-decrypted by the listener (see the report above)"
                .to_owned(),
        );
    }
    Ok(())
}

/// The recording's verdict against the embedded server: every simulated user who spoke has a
/// `DIR/<user_id>.ogg` whose OpusHead says 48 kHz stereo and whose packets are, in order and
/// byte for byte, every frame it said that went out (its trailing silence included).
pub fn recording_verdict(report: &voice_sim::Report, dir: &Path) -> Result<(), String> {
    if report.spoken.is_empty() {
        return Err("no simulated user spoke: nothing to check the recording against".to_owned());
    }
    for spoken in &report.spoken {
        let path = dir.join(format!("{}.ogg", spoken.user_id));
        let file = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let head = file
            .windows(8)
            .position(|w| w == b"OpusHead")
            .and_then(|at| file.get(at..at + 16))
            .ok_or_else(|| format!("{} has no OpusHead", path.display()))?;
        let (channels, rate) = (
            head[9],
            u32::from_le_bytes([head[12], head[13], head[14], head[15]]),
        );
        if (channels, rate) != (2, 48_000) {
            return Err(format!(
                "{}: OpusHead says {channels} channel(s) at {rate} Hz, expected stereo at 48000 Hz",
                path.display()
            ));
        }
        let recorded = voice_sim::ogg_opus::read_file(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let said: Vec<&[u8]> = spoken.delivered().map(|f| f.opus.as_slice()).collect();
        let silence = said
            .iter()
            .filter(|f| **f == voice_proto::rtp::SILENCE_FRAME)
            .count();
        if recorded.len() != said.len() || recorded.iter().zip(&said).any(|(a, b)| a != b) {
            let first = recorded.iter().zip(&said).position(|(a, b)| a != b);
            return Err(format!(
                "{} holds {} packets, user {} said {} (first difference at {first:?})",
                path.display(),
                recorded.len(),
                spoken.user_id,
                said.len()
            ));
        }
        println!(
            "verdict: recording {}: {} frames ({} of them silence) byte-exact, in order, as user {} \
             said them",
            path.display(),
            recorded.len(),
            silence,
            spoken.user_id
        );
    }
    Ok(())
}
