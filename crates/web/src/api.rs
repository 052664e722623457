//! The JSON API, `/api/v1/...`: the same reads as the pages, as JSON objects. Errors are
//! `{"error": "..."}` with a 4xx/5xx status.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::warn;

use super::found::{find, parse_search, Found};
use super::pages::{clean_query, query_torrent};
use super::view::{iso, magnet};
use super::{AppState, DbError, MAX_LIMIT, MAX_OFFSET};
use estudely_store::json;
use estudely_store::SearchSort;

/// `?q=&category=&limit=&offset=&sort=`
#[derive(Debug, Deserialize)]
pub struct ApiSearch {
    q: Option<String>,
    category: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
    sort: Option<SearchSort>,
}

/// `{"error": message}` with `status`.
fn fail(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn db_fail(e: DbError) -> Response {
    match e {
        DbError::Busy(why) | DbError::Unavailable(why) => {
            fail(StatusCode::SERVICE_UNAVAILABLE, why)
        }
        DbError::Failed(e) => {
            warn!("index query failed: {e:#}");
            fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the index could not be read",
            )
        }
    }
}

/// `GET /api/v1/search?q=&category=&limit=&offset=&sort=`: `{query, category, sort, limit,
/// offset, results, category_counts, next_offset}`; `q` in the search language (see
/// [`estudely_store::SearchQuery`]; a query that cannot be read is a 400 naming the token);
/// `sort` one of `relevance`, `size`, `discovered`, `seeders`; `limit` defaults to 20, at
/// most 100; `offset` at most 10,000. With a category and no words: that category's newest.
/// Each result has `matched_file`: the file path that explains the match when the name does
/// not, else null. `category_counts` (on the first page only, else null): `{counts: {movie:
/// 12, ...}, capped}`, the hits per category among the bounded candidates (lower bounds
/// when `capped`).
pub async fn search(
    State(st): State<Arc<AppState>>,
    q: Result<Query<ApiSearch>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return fail(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let query = clean_query(q.q.as_deref());
    let category = match crate::pages::parse_category(q.category.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(StatusCode::BAD_REQUEST, e),
    };
    if query.is_empty() && category.is_none() {
        return fail(StatusCode::BAD_REQUEST, "q is missing or empty");
    }
    let limit = q.limit.unwrap_or(20);
    let offset = q.offset.unwrap_or(0);
    if limit == 0 || limit > MAX_LIMIT {
        return fail(
            StatusCode::BAD_REQUEST,
            format!("limit must be 1 to {MAX_LIMIT}"),
        );
    }
    if offset > MAX_OFFSET {
        return fail(
            StatusCode::BAD_REQUEST,
            format!("offset must be at most {MAX_OFFSET}"),
        );
    }
    let sort = q.sort.unwrap_or_default();
    let text = query.clone();
    // An infohash or a magnet link of a stored torrent: that torrent alone.
    let key = estudely_store::key_in_query(&query);
    let named = match key {
        Some(key) => match st.pool.run(move |s| s.torrent(&key)).await {
            Ok(t) => t.map(|mut t| {
                t.torrent.files.clear();
                t
            }),
            Err(e) => return db_fail(e),
        },
        None => None,
    };
    let found = match named {
        Some(t) => Ok(Found {
            hits: if offset == 0 { vec![t] } else { Vec::new() },
            ..Found::default()
        }),
        None => {
            let parsed = match parse_search(&text, category) {
                Ok(q) => q,
                Err(e) => return fail(StatusCode::BAD_REQUEST, e),
            };
            find(&st, parsed, sort, (limit + 1, offset, limit), offset == 0).await
        }
    };
    let found = match found {
        Ok(f) => f,
        Err(e) => return db_fail(e),
    };
    let more = found.hits.len() > limit;
    let results: Vec<Value> = found
        .hits
        .iter()
        .take(limit)
        .enumerate()
        .map(|(i, hit)| {
            let mut v: Value = json::hit_value(hit);
            v["magnet"] = Value::String(magnet(hit));
            v["matched_file"] = found.matched_file(i).map_or(Value::Null, Value::String);
            v
        })
        .collect();
    let counts = found.counts.map(|c| {
        json!({
            "counts": c
                .counts
                .iter()
                .map(|(c, n)| (c.as_str().to_owned(), Value::from(*n)))
                .collect::<serde_json::Map<_, _>>(),
            "capped": c.capped,
        })
    });
    Json(json!({
        "query": query,
        "category": category,
        "sort": sort,
        "limit": limit,
        "offset": offset,
        "results": results,
        "category_counts": counts,
        "next_offset": (more && offset + limit <= MAX_OFFSET).then_some(offset + limit),
    }))
    .into_response()
}

/// `GET /api/v1/torrents/{infohash}`: the torrent as `export --format jsonl` writes it
/// (files included), plus `magnet` and `sightings: {total, peers, newest: [...]}`.
pub async fn torrent(State(st): State<Arc<AppState>>, Path(key): Path<String>) -> Response {
    let Some(ih) = super::view::parse_key(&key) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "not an infohash: 40 or 64 hex digits",
        );
    };
    let (t, seen, counts) = match query_torrent(&st, ih).await {
        Ok(Some(found)) => found,
        Ok(None) => return fail(StatusCode::NOT_FOUND, "no such torrent in the index"),
        Err(e) => return db_fail(e),
    };
    let peers: Vec<_> = seen
        .iter()
        .filter(|s| s.source != estudely_store::Source::Sample)
        .map(|s| s.addr)
        .collect();
    let mut v = json::torrent_value(&t, &peers);
    v["magnet"] = Value::String(magnet(&t));
    v["sightings"] = json!({
        "total": counts.total,
        "peers": counts.peers,
        "newest": seen.iter().map(|s| json!({
            "addr": s.addr.to_string(),
            "source": s.source.as_str(),
            "first_seen": s.first_seen,
            "last_seen": s.last_seen,
            "last_seen_utc": iso(s.last_seen),
        })).collect::<Vec<_>>(),
    });
    Json(v).into_response()
}

/// `GET /api/v1/stats`: `stats --format json`'s object plus `report` (the figures behind
/// the charts), both from the cache `/stats` uses (they scan the whole index).
pub async fn stats(State(st): State<Arc<AppState>>) -> Response {
    let figures = match st.figures().await {
        Ok(f) => f,
        Err(e) => return db_fail(e),
    };
    let mut v = json::stats_value(&figures.stats);
    v["report"] = serde_json::to_value(&figures.report).unwrap_or(Value::Null);
    Json(v).into_response()
}
