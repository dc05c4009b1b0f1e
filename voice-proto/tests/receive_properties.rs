//! Property tests of the playout (jitter) buffer.
//!
//! - The `jitter_buffer` fuzz target's checks (`fuzz/src/jitter_buffer.rs`: the spurt grammar,
//!   every accepted packet delivered once and in order, nothing refused ever delivered, counters,
//!   deadlines, bounds) on proptest-made scripts that are mostly streams with reordering, loss,
//!   duplicates, silence, polls and ends, so that they meet the rules far more often than
//!   random bytes do.
//! - Any arrival order within the depth loses nothing: a stream whose packets each arrive up to
//!   the depth late comes out whole and in order, wherever its sequence starts (the 16-bit wrap
//!   included), however the buffer is polled.

#[path = "../../fuzz/src/jitter_buffer.rs"]
#[allow(dead_code)]
mod jitter_buffer;

use std::time::{Duration, Instant};

use bytes::Bytes;
use jitter_buffer::{BufferScript, BufferStep};
use proptest::prelude::*;
use voice_proto::receive::{Item, JitterBuffer, ReceiveConfig, SpurtEnd};

fn step() -> impl Strategy<Value = BufferStep> {
    prop_oneof![
        8 => (0u8..=40).prop_map(|after_ms| BufferStep::InOrder { after_ms }),
        2 => ((0u8..=40), -8i16..=8).prop_map(|(after_ms, jump)| BufferStep::Jump { after_ms, jump }),
        1 => ((0u8..=40), any::<i16>()).prop_map(|(after_ms, jump)| BufferStep::Jump { after_ms, jump }),
        2 => (0u8..=40).prop_map(|after_ms| BufferStep::Silence { after_ms }),
        2 => (0u16..=1000).prop_map(|after_ms| BufferStep::Poll { after_ms }),
        2 => Just(BufferStep::PollAtDeadline),
        1 => Just(BufferStep::End),
        2 => ((0u8..=40), any::<u8>()).prop_map(|(after_ms, index)| BufferStep::Again { after_ms, index }),
    ]
}

fn script() -> impl Strategy<Value = BufferScript> {
    (
        any::<u8>(),
        any::<u8>(),
        0u8..=100,
        prop_oneof![Just(65_500u16), Just(0u16), any::<u16>()],
        proptest::collection::vec(step(), 0..300),
    )
        .prop_map(
            |(depth, max_depth, timeout, first_sequence, steps)| BufferScript {
                depth,
                max_depth,
                timeout,
                first_sequence,
                steps,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_buffer_keeps_its_rules_whatever_arrives(script in script()) {
        let read = BufferScript::read(&script.to_bytes());
        prop_assert_eq!(&read, &script);
        jitter_buffer::run_buffer_script(&script);
    }

    #[test]
    fn any_arrival_order_within_the_depth_loses_nothing(
        first in prop_oneof![Just(65_520u16), any::<u16>()],
        depth in 1usize..=5,
        delays in proptest::collection::vec(0u64..=1000, 2..120),
        polls in proptest::collection::vec(0u64..=100, 0..40),
    ) {
        let config = ReceiveConfig { depth, max_depth: depth, ..ReceiveConfig::default() };
        let mut buffer = JitterBuffer::new(&config);
        let start = Instant::now();
        let max_delay = 20 * depth as u64;
        // Frame i is sent at 20 i ms and arrives up to the depth later (strictly less).
        let mut arrivals: Vec<(u64, u16)> = delays
            .iter()
            .enumerate()
            .map(|(i, delay)| (20 * i as u64 + delay % max_delay, first.wrapping_add(i as u16)))
            .collect();
        let mut events: Vec<(u64, Option<u16>)> = arrivals.drain(..).map(|(at, s)| (at, Some(s))).collect();
        events.extend(polls.iter().map(|p| (p * 25, None)));
        events.sort_by_key(|(at, sequence)| (*at, sequence.is_none()));
        let mut out = Vec::new();
        for (at, sequence) in events {
            let now = start + Duration::from_millis(at);
            match sequence {
                Some(sequence) => {
                    let opus = Bytes::from(vec![0xFC, (sequence >> 8) as u8, sequence as u8]);
                    buffer.insert(now, sequence, u32::from(sequence) * 960, opus, &mut out);
                }
                None => buffer.poll(now, &mut out),
            }
        }
        buffer.end(SpurtEnd::Speaking, &mut out);
        let frames: Vec<u16> = out
            .iter()
            .filter_map(|item| match item {
                Item::Frame(frame) => Some(frame.sequence),
                _ => None,
            })
            .collect();
        let expected: Vec<u16> = (0..delays.len()).map(|i| first.wrapping_add(i as u16)).collect();
        prop_assert_eq!(frames, expected);
        let stats = buffer.stats();
        prop_assert_eq!((stats.lost, stats.late, stats.duplicates, stats.spurts), (0, 0, 0, 1));
    }
}
