//! A child process's stdout as an input (an `ffmpeg` or `yt-dlp` pipeline), with a clear error
//! when the program is missing or fails.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::error::AudioError;
use crate::source::{Chunk, FrameBuf, Source};

/// The last bytes of stderr kept for the error message.
const STDERR_TAIL: usize = 2048;

/// How the child ended, once its stdout closed.
type ExitSlot = Arc<Mutex<Option<Result<(), AudioError>>>>;

/// The child's stdout; at its end, waits for the child and records how it ended. Dropping it
/// kills the child (a track stopped early does not leave `ffmpeg` running).
pub(crate) struct ChildReader {
    child: Child,
    stdout: ChildStdout,
    program: String,
    stderr: Arc<Mutex<VecDeque<u8>>>,
    exit: ExitSlot,
}

/// Starts `program` with `args`, stdin closed, stdout piped, stderr captured.
pub(crate) fn spawn(
    program: &OsString,
    args: &[OsString],
) -> Result<(ChildReader, ExitSlot), AudioError> {
    let name = program.to_string_lossy().into_owned();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| AudioError::ProgramNotFound {
            program: name.clone(),
            detail: e.to_string(),
        })?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| AudioError::io(name.clone(), io::Error::other("no stdout pipe")))?;
    let stderr = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
    if let Some(mut pipe) = child.stderr.take() {
        let tail = Arc::clone(&stderr);
        // Drains stderr so the child never blocks on it; keeps the tail for the error.
        let _ = std::thread::Builder::new()
            .name("voice-audio-stderr".into())
            .spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
                    tail.extend(&buf[..n]);
                    let excess = tail.len().saturating_sub(STDERR_TAIL);
                    tail.drain(..excess);
                }
            });
    }
    let exit: ExitSlot = Arc::default();
    Ok((
        ChildReader {
            child,
            stdout,
            program: name,
            stderr,
            exit: Arc::clone(&exit),
        },
        exit,
    ))
}

impl ChildReader {
    fn record_exit(&mut self) {
        let result = match self.child.wait() {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => {
                // Give the stderr thread a moment to take the last lines.
                std::thread::sleep(Duration::from_millis(20));
                let tail = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
                let text = String::from_utf8_lossy(&tail.iter().copied().collect::<Vec<u8>>())
                    .into_owned();
                let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
                let last = lines[lines.len().saturating_sub(3)..].join(" | ");
                Err(AudioError::ProcessFailed {
                    program: self.program.clone(),
                    status: status.to_string(),
                    stderr: last,
                })
            }
            Err(e) => Err(AudioError::io(self.program.clone(), e)),
        };
        *self.exit.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
    }
}

impl Read for ChildReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let recorded = self
                .exit
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some();
            if !recorded {
                self.record_exit();
            }
        }
        Ok(n)
    }
}

impl Drop for ChildReader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How the child ended, if it has.
pub(crate) fn exit_error(exit: &ExitSlot) -> Option<AudioError> {
    match &*exit.lock().unwrap_or_else(PoisonError::into_inner) {
        Some(Err(e)) => Some(e.clone()),
        _ => None,
    }
}

/// A source read from a child's stdout: its end or error becomes the child's failure when the
/// child failed.
pub(crate) struct ProcessSource {
    pub(crate) inner: Box<dyn Source>,
    pub(crate) exit: ExitSlot,
    pub(crate) program: String,
}

impl Source for ProcessSource {
    fn read(&mut self, buf: &mut FrameBuf) -> Result<Option<Chunk>, AudioError> {
        match self.inner.read(buf) {
            Ok(Some(chunk)) => Ok(Some(chunk)),
            Ok(None) => match exit_error(&self.exit) {
                Some(e) => Err(e),
                None => Ok(None),
            },
            Err(e) => Err(exit_error(&self.exit).unwrap_or(e)),
        }
    }

    fn duration(&self) -> Option<Duration> {
        self.inner.duration()
    }

    fn describe(&self) -> String {
        format!("{} (from {})", self.inner.describe(), self.program)
    }
}
