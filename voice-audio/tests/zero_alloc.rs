//! Passthrough makes no heap allocation per frame: a counting global allocator counts this
//! thread's allocations while a player passes an Ogg Opus file and a WebM file through.
//! (One test in this binary, counted per thread, so the harness's threads do not count.)

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;
use voice_audio::{Input, Player};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn passthrough_frames_allocate_nothing() {
    let packets = tone_packets(12.0);
    for (name, bytes) in [("Ogg", ogg_opus(&packets)), ("WebM", webm_opus(&packets))] {
        let mut player = Player::default();
        player.enqueue(Input::bytes(bytes));
        // Warm-up: open the input, grow the buffers to the stream's largest packet.
        for _ in 0..100 {
            assert!(player.next_frame().is_some());
        }
        while player.poll_event().is_some() {}
        let before = allocations();
        let mut frames = 0;
        for _ in 0..400 {
            if player.next_frame().is_some() {
                frames += 1;
            }
            // Position events each second, taken as a pump takes them.
            while player.poll_event().is_some() {}
        }
        let during = allocations() - before;
        assert_eq!(frames, 400);
        assert_eq!(
            during, 0,
            "{name}: {during} allocations in 400 passthrough frames"
        );
    }
}
