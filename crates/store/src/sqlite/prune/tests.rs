use std::time::Duration;

use estudely_krpc::InfoHash;
use estudely_peer_wire::{FileEntry, Version};

use super::super::fixtures::{self, open, torrent};
use super::super::SqliteStore;
use crate::prune::{prune, PruneOptions, PruneReport, PruneRules};
use crate::{Batch, Sighting, Source, Store as _, Torrent};

fn write(s: &mut SqliteStore, torrents: Vec<Torrent>) {
    let batch = Batch {
        torrents,
        ..Batch::default()
    };
    s.write("t", &batch).unwrap();
}

/// The keys stored, sorted by their first byte.
fn stored(s: &mut SqliteStore) -> Vec<u8> {
    let mut keys = Vec::new();
    s.for_each_info_hash(&mut |k| keys.push(k.0[0])).unwrap();
    keys.sort();
    keys
}

fn run(s: &mut SqliteStore, rules: &PruneRules) -> PruneReport {
    let opts = PruneOptions {
        now: 1_000,
        ..PruneOptions::default()
    };
    prune(s, rules, &opts).unwrap()
}

/// Rows the full-text index itself holds for `word` (no join with `torrents`).
fn fts_hits(s: &SqliteStore, word: &str) -> i64 {
    s.conn
        .query_row(
            "SELECT count(*) FROM torrents_fts WHERE torrents_fts MATCH ?1",
            [word],
            |r| r.get(0),
        )
        .unwrap()
}

fn ten() -> (tempfile::TempDir, SqliteStore) {
    let (dir, mut s) = open();
    write(&mut s, fixtures::ten());
    (dir, s)
}

#[test]
fn each_rule_alone_and_together() {
    for (i, (rules, left)) in fixtures::prune_cases().into_iter().enumerate() {
        let (_dir, mut s) = ten();
        let report = run(&mut s, &rules);
        assert_eq!(stored(&mut s), left, "case {i}");
        let gone = 10 - left.len() as u64;
        assert_eq!(report.deleted.torrents, gone, "case {i}");
        assert_eq!(report.deleted.files, gone, "case {i}");
        assert_eq!(s.stats().unwrap().deleted, gone, "case {i}");
    }
}

#[test]
fn a_dry_run_changes_nothing() {
    let (_dir, mut s) = ten();
    let before = s.stats().unwrap();
    let rules = PruneRules {
        max_torrents: Some(7),
        ..PruneRules::default()
    };
    let opts = PruneOptions {
        dry_run: true,
        examples: 2,
        ..PruneOptions::default()
    };
    let report = prune(&mut s, &rules, &opts).unwrap();
    assert_eq!(report.deleted.torrents, 3);
    assert_eq!(report.deleted.files, 3);
    assert_eq!(report.content_bytes, 6000);
    assert_eq!(
        report.examples,
        ["Film1.2019.1080p.BluRay.x264.mkv", "notes 2.pdf"]
    );
    assert_eq!(report.after, report.before);
    assert_eq!(s.stats().unwrap(), before);
    assert_eq!(stored(&mut s), (1..=10).collect::<Vec<u8>>());
}

#[test]
fn deleted_keys_are_blocked_everywhere_and_leave_no_trace() {
    let (_dir, mut s) = open();
    let mut hybrid = torrent(7, b"Hybrid Sunflower", 1);
    hybrid.version = Version::Hybrid;
    hybrid.info_hash_v2 = Some([0x42; 32]);
    hybrid.files = vec![
        FileEntry {
            path: vec![b"disc".to_vec(), b"sunflower petals.flac".to_vec()],
            length: 1,
        },
        FileEntry {
            path: vec![b"cover marigold.jpg".to_vec()],
            length: 1,
        },
    ];
    hybrid.file_count = 2;
    let keep = torrent(8, b"Daisy", 2);
    let sight = |key: u8, port| Sighting {
        info_hash: InfoHash([key; 20]),
        addr: std::net::SocketAddr::new([10, 0, 0, 1].into(), port),
        source: Source::GetPeers,
        at: 5,
    };
    let batch = Batch {
        torrents: vec![hybrid, keep],
        sightings: vec![sight(7, 1), sight(0x42, 2), sight(8, 3)],
        ..Batch::default()
    };
    s.write("t", &batch).unwrap();
    let hour = Duration::from_secs(3600);
    assert!(s.claim(&InfoHash([9; 20]), "other", hour).unwrap());
    assert_eq!(fts_hits(&s, "marigold"), 1);

    let rules = PruneRules {
        name: Some(regex::Regex::new("Sunflower").unwrap()),
        ..PruneRules::default()
    };
    let report = run(&mut s, &rules);
    assert_eq!(
        (
            report.deleted.torrents,
            report.deleted.files,
            report.deleted.sightings
        ),
        (1, 2, 2)
    );
    // Both keys blocked; counted as known, never claimed; not torrents.
    let (v1, v2) = (InfoHash([7; 20]), InfoHash([0x42; 20]));
    let ask = [v1, v2, InfoHash([8; 20]), InfoHash([9; 20])];
    let mut known = s.known_among(&ask).unwrap();
    known.sort();
    assert_eq!(known, [v1, InfoHash([8; 20]), v2]);
    let mut blocked = s.deleted_among(&ask).unwrap();
    blocked.sort();
    assert_eq!(blocked, [v1, v2]);
    let mut all = Vec::new();
    s.for_each_deleted(&mut |k| all.push(k)).unwrap();
    all.sort();
    assert_eq!(all, [v1, v2]);
    assert!(!s.contains(&v1).unwrap() && !s.contains(&v2).unwrap());
    assert!(!s.claim(&v1, "t", hour).unwrap() && !s.claim(&v2, "t", hour).unwrap());
    assert_eq!(stored(&mut s), [8]);
    let st = s.stats().unwrap();
    assert_eq!(
        (st.torrents, st.files, st.sightings, st.deleted),
        (1, 1, 1, 2)
    );
    // Sightings of a blocked key are not stored again.
    let again = Batch {
        sightings: vec![sight(7, 4), sight(0x42, 5), sight(9, 6)],
        ..Batch::default()
    };
    s.write("t", &again).unwrap();
    assert_eq!(s.stats().unwrap().sightings, 2);
    assert_eq!(s.sightings_of(&v1, 10).unwrap().1.total, 0);
    // The full-text index itself holds nothing of it, and stays sound.
    for word in ["sunflower", "petals", "marigold", "hybrid", "disc"] {
        assert_eq!(fts_hits(&s, word), 0, "{word}");
    }
    assert!(s.search("sunflower", 10, 0).unwrap().is_empty());
    s.conn
        .execute(
            "INSERT INTO torrents_fts (torrents_fts) VALUES ('integrity-check')",
            [],
        )
        .unwrap();
    // A new torrent with the same words is found.
    write(&mut s, vec![torrent(10, b"Sunflower Marigold", 3)]);
    let hits = s.search("sunflower marigold", 10, 0).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].torrent.info_hash, InfoHash([10; 20]));
    assert_eq!(fts_hits(&s, "sunflower"), 1);
}

#[test]
fn max_db_size_shrinks_the_file() {
    let (_dir, mut s) = open();
    let files = |i: u32| {
        (0..50)
            .map(|j| FileEntry {
                path: vec![format!("folder {i}/track {j} of a long album name.flac").into_bytes()],
                length: 1,
            })
            .collect::<Vec<_>>()
    };
    for chunk in 0..4u32 {
        let ts = (0..250u32)
            .map(|k| {
                let i = chunk * 250 + k;
                let mut t = torrent(0, format!("album {i}").as_bytes(), i64::from(i));
                t.info_hash = InfoHash(*blake_ish(i));
                t.files = files(i);
                t.file_count = 50;
                t
            })
            .collect();
        write(&mut s, ts);
    }
    s.conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let before = s.db_size().unwrap();
    assert!(before.file > 2_000_000, "{before:?}");
    let cap = before.used / 2;
    let rules = PruneRules {
        max_db_size: Some(cap),
        ..PruneRules::default()
    };
    let report = run(&mut s, &rules);
    assert!(report.after.used <= cap, "{report:?}");
    assert!(report.after.file <= cap, "the file shrank: {report:?}");
    assert_eq!(report.before, before);
    let left = s.torrent_count().unwrap();
    assert!((300..=600).contains(&left), "{left} left");
    assert_eq!(report.deleted.torrents, 1000 - left);
    // The oldest went.
    let (first, _) = s.discovered_range().unwrap().unwrap();
    assert_eq!(first, i64::try_from(1000 - left).unwrap());
}

/// 20 distinct bytes from `i` (no hashing crate needed).
fn blake_ish(i: u32) -> Box<[u8; 20]> {
    let mut k = [0u8; 20];
    for (j, b) in k.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2_654_435_761).rotate_left(j as u32) >> 3) as u8 ^ j as u8;
    }
    k[..4].copy_from_slice(&i.to_be_bytes());
    Box::new(k)
}

/// A reader in the middle of a query (the web server) does not stop a prune and its
/// VACUUM; it goes on reading what it had. (The checkpoint after the VACUUM waits for the
/// reader's old snapshot up to the busy timeout, 10 s, then leaves the rest of the WAL to a
/// later checkpoint.)
#[test]
fn a_prune_goes_on_beside_a_reader() {
    let (dir, mut s) = ten();
    let reader = SqliteStore::open_read_only(&dir.path().join("test.sqlite")).unwrap();
    let mut stmt = reader
        .conn
        .prepare("SELECT info_hash FROM torrents ORDER BY discovered")
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    assert!(
        rows.next().unwrap().is_some(),
        "the reader's snapshot is open"
    );
    let rules = PruneRules {
        max_torrents: Some(4),
        ..PruneRules::default()
    };
    assert_eq!(run(&mut s, &rules).deleted.torrents, 6);
    let mut seen = 1;
    while rows.next().unwrap().is_some() {
        seen += 1;
    }
    assert_eq!(seen, 10, "the reader's snapshot is whole");
    drop(rows);
    drop(stmt);
    assert_eq!(stored(&mut s), [7, 8, 9, 10]);
}
