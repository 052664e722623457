//! `estudely crawl` against real libtorrent (interop/lt_swarm.py): it must find every
//! announced infohash with its seeder, and libtorrent's own packet log must show it was
//! polite: no `sample_infohashes` to one session twice within the advertised 30 s interval,
//! and never more than 20 queries to one session in 10 s. Also over IPv6 (`::1`).
//!
//! Needs python3 with libtorrent's bindings. Loopback only: swarms on 127.0.14.x and
//! 127.0.16.x (+ ::1), the crawler on 127.0.15.1 and ::1. Every wait is bounded; the swarm
//! and the crawler are stopped by Drop guards.

#[path = "common/swarm.rs"]
mod swarm;

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use swarm::Swarm;

const BIN: &str = env!("CARGO_BIN_EXE_estudely");
/// The `interval` the swarm advertises, seconds.
const INTERVAL: f64 = 30.0;

/// Every announced DHT key and the seeder addresses it may be found under.
fn seeders_by_key(swarm: &Swarm, v6: bool) -> BTreeMap<String, BTreeSet<String>> {
    let mut keys = BTreeMap::new();
    for n in swarm.nodes() {
        let listen = n["listen_port"].as_u64().unwrap();
        let seeders: BTreeSet<String> = if v6 {
            // libtorrent announces the listen port, and over IPv6 also its v6 socket's.
            let v6_port = n["ipv6"]["dht_port"].as_u64().unwrap();
            [listen, v6_port].map(|p| format!("[::1]:{p}")).into()
        } else {
            [format!("{}:{listen}", n["ip"].as_str().unwrap())].into()
        };
        for t in n["torrents"].as_array().unwrap() {
            for k in t["dht_keys"].as_array().unwrap() {
                keys.insert(k.as_str().unwrap().to_owned(), seeders.clone());
            }
        }
    }
    keys
}

/// A command line's words.
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// A child process, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A finished crawl: its rows with the time each was printed, and its stderr.
struct Crawl {
    rows: Vec<(Duration, String, String)>,
    stderr: String,
}

impl Crawl {
    /// Why the crawl driver says it stopped (see [`common::stop_reason`]).
    fn stop_reason(&self) -> &str {
        common::stop_reason(&self.stderr)
    }
}

/// Run `estudely crawl ARGS` (peers file in a temp dir), bounded by `limit`.
fn crawl(args: &[&str], limit: Duration) -> Crawl {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("estudely-crawl-lt-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let peers = dir.join("peers.csv");
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .arg("crawl")
        .args(args)
        .arg("--peers-file")
        .arg(&peers)
        .env("RUST_LOG", "warn,estudely::crawl::driver=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let mut proc = Proc(child);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send((started.elapsed(), line));
        }
    });
    let errors = thread::spawn(move || {
        let mut e = String::new();
        let _ = err.read_to_string(&mut e);
        e
    });
    let status = loop {
        if let Some(s) = proc.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < limit,
            "crawl {args:?} outlived {limit:?}"
        );
        thread::sleep(Duration::from_millis(50));
    };
    let stderr = errors.join().unwrap();
    assert!(status.success(), "crawl {args:?}: {stderr}");
    let lines: Vec<(Duration, String)> = rx.try_iter().collect();
    assert_eq!(
        lines.first().map(|l| l.1.as_str()),
        Some("infohash,peer_ip,peer_port")
    );
    let rows = lines[1..]
        .iter()
        .map(|(t, l)| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 3, "{l}");
            let ip: IpAddr = f[1].parse().unwrap();
            let port: u16 = f[2].parse().unwrap();
            (
                *t,
                f[0].to_owned(),
                std::net::SocketAddr::new(ip, port).to_string(),
            )
        })
        .collect();
    let file = std::fs::read_to_string(&peers).unwrap();
    let printed: Vec<&str> = lines.iter().map(|l| l.1.as_str()).collect();
    assert_eq!(
        file.lines().collect::<Vec<_>>(),
        printed,
        "peers file = stdout"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Crawl { rows, stderr }
}

/// Assert every key was found with one of its seeders; returns when the last one was.
fn check_found(keys: &BTreeMap<String, BTreeSet<String>>, c: &Crawl) -> Duration {
    let mut last = Duration::ZERO;
    let mut missing = Vec::new();
    for (key, seeders) in keys {
        let found = c
            .rows
            .iter()
            .filter(|(_, ih, p)| ih == key && seeders.contains(p));
        match found.map(|(t, _, _)| *t).min() {
            Some(t) => last = last.max(t),
            None => missing.push(key),
        }
    }
    assert!(
        missing.is_empty(),
        "not found: {missing:?}\nrows: {:?}\n{}",
        c.rows,
        c.stderr
    );
    let unknown: Vec<_> = c
        .rows
        .iter()
        .filter(|(_, ih, _)| !keys.contains_key(ih))
        .collect();
    assert!(
        unknown.is_empty(),
        "rows for unknown infohashes: {unknown:?}"
    );
    last
}

/// The queries each session received from `ip` (our crawler), by session: (time, method).
fn queries_from(log: &[Value], ip: &str) -> HashMap<u64, Vec<(f64, String)>> {
    packets_from(log, ip, true)
}

/// Every datagram (queries, replies, errors) each session received from `ip`, or only the
/// queries.
fn packets_from(log: &[Value], ip: &str, only_queries: bool) -> HashMap<u64, Vec<(f64, String)>> {
    let mut by_session: HashMap<u64, Vec<(f64, String)>> = HashMap::new();
    for e in log {
        let ours = e["addr"].as_str().is_some_and(|a| a.starts_with(ip));
        let kind_ok = !only_queries || e["y"] == "q";
        if e["kind"] == "pkt" && e["dir"] == "in" && kind_ok && ours {
            let q = e["q"].as_str().unwrap_or_default().to_owned();
            let at = e["t"].as_f64().unwrap();
            by_session
                .entry(e["node"].as_u64().unwrap())
                .or_default()
                .push((at, q));
        }
    }
    by_session
}

#[test]
fn crawl_finds_every_libtorrent_torrent_politely() {
    let mut swarm = Swarm::start(&words(
        "--nodes 16 --base-ip 127.0.14 --torrents-per-node 2 --sample-interval 30 --seconds 150",
    ));
    let keys = seeders_by_key(&swarm, false);
    assert_eq!(keys.len(), 32);
    let n0 = &swarm.nodes()[0];
    let boot = format!("{}:{}", n0["ip"].as_str().unwrap(), n0["dht_port"]);
    let args = format!(
        "--bootstrap {boot} --max-infohashes 0 --overall-timeout 60 --rate 50 --bind 127.0.15.1:0"
    );
    let c = crawl(&words(&args), Duration::from_secs(90));
    let last = check_found(&keys, &c);
    let summary = c.stderr.lines().last().unwrap_or_default();
    eprintln!(
        "libtorrent crawl: all {} keys found after {:.2} s; {summary}",
        keys.len(),
        last.as_secs_f64()
    );
    assert!(summary.starts_with("crawl: 32 infohashes, "), "{summary}");
    // No infohash limit: finding everything did not end it, the overall timeout did.
    assert_eq!(c.stop_reason(), "Timeout", "{}", c.stderr);

    // libtorrent's view of us (the only user of 127.0.15.1).
    let log = swarm.cmd("log");
    let by_session = queries_from(log["log"].as_array().unwrap(), "127.0.15.1:");
    // Every datagram counts (our replies to its queries too): at most 25 in any 10 s,
    // half of what libtorrent's DoS blocker tolerates.
    let packets = packets_from(log["log"].as_array().unwrap(), "127.0.15.1:", false);
    let mut busiest_packets = 0;
    for (session, times) in &packets {
        for (i, (t0, _)) in times.iter().enumerate() {
            let within = times[i..].iter().take_while(|(t, _)| t - t0 < 10.0).count();
            busiest_packets = busiest_packets.max(within);
            assert!(
                within <= 25,
                "session {session}: {within} datagrams from us within 10 s of {t0}"
            );
        }
    }
    eprintln!("at most {busiest_packets} datagrams of any kind to one session in 10 s");
    assert!(
        by_session.len() >= 8,
        "we queried only {} sessions",
        by_session.len()
    );
    let (mut total, mut busiest, mut closest_samples) = (0, 0, f64::INFINITY);
    for (session, queries) in &by_session {
        total += queries.len();
        let samples: Vec<f64> = queries
            .iter()
            .filter(|(_, q)| q == "sample_infohashes")
            .map(|(t, _)| *t)
            .collect();
        for pair in samples.windows(2) {
            let gap = pair[1] - pair[0];
            closest_samples = closest_samples.min(gap);
            assert!(
                gap >= INTERVAL,
                "session {session}: sample_infohashes {gap:.1} s apart"
            );
        }
        for (i, (t0, _)) in queries.iter().enumerate() {
            let within = queries[i..]
                .iter()
                .take_while(|(t, _)| t - t0 < 10.0)
                .count();
            busiest = busiest.max(within);
            assert!(
                within <= 20,
                "session {session}: {within} queries within 10 s of {t0}"
            );
        }
    }
    let mut methods: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, q) in by_session.values().flatten() {
        *methods.entry(q.as_str()).or_default() += 1;
    }
    eprintln!(
        "libtorrent received {total} queries from us: {methods:?} ({:.1} per infohash); \
         at most {busiest} to one session in 10 s; closest two samples to one session: \
         {closest_samples:.1} s apart",
        total as f64 / keys.len() as f64
    );
}

#[test]
fn crawl_over_ipv6_loopback() {
    let swarm = Swarm::start(&words(
        "--nodes 4 --base-ip 127.0.16 --torrents-per-node 1 --ipv6 --sample-interval 30 --seconds 120",
    ));
    let keys = seeders_by_key(&swarm, true);
    assert_eq!(keys.len(), 4);
    let boot = format!("[::1]:{}", swarm.nodes()[0]["ipv6"]["dht_port"]);
    let args = format!(
        "--bootstrap {boot} --max-infohashes 0 --overall-timeout 45 --rate 50 --bind [::1]:0"
    );
    let c = crawl(&words(&args), Duration::from_secs(75));
    let last = check_found(&keys, &c);
    // (`crawl` parsed each peer_ip as a bare IP: `::1`, no brackets.)
    for (_, _, peer) in &c.rows {
        assert!(
            peer.starts_with("[::1]:"),
            "an IPv6-only crawl printed {peer}"
        );
    }
    let summary = c.stderr.lines().last().unwrap_or_default();
    eprintln!(
        "IPv6 crawl: all found after {:.2} s; {summary}",
        last.as_secs_f64()
    );
}
