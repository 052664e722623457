//! What the benchmarks share: synthetic torrents (names of 3-8 words from a fixed
//! vocabulary, 1-20 files each), the same for the same seed.
#![allow(dead_code)] // each benchmark uses a different subset

use std::time::Duration;

use estudely::store::{Source, Torrent};
use estudely_krpc::InfoHash;
use estudely_peer_wire::{FileEntry, Version};
use rand::rngs::SmallRng;
use rand::Rng;

/// The words of the synthetic names and paths.
pub const VOCAB: &[&str] = &[
    "ubuntu",
    "debian",
    "linux",
    "desktop",
    "server",
    "amd64",
    "iso",
    "release",
    "final",
    "album",
    "live",
    "concert",
    "remastered",
    "deluxe",
    "edition",
    "collection",
    "complete",
    "season",
    "episode",
    "series",
    "documentary",
    "nature",
    "ocean",
    "planet",
    "earth",
    "history",
    "science",
    "lecture",
    "course",
    "python",
    "rust",
    "programming",
    "guide",
    "book",
    "novel",
    "audiobook",
    "chapter",
    "volume",
    "part",
    "archive",
    "backup",
    "photos",
    "holiday",
    "summer",
    "winter",
    "spring",
    "autumn",
    "music",
    "jazz",
    "classical",
    "piano",
    "violin",
    "orchestra",
    "symphony",
    "opera",
    "rock",
    "blues",
    "folk",
    "ambient",
    "electronic",
    "dataset",
    "images",
    "samples",
    "textures",
    "fonts",
    "icons",
    "wallpapers",
    "maps",
    "atlas",
    "game",
    "soundtrack",
    "original",
    "score",
    "theme",
    "mix",
    "radio",
    "podcast",
    "interview",
    "open",
    "source",
    "software",
    "tools",
    "utilities",
    "drivers",
    "firmware",
    "kernel",
    "build",
    "mirror",
    "public",
    "domain",
    "film",
    "classic",
    "silent",
    "short",
    "animation",
    "cartoon",
    "river",
    "mountain",
    "forest",
    "city",
    "night",
    "morning",
    "journey",
    "travel",
    "world",
    "café",
    "noël",
    "über",
    "größe",
    "東京",
    "音楽",
    "мир",
    "книга",
    "2019",
    "2020",
    "2021",
];

/// `n` random words of [`VOCAB`].
pub fn words(rng: &mut SmallRng, n: usize) -> Vec<&'static str> {
    (0..n)
        .map(|_| VOCAB[rng.gen_range(0..VOCAB.len())])
        .collect()
}

/// Synthetic torrent `i` (discovered at `1_700_000_000 + i`).
pub fn synthetic(rng: &mut SmallRng, i: usize) -> Torrent {
    let mut key = [0u8; 20];
    rng.fill(&mut key);
    let count = rng.gen_range(3..=8);
    let name = words(rng, count).join(" ");
    let nfiles = rng.gen_range(1..=20);
    let files: Vec<FileEntry> = (0..nfiles)
        .map(|f| {
            // A single file is named as the torrent; a multi-file torrent's paths are below
            // its name: sometimes a folder, then a file.
            let path = if nfiles == 1 {
                vec![name.clone().into_bytes()]
            } else {
                let w = rng.gen_range(1..=3);
                let ext = ["mkv", "flac", "pdf", "iso", "jpg"][f % 5];
                let file = format!("{:02} {}.{ext}", f + 1, words(rng, w).join(" "));
                if rng.gen_bool(0.3) {
                    vec![words(rng, 1)[0].as_bytes().to_vec(), file.into_bytes()]
                } else {
                    vec![file.into_bytes()]
                }
            };
            FileEntry {
                path,
                length: rng.gen_range(1_000..5_000_000_000),
            }
        })
        .collect();
    let mut t = Torrent {
        info_hash: InfoHash(key),
        info_hash_v2: None,
        name: name.into_bytes(),
        total_bytes: files.iter().map(|f| f.length).sum(),
        piece_length: 1 << rng.gen_range(14..=24),
        file_count: files.len() as u64,
        private: false,
        version: Version::V1,
        files,
        discovered: 1_700_000_000 + i as i64,
        source: Source::Sample,
        seeds_estimate: None,
        peers_estimate: None,
        category: None,
        release: None,
    };
    // Classified as `run` does before it writes (the category and release columns cost
    // their bytes in the insert benches too).
    thread_local! {
        static CLASSIFIER: estudely::store::Classifier = estudely::store::Classifier::default();
    }
    CLASSIFIER.with(|c| t.classify(c));
    t
}

/// The `p` quantile of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
