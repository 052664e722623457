//! The torrents of an endless world: torrent `j` of seed `s` is a pure function of `(s, j)`,
//! so a world of 10 million torrents costs nothing until one is touched, and a test can
//! regenerate any of them to check what a crawler stored.
//!
//! The mix follows what an index of the public DHT holds: films with subtitles, samples and
//! NFOs; TV episodes and season packs; music albums with covers and cue sheets; books,
//! single and in packs; software; split archives. About one name in twenty is not ASCII and
//! one in fifty is hostile (commas, quotes, newlines, control characters, invalid UTF-8, in
//! the name and in file paths). Sizes and piece lengths are in the ranges real torrents
//! use (about 1,000 pieces each, so an info dict is 10-40 KB, as on the network).
//!
//! Why not [`crate::synthetic_torrent`]: that one is fixed (the README's demo shows
//! its infohashes), small, and hashes every piece; this one must be varied and cheap.

use estudely_bencode::Encoder;
use estudely_krpc::InfoHash;
use rand::rngs::SmallRng;
use rand::{Rng as _, RngCore as _, SeedableRng as _};
use sha1::{Digest as _, Sha1};

use super::mix;

/// What a crawl can get of a world torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Its seeders serve its info dict: a crawl can store it.
    Ok,
    /// Its only peer refuses connections: found, with a peer, never fetched.
    NoMetadata,
    /// Sampled, but no node returns a peer for it.
    NoPeers,
}

/// The kind of content, as the name and files show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// A film: video, subtitles, maybe a sample and an NFO.
    Movie,
    /// A TV episode or a season pack.
    Tv,
    /// A music album.
    Music,
    /// A book, or a pack of books.
    Book,
    /// Software: an installer or a disc image.
    Software,
    /// A split or single archive.
    Archive,
    /// A hostile name and hostile paths.
    Hostile,
}

/// One torrent of the world.
#[derive(Debug, Clone)]
pub struct WorldTorrent {
    /// Its index in the world.
    pub index: u64,
    /// SHA-1 of `info`.
    pub info_hash: InfoHash,
    /// The bencoded info dict.
    pub info: Vec<u8>,
    /// Its name, raw bytes.
    pub name: Vec<u8>,
    /// Its files: path (components joined by `/`) and length. A single-file torrent has one,
    /// whose path is its name.
    pub files: Vec<(Vec<u8>, u64)>,
    /// Piece length.
    pub piece_length: u64,
    /// Kind of content.
    pub content: Content,
    /// What a crawl can get of it.
    pub fate: Fate,
}

impl WorldTorrent {
    /// Bytes in all files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|(_, l)| l).sum()
    }
}

/// The fate of torrent `j`: 96 % `Ok`, 2 % `NoMetadata`, 2 % `NoPeers`. Cheaper than
/// generating the torrent.
pub fn fate(seed: u64, j: u64) -> Fate {
    match mix(seed ^ mix(j ^ 0xfa7e)) % 100 {
        0 | 1 => Fate::NoMetadata,
        2 | 3 => Fate::NoPeers,
        _ => Fate::Ok,
    }
}

/// Torrent `j` of the world of seed `seed`.
pub fn torrent(seed: u64, j: u64) -> WorldTorrent {
    let mut rng = SmallRng::seed_from_u64(mix(seed.wrapping_mul(0x100_0000_01b3) ^ mix(j)));
    let roll = rng.gen_range(0..100u32);
    let content = match roll {
        0..=1 => Content::Hostile,
        2..=26 => Content::Movie,
        27..=46 => Content::Tv,
        47..=64 => Content::Music,
        65..=76 => Content::Book,
        77..=88 => Content::Software,
        _ => Content::Archive,
    };
    let (name, files) = match content {
        Content::Movie => movie(&mut rng),
        Content::Tv => tv(&mut rng),
        Content::Music => music(&mut rng),
        Content::Book => book(&mut rng),
        Content::Software => software(&mut rng),
        Content::Archive => archive(&mut rng),
        Content::Hostile => hostile(&mut rng, j),
    };
    let total: u64 = files.iter().map(|(_, l)| l).sum();
    // About 1,000-2,000 pieces, as clients choose: a power of two from 16 KiB to 16 MiB.
    let piece_length = (total / 1_500)
        .next_power_of_two()
        .clamp(16 * 1024, 16 * 1024 * 1024);
    let pieces = total.div_ceil(piece_length).max(1);
    let info = info_dict(&mut rng, &name, &files, piece_length, pieces);
    WorldTorrent {
        index: j,
        info_hash: InfoHash(Sha1::digest(&info).into()),
        info,
        name,
        files,
        piece_length,
        content,
        fate: fate(seed, j),
    }
}

/// Canonical bencode of the info dict (keys in order: files, length, name, piece length,
/// pieces). The piece hashes are random bytes from the torrent's own RNG: no data exists.
fn info_dict(
    rng: &mut SmallRng,
    name: &[u8],
    files: &[(Vec<u8>, u64)],
    piece_length: u64,
    pieces: u64,
) -> Vec<u8> {
    let mut hashes = vec![0u8; pieces as usize * 20];
    rng.fill_bytes(&mut hashes);
    let mut out = Vec::with_capacity(hashes.len() + 64 * files.len() + 128);
    let mut e = Encoder(&mut out);
    let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    e.begin_dict();
    let single = files.len() == 1 && files[0].0 == name;
    if single {
        e.kv_int(b"length", int(files[0].1));
    } else {
        e.bytes(b"files");
        e.begin_list();
        for (path, len) in files {
            e.begin_dict();
            e.kv_int(b"length", int(*len));
            e.bytes(b"path");
            e.begin_list();
            for part in path.split(|&b| b == b'/') {
                e.bytes(part);
            }
            e.end();
            e.end();
        }
        e.end();
    }
    e.kv_bytes(b"name", name);
    e.kv_int(b"piece length", int(piece_length));
    e.kv_bytes(b"pieces", &hashes);
    e.end();
    out
}

type Files = Vec<(Vec<u8>, u64)>;

const WORDS: &[&str] = &[
    "Silent", "River", "Night", "Last", "City", "Dark", "Star", "Winter", "Blue", "Iron", "Garden",
    "Empire", "Shadow", "Ocean", "Fire", "Glass", "Storm", "Golden", "Lost", "Road", "House",
    "Wild", "Broken", "Northern", "Light", "Machine", "Dream", "Secret", "Black", "Summer",
    "Harbor", "Signal", "Echo", "Paper", "Stone", "Hidden", "Red", "Distant", "Hollow", "Crown",
    "Mirror", "Frontier", "Velvet", "Midnight", "Orbit", "Forest", "Thunder", "Quiet",
];
const FOREIGN: &[&str] = &[
    "Amélie",
    "東京物語",
    "Москва",
    "Ça Va",
    "Größe",
    "Señor",
    "북쪽",
    "Ελλάδα",
    "القمر",
    "Zürich",
];
const GROUPS: &[&str] = &[
    "NTb", "FLUX", "SPARKS", "GalaxyRG", "YTS", "RARBG", "EVO", "PSA", "TGx", "ETHEL", "NOGRP",
];
const LANGS: &[&str] = &[
    "English",
    "French",
    "Spanish",
    "German",
    "Portuguese",
    "Italian",
];

fn pick<'a>(rng: &mut SmallRng, list: &[&'a str]) -> &'a str {
    list[rng.gen_range(0..list.len())]
}

/// 1-4 title words; one title in twenty has a non-ASCII word.
fn title(rng: &mut SmallRng, sep: &str) -> String {
    let n = rng.gen_range(1..=4);
    let mut words: Vec<&str> = (0..n).map(|_| pick(rng, WORDS)).collect();
    if rng.gen_ratio(1, 20) {
        words.push(pick(rng, FOREIGN));
    }
    words.join(sep)
}

fn mib(rng: &mut SmallRng, lo: u64, hi: u64) -> u64 {
    rng.gen_range(lo * 1_048_576..=hi * 1_048_576)
}

fn movie(rng: &mut SmallRng) -> (Vec<u8>, Files) {
    let res = pick(rng, &["480p", "720p", "1080p", "2160p"]);
    let name = format!(
        "{}.{}.{}.{}.{}-{}",
        title(rng, "."),
        rng.gen_range(1950..=2026),
        res,
        pick(rng, &["BluRay", "WEB-DL", "WEBRip", "HDTV", "DVDRip"]),
        pick(rng, &["x264", "x265", "H.264", "HEVC", "AV1"]),
        pick(rng, GROUPS)
    );
    let size = match res {
        "480p" => mib(rng, 350, 1_400),
        "720p" => mib(rng, 700, 4_000),
        "1080p" => mib(rng, 1_500, 12_000),
        _ => mib(rng, 8_000, 60_000),
    };
    let mut files = vec![(format!("{name}/{name}.mkv").into_bytes(), size)];
    for lang in LANGS.iter().take(rng.gen_range(0..=4)) {
        let len = rng.gen_range(20_000..90_000);
        files.push((format!("{name}/Subs/{lang}.srt").into_bytes(), len));
    }
    if rng.gen_ratio(3, 10) {
        files.push((
            format!("{name}/Sample/sample.mkv").into_bytes(),
            mib(rng, 20, 80),
        ));
    }
    if rng.gen_ratio(1, 2) {
        files.push((
            format!("{name}/{name}.nfo").into_bytes(),
            rng.gen_range(2_000..8_000),
        ));
    }
    if files.len() == 1 {
        // A bare film: a single-file torrent named after the file.
        let single = format!("{name}.mkv").into_bytes();
        return (single.clone(), vec![(single, size)]);
    }
    (name.into_bytes(), strip_root(files))
}

fn tv(rng: &mut SmallRng) -> (Vec<u8>, Files) {
    let show = title(rng, ".");
    let season = rng.gen_range(1..=12);
    let res = pick(rng, &["720p", "1080p", "2160p"]);
    let tail = format!(
        "{res}.{}.{}-{}",
        pick(rng, &["WEB", "WEB-DL", "HDTV", "BluRay"]),
        pick(rng, &["x264", "x265", "H.264"]),
        pick(rng, GROUPS)
    );
    if rng.gen_ratio(2, 3) {
        let name = format!(
            "{show}.S{season:02}E{:02}.{tail}.mkv",
            rng.gen_range(1..=24)
        );
        let size = mib(rng, 150, 3_000);
        return (name.clone().into_bytes(), vec![(name.into_bytes(), size)]);
    }
    let name = format!("{show}.S{season:02}.{tail}");
    let episodes = rng.gen_range(6..=24);
    let files = (1..=episodes)
        .map(|e| {
            let path = format!("{show}.S{season:02}E{e:02}.{tail}.mkv");
            (path.into_bytes(), mib(rng, 150, 3_000))
        })
        .collect();
    (name.into_bytes(), files)
}

fn music(rng: &mut SmallRng) -> (Vec<u8>, Files) {
    let flac = rng.gen_ratio(1, 2);
    let ext = if flac { "flac" } else { "mp3" };
    let name = format!(
        "{} - {} ({}) [{}]",
        title(rng, " "),
        title(rng, " "),
        rng.gen_range(1960..=2026),
        if flac { "FLAC" } else { "MP3 320" }
    );
    let tracks = rng.gen_range(6..=18);
    let mut files: Files = (1..=tracks)
        .map(|t| {
            let len = if flac {
                mib(rng, 15, 60)
            } else {
                mib(rng, 5, 12)
            };
            (
                format!("{t:02} - {}.{ext}", title(rng, " ")).into_bytes(),
                len,
            )
        })
        .collect();
    files.push((b"cover.jpg".to_vec(), rng.gen_range(100_000..2_000_000)));
    if flac && rng.gen_ratio(1, 3) {
        files.push((b"album.cue".to_vec(), rng.gen_range(1_000..4_000)));
        files.push((b"album.log".to_vec(), rng.gen_range(3_000..9_000)));
    }
    (name.into_bytes(), files)
}

fn book(rng: &mut SmallRng) -> (Vec<u8>, Files) {
    let author = format!("{} {}", pick(rng, WORDS), pick(rng, WORDS));
    let ext = pick(rng, &["epub", "pdf", "mobi", "azw3"]);
    if rng.gen_ratio(3, 5) {
        let name = format!(
            "{author} - {} ({}).{ext}",
            title(rng, " "),
            rng.gen_range(1900..=2026)
        );
        let size = rng.gen_range(300_000..30_000_000);
        return (name.clone().into_bytes(), vec![(name.into_bytes(), size)]);
    }
    let name = format!("{author} - Collected Works");
    let files = (0..rng.gen_range(3..=30))
        .map(|_| {
            let path = format!("{} ({}).{ext}", title(rng, " "), rng.gen_range(1900..=2026));
            (path.into_bytes(), rng.gen_range(300_000..30_000_000))
        })
        .collect();
    (name.into_bytes(), dedup(files))
}

fn software(rng: &mut SmallRng) -> (Vec<u8>, Files) {
    let product = title(rng, " ");
    let version = format!(
        "v{}.{}.{}",
        rng.gen_range(1..30),
        rng.gen_range(0..20),
        rng.gen_range(0..200)
    );
    let arch = pick(rng, &["x64", "x86", "arm64", "Multilingual"]);
    if rng.gen_ratio(3, 10) {
        let name = format!("{}.{version}.{arch}.iso", product.replace(' ', "."));
        let size = mib(rng, 300, 8_000);
        return (name.clone().into_bytes(), vec![(name.into_bytes(), size)]);
    }
    let name = format!("{product} {version} {arch}");
    let mut files = vec![
        (b"setup.exe".to_vec(), mib(rng, 50, 4_000)),
        (b"readme.txt".to_vec(), rng.gen_range(500..20_000)),
    ];
    if rng.gen_ratio(1, 2) {
        files.push((b"docs/manual.pdf".to_vec(), mib(rng, 1, 40)));
        files.push((b"docs/license.txt".to_vec(), rng.gen_range(1_000..40_000)));
    }
    (name.into_bytes(), files)
}

fn archive(rng: &mut SmallRng) -> (Vec<u8>, Files) {
    let base = format!(
        "{}.Backup.{}-{:02}-{:02}",
        title(rng, "."),
        rng.gen_range(2005..=2026),
        rng.gen_range(1..=12),
        rng.gen_range(1..=28)
    );
    if rng.gen_ratio(1, 2) {
        let ext = pick(rng, &["zip", "7z", "tar.gz"]);
        let name = format!("{base}.{ext}");
        let size = mib(rng, 10, 20_000);
        return (name.clone().into_bytes(), vec![(name.into_bytes(), size)]);
    }
    let parts = rng.gen_range(2..=40);
    let files = (1..=parts)
        .map(|p| {
            let len = if p == parts {
                mib(rng, 1, 100)
            } else {
                104_857_600
            };
            (format!("{base}.part{p:02}.rar").into_bytes(), len)
        })
        .collect();
    (base.into_bytes(), files)
}

/// A hostile name (one of three variants, as the fixed testnet's) and hostile paths.
fn hostile(rng: &mut SmallRng, j: u64) -> (Vec<u8>, Files) {
    let name = crate::hostile_name(5 * (j as usize % 3 + 1));
    let mut name = [format!("world-{j}-").as_bytes(), &name[..]].concat();
    name.truncate(200);
    let files = (0..rng.gen_range(1..=4))
        .map(|i| {
            let mut p = format!("dir {i},\"x\"\n\t").into_bytes();
            p.extend_from_slice(b"\xfe\\/file-");
            p.extend_from_slice(format!("{j}-{i}\x01\x7f").as_bytes());
            p.extend_from_slice(b"\xff.bin");
            (p, rng.gen_range(1_000..50_000_000))
        })
        .collect();
    (name, files)
}

/// Paths relative to the torrent's directory (the name), as info dicts hold them.
fn strip_root(files: Files) -> Files {
    files
        .into_iter()
        .map(|(p, l)| {
            let at = p.iter().position(|&b| b == b'/').map_or(0, |i| i + 1);
            (p[at..].to_vec(), l)
        })
        .collect()
}

/// Distinct paths only (a client refuses two files at one path).
fn dedup(mut files: Files) -> Files {
    let mut seen = std::collections::HashSet::new();
    files.retain(|(p, _)| seen.insert(p.clone()));
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use estudely_peer_wire::InfoSummary;

    #[test]
    fn torrents_are_pure_distinct_and_valid() {
        let mut hashes = std::collections::HashSet::new();
        let mut kinds = std::collections::HashMap::new();
        for j in 0..3_000 {
            let t = torrent(7, j);
            assert_eq!(t.info_hash, torrent(7, j).info_hash, "{j}");
            assert!(hashes.insert(t.info_hash), "{j}: duplicate infohash");
            let s = InfoSummary::parse(&t.info).unwrap();
            assert_eq!(s.name, t.name, "{j}");
            assert_eq!(s.file_count, t.files.len() as u64, "{j}");
            assert_eq!(s.total_bytes, t.total_bytes(), "{j}");
            assert_eq!(s.piece_length, t.piece_length, "{j}");
            if t.files.len() > 1 {
                let paths: Vec<Vec<u8>> = s.files.iter().map(|f| f.path.join(&b'/')).collect();
                let want: Vec<Vec<u8>> = t.files.iter().map(|(p, _)| p.clone()).collect();
                assert_eq!(paths, want, "{j}");
            }
            assert!(t.info.len() < 120_000, "{j}: {} bytes", t.info.len());
            *kinds.entry(format!("{:?}", t.content)).or_insert(0) += 1;
        }
        // Every kind shows up, in roughly its share.
        for (kind, lo) in [
            ("Movie", 600),
            ("Tv", 450),
            ("Music", 400),
            ("Book", 250),
            ("Software", 250),
            ("Archive", 250),
            ("Hostile", 20),
        ] {
            assert!(kinds.get(kind).copied().unwrap_or(0) >= lo, "{kinds:?}");
        }
        // Another seed, another world.
        assert_ne!(torrent(8, 0).info_hash, torrent(7, 0).info_hash);
    }

    #[test]
    fn fates_are_mostly_ok() {
        let n = 10_000;
        let ok = (0..n).filter(|&j| fate(1, j) == Fate::Ok).count();
        let none = (0..n).filter(|&j| fate(1, j) == Fate::NoPeers).count();
        assert!((9_400..9_800).contains(&ok), "{ok}");
        assert!((100..300).contains(&none), "{none}");
        assert_eq!(torrent(1, 42).fate, fate(1, 42));
    }

    #[test]
    fn hostile_torrents_have_hostile_names_and_paths() {
        let j = (0..1_000)
            .find(|&j| torrent(3, j).content == Content::Hostile)
            .unwrap();
        let t = torrent(3, j);
        assert!(std::str::from_utf8(&t.name).is_err());
        assert!(t
            .files
            .iter()
            .all(|(p, _)| p.contains(&b'\n') && p.contains(&0xff)));
        let s = InfoSummary::parse(&t.info).unwrap();
        assert_eq!(s.name, t.name);
    }
}
