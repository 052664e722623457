//! A summary of a verified info dict — name, file count, total size, piece length, protocol
//! version — for v1 (single- and multi-file), v2 (`file tree`) and hybrid torrents.
//!
//! The contents come from strangers, so:
//! * Names and path components stay raw bytes; nothing here ever builds a filesystem path.
//!   [`InfoSummary::name_lossy`] and [`FileEntry::path_lossy`] are for display only.
//! * A negative length is an error ([`WireError::InvalidField`] `length`); a total that
//!   overflows `u64` is [`WireError::LengthOverflow`]. Nothing saturates silently.
//! * Work is linear in the size of the dict: at most [`MAX_DEPTH`] levels of nesting (the
//!   decoder refuses deeper input, which also bounds the file-tree walk) and a bounded
//!   number of listed files whatever the file count.
//! * A dict with both `files` and `length` is read as multi-file (`files` wins).
//! * BEP 47 pad files (`attr` containing `p`, or a path starting with `.pad`) count neither
//!   as files nor as bytes.

use estudely_bencode::{Limits, Value};

use crate::WireError;

/// Deepest nesting of lists and dicts accepted in an info dict.
pub const MAX_DEPTH: usize = 64;

/// Files listed in [`InfoSummary::files`] by [`InfoSummary::parse`].
pub const DEFAULT_LISTED_FILES: usize = 100;

/// Which BitTorrent protocol version(s) the info dict describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// BEP 3: `length` or `files`.
    V1,
    /// BEP 52: `meta version` 2 and a `file tree`.
    V2,
    /// Both, describing the same files.
    Hybrid,
}

/// One (non-pad) file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path components below the torrent's name, raw bytes exactly as in the info dict
    /// (`..`, `/`, NUL and the empty string included). A single-file torrent's only file
    /// has the torrent's name as its single component.
    pub path: Vec<Vec<u8>>,
    /// Size in bytes.
    pub length: u64,
}

impl FileEntry {
    /// The components joined with `/`, for display only (see [`display`]).
    pub fn path_lossy(&self) -> String {
        let parts: Vec<String> = self.path.iter().map(|c| display(c)).collect();
        parts.join("/")
    }
}

/// What an info dict describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoSummary {
    /// The torrent's name, raw bytes (`name.utf-8` if present, else `name`).
    pub name: Vec<u8>,
    /// Number of files, pad files excluded.
    pub file_count: u64,
    /// Sum of the file lengths, pad files excluded.
    pub total_bytes: u64,
    /// `piece length`.
    pub piece_length: u64,
    /// Protocol version.
    pub version: Version,
    /// The first files (a bounded list; compare its length with `file_count`). Taken from
    /// the v1 `files` list for v1 and hybrid torrents, from the `file tree` for v2.
    pub files: Vec<FileEntry>,
}

impl InfoSummary {
    /// Parse an info dict, listing up to [`DEFAULT_LISTED_FILES`] files.
    pub fn parse(info: &[u8]) -> Result<InfoSummary, WireError> {
        Self::parse_with(info, DEFAULT_LISTED_FILES)
    }

    /// Parse an info dict, listing up to `max_listed` files.
    pub fn parse_with(info: &[u8], max_listed: usize) -> Result<InfoSummary, WireError> {
        let limits = Limits {
            max_depth: MAX_DEPTH,
            ..Limits::default()
        };
        let dict = estudely_bencode::decode_with(info, limits)?;
        if dict.as_dict().is_none() {
            return Err(WireError::NotADict { what: "info dict" });
        }
        let name = bytes_field(&dict, "name.utf-8")
            .or_else(|| bytes_field(&dict, "name"))
            .ok_or(WireError::MissingField { field: "name" })??;
        let piece_length = match dict.get(b"piece length") {
            None => {
                return Err(WireError::MissingField {
                    field: "piece length",
                })
            }
            Some(v) => v
                .as_int()
                .and_then(|n| u64::try_from(n).ok())
                .filter(|&n| n > 0)
                .ok_or(WireError::InvalidField {
                    field: "piece length",
                })?,
        };
        let is_v2 = match dict.get(b"meta version").map(Value::as_int) {
            None | Some(Some(1)) => false,
            Some(Some(2)) => true,
            Some(_) => {
                return Err(WireError::InvalidField {
                    field: "meta version",
                })
            }
        };

        let mut v1 = Tally::new(max_listed);
        let has_v1 = if let Some(files) = dict.get(b"files") {
            let list = files
                .as_list()
                .ok_or(WireError::InvalidField { field: "files" })?;
            for file in list {
                v1_file(file, &mut v1)?;
            }
            true
        } else if let Some(length) = dict.get(b"length") {
            v1.add(&[name], length_of(length)?, false)?;
            true
        } else {
            false
        };

        let mut v2 = Tally::new(if has_v1 { 0 } else { max_listed });
        if is_v2 {
            let tree = dict
                .get(b"file tree")
                .ok_or(WireError::MissingField { field: "file tree" })?;
            walk_tree(tree, &mut Vec::new(), &mut v2)?;
        }

        let (version, tally) = match (has_v1, is_v2) {
            (true, false) => (Version::V1, v1),
            (false, true) => (Version::V2, v2),
            (true, true) => {
                if (v1.count, v1.total) != (v2.count, v2.total) {
                    return Err(WireError::HybridMismatch {
                        v1_files: v1.count,
                        v1_bytes: v1.total,
                        v2_files: v2.count,
                        v2_bytes: v2.total,
                    });
                }
                (Version::Hybrid, v1)
            }
            (false, false) => return Err(WireError::MissingField { field: "files" }),
        };
        Ok(InfoSummary {
            name: name.to_vec(),
            file_count: tally.count,
            total_bytes: tally.total,
            piece_length,
            version,
            files: tally.listed,
        })
    }

    /// The name for display (see [`display`]).
    pub fn name_lossy(&self) -> String {
        display(&self.name)
    }

    /// Whether [`files`](Self::files) lists fewer files than there are.
    pub fn files_truncated(&self) -> bool {
        (self.files.len() as u64) < self.file_count
    }
}

/// Raw bytes as display text: invalid UTF-8 and control characters (NUL, newline, tab, …)
/// become U+FFFD, so a hostile name cannot break a line-oriented report. Other characters,
/// commas and quotes included, are kept: quoting is the report writer's job.
pub fn display(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// A minimal `.torrent` file around an info dict: `d4:info<info>e`, the info bytes kept
/// exactly (so the file has the same info-hash).
pub fn torrent_file_bytes(info: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(info.len() + 8);
    out.extend_from_slice(b"d4:info");
    out.extend_from_slice(info);
    out.push(b'e');
    out
}

/// Counts files and bytes, and keeps the first few paths.
struct Tally {
    count: u64,
    total: u64,
    listed: Vec<FileEntry>,
    max_listed: usize,
}

impl Tally {
    fn new(max_listed: usize) -> Self {
        Tally {
            count: 0,
            total: 0,
            listed: Vec::new(),
            max_listed,
        }
    }

    fn add(&mut self, path: &[&[u8]], length: u64, pad: bool) -> Result<(), WireError> {
        if pad {
            return Ok(());
        }
        self.count += 1;
        self.total = self
            .total
            .checked_add(length)
            .ok_or(WireError::LengthOverflow)?;
        if self.listed.len() < self.max_listed {
            self.listed.push(FileEntry {
                path: path.iter().map(|c| c.to_vec()).collect(),
                length,
            });
        }
        Ok(())
    }
}

/// `Some(Ok(bytes))` if `field` is a byte string, `Some(Err)` if it is something else.
fn bytes_field<'a>(dict: &Value<'a>, field: &'static str) -> Option<Result<&'a [u8], WireError>> {
    dict.get(field.as_bytes())
        .map(|v| v.as_bytes().ok_or(WireError::InvalidField { field }))
}

fn length_of(v: &Value<'_>) -> Result<u64, WireError> {
    v.as_int()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or(WireError::InvalidField { field: "length" })
}

fn is_pad_attr(file: &Value<'_>) -> bool {
    file.get_bytes(b"attr").is_some_and(|a| a.contains(&b'p'))
}

/// One entry of a v1 `files` list.
fn v1_file(file: &Value<'_>, tally: &mut Tally) -> Result<(), WireError> {
    let length = length_of(
        file.get(b"length")
            .ok_or(WireError::MissingField { field: "length" })?,
    )?;
    let path = file
        .get(b"path.utf-8")
        .or_else(|| file.get(b"path"))
        .ok_or(WireError::MissingField { field: "path" })?
        .as_list()
        .ok_or(WireError::InvalidField { field: "path" })?;
    let mut components = Vec::with_capacity(path.len());
    for c in path {
        components.push(
            c.as_bytes()
                .ok_or(WireError::InvalidField { field: "path" })?,
        );
    }
    let pad = is_pad_attr(file) || components.first() == Some(&&b".pad"[..]);
    tally.add(&components, length, pad)
}

/// Walk a BEP 52 `file tree` directory: each entry is a file (`{"": {length, …}}`) or a
/// subdirectory. Recursion depth is bounded by the decoder's [`MAX_DEPTH`].
fn walk_tree<'a>(
    dir: &Value<'a>,
    path: &mut Vec<&'a [u8]>,
    tally: &mut Tally,
) -> Result<(), WireError> {
    let entries = dir
        .as_dict()
        .ok_or(WireError::InvalidField { field: "file tree" })?;
    for (name, node) in entries {
        path.push(name);
        if let Some(leaf) = node.get(b"") {
            let length = length_of(
                leaf.get(b"length")
                    .ok_or(WireError::MissingField { field: "length" })?,
            )?;
            tally.add(path, length, is_pad_attr(leaf))?;
        } else {
            walk_tree(node, path, tally)?;
        }
        path.pop();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use estudely_bencode::OwnedValue;
    use proptest::prelude::*;

    fn file(path: &[&str], length: i64) -> OwnedValue {
        let mut f = OwnedValue::dict();
        let path: Vec<OwnedValue> = path.iter().map(|&c| c.into()).collect();
        f.insert(b"length", length).insert(b"path", path);
        f
    }

    fn pad(length: i64) -> OwnedValue {
        let mut f = file(&[".pad", &length.to_string()], length);
        f.insert(b"attr", "p");
        f
    }

    fn leaf(length: i64) -> OwnedValue {
        let mut props = OwnedValue::dict();
        props.insert(b"length", length);
        if length > 0 {
            props.insert(b"pieces root", vec![0u8; 32]);
        }
        let mut l = OwnedValue::dict();
        l.insert(b"", props);
        l
    }

    fn base(name: &str) -> OwnedValue {
        let mut d = OwnedValue::dict();
        d.insert(b"name", name).insert(b"piece length", 16_384);
        d
    }

    #[test]
    fn single_file_v1() {
        let mut d = base("a.iso");
        d.insert(b"length", 1000).insert(b"pieces", vec![0u8; 20]);
        let s = InfoSummary::parse(&d.to_bytes()).unwrap();
        assert_eq!(
            s,
            InfoSummary {
                name: b"a.iso".to_vec(),
                file_count: 1,
                total_bytes: 1000,
                piece_length: 16_384,
                version: Version::V1,
                files: vec![FileEntry {
                    path: vec![b"a.iso".to_vec()],
                    length: 1000
                }],
            }
        );
        assert!(!s.files_truncated());
    }

    #[test]
    fn multi_file_v1_excludes_pad_files() {
        let mut d = base("dir");
        let mut dot_pad = file(&[".pad", "7"], 7);
        dot_pad.insert(b"attr", "x");
        let files = vec![
            file(&["a"], 10),
            pad(16_374),
            file(&["sub", "b"], 5),
            dot_pad,
        ];
        d.insert(b"files", files);
        let s = InfoSummary::parse(&d.to_bytes()).unwrap();
        assert_eq!(
            (s.file_count, s.total_bytes, s.version),
            (2, 15, Version::V1)
        );
        assert_eq!(s.files[1].path_lossy(), "sub/b");
    }

    #[test]
    fn v2_and_hybrid() {
        let mut tree = OwnedValue::dict();
        let mut sub = OwnedValue::dict();
        sub.insert(b"b", leaf(5)).insert(b"empty", leaf(0));
        tree.insert(b"a", leaf(10)).insert(b"sub", sub);
        let mut v2 = base("dir");
        v2.insert(b"meta version", 2).insert(b"file tree", tree);
        let s = InfoSummary::parse(&v2.to_bytes()).unwrap();
        assert_eq!(
            (s.file_count, s.total_bytes, s.version),
            (3, 15, Version::V2)
        );
        assert_eq!(s.files[2].path, [b"sub".to_vec(), b"empty".to_vec()]);

        let mut hybrid = v2.clone();
        let files = vec![
            file(&["a"], 10),
            pad(16_374),
            file(&["sub", "b"], 5),
            file(&["sub", "empty"], 0),
        ];
        hybrid
            .insert(b"files", files)
            .insert(b"pieces", vec![0u8; 40]);
        let s = InfoSummary::parse(&hybrid.to_bytes()).unwrap();
        assert_eq!(
            (s.file_count, s.total_bytes, s.version),
            (3, 15, Version::Hybrid)
        );

        let mut bad = v2;
        bad.insert(b"files", vec![file(&["a"], 11)]);
        assert_eq!(
            InfoSummary::parse(&bad.to_bytes()),
            Err(WireError::HybridMismatch {
                v1_files: 1,
                v1_bytes: 11,
                v2_files: 3,
                v2_bytes: 15
            })
        );
    }

    #[test]
    fn prefers_utf8_name_and_keeps_hostile_bytes_raw() {
        let mut d = base("ignored");
        d.insert(b"name.utf-8", &b"../evil\0\n\"a,b\"\xff"[..])
            .insert(b"length", 1);
        let s = InfoSummary::parse(&d.to_bytes()).unwrap();
        assert_eq!(s.name, b"../evil\0\n\"a,b\"\xff");
        assert_eq!(s.name_lossy(), "../evil\u{fffd}\u{fffd}\"a,b\"\u{fffd}");

        let mut d = base("x");
        d.insert(b"files", vec![file(&["/", "..", "", "c\r"], 3)]);
        let s = InfoSummary::parse(&d.to_bytes()).unwrap();
        assert_eq!(s.files[0].path, [&b"/"[..], b"..", b"", b"c\r"]);
        assert_eq!(s.files[0].path_lossy(), "//..//c\u{fffd}");
    }

    #[test]
    fn bad_lengths_are_errors() {
        let mut d = base("x");
        d.insert(b"length", -1);
        let invalid_length = Err(WireError::InvalidField { field: "length" });
        assert_eq!(InfoSummary::parse(&d.to_bytes()), invalid_length);
        let mut d = base("x");
        d.insert(
            b"files",
            vec![
                file(&["a"], i64::MAX),
                file(&["b"], i64::MAX),
                file(&["c"], 2),
            ],
        );
        assert_eq!(
            InfoSummary::parse(&d.to_bytes()),
            Err(WireError::LengthOverflow)
        );
        let mut d = base("x");
        d.insert(
            b"files",
            vec![file(&["a"], i64::MAX), file(&["b"], i64::MAX)],
        );
        assert_eq!(
            InfoSummary::parse(&d.to_bytes()).unwrap().total_bytes,
            u64::MAX - 1
        );
    }

    #[test]
    fn structural_errors() {
        let cases: &[(&[u8], WireError)] = &[
            (b"le", WireError::NotADict { what: "info dict" }),
            (
                b"d12:piece lengthi1ee",
                WireError::MissingField { field: "name" },
            ),
            (
                b"d4:namei1e12:piece lengthi1ee",
                WireError::InvalidField { field: "name" },
            ),
            (
                b"d4:name1:xe",
                WireError::MissingField {
                    field: "piece length",
                },
            ),
            (
                b"d4:name1:x12:piece lengthi0ee",
                WireError::InvalidField {
                    field: "piece length",
                },
            ),
            (
                b"d4:name1:x12:piece lengthi1ee",
                WireError::MissingField { field: "files" },
            ),
            (
                b"d5:filesi1e4:name1:x12:piece lengthi1ee",
                WireError::InvalidField { field: "files" },
            ),
            (
                b"d5:filesli1ee4:name1:x12:piece lengthi1ee",
                WireError::MissingField { field: "length" },
            ),
            (
                b"d5:filesld6:lengthi1eee4:name1:x12:piece lengthi1ee",
                WireError::MissingField { field: "path" },
            ),
            (
                b"d5:filesld6:lengthi1e4:pathli1eeee4:name1:x12:piece lengthi1ee",
                WireError::InvalidField { field: "path" },
            ),
            (
                b"d12:meta versioni2e4:name1:x12:piece lengthi1ee",
                WireError::MissingField { field: "file tree" },
            ),
            (
                b"d12:meta versioni3e4:name1:x12:piece lengthi1ee",
                WireError::InvalidField {
                    field: "meta version",
                },
            ),
            (
                b"d9:file treei1e12:meta versioni2e4:name1:x12:piece lengthi1ee",
                WireError::InvalidField { field: "file tree" },
            ),
        ];
        for (bytes, err) in cases {
            assert_eq!(
                InfoSummary::parse(bytes).as_ref(),
                Err(err),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn deep_trees_are_refused_not_overflowed() {
        let depth = 10_000;
        let mut info = b"d9:file tree".to_vec();
        info.extend(b"d1:a".repeat(depth));
        info.extend(b"e".repeat(depth));
        info.extend_from_slice(b"12:meta versioni2e4:name1:x12:piece lengthi1ee");
        assert!(matches!(
            InfoSummary::parse(&info),
            Err(WireError::Bencode(estudely_bencode::Error::TooDeep { .. }))
        ));
    }

    #[test]
    fn many_files_bounded_listing() {
        let n = 100_000;
        let mut info = b"d5:filesl".to_vec();
        for i in 0..n {
            info.extend_from_slice(
                format!("d6:lengthi{i}e4:pathl{}:{i}ee", i.to_string().len()).as_bytes(),
            );
        }
        info.extend_from_slice(b"e4:name1:x12:piece lengthi16384ee");
        let s = InfoSummary::parse(&info).unwrap();
        assert_eq!(s.file_count, n);
        assert_eq!(s.total_bytes, n * (n - 1) / 2);
        assert_eq!(s.files.len(), DEFAULT_LISTED_FILES);
        assert!(s.files_truncated());
        assert_eq!(InfoSummary::parse_with(&info, 0).unwrap().files, []);
    }

    #[test]
    fn torrent_file_wraps_info_exactly() {
        let info = b"d4:name1:x12:piece lengthi1e6:lengthi1ee"; // unsorted: kept as is
        let t = torrent_file_bytes(info);
        assert_eq!(t, b"d4:infod4:name1:x12:piece lengthi1e6:lengthi1eee");
        let v = estudely_bencode::decode(&t).unwrap();
        assert_eq!(v.get(b"info").unwrap().raw(), info);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = InfoSummary::parse(&bytes);
        }

        #[test]
        fn mutated_info_never_panics(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut tree = OwnedValue::dict();
            tree.insert(b"a", leaf(10)).insert(b"b", leaf(0));
            let mut d = base("dir");
            d.insert(b"meta version", 2).insert(b"file tree", tree)
                .insert(b"files", vec![file(&["a"], 10), pad(6), file(&["b"], 0)]);
            let mut bytes = d.to_bytes();
            let i = pos.index(bytes.len());
            bytes[i] = byte;
            let _ = InfoSummary::parse(&bytes);
        }
    }
}
