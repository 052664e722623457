//! The Torznab API over a small classified index: capabilities, categories and attributes,
//! season and episode matching, paging and errors; every answer parsed as XML.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use estudely_peer_wire::FileEntry;
use estudely_store::sqlite::fixtures;
use estudely_store::{Batch, DbUrl, Store as _, Torrent};
use tower::ServiceExt as _;

use crate::tests::rt;
use crate::{router, AppState, WebConfig};

/// A torrent named `name` with one file of `bytes`, classified, found at `at`.
fn named(key: u8, name: &str, file: &str, bytes: u64, at: i64) -> Torrent {
    let mut t = fixtures::torrent(key, name.as_bytes(), at);
    t.files = vec![FileEntry {
        path: vec![file.as_bytes().to_vec()],
        length: bytes,
    }];
    t.total_bytes = bytes;
    t.classify(&estudely_store::Classifier::default());
    t
}

fn app() -> (tempfile::TempDir, axum::Router) {
    let (dir, mut store) = fixtures::open();
    let mut pack = named(
        4,
        "Silent.River.S02.1080p.WEB.x264-GRP",
        "Silent.River.S02E01.mkv",
        9 << 30,
        400,
    );
    pack.files.push(FileEntry {
        path: vec![b"Silent.River.S02E02.mkv".to_vec()],
        length: 1 << 30,
    });
    pack.file_count = 2;
    pack.total_bytes = 10 << 30;
    pack.seeds_estimate = Some(12);
    pack.peers_estimate = Some(3);
    let torrents = vec![
        named(
            1,
            "Silent.River.S02E05.720p.WEB.x264-GRP",
            "Silent.River.S02E05.720p.WEB.x264-GRP.mkv",
            700 << 20,
            100,
        ),
        named(
            2,
            "Silent.River.S01E05.720p.WEB.x264-GRP",
            "Silent.River.S01E05.720p.WEB.x264-GRP.mkv",
            700 << 20,
            200,
        ),
        named(
            3,
            "Silent.River.S02E04-E06.2160p.WEB.x265-GRP",
            "Silent.River.S02E04-E06.mkv",
            5 << 30,
            300,
        ),
        pack,
        named(
            5,
            "Silent.River.2019.1080p.BluRay.x264-GRP",
            "Silent.River.2019.mkv",
            8 << 30,
            500,
        ),
        named(
            6,
            "Silent.River.2021.2160p.BluRay.x265-GRP",
            "Silent.River.2021.mkv",
            20 << 30,
            600,
        ),
        named(
            7,
            "Author - Silent River (epub)",
            "Silent River.epub",
            2 << 20,
            700,
        ),
        named(
            8,
            "Silent River <b>&amp;</b> \u{1b}[31m",
            "x.mp3",
            50 << 20,
            800,
        ),
    ];
    store
        .write(
            "t",
            &Batch {
                torrents,
                ..Batch::default()
            },
        )
        .unwrap();
    let url = DbUrl::Sqlite(dir.path().join("test.sqlite"));
    (
        dir,
        router(Arc::new(AppState::new(url, &WebConfig::default())), None),
    )
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, String) {
    let req = Request::get(uri)
        .header("host", "idx.example:8080")
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let ct = res.headers().get("content-type").cloned();
    let body = to_bytes(res.into_body(), 1 << 24).await.unwrap();
    let body = String::from_utf8(body.to_vec()).unwrap();
    if uri.starts_with("/torznab") && status != StatusCode::UNAUTHORIZED {
        assert_eq!(ct.unwrap(), "application/xml; charset=utf-8", "{uri}");
    }
    (status, body)
}

/// The items of a feed: (title, infohash attr, category attrs, every attr).
fn items(body: &str) -> Vec<(String, Vec<(String, String)>)> {
    let doc = roxmltree::Document::parse(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let rss = doc.root_element();
    assert_eq!(rss.tag_name().name(), "rss");
    assert_eq!(rss.attribute("version"), Some("2.0"));
    let channel = rss.children().find(|n| n.has_tag_name("channel")).unwrap();
    channel
        .children()
        .filter(|n| n.has_tag_name("item"))
        .map(|item| {
            let child = |name: &str| {
                item.children()
                    .find(|n| n.has_tag_name(name))
                    .unwrap_or_else(|| panic!("no <{name}> in an item of {body}"))
            };
            for required in [
                "title", "guid", "comments", "pubDate", "size", "link", "category",
            ] {
                child(required);
            }
            let enclosure = child("enclosure");
            assert_eq!(
                enclosure.attribute("type"),
                Some("application/x-bittorrent;x-scheme-handler/magnet")
            );
            assert!(enclosure
                .attribute("url")
                .unwrap()
                .starts_with("magnet:?xt=urn:btih:"));
            let attrs = item
                .children()
                .filter(|n| n.tag_name().name() == "attr")
                .map(|n| {
                    assert_eq!(
                        n.tag_name().namespace(),
                        Some("http://torznab.com/schemas/2015/feed")
                    );
                    (
                        n.attribute("name").unwrap().to_owned(),
                        n.attribute("value").unwrap().to_owned(),
                    )
                })
                .collect();
            (child("title").text().unwrap_or("").to_owned(), attrs)
        })
        .collect()
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    attrs
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn titles(body: &str) -> Vec<String> {
    items(body).into_iter().map(|(t, _)| t).collect()
}

#[test]
fn caps_lists_the_searches_limits_and_categories() {
    rt().block_on(async {
        let (_dir, app) = app();
        let (status, body) = get(&app, "/torznab/api?t=caps").await;
        assert_eq!(status, StatusCode::OK);
        let doc = roxmltree::Document::parse(&body).unwrap();
        let caps = doc.root_element();
        assert_eq!(caps.tag_name().name(), "caps");
        let limits = caps.children().find(|n| n.has_tag_name("limits")).unwrap();
        assert_eq!(
            (limits.attribute("default"), limits.attribute("max")),
            (Some("50"), Some("100"))
        );
        let searching = caps
            .children()
            .find(|n| n.has_tag_name("searching"))
            .unwrap();
        let modes: Vec<(&str, &str)> = searching
            .children()
            .filter(|n| n.is_element())
            .map(|n| (n.tag_name().name(), n.attribute("supportedParams").unwrap()))
            .collect();
        assert!(modes.contains(&("tv-search", "q,season,ep")), "{modes:?}");
        assert!(modes.contains(&("movie-search", "q,year")), "{modes:?}");
        for m in ["search", "music-search", "book-search"] {
            assert!(modes.iter().any(|(n, _)| *n == m), "{m}");
        }
        let ids: Vec<&str> = caps
            .descendants()
            .filter(|n| n.has_tag_name("category") || n.has_tag_name("subcat"))
            .map(|n| n.attribute("id").unwrap())
            .collect();
        for id in [
            "2000", "2040", "2045", "3000", "3030", "4000", "4050", "5000", "5040", "6000", "7000",
            "7030", "8000",
        ] {
            assert!(ids.contains(&id), "{id} in {ids:?}");
        }
    });
}

#[test]
fn search_gives_items_with_categories_and_attributes() {
    rt().block_on(async {
        let (_dir, app) = app();
        let (_, body) = get(&app, "/torznab/api?t=search&q=silent+river").await;
        let all = items(&body);
        assert_eq!(all.len(), 8, "{body}");
        // Newest first.
        assert!(all[0].0.starts_with("Silent River <b>"), "{:?}", all[0].0);
        // Hostile text is text, and what XML forbids is gone.
        assert!(body.contains("Silent River &lt;b&gt;&amp;amp;&lt;/b&gt; \u{fffd}[31m"), "{body}");
        let (_, pack) = all.iter().find(|(t, _)| t.contains(".S02.1080p")).unwrap();
        assert_eq!(attr(pack, "category"), ["5000", "5040"]);
        assert_eq!(attr(pack, "season"), ["2"]);
        assert!(attr(pack, "episode").is_empty());
        assert_eq!(attr(pack, "seeders"), ["12"]);
        assert_eq!(attr(pack, "leechers"), ["3"]);
        assert_eq!(attr(pack, "peers"), ["15"]);
        assert_eq!(attr(pack, "files"), ["2"]);
        assert_eq!(attr(pack, "size"), [(10u64 << 30).to_string().as_str()]);
        assert_eq!(attr(pack, "infohash"), ["0404040404040404040404040404040404040404"]);
        assert!(attr(pack, "magneturl")[0].starts_with("magnet:?xt=urn:btih:0404"));
        assert_eq!(attr(pack, "resolution"), ["1080p"]);
        let (_, film) = all.iter().find(|(t, _)| t.contains("2021.2160p")).unwrap();
        assert_eq!(attr(film, "category"), ["2000", "2045"]);
        assert_eq!(attr(film, "year"), ["2021"]);
        assert!(attr(film, "seeders").is_empty(), "unknown swarm: no seeders attribute");
        assert!(body.contains("<comments>http://idx.example:8080/torrent/0606060606060606060606060606060606060606</comments>"));
        assert!(body.contains("<pubDate>Thu, 01 Jan 1970 00:10:00 +0000</pubDate>"), "{body}");
        // Categories: the TV ones, HD TV only, books.
        let (_, body) = get(&app, "/torznab/api?t=search&q=silent&cat=5000").await;
        assert_eq!(titles(&body).len(), 4, "{body}");
        let (_, body) = get(&app, "/torznab/api?t=search&q=silent&cat=5040").await;
        assert_eq!(titles(&body).len(), 3, "{body}");
        let (_, body) = get(&app, "/torznab/api?t=search&cat=7000,2045").await;
        let t = titles(&body);
        assert_eq!(t.len(), 2, "{body}");
        assert!(t.iter().any(|n| n.ends_with("(epub)")), "{t:?}");
        let (_, body) = get(&app, "/torznab/api?t=search&q=silent&cat=100123").await;
        assert!(titles(&body).is_empty(), "codes we do not serve select nothing");
    });
}

/// Torznab's `q` and the feed's are in the search language too; a field it cannot read is
/// Torznab error 201 naming it.
#[test]
fn queries_are_in_the_search_language() {
    rt().block_on(async {
        let (_dir, app) = app();
        let (_, body) = get(
            &app,
            "/torznab/api?t=search&q=silent+river+size%3A10GiB..12GiB",
        )
        .await;
        assert_eq!(
            titles(&body),
            ["Silent.River.S02.1080p.WEB.x264-GRP"],
            "{body}"
        );
        let (_, body) = get(
            &app,
            "/torznab/api?t=search&q=%22silent+river%22+-s02&cat=5000",
        )
        .await;
        assert_eq!(
            titles(&body),
            [
                "Silent.River.S02E04-E06.2160p.WEB.x265-GRP",
                "Silent.River.S01E05.720p.WEB.x264-GRP",
                "Silent.River.S02E05.720p.WEB.x264-GRP"
            ],
            "{body}"
        );
        let (status, body) = get(&app, "/torznab/api?t=search&q=silent+files%3Amany").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains("code=\"201\"") && body.contains("files: expects a file count"),
            "{body}"
        );
        let (_, body) = get(&app, "/feed?q=silent+files%3A2").await;
        assert_eq!(
            titles(&body),
            ["Silent.River.S02.1080p.WEB.x264-GRP"],
            "{body}"
        );
        let (_, body) = get(&app, "/feed?q=size%3Aabc").await;
        assert!(body.contains("code=\"201\""), "{body}");
    });
}

#[test]
fn tv_and_movie_searches_match_seasons_episodes_and_years() {
    rt().block_on(async {
        let (_dir, app) = app();
        let keys = |body: &str| -> Vec<String> {
            let mut k: Vec<String> = items(body)
                .iter()
                .map(|(_, a)| attr(a, "infohash")[0][..2].to_owned())
                .collect();
            k.sort();
            k
        };
        // A season: its episodes, its ranges and its pack, not another season's.
        let (_, body) = get(&app, "/torznab/api?t=tvsearch&q=silent+river&season=2").await;
        assert_eq!(keys(&body), ["01", "03", "04"], "{body}");
        // An episode: itself, the ranges holding it, and the season's pack.
        let (_, body) = get(&app, "/torznab/api?t=tvsearch&q=silent+river&season=2&ep=5").await;
        assert_eq!(keys(&body), ["01", "03", "04"], "{body}");
        let (_, body) = get(&app, "/torznab/api?t=tvsearch&q=silent+river&season=2&ep=9").await;
        assert_eq!(
            keys(&body),
            ["04"],
            "only the pack may hold episode 9: {body}"
        );
        let (_, body) = get(&app, "/torznab/api?t=tvsearch&q=silent+river&season=1&ep=5").await;
        assert_eq!(keys(&body), ["02"], "{body}");
        // Empty parameters are absent ones (clients send `season=`).
        let (_, body) = get(&app, "/torznab/api?t=tvsearch&q=silent&season=&ep=").await;
        assert_eq!(keys(&body), ["01", "02", "03", "04"], "{body}");
        let (_, body) = get(&app, "/torznab/api?t=movie&q=silent&year=2019").await;
        assert_eq!(keys(&body), ["05"], "{body}");
        let (_, body) = get(&app, "/torznab/api?t=movie&q=silent").await;
        assert_eq!(keys(&body), ["05", "06"], "{body}");
        let (_, body) = get(&app, "/torznab/api?t=book&q=silent").await;
        assert_eq!(keys(&body), ["07"], "{body}");
        let (_, body) = get(&app, "/torznab/api?t=music&q=silent").await;
        assert_eq!(keys(&body), ["08"], "{body}");
    });
}

#[test]
fn pages_and_errors() {
    rt().block_on(async {
        let (_dir, app) = app();
        let (_, body) = get(&app, "/torznab/api?t=search&q=silent&limit=3").await;
        assert_eq!(titles(&body).len(), 3);
        assert!(
            body.contains("<torznab:response offset=\"0\" total=\"4\"/>"),
            "more follow: {body}"
        );
        let (_, body) = get(&app, "/torznab/api?t=search&q=silent&limit=3&offset=6").await;
        assert_eq!(titles(&body).len(), 2);
        assert!(
            body.contains("<torznab:response offset=\"6\" total=\"8\"/>"),
            "{body}"
        );
        let (_, first) = get(&app, "/torznab/api?t=search&q=silent&limit=3").await;
        let (_, second) = get(&app, "/torznab/api?t=search&q=silent&limit=3&offset=3").await;
        let both: std::collections::HashSet<String> =
            titles(&first).into_iter().chain(titles(&second)).collect();
        assert_eq!(both.len(), 6, "pages do not overlap");
        for (uri, code) in [
            ("/torznab/api", "200"),
            ("/torznab/api?t=nzb", "202"),
            ("/torznab/api?t=search&limit=x", "201"),
            ("/torznab/api?t=search&cat=tv", "201"),
            ("/torznab/api?t=tvsearch&season=-1", "201"),
            ("/torznab/api?t=search&offset=999999", "201"),
        ] {
            let (status, body) = get(&app, uri).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            let doc = roxmltree::Document::parse(&body).unwrap();
            let e = doc.root_element();
            assert_eq!(e.tag_name().name(), "error", "{uri}: {body}");
            assert_eq!(e.attribute("code"), Some(code), "{uri}: {body}");
            assert!(!e.attribute("description").unwrap().is_empty());
        }
    });
}

const KEY: &str = "k3y-0123456789abcdef";

/// The same index behind `--auth me:secret` and one API key.
fn guarded_app() -> (tempfile::TempDir, axum::Router) {
    let (dir, _) = app();
    let url = DbUrl::Sqlite(dir.path().join("test.sqlite"));
    let creds = crate::Credentials::parse("me:secret").unwrap();
    let config = WebConfig {
        auth: Some(creds.clone()),
        api_keys: vec![crate::keys::ApiKey::parse(KEY).unwrap()],
        ..WebConfig::default()
    };
    (
        dir,
        router(Arc::new(AppState::new(url, &config)), Some(creds)),
    )
}

async fn get_from(
    app: &axum::Router,
    uri: &str,
    ip: &str,
    header: Option<(&str, &str)>,
) -> (StatusCode, String) {
    let mut req = Request::get(uri).header("host", "idx.example");
    if let Some((k, v)) = header {
        req = req.header(k, v);
    }
    let mut req = req.body(Body::empty()).unwrap();
    let addr: std::net::SocketAddr = format!("{ip}:40000").parse().unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(addr));
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = to_bytes(res.into_body(), 1 << 24).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[test]
fn api_keys_open_the_machine_routes_and_only_them() {
    rt().block_on(async {
        let (_dir, app) = guarded_app();
        let ip = "192.0.2.10";
        // Without a key: 401, in each route's language.
        let (status, body) = get_from(&app, "/torznab/api?t=caps", ip, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("<error code=\"100\""), "{body}");
        let (status, body) = get_from(&app, "/api/v1/stats", ip, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.starts_with("{\"error\""), "{body}");
        // With it: through, basic authentication or not.
        let (status, body) =
            get_from(&app, &format!("/torznab/api?t=caps&apikey={KEY}"), ip, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("<caps>"));
        let (status, _) = get_from(&app, "/api/v1/stats", ip, Some(("x-api-key", KEY))).await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = get_from(
            &app,
            &format!("/feed?q=silent&category=tv&apikey={KEY}"),
            ip,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(titles(&body).len(), 4, "{body}");
        // Pages keep basic authentication: a key does not open them.
        let (status, _) = get_from(&app, "/", ip, Some(("x-api-key", KEY))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let basic = "Basic bWU6c2VjcmV0";
        let (status, _) = get_from(&app, "/", ip, Some(("authorization", basic))).await;
        assert_eq!(status, StatusCode::OK);
    });
}

#[test]
fn failed_attempts_are_limited_per_address() {
    rt().block_on(async {
        let (_dir, app) = guarded_app();
        let bad = "/torznab/api?t=caps&apikey=wrong-wrong-wrong";
        for _ in 0..crate::keys::MAX_FAILURES {
            assert_eq!(
                get_from(&app, bad, "198.51.100.1", None).await.0,
                StatusCode::UNAUTHORIZED
            );
        }
        // Over the limit: refused, even with the right key, from that address only.
        let good = format!("/torznab/api?t=caps&apikey={KEY}");
        assert_eq!(
            get_from(&app, &good, "198.51.100.1", None).await.0,
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            get_from(&app, &good, "198.51.100.2", None).await.0,
            StatusCode::OK
        );
    });
}

#[test]
fn rss_lists_the_newest_of_a_category() {
    rt().block_on(async {
        let (_dir, app) = app();
        let (status, body) = get(&app, "/feed?q=silent&category=movie").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(titles(&body).len(), 2, "{body}");
        assert!(titles(&body)[0].contains("2021"), "newest first: {body}");
        let (_, body) = get(&app, "/feed?limit=3").await;
        assert_eq!(titles(&body).len(), 3, "{body}");
        let (_, body) = get(&app, "/feed?category=films").await;
        assert!(body.contains("<error code=\"201\""), "{body}");
    });
}
