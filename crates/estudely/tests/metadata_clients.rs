//! `estudely metadata` against real BitTorrent clients other than libtorrent, seeding real
//! data on loopback: Transmission (`transmission-daemon` on 127.0.50.1, driven by
//! `transmission-remote`) and aria2 (`aria2c` on 127.0.51.1). Every field of the JSONL is
//! checked against what libtorrent reads from the .torrent files, and the saved torrents are
//! loaded back by libtorrent with the same info-hash.
//!
//! Needs, besides python3 with libtorrent's bindings (for making the torrents):
//! `apt-get install -y transmission-daemon transmission-cli aria2`. A missing client FAILS
//! the test (CI installs them). The clients run with DHT, LPD, PEX, uTP, port mapping and
//! blocklists off, bound to loopback, and the torrents have no trackers: nothing leaves
//! the machine. Every wait is bounded; every process is killed when its guard drops.

mod metadata_util;

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use metadata_util::clients::{collect, free_port, make_torrents, spawn, Transmission};
use metadata_util::{lt_inspect, run_cli};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);
const READY: Duration = Duration::from_secs(30);

/// Fetch every torrent from `peer` (`ip,port`), and check every field, the summary and the
/// saved torrents. `extra` are further `estudely metadata` options.
fn fetch_and_check(ts: &[Value], peer: &str, client: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("peers.csv");
    let mut csv = String::from("infohash,peer_ip,peer_port\n");
    for t in ts {
        csv += &format!("{},{peer}\n", t["infohash"].as_str().unwrap());
    }
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
    assert!(run.status.success(), "{}", run.stderr);
    eprintln!(
        "{client}: {} in {:?}\n{}",
        run.stderr.trim_end(),
        run.elapsed,
        run.stdout
    );
    assert_eq!(
        run.stderr.trim_end(),
        format!(
            "metadata: {n}/{n} infohashes, {n} attempt{s}: {n} ok",
            n = ts.len(),
            s = if ts.len() == 1 { "" } else { "s" }
        ),
        "{client} stdout:\n{}",
        run.stdout
    );
    let rows: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), ts.len(), "{}", run.stdout);
    let (ip, port) = peer.split_once(',').unwrap();
    for t in ts {
        let key = t["infohash"].as_str().unwrap();
        let row = rows
            .iter()
            .find(|r| r["infohash"] == key)
            .unwrap_or_else(|| panic!("{key} missing from {}", run.stdout));
        let name = t["name"].as_str().unwrap();
        assert_eq!(row["name"], name, "{key}");
        assert_eq!(row["name_hex"], hex::encode(name.as_bytes()), "{key}");
        for f in ["file_count", "total_bytes", "piece_length"] {
            assert_eq!(row[f], t[f], "{key} {f}");
        }
        assert_eq!(row["metadata_size"], t["info_size"], "{key}");
        assert_eq!(row["version"], "v1", "{key}");
        assert_eq!(row["peer"], format!("{ip}:{port}"), "{key}");
        assert!(
            row["client"].as_str().unwrap_or("").contains(client),
            "client should mention {client}: {row}"
        );
        assert_eq!(row["failed"], Value::Array(vec![]), "{row}");
    }

    // libtorrent loads every saved torrent, with the same info-hash and the same numbers.
    let files: Vec<String> = ts
        .iter()
        .map(|t| {
            let p = saved.join(format!("{}.torrent", t["infohash"].as_str().unwrap()));
            assert!(p.is_file(), "{p:?} not saved");
            p.to_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(std::fs::read_dir(&saved).unwrap().count(), ts.len());
    for (lt, t) in lt_inspect(&files).iter().zip(ts) {
        assert!(lt["error"].is_null(), "{lt}");
        for f in [
            "infohash",
            "name",
            "file_count",
            "total_bytes",
            "piece_length",
            "info_size",
        ] {
            assert_eq!(lt[f], t[f], "{} {f}", t["infohash"]);
        }
    }
}

const TR_IP: &str = "127.0.50.1";

#[test]
fn transmission_daemon_serves_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let ts = make_torrents(dir.path());
    let daemon = Transmission::start(dir.path(), TR_IP, &ts, 0);
    let peer_port = daemon.peer_port;
    let peer = format!("{TR_IP},{peer_port}");
    // Both torrents at once with the default concurrency: Transmission 3.00 closes an
    // incoming connection while another from the same IP is open, so this passes only
    // because the fetcher gives each peer one connection at a time.
    fetch_and_check(&ts, &peer, "Transmission", &[]);
    drop(daemon);
}

const ARIA_IP: &str = "127.0.51.1";

#[test]
fn aria2c_serves_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let ts = make_torrents(dir.path());
    let data = ts[0]["data_dir"].as_str().unwrap();
    let port = free_port(ARIA_IP);
    let pid = std::process::id().to_string();
    let mut aria = spawn(
        Command::new("aria2c")
            .args(["--no-conf", "--enable-dht=false", "--enable-dht6=false"])
            .args(["--bt-enable-lpd=false", "--enable-peer-exchange=false"])
            .args(["--disable-ipv6=true", &format!("--interface={ARIA_IP}")])
            .arg(format!("--listen-port={port}"))
            // Existing complete files are seeded only after a hash check: without
            // --check-integrity (even with --bt-seed-unverified) aria2 1.36 reports
            // "Download complete" and exits. --seed-ratio=0.0 alone also exits at once.
            .args(["--check-integrity=true", "--bt-hash-check-seed=true"])
            .args([
                "--seed-time=10",
                "--stop=120",
                &format!("--stop-with-process={pid}"),
            ])
            .args(["--file-allocation=none", "--auto-save-interval=0"])
            .args(["--summary-interval=0", "--console-log-level=notice"])
            .args(["--enable-rpc=false", "--dir", data])
            .args(ts.iter().map(|t| t["file"].as_str().unwrap()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        "aria2c",
    );
    let out = collect(aria.0.stdout.take().unwrap());
    let err = collect(aria.0.stderr.take().unwrap());
    let start = Instant::now();
    loop {
        let (listening, verified) = {
            let lines = out.lock().unwrap();
            let has = |s: &str| lines.iter().filter(|l| l.contains(s)).count();
            (
                has(&format!("listening on TCP port {port}")),
                has("Verification finished successfully"),
            )
        };
        if listening == 1 && verified == ts.len() {
            eprintln!("aria2c seeding after {:?}", start.elapsed());
            break;
        }
        if let Some(status) = aria.0.try_wait().unwrap() {
            panic!(
                "aria2c exited ({status}): {:?} {:?}",
                out.lock().unwrap(),
                err.lock().unwrap()
            );
        }
        assert!(
            start.elapsed() < READY,
            "aria2c not seeding after {READY:?}: {:?} {:?}",
            out.lock().unwrap(),
            err.lock().unwrap()
        );
        thread::sleep(Duration::from_millis(100));
    }
    let peer = format!("{ARIA_IP},{port}");
    fetch_and_check(&ts, &peer, "aria2", &[]);
    drop(aria);
}
