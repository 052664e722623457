//! End to end: an index written before classification existed (no category on any row),
//! then `estudely reclassify`, `search --category`, `export --format jsonl` and `stats` as a
//! user would; a rules file of the user's; bad input.

use std::path::Path;
use std::process::{Command, Output};

use estudely::store::sqlite::SqliteStore;
use estudely::store::{Batch, Source, Store as _, Torrent};
use estudely_krpc::InfoHash;
use estudely_peer_wire::{FileEntry, Version};

fn estudely(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_estudely"))
        .args(args)
        .output()
        .expect("run estudely")
}

fn ok(out: &Output) -> (String, String) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An unclassified torrent (as stored before classification).
fn torrent(key: u8, name: &str, files: &[(&str, u64)]) -> Torrent {
    let files: Vec<FileEntry> = files
        .iter()
        .map(|(p, l)| FileEntry {
            path: p.split('/').map(|c| c.as_bytes().to_vec()).collect(),
            length: *l,
        })
        .collect();
    Torrent {
        info_hash: InfoHash([key; 20]),
        info_hash_v2: None,
        name: name.as_bytes().to_vec(),
        total_bytes: files.iter().map(|f| f.length).sum(),
        piece_length: 1 << 18,
        file_count: files.len() as u64,
        private: false,
        version: Version::V1,
        files,
        discovered: 1_700_000_000 + i64::from(key),
        source: Source::Sample,
        seeds_estimate: None,
        peers_estimate: None,
        category: None,
        release: None,
    }
}

fn build(path: &Path) {
    let mut store = SqliteStore::open(path).unwrap();
    let batch = Batch {
        torrents: vec![
            torrent(
                1,
                "Silent.River.2019.1080p.BluRay.x264-GRP",
                &[("Silent.River.2019.1080p.BluRay.x264-GRP.mkv", 8 << 30)],
            ),
            torrent(
                2,
                "Silent.River.S02E05.720p.WEB.x264-GRP",
                &[("Silent.River.S02E05.720p.WEB.x264-GRP.mkv", 700 << 20)],
            ),
            torrent(
                3,
                "Silent River - Collected Works",
                &[("a.epub", 2 << 20), ("b.epub", 3 << 20)],
            ),
            torrent(4, "Lecture 12 Silent Rivers", &[("lecture.mp4", 300 << 20)]),
        ],
        ..Batch::default()
    };
    store.write("test", &batch).unwrap();
}

#[test]
fn reclassify_then_search_export_and_stats_by_category() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.sqlite");
    build(&db);
    let db = db.to_str().unwrap();

    // Nothing classified yet.
    let (stats, _) = ok(&estudely(&["stats", "--db", db, "--format", "json"]));
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["by_category"]["unclassified"], 4, "{stats}");
    let (out, _) = ok(&estudely(&["search", "--db", db, "silent"]));
    assert_eq!(
        out.lines().filter(|l| l.contains("  -    ")).count(),
        4,
        "{out}"
    );

    let (_, err) = ok(&estudely(&["reclassify", "--db", db]));
    assert!(
        err.contains("reclassify: 4 torrents, 4 changed; movie 2, tv 1, ebook 1"),
        "{err}"
    );
    // Nothing left to change.
    let (_, err) = ok(&estudely(&["reclassify", "--db", db]));
    assert!(err.contains("4 torrents, 0 changed"), "{err}");

    let (out, _) = ok(&estudely(&[
        "search",
        "--db",
        db,
        "--category",
        "tv",
        "silent",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].contains("  tv         Silent.River.S02E05"),
        "{out}"
    );
    // A category alone: its newest.
    let (out, _) = ok(&estudely(&["search", "--db", db, "--category", "movie"]));
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.lines().next().unwrap().contains("Lecture 12"), "{out}");
    let (out, _) = ok(&estudely(&[
        "search",
        "--db",
        db,
        "--category",
        "game",
        "silent",
    ]));
    assert!(out.is_empty(), "{out}");

    // An infohash or a magnet link as the query: that torrent alone.
    let hex = "02".repeat(20);
    let magnet = format!("magnet:?xt=urn:btih:{hex}&dn=whatever");
    for q in [hex.as_str(), magnet.as_str()] {
        let (out, _) = ok(&estudely(&["search", "--db", db, q]));
        assert_eq!(out.lines().count(), 1, "{q}: {out}");
        assert!(out.starts_with(&hex), "{q}: {out}");
    }
    let (out, _) = ok(&estudely(&["search", "--db", db, &"09".repeat(20)]));
    assert!(out.is_empty(), "not stored: no hit: {out}");

    let (out, _) = ok(&estudely(&["export", "--db", db, "--format", "jsonl"]));
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let tv = rows.iter().find(|r| r["category"] == "tv").unwrap();
    assert_eq!(tv["release"]["season"], 2);
    assert_eq!(tv["release"]["episode"], 5);
    assert_eq!(tv["release"]["title"], "Silent River");
    assert_eq!(tv["release"]["resolution"], "720p");
    assert_eq!(tv["release"]["group"], "GRP");
    let (stats, _) = ok(&estudely(&["stats", "--db", db, "--format", "json"]));
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["by_category"]["movie"], 2, "{stats}");
    assert!(
        stats["by_category"].get("unclassified").is_none(),
        "{stats}"
    );

    // A user's rule, tried before the built-in ones: lectures are `other`.
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\npattern = '(?i)\\blecture\\b'\ncategory = \"other\"\nwhen = [\"video\"]\n",
    )
    .unwrap();
    let rules = rules.to_str().unwrap();
    let (_, err) = ok(&estudely(&[
        "reclassify",
        "--db",
        db,
        "--classify-rules",
        rules,
    ]));
    assert!(
        err.contains("1 changed; movie 1, tv 1, ebook 1, other 1"),
        "{err}"
    );
}

#[test]
fn bad_rules_categories_and_indexes_are_one_line_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.sqlite");
    build(&db);
    let db = db.to_str().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[rule]]\npattern = '('\ncategory = \"tv\"\n").unwrap();
    let missing = dir.path().join("missing.sqlite");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "reclassify",
                "--db",
                db,
                "--classify-rules",
                bad.to_str().unwrap(),
            ],
            "rule 1: bad pattern",
        ),
        (
            vec![
                "reclassify",
                "--db",
                db,
                "--classify-rules",
                "/nonexistent/rules.toml",
            ],
            "cannot read rules file /nonexistent/rules.toml",
        ),
        (
            vec!["reclassify", "--db", missing.to_str().unwrap()],
            "missing.sqlite",
        ),
        (
            vec!["search", "--db", db, "--category", "films", "x"],
            "unknown category `films`",
        ),
    ];
    for (args, want) in cases {
        let out = estudely(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        // One line says it (clap adds its "try '--help'" line after a bad flag value).
        let first = err.lines().next().unwrap_or("");
        assert!(first.contains(want), "{args:?}: {err}");
        if args[0] == "reclassify" {
            assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        }
    }
    // The missing index was not created.
    assert!(!missing.exists());
}
