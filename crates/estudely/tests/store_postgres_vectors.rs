//! The search vectors the PostgreSQL backend builds itself (`postgres/text.rs`,
//! `search_vector`) are exactly those `to_tsvector` builds on the server: the same words,
//! positions and weights, whatever the words (numbers with exponents, words repeated past
//! PostgreSQL's 255 positions, texts past its last position 16383, letters outside ASCII,
//! long words), so that a search finds the same torrents whichever side built a vector.
//! Every torrent is written through the store, then its `search` column compared with the
//! server's own vector of the same words.

#[path = "common/pg.rs"]
mod pg;

use estudely::store::postgres::PgStore;
use estudely::store::{Batch, Source, Store, Torrent};
use estudely_krpc::InfoHash;
use estudely_peer_wire::{FileEntry, Version};
use pg::PgServer;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Words the tokenizer could get wrong: exponents (`1e5` is one number, `1e5x` a number
/// and a word), letters and digits mixed, letters outside ASCII, numbers that are not
/// ASCII digits, a word of 300 letters.
const TRICKY: &[&str] = &[
    "1e5",
    "1e5x",
    "2e",
    "e2",
    "0e0e0",
    "12e3e4",
    "x264",
    "264x",
    "h265e5",
    "e",
    "0",
    "007",
    "ärger",
    "日本語",
    "x²y",
    "ⅻ",
    "straße",
    "ǆ",
    "ﬁ",
];

fn random_word(rng: &mut SmallRng) -> String {
    if rng.gen_bool(0.2) {
        return TRICKY[rng.gen_range(0..TRICKY.len())].into();
    }
    if rng.gen_bool(0.01) {
        return "l".repeat(300);
    }
    let alphabet: Vec<char> = "abcde0123456789äжλ語カ한".chars().collect();
    (0..rng.gen_range(1..=4))
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
        .collect()
}

/// Words separated by one space: what `search_words` makes of them is themselves.
fn text(rng: &mut SmallRng, words: usize) -> String {
    (0..words)
        .map(|_| random_word(rng))
        .collect::<Vec<_>>()
        .join(" ")
}

fn torrent(i: u32, name: String, paths: Vec<String>) -> Torrent {
    let mut key = [0u8; 20];
    key[..4].copy_from_slice(&i.to_be_bytes());
    let files: Vec<FileEntry> = paths
        .into_iter()
        .map(|p| FileEntry {
            path: vec![p.into_bytes()],
            length: 1,
        })
        .collect();
    Torrent {
        info_hash: InfoHash(key),
        info_hash_v2: None,
        name: name.into_bytes(),
        total_bytes: files.len() as u64,
        piece_length: 16384,
        file_count: files.len() as u64,
        private: false,
        version: Version::V1,
        files,
        discovered: 1_700_000_000,
        source: Source::Sample,
        seeds_estimate: None,
        peers_estimate: None,
        category: None,
        release: None,
    }
}

#[test]
fn client_vectors_are_the_servers() {
    let url = PgServer::shared().database();
    let mut store = PgStore::connect(&url).unwrap();
    let mut rng = SmallRng::seed_from_u64(21);
    let mut cases: Vec<(String, Vec<String>)> = Vec::new();
    // Common words only (built by the store), then with tricky ones (some left to the
    // server).
    for plain in [true, false] {
        for _ in 0..300 {
            let (n, files) = (rng.gen_range(0..8), rng.gen_range(0..6));
            let pick = |rng: &mut SmallRng, words| loop {
                let t = text(rng, words);
                if !plain || !TRICKY.iter().any(|w| t.contains(w)) {
                    break t;
                }
            };
            let name = pick(&mut rng, n);
            let paths = (0..files)
                .map(|_| {
                    let words = rng.gen_range(1..5);
                    pick(&mut rng, words)
                })
                .collect();
            cases.push((name, paths));
        }
    }
    // A word repeated past 255 positions, in the name and again in the paths.
    cases.push(("a ".repeat(300).trim_end().into(), vec!["a b ".repeat(200)]));
    // Past the last position: 16,500 words of a letter and a digit (each 127 times), under
    // the store's 64 KiB of words.
    let many = |from: usize| {
        (from..from + 16_500)
            .map(|i| format!("{}{}", (b'a' + (i % 26) as u8) as char, i % 10))
            .collect::<Vec<_>>()
            .join(" ")
    };
    cases.push((many(0), vec![many(7)]));
    cases.push(("x y".into(), vec![many(3)]));
    cases.push((String::new(), vec![many(5), "zz".into()]));
    cases.push((String::new(), Vec::new()));

    // The store's own words (`search_words`) of these texts are the texts themselves.
    for (name, paths) in &cases {
        for w in std::iter::once(name)
            .chain(paths)
            .flat_map(|t| t.split(' '))
        {
            assert!(
                w.chars()
                    .all(|c| c.is_alphanumeric() && c.to_lowercase().eq([c])),
                "{w}"
            );
        }
    }
    let torrents: Vec<Torrent> = cases
        .iter()
        .enumerate()
        .map(|(i, (name, paths))| torrent(i as u32, name.clone(), paths.clone()))
        .collect();
    for chunk in torrents.chunks(100) {
        let batch = Batch {
            torrents: chunk.to_vec(),
            ..Batch::default()
        };
        store.write("test", &batch).unwrap();
    }

    let mut sql = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut differ = Vec::new();
    for (t, (name, paths)) in torrents.iter().zip(&cases) {
        let row = sql
            .query_one(
                "SELECT search::text,
                        (setweight(to_tsvector('simple', $2), 'A')
                         || to_tsvector('simple', $3))::text
                 FROM torrents WHERE info_hash = $1",
                &[&&t.info_hash.0[..], name, &paths.join(" ")],
            )
            .unwrap();
        let (stored, server): (String, String) = (row.get(0), row.get(1));
        if stored != server {
            let cut = |s: &str| s.chars().take(300).collect::<String>();
            differ.push(format!(
                "{:?} {:?}:\n  stored {}\n  server {}",
                cut(name),
                cut(&paths.join(" ")),
                cut(&stored),
                cut(&server)
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "{} of {} vectors differ, e.g. {}",
        differ.len(),
        cases.len(),
        differ[0]
    );
}
