//! Found by the `gateway_text` fuzz target: a voice gateway frame that arrives while the engine
//! has no websocket (waiting for a move after 4014/4022, backing off, waiting for the dispatches)
//! was not ignored.
//!
//! The engine ignores a close from such a stale socket (`on_ws_closed` returns early in
//! `AwaitingServerUpdate`/`Backoff`/`Closed`) but feeds its frames to `on_frame` in any phase. A
//! late op 8 Hello, for instance one already buffered by the adapter's read loop when the server
//! closed with 4014, or one from a socket that was still opening when a stage timed out
//! (`fail_attempt` emits no `CloseWebSocket` for a socket that is not open yet), creates a
//! heartbeat: the engine sends op 3 on no socket, then declares that socket dead, closes it with
//! 4000 and abandons the move wait for a fresh rejoin (`Reconnecting`, a new main-gateway op 4).
//! The bad-input policy says a stray frame must end as an ignored event without touching the
//! state.
//! The engine now ignores frames while no websocket is open.

mod support;

use std::time::Duration;

use support::*;
use voice_proto::{Event, Input, Output};

#[test]
fn a_stray_hello_while_waiting_for_a_move_changes_nothing() {
    let mut h = Harness::join(test_config());
    h.connect();
    let outputs = h.feed(Input::WebSocketClosed { code: Some(4014) });
    assert!(events(&outputs)
        .iter()
        .any(|e| matches!(e, Event::Disconnected { .. })));

    let hello = h.server.hello();
    h.text(&hello);
    let mut after = Vec::new();
    for _ in 0..4 {
        after.extend(h.advance(Duration::from_millis(HEARTBEAT_MS)));
    }
    let sent: Vec<_> = after
        .iter()
        .filter(|o| matches!(o, Output::SendText(_) | Output::CloseWebSocket { .. }))
        .collect();
    assert!(
        sent.is_empty(),
        "frames or closes for a socket that does not exist: {sent:?}"
    );
    assert!(
        !events(&after)
            .iter()
            .any(|e| matches!(e, Event::Reconnecting { .. })),
        "a stray frame ended the wait for a move"
    );
}
