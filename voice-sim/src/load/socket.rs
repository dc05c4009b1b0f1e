//! Counting mode's UDP socket: a large receive buffer, kernel receive timestamps
//! (`SO_TIMESTAMPNS`), batched reads (`recvmmsg`), and the kernel's drop count. Linux only; on
//! other systems the same interface reads one datagram per call and stamps it itself.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Receive buffer per datagram: larger than any valid packet, so oversized ones are seen whole.
pub(crate) const DATAGRAM_BUFFER: usize = 2048;

/// Datagrams read per `recvmmsg` call.
pub(crate) const BATCH: usize = 64;

/// Now on the clock of kernel receive timestamps (`CLOCK_REALTIME`), in nanoseconds.
pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One received datagram's length, source and kernel receive time.
#[derive(Clone, Copy, Debug, Default)]
struct Meta {
    len: usize,
    from: Option<SocketAddr>,
    at_ns: Option<i64>,
}

/// Reads datagrams in batches with their kernel receive timestamps.
pub(crate) struct Receiver {
    socket: UdpSocket,
    buffers: Vec<u8>,
    meta: [Meta; BATCH],
    #[cfg(target_os = "linux")]
    headers: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrIn>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// A receiver on a socket set up by [`configure`]; allocates the batch buffers once. (Made
    /// on the thread that reads: the batch headers hold raw pointers and stay there.)
    pub(crate) fn new(socket: UdpSocket) -> Self {
        Self {
            socket,
            buffers: vec![0; BATCH * DATAGRAM_BUFFER],
            meta: [Meta::default(); BATCH],
            #[cfg(target_os = "linux")]
            headers: imp::headers(),
        }
    }

    /// The socket (for sending answers).
    pub(crate) fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Reads every datagram queued now, without blocking, handing each to `each` with its source
    /// and kernel receive time (nanoseconds, [`now_ns`]'s clock). Returns how many were read.
    pub(crate) fn drain(
        &mut self,
        mut each: impl FnMut(&mut [u8], SocketAddr, Option<i64>),
    ) -> io::Result<usize> {
        let mut total = 0;
        loop {
            let received = self.batch()?;
            for (meta, buffer) in self
                .meta
                .iter()
                .zip(self.buffers.chunks_exact_mut(DATAGRAM_BUFFER))
                .take(received)
            {
                let (Some(from), Some(data)) = (meta.from, buffer.get_mut(..meta.len)) else {
                    continue;
                };
                each(data, from, meta.at_ns);
            }
            total += received;
            if received < BATCH {
                return Ok(total);
            }
        }
    }

    /// Waits until a datagram is queued or `timeout` passed.
    pub(crate) fn wait(&self, timeout: Duration) -> io::Result<()> {
        imp::wait(&self.socket, timeout)
    }

    #[cfg(target_os = "linux")]
    fn batch(&mut self) -> io::Result<usize> {
        imp::batch(
            &self.socket,
            &mut self.headers,
            &mut self.buffers,
            &mut self.meta,
        )
    }

    #[cfg(not(target_os = "linux"))]
    fn batch(&mut self) -> io::Result<usize> {
        imp::batch(&self.socket, &mut self.buffers, &mut self.meta)
    }
}

/// Sets a counting socket up: non-blocking, a receive buffer of `receive_buffer` bytes if the
/// kernel allows, kernel receive timestamps. Returns the receive buffer the kernel granted.
pub(crate) fn configure(socket: &UdpSocket, receive_buffer: usize) -> io::Result<Option<usize>> {
    socket.set_nonblocking(true)?;
    imp::configure(socket, receive_buffer)
}

/// Datagrams the kernel dropped on the UDP socket bound to `port` (the `drops` column of
/// `/proc/net/udp`), when known.
pub(crate) fn kernel_drops(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/udp").ok()?;
    let local = format!(":{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let mut fields = line.split_whitespace();
        let address = fields.nth(1)?;
        if !address.ends_with(&local) {
            return None;
        }
        line.split_whitespace().last()?.parse().ok()
    })
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::io::IoSliceMut;
    use std::net::{SocketAddr, UdpSocket};
    use std::os::fd::{AsFd, AsRawFd};
    use std::time::Duration;

    use nix::errno::Errno;
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::socket::{
        getsockopt, recvmmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, MultiHeaders,
        SockaddrIn,
    };
    use nix::sys::time::TimeSpec;

    use super::{Meta, BATCH, DATAGRAM_BUFFER};

    /// Asks for the receive buffer (forced when privileged), turns timestamps on; returns the
    /// buffer the kernel granted.
    pub(super) fn configure(socket: &UdpSocket, wanted: usize) -> io::Result<Option<usize>> {
        if setsockopt(socket, sockopt::RcvBufForce, &wanted).is_err() {
            if let Err(error) = setsockopt(socket, sockopt::RcvBuf, &wanted) {
                tracing::warn!(%error, wanted, "cannot set the counting socket's receive buffer");
            }
        }
        setsockopt(socket, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)?;
        Ok(getsockopt(socket, sockopt::RcvBuf).ok())
    }

    /// Headers for one batch, each with room for the timestamp control message.
    pub(super) fn headers() -> MultiHeaders<SockaddrIn> {
        MultiHeaders::preallocate(BATCH, Some(nix::cmsg_space!(TimeSpec)))
    }

    fn stamp(ts: &TimeSpec) -> i64 {
        ts.tv_sec()
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec())
    }

    pub(super) fn batch(
        socket: &UdpSocket,
        headers: &mut MultiHeaders<SockaddrIn>,
        buffers: &mut [u8],
        meta: &mut [Meta; BATCH],
    ) -> io::Result<usize> {
        loop {
            match receive(socket, headers, buffers, meta) {
                Ok((received, lost_stamp)) => {
                    if lost_stamp {
                        // The kernel shrinks each header's control length to what it wrote;
                        // give them their full room back so later timestamps fit.
                        *headers = self::headers();
                    }
                    return Ok(received);
                }
                Err(Errno::EAGAIN) => return Ok(0),
                // An ICMP error queued by an earlier send, or a signal: read again.
                Err(Errno::EINTR | Errno::ECONNREFUSED) => continue,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// One `recvmmsg` call: how many datagrams, and whether one came without a timestamp.
    fn receive(
        socket: &UdpSocket,
        headers: &mut MultiHeaders<SockaddrIn>,
        buffers: &mut [u8],
        meta: &mut [Meta; BATCH],
    ) -> Result<(usize, bool), Errno> {
        let mut chunks = buffers.chunks_exact_mut(DATAGRAM_BUFFER);
        let mut slices: [[IoSliceMut<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
        let results = recvmmsg(
            socket.as_raw_fd(),
            headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        let mut count = 0;
        let mut lost_stamp = false;
        for (message, slot) in results.zip(meta.iter_mut()) {
            let at_ns = message.cmsgs().ok().and_then(|mut cmsgs| {
                cmsgs.find_map(|cmsg| match cmsg {
                    ControlMessageOwned::ScmTimestampns(ts) => Some(stamp(&ts)),
                    _ => None,
                })
            });
            lost_stamp |= at_ns.is_none();
            *slot = Meta {
                len: message.bytes.min(DATAGRAM_BUFFER),
                from: message.address.map(SocketAddr::from),
                at_ns,
            };
            count += 1;
        }
        Ok((count, lost_stamp))
    }

    pub(super) fn wait(socket: &UdpSocket, timeout: Duration) -> io::Result<()> {
        let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(_) | Err(Errno::EINTR) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;
    use std::net::UdpSocket;
    use std::time::Duration;

    use super::{Meta, BATCH, DATAGRAM_BUFFER};

    pub(super) fn configure(_socket: &UdpSocket, _wanted: usize) -> io::Result<Option<usize>> {
        Ok(None)
    }

    pub(super) fn batch(
        socket: &UdpSocket,
        buffers: &mut [u8],
        meta: &mut [Meta; BATCH],
    ) -> io::Result<usize> {
        let mut count = 0;
        for (slot, buffer) in meta
            .iter_mut()
            .zip(buffers.chunks_exact_mut(DATAGRAM_BUFFER))
        {
            match socket.recv_from(buffer) {
                Ok((len, from)) => {
                    *slot = Meta {
                        len,
                        from: Some(from),
                        at_ns: None,
                    };
                    count += 1;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::ConnectionReset => continue,
                Err(error) => return Err(error),
            }
        }
        Ok(count)
    }

    pub(super) fn wait(_socket: &UdpSocket, timeout: Duration) -> io::Result<()> {
        std::thread::sleep(timeout.min(Duration::from_millis(1)));
        Ok(())
    }
}
