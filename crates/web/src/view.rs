//! What the pages show of a stored torrent: display strings, the magnet link, the file
//! tree. Every string here is still raw text: the templates escape it.

use std::collections::BTreeMap;

use estudely_krpc::InfoHash;
use estudely_peer_wire::info::display;
use estudely_peer_wire::{FileEntry, Version};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use estudely_report::format::{human_bytes, Utc};
use estudely_store::{version_str, Category, Release, StoredTorrent};

/// Most entries of a file tree shown on one page (a torrent stores at most 1,000 files, but
/// the directories between them count too).
pub const MAX_TREE_ITEMS: usize = 5_000;

/// Characters left as they are in a magnet's `dn`: RFC 3986 unreserved.
const DN_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One line of a torrent list.
#[derive(Debug, Clone)]
pub struct Row {
    /// The key in the torrent's URL: 40 hex.
    pub key: String,
    /// The name, lossy UTF-8.
    pub name: String,
    /// The size for people.
    pub size: String,
    /// `1 file`, `12 files`.
    pub files: String,
    /// `v1`, `v2`, `hybrid`.
    pub version: &'static str,
    /// When it was discovered, `YYYY-MM-DD HH:MM UTC`.
    pub discovered: String,
    /// The same, RFC 3339.
    pub discovered_iso: String,
    /// How it was first found.
    pub source: &'static str,
    /// Total bytes.
    pub total_bytes: u64,
    /// `movie`, `tv`, ...; `unclassified` for a torrent stored before classification.
    pub category: &'static str,
    /// What the name says, for people: `Title (2019) · S01E02 · 1080p · x264 · GROUP`;
    /// empty when it says nothing.
    pub release: String,
    /// In search results: the file whose path explains the match, when the name does not.
    pub matched_file: Option<String>,
    /// Its swarm's BEP 33 estimates and their age (see [`swarm`]); empty when it has none.
    pub swarm: String,
    /// Its magnet link (see [`magnet`]).
    pub magnet: String,
}

impl Row {
    /// The row of a stored torrent, now.
    pub fn new(st: &StoredTorrent) -> Row {
        Row::at(st, crate::unix_now())
    }

    /// The row of a stored torrent, at `now` (unix seconds: the estimates' age).
    pub fn at(st: &StoredTorrent, now: i64) -> Row {
        let t = &st.torrent;
        Row {
            key: t.info_hash.to_hex(),
            name: display(&t.name),
            size: human_bytes(t.total_bytes),
            files: match t.file_count {
                1 => "1 file".to_owned(),
                n => format!("{n} files"),
            },
            version: version_str(t.version),
            discovered: utc(t.discovered),
            discovered_iso: iso(t.discovered),
            source: t.source.as_str(),
            total_bytes: t.total_bytes,
            category: t.category.map_or("unclassified", Category::as_str),
            release: t.release.as_ref().map(release_line).unwrap_or_default(),
            matched_file: None,
            swarm: swarm(st, now).unwrap_or_default(),
            magnet: magnet(st),
        }
    }
}

/// The BEP 33 estimates of a torrent's swarm for people, with their age at `now` (unix
/// seconds): `~12 seeds, ~3 peers, 2 h ago`, `~12 seeds, peers unknown, 5 min ago`;
/// `None` when it has none.
pub fn swarm(st: &StoredTorrent, now: i64) -> Option<String> {
    let t = &st.torrent;
    if t.seeds_estimate.is_none() && t.peers_estimate.is_none() {
        return None;
    }
    let figure = |n: Option<u32>, what: &str| match n {
        Some(n) => format!("~{n} {what}"),
        None => format!("{what} unknown"),
    };
    let mut out = format!(
        "{}, {}",
        figure(t.seeds_estimate, "seeds"),
        figure(t.peers_estimate, "peers")
    );
    if let Some(at) = st.estimated_at {
        out.push_str(", ");
        out.push_str(&age(now.saturating_sub(at)));
    }
    Some(out)
}

/// `secs` ago for people, in the largest whole unit: `just now`, `40 s ago`, `12 min ago`,
/// `2 h ago`, `3 d ago` (a time in the future, a clock's error, is `just now`).
pub fn age(secs: i64) -> String {
    match secs {
        ..=0 => "just now".to_owned(),
        1..60 => format!("{secs} s ago"),
        60..3_600 => format!("{} min ago", secs / 60),
        3_600..86_400 => format!("{} h ago", secs / 3_600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// `Title (2019) · S01E02 · 1080p · x264 · GROUP`: the fields a release name carried.
pub fn release_line(r: &Release) -> String {
    let mut parts: Vec<String> = Vec::new();
    match (&r.title, r.year) {
        (Some(t), Some(y)) => parts.push(format!("{t} ({y})")),
        (Some(t), None) => parts.push(t.clone()),
        (None, Some(y)) => parts.push(y.to_string()),
        (None, None) => {}
    }
    match (r.season, r.episode, r.episode_end) {
        (Some(s), Some(e), Some(end)) => parts.push(format!("S{s:02}E{e:02}-E{end:02}")),
        (Some(s), Some(e), None) => parts.push(format!("S{s:02}E{e:02}")),
        (Some(s), None, _) => parts.push(format!("season {s}")),
        (None, Some(e), _) => parts.push(format!("episode {e}")),
        (None, None, _) => {}
    }
    parts.extend(r.resolution.clone());
    parts.extend(r.video_codec.clone());
    parts.extend(r.group.clone());
    parts.join(" · ")
}

/// The magnet link of a torrent: `btih` for v1 and hybrid, `btmh` (SHA-256 multihash,
/// `1220` + 64 hex) for v2 and hybrid, the name as `dn` and the size as `xl`.
pub fn magnet(st: &StoredTorrent) -> String {
    let t = &st.torrent;
    let mut out = String::from("magnet:?");
    let mut xts = Vec::new();
    if t.version != Version::V2 {
        xts.push(format!("xt=urn:btih:{}", t.info_hash.to_hex()));
    }
    if let Some(v2) = &t.info_hash_v2 {
        xts.push(format!("xt=urn:btmh:1220{}", hex::encode(v2)));
    }
    out.push_str(&xts.join("&"));
    let name = display(&t.name);
    if !name.is_empty() {
        out.push_str("&dn=");
        out.extend(utf8_percent_encode(&name, DN_KEEP));
    }
    out.push_str(&format!("&xl={}", t.total_bytes));
    out
}

/// The v1 infohash to show: none for a v2-only torrent (its key is the truncated v2 one).
pub fn v1_hex(st: &StoredTorrent) -> Option<String> {
    (st.torrent.version != Version::V2).then(|| st.torrent.info_hash.to_hex())
}

/// Parse a torrent key from a URL: 40 hex (v1, or truncated v2) or 64 hex (v2, truncated to
/// its 20-byte DHT key).
pub fn parse_key(s: &str) -> Option<InfoHash> {
    let bytes = match s.len() {
        40 | 64 => hex::decode(s).ok()?,
        _ => return None,
    };
    let mut key = [0u8; 20];
    key.copy_from_slice(&bytes[..20]);
    Some(InfoHash(key))
}

/// One item of a file tree, in document order: directories open and close around their
/// contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeItem {
    /// A directory starts.
    Open {
        /// Its name.
        name: String,
        /// The size of everything below it.
        size: String,
    },
    /// The last opened directory ends.
    Close,
    /// A file.
    File {
        /// Its name.
        name: String,
        /// Its size.
        size: String,
    },
}

/// A directory while the tree is built.
#[derive(Default)]
struct Dir {
    size: u64,
    dirs: BTreeMap<String, Dir>,
    files: Vec<(String, u64)>,
}

/// The files of a torrent as a tree: directories first (by name), then files (in the
/// torrent's order). A single-file torrent is one file. At most [`MAX_TREE_ITEMS`] items.
pub fn file_tree(files: &[FileEntry]) -> Vec<TreeItem> {
    let mut root = Dir::default();
    for f in files {
        let Some((file, dirs)) = f.path.split_last() else {
            continue;
        };
        let mut at = &mut root;
        at.size = at.size.saturating_add(f.length);
        for d in dirs {
            at = at.dirs.entry(display(d)).or_default();
            at.size = at.size.saturating_add(f.length);
        }
        at.files.push((display(file), f.length));
    }
    let mut out = Vec::new();
    walk(&root, &mut out);
    out
}

/// Emit `dir`'s contents into `out`, stopping at the item cap (every opened directory is
/// still closed).
fn walk(dir: &Dir, out: &mut Vec<TreeItem>) {
    for (name, sub) in &dir.dirs {
        if out.len() >= MAX_TREE_ITEMS {
            return;
        }
        out.push(TreeItem::Open {
            name: name.clone(),
            size: human_bytes(sub.size),
        });
        walk(sub, out);
        out.push(TreeItem::Close);
    }
    for (name, len) in &dir.files {
        if out.len() >= MAX_TREE_ITEMS {
            return;
        }
        out.push(TreeItem::File {
            name: name.clone(),
            size: human_bytes(*len),
        });
    }
}

/// Unix seconds → `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(ts: i64) -> String {
    Utc::from_unix(ts).long()
}

/// Unix seconds → RFC 3339 (`YYYY-MM-DDTHH:MM:SSZ`).
pub fn iso(ts: i64) -> String {
    Utc::from_unix(ts).rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;
    use estudely_store::{Source, Torrent};

    fn stored(version: Version, name: &[u8], files: Vec<FileEntry>) -> StoredTorrent {
        StoredTorrent {
            torrent: Torrent {
                info_hash: InfoHash([0xab; 20]),
                info_hash_v2: (version != Version::V1).then_some([0xcd; 32]),
                name: name.to_vec(),
                total_bytes: 3 << 20,
                piece_length: 16_384,
                file_count: files.len() as u64,
                private: false,
                version,
                files,
                discovered: 0,
                source: Source::Sample,
                seeds_estimate: None,
                peers_estimate: None,
                category: None,
                release: None,
            },
            files_omitted: 0,
            last_seen: 0,
            estimated_at: None,
        }
    }

    #[test]
    fn swarm_estimates_with_their_age() {
        let mut st = stored(Version::V1, b"x", Vec::new());
        assert_eq!(swarm(&st, 10_000), None);
        assert_eq!(Row::at(&st, 10_000).swarm, "");
        st.torrent.seeds_estimate = Some(12);
        assert_eq!(
            swarm(&st, 10_000).as_deref(),
            Some("~12 seeds, peers unknown"),
            "no time (outside edits only): no age"
        );
        st.torrent.peers_estimate = Some(3);
        st.estimated_at = Some(10_000 - 2 * 3_600 - 59);
        assert_eq!(Row::at(&st, 10_000).swarm, "~12 seeds, ~3 peers, 2 h ago");
        let ages: Vec<String> = [-5, 0, 40, 720, 86_400 * 3 + 1].map(age).to_vec();
        assert_eq!(
            ages,
            ["just now", "just now", "40 s ago", "12 min ago", "3 d ago"]
        );
    }

    fn file(path: &[&[u8]], length: u64) -> FileEntry {
        FileEntry {
            path: path.iter().map(|c| c.to_vec()).collect(),
            length,
        }
    }

    #[test]
    fn magnets_by_version() {
        let v1 = magnet(&stored(Version::V1, b"a b&c=d", vec![]));
        assert_eq!(
            v1,
            format!(
                "magnet:?xt=urn:btih:{}&dn=a%20b%26c%3Dd&xl=3145728",
                "ab".repeat(20)
            )
        );
        let hybrid = magnet(&stored(Version::Hybrid, b"x", vec![]));
        assert!(hybrid.starts_with(&format!(
            "magnet:?xt=urn:btih:{}&xt=urn:btmh:1220{}&dn=x",
            "ab".repeat(20),
            "cd".repeat(32)
        )));
        let v2 = magnet(&stored(Version::V2, b"", vec![]));
        assert_eq!(
            v2,
            format!("magnet:?xt=urn:btmh:1220{}&xl=3145728", "cd".repeat(32))
        );
        assert_eq!(v1_hex(&stored(Version::V2, b"", vec![])), None);
    }

    #[test]
    fn keys() {
        assert_eq!(parse_key(&"ab".repeat(20)), Some(InfoHash([0xab; 20])));
        assert_eq!(parse_key(&"AB".repeat(32)), Some(InfoHash([0xab; 20])));
        assert_eq!(parse_key("ab"), None);
        assert_eq!(parse_key(&"zz".repeat(20)), None);
        assert_eq!(parse_key(&"é".repeat(20)), None);
    }

    #[test]
    fn trees_nest_directories_and_sum_sizes() {
        let files = vec![
            file(&[b"d", b"e", b"1.txt"], 10),
            file(&[b"top.txt"], 5),
            file(&[b"d", b"2.txt"], 20),
            file(&[], 7),
        ];
        let tree = file_tree(&files);
        let names: Vec<String> = tree
            .iter()
            .map(|i| match i {
                TreeItem::Open { name, size } => format!("+{name}:{size}"),
                TreeItem::Close => "-".to_owned(),
                TreeItem::File { name, size } => format!("{name}:{size}"),
            })
            .collect();
        assert_eq!(
            names,
            [
                "+d:30 B",
                "+e:10 B",
                "1.txt:10 B",
                "-",
                "2.txt:20 B",
                "-",
                "top.txt:5 B"
            ]
        );
    }

    #[test]
    fn trees_are_capped_and_balanced() {
        let files: Vec<FileEntry> = (0..MAX_TREE_ITEMS)
            .map(|i| file(&[format!("d{i}").as_bytes(), b"f"], 1))
            .collect();
        let tree = file_tree(&files);
        assert!(tree.len() <= MAX_TREE_ITEMS + 2);
        let opens = tree
            .iter()
            .filter(|i| matches!(i, TreeItem::Open { .. }))
            .count();
        let closes = tree.iter().filter(|i| **i == TreeItem::Close).count();
        assert_eq!(opens, closes);
    }
}
