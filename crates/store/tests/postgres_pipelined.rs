//! A long batch's torrents go to PostgreSQL in two statements, the second built while the
//! server runs the first (`Transaction::query_then`): both statements' rows come back, in
//! order, an error of the first is the one returned, and the batch is written as one.
#![cfg(feature = "postgres")]

mod common;

use common::Server;
use estudely_krpc::InfoHash;
use estudely_peer_wire::{FileEntry, Version};
use estudely_store::postgres::client::{Client, Row, SqlState, ToSql};
use estudely_store::postgres::PgStore;
use estudely_store::{Batch, Source, Store, Torrent};

fn client(url: &str) -> Client {
    let url = url.strip_prefix("postgres:").unwrap_or(url);
    Client::connect(&url.parse().unwrap()).unwrap()
}

#[test]
fn both_statements_answer_in_order() {
    let (_server, url) = Server::start();
    let mut c = client(&url);
    let mut tx = c.transaction().unwrap();
    let first = vec![1i32, 2];
    let (one, two) = tx
        .query_then(
            "SELECT x * 2 FROM unnest($1::int4[]) WITH ORDINALITY AS u(x, i) ORDER BY i",
            &[&first],
            || vec![3i32, 4, 5],
            |v| vec![v as &(dyn ToSql + Sync)],
        )
        .unwrap();
    let ints = |rows: Vec<Row>| rows.iter().map(|r| r.get(0)).collect::<Vec<i32>>();
    assert_eq!(ints(one), [2, 4]);
    assert_eq!(ints(two), [6, 8, 10]);
    tx.commit().unwrap();
}

#[test]
fn the_first_statements_error_is_returned() {
    let (_server, url) = Server::start();
    let mut c = client(&url);
    let mut tx = c.transaction().unwrap();
    let first = vec![0i32];
    let e = tx
        .query_then(
            "SELECT 10 / x FROM unnest($1::int4[]) AS u(x)",
            &[&first],
            || vec![5i32],
            |v| vec![v as &(dyn ToSql + Sync)],
        )
        .unwrap_err();
    assert_eq!(e.code(), Some(&SqlState::DIVISION_BY_ZERO), "{e}");
}

fn torrent(i: u32, discovered: i64) -> Torrent {
    let mut key = [0u8; 20];
    key[..4].copy_from_slice(&i.to_be_bytes());
    let name = format!("torrent number {i}");
    Torrent {
        info_hash: InfoHash(key),
        info_hash_v2: None,
        name: name.clone().into_bytes(),
        total_bytes: 1000,
        piece_length: 16384,
        file_count: 1,
        private: false,
        version: Version::V1,
        files: vec![FileEntry {
            path: vec![name.into_bytes()],
            length: 1000,
        }],
        discovered,
        source: Source::Sample,
        seeds_estimate: None,
        peers_estimate: None,
        category: None,
        release: None,
    }
}

/// 300 torrents stored, then a batch of 600 (long enough for two statements) holding them
/// again among 300 new ones, old and new in both halves: each stored once, the new ones as
/// given, the old ones with only `last_seen` raised, and the totals counting 600.
#[test]
fn a_long_batch_in_two_statements_stores_each_torrent_once() {
    let (_server, url) = Server::start();
    let mut store = PgStore::connect(&url).unwrap();
    let old: Vec<Torrent> = (0..600).step_by(2).map(|i| torrent(i, 100)).collect();
    store
        .write(
            "me",
            &Batch {
                torrents: old,
                ..Batch::default()
            },
        )
        .unwrap();
    let again: Vec<Torrent> = (0..600)
        .map(|i| torrent(i, if i % 2 == 0 { 250 } else { 300 }))
        .collect();
    store
        .write(
            "me",
            &Batch {
                torrents: again,
                ..Batch::default()
            },
        )
        .unwrap();
    assert_eq!(store.torrent_count().unwrap(), 600);
    let mut c = client(&url);
    let rows = c
        .query(
            "SELECT discovered, last_seen, count(*) FROM torrents GROUP BY 1, 2 ORDER BY 1",
            &[],
        )
        .unwrap();
    let groups: Vec<(i64, i64, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(groups, [(100, 250, 300), (300, 300, 300)]);
    let counted: i64 = c
        .query_one("SELECT count(*) FROM torrents", &[])
        .unwrap()
        .get(0);
    assert_eq!(counted, 600);
}
