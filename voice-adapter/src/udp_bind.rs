//! Where to bind the media socket.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The local address (any port) for a UDP socket talking to `remote`: loopback when the voice
/// server is on loopback, the unspecified address of the same family otherwise.
pub fn udp_bind_address(remote: SocketAddr) -> SocketAddr {
    let local = match remote.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(ip) if ip.is_loopback() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(local, 0)
}
