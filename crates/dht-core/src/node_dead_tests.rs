//! The dead set forgets: an address that missed `dead_after` queries in a row is spared
//! for `dead_for`, then asked once; a miss then kills it again for twice as long, an answer
//! brings it back.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use estudely_krpc::{Body, Message, NodeId, Query, Response, TransactionId};

use crate::{Config, Event, Node, QueryError};

fn addr() -> SocketAddr {
    SocketAddr::from(([1, 0, 9, 1], 6881))
}

/// Ask `addr()` at `at`: the transaction id of the query sent, or `None` if it was refused
/// as dead.
fn ask(node: &mut Node, at: Instant) -> Option<TransactionId> {
    let ping = Query::Ping {
        id: NodeId([0; 20]),
    };
    node.query(at, addr(), ping);
    let sent: Vec<_> = std::iter::from_fn(|| node.poll_transmit()).collect();
    let dead = std::iter::from_fn(|| node.poll_event()).any(|e| {
        matches!(
            e,
            Event::QueryDone {
                result: Err(QueryError::Dead),
                ..
            }
        )
    });
    assert_ne!(sent.is_empty(), !dead, "sent or refused as dead, at {at:?}");
    sent.first()
        .map(|t| Message::decode(&t.bytes).expect("our query").tid)
}

/// Ask at `at` and let the query time out (3 s).
fn miss(node: &mut Node, at: Instant) {
    assert!(ask(node, at).is_some(), "sent at {at:?}");
    node.handle_timeout(at + Duration::from_secs(4));
}

#[test]
fn a_dead_address_is_asked_again_later_and_dies_again_for_twice_as_long() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let config = Config {
        dead_after: 2,
        dead_for: s(60),
        query_rate: 0.0,
        ..Config::default()
    };
    let mut node = Node::new(config, t0);
    miss(&mut node, t0);
    assert!(!node.is_dead(&addr()), "one miss");
    miss(&mut node, t0 + s(5));
    // Dead from t0 + 9 s (the second timeout) for a minute.
    assert!(node.is_dead(&addr()));
    assert!(ask(&mut node, t0 + s(30)).is_none(), "dead");
    assert!(ask(&mut node, t0 + s(68)).is_none(), "still dead");
    node.handle_timeout(t0 + s(70));
    assert!(!node.is_dead(&addr()), "forgotten after dead_for");
    // One query; it is missed too: dead again at once (t0 + 74 s), for two minutes.
    miss(&mut node, t0 + s(70));
    assert!(node.is_dead(&addr()));
    assert!(ask(&mut node, t0 + s(190)).is_none(), "dead until 194 s");
    // Asked again; this time it answers: alive, with the leeway of an address that
    // answered (twice `dead_after`), not one miss from death.
    let tid = ask(&mut node, t0 + s(195)).expect("asked again");
    let reply = Message {
        tid,
        version: None,
        ip: None,
        read_only: false,
        body: Body::Response(Response {
            id: NodeId([7; 20]),
            ..Response::default()
        }),
    };
    node.handle_datagram(t0 + s(196), addr(), &reply.encode());
    assert!(!node.is_dead(&addr()));
    miss(&mut node, t0 + s(200));
    assert!(!node.is_dead(&addr()), "one miss after an answer");
}
