//! A complete voice connection driven by hand against a scripted in-memory voice server: join,
//! handshake, one second of audio, the trailing silence, a resume after close 4015, and leaving.
//! Everything the client would put on the wire is printed.
//!
//! Run: `cargo run --release -p voice-proto --example hand_driven_call`

#[path = "../tests/support/mod.rs"]
mod support;

use support::{server_dispatch, state_dispatch, test_config, Harness, TOKEN};
use voice_proto::payload::ServerMessage;
use voice_proto::rtp::SILENCE_FRAME;
use voice_proto::{Input, Output};

fn show(outputs: &[Output]) {
    for output in outputs {
        match output {
            Output::MainGateway(op4) => println!("  main gateway <- {}", op4.to_gateway_json()),
            Output::OpenWebSocket { url } => println!("  open websocket {url}"),
            Output::SendText(text) => println!("  websocket   <- {}", redact(text)),
            Output::SendBinary(bytes) => println!("  websocket   <- binary, {} bytes", bytes.len()),
            Output::CloseWebSocket { code } => println!("  close websocket with {code}"),
            Output::BindUdp { remote } => println!("  bind UDP for {remote}"),
            Output::Transmit { to, data } => println!("  udp {to} <- {} bytes", data.len()),
            Output::Event(event) => println!("  event: {event:?}"),
            Output::WakeAt(_) | Output::Idle => {}
        }
    }
}

/// The token is a secret: never print it.
fn redact(text: &str) -> String {
    text.replace(TOKEN, "<token>")
}

fn main() {
    println!("join: op 4 on the main gateway, then both dispatches");
    let mut h = Harness::join(test_config());
    show(&h.log.clone());
    show(&h.feed(Input::VoiceStateUpdate(state_dispatch())));
    show(&h.feed(Input::VoiceServerUpdate(server_dispatch(TOKEN))));

    println!(
        "handshake: Identify, Hello, Ready, IP discovery, Select Protocol, Session Description"
    );
    show(&h.handshake_on_new_socket());

    println!("one second of audio (50 frames of 20 ms), then five silence frames");
    let mut sent = 0;
    let mut bytes = 0;
    for i in 0..50u8 {
        // The playout sends each frame in its 20 ms slot (the fake clock moves to it).
        let (outs, datagram) = h.send_frame(&[0xFC, i, i, i]);
        show(&outs);
        let (_, opus) = h.server.open_audio(&datagram);
        assert_eq!(opus, [0xFC, i, i, i]);
        sent += 1;
        bytes += datagram.len();
        show(&h.feed(Input::Timer));
    }
    // The queue ran dry: the underrun policy sends the trailing silence, then Speaking 0.
    for datagram in h.play_all() {
        assert_eq!(h.server.open_audio(&datagram).1, SILENCE_FRAME);
        bytes += datagram.len();
        sent += 1;
    }
    show(&h.collect());
    println!("  {sent} encrypted RTP packets, {bytes} bytes, all opened by the server");

    println!("the voice server crashes (close 4015): resume with seq_ack");
    show(&h.feed(Input::WebSocketClosed { code: Some(4015) }));
    show(&h.feed(Input::WebSocketOpened));
    let hello = h.server.hello();
    show(&h.text(&hello));
    let resumed = h.server.frame(ServerMessage::Resumed);
    show(&h.text(&resumed));

    println!("leave: op 4 with a null channel, close 1000");
    h.session().disconnect();
    show(&h.collect());
    let stats = h.session().stats();
    println!("done: {stats:?}");
}
