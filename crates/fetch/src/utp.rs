//! uTP (BEP 29) connections for metadata fetching, over `librqbit-utp`.
//!
//! One [`UtpDialer`] is shared by every attempt of a fetcher (it travels in
//! [`FetchConfig::utp`](super::FetchConfig::utp)): it binds one UDP socket per IP family, lazily,
//! on the first connection of that family, on the local address that connection asks for
//! (`--bind`'s, see [`FetchConfig::local_ips`](super::FetchConfig::local_ips)) or else the
//! unspecified one, and an ephemeral port;
//! every outgoing uTP connection of that family is multiplexed over it (uTP tells connections
//! apart by their connection ids).
//!
//! The library sends a single SYN per connect and waits; [`UtpDialer::connect`] resends it (as a
//! new connect) after 1 s, 2 s, 4 s, ... until the connect deadline, so one lost datagram does
//! not lose the peer.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use librqbit_utp::{SocketOpts, UtpSocketUdp};
use tokio::sync::OnceCell;
use tokio::time::{timeout_at, Instant};

use super::PeerStream;
use super::{FailureKind, FetchFailure};

/// Wait for the first SYN's answer; each later wait is twice the one before.
const FIRST_SYN_WAIT: Duration = Duration::from_secs(1);

/// Receive buffer per connection. Metadata comes in 16 KiB pieces, requested a few at a time.
const RX_BUFFER: usize = 256 * 1024;

/// Connections at once per socket: the largest `--concurrency`, with room for connections
/// still closing.
const MAX_CONNECTIONS: usize = 8 * 1024;

/// The shared uTP sockets of a fetcher: one per IP family, bound on first use. Cloning shares
/// them. Two dialers compare equal whatever they hold: a dialer is a cache, not a setting.
#[derive(Clone, Default)]
pub struct UtpDialer {
    sockets: Arc<Sockets>,
}

#[derive(Default)]
struct Sockets {
    v4: OnceCell<Arc<UtpSocketUdp>>,
    v6: OnceCell<Arc<UtpSocketUdp>>,
}

impl UtpDialer {
    /// A dialer with no socket yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The local address of the socket for `peer`'s family, if it is bound.
    pub fn local_addr(&self, peer: &SocketAddr) -> Option<SocketAddr> {
        self.cell(peer).get().map(|s| s.bind_addr())
    }

    fn cell(&self, peer: &SocketAddr) -> &OnceCell<Arc<UtpSocketUdp>> {
        if peer.is_ipv4() {
            &self.sockets.v4
        } else {
            &self.sockets.v6
        }
    }

    /// The socket for `peer`'s family, bound now (on `local`, if given) if it is not yet.
    async fn socket(
        &self,
        peer: &SocketAddr,
        local: Option<IpAddr>,
    ) -> Result<Arc<UtpSocketUdp>, FetchFailure> {
        let any = match peer {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let bind = SocketAddr::new(local.unwrap_or(any), 0);
        let opts = SocketOpts {
            vsock_rx_bufsize_bytes: NonZeroUsize::new(RX_BUFFER),
            max_live_vsocks: NonZeroUsize::new(MAX_CONNECTIONS),
            disable_nagle: true,
            ..SocketOpts::default()
        };
        self.cell(peer)
            .get_or_try_init(|| async {
                UtpSocketUdp::new_udp_with_opts(bind, opts, Default::default()).await
            })
            .await
            .cloned()
            .map_err(|e| {
                FetchFailure::new(
                    FailureKind::LocalError,
                    format!("cannot bind a uTP socket on {bind}: {e}"),
                )
            })
    }

    /// Open a uTP connection to `peer` by `connect_by`, from the family's socket (bound on
    /// `local` if this is its first connection). Fails as `timeout` if no SYN is answered
    /// by then, as `refused` if the peer resets it or the socket cannot send.
    pub async fn connect(
        &self,
        peer: SocketAddr,
        local: Option<IpAddr>,
        connect_by: Instant,
    ) -> Result<Box<dyn PeerStream>, FetchFailure> {
        let socket = self.socket(&peer, local).await?;
        let start = Instant::now();
        let mut wait = FIRST_SYN_WAIT;
        loop {
            let now = Instant::now();
            if now >= connect_by {
                return Err(FetchFailure::new(
                    FailureKind::Timeout,
                    format!(
                        "no uTP connection within {:?}",
                        connect_by.saturating_duration_since(start)
                    ),
                ));
            }
            let try_by = (now + wait).min(connect_by);
            match timeout_at(try_by, socket.connect(peer)).await {
                Ok(Ok(stream)) => return Ok(Box::new(stream)),
                Ok(Err(e)) => {
                    return Err(FetchFailure::new(
                        FailureKind::Refused,
                        format!("uTP connect: {e}"),
                    ))
                }
                // Dropping the connect forgets it; the next one sends a new SYN.
                Err(_) => wait = wait.saturating_mul(2),
            }
        }
    }
}

impl fmt::Debug for UtpDialer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UtpDialer")
            .field("v4", &self.sockets.v4.get().map(|s| s.bind_addr()))
            .field("v6", &self.sockets.v6.get().map(|s| s.bind_addr()))
            .finish()
    }
}

impl PartialEq for UtpDialer {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for UtpDialer {}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn connects_and_carries_bytes_both_ways() {
        let server = UtpSocketUdp::new_udp("127.0.140.21:0".parse().unwrap())
            .await
            .unwrap();
        let peer = server.bind_addr();
        let serving = tokio::spawn(async move {
            let mut s = server.accept().await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
            s.flush().await.unwrap();
            // Keep the stream until the client has read the echo.
            let _ = s.read(&mut buf).await;
        });
        let dialer = UtpDialer::new();
        assert_eq!(dialer.local_addr(&peer), None);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut stream = dialer.connect(peer, None, deadline).await.unwrap();
        assert!(dialer.local_addr(&peer).is_some());
        stream.write_all(b"hello").await.unwrap();
        let mut back = [0u8; 5];
        stream.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"hello");
        drop(stream);
        serving.await.unwrap();
    }

    #[tokio::test]
    async fn a_silent_peer_gets_the_syn_again_and_times_out_at_the_deadline() {
        // A UDP socket that never answers, only counts what it gets.
        let silent = std::net::UdpSocket::bind("127.0.140.22:0").unwrap();
        let peer = silent.local_addr().unwrap();
        let dialer = UtpDialer::new();
        // Past the first wait for an answer, so that the SYN is sent twice.
        let deadline = Instant::now() + FIRST_SYN_WAIT + FIRST_SYN_WAIT.mul_f32(1.5);
        let failure = match dialer.connect(peer, None, deadline).await {
            Ok(_) => panic!("a silent peer was connected to"),
            Err(f) => f,
        };
        assert_eq!(failure.kind, FailureKind::Timeout);
        assert!(failure.detail.contains("no uTP connection"), "{failure}");
        silent.set_nonblocking(true).unwrap();
        let mut syns = 0;
        let mut buf = [0u8; 64];
        while let Ok((n, _)) = silent.recv_from(&mut buf) {
            // BEP 29 header: type ST_SYN (4) in the high nibble, version 1 in the low one.
            assert_eq!((n, buf[0]), (20, 0x41));
            syns += 1;
        }
        assert!(syns >= 2, "{syns} SYN");
    }

    #[test]
    fn dialers_compare_equal_and_debug_their_sockets() {
        assert_eq!(UtpDialer::new(), UtpDialer::default());
        assert_eq!(
            format!("{:?}", UtpDialer::new()),
            "UtpDialer { v4: None, v6: None }"
        );
    }
}
