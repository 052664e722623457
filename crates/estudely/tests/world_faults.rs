//! Faults while `estudely run` ingests an endless world:
//!
//! - `kill -9` at random moments, five times in a row, then a clean run: the index passes
//!   `PRAGMA integrity_check` after every kill, no row committed before a kill is lost, no
//!   torrent is stored twice, nothing committed is fetched again (the world's seeders log
//!   every info dict they serve), and the clean run completes the index;
//! - SQLite on a full disk (a tmpfs of 3 MiB, as root): `run` stops with a one-line error
//!   that names the index and says the disk is full, the index is not corrupted and keeps
//!   every committed row, and a restart after space is freed carries on to the end.
//!
//! Loopback only: worlds on 127.5.60.x and 127.5.70.x (seeders on the next /24); runs on
//! 127.5.80.1 and 127.5.81.1. Time limits only guard against a hang. The full-disk test needs
//! root (to mount a tmpfs) and fails, never skips, without it: CI runs as root.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use estudely::testnet::world::{self, Fate};
use rand::{Rng as _, RngCore as _, SeedableRng as _};

mod common;

use common::{testnet, Proc, BIN};

fn start_world(dir: &Path, n: u64, seed: u64, base: &str) -> (Proc, String) {
    let args = [
        "--world".to_string(),
        n.to_string(),
        "--nodes".into(),
        "100".into(),
        "--interval".into(),
        "5".into(),
        "--seed".into(),
        seed.to_string(),
        "--base-ip".into(),
        base.into(),
        "--served-log".into(),
        dir.join("served.log").display().to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (proc, boot, _) = testnet(&args, &dir.join("manifest.json"));
    (proc, boot)
}

fn fetchable(n: u64, seed: u64) -> usize {
    (0..n).filter(|&j| world::fate(seed, j) == Fate::Ok).count()
}

fn start_run(db: &Path, boot: &str, bind: &str) -> Proc {
    let db_url = format!("sqlite:{}", db.display());
    let _ = std::fs::remove_file(db.with_extension("log"));
    let run = Proc(
        Command::new(BIN)
            .args(["run", "--db", &db_url, "--bootstrap", boot, "--bind", bind])
            // Short leases: a killed run's claims on what it was fetching expire soon
            // (the default, 300 s, is twice the longest fetch).
            .args(["--rate", "5000", "--lease", "20"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // To a file: progress lines would fill a pipe nobody reads during the run.
            .stderr(std::fs::File::create(db.with_extension("log")).expect("run log"))
            .spawn()
            .expect("start run"),
    );
    // Started: it has opened the index (its first line) and watches for Ctrl-C.
    wait_for("run opens the index", || run_log(db).contains("run: index"));
    run
}

/// The infohashes in the index, and `PRAGMA integrity_check`'s verdict.
fn committed(db: &Path) -> (Vec<String>, String) {
    let c = rusqlite::Connection::open(db).expect("open index");
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    let mut stmt = c
        .prepare("SELECT lower(hex(info_hash)) FROM torrents")
        .expect("select");
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .expect("rows")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows");
    (rows, check)
}

fn served(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("served.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Poll until `done`. No time limit of its own: a wait that never ends is a hang, which
/// nextest's `slow-timeout` for this binary (`.config/nextest.toml`) reports and kills.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let mut polls = 0u64;
    while !done() {
        polls += 1;
        if polls.is_multiple_of(120) {
            eprintln!("still waiting: {what}");
        }
        thread::sleep(Duration::from_millis(500));
    }
}

/// Let `run` go on until the index holds `want` torrents, stop it cleanly, and check the
/// index: intact, each torrent once, all of them, `kept` among them. Returns them.
fn run_to_the_end(run: Proc, db: &Path, want: usize, kept: &HashSet<String>) -> HashSet<String> {
    wait_for("the run completes the index", || {
        committed(db).0.len() >= want
    });
    let status = sigint_and_wait(run);
    assert!(status.success(), "run: {status}\n{}", run_log(db));
    let (rows, check) = committed(db);
    assert_eq!(check, "ok");
    let all: HashSet<String> = rows.iter().cloned().collect();
    assert_eq!(all.len(), rows.len(), "a torrent stored twice");
    assert_eq!(all.len(), want, "every fetchable torrent stored");
    assert!(kept.is_subset(&all), "committed rows lost");
    all
}

/// What the last `run` on `db` printed (its stderr goes to `db` with extension `log`).
fn run_log(db: &Path) -> String {
    std::fs::read_to_string(db.with_extension("log")).unwrap_or_default()
}

/// Stop `run` with SIGINT (a clean stop) and return its exit status.
fn sigint_and_wait(mut run: Proc) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-INT", &run.0.id().to_string()])
        .status();
    run.0.wait().expect("run exits")
}

#[test]
fn kill_nine_five_times_then_a_clean_run_loses_and_refetches_nothing_committed() {
    let (n, seed) = (4_000, 21);
    let dir = tempfile::tempdir().unwrap();
    let (_world, boot) = start_world(dir.path(), n, seed, "127.5.60");
    let db = dir.path().join("index.sqlite");
    let test_seed: u64 = std::env::var("ESTUDELY_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rngs::OsRng.next_u64());
    eprintln!("ESTUDELY_TEST_SEED={test_seed}");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(test_seed);
    let mut before: HashSet<String> = HashSet::new();
    // (rows committed at a kill, lines in the served log at that moment)
    let mut marks: Vec<(HashSet<String>, usize)> = Vec::new();
    for kill in 0..5 {
        let mut run = start_run(&db, &boot, "127.5.80.1:0");
        thread::sleep(Duration::from_millis(rng.gen_range(1_500..8_000)));
        run.0.kill().expect("kill -9");
        run.0.wait().expect("reaped");
        let (rows, check) = committed(&db);
        assert_eq!(check, "ok", "integrity_check after kill {kill}");
        let now: HashSet<String> = rows.iter().cloned().collect();
        assert_eq!(
            now.len(),
            rows.len(),
            "a torrent stored twice after kill {kill}"
        );
        let lost: Vec<&String> = before.difference(&now).collect();
        assert!(lost.is_empty(), "kill {kill} lost committed rows: {lost:?}");
        eprintln!("kill {kill}: {} rows committed", now.len());
        marks.push((now.clone(), served(dir.path()).len()));
        before = now;
    }
    // A clean run to the end.
    let want = fetchable(n, seed);
    let run = start_run(&db, &boot, "127.5.80.1:0");
    let all = run_to_the_end(run, &db, want, &before);
    // Nothing committed at a kill was served again after it.
    let log = served(dir.path());
    for (i, (committed, at)) in marks.iter().enumerate() {
        let again: Vec<&String> = log[*at..]
            .iter()
            .filter(|ih| committed.contains(*ih))
            .collect();
        assert!(
            again.is_empty(),
            "fetched again after kill {i} though committed: {:?}",
            &again[..again.len().min(5)]
        );
    }
    eprintln!(
        "{} torrents; {} info dicts served for them ({} fetched twice: in flight at a kill)",
        all.len(),
        log.len(),
        log.len() - log.iter().collect::<HashSet<_>>().len()
    );
}

/// A tmpfs mounted at `dir` of `size`, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "mount a tmpfs at {} (this test needs root)",
            dir.display()
        );
        Tmpfs(dir.to_owned())
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_run_with_a_clear_error_and_a_restart_carries_on() {
    let (n, seed) = (1_500, 22);
    let dir = tempfile::tempdir().unwrap();
    let (_world, boot) = start_world(dir.path(), n, seed, "127.5.70");
    let disk = Tmpfs::mount(&dir.path().join("disk"), "3m");
    let db = disk.0.join("index.sqlite");
    let run = start_run(&db, &boot, "127.5.81.1:0");
    // `run` must notice the full disk and exit; if it never does, nextest's slow-timeout
    // for this binary kills the test as a hang.
    let mut run = run;
    let status = run.0.wait().unwrap();
    let stderr = run_log(&db);
    assert!(!status.success(), "run must fail on a full disk");
    let last = stderr.lines().last().unwrap_or_default();
    eprintln!("run said: {last}");
    assert!(last.starts_with("error: "), "{stderr}");
    assert!(
        last.contains("full"),
        "the error says the disk is full: {last}"
    );
    assert!(
        last.contains("index.sqlite"),
        "the error names the index: {last}"
    );
    let (rows, check) = committed(&db);
    assert_eq!(check, "ok", "integrity_check after the full disk");
    let kept: HashSet<String> = rows.into_iter().collect();
    eprintln!("{} rows committed before the disk filled", kept.len());

    // Space is freed: the next run carries on and completes the index.
    disk.resize("64m");
    let want = fetchable(n, seed);
    let run = start_run(&db, &boot, "127.5.81.1:0");
    run_to_the_end(run, &db, want, &kept);
}
