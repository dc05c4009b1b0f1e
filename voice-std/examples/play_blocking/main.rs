//! Plays an audio file into a Discord voice channel from plain threads — or, with no
//! connection info, into an embedded loopback voice server (`voice-sim`), and prints the
//! server's verdict. Same flags, environment variables, inputs and exit status as voice-tokio's
//! `play`: Ogg Opus and WebM Opus are passed through byte for byte; MP3, FLAC, WAV, AAC/M4A and
//! Vorbis are decoded and encoded to Opus (voice-audio's player and pump, fed into the
//! blocking `OpusSender`); a progress bar shows where it is.
//!
//! ```text
//! cargo run --release -p voice-std --example play_blocking
//! cargo run --release -p voice-std --example play_blocking -- --input my.mp3
//! cargo run --release -p voice-std --example play_blocking -- --endpoint HOST:PORT --guild-id G \
//!     --user-id U --session-id S --token T [--ca-file ca.pem] [--input my.ogg]
//! cargo run --release -p voice-std --example play_blocking -- --record rec --stay-ms 2000
//! ```

#[path = "../../../voice-tokio/examples/play/audio.rs"]
mod audio;
#[path = "../../../voice-tokio/examples/play/options.rs"]
mod options;
#[path = "../../../voice-tokio/examples/play/record.rs"]
mod record;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use voice_sim::VoiceServer;
use voice_std::{Connection, SpeakingFlags, VoiceConfig};

fn help() -> String {
    format!(
        "play_blocking: stream an audio file into a Discord voice channel (voice-std example, no async)\n\n\
         USAGE: play_blocking [OPTIONS]\n\n{}\n\n\
         REAL DISCORD through the main gateway is left to voice-tokio's example (it needs a main-gateway\n\
         client); give this one raw connection info from your own bot instead.",
        options::OPTIONS_HELP
    )
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(line) => {
            eprintln!("play_blocking: {line}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let options = options::parse(&help())?;
    let input = options
        .input
        .clone()
        .unwrap_or_else(|| PathBuf::from(options::BUNDLED_SAMPLE));

    let receive = options.record.is_some();
    if let Some(info) = options.connection_info() {
        let mut config = VoiceConfig::default();
        config.extra_root_certificates = options.extra_roots()?;
        let config = if receive { config.receiving() } else { config };
        let connection = Connection::connect(info?, config)
            .map_err(|e| format!("connecting to the voice server failed: {e}"))?;
        return play(connection, &input, &options).map(drop);
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
    let config = if receive { config.receiving() } else { config };
    let connection = Connection::connect(expected.connection_info(), config)
        .map_err(|e| format!("connecting to the embedded voice server failed: {e}"))?;
    let played = play(connection, &input, &options)?;
    // Let the close land, then ask the server what it heard.
    runtime.block_on(server.wait_until(Duration::from_secs(2), options::closed));
    let received = options::received(&server);
    let report = runtime.block_on(server.shutdown());
    options::verdict(&report, played.frames.len())?;
    audio::byte_exact(&played, &received)?;
    match &options.record {
        Some(dir) => options::recording_verdict(&report, dir),
        None => Ok(()),
    }
}

/// Plays the file (paced by the connection's 20 ms playout) with a progress bar, stays
/// `--stay-ms`, then leaves; with `--record`, records the others meanwhile.
fn play(
    connection: Connection,
    input: &Path,
    options: &options::Options,
) -> Result<audio::Played, String> {
    connection.speaking(SpeakingFlags::MICROPHONE);
    let recorder = match &options.record {
        Some(dir) => Some(start_recording(&connection, dir)?),
        None => None,
    };
    let started = Instant::now();
    let played = match play_file(&connection, input) {
        Ok(played) => played,
        Err(e) if connection.is_finished() => {
            return Err(format!(
                "{e}; the connection ended: {}",
                last_error(&connection)
            ))
        }
        Err(e) => return Err(e),
    };
    connection.flush();
    if !options.stay.is_zero() {
        println!("staying {} ms", options.stay.as_millis());
        std::thread::sleep(options.stay);
    }
    if connection.is_finished() {
        return Err(format!(
            "the connection ended before the end: {}",
            last_error(&connection)
        ));
    }
    connection.disconnect();
    println!(
        "sent {} frames in {:.1} s; disconnected with close 1000",
        played.frames.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(recorder) = recorder {
        recorder
            .join()
            .map_err(|_| "the recorder thread panicked".to_owned())??;
    }
    Ok(played)
}

/// `--record`: a thread writing every other user's received frames under `dir` until the
/// connection's receive stream ends.
fn start_recording(
    connection: &Connection,
    dir: &Path,
) -> Result<std::thread::JoinHandle<Result<(), String>>, String> {
    let mut recording = record::Recording::new(dir)?;
    let stream = connection.receiver().subscribe_all();
    std::thread::Builder::new()
        .name("play-record".to_owned())
        .spawn(move || {
            let dropped = || stream.dropped();
            while let Some(received) = stream.recv() {
                recording.on(received)?;
            }
            recording.finish(dropped())
        })
        .map_err(|e| format!("starting the recorder thread failed: {e}"))
}

/// Plays `path` into the connection with a progress bar until the track ends and the
/// connection's queue has played out. The pump thread blocks in `OpusSender::send`; this one
/// waits for its events and draws in between.
fn play_file(connection: &Connection, path: &Path) -> Result<audio::Played, String> {
    let (events_tx, events) = mpsc::channel();
    let (mut playback, pump) = audio::Playback::start(path, connection.opus_send(), move |e| {
        let _ = events_tx.send(e);
    })?;
    let result = loop {
        let event = match events.recv_timeout(audio::DRAW_EVERY) {
            Ok(event) => Some(event),
            Err(RecvTimeoutError::Timeout) => {
                playback.draw(connection.stats().frames_queued);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => None,
        };
        if let Some(end) = playback.on_event(event) {
            break end;
        }
    };
    drop(pump.stop());
    result?;
    // The rest of the queue plays out with the bar moving.
    while connection.stats().frames_queued > 0 && !connection.is_finished() {
        playback.draw(connection.stats().frames_queued);
        std::thread::sleep(Duration::from_millis(100));
    }
    playback.finish()
}

/// The reason the connection ended, from its events.
fn last_error(connection: &Connection) -> String {
    connection
        .events()
        .try_iter()
        .filter_map(|event| match event {
            voice_std::Event::Closed { error } => Some(error.to_string()),
            _ => None,
        })
        .last()
        .unwrap_or_else(|| "no reason given".to_owned())
}
