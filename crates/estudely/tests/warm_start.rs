//! `--state FILE`: a crawl saves its good nodes; the next crawl starts from them, so it
//! finds the testnet's torrents even when its bootstrap address is dead.

mod common;

use std::time::Duration;

use common::{run_bounded, testnet};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn a_second_crawl_starts_from_the_saved_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let (_net, boot, manifest) = testnet(
        &["--nodes", "8", "--torrents", "6", "--base-ip", "127.0.65"],
        &dir.path().join("testnet.json"),
    );
    let state = dir.path().join("state.txt");
    let state = state.to_str().unwrap();
    let peers = dir.path().join("peers.csv");
    let peers = peers.to_str().unwrap();
    let crawl = |boot: &str, bind: &str| {
        run_bounded(
            &[
                "crawl",
                "--bootstrap",
                boot,
                "--bind",
                bind,
                "--max-infohashes",
                "3",
                "--overall-timeout",
                "20",
                "--state",
                state,
                "--peers-file",
                peers,
            ],
            LIMIT,
        )
    };
    let first = crawl(&boot, "127.0.66.1:0");
    assert!(first.status.success(), "{}", first.stderr);
    let saved = std::fs::read_to_string(state).expect("state written");
    let lines: Vec<&str> = saved.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(lines.len() >= 4, "good nodes saved: {saved}");
    let node_ips: Vec<String> = manifest["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["addr"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| node_ips.iter().any(|a| l.starts_with(a.as_str()))),
        "only testnet nodes: {saved} vs {node_ips:?}"
    );

    // Nobody listens on the bootstrap address now: only the saved nodes can help.
    let second = crawl("127.0.66.9:9", "127.0.66.2:0");
    assert!(second.status.success(), "{}", second.stderr);
    let summary = second.stderr.lines().last().unwrap_or_default();
    assert!(summary.starts_with("crawl: 3 infohashes"), "{summary}");

    std::fs::write(state, "127.0.65.1:1 not-an-id\n").unwrap();
    let bad = crawl(&boot, "127.0.66.3:0");
    assert_eq!(bad.status.code(), Some(2), "{}", bad.stderr);
    assert!(bad.stderr.contains("line 1"), "{}", bad.stderr);
}
