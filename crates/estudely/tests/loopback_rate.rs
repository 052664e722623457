//! `estudely run` at its highest `--rate` against a loopback testnet of a few hundred of our
//! own nodes (the small version of `scripts/bench-loopback`): however fast it goes, every
//! etiquette rule holds, counted at the nodes it talked to. No node is sampled twice within
//! its interval, and no node gets more queries than the per-IP budget allows in a window,
//! nor faster than its pace.
//!
//! Loopback only: the testnet's nodes on 127.0.166.1 - 127.0.167.46, the run on
//! 127.0.168.253 with `--bootstrap` at node 0. Counts, never wall time: the run stops by its
//! own `--overall-timeout`, and the limit below only guards against a hang.

use std::net::SocketAddr;
use std::time::Duration;

use estudely::dht::DhtHandle;
use estudely::testnet::{Testnet, TestnetConfig};
use estudely_dht_core::{Config, MethodCounts};

mod common;

use common::run_bounded;

/// Nodes of the testnet.
const NODES: usize = 300;
/// Seconds the run crawls: shorter than one per-IP window (10 s) and than the interval
/// (60 s), so that over the whole run a node may get at most one window's budget of
/// queries and at most one `sample_infohashes`.
const RUN_SECS: &str = "6";

/// The sampling and search queries each node has received so far (only a crawler sends
/// these once the testnet is up: its nodes only look up ids among themselves).
async fn crawl_queries(nodes: &[DhtHandle]) -> Vec<MethodCounts> {
    let mut out = Vec::with_capacity(nodes.len());
    for n in nodes {
        out.push(n.stats().await.expect("node stats").received_by_method);
    }
    out
}

#[tokio::test]
async fn run_at_full_rate_keeps_every_etiquette_count() {
    let cfg = TestnetConfig {
        nodes: NODES,
        torrents: 0,
        interval: 60,
        base_ip: [127, 0, 166],
        port: 0,
        seed: Some(41),
        no_metadata: 0,
        // Plenty to sample and search for: about 16 per node.
        no_peers: 600,
    };
    let net = Testnet::start(cfg).await.expect("testnet");
    let boot = net.bootstrap().to_string();
    let before = crawl_queries(net.nodes()).await;

    let dir = std::env::temp_dir().join(format!("estudely-loopback-rate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = dir.join("index.sqlite");
    let db = db.to_str().expect("utf-8 path").to_owned();
    // The testnet's nodes are tasks of this runtime: let them answer while the run goes on.
    let run = tokio::task::spawn_blocking(move || {
        run_bounded(
            &[
                "run",
                "--db",
                &db,
                "--bootstrap",
                &boot,
                "--bind",
                "127.0.168.253:0",
                "--rate",
                "10000",
                "--overall-timeout",
                RUN_SECS,
            ],
            Duration::from_secs(120),
        )
    })
    .await
    .expect("run thread");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(run.status.success(), "run failed: {}", run.stderr);

    let after = crawl_queries(net.nodes()).await;
    let budget = Config::default().per_ip_queries as u64;
    // The budget's pace: at most `per_ip_burst` in any `burst / budget` share of 10 s (5 in
    // 2.5 s), so a run of at most 6 s sends at most 3 such bursts to a node: 15, not 20.
    let paced = Config::default().per_ip_burst as u64 * 3;
    let (mut sampled, mut get_peers) = (0u64, 0u64);
    for (i, (a, b)) in after.iter().zip(&before).enumerate() {
        let samples = a.sample_infohashes - b.sample_infohashes;
        let searches = a.get_peers - b.get_peers;
        let addr: SocketAddr = net.nodes()[i].local_addrs()[0];
        assert!(
            samples <= 1,
            "node {addr} sampled {samples} times within its 60 s interval"
        );
        assert!(
            samples + searches <= budget,
            "node {addr} got {} queries in one {RUN_SECS} s run: over the per-IP budget of \
             {budget} per 10 s",
            samples + searches
        );
        assert!(
            samples + searches <= paced,
            "node {addr} got {} queries in one {RUN_SECS} s run: faster than the per-IP pace \
             of 5 per 2.5 s allows ({paced})",
            samples + searches
        );
        sampled += samples;
        get_peers += searches;
    }
    // It did work: many nodes sampled and their infohashes searched (loose floors: the
    // property under test is the ceilings above).
    assert!(
        sampled >= 50,
        "only {sampled} nodes sampled: {}",
        run.stderr
    );
    assert!(
        get_peers >= 10,
        "only {get_peers} get_peers: {}",
        run.stderr
    );
    eprintln!(
        "{sampled} nodes sampled, {get_peers} get_peers; run: {}",
        run.stderr
    );
    net.shutdown().await;
}
