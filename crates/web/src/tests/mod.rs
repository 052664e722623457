//! The router in process, over a small SQLite index: pages, API, escaping, limits, auth.

mod search;

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use estudely_krpc::InfoHash;
use estudely_peer_wire::{FileEntry, Version};
use serde_json::Value;
use tower::ServiceExt as _;

use super::{router, AppState, Credentials, WebConfig};
use estudely_store::sqlite::fixtures;
use estudely_store::{Batch, DbUrl, Sighting, Source, Store as _};

const HOSTILE: &[u8] = b"<script>document.title='pwned'</script> & \"quotes\"";

/// An index with three torrents (one hostile, one hybrid with a directory tree) and a
/// router over it.
fn app(auth: Option<Credentials>) -> (tempfile::TempDir, axum::Router) {
    let (dir, mut store) = fixtures::open();
    let mut hybrid = fixtures::torrent(3, b"Holiday Photos", 300);
    hybrid.version = Version::Hybrid;
    hybrid.info_hash_v2 = Some([0xee; 32]);
    hybrid.file_count = 2;
    hybrid.total_bytes = 3000;
    hybrid.seeds_estimate = Some(12);
    hybrid.files = vec![
        FileEntry {
            path: vec![b"beach".to_vec(), b"a.jpg".to_vec()],
            length: 1000,
        },
        FileEntry {
            path: vec![b"b<i>.jpg".to_vec()],
            length: 2000,
        },
    ];
    let batch = Batch {
        torrents: vec![
            fixtures::torrent(1, b"ubuntu server iso", 100),
            fixtures::torrent(2, HOSTILE, 200),
            hybrid,
        ],
        sightings: vec![Sighting {
            info_hash: InfoHash([3; 20]),
            addr: "192.0.2.7:6881".parse().unwrap(),
            source: Source::Announce,
            at: 310,
        }],
        counters: vec![("fetch_failed_timeout".into(), 4)],
        ..Batch::default()
    };
    store.write("t", &batch).unwrap();
    let url = DbUrl::Sqlite(dir.path().join("test.sqlite"));
    let args = WebConfig {
        auth: auth.clone(),
        db_connections: 2,
        ..WebConfig::default()
    };
    (dir, router(Arc::new(AppState::new(url, &args)), auth))
}

/// An index of `torrents` and a router over it, without authentication.
fn app_over(torrents: Vec<estudely_store::Torrent>) -> (tempfile::TempDir, axum::Router) {
    let (dir, mut store) = fixtures::open();
    let batch = Batch {
        torrents,
        ..Batch::default()
    };
    store.write("t", &batch).unwrap();
    let url = DbUrl::Sqlite(dir.path().join("test.sqlite"));
    let app = router(Arc::new(AppState::new(url, &WebConfig::default())), None);
    (dir, app)
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    get_with(app, uri, None).await
}

async fn get_with(
    app: &axum::Router,
    uri: &str,
    auth: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut req = Request::get(uri);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = to_bytes(res.into_body(), 1 << 24).await.unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

/// A runtime for one test.
pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn pages_render_and_escape_hostile_names() {
    rt().block_on(async {
        let (_dir, app) = app(None);
        let (status, headers, home) = get(&app, "/").await;
        assert_eq!(status, StatusCode::OK, "{home}");
        assert!(headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("default-src 'none'"));
        assert!(home.contains("3 torrents indexed"), "{home}");
        for page in [
            home,
            get(&app, "/search?q=pwned").await.2,
            get(&app, "/recent").await.2,
        ] {
            assert!(!page.contains("<script>"), "{page}");
            assert!(page.contains("&#60;script&#62;document.title="), "{page}");
        }
        let key = hex::encode([2u8; 20]);
        let (status, _, page) = get(&app, &format!("/torrent/{key}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!page.contains("<script>"), "{page}");
        assert!(
            page.contains("%3Cscript%3E"),
            "the magnet's dn is percent-encoded: {page}"
        );
    });
}

#[test]
fn torrent_page_has_tree_magnet_and_sightings() {
    rt().block_on(async {
        let (_dir, app) = app(None);
        let v1 = hex::encode([3u8; 20]);
        let (status, _, page) = get(&app, &format!("/torrent/{v1}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let magnet = format!(
            "magnet:?xt=urn:btih:{v1}&#38;xt=urn:btmh:1220{}&#38;dn=Holiday%20Photos&#38;xl=3000",
            "ee".repeat(32)
        );
        assert!(page.contains(&magnet), "{page}");
        assert!(
            page.contains("beach/ <span class=\"size\">1000 B</span>"),
            "{page}"
        );
        assert!(page.contains("b&#60;i&#62;.jpg"), "{page}");
        assert!(page.contains("192.0.2.7:6881"), "{page}");
        assert!(page.contains("<td id=\"peer-count\">1</td>"), "{page}");
        assert!(page.contains("~12 seeds, peers unknown, "), "{page}");
        assert!(
            page.contains("(BEP 33 estimates, measured 1970-01-01 00:05:00 UTC)"),
            "measured at discovery: {page}"
        );
        let (_, _, list) = get(&app, "/search?q=photos").await;
        assert!(
            list.contains("<span class=\"swarm\">~12 seeds, peers unknown, ")
                && list.contains(" d ago</span>"),
            "{list}"
        );
        let (status, _, _) = get(&app, &format!("/torrent/{}", "ab".repeat(20))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = get(&app, "/torrent/nothex").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    });
}

#[test]
fn search_sorts_and_pages() {
    rt().block_on(async {
        let (_dir, app) = app(None);
        let (status, _, page) = get(&app, "/search?q=ubuntu&sort=size").await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("ubuntu server iso"), "{page}");
        assert_eq!(
            get(&app, "/search?q=x&sort=nope").await.0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            get(&app, "/search?q=x&page=100000").await.0,
            StatusCode::BAD_REQUEST
        );
        let (status, _, page) = get(&app, "/search").await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("Type a word"), "{page}");
    });
}

#[test]
fn api_answers_json_with_limits() {
    rt().block_on(async {
        let (_dir, app) = app(None);
        let (status, _, body) = get(&app, "/api/v1/search?q=photos&limit=5").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["results"][0]["name"], "Holiday Photos");
        assert_eq!(v["results"][0]["infohash_v2"], "ee".repeat(32));
        assert_eq!(v["results"][0]["seeds_estimate"], 12);
        assert_eq!(v["results"][0]["estimated_at"], 300);
        assert!(v["results"][0]["magnet"]
            .as_str()
            .unwrap()
            .starts_with("magnet:?xt=urn:btih:"));
        assert_eq!(v["next_offset"], Value::Null);
        for bad in [
            "/api/v1/search?q=x&limit=1000",
            "/api/v1/search?q=x&limit=0",
            "/api/v1/search?q=x&offset=20000",
            "/api/v1/search",
            "/api/v1/torrents/xyz",
        ] {
            let (status, _, body) = get(&app, bad).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
            assert!(serde_json::from_str::<Value>(&body).unwrap()["error"].is_string());
        }
        let (status, _, body) = get(&app, &format!("/api/v1/torrents/{}", "03".repeat(20))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let t: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(t["files"].as_array().unwrap().len(), 2);
        assert_eq!(t["sightings"]["total"], 1);
        assert_eq!(t["peers"][0], "192.0.2.7:6881");
        assert_eq!(
            (t["seeds_estimate"].clone(), t["estimated_at"].clone()),
            (12.into(), 300.into())
        );
        let (status, _, _) = get(&app, &format!("/api/v1/torrents/{}", "0f".repeat(20))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, body) = get(&app, "/api/v1/stats").await;
        assert_eq!(status, StatusCode::OK);
        let s: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(s["torrents"], 3);
        assert_eq!(s["report"]["totals"][0], serde_json::json!(["torrents", 3]));
    });
}

#[test]
fn stats_page_has_a_summary_and_charts() {
    rt().block_on(async {
        let (_dir, app) = app(None);
        let (status, _, page) = get(&app, "/stats").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(
            page.contains(
                "<tr data-key=\"torrents\"><th>torrents</th><td data-value=\"3\">3</td></tr>"
            ),
            "{page}"
        );
        for id in [
            "discoveries",
            "outcomes",
            "sizes",
            "versions",
            "categories",
            "clients",
            "intervals",
        ] {
            assert!(
                page.contains(&format!("id=\"chart-{id}\"")),
                "no chart {id}"
            );
        }
        assert!(page.matches("<svg").count() >= 6);
    });
}

#[test]
fn auth_guards_everything() {
    rt().block_on(async {
        let (_dir, app) = app(Some(Credentials::parse("me:pw").unwrap()));
        for uri in ["/", "/api/v1/stats", "/static/style.css", "/nowhere"] {
            let (status, headers, _) = get(&app, uri).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
            assert!(headers.contains_key(header::WWW_AUTHENTICATE));
        }
        let wrong = get_with(&app, "/", Some("Basic bWU6cHg=")).await;
        assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
        let ok = get_with(&app, "/", Some("Basic bWU6cHc=")).await;
        assert_eq!(ok.0, StatusCode::OK, "{}", ok.2);
    });
}

/// `/api/v1/stats` comes from the cache `/stats` uses: a torrent written after the first
/// call shows in neither until the cache expires (before, the API counted it at once with
/// scans of its own on every call).
#[test]
fn api_stats_come_from_the_stats_cache() {
    rt().block_on(async {
        let (dir, app) = app(None);
        let (_, _, body) = get(&app, "/api/v1/stats").await;
        let s: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(s["torrents"], 3, "{body}");
        let mut store = DbUrl::Sqlite(dir.path().join("test.sqlite"))
            .open()
            .unwrap();
        let batch = Batch {
            torrents: vec![fixtures::torrent(4, b"written later", 400)],
            ..Batch::default()
        };
        store.write("t", &batch).unwrap();
        drop(store);
        let (status, _, body) = get(&app, "/api/v1/stats").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let s: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(s["torrents"], 3, "{body}");
        assert_eq!(s["report"]["totals"][0], serde_json::json!(["torrents", 3]));
        // Search reads the index itself: the torrent is there.
        let (_, _, body) = get(&app, "/api/v1/search?q=later").await;
        assert!(body.contains("written later"), "{body}");
    });
}

type Signal = Arc<tokio::sync::Notify>;

/// A dummy route, under the limits, that says when a request has come in and waits until
/// told to answer.
fn slow_app(timeout: std::time::Duration, max: usize) -> (axum::Router, Signal, Signal) {
    let (go, entered) = (Signal::default(), Signal::default());
    let (wait, enter) = (Arc::clone(&go), Arc::clone(&entered));
    let app = axum::Router::new().route(
        "/api/v1/slow",
        axum::routing::get(move || {
            let (wait, enter) = (Arc::clone(&wait), Arc::clone(&enter));
            async move {
                enter.notify_one();
                wait.notified().await;
                "done"
            }
        }),
    );
    (super::limit(app, timeout, max), go, entered)
}

/// Beyond the cap of requests at once, a request is answered 503 at once; a slot is free
/// again once a request ends.
#[test]
fn requests_beyond_the_cap_are_refused_at_once() {
    rt().block_on(async {
        let (app, go, entered) = slow_app(std::time::Duration::from_secs(600), 1);
        let first = tokio::spawn({
            let app = app.clone();
            async move { get(&app, "/api/v1/slow").await }
        });
        // The first request holds the only slot.
        entered.notified().await;
        let (status, headers, body) = tokio::select! {
            r = get(&app, "/api/v1/slow") => r,
            () = entered.notified() => panic!("a second request was let in"),
        };
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(headers[header::RETRY_AFTER], "1");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], "too many requests at once; try again");
        go.notify_one();
        let (status, _, body) = first.await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "done"));
        go.notify_one();
        assert_eq!(get(&app, "/api/v1/slow").await.0, StatusCode::OK);
    });
}

/// A request that takes longer than the time limit is answered 503.
#[test]
fn a_slow_request_is_answered_503() {
    rt().block_on(async {
        let (app, _go, _entered) = slow_app(std::time::Duration::from_millis(50), 8);
        let (status, _, body) = get(&app, "/api/v1/slow").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(body.contains("took too long"), "{body}");
    });
}

/// Search pages and the API filter by category; rows and torrent pages show it.
#[test]
fn categories_filter_search_and_show_on_pages() {
    rt().block_on(async {
        let (_dir, app) = app_over(vec![
            fixtures::torrent(1, b"Silent.River.S01E02.720p.WEB.x264-GRP.mkv", 100),
            fixtures::torrent(2, b"Silent.River.2019.1080p.BluRay.x264-GRP.mkv", 200),
            fixtures::torrent(3, b"Silent River.epub", 300),
        ]);

        let (status, _, page) = get(&app, "/search?q=silent&category=tv").await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("Silent.River.S01E02"), "{page}");
        assert!(
            !page.contains("BluRay") && !page.contains(".epub"),
            "{page}"
        );
        assert!(
            page.contains("<span class=\"category\">tv</span>"),
            "{page}"
        );
        // Facets keep the words and the sort.
        assert!(
            page.contains("href=\"/search?q=silent&#38;category=movie&#38;sort=relevance\""),
            "{page}"
        );
        // A category alone lists its newest.
        let (_, _, page) = get(&app, "/search?category=ebook").await;
        assert!(
            page.contains("Silent River.epub") && !page.contains("BluRay"),
            "{page}"
        );
        // Every category word, and `all`.
        let (_, _, page) = get(&app, "/search?q=silent&category=all").await;
        assert_eq!(page.matches("<a class=\"name\"").count(), 3, "{page}");
        // Each row has its magnet link.
        assert_eq!(
            page.matches("<a class=\"magnet\" href=\"magnet:?xt=urn:btih:")
                .count(),
            3,
            "{page}"
        );
        let (status, _, page) = get(&app, "/search?q=silent&category=films").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(page.contains("unknown category"), "{page}");

        let (status, _, body) = get(&app, "/api/v1/search?category=movie").await;
        assert_eq!(status, StatusCode::OK);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["category"], "movie");
        let results = v["results"].as_array().unwrap();
        assert_eq!(results.len(), 1, "{v}");
        assert_eq!(results[0]["release"]["year"], 2019);
        assert_eq!(results[0]["release"]["resolution"], "1080p");
        let (status, _, _) = get(&app, "/api/v1/search?q=x&category=nope").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // An infohash or a magnet link as the query: the page of that torrent, or alone in
        // the API's results.
        let key = hex::encode([1u8; 20]);
        let (status, headers, _) = get(&app, &format!("/search?q={key}")).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(headers["location"], format!("/torrent/{key}").as_str());
        let magnet = format!("magnet%3A%3Fxt%3Durn%3Abtih%3A{key}%26dn%3Dx");
        let (status, _, body) = get(&app, &format!("/api/v1/search?q={magnet}")).await;
        assert_eq!(status, StatusCode::OK);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["results"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(v["results"][0]["infohash"], key.as_str());
        let (status, _, _) = get(&app, &format!("/search?q={}", "09".repeat(20))).await;
        assert_eq!(status, StatusCode::OK, "not stored: a word search");

        let (_, _, page) = get(&app, &format!("/torrent/{key}")).await;
        assert!(page.contains("<td id=\"category\">tv</td>"), "{page}");
        assert!(
            page.contains("<td id=\"release\">Silent River · S01E02 · 720p · x264 · GRP</td>"),
            "{page}"
        );
    });
}

/// Supervisors' probes answer without credentials; readyz says when the index is gone.
#[test]
fn probes_answer_without_credentials() {
    rt().block_on(async {
        let creds = Credentials::parse("me:secret").unwrap();
        let (dir, app) = app(Some(creds));
        assert_eq!(get(&app, "/").await.0, StatusCode::UNAUTHORIZED);
        let (status, _, body) = get(&app, "/healthz").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
        let (status, _, body) = get(&app, "/readyz").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ready\n"));
        // Over an index that cannot be opened: not ready, still healthy.
        let url = DbUrl::Sqlite(dir.path().join("missing.sqlite"));
        let gone = router(Arc::new(AppState::new(url, &WebConfig::default())), None);
        let (status, _, body) = get(&gone, "/readyz").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "index unavailable\n")
        );
        assert_eq!(get(&gone, "/healthz").await.0, StatusCode::OK);
    });
}
