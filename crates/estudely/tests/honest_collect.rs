//! `estudely collect` end to end against an `estudely testnet` that holds every kind of
//! torrent a crawl meets: served ones (some with hostile names: comma, quote, newline,
//! control characters, backslash, C1 controls, invalid UTF-8), ones whose peer does not
//! serve their metadata, and infohashes the nodes sample but have no peer for. Each row of
//! the CSV (parsed with the `csv` crate) and of the JSON lines is checked against the
//! manifest, names byte for byte: the CSV's escaped name must be exactly the escaping rule's
//! (`common::escape_name`) and unescape to the name's bytes; the JSON's `name_hex` must be
//! those bytes.
//!
//! Loopback only: the testnet on 127.0.66.x (seeders on 127.0.67.x), the two collects on
//! 127.0.68.1 and 127.0.68.2. Every process is killed by a Drop guard, and the only time
//! limits are guards against a hang.

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use estudely::testnet::{ManifestTorrent, TorrentKind};
use serde_json::Value;

mod common;

use common::{escape_name, name_bytes, run_bounded, torrents, unescape_name, Finished};

const HEADER: [&str; 8] = [
    "infohash",
    "name",
    "file_count",
    "total_bytes",
    "piece_length",
    "peer_ip",
    "peer_port",
    "metadata_ok",
];

/// 16 served torrents (hostile names at t = 5, 10, 15: all three variants, t = 5 with
/// several files), 4 without metadata (t = 16..19), 4 without peers (t = 20..23). A short
/// BEP 51 interval: a sample reply lost on a loaded machine is asked for again 10 s later.
const NET: &str = "--nodes 20 --torrents 16 --no-metadata 4 --no-peers 4 --interval 10 \
                   --seconds 240 --base-ip 127.0.66";

/// Never reached unless something hangs.
const HANG: Duration = Duration::from_secs(150);

/// The manifest's torrents by infohash.
fn by_infohash(manifest: &Value) -> BTreeMap<String, ManifestTorrent> {
    torrents(manifest)
        .into_iter()
        .map(|t| (t.infohash.clone(), t))
        .collect()
}

/// Both collect runs, at the same time against the same testnet: the CSV one with no
/// infohash limit (it ends at its 30 s overall timeout, by which it must have found all 24
/// infohashes, about 1 s of work on loopback, and writes the no-peer rows then), the
/// JSON-lines one stopping once all 24 are found and dealt with (its timeout only guards).
fn collect_both(boot: &str) -> (Finished, Finished) {
    let common = [
        "collect",
        "--bootstrap",
        boot,
        "--rate",
        "200",
        "--peers-per-infohash",
        "5",
    ];
    let csv_args: Vec<String> = common
        .iter()
        .chain(&[
            "--bind",
            "127.0.68.1:0",
            "--max-infohashes",
            "0",
            "--overall-timeout",
            "30",
        ])
        .map(|s| s.to_string())
        .collect();
    let jsonl_args: Vec<String> = common
        .iter()
        .chain(&[
            "--bind",
            "127.0.68.2:0",
            "--max-infohashes",
            "24",
            "--overall-timeout",
            "90",
            "--format",
            "jsonl",
        ])
        .map(|s| s.to_string())
        .collect();
    let run = |args: Vec<String>| {
        thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_bounded(&args, HANG)
        })
    };
    let (csv, jsonl) = (run(csv_args), run(jsonl_args));
    (csv.join().unwrap(), jsonl.join().unwrap())
}

#[test]
fn collect_writes_every_kind_of_torrent_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let words: Vec<&str> = NET.split_whitespace().collect();
    let (_net, boot, manifest) = common::testnet(&words, &dir.path().join("testnet.json"));
    let want = by_infohash(&manifest);
    let count = |k: TorrentKind| want.values().filter(|t| t.kind == k).count();
    assert_eq!(
        (
            count(TorrentKind::Ok),
            count(TorrentKind::NoMetadata),
            count(TorrentKind::NoPeers)
        ),
        (16, 4, 4)
    );
    let hostile: Vec<&ManifestTorrent> = want
        .values()
        .filter(|t| t.kind == TorrentKind::Ok && std::str::from_utf8(&name_bytes(t)).is_err())
        .collect();
    assert_eq!(hostile.len(), 3, "t = 5, 10, 15 have hostile names");

    let (csv, jsonl) = collect_both(&boot);
    check_csv(&want, &csv);
    check_jsonl(&want, &jsonl);
}

/// The CSV: one row per (infohash, peer), every field as the manifest says, names escaped
/// by the rule and unescaped back to their exact bytes.
fn check_csv(want: &BTreeMap<String, ManifestTorrent>, run: &Finished) {
    assert!(run.status.success(), "collect (CSV): {}", run.stderr);
    let text = String::from_utf8(run.stdout.clone()).expect("the CSV is UTF-8");
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, HEADER);
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .map(|r| r.unwrap_or_else(|e| panic!("{e}\n{text}")))
        .collect();
    // Control characters are escaped, so no field spans lines: one line per row.
    assert_eq!(
        text.lines().count(),
        rows.len() + 1,
        "a row spans lines:\n{text}"
    );

    let mut got: BTreeMap<&str, &csv::StringRecord> = BTreeMap::new();
    for r in &rows {
        assert_eq!(r.len(), 8, "{r:?}");
        assert!(
            want.contains_key(&r[0]),
            "row for an unknown infohash: {r:?}"
        );
        assert!(got.insert(&r[0], r).is_none(), "two rows for {}", &r[0]);
    }
    let missing: Vec<_> = want
        .values()
        .filter(|t| !got.contains_key(t.infohash.as_str()))
        .map(|t| (t.kind, &t.infohash))
        .collect();
    assert!(missing.is_empty(), "no row for {missing:?}\n{}", run.stderr);

    for t in want.values() {
        let r = got[t.infohash.as_str()];
        let fields: Vec<&str> = r.iter().collect();
        let peer = || {
            let (ip, port) = t.peers[0].rsplit_once(':').unwrap();
            [ip.to_owned(), port.to_owned()]
        };
        match t.kind {
            TorrentKind::Ok => {
                let name = name_bytes(t);
                assert_eq!(
                    unescape_name(&r[1]),
                    name,
                    "{}: name {:?} does not unescape to {:?}",
                    t.infohash,
                    &r[1],
                    String::from_utf8_lossy(&name)
                );
                assert_eq!(
                    r[1],
                    escape_name(&name),
                    "{}: not the rule's escaping",
                    t.infohash
                );
                let numbers = [t.file_count, t.total_bytes, t.piece_length].map(|n| n.to_string());
                assert_eq!(fields[2..5], numbers, "{r:?}");
                assert_eq!(fields[5..7], peer(), "{r:?}");
                assert_eq!(&r[7], "True", "{r:?}");
            }
            TorrentKind::NoMetadata => {
                assert_eq!(fields[1..5], ["", "0", "0", "0"], "{r:?}");
                assert_eq!(fields[5..7], peer(), "{r:?}");
                assert_eq!(&r[7], "False", "{r:?}");
            }
            TorrentKind::NoPeers => {
                assert_eq!(fields[1..], ["", "0", "0", "0", "", "", "False"], "{r:?}");
            }
        }
    }
    let summary = run.stderr.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("collect: 24 infohashes, 16 with metadata, 24 rows;"),
        "{}",
        run.stderr
    );
}

/// The JSON lines: the same rows, with `name_hex` the exact name bytes.
fn check_jsonl(want: &BTreeMap<String, ManifestTorrent>, run: &Finished) {
    assert!(run.status.success(), "collect (JSON lines): {}", run.stderr);
    let text = String::from_utf8(run.stdout.clone()).expect("JSON lines are UTF-8");
    let mut got: BTreeMap<String, Value> = BTreeMap::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let ih = v["infohash"].as_str().unwrap().to_owned();
        assert!(want.contains_key(&ih), "row for an unknown infohash: {v}");
        assert!(got.insert(ih, v).is_none(), "two rows: {line}");
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "one row per infohash\n{}",
        run.stderr
    );
    for t in want.values() {
        let v = &got[&t.infohash];
        let seeder = t.peers.first().map(|p| p.rsplit_once(':').unwrap());
        let (ip, port) = match seeder {
            Some((ip, port)) => (Value::from(ip), Value::from(port.parse::<u16>().unwrap())),
            None => (Value::Null, Value::Null),
        };
        assert_eq!((&v["peer_ip"], &v["peer_port"]), (&ip, &port), "{v}");
        if t.kind == TorrentKind::Ok {
            assert_eq!(v["metadata_ok"], true, "{v}");
            assert_eq!(v["name_hex"], t.name_hex.as_str(), "{v}");
            assert_eq!(v["version"], "v1", "{v}");
            let numbers = [t.file_count, t.total_bytes, t.piece_length];
            let got = ["file_count", "total_bytes", "piece_length"].map(|k| v[k].as_u64());
            assert_eq!(got, numbers.map(Some), "{v}");
            if std::str::from_utf8(&name_bytes(t)).is_ok() && !t.name.contains('\\') {
                assert_eq!(v["name"], t.name.as_str(), "{v}");
            }
        } else {
            assert_eq!(v["metadata_ok"], false, "{v}");
            assert_eq!(v["name_hex"], "", "{v}");
            assert_eq!(v["name"], "", "{v}");
            assert_eq!(v["version"], Value::Null, "{v}");
            for k in ["file_count", "total_bytes", "piece_length"] {
                assert_eq!(v[k], 0, "{v}");
            }
        }
    }
    let summary = run.stderr.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("collect: 24 infohashes, 16 with metadata, 24 rows;"),
        "{}",
        run.stderr
    );
}

/// The test's own unescape and reference escape agree with each other on every name the
/// testnet has, and the escaping leaves no control character and no line break.
#[test]
fn unescape_inverts_the_escaping_rule() {
    for t in 0..40 {
        let name = estudely::testnet::synthetic_torrent(t).name;
        let escaped = escape_name(&name);
        assert_eq!(unescape_name(&escaped), name, "{t}");
        assert!(
            !escaped.chars().any(|c| c.is_control() || c == '\u{fffd}'),
            "{t}: {escaped:?}"
        );
    }
    assert_eq!(
        escape_name(b"a,\"b\"\n\t\x01\x7f\\\xff\xfe\xc2\x85\xc3\xa9"),
        "a,\"b\"\\x0a\\x09\\x01\\x7f\\\\\\xff\\xfe\\u0085\u{e9}"
    );
    assert_eq!(unescape_name("\\\\x41"), b"\\x41");
}
