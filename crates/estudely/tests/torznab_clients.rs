//! End to end with clients of the ecosystem: `estudely serve` with an API key file over a
//! classified index, searched by FlexGet's Torznab plugin (its own code: caps, tvsearch
//! with season and episode, movie search with its categories, plain search) and read by
//! feedparser (RSS), through `interop/torznab_client.py`.
//!
//! Needs python3 with flexget, feedparser and requests (scripts/test installs them).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use estudely::store::sqlite::SqliteStore;
use estudely::store::{Batch, Classifier, Source, Store as _, Torrent};
use estudely_krpc::InfoHash;
use estudely_peer_wire::{FileEntry, Version};
use serde_json::Value;

const KEY: &str = "flexget-key-0123456789";
const CLIENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../interop/torznab_client.py"
);

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn torrent(key: u8, name: &str, files: &[(&str, u64)], at: i64, c: &Classifier) -> Torrent {
    let files: Vec<FileEntry> = files
        .iter()
        .map(|(p, l)| FileEntry {
            path: vec![p.as_bytes().to_vec()],
            length: *l,
        })
        .collect();
    let mut t = Torrent {
        info_hash: InfoHash([key; 20]),
        info_hash_v2: None,
        name: name.as_bytes().to_vec(),
        total_bytes: files.iter().map(|f| f.length).sum(),
        piece_length: 1 << 18,
        file_count: files.len() as u64,
        private: false,
        version: Version::V1,
        files,
        discovered: 1_796_000_000 + at,
        source: Source::Sample,
        seeds_estimate: None,
        peers_estimate: None,
        category: None,
        release: None,
    };
    t.classify(c);
    t
}

fn build(path: &Path) {
    let c = Classifier::default();
    let mut pack = torrent(
        4,
        "Silent.River.S02.1080p.WEB.x264-GRP",
        &[
            ("Silent.River.S02E01.mkv", 9 << 30),
            ("Silent.River.S02E02.mkv", 1 << 30),
        ],
        4,
        &c,
    );
    pack.seeds_estimate = Some(12);
    pack.peers_estimate = Some(3);
    let torrents = vec![
        torrent(
            1,
            "Silent.River.S02E05.720p.WEB.x264-GRP",
            &[("e5.mkv", 700 << 20)],
            1,
            &c,
        ),
        torrent(
            2,
            "Silent.River.S01E05.720p.WEB.x264-GRP",
            &[("e5.mkv", 700 << 20)],
            2,
            &c,
        ),
        torrent(
            3,
            "Silent.River.S02E04-E06.2160p.WEB.x265-GRP",
            &[("e.mkv", 5 << 30)],
            3,
            &c,
        ),
        pack,
        torrent(
            5,
            "Silent.River.2019.1080p.BluRay.x264-GRP",
            &[("m.mkv", 8 << 30)],
            5,
            &c,
        ),
        torrent(
            6,
            "Author - Silent River (epub)",
            &[("Silent River.epub", 2 << 20)],
            6,
            &c,
        ),
    ];
    let mut store = SqliteStore::open(path).unwrap();
    store
        .write(
            "test",
            &Batch {
                torrents,
                ..Batch::default()
            },
        )
        .unwrap();
}

/// `estudely serve` on a port of its own; its address, read from its stderr.
fn serve(db: &Path, keys: &Path) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_estudely"))
        .args([
            "serve",
            "--db",
            db.to_str().unwrap(),
            "--listen",
            "127.0.114.1:0",
        ])
        .args(["--api-key-file", keys.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start estudely serve");
    let err = child.stderr.take().unwrap();
    let server = Server(child);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("web UI at http://").nth(1) {
                let _ = tx.send(rest.trim_end_matches('/').to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("serve named its address");
    (server, format!("http://{addr}"))
}

#[test]
fn flexget_and_feedparser_read_the_torznab_api_and_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.sqlite");
    build(&db);
    let keys = dir.path().join("keys.txt");
    std::fs::write(&keys, format!("# the keys of this test\n\n{KEY}\n")).unwrap();
    let (_server, url) = serve(&db, &keys);
    let out = Command::new("python3")
        .args([CLIENT, "--url", &url, "--apikey", KEY])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "torznab_client.py failed (flexget, feedparser installed?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();

    // FlexGet read the caps: the TV searcher with season and episode, TV's codes.
    let tv = &v["tv"];
    assert_eq!(tv["params"]["t"], "tvsearch", "{tv}");
    assert_eq!(tv["params"]["cat"], "5000,5030,5040,5045", "{tv}");
    let mut hashes: Vec<&str> = tv["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["infohash"].as_str().unwrap())
        .collect();
    hashes.sort();
    // S02E05 itself, the S02E04-E06 range, and the season 2 pack; not S01E05.
    assert_eq!(
        hashes,
        ["01".repeat(20), "03".repeat(20), "04".repeat(20)],
        "{tv}"
    );
    let pack = tv["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["infohash"] == "04".repeat(20))
        .unwrap();
    assert_eq!(pack["season"], 2);
    assert_eq!(
        (pack["seeds"].as_i64(), pack["leeches"].as_i64()),
        (Some(12), Some(3))
    );
    assert_eq!(pack["size"], 10u64 << 30);
    assert_eq!(
        pack["type"],
        "application/x-bittorrent;x-scheme-handler/magnet"
    );
    assert!(
        pack["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("magnet:?xt=urn:btih:{}", "04".repeat(20))),
        "{pack}"
    );
    let e5 = tv["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["infohash"] == "01".repeat(20))
        .unwrap();
    assert_eq!(
        (e5["season"].as_i64(), e5["episode"].as_i64()),
        (Some(2), Some(5))
    );

    // Movies: only the film, through the movie codes FlexGet took from the caps.
    let movie = &v["movie"];
    assert_eq!(movie["params"]["t"], "movie", "{movie}");
    let titles: Vec<&str> = movie["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        ["Silent.River.2019.1080p.BluRay.x264-GRP"],
        "{movie}"
    );
    // A plain search: everything, newest first.
    let all = v["search"]["results"].as_array().unwrap();
    assert_eq!(all.len(), 6, "{}", v["search"]);
    assert_eq!(all[0]["title"], "Author - Silent River (epub)");

    // feedparser: a well-formed RSS feed of the TV torrents with magnet enclosures.
    let rss = &v["rss"];
    assert_eq!(rss["bozo"], false, "{rss}");
    assert_eq!(rss["entries"].as_array().unwrap().len(), 4, "{rss}");
    for e in rss["entries"].as_array().unwrap() {
        assert!(e["published"].as_str().unwrap().ends_with("+0000"), "{e}");
        assert_eq!(
            e["enclosures"][0]["type"], "application/x-bittorrent;x-scheme-handler/magnet",
            "{e}"
        );
    }

    // A wrong key: 401 and a Newznab error 100.
    assert_eq!(v["wrong_key"]["status"], 401);
    assert!(
        v["wrong_key"]["body"]
            .as_str()
            .unwrap()
            .contains("<error code=\"100\""),
        "{}",
        v["wrong_key"]
    );
}

#[test]
fn bad_api_keys_are_one_line_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.sqlite");
    build(&db);
    let db = db.to_str().unwrap();
    let short = dir.path().join("short.txt");
    std::fs::write(&short, "# comment\nshort-key\n").unwrap();
    let short = short.to_str().unwrap();
    for (args, want) in [
        (
            vec!["--api-key-file", "/nonexistent/keys.txt"],
            "cannot read --api-key-file /nonexistent/keys.txt".to_owned(),
        ),
        (
            vec!["--api-key-file", short],
            format!("--api-key-file {short}:2: an API key needs at least 16 characters"),
        ),
        (
            vec!["--api-key", "tiny"],
            "an API key needs at least 16 characters".to_owned(),
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_estudely"))
            .args(["serve", "--db", db, "--listen", "127.0.114.2:0"])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let first = err.lines().next().unwrap_or("");
        assert!(first.contains(&want), "{args:?}: {err}");
        assert!(!err.contains("short-key"), "a key is never printed: {err}");
    }
}
