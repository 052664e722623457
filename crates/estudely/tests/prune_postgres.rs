//! `estudely prune` on the PostgreSQL index against a throwaway server
//! (scripts/pg-test-server): each rule, the dry run, the blocklist of deleted keys (a
//! hybrid's two), and no trace left in search. The SQLite side is tested in
//! `crates/store/src/sqlite/prune/tests.rs`.

#[path = "common/pg.rs"]
mod pg;

use std::net::SocketAddr;
use std::time::Duration;

use estudely::store::postgres::PgStore;
use estudely::store::prune::{prune, PruneOptions, PruneReport, PruneRules};
use estudely::store::sqlite::fixtures::{self, torrent};
use estudely::store::{Batch, Sighting, Source, Store, Torrent};
use estudely_krpc::InfoHash;
use estudely_peer_wire::{FileEntry, Version};
use pg::PgServer;

fn key(i: u8) -> InfoHash {
    InfoHash([i; 20])
}

fn fresh_with(torrents: Vec<Torrent>) -> PgStore {
    let mut store = PgStore::connect(&PgServer::shared().database()).expect("connect");
    let batch = Batch {
        torrents,
        ..Batch::default()
    };
    store.write("me", &batch).expect("write");
    store
}

fn stored(s: &mut PgStore) -> Vec<u8> {
    let mut keys = Vec::new();
    s.for_each_info_hash(&mut |k| keys.push(k.0[0])).unwrap();
    keys.sort();
    keys
}

fn run(s: &mut PgStore, rules: &PruneRules, dry_run: bool) -> PruneReport {
    let opts = PruneOptions {
        dry_run,
        now: 1_000,
        chunk: 3,
        ..PruneOptions::default()
    };
    prune(s, rules, &opts).unwrap()
}

#[test]
fn each_rule_alone_and_together() {
    for (i, (rules, left)) in fixtures::prune_cases().into_iter().enumerate() {
        let mut s = fresh_with(fixtures::ten());
        let report = run(&mut s, &rules, false);
        assert_eq!(stored(&mut s), left, "case {i}");
        let gone = 10 - left.len() as u64;
        assert_eq!(
            (report.deleted.torrents, report.deleted.files),
            (gone, gone)
        );
        assert_eq!(s.stats().unwrap().deleted, gone, "case {i}");
    }
}

#[test]
fn a_dry_run_changes_nothing_and_a_size_cap_deletes_the_oldest() {
    let mut s = fresh_with(fixtures::ten());
    let before = s.stats().unwrap();
    let rules = PruneRules {
        max_torrents: Some(7),
        ..PruneRules::default()
    };
    let report = run(&mut s, &rules, true);
    assert_eq!(report.deleted.torrents, 3);
    assert_eq!(report.content_bytes, 6000);
    assert_eq!(report.examples.len(), 3);
    assert_eq!(s.stats().unwrap(), before);
    let size = s.db_size().unwrap();
    assert!(
        size.used > 0 && size.file >= size.used && !size.live,
        "{size:?}"
    );
    // A cap at 70 % of the used size: 3 of 10 torrents, by the average (PostgreSQL's used
    // size does not drop as rows go: one round).
    let rules = PruneRules {
        max_db_size: Some(size.used - size.used * 3 / 10),
        ..PruneRules::default()
    };
    let report = run(&mut s, &rules, false);
    assert_eq!(report.deleted.torrents, 3);
    assert_eq!(stored(&mut s), [4, 5, 6, 7, 8, 9, 10]);
}

#[test]
fn deleted_keys_are_blocked_everywhere_and_leave_no_trace() {
    let mut hybrid = torrent(7, b"Hybrid Sunflower", 1);
    hybrid.version = Version::Hybrid;
    hybrid.info_hash_v2 = Some([0x42; 32]);
    hybrid.files = vec![FileEntry {
        path: vec![b"disc".to_vec(), b"sunflower petals.flac".to_vec()],
        length: 1,
    }];
    let mut s = fresh_with(vec![hybrid, torrent(8, b"Daisy", 2)]);
    let sight = |k: u8, port| Sighting {
        info_hash: key(k),
        addr: SocketAddr::new([10, 0, 0, 1].into(), port),
        source: Source::GetPeers,
        at: 5,
    };
    let batch = Batch {
        sightings: vec![sight(7, 1), sight(0x42, 2), sight(8, 3)],
        ..Batch::default()
    };
    s.write("me", &batch).unwrap();
    assert_eq!(s.search("petals", 10, 0).unwrap().len(), 1);
    let rules = PruneRules {
        name: Some(regex::Regex::new("Sunflower").unwrap()),
        ..PruneRules::default()
    };
    let r = run(&mut s, &rules, false);
    let d = r.deleted;
    assert_eq!((d.torrents, d.files, d.sightings), (1, 1, 2));
    let (v1, v2) = (key(7), key(0x42));
    let mut known = s.known_among(&[v1, v2, key(8), key(9)]).unwrap();
    known.sort();
    assert_eq!(known, [v1, key(8), v2]);
    let mut blocked = s.deleted_among(&[v1, v2, key(8)]).unwrap();
    blocked.sort();
    assert_eq!(blocked, [v1, v2]);
    let mut all = Vec::new();
    s.for_each_deleted(&mut |k| all.push(k)).unwrap();
    all.sort();
    assert_eq!(all, [v1, v2]);
    let hour = Duration::from_secs(3600);
    assert!(!s.claim(&v1, "me", hour).unwrap() && !s.claim(&v2, "me", hour).unwrap());
    assert!(s.claim(&key(9), "me", hour).unwrap());
    assert_eq!(stored(&mut s), [8]);
    // Sightings of a blocked key are not stored again.
    let again = Batch {
        sightings: vec![sight(7, 4), sight(0x42, 5), sight(9, 6)],
        ..Batch::default()
    };
    s.write("me", &again).unwrap();
    let st = s.stats().unwrap();
    assert_eq!(
        (st.torrents, st.files, st.sightings, st.deleted),
        (1, 1, 2, 2)
    );
    for word in ["sunflower", "petals", "hybrid", "sunfl"] {
        assert!(s.search(word, 10, 0).unwrap().is_empty(), "{word}");
    }
    // A new torrent with the same words is found.
    let batch = Batch {
        torrents: vec![torrent(10, b"Sunflower Petals", 3)],
        ..Batch::default()
    };
    s.write("me", &batch).unwrap();
    let hits = s.search("sunflower petals", 10, 0).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].torrent.info_hash, key(10));
}
