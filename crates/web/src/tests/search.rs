//! The search language through the router: phrases, exclusions and fields on the search
//! page and in the API, the file that explains a hit, counts per category, sort by seeders.

use axum::http::StatusCode;
use estudely_peer_wire::FileEntry;
use estudely_store::sqlite::fixtures;
use estudely_store::Category;
use serde_json::Value;

use super::{app_over, get, rt};

/// The query language on the search page and in the API: phrases, exclusions, fields; the
/// file that explains a hit; counts per category; sort by seeders.
#[test]
fn search_syntax_matched_files_counts_and_seeders() {
    rt().block_on(async {
        let mut torrents = vec![
            fixtures::torrent(1, b"Silent River S01E02", 100),
            fixtures::torrent(2, b"Silent River 2019 BluRay", 200),
            fixtures::torrent(3, b"Pack", 300),
            fixtures::torrent(4, b"Silent Hill", 400),
        ];
        torrents[2].files = vec![
            FileEntry {
                path: vec![b"readme.txt".to_vec()],
                length: 1,
            },
            FileEntry {
                path: vec![b"docs".to_vec(), b"silent river notes.txt".to_vec()],
                length: 1,
            },
        ];
        torrents[2].file_count = 2;
        let cats = [
            Category::Tv,
            Category::Movie,
            Category::Ebook,
            Category::Game,
        ];
        for ((t, c), seeds) in torrents
            .iter_mut()
            .zip(cats)
            .zip([Some(5), Some(50), None, Some(9)])
        {
            t.category = Some(c);
            t.seeds_estimate = seeds;
        }
        let (_dir, app) = app_over(torrents);
        let order = |page: &str, names: &[&str]| -> Vec<usize> {
            names
                .iter()
                .filter_map(|n| page.find(&format!("\">{n}</a>")))
                .collect()
        };

        let (status, _, page) =
            get(&app, "/search?q=%22silent+river%22+-bluray&sort=discovered").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page.matches("<a class=\"name\"").count(), 2, "{page}");
        let at = order(&page, &["Pack", "Silent River S01E02"]);
        assert!(at.len() == 2 && at[0] < at[1], "{page}");
        assert!(
            page.contains(
                "<span class=\"matched\">file: <code>docs/silent river notes.txt</code></span>"
            ),
            "{page}"
        );
        assert_eq!(page.matches("class=\"matched\"").count(), 1, "{page}");
        assert!(page.contains("id=\"syntax\""), "{page}");

        // Counts beside the category links, for the query in every category.
        let (_, _, page) = get(&app, "/search?q=silent&category=tv").await;
        for (c, n) in [("tv", 1), ("movie", 1), ("ebook", 1), ("game", 1)] {
            assert!(
                page.contains(&format!("{c}</a> <span class=\"count\">{n}</span>"))
                    || page.contains(&format!(
                        "<strong>{c}</strong> <span class=\"count\">{n}</span>"
                    )),
                "{c}: {page}"
            );
        }
        assert!(!page.contains("music</a> <span"), "{page}");

        // By seeders: most first, unknown last.
        let (_, _, page) = get(&app, "/search?q=silent&sort=seeders").await;
        let names = [
            "Silent River 2019 BluRay",
            "Silent Hill",
            "Silent River S01E02",
            "Pack",
        ];
        let at = order(&page, &names);
        assert_eq!(at.len(), 4, "{page}");
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{page}");
        assert!(page.contains("<strong>seeders</strong>"), "{page}");

        // Fields only: newest first with the filters.
        let (_, _, page) = get(&app, "/search?q=category%3Atv+files%3A1").await;
        assert_eq!(page.matches("<a class=\"name\"").count(), 1, "{page}");
        assert!(page.contains("Silent River S01E02"), "{page}");

        let (status, _, page) = get(&app, "/search?q=silent+size%3Aabc").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(page.contains("size: expects a size like"), "{page}");

        let (status, _, body) = get(
            &app,
            "/api/v1/search?q=%22silent+river%22+-bluray&sort=seeders",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["sort"], "seeders");
        let got: Vec<(&str, &Value)> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["name"].as_str().unwrap(), &r["matched_file"]))
            .collect();
        assert_eq!(
            got,
            [
                ("Silent River S01E02", &Value::Null),
                ("Pack", &Value::from("docs/silent river notes.txt"))
            ]
        );
        assert_eq!(
            v["category_counts"],
            serde_json::json!({"counts": {"tv": 1, "ebook": 1}, "capped": false})
        );
        let (_, _, body) = get(&app, "/api/v1/search?q=silent&offset=1").await;
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["category_counts"], Value::Null);
        assert_eq!(v["results"].as_array().unwrap().len(), 3);
        // A category field and the parameter: different ones find nothing.
        let (_, _, body) = get(&app, "/api/v1/search?q=silent+category%3Atv&category=movie").await;
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["results"], serde_json::json!([]));
        let (status, _, body) = get(&app, "/api/v1/search?q=size%3Aabc").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["error"],
            r#"size: expects a size like >1GB, <700MB or 1GB..4GB, got "abc""#
        );
    });
}
