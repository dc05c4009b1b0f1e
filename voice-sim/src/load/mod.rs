//! Load benchmarks: counting mode, the load server as a child process, process figures, and a
//! reference load generator.
//!
//! # Counting mode
//!
//! [`ServerConfig::counting`](crate::ServerConfig::counting) keeps the whole gateway (the
//! strict v8 handshake, heartbeats, Speaking, Resume, every violation it reports) and replaces
//! only the media path with a cheap counter on a thread of its own: per datagram it
//! demultiplexes by SSRC through a flat table, checks the RTP header (version 2, payload type
//! 120), that the SSRC belongs to a described session and that the packet comes from the address
//! that session's IP discovery came from, accounts the sequence number (16-bit wrap; missing,
//! duplicates, reorders) and the timestamp step (960 per sequence step), records the
//! inter-arrival time from the **kernel receive timestamp** (`SO_TIMESTAMPNS`, read in batches
//! with `recvmmsg`), and transport-decrypts one packet in
//! [`CountingConfig::decrypt_every`] (64 by default) to prove the payloads are valid. IP
//! discovery is answered as usual, keepalives and RTCP are ignored. DAVE is off (Session
//! Description says `dave_protocol_version: 0`); nothing is relayed or kept. The socket asks for
//! a 32 MiB receive buffer (`SO_RCVBUFFORCE` as root, else `SO_RCVBUF` up to `rmem_max`), and
//! the kernel's drop count for it is part of the report.
//!
//! [`VoiceServer::open_window`](crate::VoiceServer::open_window) restarts every count;
//! [`VoiceServer::close_window`](crate::VoiceServer::close_window) returns a [`LoadReport`]:
//!
//! | figure | meaning |
//! |---|---|
//! | `totals.packets` | RTP packets counted in the window (valid header, known SSRC, right source) |
//! | `rate` | per-stream packets per second over the window: median, min, max over streams |
//! | `silent_streams` | described sessions that sent nothing in the window |
//! | `jitter` | `\|inter-arrival − 20 ms\|` over every counted packet after a stream's first, from kernel timestamps: p50, p99 (0.1 ms buckets, upper edge), max (exact) |
//! | `totals.pauses`, `totals.max_gap` | inter-arrivals above 200 ms within one stream; the longest inter-arrival |
//! | `totals.missing` | sequence numbers that never arrived (a number is missing once it is 64 numbers behind, or still absent inside that range when the window closes) |
//! | `totals.duplicates`, `totals.reorders` | numbers received twice; packets after a higher number (not missing) |
//! | `totals.timestamp_steps` | in-order packets whose timestamp did not advance 960 per sequence step |
//! | `decrypt_checked`, `decrypt_failed` | sampled packets transport-decrypted, and those that failed |
//! | `rejected` | datagrams not counted: bad header, unknown SSRC, foreign source, other |
//! | `kernel_drops` | datagrams the kernel dropped because the server's receive buffer was full |
//! | `server_cpu`, `counting_thread_cpu` | CPU time of the server process, and of its counting thread alone, over the window |
//! | `gateway_violations` | protocol violations the gateway recorded (handshake, heartbeats, Speaking) |
//! | `per_stream` | each stream's packets, missing, duplicates, reorders, timestamp steps, pauses, longest gap |
//!
//! # A load benchmark
//!
//! The client's CPU must be measured without the server in its process, so an example re-execs
//! itself as the server: [`serve_if_child`] first thing in `main`, then
//! [`LoadServerProcess::spawn`] gives the clients' credentials and the CA, and
//! `open_window`/`close_window` measure. [`ProcessSample`] gives the client's own CPU, RSS and
//! threads, [`raise_nofile_limit`] the sockets it needs. [`ReferenceLoad`] is a deliberately
//! simple raw sender (no adapter) that proves the counting and measures the server's own cost
//! (`voice-sim load --streams N --seconds S`).
//!
//! ```no_run
//! use std::time::Duration;
//! use voice_sim::load::{self, LoadServerConfig, LoadServerProcess, ProcessSample};
//!
//! fn main() -> Result<(), voice_sim::SimError> {
//!     load::serve_if_child(); // returns unless this process is the load server child
//!     load::raise_nofile_limit();
//!     let mut server = LoadServerProcess::spawn(100, &LoadServerConfig::default())?;
//!     let ca_pem = server.ready().ca_pem.clone();
//!     for client in &server.ready().clients {
//!         let _info = client.connection_info(); // connect it (trust `ca_pem`), play in a loop
//!     }
//!     server.wait_until_sending(100, Duration::from_secs(60))?;
//!     std::thread::sleep(Duration::from_secs(2)); // warm-up
//!     let before = ProcessSample::now();
//!     server.open_window()?;
//!     std::thread::sleep(Duration::from_secs(10));
//!     let report = server.close_window()?;
//!     let after = ProcessSample::now();
//!     let client_cpu = after.since(&before).cpu_per(report.totals.packets);
//!     println!("{report}\nclient CPU per packet: {client_cpu:?}");
//!     Ok(())
//! }
//! ```

mod bench;
mod child;
mod config;
mod counter;
pub(crate) mod counting;
mod generator;
mod histogram;
mod process;
mod report;
mod sequence;
mod socket;

pub use bench::{bench_main, sample_frames, Bench, BenchArgs, BenchFigures};
pub use child::{
    serve_if_child, LoadServerConfig, LoadServerProcess, LoadServerReady, CHILD_MARKER,
};
pub use config::CountingConfig;
pub use generator::{Fault, ReferenceLoad, ReferenceStream, SentSummary};
pub use process::{
    cpu_time, raise_nofile_limit, rss_bytes, thread_count, ProcessSample, ProcessUsage,
};
pub use report::{LoadReport, LoadStatus, RateSummary, Rejected, StreamFigures, StreamWindow};
