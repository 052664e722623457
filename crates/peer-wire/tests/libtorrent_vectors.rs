//! Torrents made by libtorrent (see `tests/data/README.md`): the numbers asserted here are
//! those libtorrent's `torrent_info` reports, pad files excluded.

use estudely_peer_wire::{
    torrent_file_bytes, Expected, ExtHandshake, Handshake, HashKind, InfoHashes, InfoSummary,
    Message, MetadataAssembler, MetadataMsg, MetadataSession, Reserved, SessionConfig,
    SessionState, Version, METADATA_PIECE_LEN,
};

struct Vector {
    file: &'static str,
    name: &'static str,
    file_count: u64,
    total_bytes: u64,
    piece_length: u64,
    metadata_size: usize,
    version: Version,
    v1: Option<&'static str>,
    v2: Option<&'static str>,
}

const VECTORS: &[Vector] = &[
    Vector {
        file: "single_v1.torrent",
        name: "hello.txt",
        file_count: 1,
        total_bytes: 100_000,
        piece_length: 16_384,
        metadata_size: 209,
        version: Version::V1,
        v1: Some("17df8206db00da557c2cbc15766be2352a718175"),
        v2: None,
    },
    Vector {
        file: "multi_v1.torrent",
        name: "multi",
        file_count: 3,
        total_bytes: 111_235,
        piece_length: 32_768,
        metadata_size: 242,
        version: Version::V1,
        v1: Some("b6529ba063cdfecd4bad16d7b307e19c6eda0ca2"),
        v2: None,
    },
    Vector {
        file: "hybrid.torrent",
        name: "mixed",
        file_count: 3,
        total_bytes: 70_005,
        piece_length: 16_384,
        metadata_size: 713,
        version: Version::Hybrid,
        v1: Some("af7fef8a0e2fd92e4be557471d62f73e0e00868e"),
        v2: Some("d66dc7e53a8e55cfbd0de17148f7131993e68e2a72aa086be5bc4a444f4fb6db"),
    },
    Vector {
        file: "v2_only.torrent",
        name: "mixed",
        file_count: 3,
        total_bytes: 70_005,
        piece_length: 16_384,
        metadata_size: 308,
        version: Version::V2,
        v1: None,
        v2: Some("0fd67998e968f4ddb3d920722e9284cc139a2c3cf14e41b1c34a70e6900b83fb"),
    },
    Vector {
        file: "nonascii_hybrid.torrent",
        name: "Ünïcødé 日本語 – test",
        file_count: 2,
        total_bytes: 20_333,
        piece_length: 16_384,
        metadata_size: 510,
        version: Version::Hybrid,
        v1: Some("5e9878a2635e40ccc3cc03f0d764ccd07d76e82c"),
        v2: Some("d448f96106e8c03ab1ccfa9e607b476f39ae9153102a30fa5c6a6dfe96e64778"),
    },
    Vector {
        file: "big_v1.torrent",
        name: "big",
        file_count: 1,
        total_bytes: 49_153_000,
        piece_length: 16_384,
        metadata_size: 60_116,
        version: Version::V1,
        v1: Some("b93b7d5cc4e0a112842ddc7697970f23647bdc19"),
        v2: None,
    },
];

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    assert_eq!(s.len(), 2 * N);
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn read_info(file: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    let torrent = std::fs::read(path).unwrap();
    let v = estudely_bencode::decode(&torrent).unwrap();
    v.get(b"info").unwrap().raw().to_vec()
}

fn hashes(v: &Vector) -> InfoHashes {
    InfoHashes {
        v1: v.v1.map(unhex::<20>),
        v2: v.v2.map(unhex::<32>),
    }
}

/// The 20-byte key the DHT and the handshake use.
fn dht_key(v: &Vector) -> [u8; 20] {
    match (v.v1, v.v2) {
        (Some(v1), _) => unhex(v1),
        (None, Some(v2)) => unhex::<32>(v2)[..20].try_into().unwrap(),
        (None, None) => unreachable!(),
    }
}

fn pieces(info: &[u8]) -> Vec<&[u8]> {
    info.chunks(METADATA_PIECE_LEN).collect()
}

#[test]
fn summaries_match_libtorrent() {
    for v in VECTORS {
        let info = read_info(v.file);
        assert_eq!(info.len(), v.metadata_size, "{}", v.file);
        let s = InfoSummary::parse(&info).unwrap();
        assert_eq!(s.name, v.name.as_bytes(), "{}", v.file);
        assert_eq!(s.name_lossy(), v.name);
        assert_eq!(
            (s.file_count, s.total_bytes, s.piece_length, s.version),
            (v.file_count, v.total_bytes, v.piece_length, v.version),
            "{}",
            v.file
        );
        assert_eq!(s.files.len() as u64, v.file_count);
        assert_eq!(s.files.iter().map(|f| f.length).sum::<u64>(), v.total_bytes);
    }
}

#[test]
fn listed_files_match_libtorrent() {
    let paths = |file: &str| -> Vec<(String, u64)> {
        let s = InfoSummary::parse(&read_info(file)).unwrap();
        s.files.iter().map(|f| (f.path_lossy(), f.length)).collect()
    };
    let mixed = [
        ("one.bin".to_string(), 20_000),
        ("two/three.bin".to_string(), 50_000),
        ("z.txt".to_string(), 5),
    ];
    assert_eq!(paths("hybrid.torrent"), mixed);
    assert_eq!(paths("v2_only.torrent"), mixed);
    assert_eq!(
        paths("multi_v1.torrent"),
        [
            ("a.bin".to_string(), 40_000),
            ("sub/b.txt".to_string(), 1234),
            ("sub/c.dat".to_string(), 70_001)
        ]
    );
    assert_eq!(
        paths("nonascii_hybrid.torrent"),
        [
            ("ß.bin".to_string(), 17_000),
            ("ファイル.txt".to_string(), 3333)
        ]
    );
}

#[test]
fn info_hashes_match_libtorrent() {
    for v in VECTORS {
        let info = read_info(v.file);
        let ps = pieces(&info);
        let expectations: [(Expected, HashKind); 2] = [
            (
                hashes(v).into(),
                if v.v2.is_some() {
                    HashKind::V2
                } else {
                    HashKind::V1
                },
            ),
            (
                dht_key(v).into(),
                if v.v1.is_some() {
                    HashKind::V1
                } else {
                    HashKind::V2
                },
            ),
        ];
        for (expected, kind) in expectations {
            let mut a = MetadataAssembler::new(expected, info.len() as u64, 1 << 25).unwrap();
            for (i, p) in ps.iter().enumerate().rev() {
                a.add_piece(i as u32, p).unwrap();
            }
            let m = a.finish().unwrap();
            assert_eq!(
                (m.info.as_slice(), m.verified_by),
                (&info[..], kind),
                "{}",
                v.file
            );
        }
    }
    // The truncated v2 hash of a hybrid torrent is accepted as a DHT key too.
    let hybrid = &VECTORS[2];
    let info = read_info(hybrid.file);
    let key: [u8; 20] = unhex::<32>(hybrid.v2.unwrap())[..20].try_into().unwrap();
    let mut a = MetadataAssembler::new(key, info.len() as u64, 1 << 25).unwrap();
    a.add_piece(0, &info).unwrap();
    assert_eq!(a.finish().unwrap().verified_by, HashKind::V2);
}

#[test]
fn torrent_file_round_trip_keeps_info_hash() {
    for v in VECTORS {
        let info = read_info(v.file);
        let t = torrent_file_bytes(&info);
        let decoded = estudely_bencode::decode(&t).unwrap();
        assert_eq!(decoded.get(b"info").unwrap().raw(), &info[..]);
    }
}

/// A whole fetch of a real multi-piece info dict through the session, pieces answered in
/// reverse order of request within each batch and fed in odd-sized chunks.
#[test]
fn session_fetches_real_metadata() {
    for v in VECTORS {
        let info = read_info(v.file);
        let key = dht_key(v);
        let config = SessionConfig {
            expected: Some(hashes(v).into()),
            ..SessionConfig::default()
        };
        let mut s = MetadataSession::new(config, key, *b"-ES0001-aaaaaaaaaaaa");
        assert!(s.poll_transmit().is_some());

        let mut reserved = Reserved::ours(true);
        reserved.set_v2(v.v2.is_some());
        let mut peer = Handshake {
            reserved,
            info_hash: key,
            peer_id: *b"-LT20B0-bbbbbbbbbbbb",
        }
        .encode()
        .to_vec();
        let ext = ExtHandshake {
            ut_metadata: Some(3),
            metadata_size: Some(info.len() as u64),
            client: Some("libtorrent/2.0".into()),
            reqq: Some(250),
            ..ExtHandshake::default()
        };
        Message::Extended {
            id: 0,
            payload: &ext.to_bytes(),
        }
        .encode(&mut peer)
        .unwrap();
        Message::Bitfield(&[0xff; 8]).encode(&mut peer).unwrap();
        s.handle_input(&peer);
        assert!(matches!(s.state(), SessionState::Fetching { .. }));

        let ps = pieces(&info);
        let mut rounds = 0;
        while let Some(out) = s.poll_transmit() {
            rounds += 1;
            assert!(rounds < 100);
            let mut requested = Vec::new();
            let mut at = 0;
            while let Some((m, used)) =
                estudely_peer_wire::parse_frame(&out[at..], 1 << 20).unwrap()
            {
                at += used;
                if let Message::Extended { id: 3, payload } = m {
                    if let Some(MetadataMsg::Request { piece }) =
                        MetadataMsg::decode(payload).unwrap()
                    {
                        requested.push(piece);
                    }
                }
            }
            assert!(!requested.is_empty() && requested.len() <= 4);
            let mut reply = Vec::new();
            for &piece in requested.iter().rev() {
                let data = MetadataMsg::Data {
                    piece,
                    total_size: info.len() as u64,
                    data: ps[piece as usize],
                };
                Message::Extended {
                    id: estudely_peer_wire::session::OUR_UT_METADATA,
                    payload: &data.to_bytes(),
                }
                .encode(&mut reply)
                .unwrap();
            }
            for chunk in reply.chunks(777) {
                s.handle_input(chunk);
            }
        }
        assert_eq!(s.state(), SessionState::Done, "{}", v.file);
        let m = s.into_outcome().unwrap().unwrap();
        assert_eq!(m.info, info);
        let summary = InfoSummary::parse(&m.info).unwrap();
        assert_eq!(summary.file_count, v.file_count);
    }
}
