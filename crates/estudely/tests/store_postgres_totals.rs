//! The PostgreSQL index's `stats` come from `totals`, kept by triggers (schema 10) instead
//! of scans: after every kind of write (new torrents, ones stored again, sightings trimmed
//! to `max_sightings`, reclassification, prune, writers on four connections at once) they
//! equal a recount by scans of the tables, and an index migrated from schema 9 with data in
//! it is backfilled.

#[path = "common/pg.rs"]
mod pg;

use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::thread;

use estudely::store::postgres::PgStore;
use estudely::store::{Batch, Category, Release, Sighting, Source, Stats, Store, Torrent};
use estudely_krpc::InfoHash;
use estudely_peer_wire::{FileEntry, Version};
use pg::PgServer;

fn key(i: u32) -> InfoHash {
    let mut k = [0u8; 20];
    k[..4].copy_from_slice(&i.to_be_bytes());
    k[19] = 0xcd;
    InfoHash(k)
}

/// Torrent `i`: its version, source, day of discovery and number of files vary with `i`.
fn torrent(i: u32) -> Torrent {
    let files = (0..i % 4 + 1)
        .map(|f| FileEntry {
            path: vec![format!("t{i}").into_bytes(), format!("f{f}").into_bytes()],
            length: u64::from(f + 1),
        })
        .collect::<Vec<_>>();
    Torrent {
        info_hash: key(i),
        info_hash_v2: None,
        name: format!("t{i}").into_bytes(),
        total_bytes: 10,
        piece_length: 16384,
        file_count: files.len() as u64 + u64::from(i.is_multiple_of(3)),
        private: false,
        version: [Version::V1, Version::V2, Version::Hybrid][i as usize % 3],
        files,
        discovered: 1_700_000_000 + i64::from(i % 5) * 86_400,
        source: [Source::Sample, Source::GetPeers, Source::Announce][i as usize % 3],
        seeds_estimate: None,
        peers_estimate: None,
        category: [None, Some(Category::Movie), Some(Category::Music)][i as usize % 3],
        release: None,
    }
}

fn sight(i: u32, port: u16, at: i64) -> Sighting {
    Sighting {
        info_hash: key(i),
        addr: SocketAddr::from(([10, 0, 0, 1], port)),
        source: Source::GetPeers,
        at,
    }
}

fn sql(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("connect")
}

/// The figures of `stats` counted by scans, as the backend did before schema 10.
fn recount(url: &str) -> Stats {
    let mut c = sql(url);
    let n = |c: &mut postgres::Client, q: &str| -> u64 {
        let v: i64 = c.query_one(q, &[]).unwrap().get(0);
        v as u64
    };
    let pairs = |c: &mut postgres::Client, q: &str| -> Vec<(String, u64)> {
        c.query(q, &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
            .collect()
    };
    Stats {
        torrents: n(&mut c, "SELECT count(*) FROM torrents"),
        files: n(
            &mut c,
            "SELECT coalesce(sum(file_count - files_omitted), 0)::int8 FROM torrents",
        ),
        sightings: n(&mut c, "SELECT count(*) FROM sightings"),
        nodes: n(&mut c, "SELECT count(*) FROM nodes"),
        deleted: n(&mut c, "SELECT count(*) FROM deleted"),
        by_version: pairs(
            &mut c,
            "SELECT version, count(*) FROM torrents GROUP BY 1 ORDER BY version COLLATE \"C\"",
        ),
        by_source: pairs(
            &mut c,
            "SELECT source, count(*) FROM torrents GROUP BY 1 ORDER BY source COLLATE \"C\"",
        ),
        by_day: pairs(
            &mut c,
            "SELECT to_char(to_timestamp(discovered) AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                    count(*) FROM torrents GROUP BY 1 ORDER BY 1",
        ),
        counters: pairs(
            &mut c,
            "SELECT name, value FROM counters ORDER BY name COLLATE \"C\"",
        ),
        by_category: pairs(
            &mut c,
            "SELECT coalesce(category, 'unclassified'), count(*) FROM torrents GROUP BY 1
             ORDER BY coalesce(category, 'unclassified') COLLATE \"C\"",
        ),
    }
}

/// The report's figures counted by scans: sizes per bucket, their sum (saturated), and the
/// timeline in `bucket` seconds.
fn recount_report(url: &str, bucket: i64) -> (Vec<u64>, u64, Vec<(i64, Source, u64)>) {
    let mut c = sql(url);
    let mut sizes = vec![0u64; estudely::store::SIZE_EDGES.len() + 1];
    let mut bytes: u128 = 0;
    let mut timeline = std::collections::BTreeMap::new();
    for row in c
        .query("SELECT total_bytes, discovered, source FROM torrents", &[])
        .unwrap()
    {
        let (size, at, source): (i64, i64, String) = (row.get(0), row.get(1), row.get(2));
        sizes[estudely::store::size_bucket(size as u64)] += 1;
        bytes += size as u128;
        let start = at - at.rem_euclid(bucket);
        *timeline
            .entry((start, Source::parse(&source).unwrap()))
            .or_insert(0u64) += 1;
    }
    let bytes = if bytes >= i64::MAX as u128 {
        u64::MAX
    } else {
        bytes as u64
    };
    let timeline = timeline.into_iter().map(|((t, s), n)| (t, s, n)).collect();
    (sizes, bytes, timeline)
}

fn check(url: &str, store: &mut PgStore, when: &str) -> Stats {
    let stats = store.stats().unwrap();
    assert_eq!(stats, recount(url), "{when}");
    assert_eq!(store.torrent_count().unwrap(), stats.torrents, "{when}");
    for bucket in [3600, 86_400, 900] {
        let (sizes, bytes, timeline) = recount_report(url, bucket);
        let mut got = store.timeline(bucket).unwrap();
        got.sort();
        assert_eq!(got, timeline, "{when}: timeline in {bucket} s");
        assert_eq!(store.size_histogram().unwrap(), sizes, "{when}");
        assert_eq!(store.total_bytes().unwrap(), bytes, "{when}");
    }
    stats
}

#[test]
fn totals_follow_every_write() {
    let url = PgServer::shared().database();
    let mut store = PgStore::connect(&url).unwrap();
    assert_eq!(check(&url, &mut store, "empty"), Stats::default());

    // New torrents (one twice in the batch), with sightings trimmed to 3 per torrent.
    let mut torrents: Vec<Torrent> = (0..30).map(torrent).collect();
    torrents.push(torrent(4));
    // Sizes in several buckets, and discoveries in several hours.
    for (i, t) in torrents.iter_mut().enumerate() {
        t.total_bytes = [10, 5 << 20, 700 << 20, 3 << 30, 200 << 30][i % 5];
        t.discovered += (i as i64 % 7) * 3_000;
    }
    let sightings = (0..30)
        .flat_map(|i| (1..=5).map(move |p| sight(i, p, i64::from(p))))
        .collect();
    let batch = Batch {
        torrents,
        sightings,
        max_sightings: Some(3),
        counters: vec![("filtered_size".into(), 2)],
        ..Batch::default()
    };
    store.write("me", &batch).unwrap();
    let stats = check(&url, &mut store, "first batch");
    assert_eq!((stats.torrents, stats.sightings), (30, 90));
    assert_eq!(
        stats.by_day.len(),
        6,
        "five days, and hours past the last midnight"
    );

    // Stored again (nothing counted twice), new ones, sightings of known addresses again.
    let batch = Batch {
        torrents: (20..40).map(torrent).collect(),
        sightings: (0..10).map(|i| sight(i, 5, 99)).collect(),
        max_sightings: Some(3),
        ..Batch::default()
    };
    store.write("me", &batch).unwrap();
    let stats = check(&url, &mut store, "second batch");
    assert_eq!((stats.torrents, stats.sightings), (40, 90));

    // Reclassified: some change category, one keeps it, an unknown key is skipped.
    let rows: Vec<(InfoHash, Category, Release)> = [0, 1, 2, 3, 99]
        .into_iter()
        .map(|i| (key(i), Category::Game, Release::default()))
        .chain([(key(4), Category::Movie, Release::default())])
        .collect();
    store.set_categories(&rows).unwrap();
    store.set_categories(&rows).unwrap();
    check(&url, &mut store, "reclassified");

    // Pruned: torrents, their files and sightings go; their keys join the blocklist.
    let gone: Vec<InfoHash> = (0..12).map(key).collect();
    store.delete_torrents(&gone, 5).unwrap();
    store.delete_torrents(&gone[..3], 6).unwrap();
    let stats = check(&url, &mut store, "pruned");
    assert_eq!((stats.torrents, stats.deleted), (28, 12));

    // Hostile sizes: the write goes through, the sum read saturates, and it is exact again
    // once they are gone.
    let mut huge: Vec<Torrent> = (60..63).map(torrent).collect();
    for t in &mut huge {
        t.total_bytes = u64::MAX;
    }
    let keys: Vec<InfoHash> = huge.iter().map(|t| t.info_hash).collect();
    store
        .write(
            "me",
            &Batch {
                torrents: huge,
                ..Batch::default()
            },
        )
        .unwrap();
    check(&url, &mut store, "hostile sizes");
    assert_eq!(store.total_bytes().unwrap(), u64::MAX);
    store.delete_torrents(&keys, 7).unwrap();

    // Four writers at once, overlapping keys in different orders.
    let barrier = Arc::new(Barrier::new(4));
    let writers: Vec<_> = (0..4u32)
        .map(|w| {
            let (url, barrier) = (url.clone(), barrier.clone());
            thread::spawn(move || {
                let mut store = PgStore::connect(&url).unwrap();
                barrier.wait();
                for round in 0..5u32 {
                    let mut keys: Vec<u32> = (100 + round * 20..100 + round * 20 + 60).collect();
                    if w % 2 == 1 {
                        keys.reverse();
                    }
                    let batch = Batch {
                        torrents: keys.iter().map(|&i| torrent(i)).collect(),
                        sightings: keys.iter().map(|&i| sight(i, w as u16 + 1, 1)).collect(),
                        max_sightings: Some(3),
                        ..Batch::default()
                    };
                    store.write("w", &batch).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let stats = check(&url, &mut store, "four writers");
    assert_eq!(stats.torrents, 28 + 140);
    assert!(recount_report(&url, 3600).2.len() > 5, "several hours");
}

/// An index of schema 9 with data: migration 10 counts what is there.
#[test]
fn an_index_from_schema_9_is_backfilled() {
    let url = PgServer::shared().database();
    let mut store = PgStore::connect(&url).unwrap();
    let batch = Batch {
        torrents: (0..25).map(torrent).collect(),
        sightings: (0..25).map(|i| sight(i, 1, 1)).collect(),
        ..Batch::default()
    };
    store.write("me", &batch).unwrap();
    store.delete_torrents(&[key(3)], 1).unwrap();
    drop(store);
    back_to_schema_9(&url);
    let mut store = PgStore::connect(&url).expect("migrate");
    let stats = check(&url, &mut store, "backfilled");
    assert_eq!(
        (stats.torrents, stats.sightings, stats.deleted),
        (24, 24, 1)
    );
    store
        .write(
            "me",
            &Batch {
                torrents: vec![torrent(50)],
                ..Batch::default()
            },
        )
        .unwrap();
    check(&url, &mut store, "written after");
}

/// Drop what schema 10 made, so the index is at schema 9 again.
fn back_to_schema_9(url: &str) {
    sql(url)
        .batch_execute(
            "DROP TABLE totals CASCADE;
             DROP FUNCTION estudely_torrents_totals, estudely_rows_totals,
                 estudely_add_totals, estudely_torrent_keys CASCADE;
             DELETE FROM schema_migrations WHERE version >= 10;",
        )
        .unwrap();
}

/// A writer of an older build (plain SQL on its own connection) keeps inserting torrents
/// and sightings, and deleting some, while migration 10 counts what was there: the
/// triggers start while it is held back for a moment, the backfill counts a snapshot taken
/// in that moment, and after the migration the totals equal a recount (no row counted
/// twice or missed, whenever the writer's statements fell).
#[test]
fn writes_during_the_totals_migration_are_counted_once() {
    let url = PgServer::shared().database();
    let mut store = PgStore::connect(&url).unwrap();
    let batch = Batch {
        torrents: (0..400).map(torrent).collect(),
        sightings: (0..400).map(|i| sight(i, 1, 1)).collect(),
        ..Batch::default()
    };
    store.write("me", &batch).unwrap();
    drop(store);
    back_to_schema_9(&url);

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (url, stop) = (url.clone(), stop.clone());
        thread::spawn(move || {
            let mut c = sql(&url);
            let mut i = 10_000u32;
            let mut after_stop = 0;
            while after_stop < 20 {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    after_stop += 1;
                }
                let k = key(i).0.to_vec();
                c.execute(
                    "INSERT INTO torrents (info_hash, name, name_raw, total_bytes,
                         piece_length, file_count, files_omitted, private, version,
                         discovered, last_seen, source, search)
                     VALUES ($1, 'w', 'w', 5, 16384, 1, 0, false, 'v1', 1700000000,
                         1700000000, 'sample', to_tsvector('simple', 'w'))",
                    &[&k],
                )
                .unwrap();
                c.execute(
                    "INSERT INTO sightings (info_hash, ip, port, source, first_seen,
                         last_seen, count) VALUES ($1, '10.0.0.2', 2, 'sample', 1, 1, 1)",
                    &[&k],
                )
                .unwrap();
                // Now and then one of the torrents that were there before goes.
                if i.is_multiple_of(7) {
                    let old = key(i % 400).0.to_vec();
                    c.execute("DELETE FROM torrents WHERE info_hash = $1", &[&old])
                        .unwrap();
                }
                i += 1;
            }
            i - 10_000
        })
    };
    let mut store = PgStore::connect(&url).expect("migrate while a writer writes");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = writer.join().unwrap();
    eprintln!("the writer inserted {written} torrents around the migration");
    check(&url, &mut store, "writes during the migration");
}

/// An upgrade interrupted after migration 10's triggers started (its version not yet
/// recorded) starts that migration over: nothing counted twice.
#[test]
fn an_interrupted_totals_migration_starts_over() {
    let url = PgServer::shared().database();
    let mut store = PgStore::connect(&url).unwrap();
    let batch = Batch {
        torrents: (0..30).map(torrent).collect(),
        ..Batch::default()
    };
    store.write("me", &batch).unwrap();
    drop(store);
    // As if it stopped before recording version 10: triggers and totals in place.
    sql(&url)
        .batch_execute("DELETE FROM schema_migrations WHERE version >= 10")
        .unwrap();
    let mut store = PgStore::connect(&url).expect("migrate again");
    let stats = check(&url, &mut store, "after starting over");
    assert_eq!(stats.torrents, 30);
}

/// An index build that was interrupted leaves an invalid index under its name: the next
/// start drops it and builds it again (a check of its name alone would keep it for ever).
#[test]
fn an_index_left_invalid_is_built_again() {
    let url = PgServer::shared().database();
    let mut store = PgStore::connect(&url).unwrap();
    store
        .write(
            "me",
            &Batch {
                torrents: (0..3).map(torrent).collect(),
                ..Batch::default()
            },
        )
        .unwrap();
    drop(store);
    let mut c = sql(&url);
    c.batch_execute("DROP INDEX torrents_scraped_at").unwrap();
    // A concurrent build that fails (duplicate keys) leaves its index behind, invalid.
    let failed = c.batch_execute(
        "CREATE UNIQUE INDEX CONCURRENTLY torrents_scraped_at ON torrents (scraped_at)",
    );
    assert!(
        failed.is_err(),
        "every scraped_at is 0: the unique build fails"
    );
    let state = |c: &mut postgres::Client| -> (bool, bool) {
        let r = c
            .query_one(
                "SELECT i.indisvalid, i.indisunique FROM pg_index i
                 JOIN pg_class x ON x.oid = i.indexrelid WHERE x.relname = 'torrents_scraped_at'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(state(&mut c), (false, true), "left invalid");
    PgStore::connect(&url).expect("start again");
    assert_eq!(state(&mut c), (true, false), "built again, as it should be");
}
