//! Real libtorrent (interop/lt_swarm.py) judges an `estudely node`: everything asserted here
//! comes from libtorrent's side, its routing tables, its alerts and its DHT packet log.
//!
//! Needs python3 with libtorrent's bindings. Loopback only (127.0.8.x, 127.0.9.x), no
//! bootstrap router, every wait bounded; swarm and node are stopped by Drop guards.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_estudely");
const SWARM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../interop/lt_swarm.py");
/// Upper bound for one reply (lt_swarm's slowest command, `live_nodes`, takes ≤ 5 s/session).
const LIMIT: Duration = Duration::from_secs(40);
/// Upper bound for libtorrent to put our node in its table (it pings new nodes after ~5 s).
const TABLE_WAIT: Duration = Duration::from_secs(30);
/// The BEP 51 `interval` an `estudely node` advertises: `Config::default()`, no CLI flag.
const OUR_INTERVAL: u64 = 21_600;

/// A running lt_swarm.py, told to quit (then killed) when dropped.
struct Swarm {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    ready: Value,
}

impl Swarm {
    fn start(base_ip: &str, nodes: usize) -> Swarm {
        let mut child = Command::new("python3")
            .arg(SWARM)
            .args(["--nodes", &nodes.to_string(), "--base-ip", base_ip])
            .args(["--torrents-per-node", "1", "--seconds", "150"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 must be installed");
        let (stdin, lines) = (child.stdin.take(), lines(&mut child));
        let ready = Value::Null;
        let mut swarm = Swarm {
            child,
            stdin,
            lines,
            ready,
        };
        swarm.ready = swarm.reply("the ready line (is libtorrent installed?)");
        assert_eq!(swarm.ready["ready"], true, "{}", swarm.ready);
        swarm
    }

    fn reply(&self, what: &str) -> Value {
        match self.lines.recv_timeout(LIMIT) {
            Ok(line) => serde_json::from_str(&line).expect("lt_swarm prints JSON lines"),
            Err(e) => panic!("lt_swarm.py: no reply to {what} within {LIMIT:?}: {e}"),
        }
    }

    /// Send one command, expect its reply (bounded), and no `error` in it.
    fn cmd(&mut self, line: &str) -> Value {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        let reply = self.reply(line);
        assert!(reply.get("error").is_none(), "{line}: {reply}");
        reply
    }

    fn addr(&self, i: usize) -> String {
        let n = &self.ready["nodes"][i];
        format!("{}:{}", n["ip"].as_str().unwrap(), n["dht_port"])
    }

    /// Poll `live_nodes` (bounded) until `done(the sessions whose routing table holds node)`;
    /// returns those sessions. An entry with our id must have our address, and vice versa.
    fn wait_listed(&mut self, node: &Node, done: impl Fn(&[usize]) -> bool) -> Vec<usize> {
        let deadline = Instant::now() + TABLE_WAIT;
        loop {
            let mut found = Vec::new();
            let live = self.cmd("live_nodes");
            for (i, session) in live["nodes"].as_array().unwrap().iter().enumerate() {
                for entry in session["live"].as_array().unwrap() {
                    let id = entry["id"] == node.id.as_str();
                    let addr = entry["addr"] == node.addr.as_str();
                    assert_eq!(id, addr, "session {i} lists us wrongly: {entry}");
                    found.extend(id.then_some(i));
                }
            }
            if done(&found) || Instant::now() > deadline {
                return found;
            }
            thread::sleep(Duration::from_millis(300));
        }
    }

    /// libtorrent's packet/debug log entries involving `node` (by address or id). Every query
    /// either way should have its reply (same session and tid) in the log: replies take about
    /// a millisecond on loopback, so a few extra `log` calls pick up any late one.
    fn log_about(&mut self, node: &Node) -> Log {
        let mut log = Log(Vec::new(), node.addr.clone());
        for _ in 0..10 {
            let batch = self.cmd("log");
            let ours = batch["log"].as_array().unwrap().iter().filter(|e| {
                let msg = e["msg"].as_str().unwrap();
                e["addr"] == node.addr.as_str()
                    || (e["kind"] == "log" && (msg.contains(&node.addr) || msg.contains(&node.id)))
            });
            log.0.extend(ours.cloned());
            if log.unanswered().is_empty() {
                break;
            }
            thread::sleep(Duration::from_millis(300));
        }
        log
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        let _ = self.stdin.take().map(|mut s| s.write_all(b"quit\n"));
        for _ in 0..300 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return; // quit within 15 s
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `estudely node`, killed when dropped.
struct Node {
    child: Child,
    addr: String,
    id: String,
}

impl Node {
    fn start(bind: &str, bootstrap: &str) -> Node {
        let mut child = Command::new(BIN)
            .args(["node", "--bind", bind, "--bootstrap", bootstrap])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // `listening ADDR id HEX`
        let first = lines(&mut child).recv_timeout(LIMIT).unwrap_or_default();
        let words: Vec<&str> = first.split_whitespace().collect();
        let ok = words.len() == 4 && words[0] == "listening" && words[2] == "id";
        let [addr, id] = [1, 3].map(|i| words.get(i).unwrap_or(&"").to_string());
        let node = Node { child, addr, id }; // killed on drop, also if this fails:
        assert!(ok, "estudely node: no proper listening line: {first:?}");
        node
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of a child's stdout, read by a thread (so waits on them can be bounded).
fn lines(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Run `estudely ARGS... --format jsonl` (bounded), expect success, parse every line.
fn json(args: &[&str]) -> Vec<Value> {
    let child = Command::new(BIN)
        .args(args)
        .args(["--format", "jsonl"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(out) = rx.recv_timeout(LIMIT) else {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        panic!("estudely {args:?} did not finish within {LIMIT:?}");
    };
    let out = out.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {err}");
    let text = String::from_utf8_lossy(&out.stdout);
    let parse = |l: &str| serde_json::from_str(l).unwrap();
    text.lines().map(parse).collect()
}

/// lt_swarm `log` entries about one node of ours (its address).
struct Log(Vec<Value>, String);

impl Log {
    /// Packets exchanged with our node: `dir` "in" = libtorrent received, `y` q/r/e.
    fn pkts(&self, dir: &str, y: &str) -> Vec<&Value> {
        let pkt = |e: &&Value| e["kind"] == "pkt" && e["addr"] == self.1.as_str();
        let want = |e: &&Value| e["dir"] == dir && e["y"] == y;
        self.0.iter().filter(pkt).filter(want).collect()
    }

    /// Queries either way with no reply or error yet (same session and tid, other direction).
    fn unanswered(&self) -> Vec<&Value> {
        let key = |e: &Value, flip: bool| {
            let dir_in = (e["dir"] == "in") != flip;
            (e["node"].to_string(), e["tid"].to_string(), dir_in)
        };
        let (dirs, ends) = (["in", "out"], ["r", "e"]);
        let replies: HashSet<_> = (dirs.iter())
            .flat_map(|d| ends.iter().flat_map(move |y| self.pkts(d, y)))
            .map(|e| key(e, true))
            .collect();
        let open = |e: &&Value| !replies.contains(&key(e, false));
        let queries = dirs.iter().flat_map(|d| self.pkts(d, "q"));
        queries.filter(open).collect()
    }

    /// Does a message of session `node` satisfy `pred`?
    fn any(&self, node: u64, pred: impl Fn(&str) -> bool) -> bool {
        let by = |e: &Value| e["node"] == node && pred(e["msg"].as_str().unwrap());
        self.0.iter().any(by)
    }

    /// Assert `ok`, else panic with `what` and the whole log.
    fn check(&self, ok: bool, what: &str) {
        let msgs: Vec<&str> = self.0.iter().map(|e| e["msg"].as_str().unwrap()).collect();
        let msgs = msgs.join("\n");
        assert!(ok, "{what}; libtorrent's log about us:\n{msgs}");
    }

    /// No KRPC error either way, every query either way answered, libtorrent queried us.
    fn check_clean(&self) {
        self.check(self.pkts("in", "e").is_empty(), "we sent errors");
        self.check(self.pkts("out", "e").is_empty(), "libtorrent sent errors");
        self.check(!self.pkts("out", "q").is_empty(), "no query to us");
        self.check(self.unanswered().is_empty(), "unanswered queries");
    }
}

#[test]
fn libtorrent_puts_our_node_in_its_routing_table() {
    let mut swarm = Swarm::start("127.0.8", 3);
    let node = Node::start("127.0.8.100:0", &swarm.addr(0));
    assert!(node.addr.starts_with("127.0.8.100:"), "{}", node.addr);
    assert_eq!(node.id.len(), 40);

    let listed = swarm.wait_listed(&node, |s| !s.is_empty());
    let (id, addr) = (&node.id, &node.addr);
    assert!(!listed.is_empty(), "no libtorrent table has {id} {addr}");

    // How it got there: libtorrent answered our bootstrap find_node, then checked us with
    // queries of its own, which we answered without error.
    let log = swarm.log_about(&node);
    let find_node = log.pkts("in", "q").iter().any(|e| e["q"] == "find_node");
    log.check(find_node, "libtorrent got no find_node from us");
    log.check_clean();
}

#[test]
fn libtorrent_gets_correct_answers_from_our_node() {
    let mut swarm = Swarm::start("127.0.9", 3);
    let node = Node::start("127.0.9.100:0", &swarm.addr(0));
    // Session 0 runs the lookups, so it must know us.
    let listed = swarm.wait_listed(&node, |s| s.contains(&0));
    assert!(listed.contains(&0), "session 0 never listed us: {listed:?}");

    // An infohash right next to our id: we are the closest node to it in any lookup.
    let mut ih = hex::decode(&node.id).unwrap();
    ih[19] ^= 1;
    let ih = hex::encode(ih);
    // A peer stored only on our node (the query client talks to nobody else).
    let (peer, bind) = ("127.0.9.101:5555", "127.0.9.101:0");
    let replies = json(&[
        "query", "announce", &node.addr, &ih, "--port", "5555", "--bind", bind,
    ]);
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(replies[1]["method"], "announce_peer");
    assert_eq!(replies[1]["error"], Value::Null, "{replies:?}");

    // BEP 51 through libtorrent's dht_sample_infohashes: it parsed our reply.
    let sample = swarm.cmd(&format!("sample {} {}", node.addr, "00".repeat(20)));
    assert_eq!(sample["endpoint"], node.addr.as_str(), "{sample}");
    assert_eq!(sample["interval"], OUR_INTERVAL, "{sample}");
    assert!(sample["num_infohashes"].as_u64().unwrap() >= 1, "{sample}");
    let samples = sample["samples"].as_array().unwrap();
    assert!(samples.contains(&Value::from(ih.as_str())), "{sample}");
    // The nodes we return with it are libtorrent's, under the right addresses.
    let lt = &swarm.ready["nodes"].as_array().unwrap();
    for n in sample["nodes"].as_array().unwrap() {
        if let Some(i) = lt.iter().position(|l| l["node_id"] == n["id"]) {
            assert_eq!(n["addr"], swarm.addr(i).as_str(), "{sample}");
        }
    }

    // libtorrent's own get_peers lookup finds the peer only we store (bounded retries).
    let mut peers = Value::Null;
    for _ in 0..3 {
        peers = swarm.cmd(&format!("get_peers {ih}"));
        if !peers["peers"].as_array().unwrap().is_empty() {
            break;
        }
    }
    assert_eq!(peers["peers"], json!([peer]), "{peers}");

    // libtorrent announces to us with the token we gave it, and we store it.
    let announced = swarm.cmd(&format!("announce {ih} 6000"));
    assert_eq!(announced, json!({"ok": true}));
    let want = json!([peer, "127.0.9.1:6000"]); // sorted
    let deadline = Instant::now() + TABLE_WAIT;
    let bind = "127.0.9.102:0";
    let stored = loop {
        let reply = json(&["query", "get-peers", &node.addr, &ih, "--bind", bind]);
        let mut values = reply[0]["values"].as_array().unwrap().clone();
        values.sort_by_key(|v| v.to_string());
        let values = Value::from(values);
        if values == want || Instant::now() > deadline {
            break values;
        }
        thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(stored, want);

    // libtorrent's log: the same exchanges, seen from its side.
    let log = swarm.log_about(&node);
    log.check_clean();
    for q in ["sample_infohashes", "get_peers", "announce_peer"] {
        let to_us = log.pkts("out", "q");
        let sent = to_us.iter().any(|e| e["node"] == 0 && e["q"] == q);
        log.check(sent, &format!("session 0 sent us no {q}"));
    }
    let response = format!("RESPONSE id: {} ", node.id);
    let sample_reply = |m: &str| m.contains(&response) && m.ends_with("type: sample_infohashes");
    log.check(log.any(0, sample_reply), "no sample_infohashes RESPONSE");
    // Our get_peers reply with the value 127.0.9.101:5555, and libtorrent counting it.
    let value = |m: &str| m.contains("'values': [ '7f00096515b3' ]");
    log.check(log.any(0, value), "no get_peers reply with our value");
    let from_us = format!("addr: {} id: {} ", node.addr, node.id);
    let peers_line = |m: &str| m.contains("PEERS ") && m.contains(&from_us) && m.ends_with(" p: 1");
    let counted = log.any(0, peers_line);
    log.check(counted, "libtorrent counted no peer from us");
    let token = log.any(0, |m| m.contains(&format!("under id '{}'", node.id)));
    log.check(token, "libtorrent kept no write token of ours");
}
