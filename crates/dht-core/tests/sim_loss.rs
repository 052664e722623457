//! The crawler on a lossy simulated network shaped like `estudely testnet` (32 nodes that
//! all know each other, 40 torrents each stored on its 8 closest nodes): with 30 % of the
//! datagrams lost, 45 s crawls still find nearly every torrent with its peer. A crawl gets
//! one sample per node in 45 s (a lost sample is not retried before `min_resample`), so an
//! unlucky seed may miss a cluster of torrents: the test asks at least 90 % on all but 2 of
//! 40 seeds and 97 % over all (measured: 2 seeds of 200 under 90 %). Before the crawler
//! asked a silent bootstrap node again at once (and kept it off the dead list), a lost
//! bootstrap reply stalled or killed whole crawls. The end-to-end twin, with real packet
//! loss, is `estudely`'s `tests/faults.rs`. `ESTUDELY_SIM_SEED` replays one seed.
//!
//! `collect`'s side (searches that stop at the first peer, counted once they end with one)
//! against the clean run of the same seed (`SEEDS=300 cargo nextest run -p
//! estudely-dht-core --test sim_loss --run-ignored only --no-capture`; `SECS=100` for 100 s
//! crawls as `tests/faults.rs` runs them), 300 seeds: over 100 s, 296 seeds at 40 of 40 and
//! 4 at 39; over 75 s, mean 0.997, 287 at 40, 9 at 39, 4 under 95 %. Before the peer
//! searches asked a node that had answered before once more after a lost query (and counted
//! lost queries against twice their budget only), 37 seeds in 100 were short of 40 over
//! 75 s (mean 0.989): 30 % loss each way loses half the queries, and a search that gave
//! each of the 8 nodes storing an infohash one chance ended empty-handed for about one
//! infohash in 200. What is
//! left is sampling: a node whose one sample in the first minute is lost is asked again
//! only after `min_resample` (60 s, an etiquette rule), and what it alone reported late may
//! not be fetched by the end. Earlier fixes: a lost sample was asked again only after
//! twice `min_resample` (now once), a silent bootstrap node got only two quick retries a
//! round (now four), and a search that had its peer still waited for its other query to
//! time out before the fetch could start (now it ends at once).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use estudely_dht_core::crawl::{CrawlConfig, CrawlEvent};
use estudely_dht_core::krpc::{InfoHash, NodeId};
use estudely_dht_core::sim::{LinkModel, Sim};
use estudely_dht_core::Config;
use rand::{rngs::SmallRng, Rng, SeedableRng};

const NODES: usize = 32;
const TORRENTS: usize = 40;

/// `NODES` nodes with relaxed limits (as the testnet's), every one pinged by every other,
/// then bootstrapped from node 0; then `TORRENTS` torrents stored on their 8 closest nodes.
fn testnet(seed: u64) -> (Sim, BTreeSet<InfoHash>) {
    let mut sim = Sim::new(seed, LinkModel::default());
    for i in 0..NODES {
        sim.add_node(Config {
            seed: seed.wrapping_mul(7_919).wrapping_add(i as u64),
            sample_interval: 10,
            query_rate: 1_000.0,
            query_burst: 100.0,
            per_ip_queries: 1_000,
            per_ip_burst: 0,
            max_incoming_per_ip: 100_000,
            ..Config::default()
        });
    }
    for i in 0..NODES {
        for j in (0..NODES).filter(|&j| j != i) {
            let to = sim.addr(j);
            sim.with_node(i, |node, now| node.add_node(now, to));
        }
    }
    sim.run_for(Duration::from_secs(5));
    for i in 1..NODES {
        let boot = [sim.addr(0)];
        sim.with_node(i, |node, now| node.bootstrap(now, &boot));
    }
    sim.run_for(Duration::from_secs(20));
    sim.take_events();

    let mut rng = SmallRng::seed_from_u64(seed);
    let ids: Vec<(NodeId, usize)> = (0..NODES).map(|i| (sim.node(i).id(), i)).collect();
    let mut torrents = BTreeSet::new();
    for t in 0..TORRENTS {
        let ih = InfoHash(rng.gen());
        let peer = std::net::SocketAddr::from(([13, 0, 2, t as u8 + 1], 6881));
        let mut closest = ids.clone();
        closest.sort_by_key(|(id, _)| id.distance(&ih.0));
        for (_, i) in closest.into_iter().take(8) {
            sim.with_node(i, |node, now| node.insert_peer(now, ih, peer, true));
        }
        torrents.insert(ih);
    }
    (sim, torrents)
}

/// Crawl for `secs` with `loss`; the torrents found with a peer.
fn crawl(seed: u64, loss: f64, secs: u64) -> (usize, BTreeSet<InfoHash>) {
    let link = LinkModel {
        loss,
        ..LinkModel::default()
    };
    crawl_over(seed, link, secs)
}

/// Crawl for `secs` over `link`; the torrents found with a peer.
fn crawl_over(seed: u64, link: LinkModel, secs: u64) -> (usize, BTreeSet<InfoHash>) {
    run_over(seed, link, secs, Side::Crawl, Config::default().dead_for)
}

/// `crawl` (every peer found counts) or `collect` (searches stop at the first peer, as for
/// a fetch; an infohash counts once its search has ended with a peer, when `collect` would
/// start its fetch: on the testnet every peer serves its metadata, over TCP, which the
/// loss spares).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Crawl,
    Collect,
}

/// Crawl for `secs` over `link` as `side`, addresses dead for `dead_for`; the torrents
/// found with a peer.
fn run_over(
    seed: u64,
    link: LinkModel,
    secs: u64,
    side: Side,
    dead_for: Duration,
) -> (usize, BTreeSet<InfoHash>) {
    let (mut sim, torrents) = testnet(seed);
    sim.set_link(link);
    let crawl = CrawlConfig {
        max_infohashes: 0,
        bootstrap: vec![sim.addr(0)],
        peers_for_fetch: usize::from(side == Side::Collect),
        ..CrawlConfig::default()
    };
    // `estudely crawl`'s defaults: 25 queries/s.
    let node = Config {
        seed: seed ^ 0xc4a1,
        query_rate: 25.0,
        dead_for,
        ..Config::default()
    };
    sim.add_crawler(node, crawl);
    sim.run_for(Duration::from_secs(secs));
    let found: BTreeSet<InfoHash> = sim
        .take_crawl_events()
        .into_iter()
        .filter_map(|(_, e)| match e {
            CrawlEvent::Peer { info_hash, .. } if side == Side::Crawl => Some(info_hash),
            CrawlEvent::SearchDone {
                info_hash, peers, ..
            } if side == Side::Collect && peers > 0 => Some(info_hash),
            _ => None,
        })
        .collect();
    assert!(found.is_subset(&torrents), "nothing invented (seed {seed})");
    (torrents.len(), found)
}

#[test]
fn thirty_percent_loss_still_finds_ninety_percent_in_45_s() {
    let seeds: Vec<u64> = match std::env::var("ESTUDELY_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("ESTUDELY_SIM_SEED is a number")],
        Err(_) => (0..40).collect(),
    };
    let mut histogram = BTreeMap::new();
    let (mut short, mut all_found, mut all) = (Vec::new(), 0, 0);
    for &seed in &seeds {
        let (n, found) = crawl(seed, 0.3, 45);
        *histogram.entry(found.len()).or_insert(0) += 1;
        if found.len() * 10 < n * 9 {
            short.push((seed, found.len()));
        }
        all_found += found.len();
        all += n;
    }
    eprintln!("torrents found with a peer: count of seeds {histogram:?}; under 90 %: {short:?}");
    assert!(
        short.len() <= seeds.len() / 20,
        "seeds under 90 % of {TORRENTS} in 45 s at 30 % loss: {short:?}"
    );
    assert!(
        all_found * 100 >= all * 97,
        "{all_found} of {all} torrents over all seeds"
    );
}

/// `collect`'s side (searches stop at the first peer; an infohash counts once its search
/// has ended with one, when `collect` would fetch it), 75 s as in `tests/faults.rs`: with
/// 30 % loss it keeps at least 95 % of what the clean run of the same seed gives on all but
/// one seed in 40, and 99.5 % over all (see the module doc for the distribution; before
/// lost queries were sent again, 98.9 %).
#[test]
fn collect_at_thirty_percent_loss_keeps_ninety_five_percent_of_the_clean_run() {
    let lossy = LinkModel {
        loss: 0.3,
        ..LinkModel::default()
    };
    let dead_for = Config::default().dead_for;
    let (mut short, mut kept, mut clean_all) = (Vec::new(), 0, 0);
    for seed in 0..40 {
        let (_, clean) = run_over(seed, LinkModel::default(), 75, Side::Collect, dead_for);
        let (_, found) = run_over(seed, lossy, 75, Side::Collect, dead_for);
        if found.len() * 100 < clean.len() * 95 {
            short.push((seed, found.len(), clean.len()));
        }
        kept += found.len();
        clean_all += clean.len();
    }
    eprintln!("collect at 30 % loss: {kept} of the clean runs' {clean_all}; under 95 %: {short:?}");
    assert!(
        short.len() <= 1,
        "seeds under 95 % of the clean run: {short:?}"
    );
    assert!(kept * 1000 >= clean_all * 995, "{kept} of {clean_all}");
}

#[test]
fn no_loss_finds_everything() {
    for seed in 0..5 {
        let (all, found) = crawl(seed, 0.0, 45);
        assert_eq!(found.len(), all, "seed {seed}");
    }
}

/// Latency of 200 ± 100 ms each way on top of 30 % loss (round trips of 200-600 ms, well
/// inside the 3 s query timeout): a 75 s crawl still finds at least 90 % of the torrents on
/// all but one seed in 20. Deterministic for a seed.
#[test]
fn slow_and_lossy_links_still_find_ninety_percent() {
    let link = LinkModel {
        min_latency: Duration::from_millis(100),
        max_latency: Duration::from_millis(300),
        loss: 0.3,
    };
    let mut short = Vec::new();
    let (mut all_found, mut all) = (0, 0);
    for seed in 100..120 {
        let (n, found) = crawl_over(seed, link, 75);
        if found.len() * 10 < n * 9 {
            short.push((seed, found.len()));
        }
        all_found += found.len();
        all += n;
    }
    eprintln!("200 +/- 100 ms, 30 % loss: {all_found} of {all}; under 90 %: {short:?}");
    assert!(short.len() <= 1, "seeds under 90 %: {short:?}");
    assert!(all_found * 100 >= all * 95, "{all_found} of {all}");
}

/// Measures (run with `--ignored --nocapture`): `crawl` and `collect` at 30 % loss against
/// the clean run of the same seed, 75 s as in `tests/faults.rs`, with dead addresses
/// forgotten after a minute (now) and never (before).
#[test]
#[ignore]
fn measure_loss_by_side_and_dead_rule() {
    let seeds: u64 = std::env::var("SEEDS").map_or(40, |s| s.parse().unwrap());
    let secs: u64 = std::env::var("SECS").map_or(75, |s| s.parse().unwrap());
    let lossy = LinkModel {
        loss: 0.3,
        ..LinkModel::default()
    };
    let forever = Duration::from_secs(1_000_000);
    for (name, dead_for) in [
        ("dead for 60 s", Config::default().dead_for),
        ("dead for the run", forever),
    ] {
        for side in [Side::Crawl, Side::Collect] {
            let mut ratios = Vec::new();
            for seed in 0..seeds {
                let (_, clean) = run_over(seed, LinkModel::default(), secs, side, dead_for);
                let (_, found) = run_over(seed, lossy, secs, side, dead_for);
                let ratio = found.len() as f64 / clean.len().max(1) as f64;
                if ratio < 0.95 {
                    eprintln!("  seed {seed}: {} of {}", found.len(), clean.len());
                }
                ratios.push(ratio);
            }
            ratios.sort_by(f64::total_cmp);
            let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
            let under = |x: f64| ratios.iter().filter(|r| **r < x).count();
            eprintln!(
                "{name}, {side:?}: mean {mean:.3}, min {:.3}, 5th pct {:.3}, median {:.3}; under 0.98: {}, under 0.95: {}, under 0.90: {} of {seeds}",
                ratios[0],
                ratios[ratios.len() / 20],
                ratios[ratios.len() / 2],
                under(0.98),
                under(0.95),
                under(0.90),
            );
        }
    }
}
