//! The reads of the PostgreSQL backend: rows back into [`StoredTorrent`]s, export
//! (through a portal, a few hundred rows in memory at a time) and stats.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::client::{Client, Row};
use anyhow::Context;
use estudely_krpc::InfoHash;
use estudely_peer_wire::FileEntry;

use super::text::{parse_files_blob, to_u64};
use crate::sqlite::codec::decode_path;
use crate::{parse_classification, parse_version, Source, Stats, StoredTorrent, Torrent};

/// The columns that [`stored`] reads, in its order, from `torrents t`.
pub const COLUMNS: &str = "t.info_hash, t.info_hash_v2, t.name_raw, t.total_bytes, \
    t.piece_length, t.file_count, t.files_omitted, t.private, t.version, t.discovered, \
    t.last_seen, t.source, t.seeds_estimate, t.peers_estimate, t.category, t.release, \
    t.estimated_at";

/// How many columns [`COLUMNS`] names (a query's own columns come after them).
const NCOLS: usize = 17;

/// Rows fetched from a portal at a time.
const PORTAL_ROWS: i32 = 500;

/// A torrent row (columns [`COLUMNS`]), without files.
pub fn stored(row: &Row) -> anyhow::Result<StoredTorrent> {
    let key: &[u8] = row.try_get(0)?;
    let info_hash = InfoHash(
        key.try_into()
            .map_err(|_| anyhow::anyhow!("corrupt index: an info_hash of {} bytes", key.len()))?,
    );
    let v2: Option<&[u8]> = row.try_get(1)?;
    let info_hash_v2 =
        match v2 {
            None => None,
            Some(b) => Some(b.try_into().map_err(|_| {
                anyhow::anyhow!("corrupt index: an info_hash_v2 of {} bytes", b.len())
            })?),
        };
    let version: &str = row.try_get(8)?;
    let source: &str = row.try_get(11)?;
    let (category, release) = parse_classification(row.try_get(14)?, row.try_get(15)?);
    let torrent = Torrent {
        info_hash,
        info_hash_v2,
        name: row.try_get::<_, &[u8]>(2)?.to_vec(),
        total_bytes: to_u64(row.try_get(3)?, "total_bytes")?,
        piece_length: to_u64(row.try_get(4)?, "piece_length")?,
        file_count: to_u64(row.try_get(5)?, "file_count")?,
        private: row.try_get(7)?,
        version: parse_version(version)
            .ok_or_else(|| anyhow::anyhow!("corrupt index: version `{version}`"))?,
        files: Vec::new(),
        discovered: row.try_get(9)?,
        source: Source::parse(source)
            .ok_or_else(|| anyhow::anyhow!("corrupt index: source `{source}`"))?,
        seeds_estimate: estimate(row.try_get(12)?),
        peers_estimate: estimate(row.try_get(13)?),
        category,
        release,
    };
    Ok(StoredTorrent {
        torrent,
        files_omitted: to_u64(row.try_get(6)?, "files_omitted")?,
        last_seen: row.try_get(10)?,
        estimated_at: row.try_get(16)?,
    })
}

/// A stored BEP 33 estimate (`integer`); a negative one (outside edits only) as unknown.
fn estimate(v: Option<i32>) -> Option<u32> {
    v.and_then(|v| u32::try_from(v).ok())
}

/// Files from parallel arrays of raw paths and lengths.
fn files(raws: Vec<Vec<u8>>, lengths: Vec<i64>) -> anyhow::Result<Vec<FileEntry>> {
    raws.into_iter()
        .zip(lengths)
        .map(|(raw, length)| {
            Ok(FileEntry {
                path: decode_path(&raw).ok_or_else(|| {
                    anyhow::anyhow!("corrupt index: a file's path_raw is not a bencoded list")
                })?,
                length: to_u64(length, "file length")?,
            })
        })
        .collect()
}

/// One torrent with its files: from its `files` value, or from the `files` table for a
/// torrent stored before schema 9.
pub fn torrent(client: &mut Client, key: &InfoHash) -> anyhow::Result<Option<StoredTorrent>> {
    let by_v1 = format!("SELECT {COLUMNS}, t.files FROM torrents t WHERE t.info_hash = $1");
    // A hybrid's truncated v2 key (index `torrents_v2_key`).
    let by_v2 = format!(
        "SELECT {COLUMNS}, t.files FROM torrents t
         WHERE substring(t.info_hash_v2 from 1 for 20) = $1 LIMIT 1"
    );
    let row = match client.query_opt(&by_v1, &[&&key.0[..]])? {
        Some(row) => row,
        None => match client.query_opt(&by_v2, &[&&key.0[..]])? {
            Some(row) => row,
            None => return Ok(None),
        },
    };
    let mut found = stored(&row)?;
    if let Some(blob) = row.try_get::<_, Option<&[u8]>>(NCOLS)? {
        found.torrent.files = parse_files_blob(blob)?;
        return Ok(Some(found));
    }
    let own = found.torrent.info_hash;
    let rows = client.query(
        "SELECT path_raw, length FROM files WHERE info_hash = $1 ORDER BY idx",
        &[&&own.0[..]],
    )?;
    let mut raws = Vec::with_capacity(rows.len());
    let mut lengths = Vec::with_capacity(rows.len());
    for r in &rows {
        raws.push(r.try_get::<_, Vec<u8>>(0)?);
        lengths.push(r.try_get::<_, i64>(1)?);
    }
    found.torrent.files = files(raws, lengths)?;
    Ok(Some(found))
}

/// Every torrent discovered at or after `since`, oldest first, with files and peers.
pub fn export(
    client: &mut Client,
    since: Option<i64>,
    f: &mut dyn FnMut(&StoredTorrent, &[SocketAddr]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let sql = format!(
        "SELECT {COLUMNS}, fl.raws, fl.lens, pe.ips, pe.ports, t.files
         FROM torrents t
         LEFT JOIN LATERAL (
             SELECT array_agg(path_raw ORDER BY idx) AS raws,
                    array_agg(length ORDER BY idx) AS lens
             FROM files f WHERE t.files IS NULL AND f.info_hash = t.info_hash) fl ON true
         LEFT JOIN LATERAL (
             SELECT array_agg(ip ORDER BY first, ip, port) AS ips,
                    array_agg(port ORDER BY first, ip, port) AS ports
             FROM (SELECT ip, port, min(first_seen) AS first FROM sightings s
                   WHERE s.info_hash = t.info_hash AND s.source IN ('announce', 'get_peers')
                       AND s.port <> 0
                   GROUP BY ip, port) p) pe ON true
         WHERE t.discovered >= $1
         ORDER BY t.discovered, t.info_hash"
    );
    let since = since.unwrap_or(i64::MIN);
    let mut tx = client.transaction()?;
    let portal = tx.bind(&sql, &[&since])?;
    loop {
        let rows = tx.query_portal(&portal, PORTAL_ROWS)?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let mut t = stored(row)?;
            // The columns after COLUMNS.
            t.torrent.files = match row.try_get::<_, Option<&[u8]>>(NCOLS + 4)? {
                Some(blob) => parse_files_blob(blob)?,
                None => {
                    let raws: Option<Vec<Vec<u8>>> = row.try_get(NCOLS)?;
                    let lens: Option<Vec<i64>> = row.try_get(NCOLS + 1)?;
                    files(raws.unwrap_or_default(), lens.unwrap_or_default())?
                }
            };
            let ips: Option<Vec<IpAddr>> = row.try_get(NCOLS + 2)?;
            let ports: Option<Vec<i32>> = row.try_get(NCOLS + 3)?;
            let peers: Vec<SocketAddr> = ips
                .unwrap_or_default()
                .into_iter()
                .zip(ports.unwrap_or_default())
                .filter_map(|(ip, port)| Some(SocketAddr::new(ip, u16::try_from(port).ok()?)))
                .collect();
            f(&t, &peers)?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Call `f` with every stored key, through a portal.
pub fn each_key(client: &mut Client, f: &mut dyn FnMut(InfoHash)) -> anyhow::Result<()> {
    let mut tx = client.transaction()?;
    // A hybrid torrent's truncated v2 key is a key of it too.
    let portal = tx.bind(
        "SELECT info_hash, substring(info_hash_v2 from 1 for 20) FROM torrents",
        &[],
    )?;
    loop {
        let rows = tx.query_portal(&portal, 10_000)?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let key: &[u8] = row.try_get(0)?;
            let key = key.try_into().map_err(|_| {
                anyhow::anyhow!("corrupt index: an info_hash of {} bytes", key.len())
            })?;
            f(InfoHash(key));
            let v2: Option<&[u8]> = row.try_get(1)?;
            if let Some(v2) = v2.and_then(|k| <[u8; 20]>::try_from(k).ok()) {
                if v2 != key {
                    f(InfoHash(v2));
                }
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// The counts of `estudely stats`: from `totals` (kept by triggers, migration 10), so a
/// few hundred rows are read whatever the index's size; `nodes` (at most a few thousand
/// rows) and the counters as they are.
pub fn stats(client: &mut Client) -> anyhow::Result<Stats> {
    let mut tx = client.build_transaction().read_only(true).start()?;
    let mut totals = BTreeMap::new();
    // Not the hours of the timeline (thousands of keys a year).
    for row in tx.query(
        "SELECT key, value::int8 FROM totals
         WHERE value <> 0 AND (key < 'hour:' OR key >= 'hour;') AND key <> 'bytes'",
        &[],
    )? {
        let (key, value): (String, i64) = (row.try_get(0)?, row.try_get(1)?);
        totals.insert(key, to_u64(value, "total")?);
    }
    let total = |key: &str| totals.get(key).copied().unwrap_or(0);
    // Keys in byte order, as the scans' `COLLATE "C"` sorted them; days sort as dates.
    let with = |prefix: &str| -> Vec<(String, u64)> {
        totals
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k[prefix.len()..].to_owned(), *v))
            .collect()
    };
    let nodes: i64 = tx.query_one("SELECT count(*) FROM nodes", &[])?.get(0);
    let counters = tx
        .query(
            "SELECT name, value FROM counters ORDER BY name COLLATE \"C\"",
            &[],
        )?
        .iter()
        .map(|r| Ok((r.try_get(0)?, to_u64(r.try_get(1)?, "count")?)))
        .collect::<anyhow::Result<_>>()?;
    tx.commit().context("stats")?;
    Ok(Stats {
        torrents: total("torrents"),
        files: total("files"),
        sightings: total("sightings"),
        nodes: to_u64(nodes, "count")?,
        deleted: total("deleted"),
        by_version: with("version:"),
        by_source: with("source:"),
        by_day: with("day:"),
        counters,
        by_category: with("category:"),
    })
}

/// Torrents stored, from `totals`.
pub fn torrent_count(client: &mut Client) -> anyhow::Result<u64> {
    let n: Option<i64> = client
        .query_opt("SELECT value::int8 FROM totals WHERE key = 'torrents'", &[])?
        .map(|r| r.get(0));
    to_u64(n.unwrap_or(0), "total")
}
