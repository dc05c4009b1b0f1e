//! Resume after close 4015 mid-stream: op 7 with the right seq_ack, UDP and keys kept, audio
//! held until Resumed and op 5 on the new websocket, counters continue.

mod support;

use std::time::Duration;

use support::*;
use voice_proto::payload::{ClientMessage, ServerMessage};
use voice_proto::playout::HoldReason;
use voice_proto::{Event, Input, Output, Recovery};

#[test]
fn close_4015_resumes_with_seq_ack_and_audio_never_stops() {
    let mut h = Harness::join(test_config());
    h.connect();
    let (_, first) = h.send_frame(&[1, 1, 1]);
    let (first_header, _) = h.server.open_audio(&first);
    // One more numbered message so seq_ack is not trivially the last handshake seq.
    let clients = h.server.frame(ServerMessage::ClientsConnect(
        voice_proto::payload::ClientsConnect {
            user_ids: vec![OTHER_USER],
        },
    ));
    h.text(&clients);
    let last_seq = h.server.seq;

    let closed_at = h.now;
    let outs = h.feed(Input::WebSocketClosed { code: Some(4015) });
    assert!(events(&outs).contains(&Event::Reconnecting {
        recovery: Recovery::Resume,
        code: Some(4015),
        attempt: 1,
    }));

    // While the websocket is down audio waits: Discord drops audio that no op 5 on the current
    // websocket announced, so nothing goes out before Resumed and our op 5.
    h.session().queue_opus(&[2, 2, 2]).unwrap();
    assert_eq!(h.play_next().1, None);
    assert_eq!(h.session().playout_hold(), Some(HoldReason::Resuming));
    assert_eq!(h.session().queued_frames(), 1, "held, not dropped");

    // Even the first attempt waits a jittered backoff (row 3).
    let outs = h.wait_out_backoff();
    assert!(test_config()
        .backoff_range(1)
        .contains(&(h.now - closed_at)));
    assert!(outs.contains(&Output::OpenWebSocket {
        url: format!("wss://{ENDPOINT}/?v=8")
    }));
    assert!(
        !outs.iter().any(|o| matches!(o, Output::BindUdp { .. })),
        "UDP is kept"
    );

    let outs = h.feed(Input::WebSocketOpened);
    let sent = client_messages(&outs);
    let [ClientMessage::Resume(resume)] = sent.as_slice() else {
        panic!("expected op 7, got {sent:?}")
    };
    assert_eq!(resume.seq_ack, i64::try_from(last_seq).unwrap());
    assert_eq!(resume.session_id, SESSION_ID);
    assert_eq!(resume.server_id, GUILD);
    assert_eq!(resume.token.expose(), TOKEN);

    let hello = h.server.hello();
    h.text(&hello);
    let resumed = h.server.frame(ServerMessage::Resumed);
    let outs = h.text(&resumed);
    assert!(events(&outs).contains(&Event::Resumed));
    assert!(events(&outs).contains(&Event::PlayoutResumed {
        reason: HoldReason::Resuming
    }));
    assert_eq!(h.session().stats().resumes, 1);

    // The held frame goes out now, op 5 first on this websocket (C20), with consecutive
    // counters: same SSRC, next sequence number, next nonce (C25).
    let (outs, during) = h.play_next();
    let during = during.expect("the held frame goes out after Resumed");
    let sent = client_messages(&outs);
    assert!(
        matches!(sent.as_slice(), [ClientMessage::Speaking(s)] if s.ssrc == SSRC),
        "{sent:?}"
    );
    let (during_header, opus) = h.server.open_audio(&during);
    assert_eq!(opus, [2, 2, 2]);
    assert_eq!(
        during_header.sequence,
        first_header.sequence.wrapping_add(1)
    );
    assert_eq!(during_header.ssrc, SSRC);
    let (_, after) = h.send_frame(&[3, 3, 3]);
    let nonce = |p: &[u8]| u32::from_be_bytes(p[p.len() - 4..].try_into().unwrap());
    assert_eq!(nonce(&after), nonce(&during) + 1);
    assert_eq!(nonce(&during), nonce(&first) + 1);
}

#[test]
fn transport_loss_without_close_frame_resumes() {
    let mut h = Harness::join(test_config());
    h.connect();
    let outs = h.feed(Input::WebSocketClosed { code: None });
    assert!(events(&outs).iter().any(|e| matches!(
        e,
        Event::Reconnecting {
            recovery: Recovery::Resume,
            code: None,
            ..
        }
    )));
}

#[test]
fn resume_timeout_falls_back_to_a_fresh_session() {
    let mut h = Harness::join(test_config());
    h.connect();
    h.feed(Input::WebSocketClosed { code: Some(4015) });
    h.wait_out_backoff();
    h.feed(Input::WebSocketOpened);
    // The timeout is the second failed attempt; the fresh one follows after its backoff.
    let config = test_config();
    let deadline = h.now + config.handshake_timeout + config.backoff(2);
    let outs = h.run_until(deadline);
    assert!(
        events(&outs).iter().any(|e| matches!(
            e,
            Event::Reconnecting {
                recovery: Recovery::Reconnect,
                ..
            }
        )),
        "{:?}",
        events(&outs)
    );
    // Through the main gateway: op 4 again.
    assert!(outs.iter().any(|o| matches!(o, Output::MainGateway(_))));
}

#[test]
fn repeated_failures_back_off_then_give_up() {
    let mut config = test_config();
    config.max_reconnect_attempts = 3;

    let mut h = Harness::join(config.clone());
    h.connect();
    let mut gaps = Vec::new();
    for _ in 0..3 {
        let closed_at = h.now;
        h.feed(Input::WebSocketClosed { code: Some(4015) });
        let outs = h.wait_out_backoff();
        assert!(outs
            .iter()
            .any(|o| matches!(o, Output::OpenWebSocket { .. })));
        gaps.push(h.now - closed_at);
        h.feed(Input::WebSocketOpened);
    }
    // Every attempt waits, the first too: half to all of 0.5 s, 1 s, 2 s (row 3).
    for (attempt, gap) in (1..).zip(&gaps) {
        let range = config.backoff_range(attempt);
        assert!(
            range.contains(gap),
            "attempt {attempt}: {gap:?} not in {range:?}"
        );
        assert!(*gap >= Duration::from_millis(250) * (1 << (attempt - 1)));
    }
    let outs = h.feed(Input::WebSocketClosed { code: Some(4015) });
    assert!(
        matches!(
            h.state.error(),
            Some(voice_proto::Error::TooManyReconnects { attempts: 3, .. })
        ),
        "{:?}",
        events(&outs)
    );
}
