//! Applying the schema's migrations ([`super::schema`]) to an index that may hold ten
//! million torrents while other crawlers keep writing to it.
//!
//! One transaction for the whole upgrade (as before schema 11) held every lock it took until
//! the end: at 10 M torrents the totals' backfill kept writers waiting 38 s, and an index
//! build would have kept them waiting for minutes. Here no step holds writers back for more
//! than about a second:
//! - each migration step is its own short transaction, with `lock_timeout` at one second:
//!   a step that cannot have its lock in time gives up (so writers do not queue behind it)
//!   and is tried again a little later;
//! - data is rewritten a range of keys at a time ([`Step::Ranges`]), each range its own
//!   transaction;
//! - indexes are built with `CREATE INDEX CONCURRENTLY`, outside any transaction, after the
//!   migrations; one left invalid by an interrupted build is dropped and built again;
//! - the totals are counted on a snapshot taken while their triggers start, with writers
//!   going on meanwhile ([`totals`]).
//!
//! Crawlers starting at once take turns on a session-level advisory lock, asked for with
//! `pg_try_advisory_lock` in a loop: a waiting crawler holds no snapshot open, which a
//! concurrent index build would otherwise wait for. A migration's version is recorded in
//! the transaction of its last step, so an upgrade interrupted anywhere resumes where it
//! stopped (every step of a migration with several is safe to run twice).

use std::time::{Duration, Instant};

use super::client::SqlState;
use super::client::{Client, IsolationLevel};
use anyhow::{bail, Context};

use super::schema::{self, Index, Step, INDEXES, MIGRATIONS, TOTALS, TOTALS_COUNT, TRGM_INDEX};

/// The key of the session-level advisory lock held while migrating (any constant that
/// other applications on the same database are unlikely to use: "estudely" in ASCII).
/// Builds before schema 11 took it per transaction (`pg_advisory_xact_lock`): the two
/// exclude each other.
const MIGRATION_LOCK: i64 = 0x6573_7475_6465_6c79;

/// How long a step waits for a lock before it gives up and is tried again.
const LOCK_TIMEOUT: &str = "1s";
/// The wait let run past `deadlock_timeout` after [`PATIENT_AFTER`] tries in a row, so
/// that PostgreSQL cancels an autovacuum in the way (see [`retrying`]).
const LONG_LOCK_TIMEOUT: &str = "3s";
/// Tries with [`LOCK_TIMEOUT`] before [`LONG_LOCK_TIMEOUT`].
const PATIENT_AFTER: u32 = 25;
/// How long a step keeps trying to have its locks before the upgrade fails.
const LOCK_PATIENCE: Duration = Duration::from_secs(600);
/// Between tries.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Ranges of keys a [`Step::Ranges`] is cut into: the keys' first 12 bits. At 10 M
/// torrents, about 2,400 rows a transaction.
const RANGES: u32 = 4_096;

/// Bring the schema up to [`schema::LATEST`] and build its indexes; then the trigram index
/// when `pg_trgm` can be had. Returns whether it can. `another` opens a second connection
/// to the same database (the totals' backfill reads on it).
pub fn migrate(
    client: &mut Client,
    another: &dyn Fn() -> anyhow::Result<Client>,
) -> anyhow::Result<bool> {
    lock(client)?;
    let result = upgrade(client, another);
    // Unlocked whatever happened (a failed upgrade usually closes the connection anyway,
    // which unlocks too).
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    result
}

fn upgrade(
    client: &mut Client,
    another: &dyn Fn() -> anyhow::Result<Client>,
) -> anyhow::Result<bool> {
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    integer PRIMARY KEY,
            applied_at bigint NOT NULL
         )",
    )?;
    let current = schema::version(client)?;
    for (i, steps) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i32 + 1;
        apply(client, another, version, steps)
            .with_context(|| format!("schema migration {version}"))?;
    }
    for index in INDEXES {
        build(client, index)?;
    }
    // pg_trgm is in postgresql-contrib, and creating it needs the CREATE privilege: try,
    // and search by words only without it.
    let trgm = match client.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_trgm") {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(
                "PostgreSQL extension pg_trgm unavailable ({e}): search finds whole words \
                 only (install postgresql-contrib to search substrings)"
            );
            false
        }
    };
    if trgm {
        build(client, &TRGM_INDEX)?;
    }
    Ok(trgm)
}

/// Take the migration lock, waiting (without a statement or snapshot open) while another
/// session holds it.
fn lock(client: &mut Client) -> anyhow::Result<()> {
    let mut said = false;
    loop {
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&MIGRATION_LOCK])?
            .get(0);
        if got {
            return Ok(());
        }
        if !said {
            tracing::info!("another crawler is migrating the index: waiting for it");
            said = true;
        }
        std::thread::sleep(RETRY_PAUSE);
    }
}

/// Apply migration `version`'s steps and record it with the last.
fn apply(
    client: &mut Client,
    another: &dyn Fn() -> anyhow::Result<Client>,
    version: i32,
    steps: &[Step],
) -> anyhow::Result<()> {
    let started = Instant::now();
    if steps.is_empty() {
        short(client, "", Some(version))?;
    }
    for (i, step) in steps.iter().enumerate() {
        let last = (i + 1 == steps.len()).then_some(version);
        match step {
            Step::Sql(sql) => short(client, sql, last)?,
            Step::Ranges { table, sql } => {
                ranges(client, table, sql)?;
                if last.is_some() {
                    short(client, "", last)?;
                }
            }
            Step::Totals => totals(client, another, last)?,
        }
    }
    tracing::info!(
        "schema migration {version} applied in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Run `sql` (and record `version`, if any) in one transaction that gives up on a lock it
/// cannot have within [`LOCK_TIMEOUT`]; try again until [`LOCK_PATIENCE`] is spent.
fn short(client: &mut Client, sql: &str, version: Option<i32>) -> anyhow::Result<()> {
    retrying(client, |client, timeout| {
        let mut tx = client.transaction()?;
        tx.batch_execute(&format!("SET LOCAL lock_timeout = '{timeout}'"))?;
        if !sql.is_empty() {
            tx.batch_execute(sql)?;
        }
        if let Some(v) = version {
            record(&mut tx, v)?;
        }
        tx.commit()
    })
}

/// `attempt` (given the client and the `lock_timeout` to set) again while it fails for a
/// lock not had in time, a deadlock or a serialization failure, until [`LOCK_PATIENCE`] is
/// spent.
///
/// A lock held by autovacuum is the usual long wait (say, after a step rewrote millions of
/// rows): PostgreSQL cancels an autovacuum that blocks a lock request, but only once the
/// request has waited `deadlock_timeout` (1 s by default), which a 1 s `lock_timeout`
/// never lets happen. So after a lock not had in time, autovacuum workers in this database
/// are asked to stop (`pg_cancel_backend`, as PostgreSQL itself would; refused without the
/// privilege, and never for one that prevents wraparound), and after [`PATIENT_AFTER`]
/// tries in a row the wait is let run past `deadlock_timeout` ([`LONG_LOCK_TIMEOUT`]).
fn retrying<T>(
    client: &mut Client,
    mut attempt: impl FnMut(&mut Client, &str) -> Result<T, super::client::Error>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    let mut tries = 0u32;
    loop {
        match attempt(client, lock_timeout(tries)) {
            Ok(v) => return Ok(v),
            Err(e) if retryable(&e) && start.elapsed() < LOCK_PATIENCE => {
                tracing::debug!("schema migration: {e}; trying again");
                tries += 1;
                make_way(client, &e);
            }
            Err(e) if retryable(&e) => {
                bail!(
                    "other sessions kept the tables locked for {} s: {e}",
                    LOCK_PATIENCE.as_secs()
                )
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The `lock_timeout` of try `tries` (from 0) of a step.
fn lock_timeout(tries: u32) -> &'static str {
    if tries < PATIENT_AFTER {
        LOCK_TIMEOUT
    } else {
        LONG_LOCK_TIMEOUT
    }
}

/// After a try failed with `e`: ask autovacuum to make way if `e` is a lock not had in time
/// (see [`retrying`]; errors ignored), then pause.
fn make_way(client: &mut Client, e: &super::client::Error) {
    if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
        let _ = client.batch_execute(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database()
               AND backend_type = 'autovacuum worker'
               AND query NOT LIKE '%wraparound%'",
        );
    }
    std::thread::sleep(RETRY_PAUSE);
}

fn retryable(e: &super::client::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::T_R_SERIALIZATION_FAILURE
    )
}

fn record(
    tx: &mut super::client::Transaction<'_>,
    version: i32,
) -> Result<u64, super::client::Error> {
    tx.execute(
        "INSERT INTO schema_migrations (version, applied_at)
         VALUES ($1, extract(epoch FROM now())::bigint)",
        &[&version],
    )
}

/// The bounds of range `k` of [`RANGES`]: keys from `lo` (inclusive) to `hi` (exclusive;
/// `None` for the last). The first starts at the empty key, below every key.
fn range(k: u32) -> (Vec<u8>, Option<Vec<u8>>) {
    let bound = |k: u32| vec![(k >> 4) as u8, ((k & 15) << 4) as u8];
    let lo = if k == 0 { Vec::new() } else { bound(k) };
    let hi = (k + 1 < RANGES).then(|| bound(k + 1));
    (lo, hi)
}

/// Run `sql` once per range of keys, each its own short transaction, while `table` exists.
fn ranges(client: &mut Client, table: &str, sql: &str) -> anyhow::Result<()> {
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])?
        .get(0);
    if !exists {
        return Ok(());
    }
    let statement = client.prepare(sql)?;
    for k in 0..RANGES {
        let (lo, hi) = range(k);
        retrying(client, |client, timeout| {
            let mut tx = client.transaction()?;
            tx.batch_execute(&format!("SET LOCAL lock_timeout = '{timeout}'"))?;
            tx.execute(&statement, &[&lo, &hi])?;
            tx.commit()
        })?;
    }
    Ok(())
}

/// The totals (migration 10): in one short transaction with the counted tables locked
/// against writers, the table and its triggers are made; before it commits, a second
/// connection takes a snapshot (repeatable read), which therefore holds exactly the rows
/// the triggers will never see. Writers then go on, counted by the triggers, while that
/// snapshot is counted; the counts are added to the totals with the version recorded.
fn totals(
    client: &mut Client,
    another: &dyn Fn() -> anyhow::Result<Client>,
    version: Option<i32>,
) -> anyhow::Result<()> {
    let mut reader = another().context("a second connection for the totals")?;
    let start = Instant::now();
    let mut tries = 0;
    let counts: Vec<(String, String)> = loop {
        let mut tx = client.transaction()?;
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = '{}'",
            lock_timeout(tries)
        ))?;
        match tx.batch_execute(TOTALS) {
            Ok(()) => {}
            Err(e) if retryable(&e) && start.elapsed() < LOCK_PATIENCE => {
                drop(tx);
                tries += 1;
                make_way(client, &e);
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        // Writers are held while `tx` lives: the snapshot is taken now, then the triggers
        // go live with the commit.
        let mut read = reader
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        read.query_one("SELECT 1", &[])?;
        tx.commit()?;
        let rows = read.query(TOTALS_COUNT, &[])?;
        read.commit()?;
        break rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    };
    let (keys, values): (Vec<String>, Vec<String>) = counts.into_iter().unzip();
    retrying(client, |client, timeout| {
        let mut tx = client.transaction()?;
        tx.batch_execute(&format!("SET LOCAL lock_timeout = '{timeout}'"))?;
        tx.execute(
            "INSERT INTO totals (key, value)
             SELECT k, v::numeric FROM unnest($1::text[], $2::text[]) AS c(k, v)
             WHERE v::numeric <> 0 ORDER BY k
             ON CONFLICT (key) DO UPDATE SET value = totals.value + EXCLUDED.value",
            &[&keys, &values],
        )?;
        if let Some(v) = version {
            record(&mut tx, v)?;
        }
        tx.commit()
    })
}

/// Build `index` if it is missing (or left invalid by an interrupted build), without
/// holding writers back.
fn build(client: &mut Client, index: &Index) -> anyhow::Result<()> {
    let valid: Option<bool> = client
        .query_opt(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE c.relname = $1 AND c.relnamespace = current_schema()::regnamespace",
            &[&index.name],
        )?
        .map(|r| r.get(0));
    match valid {
        Some(true) => return Ok(()),
        Some(false) => client
            .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {}", index.name))
            .with_context(|| format!("dropping the invalid index {}", index.name))?,
        None => {}
    }
    let started = Instant::now();
    client
        .batch_execute(&format!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {}",
            index.name, index.on
        ))
        .with_context(|| format!("building the index {} (schema {})", index.name, index.since))?;
    tracing::info!(
        "index {} built in {:.1} s",
        index.name,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ranges cover every key once, in order: the first from the empty key, the last
    /// open above, each ending where the next starts.
    #[test]
    fn ranges_tile_the_key_space() {
        assert_eq!(range(0), (vec![], Some(vec![0x00, 0x10])));
        assert_eq!(range(1), (vec![0x00, 0x10], Some(vec![0x00, 0x20])));
        assert_eq!(range(RANGES - 1), (vec![0xff, 0xf0], None));
        for k in 1..RANGES {
            assert_eq!(range(k - 1).1.as_ref(), Some(&range(k).0), "range {k}");
            assert!(range(k - 1).0 < range(k).0);
        }
        // Every key falls in exactly one range (bytea order is byte order, shorter first).
        let keys: [&[u8]; 6] = [
            &[],
            &[0],
            &[0x01],
            &[0x00, 0x10],
            &[0xff; 20],
            &[0x7f, 0xff, 1],
        ];
        for key in keys {
            let holders = (0..RANGES)
                .filter(|k| {
                    let (lo, hi) = range(*k);
                    key >= lo.as_slice() && hi.is_none_or(|h| key < h.as_slice())
                })
                .count();
            assert_eq!(holders, 1, "{key:?}");
        }
    }

    /// Every index built after the migrations belongs to a version that exists, and none
    /// is named twice.
    #[test]
    fn indexes_name_known_versions() {
        let mut names: Vec<&str> = INDEXES.iter().map(|i| i.name).collect();
        names.push(TRGM_INDEX.name);
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        assert!(INDEXES
            .iter()
            .all(|i| (1..=schema::LATEST).contains(&i.since)));
    }
}
