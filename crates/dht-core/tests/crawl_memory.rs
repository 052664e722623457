//! Bounded for days: the crawler against a synthetic endless DHT (every node new, every
//! sample new) until hundreds of thousands of infohashes and millions of listed nodes have
//! gone by. Every structure stays within its stated cap, and resident memory, once the caps
//! are reached, stays flat. Counts and bytes only: no wall-clock bound.

use std::time::{Duration, Instant};

use estudely_dht_core::crawl::{CrawlConfig, CrawlEvent, Crawler};
use estudely_dht_core::synth::SynthNet;
use estudely_dht_core::Config;

/// Resident memory of this process, from /proc. Fails the test if it cannot be read: a
/// memory check that cannot measure must not pass.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status")
        .expect("cannot read /proc/self/status: this memory test needs Linux's /proc");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("no VmRSS line in /proc/self/status");
    kb * 1024
}

#[test]
fn memory_is_flat_once_the_caps_are_reached() {
    let crawl = CrawlConfig {
        max_infohashes: 0,
        peers_per_infohash: 1,
        max_known_nodes: 5_000,
        max_frontier: 2_000,
        max_seen_infohashes: 400_000,
        max_search_queue: 4_096,
        bootstrap: vec![],
        ..CrawlConfig::default()
    };
    let mut net = SynthNet::new(11, 1 << 24, 20, 1);
    let node = Config {
        query_rate: 0.0,
        seed: 11,
        ..Config::default()
    };
    let crawl = CrawlConfig {
        bootstrap: (0..8).map(|i| net.addr(i)).collect(),
        ..crawl
    };
    let caps = crawl.clone();
    let t0 = Instant::now();
    let mut now = t0;
    let mut c = Crawler::new(node, crawl, now);
    let mut found = 0u64;
    let mut checkpoints = Vec::new();
    let mut next_mark = 50_000u64;
    let mut max_seen = (0usize, 0usize, 0usize, 0usize);
    net.drive(
        &mut c,
        &mut now,
        Duration::from_secs(30 * 86_400),
        |c, e, _| {
            if let Some(CrawlEvent::InfoHash { .. }) = e {
                found += 1;
            }
            let s = c.stats();
            max_seen = (
                max_seen.0.max(s.nodes_known),
                max_seen.1.max(s.frontier),
                max_seen.2.max(c.known().heap_len()),
                max_seen.3.max(s.search_queue),
            );
            if found >= next_mark {
                checkpoints.push((found, rss_bytes(), s.clone()));
                next_mark += 50_000;
            }
            found >= 350_000
        },
    );
    let s = c.stats();
    eprintln!(
        "virtual time {:?}, infohashes {found}, known {}, refused {}, retired {}, answered {}",
        now - t0,
        s.nodes_known,
        s.nodes_refused,
        s.nodes_retired,
        net.answered
    );
    for (n, rss, _) in &checkpoints {
        eprintln!("{n:>8} infohashes: RSS {:.1} MiB", *rss as f64 / 1048576.0);
    }
    assert!(found >= 350_000, "the crawl went the distance: {found}");
    let (known, frontier, heap, queue) = max_seen;
    assert!(known <= caps.max_known_nodes, "known nodes {known}");
    assert!(frontier <= caps.max_frontier, "frontier {frontier}");
    assert!(heap <= 2 * caps.max_known_nodes + 1_024, "due-heap {heap}");
    assert!(queue <= caps.max_search_queue, "search queue {queue}");
    assert!(
        s.nodes_refused + s.nodes_retired > 100_000,
        "far more nodes went by than fit: {s:?}"
    );
    // Caps are reached by 100k infohashes; from there on resident memory stays flat.
    let at = |n: u64| {
        checkpoints
            .iter()
            .find(|(k, _, _)| *k >= n)
            .map(|(_, rss, _)| *rss)
            .expect("checkpoint")
    };
    let (early, late) = (at(100_000), at(350_000));
    assert!(
        late <= early + 4 * 1024 * 1024,
        "RSS grew from {early} to {late} bytes between 100k and 350k infohashes"
    );
}
