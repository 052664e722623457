//! `estudely metadata` against real libtorrent seeders on loopback (127.0.30.x and `[::1]`):
//! every field of every torrent kind checked against what libtorrent reports, and the
//! `--save-torrents` files loaded back by libtorrent with the same info-hash.
//!
//! Needs python3 with libtorrent's bindings. Every wait is bounded; helpers are told to quit
//! and killed when dropped.

mod metadata_util;

use std::collections::HashMap;
use std::time::Duration;

use metadata_util::{lt_inspect, run_cli, PyHelper, Run};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

/// What libtorrent says one DHT key should yield, and where to fetch it.
#[derive(Debug, Clone)]
struct Expect {
    torrent: Value,
    version: &'static str,
    /// Peers rows, in order; the last one is the seeder.
    peers: Vec<String>,
}

/// The peers CSV: a torrent keyed by its truncated v2 infohash is listed by its full
/// 64-hex v2 infohash (which `metadata` truncates to the DHT key), the others by their key.
fn peers_csv(expect: &[(String, Expect)]) -> String {
    let mut csv = String::from("infohash,peer_ip,peer_port\n");
    for (key, e) in expect {
        let listed = match e.torrent["infohash_v2"].as_str() {
            Some(v2) if v2.starts_with(key.as_str()) => v2,
            _ => key.as_str(),
        };
        for p in &e.peers {
            csv += &format!("{listed},{p}\n");
        }
    }
    csv
}

fn csv_rows(stdout: &str) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_reader(stdout.as_bytes());
    assert_eq!(
        r.headers().unwrap(),
        vec![
            "infohash",
            "name",
            "file_count",
            "total_bytes",
            "piece_length"
        ]
    );
    r.records()
        .map(|rec| rec.unwrap().iter().map(String::from).collect())
        .collect()
}

/// `ip,port` of a peer row as the address `estudely` prints (`[v6]:port` for IPv6).
fn printed(peer: &str) -> String {
    let (ip, port) = peer.rsplit_once(',').unwrap();
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// Check the JSONL, CSV and saved-torrent outputs against `expect`.
fn check(expect: &[(String, Expect)], jsonl: &Run, csv: &Run, saved: &std::path::Path) {
    assert!(jsonl.status.success(), "{}", jsonl.stderr);
    assert!(csv.status.success(), "{}", csv.stderr);
    let want: HashMap<&str, &Expect> = expect.iter().map(|(k, e)| (k.as_str(), e)).collect();

    let rows: Vec<Value> = jsonl
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), expect.len(), "{}", jsonl.stdout);
    for row in &rows {
        let key = row["infohash"].as_str().unwrap();
        let e = want[key];
        let t = &e.torrent;
        let name = t["name"].as_str().unwrap();
        assert_eq!(row["name"], name, "{key}");
        assert_eq!(row["name_hex"], hex::encode(name.as_bytes()), "{key}");
        for f in ["file_count", "total_bytes", "piece_length"] {
            assert_eq!(row[f], t[f], "{key} {f}");
        }
        assert_eq!(row["metadata_size"], t["info_size"], "{key}");
        // The full SHA-256 infohash of a v2 or hybrid torrent, as libtorrent has it.
        assert_eq!(row["infohash_v2"], t["infohash_v2"], "{key}");
        assert_eq!(row["version"], e.version, "{key}");
        assert_eq!(row["peer"], printed(e.peers.last().unwrap()), "{key}");
        assert!(
            row["client"].as_str().unwrap().starts_with("libtorrent/"),
            "{row}"
        );
        // The bad peers listed before the good one are tried first unless another fetch
        // is connected to them at that moment (a job takes a free peer before waiting for
        // a busy one): at most all of them failed, none twice.
        let failed = row["failed"].as_array().unwrap();
        assert!(failed.len() < e.peers.len(), "{row}");
        for f in failed {
            let p = f["peer"].as_str().unwrap_or_default();
            let bad: Vec<String> = e.peers[..e.peers.len() - 1]
                .iter()
                .map(|p| printed(p))
                .collect();
            assert!(bad.iter().any(|b| b == p), "{row}: {p} is not a bad peer");
        }
    }

    let rows = csv_rows(&csv.stdout);
    assert_eq!(rows.len(), expect.len(), "{}", csv.stdout);
    for row in rows {
        let t = &want[row[0].as_str()].torrent;
        let nums = [&t["file_count"], &t["total_bytes"], &t["piece_length"]].map(|v| v.to_string());
        assert_eq!(row[1], t["name"].as_str().unwrap());
        assert_eq!(row[2..], nums, "{row:?}");
    }

    // libtorrent loads every saved file, with the same info-hash and the same numbers.
    let mut names: Vec<String> = std::fs::read_dir(saved)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut keys: Vec<String> = expect.iter().map(|(k, _)| format!("{k}.torrent")).collect();
    keys.sort();
    assert_eq!(
        names, keys,
        "exactly one <infohash>.torrent per torrent, nothing else"
    );
    let files: Vec<String> = names
        .iter()
        .map(|n| saved.join(n).to_str().unwrap().to_owned())
        .collect();
    for (lt, file) in lt_inspect(&files).iter().zip(&names) {
        let key = file.trim_end_matches(".torrent");
        let t = &want[key].torrent;
        assert!(lt["error"].is_null(), "{lt}");
        assert!(
            lt["dht_keys"].as_array().unwrap().iter().any(|k| k == key),
            "{lt}"
        );
        for f in [
            "name",
            "file_count",
            "total_bytes",
            "piece_length",
            "info_size",
        ] {
            assert_eq!(lt[f], t[f], "{key} {f}");
        }
        for f in ["infohash", "infohash_v2"] {
            assert_eq!(lt[f], t[f], "{key} {f}");
        }
        // libtorrent's own totals count BEP 47 pad files; ours (and the ready line's) do not.
        let pads = lt["pad_files"].as_u64().unwrap();
        assert_eq!(
            lt["num_files"].as_u64().unwrap(),
            t["file_count"].as_u64().unwrap() + pads
        );
        if pads > 0 {
            eprintln!(
                "{key} {}: libtorrent num_files {} total_size {}; without pad files {} / {}",
                t["name"], lt["num_files"], lt["total_size"], t["file_count"], t["total_bytes"]
            );
        }
    }
}

fn version_of(t: &Value) -> &'static str {
    match (t["infohash"].is_null(), t["infohash_v2"].is_null()) {
        (false, true) => "v1",
        (true, false) => "v2",
        (false, false) => "hybrid",
        (true, true) => panic!("no info-hash: {t}"),
    }
}

/// `got` says what `want` says, but for the failed attempts: a job takes a free peer before
/// a busy one, so a bad peer another job is connected to may be skipped (at most as many
/// attempts as `want`, every one beyond the successes failed as `want`'s did).
fn same_summary(got: &str, want: &str) {
    // "metadata: 7/7 infohashes, 14 attempts: 7 ok, 7 closed"
    let split = |s: &str| -> (String, u64, String, String) {
        let (head, rest) = s.split_once(" attempts: ").unwrap_or((s, ""));
        let (infohashes, attempts) = head.rsplit_once(", ").unwrap_or((head, "0"));
        let (ok, failed) = rest.split_once(", ").unwrap_or((rest, ""));
        // "7 closed" -> "closed": how the failures failed, not how many.
        let kind = failed.split_once(' ').map_or("", |(_, k)| k);
        let attempts = attempts.parse().unwrap_or(0);
        (
            infohashes.to_owned(),
            attempts,
            ok.to_owned(),
            kind.to_owned(),
        )
    };
    let (gi, ga, gok, gkind) = split(got);
    let (wi, wa, wok, wkind) = split(want);
    assert_eq!((gi, gok), (wi, wok), "{got}");
    assert!(ga <= wa, "{got}: more attempts than {want}");
    assert!(
        gkind.is_empty() || gkind == wkind,
        "{got}: failures unlike {want}'s"
    );
}

/// Fetch with `jsonl` (saving torrents) and with CSV, and check both.
fn fetch_and_check(expect: &[(String, Expect)], summary: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("peers.csv");
    std::fs::write(&file, peers_csv(expect)).unwrap();
    let saved = dir.path().join("torrents");
    let file = file.to_str().unwrap();
    let jsonl = run_cli(
        &[
            "metadata",
            "--allow-private",
            file,
            "--format",
            "jsonl",
            "--save-torrents",
            saved.to_str().unwrap(),
        ],
        None,
        LIMIT,
    );
    let csv = run_cli(&["metadata", "--allow-private", file], None, LIMIT);
    check(expect, &jsonl, &csv, &saved);
    same_summary(jsonl.stderr.trim_end(), summary);
    same_summary(csv.stderr.trim_end(), summary);
    eprintln!(
        "fetched {} torrents in {:?} / {:?}",
        expect.len(),
        jsonl.elapsed,
        csv.elapsed
    );
}

#[test]
fn lt_swarm_every_kind() {
    let swarm = PyHelper::start(
        "lt_swarm.py",
        &[
            "--nodes",
            "2",
            "--base-ip",
            "127.0.30",
            "--torrents-per-node",
            "3",
            "--kinds",
            "v1,v1multi,bigmeta,hybrid,v2,utf8",
            "--ipv6",
            "--seconds",
            "120",
        ],
    );
    let nodes = swarm.ready["nodes"].as_array().unwrap();
    let v4 = |n: &Value| format!("{},{}", n["ip"].as_str().unwrap(), n["listen_port"]);
    let mut expect = Vec::new();
    let mut kinds = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let other = &nodes[1 - i];
        // Node 0's torrents are fetched over IPv6 (the DHT and TCP share the port).
        let seeder = if i == 0 {
            format!("::1,{}", node["ipv6"]["dht_port"])
        } else {
            v4(node)
        };
        for t in node["torrents"].as_array().unwrap() {
            kinds.push(t["kind"].as_str().unwrap().to_owned());
            // Hybrids by their v1 key AND their truncated v2 key; v2-only by the latter.
            for key in t["dht_keys"].as_array().unwrap() {
                let e = Expect {
                    torrent: t.clone(),
                    version: version_of(t),
                    // The other node does not have the torrent: it closes the connection.
                    peers: vec![v4(other), seeder.clone()],
                };
                expect.push((key.as_str().unwrap().to_owned(), e));
            }
        }
    }
    kinds.sort();
    assert_eq!(kinds, ["bigmeta", "hybrid", "utf8", "v1", "v1multi", "v2"]);
    assert_eq!(expect.len(), 7);
    let utf8 = expect
        .iter()
        .find(|(_, e)| e.torrent["kind"] == "utf8")
        .unwrap();
    assert_eq!(utf8.1.torrent["name"], "Ünïcødé – 日本語-n1-t2");
    fetch_and_check(
        &expect,
        "metadata: 7/7 infohashes, 14 attempts: 7 ok, 7 closed",
    );
}

#[test]
fn lt_seeders_pad_files_and_big_metadata() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../peer-wire/tests/data");
    let files: Vec<String> = [
        "single_v1",
        "multi_v1",
        "hybrid",
        "v2_only",
        "nonascii_hybrid",
        "big_v1",
    ]
    .iter()
    .map(|n| format!("{data}/{n}.torrent"))
    .collect();
    let mut args = vec!["serve", "--ip", "127.0.30.20", "--ipv6", "--seconds", "120"];
    args.extend(files.iter().map(String::as_str));
    let seeders = PyHelper::start("lt_seeders.py", &args);
    let r = &seeders.ready;
    let v4 = format!("127.0.30.20,{}", r["listen_port"]);
    let v6 = format!("::1,{}", r["ipv6_port"]);
    let mut expect = Vec::new();
    for (i, t) in r["torrents"].as_array().unwrap().iter().enumerate() {
        for key in t["dht_keys"].as_array().unwrap() {
            let e = Expect {
                torrent: t.clone(),
                version: version_of(t),
                peers: vec![if i % 2 == 0 { v4.clone() } else { v6.clone() }],
            };
            expect.push((key.as_str().unwrap().to_owned(), e));
        }
    }
    assert_eq!(expect.len(), 8);
    // libtorrent counts pad files (crates/peer-wire/tests/data/README.md); we do not.
    let hybrid = &r["torrents"][2];
    assert_eq!(hybrid["name"], "mixed");
    assert_eq!(
        (&hybrid["num_files"], &hybrid["total_size"]),
        (&6.into(), &114_688.into())
    );
    assert_eq!(
        (&hybrid["file_count"], &hybrid["total_bytes"]),
        (&3.into(), &70_005.into())
    );
    assert_eq!(
        r["torrents"][5]["info_size"], 60_116,
        "big_v1 spans 4 metadata pieces"
    );
    fetch_and_check(&expect, "metadata: 8/8 infohashes, 8 attempts: 8 ok");
}
