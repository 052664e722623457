//! The DHT hot path on one core, without sockets: what `estudely run`'s crawler and node
//! spend per datagram, in CPU time and heap allocations.
//!
//! `cargo bench -p estudely --bench dht_hot_path` (`DATAGRAMS=400000` by default).
//!
//! * **crawler**: the sans-IO [`Crawler`] (the one `estudely run` drives) against the
//!   synthetic DHT of 16 M nodes ([`SynthNet`]: sampling, `find_node` walks and `get_peers`
//!   searches with the run's budgets, 8 peers per infohash so every search runs its course),
//!   replies fed back at once on a virtual clock, the global rate limit off (the per-IP
//!   budgets stay on; with 16 M addresses they never bind). Timed and counted: only the
//!   crawler's calls (`handle_datagram`, `handle_timeout`, `poll_transmit`, `poll_event`),
//!   not the synthetic network's answers.
//! * **node**: one testnet-like [`Node`] answering `get_peers` (stored infohash and not),
//!   `find_node`, `sample_infohashes` and `ping` from 50,000 addresses, as our testnet nodes
//!   and the crawler's own node do: decode, serve, encode.
//!
//! Prints datagrams per CPU-second (in + out) and heap allocations per datagram, counted by
//! a global allocator that counts while a flag is set. Like the drivers, the bench hands each
//! sent datagram's buffer back (`recycle`) for reuse.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use estudely_dht_core::crawl::{CrawlConfig, Crawler};
use estudely_dht_core::krpc::{Body, InfoHash, Message, NodeId, Query, TransactionId, Want};
use estudely_dht_core::synth::SynthNet;
use estudely_dht_core::{AddrPolicy, Config, Node};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn count() {
    // `try_with`: the thread-locals may be gone while a thread exits.
    let _ = COUNTING.try_with(|c| {
        if c.get() {
            let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        }
    });
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Time and allocations spent inside `f`.
struct Meter {
    busy: Duration,
}

impl Meter {
    fn run<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let t = Instant::now();
        COUNTING.with(|c| c.set(true));
        let r = f();
        COUNTING.with(|c| c.set(false));
        self.busy += t.elapsed();
        r
    }
}

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn crawler_bench(target: u64) {
    let mut net = SynthNet::new(11, 1 << 24, 20, 8);
    let crawl = CrawlConfig {
        max_infohashes: 0,
        forget_seen_when_full: true,
        bootstrap: (0..8).map(|i| net.addr(i)).collect(),
        ..CrawlConfig::default()
    };
    let node = Config {
        query_rate: 0.0,
        seed: 11,
        ..Config::default()
    };
    let mut now = Instant::now();
    let mut c = Crawler::new(node, crawl, now);
    let mut m = Meter {
        busy: Duration::ZERO,
    };
    let (mut dg_in, mut dg_out) = (0u64, 0u64);
    let (mut warm_allocs, mut warm_busy, mut warm_dg) = (0u64, Duration::ZERO, 0u64);
    let warm = target / 4;
    let mut out = Vec::new();
    while dg_in + dg_out < target + warm {
        if warm_dg == 0 && dg_in + dg_out >= warm {
            // Caches, tables and queues have grown to their working size: count from here.
            (warm_allocs, warm_busy, warm_dg) = (allocs(), m.busy, dg_in + dg_out);
        }
        out.clear();
        m.run(|| {
            while let Some(t) = c.poll_transmit() {
                out.push(t);
            }
        });
        dg_out += out.len() as u64;
        let busy = !out.is_empty();
        for t in out.drain(..) {
            let reply = net.answer(&t.to, &t.bytes);
            let to = t.to;
            // Sent: the buffer goes back to the crawler, as `estudely run`'s driver does.
            m.run(|| c.recycle(t));
            if let Some(reply) = reply {
                dg_in += 1;
                m.run(|| c.handle_datagram(now, to, &reply));
            }
        }
        m.run(|| while c.poll_event().is_some() {});
        if !busy {
            let next = c
                .poll_timeout()
                .unwrap_or(now + Duration::from_secs(1))
                .max(now + Duration::from_millis(1));
            now = next;
        }
        m.run(|| c.handle_timeout(now));
    }
    let dg = dg_in + dg_out - warm_dg;
    let busy = (m.busy - warm_busy).as_secs_f64();
    let s = c.stats();
    println!(
        "crawler: {dg} datagrams ({dg_in} in, {dg_out} out in all), {:.3} s of crawler CPU: \
         {:.0} datagrams/s, {:.2} µs and {:.2} allocations per datagram \
         ({} samples, {} get_peers, {} find_node, {} infohashes)",
        busy,
        dg as f64 / busy,
        busy * 1e6 / dg as f64,
        (allocs() - warm_allocs) as f64 / dg as f64,
        s.samples_sent,
        s.get_peers_sent,
        s.find_nodes_sent,
        s.infohashes,
    );
}

fn node_bench(target: u64) {
    let now = Instant::now();
    let config = Config {
        sample_interval: 60,
        query_rate: 1_000.0,
        per_ip_queries: 1_000,
        per_ip_datagrams: 100_000,
        max_incoming_per_ip: 100_000,
        addr_policy: AddrPolicy::permissive(),
        seed: 3,
        ..Config::default()
    };
    let mut node = Node::new(config, now);
    let addr = |i: u64| {
        SocketAddr::from((
            Ipv4Addr::from(0x0B00_0000 + (i % 50_000) as u32),
            6881 + (i % 7) as u16,
        ))
    };
    let ih = |i: u64| {
        let mut b = [0u8; 20];
        b[..8].copy_from_slice(&(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes());
        InfoHash(b)
    };
    // A routing table and some stored torrents, as a testnet node has.
    for i in 0..2_000 {
        let q = Message {
            tid: TransactionId::new(b"aa").expect("tid"),
            version: None,
            ip: None,
            read_only: false,
            body: Body::Query(Query::Ping {
                id: NodeId(ih(i + 1_000_000).0),
            }),
        };
        node.handle_datagram(now, addr(i), &q.encode());
    }
    for i in 0..200 {
        node.insert_peer(now, ih(i), addr(i + 7), false);
    }
    while node.poll_transmit().is_some() {}
    let queries: Vec<(SocketAddr, Vec<u8>)> = (0..4_096u64)
        .map(|i| {
            let id = NodeId(ih(i + 5_000_000).0);
            let target = NodeId(ih(i * 31).0);
            let q = match i % 5 {
                0 => Query::GetPeers {
                    id,
                    info_hash: ih(i % 200),
                    want: Want::default(),
                    noseed: false,
                    scrape: i % 2 == 0,
                },
                1 => Query::GetPeers {
                    id,
                    info_hash: ih(i + 9_999),
                    want: Want::default(),
                    noseed: false,
                    scrape: false,
                },
                2 => Query::FindNode {
                    id,
                    target,
                    want: Want::default(),
                },
                3 => Query::SampleInfohashes {
                    id,
                    target,
                    want: Want::default(),
                },
                _ => Query::Ping { id },
            };
            let m = Message {
                tid: TransactionId::new(&(i as u16).to_be_bytes()).expect("tid"),
                version: estudely_dht_core::krpc::Version::new(b"LT\x01\x02").ok(),
                ip: None,
                read_only: false,
                body: Body::Query(q),
            };
            (addr(i * 13 + 3), m.encode())
        })
        .collect();
    let mut m = Meter {
        busy: Duration::ZERO,
    };
    let (mut dg_in, mut dg_out) = (0u64, 0u64);
    let mut first = None;
    let mut i = 0usize;
    while dg_in + dg_out < target {
        if dg_in == target / 8 {
            first = Some((allocs(), m.busy, dg_in + dg_out));
        }
        let (from, bytes) = &queries[i % queries.len()];
        i += 1;
        let t = now + Duration::from_micros(i as u64 * 50);
        let sent = m.run(|| {
            node.handle_datagram(t, *from, bytes);
            let mut n = 0;
            while let Some(tx) = node.poll_transmit() {
                n += 1;
                // Sent: the buffer goes back to the node, as the drivers do.
                node.recycle(tx);
            }
            n
        });
        dg_in += 1;
        dg_out += sent;
    }
    let (a0, b0, d0) = first.unwrap_or_default();
    let dg = dg_in + dg_out - d0;
    let busy = (m.busy - b0).as_secs_f64();
    println!(
        "node:    {dg} datagrams ({dg_in} queries in, {dg_out} replies out in all), {:.3} s of \
         node CPU: {:.0} datagrams/s, {:.2} µs and {:.2} allocations per datagram",
        busy,
        dg as f64 / busy,
        busy * 1e6 / dg as f64,
        (allocs() - a0) as f64 / dg as f64,
    );
}

fn main() {
    let target = env("DATAGRAMS", 400_000);
    crawler_bench(target);
    node_bench(target);
}
