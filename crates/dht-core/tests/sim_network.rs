//! A simulated DHT of 500 nodes on a virtual clock with a seeded RNG: lookups must find the
//! true k closest nodes, announces must be found by other nodes' `get_peers`, and the same
//! seed must replay the same run. Set `ESTUDELY_SIM_SEED` to replay a failing seed.

use std::net::SocketAddr;
use std::time::Duration;

use estudely_dht_core::krpc::{Body, InfoHash, NodeId, Query};
use estudely_dht_core::sim::{LinkModel, Sim};
use estudely_dht_core::{Config, Event, LookupKind, LookupOutcome};
use rand::{rngs::SmallRng, Rng, SeedableRng};

fn seed() -> u64 {
    std::env::var("ESTUDELY_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261125)
}

/// Build `n` nodes; each bootstraps from node 0 and one random earlier node.
fn build(n: usize, seed: u64, link: LinkModel) -> Sim {
    let mut sim = Sim::new(seed, link);
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
    for i in 0..n {
        let config = Config {
            seed: seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
            sample_interval: 60,
            ..Config::default()
        };
        let idx = sim.add_node(config);
        if idx > 0 {
            let seeds: Vec<SocketAddr> = vec![sim.addr(0), sim.addr(rng.gen_range(0..idx))];
            sim.with_node(idx, |node, now| node.bootstrap(now, &seeds));
        }
        if i % 50 == 49 {
            sim.run_for(Duration::from_secs(2));
        }
    }
    // Let bootstraps finish and a round of bucket refreshes run.
    sim.run_for(Duration::from_secs(5 * 60));
    sim.take_events();
    sim
}

fn true_closest(sim: &Sim, target: &NodeId, k: usize, except: usize) -> Vec<NodeId> {
    let mut ids: Vec<NodeId> = (0..sim.len())
        .filter(|&i| i != except && sim.is_up(i))
        .map(|i| sim.node(i).id())
        .collect();
    ids.sort_by_key(|id| id.distance(&target.0));
    ids.truncate(k);
    ids
}

fn lookup(sim: &mut Sim, from: usize, kind: LookupKind, target: NodeId) -> LookupOutcome {
    let id = sim.with_node(from, |node, now| node.lookup(now, kind, target, &[]));
    let events = sim.run_until(Duration::from_secs(120), Duration::from_millis(200), |ev| {
        ev.iter()
            .any(|(_, e)| matches!(e, Event::LookupDone(o) if o.id == id))
    });
    events
        .into_iter()
        .find_map(|(i, e)| match e {
            Event::LookupDone(o) if o.id == id && i == from => Some(o),
            _ => None,
        })
        .unwrap_or_else(|| panic!("lookup {id:?} did not finish (seed {})", seed()))
}

#[test]
fn lookups_find_the_true_k_closest_among_500_nodes() {
    let seed = seed();
    let mut sim = build(500, seed, LinkModel::default());
    let mut rng = SmallRng::seed_from_u64(seed);
    let tables: Vec<usize> = (0..sim.len())
        .map(|i| sim.node(i).stats().nodes_v4)
        .collect();
    let avg = tables.iter().sum::<usize>() as f64 / tables.len() as f64;
    assert!(
        avg >= 20.0,
        "routing tables filled (avg {avg}, seed {seed})"
    );
    for round in 0..25 {
        let from = rng.gen_range(0..sim.len());
        let target = NodeId(rng.gen());
        let got = lookup(&mut sim, from, LookupKind::FindNode, target);
        let got: Vec<NodeId> = got.closest.iter().map(|n| n.id).collect();
        let want = true_closest(&sim, &target, 8, from);
        assert_eq!(
            got, want,
            "round {round}: lookup from {from} toward {target} (seed {seed})"
        );
    }
}

#[test]
fn lookups_converge_with_loss_and_churn() {
    let seed = seed() ^ 7;
    let link = LinkModel {
        loss: 0.05,
        ..LinkModel::default()
    };
    let mut sim = build(500, seed, link);
    let mut rng = SmallRng::seed_from_u64(seed);
    // 10% of the nodes leave.
    for i in 1..sim.len() {
        if rng.gen_bool(0.1) {
            sim.set_up(i, false);
        }
    }
    let mut exact = 0;
    let rounds = 20;
    for _ in 0..rounds {
        let from = loop {
            let f = rng.gen_range(0..sim.len());
            if sim.is_up(f) {
                break f;
            }
        };
        let target = NodeId(rng.gen());
        let got = lookup(&mut sim, from, LookupKind::FindNode, target);
        let got: Vec<NodeId> = got.closest.iter().map(|n| n.id).collect();
        let want = true_closest(&sim, &target, 8, from);
        // Every node returned is live and among the true closest 16.
        let near = true_closest(&sim, &target, 16, from);
        assert!(got.iter().all(|id| near.contains(id)), "seed {seed}");
        exact += usize::from(got.iter().take(4).eq(want.iter().take(4)));
    }
    assert!(
        exact * 10 >= rounds * 8,
        "{exact}/{rounds} exact top-4 (seed {seed})"
    );
}

#[test]
fn announced_peers_are_found_and_sampled() {
    let seed = seed() ^ 11;
    let mut sim = build(300, seed, LinkModel::default());
    let info_hash = InfoHash([0xAB; 20]);
    let announcer = 17;
    let done = lookup(
        &mut sim,
        announcer,
        LookupKind::Announce {
            port: 51413,
            implied_port: false,
            seed: false,
        },
        NodeId(info_hash.0),
    );
    assert!(
        done.announced_to >= 6,
        "announced to {} (seed {seed})",
        done.announced_to
    );
    let found = lookup(&mut sim, 250, LookupKind::GetPeers, NodeId(info_hash.0));
    let expected = SocketAddr::new(sim.addr(announcer).ip(), 51413);
    assert_eq!(found.peers, vec![expected], "seed {seed}");
    // The node closest to the infohash stores it and serves it as a BEP 51 sample.
    let holder = sim
        .index_of(&done.closest[0].addr)
        .expect("closest node is in the sim");
    let asker = 3;
    let to = sim.addr(holder);
    let q = sim.with_node(asker, |node, now| {
        node.query(
            now,
            to,
            Query::SampleInfohashes {
                id: NodeId::default(),
                target: NodeId([0; 20]),
                want: Default::default(),
            },
        )
    });
    let events = sim.run_until(Duration::from_secs(10), Duration::from_millis(100), |ev| {
        ev.iter()
            .any(|(_, e)| matches!(e, Event::QueryDone { id, .. } if *id == q))
    });
    let reply = events
        .into_iter()
        .find_map(|(_, e)| match e {
            Event::QueryDone { id, result, .. } if id == q => Some(result),
            _ => None,
        })
        .expect("query done")
        .expect("reply");
    let Body::Response(r) = reply.body else {
        panic!("response expected")
    };
    assert_eq!(r.samples, vec![info_hash]);
    assert_eq!(r.num, Some(1));
    assert_eq!(r.interval, Some(60));
}

#[test]
fn same_seed_replays_exactly() {
    let run = |seed| {
        let mut sim = build(
            120,
            seed,
            LinkModel {
                loss: 0.02,
                ..LinkModel::default()
            },
        );
        let target = NodeId([0x42; 20]);
        let out = lookup(&mut sim, 5, LookupKind::FindNode, target);
        (format!("{out:?}"), sim.delivered, sim.dropped)
    };
    let a = run(99);
    let b = run(99);
    assert_eq!(a, b);
    let c = run(100);
    assert_ne!(a.1, c.1, "a different seed gives a different run");
}
