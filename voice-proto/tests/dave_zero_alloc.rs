//! The DAVE send path allocates nothing per packet in steady state (counted by a global
//! allocator), and its cost is printed: `cargo test --release -p voice-proto --test
//! dave_zero_alloc -- --nocapture`.
#![cfg(feature = "dave")]

mod support;

use std::time::Instant;

use support::counting_alloc::{allocations, Counting};
use support::dave::*;
use support::*;
use voice_proto::dave::DaveStatus;

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A DAVE call where our engine holds a sending key.
fn keyed() -> Harness {
    let (mut h, _) = keyed_call();
    assert_eq!(h.session().dave_status(), DaveStatus::Active);
    h
}

const FRAMES: u32 = 5000;

#[test]
fn dave_playout_allocates_nothing_per_packet() {
    let frame = [0x55u8; 120];

    // DAVE-encrypted.
    let mut h = keyed();
    h.warm_up_playout(&frame);
    let before = allocations();
    let start = Instant::now();
    h.steady_playout(&frame, FRAMES, |len| {
        // Tag 8, ULEB128 nonce 1-2 bytes here, size byte, FA FA.
        assert!((12 + 120 + 12 + 20..=12 + 120 + 13 + 20).contains(&len));
    });
    let dave_time = start.elapsed() / FRAMES;
    let dave_allocations = allocations() - before;

    // Plain (a Stage channel), for comparison.
    let mut h = Harness::join(test_config());
    h.connect();
    h.warm_up_playout(&frame);
    let start = Instant::now();
    h.steady_playout(&frame, FRAMES, |_| {});
    let plain_time = start.elapsed() / FRAMES;

    eprintln!(
        "queue_opus + poll_transmit, 120-byte frame, AES-256-GCM transport: plain \
         {plain_time:?}/packet, with DAVE {dave_time:?}/packet, {dave_allocations} allocations \
         in {FRAMES} DAVE packets"
    );
    assert_eq!(dave_allocations, 0, "allocations per DAVE packet");
}
