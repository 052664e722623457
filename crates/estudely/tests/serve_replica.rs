//! `estudely serve` on a read replica: a PostgreSQL hot standby that streams the primary's
//! WAL (`scripts/pg-test-server standby`: `pg_basebackup -R` into a new directory). The
//! primary takes the writes; `serve --db <standby>` answers every page and API route
//! from the standby, sees later writes once they are replayed, and never attempts a write
//! there (a standby refuses every one and logs it as "cannot execute ... in a read-only
//! transaction"; its server log must hold no error at all). A standby whose schema is
//! older than this build is refused at start with one clear line: `serve` only checks the
//! schema version, it never migrates.
//!
//! Loopback only: `serve` listens on 127.6.50.x; both servers on unix sockets. Waits poll
//! with no clock of their own (nextest's slow-timeout catches a hang).

#[path = "common/pg.rs"]
mod pg;

#[path = "common/chromium.rs"]
mod chromium;
mod common;
#[path = "common/web.rs"]
mod web;

use std::time::Duration;

use common::run_bounded;
use estudely::store::postgres::PgStore;
use estudely::store::{Batch, Classifier, Source, Store, Torrent};
use estudely_krpc::InfoHash;
use estudely_peer_wire::{FileEntry, Version};
use pg::PgServer;
use serde_json::Value;
use web::Web;

/// Only guards the processes run to their end against a hang.
const HANG: Duration = Duration::from_secs(120);

fn key(i: u32) -> InfoHash {
    let mut k = [0u8; 20];
    k[..4].copy_from_slice(&i.to_be_bytes());
    k[19] = 0x5e;
    InfoHash(k)
}

/// Torrent `i`, named `name`, with one file.
fn torrent(i: u32, name: &str) -> Torrent {
    let mut t = Torrent {
        info_hash: key(i),
        info_hash_v2: None,
        name: name.as_bytes().to_vec(),
        total_bytes: 1_000_000 + u64::from(i),
        piece_length: 16_384,
        file_count: 1,
        private: false,
        version: Version::V1,
        files: vec![FileEntry {
            path: vec![format!("{name}.mkv").into_bytes()],
            length: 1_000_000 + u64::from(i),
        }],
        discovered: 1_700_000_000 + i64::from(i),
        source: Source::Sample,
        seeds_estimate: None,
        peers_estimate: None,
        category: None,
        release: None,
    };
    t.classify(&Classifier::default());
    t
}

fn write(store: &mut PgStore, torrents: Vec<Torrent>) {
    let batch = Batch {
        torrents,
        ..Batch::default()
    };
    store.write("primary-writer", &batch).expect("write");
}

/// The infohashes (hex) of a search API answer.
fn hits(v: &Value) -> Vec<String> {
    let list = v["results"]
        .as_array()
        .or_else(|| v.as_array())
        .unwrap_or_else(|| panic!("no results in {v}"));
    list.iter()
        .map(|h| h["infohash"].as_str().expect("an infohash").to_owned())
        .collect()
}

/// Lines of a PostgreSQL server log that report a failed statement or a write refused.
fn errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains("ERROR:") || l.contains("FATAL:") || l.contains("read-only transaction")
        })
        .collect()
}

#[test]
fn serve_reads_a_streaming_standby_and_never_writes_there() {
    let primary = PgServer::start();
    let standby = primary.standby();
    // The schema and the first torrents, on the primary.
    let mut store = PgStore::connect(primary.url()).expect("the primary");
    let first: Vec<Torrent> = (1..=30)
        .map(|i| torrent(i, &format!("Replica Alpha {i} 1080p")))
        .collect();
    write(&mut store, first);
    primary.wait_replayed(&standby);

    let web = Web::start(&[
        "serve",
        "--db",
        &format!("postgres:{}", standby.url()),
        "--listen",
        "127.6.50.1:0",
    ]);
    let found = hits(&web.json("/api/v1/search?q=alpha&limit=100"));
    assert_eq!(found.len(), 30, "{found:?}");
    let one = hex::encode(key(7).0);
    assert!(found.contains(&one));
    let t = web.json(&format!("/api/v1/torrents/{one}"));
    assert_eq!(t["name"], "Replica Alpha 7 1080p", "{t}");
    let stats = web.json("/api/v1/stats");
    assert_eq!(stats["torrents"], 30, "{stats}");
    // Every page and feed, each a 200 from the standby.
    for path in [
        "/",
        "/search?q=alpha",
        "/search?q=alpha&sort=size",
        "/search?q=alpha&sort=discovered",
        "/search?q=lph",
        &format!("/torrent/{one}"),
        "/recent",
        "/stats",
        "/torznab/api?t=caps",
        "/torznab/api?t=search&q=alpha",
        "/feed",
        "/readyz",
    ] {
        web.ok(path);
    }
    assert!(web
        .ok("/search?q=alpha")
        .text()
        .contains("Replica Alpha 7 1080p"));

    // Later writes on the primary reach the pages once the standby has replayed them.
    write(&mut store, vec![torrent(100, "Replica Bravo Late Arrival")]);
    primary.wait_replayed(&standby);
    let late = hex::encode(key(100).0);
    assert_eq!(
        hits(&web.json("/api/v1/search?q=bravo")),
        vec![late.clone()]
    );
    assert!(web
        .ok(&format!("/torrent/{late}"))
        .text()
        .contains("Replica Bravo Late Arrival"));

    // Nothing was written, nor attempted, on the standby; serve logged no failure.
    let log = standby.log();
    assert!(errors(&log).is_empty(), "the standby's log:\n{log}");
    let served = web.log();
    assert!(
        !served.contains("ERROR") && !served.contains("error"),
        "serve's log:\n{served}"
    );
    drop(web);

    // A standby whose schema is older than this build: refused at start, in one line,
    // and nothing attempted there either.
    let mut sql = postgres::Client::connect(primary.url(), postgres::NoTls).unwrap();
    sql.batch_execute(
        "DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)",
    )
    .unwrap();
    primary.wait_replayed(&standby);
    let db = format!("postgres:{}", standby.url());
    let old = run_bounded(&["serve", "--db", &db, "--listen", "127.6.50.2:0"], HANG);
    assert!(
        !old.status.success(),
        "served an old schema: {}",
        old.stderr
    );
    let lines: Vec<&str> = old.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {}", old.stderr);
    let line = lines[0];
    assert!(line.starts_with("error: "), "{line}");
    assert!(line.contains("schema version"), "{line}");
    assert!(
        line.contains("standby"),
        "says what to do on a standby: {line}"
    );
    let log = standby.log();
    assert!(errors(&log).is_empty(), "the standby's log:\n{log}");
}
