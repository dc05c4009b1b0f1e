//! `--record DIR`: every other user's received audio into `DIR/<user_id>.ogg`, one Ogg Opus
//! packet per received frame in playout order (silence frames included, lost frames left out).
//! Runtime-independent: voice-tokio's `play` feeds it from a task, voice-std's `play_blocking`
//! from a thread (which includes this file by path).

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use voice_audio::OggOpusWriter;
use voice_proto::receive::{Item, Received};

/// The files being written, one per user.
pub struct Recording {
    dir: PathBuf,
    files: BTreeMap<u64, (PathBuf, OggOpusWriter<BufWriter<File>>)>,
    unattributed: u64,
}

impl Recording {
    /// Records under `dir` (made if missing).
    pub fn new(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("creating the --record directory {}: {e}", dir.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            files: BTreeMap::new(),
            unattributed: 0,
        })
    }

    /// Writes a received frame to its user's file (markers and losses are left out).
    pub fn on(&mut self, received: Received) -> Result<(), String> {
        let Item::Frame(frame) = received.item else {
            return Ok(());
        };
        let Some(user) = received.user_id else {
            self.unattributed += 1;
            return Ok(());
        };
        let (path, writer) = match self.files.entry(user.0) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                let path = self.dir.join(format!("{}.ogg", user.0));
                let file =
                    File::create(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
                // The serial names the logical stream: the user id's low bits will do.
                let writer = OggOpusWriter::new(BufWriter::new(file), 2, user.0 as u32)
                    .map_err(|e| format!("writing {}: {e}", path.display()))?;
                entry.insert((path, writer))
            }
        };
        writer
            .write_packet(&frame.opus, 960)
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }

    /// Closes the files (the receive stream has ended; `dropped` frames were lost to a full
    /// queue) and says what was recorded.
    pub fn finish(self, dropped: u64) -> Result<(), String> {
        if self.unattributed > 0 {
            println!(
                "record: {} frames from senders op 5 never named, not recorded",
                self.unattributed
            );
        }
        if dropped > 0 {
            println!("record: {dropped} frames dropped (the recorder fell behind)");
        }
        if self.files.is_empty() {
            println!("record: nobody else spoke; no file written");
        }
        for (user_id, (path, writer)) in self.files {
            let frames = writer.packets();
            writer
                .finish()
                .map_err(|e| format!("finishing {}: {e}", path.display()))?;
            println!(
                "record: {frames} frames of user {user_id} in {}",
                path.display()
            );
        }
        Ok(())
    }
}
