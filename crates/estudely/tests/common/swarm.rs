//! A running `interop/lt_swarm.py` (real libtorrent DHT nodes seeding torrents on
//! loopback), driven over its stdin/stdout JSON protocol (interop/README.md). Self-contained:
//! a test file includes it with `#[path = "common/swarm.rs"] mod swarm;`. Without
//! libtorrent's Python bindings the swarm never prints its ready line and the test fails,
//! saying so (`scripts/test` installs them).
#![allow(dead_code)] // each test file uses a different subset

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The script.
pub const SWARM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../interop/lt_swarm.py");
/// Upper bound for one reply (its ready line waits at most about 30 s).
pub const LIMIT: Duration = Duration::from_secs(60);

/// A running swarm, told to quit (then killed) when dropped.
pub struct Swarm {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Its ready line.
    pub ready: Value,
}

impl Swarm {
    /// Start `lt_swarm.py ARGS` and wait for its ready line (every torrent announced).
    pub fn start(args: &[&str]) -> Swarm {
        Swarm::spawn(args, Stdio::null(), None)
    }

    /// [`Swarm::start`], its diagnostics going to the file `log` (shown if it fails to
    /// start).
    pub fn start_logged(args: &[&str], log: &Path) -> Swarm {
        let file = std::fs::File::create(log).expect("swarm log file");
        Swarm::spawn(args, Stdio::from(file), Some(log))
    }

    fn spawn(args: &[&str], stderr: Stdio, log: Option<&Path>) -> Swarm {
        let started = Instant::now();
        let mut child = Command::new("python3")
            .arg(SWARM)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("python3 must be installed");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stdin = child.stdin.take();
        let mut swarm = Swarm {
            child,
            stdin,
            lines,
            ready: Value::Null,
        };
        swarm.ready = match swarm.lines.recv_timeout(LIMIT) {
            Ok(line) => serde_json::from_str(&line).expect("lt_swarm prints JSON lines"),
            Err(e) => panic!(
                "lt_swarm.py gave no ready line ({e}): are libtorrent's Python bindings \
                 installed? (`pip install libtorrent`; scripts/test does it)\n{}",
                log.and_then(|l| std::fs::read_to_string(l).ok())
                    .unwrap_or_default()
            ),
        };
        assert_eq!(swarm.ready["ready"], true, "{}", swarm.ready);
        assert_eq!(swarm.ready["all_announced"], true, "{}", swarm.ready);
        eprintln!(
            "lt_swarm {args:?}: ready after {:.2} s",
            started.elapsed().as_secs_f64()
        );
        swarm
    }

    /// The next line, as JSON.
    pub fn reply(&self, what: &str) -> Value {
        match self.lines.recv_timeout(LIMIT) {
            Ok(line) => serde_json::from_str(&line).expect("lt_swarm prints JSON lines"),
            Err(e) => panic!("lt_swarm.py: no reply to {what} within {LIMIT:?}: {e}"),
        }
    }

    /// Send one command; its reply must not be an error.
    pub fn cmd(&mut self, line: &str) -> Value {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        let reply = self.reply(line);
        assert!(reply.get("error").is_none(), "{line}: {reply}");
        reply
    }

    /// The sessions of the ready line.
    pub fn nodes(&self) -> &Vec<Value> {
        self.ready["nodes"].as_array().expect("nodes")
    }

    /// `ip:dht_port` of session `i`.
    pub fn node_addr(&self, i: usize) -> String {
        let n = &self.nodes()[i];
        format!("{}:{}", n["ip"].as_str().unwrap(), n["dht_port"])
    }

    /// Every DHT key the swarm announces.
    pub fn keys(&self) -> BTreeSet<String> {
        self.torrents()
            .iter()
            .flat_map(|t| t["dht_keys"].as_array().unwrap().clone())
            .map(|k| k.as_str().unwrap().to_owned())
            .collect()
    }

    /// How many sessions have each of `addrs` in their routing table.
    pub fn known_by(&mut self, addrs: &[String]) -> Vec<usize> {
        let live = self.cmd("live_nodes");
        let nodes = live["nodes"].as_array().unwrap();
        addrs
            .iter()
            .map(|a| {
                nodes
                    .iter()
                    .filter(|n| {
                        n["live"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|e| e["addr"].as_str() == Some(a))
                    })
                    .count()
            })
            .collect()
    }

    /// How many `announce_peer` the sessions sent to each of `addrs` (their packet logs).
    pub fn announces_to(&mut self, addrs: &[String]) -> Vec<usize> {
        let log = self.cmd("log");
        let log = log["log"].as_array().unwrap();
        addrs
            .iter()
            .map(|a| {
                log.iter()
                    .filter(|e| {
                        e["q"] == "announce_peer" && e["dir"] == "out" && e["addr"] == a.as_str()
                    })
                    .count()
            })
            .collect()
    }

    /// Every torrent of every session.
    pub fn torrents(&self) -> Vec<Value> {
        self.nodes()
            .iter()
            .flat_map(|n| n["torrents"].as_array().unwrap().clone())
            .collect()
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"quit\n");
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
