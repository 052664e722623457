//! [`Node`]: the sans-IO DHT node that ties routing, transactions, tokens, the peer store and
//! lookups together behind the `handle_*` / `poll_*` interface.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use estudely_krpc::{
    Body, CompactNode, InfoHash, Message, NodeId, Query, Response, TransactionId, Version, Want,
};

use crate::addr_policy::Refusals;
use crate::bounded::BoundedMap;
use crate::lookup::Lookup;
use crate::peer_store::PeerStore;
use crate::politeness::{IpBudget, RateLimiter};
use crate::routing::{Insert, RoutingTable};
use crate::scratch::Scratch;
use crate::tokens::Tokens;
use crate::transactions::Transactions;
use crate::{Config, Event, LookupId, LookupKind, QueryError, QueryId, Transmit};

/// Flag in `Node::strikes`: the address answered at least once, and gets twice the
/// `dead_after` leeway (a live node behind heavy loss should not be written off).
const ANSWERED: u8 = 0x80;

/// Most doublings of [`Config::dead_for`]: an address that keeps dying stays dead at most
/// `dead_for` × 2^8 (about 4 h at the default minute), then gets one query again.
const MAX_DEAD_DOUBLINGS: u8 = 8;

/// An address written off: dead until `until`, for the `deaths`-th time in a row (each
/// death after a revival doubles the wait). Kept after `until` passes, so that a revived
/// address that misses its one query dies again at once, for twice as long.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dead {
    until: Instant,
    deaths: u8,
}

/// How often routine maintenance (bucket refresh, peer expiry) runs.
const MAINTENANCE: Duration = Duration::from_secs(60);

/// Why a transaction was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A caller's single query.
    Query(QueryId),
    /// A liveness check for the routing table.
    Ping,
    /// A step of a lookup.
    Lookup(LookupId),
    /// An `announce_peer` at the end of an announce lookup.
    Announce(LookupId),
}

/// The parts of a reply besides its body, passed on to whoever asked.
struct Envelope {
    tid: TransactionId,
    version: Option<Version>,
    ip: Option<SocketAddr>,
    read_only: bool,
}

/// Counters, for progress lines and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// IPv4 routing-table entries.
    pub nodes_v4: usize,
    /// IPv6 routing-table entries.
    pub nodes_v6: usize,
    /// Infohashes in the peer store.
    pub torrents: usize,
    /// Peers in the peer store.
    pub peers: usize,
    /// Transactions in flight.
    pub in_flight: usize,
    /// Queries received.
    pub queries_received: u64,
    /// Replies (responses and errors) sent.
    pub replies_sent: u64,
    /// Queries sent.
    pub queries_sent: u64,
    /// Datagrams that failed to decode.
    pub malformed: u64,
    /// Datagrams fed to [`Node::handle_datagram`], whatever became of them.
    pub datagrams_received: u64,
    /// Datagrams handed out by [`Node::poll_transmit`] (queries and replies).
    pub datagrams_sent: u64,
    /// Queries not sent because an IP was over its budget or the queue was full.
    pub refused_by_budget: u64,
    /// Incoming queries left unanswered because their IP sent too many.
    pub flood_dropped: u64,
    /// Replies not sent because their IP had all its datagrams for the window.
    pub replies_dropped: u64,
    /// Addresses refused by the address policy, by range: datagrams from them ignored,
    /// queries to them not sent, nodes and peers listing them dropped.
    pub refused: Refusals,
    /// Addresses written off as dead since they last answered (dead now, or asked once
    /// again after their time: see [`Config::dead_for`]).
    pub dead: usize,
    /// Queries not sent because their address was dead.
    pub dead_refused: u64,
    /// Queries sent, by method (their sum is [`Stats::queries_sent`]).
    pub sent_by_method: MethodCounts,
    /// Queries received, by method (their sum is [`Stats::queries_received`]).
    pub received_by_method: MethodCounts,
    /// Responses received to our queries (matching one in flight).
    pub responses_received: u64,
    /// KRPC errors received to our queries (matching one in flight).
    pub errors_received: u64,
    /// Our queries that got no answer in time.
    pub timeouts: u64,
    /// Queries that had to wait for the global rate limit before being sent (each counted
    /// once, however long it waited).
    pub rate_limited: u64,
    /// Routing-table nodes whose id is BEP 42 secure for their IP.
    pub nodes_secure: usize,
    /// Routing-table nodes at local addresses (BEP 42 exempt).
    pub nodes_exempt: usize,
    /// Routing-table nodes with an id not derived from their IP (kept all the same).
    pub nodes_unsecured: usize,
    /// Times our id was changed to a BEP 42 secure one for our voted external IP.
    pub id_changes: u64,
}

/// Counts of queries by KRPC method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MethodCounts {
    /// `ping`
    pub ping: u64,
    /// `find_node`
    pub find_node: u64,
    /// `get_peers`
    pub get_peers: u64,
    /// `announce_peer`
    pub announce_peer: u64,
    /// `sample_infohashes`
    pub sample_infohashes: u64,
    /// Any other method.
    pub other: u64,
}

impl MethodCounts {
    /// Count one query.
    pub fn add(&mut self, q: &Query) {
        *match q {
            Query::Ping { .. } => &mut self.ping,
            Query::FindNode { .. } => &mut self.find_node,
            Query::GetPeers { .. } => &mut self.get_peers,
            Query::AnnouncePeer { .. } => &mut self.announce_peer,
            Query::SampleInfohashes { .. } => &mut self.sample_infohashes,
            Query::Unknown { .. } => &mut self.other,
        } += 1;
    }

    /// Each count with its method's name (`other` for the rest).
    pub fn by_name(&self) -> [(&'static str, u64); 6] {
        [
            ("ping", self.ping),
            ("find_node", self.find_node),
            ("get_peers", self.get_peers),
            ("announce_peer", self.announce_peer),
            ("sample_infohashes", self.sample_infohashes),
            ("other", self.other),
        ]
    }

    /// All queries counted.
    pub fn total(&self) -> u64 {
        self.by_name().iter().map(|(_, n)| n).sum()
    }
}

/// A Mainline DHT node without I/O.
#[derive(Debug)]
pub struct Node {
    pub(crate) config: Config,
    pub(crate) id: NodeId,
    pub(crate) rng: SmallRng,
    pub(crate) table4: RoutingTable,
    pub(crate) table6: RoutingTable,
    pub(crate) tx: Transactions<Purpose>,
    pub(crate) tokens: Tokens,
    pub(crate) store: PeerStore,
    pub(crate) lookups: HashMap<LookupId, Lookup>,
    next_handle: u64,
    pub(crate) out: VecDeque<Transmit>,
    pub(crate) events: VecDeque<Event>,
    next_maintenance: Instant,
    next_self_refresh: Instant,
    pub(crate) rate: RateLimiter,
    pub(crate) ip_budget: IpBudget,
    pub(crate) out_budget: IpBudget,
    incoming_budget: IpBudget,
    /// Per address: unanswered queries in a row (low bits; cleared by any reply) and
    /// whether it ever answered ([`ANSWERED`]).
    strikes: BoundedMap<SocketAddr, u8>,
    /// Addresses that stopped answering: not queried until their time is up (see [`Dead`]).
    pub(crate) dead: BoundedMap<SocketAddr, Dead>,
    /// The latest time the node was given (for [`Node::is_dead`], which takes none).
    pub(crate) clock: Instant,
    pub(crate) queued: VecDeque<(SocketAddr, Query, Purpose)>,
    /// How many queries at the front of `queued` were already counted in
    /// [`Stats::rate_limited`].
    pub(crate) queued_counted: usize,
    pub(crate) flushing: bool,
    /// When the earliest per-IP budget that [`Node::within_budget`] found spent frees up:
    /// [`Node::poll_timeout`] wakes the caller then, so that work held back by a budget
    /// (and nothing else) is not left waiting for an unrelated event.
    pub(crate) budget_wake: std::cell::Cell<Option<Instant>>,
    /// BEP 42: the responders' vote on our external IP.
    pub(crate) external: crate::bep42::ExternalIpVote,
    /// Buffers handed back for reuse (see [`Node::recycle`]).
    pub(crate) scratch: Scratch,
    pub(crate) stats: Stats,
}

impl Node {
    /// A node with `config`, started at `now`.
    pub fn new(config: Config, now: Instant) -> Node {
        let mut rng = SmallRng::seed_from_u64(config.seed);
        let id = config.id.unwrap_or_else(|| match config.external_ip {
            Some(ip) if !crate::bep42::is_exempt(ip) => crate::bep42::secure_id(ip, rng.gen()),
            _ => NodeId(rng.gen()),
        });
        let table = |c: &Config| RoutingTable::new(id, c.k, c.max_failures, c.one_node_per_ip);
        Node {
            table4: table(&config),
            table6: table(&config),
            tx: Transactions::new(config.max_in_flight, rng.gen()),
            tokens: Tokens::new(&mut rng, now, config.token_rotation),
            store: PeerStore::new(
                config.max_torrents,
                config.max_peers_per_torrent,
                config.peer_ttl,
            ),
            lookups: HashMap::new(),
            next_handle: 0,
            out: VecDeque::new(),
            events: VecDeque::new(),
            next_maintenance: now + MAINTENANCE,
            next_self_refresh: now + MAINTENANCE,
            rate: RateLimiter::new(config.query_rate, config.query_burst, now),
            ip_budget: IpBudget::new(config.per_ip_queries, config.per_ip_window, 65_536)
                .paced(config.per_ip_burst),
            out_budget: IpBudget::new(config.per_ip_datagrams, config.per_ip_window, 65_536),
            strikes: BoundedMap::new(65_536),
            dead: BoundedMap::new(config.max_dead),
            clock: now,
            incoming_budget: IpBudget::new(
                config.max_incoming_per_ip,
                config.per_ip_window,
                65_536,
            ),
            queued: VecDeque::new(),
            queued_counted: 0,
            flushing: false,
            budget_wake: std::cell::Cell::new(None),
            external: crate::bep42::ExternalIpVote::new(config.external_ip_quorum),
            scratch: Scratch::default(),
            stats: Stats::default(),
            id,
            rng,
            config,
        }
    }

    /// Our node id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Counters and sizes.
    pub fn stats(&self) -> Stats {
        let (s4, e4, u4) = self.table4.bep42_counts();
        let (s6, e6, u6) = self.table6.bep42_counts();
        Stats {
            nodes_secure: s4 + s6,
            nodes_exempt: e4 + e6,
            nodes_unsecured: u4 + u6,
            nodes_v4: self.table4.len(),
            nodes_v6: self.table6.len(),
            torrents: self.store.torrents(),
            peers: self.store.peers(),
            in_flight: self.tx.len(),
            dead: self.dead.len(),
            ..self.stats.clone()
        }
    }

    /// Every routing-table entry, both families.
    pub fn routing_nodes(&self) -> Vec<CompactNode> {
        self.table4
            .entries()
            .chain(self.table6.entries())
            .map(|e| e.node)
            .collect()
    }

    /// The `n` closest good or questionable nodes to `target` of one family.
    pub fn closest_nodes(
        &self,
        target: &[u8; 20],
        n: usize,
        v6: bool,
        now: Instant,
    ) -> Vec<CompactNode> {
        self.table(v6).closest(target, n, now)
    }

    /// [`Node::closest_nodes`], written into `out` (cleared first).
    pub fn closest_nodes_into(
        &self,
        target: &[u8; 20],
        n: usize,
        v6: bool,
        now: Instant,
        out: &mut Vec<CompactNode>,
    ) {
        self.table(v6).closest_into(target, n, now, out);
    }

    pub(crate) fn table(&self, v6: bool) -> &RoutingTable {
        if v6 {
            &self.table6
        } else {
            &self.table4
        }
    }

    fn table_mut(&mut self, v6: bool) -> &mut RoutingTable {
        if v6 {
            &mut self.table6
        } else {
            &mut self.table4
        }
    }

    /// Store a peer as if it had announced itself (testnets and local seeders use this).
    pub fn insert_peer(&mut self, now: Instant, info_hash: InfoHash, peer: SocketAddr, seed: bool) {
        self.store.announce(now, info_hash, peer, seed);
    }

    /// Next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.out.pop_front()?;
        self.stats.datagrams_sent += 1;
        Some(t)
    }

    /// Hand back a datagram from [`Node::poll_transmit`] once it is sent: its buffer is
    /// reused for a later datagram instead of a new allocation. Optional.
    pub fn recycle(&mut self, t: Transmit) {
        self.scratch.give_back(t.bytes);
    }

    /// Hand back a reply from [`Event::QueryDone`] once handled: its lists (`nodes`,
    /// `values`, `samples`...) are reused to decode a later reply. Optional.
    pub fn recycle_reply(&mut self, r: Response) {
        self.scratch.give_back_response(r);
    }

    /// Next event for the caller.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Node::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_maintenance.min(self.tokens.next_rotation());
        if let Some(w) = self.budget_wake.get() {
            t = t.min(w);
        }
        if let Some(d) = self.tx.next_deadline() {
            t = t.min(d);
        }
        if !self.queued.is_empty() {
            t = t.min(self.rate.ready_at());
        }
        Some(t)
    }

    /// Send one query to `to`; the sender id inside `query` is replaced by ours. The outcome
    /// arrives as [`Event::QueryDone`].
    pub fn query(&mut self, now: Instant, to: SocketAddr, query: Query) -> QueryId {
        self.clock = self.clock.max(now);
        let id = QueryId(self.handle());
        // The refusal as it is (policy, dead, budget): a caller retries only `Busy`.
        if let Err(e) = self.try_send_query(now, to, query, Purpose::Query(id)) {
            self.events.push_back(Event::QueryDone {
                id,
                to,
                result: Err(e),
            });
        }
        id
    }

    /// Ping `addr`; if it answers, it enters the routing table.
    pub fn add_node(&mut self, now: Instant, addr: SocketAddr) {
        let ping = Query::Ping { id: self.id };
        self.send_query(now, addr, ping, Purpose::Ping);
    }

    pub(crate) fn handle(&mut self) -> u64 {
        self.next_handle += 1;
        self.next_handle
    }

    pub(crate) fn family_ok(&self, a: &SocketAddr) -> bool {
        if a.is_ipv6() {
            self.config.ipv6
        } else {
            self.config.ipv4
        }
    }

    /// The BEP 32 `want` we put in our queries: only when we speak both families.
    pub(crate) fn our_want(&self) -> Want {
        if self.config.ipv4 && self.config.ipv6 {
            Want { v4: true, v6: true }
        } else {
            Want::default()
        }
    }

    /// The address policy in force.
    pub fn addr_policy(&self) -> &crate::AddrPolicy {
        &self.config.addr_policy
    }

    /// Allow the special ranges that `addrs` lie in (the user's own bootstrap nodes or query
    /// targets), so a loopback or LAN network works.
    pub fn allow_ranges_of(&mut self, addrs: &[SocketAddr]) {
        self.config.addr_policy.allow_ranges_of(addrs);
    }

    /// Whether the policy lets us use `addr` (a node or peer learned from the network); a
    /// refusal is counted in [`Stats::refused`].
    pub fn admit(&mut self, addr: &SocketAddr) -> bool {
        match self.config.addr_policy.check(addr) {
            Ok(()) => true,
            Err(r) => {
                self.stats.refused.add(r);
                false
            }
        }
    }

    /// Whether `addr` answered one of our queries (as far as the bounded memory of misses
    /// and answers reaches) and is not dead: a query to it that timed out was most likely
    /// lost on the way, not sent to a node that is gone.
    pub fn has_answered(&self, addr: &SocketAddr) -> bool {
        self.strikes.peek(addr).is_some_and(|e| e & ANSWERED != 0) && !self.is_dead(addr)
    }

    /// Whether `addr` stopped answering and is dead now (see [`Config::dead_for`]).
    pub fn is_dead(&self, addr: &SocketAddr) -> bool {
        self.dead_at(addr, self.clock)
    }

    /// Whether `addr` is dead at `now`.
    pub(crate) fn dead_at(&self, addr: &SocketAddr, now: Instant) -> bool {
        self.dead.peek(addr).is_some_and(|d| d.until > now)
    }

    /// Take `addr` off the dead list (a crawler's bootstrap node while it is the only way
    /// in: on a lossy path it may miss `dead_after` in a row and still be alive).
    pub(crate) fn forgive(&mut self, addr: &SocketAddr) {
        self.dead.remove(addr);
    }

    /// An address did not answer: after `dead_after` in a row it is dead for `dead_for`;
    /// once that has passed, one more miss (before any answer) kills it again, for twice as
    /// long each time.
    fn note_timeout(&mut self, now: Instant, addr: SocketAddr) {
        if let Some(d) = self.dead.peek(&addr).copied() {
            // Revived, and its one query went unanswered (or it is still dead: a query sent
            // before it died timed out since).
            if d.until <= now {
                self.kill(now, addr, d.deaths.saturating_add(1));
            }
            return;
        }
        let entry = self.strikes.peek(&addr).copied().unwrap_or(0);
        let answered = entry & ANSWERED != 0;
        let n = (entry & !ANSWERED).saturating_add(1);
        let limit = self.config.dead_after.clamp(1, 63) * if answered { 2 } else { 1 };
        if n >= limit {
            self.strikes.remove(&addr);
            self.kill(now, addr, 1);
        } else {
            self.strikes.insert(addr, n | (entry & ANSWERED));
        }
    }

    /// `addr` is dead for the `deaths`-th time in a row.
    fn kill(&mut self, now: Instant, addr: SocketAddr, deaths: u8) {
        let wait = self
            .config
            .dead_for
            .saturating_mul(1 << (deaths - 1).min(MAX_DEAD_DOUBLINGS));
        self.dead.insert(
            addr,
            Dead {
                until: now + wait,
                deaths,
            },
        );
    }

    /// `addr` answered: whatever it missed, it is alive.
    fn answered(&mut self, addr: SocketAddr) {
        self.strikes.insert(addr, ANSWERED);
        self.dead.remove(&addr);
    }

    /// Feed one datagram that arrived from `from` at `now`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.clock = self.clock.max(now);
        self.stats.datagrams_received += 1;
        // A datagram from a refused address (spoofed from a private range, or a lab address
        // on a public node) is not answered: a reply would go where we must not send.
        if !self.admit(&from) {
            return;
        }
        let msg = match Message::decode_reusing(bytes, self.scratch.lists()) {
            Ok(m) => m,
            Err(_) => {
                self.stats.malformed += 1;
                self.reply_protocol_error(now, from, bytes);
                return;
            }
        };
        match msg.body {
            Body::Query(q) => {
                self.stats.queries_received += 1;
                self.stats.received_by_method.add(&q);
                // A flooding IP gets no answers (nor a routing-table slot) until it slows
                // down: answering would make us an amplifier for it.
                if !self.incoming_budget.try_record(from.ip(), now) {
                    self.stats.flood_dropped += 1;
                    return;
                }
                if !msg.read_only && !self.config.read_only {
                    self.heard(
                        now,
                        CompactNode {
                            id: q.sender_id(),
                            addr: from,
                        },
                        false,
                    );
                }
                self.serve(now, from, msg.tid, q);
            }
            Body::Response(r) => {
                if let Some(p) = self.tx.take(&msg.tid, from) {
                    self.stats.responses_received += 1;
                    self.answered(from);
                    self.heard(
                        now,
                        CompactNode {
                            id: r.id,
                            addr: from,
                        },
                        true,
                    );
                    self.learn_external_ip(from, msg.ip);
                    let envelope = Envelope {
                        tid: msg.tid,
                        version: msg.version,
                        ip: msg.ip,
                        read_only: msg.read_only,
                    };
                    self.on_response(now, from, p.purpose, envelope, r);
                } else {
                    self.scratch.give_back_response(r);
                }
            }
            Body::Error(e) => {
                if let Some(p) = self.tx.take(&msg.tid, from) {
                    self.stats.errors_received += 1;
                    self.answered(from);
                    self.on_failure(now, from, p.purpose, QueryError::Remote(e));
                }
            }
        }
    }

    /// A node was heard from: update its table; ping where the table asks to.
    fn heard(&mut self, now: Instant, node: CompactNode, replied: bool) {
        match self
            .table_mut(node.addr.is_ipv6())
            .heard_from(node, now, replied)
        {
            Insert::PingFirst(stale) => self.add_node(now, stale.addr),
            Insert::Verify => self.add_node(now, node.addr),
            Insert::Added | Insert::Cached | Insert::Rejected => {}
        }
    }

    fn on_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        purpose: Purpose,
        envelope: Envelope,
        r: Response,
    ) {
        match purpose {
            Purpose::Ping => self.scratch.give_back_response(r),
            Purpose::Query(id) => {
                let msg = Message {
                    tid: envelope.tid,
                    version: envelope.version,
                    ip: envelope.ip,
                    read_only: envelope.read_only,
                    body: Body::Response(r),
                };
                self.events.push_back(Event::QueryDone {
                    id,
                    to: from,
                    result: Ok(msg),
                });
            }
            Purpose::Lookup(lid) => {
                let Some(l) = self.lookups.get_mut(&lid) else {
                    return self.scratch.give_back_response(r);
                };
                let (v4, v6, me) = (self.config.ipv4, self.config.ipv6, self.id);
                let policy = &self.config.addr_policy;
                let refused = &mut self.stats.refused;
                let mut ok = |a: &SocketAddr| match policy.check(a) {
                    Ok(()) => true,
                    Err(range) => {
                        refused.add(range);
                        false
                    }
                };
                // Never ask ourselves, nor a family we cannot reach, nor a refused address.
                let nodes: Vec<CompactNode> = r
                    .nodes
                    .iter()
                    .chain(r.nodes6.iter())
                    .filter(|n| n.id != me && if n.addr.is_ipv6() { v6 } else { v4 })
                    .filter(|n| ok(&n.addr))
                    .copied()
                    .collect();
                let values: Vec<SocketAddr> = r.values.iter().copied().filter(|a| ok(a)).collect();
                l.on_reply(from, r.id, nodes, &values, r.token.clone());
                self.scratch.give_back_response(r);
                if !values.is_empty() {
                    self.events.push_back(Event::Peers {
                        id: lid,
                        info_hash: InfoHash(l.target.0),
                        from,
                        peers: values,
                    });
                }
                self.drive_lookup(now, lid);
            }
            Purpose::Announce(lid) => {
                self.scratch.give_back_response(r);
                self.announce_done(lid, true);
            }
        }
    }

    pub(crate) fn on_failure(
        &mut self,
        now: Instant,
        from: SocketAddr,
        purpose: Purpose,
        err: QueryError,
    ) {
        if err == QueryError::Timeout {
            self.table_mut(from.is_ipv6()).failed(&from, now);
            self.note_timeout(now, from);
        }
        match purpose {
            Purpose::Ping => {}
            Purpose::Query(id) => self.events.push_back(Event::QueryDone {
                id,
                to: from,
                result: Err(err),
            }),
            Purpose::Lookup(lid) => {
                if let Some(l) = self.lookups.get_mut(&lid) {
                    l.on_failure(from);
                    self.drive_lookup(now, lid);
                }
            }
            Purpose::Announce(lid) => self.announce_done(lid, false),
        }
    }

    /// Feed the passage of time.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.clock = self.clock.max(now);
        if self.budget_wake.get().is_some_and(|w| w <= now) {
            self.budget_wake.set(None);
        }
        self.flush_queued(now);
        while let Some(p) = self.tx.pop_expired(now) {
            self.stats.timeouts += 1;
            self.on_failure(now, p.to, p.purpose, QueryError::Timeout);
        }
        self.tokens.maybe_rotate(&mut self.rng, now);
        if now >= self.next_maintenance {
            self.next_maintenance = now + MAINTENANCE;
            self.store.expire(now);
            self.ip_budget.expire(now);
            self.out_budget.expire(now);
            self.incoming_budget.expire(now);
            self.refresh_buckets(now);
        }
    }

    /// Refresh stale buckets with a lookup of a random id inside each (BEP 5), and our own
    /// neighbourhood with a lookup of our id: a node that joined a small network early
    /// otherwise never learns the neighbours that joined after it.
    fn refresh_buckets(&mut self, now: Instant) {
        if now >= self.next_self_refresh && !(self.table4.is_empty() && self.table6.is_empty()) {
            self.next_self_refresh = now + self.config.bucket_refresh;
            self.lookup(now, LookupKind::FindNode, self.id, &[]);
        }
        for v6 in [false, true] {
            if !(if v6 {
                self.config.ipv6
            } else {
                self.config.ipv4
            }) || self.table(v6).is_empty()
            {
                continue;
            }
            let stale = self
                .table(v6)
                .stale_buckets(now, self.config.bucket_refresh);
            // A few per round: refreshing is background work, not a burst.
            for i in stale.into_iter().take(4) {
                let random: [u8; 20] = self.rng.gen();
                let target = self.table(v6).random_id_in_bucket(i, random);
                self.table_mut(v6).touch_bucket(i, now);
                self.lookup(now, LookupKind::FindNode, target, &[]);
            }
        }
    }
}

#[cfg(test)]
mod stats_tests {
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use estudely_krpc::{Body, ErrorMsg, InfoHash, Message, NodeId, Query, Response, Want};

    use crate::{Config, Node};

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([1, 0, 8, i], 6881))
    }

    #[test]
    fn a_spent_budget_wakes_the_caller_when_it_frees() {
        let t0 = Instant::now();
        let window = Duration::from_secs(10);
        let config = Config {
            per_ip_queries: 2,
            per_ip_window: window,
            query_rate: 0.0,
            ..Config::default()
        };
        let mut node = Node::new(config, t0);
        let far = node.poll_timeout().unwrap();
        let ping = Query::Ping {
            id: NodeId([0; 20]),
        };
        node.query(t0, addr(1), ping.clone());
        node.query(t0 + Duration::from_secs(1), addr(1), ping);
        while node.poll_transmit().is_some() {}
        // The replies never come: both queries time out (3 s) and nothing else is due
        // before the node's maintenance, a minute on.
        let later = t0 + Duration::from_secs(5);
        node.handle_timeout(later);
        assert!(node.poll_timeout().unwrap() > t0 + window);
        // The budget is spent (two sends in the window): the caller is told so, and woken
        // when the first send leaves the window.
        assert!(!node.within_budget(&addr(1), later));
        assert_eq!(node.poll_timeout(), Some(t0 + window));
        assert!(far > t0 + window);
        node.handle_timeout(t0 + window);
        assert!(node.within_budget(&addr(1), t0 + window));
        assert!(
            node.poll_timeout().unwrap() > t0 + window,
            "woken once, then not again"
        );
    }

    fn query(i: u8) -> Query {
        let id = NodeId([0; 20]);
        let want = Want::default();
        match i % 3 {
            0 => Query::Ping { id },
            1 => Query::FindNode {
                id,
                target: NodeId([i; 20]),
                want,
            },
            _ => Query::SampleInfohashes {
                id,
                target: NodeId([i; 20]),
                want,
            },
        }
    }

    /// Queries sent by method, waits for the rate limit, and how each query ended.
    #[test]
    fn sent_queries_are_counted_by_method_and_outcome() {
        let t0 = Instant::now();
        let config = Config {
            query_rate: 1.0,
            query_burst: 10.0,
            ..Config::default()
        };
        let mut node = Node::new(config, t0);
        for i in 0..15 {
            let _ = node.query(t0, addr(i), query(i));
        }
        let s = node.stats();
        assert_eq!(s.queries_sent, 10, "the burst");
        assert_eq!(s.rate_limited, 5, "the rest waits, each counted once");

        // One answer, one error; the rest will time out.
        let sent: Vec<_> = std::iter::from_fn(|| node.poll_transmit()).collect();
        assert_eq!(sent.len(), 10);
        let now = t0 + Duration::from_millis(100);
        for (n, tx) in sent.iter().take(2).enumerate() {
            let tid = Message::decode(&tx.bytes).unwrap().tid;
            let body = if n == 0 {
                Body::Response(Response {
                    id: NodeId([9; 20]),
                    ..Response::default()
                })
            } else {
                Body::Error(ErrorMsg {
                    code: 201,
                    message: "no".into(),
                    id: None,
                    reflected_port: None,
                })
            };
            let reply = Message {
                tid,
                version: None,
                ip: None,
                read_only: false,
                body,
            };
            node.handle_datagram(now, tx.to, &reply.encode());
        }
        // Time passes (one more query per second); waiting ones are not counted again.
        for ms in (0..=5_000).step_by(250) {
            node.handle_timeout(t0 + Duration::from_millis(ms));
        }
        let s = node.stats();
        assert_eq!(s.queries_sent, 15);
        assert_eq!(s.rate_limited, 5);
        assert_eq!(s.sent_by_method.ping, 5);
        assert_eq!(s.sent_by_method.find_node, 5);
        assert_eq!(s.sent_by_method.sample_infohashes, 5);
        assert_eq!(s.sent_by_method.total(), s.queries_sent);
        let now = t0 + Duration::from_secs(5);
        node.handle_timeout(now + Duration::from_secs(60));
        let s = node.stats();
        assert_eq!(s.responses_received, 1);
        assert_eq!(s.errors_received, 1);
        assert!(s.timeouts >= 13, "{}", s.timeouts);
    }

    #[test]
    fn received_queries_are_counted_by_method() {
        let t0 = Instant::now();
        let mut node = Node::new(Config::default(), t0);
        let id = NodeId([5; 20]);
        let queries = [
            Query::Ping { id },
            Query::GetPeers {
                id,
                info_hash: InfoHash([1; 20]),
                want: Want::default(),
                noseed: false,
                scrape: false,
            },
            Query::GetPeers {
                id,
                info_hash: InfoHash([2; 20]),
                want: Want::default(),
                noseed: false,
                scrape: false,
            },
            Query::Unknown {
                id,
                method: b"vote".to_vec(),
            },
        ];
        for (t, q) in queries.into_iter().enumerate() {
            let msg = Message {
                tid: estudely_krpc::TransactionId::new(&[t as u8]).unwrap(),
                version: None,
                ip: None,
                read_only: true,
                body: Body::Query(q),
            };
            node.handle_datagram(t0, addr(1), &msg.encode());
        }
        let s = node.stats();
        assert_eq!(s.queries_received, 4);
        assert_eq!(s.received_by_method.ping, 1);
        assert_eq!(s.received_by_method.get_peers, 2);
        assert_eq!(s.received_by_method.other, 1);
        assert_eq!(s.received_by_method.total(), 4);
    }
}
