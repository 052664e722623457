//! Byte-exact KRPC datagrams captured from libtorrent 2.1.1 (see vectors/README.md):
//! every well-formed one decodes to the expected typed message and re-encodes to the very
//! same bytes; the malformed queries we sent it are rejected with typed errors.

use std::path::PathBuf;

use estudely_krpc::{Body, Error, Message, NodeId, Query};

fn vector(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn round_trip(name: &str) -> Message {
    let bytes = vector(name);
    let m = Message::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(m.encode(), bytes, "{name} re-encodes byte for byte");
    m
}

fn response(name: &str) -> estudely_krpc::Response {
    let m = round_trip(name);
    assert_eq!(m.version.as_deref(), Some(&b"LT\x02\x11"[..]), "{name}");
    assert_eq!(
        m.ip.unwrap().ip().to_string(),
        "127.0.3.9",
        "{name}: BEP 42 ip"
    );
    match m.body {
        Body::Response(r) => r,
        other => panic!("{name}: {other:?}"),
    }
}

const ALL_WELL_FORMED: &[&str] = &[
    "announce_peer_implied_port_query.bin",
    "announce_peer_implied_port_response.bin",
    "announce_peer_query.bin",
    "announce_peer_response.bin",
    "error_bad_token_query.bin",
    "error_bad_token_response.bin",
    "error_missing_a_response.bin",
    "error_missing_id_response.bin",
    "error_missing_info_hash_response.bin",
    "error_response.bin",
    "error_short_id_response.bin",
    "error_unknown_method_query.bin",
    "error_unknown_method_response.bin",
    "find_node_query.bin",
    "find_node_response.bin",
    "find_node_want_n4_n6_query.bin",
    "find_node_want_n4_n6_response.bin",
    "get_peers_query.bin",
    "get_peers_response_nodes.bin",
    "get_peers_response_values.bin",
    "get_peers_unknown_query.bin",
    "lt_sent_announce_peer_query.bin",
    "lt_sent_get_peers_query.bin",
    "lt_sent_sample_infohashes_query.bin",
    "ping_query.bin",
    "ping_response.bin",
    "sample_infohashes_query.bin",
    "sample_infohashes_response.bin",
];

#[test]
fn every_well_formed_vector_round_trips() {
    for name in ALL_WELL_FORMED {
        round_trip(name);
    }
}

#[test]
fn no_vector_is_forgotten() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".bin"))
        .collect();
    names.sort();
    let malformed = [
        "error_missing_a_query.bin",
        "error_missing_id_query.bin",
        "error_missing_info_hash_query.bin",
        "error_short_id_query.bin",
    ];
    for n in &names {
        assert!(
            ALL_WELL_FORMED.contains(&n.as_str()) || malformed.contains(&n.as_str()),
            "{n} is covered by a test"
        );
    }
}

#[test]
fn malformed_queries_are_typed_errors() {
    let cases: [(&str, Error); 4] = [
        ("error_missing_a_query.bin", Error::Missing { key: "a" }),
        ("error_missing_id_query.bin", Error::Missing { key: "id" }),
        (
            "error_missing_info_hash_query.bin",
            Error::Missing { key: "info_hash" },
        ),
        (
            "error_short_id_query.bin",
            Error::BadLength {
                key: "id",
                len: 19,
                expected: "20",
            },
        ),
    ];
    for (name, want) in cases {
        assert_eq!(Message::decode(&vector(name)), Err(want), "{name}");
        assert!(
            Message::salvage_query_tid(&vector(name)).is_some(),
            "{name}"
        );
    }
}

#[test]
fn sample_infohashes_reply_fields() {
    let r = response("sample_infohashes_response.bin");
    assert_eq!(r.interval, Some(21600));
    assert_eq!(r.num, Some(2));
    assert_eq!(r.samples.len(), 2);
    assert!(r
        .samples
        .iter()
        .any(|s| s.to_hex() == "70d987b4fcc79352ec4d67ff32559cac6f6c8430"));
    assert_eq!(r.nodes.len(), 2);
    assert!(r.nodes.iter().any(|n| n.id == NodeId([0x11; 20])));
}

#[test]
fn get_peers_replies() {
    let r = response("get_peers_response_values.bin");
    assert_eq!(r.values.len(), 1);
    assert_eq!(r.values[0].ip().to_string(), "127.0.3.2");
    assert_eq!(r.token.as_ref().map(|t| t.as_bytes().len()), Some(4));
    let r = response("get_peers_response_nodes.bin");
    assert!(r.values.is_empty());
    assert!(r.token.is_some());
    assert_eq!(r.nodes.len(), 2);
    let r = response("find_node_want_n4_n6_response.bin");
    assert_eq!(r.nodes6.len(), 1);
    assert!(r.nodes6[0].addr.ip().is_loopback());
}

#[test]
fn queries_libtorrent_sends() {
    let m = round_trip("lt_sent_announce_peer_query.bin");
    match m.body {
        Body::Query(Query::AnnouncePeer {
            implied_port,
            seed,
            token,
            info_hash,
            ..
        }) => {
            assert!(implied_port && seed);
            assert_eq!(token.as_bytes(), b"tok1");
            assert_eq!(
                info_hash.to_hex(),
                "70d987b4fcc79352ec4d67ff32559cac6f6c8430"
            );
        }
        other => panic!("{other:?}"),
    }
    let m = round_trip("lt_sent_sample_infohashes_query.bin");
    assert!(
        matches!(m.body, Body::Query(Query::SampleInfohashes { target, .. }) if target == NodeId([b'w'; 20]))
    );
}

#[test]
fn libtorrent_errors() {
    let m = round_trip("error_bad_token_response.bin");
    match m.body {
        Body::Error(e) => {
            assert_eq!(e.code, 203);
            assert_eq!(e.message, "invalid token");
            assert!(e.id.is_some());
        }
        other => panic!("{other:?}"),
    }
}
