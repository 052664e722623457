//! The crawler against scripted hostile and faulty nodes, on a virtual clock and without
//! sockets: every datagram it sends is logged, so the tests assert on what went out (no
//! bogon address, no early re-sample, a handful of queries to a dead node).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use estudely_krpc::{Body, CompactNode, InfoHash, Message, NodeId, Query, Response};

use super::{CrawlConfig, CrawlEvent, Crawler};
use crate::addr_policy::{classify, Range};
use crate::Config;

/// A public address (the default policy lets the crawler talk to it).
fn public(i: u8) -> SocketAddr {
    SocketAddr::from(([1, 0, 9, i], 6881))
}

fn compact(id: u8, addr: SocketAddr) -> CompactNode {
    CompactNode {
        id: NodeId([id; 20]),
        addr,
    }
}

/// One datagram the crawler sent.
#[derive(Debug, Clone)]
struct Sent {
    at: Duration,
    to: SocketAddr,
    msg: Message,
}

/// What a scripted node does with a query: the datagrams it sends back (none: silent).
type Script<'a> = dyn FnMut(&Sent) -> Vec<Vec<u8>> + 'a;

struct World {
    c: Crawler,
    t0: Instant,
    now: Duration,
    log: Vec<Sent>,
    events: Vec<CrawlEvent>,
}

impl World {
    fn new(node: Config, crawl: CrawlConfig) -> World {
        let t0 = Instant::now();
        let mut c = Crawler::new(node, crawl, t0);
        c.handle_timeout(t0);
        World {
            c,
            t0,
            now: Duration::ZERO,
            log: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Run for `d` of virtual time in steps of `step`, answering with `script`.
    fn run(&mut self, d: Duration, step: Duration, script: &mut Script<'_>) {
        let end = self.now + d;
        while self.now < end {
            // Deliver until quiet: replies can trigger more queries at the same instant.
            for _ in 0..1_000 {
                let out: Vec<Sent> = std::iter::from_fn(|| self.c.poll_transmit())
                    .map(|t| Sent {
                        at: self.now,
                        to: t.to,
                        msg: Message::decode(&t.bytes).expect("we send valid KRPC"),
                    })
                    .collect();
                if out.is_empty() {
                    break;
                }
                for s in out {
                    let replies = script(&s);
                    let to = s.to;
                    self.log.push(s);
                    for bytes in replies {
                        let now = self.t0 + self.now;
                        self.c.handle_datagram(now, to, &bytes);
                    }
                }
            }
            self.events
                .extend(std::iter::from_fn(|| self.c.poll_event()));
            self.now += step;
            let now = self.t0 + self.now;
            self.c.handle_timeout(now);
        }
    }

    fn samples_to(&self, a: SocketAddr) -> Vec<Duration> {
        self.log
            .iter()
            .filter(|s| s.to == a && is_sample(&s.msg))
            .map(|s| s.at)
            .collect()
    }
}

fn is_sample(m: &Message) -> bool {
    matches!(m.body, Body::Query(Query::SampleInfohashes { .. }))
}

fn reply(to: &Sent, r: Response) -> Vec<u8> {
    Message {
        tid: to.msg.tid.clone(),
        version: None,
        ip: None,
        read_only: false,
        body: Body::Response(r),
    }
    .encode()
}

fn bogons_v4() -> Vec<SocketAddr> {
    [
        "10.0.0.1:6881",
        "192.168.1.1:6881",
        "172.16.0.5:6881",
        "127.0.0.1:6881",
        "0.0.0.0:6881",
        "224.0.0.1:6881",
        "255.255.255.255:6881",
        "169.254.1.1:6881",
        "100.64.1.1:6881",
        "192.0.2.1:6881",
        "240.0.0.1:6881",
        "1.0.9.200:0",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect()
}

fn bogons_v6() -> Vec<SocketAddr> {
    [
        "[fc00::1]:6881",
        "[fe80::1]:6881",
        "[::ffff:10.0.0.1]:6881",
        "[::1]:6881",
        "[ff02::1]:6881",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect()
}

/// A hostile network: every node lists bogon nodes and peers (IPv4 and IPv6), beside a few
/// honest public nodes that hold the real infohashes. Nothing is ever sent to a bogon, the
/// real infohashes and their public peers are still found, refusals are counted by range.
#[test]
fn bogon_nodes_and_peers_are_never_contacted() {
    let node_cfg = Config {
        ipv6: true,
        ..Config::default()
    };
    let crawl = CrawlConfig {
        max_infohashes: 0,
        bootstrap: vec![public(1)],
        ..CrawlConfig::default()
    };
    let mut w = World::new(node_cfg, crawl);
    let good: Vec<InfoHash> = (1..=6).map(|i| InfoHash([0xA0 + i; 20])).collect();
    let real_peer: SocketAddr = "1.0.9.99:51413".parse().unwrap();
    let mut script = |s: &Sent| {
        let i = match s.to.ip() {
            std::net::IpAddr::V4(v4) => v4.octets()[3],
            std::net::IpAddr::V6(_) => return vec![],
        };
        let mut nodes: Vec<CompactNode> = bogons_v4()
            .into_iter()
            .enumerate()
            .map(|(k, a)| compact(100 + k as u8, a))
            .collect();
        nodes.extend((1..=4u8).map(|k| compact(k, public(k))));
        let nodes6 = bogons_v6()
            .into_iter()
            .enumerate()
            .map(|(k, a)| compact(150 + k as u8, a))
            .collect();
        let mut r = Response {
            id: NodeId([i; 20]),
            nodes,
            nodes6,
            ..Response::default()
        };
        match &s.msg.body {
            Body::Query(Query::SampleInfohashes { .. }) => {
                r.samples = good.clone();
                r.num = Some(6);
                r.interval = Some(600);
            }
            Body::Query(Query::GetPeers { .. }) => {
                r.values = bogons_v4();
                r.values.extend(bogons_v6());
                r.values.push(real_peer);
                r.token = Some(estudely_krpc::Token::new(&[1, 2]).unwrap());
            }
            _ => {}
        }
        vec![reply(s, r)]
    };
    w.run(
        Duration::from_secs(300),
        Duration::from_millis(500),
        &mut script,
    );

    let strays: Vec<&Sent> = w.log.iter().filter(|s| classify(&s.to).is_some()).collect();
    assert!(strays.is_empty(), "sent to refused addresses: {strays:?}");
    for ih in &good {
        assert!(
            w.events
                .iter()
                .any(|e| matches!(e, CrawlEvent::InfoHash { info_hash, .. } if info_hash == ih)),
            "good infohash {ih:?} still found"
        );
        assert!(w.events.contains(&CrawlEvent::Peer {
            info_hash: *ih,
            peer: real_peer
        }));
    }
    let peers: Vec<SocketAddr> = w
        .events
        .iter()
        .filter_map(|e| match e {
            CrawlEvent::Peer { peer, .. } => Some(*peer),
            _ => None,
        })
        .collect();
    assert!(peers.iter().all(|p| classify(p).is_none()), "{peers:?}");
    let refused = w.c.stats().addr_refused;
    for r in [
        Range::Private,
        Range::Loopback,
        Range::Unspecified,
        Range::Multicast,
        Range::Broadcast,
        Range::LinkLocal,
        Range::Cgnat,
        Range::Documentation,
        Range::Reserved,
        Range::PortZero,
        Range::Ipv4Mapped,
    ] {
        assert!(
            refused.get(r) > 0,
            "{r} refusals counted: {}",
            refused.describe()
        );
    }
    // The crawler's node refuses them too: nothing refused reached its routing table.
    assert!(w
        .c
        .node()
        .routing_nodes()
        .iter()
        .all(|n| classify(&n.addr).is_none()));
}

/// A node whose replies are lost, malformed, or come under a new id each time, and which
/// every other node keeps listing: it is never sampled twice within 60 s (no interval
/// known) nor within its interval (known), and a silent node gets a handful of queries in
/// a whole run, however often it is rediscovered.
#[test]
fn etiquette_holds_when_replies_are_lost_malformed_or_odd() {
    let crawl = CrawlConfig {
        max_infohashes: 0,
        bootstrap: vec![public(1)],
        ..CrawlConfig::default()
    };
    let mut w = World::new(Config::default(), crawl);
    let (lossy, garbled, shifty, silent, honest) =
        (public(2), public(3), public(4), public(5), public(6));
    let mut n = 0u32;
    let mut script = |s: &Sent| -> Vec<Vec<u8>> {
        n += 1;
        let listing = vec![
            compact(2, lossy),
            compact(3, garbled),
            compact(40 + (n % 50) as u8, shifty),
            compact(5, silent),
            compact(6, honest),
        ];
        let sample = is_sample(&s.msg);
        let base = Response {
            id: NodeId([s.to.ip().to_string().len() as u8; 20]),
            nodes: listing,
            ..Response::default()
        };
        let one = match s.to {
            a if a == silent => return vec![],
            // Every other reply lost.
            a if a == lossy && n.is_multiple_of(2) => return vec![],
            a if a == lossy && sample => reply(
                s,
                Response {
                    samples: vec![InfoHash([8; 20])],
                    num: Some(1),
                    interval: Some(60),
                    ..base
                },
            ),
            a if a == garbled && sample => {
                // The right transaction id in a datagram that does not decode.
                let mut b = reply(s, base);
                b.truncate(b.len() - 3);
                b
            }
            a if a == shifty && sample => reply(
                s,
                Response {
                    id: NodeId([(n % 250) as u8; 20]),
                    samples: vec![InfoHash([(n % 250) as u8; 20])],
                    num: Some(1),
                    interval: Some(120),
                    ..base
                },
            ),
            a if a == honest && sample => reply(
                s,
                Response {
                    samples: vec![InfoHash([9; 20])],
                    num: Some(1),
                    interval: Some(300),
                    ..base
                },
            ),
            _ => reply(s, base),
        };
        vec![one]
    };
    w.run(
        Duration::from_secs(3_600),
        Duration::from_millis(250),
        &mut script,
    );

    let gaps_at_least = |a: SocketAddr, min: Duration| {
        let times = w.samples_to(a);
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= min,
                "{a} sampled at {:?} and again at {:?}",
                pair[0],
                pair[1]
            );
        }
        times.len()
    };
    let m = Duration::from_secs(60);
    eprintln!(
        "samples: lossy {}, garbled {}, shifty {}, honest {}",
        w.samples_to(lossy).len(),
        w.samples_to(garbled).len(),
        w.samples_to(shifty).len(),
        w.samples_to(honest).len()
    );
    assert!(
        gaps_at_least(lossy, m) >= 5,
        "still sampled as its interval allows"
    );
    let garbled_samples = gaps_at_least(garbled, m);
    assert!(
        (1..=7).contains(&garbled_samples),
        "unusable replies back off (60 s, 120 s, 240 s, ...): {garbled_samples} in an hour"
    );
    assert!(gaps_at_least(shifty, Duration::from_secs(120)) >= 10);
    assert!(gaps_at_least(honest, Duration::from_secs(300)) >= 10);
    let to_silent = w.log.iter().filter(|s| s.to == silent).count();
    // Four to write it off, then one each time its wait as a dead address ends (1, 2, 4,
    // ... 32 minutes: see `Config::dead_for`), if it is listed again.
    assert!(
        to_silent <= 10,
        "a node that never answers gets a handful of queries in an hour: {to_silent}"
    );
    assert!(w.c.node().is_dead(&silent));
    // Per-IP budget: no IP gets more than 25 datagrams in any 10 s.
    let mut by_ip: HashMap<std::net::IpAddr, Vec<Duration>> = HashMap::new();
    for s in &w.log {
        by_ip.entry(s.to.ip()).or_default().push(s.at);
    }
    for (ip, times) in by_ip {
        for (i, t) in times.iter().enumerate() {
            let n = times[i..]
                .iter()
                .take_while(|u| **u < *t + Duration::from_secs(10))
                .count();
            assert!(n <= 25, "{n} datagrams to {ip} within 10 s from {t:?}");
        }
    }
}

/// A node that stops answering in time (a busy host reads its queries late: they reach
/// it, its answers come after our timeout) is not sampled again inside the interval its
/// last answer asked for: not by the retry of a timed-out sample, and not when, written off
/// as dead, it is listed again by the nodes around it. The node counts every query that
/// reached it, answered or not.
#[test]
fn a_node_that_answers_too_late_is_not_sampled_inside_its_interval() {
    let crawl = CrawlConfig {
        max_infohashes: 0,
        bootstrap: vec![public(1)],
        ..CrawlConfig::default()
    };
    let mut w = World::new(Config::default(), crawl);
    let (late, lister) = (public(2), public(3));
    let interval = 300u32;
    let mut samples_answered = 0u32;
    let mut script = |s: &Sent| -> Vec<Vec<u8>> {
        let base = Response {
            id: NodeId([s.to.ip().to_string().len() as u8; 20]),
            // Everyone keeps listing the late node.
            nodes: vec![compact(2, late), compact(3, lister)],
            ..Response::default()
        };
        if s.to == late {
            // Its first sample is answered in time; after that, every answer is too late.
            if !is_sample(&s.msg) || samples_answered > 0 {
                return vec![];
            }
            samples_answered += 1;
            return vec![reply(
                s,
                Response {
                    samples: vec![InfoHash([2; 20])],
                    num: Some(1),
                    interval: Some(interval),
                    ..base
                },
            )];
        }
        let r = if is_sample(&s.msg) {
            Response {
                samples: vec![InfoHash([3; 20])],
                num: Some(1),
                interval: Some(60),
                ..base
            }
        } else {
            base
        };
        vec![reply(s, r)]
    };
    w.run(
        Duration::from_secs(4 * 3_600),
        Duration::from_millis(250),
        &mut script,
    );
    let times = w.samples_to(late);
    eprintln!("samples to the late node at {times:?}");
    assert!(
        times.len() >= 2,
        "it was sampled again once its interval ended"
    );
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_secs(u64::from(interval)),
            "sampled at {:?} and again at {:?}: inside its {interval} s interval",
            pair[0],
            pair[1]
        );
    }
}

/// A flood of junk from hostile nodes: garbage, deep nesting, unknown and repeated
/// transaction ids, samples of bad length, absurd `num`, a 10,000-peer answer over several
/// datagrams, one host under hundreds of ids. The crawler's state stays within its caps,
/// its routing table holds no impostor, and the honest node's infohash is found.
#[test]
fn junk_from_hostile_nodes_keeps_state_bounded() {
    let crawl = CrawlConfig {
        max_infohashes: 0,
        peers_per_infohash: 20,
        bootstrap: vec![public(1)],
        ..CrawlConfig::default()
    };
    let mut w = World::new(Config::default(), crawl);
    let honest = public(6);
    let target = InfoHash([0x77; 20]);
    let many_ids_ip = [1, 0, 8, 8];
    let mut n = 0u32;
    let mut script = |s: &Sent| -> Vec<Vec<u8>> {
        n = n.wrapping_add(1);
        // One host lists itself under hundreds of ids and ports.
        let mut nodes: Vec<CompactNode> = (0..8u32)
            .map(|k| {
                let v = n.wrapping_mul(8).wrapping_add(k);
                CompactNode {
                    id: NodeId([(v % 251) as u8; 20]),
                    addr: SocketAddr::from((many_ids_ip, 1000 + (v % 60_000) as u16)),
                }
            })
            .collect();
        nodes.push(compact(6, honest));
        let base = Response {
            id: NodeId([(s.to.port() % 251) as u8; 20]),
            nodes,
            ..Response::default()
        };
        let sample = is_sample(&s.msg);
        let get_peers = matches!(s.msg.body, Body::Query(Query::GetPeers { .. }));
        if s.to == honest {
            let mut r = base;
            if sample {
                r.samples = vec![target];
                r.num = Some(1);
                r.interval = Some(60);
            }
            if get_peers {
                // 10,000 peers over 100 datagrams under one transaction id: the first
                // completes the transaction, the rest are stray replies.
                return (0..100u32)
                    .map(|d| {
                        let values = (0..100u32)
                            .map(|p| {
                                let v = d * 100 + p;
                                SocketAddr::from(([2, 0, (v >> 8) as u8, v as u8], 6881))
                            })
                            .collect();
                        reply(
                            s,
                            Response {
                                values,
                                ..r.clone()
                            },
                        )
                    })
                    .collect();
            }
            return vec![reply(s, r)];
        }
        match n % 7 {
            0 => vec![vec![0xff; 300]],
            1 => {
                let mut deep = b"d1:rd2:id20:aaaaaaaaaaaaaaaaaaaa1:x".to_vec();
                deep.extend(std::iter::repeat_n(b'l', 5_000));
                vec![deep]
            }
            2 => {
                // A reply with a transaction id we never used.
                let mut m = Message::decode(&reply(s, base)).unwrap();
                m.tid = estudely_krpc::TransactionId::new(b"zz").unwrap();
                vec![m.encode()]
            }
            3 => {
                // Samples of a bad length (not a multiple of 20).
                let mut b = reply(s, base);
                let pos = b.windows(8).position(|w| w == b"5:nodes").unwrap_or(0);
                b.splice(
                    pos..pos,
                    b"7:samples21:abcdefghijklmnopqrstu".iter().copied(),
                );
                vec![b]
            }
            4 => vec![reply(
                s,
                Response {
                    samples: (0..40u8).map(|k| InfoHash([k; 20])).collect(),
                    num: Some(u32::MAX),
                    interval: Some(u32::MAX),
                    ..base
                },
            )],
            // The same reply twice: the second repeats a finished transaction id.
            5 => vec![reply(s, base.clone()), reply(s, base)],
            _ => vec![reply(s, base)],
        }
    };
    w.run(
        Duration::from_secs(1_200),
        Duration::from_millis(250),
        &mut script,
    );

    assert!(
        w.events
            .iter()
            .any(|e| matches!(e, CrawlEvent::InfoHash { info_hash, .. } if *info_hash == target)),
        "the honest node's infohash is found"
    );
    let peers = w
        .events
        .iter()
        .filter(|e| matches!(e, CrawlEvent::Peer { info_hash, .. } if *info_hash == target))
        .count();
    assert_eq!(peers, 20, "peers per infohash bounded");
    let s = w.c.stats();
    let cfg = CrawlConfig::default();
    assert!(
        s.frontier <= cfg.max_frontier && s.nodes_known <= cfg.max_known_nodes,
        "{s:?}"
    );
    assert!(s.search_queue <= cfg.max_search_queue, "{s:?}");
    let from_host =
        w.c.known()
            .ids_for_ip(SocketAddr::from((many_ids_ip, 1)).ip());
    assert!(
        from_host <= cfg.max_ids_per_ip,
        "one host, {from_host} known nodes"
    );
    let table = w.c.node().routing_nodes();
    let impostors = table
        .iter()
        .filter(|n| n.addr.ip() == SocketAddr::from((many_ids_ip, 1)).ip())
        .count();
    assert!(
        impostors <= 1,
        "one routing-table entry per IP: {impostors}"
    );
    assert!(w.c.node().stats().in_flight <= Config::default().max_in_flight);
}
