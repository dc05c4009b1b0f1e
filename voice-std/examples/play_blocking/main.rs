//! Plays an Ogg Opus file into a Discord voice channel from plain threads — or, with no
//! connection info, into an embedded loopback voice server (`voice-sim`), and prints the
//! server's verdict. Same flags, environment variables and exit status as voice-tokio's `play`.
//!
//! ```text
//! cargo run --release -p voice-std --example play_blocking
//! cargo run --release -p voice-std --example play_blocking -- --endpoint HOST:PORT --guild-id G \
//!     --user-id U --session-id S --token T [--ca-file ca.pem] [--input my.ogg]
//! ```

#[path = "../../../voice-tokio/examples/play/options.rs"]
mod options;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use voice_sim::VoiceServer;
use voice_std::{Connection, SpeakingFlags, VoiceConfig};

fn help() -> String {
    format!(
        "play: stream an Ogg Opus file into a Discord voice channel (voice-std example, no async)\n\n\
         USAGE: play [OPTIONS]\n\n{}\n\n\
         REAL DISCORD through the main gateway is left to voice-tokio's example (it needs a main-gateway\n\
         client); give this one raw connection info from your own bot instead.",
        options::OPTIONS_HELP
    )
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(line) => {
            eprintln!("play: {line}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let options = options::parse(&help())?;
    let frames = options.frames()?;
    if let Some(info) = options.connection_info() {
        let config = VoiceConfig {
            extra_root_certificates: options.extra_roots()?,
            ..VoiceConfig::default()
        };
        let connection = Connection::connect(info?, config)
            .map_err(|e| format!("connecting to the voice server failed: {e}"))?;
        return play(&connection, &frames);
    }

    // No connection info: the embedded loopback voice server, on a runtime of its own (the
    // adapter itself uses no async runtime).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("starting a runtime for the embedded server failed: {e}"))?;
    let server = runtime
        .block_on(VoiceServer::start(options.embedded_server_config()))
        .map_err(|e| format!("starting the embedded voice server failed: {e}"))?;
    let expected = server.expect_client();
    let config = options::embedded_client_config(&server);
    let connection = Connection::connect(expected.connection_info(), config)
        .map_err(|e| format!("connecting to the embedded voice server failed: {e}"))?;
    play(&connection, &frames)?;
    connection.disconnect();
    runtime.block_on(server.wait_until(Duration::from_secs(2), |report| {
        report
            .clients
            .first()
            .and_then(|c| c.connections.last())
            .is_some_and(|w| w.closed_ms.is_some())
    }));
    options::verdict(&runtime.block_on(server.shutdown()), frames.len())
}

/// Streams every frame (paced at 20 ms by the media workers) with a progress line.
fn play(connection: &Connection, frames: &[Vec<u8>]) -> Result<(), String> {
    connection.speaking(SpeakingFlags::MICROPHONE);
    let sender = connection.opus_send();
    let started = Instant::now();
    let total = frames.len();
    for (i, frame) in frames.iter().enumerate() {
        if sender.send(Bytes::copy_from_slice(frame)).is_err() {
            let reason = connection
                .events()
                .try_iter()
                .find_map(|e| match e {
                    voice_std::Event::Closed { error } => Some(error.to_string()),
                    _ => None,
                })
                .unwrap_or_else(|| "no reason given".to_owned());
            return Err(format!(
                "the connection ended after {i} of {total} frames: {reason}"
            ));
        }
        options::progress(i + 1, total, started.elapsed().as_secs_f64());
    }
    connection.flush();
    println!();
    if connection.is_finished() {
        return Err("the connection ended before the end of the file".to_owned());
    }
    println!(
        "sent {total} frames in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
