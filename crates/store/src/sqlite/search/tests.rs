use estudely_krpc::InfoHash;
use estudely_peer_wire::FileEntry;

use super::super::fixtures::{names, open, torrent};
use super::super::SqliteStore;
use super::*;
use crate::{Batch, Category, Store as _, Torrent};

fn write(s: &mut SqliteStore, torrents: Vec<Torrent>) {
    let batch = Batch {
        torrents,
        ..Batch::default()
    };
    s.write("t", &batch).unwrap();
}

fn sized(key: u8, name: &str, at: i64, bytes: u64) -> Torrent {
    let mut t = torrent(key, name.as_bytes(), at);
    t.total_bytes = bytes;
    t
}

/// `find` by newest first, the exact names.
fn newest(s: &mut SqliteStore, q: &str) -> Vec<String> {
    names(s.search_sorted(q, SearchSort::Discovered, 50, 0).unwrap())
}

#[test]
fn search_sorts_by_size_discovery_and_seeders() {
    let (_dir, mut s) = open();
    let mut torrents = vec![
        sized(1, "linux small", 300, 10),
        sized(2, "linux big", 100, 5_000),
        sized(3, "linux mid", 200, 700),
        sized(4, "linux late", 300, 1),
        sized(5, "other", 999, 1 << 40),
    ];
    torrents[0].seeds_estimate = Some(5);
    torrents[2].seeds_estimate = Some(40);
    torrents[3].seeds_estimate = Some(0);
    write(&mut s, torrents);
    let by = |s: &mut SqliteStore, sort, limit, offset| {
        names(s.search_sorted("LINUX", sort, limit, offset).unwrap())
    };
    assert_eq!(
        by(&mut s, SearchSort::Size, 10, 0),
        ["linux big", "linux mid", "linux small", "linux late"]
    );
    assert_eq!(
        by(&mut s, SearchSort::Size, 2, 1),
        ["linux mid", "linux small"]
    );
    // Ties on `discovered`: the newest row first.
    assert_eq!(
        by(&mut s, SearchSort::Discovered, 10, 0),
        ["linux late", "linux small", "linux mid", "linux big"]
    );
    // Unknown seeders last.
    assert_eq!(
        by(&mut s, SearchSort::Seeders, 10, 0),
        ["linux mid", "linux small", "linux late", "linux big"]
    );
    assert_eq!(by(&mut s, SearchSort::Relevance, 10, 0).len(), 4);
    assert_eq!(
        by(&mut s, SearchSort::Relevance, 10, 0),
        names(s.search("linux", 10, 0).unwrap())
    );
    for sort in [
        SearchSort::Relevance,
        SearchSort::Size,
        SearchSort::Discovered,
        SearchSort::Seeders,
    ] {
        for q in [
            "\"", "*", "NEAR(", "-x", "a:b", "", "🙂", "\u{301}", "x\0y", "-", "-\"",
        ] {
            s.search_sorted(q, sort, 10, 0)
                .unwrap_or_else(|e| panic!("{q:?}: {e:#}"));
        }
        assert!(by(&mut s, sort, 0, 0).is_empty());
        assert!(by(&mut s, sort, 10, usize::MAX).is_empty());
        assert!(by(&mut s, sort, usize::MAX, usize::MAX).is_empty());
    }
}

#[test]
fn phrases_and_exclusions() {
    let (_dir, mut s) = open();
    write(
        &mut s,
        vec![
            torrent(1, b"ubuntu desktop amd64", 1),
            torrent(2, b"desktop ubuntu", 2),
            torrent(3, b"Ubuntu Server", 3),
            torrent(4, b"kubuntu desktop", 4),
        ],
    );
    assert_eq!(
        newest(&mut s, r#""ubuntu desktop""#),
        ["ubuntu desktop amd64"]
    );
    assert_eq!(
        newest(&mut s, "ubuntu -server"),
        ["desktop ubuntu", "ubuntu desktop amd64"]
    );
    assert_eq!(
        newest(&mut s, r#"ubuntu -"desktop amd64""#),
        ["Ubuntu Server", "desktop ubuntu"]
    );
    assert_eq!(newest(&mut s, r#"desktop -"ubuntu"#), ["kubuntu desktop"]);
    // Exclusions alone: the newest torrents without them.
    assert_eq!(newest(&mut s, "-ubuntu"), ["kubuntu desktop"]);
    assert_eq!(newest(&mut s, "-desktop -amd64"), ["Ubuntu Server"]);
    assert!(newest(&mut s, "").is_empty());
    assert!(newest(&mut s, "-").is_empty());
    let e = s.search_sorted("ubuntu size:big", SearchSort::Relevance, 10, 0);
    let e = e.unwrap_err();
    assert!(e.is::<crate::UsageError>(), "{e}");
}

#[test]
fn fields_filter_the_matches() {
    let (_dir, mut s) = open();
    let day = 86_400;
    let jan = 1_767_225_600; // 2026-01-01
    let mut torrents = vec![
        sized(1, "film one", jan - 1, 2_000_000_000),
        sized(2, "film two", jan, 500_000_000),
        sized(3, "film three", jan + 31 * day, 3_000_000_000),
        sized(4, "show one", jan + day, 1_500_000_000),
    ];
    torrents[1].file_count = 12;
    torrents[3].file_count = 2;
    for (t, c) in torrents.iter_mut().zip([
        Category::Movie,
        Category::Movie,
        Category::Movie,
        Category::Tv,
    ]) {
        t.category = Some(c);
    }
    write(&mut s, torrents);
    assert_eq!(newest(&mut s, "film size:>1GB"), ["film three", "film one"]);
    assert_eq!(newest(&mut s, "film size:<700MB"), ["film two"]);
    assert_eq!(newest(&mut s, "size:1GB..2GB"), ["show one", "film one"]);
    assert_eq!(
        newest(&mut s, "after:2026-01-01 before:2026-02-01"),
        ["show one", "film two"]
    );
    assert_eq!(newest(&mut s, "film before:2026-01-01"), ["film one"]);
    assert_eq!(newest(&mut s, "files:>10"), ["film two"]);
    assert_eq!(newest(&mut s, "files:<3 one"), ["show one", "film one"]);
    assert_eq!(newest(&mut s, "files:2 one"), ["show one"]);
    assert_eq!(newest(&mut s, "files:1"), ["film three", "film one"]);
    assert_eq!(newest(&mut s, "category:tv"), ["show one"]);
    assert_eq!(newest(&mut s, "one category:movie"), ["film one"]);
    assert_eq!(
        newest(&mut s, "category:movie -two size:>1GB"),
        ["film three", "film one"]
    );
    assert!(newest(&mut s, "category:movie category:tv").is_empty());
    // A browse reads only its page: each page of one is the next newest.
    let page = |s: &mut SqliteStore, sort, offset| {
        names(s.search_sorted("category:movie", sort, 1, offset).unwrap())
    };
    for sort in [SearchSort::Discovered, SearchSort::Relevance] {
        let pages: Vec<Vec<String>> = (0..4).map(|o| page(&mut s, sort, o)).collect();
        assert_eq!(
            pages,
            [
                vec!["film three"],
                vec!["film two"],
                vec!["film one"],
                vec![]
            ]
        );
    }
    assert!(newest(&mut s, "one size:>2GB size:<1GB").is_empty());
    // The category parameter and a category field: the same is fine, two are nothing.
    let inn = |s: &mut SqliteStore, q: &str, c| {
        names(s.search_in(q, c, SearchSort::Size, 10, 0).unwrap())
    };
    assert_eq!(inn(&mut s, "one category:tv", Category::Tv), ["show one"]);
    assert!(inn(&mut s, "one category:tv", Category::Movie).is_empty());
    assert_eq!(
        inn(&mut s, "", Category::Movie),
        ["film three", "film one", "film two"]
    );
    // Sorts other than relevance with fields only.
    assert_eq!(
        names(
            s.search_sorted("size:>1GB", SearchSort::Size, 10, 0)
                .unwrap()
        ),
        ["film three", "film one", "show one"]
    );
}

#[test]
fn category_counts_within_the_candidates() {
    let (_dir, mut s) = open();
    let mut torrents = vec![
        torrent(1, b"live show", 1),
        torrent(2, b"live film", 2),
        torrent(3, b"live album", 3),
        torrent(4, b"live film two", 4),
        torrent(5, b"dead film", 5),
    ];
    for (t, c) in torrents.iter_mut().zip([
        Some(Category::Tv),
        Some(Category::Movie),
        None,
        Some(Category::Movie),
        Some(Category::Movie),
    ]) {
        t.category = c;
    }
    write(&mut s, torrents);
    let counts =
        |s: &mut SqliteStore, q: &str| s.category_counts(&SearchQuery::parse(q).unwrap()).unwrap();
    let live = counts(&mut s, "live category:tv");
    assert_eq!(live.counts, [(Category::Movie, 2), (Category::Tv, 1)]);
    assert!(!live.capped);
    assert_eq!(live.of(Category::Movie), 2);
    assert_eq!(live.of(Category::Game), 0);
    assert_eq!(counts(&mut s, "film -two").counts, [(Category::Movie, 2)]);
    assert_eq!(counts(&mut s, "-live").counts, [(Category::Movie, 1)]);
    assert_eq!(counts(&mut s, ""), CategoryCounts::default());
    // Capped: among the newest `window` candidates only.
    let q = SearchQuery::parse("live").unwrap();
    let few = s.guarded(true, |c| counts_within(c, &q, 2)).unwrap();
    assert_eq!(few.counts, [(Category::Movie, 1)]);
    assert!(few.capped);
    let q = SearchQuery::parse("size:>1").unwrap();
    let few = s.guarded(true, |c| counts_within(c, &q, 3)).unwrap();
    assert_eq!(few.counts, [(Category::Movie, 2)]);
    assert!(few.capped);
}

#[test]
fn the_file_that_matched() {
    let (_dir, mut s) = open();
    let mut pack = torrent(1, b"Collection", 1);
    pack.files = ["a/readme.txt", "b/Ubuntu Server Guide.pdf", "c/server.txt"]
        .iter()
        .map(|p| FileEntry {
            path: p.split('/').map(|c| c.as_bytes().to_vec()).collect(),
            length: 1,
        })
        .collect();
    pack.file_count = 3;
    write(&mut s, vec![pack, torrent(2, b"server guide", 2)]);
    let q = SearchQuery::parse(r#""server guide""#).unwrap();
    let hits = s.find(&q, SearchSort::Discovered, 10, 0).unwrap();
    assert_eq!(names(hits.clone()), ["server guide", "Collection"]);
    assert_eq!(
        s.matched_files(&q, &hits).unwrap(),
        [None, Some("b/Ubuntu Server Guide.pdf".to_owned())]
    );
    let gone = StoredTorrent {
        torrent: torrent(9, b"x", 1),
        files_omitted: 0,
        last_seen: 0,
        estimated_at: None,
    };
    assert_eq!(s.matched_files(&q, &[gone]).unwrap(), [None]);
    assert!(s.torrent(&InfoHash([9; 20])).unwrap().is_none());
}
