//! The subscriptions to received audio: per user and for everyone, bounded inboxes whose
//! overflow is counted and reported as a loss, never a wait; the end reaches every inbox.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use voice_adapter::{AudioRouter, InboxItem, Subscription};
use voice_proto::id::UserId;
use voice_proto::receive::{Frame, Item, ReceiveConfig, Received};

const ALICE: UserId = UserId(1);
const BOB: UserId = UserId(2);

fn frame(ssrc: u32, user: Option<UserId>, sequence: u16) -> Received {
    Received {
        ssrc,
        user_id: user,
        item: Item::Frame(Frame {
            sequence,
            timestamp: u32::from(sequence) * 960,
            opus: Bytes::from_static(&[0xFC, 0xFF, 0xFE, 0x01]),
        }),
    }
}

fn router(queue_frames: usize) -> AudioRouter {
    AudioRouter::new(Some(ReceiveConfig {
        queue_frames,
        ..ReceiveConfig::default()
    }))
}

#[test]
fn a_user_s_subscription_gets_their_audio_and_the_all_users_one_everything() {
    let router = router(10);
    let alice = router.subscribe(Subscription::User(ALICE), None);
    let all = router.subscribe(Subscription::All, None);
    let mut items = vec![
        frame(1, Some(ALICE), 1),
        frame(2, Some(BOB), 1),
        frame(3, None, 1),
        frame(1, Some(ALICE), 2),
    ];
    router.route(&mut items);
    assert!(items.is_empty(), "routed items are taken");
    let heard: Vec<(u32, u16)> = std::iter::from_fn(|| alice.try_recv())
        .map(|r| match r.item {
            Item::Frame(f) => (r.ssrc, f.sequence),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(heard, [(1, 1), (1, 2)]);
    let everyone: Vec<u32> = std::iter::from_fn(|| all.try_recv())
        .map(|r| r.ssrc)
        .collect();
    assert_eq!(everyone.len(), 4, "senders not named yet included");
    assert_eq!(router.subscribers(), 2);
}

#[test]
fn a_slow_subscriber_loses_frames_counted_as_a_loss_and_never_holds_others_up() {
    let router = router(3);
    let slow = router.subscribe(Subscription::User(ALICE), None);
    let fast = router.subscribe(Subscription::All, None);
    let mut read = 0;
    for sequence in 0..10 {
        router.route(&mut vec![frame(1, Some(ALICE), sequence)]);
        while fast.try_recv().is_some() {
            read += 1;
        }
    }
    assert_eq!((read, fast.dropped()), (10, 0));
    assert_eq!(slow.dropped(), 7);
    let items: Vec<Item> = std::iter::from_fn(|| slow.try_recv())
        .map(|r| r.item)
        .collect();
    assert_eq!(
        items.len(),
        4,
        "three frames, then the loss of the seven others"
    );
    assert!(matches!(
        items.last(),
        Some(Item::Lost {
            sequence: 3,
            count: 7,
            ..
        })
    ));
}

#[test]
fn the_end_reaches_every_inbox_after_its_items_and_later_ones_are_ended_at_once() {
    let router = router(10);
    let woken = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&woken);
    let inbox = router.subscribe(
        Subscription::All,
        Some(Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })),
    );
    router.route(&mut vec![frame(1, None, 1)]);
    router.end();
    assert_eq!(
        woken.load(Ordering::SeqCst),
        2,
        "woken for the item and the end"
    );
    assert!(!inbox.is_finished(), "an item is still to be read");
    assert!(matches!(
        inbox.recv_timeout(Some(Duration::from_secs(1))),
        InboxItem::Item(_)
    ));
    assert_eq!(inbox.recv_timeout(None), InboxItem::Ended);
    assert!(inbox.is_finished());
    let late = router.subscribe(Subscription::User(BOB), None);
    assert_eq!(late.recv_timeout(None), InboxItem::Ended);
}

#[test]
fn waiting_ends_with_an_item_from_another_thread_or_the_timeout() {
    let router = Arc::new(router(10));
    let inbox = router.subscribe(Subscription::User(BOB), None);
    assert_eq!(
        inbox.recv_timeout(Some(Duration::from_millis(10))),
        InboxItem::TimedOut
    );
    let sender = Arc::clone(&router);
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        sender.route(&mut vec![frame(5, Some(BOB), 9)]);
    });
    assert!(matches!(
        inbox.recv_timeout(Some(Duration::from_secs(10))),
        InboxItem::Item(Received { ssrc: 5, .. })
    ));
    thread.join().expect("the sender thread");
}

#[test]
fn dropped_subscriptions_are_forgotten() {
    let router = router(10);
    let inbox = router.subscribe(Subscription::All, None);
    drop(inbox);
    router.route(&mut vec![frame(1, None, 1)]);
    assert_eq!(router.subscribers(), 0);
    assert!(!AudioRouter::new(None).is_enabled());
}
