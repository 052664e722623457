//! The tokio driver on real loopback sockets: two dual-stack nodes find each other.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use estudely::dht::{DhtError, DhtHandle, DriverConfig, PeersEvent};
use estudely_dht_core::LookupKind;
use estudely_krpc::{Body, InfoHash, NodeId, Query};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Upper bound for every wait, far above what loopback needs: nothing can hang.
const LIMIT: Duration = Duration::from_secs(20);

fn config(bind: &[&str], seed: u64) -> DriverConfig {
    DriverConfig {
        bind: bind.iter().map(|a| a.parse().unwrap()).collect(),
        seed: Some(seed),
        ..DriverConfig::default()
    }
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    timeout(LIMIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within {LIMIT:?}"))
}

/// Poll `node`'s routing table until it holds `id` at every address in `addrs`.
async fn wait_for_entries(node: &DhtHandle, id: NodeId, addrs: &[SocketAddr]) {
    within("routing table", async {
        loop {
            let table = node.routing_nodes().await.unwrap();
            if addrs
                .iter()
                .all(|a| table.iter().any(|n| n.id == id && n.addr == *a))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn two_dual_stack_drivers_bootstrap_from_each_other() {
    let a = DhtHandle::spawn(config(&["127.0.4.2:0", "[::1]:0"], 1)).unwrap();
    let (peers_tx, mut peers_rx) = mpsc::channel::<PeersEvent>(16);
    let b = DhtHandle::spawn(DriverConfig {
        peer_events: Some(peers_tx),
        ..config(&["127.0.4.3:0", "[::1]:0"], 2)
    })
    .unwrap();
    assert_eq!(a.local_addrs().len(), 2);
    assert!(a.local_addrs()[0].is_ipv4() && a.local_addrs()[1].is_ipv6());
    assert_ne!(a.id(), b.id());

    // B bootstraps from both of A's addresses, then A from B's.
    let outcome = within("bootstrap b", b.bootstrap(a.local_addrs()))
        .await
        .unwrap();
    assert!(outcome.queried >= 1, "{outcome:?}");
    wait_for_entries(&b, a.id(), a.local_addrs()).await;
    within("bootstrap a", a.bootstrap(b.local_addrs()))
        .await
        .unwrap();
    wait_for_entries(&a, b.id(), b.local_addrs()).await;
    let stats = a.stats().await.unwrap();
    assert_eq!((stats.nodes_v4, stats.nodes_v6), (1, 1), "{stats:?}");

    // A single query over IPv6: the reply is the whole message, with BEP 42 `ip`.
    let a6 = a.local_addrs()[1];
    let reply = within(
        "ping",
        b.query(
            a6,
            Query::Ping {
                id: NodeId::default(),
            },
        ),
    )
    .await
    .unwrap();
    match reply.body {
        Body::Response(r) => assert_eq!(r.id, a.id()),
        other => panic!("not a response: {other:?}"),
    }
    assert_eq!(reply.ip, Some(b.local_addrs()[1]));

    // A knows a peer; B finds it with a get_peers lookup from its table alone.
    let info_hash = InfoHash([0x42; 20]);
    let peer: SocketAddr = "127.0.4.99:6881".parse().unwrap();
    a.insert_peer(info_hash, peer, false).await.unwrap();
    let outcome = within(
        "lookup",
        b.lookup(LookupKind::GetPeers, NodeId::from(info_hash), &[]),
    )
    .await
    .unwrap();
    assert_eq!(outcome.peers, vec![peer], "{outcome:?}");
    let event = peers_rx
        .try_recv()
        .expect("a Peers event for the subscriber");
    assert_eq!((event.info_hash, event.peers), (info_hash, vec![peer]));
    assert_eq!(event.lookup, outcome.id);
    assert!(a.local_addrs().contains(&event.from));

    // Shutdown ends the task; later calls say so instead of hanging.
    within("shutdown", a.shutdown()).await;
    assert_eq!(a.stats().await.unwrap_err(), DhtError::Stopped);
    let clone = b.clone();
    within("shutdown", clone.shutdown()).await;
    assert_eq!(b.routing_nodes().await.unwrap_err(), DhtError::Stopped);
}

#[tokio::test]
async fn query_timeout_and_bind_errors() {
    // A socket that never answers.
    let silent = std::net::UdpSocket::bind("127.0.4.2:0").unwrap();
    let mut cfg = config(&["127.0.4.2:0"], 3);
    cfg.node.query_timeout = Duration::from_millis(200);
    let node = DhtHandle::spawn(cfg).unwrap();
    let ping = Query::Ping {
        id: NodeId::default(),
    };
    let err = within("timeout", node.query(silent.local_addr().unwrap(), ping))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "no reply within the timeout");
    // An IPv6 destination without an IPv6 socket is dropped, and times out too.
    let ping = Query::Ping {
        id: NodeId::default(),
    };
    let err = within("no v6", node.query("[::1]:9".parse().unwrap(), ping)).await;
    assert!(err.is_err());
    node.shutdown().await;

    assert!(DhtHandle::spawn(config(&[], 0)).is_err());
    assert!(DhtHandle::spawn(config(&["127.0.4.2:0", "127.0.4.3:0"], 0)).is_err());
    let taken = silent.local_addr().unwrap().to_string();
    let err = DhtHandle::spawn(config(&[&taken], 0)).unwrap_err();
    assert!(format!("{err:#}").contains(&taken), "{err:#}");
}
