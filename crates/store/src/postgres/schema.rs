//! The PostgreSQL schema: versioned migrations, applied under an advisory lock so that
//! crawlers starting at once on one database do not race, and the optional trigram index.

use anyhow::{bail, Context};
use postgres::{Client, GenericClient};

/// The key of the transaction-level advisory lock held while migrating (any constant that
/// other applications on the same database are unlikely to use: "estudely" in ASCII).
const MIGRATION_LOCK: i64 = 0x6573_7475_6465_6c79;

/// The migrations, in order: version `i + 1` is `MIGRATIONS[i]`.
const MIGRATIONS: &[&str] = &[
    // 1: the schema described in `store`'s module doc. `search` is the full-text vector
    // over the name (weight A) and the file paths, written with each torrent. `files` has
    // no foreign key: its rows are written with their torrent's, in one transaction, and a
    // per-row key check would cost as much as the insert itself.
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
    // 2: `files` keyed by a plain index on `info_hash` instead of the primary key
    // (info_hash, idx). Infohashes are random, so each batch's files land on as many
    // pages of that index as it has torrents: at 1 M torrents (10 M files) the primary key
    // was 760 MiB, out of any cache, and its upkeep most of an insert's time. The plain
    // index stores each infohash once for all of its files (B-tree deduplication), about
    // a fifth of the size. Uniqueness needs no index: files are only ever inserted with
    // their torrent, by the transaction whose insert of that torrent succeeded.
    "ALTER TABLE files DROP CONSTRAINT files_pkey;
     CREATE INDEX files_info_hash ON files (info_hash);",
    // 3: a hybrid torrent is stored under its v1 infohash, but the DHT also knows it under
    // its truncated v2 one: that key must find it too.
    "CREATE INDEX torrents_v2_key ON torrents ((substring(info_hash_v2 from 1 for 20)));",
    // 4: BEP 33 estimates of the swarm when the torrent was stored (null: unknown).
    "ALTER TABLE torrents ADD COLUMN seeds_estimate integer, ADD COLUMN peers_estimate integer;",
    // 5: one sighting row per (infohash, address), with a count, instead of one per
    // (infohash, address, source): the rows of an address are merged (their first and last
    // seen, their number as the count, a peer source over `sample`). `run` keeps at most
    // `--max-sightings` rows per infohash from its next write to that infohash on.
    "CREATE TABLE sightings_new (
        info_hash  bytea NOT NULL,
        ip         inet NOT NULL,
        port       integer NOT NULL,
        source     text NOT NULL,
        first_seen bigint NOT NULL,
        last_seen  bigint NOT NULL,
        count      bigint NOT NULL,
        PRIMARY KEY (info_hash, ip, port)
     );
     INSERT INTO sightings_new (info_hash, ip, port, source, first_seen, last_seen, count)
        SELECT info_hash, ip, port,
            coalesce(max(CASE WHEN source <> 'sample' THEN source END), 'sample'),
            min(first_seen), max(last_seen), count(*)
        FROM sightings GROUP BY info_hash, ip, port;
     DROP TABLE sightings;
     ALTER TABLE sightings_new RENAME TO sightings;
     ALTER INDEX sightings_new_pkey RENAME TO sightings_pkey;",
    // 6: what a torrent holds (`estudely-classify`): its category word and its release
    // fields as JSON text; null for the torrents stored before (`estudely reclassify`).
    // Browsing a category newest first reads `torrents_category`.
    "ALTER TABLE torrents ADD COLUMN IF NOT EXISTS category text,
         ADD COLUMN IF NOT EXISTS release text;
     CREATE INDEX IF NOT EXISTS torrents_category ON torrents (category, discovered);",
    // 7: the blocklist of pruned torrents: their keys are never fetched or stored again.
    // 113 bytes a key with its index (BENCHMARKS.md).
    "CREATE TABLE IF NOT EXISTS deleted (
        info_hash  bytea PRIMARY KEY CHECK (length(info_hash) = 20),
        deleted_at bigint NOT NULL
     );",
    // 8: swarm
    // estimates kept fresh. `estimated_at`: when the figures were measured (null: never);
    // `scraped_at`: when the torrent was last scraped, answered or not (0: never). A
    // torrent with estimates got them at discovery. `run --rescrape-rate` reads
    // `torrents_scraped_at`, the lowest first. Safe to run twice.
    "ALTER TABLE torrents ADD COLUMN IF NOT EXISTS estimated_at bigint,
         ADD COLUMN IF NOT EXISTS scraped_at bigint NOT NULL DEFAULT 0;
     UPDATE torrents SET estimated_at = discovered, scraped_at = discovered
         WHERE estimated_at IS NULL
           AND (seeds_estimate IS NOT NULL OR peers_estimate IS NOT NULL);
     CREATE INDEX IF NOT EXISTS torrents_scraped_at ON torrents (scraped_at);",
    // 9: a torrent's files as one compact value in its row (`text::files_blob`), written
    // with the torrent: a row per file made every insert pay for ten rows, ten index
    // entries and each path twice (BENCHMARKS.md, "PostgreSQL writes"). Null for the
    // torrents stored before, whose files stay in `files` and are read from there. Adding
    // a nullable column without a default rewrites nothing: instant at any size.
    "ALTER TABLE torrents ADD COLUMN IF NOT EXISTS files bytea;",
    // 10: the figures of `stats` and of the report kept as they change, so that reading
    // them costs a few rows instead of scans of every table (3 s at 1 M torrents, 12 s at
    // 10 M).
    // Statement-level triggers with transition tables add each statement's rows, whatever
    // wrote them; keys are taken in order, so concurrent writers cannot deadlock on them.
    // The backfill counts what is there, under the triggers' lock (writers wait for it).
    // Safe to run twice (it starts over).
    TOTALS,
];

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
const TOTALS: &str = "
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
    LOCK TABLE torrents, sightings, deleted IN SHARE ROW EXCLUSIVE MODE;
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
        FOR EACH STATEMENT EXECUTE FUNCTION estudely_rows_totals('deleted');
    INSERT INTO totals (key, value)
        SELECT k, count(*) FROM torrents t,
            unnest(estudely_torrent_keys(t.version, t.source, t.category, t.discovered,
                                         t.total_bytes)) k
        GROUP BY k
        UNION ALL
        SELECT 'files', coalesce(sum(file_count - files_omitted), 0) FROM torrents
        UNION ALL
        SELECT 'bytes', coalesce(sum(total_bytes), 0) FROM torrents
        UNION ALL
        SELECT 'sightings', count(*) FROM sightings
        UNION ALL
        SELECT 'deleted', count(*) FROM deleted;";

/// The schema version this build reads and writes.
pub const LATEST: i32 = MIGRATIONS.len() as i32;

/// Bring the schema up to [`LATEST`], in one transaction under an advisory lock; then
/// create the trigram index when `pg_trgm` can be had. Returns whether it can.
pub fn migrate(client: &mut Client) -> anyhow::Result<bool> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    integer PRIMARY KEY,
            applied_at bigint NOT NULL
         )",
    )?;
    let current = version(&mut tx)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i32 + 1;
        tx.batch_execute(sql)
            .with_context(|| format!("schema migration {version}"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at)
             VALUES ($1, extract(epoch FROM now())::bigint)",
            &[&version],
        )?;
    }
    // pg_trgm is in postgresql-contrib, and creating it needs the CREATE privilege: try,
    // and search by words only without it.
    let mut sp = tx.savepoint("trgm")?;
    let trgm = match sp.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_trgm") {
        Ok(()) => {
            sp.commit()?;
            true
        }
        Err(e) => {
            sp.rollback()?;
            tracing::warn!(
                "PostgreSQL extension pg_trgm unavailable ({e}): search finds whole words \
                 only (install postgresql-contrib to search substrings)"
            );
            false
        }
    };
    if trgm && !has_trgm_index(&mut tx)? {
        tx.batch_execute(
            "CREATE INDEX torrents_name_trgm ON torrents USING gin (name gin_trgm_ops)",
        )?;
    }
    tx.commit()?;
    Ok(trgm)
}

/// The schema's version (0: none applied); one newer than [`LATEST`] is an error.
fn version(c: &mut impl GenericClient) -> anyhow::Result<i32> {
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
fn has_trgm_index(client: &mut impl postgres::GenericClient) -> anyhow::Result<bool> {
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
        assert!(sql.contains(&format!("ARRAY[{edges}]::bigint[]")), "{sql}");
    }

    #[test]
    fn migrations_are_numbered_from_one() {
        assert_eq!(LATEST as usize, MIGRATIONS.len());
        const { assert!(LATEST >= 1) };
        assert!(newer(LATEST + 1).contains("upgrade"));
    }
}
