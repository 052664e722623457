//! End-to-end tests of the `estudely` binary, run as a user runs it, on loopback only.
//!
//! Every node is started with `--no-bootstrap` or `--bootstrap` pointing at loopback, and
//! every wait is bounded, so nothing leaves the machine and nothing hangs.

use std::io::{BufRead, BufReader, Read};
use std::net::UdpSocket;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use estudely_krpc::{Body, ErrorMsg, Message};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_estudely");
/// Upper bound for any one wait.
const LIMIT: Duration = Duration::from_secs(30);
const INFO_HASH: &str = "0123456789abcdef0123456789abcdef01234567";

/// A running `estudely node`, killed when dropped.
struct NodeProc {
    child: Child,
    /// The addresses from its `listening` line.
    addrs: Vec<String>,
    /// Its id, hex.
    id: String,
    /// Everything it logged so far.
    log: Arc<Mutex<String>>,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(args: &[&str]) -> NodeProc {
    let mut child = Command::new(BIN)
        .arg("node")
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn estudely node");
    let log = Arc::new(Mutex::new(String::new()));
    let mut stderr = child.stderr.take().unwrap();
    let sink = Arc::clone(&log);
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stderr.read(&mut buf) {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
        for _ in lines {}
    });
    let first = match rx.recv_timeout(LIMIT) {
        Ok(Some(Ok(line))) => line,
        other => {
            let _ = child.kill();
            panic!("no listening line: {other:?}; log: {}", log.lock().unwrap());
        }
    };
    // `listening ADDR [ADDR6] id HEX`
    let words: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"listening"), "{first}");
    assert_eq!(words[words.len() - 2], "id", "{first}");
    let id = words[words.len() - 1].to_owned();
    assert_eq!(id.len(), 40, "{first}");
    let addrs = words[1..words.len() - 2]
        .iter()
        .map(|s| s.to_string())
        .collect();
    NodeProc {
        child,
        addrs,
        id,
        log,
    }
}

/// Run `estudely ARGS...` to completion (bounded by [`LIMIT`]).
fn run(args: &[&str]) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn estudely");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(out) => out.expect("wait for estudely"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("estudely {args:?} did not finish within {LIMIT:?}");
        }
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Run and expect success.
fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// Run with `--format jsonl` and parse every line.
fn json(args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.extend(["--format", "jsonl"]);
    ok(&all)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Expect failure with `code` and a single `error: ...` line on stderr containing `needle`.
fn fails(args: &[&str], code: i32, needle: &str) {
    let out = run(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(needle),
        "{args:?}: {err}"
    );
    let lines = err.lines().count();
    assert_eq!(lines, 1, "{args:?}: one line expected: {err}");
}

#[test]
fn ping_human_and_jsonl_over_both_families() {
    let node = start_node(&[
        "--bind",
        "127.0.4.1:0",
        "--bind",
        "[::1]:0",
        "--no-bootstrap",
    ]);
    assert_eq!(node.addrs.len(), 2);
    assert!(node.addrs[0].starts_with("127.0.4.1:") && node.addrs[1].starts_with("[::1]:"));
    let text = ok(&["query", "ping", &node.addrs[0]]);
    assert!(
        text.starts_with(&format!("ping reply from {} in ", node.addrs[0])),
        "{text}"
    );
    assert!(text.contains(&format!("node id    {}", node.id)), "{text}");
    assert!(text.contains("version    ES 0.1"), "{text}");
    assert!(text.contains("we are     127.0.0.1:"), "{text}");

    let replies = json(&["query", "ping", &node.addrs[1]]);
    assert_eq!(replies.len(), 1);
    let r = &replies[0];
    assert_eq!(r["method"], "ping");
    assert_eq!(r["from"], node.addrs[1].as_str());
    assert_eq!(r["id"], node.id.as_str());
    assert_eq!(r["version"], "ES 0.1");
    assert_eq!(r["version_hex"], "45530001");
    assert!(r["ip"].as_str().unwrap().starts_with("[::1]:"), "{r}");
    assert_eq!(r["error"], Value::Null);
    for key in [
        "rtt_ms",
        "read_only",
        "nodes",
        "nodes6",
        "values",
        "token",
        "samples",
        "interval",
        "num",
        "bf_seeds",
        "bf_peers",
    ] {
        assert!(r.get(key).is_some(), "{key} missing in {r}");
    }
}

#[test]
fn announce_then_get_peers_and_sample_show_it() {
    let node = start_node(&["--bind", "127.0.4.1:0", "--no-bootstrap"]);
    let addr = node.addrs[0].as_str();

    let before = json(&["query", "get-peers", addr, INFO_HASH]);
    assert_eq!(before[0]["values"], Value::Array(vec![]));
    assert!(!before[0]["token"].as_str().unwrap().is_empty());

    let text = ok(&[
        "query",
        "announce",
        addr,
        INFO_HASH,
        "--port",
        "51413",
        "--bind",
        "127.0.4.9:0",
    ]);
    assert!(text.contains("get_peers reply from"), "{text}");
    assert!(text.contains("\nannounce_peer reply from"), "{text}");

    // --implied-port: the node stores the UDP port it saw, which its BEP 42 `ip` tells us.
    let replies = json(&[
        "query",
        "announce",
        addr,
        INFO_HASH,
        "--implied-port",
        "--bind",
        "127.0.4.10:0",
    ]);
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[1]["method"], "announce_peer");
    let seen = replies[1]["ip"].as_str().unwrap().to_owned();
    assert!(seen.starts_with("127.0.4.10:"), "{seen}");

    let text = ok(&["query", "get-peers", addr, INFO_HASH]);
    assert!(text.contains("peers      2 (values)"), "{text}");
    assert!(text.contains("    127.0.4.9:51413\n"), "{text}");
    let after = json(&["query", "get-peers", addr, INFO_HASH]);
    let mut values: Vec<&str> = after[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    values.sort_unstable();
    assert_eq!(values, vec![seen.as_str(), "127.0.4.9:51413"]);

    let text = ok(&["query", "sample", addr]);
    assert!(text.contains("samples    1 of 1 stored"), "{text}");
    assert!(text.contains(&format!("    {INFO_HASH}\n")), "{text}");
    let sample = json(&["query", "sample", addr]);
    assert_eq!(sample[0]["samples"], Value::Array(vec![INFO_HASH.into()]));
    assert_eq!(sample[0]["num"], 1);
    assert!(sample[0]["interval"].as_u64().is_some());
}

#[test]
fn find_node_sees_a_node_that_bootstrapped_from_it() {
    let a = start_node(&["--bind", "127.0.4.1:0", "--no-bootstrap"]);
    let b = start_node(&["--bind", "127.0.4.5:0", "--bootstrap", &a.addrs[0]]);
    let deadline = Instant::now() + LIMIT;
    loop {
        let reply = json(&["query", "find-node", &a.addrs[0], &b.id]);
        let nodes = reply[0]["nodes"].as_array().unwrap().clone();
        let b_entry = serde_json::json!({"id": b.id, "addr": b.addrs[0]});
        if nodes.contains(&b_entry) {
            break;
        }
        assert!(Instant::now() < deadline, "a never listed b: {nodes:?}");
        thread::sleep(Duration::from_millis(100));
    }
    let text = ok(&["query", "find-node", &b.addrs[0]]);
    assert!(
        text.contains(&format!("    {}  {}\n", a.id, a.addrs[0])),
        "{text}"
    );
    drop(b);
    let log = a.log.lock().unwrap().clone();
    assert!(log.contains("not bootstrapping"), "{log}");
}

#[test]
fn bad_input_exits_2_with_one_line() {
    fails(&["query", "ping", "nonsense"], 2, "`nonsense`");
    fails(
        &["query", "ping", "127.0.0.1:99999"],
        2,
        "`127.0.0.1:99999`",
    );
    fails(&["query", "ping", "::1:6881"], 2, "`::1:6881`");
    // (An unresolvable name is not tried here: resolving it would send a DNS query off
    // loopback. `resolve.rs` turns that failure into the same one-line usage error.)
    fails(
        &["query", "--bind", "[::1]:0", "ping", "127.0.0.1:5"],
        2,
        "address families differ",
    );
    fails(
        &[
            "node",
            "--bind",
            "127.0.4.1:0",
            "--bind",
            "127.0.4.2:0",
            "--no-bootstrap",
        ],
        2,
        "--bind",
    );
    fails(
        &["node", "--bind", "127.0.4.1:0", "--bootstrap", "oops"],
        2,
        "`oops`",
    );
    // clap's own errors (bad hex, unknown flag) also exit 2.
    let out = run(&["query", "get-peers", "127.0.0.1:5", "xyz"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("`xyz`"), "{}", stderr(&out));
}

#[test]
fn a_bad_shard_exits_2_naming_it() {
    // Refused by the argument parser, before any socket is opened (the bootstrap is
    // loopback all the same).
    for cmd in ["crawl", "collect", "run"] {
        for bad in ["0/4", "5/4", "x"] {
            let args = [cmd, "--bootstrap", "127.0.174.1:1", "--shard", bad];
            let out = run(&args);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
            // One error line naming the value; clap adds only its `--help` hint.
            let lines: Vec<&str> = err.lines().filter(|l| !l.is_empty()).collect();
            assert_eq!(lines.len(), 2, "{args:?}: {err}");
            assert!(
                lines[0].starts_with("error: ")
                    && lines[0].contains(&format!("`{bad}` is not a shard"))
                    && lines[0].contains("expected K/N"),
                "{args:?}: {err}"
            );
            assert!(lines[1].starts_with("For more information"), "{err}");
        }
    }
}

#[test]
fn silence_and_remote_errors_exit_1() {
    // A "node" that never answers.
    let silent = UdpSocket::bind("127.0.4.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    fails(
        &["query", "ping", &addr, "--timeout", "0.3"],
        1,
        "no reply from",
    );

    // A node that answers every query with a KRPC error and an odd version string.
    let rude = UdpSocket::bind("127.0.4.1:0").unwrap();
    rude.set_read_timeout(Some(LIMIT)).unwrap();
    let addr = rude.local_addr().unwrap().to_string();
    let server = thread::spawn(move || {
        for _ in 0..2 {
            let mut buf = [0u8; 2048];
            let Ok((n, from)) = rude.recv_from(&mut buf) else {
                return;
            };
            let query = Message::decode(&buf[..n]).unwrap();
            let reply = Message {
                tid: query.tid,
                version: estudely_krpc::Version::new(b"\x01zz").ok(),
                ip: Some(from),
                read_only: false,
                body: Body::Error(ErrorMsg {
                    code: 201,
                    message: "A Generic Error Ocurred".into(),
                    id: None,
                    reflected_port: None,
                }),
            };
            rude.send_to(&reply.encode(), from).unwrap();
        }
    });
    fails(
        &["query", "ping", &addr],
        1,
        "error 201: A Generic Error Ocurred",
    );
    let out = run(&["query", "sample", &addr, "--format", "jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    let reply: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(reply["method"], "sample_infohashes");
    assert_eq!(reply["error"]["code"], 201);
    server.join().unwrap();
}

#[test]
fn node_logs_stats_and_exits_0_on_sigterm() {
    let mut node = start_node(&[
        "--bind",
        "127.0.4.1:0",
        "--no-bootstrap",
        "--stats-interval",
        "0.2",
    ]);
    let deadline = Instant::now() + LIMIT;
    while !node.log.lock().unwrap().contains("stats: nodes 0 v4") {
        assert!(
            Instant::now() < deadline,
            "no stats line: {}",
            node.log.lock().unwrap()
        );
        thread::sleep(Duration::from_millis(50));
    }
    let pid = node.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = node.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "node ignored SIGTERM");
        thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}
