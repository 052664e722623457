//! The crawler's peer searches as a pipeline that fetches wants them: stopped at the first
//! peer, continued on request; and the room sampling keeps for them in the search queue.

use super::*;

/// The `get_peers` among `sent`, by node.
fn get_peers_to(sent: &[(SocketAddr, Message)], ih: InfoHash) -> Vec<SocketAddr> {
    sent.iter()
        .filter(|(_, m)| {
            matches!(m.body, Body::Query(Query::GetPeers { info_hash, .. }) if info_hash == ih)
        })
        .map(|(a, _)| *a)
        .collect()
}

/// Node 2 samples `ih` and, asked for its peers, gives one and names nodes 3 and 4;
/// returns the `get_peers` sent before and after its reply.
fn search_with_one_peer(
    r: &mut Rig,
    ih: InfoHash,
    peer: SocketAddr,
) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    let sent = sample_reply(r, &[ih]);
    let first = get_peers_to(&sent, ih);
    let gp = sent
        .iter()
        .find(|(a, m)| *a == addr(2) && matches!(m.body, Body::Query(Query::GetPeers { .. })))
        .expect("get_peers to the sampling node")
        .clone();
    r.reply(
        &gp,
        Response {
            id: NodeId([2; 20]),
            values: vec![peer],
            nodes: vec![node(3), node(4)],
            ..Response::default()
        },
    );
    (first, get_peers_to(&r.sent(), ih))
}

#[test]
fn a_search_for_a_fetch_stops_at_its_first_peer_and_goes_on_when_asked() {
    let ih = InfoHash([0x33; 20]);
    let peer = SocketAddr::from(([127, 0, 9, 50], 51413));
    // The control: searching for 20 peers, the sampling node's one peer is not the end.
    let mut full = Rig::new();
    let (first, then) = search_with_one_peer(&mut full, ih, peer);
    assert_eq!(first, [addr(2), addr(1)], "two at once");
    assert!(!then.is_empty(), "searches on for more peers");

    let mut r = Rig::with(CrawlConfig {
        peers_for_fetch: 1,
        ..CrawlConfig::default()
    });
    let (first, then) = search_with_one_peer(&mut r, ih, peer);
    assert_eq!(first, [addr(2)], "the sampling node alone first");
    assert!(then.is_empty(), "one peer is enough: {then:?}");
    let ev = r.events();
    assert!(ev.contains(&CrawlEvent::Peer {
        info_hash: ih,
        peer
    }));
    let next = ev
        .iter()
        .find_map(|e| match e {
            CrawlEvent::SearchDone {
                info_hash,
                peers: 1,
                queries: 1,
                next_nodes,
                ..
            } if *info_hash == ih => Some(*next_nodes),
            _ => None,
        })
        .expect("done after one query, with one peer");
    let next: Vec<SocketAddr> = next.iter().flatten().map(|n| n.addr).collect();
    assert_eq!(next.len(), 2, "the nodes it would ask next: {next:?}");
    assert!(!next.contains(&addr(2)));
    assert_eq!(r.c.stats().searches_stopped_early, 1);

    // The fetch failed on it: the search goes on, from other nodes than the sampling one.
    let now = r.now;
    // A node closer to the infohash than any in the routing table (as the other nodes that
    // store it are).
    let next = [Some(node(0x30)), None];
    assert!(
        !r.c.resume_search(now, ih, addr(2), &[peer; 20], next),
        "nothing more wanted"
    );
    assert!(r.c.resume_search(now, ih, addr(2), &[peer], next));
    assert!(
        !r.c.resume_search(now, ih, addr(2), &[peer], next),
        "already going on"
    );
    assert_eq!(r.c.stats().searches_resumed, 1);
    let sent = r.sent();
    let to = get_peers_to(&sent, ih);
    assert_eq!(to, [addr(0x30)], "the next node given, alone");
    let gp = sent.iter().find(|(a, _)| *a == addr(0x30)).unwrap().clone();
    let peer2 = SocketAddr::from(([127, 0, 9, 51], 51413));
    r.reply(
        &gp,
        Response {
            id: NodeId([0x30; 20]),
            values: vec![peer, peer2],
            ..Response::default()
        },
    );
    let ev = r.events();
    assert!(
        ev.contains(&CrawlEvent::Peer {
            info_hash: ih,
            peer: peer2
        }),
        "{ev:?}"
    );
    assert!(
        !ev.contains(&CrawlEvent::Peer {
            info_hash: ih,
            peer
        }),
        "the tried peer is not reported again"
    );
    // A second node with nothing new ends the continuation: the DHT knows no more.
    let sent = r.sent();
    let to = get_peers_to(&sent, ih);
    assert_eq!(to.len(), 1, "one at a time: {to:?}");
    assert_ne!(to[0], addr(2), "not the first again");
    let gp = sent.iter().find(|(a, _)| *a == to[0]).unwrap().clone();
    r.reply(
        &gp,
        Response {
            id: NodeId([9; 20]),
            values: vec![peer2],
            ..Response::default()
        },
    );
    assert!(get_peers_to(&r.sent(), ih).is_empty());
    let ev = r.events();
    assert!(
        ev.iter().any(|e| matches!(
            e,
            CrawlEvent::SearchDone { info_hash, peers: 2, queries: 2, .. } if *info_hash == ih
        )),
        "{ev:?}"
    );
}

/// Sampling keeps room in the search queue for 20 samples per reply in flight (what
/// libtorrent sends), not 128 (the most a datagram holds): with room for 160, eight samples
/// go out at once where one did.
#[test]
fn sampling_reserves_search_room_for_twenty_samples_a_reply() {
    let mut r = Rig::with(CrawlConfig {
        max_search_queue: 160,
        ..CrawlConfig::default()
    });
    let sent = r.sent();
    let nodes: Vec<CompactNode> = (10..40).map(node).collect();
    r.reply(
        &sent[0],
        Response {
            id: NodeId([1; 20]),
            nodes,
            ..Response::default()
        },
    );
    let samples = r
        .sent()
        .iter()
        .filter(|(_, m)| matches!(m.body, Body::Query(Query::SampleInfohashes { .. })))
        .count();
    assert_eq!(samples, 8, "(8 + 1) x 20 > 160");
}

/// A reply with more samples than the search queue has room for: the rest are reported,
/// each with a search that ended at once, never dropped, and the queue never outgrows its
/// cap.
#[test]
fn samples_beyond_the_search_queue_are_reported_unsearched() {
    let mut r = Rig::with(CrawlConfig {
        max_search_queue: 40,
        ..CrawlConfig::default()
    });
    let ihs: Vec<InfoHash> = (0..60).map(|i| InfoHash([i + 1; 20])).collect();
    sample_reply(&mut r, &ihs);
    let ev = r.events();
    let found = ev
        .iter()
        .filter(|e| matches!(e, CrawlEvent::InfoHash { .. }))
        .count();
    let unsearched = ev
        .iter()
        .filter(|e| matches!(e, CrawlEvent::SearchDone { queries: 0, .. }))
        .count();
    assert_eq!((found, unsearched), (60, 20), "{ev:?}");
    assert_eq!(r.c.stats().unsearched, 20);
    assert!(r.c.stats().search_queue <= 40);
}
