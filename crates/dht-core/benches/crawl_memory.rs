//! Memory of a long crawl: the sans-IO crawler against the synthetic endless DHT (16 M
//! nodes, every sample new) on a virtual clock, with its default caps, printing resident
//! memory at every 100,000 infohashes together with the nodes it has seen listed.
//! One run that prints figures (not a criterion bench).
//!
//! cargo bench -p estudely-dht-core --bench crawl_memory     (INFOHASHES=2000000 KNOWN=100000)

use std::time::{Duration, Instant};

use estudely_dht_core::crawl::{CrawlConfig, CrawlEvent, Crawler};
use estudely_dht_core::synth::SynthNet;
use estudely_dht_core::Config;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS");
    kb / 1024.0
}

fn main() {
    let target = env("INFOHASHES", 2_000_000);
    let known = env("KNOWN", 100_000) as usize;
    let mut net = SynthNet::new(5, 1 << 24, 20, 1);
    let crawl = CrawlConfig {
        max_infohashes: 0,
        peers_per_infohash: 1,
        max_known_nodes: known,
        max_seen_infohashes: (target as usize).max(1_000_000) + 1,
        bootstrap: (0..8).map(|i| net.addr(i)).collect(),
        ..CrawlConfig::default()
    };
    println!(
        "caps: known nodes {}, frontier {}, search queue {}, seen-set {} ({:.1} MiB fixed)",
        crawl.max_known_nodes,
        crawl.max_frontier,
        crawl.max_search_queue,
        crawl.max_seen_infohashes,
        ((crawl.max_seen_infohashes * 2).next_power_of_two() * 8) as f64 / 1048576.0
    );
    let node = Config {
        query_rate: 0.0,
        seed: 5,
        ..Config::default()
    };
    let t0 = Instant::now();
    let wall = Instant::now();
    let mut now = t0;
    let mut c = Crawler::new(node, crawl, now);
    let (mut found, mut mark) = (0u64, 100_000u64);
    println!("| infohashes | nodes listed | known | retired | RSS MiB | virtual h |");
    println!("|---:|---:|---:|---:|---:|---:|");
    net.drive(
        &mut c,
        &mut now,
        Duration::from_secs(3_650 * 86_400),
        |c, e, now| {
            if let Some(CrawlEvent::InfoHash { .. }) = e {
                found += 1;
                if found >= mark {
                    mark += 100_000;
                    let s = c.stats();
                    println!(
                        "| {found} | {} | {} | {} | {:.1} | {:.1} |",
                        s.nodes_listed,
                        s.nodes_known,
                        s.nodes_retired,
                        rss_mib(),
                        (now - t0).as_secs_f64() / 3600.0
                    );
                }
            }
            found >= target
        },
    );
    println!(
        "{found} infohashes, {} queries answered, {:.1} s wall",
        net.answered,
        wall.elapsed().as_secs_f64()
    );
}
