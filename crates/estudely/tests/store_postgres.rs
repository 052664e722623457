//! The PostgreSQL index against a throwaway server (scripts/pg-test-server): every field
//! round-trips, first writer wins, claims are exclusive across connections, hostile search
//! queries never fail.

#[path = "common/pg.rs"]
mod pg;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use estudely::store::postgres::PgStore;
use estudely::store::{
    Batch, SearchSort, Sighting, SightingCounts, SightingSum, Source, Store, Torrent,
    MAX_STORED_FILES,
};
use estudely_krpc::{CompactNode, InfoHash, NodeId};
use estudely_peer_wire::{FileEntry, Version};
use pg::PgServer;

fn key(i: u32) -> InfoHash {
    let mut k = [0u8; 20];
    k[..4].copy_from_slice(&i.to_be_bytes());
    k[19] = 0xab;
    InfoHash(k)
}

fn torrent(i: u32, name: &[u8]) -> Torrent {
    let mut t = Torrent {
        info_hash: key(i),
        info_hash_v2: None,
        name: name.to_vec(),
        total_bytes: 1000 + u64::from(i),
        piece_length: 16384,
        file_count: 1,
        private: false,
        version: Version::V1,
        files: vec![FileEntry {
            path: vec![name.to_vec()],
            length: 1000 + u64::from(i),
        }],
        discovered: 1_700_000_000 + i64::from(i),
        source: Source::Sample,
        seeds_estimate: None,
        peers_estimate: None,
        category: None,
        release: None,
    };
    t.classify(&estudely::store::Classifier::default());
    t
}

fn write_torrents(store: &mut PgStore, torrents: Vec<Torrent>) {
    let batch = Batch {
        torrents,
        ..Batch::default()
    };
    store.write("me", &batch).expect("write");
}

/// A fresh database on the shared server, and a store connected to it.
fn fresh() -> (String, PgStore) {
    let url = PgServer::shared().database();
    let store = PgStore::connect(&url).expect("connect");
    (url, store)
}

fn sql(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("connect")
}

#[test]
fn every_field_round_trips() {
    let (_url, mut store) = fresh();
    assert_eq!(store.kind(), "postgres");
    let mut v2 = torrent(1, b"caf\xc3\xa9 \xff\xfe bad utf-8");
    v2.info_hash_v2 = Some([0x5a; 32]);
    v2.version = Version::Hybrid;
    v2.private = true;
    v2.total_bytes = u64::from(u32::MAX) * 7;
    v2.file_count = MAX_STORED_FILES as u64 + 5;
    v2.files = (0..MAX_STORED_FILES + 5)
        .map(|i| FileEntry {
            path: vec![
                b"dir/with/slashes".to_vec(),
                vec![0, b'n', b'u', b'l', 0xff],
                Vec::new(),
                format!("f{i}").into_bytes(),
            ],
            length: i as u64,
        })
        .collect();
    let mut only_v2 = torrent(2, b"\0name with NUL\n");
    only_v2.version = Version::V2;
    only_v2.info_hash_v2 = Some([7; 32]);
    only_v2.source = Source::Announce;
    write_torrents(&mut store, vec![v2.clone(), only_v2.clone()]);

    let got = store.torrent(&key(1)).unwrap().expect("stored");
    let mut want = v2.clone();
    want.files.truncate(MAX_STORED_FILES);
    assert_eq!(got.torrent, want);
    assert_eq!(got.files_omitted, 5);
    assert_eq!(got.last_seen, v2.discovered);
    let got = store.torrent(&key(2)).unwrap().expect("stored");
    assert_eq!(got.torrent, only_v2);
    assert_eq!(got.files_omitted, 0);
    assert!(store.torrent(&key(3)).unwrap().is_none());
    assert!(store.contains(&key(2)).unwrap());
    assert!(!store.contains(&key(3)).unwrap());

    let mut keys = Vec::new();
    store.for_each_info_hash(&mut |k| keys.push(k)).unwrap();
    keys.sort();
    // With their truncated v2 keys (a v2 torrent's key is its truncated v2 infohash on the
    // DHT; these synthetic ones differ, so both show).
    let v2_keys = [InfoHash([7; 20]), InfoHash([0x5a; 20])];
    assert_eq!(keys, vec![key(1), key(2), v2_keys[0], v2_keys[1]]);
    assert!(
        store.contains(&v2_keys[0]).unwrap(),
        "a v2 key finds its torrent"
    );
    for v2 in v2_keys {
        let by_v2 = store
            .torrent(&v2)
            .unwrap()
            .expect("found by its truncated v2 key");
        assert!(!by_v2.torrent.files.is_empty(), "with its files");
    }

    // Search results carry no files; export carries them all (the stored ones).
    let hits = store.search("bad utf", 10, 0).unwrap();
    assert_eq!(hits.len(), 1);
    assert!(hits[0].torrent.files.is_empty());
    let mut exported = Vec::new();
    store
        .export(None, &mut |t, _| {
            exported.push(t.clone());
            Ok(())
        })
        .unwrap();
    assert_eq!(exported.len(), 2);
    assert_eq!(exported[0].torrent, want);
    assert_eq!(exported[1].torrent, only_v2);
}

#[test]
fn first_writer_wins_and_last_seen_rises() {
    let (_url, mut store) = fresh();
    let first = torrent(1, b"first");
    let mut second = torrent(1, b"second");
    second.discovered += 500;
    second.files.clear();
    // In one batch the first one wins too.
    write_torrents(&mut store, vec![first.clone(), second.clone()]);
    let got = store.torrent(&key(1)).unwrap().unwrap();
    assert_eq!(got.torrent, first);
    assert_eq!(got.last_seen, first.discovered);
    // Against the database.
    write_torrents(&mut store, vec![second.clone()]);
    let got = store.torrent(&key(1)).unwrap().unwrap();
    assert_eq!(got.torrent, first);
    assert_eq!(got.last_seen, second.discovered);
    // `seen` raises it, never lowers it; unknown keys are ignored.
    let batch = Batch {
        seen: vec![(key(1), 5), (key(1), second.discovered + 9), (key(77), 1)],
        ..Batch::default()
    };
    store.write("me", &batch).unwrap();
    let got = store.torrent(&key(1)).unwrap().unwrap();
    assert_eq!(got.last_seen, second.discovered + 9);
    assert_eq!(store.stats().unwrap().files, 1);
}

#[test]
fn sightings_upsert_and_counters_add() {
    let (url, mut store) = fresh();
    let peer: SocketAddr = "10.0.0.1:6881".parse().unwrap();
    let peer6: SocketAddr = "[2001:db8::1]:51413".parse().unwrap();
    let node: SocketAddr = "10.0.0.9:1".parse().unwrap();
    let s = |addr, source, at| Sighting {
        info_hash: key(1),
        addr,
        source,
        at,
    };
    let batch = Batch {
        torrents: vec![torrent(1, b"t")],
        sightings: vec![
            s(peer, Source::Announce, 100),
            s(peer, Source::Announce, 50),
            s(peer, Source::GetPeers, 70),
            s(peer6, Source::GetPeers, 80),
            s(node, Source::Sample, 60),
        ],
        counters: vec![("filtered_size".into(), 2), ("filtered_size".into(), 3)],
        ..Batch::default()
    };
    store.write("me", &batch).unwrap();
    let batch = Batch {
        sightings: vec![
            s(peer, Source::Announce, 300),
            s(peer, Source::Announce, 10),
            Sighting {
                info_hash: key(9),
                ..s(peer, Source::Sample, 1)
            },
        ],
        counters: vec![
            ("filtered_size".into(), 1),
            ("fetch_failed_timeout".into(), 4),
        ],
        ..Batch::default()
    };
    store.write("me", &batch).unwrap();

    let row = sql(&url)
        .query_one(
            "SELECT first_seen, last_seen FROM sightings WHERE source = 'announce'",
            &[],
        )
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (10, 300));
    let stats = store.stats().unwrap();
    assert_eq!(stats.sightings, 4, "one row per (infohash, address)");
    let count: i64 = sql(&url)
        .query_one("SELECT count FROM sightings WHERE source = 'announce'", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 5, "three sightings, then two");
    assert_eq!(
        stats.counters,
        vec![
            ("fetch_failed_timeout".to_owned(), 4),
            ("filtered_size".to_owned(), 6)
        ]
    );
    // Export's peers: announce and get_peers addresses, each once, not sample nodes.
    let mut peers = Vec::new();
    store
        .export(None, &mut |_, p| {
            peers = p.to_vec();
            Ok(())
        })
        .unwrap();
    peers.sort();
    let mut want = vec![peer, peer6];
    want.sort();
    assert_eq!(peers, want);
}

/// Owners `a` and `b`, each on its own connection and thread, claim all of `keys` at once
/// (`b` in reverse order if `opposite`); every key must be won exactly once.
fn race(url: &str, keys: &[InfoHash], opposite: bool) -> Vec<HashSet<InfoHash>> {
    let barrier = Arc::new(Barrier::new(2));
    let claimers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|owner| {
            let (url, mut keys, barrier) = (url.to_owned(), keys.to_vec(), barrier.clone());
            if opposite && owner == "b" {
                keys.reverse();
            }
            thread::spawn(move || {
                let mut store = PgStore::connect(&url).expect("connect");
                barrier.wait();
                let mut won = HashSet::new();
                for k in &keys {
                    if store
                        .claim(k, owner, Duration::from_secs(600))
                        .expect("claim")
                    {
                        won.insert(*k);
                    }
                }
                won
            })
        })
        .collect();
    let won: Vec<HashSet<InfoHash>> = claimers.into_iter().map(|t| t.join().unwrap()).collect();
    assert_won_once(&won, keys.len());
    won
}

/// Two claimers' winnings: no key won by both, and all `keys` keys won.
fn assert_won_once(won: &[HashSet<InfoHash>], keys: usize) {
    assert!(won[0].is_disjoint(&won[1]), "an infohash claimed twice");
    assert_eq!(
        won[0].len() + won[1].len(),
        keys,
        "every infohash claimed once"
    );
}

#[test]
fn claims_are_exclusive_across_connections() {
    let (url, mut store) = fresh();
    let keys: Vec<InfoHash> = (0..200).map(key).collect();
    let won = race(&url, &keys, true);
    eprintln!("new leases: a won {}, b won {}", won[0].len(), won[1].len());
    // Expired leases of a third owner, taken over by two at once (in the same order:
    // they collide on every row).
    let stale: Vec<InfoHash> = (1000..1200).map(key).collect();
    for k in &stale {
        assert!(store.claim(k, "c", Duration::ZERO).unwrap());
    }
    let taken = race(&url, &stale, false);
    eprintln!(
        "expired leases: a won {}, b won {}",
        taken[0].len(),
        taken[1].len()
    );
    // An owner renews its own; the other cannot take a live lease.
    let k = keys[0];
    let (holder, other) = if won[0].contains(&k) {
        ("a", "b")
    } else {
        ("b", "a")
    };
    assert!(store.claim(&k, holder, Duration::from_secs(600)).unwrap());
    assert!(!store.claim(&k, other, Duration::from_secs(600)).unwrap());
    // Released, it can be claimed by the other.
    let batch = Batch {
        release: vec![k],
        ..Batch::default()
    };
    store.write(other, &batch).unwrap();
    assert!(
        !store.claim(&k, other, Duration::from_secs(600)).unwrap(),
        "only the owner releases"
    );
    store.write(holder, &batch).unwrap();
    assert!(store.claim(&k, other, Duration::from_secs(600)).unwrap());
    // A stored torrent is never claimed.
    write_torrents(&mut store, vec![torrent(500, b"x")]);
    assert!(!store
        .claim(&key(500), "a", Duration::from_secs(600))
        .unwrap());
}

/// `claim_many` (one request of `run`'s claims, in two statements) answers each key as
/// `claim` would one at a time: stored, deleted and live-leased keys refused; expired,
/// own and new ones granted; a key asked twice answered twice.
#[test]
fn claim_many_answers_each_key_as_claim_would() {
    let (url, mut store) = fresh();
    let hour = Duration::from_secs(3600);
    write_torrents(
        &mut store,
        vec![torrent(1, b"stored"), torrent(2, b"pruned")],
    );
    store.delete_torrents(&[key(2)], 99).unwrap();
    assert!(store.claim(&key(3), "other", hour).unwrap());
    assert!(store.claim(&key(4), "other", Duration::ZERO).unwrap());
    assert!(store.claim(&key(5), "me", hour).unwrap());
    let asked = [key(1), key(2), key(3), key(4), key(5), key(6), key(6)];
    let granted = store.claim_many(&asked, "me", hour).unwrap();
    assert_eq!(granted, [false, false, false, true, true, true, true]);
    assert!(store.claim_many(&[], "me", hour).unwrap().is_empty());
    let mut owners: Vec<(Vec<u8>, String)> = sql(&url)
        .query(
            "SELECT info_hash, owner FROM leases ORDER BY info_hash",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    owners.sort();
    let want = |i: u32, o: &str| (key(i).0.to_vec(), o.to_owned());
    let mut expected = vec![
        want(3, "other"),
        want(4, "me"),
        want(5, "me"),
        want(6, "me"),
    ];
    expected.sort();
    assert_eq!(owners, expected);
}

/// Two crawlers claiming the same 64 keys at once, round after round, one in the
/// opposite order to the other: every key is won exactly once, and no request fails (no
/// deadlock: new leases are inserted in key order, whatever the order asked).
#[test]
fn claims_in_requests_are_exclusive_and_never_deadlock() {
    let (url, _store) = fresh();
    const ROUNDS: u32 = 150;
    let round_keys = |r: u32| -> Vec<InfoHash> { (0..64).map(|i| key(r * 100 + i)).collect() };
    let barrier = Arc::new(Barrier::new(2));
    let claimers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|owner| {
            let (url, barrier) = (url.clone(), barrier.clone());
            thread::spawn(move || {
                let mut store = PgStore::connect(&url).expect("connect");
                let mut won = HashSet::new();
                for r in 0..ROUNDS {
                    let mut keys = round_keys(r);
                    if owner == "b" {
                        keys.reverse();
                    }
                    barrier.wait();
                    let granted = store
                        .claim_many(&keys, owner, Duration::from_secs(600))
                        .expect("claim_many");
                    won.extend(
                        keys.iter()
                            .zip(granted)
                            .filter(|(_, g)| *g)
                            .map(|(k, _)| *k),
                    );
                }
                won
            })
        })
        .collect();
    let won: Vec<HashSet<InfoHash>> = claimers.into_iter().map(|t| t.join().unwrap()).collect();
    assert_won_once(&won, 64 * ROUNDS as usize);
}

#[test]
fn expired_leases_are_taken_over() {
    let (url, mut a) = fresh();
    let mut b = PgStore::connect(&url).unwrap();
    assert!(a.claim(&key(1), "a", Duration::ZERO).unwrap());
    assert!(
        b.claim(&key(1), "b", Duration::from_secs(600)).unwrap(),
        "expired: taken over"
    );
    assert!(!a.claim(&key(1), "a", Duration::from_secs(600)).unwrap());
    let owner: String = sql(&url)
        .query_one("SELECT owner FROM leases", &[])
        .unwrap()
        .get(0);
    assert_eq!(owner, "b");
}

#[test]
fn search_finds_words_and_substrings_and_never_fails() {
    let (_url, mut store) = fresh();
    let mut with_path = torrent(3, b"Misc collection");
    with_path.files = vec![FileEntry {
        path: vec![b"docs".to_vec(), b"ubuntu-notes.txt".to_vec()],
        length: 1,
    }];
    write_torrents(
        &mut store,
        vec![
            torrent(1, b"Ubuntu-22.04.3-desktop-amd64.iso"),
            torrent(2, b"debian-12.1.0-amd64-netinst.iso"),
            with_path,
            torrent(4, b"<script>alert('x')</script> & \"quotes\" | 50%_off"),
        ],
    );
    let names = |hits: Vec<estudely::store::StoredTorrent>| -> Vec<u32> {
        hits.iter()
            .map(|h| u32::from_be_bytes(h.torrent.info_hash.0[..4].try_into().unwrap()))
            .collect()
    };
    // Words, case-insensitive, punctuation ignored; a name hit ranks above a path hit.
    assert_eq!(names(store.search("ubuntu", 10, 0).unwrap()), vec![1, 3]);
    assert_eq!(names(store.search("UBUNTU 22.04", 10, 0).unwrap()), vec![1]);
    assert_eq!(names(store.search("amd64", 10, 0).unwrap()).len(), 2);
    assert_eq!(names(store.search("amd64", 1, 1).unwrap()).len(), 1);
    // Substrings of the name, through trigrams.
    assert!(store.substring_search(), "pg_trgm should be installed here");
    assert_eq!(names(store.search("buntu", 10, 0).unwrap()), vec![1]);
    assert_eq!(names(store.search("netins", 10, 0).unwrap()), vec![2]);
    assert_eq!(names(store.search("50%_off", 10, 0).unwrap()), vec![4]);
    assert_eq!(names(store.search("<script>", 10, 0).unwrap()), vec![4]);
    for hostile in [
        "\"",
        "*",
        ":",
        "'",
        "&|!",
        "<script>",
        "a:* & !b",
        "'; DROP TABLE torrents; --",
        "\0",
        "\\",
        "%",
        "_",
        "((",
        "!!!",
        "ü:*",
        "",
        "   ",
        "a'b\"c",
        &"x".repeat(10_000),
    ] {
        store
            .search(hostile, 10, 0)
            .unwrap_or_else(|e| panic!("search {hostile:?}: {e:#}"));
    }
    assert!(store.search("nothing-like-this", 10, 0).unwrap().is_empty());
    assert!(store.contains(&key(1)).unwrap(), "the table is still there");
}

#[test]
fn export_since_and_stats() {
    let (_url, mut store) = fresh();
    let day = 86_400;
    let mut ts = Vec::new();
    for i in 0..5u32 {
        let mut t = torrent(i, format!("t{i}").as_bytes());
        t.discovered = 1_700_006_400 + i64::from(i) * day; // 2023-11-15 00:00 UTC + i days
        t.version = if i % 2 == 0 { Version::V1 } else { Version::V2 };
        t.source = if i < 2 {
            Source::Announce
        } else {
            Source::Sample
        };
        ts.push(t);
    }
    ts.reverse(); // export orders them, not the input
    write_torrents(&mut store, ts);
    let mut got = Vec::new();
    store
        .export(Some(1_700_006_400 + 2 * day), &mut |t, _| {
            got.push(t.torrent.discovered);
            Ok(())
        })
        .unwrap();
    assert_eq!(
        got,
        vec![
            1_700_006_400 + 2 * day,
            1_700_006_400 + 3 * day,
            1_700_006_400 + 4 * day
        ]
    );
    // The callback's error stops the export and comes back.
    let err = store
        .export(None, &mut |_, _| anyhow::bail!("stop here"))
        .unwrap_err();
    assert!(format!("{err:#}").contains("stop here"));

    let stats = store.stats().unwrap();
    assert_eq!((stats.torrents, stats.files, stats.nodes), (5, 5, 0));
    assert_eq!(stats.by_version, vec![("v1".into(), 3), ("v2".into(), 2)]);
    assert_eq!(
        stats.by_source,
        vec![("announce".into(), 2), ("sample".into(), 3)]
    );
    let days: Vec<&str> = stats.by_day.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(
        days,
        [
            "2023-11-15",
            "2023-11-16",
            "2023-11-17",
            "2023-11-18",
            "2023-11-19"
        ]
    );
}

#[test]
fn nodes_are_saved_and_trimmed() {
    let (_url, mut store) = fresh();
    let node = |i: u8, port: u16| CompactNode {
        id: NodeId([i; 20]),
        addr: SocketAddr::new([10, 0, 0, i].into(), port),
    };
    store
        .save_nodes(&[node(1, 1), node(2, 2), node(3, 3)], 100, 10)
        .unwrap();
    store.save_nodes(&[node(2, 2), node(4, 4)], 200, 3).unwrap();
    let loaded = store.load_nodes(10).unwrap();
    assert_eq!(loaded.len(), 3);
    assert_eq!(&loaded[..2], &[node(2, 2), node(4, 4)]);
    assert_eq!(store.load_nodes(1).unwrap().len(), 1);
    let v6 = CompactNode {
        id: NodeId([9; 20]),
        addr: "[2001:db8::9]:6881".parse().unwrap(),
    };
    store.save_nodes(&[v6], 300, 10).unwrap();
    assert_eq!(store.load_nodes(1).unwrap(), vec![v6]);
}

#[test]
fn migrations_are_idempotent_and_safe_at_once() {
    let url = PgServer::shared().database();
    let barrier = Arc::new(Barrier::new(3));
    let connects: Vec<_> = (0..3)
        .map(|_| {
            let (url, barrier) = (url.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                PgStore::connect(&url)
                    .map(|_| ())
                    .map_err(|e| format!("{e:#}"))
            })
        })
        .collect();
    for c in connects {
        c.join().unwrap().expect("concurrent connect");
    }
    PgStore::connect(&url).expect("again");
    let mut client = sql(&url);
    // One row per migration (8: the schema, `files` without its primary key, the v2-key
    // index, the BEP 33 estimates, one sighting row per address, the categories, the
    // blocklist of pruned torrents, the estimates' times), each applied once.
    let (n, max): (i64, i32) = client
        .query_one("SELECT count(*), max(version) FROM schema_migrations", &[])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((n, max), (10, 10));
    // A schema from a newer estudely is refused, in one line.
    client
        .execute("INSERT INTO schema_migrations VALUES (999, 0)", &[])
        .unwrap();
    let err = format!("{:#}", PgStore::connect(&url).unwrap_err());
    assert!(err.contains("newer") && err.contains("999"), "{err}");
    assert!(!err.contains('\n'), "{err}");
    let err = format!("{:#}", PgStore::connect_read_only(&url).unwrap_err());
    assert!(err.contains("newer"), "{err}");
}

/// Writers on several connections storing the same torrents at once: each torrent is stored
/// once, with the files of the writer whose insert won (held in its row since schema 9;
/// nothing goes to the old `files` table).
#[test]
fn concurrent_writers_store_files_once() {
    let (url, _store) = fresh();
    let barrier = Arc::new(Barrier::new(4));
    let writers: Vec<_> = (0..4u32)
        .map(|w| {
            let (url, barrier) = (url.clone(), barrier.clone());
            thread::spawn(move || {
                let mut store = PgStore::connect(&url).expect("connect");
                barrier.wait();
                for round in 0..5u32 {
                    // Overlapping key ranges, in a different order per writer.
                    let mut torrents: Vec<Torrent> = (round * 50..round * 50 + 200)
                        .map(|i| {
                            let mut t = torrent(i, format!("t{i}").as_bytes());
                            t.files.push(FileEntry {
                                path: vec![format!("w{w}").into_bytes()],
                                length: 1,
                            });
                            t.file_count = 2;
                            t
                        })
                        .collect();
                    if w % 2 == 1 {
                        torrents.reverse();
                    }
                    write_torrents(&mut store, torrents);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    let mut client = sql(&url);
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM torrents), (SELECT count(*) FROM files),
                    (SELECT count(*) FROM torrents WHERE files IS NULL)",
            &[],
        )
        .unwrap();
    let (torrents, rows, without): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((torrents, rows, without), (400, 0, 0));
    let mut store = PgStore::connect(&url).unwrap();
    for i in [0u32, 199, 399] {
        let t = store.torrent(&key(i)).unwrap().expect("stored");
        assert_eq!(t.torrent.files.len(), 2, "{i}");
        assert_eq!(t.torrent.files[0].path, [format!("t{i}").into_bytes()]);
    }
}

/// A schema-4 index (one sighting row per address and source) with data in it: this
/// build merges its rows per address, with their count.
#[test]
fn version_4_sightings_are_migrated() {
    let (url, mut store) = fresh();
    write_torrents(&mut store, vec![torrent(1, b"kept")]);
    drop(store);
    let mut client = sql(&url);
    client
        .batch_execute(
            "DROP TABLE sightings;
             CREATE TABLE sightings (
                info_hash  bytea NOT NULL,
                ip         inet NOT NULL,
                port       integer NOT NULL,
                source     text NOT NULL,
                first_seen bigint NOT NULL,
                last_seen  bigint NOT NULL,
                PRIMARY KEY (info_hash, ip, port, source));
             DELETE FROM schema_migrations WHERE version >= 5;
             INSERT INTO sightings VALUES
                ('\\x01', '1.1.1.1', 1, 'sample', 5, 50),
                ('\\x01', '1.1.1.1', 1, 'get_peers', 10, 20),
                ('\\x01', '1.1.1.1', 1, 'announce', 7, 30),
                ('\\x01', '2.2.2.2', 2, 'sample', 1, 2),
                ('\\x02', '::1', 3, 'get_peers', 4, 4);",
        )
        .unwrap();
    let mut store = PgStore::connect(&url).expect("migrate");
    let rows: Vec<(String, i32, String, i64, i64, i64)> = client
        .query(
            "SELECT host(ip), port, source, first_seen, last_seen, count FROM sightings
             ORDER BY info_hash, ip",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    let row =
        |ip: &str, port, source: &str, f, l, c| (ip.to_owned(), port, source.to_owned(), f, l, c);
    assert_eq!(
        rows,
        [
            row("1.1.1.1", 1, "get_peers", 5, 50, 3),
            row("2.2.2.2", 2, "sample", 1, 2, 1),
            row("::1", 3, "get_peers", 4, 4, 1),
        ]
    );
    assert!(store.contains(&key(1)).unwrap(), "the torrents stay");
    let n: i64 = client
        .query_one("SELECT count(*) FROM sightings", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
}

#[test]
fn sightings_keep_the_newest_k_and_may_have_no_address() {
    let (url, mut store) = fresh();
    let sight = |k: u32, port: u16, at| Sighting {
        info_hash: key(k),
        addr: SocketAddr::new([10, 0, 0, 1].into(), port),
        source: Source::GetPeers,
        at,
    };
    let first: Vec<_> = (1..=30).map(|p| sight(1, p, i64::from(p))).collect();
    let mut second: Vec<_> = (31..=40).map(|p| sight(1, p, i64::from(p))).collect();
    second.extend((1..=3).map(|p| sight(2, p, 1)));
    second.push(sight(1, 30, 100));
    for sightings in [first, second] {
        let batch = Batch {
            sightings,
            max_sightings: Some(8),
            ..Batch::default()
        };
        store.write("me", &batch).unwrap();
    }
    let (rows, n) = store.sightings_of(&key(1), 100).unwrap();
    let ports: Vec<u16> = rows.iter().map(|r| r.addr.port()).collect();
    assert_eq!(ports, [30, 40, 39, 38, 37, 36, 35, 34]);
    assert_eq!((n.total, n.seen), (8, 9), "port 30 counted twice");
    assert_eq!(store.sightings_of(&key(2), 100).unwrap().1.total, 3);

    // No address: counted, never listed nor exported.
    let t = torrent(5, b"anonymous");
    let none = SightingSum {
        info_hash: t.info_hash,
        addr: "0.0.0.0:0".parse().unwrap(),
        source: Source::GetPeers,
        first_seen: 5,
        last_seen: 9,
        count: 7,
    };
    let batch = Batch {
        torrents: vec![t.clone()],
        sighting_sums: vec![none, none],
        max_sightings: Some(8),
        ..Batch::default()
    };
    store.write("me", &batch).unwrap();
    let (rows, n) = store.sightings_of(&t.info_hash, 10).unwrap();
    assert!(rows.is_empty(), "{rows:?}");
    assert_eq!((n.total, n.peers, n.seen), (0, 0, 14));
    let mut peers = Vec::new();
    store
        .export(None, &mut |_, p| {
            peers.extend_from_slice(p);
            Ok(())
        })
        .unwrap();
    assert!(peers.is_empty(), "{peers:?}");
    let _ = url;
}

#[test]
fn expired_leases_are_swept_and_known_keys_found_at_once() {
    let (url, mut store) = fresh();
    let hour = Duration::from_secs(3600);
    assert!(store.claim(&key(1), "dead", Duration::ZERO).unwrap());
    assert!(store.claim(&key(2), "dead", Duration::ZERO).unwrap());
    assert!(store.claim(&key(3), "alive", hour).unwrap());
    assert_eq!(store.sweep_leases().unwrap(), 2);
    assert_eq!(store.sweep_leases().unwrap(), 0);
    let left: i64 = sql(&url)
        .query_one("SELECT count(*) FROM leases", &[])
        .unwrap()
        .get(0);
    assert_eq!(left, 1, "the live lease stays");
    let mut hybrid = torrent(7, b"hybrid");
    hybrid.version = Version::Hybrid;
    let mut v2 = [9u8; 32];
    v2[..20].copy_from_slice(&key(9).0);
    hybrid.info_hash_v2 = Some(v2);
    write_torrents(&mut store, vec![hybrid, torrent(8, b"v1")]);
    let mut known = store
        .known_among(&[key(7), key(9), key(8), key(10)])
        .unwrap();
    known.sort();
    assert_eq!(known, [key(7), key(8), key(9)]);
    assert!(store.known_among(&[]).unwrap().is_empty());
}

/// An index of schema version 1 (`files` keyed by (info_hash, idx), a row per file) is
/// migrated with its rows: the old torrent's files are still read from `files` (by
/// `torrent`, `export`, `stats` and `delete_torrents`), a torrent written again afterwards
/// keeps them once, and a new torrent holds its files in its row (schema 9).
#[test]
fn version_1_files_are_migrated() {
    let (url, mut store) = fresh();
    let mut t = torrent(1, b"old");
    t.files.push(FileEntry {
        path: vec![b"dir".to_vec(), b"second".to_vec()],
        length: 7,
    });
    t.file_count = 2;
    write_torrents(&mut store, vec![t.clone()]);
    drop(store);
    let mut client = sql(&url);
    // Back to schema 1: the files as rows, keyed by (info_hash, idx).
    client
        .batch_execute(
            "DROP INDEX files_info_hash;
             DROP INDEX torrents_v2_key;
             ALTER TABLE files ADD CONSTRAINT files_pkey PRIMARY KEY (info_hash, idx);
             ALTER TABLE torrents DROP COLUMN seeds_estimate, DROP COLUMN peers_estimate,
                 DROP COLUMN files;
             INSERT INTO files (info_hash, idx, path, path_raw, length)
                 SELECT info_hash, 0, 'old', 'l3:olde'::bytea, 1001 FROM torrents
                 UNION ALL
                 SELECT info_hash, 1, 'dir/second', 'l3:dir6:seconde'::bytea, 7 FROM torrents;
             DELETE FROM schema_migrations WHERE version >= 2;",
        )
        .unwrap();
    let mut store = PgStore::connect(&url).expect("migrate");
    let indexes: Vec<String> = client
        .query(
            "SELECT indexname::text FROM pg_indexes WHERE tablename = 'files' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(indexes, ["files_info_hash"]);
    let mut again = t.clone();
    again.discovered += 10;
    write_torrents(&mut store, vec![again]);
    let stored = store.torrent(&t.info_hash).unwrap().expect("stored");
    assert_eq!(stored.torrent.files, t.files);
    assert_eq!(stored.last_seen, t.discovered + 10);
    let n: i64 = client
        .query_one("SELECT count(*) FROM files", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    // A new torrent: its files in its row; both read back alike.
    let mut new = torrent(2, b"new");
    new.files.push(FileEntry {
        path: vec![b"x".to_vec()],
        length: 3,
    });
    new.file_count = 2;
    write_torrents(&mut store, vec![new.clone()]);
    assert_eq!(
        store
            .torrent(&new.info_hash)
            .unwrap()
            .expect("new")
            .torrent
            .files,
        new.files
    );
    let mut exported = Vec::new();
    store
        .export(None, &mut |s, _| {
            exported.push((s.torrent.info_hash, s.torrent.files.clone()));
            Ok(())
        })
        .unwrap();
    exported.sort_by_key(|(k, _)| *k);
    assert_eq!(
        exported,
        [
            (t.info_hash, t.files.clone()),
            (new.info_hash, new.files.clone())
        ]
    );
    assert_eq!(store.stats().unwrap().files, 4);
    let deleted = store
        .delete_torrents(&[t.info_hash, new.info_hash], 99)
        .unwrap();
    assert_eq!((deleted.torrents, deleted.files), (2, 4));
    assert_eq!(store.stats().unwrap().files, 0);
}

#[test]
fn read_only_refuses_writes_and_needs_a_schema() {
    let url = PgServer::shared().database();
    let err = format!("{:#}", PgStore::connect_read_only(&url).unwrap_err());
    assert!(err.contains("no Estudely index"), "{err}");
    let mut client = sql(&url);
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "read-only connect created nothing");

    write_torrents(
        &mut PgStore::connect(&url).unwrap(),
        vec![torrent(1, b"ro")],
    );
    let mut ro = PgStore::connect_read_only(&url).unwrap();
    assert_eq!(ro.search("ro", 10, 0).unwrap().len(), 1);
    assert_eq!(ro.stats().unwrap().torrents, 1);
    let mut n = 0;
    ro.export(None, &mut |_, _| {
        n += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(n, 1);
    let err = ro.write(
        "me",
        &Batch {
            torrents: vec![torrent(2, b"no")],
            ..Batch::default()
        },
    );
    let err = format!("{:#}", err.unwrap_err());
    assert!(err.contains("read-only"), "{err}");
    assert!(ro.claim(&key(3), "me", Duration::from_secs(1)).is_err());
    assert!(!ro.contains(&key(2)).unwrap());
}

#[test]
fn connection_errors_are_clear() {
    let err = format!(
        "{:#}",
        PgStore::connect("host=/nonexistent/dir dbname=x user=y").unwrap_err()
    );
    assert!(
        err.contains("cannot connect") && err.contains("/nonexistent/dir"),
        "{err}"
    );
    let err = format!(
        "{:#}",
        PgStore::connect("postgres://u:secret@[::1").unwrap_err()
    );
    assert!(!err.contains("secret"), "{err}");
    // A URL form reaches the server too.
    let server = PgServer::shared();
    let dir = server.dir().display().to_string();
    let url = format!(
        "postgresql://estudely@%2F{}/estudely",
        dir.trim_start_matches('/').replace('/', "%2F")
    );
    PgStore::connect(&url).unwrap_or_else(|e| panic!("{url}: {e:#}"));
}

fn names(hits: Vec<estudely::store::StoredTorrent>) -> Vec<String> {
    hits.into_iter()
        .map(|h| String::from_utf8(h.torrent.name).unwrap())
        .collect()
}

#[test]
fn search_sorts_by_size_and_discovery_and_recent_is_newest_first() {
    let (_url, mut store) = fresh();
    let t = |i: u32, name: &str, at: i64, bytes: u64| {
        let mut t = torrent(i, name.as_bytes());
        t.discovered = at;
        t.total_bytes = bytes;
        t
    };
    let torrents = vec![
        t(1, "linux small", 300, 10),
        t(2, "linux big", 100, 5_000),
        t(3, "linux mid", 200, 700),
        t(4, "linux late", 300, 1),
        t(5, "other", 999, 1 << 40),
    ];
    write_torrents(&mut store, torrents);
    for (sort, want) in [
        (
            SearchSort::Size,
            ["linux big", "linux mid", "linux small", "linux late"],
        ),
        // Ties on `discovered`: the greater infohash first.
        (
            SearchSort::Discovered,
            ["linux late", "linux small", "linux mid", "linux big"],
        ),
    ] {
        assert_eq!(
            names(store.search_sorted("LINUX", sort, 10, 0).unwrap()),
            want
        );
        assert_eq!(
            names(store.search_sorted("linux", sort, 2, 1).unwrap()),
            want[1..3]
        );
        // Substrings (trigrams) too, when the server has pg_trgm.
        if store.substring_search() {
            assert_eq!(
                names(store.search_sorted("inu", sort, 10, 0).unwrap()),
                want
            );
        }
    }
    assert_eq!(
        names(
            store
                .search_sorted("linux", SearchSort::Relevance, 10, 0)
                .unwrap()
        ),
        names(store.search("linux", 10, 0).unwrap())
    );
    for sort in [
        SearchSort::Relevance,
        SearchSort::Size,
        SearchSort::Discovered,
    ] {
        for q in [
            "\"", "*", "!", "a & b", "-x", "a:b", "", "🙂", "\u{301}", "x\0y", "%_\\",
        ] {
            store
                .search_sorted(q, sort, 10, 0)
                .unwrap_or_else(|e| panic!("{q:?}: {e:#}"));
        }
        assert!(store.search_sorted("linux", sort, 0, 0).unwrap().is_empty());
        assert!(store
            .search_sorted("linux", sort, usize::MAX, usize::MAX)
            .unwrap()
            .is_empty());
    }
    let recent = store.recent(10, 0).unwrap();
    assert_eq!(
        names(recent.clone()),
        [
            "other",
            "linux late",
            "linux small",
            "linux mid",
            "linux big"
        ]
    );
    assert!(recent.iter().all(|t| t.torrent.files.is_empty()));
    assert_eq!(
        names(store.recent(2, 1).unwrap()),
        ["linux late", "linux small"]
    );
    assert!(store.recent(usize::MAX, usize::MAX).unwrap().is_empty());
}

#[test]
fn sightings_of_a_hybrid_under_both_keys() {
    let (_url, mut store) = fresh();
    let mut hybrid = torrent(1, b"h");
    hybrid.version = Version::Hybrid;
    let mut v2 = [9u8; 32];
    v2[..20].copy_from_slice(&key(9).0);
    hybrid.info_hash_v2 = Some(v2);
    let sight = |k: u32, addr: &str, source, at| Sighting {
        info_hash: key(k),
        addr: addr.parse().unwrap(),
        source,
        at,
    };
    let batch = Batch {
        torrents: vec![hybrid, torrent(2, b"other")],
        sightings: vec![
            sight(1, "1.1.1.1:1", Source::Announce, 10),
            sight(9, "[::2]:2", Source::Sample, 30),
            sight(1, "3.3.3.3:3", Source::GetPeers, 20),
            sight(2, "4.4.4.4:4", Source::GetPeers, 99),
            sight(7, "5.5.5.5:5", Source::GetPeers, 5),
        ],
        ..Batch::default()
    };
    store.write("me", &batch).unwrap();
    for k in [1, 9] {
        let (rows, n) = store.sightings_of(&key(k), 10).unwrap();
        assert_eq!((n.total, n.peers), (3, 2));
        let addrs: Vec<String> = rows.iter().map(|r| r.addr.to_string()).collect();
        assert_eq!(addrs, ["[::2]:2", "3.3.3.3:3", "1.1.1.1:1"]);
        assert_eq!(rows[0].source, Source::Sample);
        assert_eq!((rows[2].first_seen, rows[2].last_seen), (10, 10));
    }
    let (rows, n) = store.sightings_of(&key(1), 1).unwrap();
    assert_eq!((rows.len(), n.total, n.peers), (1, 3, 2));
    let (rows, n) = store.sightings_of(&key(7), 10).unwrap();
    assert_eq!((rows.len(), n.total, n.peers), (1, 1, 1));
    assert_eq!(
        store.sightings_of(&key(8), 10).unwrap().1,
        SightingCounts::default()
    );
}

#[test]
fn aggregates_for_the_stats_page() {
    use estudely::report::SIZE_EDGES;
    let (_url, mut store) = fresh();
    assert_eq!(store.discovered_range().unwrap(), None);
    assert_eq!(store.total_bytes().unwrap(), 0);
    assert_eq!(
        store.size_histogram().unwrap(),
        vec![0; SIZE_EDGES.len() + 1]
    );
    assert!(store.timeline(60).unwrap().is_empty());
    let t = |i: u32, at: i64, bytes: u64, source| {
        let mut t = torrent(i, b"x");
        (t.discovered, t.total_bytes, t.source) = (at, bytes, source);
        t
    };
    write_torrents(
        &mut store,
        vec![
            t(1, 100, 0, Source::Sample),
            t(2, 119, SIZE_EDGES[0] - 1, Source::Sample),
            t(3, 130, SIZE_EDGES[0], Source::Announce),
            t(4, -1, i64::MAX as u64, Source::Sample),
            t(5, 1, i64::MAX as u64, Source::GetPeers),
        ],
    );
    assert_eq!(store.discovered_range().unwrap(), Some((-1, 130)));
    let mut tl = store.timeline(60).unwrap();
    tl.sort();
    assert_eq!(
        tl,
        [
            (-60, Source::Sample, 1),
            (0, Source::GetPeers, 1),
            (60, Source::Sample, 2),
            (120, Source::Announce, 1)
        ]
    );
    for bad in [0, -5, i64::MAX] {
        assert!(store.timeline(bad).is_err());
    }
    let mut want = vec![0; SIZE_EDGES.len() + 1];
    (want[0], want[1], want[SIZE_EDGES.len()]) = (2, 1, 2);
    assert_eq!(store.size_histogram().unwrap(), want);
    // Beyond a bigint: saturated, not an error.
    assert_eq!(store.total_bytes().unwrap(), u64::MAX);
    let report = estudely::report::Report::from_store(&mut store, "pg".into(), 0).unwrap();
    assert_eq!(report.sizes, want);
}

#[test]
fn a_statement_over_the_timeout_is_aborted_and_the_connection_lives_on() {
    let (url, mut store) = fresh();
    write_torrents(&mut store, vec![torrent(1, b"a")]);
    store
        .set_statement_timeout(Duration::from_millis(100))
        .unwrap();
    // Another connection holds a lock that every read of `torrents` waits for: the wait
    // counts against the timeout, and nothing else ends it.
    let mut other = sql(&url);
    let mut tx = other.transaction().unwrap();
    tx.batch_execute("LOCK TABLE torrents IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let e = store.recent(10, 0).unwrap_err();
    assert!(format!("{e:#}").contains("query took too long"), "{e:#}");
    tx.rollback().unwrap();
    assert_eq!(names(store.recent(10, 0).unwrap()), ["a"]);
}

/// Throughput and latency at scale (ignored: minutes). Run in release:
/// `cargo test --release -p estudely --test store_postgres -- --ignored --nocapture bench`
/// (`BENCH_TORRENTS` sets the count, default 1,000,000; `BENCH_DB` a server of your own
/// instead of a throwaway one).
#[test]
#[ignore]
fn bench_million() {
    use std::time::Instant;
    let total: u32 = std::env::var("BENCH_TORRENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let mut store = match std::env::var("BENCH_DB") {
        Ok(url) => PgStore::connect(&url).expect("connect to BENCH_DB"),
        Err(_) => fresh().1,
    };
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let word = |n: u64| format!("w{}x{}", n % 5000, (n / 5000) % 7);
    const EXT: [&str; 5] = ["mkv", "mp4", "iso", "flac", "zip"];
    let started = Instant::now();
    let mut written = 0u32;
    while written < total {
        let n = 1000.min(total - written);
        let torrents: Vec<Torrent> = (written..written + n)
            .map(|i| {
                let mut k = [0u8; 20];
                k[..8].copy_from_slice(&next().to_be_bytes());
                k[8..12].copy_from_slice(&i.to_be_bytes());
                let words: Vec<String> = (0..5).map(|_| word(next())).collect();
                let name = format!("{}.{}", words.join("."), EXT[i as usize % 5]);
                let files = (0..3)
                    .map(|f| FileEntry {
                        path: vec![
                            word(next()).into_bytes(),
                            format!("{f}-{}.{}", word(next()), EXT[f % 5]).into_bytes(),
                        ],
                        length: next() % 1_000_000_000,
                    })
                    .collect();
                Torrent {
                    info_hash: InfoHash(k),
                    info_hash_v2: None,
                    name: name.into_bytes(),
                    total_bytes: next() % 10_000_000_000,
                    piece_length: 1 << 18,
                    file_count: 3,
                    private: false,
                    version: Version::V1,
                    files,
                    discovered: 1_700_000_000 + i64::from(i),
                    source: Source::Sample,
                    seeds_estimate: None,
                    peers_estimate: None,
                    category: None,
                    release: None,
                }
            })
            .collect();
        write_torrents(&mut store, torrents);
        written += n;
        if written.is_multiple_of(100_000) {
            eprintln!(
                "{written} torrents, {:.0}/s",
                f64::from(written) / started.elapsed().as_secs_f64()
            );
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "insert: {total} torrents in {secs:.1} s = {:.0} torrents/s",
        f64::from(total) / secs
    );

    let mut time = |label: &str, queries: Vec<String>| {
        let mut ms: Vec<f64> = Vec::new();
        let mut hits = 0;
        for q in &queries {
            let t = Instant::now();
            hits += store.search(q, 20, 0).unwrap().len();
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(f64::total_cmp);
        let p = |q: f64| ms[((ms.len() - 1) as f64 * q) as usize];
        eprintln!(
            "search {label}: {} queries, p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms, {:.1} hits/query",
            ms.len(),
            p(0.5),
            p(0.95),
            p(1.0),
            hits as f64 / ms.len() as f64
        );
    };
    time("one word", (0..200).map(|_| word(next())).collect());
    time(
        "two words",
        (0..200)
            .map(|_| format!("{} {}", word(next()), word(next())))
            .collect(),
    );
    time(
        "substring",
        (0..200).map(|_| word(next())[1..].to_owned()).collect(),
    );
    time(
        "common word (1 in 5)",
        EXT.iter().map(|e| e.to_string()).collect(),
    );
    time("absent", (0..50).map(|i| format!("zzq{i}absent")).collect());
}

#[test]
fn categories_migrate_from_version_5_are_searched_counted_and_set() {
    use estudely::store::{Category, Release};
    let (url, mut store) = fresh();
    let mut film = torrent(1, b"Silent.River.2019.1080p.BluRay.x264-GRP.mkv");
    let show = torrent(2, b"Silent.River.S01E02.720p.WEB.x264-GRP.mkv");
    film.files[0].length = 8 << 30;
    assert_eq!(film.category, Some(Category::Movie));
    write_torrents(&mut store, vec![film, show]);
    drop(store);
    // Back to version 5: no category columns, and a row written then.
    let mut client = sql(&url);
    client
        .batch_execute(
            "DROP INDEX torrents_category;
             ALTER TABLE torrents DROP COLUMN category, DROP COLUMN release;
             DELETE FROM schema_migrations WHERE version >= 6;",
        )
        .unwrap();
    let mut store = PgStore::connect(&url).expect("migrate");
    let t = store.torrent(&key(1)).unwrap().unwrap().torrent;
    assert_eq!(
        (t.category, t.release),
        (None, None),
        "unclassified after the migration"
    );
    let stats = store.stats().unwrap();
    assert_eq!(stats.by_category, [("unclassified".to_owned(), 2)]);

    // What `reclassify` writes: both, then one again (an unknown key is skipped).
    let classifier = estudely::store::Classifier::default();
    let rows: Vec<(InfoHash, Category, Release)> = [1, 2]
        .into_iter()
        .map(|i| {
            let t = store.torrent(&key(i)).unwrap().unwrap().torrent;
            let c = t.classification(&classifier);
            (key(i), c.category, c.release)
        })
        .chain([(key(9), Category::Game, Release::default())])
        .collect();
    store.set_categories(&rows).unwrap();
    let t = store.torrent(&key(2)).unwrap().unwrap().torrent;
    assert_eq!(t.category, Some(Category::Tv));
    let r = t.release.unwrap();
    assert_eq!(
        (r.season, r.episode, r.group.as_deref()),
        (Some(1), Some(2), Some("GRP"))
    );
    let stats = store.stats().unwrap();
    assert_eq!(
        stats.by_category,
        [("movie".to_owned(), 1), ("tv".to_owned(), 1)]
    );

    let keys = |hits: Vec<estudely::store::StoredTorrent>| -> Vec<InfoHash> {
        hits.iter().map(|h| h.torrent.info_hash).collect()
    };
    let tv = store
        .search_in("silent", Category::Tv, SearchSort::Relevance, 10, 0)
        .unwrap();
    assert_eq!(keys(tv), [key(2)]);
    let movies = store
        .search_in("", Category::Movie, SearchSort::Relevance, 10, 0)
        .unwrap();
    assert_eq!(keys(movies), [key(1)]);
    let none = store
        .search_in("silent", Category::Ebook, SearchSort::Size, 10, 0)
        .unwrap();
    assert!(none.is_empty());
    // Substring search (pg_trgm) honours the category too.
    let sub = store
        .search_in("ilent.riv", Category::Movie, SearchSort::Relevance, 10, 0)
        .unwrap();
    assert!(
        sub.iter()
            .all(|h| h.torrent.category == Some(Category::Movie)),
        "{sub:?}"
    );
}

/// The query language: phrases (`<->`), exclusions (`!`), fields as conditions, sort by
/// seeders (unknown last), counts per category and the file that explains a hit.
#[test]
fn search_language_seeders_counts_and_matched_files() {
    use estudely::store::{Category, SearchQuery};
    let (_url, mut store) = fresh();
    let jan = 1_767_225_600; // 2026-01-01
    let spec = [
        (
            "ubuntu desktop amd64",
            jan - 1,
            2_000_000_000,
            1,
            Some(5),
            Category::Software,
        ),
        (
            "desktop ubuntu",
            jan,
            500_000_000,
            12,
            None,
            Category::Software,
        ),
        (
            "Ubuntu Server",
            jan + 86_400,
            3_000_000_000,
            2,
            Some(40),
            Category::Other,
        ),
        (
            "kubuntu desktop",
            jan + 40 * 86_400,
            700,
            1,
            Some(0),
            Category::Software,
        ),
        ("Pack", jan + 50 * 86_400, 10, 2, None, Category::Ebook),
    ];
    let torrents = spec
        .iter()
        .enumerate()
        .map(|(i, &(name, at, bytes, files, seeds, c))| {
            let mut t = torrent(u32::try_from(i).unwrap() + 1, name.as_bytes());
            (t.discovered, t.total_bytes, t.file_count) = (at, bytes, files);
            t.seeds_estimate = seeds;
            t.category = Some(c);
            // Paths unlike the names: the vector holds the name then the paths in one run,
            // so a phrase may span the end of the name and the start of a path.
            t.files = vec![FileEntry {
                path: vec![format!("f{i}.bin").into_bytes()],
                length: 5,
            }];
            if name == "Pack" {
                t.files = ["readme.txt", "docs/Ubuntu Server Guide.pdf"]
                    .iter()
                    .map(|p| FileEntry {
                        path: p.split('/').map(|c| c.as_bytes().to_vec()).collect(),
                        length: 5,
                    })
                    .collect();
            }
            t
        })
        .collect();
    write_torrents(&mut store, torrents);
    let newest = |store: &mut PgStore, q: &str| {
        names(
            store
                .search_sorted(q, SearchSort::Discovered, 10, 0)
                .unwrap(),
        )
    };
    assert_eq!(
        newest(&mut store, r#""ubuntu desktop""#),
        ["ubuntu desktop amd64"]
    );
    // With pg_trgm, `ubuntu` is also a substring of `kubuntu` (not for a phrase).
    let sub: &[&str] = if store.substring_search() {
        &["kubuntu desktop"]
    } else {
        &[]
    };
    let with_sub = |rest: &[&str]| -> Vec<String> {
        sub.iter().chain(rest).map(|s| (*s).to_owned()).collect()
    };
    assert_eq!(
        newest(&mut store, "ubuntu -server"),
        with_sub(&["desktop ubuntu", "ubuntu desktop amd64"])
    );
    let mut want = vec!["Pack".to_owned()];
    want.extend(with_sub(&["Ubuntu Server", "desktop ubuntu"]));
    assert_eq!(newest(&mut store, r#"ubuntu -"desktop amd64""#), want);
    assert_eq!(newest(&mut store, "-ubuntu"), ["kubuntu desktop"]);
    assert_eq!(
        newest(&mut store, "ubuntu size:>1GB"),
        ["Ubuntu Server", "ubuntu desktop amd64"]
    );
    assert_eq!(newest(&mut store, "size:<1MB"), ["Pack", "kubuntu desktop"]);
    assert_eq!(
        newest(&mut store, "after:2026-01-01 before:2026-02-01"),
        ["Ubuntu Server", "desktop ubuntu"]
    );
    assert_eq!(newest(&mut store, "files:>10"), ["desktop ubuntu"]);
    assert_eq!(
        newest(&mut store, "desktop files:1"),
        ["kubuntu desktop", "ubuntu desktop amd64"]
    );
    assert_eq!(newest(&mut store, "category:other"), ["Ubuntu Server"]);
    assert_eq!(
        newest(&mut store, "desktop category:software -amd64"),
        ["kubuntu desktop", "desktop ubuntu"]
    );
    assert!(newest(&mut store, "ubuntu category:other category:ebook").is_empty());
    assert!(store
        .search_in(
            "server category:other",
            Category::Ebook,
            SearchSort::Size,
            10,
            0
        )
        .unwrap()
        .is_empty());
    let e = store
        .search_sorted("ubuntu files:many", SearchSort::Relevance, 10, 0)
        .unwrap_err();
    assert!(e.is::<estudely::store::UsageError>(), "{e}");
    for sort in [SearchSort::Relevance, SearchSort::Size, SearchSort::Seeders] {
        for q in ["-", "-x", "\"", "size:>1 -\"", "category:tv", "-\"a b\" c"] {
            store
                .search_sorted(q, sort, 10, 0)
                .unwrap_or_else(|e| panic!("{q:?}: {e:#}"));
        }
    }
    assert_eq!(
        names(
            store
                .search_sorted("desktop", SearchSort::Seeders, 10, 0)
                .unwrap()
        ),
        ["ubuntu desktop amd64", "kubuntu desktop", "desktop ubuntu"]
    );
    assert_eq!(
        names(
            store
                .search_sorted("size:>1", SearchSort::Seeders, 10, 0)
                .unwrap()
        ),
        [
            "Ubuntu Server",
            "ubuntu desktop amd64",
            "kubuntu desktop",
            "Pack",
            "desktop ubuntu"
        ]
    );

    let q = SearchQuery::parse("ubuntu category:ebook").unwrap();
    let counts = store.category_counts(&q).unwrap();
    let software = 2 + sub.len() as u64;
    assert_eq!(
        counts.counts,
        [
            (Category::Ebook, 1),
            (Category::Software, software),
            (Category::Other, 1)
        ]
    );
    assert!(!counts.capped);
    let q = SearchQuery::parse("-amd64").unwrap();
    assert_eq!(
        store.category_counts(&q).unwrap().counts,
        [
            (Category::Ebook, 1),
            (Category::Software, 2),
            (Category::Other, 1)
        ]
    );

    let q = SearchQuery::parse(r#""server guide""#).unwrap();
    let hits = store.find(&q, SearchSort::Discovered, 10, 0).unwrap();
    assert_eq!(names(hits.clone()), ["Pack"]);
    assert_eq!(
        store.matched_files(&q, &hits).unwrap(),
        [Some("docs/Ubuntu Server Guide.pdf".to_owned())]
    );
}

/// Re-scrapes (`run --rescrape-rate`): the never scraped first, then the longest ago; a
/// result with figures replaces them and their time, one without (no node sent a filter)
/// only sends the torrent to the back of the line; an index from before the estimates'
/// times gets them from `discovered`.
#[test]
fn estimates_are_refreshed_stalest_first_and_never_erased() {
    use estudely::store::Estimate;
    let (url, mut store) = fresh();
    let figures = |s: &mut PgStore, i: u32| {
        let t = s.torrent(&key(i)).unwrap().expect("stored");
        (
            t.torrent.seeds_estimate,
            t.torrent.peers_estimate,
            t.estimated_at,
        )
    };
    let estimate = |i: u32, seeds, peers, at| Estimate {
        info_hash: key(i),
        seeds,
        peers,
        at,
    };
    let mut with = torrent(1, b"with");
    with.seeds_estimate = Some(5);
    with.peers_estimate = Some(2);
    let mut later = torrent(2, b"later");
    later.seeds_estimate = Some(1);
    write_torrents(&mut store, vec![with, later, torrent(3, b"without")]);
    let t1 = 1_700_000_001;
    assert_eq!(figures(&mut store, 1), (Some(5), Some(2), Some(t1)));
    assert_eq!(figures(&mut store, 3), (None, None, None));
    let all = i64::MAX;
    assert_eq!(
        store.stale_estimates(all, 10).unwrap(),
        [key(3), key(1), key(2)]
    );
    assert_eq!(store.stale_estimates(all, 1).unwrap(), [key(3)]);
    assert_eq!(store.stale_estimates(t1 + 1, 10).unwrap(), [key(3), key(1)]);
    let batch = Batch {
        estimates: vec![
            estimate(3, Some(7), Some(0), 1_800_000_000),
            estimate(1, None, None, 1_800_000_100),
            // Twice in one batch: the later wins.
            estimate(2, Some(8), None, 1_800_000_050),
            estimate(2, Some(4), None, 1_800_000_010),
            estimate(99, Some(1), None, 1_800_000_000),
        ],
        ..Batch::default()
    };
    store.write("me", &batch).unwrap();
    assert_eq!(
        figures(&mut store, 3),
        (Some(7), Some(0), Some(1_800_000_000))
    );
    assert_eq!(
        figures(&mut store, 1),
        (Some(5), Some(2), Some(t1)),
        "an empty re-scrape erases nothing"
    );
    assert_eq!(figures(&mut store, 2), (Some(8), None, Some(1_800_000_050)));
    assert_eq!(
        store.stale_estimates(all, 10).unwrap(),
        [key(3), key(2), key(1)]
    );
    let json = estudely::store::json::torrent_value(&store.torrent(&key(3)).unwrap().unwrap(), &[]);
    assert_eq!(json["estimated_at"], 1_800_000_000);

    // From the version before: the columns gone, migration 8 (and those after) not applied.
    drop(store);
    let mut client = sql(&url);
    client
        .batch_execute(
            "DROP INDEX torrents_scraped_at;
             ALTER TABLE torrents DROP COLUMN estimated_at, DROP COLUMN scraped_at;
             DELETE FROM schema_migrations WHERE version >= 8;",
        )
        .unwrap();
    let mut store = PgStore::connect(&url).expect("migrate");
    assert_eq!(figures(&mut store, 1), (Some(5), Some(2), Some(t1)));
    assert_eq!(
        figures(&mut store, 3),
        (Some(7), Some(0), Some(1_700_000_003)),
        "stored with estimates: measured at discovery"
    );
    let mut bare = torrent(4, b"bare");
    bare.discovered = 1;
    write_torrents(&mut store, vec![bare]);
    assert_eq!(
        store.stale_estimates(all, 10).unwrap()[0],
        key(4),
        "never scraped: first"
    );
}
