//! `SharedVoice` allows one live join per guild and routes its dispatches to it; `PendingJoin`
//! tells the waiting caller once, and notices when that caller went away (issue 14, row 2).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex, Weak};

use voice_adapter::{Dispatch, DispatchRoute, JoinError, PendingJoin, SharedVoice};
use voice_proto::gateway::VoiceStateUpdate;
use voice_proto::id::{ChannelId, GuildId, UserId};

/// A driver's inbox; the driver has ended once the test drops the `Arc`.
struct Route(Weak<Mutex<Vec<Dispatch>>>);

impl DispatchRoute for Route {
    fn deliver(&self, dispatch: Dispatch) -> bool {
        let inbox = self.0.upgrade();
        inbox.map(|i| i.lock().unwrap().push(dispatch)).is_some()
    }
    fn is_open(&self) -> bool {
        self.0.strong_count() > 0
    }
}

#[test]
fn one_live_join_per_guild_receives_its_dispatches() {
    let voice: SharedVoice<Route> =
        SharedVoice::new(UserId(1), |_: &VoiceStateUpdate| Ok(()), Default::default());
    let join = |inbox: &Arc<_>| {
        let route = Route(Arc::downgrade(inbox));
        voice.begin_join(GuildId(7), ChannelId(8), Default::default(), route)
    };
    let server = |d| voice.handle_dispatch("VOICE_SERVER_UPDATE", d);
    let update = r#"{"token":"t","guild_id":"7","endpoint":"voice.example.com:443"}"#;
    let (first, second) = (Arc::default(), Arc::default());
    assert!(join(&first).is_ok());
    assert!(matches!(join(&second), Err(JoinError::AlreadyConnected(_))));
    assert_eq!(server(update), Ok(true));
    assert_eq!(voice.handle_dispatch("MESSAGE_CREATE", "{}"), Ok(false));
    assert!(voice.handle_dispatch("VOICE_STATE_UPDATE", "{").is_err());
    assert!(matches!(first.lock().unwrap()[..], [Dispatch::Server(_)]));
    // The first driver ended: the guild can be joined again, its dispatches go to the new one.
    drop(first);
    assert!(join(&second).is_ok() && server(update) == Ok(true));
    assert_eq!(second.lock().unwrap().len(), 1);
}

#[test]
fn a_refused_op_4_fails_a_pending_join_once() {
    let (tx, told) = mpsc::channel();
    let mut join = PendingJoin::new(move |outcome| tx.send(outcome).unwrap());
    let refuse = |_: &VoiceStateUpdate| Err("closed".to_owned());
    let update = VoiceStateUpdate::leave(GuildId(7));
    assert!(join.send_voice_state_update(Some(&refuse), &update));
    assert!(!join.send_voice_state_update(Some(&refuse), &update));
    let told: Vec<_> = told.try_iter().collect();
    assert!(matches!(&told[..], [Err(JoinError::Gateway(e))] if e == "closed"));
}

#[test]
fn a_caller_that_went_away_is_noticed_while_the_join_is_pending() {
    let woken = Arc::new(AtomicU32::new(0));
    let wake = {
        let woken = Arc::clone(&woken);
        move || {
            woken.fetch_add(1, Ordering::SeqCst);
        }
    };
    let (join, caller) = PendingJoin::with_caller(|_| {}, wake);
    assert!(!join.caller_left());
    drop(caller); // the `join_channel` future was dropped
    assert_eq!(woken.load(Ordering::SeqCst), 1, "the driver is woken");
    assert!(join.caller_left(), "the driver must leave the channel");
}

#[test]
fn a_caller_that_got_its_outcome_has_not_left() {
    let (tx, told) = mpsc::channel();
    let (mut join, caller) =
        PendingJoin::with_caller(move |outcome| tx.send(outcome).unwrap(), || {});
    join.on_event(&voice_proto::Event::Resumed);
    assert!(told.try_recv().is_err(), "only Connected or Closed tell");
    let connected = voice_proto::Event::Connected {
        ssrc: 1,
        mode: voice_proto::crypto::EncryptionMode::AeadAes256GcmRtpSize,
        dave_protocol_version: 0,
    };
    join.on_event(&connected);
    assert!(matches!(told.try_recv(), Ok(Ok(()))));
    // The caller returns with its connection: the `JoinCaller` goes, nothing is pending.
    drop(caller);
    assert!(!join.caller_left());
}

#[test]
fn the_registry_keeps_each_guilds_connection_while_its_driver_listens() {
    let voice: SharedVoice<Route, &str> =
        SharedVoice::new(UserId(1), |_: &VoiceStateUpdate| Ok(()), Default::default());
    let (a, b) = (Arc::default(), Arc::default());
    let begin = |guild, inbox: &Arc<_>| {
        let route = Route(Arc::downgrade(inbox));
        voice.begin_join(GuildId(guild), ChannelId(1), Default::default(), route)
    };
    assert!(begin(7, &a).is_ok() && begin(9, &b).is_ok());
    // Joining: routed, but no connection to hand out yet.
    assert_eq!(voice.connection(GuildId(7)), None);
    assert_eq!(
        voice.remove(GuildId(7)),
        None,
        "a join in progress is not removed"
    );
    voice.register(GuildId(7), "seven");
    voice.register(GuildId(9), "nine");
    voice.register(GuildId(11), "never joined");
    assert_eq!(voice.connection(GuildId(7)), Some("seven"));
    assert_eq!(voice.connection(GuildId(11)), None);
    let mut all = voice.connections();
    all.sort();
    assert_eq!(all, [(GuildId(7), "seven"), (GuildId(9), "nine")]);
    // Guild 9's driver ended by itself: forgotten, and joinable again.
    drop(b);
    assert_eq!(voice.connections(), [(GuildId(7), "seven")]);
    assert_eq!(voice.connection(GuildId(9)), None);
    // Leaving guild 7 takes its connection out.
    assert_eq!(voice.remove(GuildId(7)), Some("seven"));
    assert_eq!(voice.connection(GuildId(7)), None);
    assert!(begin(7, &a).is_ok(), "a removed guild can be joined again");
}
