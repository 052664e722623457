//! The reads behind the web UI: the newest torrents, a torrent's sightings, and the
//! aggregates of the stats page (timeline, size histogram, total size). Search is in
//! [`super::search`].

use std::net::{IpAddr, SocketAddr};

use estudely_krpc::InfoHash;
use rusqlite::Connection;

use super::codec::uint;
use super::read::{stored, COLUMNS};
use crate::{
    bucket_start_sql, check_bucket, size_counts, size_counts_sql, SightingCounts, SightingRow,
    Source, StoredTorrent,
};

/// An SQLite integer from a count or an offset (saturating).
pub(super) fn int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The newest torrents by `discovered`, then newest row (index `torrents_discovered`).
pub fn recent(
    conn: &Connection,
    limit: usize,
    offset: usize,
) -> anyhow::Result<Vec<StoredTorrent>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM torrents t ORDER BY t.discovered DESC, t.id DESC
         LIMIT ?1 OFFSET ?2"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([int(limit), int(offset)], stored)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row?.0);
    }
    Ok(out)
}

/// Every key the torrent answering to `key` is stored under: `key` itself, and when a
/// torrent answers to it, its v1 key and its truncated v2 key. Three entries, repeated
/// when fewer are distinct.
fn keys_of(conn: &Connection, key: &InfoHash) -> anyhow::Result<[Vec<u8>; 3]> {
    let mut stmt = conn.prepare_cached(
        "SELECT info_hash, substr(info_hash_v2, 1, 20) FROM torrents WHERE info_hash = ?1
         UNION ALL
         SELECT info_hash, substr(info_hash_v2, 1, 20) FROM torrents
         WHERE substr(info_hash_v2, 1, 20) = ?1
         LIMIT 1",
    )?;
    let mut rows = stmt.query([key.as_bytes()])?;
    let own = key.as_bytes().to_vec();
    Ok(match rows.next()? {
        Some(row) => {
            let v1: Vec<u8> = row.get(0)?;
            let v2: Option<Vec<u8>> = row.get(1)?;
            let v2 = v2.unwrap_or_else(|| v1.clone());
            [own, v1, v2]
        }
        None => [own.clone(), own.clone(), own],
    })
}

/// The sightings of the torrent answering to `key` (under any of its keys), newest
/// `last_seen` first, at most `max`, and their counts.
pub fn sightings_of(
    conn: &Connection,
    key: &InfoHash,
    max: usize,
) -> anyhow::Result<(Vec<SightingRow>, SightingCounts)> {
    let [a, b, c] = keys_of(conn, key)?;
    // Port 0: a sighting stored without its address (`run --no-peer-addresses`): counted
    // in `seen`, never listed.
    let (total, peers, seen): (i64, i64, i64) = conn
        .prepare_cached(
            "SELECT count(*) FILTER (WHERE port <> 0),
                 count(DISTINCT CASE WHEN source <> 'sample' AND port <> 0
                     THEN ip || ' ' || port END),
                 coalesce(sum(count), 0)
             FROM sightings WHERE info_hash IN (?1, ?2, ?3)",
        )?
        .query_row([&a, &b, &c], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let mut stmt = conn.prepare_cached(
        "SELECT ip, port, source, first_seen, last_seen FROM sightings
         WHERE info_hash IN (?1, ?2, ?3) AND port <> 0
         ORDER BY last_seen DESC, first_seen DESC, ip, port, source LIMIT ?4",
    )?;
    let rows = stmt.query_map(rusqlite::params![a, b, c, int(max)], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (ip, port, source, first_seen, last_seen) = row?;
        // Only outside edits write a row that does not parse: skip it (it is counted).
        let (Ok(ip), Ok(port), Some(source)) = (
            ip.parse::<IpAddr>(),
            u16::try_from(port),
            Source::parse(&source),
        ) else {
            continue;
        };
        out.push(SightingRow {
            addr: SocketAddr::new(ip, port),
            source,
            first_seen,
            last_seen,
        });
    }
    Ok((
        out,
        SightingCounts {
            total: uint(total),
            peers: uint(peers),
            seen: uint(seen),
        },
    ))
}

/// The first and last `discovered` (index `torrents_discovered`).
pub fn discovered_range(conn: &Connection) -> anyhow::Result<Option<(i64, i64)>> {
    // Two subqueries: SQLite reads one end of the index for a lone min() or max(), but
    // scans the table for both in one select.
    let (first, last): (Option<i64>, Option<i64>) = conn.query_row(
        "SELECT (SELECT min(discovered) FROM torrents), (SELECT max(discovered) FROM torrents)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(first.zip(last))
}

/// Torrents per `bucket_secs` bucket of `discovered` and first source.
pub fn timeline(conn: &Connection, bucket_secs: i64) -> anyhow::Result<Vec<(i64, Source, u64)>> {
    check_bucket(bucket_secs)?;
    let sql = format!(
        "SELECT {}, source, count(*) FROM torrents GROUP BY 1, 2",
        bucket_start_sql("discovered", "?1")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([bucket_secs], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (start, source, n) = row?;
        if let Some(source) = Source::parse(&source) {
            out.push((start, source, uint(n)));
        }
    }
    Ok(out)
}

/// Torrents per size bucket, counted in SQL (one pass, see [`size_counts_sql`]).
pub fn size_histogram(conn: &Connection) -> anyhow::Result<Vec<u64>> {
    let sql = format!("SELECT {} FROM torrents", size_counts_sql("total_bytes"));
    let edges = crate::SIZE_EDGES.len();
    let cumulative = conn.query_row(&sql, [], |r| {
        (0..=edges)
            .map(|i| Ok(uint(r.get(i)?)))
            .collect::<rusqlite::Result<Vec<u64>>>()
    })?;
    Ok(size_counts(&cumulative))
}

/// The sum of `total_bytes`: exact while it fits an SQLite integer, else the floating-point
/// sum, saturated to `u64`.
pub fn total_bytes(conn: &Connection) -> anyhow::Result<u64> {
    let exact: rusqlite::Result<Option<i64>> =
        conn.query_row("SELECT sum(total_bytes) FROM torrents", [], |r| r.get(0));
    if let Ok(sum) = exact {
        return Ok(uint(sum.unwrap_or(0)));
    }
    // "integer overflow": the sizes add up to more than 8 EiB.
    let total: f64 = conn.query_row("SELECT total(total_bytes) FROM torrents", [], |r| r.get(0))?;
    // `as` saturates (and maps NaN to 0).
    Ok(total as u64)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{names, open, torrent};
    use super::super::SqliteStore;
    use crate::SIZE_EDGES;
    use crate::{Batch, Sighting, Store as _, Torrent};
    use estudely_peer_wire::Version;

    use super::*;

    fn write(s: &mut SqliteStore, batch: Batch) {
        s.write("t", &batch).unwrap();
    }

    fn sized(key: u8, name: &str, at: i64, bytes: u64) -> Torrent {
        let mut t = torrent(key, name.as_bytes(), at);
        t.total_bytes = bytes;
        t
    }

    #[test]
    fn recent_is_newest_first_without_files() {
        let (_dir, mut s) = open();
        let torrents = vec![
            torrent(1, b"a", 100),
            torrent(2, b"b", 300),
            torrent(3, b"c", 200),
            torrent(4, b"d", 300),
        ];
        write(
            &mut s,
            Batch {
                torrents,
                ..Batch::default()
            },
        );
        let got = s.recent(10, 0).unwrap();
        assert_eq!(names(got.clone()), ["d", "b", "c", "a"]);
        assert!(got.iter().all(|t| t.torrent.files.is_empty()));
        assert_eq!(names(s.recent(2, 1).unwrap()), ["b", "c"]);
        assert!(s.recent(0, 0).unwrap().is_empty());
        assert!(s.recent(usize::MAX, usize::MAX).unwrap().is_empty());
    }

    #[test]
    fn sightings_of_a_hybrid_under_both_keys() {
        let (_dir, mut s) = open();
        let mut hybrid = torrent(1, b"h", 1);
        hybrid.version = Version::Hybrid;
        hybrid.info_hash_v2 = Some([9; 32]);
        let sight = |key: u8, addr: &str, source, at| Sighting {
            info_hash: InfoHash([key; 20]),
            addr: addr.parse().unwrap(),
            source,
            at,
        };
        write(
            &mut s,
            Batch {
                torrents: vec![hybrid, torrent(2, b"other", 1)],
                sightings: vec![
                    sight(1, "1.1.1.1:1", Source::Announce, 10),
                    sight(9, "[::2]:2", Source::Sample, 30),
                    sight(1, "3.3.3.3:3", Source::GetPeers, 20),
                    sight(2, "4.4.4.4:4", Source::GetPeers, 99),
                    sight(7, "5.5.5.5:5", Source::GetPeers, 5),
                ],
                ..Batch::default()
            },
        );
        for key in [1, 9] {
            let (rows, n) = s.sightings_of(&InfoHash([key; 20]), 10).unwrap();
            assert_eq!((n.total, n.peers), (3, 2));
            let addrs: Vec<String> = rows.iter().map(|r| r.addr.to_string()).collect();
            assert_eq!(addrs, ["[::2]:2", "3.3.3.3:3", "1.1.1.1:1"]);
            assert_eq!(rows[0].source, Source::Sample);
            assert_eq!((rows[2].first_seen, rows[2].last_seen), (10, 10));
        }
        let (rows, n) = s.sightings_of(&InfoHash([1; 20]), 1).unwrap();
        assert_eq!((rows.len(), n.total, n.peers), (1, 3, 2));
        // Sightings of an infohash not stored are found too.
        let (rows, n) = s.sightings_of(&InfoHash([7; 20]), 10).unwrap();
        assert_eq!((rows.len(), n.total, n.peers), (1, 1, 1));
        assert_eq!(
            s.sightings_of(&InfoHash([8; 20]), 10).unwrap(),
            (vec![], SightingCounts::default())
        );
    }

    #[test]
    fn aggregates_for_the_stats_page() {
        let (_dir, mut s) = open();
        assert_eq!(s.discovered_range().unwrap(), None);
        assert_eq!(s.total_bytes().unwrap(), 0);
        assert_eq!(s.size_histogram().unwrap(), vec![0; SIZE_EDGES.len() + 1]);
        assert!(s.timeline(60).unwrap().is_empty());
        let mut announced = sized(3, "c", 130, SIZE_EDGES[0]);
        announced.source = Source::Announce;
        let torrents = vec![
            sized(1, "a", 100, 0),
            sized(2, "b", 119, SIZE_EDGES[0] - 1),
            announced,
            sized(4, "d", -1, u64::MAX >> 2),
        ];
        write(
            &mut s,
            Batch {
                torrents,
                ..Batch::default()
            },
        );
        assert_eq!(s.discovered_range().unwrap(), Some((-1, 130)));
        let mut tl = s.timeline(60).unwrap();
        tl.sort();
        assert_eq!(
            tl,
            [
                (-60, Source::Sample, 1),
                (60, Source::Sample, 2),
                (120, Source::Announce, 1)
            ]
        );
        assert!(s.timeline(0).is_err());
        assert!(s.timeline(-5).is_err());
        assert!(s.timeline(i64::MAX).is_err());
        let mut want = vec![0; SIZE_EDGES.len() + 1];
        (want[0], want[1], want[SIZE_EDGES.len()]) = (2, 1, 1);
        assert_eq!(s.size_histogram().unwrap(), want);
        let sum = (u64::MAX >> 2) + SIZE_EDGES[0] * 2 - 1;
        assert_eq!(s.total_bytes().unwrap(), sum);
        // Beyond an SQLite integer: the floating-point sum, not an error.
        write(
            &mut s,
            Batch {
                torrents: vec![sized(5, "e", 1, i64::MAX as u64)],
                ..Batch::default()
            },
        );
        assert!(s.total_bytes().unwrap() > i64::MAX as u64);
    }
}
