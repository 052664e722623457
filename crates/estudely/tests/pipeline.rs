//! The whole pipeline as a user runs it, against `estudely testnet` (our nodes plus metadata
//! seeders on loopback): `collect` in one go, `crawl` then `metadata` in two steps, and
//! `demo`. Every field of every row is checked against the testnet's manifest, names byte
//! for byte (the CSV escapes them; see `common::unescape_name`).
//!
//! Loopback only: testnets on 127.0.40.x / 127.0.42.x (seeders on the next /24), crawlers on
//! 127.0.44.x; `demo` uses 127.0.200-203.x. Every process is killed by a Drop guard and
//! every wait is bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod common;

use common::{unescape_name, Proc, BIN};
use estudely::testnet::TorrentKind;
const COLLECT_HEADER: &str =
    "infohash,name,file_count,total_bytes,piece_length,peer_ip,peer_port,metadata_ok";

/// `estudely testnet` on `base` with `torrents` torrents; its bootstrap address and manifest.
fn testnet(base: &str, torrents: usize, manifest: &Path) -> (Proc, String, Value) {
    let torrents = torrents.to_string();
    let args = ["--nodes", "20", "--torrents", &torrents, "--interval", "60"];
    common::testnet(
        &[&args[..], &["--seconds", "120", "--base-ip", base]].concat(),
        manifest,
    )
}

/// Run to completion (every command here has its own overall timeout).
fn run(args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A row's fields after the infohash, the name as its exact bytes.
type Fields = (Vec<u8>, String, String, String, String);

/// The manifest's torrents: infohash → (name bytes, file_count, total_bytes, piece_length,
/// peer). Every fifth from t = 5 on has a hostile name (see `estudely::testnet`).
fn expected(manifest: &Value) -> BTreeMap<String, Fields> {
    common::torrents(manifest)
        .iter()
        .map(|t| {
            assert_eq!(t.kind, TorrentKind::Ok);
            let v = (
                common::name_bytes(t),
                t.file_count.to_string(),
                t.total_bytes.to_string(),
                t.piece_length.to_string(),
                t.peers[0].clone(),
            );
            (t.infohash.clone(), v)
        })
        .collect()
}

fn csv_rows(text: &str, header: &str) -> Vec<Vec<String>> {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(header), "{text}");
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text[header.len()..].trim_start().as_bytes());
    r.records()
        .map(|rec| rec.unwrap().iter().map(String::from).collect())
        .collect()
}

/// Searches stop at the first peer; where the fetch fails on it (the testnet's
/// `no_metadata` torrents: their one peer serves nothing), the search goes on once, finds no
/// other peer, and the row is written with that peer and `metadata_ok=False`. `collect`
/// ends by itself once every search and fetch has (it has no overall timeout here).
#[test]
fn a_failed_fetch_continues_its_search_once_and_collect_still_ends() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--nodes",
        "20",
        "--torrents",
        "4",
        "--no-metadata",
        "4",
        "--interval",
        "60",
        "--seconds",
        "120",
        "--base-ip",
        "127.0.46",
    ];
    let (_net, boot, manifest) = common::testnet(&args, &dir.path().join("t.json"));
    let torrents = common::torrents(&manifest);
    // No overall timeout: the run ends only by itself, once every search and fetch has (the
    // limit below only guards against a hang).
    let out = common::run_bounded(
        &[
            "collect",
            "--bootstrap",
            &boot,
            "--bind",
            "127.0.44.3:0",
            "--max-infohashes",
            "8",
            "--rate",
            "200",
            "--overall-timeout",
            "0",
        ],
        std::time::Duration::from_secs(240),
    );
    let stderr = out.stderr.clone();
    assert!(out.status.success(), "{stderr}");
    let rows = csv_rows(&String::from_utf8(out.stdout).unwrap(), COLLECT_HEADER);
    for t in &torrents {
        let row = rows
            .iter()
            .find(|r| r[0] == t.infohash)
            .unwrap_or_else(|| panic!("{} has a row: {rows:?}\n{stderr}", t.infohash));
        let peer = format!("{}:{}", row[5], row[6]);
        assert_eq!(peer, t.peers[0], "{row:?}");
        let ok = if t.kind == TorrentKind::Ok {
            "True"
        } else {
            "False"
        };
        assert_eq!(row[7], ok, "{:?}: {row:?}", t.kind);
    }
    assert!(
        stderr.contains("4 peer searches continued after a failed fetch"),
        "{stderr}"
    );
}

#[test]
fn collect_finds_every_torrent_with_its_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let (_net, boot, manifest) = testnet("127.0.40", 15, &dir.path().join("t.json"));
    let want = expected(&manifest);
    let hostile = want
        .values()
        .filter(|v| v.0.starts_with(b"estudely-hostile-"));
    assert_eq!(hostile.count(), 2, "t = 5 and 10");
    let torrents = dir.path().join("torrents");
    let out = run(&[
        "collect",
        "--bootstrap",
        &boot,
        "--bind",
        "127.0.44.1:0",
        "--max-infohashes",
        "15",
        "--rate",
        "200",
        "--overall-timeout",
        "60",
        "--save-torrents",
        torrents.to_str().unwrap(),
    ]);
    let rows = csv_rows(&String::from_utf8(out.stdout).unwrap(), COLLECT_HEADER);
    let got: BTreeMap<String, Fields> = rows
        .iter()
        .map(|r| {
            assert_eq!(r.len(), 8, "{r:?}");
            assert_eq!(r[7], "True", "{r:?}");
            let peer = format!("{}:{}", r[5], r[6]);
            let name = unescape_name(&r[1]);
            (
                r[0].clone(),
                (name, r[2].clone(), r[3].clone(), r[4].clone(), peer),
            )
        })
        .collect();
    assert_eq!(
        got, want,
        "every torrent, every field, its seeder as the peer"
    );
    assert_eq!(rows.len(), want.len(), "one row per (infohash, peer)");
    let saved: BTreeSet<String> = std::fs::read_dir(&torrents)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let names: BTreeSet<String> = want.keys().map(|ih| format!("{ih}.torrent")).collect();
    assert_eq!(saved, names, "--save-torrents names files by infohash only");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("collect: 15 infohashes, 15 with metadata"),
        "{stderr}"
    );
}

#[test]
fn crawl_then_metadata_two_step_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let (_net, boot, manifest) = testnet("127.0.42", 10, &dir.path().join("t.json"));
    let want = expected(&manifest);
    let peers = dir.path().join("peers.csv");
    run(&[
        "crawl",
        "--bootstrap",
        &boot,
        "--bind",
        "127.0.44.2:0",
        "--max-infohashes",
        "10",
        "--rate",
        "200",
        "--overall-timeout",
        "60",
        "--peers-file",
        peers.to_str().unwrap(),
    ]);
    let out = run(&[
        "metadata",
        "--allow-private",
        peers.to_str().unwrap(),
        "--overall-timeout",
        "60",
    ]);
    let rows = csv_rows(
        &String::from_utf8(out.stdout).unwrap(),
        "infohash,name,file_count,total_bytes,piece_length",
    );
    let got: BTreeMap<String, (Vec<u8>, String, String, String)> = rows
        .into_iter()
        .map(|r| {
            (
                r[0].clone(),
                (
                    unescape_name(&r[1]),
                    r[2].clone(),
                    r[3].clone(),
                    r[4].clone(),
                ),
            )
        })
        .collect();
    let want: BTreeMap<String, (Vec<u8>, String, String, String)> = want
        .into_iter()
        .map(|(ih, (n, f, t, p, _))| (ih, (n, f, t, p)))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn demo_runs_offline_and_fetches_every_torrent() {
    let out = run(&["demo", "--torrents", "8", "--overall-timeout", "60"]);
    let rows = csv_rows(&String::from_utf8(out.stdout).unwrap(), COLLECT_HEADER);
    let ihs: BTreeSet<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ihs.len(), 8, "{rows:?}");
    for r in &rows {
        assert_eq!(r[7], "True", "{r:?}");
        assert!(r[1].starts_with("estudely-"), "{r:?}");
        assert!(
            r[5].starts_with("127.0.201."),
            "seeders are on loopback: {r:?}"
        );
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("8 with metadata"), "{stderr}");
}

#[test]
fn collect_jsonl_and_bad_input() {
    let out = Command::new(BIN)
        .args([
            "collect",
            "--bootstrap",
            "127.0.0.1",
            "--overall-timeout",
            "5",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let out = run(&["demo", "--torrents", "3", "--format", "jsonl"]);
    let rows: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert_eq!(r["metadata_ok"], true);
        assert_eq!(
            hex::decode(r["name_hex"].as_str().unwrap()).unwrap(),
            r["name"].as_str().unwrap().as_bytes()
        );
        assert_eq!(r["version"], "v1");
    }
}
