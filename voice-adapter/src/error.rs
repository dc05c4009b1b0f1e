//! Why joining or connecting failed.

/// A join or connection attempt failed. The message says which step failed and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The protocol engine ended the connection (timeout, close code, protocol violation).
    #[error(transparent)]
    Protocol(#[from] voice_proto::Error),
    /// The application's main-gateway link refused the op-4 payload.
    #[error("could not send the voice state update on the main gateway: {0}")]
    Gateway(String),
    /// The TLS configuration could not be built (bad extra root certificate).
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// A thread could not be started. Only `voice-std` starts threads, so only it reports this.
    #[error("could not start a thread: {0}")]
    Thread(String),
    /// The connection's driver (a task in `voice-tokio`, a thread in `voice-std`) stopped before
    /// the session was established.
    #[error("the connection driver ended before the voice session was established")]
    DriverEnded,
    /// This guild already has a join in progress or a connection on this `Voice`.
    #[error("guild {0} already has a voice connection on this Voice")]
    AlreadyConnected(voice_proto::id::GuildId),
}
