//! Faults (issue 7): `estudely` against a loopback DHT inside Linux network namespaces,
//! where nftables rules lose packets, make nodes vanish and come back, and black-hole
//! anything that is not loopback.
//!
//! - 30 % UDP loss: the same seeded `estudely testnet` in a clean namespace and in a lossy
//!   one; with the same `--overall-timeout`, `crawl` must find at least 90 % of what it
//!   finds on the clean network, and `collect` fetch at least 97 % (39 of 40).
//! - Vanishing and returning nodes: while a crawl runs, some of the testnet's node IPs stop
//!   answering (every packet to or from them is dropped) and some of them come back. This
//!   models nodes that go away or restart at the network level: a node that comes back has
//!   its old address, id and stored peers, as after a short outage or a restart that kept
//!   its state.
//! - A hostile node whose replies list bogon nodes and peers (private, multicast, reserved,
//!   port 0, ...): `crawl` must not send one packet outside loopback, counted by an
//!   nftables rule on the output hook, unless `--allow-private` is given.
//!
//! Every `estudely` run must exit by itself within its own timeout plus [`GRACE`].
//! Needs root, `ip` and `nft` (see `netns`); fails, never passes silently, without them.
//! Run alone: `cargo nextest run -p estudely --test faults --no-capture`.

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::Duration;

use serde_json::Value;

mod common;
mod netns;

use netns::{first_line, Finished, Netns, Running, GRACE};

/// The testnet of the loss and vanish tests (the same in every namespace). The nodes
/// advertise a 10 s interval, but the crawler waits at least `min_resample` (60 s) before
/// sampling a node again, also after a lost sample: in a 100 s crawl a node whose sample was
/// lost is asked once more, and a lost torrent is also found through its other 7 nodes.
const NET: [&str; 12] = [
    "--nodes",
    "32",
    "--torrents",
    "40",
    "--interval",
    "10",
    "--seed",
    "7",
    "--seconds",
    "600",
    "--base-ip",
    "127.0.50",
];
/// `--overall-timeout` of every crawl and collect of the vanish tests, seconds.
const T: u64 = 75;
/// ... and of the loss test: a node whose one sample is lost is asked again 66 s later
/// (60 s, and a query timeout for a late reply), and what it alone reported needs time to
/// be searched and fetched.
const T_LOSS: u64 = 100;
/// Loss on the lossy side, percent of UDP packets (each way: a query and its reply both get
/// through about half the time).
const LOSS: u32 = 30;
/// Share of the clean figures the faulty runs must reach, percent.
const KEEP: usize = 90;
/// ... and `collect`'s at 30 % loss: 39 of 40. Its simulated twin (`dht-core`'s
/// `tests/sim_loss.rs`, 100 s, 300 seeds) gives all 40 of the clean run's 40 on 296 seeds
/// and 39 on 4 (over 75 s, before lost `get_peers` were sent again, 37 seeds in 100 were
/// short of 40, and this bar was 92 %): a node whose one sample in the first minute is lost
/// is asked again only after 66 s, and what it alone reported late may not be fetched by
/// the end.
const KEEP_COLLECT: usize = 97;

const CRAWL_HEADER: &str = "infohash,peer_ip,peer_port";
const COLLECT_HEADER: &str =
    "infohash,name,file_count,total_bytes,piece_length,peer_ip,peer_port,metadata_ok";

/// CSV rows after `header` (the testnet's names hold commas and quotes: a real CSV reader).
fn rows(text: &str, header: &str) -> Vec<Vec<String>> {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(header), "header first:\n{text}");
    csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.expect("CSV row").iter().map(String::from).collect())
        .collect()
}

/// Distinct infohashes in `crawl` rows (each row is an infohash with a peer).
fn crawled(run: &Finished) -> BTreeSet<String> {
    rows(&run.stdout, CRAWL_HEADER)
        .iter()
        .map(|r| r[0].clone())
        .collect()
}

/// Distinct infohashes `collect` fetched metadata for.
fn fetched(run: &Finished) -> BTreeSet<String> {
    rows(&run.stdout, COLLECT_HEADER)
        .iter()
        .filter(|r| r.get(7).is_some_and(|ok| ok == "True"))
        .map(|r| r[0].clone())
        .collect()
}

fn manifest_infohashes(manifest: &Value) -> BTreeSet<String> {
    manifest["torrents"]
        .as_array()
        .expect("torrents")
        .iter()
        .map(|t| t["infohash"].as_str().expect("infohash").to_owned())
        .collect()
}

/// `part` is at least [`KEEP`] % of `whole`.
fn kept(part: usize, whole: usize) -> bool {
    kept_at(part, whole, KEEP)
}

/// `part` is at least `keep` % of `whole`.
fn kept_at(part: usize, whole: usize, keep: usize) -> bool {
    part * 100 >= whole * keep
}

/// `estudely crawl` (or `collect`) against `boot` from `bind`, no infohash limit.
fn crawl_args(cmd: &str, boot: &str, bind: &str, secs: u64, peers: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        cmd,
        "--bootstrap",
        boot,
        "--bind",
        bind,
        "--max-infohashes",
        "0",
        "--overall-timeout",
        &secs.to_string(),
    ]
    .map(String::from)
    .to_vec();
    if cmd == "crawl" {
        args.extend(["--peers-file".to_owned(), peers.to_owned()]);
    }
    args
}

fn start(ns: &Netns, args: &[String]) -> Running {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ns.estudely(&args)
}

/// Wait for a run of `secs` seconds; it must exit by itself, with status 0.
fn finish(run: Running, secs: u64) -> Finished {
    let done = run.finish(Duration::from_secs(secs) + GRACE);
    assert!(done.status.success(), "{}: {}", done.status, done.stderr);
    done
}

/// What one side of the loss comparison found.
#[derive(Debug)]
struct Side {
    torrents: usize,
    crawl: Finished,
    collect: Finished,
    lost: Option<u64>,
}

/// Start the testnet in a fresh namespace, then (once it is up, so that both sides start
/// identical) drop `loss` % of UDP packets on the input hook, and run `crawl` and `collect`
/// at once from two addresses.
fn loss_side(loss: u32) -> Side {
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let (_net, boot, manifest) = ns.testnet(&NET, &dir.path().join("testnet.json"));
    if loss > 0 {
        ns.lose_udp(loss);
    }
    let peers = dir.path().join("peers.csv");
    let peers = peers.to_str().unwrap();
    let crawl = start(
        &ns,
        &crawl_args("crawl", &boot, "127.0.52.1:0", T_LOSS, peers),
    );
    let collect = start(
        &ns,
        &crawl_args("collect", &boot, "127.0.52.2:0", T_LOSS, peers),
    );
    let crawl = finish(crawl, T_LOSS);
    let collect = finish(collect, T_LOSS);
    let lost = (loss > 0).then(|| ns.counter("faults", "lost"));
    Side {
        torrents: manifest_infohashes(&manifest).len(),
        crawl,
        collect,
        lost,
    }
}

#[test]
fn thirty_percent_udp_loss_keeps_ninety_percent_of_the_results() {
    // Both sides at once: each is mostly waiting on timers and the network, and running them
    // side by side gives them the same machine load.
    let (clean, lossy) = thread::scope(|s| {
        let clean = s.spawn(|| loss_side(0));
        let lossy = s.spawn(|| loss_side(LOSS));
        (clean.join().unwrap(), lossy.join().unwrap())
    });
    let figures = |name: &str, side: &Side| {
        eprintln!(
            "{name}: crawl {} infohashes with peers, collect {} with metadata_ok=True, of {} \
             torrents; {} UDP packets dropped\n  {}\n  {}",
            crawled(&side.crawl).len(),
            fetched(&side.collect).len(),
            side.torrents,
            side.lost.unwrap_or(0),
            side.crawl.summary(),
            side.collect.summary()
        );
    };
    figures("clean", &clean);
    figures(&format!("{LOSS} % UDP loss"), &lossy);

    let (c_crawl, l_crawl) = (crawled(&clean.crawl).len(), crawled(&lossy.crawl).len());
    let (c_meta, l_meta) = (fetched(&clean.collect).len(), fetched(&lossy.collect).len());
    assert!(
        kept(c_crawl, clean.torrents) && kept(c_meta, clean.torrents),
        "the clean network itself fell short: crawl {c_crawl}, collect {c_meta} of {}",
        clean.torrents
    );
    assert!(lossy.lost.unwrap_or(0) > 0, "the loss rule dropped nothing");
    assert!(
        kept(l_crawl, c_crawl),
        "crawl with {LOSS} % loss found {l_crawl} infohashes with peers, clean {c_crawl}: under \
         {KEEP} %\nlossy stderr: {}",
        lossy.crawl.stderr
    );
    assert!(
        kept_at(l_meta, c_meta, KEEP_COLLECT),
        "collect with {LOSS} % loss fetched {l_meta}, clean {c_meta}: under {KEEP_COLLECT} %\nlossy \
         stderr: {}",
        lossy.collect.stderr
    );
}

/// XOR distance of two 40-hex ids, as bytes (comparable).
fn distance(a: &str, b: &str) -> Vec<u8> {
    let (a, b) = (hex::decode(a).unwrap(), hex::decode(b).unwrap());
    a.iter().zip(&b).map(|(x, y)| x ^ y).collect()
}

#[test]
fn nodes_that_vanish_and_come_back_during_a_crawl() {
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let (_net, boot, manifest) = ns.testnet(&NET, &dir.path().join("testnet.json"));
    let nodes: Vec<(String, String)> = manifest["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let addr = n["addr"].as_str().unwrap();
            let ip = addr.rsplit_once(':').unwrap().0.to_owned();
            (ip, n["id"].as_str().unwrap().to_owned())
        })
        .collect();
    // Node 0 (the bootstrap) stays. A quarter is gone from the start, half of them come
    // back (restart) a third of the way in; another quarter vanishes a sixth of the way in
    // and half of those come back two thirds of the way in.
    let group = |rem: usize| -> Vec<&str> {
        (1..nodes.len())
            .filter(|i| i % 4 == rem)
            .map(|i| nodes[i].0.as_str())
            .collect()
    };
    let (early, late) = (group(1), group(3));
    let (early_back, early_gone) = early.split_at(early.len() / 2);
    let (late_back, late_gone) = late.split_at(late.len() / 2);
    let set = |ips: &[&str]| format!("{{ {} }}", ips.join(", "));
    ns.nft_load(&format!(
        "table inet faults {{
           set gone {{ type ipv4_addr; }}
           set back {{ type ipv4_addr; }}
           counter cut {{ }}
           counter again {{ }}
           chain input {{
             type filter hook input priority 0; policy accept;
             ip saddr 127.0.52.1 ip daddr @back counter name \"again\"
             ip saddr @gone counter name \"cut\" drop
             ip daddr @gone counter name \"cut\" drop
           }}
         }}
         add element inet faults gone {}",
        set(&early)
    ));
    let peers = dir.path().join("peers.csv");
    let crawl = start(
        &ns,
        &crawl_args("crawl", &boot, "127.0.52.1:0", T, peers.to_str().unwrap()),
    );
    let step = Duration::from_secs(T) / 6;
    thread::sleep(step);
    ns.nft(&["add", "element", "inet", "faults", "gone", &set(&late)]);
    thread::sleep(step);
    ns.nft(&[
        "delete",
        "element",
        "inet",
        "faults",
        "gone",
        &set(early_back),
    ]);
    ns.nft(&["add", "element", "inet", "faults", "back", &set(early_back)]);
    thread::sleep(2 * step);
    ns.nft(&[
        "delete",
        "element",
        "inet",
        "faults",
        "gone",
        &set(late_back),
    ]);
    ns.nft(&["add", "element", "inet", "faults", "back", &set(late_back)]);
    let crawl = finish(crawl, T);
    let cut = ns.counter("faults", "cut");
    let again = ns.counter("faults", "again");

    // A torrent is stored on the 8 nodes closest to it; it stays findable if one of them
    // never vanished.
    let never_gone: BTreeSet<&str> = (0..nodes.len())
        .filter(|i| i % 4 == 0 || i % 4 == 2)
        .map(|i| nodes[i].0.as_str())
        .collect();
    let reachable: BTreeSet<String> = manifest_infohashes(&manifest)
        .into_iter()
        .filter(|ih| {
            let mut by_distance: BTreeMap<Vec<u8>, &str> = nodes
                .iter()
                .map(|(ip, id)| (distance(ih, id), ip.as_str()))
                .collect();
            let closest: Vec<&str> = std::iter::from_fn(|| by_distance.pop_first())
                .take(8)
                .map(|(_, ip)| ip)
                .collect();
            closest.iter().any(|ip| never_gone.contains(ip))
        })
        .collect();
    let found = crawled(&crawl);
    let found_reachable = found.intersection(&reachable).count();
    eprintln!(
        "vanish/restart: {} nodes gone from the start ({} came back), {} vanished mid-crawl \
         ({} came back); crawl found {} infohashes with peers, {found_reachable} of the {} \
         whose nodes never all vanished ({} torrents); {cut} packets cut, {again} from the \
         crawler to nodes that came back\n  {}",
        early.len(),
        early_back.len(),
        late.len(),
        late_back.len(),
        found.len(),
        reachable.len(),
        manifest["torrents"].as_array().unwrap().len(),
        crawl.summary()
    );
    assert!(!early_gone.is_empty() && !late_gone.is_empty());
    assert!(cut > 0, "the vanish rules dropped nothing");
    assert!(
        kept(found_reachable, reachable.len()),
        "found {found_reachable} of {} reachable torrents: under {KEEP} %\nstderr: {}",
        reachable.len(),
        crawl.stderr
    );
}

/// The bogon addresses the hostile node hands out, as printed in CSV rows.
const BOGON_IPS: [&str; 13] = [
    "10.0.0.1",
    "192.168.1.1",
    "172.16.0.5",
    "100.64.1.1",
    "169.254.1.1",
    "224.0.0.1",
    "255.255.255.255",
    "0.0.0.0",
    "192.0.2.1",
    "240.0.0.1",
    "fc00::1",
    "fe80::1",
    "::ffff:10.0.0.1",
];
/// How long the bogon crawls run, seconds.
const BOGON_T: u64 = 20;

/// In a namespace whose only way out leads nowhere and where an output-hook rule counts
/// (and drops) every UDP or TCP packet not to 127.0.0.0/8 or `::1`, crawl from the hostile
/// node. The crawl and the number of packets counted. (The kernel's own ICMPv6 router
/// solicitations on the sink device are dropped too, but not counted: they are not ours.)
fn crawl_hostile(extra: &[&str]) -> (Finished, u64) {
    let ns = Netns::new();
    ns.nft_load(
        "table inet guard {
           counter leaked { }
           chain output {
             type filter hook output priority 0; policy accept;
             ip daddr != 127.0.0.0/8 meta l4proto { tcp, udp } counter name \"leaked\" drop
             ip6 daddr != ::1 meta l4proto { tcp, udp } counter name \"leaked\" drop
             ip daddr != 127.0.0.0/8 drop
             ip6 daddr != ::1 drop
           }
         }",
    );
    let sink = ns.add_sink();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hostile_node.py");
    let mut hostile = ns
        .command("python3")
        .args([script, "127.0.60.1", "6881", "120"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start python3 hostile_node.py");
    let out = hostile.stdout.take().unwrap();
    let _hostile = common::Proc(hostile);
    let ready = first_line(out, Duration::from_secs(20), "hostile_node.py");
    assert!(ready.starts_with("ready 127.0.60.1:6881"), "{ready:?}");
    let dir = tempfile::tempdir().unwrap();
    let peers = dir.path().join("peers.csv");
    let mut args = crawl_args(
        "crawl",
        "127.0.60.1:6881",
        "127.0.0.1:0",
        BOGON_T,
        peers.to_str().unwrap(),
    );
    args.extend(["--bind", "[::1]:0"].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    let crawl = finish(start(&ns, &args), BOGON_T);
    let leaked = ns.counter("guard", "leaked");
    eprintln!(
        "hostile node, crawl {extra:?} (sink device: {sink}): {leaked} packets to \
         non-loopback addresses\n  {}",
        crawl.stderr.trim_end().replace('\n', "\n  ")
    );
    (crawl, leaked)
}

#[test]
fn bogon_addresses_from_a_hostile_node_are_never_contacted() {
    let (crawl, leaked) = crawl_hostile(&[]);
    let rows = rows(&crawl.stdout, CRAWL_HEADER);
    assert!(
        rows.iter().any(|r| r[1] == "127.0.60.9"),
        "the real samples' valid peer was not found:\n{}\n{}",
        crawl.stdout,
        crawl.stderr
    );
    assert_eq!(
        leaked, 0,
        "packets left loopback toward the hostile node's bogons\n{}",
        crawl.stderr
    );
    let bad: Vec<&Vec<String>> = rows
        .iter()
        .filter(|r| BOGON_IPS.contains(&r[1].as_str()) || r[2] == "0")
        .collect();
    assert!(bad.is_empty(), "bogon peers printed: {bad:?}");
}

#[test]
fn allow_private_does_reach_private_ranges() {
    // The control: with the escape hatch, the same crawl does send to the private ranges
    // (which, in this namespace, only reach the sink device), so the counter above counts.
    let (_crawl, leaked) = crawl_hostile(&["--allow-private"]);
    assert!(leaked > 0, "--allow-private sent nothing outside loopback");
}
