//! The crawl of a [`ProcNet`] on a virtual clock: one crawler, or several splitting the
//! keyspace (`--shard K/N`), each at its own query rate from its own IP, their datagrams
//! delivered after each node's round trip. Coverage (the network's infohashes found by any
//! of them) is recorded at checkpoints. No sockets, no clock, no global randomness: a seed
//! replays exactly.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{NetStats, ProcConfig, ProcNet};
use crate::crawl::{
    resting_bytes_for_rate, search_queue_for_rate, searches_for_rate, CrawlConfig, CrawlEvent,
    CrawlStats, Crawler, Shard,
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
}

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
    pub fn run(&mut self, until: Duration, every: Duration, mut each: impl FnMut(&Checkpoint)) {
        let end = self.start + until;
        let every = every.max(Duration::from_secs(1));
        let mut next_report = self.now + every;
        loop {
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
                return;
            }
        }
    }

    /// Send what the crawlers have to send and take what they found.
    fn flush(&mut self) {
        let t = self.now - self.start;
        for k in 0..self.crawlers.len() {
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
                if let CrawlEvent::InfoHash { info_hash, .. } = e {
                    if let Some(j) = self.net.infohash_index(&info_hash) {
                        let (w, b) = ((j / 64) as usize, j % 64);
                        if self.found[w] & (1 << b) == 0 {
                            self.found[w] |= 1 << b;
                            self.found_count += 1;
                        }
                    }
                }
            }
        }
    }
}
