//! Plays any input through a `Player` and writes the frames it would send as an Ogg Opus file,
//! to check them with another decoder (`ffmpeg -i out.opus ...`, `opusinfo`).
//!
//! ```text
//! cargo run --release -p voice-audio --example to_ogg -- INPUT OUT.opus [VOLUME]
//! ```

use voice_audio::{Input, Player, PlayerEvent};

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        return Err("usage: to_ogg INPUT OUT.opus [VOLUME]".into());
    };
    let volume: f32 = args
        .next()
        .map_or(Ok(1.0), |v| v.parse())
        .map_err(|e| format!("{e}"))?;
    let mut player = Player::default();
    let track = player.enqueue(Input::file(&input));
    track.set_volume(volume);
    let mut frames = Vec::new();
    loop {
        let frame = player.next_frame().map(<[u8]>::to_vec);
        while let Some(event) = player.poll_event() {
            match event {
                PlayerEvent::Started { description, .. } => eprintln!("{input}: {description}"),
                PlayerEvent::Errored { error, .. } => return Err(error.to_string()),
                _ => {}
            }
        }
        match frame {
            Some(f) => frames.push(f),
            None => break,
        }
    }
    let bytes = voice_audio::ogg_write::ogg_opus(&frames, &[], 50, 312);
    std::fs::write(&output, bytes).map_err(|e| format!("writing {output}: {e}"))?;
    eprintln!(
        "{} frames ({:.2} s) written to {output}",
        frames.len(),
        frames.len() as f64 * 0.02
    );
    Ok(())
}
