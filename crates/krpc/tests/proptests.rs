//! Property tests: any datagram decodes or fails cleanly; typed messages round-trip.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use estudely_krpc::{
    Body, CompactNode, ErrorMsg, InfoHash, Message, NodeId, Query, Response, Token, TransactionId,
    Version, Want,
};
use proptest::prelude::*;

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(o, p)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(o)), p)),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(o, p)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), p)),
    ]
}

fn want() -> impl Strategy<Value = Want> {
    (any::<bool>(), any::<bool>()).prop_map(|(v4, v6)| Want { v4, v6 })
}

fn query() -> impl Strategy<Value = Query> {
    let id = any::<[u8; 20]>().prop_map(NodeId);
    prop_oneof![
        id.clone().prop_map(|id| Query::Ping { id }),
        (id.clone(), any::<[u8; 20]>(), want()).prop_map(|(id, t, want)| Query::FindNode {
            id,
            target: NodeId(t),
            want
        }),
        (
            id.clone(),
            any::<[u8; 20]>(),
            want(),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(id, h, want, noseed, scrape)| Query::GetPeers {
                id,
                info_hash: InfoHash(h),
                want,
                noseed,
                scrape
            }),
        (
            id.clone(),
            any::<[u8; 20]>(),
            any::<u16>(),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..20),
            any::<bool>()
        )
            .prop_map(
                |(id, h, port, implied_port, token, seed)| Query::AnnouncePeer {
                    id,
                    info_hash: InfoHash(h),
                    port,
                    implied_port,
                    token: Token::new(&token).unwrap(),
                    seed
                }
            ),
        (id, any::<[u8; 20]>(), want()).prop_map(|(id, t, want)| Query::SampleInfohashes {
            id,
            target: NodeId(t),
            want
        }),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    let node = (any::<[u8; 20]>(), addr()).prop_map(|(id, addr)| CompactNode {
        id: NodeId(id),
        addr,
    });
    (
        any::<[u8; 20]>(),
        proptest::collection::vec(node, 0..8),
        proptest::collection::vec(addr(), 0..8),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
        proptest::collection::vec(any::<[u8; 20]>(), 0..10),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(|(id, nodes, values, token, samples, interval, num)| {
            let (nodes6, nodes) = nodes.into_iter().partition(|n| n.addr.is_ipv6());
            Response {
                id: NodeId(id),
                nodes,
                nodes6,
                values,
                token: token.map(|t| Token::new(&t).unwrap()),
                // An empty `samples` is only kept when `interval` says this is a BEP 51 reply.
                samples: if interval.is_some() {
                    samples.into_iter().map(InfoHash).collect()
                } else {
                    vec![]
                },
                interval,
                num,
                bf_seeds: None,
                bf_peers: None,
                reflected_port: num.map(|n| n as u16),
            }
        })
}

fn message() -> impl Strategy<Value = Message> {
    let body = prop_oneof![
        query().prop_map(Body::Query),
        response().prop_map(Body::Response),
        (
            200i64..300,
            "[a-zA-Z ]{0,30}",
            proptest::option::of(any::<[u8; 20]>()),
            proptest::option::of(any::<u16>())
        )
            .prop_map(|(code, message, id, p)| Body::Error(ErrorMsg {
                code,
                message,
                id: id.map(NodeId),
                reflected_port: id.and(p),
            })),
    ];
    (
        proptest::collection::vec(any::<u8>(), 0..8),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 4)),
        proptest::option::of(addr()),
        any::<bool>(),
        body,
    )
        .prop_map(|(t, version, ip, read_only, body)| Message {
            tid: TransactionId::new(&t).unwrap(),
            version: version.map(|v| Version::new(&v).unwrap()),
            ip,
            read_only,
            body,
        })
}

proptest! {
    #[test]
    fn typed_round_trip(m in message()) {
        let bytes = m.encode();
        prop_assert_eq!(Message::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn encoding_is_canonical_bencode(m in message()) {
        // Keys sorted, nothing twice: the same bytes as a tree of sorted dicts gives.
        let bytes = m.encode();
        let tree = estudely_bencode::decode(&bytes).unwrap();
        prop_assert_eq!(estudely_bencode::OwnedValue::from(&tree).to_bytes(), bytes.clone());
        let mut appended = b"xyz".to_vec();
        m.encode_into(&mut appended);
        prop_assert_eq!(&appended[3..], &bytes[..]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = Message::decode(&bytes);
        let _ = Message::salvage_query_tid(&bytes);
    }

    #[test]
    fn corrupted_messages_never_panic(m in message(), at in any::<prop::sample::Index>(), b in any::<u8>()) {
        let mut bytes = m.encode();
        let i = at.index(bytes.len());
        bytes[i] = b;
        if let Ok(d) = Message::decode(&bytes) {
            // Whatever decodes re-encodes and decodes to the same message.
            prop_assert_eq!(Message::decode(&d.encode()).unwrap(), d);
        }
    }
}

/// The tree-based decoder this crate used before, as the reference for the in-place one.
mod tree_reference;

/// A bencode tree written in the given order (repeated and unsorted keys allowed).
#[derive(Debug, Clone)]
enum Tree {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Tree>),
    Dict(Vec<(Vec<u8>, Tree)>),
}

impl Tree {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Tree::Int(i) => out.extend(format!("i{i}e").bytes()),
            Tree::Bytes(b) => {
                out.extend(format!("{}:", b.len()).bytes());
                out.extend(b);
            }
            Tree::List(items) => {
                out.push(b'l');
                items.iter().for_each(|i| i.write(out));
                out.push(b'e');
            }
            Tree::Dict(entries) => {
                out.push(b'd');
                for (k, v) in entries {
                    Tree::Bytes(k.clone()).write(out);
                    v.write(out);
                }
                out.push(b'e');
            }
        }
    }
}

/// Every key the decoder reads, and a stranger.
const KEYS: &[&str] = &[
    "t",
    "v",
    "ip",
    "ro",
    "y",
    "q",
    "a",
    "r",
    "e",
    "id",
    "target",
    "info_hash",
    "want",
    "noseed",
    "scrape",
    "implied_port",
    "port",
    "token",
    "seed",
    "nodes",
    "nodes6",
    "values",
    "samples",
    "interval",
    "num",
    "BFsd",
    "BFpe",
    "p",
    "zz",
];

/// KRPC-shaped trees: known keys holding values of every type, and of the lengths and
/// ranges that the decoder tells apart (ids, compact nodes and peers, filters, ports...).
fn krpc_tree() -> impl Strategy<Value = Tree> {
    let bytes = prop_oneof![
        Just(b"q".to_vec()),
        Just(b"r".to_vec()),
        Just(b"e".to_vec()),
        Just(b"n4".to_vec()),
        Just(b"n6".to_vec()),
        Just(b"ping".to_vec()),
        Just(b"find_node".to_vec()),
        Just(b"get_peers".to_vec()),
        Just(b"announce_peer".to_vec()),
        Just(b"sample_infohashes".to_vec()),
        prop_oneof![
            Just(0usize),
            Just(2),
            Just(4),
            Just(6),
            Just(18),
            Just(20),
            Just(26),
            Just(33),
            Just(38),
            Just(40),
            Just(52),
            Just(76),
            Just(256),
            0usize..80
        ]
        .prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n)),
    ];
    let int = prop_oneof![
        Just(0i64),
        Just(1),
        Just(-1),
        Just(65_535),
        Just(65_536),
        Just(i64::from(u32::MAX) + 1),
        any::<i64>()
    ];
    let leaf = prop_oneof![int.prop_map(Tree::Int), bytes.prop_map(Tree::Bytes)];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Tree::List),
            proptest::collection::vec(
                (
                    proptest::sample::select(KEYS).prop_map(|k| k.as_bytes().to_vec()),
                    inner
                ),
                0..10
            )
            .prop_map(Tree::Dict),
        ]
    })
}

/// The in-place decoder gives what the tree-based one gives: the same message or the same
/// error, and the same salvaged transaction id.
fn decoders_agree(bytes: &[u8]) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        Message::decode(bytes),
        tree_reference::decode(bytes),
        "{:?}",
        bytes
    );
    // Spare lists with stale items in them change nothing.
    let stale = CompactNode {
        id: NodeId([9; 20]),
        addr: "1.2.3.4:5".parse().unwrap(),
    };
    let mut spare = Response {
        nodes: vec![stale; 3],
        nodes6: vec![stale],
        values: vec![stale.addr; 9],
        samples: vec![InfoHash([1; 20])],
        ..Response::default()
    };
    prop_assert_eq!(
        Message::decode_reusing(bytes, &mut spare),
        Message::decode(bytes)
    );
    prop_assert_eq!(
        Message::salvage_query_tid(bytes).map(|t| t.as_bytes().to_vec()),
        tree_reference::salvage_query_tid(bytes).map(|t| t.as_bytes().to_vec())
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn decoders_agree_on_messages(m in message()) {
        decoders_agree(&m.encode())?;
    }

    #[test]
    fn decoders_agree_on_mutated_messages(
        m in message(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let mut bytes = m.encode();
        for (at, b, how) in edits {
            let i = at.index(bytes.len());
            match how {
                0 => bytes[i] = b,
                1 => bytes.insert(i, b),
                _ => {
                    bytes.remove(i);
                    if bytes.is_empty() {
                        break;
                    }
                }
            }
        }
        decoders_agree(&bytes)?;
    }

    #[test]
    fn decoders_agree_on_krpc_shaped_trees(
        entries in proptest::collection::vec(
            (proptest::sample::select(KEYS).prop_map(|k| k.as_bytes().to_vec()), krpc_tree()),
            0..12,
        ),
        sort in any::<bool>(),
    ) {
        let mut entries = entries;
        if sort {
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries.dedup_by(|a, b| a.0 == b.0);
        }
        let mut bytes = Vec::new();
        Tree::Dict(entries).write(&mut bytes);
        decoders_agree(&bytes)?;
    }

    #[test]
    fn decoders_agree_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        decoders_agree(&bytes)?;
    }
}
