//! Test helpers: a fresh index in a temporary directory, and sample torrents.

use estudely_krpc::InfoHash;
use estudely_peer_wire::{FileEntry, Version};

use super::SqliteStore;
use crate::prune::{PruneFilter, PruneRules};
use crate::{Category, Classifier, Source, StoredTorrent, Torrent};

/// A fresh index in a temporary directory (kept alive by the first value).
pub fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("test.sqlite")).unwrap();
    (dir, store)
}

/// A v1 single-file torrent keyed `[key; 20]`, named `name`, discovered at `at`, classified
/// by the built-in rules.
pub fn torrent(key: u8, name: &[u8], at: i64) -> Torrent {
    static CLASSIFIER: std::sync::OnceLock<Classifier> = std::sync::OnceLock::new();
    let mut t = Torrent {
        info_hash: InfoHash([key; 20]),
        info_hash_v2: None,
        name: name.to_vec(),
        total_bytes: 1000,
        piece_length: 16384,
        file_count: 1,
        private: false,
        version: Version::V1,
        files: vec![FileEntry {
            path: vec![name.to_vec()],
            length: 1000,
        }],
        discovered: at,
        source: Source::Sample,
        seeds_estimate: None,
        peers_estimate: None,
        category: None,
        release: None,
    };
    t.classify(CLASSIFIER.get_or_init(Classifier::default));
    t
}

/// The names of `hits`, in order (UTF-8 names only).
pub fn names(hits: Vec<StoredTorrent>) -> Vec<String> {
    hits.into_iter()
        .map(|h| String::from_utf8_lossy(&h.torrent.name).into_owned())
        .collect()
}

/// Ten torrents for prune tests: key `i` (1 to 10) discovered at `100 * i`, of `1000 * i`
/// bytes; the odd ones films (`Film{i}.2019.1080p.BluRay.x264.mkv`), the even ones
/// `notes {i}.pdf`.
pub fn ten() -> Vec<Torrent> {
    (1..=10u8)
        .map(|i| {
            let name = if i % 2 == 1 {
                format!("Film{i}.2019.1080p.BluRay.x264.mkv")
            } else {
                format!("notes {i}.pdf")
            };
            let mut t = torrent(i, name.as_bytes(), 100 * i64::from(i));
            t.total_bytes = 1000 * u64::from(i);
            t
        })
        .collect()
}

/// Prune rules, each alone and some together, with the keys (first bytes) each leaves of
/// [`ten`].
pub fn prune_cases() -> Vec<(PruneRules, Vec<u8>)> {
    let filter = |f: PruneFilter| PruneRules {
        filter: f,
        ..PruneRules::default()
    };
    let regex = |r: &str| Some(regex::Regex::new(r).unwrap());
    vec![
        (
            filter(PruneFilter {
                discovered_before: Some(400),
                ..PruneFilter::default()
            }),
            vec![4, 5, 6, 7, 8, 9, 10],
        ),
        (
            filter(PruneFilter {
                categories: vec![Category::Movie],
                ..PruneFilter::default()
            }),
            vec![2, 4, 6, 8, 10],
        ),
        (
            filter(PruneFilter {
                larger_than: Some(8000),
                ..PruneFilter::default()
            }),
            vec![1, 2, 3, 4, 5, 6, 7, 8],
        ),
        (
            filter(PruneFilter {
                smaller_than: Some(3000),
                ..PruneFilter::default()
            }),
            vec![3, 4, 5, 6, 7, 8, 9, 10],
        ),
        (
            PruneRules {
                name: regex("(?i)^NOTES [1-4]\\.PDF$"),
                ..PruneRules::default()
            },
            vec![1, 3, 5, 6, 7, 8, 9, 10],
        ),
        (
            PruneRules {
                max_torrents: Some(3),
                ..PruneRules::default()
            },
            vec![8, 9, 10],
        ),
        // AND: films older than 800 and smaller than 6000 bytes, and only the oldest of
        // them the cap of 8 torrents asks for (2).
        (
            PruneRules {
                filter: PruneFilter {
                    discovered_before: Some(800),
                    categories: vec![Category::Movie],
                    smaller_than: Some(6000),
                    ..PruneFilter::default()
                },
                name: regex("Film"),
                max_torrents: Some(8),
                ..PruneRules::default()
            },
            vec![2, 4, 5, 6, 7, 8, 9, 10],
        ),
    ]
}
