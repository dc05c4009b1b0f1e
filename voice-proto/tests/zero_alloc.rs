//! `send_opus` performs no heap allocation in steady state (counted by a global allocator).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use support::*;
use voice_proto::rtp::MAX_PACKET_LEN;

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
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn steady_state_allocations(mode: voice_proto::crypto::EncryptionMode) -> usize {
    let mut h = Harness::join(test_config());
    h.server.modes = vec![mode.name().to_owned()];
    h.server.mode = mode;
    h.connect();
    let mut buf = [0u8; MAX_PACKET_LEN];
    let frame = [0x55u8; 120];
    let now = h.now;
    // The first frame announces Speaking (allocates the op-5 frame); the rest is steady state.
    h.session().send_opus(now, &frame, &mut buf).unwrap();
    h.collect();
    let session = h.session();
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..1000 {
        let packet = session.send_opus(now, &frame, &mut buf).unwrap();
        assert_eq!(packet.len(), 12 + 120 + 20);
    }
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

#[test]
fn send_opus_allocates_nothing_per_packet() {
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
