//! A batch against peers that many of its jobs share, with in-test peers on 127.0.36.x:
//! jobs queued behind one busy peer hold no connection permit (the others go on around
//! them), the jobs in progress are bounded, and an address that refused is not tried again
//! by the next jobs. Assertions are on counts and on the order of results, never on the
//! wall clock; the timeouts below only end what a broken fetcher would leave waiting.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use estudely::fetch::{
    fetch_many, EncryptionPolicy, FailureKind, FetchConfig, Job, TransportChoice,
};
use estudely::seeder::Seeder;
use estudely_dht_core::AddrPolicy;
use estudely_krpc::InfoHash;
use sha1::Digest as _;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

/// A small valid info dict, its own for each `i`, and its infohash.
fn torrent(i: usize) -> ([u8; 20], Arc<[u8]>) {
    let name = format!("t{i:05}");
    let info = format!(
        "d6:lengthi1e4:name{}:{name}12:piece lengthi16384e6:pieces20:{}e",
        name.len(),
        "a".repeat(20)
    );
    (
        sha1::Sha1::digest(info.as_bytes()).into(),
        info.into_bytes().into(),
    )
}

/// A peer that accepts and says nothing: it holds each connection until `release` turns
/// true, then closes it (and closes the later ones at once). Returns its address and the
/// count of connections it accepted.
async fn silent_peer(ip: &str, release: watch::Receiver<bool>) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let mut release = release.clone();
            tokio::spawn(async move {
                let _ = release.wait_for(|r| *r).await;
                drop(s);
            });
        }
    });
    (addr, accepted)
}

/// One seeder of one torrent per job.
async fn fast_jobs(ip: &str, from: usize, n: usize) -> (Vec<Job>, Vec<Seeder>) {
    let (mut jobs, mut seeders) = (Vec::new(), Vec::new());
    for i in from..from + n {
        let (key, info) = torrent(i);
        let s = Seeder::spawn(
            format!("{ip}:0").parse().unwrap(),
            HashMap::from([(key, info)]),
        )
        .await
        .unwrap();
        jobs.push(Job {
            info_hash: InfoHash(key),
            peers: vec![s.addr()],
        });
        seeders.push(s);
    }
    (jobs, seeders)
}

fn slow_jobs(peer: SocketAddr, from: usize, n: usize) -> Vec<Job> {
    (from..from + n)
        .map(|i| Job {
            info_hash: InfoHash(torrent(i).0),
            peers: vec![peer],
        })
        .collect()
}

fn cfg(concurrency: usize, handshake_timeout: Duration) -> FetchConfig {
    FetchConfig {
        concurrency,
        transport: TransportChoice::Tcp,
        encryption: EncryptionPolicy::Off,
        addr_policy: AddrPolicy::permissive(),
        handshake_timeout,
        attempt_timeout: Duration::from_secs(120),
        ..FetchConfig::default()
    }
}

/// 100 jobs whose only peer never answers, queued first, then 100 jobs with peers of their
/// own (half of them listing the silent peer first), 4 connections at a time: the 100 fast
/// jobs all end while the silent peer still holds its first connection (the only one it
/// got). Before the fix, the first 4 jobs took the 4 permits, one connected and three
/// waited for its turn: nothing else ran until the silent peer's handshake time (20 s,
/// there to end the test) ran out, and the first result was that timeout.
#[tokio::test]
async fn jobs_behind_a_busy_peer_leave_the_connections_to_the_others() {
    let (release_tx, release) = watch::channel(false);
    let (silent, accepted) = silent_peer("127.0.36.1", release).await;
    let mut jobs = slow_jobs(silent, 0, 100);
    let (mut fast, _seeders) = fast_jobs("127.0.36.2", 100, 100).await;
    // Half of them list the silent peer first: busy, it is tried after their own.
    for j in fast.iter_mut().step_by(2) {
        j.peers.insert(0, silent);
    }
    let fast_keys: HashSet<InfoHash> = fast.iter().map(|j| j.info_hash).collect();
    jobs.extend(fast);

    let mut batch = fetch_many(jobs, cfg(4, Duration::from_secs(20)));
    for n in 0..100 {
        let r = batch.next().await.unwrap();
        assert!(
            fast_keys.contains(&r.info_hash),
            "result {n} is a job of the silent peer, before the fast ones ended: {:?}",
            r.failed
        );
        assert!(r.metadata.is_some(), "{:?}", r.failed);
        assert!(r.failed.is_empty(), "{:?}", r.failed);
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "the silent peer holds its first connection, and only one"
    );

    release_tx.send(true).unwrap();
    let mut kinds = Vec::new();
    while let Some(r) = batch.next().await {
        assert!(!fast_keys.contains(&r.info_hash));
        kinds.extend(r.failed.iter().map(|a| a.failure.kind));
    }
    assert_eq!(kinds.len(), 100, "one attempt per job of the silent peer");
    assert!(kinds.iter().all(|&k| k == FailureKind::Closed), "{kinds:?}");
    assert_eq!(batch.stats().obtained, 100);
}

/// The jobs in progress are bounded: with 2 connections, 32 tasks per connection, and 64
/// jobs of one silent peer queued first, a 65th job (with a peer of its own, and a
/// connection permit free) cannot start before one of the 64 ends. Without the bound it
/// would start at once and end first.
#[tokio::test]
async fn the_jobs_in_progress_are_bounded() {
    let (release_tx, release) = watch::channel(false);
    let (silent, _) = silent_peer("127.0.36.3", release).await;
    let mut jobs = slow_jobs(silent, 1000, 64);
    let (fast, _seeders) = fast_jobs("127.0.36.4", 2000, 1).await;
    let fast_key = fast[0].info_hash;
    jobs.extend(fast);

    // The silent peer's first connection ends at the handshake time, the others at once.
    let mut batch = fetch_many(jobs, cfg(2, Duration::from_secs(2)));
    let first = batch.next().await.unwrap();
    assert_ne!(
        first.info_hash, fast_key,
        "the 65th job ran beside 64 in progress"
    );
    assert_eq!(first.failed[0].failure.kind, FailureKind::Timeout);
    release_tx.send(true).unwrap();
    let mut obtained = 0;
    while let Some(r) = batch.next().await {
        obtained += usize::from(r.metadata.is_some());
    }
    assert_eq!(obtained, 1);
}

/// The first-byte of a uTP SYN (type 4, version 1) and the connection id it carries.
fn utp_syn_id(datagram: &[u8]) -> Option<u16> {
    (datagram.len() >= 20 && datagram[0] == 0x41)
        .then(|| u16::from_be_bytes([datagram[2], datagram[3]]))
}

/// Two jobs of one address that refuses TCP and never answers uTP (a dead peer under
/// `--transport both`): the first tries and fails as `refused`, the second fails at once as
/// `refused_recently`, without a connection: the uTP SYNs that reach the address all belong
/// to one connection.
#[tokio::test]
async fn an_address_that_refused_is_not_tried_again() {
    // uTP lands here; nothing listens on the TCP port of the same number.
    let udp = UdpSocket::bind("127.0.36.5:0").await.unwrap();
    let dead = udp.local_addr().unwrap();
    let jobs = slow_jobs(dead, 3000, 2);
    let cfg = FetchConfig {
        transport: TransportChoice::Both,
        connect_timeout: Duration::from_secs(1),
        ..cfg(2, Duration::from_secs(10))
    };
    let mut batch = fetch_many(jobs, cfg);
    let mut kinds = Vec::new();
    while let Some(r) = batch.next().await {
        assert_eq!(r.failed.len(), 1);
        kinds.push(r.failed[0].failure.kind);
    }
    let mut connections = HashSet::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = udp.try_recv(&mut buf) {
        connections.extend(utp_syn_id(&buf[..n]));
    }
    assert_eq!(
        connections.len(),
        1,
        "uTP connections tried: {connections:?}"
    );
    assert_eq!(
        kinds,
        [FailureKind::Refused, FailureKind::RefusedRecently],
        "{:?}",
        batch.stats()
    );
    assert_eq!(batch.stats().failed(FailureKind::RefusedRecently), 1);
}

/// A connection that cannot start on our side (here: a `--bind` address this host does not
/// have) fails as `local_error` and is not remembered as the peer's refusal: the next job
/// of that peer tries again. (Counted as `refused`, a few failed binds once marked every
/// seeder of a world as refusing for 10 minutes.)
#[tokio::test]
async fn a_local_failure_is_not_the_peers_refusal() {
    let (jobs, _seeders) = fast_jobs("127.0.36.6", 4000, 1).await;
    let jobs = vec![jobs[0].clone(), jobs[0].clone()];
    let cfg = FetchConfig {
        // A documentation address: the bind fails, nothing is sent.
        local_ips: vec!["192.0.2.1".parse().unwrap()],
        ..cfg(2, Duration::from_secs(10))
    };
    let mut batch = fetch_many(jobs, cfg);
    let mut kinds = Vec::new();
    while let Some(r) = batch.next().await {
        kinds.extend(r.failed.iter().map(|a| a.failure.kind));
    }
    assert_eq!(kinds, [FailureKind::LocalError, FailureKind::LocalError]);
}
