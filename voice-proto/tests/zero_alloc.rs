//! The playout (`queue_opus` + `poll_transmit`) performs no heap allocation in steady state
//! (counted per thread by a global allocator).

mod support;

use support::counting_alloc::{allocations, Counting};
use support::*;

#[global_allocator]
static GLOBAL: Counting = Counting;

fn steady_state_allocations(mode: voice_proto::crypto::EncryptionMode) -> usize {
    let mut h = Harness::join(test_config());
    h.server.modes = vec![mode.name().to_owned()];
    h.server.mode = mode;
    h.connect();
    let frame = [0x55u8; 120];
    h.warm_up_playout(&frame);
    let before = allocations();
    h.steady_playout(&frame, 1000, |len| assert_eq!(len, 12 + 120 + 20));
    allocations() - before
}

#[test]
fn playout_allocates_nothing_per_packet() {
    use voice_proto::crypto::EncryptionMode;
    // One test function: the counter is global and tests run on parallel threads.
    assert_eq!(
        steady_state_allocations(EncryptionMode::AeadAes256GcmRtpSize),
        0
    );
    assert_eq!(
        steady_state_allocations(EncryptionMode::AeadXChaCha20Poly1305RtpSize),
        0
    );
}
