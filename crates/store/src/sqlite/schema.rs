//! The SQLite schema as versioned migrations, and the connection settings.
//!
//! Each migration runs once, in a transaction of its own, and records its version in
//! `schema_migrations`. An index whose highest version is newer than [`MIGRATIONS`] knows
//! was written by a newer estudely: opening it is an error rather than a guess.
//!
//! Physical choices (the logical schema is in [the crate root](crate)):
//! - `torrents` has an `id INTEGER PRIMARY KEY` besides its unique `info_hash`: the full-text
//!   table's rowid, and the key of `files`. Infohashes are random, so a table keyed by them
//!   takes inserts all over its B-tree; keyed by `id`, the file rows of a batch are appended.
//!   `files` keeps the `info_hash` column of the logical schema too (not indexed).
//! - `torrents_fts` is a contentless FTS5 table (`content=''`): one row per torrent, rowid =
//!   `torrents.id`, holding the name and the stored paths, one per line. The text is not
//!   stored twice; only the index is.

use rusqlite::{Connection, OpenFlags};

/// The migrations, oldest first: `MIGRATIONS[i]` brings the schema to version `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE torrents (
        id INTEGER PRIMARY KEY,
        info_hash BLOB NOT NULL UNIQUE CHECK (length(info_hash) = 20),
        info_hash_v2 BLOB CHECK (info_hash_v2 IS NULL OR length(info_hash_v2) = 32),
        name TEXT NOT NULL,
        name_raw BLOB NOT NULL,
        total_bytes INTEGER NOT NULL,
        piece_length INTEGER NOT NULL,
        file_count INTEGER NOT NULL,
        files_omitted INTEGER NOT NULL,
        private INTEGER NOT NULL,
        version TEXT NOT NULL,
        discovered INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        source TEXT NOT NULL
    );
    CREATE INDEX torrents_discovered ON torrents (discovered);
    CREATE TABLE files (
        torrent_id INTEGER NOT NULL REFERENCES torrents (id),
        idx INTEGER NOT NULL,
        info_hash BLOB NOT NULL,
        path TEXT NOT NULL,
        path_raw BLOB NOT NULL,
        length INTEGER NOT NULL,
        PRIMARY KEY (torrent_id, idx)
    ) WITHOUT ROWID;
    CREATE TABLE sightings (
        info_hash BLOB NOT NULL,
        ip TEXT NOT NULL,
        port INTEGER NOT NULL,
        source TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        PRIMARY KEY (info_hash, ip, port, source)
    ) WITHOUT ROWID;
    CREATE TABLE nodes (
        ip TEXT NOT NULL,
        port INTEGER NOT NULL,
        id BLOB NOT NULL,
        last_good INTEGER NOT NULL,
        PRIMARY KEY (ip, port)
    ) WITHOUT ROWID;
    CREATE INDEX nodes_last_good ON nodes (last_good);
    CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE leases (
        info_hash BLOB PRIMARY KEY,
        owner TEXT NOT NULL,
        expires INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE VIRTUAL TABLE torrents_fts USING fts5 (
        name, paths, content = '', tokenize = 'unicode61 remove_diacritics 2'
    );",
    // 2: a hybrid torrent is stored under its v1 infohash, but the DHT also knows it under
    // its truncated v2 one: that key must find it too.
    "CREATE INDEX torrents_v2_key ON torrents (substr(info_hash_v2, 1, 20));",
    // 3: BEP 33 estimates of the swarm when the torrent was stored (null: unknown).
    "ALTER TABLE torrents ADD COLUMN seeds_estimate INTEGER;
    ALTER TABLE torrents ADD COLUMN peers_estimate INTEGER;",
    // 4: one sighting row per (infohash, address), with a count, instead of one per
    // (infohash, address, source): the rows of an address are merged (their first and last
    // seen, their number as the count, a peer source over `sample`). `run` keeps at most
    // `--max-sightings` rows per infohash from its next write to that infohash on.
    "CREATE TABLE sightings_new (
        info_hash BLOB NOT NULL,
        ip TEXT NOT NULL,
        port INTEGER NOT NULL,
        source TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (info_hash, ip, port)
    ) WITHOUT ROWID;
    INSERT INTO sightings_new (info_hash, ip, port, source, first_seen, last_seen, count)
        SELECT info_hash, ip, port,
            coalesce(max(CASE WHEN source <> 'sample' THEN source END), 'sample'),
            min(first_seen), max(last_seen), count(*)
        FROM sightings GROUP BY info_hash, ip, port;
    DROP TABLE sightings;
    ALTER TABLE sightings_new RENAME TO sightings;",
    // 5: what a torrent holds (`estudely-classify`): its category word and its release
    // fields as JSON; null for the torrents stored before (`estudely reclassify`). Browsing
    // a category newest first reads `torrents_category`.
    "ALTER TABLE torrents ADD COLUMN category TEXT;
    ALTER TABLE torrents ADD COLUMN release TEXT;
    CREATE INDEX torrents_category ON torrents (category, discovered);",
    // 6: the blocklist of pruned torrents (`estudely prune`, `run --max-torrents`): their
    // keys are never fetched or stored again. 34 bytes a key on disk (BENCHMARKS.md).
    "CREATE TABLE deleted (
        info_hash BLOB PRIMARY KEY CHECK (length(info_hash) = 20),
        deleted_at INTEGER NOT NULL
    ) WITHOUT ROWID;",
    // 7: swarm
    // estimates kept fresh. `estimated_at`: when the figures were measured (null: never);
    // `scraped_at`: when the torrent was last scraped, answered or not (0: never). A
    // torrent with estimates got them at discovery. `run --rescrape-rate` reads
    // `torrents_scraped_at`, the lowest first.
    "ALTER TABLE torrents ADD COLUMN estimated_at INTEGER;
    ALTER TABLE torrents ADD COLUMN scraped_at INTEGER NOT NULL DEFAULT 0;
    UPDATE torrents SET estimated_at = discovered, scraped_at = discovered
        WHERE seeds_estimate IS NOT NULL OR peers_estimate IS NOT NULL;
    CREATE INDEX IF NOT EXISTS torrents_scraped_at ON torrents (scraped_at);",
];

/// The schema version this binary writes and reads.
pub fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

/// Settings for every connection: a busy timeout (several crawlers may share a file),
/// foreign keys on; for a writer also `synchronous=NORMAL`, a 16 MiB page cache and a
/// checkpoint every 64 MiB of WAL.
pub fn configure(conn: &Connection, writer: bool) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    if writer {
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // 16 MiB: a crawler inserts hundreds of torrents a second, not the 20,000 a larger
        // cache allows; the pages it misses come back from the OS's cache, which is not
        // the crawler's memory (BENCHMARKS.md, "Ingest at scale").
        conn.pragma_update(None, "cache_size", -16_384)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // Checkpoint every 64 MiB of WAL rather than 4 MiB: the pages a batch touches (the
        // full-text index, the infohash index) are written back once per many batches.
        conn.pragma_update(None, "wal_autocheckpoint", 16_384)?;
    }
    Ok(())
}

/// The flags of a writer connection.
pub fn writer_flags() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI
}

/// The applied version: 0 for a fresh file, `None` if the file holds tables but no
/// `schema_migrations` (not an Estudely index).
pub fn current_version(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    let has_table: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
        [],
        |r| r.get(0),
    )?;
    if has_table {
        let v: Option<i64> =
            conn.query_row("SELECT max(version) FROM schema_migrations", [], |r| {
                r.get(0)
            })?;
        return Ok(Some(v.unwrap_or(0)));
    }
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
        [],
        |r| r.get(0),
    )?;
    Ok((tables == 0).then_some(0))
}

/// Switch to WAL and apply every migration not applied yet, each in its own IMMEDIATE
/// transaction (two processes opening a fresh file at once apply each migration once).
/// `what` names the file in errors.
pub fn migrate(conn: &mut Connection, what: &str) -> anyhow::Result<()> {
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        anyhow::bail!("SQLite index `{what}`: cannot switch to WAL mode (got `{mode}`)");
    }
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            applied_at INTEGER NOT NULL
        )",
    )?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let applied: i64 = tx.query_row(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )?;
        if applied > latest() {
            anyhow::bail!(too_new(what, applied));
        }
        if applied >= version {
            continue;
        }
        tx.execute_batch(sql)
            .map_err(|e| anyhow::anyhow!("SQLite index `{what}`: migration {version}: {e}"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, unixepoch())",
            [version],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// The message for an index written by a newer estudely.
pub fn too_new(what: &str, version: i64) -> String {
    format!(
        "SQLite index `{what}` has schema version {version}, newer than this estudely knows ({}): \
         upgrade estudely",
        latest()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_refuse_newer() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(current_version(&conn).unwrap(), Some(0));
        // In memory there is no WAL: run the statements by hand.
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, \
                 applied_at INTEGER NOT NULL); INSERT INTO schema_migrations VALUES ({}, 0)",
                i + 1
            ))
            .unwrap();
        }
        assert_eq!(current_version(&conn).unwrap(), Some(latest()));
        conn.execute("INSERT INTO schema_migrations VALUES (99, 0)", [])
            .unwrap();
        assert_eq!(current_version(&conn).unwrap(), Some(99));
        assert!(too_new("x.db", 99).contains("`x.db` has schema version 99"));
        let other = Connection::open_in_memory().unwrap();
        other.execute_batch("CREATE TABLE t (x)").unwrap();
        assert_eq!(current_version(&other).unwrap(), None);
        let _ = &mut conn;
    }

    /// An index of schema version 3 (one sighting row per address and source) with data
    /// in it: opened by this build, its sightings are merged per address, counted, and
    /// everything else is still there.
    #[test]
    fn sightings_migrate_from_version_3() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v3.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, \
                 applied_at INTEGER NOT NULL)",
            )
            .unwrap();
            for (i, sql) in MIGRATIONS[..3].iter().enumerate() {
                conn.execute_batch(sql).unwrap();
                conn.execute("INSERT INTO schema_migrations VALUES (?1, 0)", [i + 1])
                    .unwrap();
            }
            conn.execute_batch(
                "INSERT INTO sightings VALUES
                    (x'0101010101010101010101010101010101010101', '1.1.1.1', 1, 'sample', 5, 50),
                    (x'0101010101010101010101010101010101010101', '1.1.1.1', 1, 'get_peers', 10, 20),
                    (x'0101010101010101010101010101010101010101', '1.1.1.1', 1, 'announce', 7, 30),
                    (x'0101010101010101010101010101010101010101', '2.2.2.2', 2, 'sample', 1, 2),
                    (x'0202020202020202020202020202020202020202', '::1', 3, 'get_peers', 4, 4);
                 INSERT INTO counters VALUES ('no_peers', 3);",
            )
            .unwrap();
        }
        let s = super::super::SqliteStore::open(&path).unwrap();
        let rows: Vec<(String, u16, String, i64, i64, i64)> = s
            .conn
            .prepare(
                "SELECT ip, port, source, first_seen, last_seen, count FROM sightings \
                 ORDER BY info_hash, ip",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let row = |ip: &str, port, source: &str, f, l, c| {
            (ip.to_owned(), port, source.to_owned(), f, l, c)
        };
        assert_eq!(
            rows,
            [
                row("1.1.1.1", 1, "get_peers", 5, 50, 3),
                row("2.2.2.2", 2, "sample", 1, 2, 1),
                row("::1", 3, "get_peers", 4, 4, 1),
            ]
        );
        let v: i64 = s
            .conn
            .query_row("SELECT max(version) FROM schema_migrations", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(v, latest());
        let n: i64 = s
            .conn
            .query_row("SELECT value FROM counters", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
    }

    /// An index from before the estimates' times: a torrent with estimates got them at
    /// discovery (`estimated_at` and `scraped_at` = `discovered`); one without was never
    /// scraped (null, 0), so it is re-scraped first.
    #[test]
    fn estimate_times_migrate_from_the_version_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        let before = MIGRATIONS
            .iter()
            .position(|m| m.contains("scraped_at"))
            .unwrap();
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, \
                 applied_at INTEGER NOT NULL)",
            )
            .unwrap();
            for (i, sql) in MIGRATIONS[..before].iter().enumerate() {
                conn.execute_batch(sql).unwrap();
                conn.execute("INSERT INTO schema_migrations VALUES (?1, 0)", [i + 1])
                    .unwrap();
            }
            for (key, seeds) in [(1u8, Some(4)), (2, None)] {
                conn.execute(
                    "INSERT INTO torrents (info_hash, name, name_raw, total_bytes, \
                     piece_length, file_count, files_omitted, private, version, discovered, \
                     last_seen, source, seeds_estimate) \
                     VALUES (?1, 'x', x'78', 1, 1, 1, 0, 0, 'v1', ?2, ?2, 'sample', ?3)",
                    rusqlite::params![[key; 20], 100 * i64::from(key), seeds],
                )
                .unwrap();
            }
        }
        let s = super::super::SqliteStore::open(&path).unwrap();
        let rows: Vec<(Option<i64>, i64)> = s
            .conn
            .prepare("SELECT estimated_at, scraped_at FROM torrents ORDER BY info_hash")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, [(Some(100), 100), (None, 0)]);
    }
}
