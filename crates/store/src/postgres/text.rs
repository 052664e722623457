//! Pure helpers of the PostgreSQL backend: numbers, file lists and search text (raw paths
//! are the SQLite backend's codec: `sqlite::codec`).

use std::collections::BTreeMap;

use bytes::BytesMut;
use estudely_bencode::Encoder;
use estudely_peer_wire::FileEntry;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use crate::search_query::Term;
use crate::sqlite::codec::{path_of, write_path};

/// Most characters of words fed to `to_tsvector` per torrent (a `tsvector` holds at most
/// 1 MiB; the first files are enough to find a torrent by).
const MAX_SEARCH_CHARS: usize = 64 * 1024;

/// `u64` to `bigint`, saturating (no real size comes near).
pub fn clamp_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored `bigint` back to `u64`; negative only if someone else wrote the row.
pub fn to_u64(n: i64, what: &str) -> anyhow::Result<u64> {
    u64::try_from(n).map_err(|_| anyhow::anyhow!("corrupt index: negative {what} {n}"))
}

/// A torrent's stored files as one value (`torrents.files`, schema 9): a bencoded list
/// holding, for each file, the list of its raw path components and its length, e.g.
/// `lll1:a3:b.cei12eee`. One compact column per torrent, where a row per file (the `files`
/// table, still read for torrents stored before schema 9) cost each insert ten rows, ten
/// index entries and each path twice (as text and raw). Lengths are clamped to `bigint`
/// like the other sizes.
pub fn files_blob(files: &[FileEntry]) -> Vec<u8> {
    let size: usize = files
        .iter()
        .map(|f| 8 + f.path.iter().map(|c| c.len() + 4).sum::<usize>())
        .sum();
    let mut out = Vec::with_capacity(size + 2);
    let mut e = Encoder(&mut out);
    e.begin_list();
    for f in files {
        e.begin_list();
        write_path(&mut e, &f.path);
        e.int(clamp_i64(f.length));
        e.end();
    }
    e.end();
    out
}

/// The inverse of [`files_blob`]: an error (never a panic) for anything else.
pub fn parse_files_blob(raw: &[u8]) -> anyhow::Result<Vec<FileEntry>> {
    let bad = || anyhow::anyhow!("corrupt index: a torrent's files value is not a file list");
    let value = estudely_bencode::decode(raw).map_err(|_| bad())?;
    let list = value.as_list().ok_or_else(bad)?;
    list.iter()
        .map(|file| {
            let [path, length] = file.as_list().ok_or_else(bad)? else {
                return Err(bad());
            };
            let path = path_of(path).ok_or_else(bad)?;
            let length = to_u64(length.as_int().ok_or_else(bad)?, "file length")?;
            Ok(FileEntry { path, length })
        })
        .collect()
}

/// The words of `texts` for full-text search: letters and digits, lower case, everything
/// else a separator. `ubuntu-22.04_desktop.iso` gives `ubuntu 22 04 desktop iso`, in the
/// index as in a query, so punctuation never matters and never reaches a parser.
pub fn search_words<'a>(texts: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for text in texts {
        for c in text.chars() {
            if out.len() >= MAX_SEARCH_CHARS {
                return out;
            }
            if c.is_alphanumeric() {
                out.extend(c.to_lowercase());
            } else if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
        }
        if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
    }
    out.truncate(out.trim_end().len());
    out
}

/// The last position `to_tsvector` gives (`MAXENTRYPOS - 1`): later words all share it.
const LAST_POS: u16 = (1 << 14) - 1;
/// Most positions `to_tsvector` keeps for one word (`MAXNUMPOS - 1`).
const WORD_POSITIONS: usize = 255;
/// Most positions of one word in the concatenation of two vectors (`MAXNUMPOS`).
const CONCAT_POSITIONS: usize = 256;
/// Longest word built here; a longer one leaves the vector to the server.
const PLAIN_WORD_BYTES: usize = 255;

/// A torrent's search vector, built here and sent in `tsvector`'s binary form: what
/// `setweight(to_tsvector('simple', name), 'A') || to_tsvector('simple', paths)` gives on
/// the server, without the server's parser (a third of an insert's time on the server,
/// BENCHMARKS.md "Writes"). Built only from plain words (see [`search_vector`]), whose
/// tokens are certain; anything else is left to `to_tsvector`, so that what a search
/// finds never depends on which side built the vector (test `client_vectors_are_the_servers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchVector(Vec<u8>);

/// The vector of `name` (words of [`search_words`], weight A) followed by `paths` (weight
/// D), exactly as PostgreSQL builds it, or `None` when a word is not plain: ASCII digits
/// and lower-case letters of a few common alphabets ([`plain_char`]), not over
/// [`PLAIN_WORD_BYTES`], and not a digit followed by an `e` later (`1e5x`: the parser reads
/// a number in scientific notation, then another word). A vector with letters outside
/// ASCII is only PostgreSQL's in a UTF-8 database (the caller checks). The other rules
/// mirror PostgreSQL's `parsetext`/`uniqueWORD` (positions from 1, at most 255 a
/// word, the last one at 16383 shared by every later word) and `tsvector_concat` (the
/// second vector's positions moved past the first's highest, at most 256 a word).
pub fn search_vector(name: &str, paths: &str) -> Option<SearchVector> {
    let name = word_positions(name)?;
    let paths = word_positions(paths)?;
    let shift = name
        .values()
        .filter_map(|p| p.last())
        .max()
        .copied()
        .unwrap_or(0);
    // Positions with their weight bits (A = 3, D = 0: `WEP_SETWEIGHT`).
    let mut all: BTreeMap<&str, Vec<u16>> = name
        .into_iter()
        .map(|(w, ps)| (w, ps.into_iter().map(|p| 3 << 14 | p).collect()))
        .collect();
    for (w, ps) in paths {
        let dest = all.entry(w).or_default();
        for p in ps {
            if dest.len() >= CONCAT_POSITIONS
                || dest.last().is_some_and(|l| l & LAST_POS == LAST_POS)
            {
                break;
            }
            dest.push((p + shift).min(LAST_POS));
        }
    }
    // `tsvector_recv`: the number of words; each word's bytes, a NUL, its number of
    // positions and the positions (16 bits each, big-endian), words in byte order.
    let mut out = Vec::with_capacity(
        4 + all
            .iter()
            .map(|(w, p)| w.len() + 3 + 2 * p.len())
            .sum::<usize>(),
    );
    out.extend_from_slice(&(all.len() as i32).to_be_bytes());
    for (w, ps) in &all {
        out.extend_from_slice(w.as_bytes());
        out.push(0);
        out.extend_from_slice(&(ps.len() as u16).to_be_bytes());
        for p in ps {
            out.extend_from_slice(&p.to_be_bytes());
        }
    }
    Some(SearchVector(out))
}

/// Each word of `words` (separated by one space, as [`search_words`] writes them) with its
/// positions as `to_tsvector('simple', words)` gives them; `None` if a word is not plain.
fn word_positions(words: &str) -> Option<BTreeMap<&str, Vec<u16>>> {
    let mut out: BTreeMap<&str, Vec<u16>> = BTreeMap::new();
    let mut pos: u16 = 0;
    for w in words.split(' ').filter(|w| !w.is_empty()) {
        if !plain(w) {
            return None;
        }
        pos = (pos + 1).min(LAST_POS);
        let ps = out.entry(w).or_default();
        if ps.len() < WORD_POSITIONS && ps.last().is_none_or(|&l| l != LAST_POS && l != pos) {
            ps.push(pos);
        }
    }
    Some(out)
}

/// Is `w` a word PostgreSQL's default parser reads as exactly one token, itself?
fn plain(w: &str) -> bool {
    let b = w.as_bytes();
    b.len() <= PLAIN_WORD_BYTES
        && w.chars().all(plain_char)
        && !(b.first().is_some_and(u8::is_ascii_digit) && b.contains(&b'e'))
}

/// A character PostgreSQL's parser takes for a letter or digit in a UTF-8 database under
/// any locale (the C locale takes every non-ASCII character for a letter; the others ask
/// the C library, whose tables agree on these long-assigned blocks), and which lower-casing
/// leaves as it is: ASCII digits and lower-case letters, the lower-case letters of Latin-1
/// and Latin Extended-A, Greek and Cyrillic, the CJK ideographs, kana and Hangul syllables.
/// Other words (marks, other scripts, numbers such as `²`) are left to the server.
fn plain_char(c: char) -> bool {
    let lower = || c.is_lowercase() && c.to_lowercase().eq([c]);
    match c {
        'a'..='z' | '0'..='9' => true,
        '\u{df}'..='\u{ff}' | '\u{100}'..='\u{17f}' => c != '\u{f7}' && lower(),
        '\u{3ac}'..='\u{3ce}' | '\u{430}'..='\u{45f}' => lower(),
        '\u{4e00}'..='\u{9fff}' | '\u{3041}'..='\u{3096}' | '\u{30a1}'..='\u{30fa}' => true,
        '\u{ac00}'..='\u{d7a3}' => true,
        _ => false,
    }
}

impl ToSql for SearchVector {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&self.0);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TS_VECTOR
    }

    to_sql_checked!();
}

/// An `ILIKE` pattern matching `words` in this order anywhere (`%ilent%riv%` finds
/// `silent.river`), or `None` when trigrams cannot narrow it (no word of 3 characters: the
/// index would have to read every row). Words are runs of letters and digits, so nothing
/// needs escaping.
pub fn substring_pattern(words: &[&str]) -> Option<String> {
    if !words.iter().any(|w| w.chars().count() >= 3) {
        return None;
    }
    Some(format!("%{}%", words.join("%")))
}

/// The `to_tsquery('simple', …)` text of `terms` joined by `op` (`&` or `|`): each term's
/// words in lower case, quoted, a phrase's joined by `<->`. Words are runs of letters and
/// digits (see [`crate::SearchQuery`]), so no quote or operator of the user's reaches the
/// parser. `None` without terms.
pub fn tsquery(terms: &[Term], op: &str) -> Option<String> {
    let parts: Vec<String> = terms
        .iter()
        .map(|t| {
            let words: Vec<String> = t
                .words
                .iter()
                .map(|w| format!("'{}'", search_words([w.as_str()])))
                .collect();
            format!("({})", words.join(" <-> "))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(&format!(" {op} ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(
            search_words(["Ubuntu-22.04_desktop.ISO", "a/b c"]),
            "ubuntu 22 04 desktop iso a b c"
        );
        assert_eq!(search_words(["\"*:'&|!<script>"]), "script");
        assert_eq!(search_words(["", "  "]), "");
        assert_eq!(search_words(["Ärger"]), "ärger");
        let long = "x ".repeat(MAX_SEARCH_CHARS);
        assert!(search_words([long.as_str()]).len() <= MAX_SEARCH_CHARS);
    }

    #[test]
    fn tsqueries() {
        let q = crate::SearchQuery::parse(r#"Ubuntu "Server Guide" -beta -"rc one""#).unwrap();
        assert_eq!(
            tsquery(&q.include, "&").unwrap(),
            "('ubuntu') & ('server' <-> 'guide')"
        );
        assert_eq!(
            tsquery(&q.exclude, "|").unwrap(),
            "('beta') | ('rc' <-> 'one')"
        );
        assert_eq!(tsquery(&[], "&"), None);
    }

    #[test]
    fn patterns() {
        assert_eq!(substring_pattern(&["buntu"]), Some("%buntu%".into()));
        assert_eq!(
            substring_pattern(&["ilent", "riv"]),
            Some("%ilent%riv%".into())
        );
        assert_eq!(substring_pattern(&["ab", "c"]), None);
        assert_eq!(substring_pattern(&[]), None);
    }

    #[test]
    fn file_lists() {
        let files = vec![
            FileEntry {
                path: vec![b"a".to_vec(), b"b.c".to_vec()],
                length: 12,
            },
            FileEntry {
                path: vec![vec![0, 0xff], Vec::new()],
                length: u64::MAX,
            },
        ];
        let raw = files_blob(&files);
        assert_eq!(
            raw,
            b"lll1:a3:b.cei12eell2:\0\xff0:ei9223372036854775807eee".as_slice()
        );
        let back = parse_files_blob(&raw).unwrap();
        assert_eq!(back[0], files[0]);
        assert_eq!(
            (back[1].path.clone(), back[1].length),
            (files[1].path.clone(), i64::MAX as u64)
        );
        assert_eq!(parse_files_blob(b"le").unwrap(), []);
        for bad in [
            &b""[..],
            b"l",
            b"i1e",
            b"lli1eee",
            b"llleee",
            b"llle1:xee",
            b"llli1eei1eee",
            b"llle1:x1:yee",
            b"llle1:xi-1eee",
            b"llle1:xi1ei2eee",
        ] {
            let e = parse_files_blob(bad).unwrap_err().to_string();
            assert!(e.starts_with("corrupt index"), "{e}");
        }
    }

    proptest::proptest! {
        #[test]
        fn file_lists_round_trip(
            files in proptest::collection::vec(
                (proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..8), 0..4),
                 0..=i64::MAX as u64),
                0..12,
            )
        ) {
            let files: Vec<FileEntry> =
                files.into_iter().map(|(path, length)| FileEntry { path, length }).collect();
            proptest::prop_assert_eq!(parse_files_blob(&files_blob(&files)).unwrap(), files);
        }

        #[test]
        fn any_bytes_parse_or_fail_cleanly(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = parse_files_blob(&raw);
        }
    }

    #[test]
    fn vectors() {
        // 'a':1A,3A 'b':2A,5 'c':4 as the server sends it back in binary.
        let v = search_vector("a b a", "c b").unwrap();
        let mut want = 3i32.to_be_bytes().to_vec();
        want.extend_from_slice(b"a\0\0\x02\xc0\x01\xc0\x03");
        want.extend_from_slice(b"b\0\0\x02\xc0\x02\x00\x05");
        want.extend_from_slice(b"c\0\0\x01\x00\x04");
        assert_eq!(v.0, want);
        assert_eq!(search_vector("", "").unwrap().0, 0i32.to_be_bytes());
        // Left to the server: not ASCII, a number with an exponent, a long word.
        assert!(search_vector("ärger мир ελλάδα 東京 ひらがな カタカナ 한국어", "").is_some());
        for w in ["ǆ", "x²y", "ﬁ", "ÿ̈", "Ärger", "ー"] {
            assert_eq!(search_vector(w, ""), None, "{w}");
        }
        assert_eq!(search_vector("a", "1e5x"), None);
        assert!(search_vector("x1e5", "").is_some());
        assert_eq!(search_vector(&"x".repeat(PLAIN_WORD_BYTES + 1), ""), None);
        // At most 255 positions a word, the last one shared by every word after it.
        let a = "a ".repeat(300);
        let ab: String = (0..16_400).map(|i| format!("w{i} ")).collect::<String>() + "z z";
        let many = word_positions(&a).unwrap();
        assert_eq!(many["a"].len(), WORD_POSITIONS);
        let long = word_positions(&ab).unwrap();
        assert_eq!(long["w16381"], [LAST_POS - 1]);
        assert_eq!(
            (&long["w16382"], &long["z"]),
            (&vec![LAST_POS], &vec![LAST_POS])
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(clamp_i64(u64::MAX), i64::MAX);
        assert_eq!(to_u64(5, "x").unwrap(), 5);
        assert!(to_u64(-1, "x").is_err());
    }
}
