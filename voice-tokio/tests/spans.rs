//! Every log line of a connection's driver is in a `voice_connection` span naming its guild and
//! channel; no span or event field carries the voice token or the session id.

mod common;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use voice_sim::Scenario;

/// Records every span (name and fields) and every event's fields as text.
#[derive(Default)]
struct Recorder {
    next: AtomicU64,
    spans: Mutex<Vec<(String, String)>>,
    events: Mutex<Vec<String>>,
}

struct Text<'a>(&'a mut String);

impl Visit for Text<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

struct Shared(Arc<Recorder>);

impl Subscriber for Shared {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = String::new();
        span.record(&mut Text(&mut fields));
        let name = span.metadata().name().to_owned();
        self.0.spans.lock().unwrap().push((name, fields));
        Id::from_u64(self.0.next.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut fields = String::new();
        values.record(&mut Text(&mut fields));
        self.0.events.lock().unwrap().push(fields);
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = String::new();
        event.record(&mut Text(&mut fields));
        self.0.events.lock().unwrap().push(fields);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_span_names_guild_and_channel_and_no_secret() {
    let recorder = Arc::new(Recorder::default());
    tracing::subscriber::set_global_default(Shared(Arc::clone(&recorder))).expect("first");
    let server = start_server(true, Scenario::default()).await;
    let client = server.expect_client();
    let connection =
        voice_tokio::Connection::connect(client.connection_info(), client_config(&server))
            .await
            .expect("connects");
    play(&connection, &sample_frames(5)).await;
    connection.disconnect().await;

    let spans = recorder.spans.lock().unwrap().clone();
    let ours: Vec<_> = spans
        .iter()
        .filter(|(name, _)| name == "voice_connection")
        .collect();
    assert_eq!(ours.len(), 1, "{spans:?}");
    let fields = &ours[0].1;
    assert!(
        fields.contains(&format!("guild_id={}", client.guild_id)),
        "{fields}"
    );
    assert!(
        fields.contains(&format!("channel_id={}", client.channel_id)),
        "{fields}"
    );
    let events = recorder.events.lock().unwrap().join("\n");
    for (what, secret) in [("token", &client.token), ("session id", &client.session_id)] {
        assert!(!fields.contains(secret.as_str()), "{what} in the span");
        assert!(
            !events.contains(secret.as_str()),
            "{what} in an event:\n{events}"
        );
    }
}
