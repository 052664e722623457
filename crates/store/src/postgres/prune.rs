//! Deleting torrents (`estudely prune`) and the blocklist of their keys, in PostgreSQL. The
//! full-text `search` tsvector and the trigram index live on the `torrents` row: deleting
//! the row deletes them.

use super::client::{Client, Row};
use estudely_krpc::InfoHash;

use super::text::to_u64;
use crate::prune::{Candidate, DbSize, Deleted, PruneFilter};

/// The tables of an index, whose sizes make up [`DbSize::used`].
const TABLES: &str = "'torrents', 'files', 'sightings', 'nodes', 'counters', 'leases', 'deleted', \
     'schema_migrations'";

/// Up to `limit` torrents matching `filter`, by (`discovered`, `info_hash`) after `after`.
pub fn scan(
    client: &mut Client,
    filter: &PruneFilter,
    after: Option<&Candidate>,
    limit: usize,
) -> anyhow::Result<Vec<Candidate>> {
    let (from, from_key): (i64, &[u8]) =
        after.map_or((i64::MIN, &[][..]), |c| (c.discovered, &c.key.0[..]));
    let big = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    let categories: Option<Vec<&str>> = (!filter.categories.is_empty())
        .then(|| filter.categories.iter().map(|c| c.as_str()).collect());
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client.query(
        "SELECT info_hash, discovered, name, total_bytes, file_count - files_omitted
         FROM torrents
         WHERE (discovered, info_hash) > ($1, $2)
           AND ($3::int8 IS NULL OR discovered < $3)
           AND ($4::int8 IS NULL OR total_bytes > $4)
           AND ($5::int8 IS NULL OR total_bytes < $5)
           AND ($6::text[] IS NULL OR category = ANY($6))
         ORDER BY discovered, info_hash LIMIT $7",
        &[
            &from,
            &from_key,
            &filter.discovered_before,
            &big(filter.larger_than),
            &big(filter.smaller_than),
            &categories,
            &limit,
        ],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let key: &[u8] = row.try_get(0)?;
        let Ok(key) = <[u8; 20]>::try_from(key) else {
            continue;
        };
        out.push(Candidate {
            key: InfoHash(key),
            discovered: row.try_get(1)?,
            row: 0,
            name: row.try_get(2)?,
            total_bytes: to_u64(row.try_get(3)?, "total_bytes")?,
            files: to_u64(row.try_get(4)?, "file count")?,
        });
    }
    Ok(out)
}

/// Delete the torrents of `keys` with their files, sightings and leases (of either key of a
/// hybrid), and block their keys at `at`, in one transaction.
pub fn delete(client: &mut Client, keys: &[InfoHash], at: i64) -> anyhow::Result<Deleted> {
    let keys: Vec<&[u8]> = keys.iter().map(|k| &k.0[..]).collect();
    let mut tx = client.transaction()?;
    let rows = tx.query(
        "DELETE FROM torrents WHERE info_hash = ANY($1::bytea[])
         RETURNING info_hash, substring(info_hash_v2 from 1 for 20),
             CASE WHEN files IS NULL THEN 0 ELSE file_count - files_omitted END",
        &[&keys],
    )?;
    let gone: Vec<&[u8]> = rows.iter().map(|r| r.get(0)).collect();
    let mut all = gone.clone();
    for row in &rows {
        let v2: Option<&[u8]> = row.get(1);
        all.extend(v2.filter(|v2| !gone.contains(v2)));
    }
    // Files held in the rows (schema 9), and rows of `files` (torrents stored before).
    let held: i64 = rows.iter().map(|r| r.get::<_, i64>(2)).sum();
    let files = u64::try_from(held).unwrap_or(0)
        + tx.execute(
            "DELETE FROM files WHERE info_hash = ANY($1::bytea[])",
            &[&gone],
        )?;
    let sightings = tx.execute(
        "DELETE FROM sightings WHERE info_hash = ANY($1::bytea[])",
        &[&all],
    )?;
    tx.execute(
        "DELETE FROM leases WHERE info_hash = ANY($1::bytea[])",
        &[&all],
    )?;
    tx.execute(
        "INSERT INTO deleted (info_hash, deleted_at) SELECT k, $2 FROM unnest($1::bytea[]) k
         ON CONFLICT (info_hash) DO UPDATE SET deleted_at = EXCLUDED.deleted_at",
        &[&all, &at],
    )?;
    tx.commit()?;
    Ok(Deleted {
        torrents: gone.len() as u64,
        files,
        sightings,
    })
}

/// The index's tables and indexes, and the whole database.
pub fn size(client: &mut Client) -> anyhow::Result<DbSize> {
    let row = client.query_one(
        &format!(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::int8,
                    pg_database_size(current_database())
             FROM pg_class c
             WHERE c.relkind = 'r' AND c.relnamespace = to_regnamespace(current_schema())
               AND c.relname IN ({TABLES})"
        ),
        &[],
    )?;
    Ok(DbSize {
        used: to_u64(row.try_get(0)?, "size")?,
        file: to_u64(row.try_get(1)?, "size")?,
        live: false,
    })
}

/// Which of `keys` are blocked.
pub fn deleted_among(client: &mut Client, keys: &[InfoHash]) -> anyhow::Result<Vec<InfoHash>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<&[u8]> = keys.iter().map(|k| &k.0[..]).collect();
    let rows = client.query(
        "SELECT info_hash FROM deleted WHERE info_hash = ANY($1::bytea[])",
        &[&keys],
    )?;
    keys_of(&rows)
}

/// Call `f` with every blocked key, through a portal.
pub fn for_each_deleted(client: &mut Client, f: &mut dyn FnMut(InfoHash)) -> anyhow::Result<()> {
    let mut tx = client.transaction()?;
    let portal = tx.bind("SELECT info_hash FROM deleted", &[])?;
    loop {
        let rows = tx.query_portal(&portal, 10_000)?;
        if rows.is_empty() {
            break;
        }
        keys_of(&rows)?.into_iter().for_each(&mut *f);
    }
    tx.commit()?;
    Ok(())
}

/// The 20-byte keys in the first column of `rows` (others, which the schema forbids, are
/// skipped).
pub fn keys_of(rows: &[Row]) -> anyhow::Result<Vec<InfoHash>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let key: &[u8] = row.try_get(0)?;
        if let Ok(key) = <[u8; 20]>::try_from(key) {
            out.push(InfoHash(key));
        }
    }
    Ok(out)
}
