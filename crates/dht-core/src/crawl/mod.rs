//! The crawler: a sans-IO state machine that walks the keyspace with BEP 51
//! `sample_infohashes`, falls back to `find_node` for nodes that do not speak BEP 51, and
//! runs a bounded `get_peers` search for every new infohash.
//!
//! It wraps a [`Node`], so while it crawls it also answers every query like a full node, and
//! every query it sends passes the node's politeness (global rate limit, per-IP budget).
//! On top of that it never asks a node for samples before the node's `interval` has passed
//! (and never sooner than `min_resample`), remembers nodes in bounded memory, and drops
//! replies that lie (`num` smaller than the samples sent, repeated samples, one IP posing as
//! many nodes).

mod config;
mod known;
mod search;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use estudely_krpc::{Body, CompactNode, InfoHash, Message, NodeId, Query, Response};

pub use config::{CrawlConfig, CrawlEvent, CrawlStats};
pub use known::{Known, KnownNodes};
pub use search::Search;

use crate::bounded::BoundedMap;
use crate::{Config, Event, Node, QueryError, QueryId, Transmit};

/// How soon a `sample_infohashes` that got no reply is sent once more.
const SAMPLE_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
enum Purpose {
    Sample(SocketAddr),
    Walk(SocketAddr),
    GetPeers(InfoHash),
}

/// The crawler state machine. Drive it like a [`Node`]: `handle_*`, then `poll_*`.
#[derive(Debug)]
pub struct Crawler {
    node: Node,
    cfg: CrawlConfig,
    rng: SmallRng,
    known: KnownNodes,
    frontier: VecDeque<SocketAddr>,
    pending: HashMap<QueryId, Purpose>,
    seen: BoundedMap<InfoHash, ()>,
    found: usize,
    searches: HashMap<InfoHash, Search>,
    search_queue: VecDeque<(InfoHash, SocketAddr)>,
    search_cursor: usize,
    retried: BoundedMap<InfoHash, ()>,
    next_walk: Instant,
    events: VecDeque<CrawlEvent>,
    next_bootstrap: Instant,
    stats: CrawlStats,
}

impl Crawler {
    /// A crawler around a node made from `node_config`.
    pub fn new(node_config: Config, cfg: CrawlConfig, now: Instant) -> Self {
        let rng = SmallRng::seed_from_u64(node_config.seed ^ 0xC8A3_1E5D);
        Crawler {
            node: Node::new(node_config, now),
            known: KnownNodes::new(cfg.max_known_nodes, cfg.max_ids_per_ip),
            seen: BoundedMap::new(cfg.max_seen_infohashes),
            rng,
            frontier: VecDeque::new(),
            pending: HashMap::new(),
            found: 0,
            searches: HashMap::new(),
            search_queue: VecDeque::new(),
            search_cursor: 0,
            retried: BoundedMap::new(4_096),
            next_walk: now,
            events: VecDeque::new(),
            next_bootstrap: now,
            stats: CrawlStats::default(),
            cfg,
        }
    }

    /// The node inside (for its id and stats).
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Counters.
    pub fn stats(&self) -> CrawlStats {
        CrawlStats {
            nodes_known: self.known.len(),
            frontier: self.frontier.len(),
            infohashes: self.found,
            searches: self.searches.len() + self.search_queue.len(),
            ..self.stats.clone()
        }
    }

    /// Whether the infohash budget is spent and every peer search has ended.
    pub fn is_done(&self) -> bool {
        self.sampling_done() && self.searches.is_empty() && self.search_queue.is_empty()
    }

    fn sampling_done(&self) -> bool {
        self.cfg.max_infohashes != 0 && self.found >= self.cfg.max_infohashes
    }

    /// Feed one datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.node.handle_datagram(now, from, bytes);
        self.pump(now);
    }

    /// Feed the passage of time.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.node.handle_timeout(now);
        self.pump(now);
    }

    /// Next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.node.poll_transmit()
    }

    /// Next finding.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<CrawlEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.node.poll_timeout();
        let mut wake = |x: Instant| t = Some(t.map_or(x, |t| t.min(x)));
        // Only when there is room to act on them: with every slot busy, a due node waits for
        // a reply to free a slot, and waking for it would spin without making progress.
        if !self.sampling_done() && self.room() {
            if let Some(d) = self.known.next_due() {
                wake(d);
            }
            if self.known.is_empty() && self.frontier.is_empty() {
                wake(self.next_bootstrap);
            } else if self.frontier.is_empty() {
                wake(self.next_walk);
            }
        }
        t
    }

    /// Handle the node's events, then start as much work as the budgets allow.
    fn pump(&mut self, now: Instant) {
        while let Some(e) = self.node.poll_event() {
            if let Event::QueryDone { id, to, result } = e {
                if let Some(p) = self.pending.remove(&id) {
                    self.on_done(now, to, p, result);
                }
            }
        }
        self.launch(now);
    }

    fn send(&mut self, now: Instant, to: SocketAddr, q: Query, p: Purpose) {
        let id = self.node.query(now, to, q);
        self.pending.insert(id, p);
        // A refusal (budget) is reported as an event right away: handle it now.
        while let Some(e) = self.node.poll_event() {
            if let Event::QueryDone { id, to, result } = e {
                if let Some(p) = self.pending.remove(&id) {
                    self.on_done(now, to, p, result);
                }
            }
        }
    }

    /// Start work while queries may be in flight and the node's rate queue is short.
    fn launch(&mut self, now: Instant) {
        // Peer searches first: an infohash is only worth something with its peers.
        while self.searches.len() < self.cfg.max_concurrent_searches {
            let Some((ih, from)) = self.search_queue.pop_front() else {
                break;
            };
            let known = self.node.closest_nodes(&ih.0, 8, from.is_ipv6(), now);
            let s = Search::new(
                ih,
                from,
                &known,
                self.cfg.peers_per_infohash,
                self.cfg.max_get_peers_per_infohash,
            );
            self.searches.insert(ih, s);
        }
        let mut guard = 0;
        while self.room() && guard < 4 * self.cfg.max_in_flight {
            guard += 1;
            if let Some((ih, to)) = self.next_search_query(now) {
                self.stats.get_peers_sent += 1;
                let q = Query::GetPeers {
                    id: NodeId::default(),
                    info_hash: ih,
                    want: self.node.our_want(),
                    noseed: false,
                    scrape: false,
                };
                self.send(now, to, q, Purpose::GetPeers(ih));
                continue;
            }
            if self.sampling_done() {
                break;
            }
            if !self.visit_next(now) {
                break;
            }
        }
        self.finish_searches();
    }

    fn room(&self) -> bool {
        self.pending.len() < self.cfg.max_in_flight && self.node.queued_queries() < 8
    }

    /// The next `get_peers` to send, taking the searches in turn (round robin) so that none
    /// waits behind the others; a node over its per-IP budget is left for later.
    fn next_search_query(&mut self, now: Instant) -> Option<(InfoHash, SocketAddr)> {
        let mut ihs: Vec<InfoHash> = self.searches.keys().copied().collect();
        ihs.sort_unstable();
        let n = ihs.len();
        for k in 0..n {
            let ih = ihs[(self.search_cursor + k) % n];
            let node = &self.node;
            let s = self.searches.get_mut(&ih)?;
            if let Some(to) = s.next_query_if(|a| node.within_budget(a, now)) {
                self.search_cursor = (self.search_cursor + k + 1) % n;
                return Some((ih, to));
            }
        }
        None
    }

    fn finish_searches(&mut self) {
        let done: Vec<InfoHash> = self
            .searches
            .iter()
            .filter(|(_, s)| s.is_done())
            .map(|(ih, _)| *ih)
            .collect();
        for ih in done {
            if let Some(s) = self.searches.remove(&ih) {
                // A search that found nobody (often: our routing table was still nearly
                // empty when it started) gets one more try from the table as it is now.
                if s.peers().is_empty() && !self.retried.contains(&ih) {
                    self.retried.insert(ih, ());
                    self.search_queue.push_back((ih, s.first()));
                    continue;
                }
                self.events.push_back(CrawlEvent::SearchDone {
                    info_hash: ih,
                    peers: s.peers().len(),
                    queries: s.queries(),
                });
            }
        }
    }

    /// Visit one node from the frontier (or a due one, or bootstrap). False: nothing to do.
    fn visit_next(&mut self, now: Instant) -> bool {
        let next = match self.frontier.pop_front() {
            Some(a) => Some(a),
            None => self.known.pop_due(now),
        };
        let Some(addr) = next else {
            // Nothing queued: keep discovering, one find_node a second toward a random
            // target, sent to the closest node of our routing table.
            if !self.known.is_empty() && now >= self.next_walk {
                self.next_walk = now + Duration::from_secs(1);
                let target: [u8; 20] = self.rng.gen();
                let v6 = !self.node.config.ipv4;
                if let Some(n) = self.node.closest_nodes(&target, 1, v6, now).first() {
                    if self.node.within_budget(&n.addr, now) {
                        self.walk(now, n.addr);
                        return true;
                    }
                }
            }
            if self.known.is_empty() && now >= self.next_bootstrap {
                self.next_bootstrap = now + self.cfg.bootstrap_retry;
                for b in self.cfg.bootstrap.clone() {
                    self.walk(now, b);
                }
                return !self.cfg.bootstrap.is_empty();
            }
            return false;
        };
        let Some(k) = self.known.get_mut(&addr) else {
            return true;
        };
        k.queued = false;
        if k.next_sample.is_some_and(|t| t > now) {
            return true;
        }
        if !self.node.within_budget(&addr, now) {
            // Over its per-IP budget: come back in a few seconds.
            self.known.schedule(addr, now + Duration::from_secs(5));
            return true;
        }
        if k.bep51 == Some(false) {
            // A node without BEP 51 is walked once per resample period, never sampled.
            self.known.schedule(addr, now + self.cfg.min_resample);
            self.walk(now, addr);
        } else {
            // Provisionally: not before min_resample, even if the reply never comes.
            self.known.schedule(addr, now + self.cfg.min_resample);
            self.stats.samples_sent += 1;
            let q = Query::SampleInfohashes {
                id: NodeId::default(),
                target: NodeId(self.rng.gen()),
                want: self.node.our_want(),
            };
            self.send(now, addr, q, Purpose::Sample(addr));
        }
        true
    }

    /// `find_node` toward a random target, to discover nodes.
    fn walk(&mut self, now: Instant, to: SocketAddr) {
        self.stats.find_nodes_sent += 1;
        let q = Query::FindNode {
            id: NodeId::default(),
            target: NodeId(self.rng.gen()),
            want: self.node.our_want(),
        };
        self.send(now, to, q, Purpose::Walk(to));
    }

    fn on_done(
        &mut self,
        now: Instant,
        to: SocketAddr,
        p: Purpose,
        result: Result<Box<Message>, QueryError>,
    ) {
        let reply = match result {
            Ok(m) => match m.body {
                Body::Response(r) => Ok(r),
                _ => Err(QueryError::Timeout),
            },
            Err(e) => Err(e),
        };
        match (p, reply) {
            (Purpose::Sample(addr), Ok(r)) => self.on_sample(now, addr, r),
            (Purpose::Sample(addr), Err(QueryError::Remote(_))) => {
                // No BEP 51 here: fall back to find_node so its neighbours are still found.
                if let Some(k) = self.known.get_mut(&addr) {
                    k.bep51 = Some(false);
                }
                self.walk(now, addr);
            }
            (Purpose::Walk(addr), Ok(r)) => {
                self.learn(addr, &r);
                self.add_nodes(&r);
            }
            (Purpose::GetPeers(ih), Ok(r)) => {
                self.learn(to, &r);
                self.add_nodes(&r);
                if let Some(s) = self.searches.get_mut(&ih) {
                    let nodes: Vec<CompactNode> =
                        r.nodes.iter().chain(&r.nodes6).copied().collect();
                    for peer in s.on_reply(&r.values, &nodes) {
                        self.stats.peers += 1;
                        self.events.push_back(CrawlEvent::Peer {
                            info_hash: ih,
                            peer,
                        });
                    }
                }
            }
            (Purpose::GetPeers(ih), Err(QueryError::Busy)) => {
                // Our own throttle, not the node's fault: ask it again later.
                if let Some(s) = self.searches.get_mut(&ih) {
                    s.unsent(to);
                }
            }
            (Purpose::Sample(addr) | Purpose::Walk(addr), Err(QueryError::Busy)) => {
                self.known.schedule(addr, now + Duration::from_secs(5));
            }
            (Purpose::GetPeers(ih), Err(_)) => {
                self.stats.failures += 1;
                if let Some(s) = self.searches.get_mut(&ih) {
                    s.on_failure();
                }
            }
            (Purpose::Walk(addr), Err(QueryError::Timeout))
                if self.known.is_empty() && self.cfg.bootstrap.contains(&addr) =>
            {
                // Nothing known yet and a bootstrap node did not answer (on a lossy path the
                // query or its reply is often lost): ask it again now rather than in
                // `bootstrap_retry`, so one lost datagram does not stall the whole crawl.
                // One query per bootstrap node is in flight, one per query timeout; the
                // timed rounds wait while these retries go on.
                self.stats.failures += 1;
                if self.node.within_budget(&addr, now) {
                    self.next_bootstrap = now + self.cfg.bootstrap_retry;
                    self.walk(now, addr);
                }
            }
            (Purpose::Sample(addr) | Purpose::Walk(addr), Err(e)) => {
                self.stats.failures += 1;
                let strikes = self.known.get_mut(&addr).map(|k| {
                    k.strikes += 1;
                    k.strikes
                });
                match strikes {
                    Some(s) if s >= 2 => self.known.forget(&addr),
                    // A first sample without a reply: the query or the reply may just have
                    // been lost, and the node has not told us its interval. Ask once more
                    // soon instead of after `min_resample` (a second failure forgets it).
                    Some(_) if matches!(p, Purpose::Sample(_)) && e == QueryError::Timeout => {
                        self.known.schedule(addr, now + SAMPLE_RETRY);
                    }
                    _ => {}
                }
            }
        }
    }

    /// A node answered: note its id (discovering it if it was a bootstrap address).
    fn learn(&mut self, addr: SocketAddr, r: &Response) {
        match self.known.get_mut(&addr) {
            Some(k) => {
                k.strikes = 0;
                k.id = r.id;
            }
            None => {
                if self.known.discover(addr, r.id) {
                    self.frontier.push_back(addr);
                }
            }
        }
    }

    fn add_nodes(&mut self, r: &Response) {
        let me = self.node.id();
        let (v4, v6) = (self.node.config.ipv4, self.node.config.ipv6);
        for n in r
            .nodes
            .iter()
            .filter(|_| v4)
            .chain(r.nodes6.iter().filter(|_| v6))
        {
            if n.id == me || n.addr.port() == 0 || self.frontier.len() >= self.cfg.max_frontier {
                continue;
            }
            if self.known.discover(n.addr, n.id) {
                self.frontier.push_back(n.addr);
            }
        }
    }

    fn on_sample(&mut self, now: Instant, addr: SocketAddr, r: Response) {
        self.learn(addr, &r);
        self.add_nodes(&r);
        let Some(interval) = r.interval else {
            // Answered, but not with BEP 51 fields: treat as a node without BEP 51.
            if let Some(k) = self.known.get_mut(&addr) {
                k.bep51 = Some(false);
            }
            return;
        };
        let wait = Duration::from_secs(u64::from(interval))
            .clamp(self.cfg.min_resample, self.cfg.max_interval);
        if let Some(k) = self.known.get_mut(&addr) {
            k.bep51 = Some(true);
        }
        self.known.schedule(addr, now + wait);
        // A node cannot sample more infohashes than it says it stores, nor repeat one.
        let mut distinct = r.samples.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let lies = r.num.is_some_and(|n| (n as usize) < r.samples.len())
            || distinct.len() != r.samples.len();
        if lies {
            self.stats.lies += 1;
            return;
        }
        self.stats.samples_answered += 1;
        for ih in r.samples {
            if self.sampling_done() {
                break;
            }
            if self.seen.contains(&ih) {
                continue;
            }
            self.seen.insert(ih, ());
            self.found += 1;
            self.events.push_back(CrawlEvent::InfoHash {
                info_hash: ih,
                from: addr,
            });
            self.search_queue.push_back((ih, addr));
        }
    }
}
