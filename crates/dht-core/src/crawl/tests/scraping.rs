//! Re-scrapes of known torrents ([`Crawler::scrape`]): `get_peers` with `scrape=1` to the
//! routing table's nodes closest to the infohash, filters merged, no peer reported, the
//! end reported as [`CrawlEvent::ScrapeDone`]; bounded, and under the per-IP budget.

use std::collections::HashMap;
use std::net::IpAddr;

use super::*;
use crate::bloom::Bloom;

/// A crawler whose routing table holds nodes 1 to 6 (each answered a query).
fn with_table(node_config: Config, cfg: CrawlConfig) -> Rig {
    with_table_but(node_config, cfg, None).0
}

/// [`with_table`], the sample query to node `held` (if any) left unanswered and returned.
fn with_table_but(
    node_config: Config,
    cfg: CrawlConfig,
    held: Option<u8>,
) -> (Rig, Option<(SocketAddr, Message)>) {
    let mut r = Rig::with_node(node_config, cfg);
    let sent = r.sent();
    r.reply(
        &sent[0],
        Response {
            id: NodeId([1; 20]),
            nodes: (2..=6).map(node).collect(),
            ..Response::default()
        },
    );
    let mut kept = None;
    for q in r.sent() {
        let i = (1..=6).find(|&i| addr(i) == q.0).expect("a known node");
        if Some(i) == held {
            kept = Some(q);
            continue;
        }
        r.reply(
            &q,
            Response {
                id: NodeId([i; 20]),
                interval: Some(300),
                num: Some(0),
                ..Response::default()
            },
        );
    }
    let _ = (r.sent(), r.events());
    (r, kept)
}

/// What the crawler sends within the next second (its rate limit holds some queries back
/// for a while).
fn sent_soon(r: &mut Rig) -> Vec<(SocketAddr, Message)> {
    let mut sent = r.sent();
    for _ in 0..10 {
        r.now += Duration::from_millis(100);
        let now = r.now;
        r.c.handle_timeout(now);
        sent.extend(r.sent());
    }
    sent
}

/// The `get_peers` among `sent`, by node, with their `scrape` flag.
fn get_peers(sent: &[(SocketAddr, Message)], ih: InfoHash) -> Vec<(SocketAddr, bool)> {
    sent.iter()
        .filter_map(|(a, m)| match m.body {
            Body::Query(Query::GetPeers {
                info_hash, scrape, ..
            }) if info_hash == ih => Some((*a, scrape)),
            _ => None,
        })
        .collect()
}

fn bloom(ips: std::ops::Range<u8>) -> Option<Box<[u8; 256]>> {
    let mut b = Bloom::new();
    for i in ips {
        b.insert(IpAddr::from([11, 0, 0, i]));
    }
    Some(Box::new(*b.bytes()))
}

/// The `get_peers` sent to `to`.
fn query_to(sent: &[(SocketAddr, Message)], to: SocketAddr) -> (SocketAddr, Message) {
    sent.iter()
        .find(|(a, m)| *a == to && matches!(m.body, Body::Query(Query::GetPeers { .. })))
        .unwrap_or_else(|| panic!("no query to {to}"))
        .clone()
}

#[test]
fn a_rescrape_asks_the_closest_nodes_for_filters_and_reports_their_union() {
    let cfg = CrawlConfig {
        max_scrapes: 2,
        max_scrape_queries: 3,
        ..CrawlConfig::default()
    };
    let mut empty = Rig::with(cfg.clone());
    let now = empty.now;
    assert!(
        !empty.c.scrape(now, InfoHash([3; 20])),
        "no node in the routing table"
    );

    let mut r = with_table(Config::default(), cfg);
    // Closest to [3; 20]: node 3, then 2, 1, 6, 5, 4.
    let ih = InfoHash([3; 20]);
    let now = r.now;
    assert!(r.c.scrape(now, ih));
    assert!(!r.c.scrape(now, ih), "one at a time per infohash");
    assert_eq!(r.c.stats().scrapes, 1);
    let sent = sent_soon(&mut r);
    assert_eq!(
        get_peers(&sent, ih),
        [(addr(3), true), (addr(2), true)],
        "the two closest at once, both asked for a scrape"
    );
    // Node 3: seeds 0..5, peers 10..30, and a peer (not wanted, not reported).
    r.reply(
        &query_to(&sent, addr(3)),
        Response {
            id: NodeId([3; 20]),
            values: vec![SocketAddr::from(([127, 0, 9, 77], 51413))],
            bf_seeds: bloom(0..5),
            bf_peers: bloom(10..30),
            ..Response::default()
        },
    );
    // Node 2: seeds 3..8, no peer filter.
    r.reply(
        &query_to(&sent, addr(2)),
        Response {
            id: NodeId([2; 20]),
            bf_seeds: bloom(3..8),
            ..Response::default()
        },
    );
    let sent = sent_soon(&mut r);
    assert_eq!(
        get_peers(&sent, ih),
        [(addr(1), true), (addr(6), true)],
        "the next closest, two at once again"
    );
    assert!(r.events().is_empty(), "no peer, not done yet");
    // Node 1: nothing. Three answers: the budget is spent, but node 6's answer is still
    // taken (seeds 0..2, known already).
    r.reply(
        &query_to(&sent, addr(1)),
        Response {
            id: NodeId([1; 20]),
            ..Response::default()
        },
    );
    assert!(r.events().is_empty(), "waits for the query in flight");
    r.reply(
        &query_to(&sent, addr(6)),
        Response {
            id: NodeId([6; 20]),
            bf_seeds: bloom(0..2),
            ..Response::default()
        },
    );
    assert!(get_peers(&sent_soon(&mut r), ih).is_empty());
    assert_eq!(
        r.events(),
        [CrawlEvent::ScrapeDone {
            info_hash: ih,
            queries: 4,
            answers: 4,
            filters: 3,
            seeds_estimate: Some(8),
            peers_estimate: Some(20),
        }]
    );
    assert_eq!(r.c.stats().searches, 0);

    // Bounded: two re-scrapes at once, then refused; not cancelled as peer searches; once
    // they end (their queries unanswered), there is room again.
    let (a, b, c) = (InfoHash([4; 20]), InfoHash([5; 20]), InfoHash([6; 20]));
    let now = r.now;
    assert!(r.c.scrape(now, a));
    assert!(r.c.scrape(now, b));
    assert!(!r.c.scrape(now, c), "max_scrapes reached");
    assert!(!r.c.cancel_search(&a));
    let mut ended = Vec::new();
    for _ in 0..600 {
        let _ = sent_soon(&mut r);
        for e in r.events() {
            if let CrawlEvent::ScrapeDone {
                info_hash,
                seeds_estimate: None,
                peers_estimate: None,
                ..
            } = e
            {
                ended.push(info_hash);
            }
        }
        if ended.len() == 2 {
            break;
        }
        assert!(!r.c.scrape(r.now, c), "still two out");
    }
    ended.sort_by_key(|ih| ih.0);
    assert_eq!(ended, [a, b], "ended empty-handed");
    assert!(r.c.scrape(r.now, c));
}

/// A torrent sampled while it is being re-scraped gets no peer search (its end is
/// reported at once), and the caller's cancel leaves the re-scrape running to its end.
#[test]
fn a_discovery_during_a_rescrape_gets_no_search() {
    let (mut r, held) = with_table_but(Config::default(), CrawlConfig::default(), Some(5));
    let sample = held.expect("node 5's sample query");
    let ih = InfoHash([3; 20]);
    let now = r.now;
    assert!(r.c.scrape(now, ih));
    let sent = r.sent();
    r.reply(
        &sample,
        Response {
            id: NodeId([5; 20]),
            samples: vec![ih],
            interval: Some(300),
            num: Some(1),
            ..Response::default()
        },
    );
    let ev = r.events();
    assert!(ev.contains(&CrawlEvent::InfoHash {
        info_hash: ih,
        from: addr(5),
        announced: false
    }));
    assert!(
        ev.iter().any(|e| matches!(
            e,
            CrawlEvent::SearchDone { info_hash, queries: 0, .. } if *info_hash == ih
        )),
        "{ev:?}"
    );
    assert!(
        !r.c.cancel_search(&ih),
        "the re-scrape is not a peer search"
    );
    let mut sent = [sent, sent_soon(&mut r)].concat();
    let mut answered = 0;
    while !sent.is_empty() {
        // Each round answered at once, in order, within the query timeout.
        for q in sent.drain(..) {
            let Body::Query(Query::GetPeers {
                info_hash, scrape, ..
            }) = q.1.body
            else {
                continue;
            };
            assert!(info_hash == ih && scrape, "no search but the re-scrape");
            let i = (1..=6).find(|&i| addr(i) == q.0).expect("a table node");
            r.reply(
                &q,
                Response {
                    id: NodeId([i; 20]),
                    bf_seeds: bloom(0..3),
                    ..Response::default()
                },
            );
            answered += 1;
        }
        sent = sent_soon(&mut r);
    }
    assert_eq!(
        answered, 5,
        "each node of the table once (node 5 answered later)"
    );
    let done: Vec<CrawlEvent> = r
        .events()
        .into_iter()
        .filter(|e| matches!(e, CrawlEvent::ScrapeDone { .. }))
        .collect();
    assert_eq!(
        done,
        [CrawlEvent::ScrapeDone {
            info_hash: ih,
            queries: answered,
            answers: answered,
            filters: answered,
            seeds_estimate: Some(3),
            peers_estimate: None,
        }]
    );
}

/// A discovery still queued is not re-scraped (its search will ask for scrapes itself);
/// once it has started and ended, it may be.
#[test]
fn a_queued_discovery_is_not_rescraped() {
    let mut r = Rig::with(CrawlConfig {
        max_concurrent_searches: 1,
        ..CrawlConfig::default()
    });
    let (ih1, ih2) = (InfoHash([0x41; 20]), InfoHash([0x42; 20]));
    let sent = sample_reply(&mut r, &[ih1, ih2]);
    assert!(!get_peers(&sent, ih1).is_empty());
    assert!(get_peers(&sent, ih2).is_empty(), "one search at a time");
    let now = r.now;
    assert!(!r.c.scrape(now, ih2), "queued");
    assert!(!r.c.scrape(now, ih1), "running");
    assert!(r.c.cancel_search(&ih1));
    assert!(r.c.cancel_search(&ih2));
    assert!(r.c.scrape(now, ih2), "neither queued nor running now");
    assert_eq!(r.c.stats().scrapes, 1);
}

/// Eight re-scrapes (2 answers each at most) under `node_config`, their queries never
/// answered, for 100 s of simulated time in steps of 250 ms: when each `get_peers` went
/// out, by node (each ended, with its event), and when they started.
fn eight_unanswered_rescrapes(node_config: Config) -> (Instant, HashMap<SocketAddr, Vec<Instant>>) {
    let cfg = CrawlConfig {
        max_scrapes: 8,
        max_scrape_queries: 2,
        min_resample: Duration::from_secs(3_600),
        rewalk: Duration::from_secs(3_600),
        ..CrawlConfig::default()
    };
    let mut r = with_table(node_config, cfg);
    // Let the bootstrap's and samples' budget pass.
    r.now += Duration::from_secs(11);
    let ihs: Vec<InfoHash> = (0..8).map(|i| InfoHash([0x10 + i; 20])).collect();
    for ih in &ihs {
        let now = r.now;
        assert!(r.c.scrape(now, *ih));
    }
    let start = r.now;
    let mut per_ip: HashMap<SocketAddr, Vec<Instant>> = HashMap::new();
    let mut done = Vec::new();
    for _ in 0..400 {
        for (to, m) in r.sent() {
            if let Body::Query(Query::GetPeers { scrape, .. }) = m.body {
                assert!(scrape);
                per_ip.entry(to).or_default().push(r.now);
            }
        }
        for e in r.events() {
            if let CrawlEvent::ScrapeDone { info_hash, .. } = e {
                done.push(info_hash);
            }
        }
        r.now += Duration::from_millis(250);
        let now = r.now;
        r.c.handle_timeout(now);
    }
    done.sort_by_key(|ih| ih.0);
    assert_eq!(done, ihs, "every re-scrape ended once");
    let sent: usize = per_ip.values().map(Vec::len).sum();
    assert!(sent >= 8, "each asked at least one node: {sent}");
    (start, per_ip)
}

/// Many re-scrapes towards the same few nodes wait on their per-IP budget (here 3 queries
/// in 10 s): never more than that to one IP, and every one ends, with its event, once the
/// budgets (and the query timeouts of the unanswered queries) have let it through.
#[test]
fn rescrapes_keep_to_the_per_ip_budget_and_all_end() {
    let (start, per_ip) = eight_unanswered_rescrapes(Config {
        per_ip_queries: 3,
        per_ip_burst: 0,
        ..Config::default()
    });
    for (to, times) in &per_ip {
        for w in times.windows(4) {
            assert!(
                w[3] - w[0] >= Duration::from_secs(10),
                "{to}: 4 queries within 10 s: {:?}",
                w.iter().map(|t| *t - start).collect::<Vec<_>>()
            );
        }
    }
}

/// ... and to the global query rate (here 2 a second, 1 at once): never 5 `get_peers` in
/// less than a second, whatever their nodes.
#[test]
fn rescrapes_keep_to_the_global_rate() {
    let (start, per_ip) = eight_unanswered_rescrapes(Config {
        query_rate: 2.0,
        query_burst: 1.0,
        ..Config::default()
    });
    let mut times: Vec<Instant> = per_ip.into_values().flatten().collect();
    times.sort();
    for w in times.windows(5) {
        assert!(
            w[4] - w[0] >= Duration::from_secs(1),
            "5 queries within 1 s: {:?}",
            w.iter().map(|t| *t - start).collect::<Vec<_>>()
        );
    }
}
