//! An in-memory network of [`Node`]s on a virtual clock: no sockets, no real time, a seeded
//! RNG for latency and loss. A run with the same seed replays exactly, so a failing seed can
//! be debugged step by step. Used by tests, benchmarks and the in-memory testnet.
//!
//! Each node gets its own IPv4 address in 10.0.0.0/8 so per-IP logic behaves as it would
//! on the real network. Nodes can be taken down (churn): packets to them are dropped.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::{Config, Event, Node};

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

/// The simulated network.
pub struct Sim {
    /// The nodes, by index.
    pub nodes: Vec<Node>,
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
            nodes: Vec::new(),
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
            delivered: 0,
            dropped: 0,
            received_by: Vec::new(),
        }
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

    /// Add a node with `config` (its `seed` should differ per node); returns its index.
    pub fn add_node(&mut self, config: Config) -> usize {
        let i = self.nodes.len();
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let ip = Ipv4Addr::from(0x0a00_0000 | (n & 0x00ff_ffff));
        let addr = SocketAddr::new(IpAddr::V4(ip), 6881);
        let now = self.now();
        self.nodes.push(Node::new(config, now));
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
    /// Use this to start lookups or queries.
    pub fn with_node<R>(&mut self, i: usize, f: impl FnOnce(&mut Node, Instant) -> R) -> R {
        let now = self.now();
        let r = f(&mut self.nodes[i], now);
        self.flush(i);
        r
    }

    /// Drain node `i`'s transmits into the network and its events into the log.
    fn flush(&mut self, i: usize) {
        let from = self.addrs[i];
        while let Some(t) = self.nodes[i].poll_transmit() {
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
        while let Some(e) = self.nodes[i].poll_event() {
            self.events.push((i, e));
        }
        let t = self.nodes[i].poll_timeout();
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
                self.nodes[p.to].handle_datagram(now, p.from, &p.bytes);
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
                self.nodes[i].handle_timeout(now);
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
