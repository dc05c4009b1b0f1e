//! Garbage from the server (an unknown opcode, malformed JSON, an unexpected binary frame) is
//! reported and ignored; audio continues.

mod common;

use common::*;
use voice_tokio::{Connection, Event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_does_not_interrupt_audio() {
    let server = start_server(false, garbage()).await;
    let client = server.expect_client();
    let connection = Connection::connect(client.connection_info(), client_config(&server))
        .await
        .expect("connects");
    let frames = sample_frames(40);
    play(&connection, &frames).await;
    let mut unknown = 0;
    let mut ignored = 0;
    while let Some(event) = connection.events().try_recv() {
        match event {
            Event::UnknownOpcode { op: 99, .. } => unknown += 1,
            Event::Ignored { .. } => ignored += 1,
            Event::Closed { error } => panic!("connection ended: {error}"),
            _ => {}
        }
    }
    assert_eq!(unknown, 2, "the JSON and the binary op 99");
    assert!(ignored >= 1, "the malformed JSON");
    connection.disconnect().await;
    assert_byte_exact(&server, client.client, &frames);
    assert_eq!(server.report().clients[0].connections.len(), 1);
}
