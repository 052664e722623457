//! Deleting torrents (`estudely prune`) and the blocklist of their keys, in SQLite.
//!
//! `torrents_fts` is contentless (`content=''`): FTS5 cannot find a row's tokens by itself,
//! so a row is deleted with the `'delete'` command and the exact text it was indexed with
//! (the name, and the paths as [`super::write::fts_paths`] joined them), rebuilt here from
//! `torrents.name` and `files.path`.

use std::path::Path;

use estudely_krpc::InfoHash;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension as _, TransactionBehavior};

use super::codec::int;
use super::write::fts_paths;
use crate::prune::{Candidate, DbSize, Deleted, PruneFilter};

/// Up to `limit` torrents matching `filter`, by (`discovered`, `id`) after `after`.
pub fn scan(
    conn: &Connection,
    filter: &PruneFilter,
    after: Option<&Candidate>,
    limit: usize,
) -> anyhow::Result<Vec<Candidate>> {
    let (from, from_id) = after.map_or((i64::MIN, i64::MIN), |c| (c.discovered, c.row));
    let big = |v: Option<u64>, what| v.map(|v| int(v.min(i64::MAX as u64), what)).transpose();
    let mut sql = String::from(
        "SELECT id, info_hash, discovered, name, total_bytes, file_count - files_omitted
         FROM torrents
         WHERE discovered >= ?1 AND (discovered > ?1 OR id > ?2)
           AND (?3 IS NULL OR discovered < ?3)
           AND (?4 IS NULL OR total_bytes > ?4)
           AND (?5 IS NULL OR total_bytes < ?5)",
    );
    let mut args: Vec<rusqlite::types::Value> = vec![
        from.into(),
        from_id.into(),
        filter.discovered_before.into(),
        big(filter.larger_than, "--larger-than")?.into(),
        big(filter.smaller_than, "--smaller-than")?.into(),
        i64::try_from(limit).unwrap_or(i64::MAX).into(),
    ];
    if !filter.categories.is_empty() {
        let marks: Vec<String> = (0..filter.categories.len())
            .map(|i| format!("?{}", i + 7))
            .collect();
        sql.push_str(&format!(" AND category IN ({})", marks.join(", ")));
        args.extend(
            filter
                .categories
                .iter()
                .map(|c| c.as_str().to_owned().into()),
        );
    }
    sql.push_str(" ORDER BY discovered, id LIMIT ?6");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, key, discovered, name, bytes, files) = row?;
        let Ok(key) = <[u8; 20]>::try_from(key) else {
            continue;
        };
        out.push(Candidate {
            key: InfoHash(key),
            discovered,
            row: id,
            name,
            total_bytes: u64::try_from(bytes).unwrap_or(0),
            files: u64::try_from(files).unwrap_or(0),
        });
    }
    Ok(out)
}

/// Delete the torrents of `keys` with their files, sightings, leases and full-text rows,
/// and block their keys at `at`, in one IMMEDIATE transaction.
pub fn delete(conn: &mut Connection, keys: &[InfoHash], at: i64) -> anyhow::Result<Deleted> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut gone = Deleted::default();
    {
        let mut find = tx.prepare_cached(
            "SELECT id, name, substr(info_hash_v2, 1, 20) FROM torrents WHERE info_hash = ?1",
        )?;
        let mut paths =
            tx.prepare_cached("SELECT path FROM files WHERE torrent_id = ?1 ORDER BY idx")?;
        let mut fts = tx.prepare_cached(
            "INSERT INTO torrents_fts (torrents_fts, rowid, name, paths)
             VALUES ('delete', ?1, ?2, ?3)",
        )?;
        let mut files = tx.prepare_cached("DELETE FROM files WHERE torrent_id = ?1")?;
        let mut sightings = tx.prepare_cached("DELETE FROM sightings WHERE info_hash = ?1")?;
        let mut leases = tx.prepare_cached("DELETE FROM leases WHERE info_hash = ?1")?;
        let mut torrent = tx.prepare_cached("DELETE FROM torrents WHERE id = ?1")?;
        let mut block = tx.prepare_cached(
            "INSERT INTO deleted (info_hash, deleted_at) VALUES (?1, ?2)
             ON CONFLICT (info_hash) DO UPDATE SET deleted_at = excluded.deleted_at",
        )?;
        for key in keys {
            let key = key.as_bytes();
            let found: Option<(i64, String, Option<Vec<u8>>)> = find
                .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            let Some((id, name, v2)) = found else {
                continue;
            };
            let texts: Vec<String> = paths
                .query_map([id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            fts.execute(params![id, name, fts_paths(&name, &texts)])?;
            gone.files += files.execute([id])? as u64;
            torrent.execute([id])?;
            gone.torrents += 1;
            let v2 = v2.filter(|k| k.as_slice() != key);
            for k in std::iter::once(&key[..]).chain(v2.as_deref()) {
                gone.sightings += sightings.execute([k])? as u64;
                leases.execute([k])?;
                block.execute(params![k, at])?;
            }
        }
    }
    tx.commit()?;
    Ok(gone)
}

/// Pages in use and the file's length.
pub fn size(conn: &Connection, path: &Path) -> anyhow::Result<DbSize> {
    let pragma = |name: &str| -> rusqlite::Result<i64> {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
    };
    let pages = pragma("page_count")? - pragma("freelist_count")?;
    let used = u64::try_from(pages.max(0) * pragma("page_size")?).unwrap_or(0);
    let file = std::fs::metadata(path).map_or(0, |m| m.len());
    Ok(DbSize {
        used,
        file,
        live: true,
    })
}

/// Rewrite the file without its free pages (`VACUUM`), then copy the WAL back and empty
/// it, so that the file really shrinks. The copy VACUUM builds goes to a temporary file, not
/// to memory as the writer's other temporary tables do: it is as large as the index (900
/// MiB of memory for a 500 k-torrent index otherwise). A reader still on an older snapshot
/// makes the checkpoint wait up to the busy timeout (10 s), then the file shrinks at a later
/// checkpoint.
pub fn reclaim(conn: &Connection) -> anyhow::Result<()> {
    conn.pragma_update(None, "temp_store", "FILE")?;
    let vacuumed = conn.execute_batch("VACUUM");
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    vacuumed?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// Which of `keys` are blocked.
pub fn deleted_among(conn: &Connection, keys: &[InfoHash]) -> anyhow::Result<Vec<InfoHash>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; keys.len()].join(", ");
    let sql = format!("SELECT info_hash FROM deleted WHERE info_hash IN ({marks})");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(keys.iter().map(|k| k.as_bytes())), |r| {
        r.get::<_, Vec<u8>>(0)
    })?;
    keys_of(rows)
}

/// Call `f` with every blocked key.
pub fn for_each_deleted(conn: &Connection, f: &mut dyn FnMut(InfoHash)) -> anyhow::Result<()> {
    let mut stmt = conn.prepare("SELECT info_hash FROM deleted")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        if let Ok(key) = <[u8; 20]>::try_from(row.get::<_, Vec<u8>>(0)?) {
            f(InfoHash(key));
        }
    }
    Ok(())
}

/// The 20-byte keys among `rows` (others, which the schema forbids, are skipped).
pub(super) fn keys_of(
    rows: impl Iterator<Item = rusqlite::Result<Vec<u8>>>,
) -> anyhow::Result<Vec<InfoHash>> {
    let mut out = Vec::new();
    for row in rows {
        if let Ok(key) = <[u8; 20]>::try_from(row?) {
            out.push(InfoHash(key));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
