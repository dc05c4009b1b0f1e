//! The UDP socket: sending from the driver thread, receiving on a thread of its own.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use voice_adapter::udp_bind_address;

use crate::driver::DriverInput;

/// How often the receive thread checks whether it should stop.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Larger than any RTP packet Discord sends.
const RECEIVE_BUFFER: usize = 2048;

/// The driver's end of one UDP socket. Dropping it stops the receive thread.
pub(crate) struct UdpHandle {
    pub(crate) generation: u64,
    pub(crate) socket: UdpSocket,
    stop: Arc<AtomicBool>,
}

impl Drop for UdpHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Binds a socket for media with `remote` (on loopback when the server is) and starts its
/// receive thread.
pub(crate) fn spawn(
    generation: u64,
    remote: SocketAddr,
    inbox: Sender<DriverInput>,
) -> std::io::Result<(UdpHandle, JoinHandle<()>)> {
    let socket = UdpSocket::bind(udp_bind_address(remote))?;
    let reader = socket.try_clone()?;
    reader.set_read_timeout(Some(POLL_INTERVAL))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("voice-udp".to_owned())
        .spawn(move || {
            let mut buf = [0u8; RECEIVE_BUFFER];
            while !stopped.load(Ordering::Relaxed) {
                // Timeouts let us check `stopped`; ICMP errors are the core's timers' business.
                if let Ok((len, from)) = reader.recv_from(&mut buf) {
                    let data = buf.get(..len).unwrap_or_default().to_vec();
                    if inbox
                        .send(DriverInput::Udp(generation, from, data))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        })?;
    Ok((
        UdpHandle {
            generation,
            socket,
            stop,
        },
        thread,
    ))
}
