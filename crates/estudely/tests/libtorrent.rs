//! The `estudely` binary against real libtorrent nodes (interop/lt_swarm.py) on loopback.
//!
//! Needs python3 with libtorrent's bindings (`scripts/test` installs them). The swarm runs on
//! 127.0.7.x without any bootstrap router; every wait is bounded.

#[path = "common/swarm.rs"]
mod swarm;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use swarm::Swarm;

const BIN: &str = env!("CARGO_BIN_EXE_estudely");
const LIMIT: Duration = Duration::from_secs(40);

/// The swarm of these tests: two sessions, one v1 torrent each, fresh samples every time.
fn start_swarm() -> Swarm {
    Swarm::start(&[
        "--nodes",
        "2",
        "--base-ip",
        "127.0.7",
        "--kinds",
        "v1",
        "--torrents-per-node",
        "1",
        "--sample-interval",
        "0",
        "--seconds",
        "120",
    ])
}

/// Session `i` of the ready line.
fn session(swarm: &Swarm, i: usize) -> &Value {
    &swarm.nodes()[i]
}

/// The DHT key of session `i`'s torrent.
fn torrent_key(swarm: &Swarm, i: usize) -> String {
    session(swarm, i)["torrents"][0]["dht_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn run(args: &[&str]) -> Output {
    let child = Command::new(BIN)
        .args(args)
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
    match rx.recv_timeout(LIMIT) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("estudely {args:?} did not finish within {LIMIT:?}");
        }
    }
}

/// Run with `--format jsonl`, expect success, parse every line.
fn json(args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.extend(["--format", "jsonl"]);
    let out = run(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn queries_and_a_node_against_libtorrent() {
    let swarm = start_swarm();
    let (lt0, lt1) = (swarm.node_addr(0), swarm.node_addr(1));

    // ping: libtorrent's id and its version, "LT" + major + (minor << 4 | tiny).
    let ping = &json(&["query", "ping", &lt0])[0];
    assert_eq!(ping["id"], session(&swarm, 0)["node_id"]);
    assert!(
        ping["version"].as_str().unwrap().starts_with("LT 2."),
        "{ping}"
    );
    assert!(ping["ip"].as_str().unwrap().starts_with("127."), "{ping}");

    // find_node: each libtorrent node returns the other one, id and address as in the ready
    // line (and any libtorrent address it returns carries that node's id).
    for (asked, other) in [(0, 1), (1, 0)] {
        let reply = &json(&["query", "find-node", &swarm.node_addr(asked)])[0];
        let nodes = reply["nodes"].as_array().unwrap();
        let want = serde_json::json!({"id": session(&swarm, other)["node_id"], "addr": swarm.node_addr(other)});
        assert!(nodes.contains(&want), "{reply}");
        for (n, i) in nodes.iter().flat_map(|n| [(n, 0), (n, 1)]) {
            if n["addr"] == swarm.node_addr(i).as_str() {
                assert_eq!(n["id"], session(&swarm, i)["node_id"], "{reply}");
            }
        }
    }

    // sample_infohashes: node 1 stores what node 0 announced to it.
    let sample = &json(&["query", "sample", &lt1])[0];
    assert!(
        strings(&sample["samples"]).contains(&torrent_key(&swarm, 0)),
        "{sample}"
    );
    assert!(sample["num"].as_u64().unwrap() >= 1, "{sample}");
    assert_eq!(sample["interval"], 0);

    // get_peers: node 1 knows node 0 as a peer of node 0's torrent.
    let peers = &json(&["query", "get-peers", &lt1, &torrent_key(&swarm, 0)])[0];
    assert!(!strings(&peers["values"]).is_empty(), "{peers}");
    // Exactly node 0's seeder address: 127.0.7.1 on its listen port (or its DHT port, the
    // same port in libtorrent 2.1).
    let n0 = session(&swarm, 0);
    let seeder =
        ["listen_port", "dht_port"].map(|p| format!("{}:{}", n0["ip"].as_str().unwrap(), n0[p]));
    let values = strings(&peers["values"]);
    assert!(values.contains(&seeder[0]), "{peers}");
    assert!(values.iter().all(|v| seeder.contains(v)), "{peers}");
    assert!(peers["token"].as_str().is_some(), "{peers}");
    // BEP 33 scrape: bloom filters of seeds and peers instead, counting that one peer.
    let scrape = &json(&[
        "query",
        "get-peers",
        &lt1,
        &torrent_key(&swarm, 0),
        "--scrape",
    ])[0];
    let seeds = scrape["bf_seeds"]["estimate"].as_u64().unwrap();
    let others = scrape["bf_peers"]["estimate"].as_u64().unwrap();
    assert_eq!(seeds + others, 1, "{scrape}");

    // announce, then get_peers shows us.
    let key = torrent_key(&swarm, 1);
    let replies = json(&[
        "query",
        "announce",
        &lt0,
        &key,
        "--port",
        "4444",
        "--bind",
        "127.0.7.9:0",
    ]);
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[1]["method"], "announce_peer");
    assert_eq!(replies[1]["error"], Value::Null);
    let peers = &json(&["query", "get-peers", &lt0, &key])[0];
    assert!(
        strings(&peers["values"]).contains(&"127.0.7.9:4444".to_owned()),
        "{peers}"
    );

    // An estudely node bootstraps from libtorrent and learns both of its nodes.
    let mut node = Command::new(BIN)
        .args(["node", "--bind", "127.0.7.10:0", "--bootstrap", &lt0])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(node.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let ours = first.split_whitespace().nth(1).unwrap().to_owned();
    let wanted = [
        session(&swarm, 0)["node_id"].clone(),
        session(&swarm, 1)["node_id"].clone(),
    ];
    let deadline = Instant::now() + LIMIT;
    let learned = loop {
        let reply = &json(&["query", "find-node", &ours])[0];
        let ids: Vec<Value> = reply["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].clone())
            .collect();
        if wanted.iter().all(|w| ids.contains(w)) || Instant::now() > deadline {
            break ids;
        }
        thread::sleep(Duration::from_millis(200));
    };
    let _ = node.kill();
    let _ = node.wait();
    assert!(wanted.iter().all(|w| learned.contains(w)), "{learned:?}");
}
