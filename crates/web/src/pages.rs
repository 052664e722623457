//! The HTML pages: askama templates (in `templates/`) filled from the index. Templates
//! escape every value; the only unescaped HTML is the charts' SVG, which
//! [`crate::report::charts`] builds with every text escaped.

use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;
use tracing::warn;

use super::found::{find, parse_search};
use super::view::{self, file_tree, parse_key, Row, TreeItem};
use super::{AppState, DbError, MAX_OFFSET, MAX_QUERY, PAGE_SIZE, STATS_CACHE};
use estudely_report::charts::{charts, Chart};
use estudely_report::format::human_bytes;
use estudely_store::{
    key_in_query, Category, SearchSort, SightingCounts, SightingRow, StoredTorrent,
};

/// Most sightings listed on a torrent's page.
const SIGHTINGS_SHOWN: usize = 50;

/// The footer line.
const FOOTER: &str = "estudely: an index of the BitTorrent DHT, built by sampling (BEP 51).";

/// `?q=&category=&sort=&page=`
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    q: Option<String>,
    category: Option<String>,
    sort: Option<SearchSort>,
    page: Option<usize>,
}

/// `category=`: empty or absent for all, else a category word.
pub fn parse_category(c: Option<&str>) -> Result<Option<Category>, String> {
    match c.map(str::trim) {
        None | Some("") | Some("all") => Ok(None),
        Some(w) => w.parse().map(Some).map_err(|e| format!("{e}")),
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout_query: String,
    layout_footer: &'static str,
    torrents: u64,
    files: u64,
    total_size: String,
    rows: Vec<Row>,
    empty: &'static str,
    first_rank: usize,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    layout_query: String,
    layout_footer: &'static str,
    query: String,
    category: Option<&'static str>,
    categories: Vec<SortLink>,
    sorts: Vec<SortLink>,
    rows: Vec<Row>,
    empty: &'static str,
    first_rank: usize,
    page: usize,
    prev_href: Option<String>,
    next_href: Option<String>,
}

struct SortLink {
    label: &'static str,
    href: String,
    current: bool,
    /// Hits in this category (`12`, or `12+` when the count was capped); empty for none.
    count: String,
}

#[derive(Template)]
#[template(path = "recent.html")]
struct RecentPage {
    layout_query: String,
    layout_footer: &'static str,
    rows: Vec<Row>,
    empty: &'static str,
    first_rank: usize,
    page: usize,
    prev_href: Option<String>,
    next_href: Option<String>,
}

#[derive(Template)]
#[template(path = "torrent.html")]
struct TorrentPage {
    layout_query: String,
    layout_footer: &'static str,
    t: Row,
    magnet: String,
    v1_hex: Option<String>,
    v2_hex: Option<String>,
    piece_length: String,
    private: bool,
    last_seen: String,
    last_seen_iso: String,
    tree: Vec<TreeItem>,
    files_omitted: u64,
    sightings: Vec<SightingView>,
    sighting_total: u64,
    peer_total: u64,
    /// The swarm's estimates and their age ([`view::swarm`]), or `unknown`.
    swarm: String,
    /// When they were measured (`YYYY-MM-DD HH:MM:SS UTC`), if known.
    estimated: Option<String>,
}

struct SightingView {
    addr: String,
    source: &'static str,
    first_seen: String,
    last_seen: String,
}

#[derive(Template)]
#[template(path = "stats.html")]
struct StatsPage {
    layout_query: String,
    layout_footer: &'static str,
    totals: Vec<(String, u64, String)>,
    charts: Vec<Chart>,
    generated: String,
    cache_secs: u64,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout_query: String,
    layout_footer: &'static str,
    title: &'static str,
    message: String,
}

/// Render a template, or a plain 500 if it cannot be (it always can).
fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            warn!("template: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error\n").into_response()
        }
    }
}

/// An error page with `status`.
fn error(status: StatusCode, title: &'static str, message: String) -> Response {
    let page = ErrorPage {
        layout_query: String::new(),
        layout_footer: FOOTER,
        title,
        message,
    };
    (status, render(&page)).into_response()
}

/// The page for a failed query: 503 when it ran out of time, else 500 (details in the log).
fn db_error(e: DbError) -> Response {
    match e {
        DbError::Busy(why) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too slow",
            format!("The index did not answer in time ({why}). Try a more specific query."),
        ),
        DbError::Unavailable(why) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Index unavailable",
            format!("The index cannot be reached right now ({why})."),
        ),
        DbError::Failed(e) => {
            warn!("index query failed: {e:#}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Index error",
                "The index could not be read; the server log says why.".into(),
            )
        }
    }
}

/// The query as searched: trimmed, at most [`MAX_QUERY`] characters.
pub fn clean_query(q: Option<&str>) -> String {
    q.unwrap_or("").trim().chars().take(MAX_QUERY).collect()
}

/// 1-based page → offset, or `None` beyond [`MAX_OFFSET`].
fn page_offset(page: Option<usize>) -> Option<(usize, usize)> {
    let page = page.unwrap_or(1).max(1);
    let offset = (page - 1).checked_mul(PAGE_SIZE)?;
    (offset <= MAX_OFFSET).then_some((page, offset))
}

/// `/search?q=…&category=…&sort=…&page=N`
fn search_href(q: &str, category: Option<Category>, sort: SearchSort, page: usize) -> String {
    let q = utf8_percent_encode(q, NON_ALPHANUMERIC);
    let sort = sort_word(sort);
    let mut href = format!("/search?q={q}");
    if let Some(c) = category {
        href.push_str("&category=");
        href.push_str(c.as_str());
    }
    href.push_str("&sort=");
    href.push_str(sort);
    if page > 1 {
        href.push_str(&format!("&page={page}"));
    }
    href
}

fn sort_word(s: SearchSort) -> &'static str {
    match s {
        SearchSort::Relevance => "relevance",
        SearchSort::Size => "size",
        SearchSort::Discovered => "discovered",
        SearchSort::Seeders => "seeders",
    }
}

/// Rows of one page: `limit + 1` were asked for, to know whether a next page exists.
fn split_page(mut found: Vec<StoredTorrent>) -> (Vec<Row>, bool) {
    let more = found.len() > PAGE_SIZE;
    found.truncate(PAGE_SIZE);
    (found.iter().map(Row::new).collect(), more)
}

/// `GET /`
pub async fn home(State(st): State<Arc<AppState>>) -> Response {
    let recent = st.pool.run(|s| s.recent(20, 0)).await;
    let figures = st.figures().await;
    let (recent, report) = match (recent, figures) {
        (Ok(r), Ok(f)) => (r, f),
        (Err(e), _) | (_, Err(e)) => return db_error(e),
    };
    render(&HomePage {
        layout_query: String::new(),
        layout_footer: FOOTER,
        torrents: report.report.total("torrents"),
        files: report.report.total("files"),
        total_size: human_bytes(report.report.total("total_bytes")),
        rows: recent.iter().map(Row::new).collect(),
        empty: "Nothing indexed yet: start `estudely run`.",
        first_rank: 1,
    })
}

/// `GET /search?q=&sort=&page=`
pub async fn search(
    State(st): State<Arc<AppState>>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, "Bad request", e.body_text()),
    };
    let query = clean_query(q.q.as_deref());
    let sort = q.sort.unwrap_or_default();
    let category = match parse_category(q.category.as_deref()) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, "Bad request", e),
    };
    let Some((page, offset)) = page_offset(q.page) else {
        return error(
            StatusCode::BAD_REQUEST,
            "Too deep",
            format!("Only the first {MAX_OFFSET} results are served: refine the query."),
        );
    };
    // An infohash or a magnet link of a stored torrent: its page.
    if let Some(key) = key_in_query(&query) {
        match st.pool.run(move |s| s.torrent(&key)).await {
            Ok(Some(t)) => {
                let to = format!("/torrent/{}", t.torrent.info_hash.to_hex());
                return axum::response::Redirect::to(&to).into_response();
            }
            Ok(None) => {}
            Err(e) => return db_error(e),
        }
    }
    let parsed = match parse_search(&query, category) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, "Bad query", e),
    };
    let found = match find(&st, parsed, sort, (PAGE_SIZE + 1, offset, PAGE_SIZE), true).await {
        Ok(f) => f,
        Err(e) => return db_error(e),
    };
    let more = found.hits.len() > PAGE_SIZE;
    let rows: Vec<Row> = found
        .hits
        .iter()
        .take(PAGE_SIZE)
        .enumerate()
        .map(|(i, hit)| Row {
            matched_file: found.matched_file(i),
            ..Row::new(hit)
        })
        .collect();
    let sorts = [
        ("relevance", SearchSort::Relevance),
        ("size", SearchSort::Size),
        ("newest", SearchSort::Discovered),
        ("seeders", SearchSort::Seeders),
    ]
    .into_iter()
    .map(|(label, s)| SortLink {
        label,
        href: search_href(&query, category, s, 1),
        current: s == sort,
        count: String::new(),
    })
    .collect();
    // Facets: the same words in every category, or in all, with the hits of each.
    let counts = found.counts.unwrap_or_default();
    let categories = std::iter::once(("all", None))
        .chain(Category::ALL.into_iter().map(|c| (c.as_str(), Some(c))))
        .map(|(label, c)| SortLink {
            label,
            href: search_href(&query, c, sort, 1),
            current: c == category,
            count: match c.map(|c| counts.of(c)) {
                Some(n) if n > 0 && counts.capped => format!("{n}+"),
                Some(n) if n > 0 => n.to_string(),
                _ => String::new(),
            },
        })
        .collect();
    let next_ok = more && offset + PAGE_SIZE <= MAX_OFFSET;
    render(&SearchPage {
        layout_query: query.clone(),
        layout_footer: FOOTER,
        category: category.map(Category::as_str),
        categories,
        sorts,
        rows,
        empty: if query.is_empty() && category.is_none() {
            "Type a word of a name or a file path."
        } else {
            "Nothing found."
        },
        first_rank: offset + 1,
        page,
        prev_href: (page > 1).then(|| search_href(&query, category, sort, page - 1)),
        next_href: next_ok.then(|| search_href(&query, category, sort, page + 1)),
        query,
    })
}

/// `GET /recent?page=`
pub async fn recent(
    State(st): State<Arc<AppState>>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, "Bad request", e.body_text()),
    };
    let Some((page, offset)) = page_offset(q.page) else {
        return error(
            StatusCode::BAD_REQUEST,
            "Too deep",
            format!("Only the newest {MAX_OFFSET} torrents are listed."),
        );
    };
    let found = match st.pool.run(move |s| s.recent(PAGE_SIZE + 1, offset)).await {
        Ok(f) => f,
        Err(e) => return db_error(e),
    };
    let (rows, more) = split_page(found);
    let href = |p: usize| format!("/recent?page={p}");
    render(&RecentPage {
        layout_query: String::new(),
        layout_footer: FOOTER,
        rows,
        empty: "Nothing indexed yet.",
        first_rank: offset + 1,
        page,
        prev_href: (page > 1).then(|| href(page - 1)),
        next_href: (more && offset + PAGE_SIZE <= MAX_OFFSET).then(|| href(page + 1)),
    })
}

/// A torrent and its newest sightings, or `None`.
pub type TorrentData = Option<(StoredTorrent, Vec<SightingRow>, SightingCounts)>;

/// Read one torrent with its files and sightings.
pub async fn load_torrent(st: &AppState, key: &str) -> Result<TorrentData, Response> {
    let Some(ih) = parse_key(key) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "Not an infohash",
            "A torrent's address is its infohash: 40 or 64 hexadecimal digits.".into(),
        ));
    };
    query_torrent(st, ih).await.map_err(db_error)
}

/// [`load_torrent`] by key, its error left to the caller (the API answers JSON).
pub async fn query_torrent(
    st: &AppState,
    ih: estudely_krpc::InfoHash,
) -> Result<TorrentData, DbError> {
    st.pool
        .run(move |s| {
            let Some(t) = s.torrent(&ih)? else {
                return Ok(None);
            };
            let (seen, total) = s.sightings_of(&t.torrent.info_hash, SIGHTINGS_SHOWN)?;
            Ok(Some((t, seen, total)))
        })
        .await
}

/// `GET /torrent/{infohash}`
pub async fn torrent(State(st): State<Arc<AppState>>, Path(key): Path<String>) -> Response {
    let (t, seen, counts) = match load_torrent(&st, &key).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                "Not in the index",
                "No torrent with this infohash has been stored (yet).".into(),
            )
        }
        Err(page) => return page,
    };
    render(&TorrentPage {
        layout_query: String::new(),
        layout_footer: FOOTER,
        t: Row::new(&t),
        magnet: view::magnet(&t),
        v1_hex: view::v1_hex(&t),
        v2_hex: t.torrent.info_hash_v2.map(hex::encode),
        piece_length: human_bytes(t.torrent.piece_length),
        private: t.torrent.private,
        last_seen: view::utc(t.last_seen),
        last_seen_iso: view::iso(t.last_seen),
        tree: file_tree(&t.torrent.files),
        files_omitted: t.files_omitted,
        sightings: seen
            .iter()
            .map(|s| SightingView {
                addr: s.addr.to_string(),
                source: s.source.as_str(),
                first_seen: view::utc(s.first_seen),
                last_seen: view::utc(s.last_seen),
            })
            .collect(),
        sighting_total: counts.total,
        peer_total: counts.peers,
        swarm: view::swarm(&t, crate::unix_now()).unwrap_or_else(|| "unknown".to_owned()),
        estimated: t.estimated_at.map(view::utc),
    })
}

/// `GET /stats`
pub async fn stats(State(st): State<Arc<AppState>>) -> Response {
    let figures = match st.figures().await {
        Ok(f) => f,
        Err(e) => return db_error(e),
    };
    let report = &figures.report;
    let totals = report
        .totals
        .iter()
        .map(|(k, v)| {
            let human = if k == "total_bytes" {
                human_bytes(*v)
            } else {
                v.to_string()
            };
            (k.clone(), *v, human)
        })
        .collect();
    render(&StatsPage {
        layout_query: String::new(),
        layout_footer: FOOTER,
        totals,
        charts: charts(report),
        generated: view::utc(report.generated),
        cache_secs: STATS_CACHE.as_secs(),
    })
}

/// `GET /static/style.css`
pub async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/style.css"),
    )
        .into_response()
}

/// Anything else.
pub async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page.".into(),
    )
}
