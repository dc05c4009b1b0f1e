//! `--record DIR`: every other user's received audio into `DIR/<user_id>.ogg`, one Ogg Opus
//! packet per received frame in playout order (silence frames included, lost frames left out).

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use tokio::task::JoinHandle;
use voice_audio::OggOpusWriter;
use voice_tokio::{Connection, Item};

/// One user's recording.
pub struct Recorded {
    pub user_id: u64,
    pub path: PathBuf,
    pub frames: u64,
}

/// A task writing what the connection's receiver hands out.
pub struct Recorder {
    task: JoinHandle<Result<Vec<Recorded>, String>>,
}

impl Recorder {
    /// Subscribes to everyone's audio and writes it under `dir` until the connection ends.
    pub fn start(connection: &Connection, dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("creating the --record directory {}: {e}", dir.display()))?;
        let mut stream = connection.receiver().subscribe_all();
        let dir = dir.to_path_buf();
        let task = tokio::spawn(async move {
            let mut files: BTreeMap<u64, (PathBuf, OggOpusWriter<BufWriter<File>>)> =
                BTreeMap::new();
            let mut unattributed = 0u64;
            while let Some(received) = stream.recv().await {
                let Item::Frame(frame) = received.item else {
                    continue;
                };
                let Some(user) = received.user_id else {
                    unattributed += 1;
                    continue;
                };
                let (path, writer) = match files.entry(user.0) {
                    Entry::Occupied(entry) => entry.into_mut(),
                    Entry::Vacant(entry) => {
                        let path = dir.join(format!("{}.ogg", user.0));
                        let file = File::create(&path)
                            .map_err(|e| format!("creating {}: {e}", path.display()))?;
                        // The serial names the logical stream: the user id's low bits will do.
                        let writer = OggOpusWriter::new(BufWriter::new(file), 2, user.0 as u32)
                            .map_err(|e| format!("writing {}: {e}", path.display()))?;
                        entry.insert((path, writer))
                    }
                };
                writer
                    .write_packet(&frame.opus, 960)
                    .map_err(|e| format!("writing {}: {e}", path.display()))?;
            }
            if unattributed > 0 {
                println!(
                    "record: {unattributed} frames from senders op 5 never named, not recorded"
                );
            }
            if stream.dropped() > 0 {
                println!(
                    "record: {} frames dropped (the recorder fell behind)",
                    stream.dropped()
                );
            }
            let mut recorded = Vec::new();
            for (user_id, (path, writer)) in files {
                let frames = writer.packets();
                writer
                    .finish()
                    .map_err(|e| format!("finishing {}: {e}", path.display()))?;
                recorded.push(Recorded {
                    user_id,
                    path,
                    frames,
                });
            }
            Ok(recorded)
        });
        Ok(Self { task })
    }

    /// Waits for the end of the connection's receive stream and closes the files.
    pub async fn finish(self) -> Result<Vec<Recorded>, String> {
        let recorded = self
            .task
            .await
            .map_err(|e| format!("the recorder task failed: {e}"))??;
        if recorded.is_empty() {
            println!("record: nobody else spoke; no file written");
        }
        for r in &recorded {
            println!(
                "record: {} frames of user {} in {}",
                r.frames,
                r.user_id,
                r.path.display()
            );
        }
        Ok(recorded)
    }
}
