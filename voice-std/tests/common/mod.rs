//! voice-std's side of the shared adapter cases: the server runs on its own Tokio runtime, the
//! client is the blocking adapter. The scenarios and assertions are `voice_sim::adapter_cases`,
//! shared with voice-tokio's tests.
#![allow(dead_code)]

use std::ops::Deref;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use voice_proto::gateway::VoiceServerDispatch;
use voice_proto::id::GuildId;
use voice_proto::secret::Token;
pub use voice_sim::adapter_cases::*;
use voice_sim::{ExpectedClient, Scenario, ServerConfig, VoiceServer};
use voice_std::{AudioStream, Connection, Event, Events, Item, Received, Voice, VoiceConfig};

/// voice-sim and the runtime it runs on.
pub struct Sim {
    runtime: tokio::runtime::Runtime,
    server: Option<VoiceServer>,
}

impl Sim {
    pub fn start(tls: bool, scenario: Scenario) -> Self {
        Self::with_config(server_config(tls, scenario))
    }

    pub fn with_config(config: ServerConfig) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for voice-sim");
        let server = runtime
            .block_on(VoiceServer::start(config))
            .expect("voice-sim starts");
        Self {
            runtime,
            server: Some(server),
        }
    }

    pub fn shutdown(mut self) -> voice_sim::Report {
        let server = self.server.take().expect("running");
        self.runtime.block_on(server.shutdown())
    }
}

impl Deref for Sim {
    type Target = VoiceServer;
    fn deref(&self) -> &VoiceServer {
        self.server.as_ref().expect("running")
    }
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

/// Queues every frame (paced at 20 ms by the media workers) and waits until all went out.
pub fn play(connection: &Connection, frames: &[Vec<u8>]) {
    let sender = connection.opus_send();
    for frame in frames {
        sender
            .send(Bytes::copy_from_slice(frame))
            .expect("the connection accepts frames");
    }
    connection.flush();
    // The last datagrams are in flight on loopback.
    std::thread::sleep(Duration::from_millis(50));
}

/// Every item of `stream` up to the end of a talk spurt (or `timeout`).
pub fn until_spurt_end(stream: &AudioStream, timeout: Duration) -> Vec<Received> {
    let deadline = Instant::now() + timeout;
    let mut items = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Some(received) = stream.recv_timeout(left) else {
            break;
        };
        let end = matches!(received.item, Item::SpurtEnded(_));
        items.push(received);
        if end {
            break;
        }
    }
    items
}

/// Reads events until `pred` matches one (or the timeout).
pub fn wait_for_event(
    events: &Events,
    timeout: Duration,
    mut pred: impl FnMut(&Event) -> bool,
) -> Option<Event> {
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let event = events.recv_timeout(left)?;
        if pred(&event) {
            return Some(event);
        }
    }
    None
}

/// The VOICE_SERVER_UPDATE that sends `client` to its server.
pub fn server_update(client: &ExpectedClient) -> VoiceServerDispatch {
    VoiceServerDispatch {
        token: Token::new(client.token.clone()),
        guild_id: GuildId(client.guild_id),
        endpoint: Some(client.endpoint.clone()),
    }
}

/// Plays the main gateway on a thread: logs every op 4 and answers each join with both
/// dispatches for `client`.
pub fn fake_main_gateway(
    voice: Voice,
    client: ExpectedClient,
    ops: mpsc::Receiver<String>,
    log: mpsc::Sender<serde_json::Value>,
) {
    std::thread::spawn(move || {
        for op4 in ops {
            let value: serde_json::Value = serde_json::from_str(&op4).expect("op 4 is JSON");
            let _ = log.send(value.clone());
            if value["d"]["channel_id"].is_null() {
                continue; // a leave
            }
            voice.handle_voice_server_update(server_update(&client));
            let state = format!(
                r#"{{"guild_id":"{}","channel_id":"{}","user_id":"{}","session_id":"{}"}}"#,
                client.guild_id, client.channel_id, client.user_id, client.session_id
            );
            voice
                .handle_dispatch("VOICE_STATE_UPDATE", &state)
                .expect("a well-formed dispatch");
        }
    });
}
