//! When a datagram reached a world node's socket, as the kernel stamped it.
//!
//! The world judges the crawler's etiquette (a sample inside the interval, a 26th datagram
//! in 10 s) by the times its queries arrive. A world under load reads its sockets late, and
//! by seconds when the machine is busy: judged by the time it *reads* a query, the world's
//! own lateness counts against the crawler (one query read 7 s late and the next read on
//! time look 7 s closer than they were sent). The kernel stamps each datagram as it is
//! queued (`SO_TIMESTAMPNS`), so the ledger takes that time instead.
//!
//! Hand-written over `libc` because neither tokio nor socket2 reads the control messages of
//! `recvmsg`; it is a few lines around one system call. When a stamp is missing (the option
//! refused, a kernel without it) the time of reading stands in, as before.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Ask the kernel to stamp each datagram `socket` receives. An error leaves the socket as
/// it was (arrivals then fall back to the time of reading).
pub(super) fn enable(socket: &UdpSocket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live c_int on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Receive one datagram into `buf`: its length, its source, and when it arrived (the
/// kernel's stamp turned into an [`Instant`], or now if it has none).
pub(super) async fn recv(
    socket: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Instant)> {
    socket
        .async_io(Interest::READABLE, || recv_now(socket, buf))
        .await
}

/// One non-blocking `recvmsg`.
fn recv_now(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, Instant)> {
    // u64s so the control buffer is aligned for `cmsghdr`; room for one timespec and more.
    let mut control = [0u64; 16];
    // SAFETY: an all-zero sockaddr_storage is a valid (empty) value.
    let mut name: libc::sockaddr_storage = unsafe { zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid; its pointers are set below.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 16]>() as _;
    // SAFETY: every pointer in `msg` points at a live buffer of the length given beside it,
    // and they outlive the call.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    let read_at = (Instant::now(), SystemTime::now());
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let from = source(&name).ok_or_else(|| io::Error::other("datagram from no IP address"))?;
    // SAFETY: `msg` is the header recvmsg just filled; the CMSG_* walk stays inside
    // `msg_controllen` bytes of `control`, and CMSG_DATA of an SCM_TIMESTAMPNS message
    // holds one timespec (read unaligned, as the kernel does not promise its alignment).
    let stamp = unsafe {
        let mut stamp = None;
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                stamp = Some(ts);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        stamp
    };
    let arrived = stamp
        .and_then(|ts| {
            let since_epoch = Duration::new(
                u64::try_from(ts.tv_sec).ok()?,
                u32::try_from(ts.tv_nsec).ok()?,
            );
            Some(arrival(read_at, UNIX_EPOCH + since_epoch))
        })
        .unwrap_or(read_at.0);
    Ok((n as usize, from, arrived))
}

/// The [`Instant`] of a datagram stamped `stamp` (wall clock) and read at `read_at` (both
/// clocks): the read time less how long it waited. A stamp after the read (the wall clock
/// stepped) counts as no wait.
fn arrival(read_at: (Instant, SystemTime), stamp: SystemTime) -> Instant {
    let waited = read_at.1.duration_since(stamp).unwrap_or(Duration::ZERO);
    read_at.0.checked_sub(waited).unwrap_or(read_at.0)
}

/// The address in a `sockaddr_storage` filled by the kernel, if it is IPv4 or IPv6.
fn source(name: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(name.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it can hold.
            let a: libc::sockaddr_in =
                unsafe { std::ptr::read((name as *const libc::sockaddr_storage).cast()) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6, which it can hold.
            let a: libc::sockaddr_in6 =
                unsafe { std::ptr::read((name as *const libc::sockaddr_storage).cast()) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A datagram read late is dated when it arrived: the wait before the read is seen.
    #[tokio::test]
    async fn a_datagram_read_late_is_dated_by_its_arrival() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        enable(&rx).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // Linux turns receive stamps on for the whole system a moment after the first
        // socket asks (a deferred switch): until then a datagram is stamped when read.
        // Wait until one that waited 20 ms is dated by its arrival.
        let mut buf = [0u8; 64];
        let mut on = false;
        for _ in 0..100 {
            tx.send_to(b"warm", rx.local_addr().unwrap()).await.unwrap();
            std::thread::sleep(Duration::from_millis(20));
            let (_, _, arrived) = recv(&rx, &mut buf).await.unwrap();
            if arrived.elapsed() >= Duration::from_millis(20) {
                on = true;
                break;
            }
        }
        assert!(on, "no datagram was ever dated by its arrival");
        let wait = Duration::from_millis(300);
        tx.send_to(b"d1:ai0ee", rx.local_addr().unwrap())
            .await
            .unwrap();
        // The reader is busy elsewhere while the datagram waits in the queue.
        std::thread::sleep(wait);
        let (n, from, arrived) = recv(&rx, &mut buf).await.unwrap();
        let read = Instant::now();
        assert_eq!(&buf[..n], b"d1:ai0ee");
        assert_eq!(from, tx.local_addr().unwrap());
        assert!(
            read.duration_since(arrived) >= wait,
            "dated {:?} before its read, after waiting {wait:?}",
            read.duration_since(arrived)
        );
    }

    /// IPv6 sources are read too.
    #[tokio::test]
    async fn an_ipv6_source_is_read() {
        let Ok(rx) = UdpSocket::bind("[::1]:0").await else {
            return; // no IPv6 loopback on this machine
        };
        enable(&rx).unwrap();
        let tx = UdpSocket::bind("[::1]:0").await.unwrap();
        tx.send_to(b"x", rx.local_addr().unwrap()).await.unwrap();
        let mut buf = [0u8; 8];
        let (n, from, _) = recv(&rx, &mut buf).await.unwrap();
        assert_eq!((n, from), (1, tx.local_addr().unwrap()));
    }

    /// A stamp after the read (the wall clock stepped back) means no wait; one before it
    /// dates the datagram that much earlier.
    #[test]
    fn a_stamp_after_the_read_means_no_wait() {
        let now = (Instant::now(), SystemTime::now());
        assert_eq!(arrival(now, now.1 + Duration::from_secs(5)), now.0);
        let early = arrival(now, now.1 - Duration::from_secs(2));
        assert_eq!(now.0.duration_since(early), Duration::from_secs(2));
    }
}
