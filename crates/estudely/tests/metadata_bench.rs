//! Throughput of metadata fetching from real libtorrent seeders on loopback (ignored by
//! default; prints fetches/s):
//!
//! ```text
//! cargo test --release -p estudely --test metadata_bench -- --ignored --nocapture
//! ```
//!
//! Env: `BENCH_SEEDERS` (libtorrent sessions, default 4, on 127.0.33.x), `BENCH_FETCHES`
//! (default 2000), `BENCH_CONCURRENCY` (default 32).

mod metadata_util;

use std::time::{Duration, Instant};

use estudely::fetch::{fetch_many, FetchConfig, Job};
use estudely_krpc::InfoHash;
use metadata_util::PyHelper;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn fetches_per_second() {
    let (seeders, fetches, concurrency) = (
        env("BENCH_SEEDERS", 4),
        env("BENCH_FETCHES", 2000),
        env("BENCH_CONCURRENCY", 32),
    );
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../peer-wire/tests/data");
    let files: Vec<String> = [
        "single_v1",
        "multi_v1",
        "hybrid",
        "v2_only",
        "nonascii_hybrid",
    ]
    .iter()
    .map(|n| format!("{data}/{n}.torrent"))
    .collect();
    let helpers: Vec<PyHelper> = (0..seeders)
        .map(|i| {
            let ip = format!("127.0.33.{}", i + 1);
            // libtorrent's default accept backlog (5) would drop SYNs: 1 s stalls.
            let mut args = vec!["serve", "--ip", &ip, "--seconds", "300"];
            args.extend(["--set", "listen_queue_size=512"]);
            args.extend(files.iter().map(String::as_str));
            PyHelper::start("lt_seeders.py", &args)
        })
        .collect();
    // Every (key, seeder) pair, round robin, as many jobs as fetches.
    let mut pairs = Vec::new();
    for h in &helpers {
        let addr = format!(
            "{}:{}",
            h.ready["ip"].as_str().unwrap(),
            h.ready["listen_port"]
        )
        .parse()
        .unwrap();
        for t in h.ready["torrents"].as_array().unwrap() {
            for k in t["dht_keys"].as_array().unwrap() {
                pairs.push((InfoHash::from_hex(k.as_str().unwrap()).unwrap(), addr));
            }
        }
    }
    let jobs: Vec<Job> = (0..fetches)
        .map(|i| {
            let (info_hash, peer) = pairs[i % pairs.len()];
            Job {
                info_hash,
                peers: vec![peer],
            }
        })
        .collect();
    let cfg = FetchConfig {
        concurrency,
        overall_timeout: Some(Duration::from_secs(240)),
        // Loopback test peers.
        addr_policy: estudely_dht_core::AddrPolicy::allow_private(),
        ..FetchConfig::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    let stats = rt.block_on(async move {
        let mut batch = fetch_many(jobs, cfg);
        while batch.next().await.is_some() {}
        batch.stats().clone()
    });
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{fetches} fetches from {seeders} libtorrent seeders, concurrency {concurrency}: \
         {secs:.2} s, {:.0} fetches/s ({stats})",
        stats.obtained as f64 / secs
    );
    assert_eq!(stats.obtained, fetches as u64, "{stats}");
}
