use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use estudely_krpc::{Body, Message, NodeId, Query, Response, TransactionId, Want};

use super::node::Node;
use super::*;

fn world(torrents: u64, nodes: usize) -> Arc<World> {
    let cfg = WorldConfig {
        torrents,
        nodes,
        seeders: 4,
        interval: 60,
        seed: 9,
        ..WorldConfig::default()
    };
    let addrs = (0..nodes)
        .map(|k| SocketAddr::from((node_ip(cfg.base_ip, k).unwrap(), 6881)))
        .collect();
    Arc::new(World::new(cfg, addrs))
}

fn ask(node: &mut Node, now: Instant, query: Query) -> Response {
    let from = SocketAddr::from((Ipv4Addr::new(127, 9, 9, 9), 4000));
    let msg = Message {
        tid: TransactionId::new(b"aa").unwrap(),
        version: None,
        ip: None,
        read_only: false,
        body: Body::Query(query),
    };
    let mut out = Vec::new();
    node.answer(now, from, &msg.encode(), &mut out);
    match Message::decode(&out).unwrap().body {
        Body::Response(r) => r,
        other => panic!("{other:?}"),
    }
}

fn sample_query() -> Query {
    Query::SampleInfohashes {
        id: NodeId([1; 20]),
        target: NodeId([2; 20]),
        want: Want::default(),
    }
}

#[test]
fn samples_walk_through_what_a_node_stores_then_wrap() {
    let w = world(1_000, 10);
    let mut node = Node::new(Arc::clone(&w), 3);
    let start = Instant::now();
    let mut seen = Vec::new();
    for round in 0..6 {
        let r = ask(
            &mut node,
            start + Duration::from_secs(61 * round),
            sample_query(),
        );
        assert_eq!(r.interval, Some(60));
        assert_eq!(r.num, Some(100));
        assert_eq!(r.nodes.len(), 8);
        seen.extend(r.samples);
    }
    // 100 stored, 20 a sample: five samples show each once, the sixth starts over.
    let want: Vec<InfoHash> = (0..100).map(|p| torrent(9, 3 + 10 * p).info_hash).collect();
    assert_eq!(seen[..100], want[..]);
    assert_eq!(seen[100..], want[..20]);
    let status = w.status();
    assert_eq!(
        (status.sampled, status.samples, status.early_samples),
        (100, 6, 0)
    );
    let ok = (0..100).filter(|p| fate(9, 3 + 10 * p) == Fate::Ok).count() as u64;
    assert_eq!(status.sampled_ok, ok);
}

#[test]
fn etiquette_is_counted() {
    let w = world(1_000, 10);
    let mut node = Node::new(Arc::clone(&w), 0);
    let t0 = Instant::now();
    ask(&mut node, t0, sample_query());
    ask(&mut node, t0 + Duration::from_secs(59), sample_query());
    assert_eq!(w.status().early_samples, 1);
    ask(&mut node, t0 + Duration::from_secs(120), sample_query());
    assert_eq!(w.status().early_samples, 1);
    // 25 datagrams in 10 s are within budget; the 26th and 27th are not.
    let t1 = t0 + Duration::from_secs(1_000);
    let ping = || Query::Ping {
        id: NodeId([1; 20]),
    };
    for i in 0..25 {
        ask(&mut node, t1 + Duration::from_millis(100 * i), ping());
    }
    assert_eq!(w.status().over_budget, 0);
    ask(&mut node, t1 + Duration::from_millis(9_000), ping());
    ask(&mut node, t1 + Duration::from_millis(9_100), ping());
    assert_eq!(w.status().over_budget, 2);
    // Later, the window has moved on.
    ask(&mut node, t1 + Duration::from_secs(30), ping());
    assert_eq!(w.status().over_budget, 2);
}

#[test]
fn get_peers_answers_with_peers_where_the_torrent_is_held() {
    let w = world(2_000, 50);
    let mut sampler = Node::new(Arc::clone(&w), 7);
    let t0 = Instant::now();
    let samples = ask(&mut sampler, t0, sample_query()).samples;
    let (ih, j) = samples
        .iter()
        .map(|ih| (*ih, w.sampled_index(&ih.0).unwrap()))
        .find(|&(_, j)| fate(9, j) == Fate::Ok)
        .unwrap();
    let gp = || Query::GetPeers {
        id: NodeId([1; 20]),
        info_hash: ih,
        want: Want::default(),
        noseed: false,
        scrape: false,
    };
    // The sampling node has its peers: 1-3 of the seeders.
    let r = ask(&mut sampler, t0, gp());
    assert!(r.token.is_some());
    assert_eq!(r.values, w.peers(j));
    assert!((1..=3).contains(&r.values.len()));
    assert!(r.values.iter().all(|p| w.seeders().contains(p)));
    // So do the 8 nodes closest to it; any other node points closer.
    let closest: HashSet<usize> = w.closest_indices(&ih.0, 8).into_iter().collect();
    for k in 0..50 {
        let r = ask(&mut Node::new(Arc::clone(&w), k), t0, gp());
        if k == 7 || closest.contains(&k) {
            assert_eq!(r.values, w.peers(j), "{k}");
        } else {
            assert!(r.values.is_empty(), "{k}");
            assert_eq!(r.nodes.len(), 8);
        }
    }
    // An infohash never sampled has no peers anywhere.
    let unsampled = torrent(9, 1_999).info_hash;
    let r = ask(
        &mut sampler,
        t0,
        Query::GetPeers {
            id: NodeId([1; 20]),
            info_hash: unsampled,
            want: Want::default(),
            noseed: false,
            scrape: false,
        },
    );
    assert!(r.values.is_empty());
}

#[test]
fn closest_nodes_are_the_xor_closest_of_all() {
    let w = world(100, 3_000);
    for t in 0..200u64 {
        let mut target = [0u8; 20];
        target[..8].copy_from_slice(&mix(t).to_be_bytes());
        target[8..16].copy_from_slice(&mix(t + 1_000).to_be_bytes());
        let got: Vec<NodeId> = w.closest(&target, 8).into_iter().map(|n| n.id).collect();
        let mut all = w.ids.clone();
        all.sort_by_key(|id| id.distance(&target));
        assert_eq!(got, all[..8], "target {t}");
    }
}

#[test]
fn junk_is_counted_and_not_answered() {
    let w = world(100, 4);
    let mut node = Node::new(Arc::clone(&w), 0);
    let mut out = Vec::new();
    let from = SocketAddr::from((Ipv4Addr::LOCALHOST, 1));
    for junk in [
        &b""[..],
        b"d1:y1:qe",
        b"\xff\xff",
        b"d1:rd2:id20:xxxxxxxxxxxxxxxxxxxxe1:t2:aa1:y1:re",
    ] {
        node.answer(Instant::now(), from, junk, &mut out);
        assert!(out.is_empty());
    }
    assert_eq!(w.status().junk, 4);
    assert_eq!(w.status().datagrams_in, 4);
}

#[test]
fn the_seeders_serve_only_sampled_ok_torrents() {
    let w = world(500, 5);
    let served = Served(Arc::clone(&w));
    let mut node = Node::new(Arc::clone(&w), 1);
    let samples = ask(&mut node, Instant::now(), sample_query()).samples;
    for ih in &samples {
        let j = w.sampled_index(&ih.0).unwrap();
        let info = served.info(&ih.0);
        match fate(9, j) {
            Fate::Ok => assert_eq!(info.as_deref(), Some(&torrent(9, j).info[..])),
            _ => assert!(info.is_none()),
        }
    }
    assert!(served.info(&torrent(9, 499).info_hash.0).is_none());
    assert!(w.status().metadata_unknown >= 1);
}

#[test]
fn the_index_finds_every_torrent() {
    let idx = index(9, 500);
    assert_eq!(idx.len(), 500);
    assert_eq!(idx[&torrent(9, 321).info_hash], 321);
}

#[test]
fn addresses() {
    assert_eq!(
        seeder_ip([127, 0, 10], 16, 0),
        Some(Ipv4Addr::new(127, 0, 11, 1))
    );
    assert_eq!(
        seeder_ip([127, 0, 10], 300, 251),
        Some(Ipv4Addr::new(127, 0, 13, 2))
    );
    assert_eq!(seeder_ip([127, 0, 255], 16, 0), None);
}
