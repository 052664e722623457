//! The crawl of a [`ProcNet`] on a virtual clock: one crawler, or several splitting the
//! keyspace (`--shard K/N`), each at its own query rate from its own IP, their datagrams
//! delivered after each node's round trip. Coverage (the network's infohashes found by any
//! of them) is recorded at checkpoints. No sockets, no clock, no global randomness: a seed
//! replays exactly.
//!
//! With peer searches, a model of the pipeline of `run` and `collect` takes each search's
//! peers: a "fetch" tries the first [`FETCH_ATTEMPTS`] of them (as `--metadata-peer-attempts`
//! does) and succeeds if one serves the metadata ([`ProcNet::serves_metadata`]); a search that
//! stopped at enough peers for a fetch, whose fetch failed, is continued once
//! ([`Crawler::resume_search`]), as the pipeline does.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use estudely_krpc::InfoHash;

use super::{NetStats, ProcConfig, ProcNet};
use crate::crawl::{
    resting_bytes_for_rate, search_queue_for_rate, searches_for_rate, CrawlConfig, CrawlEvent,
    CrawlStats, Crawler, NextNodes, Shard,
};
use crate::Config;

/// A simulated crawl.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The network.
    pub net: ProcConfig,
    /// Queries per second of each crawler (its global rate limit).
    pub rate: f64,
    /// Crawlers, each with shard `k/shards` of the keyspace. 1 = one crawler, no split.
    pub shards: u32,
    /// Nodes each crawler remembers in full ([`CrawlConfig::max_known_nodes`]).
    pub max_known_nodes: usize,
    /// Count samples sent inside a node's interval ([`ProcNet::check_etiquette`]; 4 bytes
    /// per node and crawler).
    pub check_etiquette: bool,
    /// Run a `get_peers` search for each new infohash, as `run` and `collect` do (with
    /// their searches at once: a quarter of the rate, 16 to 256; 8,192 queued); `false`
    /// samples only.
    pub search_peers: bool,
    /// Search every infohash on to `peers_per_infohash` peers (as `crawl` does, and the
    /// pipelines did before they stopped at enough peers for a fetch), never continued.
    /// Default `false`: searches stop at one peer ([`CrawlConfig::peers_for_fetch`]).
    pub full_searches: bool,
}

/// Peers a modelled fetch tries, in turn: `--metadata-peer-attempts`' default.
pub const FETCH_ATTEMPTS: usize = 5;

impl SimConfig {
    /// `net` crawled at `rate` by `shards` crawlers, with `run`'s defaults otherwise.
    pub fn new(net: ProcConfig, rate: f64, shards: u32) -> Self {
        SimConfig {
            net,
            rate,
            shards: shards.max(1),
            max_known_nodes: 100_000,
            check_etiquette: false,
            search_peers: false,
            full_searches: false,
        }
    }
}

/// The state of the crawl at a moment of virtual time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Virtual time since the start.
    pub at: Duration,
    /// Distinct infohashes of the network found by any crawler.
    pub found: u64,
    /// Queries sent by all crawlers (samples, walks, peer searches).
    pub queries: u64,
    /// `sample_infohashes` sent.
    pub samples_sent: u64,
    /// `sample_infohashes` answered with samples.
    pub samples_answered: u64,
    /// `get_peers` sent (peer searches, with `search_peers`).
    pub get_peers_sent: u64,
    /// Distinct (infohash, peer) pairs found.
    pub peers: u64,
    /// Peer searches ended (a continued search counts twice).
    pub searches_done: u64,
    /// Infohashes whose modelled fetch succeeded (see the module doc).
    pub fetched: u64,
    /// Searches continued after their fetch failed.
    pub resumed: u64,
    /// Nodes the crawlers remember in full, summed.
    pub nodes_known: usize,
    /// Nodes put to rest in the crawlers' fixed-memory filters, summed.
    pub nodes_rested: u64,
    /// Bytes of the crawlers' resting filters and seen-sets, summed (fixed, allocated on use).
    pub filter_bytes: usize,
    /// What the network saw.
    pub net: NetStats,
}

#[derive(Debug)]
struct Arrival {
    at: Instant,
    seq: u64,
    crawler: usize,
    from: SocketAddr,
    bytes: Vec<u8>,
}

impl PartialEq for Arrival {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Arrival {}
impl PartialOrd for Arrival {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Arrival {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// A crawl of a procedural network in virtual time.
#[derive(Debug)]
pub struct Simulation {
    net: ProcNet,
    pub(super) crawlers: Vec<Crawler>,
    queue: BinaryHeap<Reverse<Arrival>>,
    start: Instant,
    now: Instant,
    seq: u64,
    found: Vec<u64>,
    found_count: u64,
    /// Per crawler, the infohashes whose search runs (or whose fetch failed and search
    /// goes on): the node that sampled it, its peers, how many were tried, continued yet.
    /// Bounded by the crawler's searches.
    searching: Vec<HashMap<InfoHash, Tracked>>,
    searches_done: u64,
    fetched: u64,
    search_peers: bool,
    /// Continue failed fetches' searches (not with `full_searches`).
    resume: bool,
}

#[derive(Debug)]
struct Tracked {
    from: SocketAddr,
    peers: Vec<SocketAddr>,
    tried: usize,
    resumed: bool,
    next: NextNodes,
}

impl Simulation {
    /// The crawlers, bootstrapped from 8 nodes of the network that answer at the start, as
    /// routers would give. Each crawler's replies come back to it alone (it needs no
    /// address of its own).
    pub fn new(cfg: &SimConfig) -> Self {
        let mut net = ProcNet::new(cfg.net.clone());
        if cfg.check_etiquette {
            net.check_etiquette(cfg.shards as usize);
        }
        let start = Instant::now();
        let n = net.config().nodes;
        // Eight nodes that answer now, looked for among at most every node once (a network
        // where none answers, `nat_share` 1, is given eight silent ones).
        let start_slot = (net.h(99, 0, 0) % u64::from(n)) as u32;
        let slots = (0..n).map(|k| {
            ((u64::from(start_slot) + u64::from(k) * u64::from(n / 9 + 1)) % u64::from(n)) as u32
        });
        let mut bootstrap: Vec<SocketAddr> = slots
            .clone()
            .filter(|&i| net.session(i, 0).1 && !net.unreachable(i))
            .take(8)
            .map(|i| net.addr(i, net.session(i, 0).0))
            .collect();
        if bootstrap.is_empty() {
            bootstrap = slots
                .take(8)
                .map(|i| net.addr(i, net.session(i, 0).0))
                .collect();
        }
        let in_flight = ((cfg.rate * 1.5) as usize).clamp(32, 65_536);
        let crawlers = (0..cfg.shards)
            .map(|k| {
                let crawl = CrawlConfig {
                    max_infohashes: 0,
                    search_peers: cfg.search_peers,
                    peers_for_fetch: usize::from(!cfg.full_searches),
                    // As `run` sets them.
                    max_concurrent_searches: searches_for_rate(cfg.rate),
                    max_search_queue: search_queue_for_rate(cfg.rate),
                    forget_seen_when_full: true,
                    max_seen_infohashes: 1_000_000,
                    max_in_flight: in_flight,
                    max_known_nodes: cfg.max_known_nodes,
                    max_resting_bytes: resting_bytes_for_rate(cfg.rate),
                    shard: Shard::new(k, cfg.shards).unwrap_or(Shard::all()),
                    bootstrap: bootstrap.clone(),
                    ..CrawlConfig::default()
                };
                let node = Config {
                    seed: cfg.net.seed ^ u64::from(k).wrapping_mul(0x9E37_79B9),
                    query_rate: cfg.rate,
                    query_burst: (cfg.rate / 10.0).max(10.0),
                    max_in_flight: in_flight * 2,
                    max_queued: in_flight * 2,
                    ..Config::default()
                };
                Crawler::new(node, crawl, start)
            })
            .collect();
        let words = net.config().infohashes.div_ceil(64) as usize;
        Simulation {
            net,
            crawlers,
            queue: BinaryHeap::new(),
            start,
            now: start,
            seq: 0,
            found: vec![0; words],
            found_count: 0,
            searching: (0..cfg.shards).map(|_| HashMap::new()).collect(),
            searches_done: 0,
            fetched: 0,
            search_peers: cfg.search_peers,
            resume: !cfg.full_searches,
        }
    }

    /// The network.
    pub fn net(&self) -> &ProcNet {
        &self.net
    }

    /// The crawlers' counters.
    pub fn crawler_stats(&self) -> Vec<CrawlStats> {
        self.crawlers.iter().map(Crawler::stats).collect()
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Distinct infohashes found so far.
    pub fn found(&self) -> u64 {
        self.found_count
    }

    /// The state now.
    pub fn checkpoint(&self) -> Checkpoint {
        let stats = self.crawler_stats();
        let sum = |f: fn(&CrawlStats) -> u64| stats.iter().map(f).sum::<u64>();
        Checkpoint {
            at: self.elapsed(),
            found: self.found_count,
            queries: sum(|s| s.samples_sent + s.find_nodes_sent + s.get_peers_sent),
            samples_sent: sum(|s| s.samples_sent),
            samples_answered: sum(|s| s.samples_answered),
            get_peers_sent: sum(|s| s.get_peers_sent),
            peers: sum(|s| s.peers),
            searches_done: self.searches_done,
            fetched: self.fetched,
            resumed: sum(|s| s.searches_resumed),
            nodes_known: stats.iter().map(|s| s.nodes_known).sum(),
            nodes_rested: sum(|s| s.nodes_rested),
            filter_bytes: self
                .crawlers
                .iter()
                .map(|c| c.known().resting().map_or(0, |r| r.bytes()) + c.seen_bytes())
                .sum(),
            net: self.net.stats.clone(),
        }
    }

    /// Run until `until` of virtual time has passed since the start, calling `each` with
    /// a checkpoint every `every` of virtual time (and at the end).
    pub fn run(&mut self, until: Duration, every: Duration, each: impl FnMut(&Checkpoint)) {
        self.run_until_stopped(until, every, each, || false);
    }

    /// [`Simulation::run`], ending early, with a last checkpoint, once `stopped` returns
    /// true: it is asked before every step of the virtual clock, so that a caller can stop
    /// a long run between two checkpoints (the Python package's Ctrl-C, through a flag set
    /// by another thread; the simulation itself knows nothing of signals). Returns whether
    /// it was stopped before `until`.
    pub fn run_until_stopped(
        &mut self,
        until: Duration,
        every: Duration,
        mut each: impl FnMut(&Checkpoint),
        mut stopped: impl FnMut() -> bool,
    ) -> bool {
        let end = self.start + until;
        let every = every.max(Duration::from_secs(1));
        let mut next_report = self.now + every;
        loop {
            if stopped() {
                self.flush();
                each(&self.checkpoint());
                return true;
            }
            self.flush();
            let mut next = end;
            if let Some(Reverse(a)) = self.queue.peek() {
                next = next.min(a.at);
            }
            for c in &self.crawlers {
                if let Some(t) = c.poll_timeout() {
                    next = next.min(t);
                }
            }
            // Never stand still: a deadline that is already due and changed nothing is
            // retried 100 µs later.
            let next = next.max(self.now + Duration::from_micros(100)).min(end);
            while next_report <= next && next_report < end {
                self.now = next_report;
                each(&self.checkpoint());
                next_report += every;
            }
            self.now = next;
            while self.queue.peek().is_some_and(|Reverse(a)| a.at <= self.now) {
                let Some(Reverse(a)) = self.queue.pop() else {
                    break;
                };
                self.crawlers[a.crawler].handle_datagram(self.now, a.from, &a.bytes);
            }
            let now = self.now;
            for c in &mut self.crawlers {
                if c.poll_timeout().is_some_and(|t| t <= now) {
                    c.handle_timeout(now);
                }
            }
            if self.now >= end {
                self.flush();
                each(&self.checkpoint());
                return false;
            }
        }
    }

    /// Send what the crawlers have to send and take what they found.
    fn flush(&mut self) {
        let t = self.now - self.start;
        for k in 0..self.crawlers.len() {
            // Again while a continued search may have queued datagrams and events.
            let mut again = true;
            while std::mem::take(&mut again) {
                self.flush_one(k, t, &mut again);
            }
        }
    }

    fn flush_one(&mut self, k: usize, t: Duration, again: &mut bool) {
        {
            while let Some(tx) = self.crawlers[k].poll_transmit() {
                if let Some((rtt, reply)) = self.net.answer(k, t, &tx.to, &tx.bytes) {
                    self.seq += 1;
                    self.queue.push(Reverse(Arrival {
                        at: self.now + rtt,
                        seq: self.seq,
                        crawler: k,
                        from: tx.to,
                        bytes: reply,
                    }));
                }
            }
            while let Some(e) = self.crawlers[k].poll_event() {
                match e {
                    CrawlEvent::InfoHash {
                        info_hash, from, ..
                    } => {
                        if let Some(j) = self.net.infohash_index(&info_hash) {
                            let (w, b) = ((j / 64) as usize, j % 64);
                            if self.found[w] & (1 << b) == 0 {
                                self.found[w] |= 1 << b;
                                self.found_count += 1;
                            }
                        }
                        if !self.search_peers {
                            continue;
                        }
                        let t = Tracked {
                            from,
                            peers: Vec::new(),
                            tried: 0,
                            resumed: false,
                            next: NextNodes::default(),
                        };
                        self.searching[k].insert(info_hash, t);
                    }
                    CrawlEvent::Peer { info_hash, peer } => {
                        if let Some(t) = self.searching[k].get_mut(&info_hash) {
                            t.peers.push(peer);
                        }
                    }
                    CrawlEvent::SearchDone {
                        info_hash,
                        next_nodes,
                        ..
                    } => {
                        self.searches_done += 1;
                        if let Some(t) = self.searching[k].get_mut(&info_hash) {
                            t.next = next_nodes;
                        }
                        *again |= self.fetch(k, info_hash);
                    }
                    CrawlEvent::NodeSampled { .. } | CrawlEvent::ScrapeDone { .. } => {}
                }
            }
        }
    }

    /// The modelled pipeline at the end of `ih`'s search (see the module doc): fetch from
    /// the peers not tried yet; on failure continue the search once. True: continued.
    fn fetch(&mut self, k: usize, ih: InfoHash) -> bool {
        let Some(mut t) = self.searching[k].remove(&ih) else {
            return false;
        };
        let fresh = &t.peers[t.tried.min(t.peers.len())..];
        let net = &self.net;
        if fresh
            .iter()
            .take(FETCH_ATTEMPTS)
            .any(|p| net.serves_metadata(p))
        {
            self.fetched += 1;
            return false;
        }
        if fresh.is_empty() || t.resumed || !self.resume {
            return false;
        }
        if !self.crawlers[k].resume_search(self.now, ih, t.from, &t.peers, t.next) {
            return false;
        }
        t.tried = t.peers.len();
        t.resumed = true;
        self.searching[k].insert(ih, t);
        true
    }
}
