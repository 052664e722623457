//! `collect` as a new user runs it, on a DHT of 32 real libtorrent nodes in libtorrent's
//! own regime: each node in its own /24, one node per /24 in routing tables and searches,
//! a 6 h sample interval, and the default DoS limits (`dht_block_ratelimit` 5/s,
//! `dht_upload_rate_limit` 8000 B/s; set once the swarm is built, which they would slow). 320 torrents, each seeded and announced by two of the
//! nodes. Three collects run side by side, as crawlers meet on the real network: the default
//! one, one with `--full-peer-searches`, and a greedy one (`--rate 500`, full searches).
//!
//! Every infohash each of them sampled must come with a peer (one of its two seeders) and
//! its metadata. Before the fix in `dht-core/src/crawl/search.rs`, the full searches ended
//! empty for some (here 1 of 292 in each; 10 and 15 of about 255 by hand, with a second
//! crawler at 500 queries a second): a search whose sampling node was over its per-IP budget
//! went on without it and ended before asking it, and a scrape sent to a node that stores
//! the peers got bloom filters instead of them.
//!
//! Needs python3 with libtorrent's bindings. Loopback only: the swarm on 127.33.(1..32).1,
//! the collects on 127.0.241.1-3. The swarm and every collect are bounded and killed by
//! Drop guards.

#[path = "common/swarm.rs"]
mod swarm;

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{spawn_bounded, Finished};
use swarm::Swarm;

/// Each collect's `--overall-timeout`: sampling the 32 nodes and searching and fetching what
/// they show takes about 40 s at the default 25 queries a second.
const OVERALL: u64 = 75;

/// Every torrent's infohash and its two seeders (`ip:port`), from the swarm's ready line.
fn seeders(swarm: &Swarm) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for t in swarm.torrents() {
        let seeders = t["seeders"]
            .as_array()
            .expect("seeders listed")
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect::<BTreeSet<_>>();
        assert_eq!(seeders.len(), 2, "two seeders each: {t}");
        out.insert(t["infohash"].as_str().unwrap().to_owned(), seeders);
    }
    out
}

/// A collect's CSV rows: infohash -> (peer `ip:port` or "", metadata_ok).
fn rows(run: &Finished) -> BTreeMap<String, Vec<(String, bool)>> {
    let mut out: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
    let mut r = csv::Reader::from_reader(run.stdout.as_slice());
    for row in r.records() {
        let row = row.expect("CSV row");
        let peer = if row[5].is_empty() {
            String::new()
        } else {
            format!("{}:{}", &row[5], &row[6])
        };
        out.entry(row[0].to_owned())
            .or_default()
            .push((peer, &row[7] == "True"));
    }
    out
}

#[test]
fn every_sampled_infohash_gets_its_peers_under_libtorrent_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let swarm = Swarm::start_logged(
        &[
            "--nodes",
            "32",
            "--ip-per-slash24",
            "127.33",
            "--lt-defaults",
            "--torrents-per-node",
            "10",
            "--seeders-per-torrent",
            "2",
            "--set-after-start",
            "dht_block_ratelimit=5",
            "--set-after-start",
            "dht_upload_rate_limit=8000",
            "--seconds",
            "300",
        ],
        &dir.path().join("swarm.log"),
    );
    let seeders = seeders(&swarm);
    assert_eq!(seeders.len(), 320);
    let boot = swarm.node_addr(0);
    let collect = |bind: &str, extra: &[&str]| {
        let mut args: Vec<String> = [
            "collect",
            "--bootstrap",
            &boot,
            "--bind",
            bind,
            "--allow-private",
            "--max-infohashes",
            "0",
            "--overall-timeout",
            &OVERALL.to_string(),
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        spawn_bounded(args, Duration::from_secs(OVERALL + 60))
    };
    let runs = [
        ("default", collect("127.0.241.1:0", &[])),
        (
            "--full-peer-searches",
            collect("127.0.241.2:0", &["--full-peer-searches"]),
        ),
        (
            "--rate 500 --full-peer-searches",
            collect("127.0.241.3:0", &["--rate", "500", "--full-peer-searches"]),
        ),
    ];
    let mut failures = Vec::new();
    for (name, run) in runs {
        let run = run.join().expect("collect thread");
        assert!(run.status.success(), "{name}: {}", run.stderr);
        let got = rows(&run);
        let summary = run.stderr.lines().last().unwrap_or("").to_owned();
        // 32 nodes show 20 samples each once per 6 h: about 250-290 of the 320 are visible.
        assert!(
            got.len() >= 160,
            "{name}: only {} infohashes sampled\n{summary}",
            got.len()
        );
        let mut no_peer = Vec::new();
        for (ih, rs) in &got {
            let Some(mine) = seeders.get(ih) else {
                panic!("{name}: {ih} is not a torrent of the swarm");
            };
            let peers: Vec<&String> = rs
                .iter()
                .map(|(p, _)| p)
                .filter(|p| !p.is_empty())
                .collect();
            if peers.is_empty() {
                no_peer.push(ih.clone());
                continue;
            }
            for p in peers {
                assert!(
                    mine.contains(p),
                    "{name}: {ih}: {p} is not one of its seeders {mine:?}"
                );
            }
            assert!(
                rs.iter().any(|(_, ok)| *ok),
                "{name}: {ih}: peers but no metadata"
            );
        }
        if !no_peer.is_empty() {
            failures.push(format!(
                "{name}: no peer for {} of {} sampled infohashes: {:?}\n{summary}",
                no_peer.len(),
                got.len(),
                &no_peer[..no_peer.len().min(5)]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
