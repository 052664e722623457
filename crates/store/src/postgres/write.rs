//! [`Store::write`](crate::Store::write) and the other writes for PostgreSQL: each
//! kind of row goes in one statement over arrays (`unnest`), so that a batch of a
//! thousand torrents costs a handful of round trips.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::client::SqlState;
use super::client::{ToSql, Transaction};
use estudely_krpc::{CompactNode, InfoHash};
use estudely_peer_wire::info::display;

use super::text::{clamp_i64, files_blob, search_vector, search_words, SearchVector};
use crate::{
    release_json, version_str, Batch, Category, Release, SightingSum, Source, Torrent,
    MAX_STORED_FILES,
};

/// Is `e` a deadlock or serialization failure (the transaction may simply be retried)?
pub fn retryable(e: &super::client::Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::T_R_DEADLOCK_DETECTED) | Some(&SqlState::T_R_SERIALIZATION_FAILURE)
    )
}

/// Write `batch` inside `tx` (the caller commits).
pub fn batch(
    tx: &mut Transaction<'_>,
    owner: &str,
    batch: &Batch,
) -> Result<(), super::client::Error> {
    torrents(tx, &batch.torrents)?;
    seen(tx, &batch.seen)?;
    sightings(tx, batch)?;
    counters(tx, &batch.counters)?;
    super::estimates::write(tx, &batch.estimates)?;
    if !batch.release.is_empty() {
        let keys: Vec<&[u8]> = batch.release.iter().map(|h| &h.0[..]).collect();
        tx.execute(
            "DELETE FROM leases WHERE owner = $1 AND info_hash = ANY($2::bytea[])",
            &[&owner, &keys],
        )?;
    }
    Ok(())
}

/// Insert new torrents with their files (one `files` value each, see
/// [`files_blob`]); raise `last_seen` of those already stored.
fn torrents(tx: &mut Transaction<'_>, torrents: &[Torrent]) -> Result<(), super::client::Error> {
    if torrents.is_empty() {
        return Ok(());
    }
    // One row per key, the first in the batch winning (as against the database), in key
    // order so that concurrent writers lock rows in the same order.
    let mut by_key: BTreeMap<[u8; 20], &Torrent> = BTreeMap::new();
    for t in torrents {
        by_key.entry(t.info_hash.0).or_insert(t);
    }
    let entries: Vec<(&[u8; 20], &Torrent)> = by_key.iter().map(|(k, t)| (k, *t)).collect();
    // A long batch goes in two statements, the second half's rows built while the server
    // writes the first (`query_then`): the client's share (words, vectors, file lists,
    // encoding) is off the server's path.
    let inserted = if entries.len() >= 2 * PIPELINED_HALF {
        let (first, second) = entries.split_at(entries.len() / 2);
        let first = Rows::of(first);
        let (mut one, two) = tx.query_then(
            INSERT_TORRENTS,
            &first.params(),
            || Rows::of(second),
            Rows::params,
        )?;
        one.extend(two);
        one
    } else {
        tx.query(INSERT_TORRENTS, &Rows::of(&entries).params())?
    };
    let mut new: Vec<[u8; 20]> = Vec::with_capacity(inserted.len());
    for row in &inserted {
        let key: &[u8] = row.get(0);
        if let Ok(key) = <[u8; 20]>::try_from(key) {
            new.push(key);
        }
    }
    new.sort_unstable();

    // Already stored: the first writer won; only `last_seen` moves.
    let again: Vec<(&[u8; 20], i64)> = by_key
        .iter()
        .filter(|(k, _)| new.binary_search(k).is_err())
        .map(|(k, t)| (k, t.discovered))
        .collect();
    if !again.is_empty() {
        raise_last_seen(tx, again.into_iter())?;
    }

    Ok(())
}

/// Torrents a batch must hold for its insert to go in two statements (see [`torrents`]):
/// half of this at least in each.
const PIPELINED_HALF: usize = 128;

/// Insert torrents from the arrays of [`Rows::params`]; the keys of those inserted.
const INSERT_TORRENTS: &str =
    "INSERT INTO torrents (info_hash, info_hash_v2, name, name_raw, total_bytes,
             piece_length, file_count, files_omitted, private, version, discovered,
             last_seen, source, search, seeds_estimate, peers_estimate, category, release,
             estimated_at, scraped_at, files)
         SELECT h, v2, n, nr, tb, pl, fc, fo, p, v, d, d, s,
                CASE WHEN sv IS NOT NULL AND (nw IS NULL OR db.utf8)
                     THEN sv
                     ELSE setweight(to_tsvector('simple', nw), 'A') || to_tsvector('simple', pw)
                END, se, pe,
                ca, re,
                CASE WHEN se IS NULL AND pe IS NULL THEN NULL ELSE d END,
                CASE WHEN se IS NULL AND pe IS NULL THEN 0 ELSE d END, fl
         FROM (SELECT current_setting('server_encoding') = 'UTF8' AS utf8) db,
              unnest($1::bytea[], $2::bytea[], $3::text[], $4::bytea[], $5::int8[],
                     $6::int8[], $7::int8[], $8::int8[], $9::bool[], $10::text[],
                     $11::int8[], $12::text[], $13::text[], $14::text[], $15::int4[],
                     $16::int4[], $17::text[], $18::text[], $19::bytea[], $20::tsvector[])
              AS u(h, v2, n, nr, tb, pl, fc, fo, p, v, d, s, nw, pw, se, pe, ca, re, fl, sv)
         ON CONFLICT (info_hash) DO NOTHING
         RETURNING info_hash";

/// The columns of some torrents (in key order) as the arrays [`INSERT_TORRENTS`] takes.
struct Rows<'t> {
    keys: Vec<&'t [u8]>,
    v2: Vec<Option<&'t [u8]>>,
    names: Vec<String>,
    raws: Vec<&'t [u8]>,
    total: Vec<i64>,
    piece: Vec<i64>,
    count: Vec<i64>,
    omitted: Vec<i64>,
    private: Vec<bool>,
    version: Vec<&'static str>,
    discovered: Vec<i64>,
    source: Vec<&'static str>,
    name_words: Vec<Option<String>>,
    path_words: Vec<Option<String>>,
    seeds: Vec<Option<i32>>,
    peers: Vec<Option<i32>>,
    categories: Vec<Option<&'static str>>,
    releases: Vec<Option<String>>,
    file_lists: Vec<Vec<u8>>,
    vectors: Vec<Option<SearchVector>>,
}

impl<'t> Rows<'t> {
    /// The columns of `entries`: display names, search words or vectors, file lists.
    fn of(entries: &[(&'t [u8; 20], &'t Torrent)]) -> Rows<'t> {
        let n = entries.len();
        let mut r = Rows {
            keys: Vec::with_capacity(n),
            v2: Vec::with_capacity(n),
            names: Vec::with_capacity(n),
            raws: Vec::with_capacity(n),
            total: Vec::with_capacity(n),
            piece: Vec::with_capacity(n),
            count: Vec::with_capacity(n),
            omitted: Vec::with_capacity(n),
            private: Vec::with_capacity(n),
            version: Vec::with_capacity(n),
            discovered: Vec::with_capacity(n),
            source: Vec::with_capacity(n),
            name_words: Vec::with_capacity(n),
            path_words: Vec::with_capacity(n),
            seeds: Vec::with_capacity(n),
            peers: Vec::with_capacity(n),
            categories: Vec::with_capacity(n),
            releases: Vec::with_capacity(n),
            file_lists: Vec::with_capacity(n),
            vectors: Vec::with_capacity(n),
        };
        for &(key, t) in entries {
            let stored = t.files.len().min(MAX_STORED_FILES);
            let name = display(&t.name);
            r.keys.push(&key[..]);
            r.v2.push(t.info_hash_v2.as_ref().map(|h| &h[..]));
            let words = search_words([name.as_str()]);
            r.names.push(name);
            r.raws.push(&t.name[..]);
            r.total.push(clamp_i64(t.total_bytes));
            r.piece.push(clamp_i64(t.piece_length));
            r.count.push(clamp_i64(t.file_count));
            r.omitted
                .push(clamp_i64(t.file_count.saturating_sub(stored as u64)));
            r.private.push(t.private);
            r.version.push(version_str(t.version));
            r.discovered.push(t.discovered);
            r.source.push(t.source.as_str());
            let int4 = |e: Option<u32>| e.map(|e| i32::try_from(e).unwrap_or(i32::MAX));
            r.seeds.push(int4(t.seeds_estimate));
            r.peers.push(int4(t.peers_estimate));
            r.categories.push(t.category.map(Category::as_str));
            r.releases.push(t.release_column());
            let paths: Vec<String> = t.files[..stored].iter().map(|f| f.path_lossy()).collect();
            let paths = search_words(paths.iter().map(String::as_str));
            // Built here when its words allow, else by the server from the words; a vector
            // with letters outside ASCII goes with its words, for a database not in UTF-8.
            let vector = search_vector(&words, &paths);
            let (words, paths) = match vector {
                Some(_) if words.is_ascii() && paths.is_ascii() => (None, None),
                _ => (Some(words), Some(paths)),
            };
            r.vectors.push(vector);
            r.name_words.push(words);
            r.path_words.push(paths);
            r.file_lists.push(files_blob(&t.files[..stored]));
        }
        r
    }

    /// The arrays, in the order of [`INSERT_TORRENTS`]'s parameters.
    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.keys,
            &self.v2,
            &self.names,
            &self.raws,
            &self.total,
            &self.piece,
            &self.count,
            &self.omitted,
            &self.private,
            &self.version,
            &self.discovered,
            &self.source,
            &self.name_words,
            &self.path_words,
            &self.seeds,
            &self.peers,
            &self.categories,
            &self.releases,
            &self.file_lists,
            &self.vectors,
        ]
    }
}

/// Raise `last_seen` of stored torrents (keys in ascending order).
fn raise_last_seen<'a>(
    tx: &mut Transaction<'_>,
    seen: impl Iterator<Item = (&'a [u8; 20], i64)>,
) -> Result<(), super::client::Error> {
    let (keys, at): (Vec<&[u8]>, Vec<i64>) = seen.map(|(k, at)| (&k[..], at)).unzip();
    tx.execute(
        "UPDATE torrents t SET last_seen = u.at
         FROM unnest($1::bytea[], $2::int8[]) AS u(h, at)
         WHERE t.info_hash = u.h AND t.last_seen < u.at",
        &[&keys, &at],
    )?;
    Ok(())
}

/// [`Batch::seen`]: one update per key, the latest time.
fn seen(tx: &mut Transaction<'_>, seen: &[(InfoHash, i64)]) -> Result<(), super::client::Error> {
    if seen.is_empty() {
        return Ok(());
    }
    let mut latest: BTreeMap<[u8; 20], i64> = BTreeMap::new();
    for (h, at) in seen {
        let e = latest.entry(h.0).or_insert(*at);
        *e = (*e).max(*at);
    }
    raise_last_seen(tx, latest.iter().map(|(k, at)| (k, *at)))
}

/// [`Batch::sightings`] and [`Batch::sighting_sums`]: upsert by (infohash, ip, port), then
/// keep the newest [`Batch::max_sightings`] of each infohash touched.
fn sightings(tx: &mut Transaction<'_>, batch: &Batch) -> Result<(), super::client::Error> {
    if batch.sighting_rows() == 0 {
        return Ok(());
    }
    // Summed here first: one statement may not update a row twice.
    type Key = ([u8; 20], IpAddr, u16);
    let mut rows: BTreeMap<Key, SightingSum> = BTreeMap::new();
    for s in batch.all_sightings() {
        rows.entry((s.info_hash.0, s.addr.ip(), s.addr.port()))
            .and_modify(|e| {
                e.first_seen = e.first_seen.min(s.first_seen);
                e.last_seen = e.last_seen.max(s.last_seen);
                e.count = e.count.saturating_add(s.count);
                if e.source == Source::Sample {
                    e.source = s.source;
                }
            })
            .or_insert(s);
    }
    let n = rows.len();
    let (mut keys, mut ips, mut ports, mut sources) = (
        Vec::<&[u8]>::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut first, mut last, mut counts) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for ((h, ip, port), s) in &rows {
        keys.push(&h[..]);
        ips.push(*ip);
        ports.push(i32::from(*port));
        sources.push(s.source.as_str());
        first.push(s.first_seen);
        last.push(s.last_seen);
        counts.push(clamp_i64(s.count));
    }
    tx.execute(
        "INSERT INTO sightings (info_hash, ip, port, source, first_seen, last_seen, count)
         SELECT * FROM unnest($1::bytea[], $2::inet[], $3::int4[], $4::text[], $5::int8[],
                              $6::int8[], $7::int8[]) AS s (info_hash)
         WHERE NOT EXISTS (SELECT 1 FROM deleted d WHERE d.info_hash = s.info_hash)
         ON CONFLICT (info_hash, ip, port) DO UPDATE
         SET first_seen = least(sightings.first_seen, EXCLUDED.first_seen),
             last_seen = greatest(sightings.last_seen, EXCLUDED.last_seen),
             count = sightings.count + EXCLUDED.count,
             source = CASE WHEN sightings.source = 'sample' THEN EXCLUDED.source
                           ELSE sightings.source END",
        &[&keys, &ips, &ports, &sources, &first, &last, &counts],
    )?;
    if let Some(max) = batch.max_sightings {
        let mut touched: Vec<&[u8]> = keys;
        touched.dedup();
        tx.execute(
            "DELETE FROM sightings s USING (
                 SELECT info_hash, ip, port, row_number() OVER (
                     PARTITION BY info_hash
                     ORDER BY last_seen DESC, first_seen DESC, ip, port) AS rank
                 FROM sightings WHERE info_hash = ANY($1::bytea[])) r
             WHERE r.rank > $2 AND s.info_hash = r.info_hash AND s.ip = r.ip
                 AND s.port = r.port",
            &[&touched, &i64::from(max)],
        )?;
    }
    Ok(())
}

/// [`Batch::counters`]: add, by name.
fn counters(
    tx: &mut Transaction<'_>,
    counters: &[(String, u64)],
) -> Result<(), super::client::Error> {
    if counters.is_empty() {
        return Ok(());
    }
    let mut sums: BTreeMap<&str, i64> = BTreeMap::new();
    for (name, n) in counters {
        let e = sums.entry(name.as_str()).or_insert(0);
        *e = e.saturating_add(clamp_i64(*n));
    }
    let (names, values): (Vec<&str>, Vec<i64>) = sums.into_iter().unzip();
    tx.execute(
        "INSERT INTO counters (name, value)
         SELECT * FROM unnest($1::text[], $2::int8[])
         ON CONFLICT (name) DO UPDATE SET value = counters.value + EXCLUDED.value",
        &[&names, &values],
    )?;
    Ok(())
}

/// Upsert `nodes` by address with `last_good = at`, then keep the `keep` most recently good.
/// Set the category and release of stored torrents, in one transaction, and move their
/// counts in `totals` (migration 10) from the old category to the new.
pub fn set_categories(
    client: &mut super::client::Client,
    rows: &[(InfoHash, Category, Release)],
) -> anyhow::Result<()> {
    let keys: Vec<&[u8]> = rows.iter().map(|(k, _, _)| &k.0[..]).collect();
    let cats: Vec<&str> = rows.iter().map(|(_, c, _)| c.as_str()).collect();
    let rels: Vec<String> = rows.iter().map(|(_, _, r)| release_json(r)).collect();
    let mut tx = client.transaction()?;
    // `o` is read with the statement's snapshot: the category before this update.
    let changed = tx.query(
        "UPDATE torrents t SET category = u.c, release = u.r
         FROM unnest($1::bytea[], $2::text[], $3::text[]) AS u(k, c, r), torrents o
         WHERE t.info_hash = u.k AND o.info_hash = u.k
         RETURNING o.category, t.category",
        &[&keys, &cats, &rels],
    )?;
    let key = |c: Option<String>| format!("category:{}", c.as_deref().unwrap_or("unclassified"));
    let mut deltas: BTreeMap<String, i64> = BTreeMap::new();
    for row in &changed {
        let (old, new): (Option<String>, Option<String>) = (row.try_get(0)?, row.try_get(1)?);
        if old != new {
            *deltas.entry(key(old)).or_default() -= 1;
            *deltas.entry(key(new)).or_default() += 1;
        }
    }
    if !deltas.is_empty() {
        let json = serde_json::to_string(&deltas)?;
        tx.execute("SELECT estudely_add_totals($1::text::jsonb)", &[&json])?;
    }
    tx.commit()?;
    Ok(())
}

/// Upsert `nodes` by address with `last_good = at`, then keep the `keep` most recently good.
pub fn nodes(
    tx: &mut Transaction<'_>,
    nodes: &[CompactNode],
    at: i64,
    keep: usize,
) -> Result<(), super::client::Error> {
    let mut by_addr: BTreeMap<(IpAddr, u16), [u8; 20]> = BTreeMap::new();
    for n in nodes {
        by_addr.insert((n.addr.ip(), n.addr.port()), n.id.0);
    }
    if !by_addr.is_empty() {
        let mut ips = Vec::with_capacity(by_addr.len());
        let mut ports = Vec::with_capacity(by_addr.len());
        let mut ids = Vec::<&[u8]>::with_capacity(by_addr.len());
        for ((ip, port), id) in &by_addr {
            ips.push(*ip);
            ports.push(i32::from(*port));
            ids.push(&id[..]);
        }
        tx.execute(
            "INSERT INTO nodes (ip, port, id, last_good)
             SELECT ip, port, id, $4 FROM unnest($1::inet[], $2::int4[], $3::bytea[])
                  AS u(ip, port, id)
             ON CONFLICT (ip, port) DO UPDATE SET id = EXCLUDED.id, last_good = EXCLUDED.last_good",
            &[&ips, &ports, &ids, &at],
        )?;
    }
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    tx.execute(
        "DELETE FROM nodes WHERE ctid IN
             (SELECT ctid FROM nodes ORDER BY last_good DESC, ip, port OFFSET $1)",
        &[&keep],
    )?;
    Ok(())
}
