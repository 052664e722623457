//! `estudely run` against an endless world (`estudely testnet --world N`), as the ingest
//! benchmark runs it, small enough for CI:
//!
//! - every torrent of the world that was sampled and can be fetched is stored exactly once,
//!   every field as the world made it (name and paths byte for byte, sizes, piece length,
//!   its peers), and nothing else is;
//! - the crawl kept every etiquette rule the world checks (no sample inside an interval, no
//!   IP over 25 datagrams in 10 s);
//! - `run`'s peak RSS and the database's bytes per torrent stay under their bounds.
//!
//! `ESTUDELY_INGEST_TORRENTS` sets the world's size (default 20,000). Loopback only: the
//! world on 127.5.10.x-127.5.11.x (seeders 127.5.12.x), `run` on 127.5.40.1. Time limits
//! only guard against a hang.

#[path = "common/world_rows.rs"]
mod world_rows;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use estudely::testnet::world::{self, Fate, WorldTorrent};
use estudely_krpc::InfoHash;
use serde_json::Value;

mod common;

use common::{testnet, Proc, BIN};

const SEED: u64 = 11;
const HANG: Duration = Duration::from_secs(1_200);
/// Peak RSS of `run` allowed, bytes.
const MAX_RSS: u64 = 200 << 20;
/// Database bytes (pages in use) allowed per stored torrent.
const MAX_DB_PER_TORRENT: u64 = 2_048;

fn world_size() -> u64 {
    std::env::var("ESTUDELY_INGEST_TORRENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn stored_count(db: &Path) -> u64 {
    let Ok(c) = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) else {
        return 0;
    };
    c.query_row("SELECT count(*) FROM torrents", [], |r| r.get::<_, i64>(0))
        .map_or(0, |n| n as u64)
}

fn db_bytes_in_use(db: &Path) -> u64 {
    let c = rusqlite::Connection::open(db).expect("open index");
    let q = |p: &str| {
        c.query_row(&format!("PRAGMA {p}"), [], |r| r.get::<_, i64>(0))
            .unwrap() as u64
    };
    let (pages, free, size) = (q("page_count"), q("freelist_count"), q("page_size"));
    (pages - free) * size
}

fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn world_status(path: &Path) -> Value {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

/// Check one `export --format jsonl` object against the world's torrent, and its peers
/// against the torrent's seeders.
fn check_row(row: &Value, t: &WorldTorrent, peers: &[String]) {
    world_rows::check_row(row, t);
    let ih = row["infohash"].as_str().unwrap();
    let got: HashSet<&str> = row["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(!got.is_empty(), "{ih}: no peer stored");
    for p in &got {
        assert!(
            peers.iter().any(|q| q == p),
            "{ih}: peer {p} is not one of its seeders"
        );
    }
}

#[test]
fn run_stores_every_sampled_torrent_of_a_world_once_with_every_field_right() {
    let n = world_size();
    let dir = tempfile::tempdir().unwrap();
    let status = dir.path().join("world.json");
    let world_args = [
        "--world".to_string(),
        n.to_string(),
        "--nodes".into(),
        "500".into(),
        "--interval".into(),
        "10".into(),
        "--seed".into(),
        SEED.to_string(),
        "--base-ip".into(),
        "127.5.10".into(),
        "--status".into(),
        status.display().to_string(),
    ];
    let world_args: Vec<&str> = world_args.iter().map(String::as_str).collect();
    let (_world, boot, manifest) = testnet(&world_args, &dir.path().join("manifest.json"));
    let seeders: Vec<String> = manifest["world"]["seeders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();

    // What a perfect crawl stores: every torrent of the world that can be fetched.
    let all: Vec<WorldTorrent> = (0..n).map(|j| world::torrent(SEED, j)).collect();
    let fetchable: HashMap<InfoHash, &WorldTorrent> = all
        .iter()
        .filter(|t| t.fate == Fate::Ok)
        .map(|t| (t.info_hash, t))
        .collect();
    let db = dir.path().join("index.sqlite");
    let db_url = format!("sqlite:{}", db.display());
    let run = Command::new(BIN)
        .args([
            "run",
            "--db",
            &db_url,
            "--bootstrap",
            &boot,
            "--bind",
            "127.5.40.1:0",
        ])
        .args(["--rate", "20000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start run");
    let pid = run.id();
    let mut run = Proc(run);
    let started = Instant::now();
    let mut rss = 0;
    let mut last = (0, Instant::now());
    loop {
        thread::sleep(Duration::from_secs(2));
        rss = rss.max(peak_rss(pid));
        let stored = stored_count(&db);
        let st = world_status(&status);
        if stored as usize >= fetchable.len() && st["sampled"] == n {
            break;
        }
        if stored != last.0 {
            last = (stored, Instant::now());
        }
        assert!(
            run.0.try_wait().unwrap().is_none(),
            "run exited early with {stored} of {} stored",
            fetchable.len()
        );
        assert!(
            started.elapsed() < HANG,
            "after {HANG:?}: {stored} of {} stored; world {st}",
            fetchable.len()
        );
        if last.1.elapsed() > Duration::from_secs(20) {
            eprintln!(
                "{:.0} s: stuck at {stored} of {} for {:.0} s; world {st}",
                started.elapsed().as_secs_f64(),
                fetchable.len(),
                last.1.elapsed().as_secs_f64()
            );
        }
    }
    let took = started.elapsed();
    rss = rss.max(peak_rss(pid));
    // SIGINT: a clean stop that writes what it has.
    sigint(pid);
    let exit = run.0.wait().expect("run exits");
    assert!(exit.success(), "run: {exit}");

    // Every row is a fetchable torrent of the world, stored once, every field right.
    let out = Command::new(BIN)
        .args(["export", "--db", &db_url, "--format", "jsonl"])
        .output()
        .expect("export");
    assert!(out.status.success());
    let mut seen = HashSet::new();
    for line in out.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let row: Value = serde_json::from_slice(line).unwrap();
        let ih = InfoHash::from_hex(row["infohash"].as_str().unwrap()).unwrap();
        assert!(seen.insert(ih), "{ih} stored twice");
        let t = fetchable
            .get(&ih)
            .unwrap_or_else(|| panic!("{ih} is not a fetchable torrent of the world"));
        check_row(&row, t, &seeders);
    }
    assert_eq!(
        seen.len(),
        fetchable.len(),
        "every fetchable torrent stored"
    );
    let st = world_status(&status);
    assert_eq!(st["early_samples"], 0, "samples inside an interval: {st}");
    assert_eq!(st["over_budget"], 0, "datagrams over 25 in 10 s: {st}");
    let bytes = db_bytes_in_use(&db);
    eprintln!(
        "{} torrents in {:.0} s; run peak RSS {:.1} MB; database {} bytes in use, {} per torrent; world {st}",
        seen.len(),
        took.as_secs_f64(),
        rss as f64 / 1e6,
        bytes,
        bytes / seen.len() as u64
    );
    assert!(rss <= MAX_RSS, "run's peak RSS {rss} bytes");
    assert!(
        bytes <= MAX_DB_PER_TORRENT * seen.len() as u64,
        "database: {} bytes per torrent",
        bytes / seen.len() as u64
    );
}

fn sigint(pid: u32) {
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
}
