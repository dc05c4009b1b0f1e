//! `voice-adapter`: the code that both adapters, `voice-tokio` and `voice-std`, would otherwise
//! write. They re-export the settings ([`VoiceConfig`], [`JoinOptions`]), the errors
//! ([`JoinError`], [`SendError`]) and the main-gateway link ([`GatewayLink`]); the rest builds
//! them: the runtime-independent half of `Voice` ([`SharedVoice`]: joins, dispatch routes per
//! guild), a join's outcome and its caller going away ([`PendingJoin`], [`JoinCaller`]), the
//! events waiting for the application with room kept for control events ([`EventQueue`],
//! shared by a driver and its reader through an [`EventChannel`]), the media socket's address
//! ([`udp_bind_address`]), the rustls client configuration ([`tls_client_config`]), and the
//! media side of every connection ([`media`]: the shared worker threads that send the audio of
//! all connections, and the core shared by a connection's driver, its worker and the
//! application, with the drain rule both drivers run on it).
//!
//! # What a driver must do (both adapters)
//!
//! - Hold the join as a [`PendingJoin::with_caller`], give the [`JoinCaller`] to the waiting
//!   caller, and check [`PendingJoin::caller_left`] whenever woken: when the caller went away
//!   (a dropped `join_channel` future) call `AnyState::disconnect()` and carry out its outputs
//!   (the op 4 leave, the close) before stopping.
//! - Whenever the driver stops while the core has not ended (the `Connection` dropped, the main
//!   gateway refused op 4), do the same: the core sends the leave exactly once, and not again
//!   if it had ended by itself.
//! - Queue events for the application through an [`EventChannel`] (an [`EventQueue`] and the
//!   reader's wake-up): speaking updates and unknown opcodes never push out `Connected`,
//!   `Reconnecting`, `Resumed`, `Disconnected`, `Closed`; [`EventChannel::end`] it when the
//!   driver stops, after its last event.
//! - When receive is on, take the core's received audio after every input
//!   ([`CoreState::take_received`](media::CoreState::take_received)) and route it through the
//!   connection's [`AudioRouter`] with the core unlocked; end the router when the driver stops.
//!   Received audio never goes through the event queue.
//! - Make each connection's core with [`VoiceConfig::core_with_fresh_seeds`] (RTP and backoff
//!   jitter entropy: the core reads none).
//!
//! No async runtime. The [`media`] workers are the only threads, and the media socket and TLS
//! configuration the only I/O (a new connection's first state reads the clock and std's random
//! hasher keys). The `tokio` feature adds the impls for Tokio's channels and `Notify`, which the
//! orphan rule puts here; `voice-tokio` enables it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod error;
mod event_channel;
mod event_queue;
mod gateway_link;
pub mod media;
mod pending_join;
pub mod receive;
mod send_error;
mod shared_voice;
mod tls;
mod udp_bind;

pub use config::{JoinOptions, VoiceConfig};
pub use error::JoinError;
pub use event_channel::{EventChannel, EventSignal};
pub use event_queue::{is_control_event, EventQueue, Next, CONTROL_EVENTS};
pub use gateway_link::GatewayLink;
pub use pending_join::{JoinCaller, PendingJoin};
pub use receive::{AudioRouter, Inbox, InboxItem, Subscription};
pub use send_error::SendError;
pub use shared_voice::{Dispatch, DispatchRoute, SharedVoice};
pub use tls::tls_client_config;
pub use udp_bind::udp_bind_address;
