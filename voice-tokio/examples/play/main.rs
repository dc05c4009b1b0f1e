//! Plays an Ogg Opus file into a Discord voice channel — or, with no Discord credentials, into an
//! embedded loopback voice server (`voice-sim`), and prints the server's verdict.
//!
//! ```text
//! cargo run --release -p voice-tokio --example play                     # embedded server (DAVE), bundled sample
//! cargo run --release -p voice-tokio --example play -- --input my.ogg   # embedded server, your file
//! cargo run --release -p voice-tokio --example play -- --no-dave        # embedded server without DAVE
//! cargo run --release -p voice-tokio --example play -- --endpoint HOST:PORT --guild-id G \
//!     --user-id U --session-id S --token T [--ca-file ca.pem] [--input my.ogg]   # raw connection info
//! DISCORD_TOKEN=... cargo run --release -p voice-tokio --example play -- --guild-id G --channel-id C
//! ```
//!
//! Every flag can also come from the environment (see `--help`).

mod discord;
mod options;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use voice_proto::id::{ChannelId, GuildId};
use voice_sim::VoiceServer;
use voice_tokio::{Connection, SpeakingFlags, VoiceConfig};

fn help() -> String {
    format!(
        "play: stream an Ogg Opus file into a Discord voice channel (voice-tokio example)\n\n\
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
    let frames = options.frames()?;

    if std::env::var("DISCORD_TOKEN").is_ok_and(|t| !t.is_empty()) {
        let (Some(guild), Some(channel)) = (options.guild_id, options.channel_id) else {
            return Err("with DISCORD_TOKEN, give --guild-id and --channel-id".to_owned());
        };
        let connection = discord::join(GuildId(guild), ChannelId(channel)).await?;
        return play(connection, &frames).await;
    }

    if let Some(info) = options.connection_info() {
        let config = VoiceConfig {
            extra_root_certificates: options.extra_roots()?,
            ..VoiceConfig::default()
        };
        let connection = Connection::connect(info?, config)
            .await
            .map_err(|e| format!("connecting to the voice server failed: {e}"))?;
        return play(connection, &frames).await;
    }

    // No credentials: the embedded loopback voice server.
    let server = VoiceServer::start(options.embedded_server_config())
        .await
        .map_err(|e| format!("starting the embedded voice server failed: {e}"))?;
    let expected = server.expect_client();
    let config = options::embedded_client_config(&server);
    let connection = Connection::connect(expected.connection_info(), config)
        .await
        .map_err(|e| format!("connecting to the embedded voice server failed: {e}"))?;
    play(connection, &frames).await?;
    // Let the close land, then ask the server what it heard.
    server
        .wait_until(Duration::from_secs(2), |report| {
            report
                .clients
                .first()
                .and_then(|c| c.connections.last())
                .is_some_and(|w| w.closed_ms.is_some())
        })
        .await;
    options::verdict(&server.shutdown().await, frames.len())
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
        options::progress(i + 1, total, started.elapsed().as_secs_f64());
    }
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

/// The reason the connection ended, from its events.
fn last_error(connection: &mut Connection) -> String {
    let mut last = "no reason given".to_owned();
    while let Ok(event) = connection.events().try_recv() {
        if let voice_tokio::Event::Closed { error } = event {
            last = error.to_string();
        }
    }
    last
}
