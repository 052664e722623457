//! The examples printed in BEP 5 and BEP 51, decoded, checked field by field and re-encoded
//! byte for byte; plus the malformed inputs every decoder must reject with a typed error.

use estudely_krpc::{Body, Error, InfoHash, Message, NodeId, Query, Response};

fn id(s: &[u8; 20]) -> NodeId {
    NodeId(*s)
}

fn round_trip(bytes: &[u8]) -> Message {
    let m = Message::decode(bytes).expect("decodes");
    assert_eq!(
        m.encode(),
        bytes,
        "re-encoding {}",
        String::from_utf8_lossy(bytes)
    );
    m
}

#[test]
fn bep5_ping() {
    let q = round_trip(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe");
    assert_eq!(q.tid.as_bytes(), b"aa");
    assert_eq!(
        q.body,
        Body::Query(Query::Ping {
            id: id(b"abcdefghij0123456789")
        })
    );
    let r = round_trip(b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re");
    let Body::Response(resp) = r.body else {
        panic!("response")
    };
    assert_eq!(resp.id, id(b"mnopqrstuvwxyz123456"));
}

#[test]
fn bep5_find_node_get_peers_announce() {
    let m = round_trip(b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe");
    assert!(
        matches!(m.body, Body::Query(Query::FindNode { target, .. }) if target == id(b"mnopqrstuvwxyz123456"))
    );
    let m = round_trip(b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe");
    assert!(
        matches!(m.body, Body::Query(Query::GetPeers { info_hash, .. }) if info_hash == InfoHash(*b"mnopqrstuvwxyz123456"))
    );
    let m = round_trip(b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe");
    match m.body {
        Body::Query(Query::AnnouncePeer {
            port,
            implied_port,
            token,
            ..
        }) => {
            assert_eq!(port, 6881);
            assert!(implied_port);
            assert_eq!(token.as_bytes(), b"aoeusnth");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bep5_get_peers_response_with_values() {
    let m = round_trip(b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re");
    let Body::Response(r) = m.body else { panic!() };
    assert_eq!(r.values.len(), 2);
    assert_eq!(r.values[0].to_string(), "97.120.106.101:11893");
    assert_eq!(r.token.unwrap().as_bytes(), b"aoeusnth");
}

#[test]
fn bep5_error() {
    let m = round_trip(b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee");
    let Body::Error(e) = m.body else { panic!() };
    assert_eq!(e.code, 201);
    assert_eq!(e.message, "A Generic Error Ocurred");
}

#[test]
fn bep51_sample_infohashes() {
    let mut samples = Vec::new();
    for i in 0..3u8 {
        samples.extend_from_slice(&[i; 20]);
    }
    let mut body = b"d1:rd2:id20:abcdefghij01234567898:intervali21600e5:nodes26:".to_vec();
    body.extend_from_slice(&[5u8; 20]);
    body.extend_from_slice(&[127, 0, 1, 1, 0x1a, 0xe1]);
    body.extend_from_slice(b"3:numi1000e7:samples60:");
    body.extend_from_slice(&samples);
    body.extend_from_slice(b"e1:t2:aa1:y1:re");
    let m = round_trip(&body);
    let Body::Response(r) = m.body else { panic!() };
    assert_eq!(r.interval, Some(21600));
    assert_eq!(r.num, Some(1000));
    assert_eq!(r.samples.len(), 3);
    assert_eq!(r.samples[2], InfoHash([2; 20]));
    assert_eq!(r.nodes[0].addr.to_string(), "127.0.1.1:6881");
}

#[test]
fn bep32_bep43_fields() {
    let mut body = b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz1234564:wantl2:n42:n6ee1:q17:sample_infohashes2:roi1e1:t2:aa1:y1:qe".to_vec();
    let m = round_trip(&body);
    assert!(m.read_only);
    assert!(
        matches!(m.body, Body::Query(Query::SampleInfohashes { want, .. }) if want.v4 && want.v6)
    );
    body.clear();
    body.extend_from_slice(b"d1:rd2:id20:abcdefghij01234567896:nodes638:");
    body.extend_from_slice(&[1u8; 20]);
    body.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    body.extend_from_slice(&[0x1a, 0xe1]);
    body.extend_from_slice(b"6:valuesl18:");
    body.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    body.extend_from_slice(&[0, 80]);
    body.extend_from_slice(b"ee1:t2:aa1:y1:re");
    let Body::Response(r) = round_trip(&body).body else {
        panic!()
    };
    assert_eq!(r.nodes6[0].addr.to_string(), "[::1]:6881");
    assert_eq!(r.values[0].to_string(), "[::1]:80");
}

#[test]
fn malformed_fields_are_typed_errors() {
    let bad_samples =
        b"d1:rd2:id20:abcdefghij01234567897:samples21:xxxxxxxxxxxxxxxxxxxxxe1:t2:aa1:y1:re";
    assert_eq!(
        Message::decode(bad_samples),
        Err(Error::BadLength {
            key: "samples",
            len: 21,
            expected: "a multiple of 20"
        })
    );
    let bad_peer = b"d1:rd2:id20:abcdefghij01234567896:valuesl7:1234567ee1:t2:aa1:y1:re";
    assert_eq!(
        Message::decode(bad_peer),
        Err(Error::BadLength {
            key: "values",
            len: 7,
            expected: "6 or 18"
        })
    );
    let short_id = b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe";
    assert!(matches!(
        Message::decode(short_id),
        Err(Error::BadLength { key: "id", .. })
    ));
    let bad_nodes = b"d1:rd2:id20:abcdefghij01234567895:nodes5:12345e1:t2:aa1:y1:re";
    assert!(matches!(
        Message::decode(bad_nodes),
        Err(Error::BadLength { key: "nodes", .. })
    ));
    let bad_port = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti70000e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe";
    assert_eq!(
        Message::decode(bad_port),
        Err(Error::OutOfRange {
            key: "port",
            value: 70000
        })
    );
    let negative_interval = b"d1:rd2:id20:abcdefghij01234567898:intervali-1ee1:t2:aa1:y1:re";
    assert!(matches!(
        Message::decode(negative_interval),
        Err(Error::OutOfRange {
            key: "interval",
            ..
        })
    ));
    assert_eq!(Message::decode(b"le"), Err(Error::NotADict));
    assert_eq!(Message::decode(b"d1:t2:aa1:y1:xe"), Err(Error::UnknownType));
    assert_eq!(
        Message::decode(b"d1:y1:qe"),
        Err(Error::Missing { key: "t" })
    );
    assert!(matches!(
        Message::decode(&[b'x'; 3000]),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn unknown_method_kept_for_error_204() {
    let m = Message::decode(b"d1:ad2:id20:abcdefghij0123456789e1:q6:vote_x1:t2:aa1:y1:qe").unwrap();
    match m.body {
        Body::Query(Query::Unknown { method, .. }) => assert_eq!(method, b"vote_x"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        Message::salvage_query_tid(b"d1:ad2:id3:abce1:q4:ping1:t2:zz1:y1:qe")
            .unwrap()
            .as_bytes(),
        b"zz"
    );
}

#[test]
fn response_default_is_empty() {
    assert!(Response::default().samples.is_empty());
}
