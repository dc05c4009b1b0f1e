//! cargo-fuzz targets over `voice-proto` (see `README.md` in this directory).
//!
//! The target bodies live in [`targets`] and [`jitter_buffer`], files that
//! `voice-proto/tests/fuzz_corpus_replay.rs` also includes to replay the corpus on the stable
//! toolchain.
#![warn(missing_docs)]

pub mod jitter_buffer;
pub mod targets;
