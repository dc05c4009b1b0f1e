//! Plays an audio file into a Discord voice channel — or, with no Discord credentials, into an
//! embedded loopback voice server (`voice-sim`), and prints the server's verdict. Ogg Opus and
//! WebM Opus are passed through byte for byte; MP3, FLAC, WAV, AAC/M4A and Vorbis are decoded
//! and encoded to Opus (voice-audio's player and pump); a progress bar shows where it is.
//!
//! ```text
//! cargo run --release -p voice-tokio --example play                     # embedded server (DAVE), bundled sample
//! cargo run --release -p voice-tokio --example play -- --input my.mp3   # embedded server, your file
//! cargo run --release -p voice-tokio --example play -- --no-dave        # embedded server without DAVE
//! cargo run --release -p voice-tokio --example play -- --endpoint HOST:PORT --guild-id G \
//!     --user-id U --session-id S --token T [--ca-file ca.pem] [--input my.ogg]   # raw connection info
//! DISCORD_TOKEN=... cargo run --release -p voice-tokio --example play -- --guild-id G --channel-id C
//! cargo run --release -p voice-tokio --example play -- --record rec --stay-ms 2000  # and record the others
//! ```
//!
//! Every flag can also come from the environment (see `--help`).

mod audio;
mod discord;
mod options;
mod record;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use voice_proto::id::{ChannelId, GuildId};
use voice_sim::VoiceServer;
use voice_tokio::{Connection, SpeakingFlags, VoiceConfig};

fn help() -> String {
    format!(
        "play: stream an audio file into a Discord voice channel (voice-tokio example)\n\n\
         USAGE: play [OPTIONS]\n\n{}\n\n\
         REAL DISCORD: set DISCORD_TOKEN (a bot token) and give --guild-id and --channel-id: the\n\
         example connects to Discord's main gateway (twilight-gateway), joins the channel and plays.\n\
         Discord requires DAVE end-to-end encryption in non-Stage channels since March 2026 (close\n\
         4017); without it, only Stage channels accept the connection.",
        options::OPTIONS_HELP
    )
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
    let options = options::parse(&help())?;
    let input = options
        .input
        .clone()
        .unwrap_or_else(|| PathBuf::from(options::BUNDLED_SAMPLE));

    let receive = options.record.is_some();
    if std::env::var("DISCORD_TOKEN").is_ok_and(|t| !t.is_empty()) {
        let (Some(guild), Some(channel)) = (options.guild_id, options.channel_id) else {
            return Err("with DISCORD_TOKEN, give --guild-id and --channel-id".to_owned());
        };
        let connection = discord::join(GuildId(guild), ChannelId(channel), receive).await?;
        return play(connection, &input, &options).await.map(drop);
    }

    if let Some(info) = options.connection_info() {
        let mut config = VoiceConfig::default();
        config.extra_root_certificates = options.extra_roots()?;
        let config = if receive { config.receiving() } else { config };
        let connection = Connection::connect(info?, config)
            .await
            .map_err(|e| format!("connecting to the voice server failed: {e}"))?;
        return play(connection, &input, &options).await.map(drop);
    }

    // No credentials: the embedded loopback voice server.
    let server = VoiceServer::start(options.embedded_server_config())
        .await
        .map_err(|e| format!("starting the embedded voice server failed: {e}"))?;
    let expected = server.expect_client();
    let config = options::embedded_client_config(&server);
    let config = if receive { config.receiving() } else { config };
    let connection = Connection::connect(expected.connection_info(), config)
        .await
        .map_err(|e| format!("connecting to the embedded voice server failed: {e}"))?;
    let played = play(connection, &input, &options).await?;
    // Let the close land, then ask the server what it heard.
    server
        .wait_until(Duration::from_secs(2), options::closed)
        .await;
    let received = options::received(&server);
    let report = server.shutdown().await;
    options::verdict(&report, played.frames.len())?;
    audio::byte_exact(&played, &received)?;
    match &options.record {
        Some(dir) => options::recording_verdict(&report, dir),
        None => Ok(()),
    }
}

/// Plays the file (paced by the connection's 20 ms playout) with a progress bar, stays
/// `--stay-ms`, then leaves; with `--record`, records the others meanwhile.
async fn play(
    mut connection: Connection,
    input: &Path,
    options: &options::Options,
) -> Result<audio::Played, String> {
    connection.speaking(SpeakingFlags::MICROPHONE);
    let recorder = match &options.record {
        Some(dir) => Some(start_recording(&connection, dir)?),
        None => None,
    };
    let started = Instant::now();
    let played = play_file(&connection, input).await;
    let played = match played {
        Ok(played) => played,
        Err(e) if connection.is_finished() => {
            return Err(format!(
                "{e}; the connection ended: {}",
                last_error(&mut connection)
            ))
        }
        Err(e) => return Err(e),
    };
    connection.flush().await;
    if !options.stay.is_zero() {
        println!("staying {} ms", options.stay.as_millis());
        tokio::time::sleep(options.stay).await;
    }
    if connection.is_finished() {
        return Err(format!(
            "the connection ended before the end: {}",
            last_error(&mut connection)
        ));
    }
    connection.disconnect().await;
    println!(
        "sent {} frames in {:.1} s; disconnected with close 1000",
        played.frames.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(recorder) = recorder {
        recorder
            .await
            .map_err(|e| format!("the recorder task failed: {e}"))??;
    }
    Ok(played)
}

/// `--record`: a task writing every other user's received frames under `dir` until the
/// connection's receive stream ends.
fn start_recording(
    connection: &Connection,
    dir: &Path,
) -> Result<tokio::task::JoinHandle<Result<(), String>>, String> {
    let mut recording = record::Recording::new(dir)?;
    let mut stream = connection.receiver().subscribe_all();
    Ok(tokio::spawn(async move {
        while let Some(received) = stream.recv().await {
            recording.on(received)?;
        }
        recording.finish(stream.dropped())
    }))
}

/// Plays `path` into the connection with a progress bar until the track ends and the
/// connection's queue has played out.
async fn play_file(connection: &Connection, path: &Path) -> Result<audio::Played, String> {
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let (mut playback, pump) = audio::Playback::start(path, connection.opus_send(), move |e| {
        let _ = events_tx.send(e);
    })?;
    let mut ticker = tokio::time::interval(audio::DRAW_EVERY);
    let result = loop {
        tokio::select! {
            event = events.recv() => if let Some(end) = playback.on_event(event) {
                break end;
            },
            _ = ticker.tick() => playback.draw(connection.stats().frames_queued),
        }
    };
    drop(pump.stop());
    result?;
    // The rest of the queue plays out with the bar moving.
    while connection.stats().frames_queued > 0 && !connection.is_finished() {
        playback.draw(connection.stats().frames_queued);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    playback.finish()
}

/// The reason the connection ended, from its events.
fn last_error(connection: &mut Connection) -> String {
    let mut last = "no reason given".to_owned();
    while let Some(event) = connection.events().try_recv() {
        if let voice_tokio::Event::Closed { error } = event {
            last = error.to_string();
        }
    }
    last
}
