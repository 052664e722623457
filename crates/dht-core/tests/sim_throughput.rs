//! A fast crawl keeps the network busy within every budget: on a simulated network of 1,000
//! nodes, each holding infohashes as a DHT stores them (on the nodes closest to each), a
//! crawler allowed 4,000 queries a second sends most of what the per-IP budgets let it
//! (20 queries per IP per 10 s: 2,000 a second here; at least 70 % of it, 85-88 %
//! measured), and never more to any one IP, nor faster than the budget's pace (5 in any
//! 2.5 s).
//!
//! This is what issue 11's loopback throughput rests on: the searches of one node's samples
//! all go to that node's few neighbours, so unless the crawler spreads its running searches
//! over many sampled nodes, it waits on a handful of spent budgets while the rest of the
//! network idles (37 % before the search queue was interleaved by source). Counts on a virtual clock: no wall
//! time is measured. `ESTUDELY_SIM_SEED` replays a seed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use estudely_dht_core::crawl::CrawlConfig;
use estudely_dht_core::krpc::{Body, InfoHash, Message, NodeId, Query};
use estudely_dht_core::sim::{LinkModel, Sim};
use estudely_dht_core::Config;
use rand::{rngs::SmallRng, Rng, SeedableRng};

const NODES: usize = 1_000;
const INFOHASHES: usize = 40_000;
/// Per-IP budget of our node: queries per window.
const PER_IP: usize = 20;
const WINDOW: Duration = Duration::from_secs(10);
/// The pace of the budget: queries per `PACE_SPAN`.
const PACE: usize = 5;
const PACE_SPAN: Duration = Duration::from_millis(2_500);

fn seed() -> u64 {
    std::env::var("ESTUDELY_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261127)
}

/// `NODES` nodes that bootstrap from node 0 and a random earlier node, then infohashes (no
/// peer reachable: the searches run their course) stored on the 8 nodes closest to each.
fn network(seed: u64) -> Sim {
    // One fixed latency: the times the nodes receive queries are the times they were sent,
    // shifted, so the per-IP windows below are checked exactly.
    let link = LinkModel {
        min_latency: Duration::from_millis(20),
        max_latency: Duration::from_millis(20),
        loss: 0.0,
    };
    let mut sim = Sim::new(seed, link);
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x7412);
    sim.grow(NODES, 100, &mut rng, |i| Config {
        seed: seed.wrapping_mul(7_919).wrapping_add(i as u64),
        sample_interval: 60,
        max_torrents: 1_000,
        ..Config::default()
    });
    sim.run_for(Duration::from_secs(60));
    sim.take_events();
    let mut ids: Vec<(NodeId, usize)> = (0..sim.len()).map(|i| (sim.node(i).id(), i)).collect();
    for t in 0..INFOHASHES {
        let ih = InfoHash(rng.gen());
        let peer = SocketAddr::from(([13, 0, 3, (t % 250) as u8 + 1], 6000));
        ids.select_nth_unstable_by_key(7, |(id, _)| id.distance(&ih.0));
        for &(_, i) in &ids[..8] {
            sim.with_node(i, |node, now| node.insert_peer(now, ih, peer, true));
        }
    }
    sim
}

/// The crawler's queries per IP: when each arrived, and whether it was work (`get_peers`,
/// `sample_infohashes`) rather than a walk or a ping.
type Sent = HashMap<IpAddr, Vec<(Instant, bool)>>;

#[test]
fn a_fast_crawl_uses_most_of_the_networks_budget_and_no_more() {
    let seed = seed();
    let mut sim = network(seed);
    let crawl = CrawlConfig {
        max_infohashes: 0,
        bootstrap: vec![sim.addr(0)],
        // What `run --rate 4000` sets (concurrency_for_rate, search_queue_for_rate).
        max_in_flight: 5_000,
        max_concurrent_searches: 2_000,
        max_search_queue: 32_000,
        ..CrawlConfig::default()
    };
    let node = Config {
        seed: seed ^ 0x5eed,
        query_rate: 4_000.0,
        query_burst: 40.0,
        ..Config::default()
    };
    let c = sim.add_crawler(node, crawl);
    let me = sim.addr(c);
    let sent: Rc<RefCell<Sent>> = Rc::default();
    let tap = sent.clone();
    sim.set_tap(Box::new(move |now, from, to, bytes| {
        if from != me {
            return;
        }
        if let Ok(Message {
            body: Body::Query(q),
            ..
        }) = Message::decode(bytes)
        {
            // Every query counts against the budget (walks and pings too); `get_peers` and
            // samples are the work.
            let work = matches!(q, Query::GetPeers { .. } | Query::SampleInfohashes { .. });
            tap.borrow_mut()
                .entry(to.ip())
                .or_default()
                .push((now, work));
        }
    }));

    // Warm up (bootstrap, the first samples), then measure 30 s.
    let start = sim.now();
    sim.run_for(Duration::from_secs(10));
    let from = sim.now();
    sim.run_for(Duration::from_secs(30));
    let to = sim.now();

    let sent = sent.borrow();
    let in_window: usize = sent
        .values()
        .map(|times| {
            times
                .iter()
                .filter(|(t, work)| *work && *t >= from && *t < to)
                .count()
        })
        .sum();
    let ceiling = NODES * PER_IP * 3; // 30 s = three budget windows
    let stats = sim.crawler(c).unwrap().stats();
    eprintln!(
        "seed {seed}: {in_window} queries in 30 s of a ceiling of {ceiling} ({:.0} %), \
         {} infohashes, {} searches waiting or running",
        100.0 * in_window as f64 / ceiling as f64,
        stats.infohashes,
        stats.searches
    );
    assert!(
        stats.searches > 0,
        "the network had searches to give all along: {stats:?}"
    );
    assert!(
        in_window * 10 >= ceiling * 7,
        "{in_window} queries in 30 s: under 70 % of the {ceiling} the budgets allow \
         (seed {seed}, {stats:?})"
    );
    // Never more than the budget to one IP, in any window, nor faster than its pace.
    for (ip, times) in sent.iter() {
        assert!(times.windows(2).all(|w| w[0].0 <= w[1].0));
        for (i, (t, _)) in times.iter().enumerate() {
            for (most, span) in [(PER_IP, WINDOW), (PACE, PACE_SPAN)] {
                let n = times[i..]
                    .iter()
                    .take_while(|(u, _)| *u - *t < span)
                    .count();
                assert!(
                    n <= most,
                    "{n} queries to {ip} within {span:?} from {:?} (seed {seed})",
                    *t - start
                );
            }
        }
    }
}
