//! The crawler: a sans-IO state machine that walks the keyspace with BEP 51
//! `sample_infohashes`, falls back to `find_node` for nodes that do not speak BEP 51, and
//! runs a bounded `get_peers` search for every new infohash; on request it also re-scrapes a
//! known torrent for fresh BEP 33 estimates ([`Crawler::scrape`]).
//!
//! It wraps a [`Node`], so while it crawls it also answers every query like a full node, and
//! every query it sends passes the node's politeness (global rate limit, per-IP budget).
//! On top of that it never asks a node for samples before the node's `interval` has passed
//! (and never sooner than `min_resample`, whatever became of the previous query), remembers
//! nodes in bounded memory that pushes back instead of forgetting what etiquette needs,
//! drops replies that lie (`num` smaller than the samples sent, repeated samples, more than
//! a datagram can hold, one IP posing as many nodes), and follows no address that the node's
//! [`crate::AddrPolicy`] refuses. Every queue and map has a cap: see [`CrawlConfig`].

mod config;
#[cfg(test)]
mod fault_tests;
mod known;
mod peer_searches;
mod replies;
mod resting;
mod search;
mod search_pool;
mod searches;
pub(crate) mod seen;
mod shard;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::SeedableRng;

use estudely_krpc::{Body, CompactNode, InfoHash, Message, NodeId, Query};

pub use config::{
    resting_bytes_for_rate, search_queue_for_rate, searches_for_rate, CrawlConfig, CrawlEvent,
    CrawlStats, NextNodes, MAX_CONCURRENT_SEARCHES, MAX_SEARCH_QUEUE,
};
pub use known::{Discovery, Known, KnownNodes};
pub use resting::RestingNodes;
pub use search::Search;
use search_pool::SearchPool;
use searches::Searches;
pub use seen::{keyed_hash, mix, SeenSet};
pub use shard::{BadShard, Shard, MAX_SHARDS};

use crate::bounded::BoundedMap;
use crate::{Config, Event, Node, QueryError, QueryId, Transmit};

/// Most samples one reply may carry: a KRPC datagram (at most 1,500 bytes on the wire, 2,048
/// in our drivers' buffers) cannot hold more. A reply with more is a lie.
pub const MAX_SAMPLES_PER_REPLY: usize = 128;

/// Quick retries of a silent bootstrap node per bootstrap round while no node is known
/// (one per query timeout). With two, 30 % loss each way left about one crawl in 200 with
/// no node at all after a minute (nine queries, all lost: sim_loss); with four, one in
/// tens of thousands. Five queries in 15 s stay well inside a node's per-IP budget.
const BOOTSTRAP_QUICK: usize = 4;

/// Room in the search queue kept for each sample reply in flight: what libtorrent sends at
/// most (20). Keeping [`MAX_SAMPLES_PER_REPLY`] instead held sampling to about 60 replies in
/// flight (8,192 / 128) whatever the rate: once searches cost a query each, sampling was
/// the bottleneck (BENCHMARKS.md, "Peer searches that stop at the first peer").
const SAMPLES_RESERVED: usize = 20;

#[derive(Debug, Clone, Copy)]
enum Purpose {
    Sample(SocketAddr),
    Walk(SocketAddr),
    /// A search's query: its infohash and generation (a reply that comes after the search
    /// ended, even if the same infohash is searched again, is ignored).
    GetPeers(InfoHash, u64),
}

/// The crawler state machine. Drive it like a [`Node`]: `handle_*`, then `poll_*`.
#[derive(Debug)]
pub struct Crawler {
    node: Node,
    cfg: CrawlConfig,
    rng: SmallRng,
    known: KnownNodes,
    pending: HashMap<QueryId, Purpose>,
    samples_in_flight: usize,
    seen: SeenSet,
    found: usize,
    /// Peer searches, waiting and running.
    searches: Searches,
    retried: BoundedMap<InfoHash, ()>,
    /// Infohashes queued to continue their search, with the peers their fetch tried
    /// ([`Crawler::resume_search`]; one per queue entry, so bounded by the queue).
    resuming: HashMap<InfoHash, (Vec<SocketAddr>, NextNodes)>,
    /// Re-scrapes queued (false) or running (true) ([`Crawler::scrape`]; at most
    /// [`CrawlConfig::max_scrapes`]).
    scraping: HashMap<InfoHash, bool>,
    /// When the crawler last handled anything (a wake "now" for [`Crawler::poll_timeout`]).
    last_pump: Instant,
    next_walk: Instant,
    events: VecDeque<CrawlEvent>,
    next_bootstrap: Instant,
    /// Bootstrap rounds in a row that found no node: the wait between rounds doubles.
    bootstrap_rounds: u32,
    /// Quick retries of silent bootstrap nodes left in this round.
    bootstrap_quick: usize,
    /// Room reused for the nodes and peers of each reply (no allocation per reply).
    scratch_nodes: Vec<CompactNode>,
    scratch_peers: Vec<SocketAddr>,
    /// A search's new peers from one reply (reused).
    scratch_new_peers: Vec<SocketAddr>,
    /// The searches that just ended (reused).
    scratch_done: Vec<Search>,
    /// Finished searches' containers, for new searches.
    search_pool: SearchPool,
    stats: CrawlStats,
}

impl Crawler {
    /// A crawler around a node made from `node_config`. The special address ranges that the
    /// bootstrap addresses lie in (say 127.0.0.0/8 for a loopback testnet) are allowed on
    /// top of `node_config.addr_policy`.
    pub fn new(mut node_config: Config, cfg: CrawlConfig, now: Instant) -> Self {
        node_config.addr_policy.allow_ranges_of(&cfg.bootstrap);
        let rng = SmallRng::seed_from_u64(node_config.seed ^ 0xC8A3_1E5D);
        let seen_key = node_config.seed.rotate_left(17) ^ 0x5EE7_5E75_1234_ABCD;
        Crawler {
            node: Node::new(node_config, now),
            known: KnownNodes::new(cfg.max_known_nodes, cfg.max_frontier, cfg.max_ids_per_ip)
                .with_resting(RestingNodes::new(
                    now,
                    cfg.max_interval,
                    cfg.max_resting_bytes,
                    seen_key.rotate_left(29) ^ 0x7E57_1A6B,
                )),
            seen: SeenSet::new(cfg.max_seen_infohashes, seen_key),
            rng,
            pending: HashMap::new(),
            samples_in_flight: 0,
            found: 0,
            searches: Searches::default(),
            retried: BoundedMap::new(4_096),
            resuming: HashMap::new(),
            scraping: HashMap::new(),
            last_pump: now,
            next_walk: now,
            events: VecDeque::new(),
            next_bootstrap: now,
            bootstrap_rounds: 0,
            bootstrap_quick: 0,
            scratch_nodes: Vec::new(),
            scratch_peers: Vec::new(),
            scratch_new_peers: Vec::new(),
            scratch_done: Vec::new(),
            search_pool: SearchPool::default(),
            stats: CrawlStats::default(),
            cfg,
        }
    }

    /// The node inside (for its id and stats).
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Stop peer searches at `n` peers, enough for a fetch (see
    /// [`CrawlConfig::peers_for_fetch`]; 0: search on to `peers_per_infohash`), from the
    /// next search started.
    pub fn set_peers_for_fetch(&mut self, n: usize) {
        self.cfg.peers_for_fetch = n;
    }

    /// The nodes the crawler knows (for tests and diagnostics).
    pub fn known(&self) -> &KnownNodes {
        &self.known
    }

    /// Start from nodes saved by an earlier run (see [`Crawler::good_nodes`]): each one the
    /// address policy allows is visited first, before any bootstrap walk. Returns how many
    /// were taken.
    pub fn warm_start(&mut self, now: Instant, nodes: &[CompactNode]) -> usize {
        let mut taken = 0;
        for n in nodes {
            if n.id == self.node.id()
                || !self.node.admit(&n.addr)
                || !self.cfg.shard.contains(&n.id.0)
            {
                continue;
            }
            if self.known.discover(now, n.addr, n.id) == Discovery::New {
                taken += 1;
            }
        }
        self.launch(now);
        taken
    }

    /// Nodes worth starting from next time: our routing table's (they answered us and are
    /// still good) and the nodes that answered `sample_infohashes`, at most `max`.
    pub fn good_nodes(&self, max: usize) -> Vec<CompactNode> {
        let mut out: Vec<CompactNode> = self
            .node
            .routing_nodes()
            .into_iter()
            .filter(|n| !self.node.is_dead(&n.addr))
            .collect();
        let mut seen: std::collections::HashSet<SocketAddr> = out.iter().map(|n| n.addr).collect();
        for (addr, id) in self.known.answered(max) {
            if out.len() >= max {
                break;
            }
            if !self.node.is_dead(&addr) && seen.insert(addr) {
                out.push(CompactNode { id, addr });
            }
        }
        out.truncate(max);
        out
    }

    /// Bytes of the seen-set (fixed when the crawler is made; pages are touched on use).
    pub fn seen_bytes(&self) -> usize {
        self.seen.bytes()
    }

    /// Counters.
    pub fn stats(&self) -> CrawlStats {
        let node = self.node.stats();
        CrawlStats {
            nodes_known: self.known.len(),
            frontier: self.known.frontier_len(),
            infohashes: self.found,
            searches: self.searches.running() + self.searches.queued(),
            search_queue: self.searches.queued(),
            nodes_retired: self.known.retired,
            nodes_rested: self.known.resting().map_or(0, |r| r.rested),
            addr_refused: node.refused,
            nodes_dead: node.dead,
            table_secure: node.nodes_secure,
            table_exempt: node.nodes_exempt,
            table_unsecured: node.nodes_unsecured,
            ..self.stats.clone()
        }
    }

    /// Whether the infohash budget is spent and every peer search has ended.
    pub fn is_done(&self) -> bool {
        self.sampling_done() && self.searches.is_empty()
    }

    fn sampling_done(&self) -> bool {
        (self.cfg.max_infohashes != 0 && self.found >= self.cfg.max_infohashes) || self.seen_full()
    }

    fn seen_full(&self) -> bool {
        self.stats.seen_full
    }

    /// Whether the search queue could take the samples of every reply in flight plus one
    /// more, at [`SAMPLES_RESERVED`] each: sampling waits otherwise. (Always, without peer
    /// searches.) A reply with more samples than that, finding the queue full, has the rest
    /// reported unsearched (`CrawlStats::unsearched`): never dropped.
    fn room_to_sample(&self) -> bool {
        !self.cfg.search_peers
            || self.searches.queued() + (self.samples_in_flight + 1) * SAMPLES_RESERVED
                <= self.cfg.max_search_queue.max(SAMPLES_RESERVED)
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

    /// Hand back a datagram from [`Crawler::poll_transmit`] once it is sent: its buffer is
    /// reused (see [`Node::recycle`]). Optional.
    pub fn recycle(&mut self, t: Transmit) {
        self.node.recycle(t);
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
        if self.room() {
            // Searches set aside while their next nodes were over budget.
            if let Some(w) = self.searches.wake_at() {
                wake(w);
            }
            // Searches listed after the last turn (none normally: `launch` goes round
            // until none is): their turn is now, or nothing would come to give it.
            if self.searches.has_ready() {
                wake(self.last_pump);
            }
        }
        // Only when there is room to act on them: with every slot busy, a due node waits for
        // a reply to free a slot, and waking for it would spin without making progress.
        if !self.sampling_done() && self.room() && self.room_to_sample() {
            if let Some(d) = self.known.next_due() {
                wake(d);
            }
            if self.known.is_empty() {
                wake(self.next_bootstrap);
            } else if self.known.has_frontier() {
                // New nodes wait (a warm start, or replies that came while every slot was
                // busy): visit them as soon as there is room, which there is now.
                wake(self.next_walk.min(self.next_bootstrap));
            } else {
                wake(self.next_walk);
            }
        }
        t
    }

    /// Handle the node's events, then start as much work as the budgets allow.
    fn pump(&mut self, now: Instant) {
        self.last_pump = self.last_pump.max(now);
        self.drain_node_events(now);
        self.launch(now);
    }

    fn drain_node_events(&mut self, now: Instant) {
        while let Some(e) = self.node.poll_event() {
            match e {
                Event::QueryDone { id, to, result } => {
                    if let Some(p) = self.pending.remove(&id) {
                        self.on_done(now, to, p, result);
                    }
                }
                Event::Announced {
                    info_hash,
                    peer,
                    from,
                } if self.cfg.harvest => self.on_announced(info_hash, peer, from),
                _ => {}
            }
        }
    }

    /// A node announced `peer` for `info_hash` to our node (token checked by the node): a
    /// discovery, with its first peer. Its peer search starts from the announcer; with the
    /// search queue full, the infohash and its announcer are still reported, without a
    /// search (an announce cannot be pushed back).
    fn on_announced(&mut self, info_hash: InfoHash, peer: SocketAddr, from: SocketAddr) {
        if self.sampling_done() {
            return;
        }
        match self.first_report(&info_hash) {
            Some(true) => {}
            Some(false) | None => return,
        }
        self.found += 1;
        self.stats.harvested += 1;
        self.stats.peers += 1;
        self.events.push_back(CrawlEvent::InfoHash {
            info_hash,
            from,
            announced: true,
        });
        if !self.cfg.search_peers {
            return;
        }
        self.events.push_back(CrawlEvent::Peer { info_hash, peer });
        self.enqueue_search(info_hash, from, Some(peer));
    }

    /// Queue the search of a new infohash; with the queue full, report it ended unsearched
    /// (with its known peer, if any) rather than drop it or grow the queue. One being
    /// re-scraped ([`Crawler::scrape`]: the caller knows it) is reported ended at once too.
    fn enqueue_search(&mut self, ih: InfoHash, from: SocketAddr, peer: Option<SocketAddr>) {
        if self.scraping.contains_key(&ih) {
            self.events.push_back(unsearched(ih, peer));
        } else if self.searches.queued() < self.cfg.max_search_queue {
            self.searches.enqueue((ih, from, peer));
        } else {
            self.stats.unsearched += 1;
            self.events.push_back(unsearched(ih, peer));
        }
    }

    fn send(&mut self, now: Instant, to: SocketAddr, q: Query, p: Purpose) {
        if matches!(p, Purpose::Sample(_)) {
            self.samples_in_flight += 1;
        }
        let id = self.node.query(now, to, q);
        self.pending.insert(id, p);
        // A refusal (budget, policy, dead) is reported as an event right away: handle it now.
        self.drain_node_events(now);
    }

    /// Start work while queries may be in flight and the node's rate queue is short.
    fn launch(&mut self, now: Instant) {
        // A search that ends empty-handed may be started once more (`finish_searches`): its
        // first queries go out in a second round, since no event may come to send them.
        for _round in 0..4 {
            self.launch_round(now);
            if !self.finish_searches(now) {
                break;
            }
        }
    }

    fn launch_round(&mut self, now: Instant) {
        // Peer searches first: an infohash is only worth something with its peers.
        while let Some((ih, from, known_peer)) =
            self.searches.next_queued(self.cfg.max_concurrent_searches)
        {
            self.start_search(now, ih, from, known_peer);
        }
        let mut guard = 0;
        while self.room() && guard < 4 * self.cfg.max_in_flight {
            guard += 1;
            let node = &self.node;
            if let Some((ih, generation, to, scrape)) = self
                .searches
                .next_query(now, |a| node.within_budget(a, now))
            {
                self.stats.get_peers_sent += 1;
                let q = Query::GetPeers {
                    id: NodeId::default(),
                    info_hash: ih,
                    want: self.node.our_want(),
                    noseed: false,
                    scrape,
                };
                self.send(now, to, q, Purpose::GetPeers(ih, generation));
                continue;
            }
            if self.sampling_done() || !self.room_to_sample() {
                break;
            }
            if !self.visit_next(now) {
                break;
            }
        }
    }

    fn room(&self) -> bool {
        self.pending.len() < self.cfg.max_in_flight && self.node.queued_queries() < 8
    }

    /// Visit one node: a new one, or one whose interval has passed; else walk or bootstrap.
    /// False: nothing to do.
    fn visit_next(&mut self, now: Instant) -> bool {
        let Some(addr) = self.known.pop_next(now) else {
            return self.idle(now);
        };
        let Some(k) = self.known.peek(&addr).cloned() else {
            return true;
        };
        if let Some(t) = k.next_sample.filter(|t| *t > now) {
            self.known.schedule(addr, t);
            return true;
        }
        if !self.node.within_budget(&addr, now) {
            // Over its per-IP budget: come back in a few seconds.
            self.known.schedule(addr, now + Duration::from_secs(5));
            return true;
        }
        if k.bep51 == Some(false) {
            // A node without BEP 51 is walked again now and then, never sampled.
            self.known
                .schedule(addr, now + self.cfg.rewalk.max(self.cfg.min_resample));
            self.walk(now, addr);
        } else {
            // Provisionally: not before the node's interval (min_resample before its first
            // answer), whatever becomes of this query (lost, malformed, timed out: a retry
            // counts as a second query). It rests as long if it is forgotten meanwhile
            // (dead) and listed again: the query may have reached it even if no answer
            // reached us.
            let wait = k.wait(self.cfg.min_resample);
            self.known.schedule(addr, now + wait);
            if let Some(k) = self.known.get_mut(&addr) {
                k.rest_at_least_until(now + wait);
            }
            self.stats.samples_sent += 1;
            let q = Query::SampleInfohashes {
                id: NodeId::default(),
                target: NodeId(self.cfg.shard.random_id(&mut self.rng)),
                want: self.node.our_want(),
            };
            self.send(now, addr, q, Purpose::Sample(addr));
        }
        true
    }

    /// Nothing queued: keep discovering, one `find_node` a second toward a random target,
    /// sent to the closest node of our routing table; with no node at all, bootstrap.
    fn idle(&mut self, now: Instant) -> bool {
        if !self.known.is_empty() && now >= self.next_walk {
            self.next_walk = now + Duration::from_secs(1);
            let target = self.cfg.shard.random_id(&mut self.rng);
            let v6 = !self.node.config.ipv4;
            if let Some(n) = self.node.closest_nodes(&target, 1, v6, now).first() {
                if self.node.within_budget(&n.addr, now) {
                    self.walk(now, n.addr);
                    return true;
                }
            }
        }
        if !self.known.is_empty() {
            self.bootstrap_rounds = 0;
        }
        if self.known.is_empty() && now >= self.next_bootstrap {
            // 10 s, 20 s, ... up to 32 times `bootstrap_retry` while nobody answers.
            let backoff = 1u32 << self.bootstrap_rounds.min(5);
            self.bootstrap_rounds += 1;
            self.next_bootstrap = now + self.cfg.bootstrap_retry * backoff;
            self.bootstrap_quick = BOOTSTRAP_QUICK * self.cfg.bootstrap.len();
            for b in self.cfg.bootstrap.clone() {
                self.walk(now, b);
            }
            return !self.cfg.bootstrap.is_empty();
        }
        false
    }

    /// `find_node` toward a random target, to discover nodes.
    fn walk(&mut self, now: Instant, to: SocketAddr) {
        self.stats.find_nodes_sent += 1;
        let q = Query::FindNode {
            id: NodeId::default(),
            target: NodeId(self.cfg.shard.random_id(&mut self.rng)),
            want: self.node.our_want(),
        };
        self.send(now, to, q, Purpose::Walk(to));
    }

    fn on_done(
        &mut self,
        now: Instant,
        to: SocketAddr,
        p: Purpose,
        result: Result<Message, QueryError>,
    ) {
        if matches!(p, Purpose::Sample(_)) {
            self.samples_in_flight = self.samples_in_flight.saturating_sub(1);
        }
        let mut version = None;
        let reply = match result {
            Ok(m) => match m.body {
                Body::Response(r) => {
                    version = m.version;
                    Ok(r)
                }
                _ => Err(QueryError::Timeout),
            },
            Err(e) => Err(e),
        };
        // The reply is read by reference and its lists handed back to the node at the end.
        let mut nodes = std::mem::take(&mut self.scratch_nodes);
        match (p, reply.as_ref()) {
            (Purpose::Sample(addr), Ok(r)) => self.on_sample(now, addr, r, version, &mut nodes),
            (Purpose::Sample(addr), Err(QueryError::Remote(_))) => {
                // No BEP 51 here: fall back to find_node so its neighbours are still found.
                self.no_bep51(now, addr);
                self.walk(now, addr);
            }
            (Purpose::Walk(addr), Ok(r)) => {
                self.admitted_nodes(r, &mut nodes);
                self.learn(now, addr, r);
                self.add_nodes(now, &nodes);
            }
            (Purpose::GetPeers(ih, generation), Ok(r)) => {
                self.admitted_nodes(r, &mut nodes);
                self.learn(now, to, r);
                self.add_nodes(now, &nodes);
                let mut values = std::mem::take(&mut self.scratch_peers);
                values.clear();
                values.extend(r.values.iter().copied().filter(|a| self.node.admit(a)));
                let mut new = std::mem::take(&mut self.scratch_new_peers);
                if let Some(s) = self.searches.touch(&ih, generation) {
                    s.on_scrape(r.bf_seeds.as_deref(), r.bf_peers.as_deref());
                    s.on_reply_into(&values, &nodes, &mut new);
                    for peer in new.drain(..) {
                        self.stats.peers += 1;
                        self.events.push_back(CrawlEvent::Peer {
                            info_hash: ih,
                            peer,
                        });
                    }
                }
                self.scratch_new_peers = new;
                self.scratch_peers = values;
            }
            (Purpose::GetPeers(ih, generation), Err(QueryError::Busy)) => {
                // Our own throttle, not the node's fault: ask it again later.
                if let Some(s) = self.searches.touch(&ih, generation) {
                    s.unsent(to);
                }
            }
            (Purpose::Sample(addr) | Purpose::Walk(addr), Err(QueryError::Busy)) => {
                self.known.schedule(addr, now + Duration::from_secs(5));
            }
            (Purpose::GetPeers(ih, generation), Err(e)) => {
                self.stats.failures += 1;
                // A node that answered us before and now timed out most likely lost a
                // datagram: the search may ask it once more (see `Search::on_lost`).
                let lost = matches!(e, QueryError::Timeout) && self.node.has_answered(&to);
                if let Some(s) = self.searches.touch(&ih, generation) {
                    if lost {
                        s.on_lost(to);
                    } else {
                        s.on_failure();
                    }
                }
            }
            (Purpose::Walk(addr), Err(QueryError::Timeout))
                if self.known.is_empty()
                    && self.bootstrap_quick > 0
                    && self.cfg.bootstrap.contains(&addr) =>
            {
                // Nothing known yet and a bootstrap node did not answer (on a lossy path the
                // query or its reply is often lost): ask it again now rather than in
                // `bootstrap_retry`, so one lost datagram does not stall the whole crawl.
                // One query per bootstrap node is in flight, one per query timeout; the
                // timed rounds wait while these retries go on. At most [`BOOTSTRAP_QUICK`]
                // such retries per bootstrap node per round (rounds back off); while it is
                // our only way in, a bootstrap node is never written off as dead.
                self.stats.failures += 1;
                self.node.forgive(&addr);
                if self.node.within_budget(&addr, now) {
                    self.bootstrap_quick -= 1;
                    self.next_bootstrap = self.next_bootstrap.max(now + self.cfg.bootstrap_retry);
                    self.walk(now, addr);
                }
            }
            (Purpose::Sample(addr) | Purpose::Walk(addr), Err(e)) => {
                self.stats.failures += 1;
                let never_answered = self.known.peek(&addr).is_some_and(|k| k.bep51.is_none());
                if never_answered
                    && self
                        .known
                        .rest_if_crowded(now, addr, now + self.cfg.max_interval)
                {
                    // Crowded, and it never answered (often: behind a NAT): rest for the
                    // longest interval rather than take a slot with retries.
                } else if let (Purpose::Sample(_), Some(k)) = (p, self.known.get_mut(&addr)) {
                    // No usable reply (lost, malformed): back off, the node's interval
                    // (min_resample before its first answer) after the first, doubling
                    // each time after, up to max_interval. (Twice the interval after the
                    // first kept a node whose one sample was lost out of a short crawl on a
                    // lossy network.) The query may have reached the node even though no
                    // answer reached us, so its interval holds from it.
                    // Counted from the timeout plus one more query timeout: a node slow to
                    // read its queries may have answered this one after we gave up on it,
                    // and a retry an interval after that answer is still polite (seen as
                    // early samples in a loaded world: the reply left 3-6 s after the query).
                    k.failed_samples = k.failed_samples.saturating_add(1);
                    let shift = u32::from(k.failed_samples.min(16)) - 1;
                    let wait = k
                        .wait(self.cfg.min_resample)
                        .saturating_mul(1 << shift)
                        .min(self.cfg.max_interval)
                        + self.node.config.query_timeout;
                    k.rest_at_least_until(now + wait);
                    self.known.schedule(addr, now + wait);
                }
                // Dead or refused: never asked again.
                if matches!(e, QueryError::Dead | QueryError::Refused(_))
                    || self.node.is_dead(&addr)
                {
                    self.known.forget(now, &addr);
                }
            }
        }
        self.scratch_nodes = nodes;
        if let Ok(r) = reply {
            self.node.recycle_reply(r);
        }
    }
}

/// The end of a search that never ran, with its known peer, if any.
pub(super) fn unsearched(info_hash: InfoHash, peer: Option<SocketAddr>) -> CrawlEvent {
    CrawlEvent::SearchDone {
        info_hash,
        peers: usize::from(peer.is_some()),
        queries: 0,
        seeds_estimate: None,
        peers_estimate: None,
        next_nodes: NextNodes::default(),
    }
}
