//! Metadata fetching against hostile in-test peers on 127.0.31.x (and `[::1]`): every
//! attempt ends, is reported with the failure kind of the rule the peer broke (a slow peer by
//! the step timer it stalled), memory stays bounded (measured from /proc; unmeasurable is a
//! failure), and the run goes on to the next peer. No assertion is on the wall clock.

mod metadata_util;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use estudely::fetch::{fetch_many, fetch_one, FailureKind, FetchConfig, Job};
use estudely_krpc::InfoHash;
use metadata_util::{info_dict, run_cli, sha1, Behaviour, FakePeers};

/// The hostile line-up, in the order the CLI tries them, and the kind each must fail with.
const HOSTILE: [(Behaviour, FailureKind); 9] = [
    (Behaviour::BigSize, FailureKind::TooLarge),
    (Behaviour::WrongHash, FailureKind::HashMismatch),
    (Behaviour::SlowHandshake, FailureKind::Timeout),
    (Behaviour::SlowPiece, FailureKind::Timeout),
    (Behaviour::HugeFrame, FailureKind::Protocol),
    (Behaviour::Rejecter, FailureKind::Rejected),
    (Behaviour::OtherInfohash, FailureKind::InfohashMismatch),
    (Behaviour::AcceptClose, FailureKind::Closed),
    (Behaviour::NoExtensions, FailureKind::NoUtMetadata),
];

/// Short timeouts, so the slow peers fail fast.
fn quick() -> FetchConfig {
    FetchConfig {
        connect_timeout: Duration::from_secs(1),
        handshake_timeout: Duration::from_secs(1),
        piece_timeout: Duration::from_secs(1),
        attempt_timeout: Duration::from_secs(3),
        // Loopback test peers.
        addr_policy: estudely_dht_core::AddrPolicy::allow_private(),
        ..FetchConfig::default()
    }
}

/// A port on `ip` that nothing listens on (connecting to it is refused).
fn refused(ip: &str) -> SocketAddr {
    let l = TcpListener::bind((ip, 0)).unwrap();
    l.local_addr().unwrap()
}

fn hostile_peers(ip: &str) -> (FakePeers, Vec<u8>) {
    let info = info_dict("fake.bin");
    let mut behaviours: Vec<Behaviour> = HOSTILE.iter().map(|h| h.0).collect();
    behaviours.push(Behaviour::Good);
    (FakePeers::start(ip, &behaviours, info.clone()), info)
}

#[tokio::test(flavor = "current_thread")]
async fn each_hostile_peer_fails_with_the_kind_of_the_rule_it_broke() {
    let (peers, info) = hostile_peers("127.0.31.1");
    let key = sha1(&info);
    let cfg = quick();
    for (i, (behaviour, want)) in HOSTILE.iter().enumerate() {
        let got = fetch_one(peers.addrs[i], key, &cfg).await;
        let failure = got.expect_err(&format!("{behaviour:?} must fail"));
        // The rule it broke, not a clock, ended the attempt: each fails with its own kind.
        assert_eq!(failure.kind, *want, "{behaviour:?}: {failure}");
        // The two slow peers are cut by the step timer they stall (1 s), not by the 3 s
        // attempt deadline.
        let step = match behaviour {
            Behaviour::SlowHandshake => Some("no handshake within 1s"),
            // Bytes kept coming, but no piece completed: the piece timeout fired.
            Behaviour::SlowPiece => Some("no metadata piece within 1s"),
            _ => None,
        };
        if let Some(step) = step {
            assert!(failure.detail.starts_with(step), "{behaviour:?}: {failure}");
            assert!(
                !failure.detail.contains("attempt deadline"),
                "{behaviour:?}: {failure}"
            );
        }
    }
    let failure = fetch_one(refused("127.0.31.1"), key, &cfg)
        .await
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::Refused, "{failure}");

    let good = fetch_one(peers.addrs[HOSTILE.len()], key, &cfg)
        .await
        .unwrap();
    assert_eq!(good.info, info);
    assert_eq!(good.summary.name, b"fake.bin");
    assert_eq!(
        (good.summary.file_count, good.summary.total_bytes),
        (1, 1_000_000)
    );
    assert_eq!(good.client.as_deref(), Some("fake Good"));
}

#[tokio::test(flavor = "current_thread")]
async fn ipv6_peer_and_batch_api() {
    let v6 = FakePeers::start("::1", &[Behaviour::Good], info_dict("six.bin"));
    let v4 = FakePeers::start("127.0.31.2", &[Behaviour::Rejecter], info_dict("six.bin"));
    let key = InfoHash(sha1(&info_dict("six.bin")));
    let missing = InfoHash([9; 20]);
    let jobs = vec![
        Job {
            info_hash: key,
            peers: vec![v4.addrs[0], v4.addrs[0], v6.addrs[0]],
        },
        Job {
            info_hash: missing,
            peers: vec![refused("127.0.31.2"), refused("::1")],
        },
    ];
    let mut batch = fetch_many(jobs, quick());
    let mut results = Vec::new();
    while let Some(r) = tokio::time::timeout(Duration::from_secs(10), batch.next())
        .await
        .expect("batch finishes")
    {
        results.push(r);
    }
    results.sort_by_key(|r| r.info_hash != key);
    let ok = &results[0];
    let m = ok.metadata.as_ref().expect("metadata over IPv6");
    assert_eq!(m.peer, v6.addrs[0]);
    assert!(m.peer.is_ipv6());
    // The duplicate peer is tried once.
    assert_eq!(ok.failed.len(), 1);
    assert_eq!(ok.failed[0].failure.kind, FailureKind::Rejected);
    assert!(results[1].metadata.is_none());
    assert_eq!(results[1].failed.len(), 2);
    assert_eq!(
        batch.stats().to_string(),
        "1/2 infohashes, 4 attempts: 1 ok, 2 refused, 1 rejected"
    );
}

#[test]
fn cli_tries_every_hostile_peer_then_the_good_one() {
    let (peers, info) = hostile_peers("127.0.31.3");
    let key = hex::encode(sha1(&info));
    let other = "ffffffffffffffffffffffffffffffffffffffff";
    let closer = FakePeers::start("127.0.31.4", &[Behaviour::AcceptClose], Vec::new());
    let mut csv = String::from("infohash,peer_ip,peer_port\n");
    // A second infohash nobody serves.
    csv += &format!("{other},127.0.31.4,{}\n", refused("127.0.31.4").port());
    csv += &format!("{other},127.0.31.4,{}\n", closer.addrs[0].port());
    csv += &format!("{key},127.0.31.3,{}\n", refused("127.0.31.3").port());
    for a in &peers.addrs {
        csv += &format!("{key},{},{}\n", a.ip(), a.port());
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("peers.csv");
    std::fs::write(&file, csv).unwrap();
    let run = run_cli(
        &[
            "metadata",
            "--allow-private",
            file.to_str().unwrap(),
            "--metadata-peer-attempts",
            "20",
            "--connect-timeout",
            "1",
            "--handshake-timeout",
            "1",
            "--piece-timeout",
            "1",
            "--attempt-timeout",
            "3",
        ],
        None,
        Duration::from_secs(30),
    );
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        format!(
            "infohash,name,file_count,total_bytes,piece_length\n{key},fake.bin,1,1000000,16384\n"
        )
    );
    assert_eq!(
        run.stderr.trim_end(),
        "metadata: 1/2 infohashes, 13 attempts: 1 ok, 2 refused, 2 timeout, 2 closed, \
         1 no_ut_metadata, 1 hash_mismatch, 1 too_large, 1 rejected, 1 infohash_mismatch, \
         1 protocol"
    );
    // A 2^40 metadata_size and a 4 GiB frame allocate nothing (and a peak that cannot be
    // read from /proc fails the test).
    let peak = run.peak_rss_kib();
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
    eprintln!("hostile run: {:?}, peak RSS {peak} KiB", run.elapsed);
}

#[test]
fn overall_timeout_prints_what_it_has_and_exits_0() {
    let info = info_dict("late.bin");
    let peers = FakePeers::start(
        "127.0.31.5",
        &[Behaviour::Good, Behaviour::SlowHandshake],
        info.clone(),
    );
    let good = hex::encode(sha1(&info));
    let (slow, unstarted) = ("1".repeat(40), "2".repeat(40));
    let csv = format!(
        "{good},127.0.31.5,{}\n{slow},127.0.31.5,{}\n{unstarted},127.0.31.5,{}\n",
        peers.addrs[0].port(),
        peers.addrs[1].port(),
        peers.addrs[0].port()
    );
    let run = run_cli(
        &[
            "metadata",
            "--allow-private",
            "-",
            "--overall-timeout",
            "1.5",
            "--concurrency",
            "1",
            "--format",
            "jsonl",
        ],
        Some(csv.as_bytes()),
        Duration::from_secs(20),
    );
    assert!(run.status.success(), "{}", run.stderr);
    let rows: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{}", run.stdout);
    assert_eq!(rows[0]["infohash"], good.as_str());
    assert_eq!(rows[0]["name"], "late.bin");
    // One at a time: the good job finished (1 ok), the slow one was cut at the deadline
    // (1 timeout), and the third, waiting for the slot, never started (had it started, its
    // peer would have served the wrong info dict: a third attempt, a hash_mismatch).
    assert_eq!(
        run.stderr.trim_end(),
        "metadata: 1/3 infohashes, 2 attempts: 1 ok, 1 timeout"
    );
}
