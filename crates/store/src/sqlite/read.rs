//! Queries: lookups and the stats (the streaming export is in [`super::export`], search
//! and the web UI's reads in [`super::browse`]).

use std::net::{IpAddr, SocketAddr};

use anyhow::Context as _;
use estudely_krpc::{CompactNode, InfoHash, NodeId};
use estudely_peer_wire::FileEntry;
use rusqlite::{Connection, OptionalExtension as _, Row};

use super::codec::{decode_path, uint};
use crate::{parse_classification, parse_version, Source, Stats, StoredTorrent, Torrent};

/// The columns [`stored`] reads, in order, from `torrents t`.
pub(super) const COLUMNS: &str =
    "t.info_hash, t.info_hash_v2, t.name_raw, t.total_bytes, t.piece_length,
    t.file_count, t.files_omitted, t.private, t.version, t.discovered, t.last_seen, t.source,
    t.id, t.seeds_estimate, t.peers_estimate, t.category, t.release, t.estimated_at";

/// A `torrents` row (selected with [`COLUMNS`]) without files, and its `id`.
pub(super) fn stored(row: &Row<'_>) -> rusqlite::Result<(StoredTorrent, i64)> {
    let bad = |col: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            col,
            rusqlite::types::Type::Blob,
            format!("bad {what} in torrents").into(),
        )
    };
    let key: Vec<u8> = row.get(0)?;
    let info_hash = InfoHash(key.try_into().map_err(|_| bad(0, "info_hash"))?);
    let v2: Option<Vec<u8>> = row.get(1)?;
    let info_hash_v2 = match v2 {
        Some(v) => Some(<[u8; 32]>::try_from(v).map_err(|_| bad(1, "info_hash_v2"))?),
        None => None,
    };
    let version: String = row.get(8)?;
    let source: String = row.get(11)?;
    let category: Option<String> = row.get(15)?;
    let release: Option<String> = row.get(16)?;
    let (category, release) = parse_classification(category.as_deref(), release.as_deref());
    let torrent = Torrent {
        info_hash,
        info_hash_v2,
        name: row.get(2)?,
        total_bytes: uint(row.get(3)?),
        piece_length: uint(row.get(4)?),
        file_count: uint(row.get(5)?),
        private: row.get(7)?,
        version: parse_version(&version).ok_or_else(|| bad(8, "version"))?,
        files: Vec::new(),
        discovered: row.get(9)?,
        source: Source::parse(&source).ok_or_else(|| bad(11, "source"))?,
        seeds_estimate: row.get(13)?,
        peers_estimate: row.get(14)?,
        category,
        release,
    };
    let st = StoredTorrent {
        torrent,
        files_omitted: uint(row.get(6)?),
        last_seen: row.get(10)?,
        estimated_at: row.get(17)?,
    };
    Ok((st, row.get(12)?))
}

/// The stored files of torrent `id`, in order.
pub(super) fn files(conn: &Connection, id: i64) -> anyhow::Result<Vec<FileEntry>> {
    let mut stmt = conn
        .prepare_cached("SELECT path_raw, length FROM files WHERE torrent_id = ?1 ORDER BY idx")?;
    let rows = stmt.query_map([id], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (raw, length) = row?;
        let path = decode_path(&raw).context("a stored file path is not a bencoded list")?;
        out.push(FileEntry {
            path,
            length: uint(length),
        });
    }
    Ok(out)
}

/// A torrent stored under key `?1`: its infohash, or a hybrid's truncated v2 infohash.
pub const STORED: &str = "SELECT 1 FROM torrents WHERE info_hash = ?1
    UNION ALL SELECT 1 FROM torrents WHERE substr(info_hash_v2, 1, 20) = ?1";

/// Is a torrent with this key stored?
pub fn contains(conn: &Connection, info_hash: &InfoHash) -> rusqlite::Result<bool> {
    conn.prepare_cached(STORED)?.exists([info_hash.as_bytes()])
}

/// Which of `keys` answer to a stored torrent: one query (a primary-key or v2-key index
/// probe per key).
pub fn known_among(conn: &Connection, keys: &[InfoHash]) -> anyhow::Result<Vec<InfoHash>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let marks = (1..=keys.len())
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT info_hash FROM torrents WHERE info_hash IN ({marks})
         UNION SELECT substr(info_hash_v2, 1, 20) FROM torrents
         WHERE substr(info_hash_v2, 1, 20) IN ({marks})
         UNION SELECT info_hash FROM deleted WHERE info_hash IN ({marks})"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let params = rusqlite::params_from_iter(keys.iter().map(|k| k.as_bytes()));
    let rows = stmt.query_map(params, |r| r.get::<_, Vec<u8>>(0))?;
    super::prune::keys_of(rows)
}

/// Call `f` with every stored key.
pub fn for_each_info_hash(conn: &Connection, f: &mut dyn FnMut(InfoHash)) -> anyhow::Result<()> {
    // A hybrid torrent's truncated v2 key is a key of it too.
    let mut stmt = conn.prepare("SELECT info_hash, substr(info_hash_v2, 1, 20) FROM torrents")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let key: Vec<u8> = row.get(0)?;
        let v2: Option<Vec<u8>> = row.get(1)?;
        if let Ok(key) = <[u8; 20]>::try_from(key) {
            f(InfoHash(key));
            if let Some(v2) = v2.and_then(|k| <[u8; 20]>::try_from(k).ok()) {
                if v2 != key {
                    f(InfoHash(v2));
                }
            }
        }
    }
    Ok(())
}

/// Up to `max` nodes, the most recently good first.
pub fn load_nodes(conn: &Connection, max: usize) -> anyhow::Result<Vec<CompactNode>> {
    let mut stmt = conn.prepare_cached(
        "SELECT ip, port, id FROM nodes ORDER BY last_good DESC, ip, port LIMIT ?1",
    )?;
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    let rows = stmt.query_map([max], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, u16>(1)?,
            r.get::<_, Vec<u8>>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (ip, port, id) = row?;
        if let (Ok(ip), Ok(id)) = (ip.parse::<IpAddr>(), <[u8; 20]>::try_from(id)) {
            out.push(CompactNode {
                id: NodeId(id),
                addr: SocketAddr::new(ip, port),
            });
        }
    }
    Ok(out)
}

/// One torrent with its files.
pub fn torrent(conn: &Connection, info_hash: &InfoHash) -> anyhow::Result<Option<StoredTorrent>> {
    let by_v1 = format!("SELECT {COLUMNS} FROM torrents t WHERE t.info_hash = ?1");
    // A hybrid's truncated v2 key (index `torrents_v2_key`).
    let by_v2 = format!(
        "SELECT {COLUMNS} FROM torrents t WHERE substr(t.info_hash_v2, 1, 20) = ?1 LIMIT 1"
    );
    let mut found = conn
        .prepare_cached(&by_v1)?
        .query_row([info_hash.as_bytes()], stored)
        .optional()?;
    if found.is_none() {
        found = conn
            .prepare_cached(&by_v2)?
            .query_row([info_hash.as_bytes()], stored)
            .optional()?;
    }
    let Some((mut st, id)) = found else {
        return Ok(None);
    };
    st.torrent.files = files(conn, id)?;
    Ok(Some(st))
}

/// The counts of `estudely stats`.
pub fn stats(conn: &Connection) -> anyhow::Result<Stats> {
    let count = |table: &str| -> anyhow::Result<u64> {
        let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
        Ok(uint(n))
    };
    let pairs = |sql: &str| -> anyhow::Result<Vec<(String, u64)>> {
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, uint(r.get(1)?))))?;
        Ok(rows.collect::<Result<_, _>>()?)
    };
    Ok(Stats {
        torrents: count("torrents")?,
        files: count("files")?,
        sightings: count("sightings")?,
        nodes: count("nodes")?,
        by_version: pairs("SELECT version, count(*) FROM torrents GROUP BY 1 ORDER BY 1")?,
        by_source: pairs("SELECT source, count(*) FROM torrents GROUP BY 1 ORDER BY 1")?,
        by_day: pairs(
            "SELECT coalesce(date(discovered, 'unixepoch'), 'invalid'), count(*) FROM torrents
             GROUP BY 1 ORDER BY 1",
        )?,
        counters: pairs("SELECT name, value FROM counters ORDER BY name")?,
        by_category: pairs(
            "SELECT coalesce(category, 'unclassified'), count(*) FROM torrents
             GROUP BY 1 ORDER BY 1",
        )?,
        deleted: count("deleted")?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{open, torrent};
    use super::*;
    use crate::{Batch, Sighting, Store as _, MAX_STORED_FILES};
    use estudely_peer_wire::Version;

    fn write(s: &mut super::super::SqliteStore, torrents: Vec<Torrent>) {
        s.write(
            "t",
            &Batch {
                torrents,
                ..Batch::default()
            },
        )
        .unwrap();
    }

    #[test]
    fn every_field_round_trips() {
        let (_dir, mut s) = open();
        let mut t = torrent(1, &[b'n', 0xff, 0, b'\n', 0xc3], 1_700_000_000);
        t.info_hash_v2 = Some([0xab; 32]);
        t.version = Version::Hybrid;
        t.private = true;
        t.source = Source::GetPeers;
        t.total_bytes = u64::try_from(i64::MAX).unwrap();
        t.piece_length = 1 << 22;
        t.files = vec![
            FileEntry {
                path: vec![b"dir".to_vec(), b"a/b".to_vec(), b"x\0y".to_vec()],
                length: 5,
            },
            FileEntry {
                path: vec![vec![0xfe], vec![]],
                length: 0,
            },
        ];
        t.file_count = 7;
        write(&mut s, vec![t.clone()]);
        let got = s.torrent(&t.info_hash).unwrap().unwrap();
        assert_eq!(got.torrent, t);
        assert_eq!(got.files_omitted, 5);
        assert_eq!(got.last_seen, t.discovered);
        assert_eq!(s.torrent(&InfoHash([2; 20])).unwrap(), None);
        let by_v2 = s.torrent(&InfoHash([0xab; 20])).unwrap().unwrap();
        assert_eq!(by_v2.torrent, t, "a hybrid's truncated v2 key finds it too");
        let name: String = s
            .conn
            .query_row("SELECT name FROM torrents", [], |r| r.get(0))
            .unwrap();
        assert_eq!(name, "n\u{fffd}\0\n\u{fffd}");
        let path: String = s
            .conn
            .query_row("SELECT path FROM files WHERE idx = 0", [], |r| r.get(0))
            .unwrap();
        assert_eq!(path, "dir/a/b/x\0y");
        let mut keys = Vec::new();
        s.for_each_info_hash(&mut |k| keys.push(k)).unwrap();
        assert_eq!(
            keys,
            [t.info_hash, InfoHash([0xab; 20])],
            "a hybrid's two keys"
        );
    }

    #[test]
    fn files_beyond_the_cap_are_counted() {
        let (_dir, mut s) = open();
        let mut t = torrent(1, b"many", 1);
        t.files = (0..MAX_STORED_FILES + 5)
            .map(|i| FileEntry {
                path: vec![format!("f{i}").into_bytes()],
                length: 1,
            })
            .collect();
        t.file_count = t.files.len() as u64;
        write(&mut s, vec![t.clone()]);
        let got = s.torrent(&t.info_hash).unwrap().unwrap();
        assert_eq!(got.torrent.files.len(), MAX_STORED_FILES);
        assert_eq!(got.files_omitted, 5);
    }

    #[test]
    fn search_ranks_words_and_survives_hostile_queries() {
        let (_dir, mut s) = open();
        let mut ubuntu = torrent(1, b"Ubuntu 24.04 Desktop", 1);
        ubuntu.files = vec![FileEntry {
            path: vec![b"ubuntu.iso".to_vec()],
            length: 1,
        }];
        let mut other = torrent(2, b"Holiday photos", 2);
        other.files = vec![FileEntry {
            path: vec![b"ubuntu wallpaper.jpg".to_vec()],
            length: 1,
        }];
        let cafe = torrent(3, "Café <script>alert(1)</script>".as_bytes(), 3);
        write(&mut s, vec![ubuntu.clone(), other.clone(), cafe.clone()]);
        let names = |hits: Vec<StoredTorrent>| -> Vec<Vec<u8>> {
            hits.into_iter().map(|h| h.torrent.name).collect()
        };
        // A name match ranks above a path match.
        assert_eq!(
            names(s.search("ubuntu", 10, 0).unwrap()),
            [ubuntu.name.clone(), other.name.clone()]
        );
        assert_eq!(
            names(s.search("ubuntu", 1, 1).unwrap()),
            [other.name.clone()]
        );
        assert_eq!(
            names(s.search("UBUNTU desktop", 10, 0).unwrap()),
            [ubuntu.name.clone()]
        );
        assert_eq!(
            names(s.search("wallpaper", 10, 0).unwrap()),
            [other.name.clone()]
        );
        assert_eq!(names(s.search("cafe", 10, 0).unwrap()), [&cafe.name[..]]);
        assert_eq!(
            names(s.search("<script>", 10, 0).unwrap()),
            [&cafe.name[..]]
        );
        assert!(s.search("nothing", 10, 0).unwrap().is_empty());
        assert!(s.search("ubuntu", 0, 0).unwrap().is_empty());
        for q in [
            "\"",
            "*",
            "NEAR(",
            "-",
            "'",
            "a\"b",
            "ubuntu*",
            "-ubuntu",
            "name:ubuntu",
            "(ubuntu",
            "ubuntu OR",
            "AND",
            "^",
            "\0",
            "",
            "  ",
            "ǃ",
            "\u{301}",
            "🙂",
            "x\u{301}",
        ] {
            s.search(q, 10, 0)
                .unwrap_or_else(|e| panic!("{q:?}: {e:#}"));
        }
        // A phrase of no token (a letter to Rust, not to the tokenizer) matches nothing.
        let empty: i64 = s
            .conn
            .query_row(
                "SELECT count(*) FROM torrents_fts WHERE torrents_fts MATCH '\"\u{301}\"'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(empty, 0);
    }

    #[test]
    fn export_is_oldest_first_with_peers() {
        let (_dir, mut s) = open();
        let (a, b, c) = (
            torrent(1, b"a", 300),
            torrent(2, b"b", 100),
            torrent(3, b"c", 200),
        );
        let sight = |ih: InfoHash, addr: &str, source, at| Sighting {
            info_hash: ih,
            addr: addr.parse().unwrap(),
            source,
            at,
        };
        let batch = Batch {
            torrents: vec![a.clone(), b.clone(), c.clone()],
            sightings: vec![
                sight(c.info_hash, "9.9.9.9:1", Source::GetPeers, 50),
                sight(c.info_hash, "1.1.1.1:2", Source::Announce, 10),
                sight(c.info_hash, "1.1.1.1:2", Source::GetPeers, 60),
                sight(c.info_hash, "[::1]:3", Source::Announce, 70),
                sight(c.info_hash, "8.8.8.8:4", Source::Sample, 1),
            ],
            ..Batch::default()
        };
        s.write("t", &batch).unwrap();
        let mut seen = Vec::new();
        s.export(None, &mut |st, peers| {
            seen.push((
                st.torrent.name.clone(),
                peers.to_vec(),
                st.torrent.files.len(),
            ));
            Ok(())
        })
        .unwrap();
        let addrs =
            |l: &[&str]| -> Vec<SocketAddr> { l.iter().map(|a| a.parse().unwrap()).collect() };
        assert_eq!(
            seen,
            [
                (b"b".to_vec(), vec![], 1),
                (
                    b"c".to_vec(),
                    addrs(&["1.1.1.1:2", "9.9.9.9:1", "[::1]:3"]),
                    1
                ),
                (b"a".to_vec(), vec![], 1),
            ]
        );
        let mut since = Vec::new();
        s.export(Some(200), &mut |st, _| {
            since.push(st.torrent.name.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(since, [b"c".to_vec(), b"a".to_vec()]);
        let e = s
            .export(None, &mut |_, _| anyhow::bail!("stop"))
            .unwrap_err();
        assert_eq!(e.to_string(), "stop");
    }

    #[test]
    fn stats_count_by_kind_source_and_day() {
        let (_dir, mut s) = open();
        let mut v2 = torrent(2, b"v2", 1_700_000_000 + 86_400);
        v2.version = Version::V2;
        v2.info_hash_v2 = Some([2; 32]);
        v2.source = Source::Announce;
        let batch = Batch {
            torrents: vec![
                torrent(1, b"a", 1_700_000_000),
                v2,
                torrent(3, b"c", 1_700_000_001),
            ],
            counters: vec![("b".into(), 2), ("a".into(), 1)],
            ..Batch::default()
        };
        s.write("t", &batch).unwrap();
        let st = s.stats().unwrap();
        let pairs = |l: &[(&str, u64)]| -> Vec<(String, u64)> {
            l.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        assert_eq!(st.torrents, 3);
        assert_eq!(st.files, 3);
        assert_eq!(st.by_version, pairs(&[("v1", 2), ("v2", 1)]));
        assert_eq!(st.by_source, pairs(&[("announce", 1), ("sample", 2)]));
        assert_eq!(st.by_day, pairs(&[("2023-11-14", 2), ("2023-11-15", 1)]));
        assert_eq!(st.counters, pairs(&[("a", 1), ("b", 2)]));
    }
}
