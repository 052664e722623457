//! `estudely testnet` and its library face: addressing (node i on <base>.(i+1), spilling into
//! the next /24), the manifest (kinds, exact names), bad input, and an in-process testnet
//! with `no_metadata` and `no_peers` torrents crawled in-process with the crawl driver.
//!
//! Loopback only: 127.0.17.x (library testnet, its seeders on 127.0.18.x) and
//! 127.0.18.x-127.0.20.x (CLI testnet of 260 nodes, seeders on 127.0.20.x). Every wait is
//! bounded; the testnet process is killed by a Drop guard.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use estudely::crawl::{CrawlDriver, CrawlDriverConfig, CrawlSink, StopReason};
use estudely::testnet::{Testnet, TestnetConfig, TorrentKind};
use estudely_dht_core::crawl::{CrawlConfig, CrawlEvent};
use estudely_dht_core::Config;
use serde_json::Value;

mod common;

use common::{testnet, BIN};

#[test]
fn testnet_cli_spills_into_the_next_slash24_and_writes_its_manifest() {
    let manifest =
        std::env::temp_dir().join(format!("estudely-testnet-{}.json", std::process::id()));
    let (_proc, boot, m) = testnet(
        &[
            "--nodes",
            "260",
            "--torrents",
            "260",
            "--interval",
            "45",
            "--seconds",
            "60",
            "--base-ip",
            "127.0.18",
        ],
        &manifest,
    );
    assert!(boot.starts_with("127.0.18.1:"), "{boot}");
    let _ = std::fs::remove_file(&manifest);
    assert_eq!(m["interval"], 45);
    let nodes = m["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 260);
    for (i, n) in nodes.iter().enumerate() {
        let want = if i < 254 {
            format!("127.0.18.{}:", i + 1)
        } else {
            format!("127.0.19.{}:", i - 253)
        };
        assert!(
            n["addr"].as_str().unwrap().starts_with(&want),
            "node {i}: {n}"
        );
        assert_eq!(n["id"].as_str().unwrap().len(), 40);
    }
    let torrents = m["torrents"].as_array().unwrap();
    assert_eq!(torrents.len(), 260);
    let distinct: BTreeSet<&str> = torrents
        .iter()
        .map(|t| t["infohash"].as_str().unwrap())
        .collect();
    assert_eq!(distinct.len(), 260);
    for (t, tor) in torrents.iter().enumerate() {
        let seeder = format!("127.0.20.{}:{}", t % 250 + 1, 6881 + t);
        assert_eq!(tor["peers"], serde_json::json!([seeder]), "torrent {t}");
        // By default every torrent is served; its exact name bytes are in name_hex, every
        // fifth from t = 5 on a hostile one (not UTF-8), and `name` is their lossy display.
        assert_eq!(tor["kind"], "ok", "torrent {t}");
        let name = hex::decode(tor["name_hex"].as_str().unwrap()).unwrap();
        assert_eq!(tor["name"], String::from_utf8_lossy(&name).as_ref());
        let hostile = t >= 5 && t.is_multiple_of(5);
        assert_eq!(std::str::from_utf8(&name).is_err(), hostile, "torrent {t}");
        assert_eq!(
            name.starts_with(b"estudely-hostile-"),
            hostile,
            "torrent {t}"
        );
    }

    // A node answers BEP 51 with the advertised interval and the manifest's infohashes.
    let out = Command::new(BIN)
        .args(["query", "sample", nodes[7]["addr"].as_str().unwrap()])
        .args([
            "--bind",
            "127.0.20.251:0",
            "--format",
            "jsonl",
            "--timeout",
            "5",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["interval"], 45, "{reply}");
    for s in reply["samples"].as_array().unwrap() {
        assert!(
            distinct.contains(s.as_str().unwrap()),
            "{s} not in the manifest"
        );
    }
}

#[test]
fn testnet_cli_rejects_bad_input() {
    let cases: [(&[&str], &str); 3] = [
        (&["--base-ip", "10.0.0", "--seconds", "1"], "10.0.0"),
        (
            &["--nodes", "0", "--base-ip", "127.0.20", "--seconds", "1"],
            "--nodes",
        ),
        (
            &[
                "--manifest",
                "/nonexistent-dir/t.json",
                "--base-ip",
                "127.0.20",
            ],
            "/nonexistent-dir/t.json",
        ),
    ];
    for (args, named) in cases {
        let out = Command::new(BIN)
            .arg("testnet")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(named), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

/// Collects (infohash, peer) pairs, and every infohash sampled.
#[derive(Default)]
struct Found {
    peers: BTreeSet<(String, String)>,
    sampled: BTreeSet<String>,
}

impl CrawlSink for Found {
    fn event(&mut self, e: &CrawlEvent) -> anyhow::Result<bool> {
        match e {
            CrawlEvent::Peer { info_hash, peer } => {
                self.peers.insert((info_hash.to_hex(), peer.to_string()));
            }
            CrawlEvent::InfoHash { info_hash, .. } => {
                self.sampled.insert(info_hash.to_hex());
            }
            CrawlEvent::SearchDone { .. }
            | CrawlEvent::NodeSampled { .. }
            | CrawlEvent::ScrapeDone { .. } => {}
        }
        Ok(true)
    }
}

#[tokio::test]
async fn library_testnet_crawled_in_process_until_done() {
    let cfg = TestnetConfig {
        nodes: 8,
        torrents: 10,
        interval: 60,
        base_ip: [127, 0, 17],
        port: 0,
        seed: Some(7),
        no_metadata: 2,
        no_peers: 2,
    };
    let net = Testnet::start(cfg).await.unwrap();
    let m = net.manifest().clone();
    assert_eq!(m.nodes.len(), 8);
    assert_eq!(m.bootstrap, net.bootstrap().to_string());
    let kinds: Vec<TorrentKind> = m.torrents.iter().map(|t| t.kind).collect();
    let want_kinds = [
        [TorrentKind::Ok; 10].as_slice(),
        &[TorrentKind::NoMetadata; 2],
        &[TorrentKind::NoPeers; 2],
    ]
    .concat();
    assert_eq!(kinds, want_kinds);
    // The ok and no_metadata torrents have their seeder as their peer; no_peers ones none.
    let want: BTreeSet<(String, String)> = m
        .torrents
        .iter()
        .flat_map(|t| t.peers.iter().map(|p| (t.infohash.clone(), p.clone())))
        .collect();
    assert_eq!(want.len(), 12);
    assert!(
        want.iter().all(|(_, p)| p.starts_with("127.0.18.")),
        "{want:?}"
    );
    let all: BTreeSet<String> = m.torrents.iter().map(|t| t.infohash.clone()).collect();
    assert_eq!(all.len(), 14);

    let bind: SocketAddr = "127.0.17.250:0".parse().unwrap();
    let mut driver = CrawlDriver::bind(CrawlDriverConfig {
        bind: vec![bind],
        node: Config::default(),
        crawl: CrawlConfig {
            max_infohashes: 14,
            bootstrap: vec![net.bootstrap()],
            ..CrawlConfig::default()
        },
        seed: Some(1),
    })
    .unwrap();
    let mut found = Found::default();
    let never = std::future::pending::<()>();
    let report = driver
        .run(Some(Duration::from_secs(30)), never, None, &mut found)
        .await
        .unwrap();
    assert_eq!(report.reason, StopReason::Done, "{report:?}");
    assert_eq!(report.stats.infohashes, 14);
    // Every infohash is sampled, no_peers ones included; their searches find no peer.
    assert_eq!(found.sampled, all);
    assert_eq!(found.peers, want);
    net.shutdown().await;
}
