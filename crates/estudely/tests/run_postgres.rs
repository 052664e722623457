//! Two `estudely run` processes sharing one PostgreSQL index (a throwaway server from
//! `scripts/pg-test-server`) while crawling the same loopback testnet: they split the work.
//! Both find every infohash, but each torrent is claimed (a lease taken with `FOR UPDATE
//! SKIP LOCKED`) by one of them only: their fetch counts add up to the distinct torrents,
//! none is fetched twice, and `export` and `search` return what was stored.
//!
//! Loopback only: the testnet on 127.0.100.x (seeders on 127.0.101.x), the runs on
//! 127.0.102.1 and .2. Time limits only guard against a hang.

#[path = "common/pg.rs"]
mod pg;

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use estudely::testnet::TorrentKind;

use common::{run_bounded, spawn_bounded, torrents, Finished};
use pg::PgServer;

const HANG: Duration = Duration::from_secs(120);

/// Infohashes whose metadata a run fetched, from its summary (`metadata N/M infohashes`).
fn fetched(run: &Finished) -> u64 {
    let line = run
        .stderr
        .lines()
        .rfind(|l| l.starts_with("run: ") && l.contains(" stored"))
        .unwrap_or_else(|| panic!("no summary:\n{}", run.stderr));
    let after = line.split("metadata ").nth(1).expect("metadata in summary");
    after.split('/').next().unwrap().parse().expect("a count")
}

#[test]
fn two_crawlers_on_one_postgres_index_split_the_work() {
    let server = PgServer::start();
    let db = format!("postgres:{}", server.database());
    let dir = tempfile::tempdir().unwrap();
    let net = "--nodes 20 --torrents 30 --interval 10 --seconds 600 --base-ip 127.0.100";
    let words: Vec<&str> = net.split_whitespace().collect();
    let (_net, boot, manifest) = common::testnet(&words, &dir.path().join("testnet.json"));
    let served = common::served_keys(&manifest);
    assert_eq!(served.len(), 30);

    let runs: Vec<_> = ["127.0.102.1:0", "127.0.102.2:0"]
        .into_iter()
        .map(|bind| {
            let args: Vec<String> = [
                "run",
                "--db",
                &db,
                "--bootstrap",
                &boot,
                "--bind",
                bind,
                "--rate",
                "200",
                "--overall-timeout",
                "30",
            ]
            .map(String::from)
            .to_vec();
            spawn_bounded(args, HANG)
        })
        .collect();
    let runs: Vec<Finished> = runs.into_iter().map(|h| h.join().unwrap()).collect();
    for r in &runs {
        eprintln!("{}", r.stderr);
        assert!(r.status.success(), "{}", r.stderr);
    }
    let (a, b) = (fetched(&runs[0]), fetched(&runs[1]));
    eprintln!("fetched: {a} + {b} of {} torrents", served.len());
    assert_eq!(
        a + b,
        served.len() as u64,
        "each torrent fetched by exactly one crawler"
    );

    // What `export` gives back: exactly the served torrents, each once.
    let export = run_bounded(&["export", "--db", &db, "--format", "csv"], HANG);
    assert!(export.status.success(), "{}", export.stderr);
    let mut reader = csv::Reader::from_reader(&export.stdout[..]);
    let mut seen = BTreeSet::new();
    let mut rows = 0;
    for row in reader.records() {
        let row = row.expect("a CSV row");
        assert_eq!(&row[7], "True");
        seen.insert(row[0].to_owned());
        rows += 1;
    }
    assert_eq!(seen, served, "export holds exactly the served torrents");
    assert!(rows >= served.len(), "one row per (torrent, peer)");

    // What `search` gives back: a torrent found by a word of its name.
    let t = torrents(&manifest)
        .into_iter()
        .find(|t| t.kind == TorrentKind::Ok && t.name.is_ascii() && t.name.contains('-'))
        .expect("an ASCII name");
    let word = t
        .name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .rfind(|w| w.len() >= 3)
        .expect("a word")
        .to_owned();
    let search = run_bounded(
        &[
            "search", "--db", &db, &word, "--limit", "100", "--format", "jsonl",
        ],
        HANG,
    );
    assert!(search.status.success(), "{}", search.stderr);
    let hits: Vec<serde_json::Value> = String::from_utf8_lossy(&search.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(
        hits.iter().any(|h| h["infohash"] == t.infohash.as_str()),
        "`{word}` finds {} ({}): {hits:?}",
        t.infohash,
        t.name
    );
}
