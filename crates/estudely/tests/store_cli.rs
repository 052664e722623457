//! End to end: build an index through the library, then read it with `estudely export`,
//! `search` and `stats` as a user would.

use std::path::Path;
use std::process::{Command, Output};

use estudely::output::csv_name_unescape;
use estudely::store::sqlite::SqliteStore;
use estudely::store::{Batch, Sighting, Source, Store as _, Torrent};
use estudely_krpc::InfoHash;
use estudely_peer_wire::{FileEntry, Version};

const HOSTILE: &[u8] = b"a,\"b\"\n<script>alert(1)</script> \x1b[31m\xff";

fn estudely(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_estudely"))
        .args(args)
        .output()
        .expect("run estudely")
}

fn torrent(key: u8, name: &[u8], at: i64) -> Torrent {
    let mut t = Torrent {
        info_hash: InfoHash([key; 20]),
        info_hash_v2: None,
        name: name.to_vec(),
        total_bytes: 3 << 20,
        piece_length: 1 << 18,
        file_count: 2,
        private: false,
        version: Version::V1,
        files: vec![
            FileEntry {
                path: vec![b"docs".to_vec(), b"readme.txt".to_vec()],
                length: 1 << 20,
            },
            FileEntry {
                path: vec![b"a/b\0c".to_vec()],
                length: 2 << 20,
            },
        ],
        discovered: at,
        source: Source::Sample,
        seeds_estimate: None,
        peers_estimate: None,
        category: None,
        release: None,
    };
    t.classify(&estudely::store::Classifier::default());
    t
}

/// An index with three torrents: a hostile name with two peers, a hybrid one, and an old one.
fn build(path: &Path) {
    let mut store = SqliteStore::open(path).unwrap();
    let mut hybrid = torrent(2, b"Ubuntu 24.04 Desktop", 1_700_086_400);
    hybrid.version = Version::Hybrid;
    hybrid.info_hash_v2 = Some([0x22; 32]);
    hybrid.private = true;
    let sight = |addr: &str, source| Sighting {
        info_hash: InfoHash([1; 20]),
        addr: addr.parse().unwrap(),
        source,
        at: 1_700_000_500,
    };
    let batch = Batch {
        torrents: vec![
            torrent(1, HOSTILE, 1_700_000_000),
            hybrid,
            torrent(3, b"old ubuntu", 1_600_000_000),
        ],
        sightings: vec![
            sight("10.0.0.1:6881", Source::Announce),
            sight("[2001:db8::1]:51413", Source::GetPeers),
            sight("10.0.0.9:1", Source::Sample),
        ],
        counters: vec![("fetch_failed_timeout".into(), 4)],
        ..Batch::default()
    };
    store.write("test", &batch).unwrap();
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn export_csv_is_collects_csv() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.sqlite");
    build(&db);
    let out = stdout(&estudely(&[
        "export",
        "--db",
        db.to_str().unwrap(),
        "--format",
        "csv",
    ]));
    let mut r = csv::Reader::from_reader(out.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header.join(","),
        "infohash,name,file_count,total_bytes,piece_length,peer_ip,peer_port,metadata_ok"
    );
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    let col = |i: usize, c: usize| rows[i][c].to_string();
    assert_eq!(
        rows.len(),
        4,
        "old (no peer), hostile x2 peers, hybrid: {out}"
    );
    assert_eq!(col(0, 0), "03".repeat(20));
    assert_eq!(
        (col(0, 5), col(0, 6), col(0, 7)),
        ("".into(), "".into(), "True".into())
    );
    assert_eq!(csv_name_unescape(&col(1, 1)).unwrap(), HOSTILE);
    assert_eq!((col(1, 5), col(1, 6)), ("10.0.0.1".into(), "6881".into()));
    assert_eq!(
        (col(2, 5), col(2, 6)),
        ("2001:db8::1".into(), "51413".into())
    );
    assert_eq!(
        (col(1, 2), col(1, 3), col(1, 4)),
        ("2".into(), "3145728".into(), "262144".into())
    );
    assert_eq!(col(3, 0), "02".repeat(20));

    let since = estudely(&[
        "export",
        "--db",
        db.to_str().unwrap(),
        "--format",
        "csv",
        "--since",
        "2023-11-15",
    ]);
    assert_eq!(
        stdout(&since).lines().count(),
        2,
        "the header and the hybrid"
    );
}

#[test]
fn export_jsonl_one_object_per_torrent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.sqlite");
    build(&db);
    let args = [
        "export",
        "--db",
        db.to_str().unwrap(),
        "--format",
        "jsonl",
        "--since",
        "1700000000",
    ];
    let out = stdout(&estudely(&args));
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    let hostile = &rows[0];
    assert_eq!(
        hex::decode(hostile["name_hex"].as_str().unwrap()).unwrap(),
        HOSTILE
    );
    assert_eq!(
        hostile["peers"],
        serde_json::json!(["10.0.0.1:6881", "[2001:db8::1]:51413"])
    );
    assert_eq!(hostile["files"][0]["path"], "docs/readme.txt");
    assert_eq!(
        hostile["files"][1]["path_hex"],
        serde_json::json!([hex::encode(b"a/b\0c")])
    );
    assert_eq!(hostile["infohash_v2"], serde_json::Value::Null);
    let hybrid = &rows[1];
    assert_eq!(hybrid["infohash_v2"], "22".repeat(32));
    assert_eq!(hybrid["version"], "hybrid");
    assert_eq!(hybrid["private"], true);
    assert_eq!(hybrid["peers"], serde_json::json!([]));
    assert_eq!(hybrid["metadata_ok"], true);
}

#[test]
fn search_finds_hostile_names_and_shrugs_at_hostile_queries() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.sqlite");
    build(&db);
    let db = db.to_str().unwrap();
    let out = stdout(&estudely(&["search", "--db", db, "ubuntu"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines
        .iter()
        .all(|l| l.contains("Ubuntu 24.04") || l.contains("old ubuntu")));
    assert!(
        lines[0].contains("3 MiB") && lines[0].contains("  2  "),
        "{out}"
    );

    let out = stdout(&estudely(&[
        "search", "--db", db, "<script>", "--format", "jsonl",
    ]));
    let hit: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        hex::decode(hit["name_hex"].as_str().unwrap()).unwrap(),
        HOSTILE
    );
    let text = stdout(&estudely(&["search", "--db", db, "alert"]));
    assert!(!text.trim_end().chars().any(char::is_control), "{text:?}");
    assert!(text.contains("a,\"b\"\\x0a<script>"), "{text}");

    for q in [
        "\"",
        "*",
        "NEAR(",
        "-",
        "'",
        "a,\"b\"\n",
        "(",
        ":",
        "-- ",
        "readme*",
    ] {
        let out = estudely(&["search", "--db", db, "--", q]);
        assert!(
            out.status.success(),
            "{q:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let page = stdout(&estudely(&[
        "search", "--db", db, "ubuntu", "--limit", "1", "--offset", "1",
    ]));
    assert_eq!(page.lines().count(), 1);
}

/// The query language from the command line: phrases, exclusions, fields, the file that
/// explains a hit, sort by seeders, and a field it cannot read as a usage error.
#[test]
fn search_reads_the_query_language() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.sqlite");
    build(&db);
    let db = db.to_str().unwrap();
    let jsonl = |args: &[&str]| -> Vec<(String, serde_json::Value)> {
        let mut all = vec!["search", "--db", db, "--format", "jsonl"];
        all.extend(args);
        stdout(&estudely(&all))
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["name"].as_str().unwrap().to_owned(),
                    v["matched_file"].clone(),
                )
            })
            .collect()
    };
    let null = serde_json::Value::Null;
    assert_eq!(
        jsonl(&["\"24.04 desktop\""]),
        [("Ubuntu 24.04 Desktop".to_owned(), null.clone())]
    );
    assert!(jsonl(&["\"desktop 24.04\""]).is_empty());
    assert_eq!(
        jsonl(&["ubuntu -desktop"]),
        [("old ubuntu".to_owned(), null.clone())]
    );
    // Exclusions alone: the newest torrents without them.
    let names: Vec<String> = jsonl(&["--", "-desktop"])
        .into_iter()
        .map(|h| h.0)
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names[0].starts_with("a,\"b\"") && names[1] == "old ubuntu",
        "{names:?}"
    );
    assert_eq!(
        jsonl(&["ubuntu after:2023-01-01"]),
        [("Ubuntu 24.04 Desktop".to_owned(), null.clone())]
    );
    assert_eq!(
        jsonl(&["before:2021-01-01", "files:2", "size:>1MiB"]),
        [("old ubuntu".to_owned(), null.clone())]
    );
    let readme = serde_json::Value::from("docs/readme.txt");
    assert_eq!(
        jsonl(&["ubuntu", "readme", "--sort", "discovered"]),
        [
            ("Ubuntu 24.04 Desktop".to_owned(), readme.clone()),
            ("old ubuntu".to_owned(), readme.clone())
        ]
    );
    assert_eq!(jsonl(&["ubuntu", "--sort", "seeders"]).len(), 2);
    // Text: the matched file on a line of its own under the hit.
    let text = stdout(&estudely(&["search", "--db", db, "desktop readme"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].ends_with("Ubuntu 24.04 Desktop"), "{text}");
    assert_eq!(lines[1], "    file: docs/readme.txt");

    let out = estudely(&["search", "--db", db, "ubuntu size:abc"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "error: size: expects a size like >1GB, <700MB or 1GB..4GB, got \"abc\"\n"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn stats_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.sqlite");
    build(&db);
    let db = db.to_str().unwrap();
    let text = stdout(&estudely(&["stats", "--db", db]));
    assert!(
        text.starts_with("torrents    3\nfiles       6\nsightings   3\n"),
        "{text}"
    );
    assert!(text.contains("  2023-11-14  1\n"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&stdout(&estudely(&[
        "stats", "--db", db, "--format", "json",
    ])))
    .unwrap();
    assert_eq!(json["torrents"], 3);
    assert_eq!(
        json["by_version"],
        serde_json::json!({"hybrid": 1, "v1": 2})
    );
    assert_eq!(json["counters"]["fetch_failed_timeout"], 4);
    assert_eq!(json["by_day"]["2020-09-13"], 1);
}

#[test]
fn a_missing_index_is_a_usage_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nope.sqlite");
    let db = db.to_str().unwrap();
    for args in [
        vec!["export", "--db", db, "--format", "csv"],
        vec!["search", "--db", db, "x"],
        vec!["stats", "--db", db],
    ] {
        let out = estudely(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("error: ") && err.contains("nope.sqlite"),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
    assert!(!Path::new(db).exists());
    let out = estudely(&[
        "export",
        "--db",
        db,
        "--format",
        "csv",
        "--since",
        "yesterday",
    ]);
    assert_eq!(out.status.code(), Some(2));
}
