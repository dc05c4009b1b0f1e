//! Property tests of the whole engine: any sequence of inputs (garbage frames, datagrams, closes,
//! timers, application calls) never panics, and the invariants hold after every step.

mod support;

use std::time::Duration;

use proptest::prelude::*;
use support::*;
use voice_proto::rtp::MAX_PACKET_LEN;
use voice_proto::{Input, Output};

#[derive(Debug, Clone)]
enum Step {
    Text(String),
    KnownText(usize),
    Binary(Vec<u8>),
    Datagram(Vec<u8>),
    Closed(Option<u16>),
    Opened,
    Advance(u64),
    StateUpdate,
    ServerUpdate(bool),
    SendOpus(Vec<u8>),
    StopSpeaking,
    Poll,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        any::<String>().prop_map(Step::Text),
        (0usize..8).prop_map(Step::KnownText),
        proptest::collection::vec(any::<u8>(), 0..80).prop_map(Step::Binary),
        proptest::collection::vec(any::<u8>(), 0..120).prop_map(Step::Datagram),
        proptest::option::of(prop_oneof![
            Just(4015u16),
            Just(4006),
            Just(4014),
            Just(4017),
            any::<u16>()
        ])
        .prop_map(Step::Closed),
        Just(Step::Opened),
        (0u64..30_000).prop_map(Step::Advance),
        Just(Step::StateUpdate),
        any::<bool>().prop_map(Step::ServerUpdate),
        proptest::collection::vec(any::<u8>(), 0..1300).prop_map(Step::SendOpus),
        Just(Step::StopSpeaking),
        Just(Step::Poll),
    ]
}

fn known_text(server: &mut FakeServer, which: usize) -> String {
    match which {
        0 => server.hello(),
        1 => server.ready(),
        2 => server.session_description(),
        3 => server.ack(1),
        4 => r#"{"op":9,"d":null,"seq":77}"#.to_owned(),
        5 => r#"{"op":99,"d":{"x":1}}"#.to_owned(),
        6 => r#"{"op":5,"d":{"speaking":1,"ssrc":1,"user_id":"5"}}"#.to_owned(),
        _ => r#"{"op":13,"d":{"user_id":"5"}}"#.to_owned(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_input_sequence_is_handled_without_panic(steps in proptest::collection::vec(step(), 0..60)) {
        let mut h = Harness::join(test_config());
        let mut buf = [0u8; MAX_PACKET_LEN];
        let mut closed = false;
        for step in steps {
            let before = h.now;
            match step {
                Step::Text(t) => { h.text(&t); }
                Step::KnownText(k) => { let t = known_text(&mut h.server, k); h.text(&t); }
                Step::Binary(b) => { h.feed(Input::Binary(&b)); }
                Step::Datagram(d) => { h.feed(Input::Datagram { from: server_udp(), data: &d }); }
                Step::Closed(code) => { h.feed(Input::WebSocketClosed { code }); }
                Step::Opened => { h.feed(Input::WebSocketOpened); }
                Step::Advance(ms) => { h.advance(Duration::from_millis(ms)); }
                Step::StateUpdate => { h.feed(Input::VoiceStateUpdate(state_dispatch())); }
                Step::ServerUpdate(null) => {
                    let mut d = server_dispatch(TOKEN);
                    if null { d.endpoint = None; }
                    h.feed(Input::VoiceServerUpdate(d));
                }
                Step::SendOpus(frame) => {
                    if let Some(s) = h.state.session() {
                        let _ = s.queue_opus(&frame);
                    }
                    h.collect();
                }
                Step::StopSpeaking => { if let Some(s) = h.state.session() { s.stop_speaking(); } h.collect(); }
                Step::Poll => {
                    let now = h.now;
                    if let Some(s) = h.state.session() {
                        while let Some(transmit) = s.poll_transmit(now, &mut buf) {
                            // Audio only with a negotiated key: the packet is well-formed RTP.
                            let packet = &buf[..transmit.len];
                            prop_assert_eq!(&packet[..2], &[0x80, 0x78]);
                            prop_assert!(packet.len() >= 12 + 1 + 20);
                        }
                    }
                    h.collect();
                }
            }
            prop_assert!(h.now >= before);
            // Once closed, closed forever.
            if closed {
                prop_assert!(h.state.error().is_some());
            }
            closed = h.state.error().is_some();
            // The drain always ends with a wake-up in the future (or Idle).
            match h.log.last() {
                Some(Output::WakeAt(_)) | Some(Output::Idle) => {}
                other => prop_assert!(false, "drain ended with {:?}", other),
            }
        }
    }
}
