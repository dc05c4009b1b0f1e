//! The crate's error type.

/// Why the server could not start or a helper failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// Binding a socket, writing a file, or another I/O operation failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Generating the certificates or the TLS configuration failed.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// An Ogg Opus file could not be read or written.
    #[error("Ogg Opus: {0}")]
    Ogg(String),
    /// A scenario description could not be parsed.
    #[error("bad scenario `{input}`: {reason}")]
    Scenario {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A scripted test client failed.
    #[error("test client: {0}")]
    Client(String),
    /// The server's settings contradict each other.
    #[error("bad server configuration: {0}")]
    Config(String),
    /// A counting-mode call on a server that does not run counting mode.
    #[error("the server is not in counting mode (ServerConfig::counting is None)")]
    NotCounting,
    /// The load server child process failed or answered something unexpected.
    #[error("load server process: {0}")]
    LoadServer(String),
}
