//! The budget of metadata in flight (`--fetch-memory`) against hostile peers: 32 in-test
//! peers on 127.0.34.1, each claiming a 32 MiB info dict and then sending nothing, fetched
//! 32 at a time under a 64 MiB budget. Only two may be asked for pieces at once; the
//! others fail as `memory_budget` without a request, and the budget never holds more than
//! its limit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use estudely::fetch::{
    fetch_many, EncryptionPolicy, FailureKind, FetchConfig, Job, MetadataBudget, TransportChoice,
};
use estudely_dht_core::AddrPolicy;
use estudely_krpc::InfoHash;
use estudely_peer_wire::{parse_frame, ExtHandshake, Handshake, Message, Reserved};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const CLAIM: u64 = 32 << 20;
const PEERS: usize = 32;

/// What the hostile peers saw: connections asked for a metadata piece, now and at most.
#[derive(Default)]
struct Seen {
    requested: AtomicUsize,
    most: AtomicUsize,
}

/// Handshake, claim [`CLAIM`] bytes of metadata, then read until told to close: count the
/// connection as requested at its first metadata request.
async fn hostile(mut s: TcpStream, seen: Arc<Seen>, mut close: watch::Receiver<bool>) {
    let mut hs = [0u8; 68];
    if s.read_exact(&mut hs).await.is_err() {
        return;
    }
    let theirs = Handshake::parse(&hs).ok().flatten().expect("a handshake");
    let mut reserved = Reserved::default();
    reserved.set_extensions(true);
    let ours = Handshake {
        reserved,
        info_hash: theirs.info_hash,
        peer_id: *b"-XX0001-greedy-peer!",
    };
    let ext = ExtHandshake {
        ut_metadata: Some(3),
        metadata_size: Some(CLAIM),
        ..ExtHandshake::default()
    };
    let mut out = ours.encode().to_vec();
    Message::Extended {
        id: 0,
        payload: &ext.to_bytes(),
    }
    .encode(&mut out)
    .unwrap();
    if s.write_all(&out).await.is_err() {
        return;
    }
    let (mut buf, mut chunk, mut counted) = (Vec::new(), [0u8; 4096], false);
    loop {
        let n = tokio::select! {
            r = s.read(&mut chunk) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = close.wait_for(|c| *c) => break,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut at = 0;
        while let Some((msg, used)) = parse_frame(&buf[at..], 1 << 20).expect("client frames") {
            at += used;
            // Our ut_metadata id is 3: anything sent to it is a metadata request.
            if matches!(msg, Message::Extended { id: 3, .. }) && !counted {
                counted = true;
                let now = seen.requested.fetch_add(1, Ordering::SeqCst) + 1;
                seen.most.fetch_max(now, Ordering::SeqCst);
            }
        }
        buf.drain(..at);
    }
    if counted {
        seen.requested.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn hostile_size_claims_never_add_up_past_the_budget() {
    let seen = Arc::new(Seen::default());
    let (close_tx, close) = watch::channel(false);
    let mut jobs = Vec::new();
    for i in 0..PEERS {
        let l = TcpListener::bind("127.0.34.1:0").await.unwrap();
        jobs.push(Job {
            info_hash: InfoHash([i as u8 + 1; 20]),
            peers: vec![l.local_addr().unwrap()],
        });
        let (seen, close) = (Arc::clone(&seen), close.clone());
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(hostile(s, Arc::clone(&seen), close.clone()));
            }
        });
    }
    let budget = MetadataBudget::new(2 * CLAIM);
    let cfg = FetchConfig {
        concurrency: PEERS,
        transport: TransportChoice::Tcp,
        encryption: EncryptionPolicy::Off,
        addr_policy: AddrPolicy::permissive(),
        memory: budget.clone(),
        // Those without room give up after the handshakes' time; the two with room would
        // wait for pieces far longer: the test closes them. (Without a budget all 32 are
        // asked for pieces and time out after the piece time: the test fails, not hangs.)
        handshake_timeout: Duration::from_secs(2),
        piece_timeout: Duration::from_secs(30),
        attempt_timeout: Duration::from_secs(60),
        ..FetchConfig::default()
    };
    let mut batch = fetch_many(jobs, cfg);
    let mut kinds = Vec::new();
    while kinds.len() < PEERS - 2 {
        let r = batch.next().await.unwrap();
        assert!(r.metadata.is_none());
        kinds.extend(r.failed.iter().map(|a| a.failure.kind));
    }
    assert_eq!(seen.most.load(Ordering::SeqCst), 2, "peers asked at once");
    assert!(
        kinds.iter().all(|&k| k == FailureKind::MemoryBudget),
        "{kinds:?}"
    );
    assert_eq!(budget.in_use(), 2 * CLAIM);
    assert_eq!(budget.high_water(), 2 * CLAIM);
    assert_eq!(
        batch.stats().failed(FailureKind::MemoryBudget),
        PEERS as u64 - 2
    );
    assert!(batch
        .stats()
        .to_string()
        .contains(&format!("{} memory_budget", PEERS - 2)));

    // The two holding the budget are closed on: they give it back.
    close_tx.send(true).unwrap();
    while let Some(r) = batch.next().await {
        assert_eq!(r.failed[0].failure.kind, FailureKind::Closed, "{r:?}");
    }
    assert_eq!(budget.in_use(), 0);
    assert_eq!(budget.high_water(), 2 * CLAIM);
    assert_eq!(seen.most.load(Ordering::SeqCst), 2);
}
