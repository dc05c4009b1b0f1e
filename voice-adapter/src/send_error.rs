//! Why a frame was not queued on a connection's playout.

use voice_proto::playout::QueueError;

/// Why `OpusSender::send` (or `try_send`) did not queue a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection has ended; nothing will be sent any more.
    #[error("the voice connection has ended")]
    Closed,
    /// The frame is empty or longer than an Opus packet can be (1..=1275 bytes).
    #[error("an Opus frame must be 1..=1275 bytes, got {len}")]
    BadFrameLength {
        /// The frame length given.
        len: usize,
    },
}

impl From<QueueError> for SendError {
    /// A full queue is not a sender's error (`send` waits, `try_send` says `false`); every
    /// refusal but a bad length means the connection has ended.
    fn from(error: QueueError) -> Self {
        match error {
            QueueError::BadFrameLength { len } => Self::BadFrameLength { len },
            _ => Self::Closed,
        }
    }
}
