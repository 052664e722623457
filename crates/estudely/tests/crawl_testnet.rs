//! `estudely crawl` against `estudely testnet`, both run as a user runs them: the crawl must
//! find every torrent of the testnet's manifest with its exact peer, print the seed's CSV
//! contract on stdout, and append the same rows to the peers file.
//!
//! Loopback only: the testnet on 127.0.12.x (seeders 127.0.13.x), the crawler on
//! 127.0.13.1. Every wait is bounded and every process is killed by a Drop guard.

use std::collections::{BTreeSet, HashSet};
use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{testnet, Proc, BIN};
const HEADER: &str = "infohash,peer_ip,peer_port";

/// A command line's words.
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("estudely-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A finished `estudely crawl`.
struct Crawl {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Crawl {
    /// Why the crawl driver says it stopped (see [`common::stop_reason`]).
    fn stop_reason(&self) -> &str {
        common::stop_reason(&self.stderr)
    }
}

/// `RUST_LOG` that makes the crawl driver log why it stopped.
const DRIVER_LOG: &str = "warn,estudely::crawl::driver=debug";

/// Run `estudely crawl ARGS` with `RUST_LOG=log` (if any), killing it if it outlives
/// `limit` (a guard against a hang, not a property under test).
fn crawl(args: &[&str], log: Option<&str>, limit: Duration) -> Crawl {
    let started = Instant::now();
    let mut cmd = Command::new(BIN);
    cmd.env_remove("RUST_LOG");
    if let Some(log) = log {
        cmd.env("RUST_LOG", log);
    }
    let mut child = cmd
        .arg("crawl")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let mut proc = Proc(child);
    let reader = thread::spawn(move || {
        let (mut o, mut e) = (String::new(), String::new());
        let _ = out.read_to_string(&mut o);
        let _ = err.read_to_string(&mut e);
        (o, e)
    });
    let status = loop {
        if let Some(s) = proc.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < limit,
            "crawl {args:?} outlived {limit:?}"
        );
        thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = reader.join().unwrap();
    Crawl {
        status,
        stdout,
        stderr,
    }
}

/// Parse CSV rows (after the header) into (infohash, "ip:port"), checking every field.
fn parse_rows(text: &str) -> Vec<(String, String)> {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(HEADER), "header first:\n{text}");
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 3, "{l}");
            let hex_ok = f[0].len() == 40
                && f[0]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            assert!(hex_ok, "infohash not 40 lower-case hex: {l}");
            let ip: IpAddr = f[1].parse().unwrap_or_else(|_| panic!("bad peer_ip: {l}"));
            let port: u16 = f[2]
                .parse()
                .unwrap_or_else(|_| panic!("bad peer_port: {l}"));
            (
                f[0].to_owned(),
                std::net::SocketAddr::new(ip, port).to_string(),
            )
        })
        .collect()
}

/// Every (infohash, peer) of the manifest.
fn manifest_pairs(manifest: &Value) -> BTreeSet<(String, String)> {
    let mut pairs = BTreeSet::new();
    for t in manifest["torrents"].as_array().unwrap() {
        for p in t["peers"].as_array().unwrap() {
            let ih = t["infohash"].as_str().unwrap().to_owned();
            pairs.insert((ih, p.as_str().unwrap().to_owned()));
        }
    }
    pairs
}

#[test]
fn crawl_finds_every_testnet_torrent_and_appends_to_the_peers_file() {
    let dir = TempDir::new("crawl-testnet");
    let manifest_path = dir.0.join("testnet.json");
    let net_args = "--nodes 24 --torrents 30 --interval 30 --seconds 120 --base-ip 127.0.12";
    let (_net, boot, manifest) = testnet(&words(net_args), &manifest_path);
    assert_eq!(manifest["nodes"].as_array().unwrap().len(), 24);
    assert_eq!(manifest["interval"], 30);
    let want = manifest_pairs(&manifest);
    assert_eq!(want.len(), 30);

    let peers_file = dir.0.join("peers.csv");
    let peers = peers_file.to_str().unwrap();
    let common = format!("--bootstrap {boot} --rate 100 --bind 127.0.13.1:0");
    // (The path is added as one word: it may contain spaces.)
    let args = |more: &'static str| -> Vec<&str> {
        [words(&common), vec!["--peers-file", peers], words(more)].concat()
    };
    let full = args("--max-infohashes 0 --overall-timeout 40");
    let run = crawl(&full, Some(DRIVER_LOG), Duration::from_secs(70));
    assert!(run.status.success(), "{}", run.stderr);
    let rows = parse_rows(&run.stdout);
    let got: BTreeSet<(String, String)> = rows.iter().cloned().collect();
    assert_eq!(
        got.len(),
        rows.len(),
        "a row printed twice:\n{}",
        run.stdout
    );
    let missing: Vec<_> = want.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "not found: {missing:?}\nstderr: {}",
        run.stderr
    );
    assert_eq!(got, want, "rows that are not in the manifest");
    // No infohash limit: finding everything did not end it, the overall timeout did.
    assert_eq!(run.stop_reason(), "Timeout", "{}", run.stderr);
    let summary = run.stderr.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("crawl: 30 infohashes, 30 peers, "),
        "{summary}"
    );
    eprintln!("full crawl: {summary}");
    // The peers file holds exactly what stdout printed.
    assert_eq!(std::fs::read_to_string(&peers_file).unwrap(), run.stdout);

    // Second crawl into the same file: JSON lines on stdout, stops after 5 infohashes.
    let five = args("--max-infohashes 5 --overall-timeout 40 --format jsonl");
    let run2 = crawl(&five, Some(DRIVER_LOG), Duration::from_secs(70));
    assert!(run2.status.success(), "{}", run2.stderr);
    // It stopped because its 5 infohashes were found and searched, not at the timeout.
    assert_eq!(run2.stop_reason(), "Done", "{}", run2.stderr);
    let nodes: HashSet<&str> = manifest["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["addr"].as_str().unwrap())
        .collect();
    let mut json_rows = Vec::new();
    for line in run2.stdout.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let ih = v["infohash"].as_str().unwrap().to_owned();
        let peer = format!(
            "{}:{}",
            v["peer_ip"].as_str().unwrap(),
            v["peer_port"].as_u64().unwrap()
        );
        assert!(
            nodes.contains(v["source"].as_str().unwrap()),
            "source not a testnet node: {v}"
        );
        json_rows.push((ih, peer));
    }
    let distinct: HashSet<&String> = json_rows.iter().map(|(ih, _)| ih).collect();
    assert_eq!(distinct.len(), 5, "{}", run2.stdout);
    assert!(json_rows.iter().all(|r| want.contains(r)), "{json_rows:?}");
    let summary = run2.stderr.lines().last().unwrap_or_default();
    assert!(summary.starts_with("crawl: 5 infohashes, "), "{summary}");
    // Appended: one header, the first crawl's rows, then the second's (as CSV).
    let all = parse_rows(&std::fs::read_to_string(&peers_file).unwrap());
    assert_eq!(all, [rows, json_rows].concat());
}

#[test]
fn crawl_rejects_bad_input_before_crawling() {
    let dir = TempDir::new("crawl-bad-input");
    let peers = dir.0.join("peers.csv");
    let peers = peers.to_str().unwrap();
    let ok = "127.0.13.9:1";
    let cases: [(&[&str], &str); 5] = [
        (
            &["--bootstrap", "nonsense", "--peers-file", peers],
            "nonsense",
        ),
        (
            &["--bootstrap", "127.0.13.9:0", "--peers-file", peers],
            "127.0.13.9:0",
        ),
        (
            &["--bootstrap", ok, "--peers-file", "/nonexistent-dir/p.csv"],
            "/nonexistent-dir/p.csv",
        ),
        (
            &[
                "--bootstrap",
                ok,
                "--peers-file",
                peers,
                "--bind",
                "127.0.13.2:0",
                "--bind",
                "127.0.13.3:0",
            ],
            "--bind",
        ),
        (
            &[
                "--bootstrap",
                ok,
                "--peers-file",
                peers,
                "--bind",
                "192.0.2.1:0",
            ],
            "192.0.2.1:0",
        ),
    ];
    for (args, named) in cases {
        let mut all = vec!["--overall-timeout", "5"];
        all.extend_from_slice(args);
        let run = crawl(&all, None, Duration::from_secs(20));
        assert_eq!(run.status.code(), Some(2), "{args:?}: {}", run.stderr);
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line: {}", run.stderr);
        assert!(lines[0].contains(named), "{args:?}: {}", run.stderr);
        assert!(
            run.stdout.is_empty(),
            "{args:?}: nothing on stdout: {}",
            run.stdout
        );
    }
}
