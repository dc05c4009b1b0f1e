//! `voice-adapter`: the code that both adapters, `voice-tokio` and `voice-std`, would otherwise
//! write. They re-export the settings ([`VoiceConfig`], [`JoinOptions`]), the errors
//! ([`JoinError`], [`SendError`]) and the main-gateway link ([`GatewayLink`]); the rest builds
//! them: the runtime-independent half of `Voice` ([`SharedVoice`]: joins, dispatch routes per
//! guild), a join's outcome ([`PendingJoin`]), the media socket's address ([`udp_bind_address`]),
//! the rustls client configuration ([`tls_client_config`]), and the media side of every
//! connection ([`media`]: the shared worker threads that send the audio of all connections, and
//! the core shared by a connection's driver, its worker and the application, with the drain rule
//! both drivers run on it).
//!
//! No async runtime. The [`media`] workers are the only threads, and the media socket and TLS
//! configuration the only I/O (a new connection's first state reads the clock and std's random
//! hasher keys). The `tokio` feature adds the impls for Tokio's channels, which the orphan rule
//! puts here; `voice-tokio` enables it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod error;
mod gateway_link;
pub mod media;
mod pending_join;
mod send_error;
mod shared_voice;
mod tls;
mod udp_bind;

pub use config::{JoinOptions, VoiceConfig};
pub use error::JoinError;
pub use gateway_link::GatewayLink;
pub use pending_join::PendingJoin;
pub use send_error::SendError;
pub use shared_voice::{Dispatch, DispatchRoute, SharedVoice};
pub use tls::tls_client_config;
pub use udp_bind::udp_bind_address;
