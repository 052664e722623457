//! Swarm estimates kept fresh (PostgreSQL): the re-scrape results of a
//! [`Batch`](crate::Batch) in one statement over arrays, and the torrents due for a
//! re-scrape (the lowest `scraped_at` first, through the `torrents_scraped_at` index).

use std::collections::BTreeMap;

use super::client::{Client, Transaction};
use estudely_krpc::InfoHash;

use crate::Estimate;

/// Write re-scrape results inside `tx` (see [`Estimate`]).
pub fn write(tx: &mut Transaction<'_>, estimates: &[Estimate]) -> Result<(), super::client::Error> {
    if estimates.is_empty() {
        return Ok(());
    }
    // One row per key (one statement may not update a row twice), the latest winning, in
    // key order so that concurrent writers lock rows in the same order.
    let mut latest: BTreeMap<[u8; 20], &Estimate> = BTreeMap::new();
    for e in estimates {
        let slot = latest.entry(e.info_hash.0).or_insert(e);
        if e.at >= slot.at {
            *slot = e;
        }
    }
    let int4 = |e: Option<u32>| e.map(|e| i32::try_from(e).unwrap_or(i32::MAX));
    let keys: Vec<&[u8]> = latest.keys().map(|k| &k[..]).collect();
    let seeds: Vec<Option<i32>> = latest.values().map(|e| int4(e.seeds)).collect();
    let peers: Vec<Option<i32>> = latest.values().map(|e| int4(e.peers)).collect();
    let at: Vec<i64> = latest.values().map(|e| e.at).collect();
    tx.execute(
        "UPDATE torrents t SET
             seeds_estimate = coalesce(u.se, t.seeds_estimate),
             peers_estimate = coalesce(u.pe, t.peers_estimate),
             estimated_at = CASE WHEN u.se IS NULL AND u.pe IS NULL THEN t.estimated_at
                                 ELSE u.at END,
             scraped_at = greatest(t.scraped_at, u.at)
         FROM unnest($1::bytea[], $2::int4[], $3::int4[], $4::int8[]) AS u(h, se, pe, at)
         WHERE t.info_hash = u.h",
        &[&keys, &seeds, &peers, &at],
    )?;
    Ok(())
}

/// Up to `limit` keys last scraped before `before`, the lowest `scraped_at` first.
pub fn stale(client: &mut Client, before: i64, limit: usize) -> anyhow::Result<Vec<InfoHash>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client.query(
        "SELECT info_hash FROM torrents WHERE scraped_at < $1 ORDER BY scraped_at LIMIT $2",
        &[&before, &limit],
    )?;
    rows.iter()
        .map(|r| {
            let key: &[u8] = r.try_get(0)?;
            let key = <[u8; 20]>::try_from(key).map_err(|_| {
                anyhow::anyhow!("corrupt index: an info_hash of {} bytes", key.len())
            })?;
            Ok(InfoHash(key))
        })
        .collect()
}
