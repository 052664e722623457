//! The tokio driver around the sans-IO [`Node`]: sockets, clock and a command channel.
//!
//! One task owns the node and its UDP sockets (at most one IPv4 and one IPv6 socket). It
//! loops over: a datagram on either socket, the node's next deadline, a command from a
//! [`DhtHandle`], or shutdown. After each step it sends every queued [`Transmit`](estudely_dht_core::Transmit) on the
//! socket of the destination's family and routes every [`Event`] to whoever waits for it.
//! This is the only place that reads the clock.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _};
use estudely_dht_core::krpc::{InfoHash, Message, NodeId, Query};
use estudely_dht_core::{
    Config, Event, LookupId, LookupKind, LookupOutcome, Node, QueryError, QueryId, Stats,
};
use estudely_krpc::CompactNode;
use rand::RngCore as _;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info_span, trace, warn, Instrument as _};

/// Receive buffer size: larger than any KRPC datagram we accept.
const RECV_BUF: usize = 2048;
/// Commands queued before [`DhtHandle`] callers wait.
const COMMAND_QUEUE: usize = 256;

/// How to start a driver.
#[derive(Debug, Clone, Default)]
pub struct DriverConfig {
    /// Local addresses to bind: at most one IPv4 and one IPv6 address (port 0 = any).
    pub bind: Vec<SocketAddr>,
    /// The node's configuration. Its `ipv4` / `ipv6` flags are set from the bound sockets and
    /// its `seed` from [`DriverConfig::seed`].
    pub node: Config,
    /// Seed of the node's RNG. Default `None`: a random seed from the OS.
    pub seed: Option<u64>,
    /// Where [`PeersEvent`]s go, if anywhere. Events are dropped (and logged) when it is full.
    pub peer_events: Option<mpsc::Sender<PeersEvent>>,
}

/// Peers that one node gave a running lookup (see `Event::Peers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeersEvent {
    /// The lookup.
    pub lookup: LookupId,
    /// The infohash looked up.
    pub info_hash: InfoHash,
    /// The node that answered.
    pub from: SocketAddr,
    /// The peers it gave.
    pub peers: Vec<SocketAddr>,
}

/// Why a [`DhtHandle`] call did not produce its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhtError {
    /// The query failed: timeout, remote error, or too many in flight.
    Query(QueryError),
    /// The driver task has stopped.
    Stopped,
}

impl fmt::Display for DhtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DhtError::Query(e) => e.fmt(f),
            DhtError::Stopped => f.write_str("the DHT driver has stopped"),
        }
    }
}

impl std::error::Error for DhtError {}

impl From<QueryError> for DhtError {
    fn from(e: QueryError) -> Self {
        DhtError::Query(e)
    }
}

/// What a [`DhtHandle`] asks the driver task to do.
enum Command {
    Query {
        to: SocketAddr,
        query: Query,
        reply: oneshot::Sender<Result<Message, QueryError>>,
    },
    Lookup {
        kind: LookupKind,
        target: NodeId,
        seeds: Vec<SocketAddr>,
        reply: oneshot::Sender<LookupOutcome>,
    },
    Bootstrap {
        seeds: Vec<SocketAddr>,
        reply: oneshot::Sender<LookupOutcome>,
    },
    InsertPeer {
        info_hash: InfoHash,
        peer: SocketAddr,
        seed: bool,
        reply: oneshot::Sender<()>,
    },
    Stats(oneshot::Sender<Stats>),
    RoutingNodes(oneshot::Sender<Vec<CompactNode>>),
}

/// A cloneable handle to a running driver. The driver stops on [`DhtHandle::shutdown`] or
/// when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct DhtHandle {
    commands: mpsc::Sender<Command>,
    stop: Arc<watch::Sender<bool>>,
    id: NodeId,
    local_addrs: Arc<[SocketAddr]>,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Command::Query { .. } => "Query",
            Command::Lookup { .. } => "Lookup",
            Command::Bootstrap { .. } => "Bootstrap",
            Command::InsertPeer { .. } => "InsertPeer",
            Command::Stats(_) => "Stats",
            Command::RoutingNodes(_) => "RoutingNodes",
        };
        f.write_str(name)
    }
}

impl DhtHandle {
    /// Bind the sockets, create the node and spawn the driver task on the current tokio
    /// runtime (call it from inside one: it panics otherwise, like `tokio::spawn`). Fails if
    /// no address is given, a family is given twice, or a bind fails.
    pub fn spawn(config: DriverConfig) -> anyhow::Result<DhtHandle> {
        let (mut v4, mut v6) = (None, None);
        for addr in &config.bind {
            let slot = if addr.is_ipv4() { &mut v4 } else { &mut v6 };
            if slot.is_some() {
                bail!("--bind given twice for the same address family ({addr})");
            }
            let socket = bind_udp(*addr).with_context(|| format!("cannot bind {addr}"))?;
            *slot = Some(socket);
        }
        if v4.is_none() && v6.is_none() {
            bail!("no address to bind");
        }
        let local_addrs = v4
            .iter()
            .chain(v6.iter())
            .map(UdpSocket::local_addr)
            .collect::<io::Result<Vec<_>>>()?;

        let mut node_config = config.node;
        node_config.ipv4 = v4.is_some();
        node_config.ipv6 = v6.is_some();
        node_config.seed = config.seed.unwrap_or_else(|| rand::rngs::OsRng.next_u64());
        // A node bound to a specific special address (127.0.10.1, 192.168.1.2) can only
        // talk within that range: allow it. An unspecified bind (0.0.0.0) allows nothing.
        let specific: Vec<SocketAddr> = local_addrs
            .iter()
            .copied()
            .filter(|a| !a.ip().is_unspecified())
            .collect();
        node_config.addr_policy.allow_ranges_of(&specific);
        let node = Node::new(node_config, Instant::now());
        let id = node.id();

        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (stop, stop_rx) = watch::channel(false);
        let driver = Driver {
            node,
            queries: HashMap::new(),
            lookups: HashMap::new(),
            peer_events: config.peer_events,
            send_errors: 0,
        };
        let sockets = Sockets { v4, v6 };
        let span = info_span!("dht", id = %short(&id));
        tokio::spawn(driver.run(sockets, command_rx, stop_rx).instrument(span));
        Ok(DhtHandle {
            commands,
            stop: Arc::new(stop),
            id,
            local_addrs: local_addrs.into(),
        })
    }

    /// Our node id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The addresses the sockets are bound to (ports resolved), IPv4 first.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Send one query to `to` and wait for its reply (the node's query timeout applies).
    /// The sender id inside `query` is replaced by ours.
    pub async fn query(&self, to: SocketAddr, query: Query) -> Result<Message, DhtError> {
        let result = self
            .call(|reply| Command::Query { to, query, reply })
            .await?;
        Ok(result?)
    }

    /// Run an iterative lookup toward `target`, seeded from the routing table and `seeds`.
    pub async fn lookup(
        &self,
        kind: LookupKind,
        target: NodeId,
        seeds: &[SocketAddr],
    ) -> Result<LookupOutcome, DhtError> {
        let seeds = seeds.to_vec();
        self.call(|reply| Command::Lookup {
            kind,
            target,
            seeds,
            reply,
        })
        .await
    }

    /// Look up our own id from `seeds` (and the table) to fill the routing table.
    pub async fn bootstrap(&self, seeds: &[SocketAddr]) -> Result<LookupOutcome, DhtError> {
        let seeds = seeds.to_vec();
        self.call(|reply| Command::Bootstrap { seeds, reply }).await
    }

    /// Store `peer` for `info_hash` as if it had announced itself.
    pub async fn insert_peer(
        &self,
        info_hash: InfoHash,
        peer: SocketAddr,
        seed: bool,
    ) -> Result<(), DhtError> {
        self.call(|reply| Command::InsertPeer {
            info_hash,
            peer,
            seed,
            reply,
        })
        .await
    }

    /// The node's counters.
    pub async fn stats(&self) -> Result<Stats, DhtError> {
        self.call(Command::Stats).await
    }

    /// Every routing-table entry, both families.
    pub async fn routing_nodes(&self) -> Result<Vec<CompactNode>, DhtError> {
        self.call(Command::RoutingNodes).await
    }

    /// Stop the driver and wait until its task has ended. Waiting callers get
    /// [`DhtError::Stopped`]. Calling it again, or from another clone, is harmless.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        self.commands.closed().await;
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, DhtError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| DhtError::Stopped)?;
        rx.await.map_err(|_| DhtError::Stopped)
    }
}

/// Create a non-blocking UDP socket; IPv6 sockets are IPv6-only so that an IPv4 and an IPv6
/// socket can share a port.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Best effort: a larger receive buffer absorbs bursts of replies during lookups.
    let _ = socket.set_recv_buffer_size(1 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// The first 8 hex digits of an id, for log spans.
fn short(id: &NodeId) -> String {
    id.to_hex()[..8].to_owned()
}

/// The node's UDP sockets, at most one per address family (also for other drivers of a
/// sans-IO state machine, such as a crawler's).
#[derive(Debug)]
pub struct Sockets {
    /// The IPv4 socket, if bound.
    pub v4: Option<UdpSocket>,
    /// The IPv6 socket, if bound.
    pub v6: Option<UdpSocket>,
}

impl Sockets {
    fn for_addr(&self, addr: &SocketAddr) -> Option<&UdpSocket> {
        if addr.is_ipv4() {
            self.v4.as_ref()
        } else {
            self.v6.as_ref()
        }
    }

    /// Send one datagram on the socket of its family. A failure is counted in `errors` and
    /// logged (the 1st, 2nd, 4th, 8th... loudly, the rest quietly), never fatal.
    pub async fn send(&self, t: &estudely_dht_core::Transmit, errors: &mut u64) {
        let Some(socket) = self.for_addr(&t.to) else {
            debug!(to = %t.to, "no socket for this address family; dropped");
            return;
        };
        if let Err(e) = socket.send_to(&t.bytes, t.to).await {
            *errors += 1;
            if errors.is_power_of_two() {
                warn!(to = %t.to, "send failed ({errors} so far): {e}");
            } else {
                debug!(to = %t.to, "send failed: {e}");
            }
        }
    }
}

/// Receive on `socket`, or never if there is none.
pub async fn recv(socket: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Sleep until `deadline`, or forever if there is none.
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// The state the driver task owns besides its sockets.
struct Driver {
    node: Node,
    queries: HashMap<QueryId, oneshot::Sender<Result<Message, QueryError>>>,
    lookups: HashMap<LookupId, oneshot::Sender<LookupOutcome>>,
    peer_events: Option<mpsc::Sender<PeersEvent>>,
    send_errors: u64,
}

impl Driver {
    async fn run(
        mut self,
        sockets: Sockets,
        mut commands: mpsc::Receiver<Command>,
        mut stop: watch::Receiver<bool>,
    ) {
        debug!("driver started");
        let mut buf4 = vec![0u8; RECV_BUF];
        let mut buf6 = vec![0u8; RECV_BUF];
        loop {
            let deadline = self.node.poll_timeout();
            tokio::select! {
                // `changed` also fails when every handle is gone: stop then too.
                _ = stop.changed() => break,
                command = commands.recv() => match command {
                    Some(c) => self.command(c),
                    None => break,
                },
                r = recv(sockets.v4.as_ref(), &mut buf4) => self.received(r, &buf4),
                r = recv(sockets.v6.as_ref(), &mut buf6) => self.received(r, &buf6),
                () = sleep_until(deadline) => self.node.handle_timeout(Instant::now()),
            }
            self.flush(&sockets).await;
        }
        debug!("driver stopped");
    }

    fn received(&mut self, r: io::Result<(usize, SocketAddr)>, buf: &[u8]) {
        match r {
            Ok((len, from)) => {
                trace!(%from, len, "datagram");
                self.node.handle_datagram(Instant::now(), from, &buf[..len]);
            }
            // E.g. ICMP errors surfacing on some platforms: never fatal.
            Err(e) => debug!("recv error: {e}"),
        }
    }

    fn command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Query { to, query, reply } => {
                let id = self.node.query(now, to, query);
                self.queries.insert(id, reply);
            }
            Command::Lookup {
                kind,
                target,
                seeds,
                reply,
            } => {
                let id = self.node.lookup(now, kind, target, &seeds);
                self.lookups.insert(id, reply);
            }
            Command::Bootstrap { seeds, reply } => {
                let id = self.node.bootstrap(now, &seeds);
                self.lookups.insert(id, reply);
            }
            Command::InsertPeer {
                info_hash,
                peer,
                seed,
                reply,
            } => {
                self.node.insert_peer(now, info_hash, peer, seed);
                let _ = reply.send(());
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.node.stats());
            }
            Command::RoutingNodes(reply) => {
                let _ = reply.send(self.node.routing_nodes());
            }
        }
    }

    /// Send what the node queued, then hand out its events.
    async fn flush(&mut self, sockets: &Sockets) {
        while let Some(t) = self.node.poll_transmit() {
            sockets.send(&t, &mut self.send_errors).await;
            // Sent: the buffer goes back to the node for its next datagram.
            self.node.recycle(t);
        }
        while let Some(event) = self.node.poll_event() {
            self.event(event);
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::QueryDone { id, to, result } => {
                trace!(%to, ok = result.is_ok(), "query done");
                if let Some(reply) = self.queries.remove(&id) {
                    let _ = reply.send(result);
                }
            }
            Event::LookupDone(outcome) => {
                // Lookups the node starts by itself (bucket refresh) have no waiter.
                match self.lookups.remove(&outcome.id) {
                    Some(reply) => {
                        let _ = reply.send(outcome);
                    }
                    None => debug!(
                        target = %outcome.target,
                        queried = outcome.queried,
                        "background lookup done"
                    ),
                }
            }
            Event::Announced {
                info_hash,
                peer,
                from,
            } => trace!(%info_hash, %peer, %from, "announced to us"),
            Event::Peers {
                id,
                info_hash,
                from,
                peers,
            } => {
                let Some(tx) = &self.peer_events else { return };
                let event = PeersEvent {
                    lookup: id,
                    info_hash,
                    from,
                    peers,
                };
                if let Err(e) = tx.try_send(event) {
                    debug!("peers event not delivered: {e}");
                }
            }
        }
    }
}
