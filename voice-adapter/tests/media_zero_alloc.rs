//! The adapters' send path allocates nothing per packet: a real session (negotiated by hand with
//! voice-proto's payload types) shared through `SharedCore`, sent by a media worker on a real
//! UDP socket to a receiver on 127.0.0.1, with the application queueing frames meanwhile. A
//! global allocator counts every allocation of the process over a second of steady state, so the
//! test runs without libtest's harness (`harness = false`): no thread but its own in the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use voice_adapter::media::{bind_media_socket, DriverWake, MediaScheduler, SharedCore};
use voice_proto::discovery::{discovery_response, parse_discovery_request};
use voice_proto::id::{ChannelId, GuildId, UserId};
use voice_proto::payload::{Encoded, Hello, Ready, ServerFrame, ServerMessage, SessionDescription};
use voice_proto::secret::SecretKey;
use voice_proto::{AnyState, Config, ConnectionInfo, Identifying, Input, Output};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Wakes the test's stand-in for a driver thread, which takes the core's outputs (the op 5 the
/// playout queues before the first packet).
#[derive(Default)]
struct Wake {
    driver: std::sync::OnceLock<std::thread::Thread>,
}

impl DriverWake for Wake {
    fn wake_driver(&self) {
        if let Some(driver) = self.driver.get() {
            driver.unpark();
        }
    }
    fn wake_senders(&self) {}
}

fn text(seq: u64, message: ServerMessage) -> String {
    match (ServerFrame {
        seq: Some(seq),
        message,
    })
    .encode()
    {
        Encoded::Text(text) => text,
        Encoded::Binary(_) => unreachable!("JSON messages"),
    }
}

fn drain(state: &mut AnyState) -> Vec<Output> {
    let mut outputs = Vec::new();
    loop {
        let output = state.poll_output();
        let last = matches!(output, Output::WakeAt(_) | Output::Idle);
        outputs.push(output);
        if last {
            return outputs;
        }
    }
}

/// A session whose media server is `server`'s address.
fn session(server: &UdpSocket) -> AnyState {
    let now = Instant::now();
    let media = server.local_addr().unwrap();
    let info = ConnectionInfo {
        endpoint: "voice.example:443".into(),
        guild_id: GuildId(1),
        channel_id: Some(ChannelId(2)),
        user_id: UserId(3),
        session_id: "session".into(),
        token: voice_proto::secret::Token::new("token"),
    };
    let mut config = Config::default();
    config.max_dave_protocol_version = 0;

    let mut state = AnyState::from(Identifying::connect(now, config, info).unwrap());
    drain(&mut state);
    state.handle_input(now, Input::WebSocketOpened).unwrap();
    let hello = ServerMessage::Hello(Hello {
        heartbeat_interval: 60_000.0,
        v: Some(8),
    });
    state
        .handle_input(now, Input::Text(&text(1, hello)))
        .unwrap();
    let ready = ServerMessage::Ready(Ready {
        ssrc: 42,
        ip: media.ip().to_string(),
        port: media.port(),
        modes: vec!["aead_aes256_gcm_rtpsize".into()],
    });
    state
        .handle_input(now, Input::Text(&text(2, ready)))
        .unwrap();
    let request = drain(&mut state)
        .into_iter()
        .find_map(|o| match o {
            Output::Transmit { data, .. } => Some(data),
            _ => None,
        })
        .expect("a discovery request");
    let ssrc = parse_discovery_request(&request).unwrap();
    let answer = discovery_response(ssrc, "127.0.0.1".parse().unwrap(), 50_000);
    state
        .handle_input(
            now,
            Input::Datagram {
                from: media,
                data: &answer,
            },
        )
        .unwrap();
    let description = ServerMessage::SessionDescription(SessionDescription {
        mode: "aead_aes256_gcm_rtpsize".into(),
        secret_key: SecretKey::new([9; 32]),
        dave_protocol_version: 0,
    });
    state
        .handle_input(now, Input::Text(&text(3, description)))
        .unwrap();
    drain(&mut state);
    assert!(state.session().is_some(), "session established");
    state
}

fn main() {
    sending_through_the_media_worker_allocates_nothing_per_packet();
    println!("test sending_through_the_media_worker_allocates_nothing_per_packet ... ok");
}

fn sending_through_the_media_worker_allocates_nothing_per_packet() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let state = session(&server);
    let socket = bind_media_socket(server.local_addr().unwrap()).unwrap();
    let scheduler = MediaScheduler::new(1);
    let shared = SharedCore::new(state, Wake::default(), &scheduler).unwrap();
    shared.lock().set_media_socket(Some(socket.send));
    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let driver = {
        let (shared, running) = (
            std::sync::Arc::clone(&shared),
            std::sync::Arc::clone(&running),
        );
        std::thread::spawn(move || {
            while running.load(Ordering::SeqCst) {
                std::thread::park();
                let mut core = shared.lock();
                while !matches!(core.state.poll_output(), Output::WakeAt(_) | Output::Idle) {}
            }
        })
    };
    let _ = shared.wake().driver.set(driver.thread().clone());
    let frame = [0x5Au8; 120];
    let mut received = [0u8; 2048];
    let mut receive = |count: usize| {
        for _ in 0..count {
            let (len, _) = server.recv_from(&mut received).expect("a datagram");
            assert_eq!(len, 12 + 120 + 20);
        }
    };
    // The queue holds 50 frames; keep it between half and full so it never runs dry.
    let refill = |shared: &SharedCore<Wake>| {
        let mut core = shared.lock();
        let session = core.state.session().expect("session");
        while session.queue_opus(&frame).is_ok() {}
    };
    // Warm-up: op 5, the queue and the worker buffers reach their size.
    refill(&shared);
    refill(&shared);
    receive(30);
    refill(&shared);
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..4 {
        receive(20);
        refill(&shared);
    }
    let allocations = ALLOCATIONS.load(Ordering::SeqCst) - before;
    assert_eq!(allocations, 0, "allocations while 80 packets went out");
    running.store(false, Ordering::SeqCst);
    driver.thread().unpark();
    driver.join().unwrap();
}
