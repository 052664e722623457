//! The streaming export: every torrent (oldest first) with its files and peers, in one pass.
//!
//! The obvious reading, a query for each torrent's files and another for its peers, spends
//! most of its time starting statements: at 1 M torrents that is 2 M statement runs, each a
//! bind, a B-tree descent and a reset. Here the files come instead from one cursor over the
//! `files` table in key order (`torrent_id, idx`), read beside the torrents as a merge:
//! `torrents.id` grows with insertion, and so, nearly always, does `discovered`, so the next
//! torrent's files are the cursor's next rows. A torrent out of that order moves the cursor
//! (one descent, what the per-torrent query cost), so any order stays correct, only slower.
//!
//! Peers (sightings by announce or get_peers) are keyed by infohash, an order unrelated to
//! the torrents', so they keep their query; but first one scan of `sightings` marks, in a
//! fixed bitmap indexed by the infohash's leading bits, which infohashes may have any: a
//! torrent whose bit is clear has none and skips its query (the infohashes are hashes, so
//! the bits spread evenly; a set bit that belongs to another infohash only costs a query).
//! That scan reads every announce and get_peers sighting once, sequentially: cheap beside a
//! query per torrent, and what the queries of the torrents with peers read anyway.
//!
//! Each file's buffers (its path's components) are those of an earlier torrent's files,
//! overwritten ([`decode_path_into`]): at 10 M files, allocating and freeing them anew took
//! about a fifth of the export's time. What is kept is bounded by the largest torrent's files.

use std::net::{IpAddr, SocketAddr};

use estudely_peer_wire::FileEntry;
use rusqlite::{Connection, Rows, Statement};

use super::codec::{decode_path_into, uint};
use super::read::{stored, COLUMNS};
use crate::{ExportKey, StoredTorrent};

/// The files of torrents `?1` and after, in key order.
const FILES_FROM: &str =
    "SELECT torrent_id, path_raw, length FROM files WHERE torrent_id >= ?1 ORDER BY torrent_id, idx";

/// The peers of infohash `?1`, first seen first.
const PEERS: &str = "SELECT ip, port FROM sightings
     WHERE info_hash = ?1 AND source IN ('announce', 'get_peers') AND port <> 0
     GROUP BY ip, port ORDER BY min(first_seen), ip, port";

/// Every infohash with a sighting [`PEERS`] would return.
const PEER_KEYS: &str = "SELECT info_hash FROM sightings
     WHERE source IN ('announce', 'get_peers') AND port <> 0";

/// Bits of the peer bitmap: 2^23 (1 MiB), whatever the size of the index.
const PEER_BITS: u32 = 23;

/// Call `f` with every torrent discovered at or after `since`, oldest first (then by `id`),
/// with its files and peers; one torrent at a time.
pub fn export(
    conn: &Connection,
    since: Option<i64>,
    f: &mut dyn FnMut(&StoredTorrent, &[SocketAddr]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    export_counted(conn, &Range::since(since), f).map(|_| ())
}

/// [`export`] of the torrents from key `from` (included) to key `to` (excluded).
pub fn export_range(
    conn: &Connection,
    since: Option<i64>,
    from: Option<ExportKey>,
    to: Option<ExportKey>,
    f: &mut dyn FnMut(&StoredTorrent, &[SocketAddr]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let range = Range { since, from, to };
    export_counted(conn, &range, f).map(|_| ())
}

/// Up to `parts - 1` keys splitting the torrents of [`export`] into ranges of about as many
/// torrents each (see [`crate::Store::export_bounds`]): one count, then a step of the
/// `discovered` index to each key (a scan of that index, no table row read).
pub fn bounds(
    conn: &Connection,
    since: Option<i64>,
    parts: usize,
) -> anyhow::Result<Vec<ExportKey>> {
    let since = since.unwrap_or(i64::MIN);
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM torrents WHERE discovered >= ?1",
        [since],
        |r| r.get(0),
    )?;
    let mut stmt = conn.prepare(
        "SELECT discovered, id FROM torrents WHERE discovered >= ?1
         ORDER BY discovered, id LIMIT 1 OFFSET ?2",
    )?;
    let parts = i64::try_from(parts.max(1)).unwrap_or(i64::MAX);
    let mut keys = Vec::new();
    for i in 1..parts {
        // i < parts, n a row count: no overflow in i128.
        let offset = (i128::from(n) * i128::from(i) / i128::from(parts)) as i64;
        if offset == 0 {
            continue;
        }
        let key = stmt.query_row([since, offset], |r| {
            Ok(ExportKey {
                discovered: r.get(0)?,
                tie: r.get(1)?,
            })
        });
        match key {
            // Deleted meanwhile: fewer ranges.
            Err(rusqlite::Error::QueryReturnedNoRows) => break,
            key => {
                let key = key?;
                if keys.last().is_none_or(|last| *last < key) {
                    keys.push(key);
                }
            }
        }
    }
    Ok(keys)
}

/// Which torrents an export gives: discovered at or after `since`, with a key from `from`
/// (included) to `to` (excluded).
#[derive(Debug, Default, Clone, Copy)]
struct Range {
    since: Option<i64>,
    from: Option<ExportKey>,
    to: Option<ExportKey>,
}

impl Range {
    fn since(since: Option<i64>) -> Self {
        Range {
            since,
            ..Range::default()
        }
    }

    /// The torrents' query and its parameters: `discovered` bounds that the index on it
    /// answers, then the ties at each end by `id`.
    fn query(&self) -> (String, Vec<i64>) {
        let mut sql = format!("SELECT {COLUMNS} FROM torrents t WHERE t.discovered >= ?1");
        let mut params = vec![self.since.unwrap_or(i64::MIN)];
        if let Some(from) = self.from {
            params.extend([from.discovered, from.tie]);
            let (d, id) = (params.len() - 1, params.len());
            sql += &format!(" AND t.discovered >= ?{d} AND (t.discovered > ?{d} OR t.id >= ?{id})");
        }
        if let Some(to) = self.to {
            params.extend([to.discovered, to.tie]);
            let (d, id) = (params.len() - 1, params.len());
            sql += &format!(" AND t.discovered <= ?{d} AND (t.discovered < ?{d} OR t.id < ?{id})");
        }
        sql += " ORDER BY t.discovered, t.id";
        (sql, params)
    }
}

/// What [`export`] ran, for the tests: how many times the file cursor was placed, and how
/// many peer queries ran.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    seeks: u64,
    peer_queries: u64,
}

/// [`export`] of `range`, counting its statements.
fn export_counted(
    conn: &Connection,
    range: &Range,
    f: &mut dyn FnMut(&StoredTorrent, &[SocketAddr]) -> anyhow::Result<()>,
) -> anyhow::Result<Counts> {
    let mut counts = Counts::default();
    let (sql, params) = range.query();
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    // Read once the first row holds the read transaction: every query below sees the same
    // snapshot as the torrents.
    let Some(first) = rows.next()? else {
        return Ok(counts);
    };
    let (mut st, mut id) = stored(first)?;
    let mut peer_stmt = conn.prepare(PEERS)?;
    let may_have_peers = peer_bitmap(conn)?;
    // The file cursor, placed at `start` (see `placed`); its rows borrow `file_stmt`, so
    // they are dropped before the statement runs again.
    let mut file_stmt = conn.prepare(FILES_FROM)?;
    let mut start = id;
    let mut file_rows = file_stmt.query([start])?;
    // The files of the torrent exported last, their buffers used again for the next ones':
    // the export then allocates for a file only when it holds more than any before.
    let mut spare: Vec<FileEntry> = Vec::new();
    let mut head = next_file(&mut file_rows, &mut spare)?;
    counts.seeks += 1;
    let mut peers = Vec::new();
    let mut files = Vec::new();
    loop {
        if !placed(start, head.as_ref().map(|h| h.0), id) {
            drop(file_rows);
            start = id;
            file_rows = file_stmt.query([start])?;
            head = next_file(&mut file_rows, &mut spare)?;
            counts.seeks += 1;
        }
        st.torrent.files = std::mem::take(&mut files);
        while let Some((_, file)) = head.take_if(|h| h.0 == id) {
            st.torrent.files.push(file);
            head = next_file(&mut file_rows, &mut spare)?;
        }
        peers.clear();
        if may_have_peers.get(bit_of(st.torrent.info_hash.as_bytes())) {
            counts.peer_queries += 1;
            peers_of(&mut peer_stmt, st.torrent.info_hash.as_bytes(), &mut peers)?;
        }
        f(&st, &peers)?;
        files = std::mem::take(&mut st.torrent.files);
        spare.append(&mut files);
        match rows.next()? {
            Some(row) => (st, id) = stored(row)?,
            None => break,
        }
    }
    Ok(counts)
}

/// One file row: its torrent's id and the file.
type FileRow = (i64, FileEntry);

/// The next row of the file cursor, in a file of `spare` if there is one, its path decoded
/// where SQLite holds it (not copied first: this runs once per file).
fn next_file(rows: &mut Rows<'_>, spare: &mut Vec<FileEntry>) -> anyhow::Result<Option<FileRow>> {
    let Some(r) = rows.next()? else {
        return Ok(None);
    };
    let mut file = spare.pop().unwrap_or(FileEntry {
        path: Vec::new(),
        length: 0,
    });
    anyhow::ensure!(
        decode_path_into(r.get_ref(1)?.as_blob()?, &mut file.path),
        "a stored file path is not a bencoded list"
    );
    file.length = uint(r.get(2)?);
    Ok(Some((r.get(0)?, file)))
}

/// Can the file cursor, placed at torrent id `start` with its next row for torrent `next`
/// (`None`: no rows left), give torrent `id` its files?
///
/// Since it was placed, every row the cursor passed belonged to a torrent already exported
/// (it never skips a row), and ids are unique. So a torrent in `start..=next` has its rows,
/// if any, at the head; any other id needs the cursor placed again, at it.
fn placed(start: i64, next: Option<i64>, id: i64) -> bool {
    start <= id && next.is_none_or(|next| id <= next)
}

/// The bitmap's bit for an infohash: its leading [`PEER_BITS`] bits.
fn bit_of(key: &[u8]) -> usize {
    let mut lead = [0u8; 4];
    for (d, s) in lead.iter_mut().zip(key) {
        *d = *s;
    }
    (u32::from_be_bytes(lead) >> (32 - PEER_BITS)) as usize
}

/// A fixed set of bits.
struct Bitmap(Vec<u64>);

impl Bitmap {
    fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn set(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }
}

/// The bits of every infohash with peers to export (see the module header).
fn peer_bitmap(conn: &Connection) -> anyhow::Result<Bitmap> {
    let mut bits = Bitmap(vec![0; (1 << PEER_BITS) / 64]);
    let mut stmt = conn.prepare(PEER_KEYS)?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        // Borrowed, not copied: this runs once per sighting.
        if let rusqlite::types::ValueRef::Blob(key) = row.get_ref(0)? {
            bits.set(bit_of(key));
        }
    }
    Ok(bits)
}

/// The peers of `key` into `out` (addresses that do not parse, only from outside edits,
/// skipped).
fn peers_of(stmt: &mut Statement<'_>, key: &[u8], out: &mut Vec<SocketAddr>) -> anyhow::Result<()> {
    let mut rows = stmt.query([key])?;
    while let Some(row) = rows.next()? {
        let (ip, port): (String, u16) = (row.get(0)?, row.get(1)?);
        if let Ok(ip) = ip.parse::<IpAddr>() {
            out.push(SocketAddr::new(ip, port));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use estudely_krpc::InfoHash;
    use estudely_peer_wire::FileEntry;

    use super::super::fixtures::{open, torrent};
    use super::super::read::files;
    use super::*;
    use crate::{Batch, Sighting, Source, Store as _, Torrent};

    type Exported = Vec<(StoredTorrent, Vec<SocketAddr>)>;

    /// The export this module replaced: a query per torrent for its files and one for its
    /// peers.
    fn reference(conn: &Connection, since: Option<i64>) -> Exported {
        let sql = format!(
            "SELECT {COLUMNS} FROM torrents t WHERE t.discovered >= ?1 ORDER BY t.discovered, t.id"
        );
        let mut stmt = conn.prepare(&sql).unwrap();
        let mut peer_stmt = conn.prepare(PEERS).unwrap();
        let mut rows = stmt.query([since.unwrap_or(i64::MIN)]).unwrap();
        let mut out = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            let (mut st, id) = stored(row).unwrap();
            st.torrent.files = files(conn, id).unwrap();
            let mut peers = Vec::new();
            peers_of(&mut peer_stmt, st.torrent.info_hash.as_bytes(), &mut peers).unwrap();
            out.push((st, peers));
        }
        out
    }

    fn merged(conn: &Connection, since: Option<i64>) -> (Exported, Counts) {
        let mut out = Vec::new();
        let counts = export_counted(conn, &Range::since(since), &mut |st, peers| {
            out.push((st.clone(), peers.to_vec()));
            Ok(())
        })
        .unwrap();
        (out, counts)
    }

    /// Torrent `key` discovered at `at` with `n` files (none: a torrent whose files were
    /// all left out).
    fn with_files(key: u8, at: i64, n: usize) -> Torrent {
        let mut t = torrent(key, format!("t{key}").as_bytes(), at);
        t.files = (0..n)
            .map(|i| FileEntry {
                // 1 to 3 components: the reused buffers of one torrent's files fit
                // another's only after growing or shrinking.
                path: [
                    format!("d{key}").into_bytes(),
                    vec![b'f', i as u8, 0xff],
                    vec![b'x'; i],
                ][..1 + (usize::from(key) + i) % 3]
                    .to_vec(),
                length: i as u64 * 7,
            })
            .collect();
        t.file_count = n as u64;
        t
    }

    fn sighting(key: u8, addr: &str, source: Source, at: i64) -> Sighting {
        Sighting {
            info_hash: InfoHash([key; 20]),
            addr: addr.parse().unwrap(),
            source,
            at,
        }
    }

    /// Torrents discovered in an order unrelated to their ids (written in three batches, ids
    /// in writing order), with and without files and peers; two with hostile names.
    fn scattered(s: &mut super::super::SqliteStore) {
        for batch in 0..3u8 {
            let torrents = (0..20u8)
                .map(|i| {
                    let key = batch * 20 + i + 1;
                    // Discovered times scattered over the keys, some equal.
                    let at = i64::from((u32::from(key) * 37) % 23) * 100;
                    let mut t = with_files(key, at, usize::from(key % 4));
                    if key % 29 == 0 {
                        t.name = vec![b'a', b'/', 0, 0xff, b'\n', b'"', b','];
                    }
                    t
                })
                .collect();
            s.write(
                "t",
                &Batch {
                    torrents,
                    ..Batch::default()
                },
            )
            .unwrap();
        }
        let sightings = vec![
            sighting(5, "1.1.1.1:1", Source::Announce, 9),
            sighting(5, "2.2.2.2:2", Source::GetPeers, 3),
            sighting(33, "[::1]:3", Source::GetPeers, 1),
            sighting(34, "3.3.3.3:3", Source::Sample, 1),
            sighting(35, "4.4.4.4:0", Source::Announce, 1),
        ];
        s.write(
            "t",
            &Batch {
                sightings,
                ..Batch::default()
            },
        )
        .unwrap();
    }

    /// The torrents of [`scattered`]: the merge gives exactly what a query per torrent
    /// gives, whatever `since`.
    #[test]
    fn any_order_exports_as_a_query_per_torrent() {
        let (_dir, mut s) = open();
        scattered(&mut s);
        for since in [None, Some(0), Some(1_000), Some(2_200), Some(2_201)] {
            let (got, counts) = merged(&s.conn, since);
            assert_eq!(got, reference(&s.conn, since), "since {since:?}");
            // Two torrents have peers; the other keys' bits are clear.
            let with_peers = got
                .iter()
                .filter(|(st, _)| [5, 33].contains(&st.torrent.info_hash.0[0]))
                .count();
            assert_eq!(counts.peer_queries, with_peers as u64);
        }
        let (all, counts) = merged(&s.conn, None);
        assert_eq!(all.len(), 60);
        assert!(counts.seeks > 1, "this order moves the cursor: {counts:?}");
        assert!(all
            .iter()
            .any(|(st, p)| st.torrent.files.is_empty() && p.is_empty()));
        assert_eq!(all.iter().filter(|(_, p)| !p.is_empty()).count(), 2);
    }

    /// The ranges of [`export_range`], one after the other, are [`export`]'s rows in its
    /// order: split at the keys [`bounds`] gives for any number of parts, and at every
    /// torrent's key (the files of torrents out of key order, peers, hostile names).
    #[test]
    fn ranges_one_after_the_other_are_the_export() {
        let (_dir, mut s) = open();
        scattered(&mut s);
        let ranged = |since, keys: &[Option<ExportKey>]| {
            let mut out = Vec::new();
            for pair in keys.windows(2) {
                export_range(&s.conn, since, pair[0], pair[1], &mut |st, peers| {
                    out.push((st.clone(), peers.to_vec()));
                    Ok(())
                })
                .unwrap();
            }
            out
        };
        let key_of = |st: &StoredTorrent| {
            let id = s
                .conn
                .query_row(
                    "SELECT id FROM torrents WHERE info_hash = ?1",
                    [st.torrent.info_hash.as_bytes()],
                    |r| r.get(0),
                )
                .unwrap();
            ExportKey {
                discovered: st.torrent.discovered,
                tie: id,
            }
        };
        for since in [None, Some(1_000), Some(2_200), Some(2_201)] {
            let want = reference(&s.conn, since);
            for parts in 1..=8 {
                let keys = bounds(&s.conn, since, parts).unwrap();
                assert!(
                    keys.len() < parts.max(1) || keys.is_empty(),
                    "{parts}: {keys:?}"
                );
                assert!(keys.windows(2).all(|k| k[0] < k[1]), "{keys:?}");
                if want.len() >= parts {
                    assert_eq!(keys.len(), parts - 1, "{parts} parts of {}", want.len());
                }
                let mut ends = vec![None];
                ends.extend(keys.into_iter().map(Some));
                ends.push(None);
                assert_eq!(ranged(since, &ends), want, "since {since:?}, {parts} parts");
            }
            // Split at each torrent's key: it starts the second range.
            for (i, (st, _)) in want.iter().enumerate() {
                let k = Some(key_of(st));
                let mut first = Vec::new();
                export_range(&s.conn, since, None, k, &mut |st, p| {
                    first.push((st.clone(), p.to_vec()));
                    Ok(())
                })
                .unwrap();
                assert_eq!(first, want[..i], "before torrent {i}");
                assert_eq!(ranged(since, &[None, k, None]), want, "at torrent {i}");
            }
        }
        assert!(bounds(&s.conn, Some(5_000), 4).unwrap().is_empty());
        assert!(bounds(&s.conn, None, 0).unwrap().is_empty());
    }

    /// Torrents discovered in the order they were written, the usual case: the files come
    /// from one cursor placed once, and only the torrents with peers query them.
    #[test]
    fn written_order_reads_files_in_one_pass() {
        let (_dir, mut s) = open();
        let torrents = (1..=50u8)
            .map(|k| with_files(k, 1_000 + i64::from(k / 3), usize::from(k % 3)))
            .collect();
        let sightings = vec![sighting(7, "1.1.1.1:1", Source::Announce, 9)];
        s.write(
            "t",
            &Batch {
                torrents,
                sightings,
                ..Batch::default()
            },
        )
        .unwrap();
        let (got, counts) = merged(&s.conn, None);
        assert_eq!(got, reference(&s.conn, None));
        assert_eq!(
            counts,
            Counts {
                seeks: 1,
                peer_queries: 1
            }
        );
        let (got, counts) = merged(&s.conn, Some(1_010));
        assert_eq!(got, reference(&s.conn, Some(1_010)));
        assert_eq!(
            counts,
            Counts {
                seeks: 1,
                peer_queries: 0
            }
        );
        let (got, counts) = merged(&s.conn, Some(5_000));
        assert!(got.is_empty());
        assert_eq!(counts, Counts::default());
    }

    /// The cursor's rule: a torrent it has passed no row of, and none of whose rows it can
    /// have skipped, is served where it stands.
    #[test]
    fn the_cursor_serves_only_what_it_has_not_passed() {
        assert!(placed(5, Some(5), 5));
        assert!(placed(5, Some(9), 7), "between rows: no files");
        assert!(placed(5, None, 100), "no rows left after 5: none");
        assert!(!placed(5, Some(9), 4), "before the placement");
        assert!(
            !placed(5, Some(9), 10),
            "after the head: rows of 9 would be skipped"
        );
        assert!(!placed(5, None, 4));
    }

    #[test]
    fn bits_are_the_leading_bits() {
        assert_eq!(bit_of(&[0xff; 20]), (1 << PEER_BITS) - 1);
        assert_eq!(bit_of(&[0x80, 0, 0, 0]), 1 << (PEER_BITS - 1));
        assert_eq!(bit_of(&[0, 0, 2, 0xff]), 1);
        assert_eq!(bit_of(&[0, 0, 1, 0xff]), 0);
        assert_eq!(bit_of(b"\x01"), 1 << (PEER_BITS - 8));
        let mut b = Bitmap(vec![0; 2]);
        b.set(70);
        b.set(1_000);
        assert!(b.get(70) && !b.get(69) && !b.get(1_000));
    }
}
