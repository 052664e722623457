//! Many crawlers, one index: four `estudely run --shard K/4` processes, each on its own
//! 127.x address, crawl one endless loopback world (`estudely testnet --world N`) into one
//! PostgreSQL index (a throwaway server) until it holds [`TARGET`] torrents. Then:
//!
//! - no torrent was fetched twice: the four runs' fetch counts add up to the rows stored,
//!   and the world's `--served-log` (a line per connection its seeders served) names an
//!   infohash again only as often as an attempt failed after reaching a seeder;
//! - every stored torrent is stored once, every field as the world made it;
//! - no deadlock or serialization failure, in the runs' logs or the server's (a write
//!   that hits one is retried), and all four exit 0 on SIGINT.
//!
//! The world gives each torrent to the nodes of one shard, so sharded crawlers never want
//! the same torrent. The same four without `--shard`, on a small world whose nodes start
//! their lists over within seconds, all meet every torrent: the same checks then hold
//! through the leases alone.
//!
//! And, against the store itself, the race a sharded index meets at full rate: a crawler
//! claims an infohash at the moment another commits it (the torrent and the release of its
//! lease in one transaction). The claim must be refused, not granted for a second fetch.
//!
//! Loopback only: the world on 127.6.10.x-127.6.11.x (seeders after them), the runs on
//! 127.6.40.1-4. Waits poll with no clock of their own (nextest's slow-timeout catches a
//! hang).

#[path = "common/pg.rs"]
mod pg;

mod common;

#[path = "common/world_rows.rs"]
mod world_rows;

use std::collections::{HashMap, HashSet};
use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use estudely::store::postgres::PgStore;
use estudely::store::{Batch, Classifier, Source, Store, Torrent};
use estudely::testnet::world::{self, Fate, WorldTorrent};
use estudely_krpc::InfoHash;
use estudely_peer_wire::{FileEntry, Version};
use serde_json::Value;

use common::{testnet, Proc, BIN};
use pg::PgServer;

const SEED: u64 = 31;
/// Torrents in the world: enough that four crawlers do not run it dry before [`TARGET`].
const WORLD: u64 = 6_000;
/// Torrents stored when the runs are stopped.
const TARGET: u64 = 2_000;

/// One `run --shard K/4`, its stderr in a file.
struct Run {
    proc: Proc,
    log: std::path::PathBuf,
}

fn start_run(db: &str, boot: &str, shard: Option<&str>, bind: &str, log: &Path) -> Run {
    let out = std::fs::File::create(log).unwrap();
    let child = Command::new(BIN)
        .args(["run", "--db", db, "--bootstrap", boot, "--bind", bind])
        .args(shard.map(|s| ["--shard", s]).into_iter().flatten())
        .args(["--rate", "5000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .expect("start run");
    Run {
        proc: Proc(child),
        log: log.to_owned(),
    }
}

fn stored_count(client: &mut postgres::Client) -> u64 {
    client
        .query_one("SELECT count(*) FROM torrents", &[])
        .map_or(0, |r| r.get::<_, i64>(0) as u64)
}

/// Infohashes whose metadata a run fetched, from its summary (`metadata N/M infohashes`).
fn fetched(log: &str) -> u64 {
    let line = log
        .lines()
        .rfind(|l| l.starts_with("run: ") && l.contains(" stored"))
        .unwrap_or_else(|| panic!("no summary:\n{log}"));
    let after = line.split("metadata ").nth(1).expect("metadata in summary");
    after.split('/').next().unwrap().parse().expect("a count")
}

/// Fetch attempts that failed after reaching a peer (timed out, closed, ...), from a run's
/// summary (`attempts: N ok, R refused, T timeout, ...`): each may have had the info dict
/// served before it failed, and then again to the next attempt. Refusals never reach the
/// handshake.
fn failed_after_connect(log: &str) -> u64 {
    let line = log
        .lines()
        .rfind(|l| l.starts_with("run: ") && l.contains(" stored"))
        .unwrap_or_else(|| panic!("no summary:\n{log}"));
    assert!(line.contains(" attempt"), "attempts in summary: {line}");
    // A run that fetched nothing says `0 attempts;`, with no list of outcomes; one that
    // made a single attempt says `1 attempt: 1 ok`.
    let Some(attempts) = line
        .split(" attempts: ")
        .nth(1)
        .or_else(|| line.split(" attempt: ").nth(1))
    else {
        return 0;
    };
    let attempts = attempts.split(';').next().unwrap();
    attempts
        .split(", ")
        .filter_map(|part| {
            let (n, kind) = part.trim().split_once(' ')?;
            let n: u64 = n.parse().ok()?;
            let refused = ["ok", "refused", "refused_recently", "address_refused"];
            (!refused.contains(&kind)).then_some(n)
        })
        .sum()
}

/// The summary parser on the three shapes a run's summary takes: no attempt, one, many.
#[test]
fn failed_attempts_are_read_from_every_shape_of_summary() {
    let run = |tail: &str| format!("run: 9 infohashes, 1 stored, {tail}; index: 1 transactions");
    assert_eq!(failed_after_connect(&run("0 attempts")), 0);
    assert_eq!(failed_after_connect(&run("1 attempt: 1 ok")), 0);
    assert_eq!(failed_after_connect(&run("1 attempt: 1 timeout")), 1);
    assert_eq!(
        failed_after_connect(&run("7 attempts: 4 ok, 1 refused, 2 timeout")),
        2
    );
}

/// What four runs did, from their summaries.
#[derive(Debug, Default)]
struct Summary {
    /// Claims refused (stored already, or another crawler's lease).
    claims_refused: u64,
    /// Infohashes dropped as stored by another crawler, or known.
    known_elsewhere: u64,
}

/// The count before `word` in `line` (`12 claims refused` -> 12 for ` claims refused`).
fn count_before(line: &str, word: &str) -> u64 {
    let before = line
        .split(word)
        .next()
        .unwrap_or_else(|| panic!("no `{word}` in {line}"));
    before.rsplit([' ', ',']).next().unwrap().parse().unwrap()
}

#[test]
fn four_sharded_crawlers_on_one_world_and_one_index_fetch_nothing_twice() {
    let s = four_runs(true, WORLD, 400, Some(TARGET));
    // The world gives each torrent to the nodes of one shard: nothing to contend for.
    eprintln!("{s:?}");
}

/// Four runs without shards on a small world whose nodes start their lists over within
/// seconds: every crawler meets the torrents the others fetched, and only the leases (and
/// the index's answers) keep it from fetching them again. Until nine tenths of the
/// fetchable torrents are stored.
#[test]
fn four_unsharded_crawlers_contend_for_every_torrent_and_fetch_each_once() {
    let s = four_runs(false, 1_500, 100, None);
    assert!(
        s.claims_refused + s.known_elsewhere > 0,
        "the crawlers met each other's torrents: {s:?}"
    );
}

/// Four `run` (`--shard K/4` when `sharded`) on a world of `n` torrents and `nodes` nodes
/// into one index, until it holds `target` torrents (nine tenths of the fetchable ones
/// when `None`), then SIGINT; check everything the file's doc says.
fn four_runs(sharded: bool, n: u64, nodes: u32, target: Option<u64>) -> Summary {
    let server = PgServer::start();
    let conn = server.database();
    let db = format!("postgres:{conn}");
    let dir = tempfile::tempdir().unwrap();
    let served_log = dir.path().join("served.log");
    let world_args = [
        "--world".to_string(),
        n.to_string(),
        "--nodes".into(),
        nodes.to_string(),
        "--interval".into(),
        "10".into(),
        "--seed".into(),
        SEED.to_string(),
        "--base-ip".into(),
        "127.6.10".into(),
        "--served-log".into(),
        served_log.display().to_string(),
    ];
    let world_args: Vec<&str> = world_args.iter().map(String::as_str).collect();
    let (_world, boot, _manifest) = testnet(&world_args, &dir.path().join("manifest.json"));
    let fetchable: HashMap<InfoHash, WorldTorrent> = (0..n)
        .map(|j| world::torrent(SEED, j))
        .filter(|t| t.fate == Fate::Ok)
        .map(|t| (t.info_hash, t))
        .collect();
    // Not every one: a torrent whose fetch failed (a time-out on a loaded machine) is not
    // fetched again before the crawlers' seen-sets start over.
    let target = target.unwrap_or(fetchable.len() as u64 * 9 / 10);
    assert!(fetchable.len() as u64 >= target, "a world big enough");

    // The schema first, so that four first starts do not race to create it.
    drop(PgStore::connect(&conn).expect("create the index"));
    let mut runs: Vec<Run> = (1..=4)
        .map(|k| {
            let (shard, bind) = (format!("{k}/4"), format!("127.6.40.{k}:0"));
            let log = dir.path().join(format!("run-{k}.log"));
            start_run(&db, &boot, sharded.then_some(&*shard), &bind, &log)
        })
        .collect();
    let mut client = postgres::Client::connect(&conn, postgres::NoTls).unwrap();
    let started = Instant::now();
    let mut polls = 0u64;
    loop {
        let n = stored_count(&mut client);
        if n >= target {
            break;
        }
        for (k, r) in runs.iter_mut().enumerate() {
            // A run that stopped by itself is a failure; its log says why.
            if let Some(status) = r.proc.0.try_wait().unwrap() {
                let log = std::fs::read_to_string(&r.log).unwrap_or_default();
                panic!("run {} stopped ({status}) at {n} stored:\n{log}", k + 1);
            }
        }
        polls += 1;
        if polls.is_multiple_of(20) {
            eprintln!(
                "{:.0} s: {n} of {target} stored",
                started.elapsed().as_secs_f64()
            );
        }
        thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "{target} stored in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    // SIGINT to all four at once: each commits what it has and exits 0.
    for r in &runs {
        let _ = Command::new("kill")
            .args(["-INT", &r.proc.0.id().to_string()])
            .status();
    }
    let (mut total_fetched, mut failed) = (0, 0);
    let mut summary = Summary::default();
    for (k, mut r) in runs.into_iter().enumerate() {
        let status = r.proc.0.wait().expect("run exits");
        let mut log = String::new();
        std::fs::File::open(&r.log)
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        eprintln!("run {}:\n{log}", k + 1);
        assert!(status.success(), "run {}: {status}\n{log}", k + 1);
        let lower = log.to_ascii_lowercase();
        assert!(
            !lower.contains("deadlock") && !lower.contains("could not serialize"),
            "run {}: {log}",
            k + 1
        );
        total_fetched += fetched(&log);
        failed += failed_after_connect(&log);
        let line = log
            .lines()
            .rfind(|l| l.starts_with("run: ") && l.contains(" stored"))
            .unwrap();
        summary.claims_refused += count_before(line, " claims refused");
        summary.known_elsewhere += count_before(line, " known or fetched elsewhere");
    }

    // Nor in the server's log: a write that hit one is retried without a word from `run`.
    let log = server.log();
    for bad in ["deadlock detected", "could not serialize"] {
        assert!(!log.contains(bad), "the server's log:\n{log}");
    }

    // The index: every row a fetchable torrent of the world, once, every field right.
    let out = Command::new(BIN)
        .args(["export", "--db", &db, "--format", "jsonl"])
        .output()
        .expect("export");
    assert!(out.status.success());
    let mut stored = HashSet::new();
    for line in out.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let row: Value = serde_json::from_slice(line).unwrap();
        let ih = InfoHash::from_hex(row["infohash"].as_str().unwrap()).unwrap();
        assert!(stored.insert(ih), "{ih} stored twice");
        let t = fetchable
            .get(&ih)
            .unwrap_or_else(|| panic!("{ih} is not a fetchable torrent of the world"));
        world_rows::check_row(&row, t);
    }
    assert!(stored.len() as u64 >= target);
    assert_eq!(stored.len() as u64, stored_count(&mut client));

    // Fetched once each, by the runs' count: a torrent two crawlers fetched is counted by
    // both and stored once.
    assert_eq!(
        total_fetched,
        stored.len() as u64,
        "the runs' fetches add up to the rows stored"
    );
    // And by the world's: an info dict is handed out once per connection that names it, so
    // one served twice is a second fetch, unless an attempt failed after its handshake (a
    // time-out under load) and the torrent was fetched again from its next peer.
    let served: Vec<String> = std::fs::read_to_string(&served_log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let distinct: HashSet<&String> = served.iter().collect();
    let twice = served.len() - distinct.len();
    eprintln!(
        "{} stored; {} info dicts served, {} distinct, {twice} again; the runs fetched \
         {total_fetched}, {failed} attempts failed after reaching a peer",
        stored.len(),
        served.len(),
        distinct.len()
    );
    assert!(
        twice as u64 <= failed,
        "{twice} info dicts served again, only {failed} failed attempts to explain them"
    );
    summary
}

fn key(i: u32) -> InfoHash {
    let mut k = [0u8; 20];
    k[..4].copy_from_slice(&i.to_be_bytes());
    k[19] = 0x44;
    InfoHash(k)
}

fn torrent(i: u32) -> Torrent {
    let mut t = Torrent {
        info_hash: key(i),
        info_hash_v2: None,
        name: format!("race {i}").into_bytes(),
        total_bytes: 1_000,
        piece_length: 16_384,
        file_count: 1,
        private: false,
        version: Version::V1,
        files: vec![FileEntry {
            path: vec![b"race.bin".to_vec()],
            length: 1_000,
        }],
        discovered: 1_700_000_000,
        source: Source::Sample,
        seeds_estimate: None,
        peers_estimate: None,
        category: None,
        release: None,
    };
    t.classify(&Classifier::default());
    t
}

/// Crawler `a` holds the lease on X and commits X with the release of its lease, as `run`
/// does (one transaction); crawler `b` claims X while that transaction is in flight. `b`'s
/// claim waits for it (the lease row is being deleted) and, once it commits, must see X
/// stored and refuse: a grant here is a second fetch of a torrent already stored.
///
/// The commit is held open by hand (the same statements as the store's write, on a
/// client of the test's) until `b`'s claim is seen waiting on a lock: no timing involved.
#[test]
fn a_claim_racing_the_commit_of_its_torrent_is_refused() {
    let url = PgServer::shared().database();
    let mut a = PgStore::connect(&url).expect("a");
    let mut b = PgStore::connect(&url).expect("b");
    let lease = Duration::from_secs(600);
    let x = key(1);
    assert!(a.claim(&x, "a", lease).unwrap(), "a takes the lease");
    // A stored torrent to become X inside the open transaction.
    a.write(
        "a",
        &Batch {
            torrents: vec![torrent(2)],
            ..Batch::default()
        },
    )
    .unwrap();
    let mut commit = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut tx = commit.transaction().unwrap();
    tx.execute(
        "UPDATE torrents SET info_hash = $1 WHERE info_hash = $2",
        &[&&x.0[..], &&key(2).0[..]],
    )
    .unwrap();
    tx.execute(
        "DELETE FROM leases WHERE owner = 'a' AND info_hash = $1",
        &[&&x.0[..]],
    )
    .unwrap();
    let claim = thread::spawn(move || b.claim(&x, "b", lease).unwrap());
    // Wait until b's claim waits for the transaction (a lock wait on the lease row).
    let mut watch = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    loop {
        let waiting: i64 = watch
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO leases%'",
                &[],
            )
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(
            !claim.is_finished(),
            "b's claim did not wait for the commit"
        );
        thread::sleep(Duration::from_millis(10));
    }
    tx.commit().unwrap();
    let granted = claim.join().unwrap();
    assert!(a.contains(&x).unwrap(), "X is stored");
    assert!(
        !granted,
        "b was granted X, stored a moment before: a second fetch"
    );
    // And b holds no lease on it.
    let leases: i64 = watch
        .query_one(
            "SELECT count(*) FROM leases WHERE info_hash = $1",
            &[&&x.0[..]],
        )
        .unwrap()
        .get(0);
    assert_eq!(leases, 0, "no lease left on a stored torrent");
}
