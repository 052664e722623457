//! Search in PostgreSQL: a [`SearchQuery`] as one statement over the `search` vector (GIN
//! index `torrents_search`) and, with `pg_trgm`, substrings of names, always within a
//! bounded set of candidates.
//!
//! With included words, the candidates are the first matches the indexes give that pass
//! the category and the fields and hold no excluded term: at most [`CANDIDATES`] when
//! ranking, [`SORT_CANDIDATES`] when ordering otherwise (or the page asked for, if more),
//! found among the first [`raw_matches`] of the words (so a query whose filters reject
//! nearly every match costs as much as one that rejects none, and may miss rarer hits). Without
//! included words (fields or exclusions only), they are the newest [`SORT_CANDIDATES`]
//! torrents (of the query's category, index `torrents_category`, else index
//! `torrents_discovered`) that pass the other fields and hold no excluded term.
//!
//! A query whose words are *dense* (in at least one row in [`DENSE_SHARE`] of a sample of
//! the table's first rows, [`PROBE_ROWS`]: two common words, a common word) takes its
//! candidates from a scan in table order instead (from the first page, the same on every
//! reload), which stops at the window: the first matches of its words (substrings of
//! names are left out), among at most [`DENSE_ROWS_PER_CANDIDATE`] rows per candidate.
//! The GIN index cannot stop early: for two words it reads and intersects both posting
//! lists whole, a cost that grows with the index (56,000 matches read to keep 2,000 at
//! 1 M torrents), where the scan reads as many rows at 10 M as at 1 M. When that scan
//! finds fewer matches than the window, the query is asked again of the indexes as above,
//! so every query with fewer matches than its window (exact results) is answered exactly
//! as without this path.
//!
//! A query whose words are rare but whose *substring* is dense (part of a common word:
//! `ollectio`, in one name in 24 at 10 M torrents) is treated the same way: the scan in
//! table order takes the first names holding it (a word only in a file's path is left
//! out, as substrings are for dense words). Through the indexes, such a fragment made the
//! trigram index read and intersect the long posting lists of every trigram it holds
//! (108-148 ms at 10 M), or the planner read the table in order anyway, testing each row
//! against both the vector and the name.
//!
//! The `search` vector holds the name's words then the paths' in one run, so a phrase may
//! match across the end of the name and the start of the first path (a single-file
//! torrent's file is usually named as the torrent): a phrase is a little looser here than
//! in SQLite, where name and paths are separate columns.

use super::client::Client;
use super::client::ToSql;

use super::read::{stored, COLUMNS};
use super::text::{substring_pattern, to_u64, tsquery};
use crate::{CategoryCounts, SearchQuery, SearchSort, StoredTorrent};

/// Matches ranked per search at least. 1,000 rather than SQLite's 2,000: ranking reads each
/// candidate's row and vector, and at 1 M torrents 2,000 put the p95 of a common word at
/// 50-57 ms, 1,000 at 42 ms (BENCHMARKS.md).
const CANDIDATES: usize = 1_000;

/// Matches ordered per search by size, discovery or seeders at least, and counted per
/// category. A query with fewer matches is ordered exactly. At 200,000 torrents, 5,000 put
/// the p95 of a common word at 38 ms (each candidate's row is read).
const SORT_CANDIDATES: usize = 2_000;

/// The columns a candidate carries: every one but `files` (a torrent's file list, up to
/// kilobytes, read by none of the filters, sorts or ranks; with it 2,000 candidates made
/// a sort by size spill to disk: p50 8 → 40 ms at 1 M torrents).
const CANDIDATE: &str = "t.info_hash, t.info_hash_v2, t.name, t.name_raw, t.total_bytes, \
    t.piece_length, t.file_count, t.files_omitted, t.private, t.version, t.discovered, \
    t.last_seen, t.source, t.search, t.seeds_estimate, t.peers_estimate, t.category, \
    t.release, t.estimated_at, t.scraped_at";

/// Matches of the included words read per search at most, per candidate wanted, before the
/// category, the fields and the exclusions filter them ...
const RAW_PER_CANDIDATE: usize = 10;

/// ... and at least. Without this bound a query whose filters reject most of its words'
/// matches (`linux -ubuntu`, `river -river`, a rare category) read every match: 16 s at
/// 10 M torrents for one of 300 benchmark queries with an exclusion.
const MIN_RAW: usize = 20_000;

/// How many raw matches a search of `window` candidates reads at most.
fn raw_matches(window: usize) -> usize {
    window.saturating_mul(RAW_PER_CANDIDATE).max(MIN_RAW)
}

/// Rows at the start of the table in which a query's words are looked for, to tell whether
/// they are dense (see the module docs): a scan of cached pages, well under a millisecond.
const PROBE_ROWS: usize = 1_000;

/// Words are dense when at least one probed row in this many matches them (with the
/// query's category and fields): then a scan in table order finds a window of `n`
/// candidates in about `DENSE_SHARE * n` rows, expected half its bound below.
const DENSE_SHARE: usize = 25;

/// Rows read at most, per candidate wanted, by the scan in table order of dense words
/// (twice the expected count, for a sample that flattered them): past it, the statement
/// asks the indexes.
const DENSE_ROWS_PER_CANDIDATE: usize = 2 * DENSE_SHARE;

/// Are `hits` matches among `probed` rows dense enough for a scan in table order? Never
/// for a table smaller than the probe (its indexes are cheap).
fn dense(hits: u64, probed: u64) -> bool {
    probed >= PROBE_ROWS as u64 && hits.saturating_mul(DENSE_SHARE as u64) >= probed
}

/// Where a query's candidates come from (see the module docs and [`probe`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Density {
    /// The indexes: every match of the words, and of the substring when looked for.
    Sparse,
    /// A scan in table order for the words alone (they are dense).
    Words,
    /// A scan in table order for names holding the substring (it is dense, the words
    /// are not).
    Names,
}

impl Density {
    /// Is this a scan in table order (which, finding fewer than its window, gives way to
    /// the indexes)?
    fn is_scan(self) -> bool {
        self != Density::Sparse
    }
}

/// `q`'s included words as typed, in order.
fn typed_words(q: &SearchQuery) -> Vec<&str> {
    q.include
        .iter()
        .flat_map(|t| t.words.iter().map(String::as_str))
        .collect()
}

/// The `ILIKE` pattern of `q`'s included words, when `trgm` and no phrase (a phrase asks
/// for whole words in a row).
fn pattern_of(q: &SearchQuery, trgm: bool) -> Option<String> {
    let phrases = q.include.iter().any(|t| t.words.len() > 1);
    substring_pattern(&typed_words(q)).filter(|_| trgm && !phrases)
}

/// A count or offset as a `bigint` (saturating).
fn big(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Parameters of one statement, numbered in the order they are bound.
#[derive(Default)]
struct Sql {
    params: Vec<Box<dyn ToSql + Sync>>,
}

impl Sql {
    /// Bind `v`; its placeholder.
    fn bind(&mut self, v: impl ToSql + Sync + 'static) -> String {
        self.params.push(Box::new(v));
        format!("${}", self.params.len())
    }

    /// The conditions of `q`'s fields but categories, and of its exclusions, on `t`.
    fn filters(&mut self, q: &SearchQuery) -> String {
        let mut out = String::new();
        for (column, op, v) in q.range_conditions() {
            out += &format!(" AND t.{column} {op} {}", self.bind(v));
        }
        if let Some(any) = tsquery(&q.exclude, "|") {
            let any = self.bind(any);
            out += &format!(" AND NOT t.search @@ to_tsquery('simple', {any})");
        }
        out
    }

    /// The subquery of `q`'s candidate rows (`torrents` columns), at most `window`; also
    /// the ranking terms for relevance (`rank`). With `trgm` and no phrase, a name holding
    /// the included words as substrings, in order, matches too.
    ///
    /// With a `dense` scan (see [`probe`]), the first `window` matches in table order (of
    /// the words alone, or of names holding the substring), among
    /// [`DENSE_ROWS_PER_CANDIDATE`] rows per candidate: when these are fewer than
    /// `window`, the caller asks again of the indexes ([`Density::Sparse`]).
    fn candidates(
        &mut self,
        q: &SearchQuery,
        trgm: bool,
        rank: bool,
        window: usize,
        dense: Density,
    ) -> (String, String) {
        let category = match q.category() {
            Some(c) => format!(" AND t.category = {}", self.bind(c.as_str().to_owned())),
            None => String::new(),
        };
        let filters = self.filters(q);
        let Some(all) = tsquery(&q.include, "&") else {
            let n = self.bind(big(window));
            let sql = format!(
                "SELECT t.* FROM (SELECT {CANDIDATE} FROM torrents t WHERE true{category}
                     ORDER BY t.discovered DESC, t.info_hash DESC LIMIT {n}) AS t
                 WHERE true{filters}"
            );
            return (sql, "t.discovered DESC, t.info_hash DESC".to_owned());
        };
        let pattern = pattern_of(q, trgm);
        // Every parameter must be used (for its type): the words not when only names are
        // tested and nothing is ranked, `plain` only when ranking by similarity, the
        // pattern only when substrings are looked for (not for dense words).
        let names_only = dense == Density::Names && pattern.is_some();
        let words = if names_only && !rank {
            String::new()
        } else {
            format!("to_tsquery('simple', {})", self.bind(all))
        };
        let plain = typed_words(q).join(" ");
        let rank = match &pattern {
            Some(_) if rank => {
                let plain = self.bind(plain);
                format!(
                    "ts_rank(t.search, {words}) DESC, similarity(t.name, {plain}) DESC, \
                     t.discovered, t.info_hash"
                )
            }
            Some(_) => String::new(),
            None => format!("ts_rank(t.search, {words}) DESC, t.discovered, t.info_hash"),
        };
        let matches = match (pattern, dense) {
            (Some(pattern), Density::Sparse) => {
                let pattern = self.bind(pattern);
                format!("(t.search @@ {words} OR t.name ILIKE {pattern})")
            }
            // The name alone: testing the vector too would read every row up to it.
            (Some(pattern), Density::Names) => format!("t.name ILIKE {}", self.bind(pattern)),
            _ => format!("t.search @@ {words}"),
        };
        let n = self.bind(big(window));
        if dense.is_scan() {
            // The first rows in table order: a subquery with a limit, so no index can be
            // used for the words, and the scan stops once the window is full (`*`, the
            // table's own columns, costs no projection of the rows that do not match).
            let rows = self.bind(big(window.saturating_mul(DENSE_ROWS_PER_CANDIDATE)));
            let sql = format!(
                "SELECT {CANDIDATE} FROM (SELECT * FROM torrents t LIMIT {rows}) AS t
                 WHERE {matches}{category}{filters} LIMIT {n}"
            );
            return (sql, rank);
        }
        let raw = self.bind(big(raw_matches(window)));
        let sql = format!(
            "SELECT t.* FROM (SELECT {CANDIDATE} FROM torrents t WHERE {matches} LIMIT {raw}) AS t
             WHERE true{category}{filters} LIMIT {n}"
        );
        (sql, rank)
    }

    /// The parameters as `query` takes them.
    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(|p| &**p as _).collect()
    }
}

/// Are `q`'s included words dense, or else its substring (see the module docs)? Counts
/// their matches, with the query's category and fields, among the table's first
/// [`PROBE_ROWS`] rows (always the same pages, so they stay cached), and turns
/// `synchronize_seqscans` off for the connection. Sparse without included words.
fn probe(client: &mut Client, trgm: bool, q: &SearchQuery) -> anyhow::Result<Density> {
    let Some(all) = tsquery(&q.include, "&") else {
        return Ok(Density::Sparse);
    };
    let mut sql = Sql::default();
    let all = sql.bind(all);
    // Names holding the substring, counted only when it is looked for (an `ILIKE` over
    // the probe's rows costs about a millisecond).
    let names = match pattern_of(q, trgm) {
        Some(p) => format!("t.name ILIKE {}", sql.bind(p)),
        None => "false".to_owned(),
    };
    let category = match q.category() {
        Some(c) => format!(" AND t.category = {}", sql.bind(c.as_str().to_owned())),
        None => String::new(),
    };
    let filters = sql.filters(q);
    let rows = sql.bind(big(PROBE_ROWS));
    // Sequential scans of this connection start at the table's first page from now on:
    // by default one of a large table starts where another one is, so the probe and the
    // scan after it would look at other rows, and a page reloaded would show other hits
    // and counts. And every statement is planned for its own values: after five runs of a
    // prepared statement PostgreSQL may keep a generic plan, which evaluates
    // `to_tsquery($1)` on each row a scan in table order reads (a dense count went from 27
    // to 55 ms at 1 M torrents on its sixth run).
    let text = format!(
        "SELECT count(*) FILTER (WHERE t.search @@ to_tsquery('simple', {all}){category}{filters}),
             count(*), set_config('synchronize_seqscans', 'off', false),
             count(*) FILTER (WHERE {names}{category}{filters}),
             set_config('plan_cache_mode', 'force_custom_plan', false)
         FROM (SELECT * FROM torrents t LIMIT {rows}) AS t"
    );
    let row = client.query_one(&text, &sql.params())?;
    let (hits, probed, named): (i64, i64, i64) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(3)?);
    let probed = to_u64(probed, "count")?;
    Ok(if dense(to_u64(hits, "count")?, probed) {
        Density::Words
    } else if dense(to_u64(named, "count")?, probed) {
        Density::Names
    } else {
        Density::Sparse
    })
}

/// Search for `q` in `sort` order (see the module docs), no files. By relevance, best
/// first (`ts_rank`, then trigram similarity of the name); without included words, newest
/// first. By size (largest first), discovery (newest first) or seeders (most first,
/// unknown last); ties: newest, then the greater infohash first, PostgreSQL rows having no
/// insertion order.
pub fn find(
    client: &mut Client,
    trgm: bool,
    q: &SearchQuery,
    sort: SearchSort,
    limit: usize,
    offset: usize,
) -> anyhow::Result<Vec<StoredTorrent>> {
    if limit == 0 || q.finds_nothing() {
        return Ok(Vec::new());
    }
    let (order, at_least) = match sort {
        SearchSort::Relevance => (None, CANDIDATES),
        SearchSort::Size => (
            Some("t.total_bytes DESC, t.discovered DESC, t.info_hash DESC"),
            SORT_CANDIDATES,
        ),
        SearchSort::Discovered => (Some("t.discovered DESC, t.info_hash DESC"), SORT_CANDIDATES),
        SearchSort::Seeders => (
            Some("t.seeds_estimate DESC NULLS LAST, t.discovered DESC, t.info_hash DESC"),
            SORT_CANDIDATES,
        ),
    };
    let window = q.window(sort, at_least, limit, offset);
    let mut dense = probe(client, trgm, q)?;
    loop {
        let mut sql = Sql::default();
        let (hits, rank) = sql.candidates(q, trgm, order.is_none(), window, dense);
        let (l, o) = (sql.bind(big(limit)), sql.bind(big(offset)));
        // With a dense scan, the number of candidates comes after the columns: one that
        // found fewer than the window is asked again of the indexes (none on the page: as
        // few).
        let found = if dense.is_scan() {
            ", count(*) OVER ()"
        } else {
            ""
        };
        let text = format!(
            "SELECT {COLUMNS}{found} FROM ({hits}) AS t ORDER BY {} LIMIT {l} OFFSET {o}",
            order.unwrap_or(&rank)
        );
        let rows = client.query(&text, &sql.params())?;
        let found = match rows.first() {
            Some(row) if dense.is_scan() => {
                to_u64(row.try_get(COLUMNS.split(',').count())?, "count")?
            }
            _ => 0,
        };
        if dense.is_scan() && found < window as u64 {
            dense = Density::Sparse;
            continue;
        }
        return rows.iter().map(stored).collect();
    }
}

/// Hits of `q` per category (its own categories ignored) among its [`SORT_CANDIDATES`]
/// candidates; capped when there were that many (with included words: matches; without:
/// torrents looked at).
pub fn category_counts(
    client: &mut Client,
    trgm: bool,
    q: &SearchQuery,
) -> anyhow::Result<CategoryCounts> {
    let q = q.without_categories();
    if q.finds_nothing() {
        return Ok(CategoryCounts::default());
    }
    let mut dense = probe(client, trgm, &q)?;
    let (counted, total) = loop {
        let mut sql = Sql::default();
        let (hits, _) = sql.candidates(&q, trgm, false, SORT_CANDIDATES, dense);
        let text = format!("SELECT t.category, count(*) FROM ({hits}) AS t GROUP BY 1");
        let (mut counted, mut total) = (Vec::new(), 0);
        for row in client.query(&text, &sql.params())? {
            let (category, n): (Option<String>, i64) = (row.try_get(0)?, row.try_get(1)?);
            let n = to_u64(n, "count")?;
            total += n;
            counted.extend(category.map(|c| (c, n)));
        }
        // A dense scan that found fewer than the window: the indexes count them all.
        if dense.is_scan() && total < SORT_CANDIDATES as u64 {
            dense = Density::Sparse;
            continue;
        }
        break (counted, total);
    };
    let looked_at = if q.include.is_empty() {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM (SELECT 1 FROM torrents LIMIT $1) AS w",
                &[&big(SORT_CANDIDATES)],
            )?
            .try_get(0)?;
        to_u64(n, "count")?
    } else {
        total
    };
    let capped = looked_at >= SORT_CANDIDATES as u64;
    Ok(CategoryCounts::from_rows(counted, capped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn density() {
        let n = PROBE_ROWS as u64;
        // One row in 25 of a full probe is dense; one fewer match is not.
        assert!(dense(n / 25, n));
        assert!(!dense(n / 25 - 1, n));
        assert!(dense(n, n));
        assert!(!dense(0, n));
        // A table smaller than the probe never is: its indexes are cheap.
        assert!(!dense(999, 999));
        assert!(!dense(u64::MAX, 0));
        assert!(dense(u64::MAX, u64::MAX));
    }

    #[test]
    fn dense_candidates_are_a_scan_in_table_order() {
        let q = SearchQuery::parse("alpha beta").unwrap();
        let mut sql = Sql::default();
        let (text, rank) = sql.candidates(&q, true, true, 1_000, Density::Words);
        // No word condition inside the scan's limit (so no index serves it), and no
        // substrings.
        assert!(text.contains("(SELECT * FROM torrents t LIMIT $"), "{text}");
        assert!(!text.contains("ILIKE"), "{text}");
        let mut plain = Sql::default();
        let (indexed, _) = plain.candidates(&q, true, true, 1_000, Density::Sparse);
        assert!(indexed.contains("ILIKE"), "{indexed}");
        // A dense substring: names only, in table order (no vector test in the scan).
        for ranked in [true, false] {
            let mut names = Sql::default();
            let (scan, rank) = names.candidates(&q, true, ranked, 1_000, Density::Names);
            assert!(scan.contains("(SELECT * FROM torrents t LIMIT $"), "{scan}");
            assert!(scan.contains("t.name ILIKE"), "{scan}");
            assert!(!scan.contains("@@"), "{scan}");
            let all = format!("{scan} ORDER BY {rank}");
            for i in 1..=names.params.len() {
                assert!(all.contains(&format!("${i}")), "${i} unused in {all}");
            }
        }
        // Every bound parameter is used (the ranking's by the caller).
        let all = format!("{text} ORDER BY {rank}");
        for i in 1..=sql.params.len() {
            assert!(all.contains(&format!("${i}")), "${i} unused in {all}");
        }
    }
}
