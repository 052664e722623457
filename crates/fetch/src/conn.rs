//! One metadata-fetch attempt at one peer: the socket and the clock around a
//! [`MetadataSession`].

use std::net::SocketAddr;

use estudely_peer_wire::{
    CryptoProvide, InfoSummary, MetadataSession, SessionConfig, SessionState,
};
use rand::RngCore as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{timeout_at, Instant};

use super::encrypted::handshake as mse_handshake;
use super::{
    Encryption, EncryptionPolicy, FailureKind, FetchConfig, FetchFailure, FetchedMetadata,
    PeerStream, Transport, TransportChoice, TCP_HEAD_START,
};

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 32 * 1024;

/// Fetch and verify the info dict of `info_hash` (a v1 infohash or a v2 one truncated to 20
/// bytes) from `peer`, within [`FetchConfig::attempt_timeout`].
pub async fn fetch_one(
    peer: SocketAddr,
    info_hash: [u8; 20],
    cfg: &FetchConfig,
) -> Result<FetchedMetadata, FetchFailure> {
    fetch_one_until(peer, info_hash, cfg, Instant::now() + cfg.attempt_timeout).await
}

/// [`fetch_one`] with an extra deadline (e.g. a batch's), whichever comes first.
pub async fn fetch_one_until(
    peer: SocketAddr,
    info_hash: [u8; 20],
    cfg: &FetchConfig,
    deadline: Instant,
) -> Result<FetchedMetadata, FetchFailure> {
    // Peers come from the network (or from a file made from it): never connect to an
    // address the policy refuses, whatever the caller passed.
    if let Err(range) = cfg.addr_policy.check(&peer) {
        return Err(FetchFailure::new(
            FailureKind::AddressRefused,
            format!("{range} address refused (see --allow-private)"),
        ));
    }
    let start = Instant::now();
    let deadline = deadline.min(start + cfg.attempt_timeout);
    let timed_out = |what: String, step_end: Instant| {
        let detail = if deadline <= step_end {
            format!(
                "attempt deadline reached after {} ({what})",
                secs(start, deadline)
            )
        } else {
            what
        };
        FetchFailure::new(FailureKind::Timeout, detail)
    };

    // The first connection: the transport dial() picks, in plaintext unless encryption is
    // required.
    let (stream, transport) = dial(peer, cfg, start, deadline, &timed_out).await?;
    let first = match cfg.encryption {
        EncryptionPolicy::Required => Some(CryptoProvide::RC4),
        EncryptionPolicy::Off | EncryptionPolicy::Prefer => None,
    };
    // What may follow, in order: a close before the peer's BitTorrent handshake is how a
    // peer that requires encryption answers plaintext, and how a libtorrent with incoming
    // TCP disabled answers TCP. So under `prefer`, MSE on the same transport; under `both`
    // after TCP, uTP (in plaintext then with MSE under `prefer`). Each step once, only
    // after a close, within the same deadline: at most four connections to one peer.
    let mut steps = Vec::with_capacity(3);
    let prefer = cfg.encryption == EncryptionPolicy::Prefer;
    if prefer {
        steps.push((transport, Some(CryptoProvide::BOTH)));
    }
    if transport == Transport::Tcp && cfg.transport == TransportChoice::Both {
        steps.push((Transport::Utp, first));
        if prefer {
            steps.push((Transport::Utp, Some(CryptoProvide::BOTH)));
        }
    }
    let mut failure =
        match run_over(stream, first, peer, info_hash, cfg, deadline, &timed_out).await {
            Ok(m) => return Ok(FetchedMetadata { transport, ..m }),
            Err(f) => f,
        };
    if !closed_before_handshake(&failure) {
        return Err(failure);
    }
    for (over, provide) in steps {
        // A moment before coming back: some clients (Transmission) refuse a connection from
        // an address whose previous one they still hold open.
        let pause = if over == transport {
            RETRY_PAUSE
        } else {
            SWITCH_PAUSE
        };
        tokio::time::sleep_until(deadline.min(Instant::now() + pause)).await;
        if Instant::now() >= deadline {
            break;
        }
        let stream = match over {
            Transport::Tcp => dial_tcp(peer, cfg, deadline, &timed_out).await,
            Transport::Utp => {
                let connect_by = deadline.min(Instant::now() + cfg.connect_timeout);
                cfg.utp.connect(peer, cfg.local_ip(&peer), connect_by).await
            }
        };
        let r = match stream {
            Ok(s) => run_over(s, provide, peer, info_hash, cfg, deadline, &timed_out).await,
            Err(e) => Err(e),
        };
        let e = match r {
            Ok(m) => {
                return Ok(FetchedMetadata {
                    transport: over,
                    ..m
                })
            }
            Err(e) => e,
        };
        let how = match (over, provide) {
            (Transport::Tcp, _) => "then with MSE",
            (Transport::Utp, None) => "then over uTP",
            (Transport::Utp, Some(_)) => "then over uTP with MSE",
        };
        // Counted as the first failure: the peer did close on us.
        failure = FetchFailure::new(
            failure.kind,
            format!("{}; {how}: {}", failure.detail, e.detail),
        );
        // Closed again (before its handshake, or in the MSE one): the next step may help;
        // anything else (no uTP at that port, a timeout, a protocol error) is the answer.
        if e.kind != FailureKind::Closed {
            break;
        }
    }
    Err(failure)
}

/// A TCP connection to `peer` within the connect timeout (and the attempt's deadline).
async fn dial_tcp(
    peer: SocketAddr,
    cfg: &FetchConfig,
    deadline: Instant,
    timed_out: &impl Fn(String, Instant) -> FetchFailure,
) -> Result<Box<dyn PeerStream>, FetchFailure> {
    let connect_by = deadline.min(Instant::now() + cfg.connect_timeout);
    tcp_by(peer, cfg, connect_by, timed_out).await
}

/// A TCP connection to `peer` by `connect_by`.
async fn tcp_by(
    peer: SocketAddr,
    cfg: &FetchConfig,
    connect_by: Instant,
    timed_out: &impl Fn(String, Instant) -> FetchFailure,
) -> Result<Box<dyn PeerStream>, FetchFailure> {
    match timeout_at(connect_by, tcp_connect(peer, cfg.local_ip(&peer))).await {
        Err(_) => {
            let what = format!("no TCP connection within {:?}", cfg.connect_timeout);
            Err(timed_out(what, connect_by))
        }
        Ok(Err(e)) => Err(e),
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(Box::new(s))
        }
    }
}

/// A TCP connection to `peer`, from `local` if given (any port). Fails as `local_error`
/// when no local port or address could be had (nothing was sent to the peer), else as
/// `refused`.
async fn tcp_connect(
    peer: SocketAddr,
    local: Option<std::net::IpAddr>,
) -> Result<TcpStream, FetchFailure> {
    let socket = tcp_socket(peer, local)
        .map_err(|e| FetchFailure::new(FailureKind::LocalError, format!("connect: {e}")))?;
    socket.connect(peer).await.map_err(|e| {
        // The kernel picks the local port at connect time: none free is our failure.
        let kind = match e.kind() {
            std::io::ErrorKind::AddrInUse | std::io::ErrorKind::AddrNotAvailable => {
                FailureKind::LocalError
            }
            _ => FailureKind::Refused,
        };
        FetchFailure::new(kind, format!("connect: {e}"))
    })
}

/// A TCP socket for `peer`, bound to `local` if given. The port is left for `connect` to
/// pick (`IP_BIND_ADDRESS_NO_PORT`): a bind to port 0 would otherwise take a port of its
/// own for every connection, whatever the peer, and at thousands of fetches a minute from
/// one `--bind` address the connections we closed (held in TIME_WAIT for 60 s) use up the
/// 28,000 ports of the default range; `connect` may reuse a port towards another peer.
fn tcp_socket(peer: SocketAddr, local: Option<std::net::IpAddr>) -> std::io::Result<TcpSocket> {
    let socket = if peer.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = local {
        bind_address_no_port(&socket);
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| std::io::Error::new(e.kind(), format!("bind {ip}: {e}")))?;
    }
    Ok(socket)
}

/// Ask Linux to choose the port at connect time (see [`tcp_socket`]); elsewhere, or if it
/// fails, the bind takes a port as usual.
#[cfg(target_os = "linux")]
fn bind_address_no_port(socket: &TcpSocket) {
    use std::os::fd::AsRawFd as _;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `&on`, which lives across
    // the call; the descriptor is the socket's own, open for the call.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn bind_address_no_port(_socket: &TcpSocket) {}

/// The metadata exchange over `stream`: in plaintext (`None`), or after an MSE handshake
/// offering `provide`.
async fn run_over(
    stream: Box<dyn PeerStream>,
    provide: Option<CryptoProvide>,
    peer: SocketAddr,
    info_hash: [u8; 20],
    cfg: &FetchConfig,
    deadline: Instant,
    timed_out: &impl Fn(String, Instant) -> FetchFailure,
) -> Result<FetchedMetadata, FetchFailure> {
    match provide {
        None => plain(stream, peer, info_hash, cfg, deadline, timed_out).await,
        Some(p) => encrypted(stream, p, peer, info_hash, cfg, deadline, timed_out).await,
    }
}

/// The metadata exchange in plaintext.
async fn plain(
    mut stream: Box<dyn PeerStream>,
    peer: SocketAddr,
    info_hash: [u8; 20],
    cfg: &FetchConfig,
    deadline: Instant,
    timed_out: &impl Fn(String, Instant) -> FetchFailure,
) -> Result<FetchedMetadata, FetchFailure> {
    exchange(&mut stream, peer, info_hash, cfg, deadline, timed_out).await
}

/// The MSE handshake (offering `provide`, under the handshake timeout), then the metadata
/// exchange over the encrypted stream.
async fn encrypted(
    stream: Box<dyn PeerStream>,
    provide: CryptoProvide,
    peer: SocketAddr,
    info_hash: [u8; 20],
    cfg: &FetchConfig,
    deadline: Instant,
    timed_out: &impl Fn(String, Instant) -> FetchFailure,
) -> Result<FetchedMetadata, FetchFailure> {
    let by = deadline.min(Instant::now() + cfg.handshake_timeout);
    let enc = match mse_handshake(stream, info_hash, provide, by).await {
        Err(f) if f.kind == FailureKind::Timeout => {
            let what = format!("no MSE handshake within {:?}", cfg.handshake_timeout);
            return Err(timed_out(what, by));
        }
        r => r?,
    };
    let encryption = enc.encryption();
    let mut stream: Box<dyn PeerStream> = Box::new(enc);
    let mut fetched = exchange(&mut stream, peer, info_hash, cfg, deadline, timed_out).await?;
    fetched.encryption = encryption;
    Ok(fetched)
}

/// Whether the peer closed the connection before answering our BitTorrent handshake.
fn closed_before_handshake(f: &FetchFailure) -> bool {
    f.kind == FailureKind::Closed && f.detail.starts_with(CLOSED_BEFORE_HANDSHAKE)
}

/// The pause before connecting to a peer again after it closed on us, over the same
/// transport. Transmission refuses a connection from an address whose previous one it has not
/// let go of yet; 250 ms was not always enough on a loaded machine (a run of its encryption
/// test in CI failed so).
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

/// ... and over another transport (uTP after TCP), a different kind of connection.
const SWITCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

/// How [`closed`] starts the detail of a close before the peer's handshake.
const CLOSED_BEFORE_HANDSHAKE: &str = "connection closed before its handshake";

/// Open a connection to `peer` by the connect deadline, over the transports
/// [`FetchConfig::transport`] allows.
///
/// Under [`TransportChoice::Both`], TCP is tried alone for [`TCP_HEAD_START`]; if it has failed
/// by then, uTP is tried alone, and if it is still pending, uTP is started beside it and the
/// first connection made is used (TCP if both are ready at once). libtorrent starts with uTP
/// and falls back to TCP; we start with TCP because most peers reachable at all take it, it
/// costs no extra datagrams, and its connect tells a closed port (a reset) at once, and we add
/// uTP within the same connect deadline for the peers TCP does not reach (behind a NAT that
/// lets UDP through, or uTP-only clients), so an unreachable peer costs one connect timeout,
/// not two.
async fn dial(
    peer: SocketAddr,
    cfg: &FetchConfig,
    start: Instant,
    deadline: Instant,
    timed_out: &impl Fn(String, Instant) -> FetchFailure,
) -> Result<(Box<dyn PeerStream>, Transport), FetchFailure> {
    let connect_by = deadline.min(start + cfg.connect_timeout);
    let tcp = || tcp_by(peer, cfg, connect_by, timed_out);
    let utp = || async {
        cfg.utp
            .connect(peer, cfg.local_ip(&peer), connect_by)
            .await
            .map_err(|f| {
                if f.kind == FailureKind::Timeout {
                    let what = format!("no uTP connection within {:?}", cfg.connect_timeout);
                    timed_out(what, connect_by)
                } else {
                    f
                }
            })
    };
    match cfg.transport {
        TransportChoice::Tcp => tcp().await.map(|s| (s, Transport::Tcp)),
        TransportChoice::Utp => utp().await.map(|s| (s, Transport::Utp)),
        TransportChoice::Both => {
            let tcp = tcp();
            tokio::pin!(tcp);
            let head_start = tokio::time::sleep_until(connect_by.min(start + TCP_HEAD_START));
            let tcp_failure = tokio::select! {
                r = &mut tcp => match r {
                    Ok(s) => return Ok((s, Transport::Tcp)),
                    Err(f) => Some(f),
                },
                () = head_start => None,
            };
            let utp = utp();
            tokio::pin!(utp);
            let (mut tcp_failure, mut utp_failure) = (tcp_failure, None);
            loop {
                if let (Some(t), Some(u)) = (&tcp_failure, &utp_failure) {
                    return Err(both_failed(t, u));
                }
                tokio::select! {
                    biased;
                    r = &mut tcp, if tcp_failure.is_none() => match r {
                        Ok(s) => return Ok((s, Transport::Tcp)),
                        Err(f) => tcp_failure = Some(f),
                    },
                    r = &mut utp, if utp_failure.is_none() => match r {
                        Ok(s) => return Ok((s, Transport::Utp)),
                        Err(f) => utp_failure = Some(f),
                    },
                }
            }
        }
    }
}

/// Neither TCP nor uTP connected: counted as TCP's failure (a closed port answers TCP with a
/// reset, and uTP with silence: the TCP answer tells more), with both details.
fn both_failed(tcp: &FetchFailure, utp: &FetchFailure) -> FetchFailure {
    FetchFailure::new(
        tcp.kind,
        format!("TCP: {}; uTP: {}", tcp.detail, utp.detail),
    )
}

/// Run the metadata exchange over an open connection.
async fn exchange(
    stream: &mut Box<dyn PeerStream>,
    peer: SocketAddr,
    info_hash: [u8; 20],
    cfg: &FetchConfig,
    deadline: Instant,
    timed_out: &impl Fn(String, Instant) -> FetchFailure,
) -> Result<FetchedMetadata, FetchFailure> {
    let config = SessionConfig {
        max_metadata_size: cfg.max_metadata_size,
        client: cfg.client.clone(),
        // The announced size is reserved from the shared budget before anything is
        // allocated for it (see `budget.rs`).
        hold_for_grant: true,
        ..SessionConfig::default()
    };
    let mut session = MetadataSession::new(config, info_hash, cfg.peer_id.unwrap_or_else(peer_id));
    let mut buf = vec![0u8; READ_CHUNK];
    let handshake_by = Instant::now() + cfg.handshake_timeout;
    // Deadline for the next metadata piece, and the count it was set at.
    let mut piece_by: Option<(Instant, u32)> = None;
    // Held until the attempt ends, whatever its end.
    let mut _reserved = None;

    while !session.is_finished() {
        let state = session.state();
        if let SessionState::AwaitingGrant { size } = state {
            // Wait for room no longer than the handshakes may take.
            match cfg.memory.reserve(size, handshake_by.min(deadline)).await {
                Ok(r) => _reserved = Some(r),
                Err(e) => return Err(FetchFailure::new(FailureKind::MemoryBudget, e.to_string())),
            }
            session.grant();
            continue;
        }
        let (step_end, waiting_for) = match state {
            SessionState::Fetching { received, pieces } => {
                let by = match piece_by {
                    Some((by, at)) if at == received => by,
                    _ => {
                        let by = Instant::now() + cfg.piece_timeout;
                        piece_by = Some((by, received));
                        by
                    }
                };
                let what = format!(
                    "no metadata piece within {:?} ({received}/{pieces} received)",
                    cfg.piece_timeout
                );
                (by, what)
            }
            SessionState::AwaitingExtHandshake => (
                handshake_by,
                format!("no extended handshake within {:?}", cfg.handshake_timeout),
            ),
            _ => (
                handshake_by,
                format!("no handshake within {:?}", cfg.handshake_timeout),
            ),
        };
        let step_end = step_end.min(deadline);
        if let Some(out) = session.poll_transmit() {
            let write = async {
                stream.write_all(&out).await?;
                stream.flush().await
            };
            match timeout_at(step_end, write).await {
                Err(_) => return Err(timed_out(format!("{waiting_for}; write stalled"), step_end)),
                Ok(Err(e)) => return Err(closed(state, &format!("write: {e}"))),
                Ok(Ok(())) => {}
            }
        }
        match timeout_at(step_end, stream.read(&mut buf)).await {
            Err(_) => return Err(timed_out(waiting_for, step_end)),
            Ok(Ok(0)) => return Err(closed(state, "EOF")),
            Ok(Ok(n)) => session.handle_input(&buf[..n]),
            Ok(Err(e)) => return Err(closed(state, &e.to_string())),
        }
    }
    let client = session.peer_extensions().and_then(|e| e.client.clone());
    match session.into_outcome() {
        Some(Ok(metadata)) => match InfoSummary::parse(&metadata.info) {
            Ok(summary) => Ok(FetchedMetadata {
                peer,
                info: metadata.info,
                summary,
                client,
                // fetch_one_until puts what dial() used.
                transport: Transport::Tcp,
                encryption: Encryption::Plaintext,
            }),
            Err(e) => Err(FetchFailure::new(
                FailureKind::Protocol,
                format!("verified info dict does not parse: {e}"),
            )),
        },
        Some(Err(e)) => Err(FetchFailure::new(e.kind().into(), e.to_string())),
        // The loop only ends once the session has finished.
        None => Err(FetchFailure::new(
            FailureKind::Protocol,
            "session unfinished",
        )),
    }
}

/// The peer went away in `state`.
fn closed(state: SessionState, why: &str) -> FetchFailure {
    let during = match state {
        SessionState::Handshaking => {
            return FetchFailure::new(
                FailureKind::Closed,
                format!("{CLOSED_BEFORE_HANDSHAKE} ({why})"),
            )
        }
        SessionState::AwaitingExtHandshake => "before its extended handshake".to_owned(),
        SessionState::AwaitingGrant { .. } => "before its metadata was requested".to_owned(),
        SessionState::Fetching { received, pieces } => {
            format!("after {received}/{pieces} metadata pieces")
        }
        SessionState::Done | SessionState::Failed(_) => "after the end".to_owned(),
    };
    FetchFailure::new(
        FailureKind::Closed,
        format!("connection closed {during} ({why})"),
    )
}

fn secs(from: Instant, to: Instant) -> String {
    format!("{:?}", to.saturating_duration_since(from))
}

/// `-ES0001-` and 12 random bytes (BEP 20 style).
fn peer_id() -> [u8; 20] {
    let mut id = *b"-ES0001-000000000000";
    rand::rngs::OsRng.fill_bytes(&mut id[8..]);
    id
}

// Every test here has a uTP side: they need the `utp` feature (the default).
#[cfg(all(test, feature = "utp"))]
mod tests {
    use std::time::Duration;

    use librqbit_utp::UtpSocketUdp;
    use tokio::net::TcpListener;

    use super::*;

    fn cfg(transport: TransportChoice) -> FetchConfig {
        FetchConfig {
            transport,
            connect_timeout: Duration::from_secs(20),
            ..FetchConfig::default()
        }
    }

    async fn dial_with(
        peer: SocketAddr,
        cfg: &FetchConfig,
    ) -> Result<(Box<dyn PeerStream>, Transport), FetchFailure> {
        let start = Instant::now();
        let deadline = start + cfg.attempt_timeout;
        let timed_out = |what: String, _| FetchFailure::new(FailureKind::Timeout, what);
        dial(peer, cfg, start, deadline, &timed_out).await
    }

    /// A uTP listener (accepting in the background) and, on the same port, a TCP one or a
    /// port closed to TCP.
    async fn listeners(ip: &str, tcp: bool) -> (SocketAddr, Option<TcpListener>) {
        let utp = UtpSocketUdp::new_udp(format!("{ip}:0").parse().unwrap())
            .await
            .unwrap();
        let addr = utp.bind_addr();
        tokio::spawn(async move {
            let mut accepted = Vec::new();
            while let Ok(s) = utp.accept().await {
                accepted.push(s);
            }
        });
        let tcp = if tcp {
            Some(TcpListener::bind(addr).await.unwrap())
        } else {
            None
        };
        (addr, tcp)
    }

    #[tokio::test]
    async fn both_takes_tcp_when_it_connects() {
        let (peer, _tcp) = listeners("127.0.140.24", true).await;
        let (_, transport) = dial_with(peer, &cfg(TransportChoice::Both)).await.unwrap();
        assert_eq!(transport, Transport::Tcp);
    }

    #[tokio::test]
    async fn both_falls_back_to_utp_when_tcp_is_refused() {
        let (peer, _) = listeners("127.0.140.25", false).await;
        let (_, transport) = dial_with(peer, &cfg(TransportChoice::Both)).await.unwrap();
        assert_eq!(transport, Transport::Utp);
        let f = match dial_with(peer, &cfg(TransportChoice::Tcp)).await {
            Ok(_) => panic!("TCP connected to a closed port"),
            Err(f) => f,
        };
        assert_eq!(f.kind, FailureKind::Refused, "{f}");
    }

    #[tokio::test]
    async fn utp_alone_and_tcp_alone() {
        let (peer, _tcp) = listeners("127.0.140.26", true).await;
        let (_, transport) = dial_with(peer, &cfg(TransportChoice::Utp)).await.unwrap();
        assert_eq!(transport, Transport::Utp);
        let (_, transport) = dial_with(peer, &cfg(TransportChoice::Tcp)).await.unwrap();
        assert_eq!(transport, Transport::Tcp);
    }

    /// With a local address for the family (`--bind`), TCP and uTP connections leave from
    /// it; without one, from the address the system picks (127.0.0.1 towards loopback).
    #[tokio::test]
    async fn connections_leave_from_the_local_address() {
        let utp = UtpSocketUdp::new_udp("127.0.140.27:0".parse().unwrap())
            .await
            .unwrap();
        let peer = utp.bind_addr();
        let tcp = TcpListener::bind(peer).await.unwrap();
        let local: std::net::IpAddr = "127.0.0.77".parse().unwrap();
        let from = |transport| FetchConfig {
            local_ips: vec!["0.0.0.0".parse().unwrap(), "::1".parse().unwrap(), local],
            ..cfg(transport)
        };
        let (_conn, _) = dial_with(peer, &from(TransportChoice::Tcp)).await.unwrap();
        let (_accepted, seen) = tcp.accept().await.unwrap();
        assert_eq!(seen.ip(), local);
        let (_conn, _) = dial_with(peer, &cfg(TransportChoice::Tcp)).await.unwrap();
        let (_accepted, seen) = tcp.accept().await.unwrap();
        assert_ne!(seen.ip(), local);

        let accepting = tokio::spawn(async move {
            let s = utp.accept().await.unwrap();
            (s.remote_addr(), s, utp)
        });
        let (_conn, _) = dial_with(peer, &from(TransportChoice::Utp)).await.unwrap();
        let (seen, _accepted, _utp) = accepting.await.unwrap();
        assert_eq!(seen.ip(), local);
    }

    /// From a `--bind` address, the port is picked at connect time, not at bind time (when
    /// each bind took a port of its own, a fast fetcher ran out of them).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_bound_socket_leaves_the_port_to_connect() {
        let listener = TcpListener::bind("127.0.140.28:0").await.unwrap();
        let peer = listener.local_addr().unwrap();
        let local: std::net::IpAddr = "127.0.0.78".parse().unwrap();
        let socket = tcp_socket(peer, Some(local)).unwrap();
        assert_eq!(socket.local_addr().unwrap(), SocketAddr::new(local, 0));
        let stream = socket.connect(peer).await.unwrap();
        let from = stream.local_addr().unwrap();
        assert_eq!(from.ip(), local);
        assert_ne!(from.port(), 0);
    }

    /// No local address to connect from is our failure, not the peer's refusal.
    #[tokio::test]
    async fn a_bind_that_fails_is_a_local_error() {
        let listener = TcpListener::bind("127.0.140.29:0").await.unwrap();
        let peer = listener.local_addr().unwrap();
        // A documentation address this host does not have: the bind fails, nothing is sent.
        let f = tcp_connect(peer, Some("192.0.2.1".parse().unwrap()))
            .await
            .unwrap_err();
        assert_eq!(f.kind, FailureKind::LocalError, "{f}");
        drop(listener);
        let f = tcp_connect(peer, None).await.unwrap_err();
        assert_eq!(f.kind, FailureKind::Refused, "{f}");
    }

    #[test]
    fn both_failed_counts_as_tcp_with_both_details() {
        let refused = FetchFailure::new(FailureKind::Refused, "connect: refused");
        let timeout = FetchFailure::new(FailureKind::Timeout, "no uTP connection within 5s");
        let f = both_failed(&refused, &timeout);
        assert_eq!(f.kind, FailureKind::Refused);
        assert_eq!(
            f.detail,
            "TCP: connect: refused; uTP: no uTP connection within 5s"
        );
        assert_eq!(both_failed(&timeout, &refused).kind, FailureKind::Timeout);
    }

    #[test]
    fn a_close_before_the_handshake_is_told_apart() {
        let f = closed(SessionState::Handshaking, "EOF");
        assert!(closed_before_handshake(&f), "{f}");
        assert_eq!(f.detail, "connection closed before its handshake (EOF)");
        let later = closed(SessionState::AwaitingExtHandshake, "EOF");
        assert!(!closed_before_handshake(&later), "{later}");
        let timeout = FetchFailure::new(FailureKind::Timeout, CLOSED_BEFORE_HANDSHAKE);
        assert!(!closed_before_handshake(&timeout));
    }
}
