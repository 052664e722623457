//! Leases: which crawler may fetch a torrent now ([`Store::claim`](crate::Store::claim)).
//!
//! `run` asks for its claims 64 at a time; each used to be one statement (and a second one
//! to check it), one round trip each on the store thread, which then limited how fast one
//! crawler could fetch. A whole request is now two statements, whatever its size:
//! - the claim: keys not stored, not deleted, whose lease is free, expired or the owner's
//!   own, are leased to the owner. A lease row locked right now by another claimer is
//!   skipped (`SKIP LOCKED`: it is theirs), and the insert then finds it there and does
//!   nothing. New leases are inserted in key order, so that two claimers whose requests
//!   overlap wait for each other's rows in one order and never deadlock;
//! - the check: that statement saw the index as it was when it started. Another crawler
//!   committing one of these torrents meanwhile deletes its lease in the same transaction:
//!   the insert waited for that commit and then found no lease in its way, yet could not
//!   see the torrent. The check starts after that commit, sees the torrent, and gives such
//!   a lease back (a grant would be a second fetch).

use std::collections::HashSet;
use std::time::Duration;

use estudely_krpc::InfoHash;

use super::client::Client;

/// The longest lease taken (longer ones are cut to this): ten years.
const MAX_LEASE_SECS: f64 = 10.0 * 365.0 * 86_400.0;

/// The keys of `rows`' first column.
fn keys(rows: &[super::client::Row]) -> anyhow::Result<HashSet<InfoHash>> {
    let mut out = HashSet::with_capacity(rows.len());
    for row in rows {
        let key: &[u8] = row.try_get(0)?;
        let key = <[u8; 20]>::try_from(key)
            .map_err(|_| anyhow::anyhow!("corrupt index: a lease key of {} bytes", key.len()))?;
        out.insert(InfoHash(key));
    }
    Ok(out)
}

/// Claim each of `asked` for `owner` for `lease`: whether each was granted, in order (a key
/// asked twice gets the same answer twice).
pub fn claim_many(
    client: &mut Client,
    asked: &[InfoHash],
    owner: &str,
    lease: Duration,
) -> anyhow::Result<Vec<bool>> {
    if asked.is_empty() {
        return Ok(Vec::new());
    }
    let secs = lease.as_secs_f64().min(MAX_LEASE_SECS);
    let list: Vec<&[u8]> = asked.iter().map(|k| &k.0[..]).collect();
    let rows = client.query(
        "WITH keys AS (SELECT DISTINCT k FROM unnest($1::bytea[]) AS u(k)),
         free AS (
             SELECT k FROM keys
             WHERE NOT EXISTS (SELECT 1 FROM torrents WHERE info_hash = k)
               AND NOT EXISTS (SELECT 1 FROM torrents
                               WHERE substring(info_hash_v2 from 1 for 20) = k)
               AND NOT EXISTS (SELECT 1 FROM deleted WHERE info_hash = k)),
         cur AS (
             SELECT l.info_hash, l.owner, l.expires FROM leases l
             WHERE l.info_hash IN (SELECT k FROM free)
             ORDER BY l.info_hash
             FOR UPDATE SKIP LOCKED),
         taken AS (
             UPDATE leases l SET owner = $2, expires = now() + make_interval(secs => $3)
             FROM cur
             WHERE l.info_hash = cur.info_hash AND (cur.owner = $2 OR cur.expires <= now())
             RETURNING l.info_hash),
         fresh AS (
             INSERT INTO leases (info_hash, owner, expires)
             SELECT k, $2, now() + make_interval(secs => $3) FROM free
             WHERE k NOT IN (SELECT info_hash FROM cur)
             ORDER BY k
             ON CONFLICT (info_hash) DO NOTHING
             RETURNING info_hash)
         SELECT info_hash FROM taken UNION ALL SELECT info_hash FROM fresh",
        &[&list, &owner, &secs],
    )?;
    let mut granted = keys(&rows)?;
    if !granted.is_empty() {
        let list: Vec<&[u8]> = granted.iter().map(|k| &k.0[..]).collect();
        let undone = client.query(
            "DELETE FROM leases l WHERE l.info_hash = ANY($1::bytea[]) AND l.owner = $2
             AND (EXISTS (SELECT 1 FROM torrents WHERE info_hash = l.info_hash)
                  OR EXISTS (SELECT 1 FROM torrents
                             WHERE substring(info_hash_v2 from 1 for 20) = l.info_hash)
                  OR EXISTS (SELECT 1 FROM deleted WHERE info_hash = l.info_hash))
             RETURNING l.info_hash",
            &[&list, &owner],
        )?;
        for k in keys(&undone)? {
            granted.remove(&k);
        }
    }
    Ok(asked.iter().map(|k| granted.contains(k)).collect())
}
