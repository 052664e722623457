//! Two `estudely run --shard K/2` processes sharing one PostgreSQL index (a throwaway server
//! from `scripts/pg-test-server`) while crawling the same loopback testnet: each samples
//! only the nodes of its half of the node-id space, so neither finds every infohash, yet
//! together they store every served torrent once and fetch none twice. Then two
//! `crawl --shard K/2` show, through the `source` of their JSON rows, that every node they
//! sampled lies in their shard.
//!
//! The testnet's ids are fixed (`--seed`) and each half of the id space holds at least 8
//! of its nodes (a bucket), so every torrent is stored on nodes of one half only. Each
//! crawler also bootstraps from a node of the other half: it is met, counted as outside
//! the shard in the summary, and never sampled.
//!
//! Loopback only: the testnet on 127.0.171.x (seeders on 127.0.172.x), the runs and crawls
//! on 127.0.173.1 to .4. Time limits only guard against a hang.

#[path = "common/pg.rs"]
mod pg;

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use estudely_dht_core::crawl::Shard;

use common::{spawn_bounded, Finished};
use pg::PgServer;

const HANG: Duration = Duration::from_secs(120);

/// The end summary of a `run` (`run: N infohashes, M stored, ...`).
fn summary(run: &Finished) -> &str {
    run.stderr
        .lines()
        .rfind(|l| l.starts_with("run: ") && l.contains(" stored"))
        .unwrap_or_else(|| panic!("no summary:\n{}", run.stderr))
}

/// The number just before `word` in `line` (`40 infohashes` -> 40 for ` infohashes`).
fn count_before(line: &str, word: &str) -> u64 {
    let before = line
        .split(word)
        .next()
        .unwrap_or_else(|| panic!("no `{word}` in {line}"));
    let n = before.rsplit([' ', ':']).next().unwrap();
    n.parse()
        .unwrap_or_else(|_| panic!("no count before `{word}` in {line}"))
}

/// Infohashes whose metadata a run fetched (`metadata N/M infohashes`).
fn fetched(line: &str) -> u64 {
    let after = line.split("metadata ").nth(1).expect("metadata in summary");
    after.split('/').next().unwrap().parse().expect("a count")
}

/// Listings of nodes outside the shard, from
/// `shard K/N: X listings of nodes outside it (not sampled)`.
fn outside(line: &str, shard: &str) -> u64 {
    let after = line
        .split(&format!("; shard {shard}: "))
        .nth(1)
        .unwrap_or_else(|| panic!("no `shard {shard}: X listings of nodes outside it` in {line}"));
    count_before(after, " listings of nodes outside it")
}

/// The manifest's nodes: address -> id.
fn node_ids(manifest: &serde_json::Value) -> BTreeMap<String, [u8; 20]> {
    manifest["nodes"]
        .as_array()
        .expect("manifest nodes")
        .iter()
        .map(|n| {
            let id = hex::decode(n["id"].as_str().unwrap()).unwrap();
            (
                n["addr"].as_str().unwrap().to_owned(),
                id.try_into().expect("20-byte id"),
            )
        })
        .collect()
}

#[test]
fn two_sharded_crawlers_on_one_postgres_index_split_the_network() {
    let server = PgServer::start();
    let conn = server.database();
    let db = format!("postgres:{conn}");
    let dir = tempfile::tempdir().unwrap();
    let net = "--nodes 32 --torrents 40 --interval 10 --seconds 600 --base-ip 127.0.171 --seed 11";
    let words: Vec<&str> = net.split_whitespace().collect();
    let (_net, boot, manifest) = common::testnet(&words, &dir.path().join("testnet.json"));
    let served = common::served_keys(&manifest);
    assert_eq!(served.len(), 40);
    let nodes = node_ids(&manifest);
    assert_eq!(nodes.len(), 32);
    let shards = ["1/2", "2/2"];
    // For each shard, a node outside it to bootstrap from as well.
    let mut elsewhere = Vec::new();
    for s in shards {
        let shard: Shard = s.parse().unwrap();
        let inside = nodes.values().filter(|id| shard.contains(id)).count();
        eprintln!("shard {s}: {inside} of the testnet's nodes");
        assert!(
            inside >= 8,
            "a bucket's worth of nodes in each half (--seed)"
        );
        let (addr, _) = nodes
            .iter()
            .find(|(_, id)| !shard.contains(id))
            .expect("a node outside the shard");
        elsewhere.push(addr.clone());
    }

    let runs: Vec<_> = [("127.0.173.1:0", 0), ("127.0.173.2:0", 1)]
        .into_iter()
        .map(|(bind, i)| {
            let (shard, other) = (shards[i], &elsewhere[i]);
            let args: Vec<String> = [
                "run",
                "--db",
                &db,
                "--bootstrap",
                &boot,
                "--bootstrap",
                other,
                "--bind",
                bind,
                "--shard",
                shard,
                "--rate",
                "200",
                "--overall-timeout",
                "30",
            ]
            .map(String::from)
            .to_vec();
            spawn_bounded(args, HANG)
        })
        .collect();
    let runs: Vec<Finished> = runs.into_iter().map(|h| h.join().unwrap()).collect();
    let mut total_fetched = 0;
    let mut total_found = 0;
    for (r, shard) in runs.iter().zip(shards) {
        eprintln!("{}", r.stderr);
        assert!(r.status.success(), "{}", r.stderr);
        let start = r
            .stderr
            .lines()
            .find(|l| l.starts_with("run: index "))
            .expect("a start line");
        assert!(
            start.ends_with(&format!("; shard {shard}")),
            "start line shows the shard: {start}"
        );
        let line = summary(r);
        let other = outside(line, shard);
        assert!(other > 0, "nodes outside shard {shard} were met: {line}");
        let found = count_before(line, " infohashes,");
        assert!(
            found < served.len() as u64,
            "shard {shard} alone does not see every torrent: {line}"
        );
        total_found += found;
        total_fetched += fetched(line);
    }
    eprintln!(
        "found {total_found}, fetched {total_fetched} of {} torrents",
        served.len()
    );
    assert!(
        total_found >= served.len() as u64,
        "together they found every torrent"
    );
    assert_eq!(
        total_fetched,
        served.len() as u64,
        "each torrent fetched by exactly one crawler"
    );

    // The index: every served torrent, each stored once.
    let mut client = postgres::Client::connect(&conn, postgres::NoTls).unwrap();
    let rows = client
        .query("SELECT encode(info_hash, 'hex') FROM torrents", &[])
        .unwrap();
    let stored: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let distinct: BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), distinct.len(), "no torrent stored twice");
    assert_eq!(
        distinct, served,
        "the index holds exactly the served torrents"
    );

    // Which nodes a sharded crawl samples: the `source` of each JSON row of `crawl` is the
    // node whose sample listed the infohash (announces to us left out: --no-harvest).
    let crawls: Vec<_> = [("127.0.173.3:0", 0), ("127.0.173.4:0", 1)]
        .into_iter()
        .map(|(bind, i)| {
            let (shard, other) = (shards[i], &elsewhere[i]);
            let peers = dir.path().join(format!("peers-{i}.csv"));
            let args: Vec<String> = [
                "crawl",
                "--bootstrap",
                &boot,
                "--bootstrap",
                other,
                "--bind",
                bind,
                "--shard",
                shard,
                "--rate",
                "200",
                "--max-infohashes",
                "0",
                "--overall-timeout",
                "20",
                "--no-harvest",
                "--format",
                "jsonl",
                "--peers-file",
                peers.to_str().unwrap(),
            ]
            .map(String::from)
            .to_vec();
            spawn_bounded(args, HANG)
        })
        .collect();
    let crawls: Vec<Finished> = crawls.into_iter().map(|h| h.join().unwrap()).collect();
    for (c, s) in crawls.iter().zip(shards) {
        eprintln!("{}", c.stderr);
        assert!(c.status.success(), "{}", c.stderr);
        let line = c
            .stderr
            .lines()
            .rfind(|l| l.starts_with("crawl: "))
            .unwrap_or_else(|| panic!("no summary:\n{}", c.stderr));
        assert!(outside(line, s) > 0, "{line}");
        let shard: Shard = s.parse().unwrap();
        let mut sources = BTreeSet::new();
        for row in String::from_utf8_lossy(&c.stdout).lines() {
            let row: serde_json::Value = serde_json::from_str(row).expect("a JSON line");
            let source = row["source"].as_str().expect("a sampling node").to_owned();
            let id = nodes
                .get(&source)
                .unwrap_or_else(|| panic!("source {source} is a testnet node"));
            assert!(
                shard.contains(id),
                "{source} ({}) sampled by shard {s}, outside it",
                hex::encode(id)
            );
            sources.insert(source);
        }
        assert!(!sources.is_empty(), "shard {s} sampled some node");
        eprintln!("shard {s}: sampled {} nodes, all inside", sources.len());
    }
}
