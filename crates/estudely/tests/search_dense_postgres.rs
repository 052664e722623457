//! PostgreSQL search of dense words (in many rows: two common words): candidates from a
//! scan in table order that stops at the window, without the GIN index, whose posting
//! lists it would read whole; and the same exact results as before whenever a query has
//! fewer matches than its window.

#[path = "common/pg.rs"]
mod pg;

use estudely::store::postgres::PgStore;
use estudely::store::{Batch, Category, SearchQuery, SearchSort, Source, Store, Torrent};
use estudely_krpc::InfoHash;
use estudely_peer_wire::{FileEntry, Version};
use pg::PgServer;

/// A torrent named `name`, of `bytes`, classified `other`.
fn torrent(i: u32, name: &str, bytes: u64) -> Torrent {
    let mut key = [0u8; 20];
    key[..4].copy_from_slice(&i.to_be_bytes());
    Torrent {
        info_hash: InfoHash(key),
        info_hash_v2: None,
        name: name.as_bytes().to_vec(),
        total_bytes: bytes,
        piece_length: 16384,
        file_count: 1,
        private: false,
        version: Version::V1,
        files: vec![FileEntry {
            path: vec![name.as_bytes().to_vec()],
            length: bytes,
        }],
        discovered: 1_700_000_000 + i64::from(i),
        source: Source::Sample,
        seeds_estimate: None,
        peers_estimate: None,
        category: Some(Category::Other),
        release: None,
    }
}

/// A fresh index whose first row (in table order: written first, into an empty table) is
/// the largest torrent and matches `alpha beta` only as substrings of its name, followed
/// by `words` torrents holding both words.
fn index(words: u32) -> PgStore {
    let rest = (1..=words)
        .map(|i| torrent(i, &format!("alpha beta {i}"), 1000 + u64::from(i)))
        .collect();
    filled(torrent(0, "Alphabetical Betamax", 1 << 40), rest)
}

/// A fresh index holding `first`, then `rest` (in table order).
fn filled(first: Torrent, rest: Vec<Torrent>) -> PgStore {
    let mut store = PgStore::connect(&PgServer::shared().database()).expect("connect");
    assert!(store.substring_search(), "pg_trgm should be installed here");
    let mut batches = vec![vec![first]];
    batches.extend(rest.chunks(500).map(<[Torrent]>::to_vec));
    for torrents in batches {
        let batch = Batch {
            torrents,
            ..Batch::default()
        };
        store.write("me", &batch).expect("write");
    }
    store
}

#[test]
fn dense_words_take_the_first_word_matches_in_table_order() {
    // 2,500 matches: more than any window (1,000 ranked, 2,000 sorted or counted).
    let mut store = index(2_500);
    // The candidates are the first 2,000 matches of the words themselves: the substring
    // match, first in the table, is not one of them (through the indexes, it was, and
    // came first by size).
    assert_eq!(largest_of(&mut store, "alpha beta"), "alpha beta 2000");
    let q = SearchQuery::parse("alpha beta").unwrap();
    let counts = store.category_counts(&q).unwrap();
    assert!(counts.capped);
    assert_eq!(counts.of(Category::Other), 2_000);
    // By relevance: the best of the first 1,000 (equal ranks: the oldest first).
    assert_eq!(
        best_names(&mut store, "alpha beta", 3),
        ["alpha beta 1", "alpha beta 2", "alpha beta 3"]
    );
}

#[test]
fn fewer_matches_than_the_window_are_found_exactly() {
    // 1,500 word matches and the substring match: dense at the start of the table, but
    // fewer than the 2,000 a sort by size orders, so every match is a candidate.
    let mut store = index(1_500);
    assert_eq!(largest_of(&mut store, "alpha beta"), "Alphabetical Betamax");
    let q = SearchQuery::parse("alpha beta").unwrap();
    let counts = store.category_counts(&q).unwrap();
    assert!(!counts.capped);
    assert_eq!(counts.of(Category::Other), 1_501);
    // Words alone (a phrase finds no substrings): exact too.
    let q = SearchQuery::parse("\"alpha beta\"").unwrap();
    assert_eq!(
        store.category_counts(&q).unwrap().of(Category::Other),
        1_500
    );
}

/// A fresh index whose first row is the largest torrent and holds the word `lphabet` only
/// in its file's path, followed by `names` torrents whose names hold it only as a
/// substring (`Alphabetical N`).
fn fragment_index(names: u32) -> PgStore {
    let mut first = torrent(0, "Zither first", 1 << 40);
    first.files[0].path = vec![b"lphabet.txt".to_vec()];
    let rest = (1..=names)
        .map(|i| torrent(i, &format!("Alphabetical {i}"), 1000 + u64::from(i)))
        .collect();
    filled(first, rest)
}

fn largest_of(store: &mut PgStore, query: &str) -> String {
    let hits = store
        .search_sorted(query, SearchSort::Size, 1, 0)
        .expect("search");
    String::from_utf8_lossy(&hits[0].torrent.name).into_owned()
}

/// The names of the best `n` hits of `query` by relevance.
fn best_names(store: &mut PgStore, query: &str, n: usize) -> Vec<String> {
    let hits = store.search(query, n, 0).expect("search");
    hits.iter()
        .map(|h| String::from_utf8_lossy(&h.torrent.name).into_owned())
        .collect()
}

#[test]
fn a_dense_substring_takes_the_first_names_holding_it_in_table_order() {
    // 2,500 names hold the fragment: more than any window. The words are not dense (one
    // path in the table holds `lphabet` as a word), the substring is.
    let mut store = fragment_index(2_500);
    // The candidates are the first 2,000 names holding it: the path's word, first in
    // the table and the largest, is not one of them (through the indexes, it was).
    assert_eq!(largest_of(&mut store, "lphabet"), "Alphabetical 2000");
    let q = SearchQuery::parse("lphabet").unwrap();
    let counts = store.category_counts(&q).unwrap();
    assert!(counts.capped);
    assert_eq!(counts.of(Category::Other), 2_000);
    // By relevance: the best of the first 1,000 names (equal ranks and similarities: the
    // oldest first).
    assert_eq!(
        best_names(&mut store, "lphabet", 2),
        ["Alphabetical 1", "Alphabetical 2"]
    );
}

#[test]
fn fewer_names_than_the_window_holding_a_substring_are_found_exactly() {
    // 1,500 names: dense at the start of the table, but fewer than a sort's 2,000, so
    // every match is a candidate, the path's word among them.
    let mut store = fragment_index(1_500);
    assert_eq!(largest_of(&mut store, "lphabet"), "Zither first");
    let q = SearchQuery::parse("lphabet").unwrap();
    let counts = store.category_counts(&q).unwrap();
    assert!(!counts.capped);
    assert_eq!(counts.of(Category::Other), 1_501);
}

/// A search plans its statements for their values: a generic plan of a prepared statement
/// (PostgreSQL's choice from its sixth run) evaluated `to_tsquery($1)` on every row of a
/// scan in table order, doubling it.
#[test]
fn searches_plan_each_statement_for_its_values() {
    let mut store = index(10);
    let mode = |store: &PgStore| -> String {
        let rows = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(store.async_client().query_one("SHOW plan_cache_mode", &[]))
            .unwrap();
        rows.get(0)
    };
    assert_eq!(mode(&store), "auto");
    store.search("alpha beta", 3, 0).unwrap();
    assert_eq!(mode(&store), "force_custom_plan");
}
