//! The crate's one error type.

use std::sync::Arc;

/// Why an input could not be opened, read, decoded or seeked. A track that meets one ends with
/// [`PlayerEvent::Errored`](crate::PlayerEvent::Errored); nothing panics on bad input.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    /// Reading the input failed (the file is gone, a pipe broke, ...).
    #[error("reading {what}: {source}")]
    Io {
        /// What was being read.
        what: String,
        /// The I/O error (shared: events are cloneable).
        source: Arc<std::io::Error>,
    },
    /// The content matched no format this crate reads.
    #[error("unrecognised input format ({detail})")]
    UnknownFormat {
        /// What the first bytes looked like.
        detail: String,
    },
    /// A format this crate recognises, in a variant it does not play (no audio track,
    /// multichannel Opus, an unsupported codec inside a known container, ...).
    #[error("unsupported {format} input: {detail}")]
    Unsupported {
        /// The container or codec.
        format: &'static str,
        /// What is not supported.
        detail: String,
    },
    /// The data is malformed: a bad page, block, packet or header.
    #[error("corrupt {format} input: {detail}")]
    Corrupt {
        /// The container or codec.
        format: &'static str,
        /// What was wrong, and where.
        detail: String,
    },
    /// The input ended in the middle of a page, block or packet.
    #[error("truncated {format} input: {detail}")]
    Truncated {
        /// The container or codec.
        format: &'static str,
        /// Where it ended.
        detail: String,
    },
    /// The child process could not be started: the program is not installed or not on `PATH`.
    #[error("cannot start {program:?}: {detail} (is it installed and on PATH?)")]
    ProgramNotFound {
        /// The program as given.
        program: String,
        /// The operating system's reason.
        detail: String,
    },
    /// The child process ended with a failure status (or was killed by a signal).
    #[error("{program:?} failed ({status}){}", stderr_suffix(.stderr))]
    ProcessFailed {
        /// The program as given.
        program: String,
        /// Its exit status, as the operating system reports it.
        status: String,
        /// The last lines it wrote to stderr.
        stderr: String,
    },
    /// The Opus encoder or decoder refused the data.
    #[error("Opus codec: {0}")]
    Codec(String),
    /// This input cannot seek (a pipe, a child process, raw PCM from a reader).
    #[error("this input cannot seek")]
    NotSeekable,
    /// The input was consumed already and cannot be opened again (a loop or a second play of a
    /// one-shot reader).
    #[error("this input can be opened only once (a reader or a one-shot source)")]
    NotReopenable,
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", stderr.trim())
    }
}

impl AudioError {
    /// An I/O error while reading `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        AudioError::Io {
            what: what.into(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn corrupt(format: &'static str, detail: impl Into<String>) -> Self {
        AudioError::Corrupt {
            format,
            detail: detail.into(),
        }
    }

    pub(crate) fn truncated(format: &'static str, detail: impl Into<String>) -> Self {
        AudioError::Truncated {
            format,
            detail: detail.into(),
        }
    }

    pub(crate) fn unsupported(format: &'static str, detail: impl Into<String>) -> Self {
        AudioError::Unsupported {
            format,
            detail: detail.into(),
        }
    }
}
