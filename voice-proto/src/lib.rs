//! `voice-proto`: the sans-IO core of a Discord voice connection.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod close;
pub mod crypto;
pub mod discovery;
pub mod error;
pub mod gateway;
pub mod id;
pub mod payload;
pub mod rtp;
pub mod secret;
