//! Issue 14 row 6: data events (speaking updates, unknown opcodes) never push control events out
//! of the queue an application reads slowly; order is kept; even control events are bounded; the
//! end comes after every event queued before it. (Received audio is no event:
//! `receive_router.rs`.)

use voice_adapter::{is_control_event, EventQueue, Next, CONTROL_EVENTS};
use voice_proto::{Error, Event, Recovery};

fn noise(n: usize) -> Event {
    Event::UnknownOpcode {
        op: 99,
        raw: n.to_string(),
    }
}

fn reconnecting(attempt: u32) -> Event {
    Event::Reconnecting {
        recovery: Recovery::Resume,
        code: Some(4015),
        attempt,
    }
}

#[test]
fn control_events_are_kept_when_data_events_fill_the_queue() {
    let mut queue = EventQueue::new(4);
    for n in 0..4 {
        assert!(queue.push(noise(n)));
    }
    assert!(!queue.push(noise(4)), "a fifth data event is dropped");
    assert!(queue.push(reconnecting(1)));
    assert!(queue.push(Event::Resumed));
    assert!(!queue.push(noise(5)));
    assert!(queue.push(Event::Closed {
        error: Error::ClosedByApplication
    }));
    assert_eq!(queue.dropped(), 2);
    // One order for all: the data events first, as they came, then the control events.
    let events: Vec<Event> = std::iter::from_fn(|| queue.pop()).collect();
    assert_eq!(events.len(), 7);
    assert_eq!(events[..4], [noise(0), noise(1), noise(2), noise(3)]);
    assert_eq!(events[4], reconnecting(1));
    assert_eq!(events[5], Event::Resumed);
    assert!(matches!(events[6], Event::Closed { .. }));
    // Reading makes room for data events again.
    assert!(queue.push(noise(6)) && !queue.is_empty());
}

#[test]
fn only_an_unread_flood_of_control_events_loses_the_oldest_of_them() {
    let mut queue = EventQueue::new(1);
    for attempt in 0..CONTROL_EVENTS as u32 {
        assert!(queue.push(reconnecting(attempt)));
    }
    assert!(!queue.push(Event::Closed {
        error: Error::ClosedByApplication
    }));
    assert_eq!((queue.len(), queue.dropped()), (CONTROL_EVENTS, 1));
    assert_eq!(queue.pop(), Some(reconnecting(1)), "the oldest went");
    let last = std::iter::from_fn(|| queue.pop()).last();
    assert!(
        matches!(last, Some(Event::Closed { .. })),
        "the end is always there"
    );
}

#[test]
fn the_control_events_are_the_connections_state_changes() {
    for control in [
        reconnecting(1),
        Event::Resumed,
        Event::Closed {
            error: Error::ClosedByApplication,
        },
        Event::Disconnected {
            reason: voice_proto::DisconnectReason::EndpointRemoved,
        },
        Event::PlayoutHeld {
            reason: voice_proto::playout::HoldReason::DaveKeysPending,
        },
    ] {
        assert!(is_control_event(&control), "{control:?}");
    }
    for data in [
        noise(1),
        Event::Ignored {
            reason: String::new(),
        },
        Event::ClientDisconnected {
            user_id: voice_proto::id::UserId(1),
        },
    ] {
        assert!(!is_control_event(&data), "{data:?}");
    }
}

#[test]
fn a_reader_is_told_to_wait_until_the_end_and_reads_every_event_before_it() {
    let mut queue = EventQueue::new(2);
    assert!(matches!(queue.next_event(), Next::Wait));
    queue.push(noise(0));
    queue.push(Event::Closed {
        error: Error::ClosedByApplication,
    });
    queue.end();
    assert!(queue.is_ended());
    assert!(matches!(queue.next_event(), Next::Event(e) if e == noise(0)));
    assert!(matches!(
        queue.next_event(),
        Next::Event(Event::Closed { .. })
    ));
    assert!(matches!(queue.next_event(), Next::Ended));
    assert!(matches!(queue.next_event(), Next::Ended), "and stays ended");
}
