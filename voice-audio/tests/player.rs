//! The player with a fake clock: every `next_frame` call is 20 ms. Pause, resume, seek,
//! volume, mixing, loops, the queue, skip, stop, events and the pump.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use voice_audio::{
    EndReason, Input, LoopMode, Player, PlayerConfig, PlayerEvent, Pump, SinkClosed, TrackState,
};

fn frames(player: &mut Player, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .filter_map(|_| player.next_frame().map(<[u8]>::to_vec))
        .collect()
}

fn events(player: &mut Player) -> Vec<PlayerEvent> {
    std::iter::from_fn(|| player.poll_event()).collect()
}

#[test]
fn pause_produces_nothing_and_resume_continues_where_it_was() {
    let packets = tone_packets(2.0);
    let mut player = Player::default();
    let track = player.enqueue(Input::bytes(ogg_opus(&packets)));
    let first = frames(&mut player, 10);
    assert!(first == packets[..10]);
    assert_eq!(track.position(), Duration::from_millis(200));
    track.pause();
    assert!(player.next_frame().is_none(), "paused: no frame");
    assert!(player.is_idle(), "a paused player is idle");
    assert_eq!(track.state(), TrackState::Paused);
    assert_eq!(track.position(), Duration::from_millis(200));
    track.resume();
    let next = frames(&mut player, 5);
    assert!(next == packets[10..15], "resumes with the next frame");
    assert_eq!(track.state(), TrackState::Playing);
}

#[test]
fn seek_moves_to_the_frame_of_the_target() {
    let packets = tone_packets(4.0);
    let mut player = Player::default();
    let track = player.enqueue(Input::bytes(ogg_opus(&packets)));
    frames(&mut player, 3);
    track.seek(Duration::from_millis(2_500));
    let next = frames(&mut player, 2);
    assert!(next == packets[125..127]);
    assert_eq!(track.position(), Duration::from_millis(2_540));
    let seeked = events(&mut player)
        .into_iter()
        .find_map(|e| match e {
            PlayerEvent::Seeked { position, .. } => Some(position),
            _ => None,
        })
        .unwrap();
    assert_eq!(seeked, Duration::from_millis(2_500));
    assert_eq!(track.duration(), Some(Duration::from_secs(4)));
    // Backwards, in a transcoded input.
    let mut player = Player::default();
    let track = player.enqueue(Input::bytes(wav(
        44_100,
        1,
        &sine(44_100, 1, 440.0, 0.5, 3.0),
    )));
    frames(&mut player, 100);
    track.seek(Duration::from_millis(500));
    frames(&mut player, 1);
    assert_eq!(track.position(), Duration::from_millis(520));
    // A pipe cannot seek: the track plays on.
    let pipe = player.play(Input::reader(std::io::Cursor::new(ogg_opus(&packets))));
    frames(&mut player, 1);
    pipe.seek(Duration::from_secs(1));
    frames(&mut player, 1);
    assert!(events(&mut player).iter().any(|e| matches!(
        e,
        PlayerEvent::SeekFailed {
            error: voice_audio::AudioError::NotSeekable,
            ..
        }
    )));
    assert_eq!(pipe.state(), TrackState::Playing);
}

#[test]
fn volume_other_than_one_reencodes_at_that_gain_and_one_returns_to_passthrough() {
    let packets = opus_packets(&sine(48_000, 2, 440.0, 0.4, 3.0));
    let mut player = Player::default();
    let track = player.enqueue(Input::bytes(ogg_opus(&packets)));
    assert!(frames(&mut player, 50) == packets[..50]);
    track.set_volume(0.5);
    let quiet = frames(&mut player, 50);
    assert!(quiet != packets[50..100], "re-encoded");
    track.set_volume(1.0);
    let ramp = frames(&mut player, 1); // one frame ramps back to 1.0
    assert_eq!(ramp.len(), 1);
    let back = frames(&mut player, 10);
    assert!(back == packets[101..111], "passthrough again at 1.0");
    // The re-encoded part is at half the level of the original.
    let original = decode(&packets[50..100]);
    let halved = decode(&quiet);
    let ratio = rms(&halved, 0.1, 0.9) / rms(&original, 0.1, 0.9);
    assert!((ratio - 0.5).abs() < 0.05, "level ratio {ratio:.3}");
}

#[test]
fn two_tracks_mix_and_clipping_is_soft() {
    let a = wav(48_000, 1, &sine(48_000, 1, 440.0, 0.8, 1.0));
    let b = wav(48_000, 1, &sine(48_000, 1, 440.0, 0.8, 0.5));
    let mut player = Player::default();
    let ta = player.play(Input::bytes(a));
    let tb = player.play(Input::bytes(b));
    let out = frames(&mut player, 100);
    assert_eq!(out.len(), 50, "as long as the longer track");
    let pcm = decode(&out);
    // In phase, 0.8 + 0.8 = 1.6 peaks: soft-clipped to at most full scale (plus codec ringing).
    let peak = pcm[..2 * 24_000].iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(peak > 0.85 && peak < 1.1, "peak {peak}");
    // After the short one ends, the long one alone.
    let alone = rms(&pcm, 0.6, 0.95);
    let together = rms(&pcm, 0.1, 0.4);
    assert!(together > alone * 1.1, "{together} vs {alone}");
    assert_eq!(ta.state(), TrackState::Ended);
    assert_eq!(tb.state(), TrackState::Ended);
    // A mixed Opus track and a PCM track: both decoded, mixed, encoded.
    let packets = tone_packets(1.0);
    let mut player = Player::default();
    player.play(Input::bytes(ogg_opus(&packets)));
    player.play(Input::bytes(wav(
        22_050,
        2,
        &sine(22_050, 2, 1000.0, 0.2, 1.0),
    )));
    let out = frames(&mut player, 60);
    assert_eq!(out.len(), 50);
    assert!(out != packets);
}

#[test]
fn the_queue_plays_in_order_and_skip_and_stop_end_tracks() {
    let a = tone_packets(0.2);
    let b = opus_packets(&sine(48_000, 2, 880.0, 0.3, 0.2));
    let c = opus_packets(&sine(48_000, 2, 220.0, 0.3, 0.2));
    let mut player = Player::default();
    let handle = player.handle();
    let ta = handle.enqueue(Input::bytes(ogg_opus(&a)));
    let tb = handle.enqueue(Input::bytes(ogg_opus(&b)));
    let tc = handle.enqueue(Input::bytes(ogg_opus(&c)));
    assert_eq!(tb.state(), TrackState::Queued);
    let out = frames(&mut player, 12);
    assert!(out[..10] == a[..], "first track whole");
    assert!(out[10..] == b[..2], "then the second, without a gap");
    assert_eq!(tb.state(), TrackState::Playing);
    handle.skip();
    let out = frames(&mut player, 3);
    assert!(out == c[..3], "skip goes to the third");
    tc.stop();
    assert!(player.next_frame().is_none());
    let evs = events(&mut player);
    let ends: Vec<(u64, EndReason)> = evs
        .iter()
        .filter_map(|e| match e {
            PlayerEvent::Ended { track, reason } => Some((track.0, *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        ends,
        vec![
            (ta.id().0, EndReason::Finished),
            (tb.id().0, EndReason::Skipped),
            (tc.id().0, EndReason::Stopped)
        ]
    );
    assert!(matches!(evs.last(), Some(PlayerEvent::Idle)));
    let started = evs
        .iter()
        .filter(|e| matches!(e, PlayerEvent::Started { .. }))
        .count();
    assert_eq!(started, 3);
}

#[test]
fn a_track_that_fails_to_open_lets_the_next_play() {
    let packets = tone_packets(0.2);
    let mut player = Player::default();
    let bad = player.enqueue(Input::file("/nonexistent/a.ogg"));
    player.enqueue(Input::bytes(ogg_opus(&packets)));
    let out = frames(&mut player, 20);
    assert!(out == packets);
    let evs = events(&mut player);
    assert!(matches!(
        evs.first(),
        Some(PlayerEvent::Errored { track, .. }) if *track == bad.id()
    ));
    assert_eq!(bad.state(), TrackState::Ended);
}

#[test]
fn loops_replay_the_track() {
    let packets = tone_packets(0.2);
    let mut player = Player::default();
    let track = player.enqueue(Input::bytes(ogg_opus(&packets)));
    track.set_loop(LoopMode::Times(2));
    let out = frames(&mut player, 100);
    assert_eq!(out.len(), 30, "three plays of ten frames");
    assert!(out[20..] == packets[..]);
    let loops = events(&mut player)
        .iter()
        .filter(|e| matches!(e, PlayerEvent::Looped { .. }))
        .count();
    assert_eq!(loops, 2);
    // Forever, until stopped; a reader cannot loop (it cannot be read again).
    let track = player.enqueue(Input::bytes(ogg_opus(&packets)));
    track.set_loop(LoopMode::Forever);
    assert_eq!(frames(&mut player, 95).len(), 95);
    track.stop();
    assert!(player.next_frame().is_none());
    let once = player.enqueue(Input::reader(std::io::Cursor::new(ogg_opus(&packets))));
    once.set_loop(LoopMode::Forever);
    assert_eq!(frames(&mut player, 30).len(), 10);
    assert!(matches!(
        voice_audio_error(&mut player),
        Some(voice_audio::AudioError::NotReopenable)
    ));
}

fn voice_audio_error(player: &mut Player) -> Option<voice_audio::AudioError> {
    error_of(&events(player))
}

#[test]
fn position_events_every_interval() {
    let packets = tone_packets(3.0);
    let mut player = Player::new(PlayerConfig {
        position_interval: Duration::from_secs(1),
        ..PlayerConfig::default()
    });
    player.enqueue(Input::bytes(ogg_opus(&packets)));
    frames(&mut player, 200);
    let positions: Vec<Duration> = events(&mut player)
        .iter()
        .filter_map(|e| match e {
            PlayerEvent::Position { position, .. } => Some(*position),
            _ => None,
        })
        .collect();
    assert_eq!(
        positions,
        vec![
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(3)
        ]
    );
}

#[test]
fn the_pump_feeds_a_sink_and_sleeps_when_idle() {
    let packets = tone_packets(0.5);
    let player = Player::default();
    let handle = player.handle();
    let sent: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let seen: Arc<Mutex<Vec<PlayerEvent>>> = Arc::default();
    let sink = {
        let sent = Arc::clone(&sent);
        move |frame: &[u8]| -> Result<(), SinkClosed> {
            sent.lock().unwrap().push(frame.to_vec());
            Ok(())
        }
    };
    let pump = {
        let seen = Arc::clone(&seen);
        Pump::spawn(player, sink, move |e| seen.lock().unwrap().push(e)).unwrap()
    };
    handle.enqueue(Input::bytes(ogg_opus(&packets)));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !seen
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, PlayerEvent::Idle))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the pump did not finish"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(*sent.lock().unwrap() == packets);
    assert_eq!(pump.frames_sent(), packets.len() as u64);
    // Idle: it sends nothing more until a command comes.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(pump.frames_sent(), packets.len() as u64);
    handle.enqueue(Input::bytes(ogg_opus(&packets[..5])));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while pump.frames_sent() < packets.len() as u64 + 5 {
        assert!(std::time::Instant::now() < deadline, "woken by the command");
        std::thread::sleep(Duration::from_millis(5));
    }
    let player = pump.stop().expect("the pump gives the player back");
    assert!(player.is_idle());
}

#[test]
fn a_closed_sink_ends_the_pump() {
    let player = Player::default();
    player.enqueue(Input::bytes(ogg_opus(&tone_packets(1.0))));
    let pump = Pump::spawn(player, |_: &[u8]| Err(SinkClosed), |_| {}).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !pump.is_finished() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(pump.frames_sent(), 0);
}

/// A connection's queue in miniature: at most `capacity` frames; the test drains it.
#[derive(Clone)]
struct BoundedSink {
    queue: Arc<Mutex<std::collections::VecDeque<Vec<u8>>>>,
    capacity: usize,
}

impl voice_audio::FrameSink for BoundedSink {
    fn send_frame(&mut self, _frame: &[u8]) -> Result<(), SinkClosed> {
        unreachable!("a pool never blocks in send_frame")
    }

    fn try_send_frame(&mut self, frame: &[u8]) -> Result<bool, SinkClosed> {
        let mut queue = self.queue.lock().unwrap();
        if queue.len() >= self.capacity {
            return Ok(false);
        }
        queue.push_back(frame.to_vec());
        Ok(true)
    }
}

/// Pool tests one at a time, so a test counting pool threads sees only its own pool's.
static POOL_TESTS: Mutex<()> = Mutex::new(());

fn pool_threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |tasks| {
        tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with("voice-audio-poo"))
            .count()
    })
}

#[test]
fn a_pool_plays_many_players_into_full_queues_on_two_threads_losing_nothing() {
    let _one_at_a_time = POOL_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while pool_threads() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "an earlier pool's threads never ended"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let packets = tone_packets(0.6);
    let pool = voice_audio::PumpPool::with_interval(2, Duration::from_millis(5)).unwrap();
    // A thread names itself when it starts.
    while pool_threads() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the pool's threads never started"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut played = Vec::new();
    for _ in 0..24 {
        let player = Player::default();
        player.enqueue(Input::bytes(ogg_opus(&packets)));
        let sink = BoundedSink {
            queue: Arc::default(),
            capacity: 4,
        };
        let pump = pool.add(player, sink.clone(), |_| {});
        played.push((pump, sink, Vec::new()));
    }
    assert_eq!(pool_threads(), 2, "threads do not grow with the players");
    // The test drains every queue like a connection's playout would, until all is received.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while played.iter().any(|(_, _, got)| got.len() < packets.len()) {
        assert!(std::time::Instant::now() < deadline, "the pool stalled");
        for (_, sink, got) in &mut played {
            got.extend(sink.queue.lock().unwrap().drain(..));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for (pump, _, got) in &played {
        assert!(got == &packets, "every frame, in order, once");
        assert_eq!(pump.frames_sent(), packets.len() as u64);
    }
}

#[test]
fn a_pooled_player_that_is_idle_sends_nothing_and_a_command_wakes_it() {
    let _one_at_a_time = POOL_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let pool = voice_audio::PumpPool::with_interval(1, Duration::from_secs(3600)).unwrap();
    let player = Player::default();
    let handle = player.handle();
    let sink = BoundedSink {
        queue: Arc::default(),
        capacity: 1000,
    };
    let pump = pool.add(player, sink.clone(), |_| {});
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(pump.frames_sent(), 0, "idle: nothing produced");
    // An hour-long interval: only the command can wake the thread.
    let packets = tone_packets(0.2);
    handle.enqueue(Input::bytes(ogg_opus(&packets)));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while pump.frames_sent() < packets.len() as u64 {
        assert!(std::time::Instant::now() < deadline, "woken by the command");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(*sink.queue.lock().unwrap() == packets);
}

#[test]
fn a_closed_sink_or_a_dropped_handle_ends_a_pooled_player() {
    let _one_at_a_time = POOL_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let pool = voice_audio::PumpPool::with_interval(1, Duration::from_millis(5)).unwrap();
    let closed = Player::default();
    closed.enqueue(Input::bytes(ogg_opus(&tone_packets(1.0))));
    let closed = pool.add(closed, |_: &[u8]| Err(SinkClosed), |_| {});
    let stopped = pool.add(
        Player::default(),
        BoundedSink {
            queue: Arc::default(),
            capacity: 1,
        },
        |_| {},
    );
    let stopped_handle = stopped.handle().clone();
    drop(stopped);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !closed.is_finished() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(closed.frames_sent(), 0);
    // The dropped pump closed its player's handle: the pool forgets it.
    stopped_handle.enqueue(Input::bytes(ogg_opus(&tone_packets(0.1))));
}
