//! `GET /torznab/api`: the index as a Torznab indexer (Newznab API, Torznab 1.3), so that
//! Prowlarr, Sonarr, Radarr and the like search it as any other.
//!
//! - `t=caps`: the searches, their parameters, the limits and the categories ([`cats`]).
//! - `t=search` (`q`, `cat`, `limit`, `offset`), `t=tvsearch` (`q`, `season`, `ep`: a
//!   season matches its episodes and its packs; an episode matches itself and the ranges
//!   holding it), `t=movie` (`q`, `year`), `t=music`, `t=book`.
//! - Results newest first, as RSS 2.0 items: title, guid (the infohash), `comments` (the
//!   torrent page), pubDate (first seen), size, the magnet link as link and enclosure, and
//!   `torznab:attr`s (category, infohash, magneturl, size, files, seeders, leechers and
//!   peers from BEP 33 when known, year, season, episode, resolution).
//! - Errors are Newznab error documents (`<error code= description=/>`): 200 missing
//!   parameter, 201 incorrect parameter, 202 no such function; 100 a missing or wrong API
//!   key (see `keys`).
//!
//! A search reads its candidates through the store's category search (newest first), at
//! most [`CANDIDATES`] per category, and filters them on the release fields.

pub mod cats;
pub mod xml;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use estudely_store::{Category, SearchQuery, SearchSort, StoredTorrent};

use crate::pages::clean_query;
use crate::{AppState, DbError, MAX_OFFSET};

use cats::Res;

/// Results per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 50;
/// Most results per page.
pub const MAX_LIMIT: usize = 100;
/// Candidates read per category for one search: the filters on season, episode, year and
/// resolution choose among them.
pub const CANDIDATES: usize = 1_000;

/// A Newznab error document with HTTP 200 (clients read the code in the body).
pub fn error(code: u16, description: &str) -> Response {
    xml_response(StatusCode::OK, xml::error(code, description))
}

fn xml_response(status: StatusCode, body: String) -> Response {
    let mut res = (status, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    res
}

/// What a search asks for besides its words.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Want {
    /// The categories (with a resolution class each, or any); empty: all.
    cats: Vec<(Category, Option<Res>)>,
    season: Option<u16>,
    episode: Option<u16>,
    year: Option<u16>,
}

impl Want {
    /// Does `st` answer it (categories aside when none were asked)?
    fn accepts(&self, st: &StoredTorrent) -> bool {
        let t = &st.torrent;
        let release = t.release.as_ref();
        if !self.cats.is_empty() {
            let res = Res::of(release.and_then(|r| r.resolution.as_deref()));
            let ok = self
                .cats
                .iter()
                .any(|(c, r)| t.category == Some(*c) && (r.is_none() || *r == res));
            if !ok {
                return false;
            }
        }
        if let Some(y) = self.year {
            if release.and_then(|r| r.year) != Some(y) {
                return false;
            }
        }
        if let Some(s) = self.season {
            if release.and_then(|r| r.season) != Some(s) {
                return false;
            }
        }
        if let Some(e) = self.episode {
            let Some(r) = release else { return false };
            let first = r.episode;
            let last = r.episode_end.or(first);
            // The episode itself, or a range holding it; a season pack (no episode) of the
            // season asked for too, when a season was asked for.
            let holds = matches!((first, last), (Some(a), Some(b)) if a <= e && e <= b);
            let pack = first.is_none() && self.season.is_some();
            if !holds && !pack {
                return false;
            }
        }
        true
    }
}

/// A Newznab error to answer: its code and description.
struct Bad(u16, String);

impl Bad {
    fn response(self) -> Response {
        error(self.0, &self.1)
    }
}

/// A parameter as a number, `None` when absent or empty, error 201 naming it otherwise.
fn number<T: std::str::FromStr>(p: &HashMap<String, String>, key: &str) -> Result<Option<T>, Bad> {
    match p.get(key).map(|v| v.trim()) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| Bad(201, format!("Incorrect parameter: {key}"))),
    }
}

/// `GET /torznab/api?t=...`
pub async fn api(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(p): Query<HashMap<String, String>>,
) -> Response {
    let Some(t) = p.get("t").map(|t| t.trim().to_ascii_lowercase()) else {
        return error(200, "Missing parameter: t");
    };
    let default_cats: &[u32] = match t.as_str() {
        "caps" => return xml_response(StatusCode::OK, xml::caps(DEFAULT_LIMIT, MAX_LIMIT)),
        "search" => &[],
        "tvsearch" => &[5000],
        "movie" => &[2000],
        "music" | "audio" => &[3000],
        "book" => &[7000],
        _ => return error(202, &format!("No such function: {t}")),
    };
    match search(&st, &headers, &p, default_cats).await {
        Ok(r) => r,
        Err(Ok(bad)) => bad.response(),
        Err(Err(db)) => db_error(db),
    }
}

async fn search(
    st: &Arc<AppState>,
    headers: &HeaderMap,
    p: &HashMap<String, String>,
    default_cats: &[u32],
) -> Result<Response, Result<Bad, DbError>> {
    let limit = number::<usize>(p, "limit")
        .map_err(Ok)?
        .unwrap_or(DEFAULT_LIMIT)
        .min(MAX_LIMIT);
    let offset = number::<usize>(p, "offset").map_err(Ok)?.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(Ok(Bad(
            201,
            format!("Incorrect parameter: offset (at most {MAX_OFFSET})"),
        )));
    }
    let mut want = Want {
        season: number(p, "season").map_err(Ok)?,
        episode: number(p, "ep").map_err(Ok)?,
        year: number(p, "year").map_err(Ok)?,
        ..Want::default()
    };
    let codes: Vec<u32> = match p.get("cat").map(|c| c.trim()).filter(|c| !c.is_empty()) {
        Some(list) => list
            .split(',')
            .map(|c| c.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| Ok(Bad(201, "Incorrect parameter: cat".to_owned())))?,
        None => default_cats.to_vec(),
    };
    let asked_cats = !codes.is_empty();
    for code in codes {
        for s in cats::selection(code) {
            if !want.cats.contains(&s) {
                want.cats.push(s);
            }
        }
    }
    if asked_cats && want.cats.is_empty() {
        // Only codes we do not serve: nothing matches.
        return Ok(xml_response(
            StatusCode::OK,
            xml::feed(&base(headers), &[], offset, false),
        ));
    }
    let words = clean_query(p.get("q").map(String::as_str));
    let words = SearchQuery::parse(&words)
        .map_err(|e| Ok(Bad(201, format!("Incorrect parameter: q: {e}"))))?;
    let found = candidates(st, words, &want, offset + limit + 1)
        .await
        .map_err(Err)?;
    let mut page: Vec<StoredTorrent> = found
        .into_iter()
        .filter(|t| want.accepts(t))
        .skip(offset)
        .take(limit + 1)
        .collect();
    let more = page.len() > limit;
    page.truncate(limit);
    Ok(xml_response(
        StatusCode::OK,
        xml::feed(&base(headers), &page, offset, more),
    ))
}

/// `GET /feed?q=&category=&limit=`: an RSS 2.0 feed of the newest torrents matching the
/// words (all when none), in one category of ours (`movie`, `tv`, ...) or all; the items
/// are the Torznab ones.
pub async fn rss(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(p): Query<HashMap<String, String>>,
) -> Response {
    let limit = match number::<usize>(&p, "limit") {
        Ok(l) => l.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT),
        Err(bad) => return bad.response(),
    };
    let want = match crate::pages::parse_category(p.get("category").map(String::as_str)) {
        Ok(c) => Want {
            cats: c.map(|c| vec![(c, None)]).unwrap_or_default(),
            ..Want::default()
        },
        Err(e) => return error(201, &format!("Incorrect parameter: category: {e}")),
    };
    let words = clean_query(p.get("q").map(String::as_str));
    let words = match SearchQuery::parse(&words) {
        Ok(q) => q,
        Err(e) => return error(201, &format!("Incorrect parameter: q: {e}")),
    };
    match candidates(&st, words, &want, limit).await {
        Ok(mut found) => {
            found.truncate(limit);
            let mut res =
                xml_response(StatusCode::OK, xml::feed(&base(&headers), &found, 0, false));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/rss+xml; charset=utf-8"),
            );
            res
        }
        Err(e) => db_error(e),
    }
}

/// The newest torrents matching the words (all when none) in the wanted categories, at
/// least `need` of them when the filters on release fields are off, newest first.
async fn candidates(
    st: &Arc<AppState>,
    words: SearchQuery,
    want: &Want,
    need: usize,
) -> Result<Vec<StoredTorrent>, DbError> {
    let filters = want.season.is_some() || want.episode.is_some() || want.year.is_some();
    let n = if filters { CANDIDATES.max(need) } else { need };
    let categories: Vec<Category> = {
        let mut seen = HashSet::new();
        want.cats
            .iter()
            .map(|(c, _)| *c)
            .filter(|c| seen.insert(*c))
            .collect()
    };
    let mut found = st
        .pool
        .run(move |s| {
            let mut out = Vec::new();
            if categories.is_empty() {
                out = if words.is_empty() {
                    s.recent(n, 0)?
                } else {
                    s.find(&words, SearchSort::Discovered, n, 0)?
                };
            } else {
                for c in categories {
                    let mut q = words.clone();
                    q.and_category(c);
                    out.extend(s.find(&q, SearchSort::Discovered, n, 0)?);
                }
            }
            Ok(out)
        })
        .await?;
    found.sort_by(|a, b| {
        b.torrent
            .discovered
            .cmp(&a.torrent.discovered)
            .then_with(|| b.torrent.info_hash.0.cmp(&a.torrent.info_hash.0))
    });
    found.dedup_by(|a, b| a.torrent.info_hash == b.torrent.info_hash);
    Ok(found)
}

/// `http://HOST` of the request (`https` behind a proxy that says so), for the links.
fn base(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("localhost");
    let https = headers
        .get("x-forwarded-proto")
        .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
    format!("{}://{host}", if https { "https" } else { "http" })
}

fn db_error(e: DbError) -> Response {
    match e {
        DbError::Busy(why) | DbError::Unavailable(why) => {
            let mut r = error(900, &format!("Busy: {why}"));
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            r
        }
        DbError::Failed(e) => {
            tracing::warn!("torznab: {e:#}");
            error(900, "Internal error")
        }
    }
}

#[cfg(test)]
mod tests;
