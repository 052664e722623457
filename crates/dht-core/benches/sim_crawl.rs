//! End-to-end crawl benchmark on the simulated network (not a criterion bench: one long run
//! that prints figures). Builds a 10,000-node DHT on a virtual clock, stores 2,000
//! infohashes on the 8 nodes closest to each, lets one crawler find them, and reports
//! infohashes per virtual and per wall-clock second, queries per infohash and peak RSS.
//!
//! cargo bench -p estudely-dht-core --bench sim_crawl            (NODES=... TORRENTS=... RATE=...)

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use estudely_dht_core::crawl::{CrawlConfig, CrawlEvent};
use estudely_dht_core::krpc::{InfoHash, NodeId};
use estudely_dht_core::sim::{LinkModel, Sim};
use estudely_dht_core::Config;
use rand::{rngs::SmallRng, Rng, SeedableRng};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident memory from /proc; a run that cannot measure it stops rather than print 0.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status")
        .expect("cannot read /proc/self/status: this benchmark needs Linux's /proc");
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .expect("no VmHWM line in /proc/self/status")
}

fn main() {
    let (nodes, torrents, rate) = (
        env("NODES", 10_000),
        env("TORRENTS", 2_000),
        env("RATE", 500),
    );
    let wall = Instant::now();
    let mut sim = Sim::new(1, LinkModel::default());
    let mut rng = SmallRng::seed_from_u64(2);
    sim.grow(nodes, 200, &mut rng, |i| Config {
        seed: i as u64,
        sample_interval: 300,
        ..Config::default()
    });
    sim.run_for(Duration::from_secs(120));
    sim.take_events();
    let built = wall.elapsed();
    let ids: Vec<(NodeId, usize)> = (0..sim.len()).map(|i| (sim.node(i).id(), i)).collect();
    let mut wanted = BTreeSet::new();
    for t in 0..torrents {
        let ih = InfoHash(rng.gen());
        let peer = SocketAddr::from(([13, 0, 2, (t % 250) as u8 + 1], 6000 + t as u16));
        let mut closest = ids.clone();
        closest.select_nth_unstable_by_key(8, |(id, _)| id.distance(&ih.0));
        for (_, i) in closest.into_iter().take(8) {
            sim.with_node(i, |n, now| n.insert_peer(now, ih, peer, true));
        }
        wanted.insert(ih);
    }
    let crawl = CrawlConfig {
        max_infohashes: 0,
        peers_per_infohash: 1,
        bootstrap: vec![sim.addr(0)],
        ..CrawlConfig::default()
    };
    let c = sim.add_crawler(
        Config {
            seed: 99,
            query_rate: rate as f64,
            ..Config::default()
        },
        crawl,
    );
    let (start_virtual, start_wall) = (sim.elapsed(), Instant::now());
    let mut found = BTreeSet::new();
    while found.len() < wanted.len() && sim.elapsed() - start_virtual < Duration::from_secs(3600) {
        sim.run_for(Duration::from_secs(1));
        for (_, e) in sim.take_crawl_events() {
            if let CrawlEvent::InfoHash { info_hash, .. } = e {
                found.insert(info_hash);
            }
        }
    }
    let virt = (sim.elapsed() - start_virtual).as_secs_f64();
    let wall_crawl = start_wall.elapsed().as_secs_f64();
    let s = sim.crawler(c).map(|c| c.stats()).unwrap_or_default();
    let queries = s.samples_sent + s.find_nodes_sent + s.get_peers_sent;
    let hit = found.intersection(&wanted).count();
    println!("sim_crawl: {nodes} nodes, {torrents} infohashes, crawler rate {rate} q/s");
    println!("  network built in {:.1} s wall", built.as_secs_f64());
    println!("  found {hit}/{} in {virt:.1} s virtual ({:.1} infohashes/s virtual), {wall_crawl:.2} s wall ({:.0} infohashes/s wall)",
        wanted.len(), hit as f64 / virt, hit as f64 / wall_crawl);
    println!(
        "  crawler queries: {queries} ({} sample, {} find_node, {} get_peers) = {:.2} per infohash",
        s.samples_sent,
        s.find_nodes_sent,
        s.get_peers_sent,
        queries as f64 / hit.max(1) as f64
    );
    println!(
        "  crawler memory: {} nodes known, peak RSS of the whole simulation {:.0} MiB",
        s.nodes_known,
        peak_rss_mib()
    );
}
