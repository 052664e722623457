//! Search in SQLite: a [`SearchQuery`] as one statement over the contentless FTS5 table
//! `torrents_fts` and `torrents`, always within a bounded set of candidates.
//!
//! With included words, the candidates are the newest full-text matches (by row, that is
//! by when they were stored) that pass the fields, at most [`RANK_CANDIDATES`] when ranking,
//! [`SORT_CANDIDATES`] when ordering otherwise; the fields are checked inside that set, so a
//! rare category among common words still fills its pages. Without included words (fields
//! or exclusions only), the candidates are the newest [`SORT_CANDIDATES`] torrents (of the
//! query's category, index `torrents_category`, else index `torrents_discovered`) that pass
//! the other fields and hold no excluded term.

use rusqlite::types::Value;
use rusqlite::Connection;

use super::browse::int;
use super::codec::{fts_any, fts_match};
use super::read::{stored, COLUMNS};
use crate::{CategoryCounts, SearchQuery, SearchSort, StoredTorrent};

/// Most full-text matches ranked per search by relevance. A common word matches millions
/// of torrents; ranking them all (bm25 for each) takes seconds. The newest
/// `RANK_CANDIDATES` matches are ranked instead, so a search costs at most this much work;
/// rarer queries, with fewer matches, are ranked exactly.
pub const RANK_CANDIDATES: usize = 2_000;

/// Most candidates ordered per search by size, discovery or seeders, and counted per
/// category: the newest `SORT_CANDIDATES` matches. Ordering reads each match's row; at 1 M
/// torrents a common word matches 100,000 of them, which takes a tenth of a second and
/// more. Queries with fewer matches are ordered exactly; by discovery, the newest rows are
/// the newest discovered ones, so that order is exact but for torrents stored long after
/// their discovery.
pub const SORT_CANDIDATES: usize = 10_000;

/// SQL text and its parameters, numbered in the order they are bound.
#[derive(Default)]
struct Sql {
    params: Vec<Value>,
}

impl Sql {
    /// Bind `v`; its placeholder.
    fn bind(&mut self, v: impl Into<Value>) -> String {
        self.params.push(v.into());
        format!("?{}", self.params.len())
    }

    /// The conditions of `q`'s size, date and file-count fields on table `alias`.
    fn fields(&mut self, q: &SearchQuery, alias: &str) -> String {
        let mut out = String::new();
        for (column, op, v) in q.range_conditions() {
            out += &format!(" AND {alias}.{column} {op} {}", self.bind(v));
        }
        out
    }

    /// The subquery of `q`'s candidates (`id`, `score`), at most `window` of them (see the
    /// module docs); bm25 scores when `rank`. `q` must not match nothing by its fields.
    fn candidates(&mut self, q: &SearchQuery, rank: bool, window: usize) -> String {
        let category = match q.category() {
            Some(c) => format!(" AND c.category = {}", self.bind(c.as_str().to_owned())),
            None => String::new(),
        };
        if let Some(expr) = fts_match(q) {
            let expr = self.bind(expr);
            let score = if rank {
                "bm25(torrents_fts, 2.0, 1.0)"
            } else {
                "0"
            };
            // Without fields, no join: FTS5 alone hands over its newest matches.
            let (join, fields) = if q.has_fields() {
                let fields = format!("{category}{}", self.fields(q, "c"));
                ("JOIN torrents c ON c.id = torrents_fts.rowid", fields)
            } else {
                ("", String::new())
            };
            let n = self.bind(int(window));
            return format!(
                "SELECT torrents_fts.rowid AS id, {score} AS score FROM torrents_fts {join}
                 WHERE torrents_fts MATCH {expr}{fields}
                 ORDER BY torrents_fts.rowid DESC LIMIT {n}"
            );
        }
        let n = self.bind(int(window));
        let newest = format!(
            "SELECT c.id, c.total_bytes, c.discovered, c.file_count FROM torrents c
             WHERE 1{category} ORDER BY c.discovered DESC, c.id DESC LIMIT {n}"
        );
        let fields = self.fields(q, "w");
        // The matches of the excluded terms from the window's oldest row on: one read of
        // the tail of their doclists, where a lookup per row (NOT EXISTS ... rowid = w.id)
        // cost 70-180 µs a row (0.7-1.8 s for 10,000 rows of 200,000).
        let without = match fts_any(&q.exclude) {
            Some(any) => format!(
                " AND w.id NOT IN (SELECT rowid FROM torrents_fts WHERE torrents_fts MATCH {}
                     AND rowid >= (SELECT min(m.id) FROM ({newest}) AS m))",
                self.bind(any)
            ),
            None => String::new(),
        };
        format!("SELECT w.id AS id, 0 AS score FROM ({newest}) AS w WHERE 1{fields}{without}")
    }
}

/// Search for `q` in `sort` order (see the module docs), no files. By relevance, the best
/// candidates by bm25 (a name match weighs twice a path match), then newest first; without
/// included words, relevance is newest first. By size, discovery or seeders: largest
/// `total_bytes`, newest `discovered`, most `seeds_estimate` (unknown last) first, then
/// newest row. Always enough candidates for the page asked for.
pub fn find(
    conn: &Connection,
    q: &SearchQuery,
    sort: SearchSort,
    limit: usize,
    offset: usize,
) -> anyhow::Result<Vec<StoredTorrent>> {
    if limit == 0 || q.finds_nothing() {
        return Ok(Vec::new());
    }
    let words = !q.include.is_empty();
    let (order, at_least) = match sort {
        SearchSort::Relevance if words => ("hits.score, t.id DESC", RANK_CANDIDATES),
        SearchSort::Relevance | SearchSort::Discovered => {
            ("t.discovered DESC, t.id DESC", SORT_CANDIDATES)
        }
        SearchSort::Size => ("t.total_bytes DESC, t.id DESC", SORT_CANDIDATES),
        SearchSort::Seeders => (
            "t.seeds_estimate IS NULL, t.seeds_estimate DESC, t.id DESC",
            SORT_CANDIDATES,
        ),
    };
    let mut sql = Sql::default();
    let window = q.window(sort, at_least, limit, offset);
    let hits = sql.candidates(q, sort == SearchSort::Relevance, window);
    let (l, o) = (sql.bind(int(limit)), sql.bind(int(offset)));
    let text = format!(
        "SELECT {COLUMNS} FROM ({hits}) AS hits JOIN torrents t ON t.id = hits.id
         ORDER BY {order} LIMIT {l} OFFSET {o}"
    );
    let mut stmt = conn.prepare_cached(&text)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(sql.params), stored)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row?.0);
    }
    Ok(out)
}

/// Hits of `q` per category (its own categories ignored) among its [`SORT_CANDIDATES`]
/// candidates; capped when there were that many (with included words: matches; without:
/// torrents looked at).
pub fn category_counts(conn: &Connection, q: &SearchQuery) -> anyhow::Result<CategoryCounts> {
    counts_within(conn, q, SORT_CANDIDATES)
}

/// [`category_counts`] among at most `window` candidates.
fn counts_within(
    conn: &Connection,
    q: &SearchQuery,
    window: usize,
) -> anyhow::Result<CategoryCounts> {
    let q = q.without_categories();
    if q.finds_nothing() {
        return Ok(CategoryCounts::default());
    }
    let mut sql = Sql::default();
    let hits = sql.candidates(&q, false, window);
    let text = format!(
        "SELECT t.category, count(*) FROM ({hits}) AS hits JOIN torrents t ON t.id = hits.id
         GROUP BY t.category"
    );
    let mut stmt = conn.prepare_cached(&text)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(sql.params), |r| {
        Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)?))
    })?;
    let (mut counted, mut total) = (Vec::new(), 0);
    for row in rows {
        let (category, n) = row?;
        let n = u64::try_from(n).unwrap_or(0);
        total += n;
        counted.extend(category.map(|c| (c, n)));
    }
    let looked_at = if q.include.is_empty() {
        conn.prepare_cached("SELECT count(*) FROM (SELECT 1 FROM torrents LIMIT ?1)")?
            .query_row([int(window)], |r| r.get::<_, i64>(0))?
            .try_into()
            .unwrap_or(0)
    } else {
        total
    };
    let capped = looked_at >= u64::try_from(window).unwrap_or(u64::MAX);
    Ok(CategoryCounts::from_rows(counted, capped))
}

#[cfg(test)]
mod tests;
