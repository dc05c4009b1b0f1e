//! Binding the media UDP socket.

use std::net::{SocketAddr, UdpSocket};

use crate::udp_bind_address;

/// One media UDP socket as two handles on the same socket: the driver receives on one, the
/// media worker sends audio on the other.
#[derive(Debug)]
pub struct MediaSocket {
    /// For the driver: non-blocking, to register with its event loop.
    pub receive: UdpSocket,
    /// For the media worker ([`CoreState::set_media_socket`](super::CoreState::set_media_socket)):
    /// non-blocking, so a full socket buffer loses a datagram instead of stalling every
    /// connection of the worker.
    pub send: UdpSocket,
}

/// Binds a non-blocking UDP socket for media with `remote` (loopback for a loopback server,
/// any address of the same family otherwise) and clones its handle.
pub fn bind_media_socket(remote: SocketAddr) -> std::io::Result<MediaSocket> {
    let receive = UdpSocket::bind(udp_bind_address(remote))?;
    receive.set_nonblocking(true)?;
    let send = receive.try_clone()?;
    Ok(MediaSocket { receive, send })
}
