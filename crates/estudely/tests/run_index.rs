//! `estudely run` end to end with its default SQLite index, against an `estudely testnet`
//! holding every kind of torrent a crawl meets (served ones, some with hostile names; ones
//! whose peer does not serve metadata; ones without peers):
//!
//! - every served torrent is stored once, every field as the manifest says (names byte for
//!   byte), and nothing else is;
//! - a restart on the same index fetches nothing again, and its warm start (the good nodes
//!   saved in the index) reaches its first sample with fewer queries;
//! - `kill -9` in the middle of a run leaves `PRAGMA integrity_check` ok and loses no row
//!   committed before the kill, and the next run completes the index;
//! - filters (`--min-size`, `--exclude`, `--blocklist`) keep torrents out and count them;
//! - the BEP 33 scrape estimates of the testnet's nodes (its seeders announce with `seed=1`)
//!   reach the index and `export --format jsonl`;
//! - `--max-sightings` caps the sightings per infohash, `--no-peer-addresses` stores none.
//!
//! Loopback only: testnets on 127.0.90.x, 127.0.96.x, 127.0.98.x, 127.0.150.x, 127.0.158.x
//! (seeders on the next /24); runs bind 127.0.92.x, 127.0.152.x and 127.0.160.x. Time limits only guard against a hang.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use estudely::store::{DbUrl, Store};
use estudely::testnet::{ManifestTorrent, TorrentKind};
use estudely_krpc::InfoHash;

mod common;

use common::{name_bytes, run_bounded, torrents, Finished, Proc, BIN};

/// 16 served torrents (hostile names among them), 4 without metadata, 4 without peers.
const NET: &str = "--nodes 20 --torrents 16 --no-metadata 4 --no-peers 4 --interval 10 \
                   --seconds 600 --base-ip 127.0.90";

const HANG: Duration = Duration::from_secs(120);

fn served(manifest: &serde_json::Value) -> BTreeMap<String, ManifestTorrent> {
    torrents(manifest)
        .into_iter()
        .filter(|t| t.kind == TorrentKind::Ok)
        .map(|t| (t.infohash.clone(), t))
        .collect()
}

fn run_args<'a>(db: &'a str, boot: &'a str, bind: &'a str, secs: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--db",
        db,
        "--bootstrap",
        boot,
        "--bind",
        bind,
        "--rate",
        "200",
        "--overall-timeout",
        secs,
    ]
}

fn run_ok(args: &[&str]) -> Finished {
    let done = run_bounded(args, HANG);
    assert!(done.status.success(), "{args:?}: {}", done.stderr);
    done
}

fn open(db: &Path) -> Box<dyn Store> {
    DbUrl::Sqlite(db.to_owned())
        .open_read_only()
        .expect("the index opens read-only")
}

/// The number after `metadata ` in the summary: infohashes whose metadata was fetched.
fn fetched(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .rfind(|l| l.starts_with("run: ") && l.contains(" stored"))
        .unwrap_or_else(|| panic!("no summary:\n{stderr}"));
    let after = line.split("metadata ").nth(1).expect("metadata in summary");
    after.split('/').next().unwrap().parse().expect("a count")
}

/// `first sample after N find_node queries` in the summary.
fn first_sample(stderr: &str) -> u64 {
    let after = stderr
        .split("first sample after ")
        .nth(1)
        .unwrap_or_else(|| panic!("no first sample:\n{stderr}"));
    after.split(' ').next().unwrap().parse().expect("a count")
}

/// Every stored torrent, by infohash hex.
fn stored(store: &mut dyn Store) -> BTreeMap<String, estudely::store::StoredTorrent> {
    let mut all = BTreeMap::new();
    store
        .export(None, &mut |t, _peers| {
            let prev = all.insert(t.torrent.info_hash.to_hex(), t.clone());
            assert!(prev.is_none(), "exported twice: {:?}", t.torrent.info_hash);
            Ok(())
        })
        .unwrap();
    all
}

#[test]
fn run_stores_every_torrent_once_and_a_restart_fetches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let words: Vec<&str> = NET.split_whitespace().collect();
    let (_net, boot, manifest) = common::testnet(&words, &dir.path().join("testnet.json"));
    let want = served(&manifest);
    assert_eq!(want.len(), 16);
    let db = dir.path().join("index.sqlite");
    let db_s = db.to_str().unwrap();

    let first = run_ok(&run_args(db_s, &boot, "127.0.92.1:0", "25"));
    eprintln!("first run:\n{}", first.stderr);
    let mut store = open(&db);
    let got = stored(store.as_mut());
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "exactly the served torrents"
    );
    for (ih, t) in &want {
        let s = &got[ih].torrent;
        assert_eq!(s.name, name_bytes(t), "{ih}: name bytes");
        assert_eq!(
            (s.file_count, s.total_bytes, s.piece_length),
            (t.file_count, t.total_bytes, t.piece_length),
            "{ih}"
        );
        let full = store
            .torrent(&InfoHash::from_hex(ih).unwrap())
            .unwrap()
            .expect("stored");
        assert_eq!(
            full.torrent.files.len() as u64 + full.files_omitted,
            t.file_count,
            "{ih}: files"
        );
        assert_eq!(
            full.torrent.files.iter().map(|f| f.length).sum::<u64>(),
            t.total_bytes
        );
    }
    assert_eq!(fetched(&first.stderr), 16, "each fetched once");
    let stats = store.stats().unwrap();
    assert_eq!(stats.torrents, 16);
    assert!(stats.sightings >= 16, "{stats:?}");
    assert!(
        stats.nodes > 0,
        "good nodes saved for the next start: {stats:?}"
    );
    drop(store);
    // The counters of the stats charts: the sampled nodes by client (the testnet's nodes
    // send `v` = `ES\x00\x01`) and by interval (10 s, in the 60 s bucket), and the failed
    // fetches (the torrents whose peer serves no metadata) by reason.
    let out = Command::new(BIN)
        .args(["stats", "--db", db_s, "--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let counters = json["counters"].as_object().expect("counters");
    let names: Vec<&String> = counters.keys().collect();
    assert!(counters.contains_key("node_client_ES 0.1"), "{names:?}");
    assert!(counters.contains_key("node_interval_60"), "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("fetch_failed_"))
            && !counters.contains_key("fetch_failed"),
        "{names:?}"
    );

    let second = run_ok(&run_args(db_s, &boot, "127.0.92.2:0", "15"));
    eprintln!("second run:\n{}", second.stderr);
    assert!(
        second.stderr.contains("16 torrents, "),
        "the restart sees the index: {}",
        second.stderr
    );
    assert_eq!(fetched(&second.stderr), 0, "nothing fetched twice");
    let (cold, warm) = (first_sample(&first.stderr), first_sample(&second.stderr));
    assert!(
        warm < cold,
        "the warm start (nodes saved in the index) samples with less walking: {warm} \
         find_node queries, cold {cold}"
    );
    assert_eq!(open(&db).stats().unwrap().torrents, 16);
}

/// With `--full-peer-searches`, the crawler's `get_peers` ask for scrapes; the nodes that
/// store a served torrent's announce answer with their seed filter: each stored torrent has
/// a seeds estimate of at least 1 (the testnet's announcer is one IP), in the index and in
/// the export. (Searches that stop at the first peer, the default, ask for none.)
#[test]
fn scrape_estimates_reach_the_index_and_the_export() {
    let dir = tempfile::tempdir().unwrap();
    let net = "--nodes 12 --torrents 4 --no-metadata 0 --no-peers 0 --interval 10 \
               --seconds 300 --base-ip 127.0.150";
    let words: Vec<&str> = net.split_whitespace().collect();
    let (_net, boot, manifest) = common::testnet(&words, &dir.path().join("testnet.json"));
    let want = served(&manifest);
    let db = dir.path().join("index.sqlite");
    let db_s = db.to_str().unwrap();
    let mut args = run_args(db_s, &boot, "127.0.152.1:0", "20");
    args.push("--full-peer-searches");
    let done = run_ok(&args);
    eprintln!("{}", done.stderr);
    let got = stored(open(&db).as_mut());
    assert_eq!(got.len(), want.len(), "every served torrent stored");
    for (ih, st) in &got {
        let t = &st.torrent;
        assert!(
            t.seeds_estimate.is_some_and(|n| n >= 1),
            "{ih}: seeds estimate {:?}, peers {:?}",
            t.seeds_estimate,
            t.peers_estimate
        );
    }
    let out = Command::new(BIN)
        .args(["export", "--db", db_s, "--format", "jsonl"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["seeds_estimate"].as_u64() >= Some(1), "{line}");
    }
}

/// `--max-sightings 1` keeps one sighting row per infohash; `--no-peer-addresses` stores
/// no address at all, only how often each infohash was seen, and `export` lists no peer.
/// Every served torrent is stored either way.
#[test]
fn sightings_are_capped_and_may_keep_no_address() {
    let dir = tempfile::tempdir().unwrap();
    let net = "--nodes 12 --torrents 4 --no-metadata 0 --no-peers 0 --interval 10 \
               --seconds 300 --base-ip 127.0.158";
    let words: Vec<&str> = net.split_whitespace().collect();
    let (_net, boot, manifest) = common::testnet(&words, &dir.path().join("testnet.json"));
    let want = served(&manifest);
    let sql = |db: &Path, q: &str| -> i64 {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.query_row(q, [], |r| r.get(0)).unwrap()
    };

    let capped = dir.path().join("capped.sqlite");
    let mut args = run_args(capped.to_str().unwrap(), &boot, "127.0.160.1:0", "20");
    args.extend(["--max-sightings", "1"]);
    eprintln!("{}", run_ok(&args).stderr);
    assert_eq!(stored(open(&capped).as_mut()).len(), want.len());
    let most = "SELECT coalesce(max(n), 0) FROM \
                (SELECT count(*) AS n FROM sightings GROUP BY info_hash)";
    assert_eq!(sql(&capped, most), 1, "one row per infohash at most");

    let anonymous = dir.path().join("anonymous.sqlite");
    let db_s = anonymous.to_str().unwrap();
    let mut args = run_args(db_s, &boot, "127.0.160.2:0", "20");
    args.push("--no-peer-addresses");
    eprintln!("{}", run_ok(&args).stderr);
    let mut store = open(&anonymous);
    let got = stored(store.as_mut());
    assert_eq!(got.len(), want.len());
    assert!(sql(&anonymous, "SELECT count(*) FROM sightings") > 0);
    let with_address = "SELECT count(*) FROM sightings WHERE ip <> '0.0.0.0' OR port <> 0";
    assert_eq!(sql(&anonymous, with_address), 0, "no address stored");
    for (ih, _) in got {
        let (rows, n) = store
            .sightings_of(&InfoHash::from_hex(&ih).unwrap(), 10)
            .unwrap();
        assert!(
            rows.is_empty() && n.total == 0 && n.peers == 0,
            "{ih}: {rows:?}"
        );
        assert!(n.seen >= 1, "{ih}: seen {n:?}");
    }
    let out = Command::new(BIN)
        .args(["export", "--db", db_s, "--format", "jsonl"])
        .output()
        .unwrap();
    assert!(out.status.success());
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["peers"], serde_json::json!([]), "{line}");
    }
}

fn count(db: &Path) -> Option<u64> {
    DbUrl::Sqlite(db.to_owned())
        .open_read_only()
        .ok()?
        .stats()
        .ok()
        .map(|s| s.torrents)
}

#[test]
fn kill_dash_nine_loses_no_committed_row() {
    let dir = tempfile::tempdir().unwrap();
    let net = "--nodes 24 --torrents 60 --interval 10 --seconds 600 --base-ip 127.0.96";
    let words: Vec<&str> = net.split_whitespace().collect();
    let (_net, boot, manifest) = common::testnet(&words, &dir.path().join("testnet.json"));
    let want = served(&manifest);
    let db = dir.path().join("index.sqlite");
    let db_s = db.to_str().unwrap();

    // Slow enough that the kill lands mid-run: 20 queries a second, 4 fetches at a time.
    let mut args = run_args(db_s, &boot, "127.0.92.3:0", "300");
    let rate = args.iter().position(|a| *a == "--rate").unwrap();
    args[rate + 1] = "20";
    // Its leases (claims of infohashes being fetched) expire 1 s after the kill, so the
    // restart may fetch what it was fetching (by default they last 5 min).
    args.extend(["--concurrency", "4", "--lease", "1"]);
    let child = Command::new(BIN)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut proc = Proc(child);
    let exited = |proc: &mut Proc| proc.0.try_wait().unwrap();
    let before = loop {
        // No clock here: the run ends by itself (its --overall-timeout) if it commits
        // nothing, and that fails the test.
        assert!(
            exited(&mut proc).is_none(),
            "run exited before committing 5 torrents"
        );
        if let Some(n) = count(&db).filter(|&n| n >= 5) {
            break n;
        }
        thread::sleep(Duration::from_millis(100));
    };
    proc.0.kill().unwrap(); // SIGKILL
    proc.0.wait().unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    let after = count(&db).unwrap();
    assert!(
        after >= before,
        "{before} rows committed before the kill, {after} after"
    );
    assert!(
        after < want.len() as u64,
        "the kill came too late to prove anything"
    );

    thread::sleep(Duration::from_secs(1));
    let rest = run_ok(&run_args(db_s, &boot, "127.0.92.4:0", "40"));
    eprintln!("after the kill:\n{}", rest.stderr);
    let got = stored(open(&db).as_mut());
    assert_eq!(got.len(), want.len(), "the restart completes the index");
    assert_eq!(
        fetched(&rest.stderr),
        want.len() as u64 - after,
        "the restart fetches only what was not committed"
    );
}

#[test]
fn filters_keep_torrents_out_and_count_them() {
    let dir = tempfile::tempdir().unwrap();
    let words: Vec<&str> = NET.split_whitespace().collect();
    let net_words: Vec<String> = words
        .iter()
        .map(|w| w.replace("127.0.90", "127.0.98"))
        .collect();
    let net_words: Vec<&str> = net_words.iter().map(String::as_str).collect();
    let (_net, boot, manifest) = common::testnet(&net_words, &dir.path().join("testnet.json"));
    let want = served(&manifest);
    // Block one torrent, set a size floor that drops some, and exclude one name.
    let mut sizes: Vec<u64> = want.values().map(|t| t.total_bytes).collect();
    sizes.sort_unstable();
    let floor = sizes[3]; // at least 3 torrents are smaller
    let blocked = want.keys().next().unwrap().clone();
    let block = dir.path().join("block.txt");
    std::fs::write(&block, format!("# test\n{blocked}\n")).unwrap();
    let ascii: Vec<&ManifestTorrent> = want
        .values()
        .filter(|t| t.infohash != blocked && t.total_bytes >= floor && t.name.is_ascii())
        .collect();
    let excluded = ascii.last().expect("an ASCII-named torrent");
    let pattern = format!("^{}$", regex_escape(&excluded.name));
    let db = dir.path().join("index.sqlite");
    let db_s = db.to_str().unwrap();
    let floor_s = floor.to_string();
    let mut args = run_args(db_s, &boot, "127.0.92.5:0", "25");
    args.extend([
        "--min-size",
        &floor_s,
        "--exclude",
        &pattern,
        "--blocklist",
        block.to_str().unwrap(),
    ]);
    let done = run_ok(&args);
    eprintln!("{}", done.stderr);
    let keep: Vec<&String> = want
        .iter()
        .filter(|(ih, t)| {
            **ih != blocked && t.total_bytes >= floor && t.infohash != excluded.infohash
        })
        .map(|(ih, _)| ih)
        .collect();
    let mut store = open(&db);
    let got = stored(store.as_mut());
    assert_eq!(got.keys().collect::<Vec<_>>(), keep, "only what passes");
    let stats = store.stats().unwrap();
    let counter = |name: &str| {
        stats
            .counters
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |c| c.1)
    };
    let small = want
        .values()
        .filter(|t| t.infohash != blocked && t.total_bytes < floor)
        .count() as u64;
    assert_eq!(counter("filtered_size"), small, "{stats:?}");
    assert_eq!(counter("filtered_name"), 1, "{stats:?}");
    assert!(counter("filtered_blocklist") >= 1, "{stats:?}");
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$#&-~ ".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}
