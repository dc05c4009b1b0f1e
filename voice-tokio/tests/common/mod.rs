//! voice-tokio's side of the shared adapter cases: how to start the server and run the client
//! asynchronously. The scenarios and assertions are `voice_sim::adapter_cases`, shared with
//! voice-std's tests.
#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use voice_proto::gateway::VoiceServerDispatch;
use voice_proto::id::GuildId;
use voice_proto::secret::Token;
pub use voice_sim::adapter_cases::*;
use voice_sim::{ExpectedClient, Scenario, VoiceServer};
use voice_tokio::{AudioStream, Connection, Event, Item, Received, Voice, VoiceConfig};

pub async fn start_server(tls: bool, scenario: Scenario) -> VoiceServer {
    VoiceServer::start(server_config(tls, scenario))
        .await
        .expect("voice-sim starts")
}

/// A DAVE case's server: DAVE on and required (`dave_server_config`).
pub async fn start_dave_server(tls: bool, scenario: Scenario) -> VoiceServer {
    VoiceServer::start(dave_server_config(tls, scenario))
        .await
        .expect("voice-sim starts")
}

/// The shared client settings, plus the server's CA when it speaks TLS.
pub fn client_config(server: &VoiceServer) -> VoiceConfig {
    {
        let mut config = VoiceConfig::default();
        config.core = client_core_config(server);
        config.extra_root_certificates = server
            .ca_pem()
            .map(|pem| vec![pem.as_bytes().to_vec()])
            .unwrap_or_default();
        config
    }
}

/// Queues every frame (the driver paces them at 20 ms) and waits until all went out, plus the
/// trailing silence (`Connection::flush`).
pub async fn play(connection: &Connection, frames: &[Vec<u8>]) {
    let sender = connection.opus_send();
    for frame in frames {
        sender
            .send(Bytes::copy_from_slice(frame))
            .await
            .expect("the connection accepts frames");
    }
    connection.flush().await;
    // The last datagrams are in flight on loopback.
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Every event still queued, without waiting.
pub fn queued_events(connection: &mut Connection) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(event) = connection.events().try_recv() {
        events.push(event);
    }
    events
}

/// Every event up to and including the first that matches `pred` (all of them if none does
/// within `timeout`).
pub async fn events_until(
    connection: &mut Connection,
    timeout: Duration,
    mut pred: impl FnMut(&Event) -> bool,
) -> Vec<Event> {
    let mut events = Vec::new();
    let _ = tokio::time::timeout(timeout, async {
        while let Some(event) = connection.events().recv().await {
            let done = pred(&event);
            events.push(event);
            if done {
                return;
            }
        }
    })
    .await;
    events
}

/// Every item of `stream` up to the end of a talk spurt (or `timeout`).
pub async fn until_spurt_end(stream: &mut AudioStream, timeout: Duration) -> Vec<Received> {
    let mut items = Vec::new();
    let _ = tokio::time::timeout(timeout, async {
        while let Some(received) = stream.recv().await {
            let end = matches!(received.item, Item::SpurtEnded(_));
            items.push(received);
            if end {
                return;
            }
        }
    })
    .await;
    items
}

/// Collects events until `pred` matches one (or the timeout).
pub async fn wait_for_event(
    connection: &mut Connection,
    timeout: Duration,
    mut pred: impl FnMut(&Event) -> bool,
) -> Option<Event> {
    tokio::time::timeout(timeout, async {
        while let Some(event) = connection.events().recv().await {
            if pred(&event) {
                return Some(event);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// Plays the main gateway: logs every op 4 and answers each join with both dispatches for
/// `client`, the n-th join's VOICE_SERVER_UPDATE (from 0) carrying `token(n)` and `endpoint`.
pub fn fake_main_gateway(
    voice: Voice,
    client: ExpectedClient,
    mut ops: mpsc::UnboundedReceiver<String>,
    log: mpsc::UnboundedSender<serde_json::Value>,
    endpoint: String,
    token: impl Fn(usize) -> String + Send + 'static,
) {
    tokio::spawn(async move {
        let mut joins = 0;
        while let Some(op4) = ops.recv().await {
            let value: serde_json::Value = serde_json::from_str(&op4).expect("op 4 is JSON");
            let _ = log.send(value.clone());
            if value["d"]["channel_id"].is_null() {
                continue; // a leave
            }
            voice.handle_voice_server_update(VoiceServerDispatch {
                token: Token::new(token(joins)),
                guild_id: GuildId(client.guild_id),
                endpoint: Some(endpoint.clone()),
            });
            joins += 1;
            let state = format!(
                r#"{{"guild_id":"{}","channel_id":"{}","user_id":"{}","session_id":"{}","deaf":false,"mute":false}}"#,
                client.guild_id, client.channel_id, client.user_id, client.session_id
            );
            voice
                .handle_dispatch("VOICE_STATE_UPDATE", &state)
                .expect("a well-formed dispatch");
        }
    });
}
