//! The reads of the PostgreSQL backend behind the web UI: the newest torrents, a
//! torrent's sightings, and the aggregates of the stats page.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::client::Client;
use anyhow::bail;
use estudely_krpc::InfoHash;

use super::read::{stored, COLUMNS};
use super::text::to_u64;
use crate::{bucket_start_sql, check_bucket, SightingCounts, SightingRow, Source, StoredTorrent};

/// A `bigint` from a count or an offset (saturating).
fn int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The newest torrents by `discovered` (index `torrents_discovered`), ties by infohash
/// (greatest first), no files.
pub fn recent(
    client: &mut Client,
    limit: usize,
    offset: usize,
) -> anyhow::Result<Vec<StoredTorrent>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM torrents t ORDER BY t.discovered DESC, t.info_hash DESC
         LIMIT $1 OFFSET $2"
    );
    client
        .query(&sql, &[&int(limit), &int(offset)])?
        .iter()
        .map(stored)
        .collect()
}

/// The sightings stored under any key of the torrent answering to `key` (its v1 key, its
/// truncated v2 key) or under `key` itself, newest `last_seen` first, at most `max`, and
/// their number.
pub fn sightings_of(
    client: &mut Client,
    key: &InfoHash,
    max: usize,
) -> anyhow::Result<(Vec<SightingRow>, SightingCounts)> {
    // The keys first, then the sightings by primary key: a subquery in `IN` may be planned
    // as a scan of every sighting.
    let mut keys: Vec<Vec<u8>> = vec![key.0.to_vec()];
    let found = client.query_opt(
        "SELECT info_hash, substring(info_hash_v2 from 1 for 20) FROM torrents
         WHERE info_hash = $1
         UNION ALL
         SELECT info_hash, substring(info_hash_v2 from 1 for 20) FROM torrents
         WHERE substring(info_hash_v2 from 1 for 20) = $1
         LIMIT 1",
        &[&&key.0[..]],
    )?;
    if let Some(row) = found {
        for k in [row.try_get::<_, Option<Vec<u8>>>(0)?, row.try_get(1)?]
            .into_iter()
            .flatten()
        {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    // Port 0: a sighting stored without its address (`run --no-peer-addresses`): counted
    // in `seen`, never listed.
    let counts = client.query_one(
        "SELECT count(*) FILTER (WHERE port <> 0),
             count(DISTINCT (ip, port)) FILTER (WHERE source <> 'sample' AND port <> 0),
             coalesce(sum(count), 0)::bigint
         FROM sightings WHERE info_hash = ANY($1)",
        &[&keys],
    )?;
    let (total, peers, seen): (i64, i64, i64) =
        (counts.try_get(0)?, counts.try_get(1)?, counts.try_get(2)?);
    let rows = client.query(
        "SELECT ip, port, source, first_seen, last_seen FROM sightings
         WHERE info_hash = ANY($1) AND port <> 0
         ORDER BY last_seen DESC, first_seen DESC, ip, port, source LIMIT $2",
        &[&keys, &int(max)],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let ip: IpAddr = row.try_get(0)?;
        let port: i32 = row.try_get(1)?;
        let source: &str = row.try_get(2)?;
        // Only outside edits write a row that does not parse: skip it (it is counted).
        let (Ok(port), Some(source)) = (u16::try_from(port), Source::parse(source)) else {
            continue;
        };
        out.push(SightingRow {
            addr: SocketAddr::new(ip, port),
            source,
            first_seen: row.try_get(3)?,
            last_seen: row.try_get(4)?,
        });
    }
    Ok((
        out,
        SightingCounts {
            total: to_u64(total, "count")?,
            peers: to_u64(peers, "count")?,
            seen: to_u64(seen, "count")?,
        },
    ))
}

/// The first and last `discovered` (index `torrents_discovered`).
pub fn discovered_range(client: &mut Client) -> anyhow::Result<Option<(i64, i64)>> {
    let row = client.query_one("SELECT min(discovered), max(discovered) FROM torrents", &[])?;
    let first: Option<i64> = row.try_get(0)?;
    let last: Option<i64> = row.try_get(1)?;
    Ok(first.zip(last))
}

/// Torrents per `bucket_secs` bucket of `discovered` and first source: added up from the
/// hours in `totals` (migration 10) when the bucket is a whole number of hours, else
/// counted by a scan.
pub fn timeline(client: &mut Client, bucket_secs: i64) -> anyhow::Result<Vec<(i64, Source, u64)>> {
    check_bucket(bucket_secs)?;
    let mut sums: BTreeMap<(i64, Source), u64> = BTreeMap::new();
    if bucket_secs % 3600 == 0 {
        for row in client.query(
            "SELECT key, value::int8 FROM totals
             WHERE key >= 'hour:' AND key < 'hour;' AND value <> 0",
            &[],
        )? {
            let key: &str = row.try_get(0)?;
            let Some((hour, source)) = parse_hour_key(key) else {
                bail!("corrupt index: a total named `{key}`");
            };
            let start = hour - hour.rem_euclid(bucket_secs);
            *sums.entry((start, source)).or_default() += to_u64(row.try_get(1)?, "total")?;
        }
        return Ok(sums.into_iter().map(|((t, s), n)| (t, s, n)).collect());
    }
    let sql = format!(
        "SELECT {}, source, count(*) FROM torrents GROUP BY 1, 2",
        bucket_start_sql("discovered", "$1::bigint")
    );
    let mut out = Vec::new();
    for row in client.query(&sql, &[&bucket_secs])? {
        let start: i64 = row.try_get(0)?;
        let source: &str = row.try_get(1)?;
        if let Some(source) = Source::parse(source) {
            out.push((start, source, to_u64(row.try_get(2)?, "count")?));
        }
    }
    Ok(out)
}

/// `hour:START:SOURCE` (a key of `totals`) to its hour and source.
fn parse_hour_key(key: &str) -> Option<(i64, Source)> {
    let (hour, source) = key.strip_prefix("hour:")?.split_once(':')?;
    Some((hour.parse().ok()?, Source::parse(source)?))
}

/// Torrents per size bucket, from `totals` (`size:I`, migration 10).
pub fn size_histogram(client: &mut Client) -> anyhow::Result<Vec<u64>> {
    let mut out = vec![0; crate::SIZE_EDGES.len() + 1];
    for row in client.query(
        "SELECT key, value::int8 FROM totals WHERE key >= 'size:' AND key < 'size;'",
        &[],
    )? {
        let key: &str = row.try_get(0)?;
        let slot = key
            .strip_prefix("size:")
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| out.get_mut(i));
        let Some(slot) = slot else {
            bail!("corrupt index: a total named `{key}`");
        };
        *slot = to_u64(row.try_get(1)?, "total")?;
    }
    Ok(out)
}

/// The sum of `total_bytes`, from `totals` (migration 10; a `numeric`, read as text),
/// saturated to `u64`.
pub fn total_bytes(client: &mut Client) -> anyhow::Result<u64> {
    let sum: Option<String> = client
        .query_opt("SELECT value::text FROM totals WHERE key = 'bytes'", &[])?
        .map(|r| r.try_get(0))
        .transpose()?;
    Ok(sum.map_or(0, |s| parse_sum(&s)))
}

/// A non-negative decimal integer, saturated to `u64`; anything else (negative sums exist
/// only after outside edits) is 0.
fn parse_sum(s: &str) -> u64 {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().unwrap_or(u64::MAX)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_saturate() {
        assert_eq!(parse_sum("0"), 0);
        assert_eq!(parse_sum("123"), 123);
        assert_eq!(parse_sum("99999999999999999999999"), u64::MAX);
        assert_eq!(parse_sum("-5"), 0);
        assert_eq!(parse_sum(""), 0);
    }
}
