//! Harvesting end to end with `estudely run` on a real libtorrent network: libtorrent's
//! defaults as on the real network (samples refreshed every 21,600 s, at most 20 per reply;
//! announces every 900 s; `dht_restrict_routing_ips` and `dht_restrict_search_ips` on, each
//! session in its own /24), so sampling alone cannot reach every torrent. Two `run`s crawl it
//! at the same time, one harvesting (the default), one with `--no-harvest`, each with its own
//! SQLite index and address. Once libtorrent knows both of our nodes, the swarm announces its
//! torrents again (as it would every `dht_announce_interval`), and those for which one of our
//! nodes is among the closest are announced to it. The harvesting run must store strictly
//! more torrents, among them torrents found by an announce that the other run lacks.
//!
//! Needs python3 with libtorrent's bindings (`scripts/test` installs them): without them the
//! test fails. Loopback only: the swarm on 127.47.N.1 (N = 1..16), our runs on 127.48.1.1
//! and 127.48.2.1. Time limits only guard against a hang.

#[path = "common/swarm.rs"]
mod swarm;

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use estudely::store::{DbUrl, Source};

use common::{run_bounded, Finished};
use swarm::Swarm;

/// libtorrent sessions, each in its own /24.
const NODES: usize = 16;
/// Torrents per session: each session stores about 8 × 32 = 256 infohashes (every torrent
/// is announced to the 8 closest nodes) and samples 20 of them for 6 hours.
const TORRENTS_PER_NODE: usize = 32;
/// The swarm announces all its torrents again over this many seconds (our node answers at
/// most 25 datagrams per IP per 10 s: a burst would go partly unanswered).
const REANNOUNCE_SECS: u32 = 20;
/// `--overall-timeout` of each run.
const RUN_SECS: &str = "60";
/// Liveness bounds (not properties under test).
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// A free UDP port on `ip` (bound, read, released).
fn free_port(ip: &str) -> u16 {
    std::net::UdpSocket::bind((ip, 0))
        .and_then(|s| s.local_addr())
        .expect("bind a probe socket")
        .port()
}

/// `estudely run` on its own thread.
fn spawn_run(db: &Path, boot: &str, bind: &str, extra: &[&str]) -> thread::JoinHandle<Finished> {
    let mut args: Vec<String> = [
        "run",
        "--db",
        db.to_str().unwrap(),
        "--bootstrap",
        boot,
        "--bind",
        bind,
        "--rate",
        "100",
        // Every torrent here has one seeder: its announcer, or the one the sampled node
        // names in its first `get_peers` reply.
        "--peers-per-infohash",
        "1",
        "--overall-timeout",
        RUN_SECS,
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let done = run_bounded(&args, RUN_LIMIT);
        assert!(done.status.success(), "{args:?}: {}", done.stderr);
        done
    })
}

/// An index's torrents (infohash hex → discovery source) and its `by_source` counts.
fn index(db: &Path) -> (BTreeMap<String, Source>, Vec<(String, u64)>) {
    let mut store = DbUrl::Sqlite(db.to_owned())
        .open_read_only()
        .expect("the index opens read-only");
    let mut all = BTreeMap::new();
    store
        .export(None, &mut |t, _peers| {
            let prev = all.insert(t.torrent.info_hash.to_hex(), t.torrent.source);
            assert!(prev.is_none(), "exported twice: {:?}", t.torrent.info_hash);
            Ok(())
        })
        .unwrap();
    let stats = store.stats().unwrap();
    assert_eq!(stats.torrents, all.len() as u64);
    (all, stats.by_source)
}

/// The summary line of a run (`run: ... stored ...`).
fn summary(stderr: &str) -> &str {
    stderr
        .lines()
        .rfind(|l| l.starts_with("run: ") && l.contains(" stored"))
        .unwrap_or_else(|| panic!("no summary:\n{stderr}"))
}

#[test]
fn harvesting_stores_torrents_that_sampling_alone_cannot_reach() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, per_node) = (NODES.to_string(), TORRENTS_PER_NODE.to_string());
    let mut swarm = Swarm::start_logged(
        &[
            "--nodes",
            &nodes,
            "--torrents-per-node",
            &per_node,
            "--ip-per-slash24",
            "127.47",
            "--lt-defaults",
            "--kinds",
            "v1",
            "--seconds",
            "170",
        ],
        &dir.path().join("swarm.log"),
    );
    let keys = swarm.keys();
    assert_eq!(keys.len(), NODES * TORRENTS_PER_NODE);
    let n0 = &swarm.nodes()[0];
    let boot = format!("{}:{}", n0["ip"].as_str().unwrap(), n0["dht_port"]);

    let ours = [
        format!("127.48.1.1:{}", free_port("127.48.1.1")),
        format!("127.48.2.1:{}", free_port("127.48.2.1")),
    ];
    let (db_on, db_off) = (dir.path().join("on.sqlite"), dir.path().join("off.sqlite"));
    let started = Instant::now();
    let on = spawn_run(&db_on, &boot, &ours[0], &[]);
    let off = spawn_run(&db_off, &boot, &ours[1], &["--no-harvest"]);

    // Announces reach our nodes only if libtorrent knows them: wait (bounded) until both
    // are in the routing tables of 3/4 of the sessions, then have the swarm announce again.
    let known = loop {
        thread::sleep(Duration::from_secs(1));
        let known = swarm.known_by(&ours);
        if known.iter().all(|&k| 4 * k >= 3 * NODES) || started.elapsed() > Duration::from_secs(20)
        {
            break known;
        }
    };
    eprintln!(
        "after {:.1} s, sessions knowing our nodes (harvest, no-harvest): {known:?} of {NODES}",
        started.elapsed().as_secs_f64()
    );
    let re = swarm.cmd(&format!("reannounce {REANNOUNCE_SECS}"));
    assert_eq!(re["announces"], NODES * TORRENTS_PER_NODE, "{re}");

    let (on, off) = (on.join().unwrap(), off.join().unwrap());
    let announces = swarm.announces_to(&ours);
    let known_after = swarm.known_by(&ours);
    eprintln!("harvest run: {}", summary(&on.stderr));
    eprintln!("no-harvest run: {}", summary(&off.stderr));
    eprintln!(
        "sessions knowing our nodes at the end: {known_after:?} of {NODES}; announce_peer \
         libtorrent sent them: {announces:?}"
    );

    let ((got_on, src_on), (got_off, src_off)) = (index(&db_on), index(&db_off));
    for ih in got_on.keys().chain(got_off.keys()) {
        assert!(
            keys.contains(ih),
            "stored a torrent the swarm never had: {ih}"
        );
    }
    let announced_only: Vec<&String> = got_on
        .iter()
        .filter(|(ih, src)| **src == Source::Announce && !got_off.contains_key(*ih))
        .map(|(ih, _)| ih)
        .collect();
    let sampled_only = got_off
        .keys()
        .filter(|ih| !got_on.contains_key(*ih))
        .count();
    eprintln!(
        "of {} torrents: harvest run stored {} (by source {src_on:?}), no-harvest run {} \
         (by source {src_off:?}); {} found by an announce only the harvest run stored; {} \
         only the no-harvest run stored",
        keys.len(),
        got_on.len(),
        got_off.len(),
        announced_only.len(),
        sampled_only,
    );
    assert!(
        got_off.values().all(|s| *s != Source::Announce),
        "the --no-harvest run stored a torrent found by an announce: {src_off:?}"
    );
    assert!(
        got_off.len() < keys.len(),
        "sampling alone reached every torrent: the network is too small to tell"
    );
    assert!(
        !announced_only.is_empty(),
        "no torrent found by an announce that sampling missed\nharvest run:\n{}",
        on.stderr
    );
    assert!(
        got_on.len() > got_off.len(),
        "harvesting stored {} torrents, --no-harvest {}",
        got_on.len(),
        got_off.len()
    );
}
