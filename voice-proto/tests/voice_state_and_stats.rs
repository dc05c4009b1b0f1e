//! The application's voice state after the join (a move to another channel, self-mute and
//! self-deafen through op 4) and the connection's figures in `Stats`: bytes, round trips of the
//! websocket (heartbeat ACK) and of the media path (keepalive echo).

mod support;

use std::time::Duration;

use support::*;
use voice_proto::id::ChannelId;
use voice_proto::payload::ClientMessage;
use voice_proto::{Input, Output, Stats};

const OTHER_CHANNEL: ChannelId = ChannelId(222);

fn op4s(outputs: &[Output]) -> Vec<voice_proto::gateway::VoiceStateUpdate> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::MainGateway(update) => Some(*update),
            _ => None,
        })
        .collect()
}

fn connected() -> Harness {
    let mut h = Harness::join(test_config());
    h.connect();
    assert!(h.state.session().is_some());
    h
}

#[test]
fn a_move_sends_op_4_with_the_new_channel_and_follows_the_new_server() {
    let mut h = connected();
    assert_eq!(h.state.voice_state(), Some((CHANNEL, false, false)));
    assert!(h.state.update_voice_state(OTHER_CHANNEL, false, false));
    let sent = op4s(&h.collect());
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].guild_id, GUILD);
    assert_eq!(sent[0].channel_id, Some(OTHER_CHANNEL));
    // Discord answers with our new voice state and a new server: a fresh Identify there.
    let mut state = state_dispatch();
    state.channel_id = Some(OTHER_CHANNEL);
    h.feed(Input::VoiceStateUpdate(state));
    let outs = h.feed(Input::VoiceServerUpdate(server_dispatch("new-token")));
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::OpenWebSocket { .. })));
    h.handshake_on_new_socket();
    assert!(
        h.state.session().is_some(),
        "established in the new channel"
    );
    // A later rejoin asks for the channel we moved to.
    assert_eq!(h.state.voice_state(), Some((OTHER_CHANNEL, false, false)));
}

#[test]
fn mute_and_deafen_after_the_join_go_out_as_op_4_in_the_same_channel() {
    let mut h = connected();
    assert!(h.state.update_voice_state(CHANNEL, true, false));
    assert!(h.state.update_voice_state(CHANNEL, true, true));
    let sent = op4s(&h.collect());
    let flags: Vec<_> = sent
        .iter()
        .map(|u| (u.channel_id, u.self_mute, u.self_deaf))
        .collect();
    assert_eq!(
        flags,
        [(Some(CHANNEL), true, false), (Some(CHANNEL), true, true)]
    );
    // The leave still goes out once, with the flags we hold.
    h.state.disconnect();
    let leave = op4s(&h.collect());
    assert_eq!(leave.len(), 1);
    assert_eq!(leave[0].channel_id, None);
}

#[test]
fn without_a_main_gateway_or_once_ended_nothing_is_sent() {
    let mut h = Harness::connect_without_gateway(test_config());
    assert_eq!(h.state.voice_state(), None);
    assert!(!h.state.update_voice_state(OTHER_CHANNEL, true, true));
    assert!(op4s(&h.collect()).is_empty());

    let mut h = connected();
    h.state.disconnect();
    h.collect();
    assert!(!h.state.update_voice_state(OTHER_CHANNEL, false, false));
    assert!(op4s(&h.collect()).is_empty());
}

#[test]
fn stats_count_bytes_both_ways_and_the_websocket_round_trip() {
    let mut h = connected();
    let before = h.session().stats();
    assert_eq!(before.websocket_round_trip, None);
    let (_, packet) = h.send_frame(&[0xF8, 0xFF, 0xFE]);
    let stats = h.session().stats();
    assert_eq!(stats.packets_sent, before.packets_sent + 1);
    assert_eq!(stats.bytes_sent, before.bytes_sent + packet.len() as u64);
    // The discovery answer was received during the handshake.
    assert!(before.datagrams_received >= 1 && before.bytes_received >= 74);

    // A heartbeat goes out; its ACK 30 ms later is the websocket round trip.
    let outs = h.advance(Duration::from_millis(HEARTBEAT_MS));
    let nonce = client_messages(&outs)
        .into_iter()
        .find_map(|m| match m {
            ClientMessage::Heartbeat(beat) => Some(beat.t),
            _ => None,
        })
        .expect("a heartbeat");
    h.now += Duration::from_millis(30);
    let ack = h.server.ack(nonce);
    h.text(&ack);
    assert_eq!(
        h.session().stats().websocket_round_trip,
        Some(Duration::from_millis(30))
    );
}

#[test]
fn a_keepalive_echo_is_the_udp_round_trip_and_anything_else_is_not() {
    let mut h = connected();
    let interval = test_config().udp_keepalive_interval;
    let until = h.now + interval + Duration::from_millis(1);
    let outs = h.run_until(until);
    let keepalive = transmits(&outs)
        .into_iter()
        .find(|(_, data)| data.len() == 8)
        .map(|(_, data)| data)
        .expect("a keepalive");
    let received = h.session().stats().datagrams_received;

    // From another address, or an unknown counter: not an echo.
    h.feed(Input::Datagram {
        from: client_public(),
        data: &keepalive,
    });
    h.feed(Input::Datagram {
        from: server_udp(),
        data: &[0xAA; 8],
    });
    assert_eq!(h.session().stats().udp_round_trip, None);

    h.now += Duration::from_millis(12);
    h.feed(Input::Datagram {
        from: server_udp(),
        data: &keepalive,
    });
    let stats: Stats = h.session().stats();
    assert!(stats
        .udp_round_trip
        .is_some_and(|rtt| rtt >= Duration::from_millis(12)));
    assert_eq!(stats.datagrams_received, received + 3);
    // The same echo again answers nothing more (its keepalive is forgotten).
    h.now += Duration::from_millis(500);
    h.feed(Input::Datagram {
        from: server_udp(),
        data: &keepalive,
    });
    assert_eq!(h.session().stats().udp_round_trip, stats.udp_round_trip);
}

#[cfg(not(feature = "dave"))]
#[test]
fn no_dave_epoch_without_dave() {
    let mut h = connected();
    assert_eq!(h.session().stats().dave_epoch, None);
}
