//! `estudely metadata` over uTP (BEP 29) against real libtorrent seeders on loopback
//! (127.0.140.x): one with TCP disabled (it accepts TCP connections only to reset them, and
//! takes uTP), one with both. Every field of every torrent is checked against what
//! libtorrent reports, and the `--save-torrents` files are loaded back by libtorrent.
//!
//! Needs python3 with libtorrent's bindings. Every wait is bounded; helpers are told to quit
//! and killed when dropped.

mod metadata_util;

use std::time::Duration;

use metadata_util::{lt_inspect, run_cli, PyHelper, Run};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

/// Torrents served: one and several files, a hybrid (two keys), and metadata of 4 pieces.
const TORRENTS: [&str; 4] = ["single_v1", "multi_v1", "hybrid", "big_v1"];

/// libtorrent seeding [`TORRENTS`] on `ip`, with TCP (incoming and outgoing) or without.
fn seeder(ip: &str, tcp: bool) -> PyHelper {
    seeder_with(ip, tcp, &[])
}

/// [`seeder`] with more libtorrent settings (`KEY=VALUE`).
fn seeder_with(ip: &str, tcp: bool, settings: &[&str]) -> PyHelper {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../peer-wire/tests/data");
    let files: Vec<String> = TORRENTS
        .iter()
        .map(|n| format!("{data}/{n}.torrent"))
        .collect();
    let mut args = vec!["serve", "--ip", ip, "--seconds", "120"];
    args.extend(["--set", "enable_incoming_utp=true"]);
    args.extend(["--set", "enable_outgoing_utp=true"]);
    if !tcp {
        args.extend(["--set", "enable_incoming_tcp=false"]);
        args.extend(["--set", "enable_outgoing_tcp=false"]);
    }
    for kv in settings {
        args.extend(["--set", kv]);
    }
    args.extend(files.iter().map(String::as_str));
    PyHelper::start("lt_seeders.py", &args)
}

/// Every DHT key of the seeder's torrents, with libtorrent's description of it.
fn expected(seeder: &PyHelper) -> Vec<(String, Value)> {
    let mut expect = Vec::new();
    for t in seeder.ready["torrents"].as_array().unwrap() {
        for key in t["dht_keys"].as_array().unwrap() {
            expect.push((key.as_str().unwrap().to_owned(), t.clone()));
        }
    }
    assert_eq!(expect.len(), 5, "the hybrid has two keys");
    expect
}

fn version_of(t: &Value) -> &'static str {
    match (t["infohash"].is_null(), t["infohash_v2"].is_null()) {
        (false, true) => "v1",
        (true, false) => "v2",
        (false, false) => "hybrid",
        (true, true) => panic!("no info-hash: {t}"),
    }
}

/// `estudely metadata --format jsonl` of every key at the seeder, with `extra` flags, saving
/// torrents into a temporary directory (returned with the run).
fn fetch(seeder: &PyHelper, extra: &[&str]) -> (Run, tempfile::TempDir) {
    let addr = format!(
        "{},{}",
        seeder.ready["ip"].as_str().unwrap(),
        seeder.ready["listen_port"]
    );
    let mut csv = String::from("infohash,peer_ip,peer_port\n");
    for (key, _) in expected(seeder) {
        csv += &format!("{key},{addr}\n");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("peers.csv");
    std::fs::write(&file, csv).unwrap();
    let saved = dir.path().join("torrents");
    let mut args = vec![
        "metadata",
        "--allow-private",
        file.to_str().unwrap(),
        "--format",
        "jsonl",
        "--save-torrents",
        saved.to_str().unwrap(),
    ];
    args.extend(extra);
    let run = run_cli(&args, None, LIMIT);
    eprintln!(
        "{extra:?}: {:?}\n{}\n{}",
        run.elapsed, run.stderr, run.stdout
    );
    (run, dir)
}

/// Every key fetched, every field right, every row over `transport`; the saved torrents
/// load in libtorrent with the same numbers.
fn check(seeder: &PyHelper, run: &Run, saved: &tempfile::TempDir, transport: &str) {
    assert!(run.status.success(), "{}", run.stderr);
    let expect = expected(seeder);
    let rows: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), expect.len(), "{}", run.stdout);
    let peer = format!(
        "{}:{}",
        seeder.ready["ip"].as_str().unwrap(),
        seeder.ready["listen_port"]
    );
    for (key, t) in &expect {
        let row = rows
            .iter()
            .find(|r| r["infohash"] == key.as_str())
            .unwrap_or_else(|| panic!("no row for {key}: {}", run.stdout));
        let name = t["name"].as_str().unwrap();
        assert_eq!(row["name"], name, "{key}");
        assert_eq!(row["name_hex"], hex::encode(name.as_bytes()), "{key}");
        for f in ["file_count", "total_bytes", "piece_length"] {
            assert_eq!(row[f], t[f], "{key} {f}");
        }
        assert_eq!(row["metadata_size"], t["info_size"], "{key}");
        assert_eq!(row["version"], version_of(t), "{key}");
        assert_eq!(row["peer"], peer.as_str(), "{key}");
        assert!(
            row["client"].as_str().unwrap().starts_with("libtorrent/"),
            "{row}"
        );
        assert_eq!(row["transport"], transport, "{row}");
        assert_eq!(row["failed"].as_array().unwrap().len(), 0, "{row}");
    }

    let dir = saved.path().join("torrents");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut keys: Vec<String> = expect.iter().map(|(k, _)| format!("{k}.torrent")).collect();
    keys.sort();
    assert_eq!(names, keys);
    let files: Vec<String> = names
        .iter()
        .map(|n| dir.join(n).to_str().unwrap().to_owned())
        .collect();
    for (lt, file) in lt_inspect(&files).iter().zip(&names) {
        let key = file.trim_end_matches(".torrent");
        let t = &expect.iter().find(|(k, _)| k == key).unwrap().1;
        assert!(lt["error"].is_null(), "{lt}");
        for f in [
            "infohash",
            "infohash_v2",
            "name",
            "file_count",
            "total_bytes",
            "piece_length",
            "info_size",
        ] {
            assert_eq!(lt[f], t[f], "{key} {f}");
        }
    }
}

#[test]
fn utp_only_libtorrent_over_utp() {
    let lt = seeder("127.0.140.30", false);
    let (run, saved) = fetch(&lt, &["--transport", "utp"]);
    check(&lt, &run, &saved, "utp");
    assert_eq!(
        run.stderr.trim_end(),
        "metadata: 5/5 infohashes, 5 attempts: 5 ok (0 tcp, 5 utp)"
    );
}

#[test]
fn utp_only_libtorrent_by_default_falls_back_to_utp() {
    let lt = seeder("127.0.140.31", false);
    // TCP connects, and libtorrent resets it before its handshake: uTP is tried next.
    let (run, saved) = fetch(&lt, &[]);
    check(&lt, &run, &saved, "utp");
    assert_eq!(
        run.stderr.trim_end(),
        "metadata: 5/5 infohashes, 5 attempts: 5 ok (0 tcp, 5 utp)"
    );
    let (run, saved) = fetch(&lt, &["--transport", "both"]);
    check(&lt, &run, &saved, "utp");
}

#[test]
fn utp_only_libtorrent_over_tcp_fails() {
    let lt = seeder("127.0.140.32", false);
    let (run, _saved) = fetch(&lt, &["--transport", "tcp"]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr.trim_end(),
        "metadata: 0/5 infohashes, 5 attempts: 0 ok, 5 closed"
    );
}

#[test]
fn tcp_and_utp_libtorrent_by_default_over_tcp() {
    let lt = seeder("127.0.140.33", true);
    let (run, saved) = fetch(&lt, &[]);
    check(&lt, &run, &saved, "tcp");
    // Counted as TCP: the summary splits by transport only once uTP carried something.
    assert_eq!(
        run.stderr.trim_end(),
        "metadata: 5/5 infohashes, 5 attempts: 5 ok"
    );
    // And the same seeder over uTP alone, for comparison.
    let (run, saved) = fetch(&lt, &["--transport", "utp"]);
    check(&lt, &run, &saved, "utp");
}

/// uTP only AND encryption forced (lt.enc_policy.forced = 0, lt.enc_level.rc4 = 2): by
/// default the fetcher gets there (plaintext TCP is reset, MSE over TCP too, plaintext uTP
/// is closed, MSE over uTP works); pinned to uTP and required encryption, directly.
#[test]
fn utp_only_libtorrent_with_forced_encryption() {
    let forced = ["out_enc_policy=0", "in_enc_policy=0", "allowed_enc_level=2"];
    let lt = seeder_with("127.0.140.33", false, &forced);
    let (run, saved) = fetch(&lt, &[]);
    check(&lt, &run, &saved, "utp");
    assert_eq!(
        run.stderr.trim_end(),
        "metadata: 5/5 infohashes, 5 attempts: 5 ok (0 tcp, 5 utp) (5 encrypted)"
    );
    let pinned = ["--transport", "utp", "--encryption", "required"];
    let (run, saved) = fetch(&lt, &pinned);
    check(&lt, &run, &saved, "utp");
    assert_eq!(
        run.stderr.trim_end(),
        "metadata: 5/5 infohashes, 5 attempts: 5 ok (0 tcp, 5 utp) (5 encrypted)"
    );
    let (run, _saved) = fetch(&lt, &["--encryption", "off"]);
    assert_eq!(run.stdout, "", "{}", run.stderr);
}
