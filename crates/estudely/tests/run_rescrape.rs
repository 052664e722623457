//! `estudely run --rescrape-rate` end to end: the swarm estimates of stored torrents are
//! refreshed. A first run indexes an `estudely testnet` (its seeders announce with
//! `seed=1`, so the nodes near each torrent hold BEP 33 filters); the index is then made
//! stale by hand (estimates of 99 measured at unix time 1000, as if long ago); a second run
//! with re-scrapes brings back the testnet's true figures (one seed IP, no other peer) with
//! their new time, counts its re-scrapes, and `export` carries them.
//!
//! Loopback only: the testnet on 127.0.186.x (seeders on 127.0.187.x); runs bind
//! 127.0.188.x. Time limits only guard against a hang.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use estudely::testnet::TorrentKind;

mod common;

use common::{run_bounded, torrents, Finished, BIN};

const HANG: Duration = Duration::from_secs(120);

fn run_ok(args: &[&str]) -> Finished {
    let done = run_bounded(args, HANG);
    assert!(done.status.success(), "{args:?}: {}", done.stderr);
    done
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Every torrent's (key hex, seeds, peers, estimated_at, scraped_at).
type Row = (String, Option<i64>, Option<i64>, Option<i64>, i64);

fn rows(db: &Path) -> Vec<Row> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT hex(info_hash), seeds_estimate, peers_estimate, estimated_at, scraped_at \
             FROM torrents ORDER BY info_hash",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn counter(db: &Path, name: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT coalesce(max(value), 0) FROM counters WHERE name = ?1",
        [name],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn rescrapes_refresh_the_estimates_and_their_time() {
    let dir = tempfile::tempdir().unwrap();
    let net = "--nodes 12 --torrents 4 --no-metadata 0 --no-peers 0 --interval 10 \
               --seconds 300 --base-ip 127.0.186";
    let words: Vec<&str> = net.split_whitespace().collect();
    let (_net, boot, manifest) = common::testnet(&words, &dir.path().join("testnet.json"));
    let want: BTreeSet<String> = torrents(&manifest)
        .into_iter()
        .filter(|t| t.kind == TorrentKind::Ok)
        .map(|t| t.infohash.to_uppercase())
        .collect();
    let db = dir.path().join("index.sqlite");
    let db_s = db.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--db",
            db_s,
            "--bootstrap",
            &boot,
            "--bind",
            "127.0.188.1:0",
            "--rate",
            "200",
            "--overall-timeout",
            "20",
        ];
        args.extend_from_slice(extra);
        let done = run_ok(&args);
        eprintln!("{}", done.stderr);
        done
    };

    let first = run(&["--rescrape-rate", "0"]);
    assert!(
        !first.stderr.contains("re-scrapes:"),
        "off: no re-scrape figures"
    );
    let stored: BTreeSet<String> = rows(&db).into_iter().map(|r| r.0).collect();
    assert_eq!(stored, want, "every served torrent stored");
    assert_eq!(counter(&db, "rescrapes_sent"), 0);

    // Long ago, the swarms were bigger.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE torrents SET seeds_estimate = 99, peers_estimate = 99, \
             estimated_at = 1000, scraped_at = 1000",
            [],
        )
        .unwrap();

    let before = unix_now();
    let second = run(&["--rescrape-rate", "600", "--rescrape-after", "3600"]);
    let after = unix_now();
    for (key, seeds, peers, estimated_at, scraped_at) in rows(&db) {
        assert_eq!(
            (seeds, peers),
            (Some(1), Some(0)),
            "{key}: one seed IP announces it, no other peer"
        );
        let at = estimated_at.expect("a time");
        assert!(
            (before..=after).contains(&at) && scraped_at == at,
            "{key}: measured during the second run ({before}..{after}): {at}, tried {scraped_at}"
        );
    }
    // With --rescrape-after 3600, each torrent once (a re-scrape replaced by a discovery
    // search of the same torrent ends empty and is not repeated within the hour either).
    let sent = counter(&db, "rescrapes_sent");
    let answered = counter(&db, "rescrapes_answered");
    let empty = counter(&db, "rescrapes_empty");
    assert_eq!(sent, 4, "{}", second.stderr);
    assert_eq!(answered + empty, 4);
    assert!(answered >= 1);
    // `re-scrapes: S sent, A with estimates, E empty, R refused, Q get_peers`.
    let figures: Vec<i64> = second
        .stderr
        .split("re-scrapes: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no re-scrape figures: {}", second.stderr))
        .split(';')
        .next()
        .unwrap()
        .split(", ")
        .map(|f| f.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(figures[..3], [sent, answered, empty], "{}", second.stderr);
    let get_peers = figures[4];
    eprintln!("{get_peers} get_peers for {sent} re-scrapes");
    assert!(
        (sent..=sent * 16).contains(&get_peers),
        "at least one each, at most twice the cap of 8 answers each: {get_peers}"
    );

    let out = Command::new(BIN)
        .args(["export", "--db", db_s, "--format", "jsonl"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 4);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["seeds_estimate"], 1, "{line}");
        let at = v["estimated_at"].as_i64().expect("estimated_at");
        assert!((before..=after).contains(&at), "{line}");
    }
}
