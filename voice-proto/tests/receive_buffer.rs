//! The playout (jitter) buffer on a fake clock, rule by rule (`voice_proto::receive`): order,
//! the 16-bit wrap, duplicates, late packets, the wait for a missing frame and the loss marker,
//! adaptive depth, a new sender's hold, talk spurts (silence, timeout, ends from outside), the
//! buffer's bounds and resyncs; then the bounded queue and its overflow policy.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use support::{compact, strings};
use voice_proto::receive::{
    Arrival, Frame, Item, JitterBuffer, ReceiveConfig, ReceiveQueue, ReceiveQueues, Received,
    SpurtEnd, SHRINK_AFTER_FRAMES,
};
use voice_proto::rtp::SILENCE_FRAME;

const MS: Duration = Duration::from_millis(1);

/// A buffer on a fake clock that starts at 0 ms, with a compact log of what it released.
struct Bench {
    buffer: JitterBuffer,
    start: Instant,
    out: Vec<Item>,
}

impl Bench {
    fn new(config: ReceiveConfig) -> Self {
        Self {
            buffer: JitterBuffer::new(&config),
            start: Instant::now(),
            out: Vec::new(),
        }
    }

    fn default_config() -> Self {
        Self::new(ReceiveConfig::default())
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + MS * u32::try_from(ms).unwrap()
    }

    /// An audio frame whose bytes name its sequence.
    fn audio(&mut self, ms: u64, sequence: u16) -> Arrival {
        let opus = Bytes::from(vec![0xFC, (sequence >> 8) as u8, sequence as u8]);
        self.packet(ms, sequence, opus)
    }

    fn silence(&mut self, ms: u64, sequence: u16) -> Arrival {
        self.packet(ms, sequence, Bytes::from_static(&SILENCE_FRAME))
    }

    fn packet(&mut self, ms: u64, sequence: u16, opus: Bytes) -> Arrival {
        let now = self.at(ms);
        let timestamp = u32::from(sequence).wrapping_mul(960);
        self.buffer
            .insert(now, sequence, timestamp, opus, &mut self.out)
    }

    fn poll(&mut self, ms: u64) {
        let now = self.at(ms);
        self.buffer.poll(now, &mut self.out);
    }

    /// What came out since the last call, compactly (`support::compact`).
    fn take(&mut self) -> Vec<String> {
        self.out.drain(..).map(compact).collect()
    }

    /// The next deadline in ms after the start.
    fn deadline_ms(&self) -> Option<u128> {
        self.buffer
            .next_deadline()
            .map(|at| (at - self.start).as_millis())
    }

    /// Feeds `sequences` one per 20 ms from `from_ms` on.
    fn stream(&mut self, from_ms: u64, sequences: impl IntoIterator<Item = u16>) {
        for (i, sequence) in sequences.into_iter().enumerate() {
            self.audio(from_ms + 20 * i as u64, sequence);
        }
    }
}

#[test]
fn a_new_sender_is_held_for_the_depth_then_each_frame_leaves_on_arrival() {
    let mut b = Bench::default_config();
    assert_eq!(b.audio(0, 100), Arrival::Accepted);
    assert!(b.take().is_empty(), "held at the start");
    assert_eq!(b.deadline_ms(), Some(60), "the default depth: 3 frames");
    b.audio(20, 101);
    b.audio(40, 102);
    b.poll(59);
    assert!(b.take().is_empty());
    b.poll(60);
    assert_eq!(b.take(), strings(&["S", "F100", "F101", "F102"]));
    // From then on, no delay at all.
    b.audio(60, 103);
    assert_eq!(b.take(), strings(&["F103"]));
    assert_eq!(b.buffer.playout_point(), Some(104));
}

#[test]
fn frames_leave_in_sequence_order_whatever_the_arrival_order() {
    let mut b = Bench::default_config();
    b.stream(0, [10, 11]);
    b.poll(60);
    b.take();
    // 13 overtakes 12, 15 overtakes 14.
    b.audio(60, 13);
    assert!(b.take().is_empty(), "13 waits for 12");
    b.audio(70, 12);
    assert_eq!(b.take(), strings(&["F12", "F13"]));
    b.audio(80, 15);
    b.audio(85, 14);
    assert_eq!(b.take(), strings(&["F14", "F15"]));
    assert_eq!(b.buffer.stats().lost, 0);
}

#[test]
fn a_frame_overtaken_at_a_new_sender_s_start_finds_its_place() {
    let mut b = Bench::default_config();
    b.audio(0, 501);
    b.audio(5, 500);
    b.audio(20, 502);
    b.poll(60);
    assert_eq!(b.take(), strings(&["S", "F500", "F501", "F502"]));
}

#[test]
fn the_sequence_wraps_at_16_bits() {
    let mut b = Bench::default_config();
    b.stream(0, [65_533, 65_534]);
    b.poll(60);
    b.audio(60, 0);
    b.audio(65, 65_535);
    b.audio(80, 1);
    assert_eq!(
        b.take(),
        strings(&["S", "F65533", "F65534", "F65535", "F0", "F1"])
    );
    // 65535 is now behind the playout point, not 65 535 frames ahead.
    assert_eq!(b.audio(90, 65_535), Arrival::Duplicate);
}

#[test]
fn a_duplicate_is_dropped_and_counted_whether_buffered_or_delivered() {
    let mut b = Bench::default_config();
    b.audio(0, 7);
    assert_eq!(b.audio(1, 7), Arrival::Duplicate, "buffered");
    b.poll(60);
    assert_eq!(b.take(), strings(&["S", "F7"]));
    assert_eq!(b.audio(61, 7), Arrival::Duplicate, "delivered");
    b.audio(62, 9);
    assert_eq!(b.audio(63, 9), Arrival::Duplicate, "waiting behind a gap");
    assert_eq!(b.buffer.stats().duplicates, 3);
    assert!(b.take().is_empty(), "nothing twice");
}

#[test]
fn a_missing_frame_is_waited_for_the_depth_then_reported_as_one_loss() {
    let mut b = Bench::default_config();
    b.stream(0, [1, 2]);
    b.poll(60);
    b.take();
    // 3 and 4 are lost; 5 arrives at 80 ms, 6 at 100 ms.
    b.audio(80, 5);
    assert_eq!(b.deadline_ms(), Some(140), "5 arrived at 80 ms + 60 ms");
    b.audio(100, 6);
    b.poll(139);
    assert!(b.take().is_empty(), "still waiting");
    b.poll(140);
    assert_eq!(b.take(), strings(&["L3x2", "F5", "F6"]));
    assert_eq!(b.buffer.stats().lost, 2);
    // The marker carries the timestamp the first missing frame would have had.
    let mut b = Bench::default_config();
    b.stream(0, [1]);
    b.poll(60);
    b.audio(60, 3);
    b.poll(120);
    assert!(b.out.contains(&Item::Lost {
        sequence: 2,
        timestamp: 1920,
        count: 1
    }));
}

#[test]
fn a_late_packet_within_the_depth_takes_its_place() {
    let mut b = Bench::default_config();
    b.stream(0, [1]);
    b.poll(60);
    b.take();
    b.audio(60, 3);
    b.audio(119, 2);
    assert_eq!(b.take(), strings(&["F2", "F3"]));
    assert_eq!(b.buffer.stats().lost, 0);
}

#[test]
fn the_depth_is_configurable_and_zero_gives_a_gap_up_at_the_next_frame() {
    let mut b = Bench::new(ReceiveConfig {
        depth: 5,
        ..ReceiveConfig::default()
    });
    b.audio(0, 1);
    assert_eq!(b.deadline_ms(), Some(100));
    b.poll(100);
    b.audio(100, 3);
    assert_eq!(b.deadline_ms(), Some(200));
    let mut b = Bench::new(ReceiveConfig {
        depth: 0,
        max_depth: 0,
        ..ReceiveConfig::default()
    });
    b.audio(0, 1);
    b.audio(20, 3);
    assert_eq!(b.take(), strings(&["S", "F1", "L2x1", "F3"]));
}

#[test]
fn a_packet_older_than_the_playout_point_is_dropped_as_late() {
    let mut b = Bench::default_config();
    b.stream(0, [1]);
    b.poll(60);
    b.audio(60, 3);
    b.poll(120);
    assert_eq!(b.take(), strings(&["S", "F1", "L2x1", "F3"]));
    assert_eq!(b.audio(130, 2), Arrival::Late);
    assert!(b.take().is_empty());
    assert_eq!(b.buffer.stats().late, 1);
}

#[test]
fn late_packets_make_the_depth_longer_up_to_its_maximum_and_calm_shrinks_it() {
    let mut b = Bench::new(ReceiveConfig {
        depth: 2,
        max_depth: 4,
        ..ReceiveConfig::default()
    });
    b.audio(0, 0);
    b.poll(40);
    let mut sequence = 1;
    let mut ms = 40;
    // Three rounds of: a frame skipped, given up, then arriving late.
    for round in 0..3 {
        b.audio(ms, sequence + 1);
        ms += 200;
        b.poll(ms);
        assert_eq!(b.audio(ms, sequence), Arrival::Late, "round {round}");
        sequence += 2;
    }
    assert_eq!(b.buffer.depth(), 4, "2 + one per late packet, capped at 4");
    assert_eq!(b.buffer.stats().depth_increases, 2);
    // The longer depth is what a gap now waits.
    b.audio(ms, sequence + 1);
    assert_eq!(
        b.buffer.next_deadline(),
        Some(b.at(ms) + Duration::from_millis(80))
    );
    b.poll(ms + 80);
    sequence += 2;
    // Then calm: one frame shorter after SHRINK_AFTER_FRAMES frames without a late packet.
    for _ in 0..SHRINK_AFTER_FRAMES {
        ms += 20;
        b.audio(ms, sequence);
        sequence = sequence.wrapping_add(1);
    }
    assert_eq!(b.buffer.depth(), 3);
    for _ in 0..SHRINK_AFTER_FRAMES * 3 {
        ms += 20;
        b.audio(ms, sequence);
        sequence = sequence.wrapping_add(1);
    }
    assert_eq!(b.buffer.depth(), 2, "never below the configured depth");
    assert_eq!(b.buffer.stats().resyncs, 0);
}

#[test]
fn five_silence_frames_end_a_spurt_and_the_next_one_starts_without_delay() {
    let mut b = Bench::default_config();
    b.stream(0, [1, 2]);
    b.poll(60);
    for (i, sequence) in (3..8).enumerate() {
        b.silence(60 + 20 * i as u64, sequence);
    }
    assert_eq!(
        b.take(),
        strings(&["S", "F1", "F2", "Z3", "Z4", "Z5", "Z6", "Z7", "ESilence"])
    );
    assert!(!b.buffer.in_spurt());
    assert_eq!(b.deadline_ms(), None, "nothing to wait for between spurts");
    // The sender speaks again: its sequence goes on and nothing is held.
    b.audio(5_000, 8);
    assert_eq!(b.take(), strings(&["S", "F8"]));
    assert_eq!(b.buffer.stats().spurts, 2);
}

#[test]
fn a_gap_inside_the_trailing_silence_counts_as_silence() {
    let mut b = Bench::default_config();
    b.stream(0, [1]);
    b.poll(60);
    b.silence(60, 2);
    b.silence(80, 3);
    b.silence(120, 5);
    b.silence(140, 6);
    b.poll(180);
    assert_eq!(
        b.take(),
        strings(&["S", "F1", "Z2", "Z3", "L4x1", "Z5", "Z6", "ESilence"])
    );
    assert_eq!(
        b.silence(200, 7),
        Arrival::Silence,
        "a straggler after the end"
    );
    assert!(b.take().is_empty());
}

#[test]
fn a_silence_frame_never_starts_a_spurt() {
    let mut b = Bench::default_config();
    assert_eq!(b.silence(0, 1), Arrival::Silence);
    b.poll(1_000);
    assert!(b.take().is_empty());
    assert_eq!(
        b.buffer.playout_point(),
        None,
        "a silence frame anchors nothing"
    );
    // Stragglers of a trailing silence after the spurt ended are consumed too.
    b.stream(1_000, [10]);
    b.poll(1_060);
    for (i, sequence) in (11..16).enumerate() {
        b.silence(1_060 + 20 * i as u64, sequence);
    }
    b.take();
    assert_eq!(b.silence(1_200, 16), Arrival::Silence);
    assert!(b.take().is_empty());
    b.audio(1_220, 17);
    assert_eq!(b.take(), strings(&["S", "F17"]), "no loss, no delay");
}

#[test]
fn a_spurt_with_nothing_arriving_times_out() {
    let mut b = Bench::new(ReceiveConfig {
        spurt_timeout: Duration::from_millis(300),
        ..ReceiveConfig::default()
    });
    b.stream(0, [1, 2, 3]);
    b.poll(60);
    assert_eq!(b.deadline_ms(), Some(340), "last arrival (40 ms) + 300 ms");
    b.poll(339);
    assert_eq!(b.take(), strings(&["S", "F1", "F2", "F3"]));
    b.poll(340);
    assert_eq!(b.take(), strings(&["ETimeout"]));
    assert_eq!(b.deadline_ms(), None);
}

#[test]
fn a_spurt_ends_from_outside_with_what_is_buffered_delivered_first() {
    let mut b = Bench::default_config();
    b.stream(0, [1]);
    b.poll(60);
    b.audio(60, 3);
    b.buffer.end(SpurtEnd::Speaking, &mut b.out);
    assert_eq!(b.take(), strings(&["S", "F1", "L2x1", "F3", "ESpeaking"]));
    // A held new stream leaves at once too.
    let mut b = Bench::default_config();
    b.audio(0, 1);
    b.buffer.end(SpurtEnd::Left, &mut b.out);
    assert_eq!(b.take(), strings(&["S", "F1", "ELeft"]));
    b.buffer.end(SpurtEnd::SessionEnded, &mut b.out);
    assert!(b.take().is_empty(), "no spurt, no end");
}

#[test]
fn a_packet_beyond_the_buffer_gives_the_gap_up_at_once() {
    let mut b = Bench::default_config();
    b.stream(0, [1]);
    b.poll(60);
    b.audio(60, 3);
    let far = 1 + voice_proto::limits::RECEIVE_BUFFER_FRAMES as u16 + 10;
    b.audio(70, far);
    assert_eq!(
        b.take(),
        strings(&[
            "S",
            "F1",
            "L2x1",
            "F3",
            &format!("L4x{}", far - 4),
            &format!("F{far}")
        ])
    );
}

#[test]
fn a_jump_beyond_the_resync_gap_starts_a_new_stream() {
    let mut b = Bench::default_config();
    b.stream(0, [1, 2]);
    b.poll(60);
    b.take();
    // The playout point is 3.
    let far = 3 + voice_proto::limits::RECEIVE_RESYNC_GAP + 1;
    b.audio(60, far);
    assert_eq!(b.take(), strings(&["EResync"]));
    b.audio(80, far + 1);
    b.poll(120);
    assert_eq!(
        b.take(),
        strings(&["S", &format!("F{far}"), &format!("F{}", far + 1)])
    );
    assert_eq!(b.buffer.stats().resyncs, 1);
    assert_eq!(b.buffer.stats().lost, 0, "a new stream is not a loss");
    // After a spurt ended, any packet far from where it stopped is a new stream as well.
    b.buffer.end(SpurtEnd::Speaking, &mut b.out);
    b.take();
    b.audio(1_000, 30_000);
    b.poll(1_060);
    assert_eq!(b.take(), strings(&["S", "F30000"]));
    assert_eq!(b.buffer.stats().resyncs, 2);
}

#[test]
fn check_refuses_duplicates_and_late_packets_before_their_payload_is_seen() {
    let mut b = Bench::default_config();
    assert_eq!(
        b.buffer.check(5),
        Arrival::Accepted,
        "anything starts a stream"
    );
    b.audio(0, 5);
    assert_eq!(b.buffer.check(5), Arrival::Duplicate);
    assert_eq!(b.buffer.check(6), Arrival::Accepted);
    b.poll(60);
    b.audio(60, 7);
    b.poll(120);
    assert_eq!(b.buffer.check(6), Arrival::Late);
    assert_eq!(b.buffer.check(7), Arrival::Duplicate);
    let stats = b.buffer.stats();
    assert_eq!(
        (stats.duplicates, stats.late),
        (2, 1),
        "refusals are counted"
    );
}

#[test]
fn lost_items_carry_estimated_timestamps_and_frames_their_own() {
    let mut b = Bench::default_config();
    b.stream(0, [1]);
    b.poll(60);
    b.audio(60, 4);
    b.poll(120);
    let items: Vec<Item> = b.out.drain(..).collect();
    assert!(items.contains(&Item::Lost {
        sequence: 2,
        timestamp: 1920,
        count: 2
    }));
    assert!(items.contains(&Item::Frame(Frame {
        sequence: 4,
        timestamp: 3840,
        opus: Bytes::from(vec![0xFC, 0, 4]),
    })));
}

// ---- the bounded queue ----------------------------------------------------------------------

fn received(ssrc: u32, item: Item) -> Received {
    Received {
        ssrc,
        user_id: None,
        item,
    }
}

fn frame(ssrc: u32, sequence: u16) -> Received {
    received(
        ssrc,
        Item::Frame(Frame {
            sequence,
            timestamp: u32::from(sequence) * 960,
            opus: Bytes::from_static(&[0xFC]),
        }),
    )
}

fn drain(queue: &mut ReceiveQueue) -> Vec<Item> {
    std::iter::from_fn(|| queue.pop()).map(|r| r.item).collect()
}

#[test]
fn a_full_queue_drops_new_frames_counts_them_and_reports_them_as_one_loss() {
    let mut queue = ReceiveQueue::new(2);
    queue.push(received(1, Item::SpurtStarted));
    for sequence in 0..6 {
        queue.push(frame(1, sequence));
    }
    assert_eq!(queue.dropped(), 4);
    assert_eq!(queue.len(), 3, "the start and two frames");
    let first = queue.pop().map(|r| r.item);
    assert_eq!(first, Some(Item::SpurtStarted));
    assert!(matches!(queue.pop().map(|r| r.item), Some(Item::Frame(f)) if f.sequence == 0));
    // Room again: the loss is queued at once, then the frames that fit.
    assert!(matches!(
        queue.pop().map(|r| r.item),
        Some(Item::Frame(f)) if f.sequence == 1
    ));
    assert_eq!(
        drain(&mut queue),
        [Item::Lost {
            sequence: 2,
            timestamp: 1920,
            count: 4
        }]
    );
    queue.push(frame(1, 6));
    assert!(matches!(drain(&mut queue).as_slice(), [Item::Frame(f)] if f.sequence == 6));
}

#[test]
fn a_spurt_that_never_fits_vanishes_whole_and_the_queue_stays_bounded() {
    let mut queue = ReceiveQueue::new(1);
    queue.push(frame(1, 0));
    for round in 0..1000u16 {
        queue.push(received(1, Item::SpurtStarted));
        queue.push(frame(1, round + 1));
        queue.push(received(
            1,
            Item::Lost {
                sequence: 0,
                timestamp: 0,
                count: 3,
            },
        ));
        queue.push(received(1, Item::SpurtEnded(SpurtEnd::Silence)));
        assert!(queue.len() <= 4, "round {round}: {} items", queue.len());
    }
    assert_eq!(queue.dropped(), 1000);
    assert!(matches!(drain(&mut queue).as_slice(), [Item::Frame(f), ..] if f.sequence == 0));
}

#[test]
fn several_senders_are_served_in_turn_and_their_number_is_bounded() {
    let mut queues = ReceiveQueues::new(10, 2);
    for sequence in 0..3 {
        queues.push(frame(1, sequence));
    }
    queues.push(frame(2, 0));
    queues.push(frame(3, 0));
    assert_eq!(queues.dropped(), 1, "a third SSRC found no queue");
    let order: Vec<u32> = std::iter::from_fn(|| queues.pop())
        .map(|r| r.ssrc)
        .collect();
    assert_eq!(order, [1, 2, 1, 1]);
    assert!(queues.is_empty());
    queues.push(frame(3, 1));
    assert_eq!(queues.pop().map(|r| r.ssrc), Some(3), "room once emptied");
}
