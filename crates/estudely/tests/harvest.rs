//! Announce harvesting end to end: while `estudely crawl` runs against a loopback testnet, a
//! node (`estudely query announce`, from its own 127.x address) announces an infohash that
//! no testnet node stores to the crawler's node. The crawl reports it, with the announcer as
//! its peer; with `--no-harvest` it does not.

mod common;

use std::thread;
use std::time::Duration;

use common::{run_bounded, testnet, Finished, BIN};

/// Generous liveness bound for each command: none of them may hang the suite.
const LIMIT: Duration = Duration::from_secs(60);

/// A free UDP port on `ip` (bound, read, released).
fn free_port(ip: &str) -> u16 {
    std::net::UdpSocket::bind((ip, 0))
        .and_then(|s| s.local_addr())
        .expect("bind a probe socket")
        .port()
}

/// Crawl from `bind` for 10 s while `estudely query announce` tells the crawler's node
/// (after 3 s) that 127.0.62.9:51413 has `ih`.
fn crawl_while_announcing(boot: &str, bind: &str, ih: &str, extra: &[&str]) -> Finished {
    let dir = tempfile::tempdir().unwrap();
    let peers_file = dir.path().join("peers.csv");
    let (ip, port) = (
        bind.split(':').next().unwrap(),
        free_port(bind.split(':').next().unwrap()),
    );
    let crawler = format!("{ip}:{port}");
    let announcer = {
        let crawler = crawler.clone();
        let ih = ih.to_owned();
        thread::spawn(move || {
            thread::sleep(Duration::from_secs(3));
            let out = std::process::Command::new(BIN)
                .args(["query", "announce", &crawler, &ih, "--port", "51413"])
                .args(["--bind", "127.0.62.9:0", "--timeout", "5"])
                .output()
                .expect("run estudely query announce");
            assert!(
                out.status.success(),
                "announce failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        })
    };
    let mut args = vec![
        "crawl",
        "--bootstrap",
        boot,
        "--bind",
        &crawler,
        "--max-infohashes",
        "0",
        "--overall-timeout",
        "10",
        "--peers-file",
        peers_file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let run = run_bounded(&args, LIMIT);
    announcer.join().expect("announcer thread");
    run
}

#[test]
fn infohashes_announced_to_our_node_are_reported_with_the_announcer() {
    let dir = tempfile::tempdir().unwrap();
    let (_net, boot, _) = testnet(
        &["--nodes", "4", "--torrents", "2", "--base-ip", "127.0.61"],
        &dir.path().join("testnet.json"),
    );
    let ih = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";
    let row = format!("{ih},127.0.62.9,51413");

    let on = crawl_while_announcing(&boot, "127.0.62.1:0", ih, &[]);
    let stdout = String::from_utf8_lossy(&on.stdout);
    assert!(on.status.success(), "{}", on.stderr);
    assert!(stdout.lines().any(|l| l == row), "{stdout}\n{}", on.stderr);
    let summary = on.stderr.lines().last().unwrap_or_default();
    assert!(
        summary.contains("1 infohashes announced to us"),
        "{summary}"
    );

    let off = crawl_while_announcing(&boot, "127.0.62.2:0", ih, &["--no-harvest"]);
    let stdout = String::from_utf8_lossy(&off.stdout);
    assert!(off.status.success(), "{}", off.stderr);
    assert!(!stdout.contains(ih), "--no-harvest reported it: {stdout}");
}
