use std::collections::BTreeSet;
use std::time::Duration;

use estudely_krpc::{Body, Message, NodeId, Query, TransactionId};

use super::*;

fn small(seed: u64, nodes: u32) -> ProcNet {
    ProcNet::new(ProcConfig {
        seed,
        nodes,
        infohashes: u64::from(nodes) * 2,
        ..ProcConfig::default()
    })
}

fn query(q: Query) -> Vec<u8> {
    Message {
        tid: TransactionId::new(b"aa").unwrap(),
        version: None,
        ip: None,
        read_only: false,
        body: Body::Query(q),
    }
    .encode()
}

#[test]
fn closest_nodes_are_exactly_the_xor_closest() {
    let net = small(3, 3_000);
    let mut rng = 77u64;
    for round in 0..300u64 {
        rng = mix(rng);
        let mut target = [0u8; 20];
        for (k, b) in target.iter_mut().enumerate() {
            *b = (mix(rng ^ k as u64) & 0xff) as u8;
        }
        let t = round * 600;
        let got: Vec<NodeId> = net.closest(&target, t, 8).iter().map(|n| n.id).collect();
        let mut all: Vec<([u8; 20], NodeId)> = (0..3_000)
            .map(|i| {
                let id = net.id(i, net.session(i, t).0);
                let mut d = id.0;
                for (x, y) in d.iter_mut().zip(target) {
                    *x ^= y;
                }
                (d, id)
            })
            .collect();
        all.sort();
        let want: Vec<NodeId> = all.iter().take(8).map(|(_, id)| *id).collect();
        assert_eq!(got, want, "target {target:?} at {t}");
    }
}

#[test]
fn infohashes_are_distinct_found_again_and_stored_where_said() {
    let net = small(5, 2_000);
    let mut all = BTreeSet::new();
    for j in 0..4_000 {
        let ih = net.infohash(j);
        assert_eq!(net.infohash_index(&ih), Some(j));
        assert!(all.insert(ih));
        let (a, b) = net.replicas(j);
        assert!(b - a + 1 >= 8 && b - a < 64);
        for i in a..=b {
            assert!(net.stored(i as u32).contains(&j), "{j} at {i}");
        }
    }
    let total: usize = (0..2_000).map(|i| net.stored(i).len()).sum();
    let replicas: u64 = (0..4_000)
        .map(|j| net.replicas(j).1 - net.replicas(j).0 + 1)
        .sum();
    assert_eq!(
        total as u64, replicas,
        "stored() is exactly the inverse of replicas()"
    );
    let mut forged = net.infohash(7);
    forged.0[19] ^= 1;
    assert_eq!(net.infohash_index(&forged), None);
    // Popularity is skewed: most swarms are tiny, a few are large.
    let sizes: Vec<u64> = (0..4_000).map(|j| net.swarm(j)).collect();
    assert!(sizes.iter().filter(|&&s| s <= 2).count() > 2_500);
    assert!(sizes.iter().any(|&s| s >= 100));
}

#[test]
fn answers_follow_the_model() {
    let mut net = small(9, 5_000);
    let (mut samples, mut refusals, mut silent) = (0, 0, 0);
    for i in 0..400 {
        let (e, online) = net.session(i, 0);
        let to = net.addr(i, e);
        let q = query(Query::SampleInfohashes {
            id: NodeId([1; 20]),
            target: NodeId([2; 20]),
            want: Default::default(),
        });
        let Some((rtt, reply)) = net.answer(0, Duration::ZERO, &to, &q) else {
            silent += 1;
            continue;
        };
        assert!(online && !net.unreachable(i));
        assert!(rtt >= Duration::from_millis(20) && rtt <= Duration::from_millis(500));
        let m = Message::decode(&reply).unwrap();
        match m.body {
            Body::Response(r) => {
                assert!(net.bep51(i));
                assert_eq!(r.id, net.id(i, e));
                let stored = net.stored(i);
                assert_eq!(r.num, Some(stored.len() as u32));
                assert_eq!(r.samples.len(), stored.len().min(20));
                assert!(r
                    .samples
                    .iter()
                    .all(|ih| stored.contains(&net.infohash_index(ih).unwrap())));
                assert_eq!(r.interval, Some(net.interval(i)));
                assert_eq!(r.nodes.len(), 8);
                samples += 1;
            }
            Body::Error(e) => {
                assert!(!net.bep51(i));
                assert_eq!(e.code, 204);
                refusals += 1;
            }
            Body::Query(_) => panic!("a query"),
        }
        // The same slot at another port (an earlier session's address) is gone.
        let mut stale = to;
        stale.set_port(to.port() ^ 1);
        assert!(net.answer(0, Duration::ZERO, &stale, &q).is_none());
    }
    assert!(
        samples > 80 && refusals > 80 && silent > 80,
        "{samples} {refusals} {silent}"
    );
    assert!(net
        .answer(0, Duration::ZERO, &"1.2.3.4:5".parse().unwrap(), b"d1:ad")
        .is_none());
}

fn sim(seed: u64, nodes: u32, rate: f64, shards: u32, known: usize) -> Simulation {
    let mut cfg = SimConfig::new(
        ProcConfig {
            seed,
            nodes,
            infohashes: u64::from(nodes) * 2,
            ..ProcConfig::default()
        },
        rate,
        shards,
    );
    cfg.max_known_nodes = known;
    cfg.check_etiquette = true;
    Simulation::new(&cfg)
}

fn curve(s: &mut Simulation, secs: u64) -> Vec<Checkpoint> {
    let mut out = Vec::new();
    s.run(Duration::from_secs(secs), Duration::from_secs(300), |c| {
        out.push(c.clone())
    });
    out
}

/// A run told to stop ends at once, between two checkpoints, with a checkpoint of where it
/// stopped: the stop is asked before every step of the virtual clock, not at checkpoints.
#[test]
fn a_stopped_run_ends_between_checkpoints() {
    let mut s = sim(41, 20_000, 100.0, 1, 100_000);
    let (mut steps, mut points) = (0, Vec::new());
    let half_hour = Duration::from_secs(1_800);
    let stopped = s.run_until_stopped(
        Duration::from_secs(3_600),
        half_hour,
        |c| points.push(c.clone()),
        || {
            steps += 1;
            steps > 500
        },
    );
    assert!(stopped);
    assert_eq!(steps, 501, "asked once a step, and not again once stopped");
    assert_eq!(points.len(), 1, "only the stop's checkpoint: {points:?}");
    assert!(
        points[0].at < half_hour,
        "before the first checkpoint was due"
    );
    assert!(points[0].queries > 0 && points[0].at == s.elapsed());
    // Never stopped: to the end, as `run`.
    let mut s = sim(41, 20_000, 100.0, 1, 100_000);
    let mut points = Vec::new();
    let stopped = s.run_until_stopped(
        Duration::from_secs(3_600),
        half_hour,
        |c| points.push(c.clone()),
        || false,
    );
    assert!(!stopped);
    assert_eq!(points.len(), 2);
    assert_eq!(s.elapsed(), Duration::from_secs(3_600));
}

#[test]
fn same_seed_same_run() {
    let a = curve(&mut sim(21, 20_000, 100.0, 2, 100_000), 1_200);
    let b = curve(&mut sim(21, 20_000, 100.0, 2, 100_000), 1_200);
    assert_eq!(a, b);
    let c = curve(&mut sim(22, 20_000, 100.0, 2, 100_000), 1_200);
    assert_ne!(a.last().unwrap().found, c.last().unwrap().found);
}

/// A crawler that can keep only 2,000 nodes in full, on a 50,000-node network: it rests
/// what it sampled in its fixed filter, never samples a node inside its interval, keeps
/// its counts of memory bounded, and finds most of what sampling can find.
#[test]
fn crowded_crawl_keeps_etiquette_and_bounded_memory() {
    let mut s = sim(31, 50_000, 200.0, 1, 2_000);
    let points = curve(&mut s, 3_600);
    let end = points.last().unwrap();
    assert_eq!(
        end.net.early_samples, 0,
        "a node sampled inside its interval"
    );
    assert!(end.nodes_rested > 10_000, "{end:?}");
    let budget = crate::crawl::resting_bytes_for_rate(200.0) + s.crawlers[0].seen_bytes();
    for w in points.windows(2) {
        assert!(w[1].found >= w[0].found);
        assert!(w[1].nodes_known <= 2_000, "{:?}", w[1]);
        assert!(
            w[1].filter_bytes <= budget,
            "{} > {budget}",
            w[1].filter_bytes
        );
    }
    // The rate limit holds (a burst at the start aside); a network this small runs out of
    // nodes outside their interval long before the hour is up, and the crawl slows.
    assert!(end.queries <= 200 * 3_600 + 1_000, "{}", end.queries);
    let samplable = s.net().samplable();
    assert!(end.found <= samplable);
    assert!(
        end.found * 10 >= samplable * 8,
        "{} of {samplable}",
        end.found
    );
}

/// The first checkpoint at which `found` reaches `want`.
fn time_to(points: &[Checkpoint], want: u64) -> Option<Duration> {
    points.iter().find(|c| c.found >= want).map(|c| c.at)
}

/// Four crawlers splitting the keyspace, each at the rate of one, reach the coverage one
/// crawler has after 40 minutes at least 3.5 times sooner.
#[test]
fn four_shards_reach_the_same_coverage_three_and_a_half_times_sooner() {
    let every = Duration::from_secs(20);
    let run = |shards| {
        let mut s = sim(41, 200_000, 100.0, shards, 100_000);
        let mut out = Vec::new();
        s.run(Duration::from_secs(2_400), every, |c| out.push(c.clone()));
        (s.crawler_stats(), out)
    };
    let (_, one) = run(1);
    let (stats, four) = run(4);
    let want = one.last().unwrap().found;
    let t1 = time_to(&one, want).unwrap();
    let t4 = time_to(&four, want).expect("four shards reach it");
    eprintln!("one crawler: {want} found at {t1:?}; four shards: at {t4:?}");
    assert!(
        t1.as_secs_f64() >= 3.5 * t4.as_secs_f64(),
        "{t1:?} vs {t4:?}"
    );
    assert_eq!(four.last().unwrap().net.early_samples, 0);
    for st in &stats {
        assert!(
            st.nodes_other_shard > 0,
            "nodes outside the shard are set aside"
        );
    }
}

/// Peer searches that stop at the first peer, continued only where the modelled fetch
/// fails, cost at most 1.5 `get_peers` per infohash where fetches succeed, against over 4
/// searching every infohash on to 20 peers, and fetch at least as many torrents in the
/// same time; where half the peers serve no metadata, the continuations cost under one
/// query more per infohash, and still fetch as large a share of what was found.
#[test]
fn searches_that_stop_at_the_first_peer_cost_a_query_and_fetch_no_fewer() {
    let run = |full: bool, serve_share: f64| {
        let net = ProcConfig {
            seed: 51,
            nodes: 100_000,
            infohashes: 200_000,
            serve_share,
            ..ProcConfig::default()
        };
        let mut cfg = SimConfig::new(net, 200.0, 1);
        cfg.search_peers = true;
        cfg.full_searches = full;
        let mut s = Simulation::new(&cfg);
        s.run(
            Duration::from_secs(1_200),
            Duration::from_secs(1_200),
            |_| {},
        );
        let c = s.checkpoint();
        (c.get_peers_sent as f64 / c.found as f64, c)
    };
    for serve_share in [1.0, 0.5] {
        let (full_cost, full) = run(true, serve_share);
        let (cost, early) = run(false, serve_share);
        eprintln!(
            "serve share {serve_share}: full searches {full_cost:.2} get_peers per infohash, \
             {} of {} fetched; stopping at the first peer {cost:.2}, {} of {} fetched, {} \
             continued",
            full.fetched, full.found, early.fetched, early.found, early.resumed
        );
        assert!(full_cost > 4.0, "{full_cost}");
        assert!(early.fetched >= full.fetched);
        let share = |c: &Checkpoint| c.fetched as f64 / c.found as f64;
        assert!(share(&early) >= share(&full) - 0.01);
        if serve_share == 1.0 {
            assert!(cost <= 1.5, "{cost}");
            assert_eq!(early.resumed, 0);
        } else {
            assert!(early.resumed > 0);
            assert!(cost <= 2.5, "{cost}");
        }
    }
}
