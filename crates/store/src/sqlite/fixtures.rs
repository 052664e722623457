//! Test helpers: a fresh index in a temporary directory, and sample torrents.

use estudely_krpc::InfoHash;
use estudely_peer_wire::{FileEntry, Version};

use super::SqliteStore;
use crate::{Classifier, Source, StoredTorrent, Torrent};

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
