//! The crawler against hand-written replies: the BEP 51 path, the find_node fallback, the
//! interval bookkeeping and lie detection, one datagram at a time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use estudely_krpc::{
    codes, Body, CompactNode, ErrorMsg, InfoHash, Message, NodeId, Query, Response,
};

use super::{CrawlConfig, CrawlEvent, Crawler};
use crate::Config;

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 9, i], 6881))
}

struct Rig {
    c: Crawler,
    now: Instant,
}

impl Rig {
    fn new() -> Rig {
        Rig::with(CrawlConfig::default())
    }

    /// A crawler with `cfg` (no infohash limit, bootstrapping from node 1), started.
    fn with(cfg: CrawlConfig) -> Rig {
        Rig::with_node(Config::default(), cfg)
    }

    /// [`Rig::with`], its node configured by `node_config`.
    fn with_node(node_config: Config, cfg: CrawlConfig) -> Rig {
        let now = Instant::now();
        let cfg = CrawlConfig {
            max_infohashes: 0,
            bootstrap: vec![addr(1)],
            ..cfg
        };
        let mut c = Crawler::new(node_config, cfg, now);
        c.handle_timeout(now);
        Rig { c, now }
    }

    /// Every query sent since the last call, decoded.
    fn sent(&mut self) -> Vec<(SocketAddr, Message)> {
        std::iter::from_fn(|| self.c.poll_transmit())
            .map(|t| (t.to, Message::decode(&t.bytes).unwrap()))
            .collect()
    }

    fn reply(&mut self, to: &(SocketAddr, Message), r: Response) {
        self.reply_as(to, None, r);
    }

    /// Reply with client version `v`.
    fn reply_as(&mut self, to: &(SocketAddr, Message), v: Option<&[u8]>, r: Response) {
        let m = Message {
            tid: to.1.tid.clone(),
            version: v.map(|v| estudely_krpc::Version::new(v).unwrap()),
            ip: None,
            read_only: false,
            body: Body::Response(r),
        };
        self.c.handle_datagram(self.now, to.0, &m.encode());
    }

    fn events(&mut self) -> Vec<CrawlEvent> {
        std::iter::from_fn(|| self.c.poll_event()).collect()
    }

    /// Answer the bootstrap walk with node `n`, and return the query then sent to it.
    fn bootstrap_to(&mut self, n: u8) -> (SocketAddr, Message) {
        let sent = self.sent();
        self.reply(
            &sent[0],
            Response {
                id: NodeId([1; 20]),
                nodes: vec![node(n)],
                ..Response::default()
            },
        );
        let sent = self.sent();
        sent.into_iter()
            .find(|(a, _)| *a == addr(n))
            .expect("the listed node is queried")
    }
}

fn node(i: u8) -> CompactNode {
    CompactNode {
        id: NodeId([i; 20]),
        addr: addr(i),
    }
}

#[test]
fn bootstrap_walk_then_sample_then_search() {
    let mut r = Rig::new();
    let sent = r.sent();
    assert_eq!(sent.len(), 1);
    assert!(
        matches!(sent[0].1.body, Body::Query(Query::FindNode { .. })),
        "bootstrap walks"
    );
    r.reply(
        &sent[0],
        Response {
            id: NodeId([1; 20]),
            nodes: vec![node(2)],
            ..Response::default()
        },
    );
    let sent = r.sent();
    let to2 = sent
        .iter()
        .find(|(a, _)| *a == addr(2))
        .expect("samples the new node")
        .clone();
    assert!(matches!(
        to2.1.body,
        Body::Query(Query::SampleInfohashes { .. })
    ));
    let ih = InfoHash([7; 20]);
    r.reply(
        &to2,
        Response {
            id: NodeId([2; 20]),
            samples: vec![ih],
            interval: Some(300),
            num: Some(1),
            ..Response::default()
        },
    );
    assert_eq!(
        r.events(),
        vec![
            CrawlEvent::NodeSampled {
                from: addr(2),
                version: None,
                interval: Some(300),
            },
            CrawlEvent::InfoHash {
                info_hash: ih,
                from: addr(2),
                announced: false,
            }
        ]
    );
    // Peer discovery starts at the node that sampled it.
    let sent = r.sent();
    let gp = sent
        .iter()
        .find(|(a, m)| *a == addr(2) && matches!(m.body, Body::Query(Query::GetPeers { info_hash, .. }) if info_hash == ih))
        .expect("get_peers to the sampling node")
        .clone();
    let peer = SocketAddr::from(([127, 0, 9, 50], 51413));
    r.reply(
        &gp,
        Response {
            id: NodeId([2; 20]),
            values: vec![peer],
            ..Response::default()
        },
    );
    let ev = r.events();
    assert!(
        ev.contains(&CrawlEvent::Peer {
            info_hash: ih,
            peer
        }),
        "{ev:?}"
    );
}

#[test]
fn interval_is_honoured_and_lies_dropped() {
    let mut r = Rig::new();
    let sent = r.sent();
    r.reply(
        &sent[0],
        Response {
            id: NodeId([1; 20]),
            nodes: vec![node(2), node(3)],
            ..Response::default()
        },
    );
    let sent = r.sent();
    let to2 = sent.iter().find(|(a, _)| *a == addr(2)).unwrap().clone();
    let to3 = sent.iter().find(|(a, _)| *a == addr(3)).unwrap().clone();
    // Node 3 lies: `num` says 1 but it sends 3 samples.
    let lies: Vec<InfoHash> = (10..13).map(|b| InfoHash([b; 20])).collect();
    r.reply(
        &to3,
        Response {
            id: NodeId([3; 20]),
            samples: lies,
            interval: Some(60),
            num: Some(1),
            ..Response::default()
        },
    );
    // Node 2 repeats a sample: also a lie.
    let dup = InfoHash([20; 20]);
    r.reply(
        &to2,
        Response {
            id: NodeId([2; 20]),
            samples: vec![dup, dup],
            interval: Some(600),
            num: Some(5),
            ..Response::default()
        },
    );
    assert!(r.events().is_empty(), "nothing from liars is reported");
    assert_eq!(r.c.stats().lies, 2);
    // Node 2 asked for 600 s: nothing is sent to it before then, even as time passes.
    for step in 1..=59 {
        r.now += Duration::from_secs(10);
        let now = r.now;
        r.c.handle_timeout(now);
        let sent = r.sent();
        let again = sent.iter().any(|(a, m)| {
            *a == addr(2) && matches!(m.body, Body::Query(Query::SampleInfohashes { .. }))
        });
        assert!(!again, "re-sampled node 2 after {} s", step * 10);
        // The nodes answer the crawler's idle find_node walks, so they stay known.
        for q in sent
            .iter()
            .filter(|(_, m)| matches!(m.body, Body::Query(Query::FindNode { .. })))
        {
            let id = NodeId(
                [q.0.ip()
                    .to_string()
                    .rsplit('.')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap(); 20],
            );
            r.reply(
                q,
                Response {
                    id,
                    ..Response::default()
                },
            );
        }
    }
    r.now += Duration::from_secs(20);
    let now = r.now;
    r.c.handle_timeout(now);
    let sent = r.sent();
    assert!(
        sent.iter()
            .any(|(a, m)| *a == addr(2)
                && matches!(m.body, Body::Query(Query::SampleInfohashes { .. }))),
        "asked again once its interval passed"
    );
}

#[test]
fn nodes_without_bep51_are_walked_with_find_node() {
    let mut r = Rig::new();
    let to4 = r.bootstrap_to(4);
    let err = Message {
        tid: to4.1.tid.clone(),
        version: None,
        ip: None,
        read_only: false,
        body: Body::Error(ErrorMsg {
            code: codes::METHOD_UNKNOWN,
            message: "Method Unknown".into(),
            id: None,
            reflected_port: None,
        }),
    };
    let now = r.now;
    r.c.handle_datagram(now, addr(4), &err.encode());
    let sent = r.sent();
    assert!(
        sent.iter()
            .any(|(a, m)| *a == addr(4) && matches!(m.body, Body::Query(Query::FindNode { .. }))),
        "falls back to find_node: {sent:?}"
    );
    assert_eq!(r.c.known.peek(&addr(4)).unwrap().bep51, Some(false));
}

/// Advance the clock by `secs` in steps of 100 ms, collecting what is sent.
fn run(r: &mut Rig, secs: u64) -> Vec<(SocketAddr, Message)> {
    let mut out = Vec::new();
    for _ in 0..secs * 10 {
        r.now += Duration::from_millis(100);
        r.c.handle_timeout(r.now);
        out.extend(r.sent());
    }
    out
}

#[test]
fn a_silent_bootstrap_node_is_asked_again_once_per_timeout_not_more() {
    let mut r = Rig::new();
    assert_eq!(r.sent().len(), 1);
    // Nothing ever answers: after each 3 s timeout the node is asked again at once, four
    // times per round at most, and the rounds back off (10 s, 20 s, 40 s, ...); it is not
    // written off as dead after `dead_after` timeouts: it is the only way in.
    let first = run(&mut r, 60);
    assert!(first.iter().all(|(to, _)| *to == addr(1)));
    assert!(
        (12..=16).contains(&first.len()),
        "{} queries in the first minute",
        first.len()
    );
    let later = run(&mut r, 540);
    assert!(later.iter().all(|(to, _)| *to == addr(1)));
    assert!(
        (5..=15).contains(&later.len()),
        "{} queries in the next 9 minutes: rounds back off",
        later.len()
    );
}

#[test]
fn node_query_reports_a_refusal_as_it_is_not_as_busy() {
    // Callers retry `Busy` at once (a search puts the node back first in line): a dead or
    // refused address reported as `Busy` made a crawl spin on it forever.
    let now = Instant::now();
    let mut node = crate::Node::new(Config::default(), now);
    let to = SocketAddr::from(([10, 0, 0, 1], 6881));
    let id = node.query(
        now,
        to,
        Query::Ping {
            id: NodeId([0; 20]),
        },
    );
    let done = std::iter::from_fn(|| node.poll_event()).find_map(|e| match e {
        crate::Event::QueryDone { id: i, result, .. } if i == id => Some(result),
        _ => None,
    });
    assert!(
        matches!(done, Some(Err(crate::QueryError::Refused(_)))),
        "{done:?}"
    );
}

/// Announce harvesting: a node that announces itself to our node (valid token) gives us a
/// new infohash and its first peer, reported once; a bad token gives nothing; with
/// `harvest` off, announces are stored (we are an honest node) but not reported.
#[test]
fn announces_to_our_node_are_discoveries() {
    fn ask(r: &mut Rig, from: SocketAddr, tid: &[u8], q: Query) -> Option<Message> {
        let m = Message {
            tid: estudely_krpc::TransactionId::new(tid).unwrap(),
            version: None,
            ip: None,
            read_only: false,
            body: Body::Query(q),
        };
        let now = r.now;
        r.c.handle_datagram(now, from, &m.encode());
        r.sent()
            .into_iter()
            .find(|(to, m)| *to == from && !matches!(m.body, Body::Query(_)))
            .map(|(_, m)| m)
    }
    fn announce(r: &mut Rig, from: SocketAddr, ih: InfoHash, token_ok: bool) {
        let reply = ask(
            r,
            from,
            b"g1",
            Query::GetPeers {
                id: NodeId([7; 20]),
                info_hash: ih,
                want: Default::default(),
                noseed: false,
                scrape: false,
            },
        )
        .expect("get_peers answered");
        let Body::Response(resp) = reply.body else {
            panic!("{reply:?}")
        };
        let token = if token_ok {
            resp.token.expect("a token")
        } else {
            estudely_krpc::Token::new(b"forged").unwrap()
        };
        ask(
            r,
            from,
            b"a1",
            Query::AnnouncePeer {
                id: NodeId([7; 20]),
                info_hash: ih,
                port: 51413,
                implied_port: false,
                token,
                seed: false,
            },
        );
    }
    let announcer = addr(7);
    let peer = SocketAddr::new(announcer.ip(), 51413);
    let (ih, forged) = (InfoHash([0x42; 20]), InfoHash([0x43; 20]));

    let mut r = Rig::new();
    announce(&mut r, announcer, ih, true);
    announce(&mut r, announcer, forged, false);
    announce(&mut r, announcer, ih, true);
    let ev = r.events();
    let found: Vec<&CrawlEvent> = ev
        .iter()
        .filter(|e| matches!(e, CrawlEvent::InfoHash { .. }))
        .collect();
    assert_eq!(
        found,
        vec![&CrawlEvent::InfoHash {
            info_hash: ih,
            from: announcer,
            announced: true,
        }],
        "reported once, forged token ignored: {ev:?}"
    );
    assert!(ev.contains(&CrawlEvent::Peer {
        info_hash: ih,
        peer
    }));
    assert_eq!(r.c.stats().harvested, 1);
    assert_eq!(r.c.stats().infohashes, 1);

    let mut r = Rig::with(CrawlConfig {
        harvest: false,
        ..CrawlConfig::default()
    });
    announce(&mut r, announcer, ih, true);
    assert!(r.events().is_empty(), "--no-harvest: nothing reported");
    assert_eq!(
        r.c.node().stats().torrents,
        1,
        "but stored, as an honest node does"
    );
}

/// Warm start: the nodes a crawl found good are saved, and a new crawler started from them
/// samples them at once, before (and without) any bootstrap walk; refused addresses in a
/// saved list are not taken.
#[test]
fn a_warm_start_begins_with_the_saved_nodes() {
    let mut r = Rig::new();
    let to2 = r.bootstrap_to(2);
    r.reply(
        &to2,
        Response {
            id: NodeId([2; 20]),
            samples: vec![InfoHash([5; 20])],
            interval: Some(600),
            num: Some(1),
            ..Response::default()
        },
    );
    let good = r.c.good_nodes(100);
    assert!(good.contains(&node(2)), "{good:?}");
    let cold =
        r.c.stats()
            .walks_before_first_sample
            .expect("a sample came");
    assert!(cold >= 1, "a walk, then a sample: {cold}");

    let now = Instant::now();
    let cfg = CrawlConfig {
        max_infohashes: 0,
        bootstrap: vec![addr(1)],
        ..CrawlConfig::default()
    };
    let mut c = Crawler::new(Config::default(), cfg, now);
    let mut saved = good.clone();
    saved.push(CompactNode {
        id: NodeId([9; 20]),
        addr: "10.0.0.9:6881".parse().unwrap(),
    });
    assert_eq!(
        c.warm_start(now, &saved),
        good.len(),
        "the private address is refused"
    );
    c.handle_timeout(now);
    let mut r = Rig { c, now };
    let sent = r.sent();
    assert!(
        sent.iter()
            .any(|(a, m)| *a == addr(2)
                && matches!(m.body, Body::Query(Query::SampleInfohashes { .. }))),
        "samples the saved node first: {sent:?}"
    );
    assert!(
        !sent
            .iter()
            .any(|(a, m)| *a == addr(1) && matches!(m.body, Body::Query(Query::FindNode { .. }))),
        "no bootstrap walk while saved nodes are known: {sent:?}"
    );
    let to2 = sent
        .iter()
        .find(|(a, _)| *a == addr(2))
        .expect("sampled")
        .clone();
    r.reply(
        &to2,
        Response {
            id: NodeId([2; 20]),
            samples: vec![InfoHash([6; 20])],
            interval: Some(600),
            num: Some(1),
            ..Response::default()
        },
    );
    let warm =
        r.c.stats()
            .walks_before_first_sample
            .expect("a sample came");
    assert!(warm < cold, "warm {warm} queries, cold {cold}");
}

/// Node 2 answers its sample with `ihs`; returns the queries sent after it.
fn sample_reply(r: &mut Rig, ihs: &[InfoHash]) -> Vec<(SocketAddr, Message)> {
    let to2 = r.bootstrap_to(2);
    r.reply(
        &to2,
        Response {
            id: NodeId([2; 20]),
            samples: ihs.to_vec(),
            interval: Some(300),
            num: Some(ihs.len() as u32),
            ..Response::default()
        },
    );
    r.sent()
}

#[test]
fn a_cancelled_search_sends_nothing_more_and_reports_nothing() {
    let ihs: Vec<InfoHash> = (0..40).map(|i| InfoHash([i + 1; 20])).collect();
    let mut r = Rig::with(CrawlConfig {
        max_concurrent_searches: 2,
        ..CrawlConfig::default()
    });
    let sent = sample_reply(&mut r, &ihs);
    let asked = |sent: &[(SocketAddr, Message)], ih: InfoHash| {
        sent.iter().any(|(_, m)| {
            matches!(m.body, Body::Query(Query::GetPeers { info_hash, .. }) if info_hash == ih)
        })
    };
    assert!(asked(&sent, ihs[0]), "the first search runs");
    // One running, one queued, one unknown.
    assert!(r.c.cancel_search(&ihs[0]));
    assert!(r.c.cancel_search(&ihs[39]));
    assert!(!r.c.cancel_search(&InfoHash([0xee; 20])));
    assert!(!r.c.cancel_search(&ihs[0]), "once");
    assert_eq!(r.c.stats().searches_cancelled, 2);
    for _ in 0..200 {
        r.now += Duration::from_secs(5);
        let now = r.now;
        r.c.handle_timeout(now);
        let sent = r.sent();
        assert!(!asked(&sent, ihs[0]) && !asked(&sent, ihs[39]), "cancelled");
    }
    let done: Vec<InfoHash> = r
        .events()
        .into_iter()
        .filter_map(|e| match e {
            CrawlEvent::SearchDone { info_hash, .. } => Some(info_hash),
            _ => None,
        })
        .collect();
    assert_eq!(done.len(), 38, "every other search ends: {done:?}");
    assert!(!done.contains(&ihs[0]) && !done.contains(&ihs[39]));
}

#[test]
fn a_full_seen_set_stops_sampling_unless_told_to_forget() {
    let ihs: Vec<InfoHash> = (0..6).map(|i| InfoHash([i + 1; 20])).collect();
    for forget in [false, true] {
        let mut r = Rig::with(CrawlConfig {
            max_seen_infohashes: 4,
            forget_seen_when_full: forget,
            ..CrawlConfig::default()
        });
        sample_reply(&mut r, &ihs);
        let found = r
            .events()
            .iter()
            .filter(|e| matches!(e, CrawlEvent::InfoHash { .. }))
            .count();
        let stats = r.c.stats();
        if forget {
            assert_eq!(found, 6, "a new generation after 4");
            assert_eq!((stats.seen_full, stats.seen_generations), (false, 1));
        } else {
            assert_eq!(found, 4, "stops at the cap");
            assert!(stats.seen_full);
        }
    }
}

#[test]
fn each_node_is_reported_once_on_its_first_usable_sample_reply() {
    let mut r = Rig::new();
    let sent = r.sent();
    r.reply(
        &sent[0],
        Response {
            id: NodeId([1; 20]),
            nodes: vec![node(2), node(3), node(4)],
            ..Response::default()
        },
    );
    let sent = r.sent();
    let to = |n: u8| sent.iter().find(|(a, _)| *a == addr(n)).unwrap().clone();
    let (to2, to3, to4) = (to(2), to(3), to(4));
    // Node 3 lies (num 1, two samples): not reported.
    r.reply_as(
        &to3,
        Some(b"XX\x01\x02"),
        Response {
            id: NodeId([3; 20]),
            samples: vec![InfoHash([30; 20]), InfoHash([31; 20])],
            interval: Some(60),
            num: Some(1),
            ..Response::default()
        },
    );
    // Node 4 answers without BEP 51 fields: reported, without an interval.
    r.reply_as(
        &to4,
        Some(b"UT\x03\x04"),
        Response {
            id: NodeId([4; 20]),
            ..Response::default()
        },
    );
    r.reply_as(
        &to2,
        Some(b"LT\x02\x01"),
        Response {
            id: NodeId([2; 20]),
            samples: vec![InfoHash([7; 20])],
            interval: Some(120),
            num: Some(1),
            ..Response::default()
        },
    );
    let nodes = |ev: Vec<CrawlEvent>| -> Vec<CrawlEvent> {
        ev.into_iter()
            .filter(|e| matches!(e, CrawlEvent::NodeSampled { .. }))
            .collect()
    };
    assert_eq!(
        nodes(r.events()),
        [
            CrawlEvent::NodeSampled {
                from: addr(4),
                version: Some(b"UT\x03\x04".to_vec()),
                interval: None,
            },
            CrawlEvent::NodeSampled {
                from: addr(2),
                version: Some(b"LT\x02\x01".to_vec()),
                interval: Some(120),
            },
        ]
    );
    // Sampled again once its interval passed: not reported again.
    r.now += Duration::from_secs(600);
    let now = r.now;
    r.c.handle_timeout(now);
    let sent = r.sent();
    let again = sent
        .iter()
        .find(|(a, m)| {
            *a == addr(2) && matches!(m.body, Body::Query(Query::SampleInfohashes { .. }))
        })
        .expect("node 2 sampled again")
        .clone();
    r.reply_as(
        &again,
        Some(b"LT\x02\x01"),
        Response {
            id: NodeId([2; 20]),
            samples: vec![InfoHash([8; 20])],
            interval: Some(120),
            num: Some(1),
            ..Response::default()
        },
    );
    assert!(nodes(r.events()).is_empty());
}

#[test]
fn a_search_started_again_asks_new_nodes_at_once_without_waiting_for_an_event() {
    let ih = InfoHash([7; 20]);
    let mut r = Rig::new();
    let sent = sample_reply(&mut r, &[ih]);
    let get_peers = |sent: &[(SocketAddr, Message)]| {
        sent.iter()
            .filter(|(_, m)| {
                matches!(m.body, Body::Query(Query::GetPeers { info_hash, .. }) if info_hash == ih)
            })
            .cloned()
            .collect::<Vec<_>>()
    };
    let empty = |i: u8| Response {
        id: NodeId([i; 20]),
        ..Response::default()
    };
    // The search asks the sampling node and the bootstrap node (all it knows).
    let first = get_peers(&sent);
    let asked: Vec<SocketAddr> = first.iter().map(|(a, _)| *a).collect();
    assert_eq!(asked, [addr(2), addr(1)], "{sent:?}");
    r.reply(&first[0], empty(2));
    assert!(get_peers(&r.sent()).is_empty(), "one query still out");
    // Meanwhile node 3 makes itself known (it pings us): the table grows.
    let ping = Message {
        tid: estudely_krpc::TransactionId::new(b"pp").unwrap(),
        version: None,
        ip: None,
        read_only: false,
        body: Body::Query(Query::Ping {
            id: NodeId([3; 20]),
        }),
    };
    let now = r.now;
    r.c.handle_datagram(now, addr(3), &ping.encode());
    let sent = r.sent();
    assert!(get_peers(&sent).is_empty());
    // We ping it back before it joins the table; it answers.
    let back = sent
        .iter()
        .find(|(a, m)| *a == addr(3) && matches!(m.body, Body::Query(Query::Ping { .. })))
        .expect("a ping back")
        .clone();
    r.reply(&back, empty(3));
    assert!(get_peers(&r.sent()).is_empty());
    // Nothing anywhere and no closer node: the search ends empty-handed and is started once
    // more from the table as it is now, asking only the node it did not ask before. That
    // query goes out within this same call: nothing else is in flight, so no other event
    // would ever come to send it.
    r.reply(&first[1], empty(1));
    let again = get_peers(&r.sent());
    let asked: Vec<SocketAddr> = again.iter().map(|(a, _)| *a).collect();
    assert_eq!(
        asked,
        [addr(3)],
        "the second try is sent at once, to new nodes only"
    );
    assert!(r
        .events()
        .iter()
        .all(|e| !matches!(e, CrawlEvent::SearchDone { .. })));
    // Its reply ends it for good: reported once, not started a third time.
    r.reply(&again[0], empty(3));
    assert!(get_peers(&r.sent()).is_empty());
    let done = r
        .events()
        .into_iter()
        .filter(
            |e| matches!(e, CrawlEvent::SearchDone { info_hash, peers: 0, .. } if *info_hash == ih),
        )
        .count();
    assert_eq!(done, 1);
}

/// A lost sample reply: the node is asked again once `min_resample` (60 s) and a query
/// timeout have passed, not twice that (the wait doubles from the second loss on), so a
/// short crawl on a lossy network samples it again.
#[test]
fn a_lost_sample_is_asked_again_after_min_resample_then_twice_that() {
    let mut r = Rig::new();
    let first = r.bootstrap_to(2);
    assert!(matches!(
        first.1.body,
        Body::Query(Query::SampleInfohashes { .. })
    ));
    let samples_to_2 = |sent: &[(SocketAddr, Message)]| {
        sent.iter()
            .filter(|(a, m)| {
                *a == addr(2) && matches!(m.body, Body::Query(Query::SampleInfohashes { .. }))
            })
            .count()
    };
    // Lost: no reply. It times out after 3 s; nothing for 60 s and one more query timeout
    // (a slow node may have answered it late) from then, then a sample.
    assert_eq!(samples_to_2(&run(&mut r, 65)), 0);
    assert_eq!(samples_to_2(&run(&mut r, 3)), 1, "asked again 63 s on");
    // Lost again (timeout at 3 s after it): the wait doubles.
    assert_eq!(samples_to_2(&run(&mut r, 122)), 0);
    assert_eq!(samples_to_2(&run(&mut r, 3)), 1, "asked again 123 s on");
}

mod scraping;
mod searching;
