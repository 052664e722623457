//! Writes: a [`Batch`] in one transaction, leases, and the saved nodes.

use std::collections::HashSet;
use std::time::Duration;

use estudely_krpc::{CompactNode, InfoHash};
use rusqlite::{params, Connection, OptionalExtension as _, Transaction, TransactionBehavior};

use super::codec::{encode_path, int, path_text};
use crate::{release_json, version_str, Batch, Category, Release, Torrent, MAX_STORED_FILES};

const INSERT_TORRENT: &str = "INSERT INTO torrents (info_hash, info_hash_v2, name, name_raw,
        total_bytes, piece_length, file_count, files_omitted, private, version, discovered,
        last_seen, source, seeds_estimate, peers_estimate, category, release, estimated_at,
        scraped_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, ?13, ?14, ?15, ?16,
        CASE WHEN ?13 IS NULL AND ?14 IS NULL THEN NULL ELSE ?11 END,
        CASE WHEN ?13 IS NULL AND ?14 IS NULL THEN 0 ELSE ?11 END)
    ON CONFLICT (info_hash) DO NOTHING";

const RAISE_LAST_SEEN: &str =
    "UPDATE torrents SET last_seen = max(last_seen, ?2) WHERE info_hash = ?1";

const INSERT_FILE: &str = "INSERT INTO files (torrent_id, idx, info_hash, path, path_raw, length)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

const INSERT_FTS: &str = "INSERT INTO torrents_fts (rowid, name, paths) VALUES (?1, ?2, ?3)";

/// A sighting of a pruned torrent's key is dropped: nothing of it is stored again.
const UPSERT_SIGHTING: &str =
    "INSERT INTO sightings (info_hash, ip, port, source, first_seen, last_seen, count)
    SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
    WHERE NOT EXISTS (SELECT 1 FROM deleted WHERE info_hash = ?1)
    ON CONFLICT (info_hash, ip, port) DO UPDATE SET
        first_seen = min(first_seen, excluded.first_seen),
        last_seen = max(last_seen, excluded.last_seen),
        count = count + excluded.count,
        source = CASE WHEN source = 'sample' THEN excluded.source ELSE source END";

/// The sightings of infohash `?1`.
const COUNT_SIGHTINGS: &str = "SELECT count(*) FROM sightings WHERE info_hash = ?1";

/// Keep the `?2` most recently seen sightings of infohash `?1`.
const PRUNE_SIGHTINGS: &str = "DELETE FROM sightings WHERE info_hash = ?1 AND (ip, port) IN
    (SELECT ip, port FROM sightings WHERE info_hash = ?1
     ORDER BY last_seen DESC, first_seen DESC, ip, port LIMIT -1 OFFSET ?2)";

const ADD_COUNTER: &str = "INSERT INTO counters (name, value) VALUES (?1, ?2)
    ON CONFLICT (name) DO UPDATE SET value = value + excluded.value";

const RELEASE: &str = "DELETE FROM leases WHERE info_hash = ?1 AND owner = ?2";

/// Set the category and release of stored torrents, in one IMMEDIATE transaction.
pub fn set_categories(
    conn: &mut Connection,
    rows: &[(InfoHash, Category, Release)],
) -> anyhow::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(
            "UPDATE torrents SET category = ?2, release = ?3 WHERE info_hash = ?1",
        )?;
        for (key, c, r) in rows {
            stmt.execute(params![key.as_bytes(), c.as_str(), release_json(r)])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Write `batch` as `owner` in one IMMEDIATE transaction: on any error nothing of it stays.
pub fn write(conn: &mut Connection, owner: &str, batch: &Batch) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for t in &batch.torrents {
        insert_torrent(&tx, t)?;
    }
    sightings(&tx, batch)?;
    super::estimates::write(&tx, &batch.estimates)?;
    {
        let mut stmt = tx.prepare_cached(RAISE_LAST_SEEN)?;
        for (ih, at) in &batch.seen {
            stmt.execute(params![ih.as_bytes(), at])?;
        }
    }
    {
        let mut stmt = tx.prepare_cached(ADD_COUNTER)?;
        for (name, by) in &batch.counters {
            stmt.execute(params![
                name,
                int(*by, &format!("counter `{name}` increment"))?
            ])?;
        }
    }
    {
        let mut stmt = tx.prepare_cached(RELEASE)?;
        for ih in &batch.release {
            stmt.execute(params![ih.as_bytes(), owner])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Upsert the batch's sightings, then keep the newest `max_sightings` of each infohash
/// they touched.
fn sightings(tx: &Transaction<'_>, batch: &Batch) -> anyhow::Result<()> {
    let mut touched = HashSet::new();
    let mut stmt = tx.prepare_cached(UPSERT_SIGHTING)?;
    for s in batch.all_sightings() {
        let ip = s.addr.ip().to_string();
        let key = s.info_hash.as_bytes();
        let count = int(s.count, "sighting count")?;
        let source = s.source.as_str();
        stmt.execute(params![
            key,
            ip,
            s.addr.port(),
            source,
            s.first_seen,
            s.last_seen,
            count
        ])?;
        touched.insert(s.info_hash);
    }
    if let Some(max) = batch.max_sightings {
        // Counted first: most infohashes have fewer rows than the limit, and a count over
        // the primary key costs a fraction of the delete's sort.
        let mut count = tx.prepare_cached(COUNT_SIGHTINGS)?;
        let mut prune = tx.prepare_cached(PRUNE_SIGHTINGS)?;
        for ih in &touched {
            let n: i64 = count.query_row([ih.as_bytes()], |r| r.get(0))?;
            if n > i64::from(max) {
                prune.execute(params![ih.as_bytes(), max])?;
            }
        }
    }
    Ok(())
}

/// Insert `t` with its files and its full-text row, unless a torrent with its key is
/// stored: then only raise that one's `last_seen`.
fn insert_torrent(tx: &Transaction<'_>, t: &Torrent) -> anyhow::Result<()> {
    let key = t.info_hash.as_bytes();
    let stored = &t.files[..t.files.len().min(MAX_STORED_FILES)];
    let omitted = t.file_count.saturating_sub(stored.len() as u64);
    let name = String::from_utf8_lossy(&t.name);
    let inserted = tx.prepare_cached(INSERT_TORRENT)?.execute(params![
        key,
        t.info_hash_v2.as_ref().map(|h| &h[..]),
        name,
        t.name,
        int(t.total_bytes, "total_bytes")?,
        int(t.piece_length, "piece_length")?,
        int(t.file_count, "file_count")?,
        int(omitted, "files_omitted")?,
        t.private,
        version_str(t.version),
        t.discovered,
        t.source.as_str(),
        t.seeds_estimate,
        t.peers_estimate,
        t.category.map(Category::as_str),
        t.release_column(),
    ])?;
    if inserted == 0 {
        tx.prepare_cached(RAISE_LAST_SEEN)?
            .execute(params![key, t.discovered])?;
        return Ok(());
    }
    let id = tx.last_insert_rowid();
    let mut texts = Vec::with_capacity(stored.len());
    let mut stmt = tx.prepare_cached(INSERT_FILE)?;
    for (idx, f) in stored.iter().enumerate() {
        let text = path_text(f);
        let length = int(f.length, "file length")?;
        stmt.execute(params![id, idx, key, text, encode_path(&f.path), length])?;
        texts.push(text);
    }
    tx.prepare_cached(INSERT_FTS)?
        .execute(params![id, name, fts_paths(&name, &texts)])?;
    Ok(())
}

/// The `paths` column of a torrent's full-text row: its stored paths (as in `files.path`),
/// one per line. A single file named as the torrent adds nothing to search. Deleting the row
/// from the contentless table needs this exact text again (see `sqlite::prune`).
pub(super) fn fts_paths(name: &str, paths: &[String]) -> String {
    if let [only] = paths {
        if only == name {
            return String::new();
        }
    }
    paths.join("\n")
}

/// Take the lease on `info_hash` for `owner` until `now + lease`, in one IMMEDIATE
/// transaction; false if the torrent is stored, was pruned, or another owner's lease runs
/// past `now`.
pub fn claim(
    conn: &mut Connection,
    info_hash: &InfoHash,
    owner: &str,
    lease: Duration,
    now: i64,
) -> anyhow::Result<bool> {
    let key = info_hash.as_bytes();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let stored = tx.prepare_cached(super::read::STORED)?.exists([key])?;
    let deleted = tx
        .prepare_cached("SELECT 1 FROM deleted WHERE info_hash = ?1")?
        .exists([key])?;
    if stored || deleted {
        return Ok(false);
    }
    let holder: Option<(String, i64)> = tx
        .prepare_cached("SELECT owner, expires FROM leases WHERE info_hash = ?1")?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((other, expires)) = holder {
        if other != owner && expires > now {
            return Ok(false);
        }
    }
    let secs = i64::try_from(lease.as_secs()).unwrap_or(i64::MAX);
    tx.prepare_cached(
        "INSERT INTO leases (info_hash, owner, expires) VALUES (?1, ?2, ?3)
         ON CONFLICT (info_hash) DO UPDATE SET owner = excluded.owner, expires = excluded.expires",
    )?
    .execute(params![key, owner, now.saturating_add(secs)])?;
    tx.commit()?;
    Ok(true)
}

/// Delete the leases that expired before `now`.
pub fn sweep_leases(conn: &mut Connection, now: i64) -> anyhow::Result<u64> {
    let n = conn.execute("DELETE FROM leases WHERE expires <= ?1", [now])?;
    Ok(n as u64)
}

/// Upsert `nodes` as good at `at`, then keep the `keep` most recently good.
pub fn save_nodes(
    conn: &mut Connection,
    nodes: &[CompactNode],
    at: i64,
    keep: usize,
) -> anyhow::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO nodes (ip, port, id, last_good) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (ip, port) DO UPDATE SET id = excluded.id,
                 last_good = max(last_good, excluded.last_good)",
        )?;
        for n in nodes {
            let ip = n.addr.ip().to_string();
            stmt.execute(params![ip, n.addr.port(), &n.id.0[..], at])?;
        }
    }
    tx.execute(
        "DELETE FROM nodes WHERE (ip, port) NOT IN
             (SELECT ip, port FROM nodes ORDER BY last_good DESC, ip, port LIMIT ?1)",
        [i64::try_from(keep).unwrap_or(i64::MAX)],
    )?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{open, torrent};
    use super::*;
    use crate::{Sighting, SightingSum, Source, Store as _};
    use estudely_krpc::NodeId;
    use estudely_peer_wire::Version;
    use std::net::SocketAddr;

    #[test]
    fn first_writer_wins_and_last_seen_rises() {
        let (_dir, mut s) = open();
        let first = torrent(1, b"first", 100);
        let mut second = torrent(1, b"second", 200);
        second.total_bytes = 9;
        s.write(
            "a",
            &Batch {
                torrents: vec![first.clone()],
                ..Batch::default()
            },
        )
        .unwrap();
        s.write(
            "b",
            &Batch {
                torrents: vec![second],
                ..Batch::default()
            },
        )
        .unwrap();
        let got = s.torrent(&first.info_hash).unwrap().unwrap();
        assert_eq!(got.torrent, first);
        assert_eq!(got.last_seen, 200);
        let seen = vec![(first.info_hash, 150), (first.info_hash, 300)];
        s.write(
            "a",
            &Batch {
                seen,
                ..Batch::default()
            },
        )
        .unwrap();
        assert_eq!(s.torrent(&first.info_hash).unwrap().unwrap().last_seen, 300);
        assert_eq!(s.stats().unwrap().files, 1);
    }

    #[test]
    fn sightings_upsert_and_counters_add() {
        let (_dir, mut s) = open();
        let ih = InfoHash([7; 20]);
        let sight = |at, source| Sighting {
            info_hash: ih,
            addr: "1.2.3.4:5".parse().unwrap(),
            source,
            at,
        };
        let batch = Batch {
            sightings: vec![sight(10, Source::Announce), sight(5, Source::Announce)],
            counters: vec![("filtered_size".into(), 2)],
            ..Batch::default()
        };
        s.write("a", &batch).unwrap();
        let batch = Batch {
            sightings: vec![sight(20, Source::Announce), sight(1, Source::Sample)],
            counters: vec![("filtered_size".into(), 3), ("x".into(), 1)],
            ..Batch::default()
        };
        s.write("a", &batch).unwrap();
        let rows: Vec<(String, i64, i64, i64)> = s
            .conn
            .prepare("SELECT source, first_seen, last_seen, count FROM sightings")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // One row per (infohash, address): the node's sample does not hide the peer.
        assert_eq!(rows, [("announce".into(), 1, 20, 4)]);
        let stats = s.stats().unwrap();
        assert_eq!(stats.sightings, 1);
        assert_eq!(
            stats.counters,
            [("filtered_size".to_string(), 5), ("x".to_string(), 1)]
        );
    }

    #[test]
    fn sightings_keep_the_newest_k_per_infohash() {
        let (_dir, mut s) = open();
        let sight = |ih: u8, port: u16, at| Sighting {
            info_hash: InfoHash([ih; 20]),
            addr: SocketAddr::new([10, 0, 0, 1].into(), port),
            source: Source::GetPeers,
            at,
        };
        // 40 addresses of one infohash over two batches, 3 of another; at most 8 kept.
        let first: Vec<_> = (1..=30).map(|p| sight(1, p, i64::from(p))).collect();
        let mut second: Vec<_> = (31..=40).map(|p| sight(1, p, i64::from(p))).collect();
        second.extend((1..=3).map(|p| sight(2, p, 1)));
        // An address kept from the first batch, seen again: the newest, counted twice.
        second.push(sight(1, 30, 100));
        for sightings in [first, second] {
            let batch = Batch {
                sightings,
                max_sightings: Some(8),
                ..Batch::default()
            };
            s.write("a", &batch).unwrap();
        }
        let (rows, n) = s.sightings_of(&InfoHash([1; 20]), 100).unwrap();
        let ports: Vec<u16> = rows.iter().map(|r| r.addr.port()).collect();
        assert_eq!(ports, [30, 40, 39, 38, 37, 36, 35, 34]);
        assert_eq!((n.total, n.seen), (8, 9), "port 30 counted twice");
        assert_eq!(s.sightings_of(&InfoHash([2; 20]), 100).unwrap().1.total, 3);
        // Without a limit (other writers, tests), nothing is pruned.
        let batch = Batch {
            sightings: (41..=50).map(|p| sight(1, p, 200)).collect(),
            ..Batch::default()
        };
        s.write("a", &batch).unwrap();
        assert_eq!(s.sightings_of(&InfoHash([1; 20]), 100).unwrap().1.total, 18);
    }

    #[test]
    fn sightings_without_addresses_only_count() {
        let (_dir, mut s) = open();
        let t = torrent(4, b"anonymous", 1);
        let none = SightingSum {
            info_hash: t.info_hash,
            addr: crate::NO_ADDRESS,
            source: Source::GetPeers,
            first_seen: 5,
            last_seen: 9,
            count: 7,
        };
        let batch = Batch {
            torrents: vec![t.clone()],
            sighting_sums: vec![none],
            max_sightings: Some(32),
            ..Batch::default()
        };
        s.write("a", &batch).unwrap();
        let (rows, n) = s.sightings_of(&t.info_hash, 10).unwrap();
        assert!(rows.is_empty(), "no address listed: {rows:?}");
        assert_eq!((n.total, n.peers, n.seen), (0, 0, 7));
        let mut peers = Vec::new();
        s.export(None, &mut |_, p| {
            peers.extend_from_slice(p);
            Ok(())
        })
        .unwrap();
        assert!(peers.is_empty(), "export lists no peer: {peers:?}");
    }

    #[test]
    fn expired_leases_are_swept_and_known_keys_found_at_once() {
        let (_dir, mut s) = open();
        let hour = Duration::from_secs(3600);
        assert!(s.claim(&InfoHash([1; 20]), "dead", Duration::ZERO).unwrap());
        assert!(s.claim(&InfoHash([2; 20]), "dead", Duration::ZERO).unwrap());
        assert!(s.claim(&InfoHash([3; 20]), "alive", hour).unwrap());
        assert_eq!(s.sweep_leases().unwrap(), 2);
        assert_eq!(s.sweep_leases().unwrap(), 0);
        let left: i64 = s
            .conn
            .query_row("SELECT count(*) FROM leases", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 1, "the live lease stays");
        let mut hybrid = torrent(7, b"hybrid", 1);
        hybrid.version = Version::Hybrid;
        hybrid.info_hash_v2 = Some([0x42; 32]);
        let batch = Batch {
            torrents: vec![hybrid, torrent(8, b"v1", 1)],
            ..Batch::default()
        };
        s.write("a", &batch).unwrap();
        let ask: Vec<InfoHash> = [7, 0x42, 8, 9].map(|b| InfoHash([b; 20])).to_vec();
        let mut known = s.known_among(&ask).unwrap();
        known.sort();
        assert_eq!(known, [7, 8, 0x42].map(|b| InfoHash([b; 20])));
        assert!(s.known_among(&[]).unwrap().is_empty());
    }

    #[test]
    fn a_failed_write_leaves_nothing() {
        let (_dir, mut s) = open();
        let t = torrent(3, b"doomed", 1);
        // The counter does not fit in an INTEGER: the error comes after the torrent, its
        // files and full-text row were written in the transaction.
        let batch = Batch {
            torrents: vec![t.clone()],
            counters: vec![("ok".into(), 1), ("huge".into(), u64::MAX)],
            ..Batch::default()
        };
        let e = format!("{:#}", s.write("a", &batch).unwrap_err());
        assert!(e.contains("counter `huge`") && e.contains(".sqlite"), "{e}");
        assert!(!s.contains(&t.info_hash).unwrap());
        assert_eq!(s.stats().unwrap(), crate::Stats::default());
        assert!(s.search("doomed", 10, 0).unwrap().is_empty());
        // And the next write works.
        s.write(
            "a",
            &Batch {
                torrents: vec![t.clone()],
                ..Batch::default()
            },
        )
        .unwrap();
        assert_eq!(s.search("doomed", 10, 0).unwrap().len(), 1);
    }

    #[test]
    fn a_hybrid_answers_to_both_of_its_keys() {
        let (_dir, mut s) = open();
        let mut t = torrent(7, b"hybrid", 100);
        t.version = Version::Hybrid;
        t.info_hash_v2 = Some([0x42; 32]);
        let batch = Batch {
            torrents: vec![t],
            ..Batch::default()
        };
        s.write("a", &batch).unwrap();
        let v2_key = InfoHash([0x42; 20]);
        assert!(s.contains(&InfoHash([7; 20])).unwrap());
        assert!(
            s.contains(&v2_key).unwrap(),
            "the truncated v2 key finds it"
        );
        assert!(!s.contains(&InfoHash([0x43; 20])).unwrap());
        let hour = Duration::from_secs(3600);
        assert!(!s.claim(&v2_key, "b", hour).unwrap(), "stored: no claim");
        let mut keys = Vec::new();
        s.for_each_info_hash(&mut |k| keys.push(k)).unwrap();
        keys.sort();
        assert_eq!(keys, [InfoHash([7; 20]), v2_key]);
    }

    #[test]
    fn claims() {
        let (_dir, mut s) = open();
        let ih = InfoHash([9; 20]);
        let hour = Duration::from_secs(3600);
        assert!(s.claim(&ih, "a", hour).unwrap());
        assert!(
            s.claim(&ih, "a", hour).unwrap(),
            "an owner renews its own lease"
        );
        assert!(
            !s.claim(&ih, "b", hour).unwrap(),
            "another owner's lease holds"
        );
        let release = Batch {
            release: vec![ih],
            ..Batch::default()
        };
        s.write("b", &release).unwrap();
        assert!(
            !s.claim(&ih, "b", hour).unwrap(),
            "b cannot release a's lease"
        );
        s.write("a", &release).unwrap();
        assert!(s.claim(&ih, "b", Duration::ZERO).unwrap(), "released");
        assert!(
            s.claim(&ih, "a", hour).unwrap(),
            "b's 0-second lease has expired"
        );
        let t = torrent(9, b"stored", 1);
        s.write(
            "c",
            &Batch {
                torrents: vec![t.clone()],
                ..Batch::default()
            },
        )
        .unwrap();
        assert!(
            !s.claim(&t.info_hash, "a", hour).unwrap(),
            "stored torrents"
        );
    }

    #[test]
    fn nodes_keep_the_most_recent() {
        let (_dir, mut s) = open();
        let node = |i: u8| CompactNode {
            id: NodeId([i; 20]),
            addr: format!("10.0.0.{i}:6881").parse().unwrap(),
        };
        s.save_nodes(&[node(1), node(2)], 100, 10).unwrap();
        s.save_nodes(&[node(3)], 200, 10).unwrap();
        s.save_nodes(&[node(1)], 300, 2).unwrap();
        assert_eq!(s.load_nodes(10).unwrap(), [node(1), node(3)]);
        assert_eq!(s.load_nodes(1).unwrap(), [node(1)]);
        let six = CompactNode {
            id: NodeId([6; 20]),
            addr: "[2001:db8::1]:6881".parse().unwrap(),
        };
        s.save_nodes(&[six], 400, 10).unwrap();
        assert_eq!(s.load_nodes(1).unwrap(), [six]);
    }
}
