//! The PostgreSQL server restarted under load (issue 21, part 6):
//!
//! - `estudely run` ingesting an endless world (`estudely testnet --world N`) into
//!   PostgreSQL keeps crawling while the server is stopped (`pg_ctl stop -m fast`) and
//!   started again: it does not exit, holds what it fetched meanwhile, reconnects by itself
//!   and goes on; in the end every stored row is a fetchable torrent of the world, stored
//!   once, every field as the world made it, and the count its summary gives is the count
//!   of rows (nothing it fetched was lost);
//! - `estudely serve` answers 503 while the server is away (the API with a JSON error,
//!   pages with a short HTML page, `/readyz` too; `/healthz` stays 200), and 200 again once
//!   it is back, without being restarted; after a restart no request saw, the first
//!   request is answered (the dead idle connections are not used).
//!
//! The servers are throwaway ones from `scripts/pg-test-server` (unix socket only). They
//! are started without the script's watchdog, which would delete a stopped server's
//! directory, and stopped and removed when the test ends, or by a watchdog of their own
//! once the test process is gone. Loopback only: the world on 127.5.90.x (seeders on
//! 127.5.91.x), `run` on 127.5.92.1, `serve` on 127.5.93.1. Time limits only guard against
//! a hang; the waits have none of their own (nextest's slow-timeout stops a hang).

mod common;

#[path = "common/world_rows.rs"]
mod world_rows;

use std::collections::{HashMap, HashSet};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use estudely::testnet::world::{self, Fate, WorldTorrent};
use estudely_krpc::InfoHash;
use serde_json::Value;

use common::{testnet, Proc, BIN};

const SEED: u64 = 31;
/// Large enough that the crawl is still going on while the server is away.
const WORLD: u64 = 10_000;
/// Torrents stored when the server is stopped.
const BEFORE: i64 = 1;
/// Leases out (fetches claimed, not written yet) when the server is stopped.
const LEASES: i64 = 300;
/// Torrents stored before `run` is stopped.
const TARGET: i64 = 1_000;
/// `run`'s DHT node (a port of its own, to be pinged).
const RUN_NODE: &str = "127.5.92.1:16892";
/// `run`'s metrics.
const RUN_METRICS: &str = "127.5.92.1:16893";
/// Requests held (torrents fetched) while the server is away before it is started again:
/// fewer than the fetches claimed before it went away ([`LEASES`]), since no new fetch
/// starts meanwhile.
const HELD: u64 = 100;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-test-server")
}

/// A throwaway server that can be stopped and started again with its data.
struct Server {
    dir: PathBuf,
    url: String,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::Builder::new()
            .prefix("estudely-pg")
            .tempdir_in("/tmp")
            .expect("a temporary directory")
            .keep();
        let url = Server::pg(&dir, "start");
        assert!(url.starts_with("host="), "{url}");
        // Our own watchdog, in a session of its own: should this test be killed (a hang
        // stopped by nextest), the server is stopped and its directory removed.
        let watch = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; bash '{script}' stop '{dir}'; \
             rm -rf '{dir}'",
            pid = std::process::id(),
            script = script().display(),
            dir = dir.display()
        );
        let forked = Command::new("setsid")
            .args(["-f", "bash", "-c", &watch])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("start the watchdog");
        assert!(forked.success());
        Server { dir, url }
    }

    /// `scripts/pg-test-server MODE DIR`; its stdout.
    fn pg(dir: &Path, mode: &str) -> String {
        let out = Command::new("bash")
            .arg(script())
            .arg(mode)
            .arg(dir)
            .output()
            .expect("run scripts/pg-test-server");
        assert!(
            out.status.success(),
            "pg-test-server {mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A fast shutdown: sessions are ended, the server stops.
    fn stop(&self) {
        Server::pg(&self.dir, "stop");
    }

    /// Start it again on the same data.
    fn restart(&self) {
        let url = Server::pg(&self.dir, "start");
        assert_eq!(url, self.url);
    }

    fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect to the server")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn stored(server: &Server) -> i64 {
    match postgres::Client::connect(&server.url, postgres::NoTls) {
        Ok(mut c) => c
            .query_one("SELECT count(*) FROM torrents", &[])
            .map_or(0, |r| r.get(0)),
        // Before `run` made the schema, or while the server restarts.
        Err(_) => 0,
    }
}

/// Leases out: infohashes claimed for a fetch and not written yet.
fn leases(server: &Server) -> i64 {
    postgres::Client::connect(&server.url, postgres::NoTls)
        .and_then(|mut c| c.query_one("SELECT count(*) FROM leases", &[]))
        .map_or(0, |r| r.get(0))
}

/// Poll until `done`, every half second.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let mut polls = 0u64;
    while !done() {
        polls += 1;
        if polls.is_multiple_of(600) {
            eprintln!("still waiting: {what}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// `estudely_store_held` from `run`'s metrics.
fn held(metrics: SocketAddr) -> u64 {
    let (status, _, body) = get(metrics, "/metrics");
    assert_eq!(status, 200);
    body.lines()
        .find_map(|l| l.strip_prefix("estudely_store_held "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Send a KRPC `ping` to `node` and wait for its answer (the read time limit only guards
/// against a hang). The node may query us first (it pings new contacts): skipped.
fn ping(node: SocketAddr) {
    let sock = std::net::UdpSocket::bind("127.5.92.2:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let query = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:pp1:y1:qe";
    sock.send_to(query, node).unwrap();
    let mut buf = [0u8; 1500];
    loop {
        let (n, from) = sock
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("no answer to a ping from run's node {node}: {e}"));
        let got = &buf[..n];
        let answer =
            got.windows(6).any(|w| w == b"1:y1:r") && got.windows(7).any(|w| w == b"1:t2:pp");
        if from == node && answer {
            return;
        }
    }
}

/// The count of torrents `run`'s summary says it stored (`..., N stored, ...`).
fn summary_stored(log: &str) -> u64 {
    let line = log
        .lines()
        .rfind(|l| l.starts_with("run: ") && l.contains(" stored, "))
        .unwrap_or_else(|| panic!("no summary:\n{log}"));
    let before = line.split(" stored, ").next().unwrap();
    before.rsplit(' ').next().unwrap().parse().expect("a count")
}

#[test]
fn run_goes_on_through_a_postgres_restart_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start();
    let args = [
        "--world".to_string(),
        WORLD.to_string(),
        "--nodes".into(),
        "100".into(),
        "--interval".into(),
        "5".into(),
        "--seed".into(),
        SEED.to_string(),
        "--base-ip".into(),
        "127.5.90".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_world, boot, _) = testnet(&args, &dir.path().join("manifest.json"));
    let fetchable: HashMap<InfoHash, WorldTorrent> = (0..WORLD)
        .map(|j| world::torrent(SEED, j))
        .filter(|t| t.fate == Fate::Ok)
        .map(|t| (t.info_hash, t))
        .collect();

    let db = format!("postgres:{}", server.url);
    let log = dir.path().join("run.log");
    let mut run = Proc(
        Command::new(BIN)
            .args(["run", "--db", &db, "--bootstrap", &boot])
            .args(["--bind", RUN_NODE, "--rate", "5000", "--lease", "20"])
            .args(["--metrics", RUN_METRICS])
            // Few fetches at a time: on loopback fetches are quicker than the debug build's
            // writes, and a backlog of claimed fetches is what a real crawl has when its
            // server goes away (its fetches take seconds).
            .args(["--concurrency", "4"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // To a file: progress lines would fill a pipe nobody reads during the run.
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start run"),
    );
    let run_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let alive = |run: &mut Proc| {
        let status = run.0.try_wait().unwrap();
        assert!(status.is_none(), "run exited: {status:?}\n{}", run_log());
    };

    // Stopped while fetches are under way: the first torrents are stored and claims (the
    // leases of fetches in flight or waiting) are out.
    wait_for("the first torrents stored, fetches under way", || {
        stored(&server) >= BEFORE && leases(&server) >= LEASES
    });
    alive(&mut run);
    server.stop();
    let before = stored(&server);
    assert_eq!(before, 0, "the server is stopped");
    // Away for a while, as a restart under load is: run goes on crawling meanwhile.
    wait_for("run notices", || {
        alive(&mut run);
        run_log().contains("index unavailable")
    });
    // Meanwhile it goes on fetching and holds what it fetched, and its DHT node answers
    // queries (politeness): the crawl's thread never waits for the index.
    let mut pinged: Option<Instant> = None;
    wait_for("requests held while the server is away", || {
        alive(&mut run);
        // Every 2 s: the node's per-address budget would drop a flood of pings.
        if pinged.is_none_or(|at| at.elapsed() >= Duration::from_secs(2)) {
            ping(RUN_NODE.parse().unwrap());
            pinged = Some(Instant::now());
        }
        held(RUN_METRICS.parse().unwrap()) >= HELD
    });
    alive(&mut run);
    server.restart();
    wait_for("the target count stored", || {
        alive(&mut run);
        stored(&server) >= TARGET
    });
    wait_for("run says the index is back", || {
        run_log().contains("index back after")
    });
    alive(&mut run);
    let _ = Command::new("kill")
        .args(["-INT", &run.0.id().to_string()])
        .status();
    let exit = run.0.wait().expect("run exits");
    let log = run_log();
    assert!(exit.success(), "run: {exit}\n{log}");
    eprintln!(
        "{}",
        log.lines()
            .filter(|l| l.contains("index") || l.starts_with("run: "))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Every row is a fetchable torrent of the world, stored once, every field right.
    let out = Command::new(BIN)
        .args(["export", "--db", &db, "--format", "jsonl"])
        .output()
        .expect("export");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut seen = HashSet::new();
    for line in out.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let row: Value = serde_json::from_slice(line).unwrap();
        let ih = InfoHash::from_hex(row["infohash"].as_str().unwrap()).unwrap();
        assert!(seen.insert(ih), "{ih} stored twice");
        let t = fetchable
            .get(&ih)
            .unwrap_or_else(|| panic!("{ih} is not a fetchable torrent of the world"));
        world_rows::check_row(&row, t);
    }
    let rows: i64 = server
        .client()
        .query_one("SELECT count(*) FROM torrents", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows as usize, seen.len());
    assert_eq!(
        summary_stored(&log),
        rows as u64,
        "the summary's count is the rows'"
    );
    assert!(log.contains("index unavailable 1 time"), "{log}");
    // The crawl went on while the server was away: what it fetched then was held.
    let held: u64 = log
        .split("held at most ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no `held at most` in the summary:\n{log}"));
    assert!(
        held >= HELD,
        "held while the server was away: {held}\n{log}"
    );
}

/// `GET path` from `addr`: (status, content type, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to serve");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let kind = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, kind, body.to_owned())
}

#[test]
fn serve_answers_503_while_postgres_is_away_and_recovers_by_itself() {
    let server = Server::start();
    {
        let mut store = estudely_store::postgres::PgStore::connect(&server.url).unwrap();
        let batch = estudely_store::Batch {
            torrents: vec![estudely_store::sqlite::fixtures::torrent(
                1,
                b"restart-proof",
                1_700_000_000,
            )],
            ..Default::default()
        };
        estudely_store::Store::write(&mut store, "test", &batch).unwrap();
    }
    let db = format!("postgres:{}", server.url);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let mut serve = Proc(
        Command::new(BIN)
            .args(["serve", "--db", &db, "--listen", "127.5.93.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start serve"),
    );
    let serve_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut addr = None;
    wait_for("serve listens", || {
        addr = serve_log()
            .split("web UI at http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next()?.parse::<SocketAddr>().ok());
        addr.is_some()
    });
    let addr = addr.unwrap();
    let api = "/api/v1/search?q=restart";
    let page = "/search?q=restart";
    let found = |body: &str| body.contains("restart-proof");

    let (status, _, body) = get(addr, api);
    assert_eq!(status, 200, "{body}");
    assert!(found(&body), "{body}");
    assert_eq!(get(addr, page).0, 200);
    assert_eq!(get(addr, "/readyz").0, 200);

    server.stop();
    for path in [
        api,
        "/api/v1/torrents/0101010101010101010101010101010101010101",
    ] {
        let started = Instant::now();
        let (status, kind, body) = get(addr, path);
        eprintln!("{path} while away: {status} in {:?}", started.elapsed());
        assert_eq!(status, 503, "{path}: {body}");
        assert!(kind.starts_with("application/json"), "{path}: {kind}");
        let v: Value = serde_json::from_str(&body).expect("a JSON error");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    }
    for path in [page, "/recent"] {
        let (status, kind, body) = get(addr, path);
        assert_eq!(status, 503, "{path}: {body}");
        assert!(kind.starts_with("text/html"), "{path}: {kind}");
        assert!(body.contains("Index unavailable"), "{path}: {body}");
    }
    assert_eq!(get(addr, "/readyz").0, 503);
    assert_eq!(get(addr, "/healthz").0, 200);

    server.restart();
    // Back: 200 again, from the same process.
    wait_for("serve answers again", || get(addr, api).0 == 200);
    let (_, _, body) = get(addr, api);
    assert!(found(&body), "{body}");
    assert_eq!(get(addr, page).0, 200);
    assert_eq!(get(addr, "/readyz").0, 200);

    // A restart that no request saw: the idle connections died meanwhile, and are found
    // dead before use (they are checked once idle for a second), so the first request
    // after it is answered.
    server.stop();
    server.restart();
    thread::sleep(Duration::from_millis(1_500));
    let (status, _, body) = get(addr, api);
    assert_eq!(status, 200, "the first request after a restart: {body}");
    assert!(found(&body), "{body}");
    assert!(
        serve.0.try_wait().unwrap().is_none(),
        "serve exited:\n{}",
        serve_log()
    );
}
