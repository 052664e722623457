//! An in-memory network of [`Node`]s on a virtual clock: no sockets, no real time, a seeded
//! RNG for latency and loss. A run with the same seed replays exactly, so a failing seed can
//! be debugged step by step. Used by tests, benchmarks and the in-memory testnet.
//!
//! Each node gets its own IPv4 address in 11.0.0.0/8 (global unicast, so the default
//! address policy lets nodes talk as on the Internet) and per-IP logic behaves as it would
//! on the real network. Nodes can be taken down (churn): packets to them are dropped.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::crawl::{CrawlConfig, CrawlEvent, Crawler};
use crate::{Config, Event, Node, Transmit};

/// A participant of the simulated network: a plain node or a crawler (which wraps one).
/// Nodes are the common case and stored inline; the rarer, larger crawler is boxed.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Endpoint {
    /// A DHT node.
    Node(Node),
    /// A crawler.
    Crawler(Box<Crawler>),
}

impl Endpoint {
    /// The DHT node (a crawler's own node).
    pub fn node(&self) -> &Node {
        match self {
            Endpoint::Node(n) => n,
            Endpoint::Crawler(c) => c.node(),
        }
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        match self {
            Endpoint::Node(n) => n.handle_datagram(now, from, bytes),
            Endpoint::Crawler(c) => c.handle_datagram(now, from, bytes),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Endpoint::Node(n) => n.handle_timeout(now),
            Endpoint::Crawler(c) => c.handle_timeout(now),
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        match self {
            Endpoint::Node(n) => n.poll_transmit(),
            Endpoint::Crawler(c) => c.poll_transmit(),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Endpoint::Node(n) => n.poll_timeout(),
            Endpoint::Crawler(c) => c.poll_timeout(),
        }
    }
}

/// Link behaviour between any two nodes.
#[derive(Debug, Clone, Copy)]
pub struct LinkModel {
    /// Fastest one-way delivery. Default 10 ms.
    pub min_latency: Duration,
    /// Slowest one-way delivery. Default 80 ms.
    pub max_latency: Duration,
    /// Probability that a datagram is lost, 0.0 to 1.0. Default 0.
    pub loss: f64,
}

impl Default for LinkModel {
    fn default() -> Self {
        LinkModel {
            min_latency: Duration::from_millis(10),
            max_latency: Duration::from_millis(80),
            loss: 0.0,
        }
    }
}

/// A datagram in flight.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Duration,
    seq: u64,
    to: usize,
    from: SocketAddr,
    bytes: Vec<u8>,
}

/// A callback that sees every delivered datagram: (time, from, to, bytes).
pub type Tap = Box<dyn FnMut(Instant, SocketAddr, SocketAddr, &[u8])>;

/// The simulated network.
pub struct Sim {
    tap: Option<Tap>,
    endpoints: Vec<Endpoint>,
    addrs: Vec<SocketAddr>,
    by_addr: HashMap<SocketAddr, usize>,
    up: Vec<bool>,
    base: Instant,
    now: Duration,
    rng: SmallRng,
    link: LinkModel,
    queue: BinaryHeap<Reverse<InFlight>>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    scheduled: Vec<Option<Instant>>,
    seq: u64,
    events: Vec<(usize, Event)>,
    crawl_events: Vec<(usize, CrawlEvent)>,
    /// Datagrams delivered so far.
    pub delivered: u64,
    /// Datagrams dropped (loss, node down, unknown address).
    pub dropped: u64,
    /// Datagrams delivered per destination node.
    pub received_by: Vec<u64>,
}

impl Sim {
    /// An empty network; `seed` drives the link model (each node has its own seed).
    pub fn new(seed: u64, link: LinkModel) -> Sim {
        Sim {
            tap: None,
            endpoints: Vec::new(),
            addrs: Vec::new(),
            by_addr: HashMap::new(),
            up: Vec::new(),
            base: Instant::now(),
            now: Duration::ZERO,
            rng: SmallRng::seed_from_u64(seed),
            link,
            queue: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            scheduled: Vec::new(),
            seq: 0,
            events: Vec::new(),
            crawl_events: Vec::new(),
            delivered: 0,
            dropped: 0,
            received_by: Vec::new(),
        }
    }

    /// Change the link model from now on (e.g. start losing packets once the network is up).
    pub fn set_link(&mut self, link: LinkModel) {
        self.link = link;
    }

    /// Watch every delivered datagram (for assertions on what nodes receive).
    pub fn set_tap(&mut self, tap: Tap) {
        self.tap = Some(tap);
    }

    /// The virtual time now.
    pub fn now(&self) -> Instant {
        self.base + self.now
    }

    /// Virtual time elapsed since the start.
    pub fn elapsed(&self) -> Duration {
        self.now
    }

    /// The address of node `i`.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.addrs[i]
    }

    /// The index of the node at `addr`.
    pub fn index_of(&self, addr: &SocketAddr) -> Option<usize> {
        self.by_addr.get(addr).copied()
    }

    /// Number of endpoints.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Whether the network is empty.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The DHT node of endpoint `i`.
    pub fn node(&self, i: usize) -> &Node {
        self.endpoints[i].node()
    }

    /// The crawler at endpoint `i`, if it is one.
    pub fn crawler(&self, i: usize) -> Option<&Crawler> {
        match &self.endpoints[i] {
            Endpoint::Crawler(c) => Some(c),
            Endpoint::Node(_) => None,
        }
    }

    /// Add a node with `config` (its `seed` should differ per node); returns its index.
    pub fn add_node(&mut self, config: Config) -> usize {
        let now = self.now();
        self.add(Endpoint::Node(Node::new(config, now)))
    }

    /// Grow the network by `n` nodes made by `config(i)` (`i` from 0), each bootstrapping
    /// from node 0 and a random earlier node (drawn from `rng`), with `every` nodes joining
    /// per 2 s of virtual time, as nodes join a real DHT over time.
    pub fn grow(
        &mut self,
        n: usize,
        every: usize,
        rng: &mut impl Rng,
        config: impl Fn(usize) -> Config,
    ) {
        for i in 0..n {
            let idx = self.add_node(config(i));
            if idx > 0 {
                let seeds = [self.addr(0), self.addr(rng.gen_range(0..idx))];
                self.with_node(idx, |node, now| node.bootstrap(now, &seeds));
            }
            if i % every.max(1) == every.max(1) - 1 {
                self.run_for(Duration::from_secs(2));
            }
        }
    }

    /// Add a crawler; returns its index. It starts at once from `crawl.bootstrap`.
    pub fn add_crawler(&mut self, config: Config, crawl: CrawlConfig) -> usize {
        let now = self.now();
        let i = self.add(Endpoint::Crawler(Box::new(Crawler::new(
            config, crawl, now,
        ))));
        let now = self.now();
        self.endpoints[i].handle_timeout(now);
        self.flush(i);
        i
    }

    fn add(&mut self, e: Endpoint) -> usize {
        let i = self.endpoints.len();
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let ip = Ipv4Addr::from(0x0b00_0000 | (n & 0x00ff_ffff));
        let addr = SocketAddr::new(IpAddr::V4(ip), 6881);
        self.endpoints.push(e);
        self.addrs.push(addr);
        self.by_addr.insert(addr, i);
        self.up.push(true);
        self.scheduled.push(None);
        self.received_by.push(0);
        self.flush(i);
        i
    }

    /// Take a node down or bring it back (churn).
    pub fn set_up(&mut self, i: usize, up: bool) {
        self.up[i] = up;
        if up {
            self.scheduled[i] = None;
            self.flush(i);
        }
    }

    /// Whether node `i` is up.
    pub fn is_up(&self, i: usize) -> bool {
        self.up[i]
    }

    /// Run a closure on node `i` at the current virtual time, then collect what it produced.
    /// Use this to start lookups or queries. Panics if `i` is a crawler.
    pub fn with_node<R>(&mut self, i: usize, f: impl FnOnce(&mut Node, Instant) -> R) -> R {
        let now = self.now();
        let Endpoint::Node(node) = &mut self.endpoints[i] else {
            panic!("endpoint {i} is a crawler");
        };
        let r = f(node, now);
        self.flush(i);
        r
    }

    /// Drain node `i`'s transmits into the network and its events into the log.
    fn flush(&mut self, i: usize) {
        let from = self.addrs[i];
        while let Some(t) = self.endpoints[i].poll_transmit() {
            let Some(&to) = self.by_addr.get(&t.to) else {
                self.dropped += 1;
                continue;
            };
            if self.link.loss > 0.0 && self.rng.gen_bool(self.link.loss.clamp(0.0, 1.0)) {
                self.dropped += 1;
                continue;
            }
            let (lo, hi) = (
                self.link.min_latency,
                self.link.max_latency.max(self.link.min_latency),
            );
            let latency = if hi > lo {
                self.rng.gen_range(lo..=hi)
            } else {
                lo
            };
            self.seq += 1;
            self.queue.push(Reverse(InFlight {
                at: self.now + latency,
                seq: self.seq,
                to,
                from,
                bytes: t.bytes,
            }));
        }
        match &mut self.endpoints[i] {
            Endpoint::Node(n) => {
                while let Some(e) = n.poll_event() {
                    self.events.push((i, e));
                }
            }
            Endpoint::Crawler(c) => {
                while let Some(e) = c.poll_event() {
                    self.crawl_events.push((i, e));
                }
            }
        }
        let t = self.endpoints[i].poll_timeout();
        if t != self.scheduled[i] {
            self.scheduled[i] = t;
            if let Some(t) = t {
                self.timers.push(Reverse((t, i)));
            }
        }
    }

    /// Take the events produced so far, with the index of the node that produced each.
    pub fn take_events(&mut self) -> Vec<(usize, Event)> {
        std::mem::take(&mut self.events)
    }

    /// Take the crawlers' findings so far, with the crawler's index.
    pub fn take_crawl_events(&mut self) -> Vec<(usize, CrawlEvent)> {
        std::mem::take(&mut self.crawl_events)
    }

    /// Advance virtual time by `d`, delivering datagrams and firing timers in order.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next_packet = self.queue.peek().map(|Reverse(p)| p.at);
            let next_timer = self.timers.peek().map(|Reverse((t, _))| *t - self.base);
            let next = match (next_packet, next_timer) {
                (Some(p), Some(t)) => p.min(t),
                (Some(p), None) => p,
                (None, Some(t)) => t,
                (None, None) => break,
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            if next_packet == Some(next) {
                let Some(Reverse(p)) = self.queue.pop() else {
                    break;
                };
                if !self.up[p.to] {
                    self.dropped += 1;
                    continue;
                }
                self.delivered += 1;
                self.received_by[p.to] += 1;
                let now = self.now();
                if let Some(tap) = &mut self.tap {
                    tap(now, p.from, self.addrs[p.to], &p.bytes);
                }
                self.endpoints[p.to].handle_datagram(now, p.from, &p.bytes);
                self.flush(p.to);
            } else {
                let Some(Reverse((t, i))) = self.timers.pop() else {
                    break;
                };
                // Stale entries are skipped: only the node's current deadline counts. A node
                // that is down sleeps until `set_up` wakes it.
                if self.scheduled[i] != Some(t) || !self.up[i] {
                    continue;
                }
                self.scheduled[i] = None;
                let now = self.now();
                self.endpoints[i].handle_timeout(now);
                self.flush(i);
            }
        }
        self.now = end;
    }

    /// Run until `done` says so for the events seen, or `limit` of virtual time passes.
    /// Returns the events seen.
    pub fn run_until(
        &mut self,
        limit: Duration,
        step: Duration,
        mut done: impl FnMut(&[(usize, Event)]) -> bool,
    ) -> Vec<(usize, Event)> {
        let mut seen = Vec::new();
        let end = self.now + limit;
        while self.now < end {
            self.run_for(step);
            seen.extend(self.take_events());
            if done(&seen) {
                break;
            }
        }
        seen
    }
}
