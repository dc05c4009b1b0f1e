//! The playout (`queue_opus` + `poll_transmit`) performs no heap allocation in steady state
//! (counted by a global allocator).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use support::*;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn steady_state_allocations(mode: voice_proto::crypto::EncryptionMode) -> usize {
    let mut h = Harness::join(test_config());
    h.server.modes = vec![mode.name().to_owned()];
    h.server.mode = mode;
    h.connect();
    let frame = [0x55u8; 120];
    h.warm_up_playout(&frame);
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    h.steady_playout(&frame, 1000, |len| assert_eq!(len, 12 + 120 + 20));
    ALLOCATIONS.load(Ordering::SeqCst) - before
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
