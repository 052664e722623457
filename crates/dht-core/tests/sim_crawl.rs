//! The crawler on simulated networks of 2,000 nodes (virtual clock, seeded RNG): it finds
//! every announced infohash with its peers; no node ever gets two `sample_infohashes` inside
//! its interval; no IP gets more queries than the per-IP budget; memory stays bounded.
//! `ESTUDELY_SIM_SEED` replays a seed.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use estudely_dht_core::crawl::{CrawlConfig, CrawlEvent};
use estudely_dht_core::krpc::{Body, InfoHash, Message, NodeId, Query};
use estudely_dht_core::sim::{LinkModel, Sim};
use estudely_dht_core::Config;
use rand::{rngs::SmallRng, Rng, SeedableRng};

const INTERVAL: u32 = 120;

fn seed() -> u64 {
    std::env::var("ESTUDELY_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261125)
}

/// `n` nodes that bootstrap from node 0 and a random earlier node.
fn network(n: usize, seed: u64) -> Sim {
    let mut sim = Sim::new(seed, LinkModel::default());
    let mut rng = SmallRng::seed_from_u64(seed ^ 0xb007);
    sim.grow(n, 100, &mut rng, |i| Config {
        seed: seed.wrapping_mul(7_919).wrapping_add(i as u64),
        sample_interval: INTERVAL,
        ..Config::default()
    });
    sim.run_for(Duration::from_secs(120));
    sim.take_events();
    sim
}

/// Store each infohash, with one peer, on the 8 nodes closest to it (as announces would).
fn announce(sim: &mut Sim, count: usize, rng: &mut SmallRng) -> BTreeMap<InfoHash, SocketAddr> {
    let ids: Vec<(NodeId, usize)> = (0..sim.len()).map(|i| (sim.node(i).id(), i)).collect();
    let mut torrents = BTreeMap::new();
    for t in 0..count {
        let ih = InfoHash(rng.gen());
        let peer = SocketAddr::from(([13, 0, 2, (t % 250) as u8 + 1], 6000 + t as u16));
        let mut closest = ids.clone();
        closest.sort_by_key(|(id, _)| id.distance(&ih.0));
        for (_, i) in closest.into_iter().take(8) {
            sim.with_node(i, |node, now| node.insert_peer(now, ih, peer, true));
        }
        torrents.insert(ih, peer);
    }
    torrents
}

#[derive(Default)]
struct Watch {
    /// (to, time) of every sample_infohashes the crawler sent.
    samples: Vec<(SocketAddr, Instant)>,
    /// Times of every query the crawler sent, per destination IP.
    per_ip: HashMap<std::net::IpAddr, Vec<Instant>>,
}

fn watch(sim: &mut Sim, crawler: SocketAddr) -> Rc<RefCell<Watch>> {
    let w = Rc::new(RefCell::new(Watch::default()));
    let w2 = w.clone();
    sim.set_tap(Box::new(move |now, from, to, bytes| {
        if from != crawler {
            return;
        }
        if let Ok(Message {
            body: Body::Query(q),
            ..
        }) = Message::decode(bytes)
        {
            let mut w = w2.borrow_mut();
            w.per_ip.entry(to.ip()).or_default().push(now);
            if matches!(q, Query::SampleInfohashes { .. }) {
                w.samples.push((to, now));
            }
        }
    }));
    w
}

#[test]
fn crawler_finds_every_infohash_politely_on_2000_nodes() {
    let seed = seed();
    let n: usize = std::env::var("SIMN")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let mut sim = network(n, seed);
    let mut rng = SmallRng::seed_from_u64(seed);
    let torrents = announce(&mut sim, 300, &mut rng);
    let crawl = CrawlConfig {
        max_infohashes: 0,
        peers_per_infohash: 5,
        bootstrap: vec![sim.addr(0)],
        ..CrawlConfig::default()
    };
    let node = Config {
        seed: seed ^ 0xc4a1,
        query_rate: 200.0,
        ..Config::default()
    };
    let c = sim.add_crawler(node, crawl);
    let crawler_addr = sim.addr(c);
    let w = watch(&mut sim, crawler_addr);

    let mut found: BTreeMap<InfoHash, BTreeSet<SocketAddr>> = BTreeMap::new();
    for _ in 0..(30 * 60 / 5) {
        sim.run_for(Duration::from_secs(5));
        for (_, e) in sim.take_crawl_events() {
            match e {
                CrawlEvent::InfoHash { info_hash, .. } => {
                    assert!(
                        found.insert(info_hash, BTreeSet::new()).is_none(),
                        "reported once"
                    );
                }
                CrawlEvent::Peer { info_hash, peer } => {
                    found
                        .get_mut(&info_hash)
                        .expect("peer after its infohash")
                        .insert(peer);
                }
                CrawlEvent::SearchDone { .. }
                | CrawlEvent::NodeSampled { .. }
                | CrawlEvent::ScrapeDone { .. } => {}
            }
        }
        if std::env::var("SIMDBG").is_ok() {
            eprintln!(
                "{:?} found {} {:?}",
                sim.elapsed(),
                found.len(),
                sim.crawler(c).unwrap().stats()
            );
        }
        let all_found = torrents
            .iter()
            .all(|(ih, p)| found.get(ih).is_some_and(|s| s.contains(p)));
        if all_found {
            break;
        }
    }
    let missing: Vec<_> = torrents
        .keys()
        .filter(|ih| !found.contains_key(ih))
        .collect();
    let stats = sim.crawler(c).unwrap().stats();
    assert!(
        missing.is_empty(),
        "{} of {} missing after {:?}; {stats:?} (seed {seed})",
        missing.len(),
        torrents.len(),
        sim.elapsed()
    );
    for (ih, peer) in &torrents {
        assert_eq!(
            found[ih],
            BTreeSet::from([*peer]),
            "peers of {ih} (seed {seed})"
        );
    }
    assert_eq!(found.len(), torrents.len(), "nothing invented");

    // Politeness, checked on what the nodes actually received.
    let w = w.borrow();
    let mut last: HashMap<SocketAddr, Instant> = HashMap::new();
    for (to, at) in &w.samples {
        if let Some(prev) = last.insert(*to, *at) {
            assert!(
                *at - prev >= Duration::from_secs(u64::from(INTERVAL)),
                "{to} sampled twice within {INTERVAL} s (seed {seed})"
            );
        }
    }
    assert!(
        w.samples.len() >= sim.len() / 2,
        "sampled {} nodes",
        w.samples.len()
    );
    for (ip, times) in &w.per_ip {
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .take_while(|u| **u - *t < Duration::from_secs(10))
                .count();
            assert!(
                in_window <= 20,
                "{ip} got {in_window} queries in 10 s (seed {seed})"
            );
        }
    }
}

#[test]
fn crawler_memory_is_bounded_as_the_network_grows() {
    let seed = seed() ^ 3;
    let mut sim = network(2500, seed);
    let crawl = CrawlConfig {
        max_infohashes: 0,
        max_known_nodes: 500,
        max_frontier: 200,
        bootstrap: vec![sim.addr(0)],
        ..CrawlConfig::default()
    };
    let c = sim.add_crawler(
        Config {
            seed: 1,
            query_rate: 200.0,
            ..Config::default()
        },
        crawl,
    );
    let mut peak = 0;
    for _ in 0..60 {
        sim.run_for(Duration::from_secs(5));
        let s = sim.crawler(c).unwrap().stats();
        if std::env::var("SIMDBG").is_ok() {
            eprintln!("{:?} {s:?}", sim.elapsed());
        }
        assert!(s.nodes_known <= 500 && s.frontier <= 200, "{s:?}");
        peak = peak.max(s.nodes_known);
    }
    let s = sim.crawler(c).unwrap().stats();
    assert!(
        s.samples_sent > 1000,
        "kept crawling with bounded memory: {s:?}"
    );
    assert!(peak > 200, "memory was used: {peak}");
}
