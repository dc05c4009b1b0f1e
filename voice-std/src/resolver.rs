//! Host names are looked up on one small thread of the process, `voice-dns`, so that an event
//! loop never blocks on DNS. It starts with the first lookup and ends a moment after the last
//! one; URLs that carry an IP address (a local server's) never start it.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

/// How long the thread waits for another lookup before it ends.
const LINGER: Duration = Duration::from_secs(1);

type Reply = Box<dyn FnOnce(io::Result<Vec<SocketAddr>>) + Send>;

struct Lookup {
    host: String,
    port: u16,
    reply: Reply,
}

struct Lookups {
    queue: VecDeque<Lookup>,
    running: bool,
}

static LOOKUPS: Mutex<Lookups> = Mutex::new(Lookups {
    queue: VecDeque::new(),
    running: false,
});
static QUEUED: Condvar = Condvar::new();

fn lookups() -> MutexGuard<'static, Lookups> {
    LOOKUPS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Looks up `host` on the resolver thread and hands every address to `reply`, on that thread.
/// Fails only when the thread cannot be started.
pub(crate) fn resolve(
    host: String,
    port: u16,
    reply: impl FnOnce(io::Result<Vec<SocketAddr>>) + Send + 'static,
) -> io::Result<()> {
    let mut lookups = lookups();
    if !lookups.running {
        thread::Builder::new()
            .name("voice-dns".to_owned())
            .spawn(run)?;
        lookups.running = true;
    }
    lookups.queue.push_back(Lookup {
        host,
        port,
        reply: Box::new(reply),
    });
    QUEUED.notify_one();
    Ok(())
}

fn run() {
    let mut lookups = lookups();
    loop {
        if let Some(lookup) = lookups.queue.pop_front() {
            drop(lookups);
            let addresses = (lookup.host.as_str(), lookup.port)
                .to_socket_addrs()
                .map(Iterator::collect);
            (lookup.reply)(addresses);
            lookups = self::lookups();
            continue;
        }
        let (guard, waited) = QUEUED
            .wait_timeout(lookups, LINGER)
            .unwrap_or_else(PoisonError::into_inner);
        lookups = guard;
        if waited.timed_out() && lookups.queue.is_empty() {
            // Ends under the lock: a lookup queued after this starts a new thread.
            lookups.running = false;
            return;
        }
    }
}
