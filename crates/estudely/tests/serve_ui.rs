//! `estudely serve` end to end, as a user's browser sees it: headless chromium loads the
//! pages (`--dump-dom`) and the tests read the DOM it built; the JSON API is read over
//! plain HTTP.
//!
//! The index: `estudely run` against an `estudely testnet` (its hostile names included),
//! then three torrents written through the `Store`: two with HTML in their names and paths
//! (the testnet's names hold CSV-hostile bytes, not markup), `<script>document.title=
//! 'pwned'</script>` (v1) and `<img src=x onerror=alert(1)>` (hybrid), and a v2-only one
//! (the testnet's are all v1). It is built once per test run (the first
//! test to need it builds it under a file lock; the others wait, then reuse it), and
//! `estudely export --format jsonl` and `estudely stats --format json` of it are the
//! expected values.
//!
//! Without chromium the browser tests say so and return, unless `ESTUDELY_REQUIRE_CHROMIUM`
//! is set (`scripts/test` sets it and installs chromium): then they fail.
//!
//! Loopback only: the testnets on 127.0.110.x and 127.0.114.x (seeders on 127.0.111.x and
//! 127.0.115.x), the runs bind 127.0.112.x, the servers listen on 127.0.113.x; chromium
//! resolves no host name. Time limits only guard against a hang.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use estudely::store::{Batch, DbUrl, Source, Torrent};
use estudely_krpc::InfoHash;
use estudely_peer_wire::{FileEntry, Version};
use serde_json::Value;

#[path = "common/chromium.rs"]
mod chromium;
mod common;
#[path = "common/web.rs"]
mod web;

use chromium::http::{self};
use chromium::{all, by_id, dump_dom};
use common::run_bounded;
use web::Web;

const HANG: Duration = Duration::from_secs(120);

/// The name that would retitle the page if it ran.
const SCRIPT_NAME: &str = "<script>document.title='pwned'</script>";
/// The name that would add an image (and run its handler) if it were markup.
const IMG_NAME: &str = "<img src=x onerror=alert(1)>";
/// Keys of the two torrents with markup in their names.
const SCRIPT_KEY: [u8; 20] = [0x5c; 20];
const IMG_KEY: [u8; 20] = [0x1a; 20];
/// The `<img>` torrent is a hybrid: its v2 infohash.
const IMG_V2: [u8; 32] = [0x2b; 32];

/// A v2-only torrent's infohash (its key is the first 20 bytes) and name.
const V2_ONLY: [u8; 32] = [0x3c; 32];
const V2_NAME: &str = "estudely-v2-only.bin";

/// Markup that must never appear as an element in a page built from the index.
const INJECTED: [&str; 5] = ["<script", "<img", "<iframe", "<b>", "<svg onload"];

/// The index every test reads, and what the command line says of it.
struct Fixture {
    db: PathBuf,
    /// `estudely export --format jsonl`, one object per torrent.
    export: Vec<Value>,
    /// `estudely stats --format json`.
    stats: Value,
}

impl Fixture {
    fn by_name_prefix(&self, prefix: &str) -> Vec<&Value> {
        self.export
            .iter()
            .filter(|t| t["name"].as_str().unwrap().starts_with(prefix))
            .collect()
    }

    fn by_key(&self, key: &str) -> &Value {
        self.export
            .iter()
            .find(|t| t["infohash"] == key)
            .unwrap_or_else(|| panic!("{key} not exported"))
    }

    /// The served multi-file torrent with the most files (a plain name: `estudely-dataset-N`).
    fn known(&self) -> &Value {
        self.by_name_prefix("estudely-dataset-")
            .into_iter()
            .max_by_key(|t| t["file_count"].as_u64())
            .expect("a dataset torrent was crawled")
    }
}

/// The shared index: built by the first test of this run that asks (the others wait on a
/// file lock), reused by the rest. A run is `NEXTEST_RUN_ID` under nextest, else this
/// process (`cargo test` runs every test in one).
fn fixture() -> Fixture {
    let run = std::env::var("NEXTEST_RUN_ID").unwrap_or_else(|_| std::process::id().to_string());
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve_ui");
    std::fs::create_dir_all(&root).unwrap();
    let dir = root.join(&run);
    let lock = File::create(root.join(format!("{run}.lock"))).unwrap();
    lock.lock().unwrap();
    if !dir.join("ready").exists() {
        // A test that took the lock before this one and started building failed: its
        // failure says why; don't build (and fail) once per test.
        assert!(
            !dir.join("building").exists(),
            "building the shared index failed in another test of this run: see its output"
        );
        remove_old(&root);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("building"), b"").unwrap();
        build(&dir);
        std::fs::write(dir.join("ready"), b"").unwrap();
    }
    drop(lock);
    let export = std::fs::read_to_string(dir.join("export.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let stats = serde_json::from_slice(&std::fs::read(dir.join("stats.json")).unwrap()).unwrap();
    Fixture {
        db: dir.join("index.sqlite"),
        export,
        stats,
    }
}

/// Remove the indexes of earlier runs (a day old or more).
fn remove_old(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(86_400));
        if old {
            let _ = std::fs::remove_dir_all(e.path());
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn build(dir: &Path) {
    let net = "--nodes 20 --torrents 16 --no-metadata 2 --no-peers 2 --interval 10 \
               --seconds 600 --base-ip 127.0.110";
    let words: Vec<&str> = net.split_whitespace().collect();
    let (testnet, boot, _manifest) = common::testnet(&words, &dir.join("testnet.json"));
    let db = dir.join("index.sqlite");
    let db_s = db.to_str().unwrap();
    let done = run_ok(&[
        "run",
        "--db",
        db_s,
        "--bootstrap",
        &boot,
        "--bind",
        "127.0.112.1:0",
        "--rate",
        "200",
        "--overall-timeout",
        "25",
    ]);
    eprintln!("fixture run:\n{}", done.stderr);
    drop(testnet);

    // Two torrents with markup in their names and paths, newer than everything crawled.
    let now = estudely::web::unix_now();
    let mut store = DbUrl::Sqlite(db.clone()).open().unwrap();
    let file = |path: &[&str], length: u64| FileEntry {
        path: path.iter().map(|c| c.as_bytes().to_vec()).collect(),
        length,
    };
    let script_files = vec![
        file(&["<iframe src=x>", "<svg onload=alert(2)>.txt"], 1_000),
        file(&["<b>bold</b> & \"quoted\".txt"], 2_000),
    ];
    let img_files = vec![file(&[IMG_NAME], 3_000_000)];
    let classifier = estudely::store::Classifier::default();
    let torrent = |key, v2, name: &str, files: Vec<FileEntry>, discovered| {
        let mut t = Torrent {
            info_hash: InfoHash(key),
            info_hash_v2: v2,
            name: name.as_bytes().to_vec(),
            total_bytes: files.iter().map(|f| f.length).sum(),
            piece_length: 16_384,
            file_count: files.len() as u64,
            private: false,
            version: if v2.is_some() {
                Version::Hybrid
            } else {
                Version::V1
            },
            files,
            discovered,
            source: Source::Sample,
            seeds_estimate: None,
            peers_estimate: None,
            category: None,
            release: None,
        };
        t.classify(&classifier);
        t
    };
    let batch = Batch {
        torrents: vec![
            torrent(IMG_KEY, Some(IMG_V2), IMG_NAME, img_files, now),
            torrent(SCRIPT_KEY, None, SCRIPT_NAME, script_files, now + 1),
            Torrent {
                version: Version::V2,
                ..torrent(
                    V2_ONLY[..20].try_into().unwrap(),
                    Some(V2_ONLY),
                    V2_NAME,
                    vec![file(&[V2_NAME], 4096)],
                    now - 1,
                )
            },
        ],
        ..Batch::default()
    };
    store.write("serve_ui", &batch).unwrap();
    drop(store);

    let export = run_ok(&["export", "--db", db_s, "--format", "jsonl"]);
    std::fs::write(dir.join("export.jsonl"), &export.stdout).unwrap();
    let stats = run_ok(&["stats", "--db", db_s, "--format", "json"]);
    std::fs::write(dir.join("stats.json"), &stats.stdout).unwrap();
}

fn run_ok(args: &[&str]) -> common::Finished {
    let done = run_bounded(args, HANG);
    assert!(done.status.success(), "{args:?}: {}", done.stderr);
    done
}

impl Web {
    /// `estudely serve --db DB --listen IP:0 EXTRA...`
    fn serve(db: &Path, ip: &str, extra: &[&str]) -> Web {
        let listen = format!("{ip}:0");
        let mut args = vec!["serve", "--db", db.to_str().unwrap(), "--listen", &listen];
        args.extend_from_slice(extra);
        Web::start(&args)
    }

    /// The page's DOM after chromium loaded it, checked for injected markup.
    fn dom(&self, path: &str) -> String {
        self.ok(path);
        let dom = dump_dom(&self.url(path));
        assert_clean(&dom, path);
        dom
    }
}

/// No element that a name or path could have injected, and the title untouched.
fn assert_clean(dom: &str, what: &str) {
    let lower = dom.to_ascii_lowercase();
    for bad in INJECTED {
        assert!(!lower.contains(bad), "{what}: {bad} in the DOM:\n{dom}");
    }
    let title = chromium::title(dom);
    // `document.title='pwned'` would make it exactly that.
    assert!(
        title.ends_with(" · estudely") || title.starts_with("Estudely report: "),
        "{what}: a script ran? title {title:?}"
    );
    assert_ne!(title, "pwned", "{what}: a script ran");
}

/// The torrent links of a list page: (key, name) in order.
/// The inside of the category links of a search page.
fn facets_of(dom: &str) -> String {
    by_id(dom, "categories").expect("category links").inner
}

fn listed(dom: &str) -> Vec<(String, String)> {
    all(dom, "<a class=\"name\"")
        .iter()
        .map(|a| {
            let href = a.attr("href").expect("a link");
            let key = href.strip_prefix("/torrent/").expect("a torrent link");
            (key.to_owned(), a.text())
        })
        .collect()
}

/// `(data-key, data-value)` of the rows of `<table id="summary">`.
fn summary(dom: &str) -> BTreeMap<String, u64> {
    let table = by_id(dom, "summary").expect("a summary table");
    all(&table.inner, "<tr data-key=")
        .iter()
        .map(|tr| {
            let td = all(&tr.inner, "<td data-value=")
                .into_iter()
                .next()
                .expect("a value cell");
            (
                tr.attr("data-key").unwrap(),
                td.attr("data-value").unwrap().parse().expect("a number"),
            )
        })
        .collect()
}

/// The summary holds the torrents and files, and every figure it shares with `stats
/// --format json` is the same.
fn assert_summary_matches(dom: &str, stats: &Value, what: &str) {
    let rows = summary(dom);
    for key in ["torrents", "files"] {
        assert!(rows.contains_key(key), "{what}: no {key} row: {rows:?}");
    }
    let mut compared = 0;
    for (k, v) in &rows {
        if let Some(want) = stats.get(k).and_then(Value::as_u64) {
            assert_eq!(*v, want, "{what}: summary {k}");
            compared += 1;
        }
    }
    assert!(compared >= 2, "{what}: {rows:?} vs {stats}");
}

/// Every chart is a figure with an inline SVG that draws something; the ids of the charts.
fn assert_charts(dom: &str, what: &str) -> BTreeSet<String> {
    let figures = all(dom, "<figure class=\"chart\"");
    assert!(!figures.is_empty(), "{what}: no charts:\n{dom}");
    let mut ids = BTreeSet::new();
    for f in &figures {
        let id = f.attr("id").expect("a chart id");
        let svg = all(&f.inner, "<svg")
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("{what}: {id} has no <svg>"));
        assert!(
            svg.inner.contains('<'),
            "{what}: {id}'s SVG is empty: {}",
            svg.start
        );
        ids.insert(id.strip_prefix("chart-").expect("chart-ID").to_owned());
    }
    for want in [
        "discoveries",
        "outcomes",
        "sizes",
        "versions",
        "categories",
        "clients",
        "intervals",
    ] {
        assert!(ids.contains(want), "{what}: no {want} chart in {ids:?}");
    }
    eprintln!("{what}: charts {ids:?}");
    ids
}

#[test]
fn search_finds_a_name_and_its_page_shows_files_and_magnet() {
    let fx = fixture();
    if chromium::require("search_finds_a_name_and_its_page_shows_files_and_magnet").is_none() {
        return;
    }
    let web = Web::serve(&fx.db, "127.0.113.1", &[]);
    let known = fx.known();
    let (key, name) = (
        known["infohash"].as_str().unwrap(),
        known["name"].as_str().unwrap(),
    );

    // A word of its name finds it, with every other torrent holding that word.
    let dom = web.dom("/search?q=dataset");
    let found = listed(&dom);
    assert!(
        found.contains(&(key.to_owned(), name.to_owned())),
        "{name} not in {found:?}"
    );
    let want: BTreeSet<&str> = fx
        .by_name_prefix("estudely-dataset-")
        .iter()
        .map(|t| t["infohash"].as_str().unwrap())
        .collect();
    let got: BTreeSet<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(got, want, "every dataset torrent, nothing else");
    // Its whole name finds it alone (the words of it: `estudely`, `dataset`, `0NN`).
    let dom = web.dom(&format!("/search?q={name}"));
    assert_eq!(listed(&dom), [(key.to_owned(), name.to_owned())]);

    // The category links: `all` and each category; the one of the known torrent lists the
    // dataset torrents of that category (as export files them), each row saying so.
    let dom = web.dom("/search?q=dataset");
    let facets = by_id(&dom, "categories").expect("category links");
    assert_eq!(all(&facets.inner, "<a href=").len(), 10, "{}", facets.inner);
    let cat = known["category"].as_str().expect("a category in export");
    let dom = web.dom(&format!("/search?q=dataset&category={cat}"));
    let want: BTreeSet<&str> = fx
        .by_name_prefix("estudely-dataset-")
        .iter()
        .filter(|t| t["category"] == cat)
        .map(|t| t["infohash"].as_str().unwrap())
        .collect();
    let found = listed(&dom);
    let got: BTreeSet<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(got, want, "the dataset torrents filed under {cat}");
    let shown = all(&dom, "<span class=\"category\"");
    assert_eq!(shown.len(), want.len());
    assert!(shown.iter().all(|s| s.text() == cat), "{cat}");
    let current = all(&facets_of(&dom), "<strong");
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].text(), cat);
    // Beside it, its hit count: as many as listed.
    let count = format!(
        "<strong>{cat}</strong> <span class=\"count\">{}</span>",
        want.len()
    );
    assert!(
        facets_of(&dom).contains(&count),
        "{count} in {}",
        facets_of(&dom)
    );

    // Its page: name, infohash, magnet, files.
    let dom = web.dom(&format!("/torrent/{key}"));
    assert_eq!(by_id(&dom, "name").unwrap().text(), name);
    assert_eq!(chromium::title(&dom), format!("{name} · estudely"));
    assert_eq!(by_id(&dom, "infohash").unwrap().text(), key);
    assert!(by_id(&dom, "infohash-v2").is_none(), "a v1 torrent");
    let magnet = by_id(&dom, "magnet").unwrap().attr("href").unwrap();
    assert_eq!(
        magnet,
        format!(
            "magnet:?xt=urn:btih:{key}&dn={name}&xl={}",
            known["total_bytes"]
        )
    );
    let files = by_id(&dom, "files").expect("a file list");
    let items: Vec<String> = all(&files.inner, "<li class=\"file\"")
        .iter()
        .map(|li| li.text())
        .collect();
    let want_files = known["files"].as_array().unwrap();
    assert_eq!(items.len() as u64, known["file_count"].as_u64().unwrap());
    assert_eq!(items.len(), want_files.len());
    let dirs: Vec<String> = all(&files.inner, "<summary>")
        .iter()
        .map(|s| s.text())
        .collect();
    for f in want_files {
        let path = f["path"].as_str().unwrap();
        let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
        assert!(
            items.iter().any(|i| i.starts_with(&format!("{file} "))),
            "{file} not in {items:?}"
        );
        if !dir.is_empty() {
            assert!(
                dirs.iter().any(|d| d.starts_with(&format!("{dir}/ "))),
                "{dir}/ not in {dirs:?}"
            );
        }
    }
    let peers: u64 = by_id(&dom, "peer-count")
        .unwrap()
        .text()
        .trim()
        .parse()
        .expect("a count");
    assert!(peers >= 1, "it was found through a sighting");

    // The testnet's hostile names (control bytes, invalid UTF-8) get a page too.
    for t in fx.by_name_prefix("estudely-hostile-") {
        let key = t["infohash"].as_str().unwrap();
        let dom = web.dom(&format!("/torrent/{key}"));
        let shown = by_id(&dom, "name").unwrap().text();
        let prefix: String = t["name"].as_str().unwrap().chars().take(20).collect();
        assert!(shown.starts_with(&prefix), "{shown:?} vs {prefix:?}");
        assert_eq!(by_id(&dom, "infohash").unwrap().text(), key);
    }
}

#[test]
fn markup_in_names_and_paths_is_shown_as_text_and_runs_nothing() {
    let fx = fixture();
    if chromium::require("markup_in_names_and_paths_is_shown_as_text_and_runs_nothing").is_none() {
        return;
    }
    let web = Web::serve(&fx.db, "127.0.113.2", &[]);
    let script_key = hex::encode(SCRIPT_KEY);
    let img_key = hex::encode(IMG_KEY);

    // The torrent pages: the name as text in the heading and the title; the paths as text.
    let dom = web.dom(&format!("/torrent/{script_key}"));
    assert_eq!(by_id(&dom, "name").unwrap().text(), SCRIPT_NAME);
    assert_eq!(chromium::title(&dom), format!("{SCRIPT_NAME} · estudely"));
    assert!(
        dom.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"),
        "the name is escaped text:\n{dom}"
    );
    let files = by_id(&dom, "files").unwrap();
    let text = files.text();
    for part in [
        "<iframe src=x>/",
        "<svg onload=alert(2)>.txt",
        "<b>bold</b> & \"quoted\".txt",
    ] {
        assert!(text.contains(part), "{part} not in {text:?}");
    }
    let magnet = by_id(&dom, "magnet").unwrap().attr("href").unwrap();
    assert!(
        magnet.starts_with(&format!("magnet:?xt=urn:btih:{script_key}&dn=%3Cscript%3E")),
        "{magnet}"
    );

    // The hybrid: by its v1 key, its full v2 infohash and the truncated v2 key alike.
    let img_v2 = hex::encode(IMG_V2);
    for key in [img_key.clone(), img_v2.clone(), img_v2[..40].to_owned()] {
        let dom = web.dom(&format!("/torrent/{key}"));
        assert_eq!(
            by_id(&dom, "infohash").unwrap().text(),
            img_key,
            "/torrent/{key}"
        );
    }
    let dom = web.dom(&format!("/torrent/{img_key}"));
    assert_eq!(by_id(&dom, "name").unwrap().text(), IMG_NAME);
    assert_eq!(by_id(&dom, "infohash").unwrap().text(), img_key);
    assert_eq!(
        by_id(&dom, "infohash-v2").unwrap().text(),
        hex::encode(IMG_V2)
    );
    let magnet = by_id(&dom, "magnet").unwrap().attr("href").unwrap();
    assert!(
        magnet.starts_with(&format!(
            "magnet:?xt=urn:btih:{img_key}&xt=urn:btmh:1220{}&dn=",
            hex::encode(IMG_V2)
        )),
        "{magnet}"
    );

    // A v2-only torrent: addressed by its 64-hex infohash (or the 40-hex key it truncates
    // to), no v1 infohash, a btmh magnet only.
    let v2 = hex::encode(V2_ONLY);
    for key in [v2.clone(), v2[..40].to_owned()] {
        let dom = web.dom(&format!("/torrent/{key}"));
        assert_eq!(by_id(&dom, "name").unwrap().text(), V2_NAME);
        assert!(by_id(&dom, "infohash").is_none(), "no v1 infohash");
        assert_eq!(by_id(&dom, "infohash-v2").unwrap().text(), v2);
        let magnet = by_id(&dom, "magnet").unwrap().attr("href").unwrap();
        assert_eq!(
            magnet,
            format!("magnet:?xt=urn:btmh:1220{v2}&dn=estudely-v2-only.bin&xl=4096")
        );
    }

    // Search results and the lists show them as text.
    let dom = web.dom("/search?q=pwned");
    assert_eq!(listed(&dom), [(script_key.clone(), SCRIPT_NAME.to_owned())]);
    let dom = web.dom("/search?q=onerror");
    assert_eq!(listed(&dom), [(img_key.clone(), IMG_NAME.to_owned())]);
    for page in ["/", "/recent"] {
        let dom = web.dom(page);
        let rows = listed(&dom);
        for (k, n) in [(&script_key, SCRIPT_NAME), (&img_key, IMG_NAME)] {
            assert!(
                rows.contains(&(k.clone(), n.to_owned())),
                "{page}: {n} not in {rows:?}"
            );
        }
    }
    // The query itself, echoed in the heading and the search box.
    let dom = web.dom("/search?q=%3Cscript%3Edocument.title%3D'pwned'%3C%2Fscript%3E");
    let h1 = all(&dom, "<h1").into_iter().next().unwrap().text();
    assert!(h1.contains(SCRIPT_NAME), "{h1}");
    let input = all(&dom, "<input").into_iter().next().unwrap();
    assert_eq!(input.attr("value").as_deref(), Some(SCRIPT_NAME));
    let dom = web.dom("/search?q=%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E");
    assert!(all(&dom, "<h1")
        .into_iter()
        .next()
        .unwrap()
        .text()
        .contains(IMG_NAME));
}

#[test]
fn stats_page_draws_every_chart_and_its_summary_matches_stats_json() {
    let fx = fixture();
    if chromium::require("stats_page_draws_every_chart_and_its_summary_matches_stats_json")
        .is_none()
    {
        return;
    }
    let web = Web::serve(&fx.db, "127.0.113.3", &[]);
    let dom = web.dom("/stats");
    assert_charts(&dom, "/stats");
    assert_summary_matches(&dom, &fx.stats, "/stats");
    let rows = summary(&dom);
    if let Some(bytes) = rows.get("total_bytes") {
        let want: u64 = fx
            .export
            .iter()
            .map(|t| t["total_bytes"].as_u64().unwrap())
            .sum();
        assert_eq!(*bytes, want, "total_bytes");
    }
    // Cached: the same figures again.
    assert_eq!(summary(&web.dom("/stats")), rows);
}

#[test]
fn recent_and_home_list_the_newest_first() {
    let fx = fixture();
    if chromium::require("recent_and_home_list_the_newest_first").is_none() {
        return;
    }
    let web = Web::serve(&fx.db, "127.0.113.4", &[]);
    let discovered = |key: &str| fx.by_key(key)["discovered"].as_i64().unwrap();
    let dom = web.dom("/recent");
    let rows = listed(&dom);
    // Fewer torrents than a page: all of them, newest first.
    assert!(fx.export.len() <= estudely::web::PAGE_SIZE);
    let keys: BTreeSet<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
    let want: BTreeSet<&str> = fx
        .export
        .iter()
        .map(|t| t["infohash"].as_str().unwrap())
        .collect();
    assert_eq!(keys, want);
    assert_eq!(rows.len(), want.len());
    let times: Vec<i64> = rows.iter().map(|(k, _)| discovered(k)).collect();
    assert!(times.is_sorted_by(|a, b| a >= b), "newest first: {times:?}");
    assert_eq!(
        rows[0],
        (hex::encode(SCRIPT_KEY), SCRIPT_NAME.to_owned()),
        "the newest"
    );
    for (key, name) in &rows {
        assert_eq!(fx.by_key(key)["name"].as_str().unwrap(), name.as_str());
    }
    assert!(by_id(&dom, "name").is_none());

    let dom = web.dom("/");
    let home = listed(&dom);
    assert!(!home.is_empty());
    assert_eq!(home[..], rows[..home.len()], "home lists the newest too");
    let hero = all(&dom, "<h1").into_iter().next().unwrap().text();
    assert!(
        hero.starts_with(&format!("{} torrents", fx.stats["torrents"])),
        "{hero}"
    );
}

#[test]
fn pages_render_at_phone_width() {
    let fx = fixture();
    if chromium::require("pages_render_at_phone_width").is_none() {
        return;
    }
    let web = Web::serve(&fx.db, "127.0.113.5", &[]);
    let key = fx.known()["infohash"].as_str().unwrap().to_owned();
    for path in [
        "/",
        "/search?q=dataset",
        "/search?q=dataset&category=other",
        &format!("/torrent/{key}"),
        "/stats",
    ] {
        let png = chromium::screenshot(&web.url(path));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{path}: not a PNG");
        assert!(png.len() > 1_000, "{path}: {} bytes", png.len());
    }
}

#[test]
fn api_answers_what_export_and_stats_say() {
    let fx = fixture();
    let web = Web::serve(&fx.db, "127.0.113.6", &[]);

    // Search, in pages of 5, finds every dataset torrent once.
    let want: BTreeSet<String> = fx
        .by_name_prefix("estudely-dataset-")
        .iter()
        .map(|t| t["infohash"].as_str().unwrap().to_owned())
        .collect();
    let mut got = BTreeSet::new();
    let mut offset = Some(0);
    while let Some(o) = offset {
        let j = web.json(&format!("/api/v1/search?q=dataset&limit=5&offset={o}"));
        assert_eq!(j["query"], "dataset");
        assert_eq!(j["sort"], "relevance");
        assert_eq!(
            (j["limit"].as_u64(), j["offset"].as_u64()),
            (Some(5), Some(o))
        );
        let results = j["results"].as_array().unwrap();
        assert!(results.len() <= 5);
        for r in results {
            let key = r["infohash"].as_str().unwrap();
            let t = fx.by_key(key);
            assert_eq!(r["name"], t["name"]);
            assert_eq!(r["total_bytes"], t["total_bytes"]);
            assert_eq!(r["infohash_v2"], Value::Null);
            assert!(
                r["magnet"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("magnet:?xt=urn:btih:{key}&dn=estudely-dataset-")),
                "{r}"
            );
            assert!(got.insert(key.to_owned()), "{key} twice");
        }
        offset = j["next_offset"].as_u64();
        assert!(offset.is_none() || results.len() == 5);
    }
    assert_eq!(got, want);

    // The other orders.
    for (sort, field) in [("size", "total_bytes"), ("discovered", "discovered")] {
        let j = web.json(&format!("/api/v1/search?q=estudely&limit=100&sort={sort}"));
        assert_eq!(j["sort"], sort);
        let values: Vec<i64> = j["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                fx.by_key(r["infohash"].as_str().unwrap())[field]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        assert!(values.len() >= want.len(), "{sort}: {values:?}");
        assert!(values.is_sorted_by(|a, b| a >= b), "{sort}: {values:?}");
    }

    // Each torrent: its export object, plus magnet and sightings.
    for t in &fx.export {
        let key = t["infohash"].as_str().unwrap();
        let j = web.json(&format!("/api/v1/torrents/{key}"));
        for (field, want) in t.as_object().unwrap() {
            if field == "peers" {
                let set = |v: &Value| -> BTreeSet<String> {
                    v.as_array()
                        .map(|a| a.iter().map(|p| p.to_string()).collect())
                        .unwrap_or_default()
                };
                assert_eq!(set(&j[field]), set(want), "{key}: peers");
            } else {
                assert_eq!(&j[field], want, "{key}: {field}");
            }
        }
        let magnet = j["magnet"].as_str().unwrap();
        let xt = match t["version"].as_str() {
            Some("v2") => format!(
                "magnet:?xt=urn:btmh:1220{}&",
                t["infohash_v2"].as_str().unwrap()
            ),
            _ => format!("magnet:?xt=urn:btih:{key}&"),
        };
        assert!(magnet.starts_with(&xt), "{magnet}");
        assert!(
            magnet.ends_with(&format!("&xl={}", t["total_bytes"])),
            "{magnet}"
        );
        let newest = j["sightings"]["newest"].as_array().unwrap();
        assert!(j["sightings"]["total"].as_u64().unwrap() >= newest.len() as u64);
    }
    let j = web.json(&format!("/api/v1/torrents/{}", hex::encode(IMG_KEY)));
    assert_eq!(j["name"], IMG_NAME);
    assert_eq!(j["infohash_v2"], hex::encode(IMG_V2));
    assert!(j["magnet"]
        .as_str()
        .unwrap()
        .contains(&format!("&xt=urn:btmh:1220{}&", hex::encode(IMG_V2))));

    // Stats: `stats --format json`'s object, plus the report.
    let j = web.json("/api/v1/stats");
    for (field, want) in fx.stats.as_object().unwrap() {
        assert_eq!(&j[field], want, "stats {field}");
    }
    assert!(j["report"].is_object(), "{j}");
}

#[test]
fn bad_requests_are_refused_and_every_answer_forbids_scripts() {
    let fx = fixture();
    let web = Web::serve(&fx.db, "127.0.113.7", &[]);
    let unknown = "0123456789abcdef0123456789abcdef01234567";
    assert!(fx.export.iter().all(|t| t["infohash"] != unknown));
    let cases: &[(&str, u16)] = &[
        ("/", 200),
        ("/static/style.css", 200),
        (&format!("/api/v1/torrents/{unknown}"), 404),
        (&format!("/torrent/{unknown}"), 404),
        (&format!("/api/v1/torrents/{unknown}{unknown}"), 400),
        (&format!("/api/v1/torrents/{}", &"ab".repeat(32)), 404),
        ("/api/v1/torrents/xyz", 400),
        (
            "/api/v1/torrents/zz23456789abcdef0123456789abcdef01234567",
            400,
        ),
        ("/torrent/xyz", 400),
        ("/api/v1/search?q=dataset&limit=1000", 400),
        ("/api/v1/search?q=dataset&limit=101", 400),
        ("/api/v1/search?q=dataset&limit=0", 400),
        ("/api/v1/search?q=dataset&limit=-1", 400),
        ("/api/v1/search?q=dataset&offset=10001", 400),
        ("/api/v1/search?q=dataset&sort=name", 400),
        ("/api/v1/search", 400),
        ("/api/v1/search?q=%20", 400),
        ("/api/v1/search?q=dataset&limit=100", 200),
        ("/search?q=dataset&page=100000", 400),
        ("/search?q=dataset&sort=bogus", 400),
        ("/recent?page=x", 400),
        ("/no/such/page", 404),
    ];
    for (path, status) in cases {
        let r = web.get(path);
        assert_eq!(r.status, *status, "{path}: {}", r.text());
        let csp = r
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("{path}: no CSP: {:?}", r.headers));
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(
            !csp.contains("script-src"),
            "{path}: scripts allowed: {csp}"
        );
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        if path.starts_with("/api/") && *status != 200 {
            assert!(r.json()["error"].is_string(), "{path}: {}", r.text());
        }
    }
}

#[test]
fn auth_asks_for_credentials_everywhere() {
    let fx = fixture();
    let web = Web::serve(&fx.db, "127.0.113.8", &["--auth", "u:p"]);
    let key = fx.known()["infohash"].as_str().unwrap().to_owned();
    for path in [
        "/",
        "/search?q=dataset",
        "/recent",
        "/stats",
        "/static/style.css",
        &format!("/torrent/{key}"),
        "/api/v1/search?q=dataset",
        &format!("/api/v1/torrents/{key}"),
        "/api/v1/stats",
        "/no/such/page",
    ] {
        for creds in [None, Some(("u", "x")), Some(("x", "p")), Some(("u", "p "))] {
            let r = http::get(web.addr, path, creds);
            assert_eq!(r.status, 401, "{path} with {creds:?}");
            assert!(
                r.header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Basic ")),
                "{path}: {:?}",
                r.headers
            );
            assert!(r.header("content-security-policy").is_some(), "{path}");
            assert!(!r.text().contains("dataset"), "{path}: leaks {}", r.text());
        }
        let r = http::get(web.addr, path, Some(("u", "p")));
        let want = if path == "/no/such/page" { 404 } else { 200 };
        assert_eq!(r.status, want, "{path}: {}", r.text());
    }
}

#[test]
fn report_file_shows_the_summary_of_stats_json() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.html");
    run_ok(&[
        "report",
        "--db",
        fx.db.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(&out).expect("the report file");
    // Self-contained: nothing to fetch.
    for bad in [
        "<script",
        "src=\"http",
        "href=\"http",
        "<link rel=\"stylesheet\" href",
    ] {
        assert!(!html.contains(bad), "{bad} in the report");
    }
    if chromium::require("report_file_shows_the_summary_of_stats_json").is_none() {
        assert_summary_matches(&html, &fx.stats, "report.html (source)");
        return;
    }
    let dom = dump_dom(&format!("file://{}", out.display()));
    assert_clean(&dom, "report.html");
    assert_summary_matches(&dom, &fx.stats, "report.html");
    assert_charts(&dom, "report.html");
}

#[test]
fn run_serve_shows_the_index_while_it_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let net = "--nodes 12 --torrents 8 --interval 10 --seconds 600 --base-ip 127.0.114";
    let words: Vec<&str> = net.split_whitespace().collect();
    let (_net, boot, manifest) = common::testnet(&words, &dir.path().join("testnet.json"));
    let served: BTreeSet<String> = common::torrents(&manifest)
        .into_iter()
        .map(|t| t.infohash)
        .collect();
    let db = dir.path().join("index.sqlite");
    let mut web = Web::start(&[
        "run",
        "--db",
        db.to_str().unwrap(),
        "--bootstrap",
        &boot,
        "--bind",
        "127.0.112.2:0",
        "--rate",
        "200",
        "--overall-timeout",
        "120",
        "--serve",
        "127.0.113.9:0",
    ]);
    // No clock: the run ends by itself (its --overall-timeout) if it stores nothing, and
    // that fails the test.
    let torrents = loop {
        assert!(
            web.proc.0.try_wait().unwrap().is_none(),
            "the run ended before the API showed a torrent:\n{}",
            web.log.lock().unwrap()
        );
        if let Ok(r) = http::try_get(web.addr, "/api/v1/stats", None) {
            if r.status == 200 {
                let n = r.json()["torrents"].as_u64().unwrap();
                if n > 0 {
                    break n;
                }
            }
        }
        thread::sleep(Duration::from_millis(200));
    };
    eprintln!("the API shows {torrents} torrents while the run goes on");
    let check = |rows: Vec<(String, String)>| {
        assert!(rows.len() as u64 >= torrents, "{rows:?}");
        for (key, _) in &rows {
            assert!(served.contains(key), "{key} is not a testnet torrent");
        }
    };
    let r = web.get("/api/v1/search?q=estudely&limit=100");
    assert_eq!(r.status, 200, "{}", r.text());
    if chromium::require("run_serve_shows_the_index_while_it_is_built").is_none() {
        return;
    }
    check(listed(&web.dom("/recent")));
}
