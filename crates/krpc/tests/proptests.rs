//! Property tests: any datagram decodes or fails cleanly; typed messages round-trip.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use estudely_krpc::{
    Body, CompactNode, ErrorMsg, InfoHash, Message, NodeId, Query, Response, Token, TransactionId,
    Want,
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
            version,
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
