//! The PostgreSQL schema: its versioned migrations and the indexes built beside them (the
//! engine that applies them, without holding writers back, is [`super::migrate`]).

use super::client::{Client, GenericClient};
use anyhow::bail;

/// One step of a migration.
#[derive(Debug)]
pub(super) enum Step {
    /// SQL run in one short transaction, which gives up on a lock it cannot have within a
    /// second (and is tried again) rather than queue writers behind it. Safe to run twice.
    Sql(&'static str),
    /// SQL run once per range of keys, each range its own transaction, so that no lock on
    /// many rows is held for long: `$1` is the range's first key (inclusive), `$2` its end
    /// (exclusive; null for the last). Runs only while the table `table` exists. Safe to
    /// run twice.
    Ranges {
        /// The table the step reads (skipped when it does not exist).
        table: &'static str,
        /// The statement.
        sql: &'static str,
    },
    /// The totals: triggers in place first, then what was there counted on a snapshot
    /// taken as they started (see `migrate::totals`).
    Totals,
}

/// An index built after the migrations, with `CREATE INDEX CONCURRENTLY` (writers go on
/// while it is built), from schema version `since` on; an index left invalid by an
/// interrupted build is dropped and built again.
#[derive(Debug)]
pub(super) struct Index {
    /// The schema version that needs it.
    pub since: i32,
    /// Its name.
    pub name: &'static str,
    /// What follows `CREATE INDEX CONCURRENTLY IF NOT EXISTS name ON`.
    pub on: &'static str,
}

/// The migrations, in order: version `i + 1` is `MIGRATIONS[i]`.
pub(super) const MIGRATIONS: &[&[Step]] = &[
    // 1: the schema described in `store`'s module doc. `search` is the full-text vector
    // over the name (weight A) and the file paths, written with each torrent. `files` has
    // no foreign key: its rows are written with their torrent's, in one transaction, and a
    // per-row key check would cost as much as the insert itself.
    &[Step::Sql(
        "CREATE TABLE torrents (
        info_hash     bytea PRIMARY KEY CHECK (length(info_hash) = 20),
        info_hash_v2  bytea CHECK (length(info_hash_v2) = 32),
        name          text NOT NULL,
        name_raw      bytea NOT NULL,
        total_bytes   bigint NOT NULL,
        piece_length  bigint NOT NULL,
        file_count    bigint NOT NULL,
        files_omitted bigint NOT NULL,
        private       boolean NOT NULL,
        version       text NOT NULL,
        discovered    bigint NOT NULL,
        last_seen     bigint NOT NULL,
        source        text NOT NULL,
        search        tsvector NOT NULL
     );
     CREATE INDEX torrents_discovered ON torrents (discovered);
     CREATE INDEX torrents_search ON torrents USING gin (search);
     CREATE TABLE files (
        info_hash bytea NOT NULL,
        idx       integer NOT NULL,
        path      text NOT NULL,
        path_raw  bytea NOT NULL,
        length    bigint NOT NULL,
        PRIMARY KEY (info_hash, idx)
     );
     CREATE TABLE sightings (
        info_hash  bytea NOT NULL,
        ip         inet NOT NULL,
        port       integer NOT NULL,
        source     text NOT NULL,
        first_seen bigint NOT NULL,
        last_seen  bigint NOT NULL,
        PRIMARY KEY (info_hash, ip, port, source)
     );
     CREATE TABLE nodes (
        ip        inet NOT NULL,
        port      integer NOT NULL,
        id        bytea NOT NULL,
        last_good bigint NOT NULL,
        PRIMARY KEY (ip, port)
     );
     CREATE INDEX nodes_last_good ON nodes (last_good);
     CREATE TABLE counters (
        name  text PRIMARY KEY,
        value bigint NOT NULL
     );
     CREATE TABLE leases (
        info_hash bytea PRIMARY KEY,
        owner     text NOT NULL,
        expires   timestamptz NOT NULL
     );",
    )],
    // 2: `files` keyed by a plain index on `info_hash` instead of the primary key
    // (info_hash, idx). Infohashes are random, so each batch's files land on as many
    // pages of that index as it has torrents: at 1 M torrents (10 M files) the primary key
    // was 760 MiB, out of any cache, and its upkeep most of an insert's time. The plain
    // index stores each infohash once for all of its files (B-tree deduplication), about
    // a fifth of the size. Uniqueness needs no index: files are only ever inserted with
    // their torrent, by the transaction whose insert of that torrent succeeded. (The
    // index: `files_info_hash` in [`INDEXES`].)
    &[Step::Sql(
        "ALTER TABLE files DROP CONSTRAINT IF EXISTS files_pkey",
    )],
    // 3: a hybrid torrent is stored under its v1 infohash, but the DHT also knows it under
    // its truncated v2 one: that key must find it too (`torrents_v2_key` in [`INDEXES`]).
    &[],
    // 4: BEP 33 estimates of the swarm when the torrent was stored (null: unknown).
    &[Step::Sql(
        "ALTER TABLE torrents ADD COLUMN IF NOT EXISTS seeds_estimate integer,
             ADD COLUMN IF NOT EXISTS peers_estimate integer",
    )],
    // 5: one sighting row per (infohash, address), with a count, instead of one per
    // (infohash, address, source): the rows of an address are merged (their first and last
    // seen, their number as the count, a peer source over `sample`). `run` keeps at most
    // `--max-sightings` rows per infohash from its next write to that infohash on.
    // The old table is renamed and its rows moved over a range of keys at a time.
    &[
        Step::Sql(
            "DO $$ BEGIN
             IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                            WHERE table_schema = current_schema()
                              AND table_name = 'sightings' AND column_name = 'count') THEN
                 ALTER TABLE sightings RENAME TO sightings_v4;
                 ALTER INDEX sightings_pkey RENAME TO sightings_v4_pkey;
                 CREATE TABLE sightings (
                    info_hash  bytea NOT NULL,
                    ip         inet NOT NULL,
                    port       integer NOT NULL,
                    source     text NOT NULL,
                    first_seen bigint NOT NULL,
                    last_seen  bigint NOT NULL,
                    count      bigint NOT NULL,
                    PRIMARY KEY (info_hash, ip, port)
                 );
             END IF;
             END $$",
        ),
        Step::Ranges {
            table: "sightings_v4",
            sql: "WITH moved AS (
                    DELETE FROM sightings_v4
                    WHERE info_hash >= $1 AND ($2::bytea IS NULL OR info_hash < $2)
                    RETURNING *)
                  INSERT INTO sightings (info_hash, ip, port, source, first_seen, last_seen, count)
                  SELECT info_hash, ip, port,
                      coalesce(max(CASE WHEN source <> 'sample' THEN source END), 'sample'),
                      min(first_seen), max(last_seen), count(*)
                  FROM moved GROUP BY info_hash, ip, port
                  ON CONFLICT (info_hash, ip, port) DO UPDATE SET
                      source = CASE WHEN sightings.source = 'sample' THEN EXCLUDED.source
                                    WHEN EXCLUDED.source = 'sample' THEN sightings.source
                                    ELSE greatest(sightings.source, EXCLUDED.source) END,
                      first_seen = least(sightings.first_seen, EXCLUDED.first_seen),
                      last_seen = greatest(sightings.last_seen, EXCLUDED.last_seen),
                      count = sightings.count + EXCLUDED.count",
        },
        Step::Sql("DROP TABLE IF EXISTS sightings_v4"),
    ],
    // 6: what a torrent holds (`estudely-classify`): its category word and its release
    // fields as JSON text; null for the torrents stored before (`estudely reclassify`).
    // Browsing a category newest first reads `torrents_category` ([`INDEXES`]).
    &[Step::Sql(
        "ALTER TABLE torrents ADD COLUMN IF NOT EXISTS category text,
             ADD COLUMN IF NOT EXISTS release text",
    )],
    // 7: the blocklist of pruned torrents: their keys are never fetched or stored again.
    // 113 bytes a key with its index (BENCHMARKS.md).
    &[Step::Sql(
        "CREATE TABLE IF NOT EXISTS deleted (
            info_hash  bytea PRIMARY KEY CHECK (length(info_hash) = 20),
            deleted_at bigint NOT NULL
         )",
    )],
    // 8: swarm estimates kept fresh. `estimated_at`: when the figures were measured (null:
    // never); `scraped_at`: when the torrent was last scraped, answered or not (0: never).
    // A torrent with estimates got them at discovery (set a range of keys at a time).
    // `run --rescrape-rate` reads `torrents_scraped_at` ([`INDEXES`]), the lowest first.
    &[
        Step::Sql(
            "ALTER TABLE torrents ADD COLUMN IF NOT EXISTS estimated_at bigint,
                 ADD COLUMN IF NOT EXISTS scraped_at bigint NOT NULL DEFAULT 0",
        ),
        Step::Ranges {
            table: "torrents",
            sql: "UPDATE torrents SET estimated_at = discovered, scraped_at = discovered
                  WHERE info_hash >= $1 AND ($2::bytea IS NULL OR info_hash < $2)
                    AND estimated_at IS NULL
                    AND (seeds_estimate IS NOT NULL OR peers_estimate IS NOT NULL)",
        },
    ],
    // 9: a torrent's files as one compact value in its row (`text::files_blob`), written
    // with the torrent: a row per file made every insert pay for ten rows, ten index
    // entries and each path twice (BENCHMARKS.md, "PostgreSQL writes"). Null for the
    // torrents stored before, whose files stay in `files` and are read from there. Adding
    // a nullable column without a default rewrites nothing: instant at any size.
    &[Step::Sql(
        "ALTER TABLE torrents ADD COLUMN IF NOT EXISTS files bytea",
    )],
    // 10: the figures of `stats` and of the report kept as they change, so that reading
    // them costs a few rows instead of scans of every table (3 s at 1 M torrents, 12 s at
    // 10 M). Statement-level triggers with transition tables add each statement's rows,
    // whatever wrote them; keys are taken in order, so concurrent writers cannot deadlock
    // on them. What was there before is counted on a snapshot taken as the triggers
    // started, while writers go on ([`TOTALS`], `migrate::totals`). Starts over if run twice.
    &[Step::Totals],
];

/// The indexes built after the migrations (see [`Index`]).
pub(super) const INDEXES: &[Index] = &[
    Index {
        since: 2,
        name: "files_info_hash",
        on: "files (info_hash)",
    },
    Index {
        since: 3,
        name: "torrents_v2_key",
        on: "torrents ((substring(info_hash_v2 from 1 for 20)))",
    },
    Index {
        since: 6,
        name: "torrents_category",
        on: "torrents (category, discovered)",
    },
    Index {
        since: 8,
        name: "torrents_scraped_at",
        on: "torrents (scraped_at)",
    },
];

/// The trigram index on names, built like [`INDEXES`] when `pg_trgm` can be had.
pub(super) const TRGM_INDEX: Index = Index {
    since: 1,
    name: "torrents_name_trgm",
    on: "torrents USING gin (name gin_trgm_ops)",
};

/// Migration 10: the `totals` table, its triggers and its backfill (see [`MIGRATIONS`]).
/// Keys: `torrents`, `files` (stored files, `file_count - files_omitted`, wherever they are
/// held), `bytes` (the sum of sizes, exact in `numeric`), `sightings`, `deleted`, and per
/// torrent `version:`, `source:`, `category:` (`category:unclassified` without one),
/// `day:YYYY-MM-DD` (UTC day of `discovered`), `hour:START:SOURCE` (the hour of discovery,
/// which the report's timeline adds up into its buckets of whole hours) and `size:I` (its
/// bucket of [`crate::SIZE_EDGES`]; a test checks the edges).
/// Inserts and deletes are counted by the triggers; a category changes only through
/// [`Store::set_categories`](crate::Store::set_categories), which counts it (an UPDATE
/// trigger would make every `last_seen` update keep both versions of its rows).
/// Run with the three tables locked against writers (only while it runs: milliseconds).
pub(super) const TOTALS: &str = "
    LOCK TABLE torrents, sightings, deleted IN SHARE ROW EXCLUSIVE MODE;
    DROP TABLE IF EXISTS totals;
    CREATE TABLE totals (
        key   text PRIMARY KEY,
        value numeric NOT NULL
    );
    -- Exact sums at any size: one hostile torrent may claim 2^63 bytes, and a sum past
    -- bigint must neither fail the write that adds it nor be wrong once it is deleted.
    CREATE OR REPLACE FUNCTION estudely_add_totals(deltas jsonb) RETURNS void LANGUAGE sql AS $$
        INSERT INTO totals (key, value)
        SELECT key, sum(value::numeric) FROM jsonb_each_text(deltas) GROUP BY key
        HAVING sum(value::numeric) <> 0 ORDER BY key
        ON CONFLICT (key) DO UPDATE SET value = totals.value + EXCLUDED.value
    $$;
    CREATE OR REPLACE FUNCTION estudely_torrent_keys(version text, source text, category text,
                                                     discovered bigint, total_bytes bigint)
        RETURNS text[] LANGUAGE sql STABLE AS $$
        SELECT ARRAY['torrents', 'version:' || version, 'source:' || source,
                     'category:' || coalesce(category, 'unclassified'),
                     'day:' || to_char(to_timestamp(discovered) AT TIME ZONE 'UTC',
                                       'YYYY-MM-DD'),
                     'hour:' || (discovered - ((discovered % 3600) + 3600) % 3600)
                         || ':' || source,
                     'size:' || width_bucket(total_bytes, ARRAY[1048576, 10485760,
                         104857600, 524288000, 1073741824, 4294967296, 10737418240,
                         53687091200, 107374182400]::bigint[])]
    $$;
    CREATE OR REPLACE FUNCTION estudely_torrents_totals() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE deltas jsonb;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            SELECT jsonb_object_agg(key, n) INTO deltas FROM (
                SELECT k AS key, count(*) AS n FROM new_rows r,
                    unnest(estudely_torrent_keys(r.version, r.source, r.category,
                                                 r.discovered, r.total_bytes)) k GROUP BY k
                UNION ALL
                SELECT 'files', sum(r.file_count - r.files_omitted) FROM new_rows r
                UNION ALL
                SELECT 'bytes', sum(r.total_bytes) FROM new_rows r) d
            WHERE n IS NOT NULL;
        ELSE
            SELECT jsonb_object_agg(key, -n) INTO deltas FROM (
                SELECT k AS key, count(*) AS n FROM old_rows r,
                    unnest(estudely_torrent_keys(r.version, r.source, r.category,
                                                 r.discovered, r.total_bytes)) k GROUP BY k
                UNION ALL
                SELECT 'files', sum(r.file_count - r.files_omitted) FROM old_rows r
                UNION ALL
                SELECT 'bytes', sum(r.total_bytes) FROM old_rows r) d
            WHERE n IS NOT NULL;
        END IF;
        IF deltas IS NOT NULL THEN
            PERFORM estudely_add_totals(deltas);
        END IF;
        RETURN NULL;
    END $$;
    CREATE OR REPLACE FUNCTION estudely_rows_totals() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE n bigint;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            SELECT count(*) INTO n FROM new_rows;
        ELSE
            SELECT -count(*) INTO n FROM old_rows;
        END IF;
        IF n <> 0 THEN
            PERFORM estudely_add_totals(jsonb_build_object(TG_ARGV[0], n));
        END IF;
        RETURN NULL;
    END $$;
    DROP TRIGGER IF EXISTS torrents_totals_insert ON torrents;
    CREATE TRIGGER torrents_totals_insert AFTER INSERT ON torrents
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION estudely_torrents_totals();
    DROP TRIGGER IF EXISTS torrents_totals_delete ON torrents;
    CREATE TRIGGER torrents_totals_delete AFTER DELETE ON torrents
        REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION estudely_torrents_totals();
    DROP TRIGGER IF EXISTS sightings_totals_insert ON sightings;
    CREATE TRIGGER sightings_totals_insert AFTER INSERT ON sightings
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION estudely_rows_totals('sightings');
    DROP TRIGGER IF EXISTS sightings_totals_delete ON sightings;
    CREATE TRIGGER sightings_totals_delete AFTER DELETE ON sightings
        REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION estudely_rows_totals('sightings');
    DROP TRIGGER IF EXISTS deleted_totals_insert ON deleted;
    CREATE TRIGGER deleted_totals_insert AFTER INSERT ON deleted
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION estudely_rows_totals('deleted');
    DROP TRIGGER IF EXISTS deleted_totals_delete ON deleted;
    CREATE TRIGGER deleted_totals_delete AFTER DELETE ON deleted
        REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION estudely_rows_totals('deleted');";

/// What was there before the totals' triggers: `(key, value as text)` rows, added to
/// `totals` (see `migrate::totals`).
pub(super) const TOTALS_COUNT: &str = "
    SELECT k, count(*)::text FROM torrents t,
        unnest(estudely_torrent_keys(t.version, t.source, t.category, t.discovered,
                                     t.total_bytes)) k
    GROUP BY k
    UNION ALL
    SELECT 'files', coalesce(sum(file_count - files_omitted), 0)::text FROM torrents
    UNION ALL
    SELECT 'bytes', coalesce(sum(total_bytes), 0)::text FROM torrents
    UNION ALL
    SELECT 'sightings', count(*)::text FROM sightings
    UNION ALL
    SELECT 'deleted', count(*)::text FROM deleted";

/// The schema version this build reads and writes.
pub const LATEST: i32 = MIGRATIONS.len() as i32;

/// The schema's version (0: none applied); one newer than [`LATEST`] is an error.
pub(super) fn version(c: &mut impl GenericClient) -> anyhow::Result<i32> {
    let current: i32 = c
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )?
        .get(0);
    if current > LATEST {
        bail!(newer(current));
    }
    Ok(current)
}

/// Check, without changing anything, that the schema is there and at [`LATEST`]; return
/// whether the trigram index is there.
pub fn check(client: &mut Client) -> anyhow::Result<bool> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        bail!("no Estudely index in this database (`estudely run --db URL` creates one)");
    }
    let current = version(client)?;
    if current < LATEST {
        bail!(
            "the index has schema version {current}, this estudely needs {LATEST}: open it \
             once for writing (`estudely run`) to migrate it"
        );
    }
    has_trgm_index(client)
}

/// Is the trigram index on names there (and so `pg_trgm`)?
pub(super) fn has_trgm_index(
    client: &mut impl super::client::GenericClient,
) -> anyhow::Result<bool> {
    Ok(client
        .query_one("SELECT to_regclass('torrents_name_trgm') IS NOT NULL", &[])?
        .get(0))
}

fn newer(current: i32) -> String {
    format!(
        "the index has schema version {current}, newer than this estudely knows \
         ({LATEST}): upgrade estudely"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_buckets_are_the_crates() {
        let edges = crate::SIZE_EDGES.map(|e| e.to_string()).join(", ");
        let sql: String = TOTALS.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            sql.starts_with("LOCK TABLE"),
            "writers wait before anything is dropped"
        );
        assert!(sql.contains(&format!("ARRAY[{edges}]::bigint[]")), "{sql}");
    }

    #[test]
    fn migrations_are_numbered_from_one() {
        assert_eq!(LATEST as usize, MIGRATIONS.len());
        const { assert!(LATEST >= 1) };
        assert!(newer(LATEST + 1).contains("upgrade"));
    }
}
