//! Real BitTorrent clients as seeders for the `metadata_*` tests: the torrents
//! `interop/clients.py` makes, child processes with bounded waits, and a Transmission daemon
//! seeding them (plaintext tolerated, or encryption required).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Guard, INTEROP};

/// Polls of the Transmission RPC before giving up on the daemon (each a
/// `transmission-remote` run plus a 250 ms pause): a hang guard, not a timing assertion.
const READY_POLLS: usize = 240;

/// `python3 interop/clients.py make DIR`: the data, the .torrent files, and libtorrent's
/// description of each (a single-file and a multi-file v1 torrent).
pub fn make_torrents(dir: &Path) -> Vec<Value> {
    let out = Command::new("python3")
        .arg(format!("{INTEROP}/clients.py"))
        .arg("make")
        .arg(dir)
        .output()
        .expect("python3 must be installed");
    assert!(
        out.status.success(),
        "clients.py make: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ts: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ts.len(), 2);
    assert_eq!(ts[0]["name"], "single.bin");
    assert_eq!(ts[1]["name"], "Ünïcødé multi");
    assert_eq!(
        (&ts[1]["file_count"], &ts[1]["pad_files"]),
        (&3.into(), &0.into())
    );
    ts
}

/// A TCP port free on `ip` right now.
pub fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Spawn a client binary, failing with the apt line when it is not installed.
pub fn spawn(cmd: &mut Command, what: &str) -> Guard {
    match cmd.spawn() {
        Ok(c) => Guard(c),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "{what} not found: install the clients with \
             `apt-get install -y transmission-daemon transmission-cli aria2`"
        ),
        Err(e) => panic!("spawn {what}: {e}"),
    }
}

/// Run a short command, killed after `limit` (a hang guard): (success, stdout + stderr).
pub fn output(cmd: &mut Command, what: &str, limit: Duration) -> (bool, String) {
    let mut g = spawn(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        what,
    );
    let out = collect(g.0.stdout.take().unwrap());
    let err = collect(g.0.stderr.take().unwrap());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = g.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < limit,
            "{what} still running after {limit:?}"
        );
        thread::sleep(Duration::from_millis(20));
    };
    // The readers finish at EOF, right after the exit.
    thread::sleep(Duration::from_millis(50));
    let text = [out, err].map(|l| l.lock().unwrap().join("\n")).join("\n");
    (status.success(), text)
}

/// Lines a child prints, collected by a thread of their own.
pub fn collect(r: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = Arc::clone(&lines);
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            l.lock().unwrap().push(line);
        }
    });
    lines
}

/// `transmission-remote RPC ARGS...`, killed after 10 s: (success, stdout + stderr).
pub fn transmission_remote(rpc: &str, args: &[&str]) -> (bool, String) {
    output(
        Command::new("transmission-remote").arg(rpc).args(args),
        "transmission-remote",
        Duration::from_secs(10),
    )
}

/// A `transmission-daemon` seeding torrents on one IP, killed when dropped.
pub struct Transmission {
    /// Its BitTorrent port.
    pub peer_port: u16,
    daemon: Guard,
}

impl Transmission {
    /// Start it on `ip` with its config under `dir`, seeding `ts` (from [`make_torrents`]),
    /// with `encryption` 0 (plaintext preferred, encryption tolerated) or 2 (required), and
    /// wait until every torrent is verified and seeding.
    pub fn start(dir: &Path, ip: &str, ts: &[Value], encryption: u8) -> Transmission {
        let data = ts[0]["data_dir"].as_str().unwrap();
        let config = dir.join("transmission");
        std::fs::create_dir(&config).unwrap();
        let (rpc_port, peer_port) = (free_port(ip), free_port(ip));
        // What the command line cannot say (PEX, blocklist, IPv6 bind, RPC whitelists, ratio
        // and idle limits), said before the daemon reads its settings.
        let settings = serde_json::json!({
            "dht-enabled": false,
            "lpd-enabled": false,
            "pex-enabled": false,
            "utp-enabled": false,
            "port-forwarding-enabled": false,
            "blocklist-enabled": false,
            "encryption": encryption,
            "bind-address-ipv4": ip,
            "bind-address-ipv6": "::1",
            "rpc-bind-address": ip,
            "rpc-port": rpc_port,
            "rpc-authentication-required": false,
            "rpc-whitelist-enabled": false,
            "rpc-host-whitelist-enabled": false,
            "peer-port": peer_port,
            "peer-port-random-on-start": false,
            "ratio-limit-enabled": false,
            "idle-seeding-limit-enabled": false,
            "start-added-torrents": true,
            "download-dir": data,
            "watch-dir-enabled": false,
            "incomplete-dir-enabled": false,
        });
        std::fs::write(config.join("settings.json"), settings.to_string()).unwrap();
        let enc_flag = if encryption == 2 {
            "--encryption-required"
        } else {
            "--encryption-tolerated"
        };
        let (rpc_s, peer_s) = (rpc_port.to_string(), peer_port.to_string());
        let mut daemon = spawn(
            Command::new("transmission-daemon")
                .args(["--foreground", "--config-dir"])
                .arg(&config)
                .args(["--rpc-bind-address", ip, "--port", &rpc_s])
                .args(["--peerport", &peer_s, "--bind-address-ipv4", ip])
                .args([
                    "--no-auth",
                    "--no-dht",
                    "--no-lpd",
                    "--no-utp",
                    "--no-portmap",
                ])
                .args(["--no-blocklist", enc_flag, "--no-watch-dir"])
                .args([
                    "--no-incomplete-dir",
                    "--no-global-seedratio",
                    "--log-error",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
            "transmission-daemon",
        );
        let log = collect(daemon.0.stderr.take().unwrap());
        let rpc = format!("{ip}:{rpc_port}");
        let mut polls = 0..READY_POLLS;

        // Add the torrents as soon as the RPC answers.
        for t in ts {
            let file = t["file"].as_str().unwrap();
            loop {
                let (ok, said) = transmission_remote(&rpc, &["-a", file, "-w", data]);
                if ok && said.contains("success") {
                    break;
                }
                if let Some(status) = daemon.0.try_wait().unwrap() {
                    panic!(
                        "transmission-daemon exited ({status}): {:?}",
                        log.lock().unwrap()
                    );
                }
                assert!(
                    polls.next().is_some(),
                    "transmission-remote -a {file}: {said}\ndaemon: {:?}",
                    log.lock().unwrap()
                );
                thread::sleep(Duration::from_millis(250));
            }
        }
        // Wait until all are verified at 100% and seeding (Transmission says `Idle` or
        // `Seeding` for a complete torrent nobody downloads from).
        loop {
            let (_, list) = transmission_remote(&rpc, &["-l"]);
            let done = list
                .lines()
                .filter(|l| l.contains("100%") && (l.contains("Idle") || l.contains("Seeding")))
                .count();
            if done == ts.len() {
                eprintln!("transmission seeding:\n{list}");
                break;
            }
            assert!(
                polls.next().is_some(),
                "transmission not seeding after {READY_POLLS} polls:\n{list}\ndaemon: {:?}",
                log.lock().unwrap()
            );
            thread::sleep(Duration::from_millis(250));
        }
        Transmission { peer_port, daemon }
    }
}
