//! `estudely metadata --encryption ...` against real clients that accept only encrypted
//! connections (Message Stream Encryption, RC4), on loopback 127.0.130.x–127.0.131.x:
//! libtorrent with `in_enc_policy` / `out_enc_policy` forced and `allowed_enc_level` rc4,
//! and Transmission with `"encryption": 2` (required). `required` and the default `prefer`
//! get every info dict right (every field checked against libtorrent's reading of the
//! .torrent files); `off` fails, the peer closing the connection at our plaintext handshake.
//!
//! Needs python3 with libtorrent's bindings, and `transmission-daemon` /
//! `transmission-remote` (`apt-get install -y transmission-daemon transmission-cli`); a
//! missing one FAILS the test. Every wait is bounded; every process is killed when dropped.

mod metadata_util;

use std::time::Duration;

use metadata_util::clients::{make_torrents, Transmission};
use metadata_util::{run_cli, PyHelper};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

/// One torrent to fetch: its DHT key, libtorrent's description, the peer (`ip,port`).
struct Want {
    key: String,
    torrent: Value,
    peer: String,
}

/// Run `estudely metadata` over `want` with `--encryption policy`; returns (stdout, the
/// summary line, success).
fn fetch(want: &[Want], policy: &str) -> (String, String, bool) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("peers.csv");
    let mut csv = String::from("infohash,peer_ip,peer_port\n");
    for w in want {
        csv += &format!("{},{}\n", w.key, w.peer);
    }
    std::fs::write(&file, csv).unwrap();
    let mut args = vec!["metadata", "--allow-private", file.to_str().unwrap()];
    args.extend(["--format", "jsonl", "--metadata-peer-attempts", "1"]);
    if !policy.is_empty() {
        args.extend(["--encryption", policy]);
    }
    let run = run_cli(&args, None, LIMIT);
    eprintln!(
        "--encryption {policy:?}: {} in {:?}",
        run.stderr.trim_end(),
        run.elapsed
    );
    // The summary is the last line (a progress line may come first on a slow machine).
    let summary = run
        .stderr
        .trim_end()
        .lines()
        .last()
        .unwrap_or("")
        .to_owned();
    (run.stdout, summary, run.status.success())
}

/// Every row of `stdout` matches its torrent, field by field.
fn check_rows(want: &[Want], stdout: &str, client: &str) {
    let rows: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), want.len(), "{stdout}");
    for w in want {
        let row = rows
            .iter()
            .find(|r| r["infohash"] == w.key.as_str())
            .unwrap_or_else(|| panic!("{} missing from {stdout}", w.key));
        let t = &w.torrent;
        let name = t["name"].as_str().unwrap();
        assert_eq!(row["name"], name, "{}", w.key);
        assert_eq!(row["name_hex"], hex::encode(name.as_bytes()), "{}", w.key);
        for f in ["file_count", "total_bytes", "piece_length"] {
            assert_eq!(row[f], t[f], "{} {f}", w.key);
        }
        assert_eq!(row["metadata_size"], t["info_size"], "{}", w.key);
        let (ip, port) = w.peer.split_once(',').unwrap();
        assert_eq!(row["peer"], format!("{ip}:{port}"), "{}", w.key);
        assert!(
            row["client"].as_str().unwrap_or("").contains(client),
            "client should mention {client}: {row}"
        );
        assert_eq!(row["failed"], Value::Array(vec![]), "{row}");
    }
}

/// `required` and `prefer` (the default) succeed, all encrypted; `off` fails, closed.
fn check_policies(want: &[Want], client: &str) {
    let n = want.len();
    let ok = format!("metadata: {n}/{n} infohashes, {n} attempts: {n} ok ({n} encrypted)");
    for policy in ["required", "prefer", ""] {
        let (stdout, summary, success) = fetch(want, policy);
        assert!(success, "{summary}");
        assert_eq!(summary, ok, "--encryption {policy:?}\n{stdout}");
        check_rows(want, &stdout, client);
    }
    let (stdout, summary, success) = fetch(want, "off");
    assert!(success, "{summary}");
    assert_eq!(stdout, "", "nothing fetched in plaintext");
    assert_eq!(
        summary,
        format!("metadata: 0/{n} infohashes, {n} attempts: 0 ok, {n} closed")
    );
}

#[test]
fn libtorrent_forced_encryption() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../peer-wire/tests/data");
    let files: Vec<String> = ["single_v1", "multi_v1", "hybrid", "v2_only", "big_v1"]
        .iter()
        .map(|n| format!("{data}/{n}.torrent"))
        .collect();
    // lt.enc_policy.forced = 0; lt.enc_level.rc4 = 2 (plaintext is 1, both 3).
    let mut args = vec!["serve", "--ip", "127.0.130.1", "--seconds", "120"];
    args.extend(["--set", "out_enc_policy=0", "--set", "in_enc_policy=0"]);
    args.extend(["--set", "allowed_enc_level=2"]);
    args.extend(files.iter().map(String::as_str));
    let seeder = PyHelper::start("lt_seeders.py", &args);
    let r = &seeder.ready;
    let peer = format!("127.0.130.1,{}", r["listen_port"]);
    let mut want = Vec::new();
    for t in r["torrents"].as_array().unwrap() {
        // Hybrids by their v1 key and their truncated v2 key; v2-only by the latter.
        for key in t["dht_keys"].as_array().unwrap() {
            want.push(Want {
                key: key.as_str().unwrap().to_owned(),
                torrent: t.clone(),
                peer: peer.clone(),
            });
        }
    }
    assert_eq!(want.len(), 6);
    check_policies(&want, "libtorrent/");
}

const TR_IP: &str = "127.0.131.1";

#[test]
fn transmission_required_encryption() {
    let dir = tempfile::tempdir().unwrap();
    let ts = make_torrents(dir.path());
    assert_eq!(ts.len(), 2);
    let daemon = Transmission::start(dir.path(), TR_IP, &ts, 2);
    let peer_port = daemon.peer_port;
    let peer = format!("{TR_IP},{peer_port}");
    let want: Vec<Want> = ts
        .iter()
        .map(|t| Want {
            key: t["infohash"].as_str().unwrap().to_owned(),
            torrent: t.clone(),
            peer: peer.clone(),
        })
        .collect();
    check_policies(&want, "Transmission");
}

/// libtorrent forcing the MSE handshake but allowing only plaintext after it
/// (`allowed_enc_level` plaintext): `prefer` offers both and gets the metadata in the
/// clear after the handshake; `required` offers RC4 only and is turned away.
#[test]
fn libtorrent_forced_handshake_plaintext_after() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../peer-wire/tests/data/multi_v1.torrent"
    );
    let args = [
        "serve",
        "--ip",
        "127.0.130.2",
        "--seconds",
        "120",
        "--set",
        "in_enc_policy=0",
        "--set",
        "allowed_enc_level=1",
        file,
    ];
    let seeder = PyHelper::start("lt_seeders.py", &args);
    let r = &seeder.ready;
    let t = &r["torrents"][0];
    let want = [Want {
        key: t["infohash"].as_str().unwrap().to_owned(),
        torrent: t.clone(),
        peer: format!("127.0.130.2,{}", r["listen_port"]),
    }];
    let (stdout, summary, success) = fetch(&want, "prefer");
    assert!(success, "{summary}");
    assert_eq!(
        summary,
        "metadata: 1/1 infohashes, 1 attempt: 1 ok (1 encrypted)"
    );
    check_rows(&want, &stdout, "libtorrent/");
    let (stdout, summary, _) = fetch(&want, "required");
    assert_eq!(stdout, "");
    assert!(summary.starts_with("metadata: 0/1 infohashes"), "{summary}");
}
