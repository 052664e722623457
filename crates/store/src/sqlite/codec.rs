//! Values between Rust and SQLite: raw paths as bencoded lists (also PostgreSQL's
//! `files.path_raw` and the paths inside its `torrents.files`), integers that must fit in
//! an SQLite INTEGER, and search queries turned into safe FTS5 expressions.

use estudely_bencode::{Encoder, Value};
use estudely_peer_wire::FileEntry;

use crate::search_query::{SearchQuery, Term};

/// The bencoded list of `components`: `l3:abc4:defge`.
pub fn encode_path(components: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + components.iter().map(|c| c.len() + 3).sum::<usize>());
    write_path(&mut Encoder(&mut out), components);
    out
}

/// [`encode_path`] into an encoder (a path inside a larger value).
pub fn write_path(enc: &mut Encoder<'_>, components: &[Vec<u8>]) {
    enc.begin_list();
    for c in components {
        enc.bytes(c);
    }
    enc.end();
}

/// The inverse of [`encode_path`]; `None` if `raw` is not a list of byte strings.
pub fn decode_path(raw: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut path = Vec::new();
    decode_path_into(raw, &mut path).then_some(path)
}

/// [`decode_path`] into `path`, reusing its buffers (false, `path` left unspecified, where
/// that gives `None`).
///
/// An export decodes every stored path (10 M at 1 M torrents): what [`encode_path`] writes
/// is read directly ([`direct_path`]) rather than through the generic bencode tree, into the
/// previous file's buffers rather than new ones. Anything else goes to the generic decoder,
/// which so stays the one judge of odd input.
pub fn decode_path_into(raw: &[u8], path: &mut Vec<Vec<u8>>) -> bool {
    let mut n = 0;
    let direct = direct_path(raw, |c| {
        match path.get_mut(n) {
            Some(buf) => {
                buf.clear();
                buf.extend_from_slice(c);
            }
            None => path.push(c.to_vec()),
        }
        n += 1;
    });
    if direct {
        path.truncate(n);
        return true;
    }
    match estudely_bencode::decode(raw)
        .ok()
        .as_ref()
        .and_then(path_of)
    {
        Some(p) => {
            *path = p;
            true
        }
        None => false,
    }
}

/// Longest input [`direct_path`] reads: far below the generic decoder's limits (64 MiB, 4 M
/// values; a component takes at least 2 bytes), so that both accept what it accepts.
const DIRECT_MAX: usize = 1 << 20;

/// Call `each` with the components of `raw`, and say whether it was exactly `l`, canonical
/// `<len>:<bytes>` strings, `e` (what [`encode_path`] writes); false for anything else,
/// valid or not, maybe after calls for a first few components.
fn direct_path<'a>(raw: &'a [u8], mut each: impl FnMut(&'a [u8])) -> bool {
    if raw.len() > DIRECT_MAX {
        return false;
    }
    let Some(mut rest) = raw.strip_prefix(b"l") else {
        return false;
    };
    loop {
        let len = match rest.first() {
            Some(b'e') => return rest.len() == 1,
            Some(b'0') => {
                rest = &rest[1..];
                0
            }
            Some(b'1'..=b'9') => {
                let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                // At most 7 digits: the input is at most 1 MiB, and no overflow.
                if digits > 7 {
                    return false;
                }
                let len = rest[..digits]
                    .iter()
                    .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
                rest = &rest[digits..];
                len
            }
            _ => return false,
        };
        let Some(tail) = rest.strip_prefix(b":") else {
            return false;
        };
        if len > tail.len() {
            return false;
        }
        let (component, tail) = tail.split_at(len);
        each(component);
        rest = tail;
    }
}

/// The components of a path decoded in place (see [`write_path`]); `None` if `value` is not
/// a list of byte strings.
pub fn path_of(value: &Value<'_>) -> Option<Vec<Vec<u8>>> {
    value
        .as_list()?
        .iter()
        .map(|c| c.as_bytes().map(<[u8]>::to_vec))
        .collect()
}

/// The searchable text of a path: each component as lossy UTF-8, joined with `/`.
pub fn path_text(file: &FileEntry) -> String {
    let parts: Vec<_> = file
        .path
        .iter()
        .map(|c| String::from_utf8_lossy(c))
        .collect();
    parts.join("/")
}

/// `v` as an SQLite INTEGER, or an error naming `what`.
pub fn int(v: u64, what: &str) -> anyhow::Result<i64> {
    i64::try_from(v).map_err(|_| anyhow::anyhow!("{what} {v} is too large to store"))
}

/// A stored INTEGER read back as `u64` (negative values, only from outside edits, are 0).
pub fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A term as an FTS5 phrase: its words in one quoted string. Words are runs of letters and
/// digits (see [`SearchQuery`]), so nothing the user typed is FTS5 syntax.
fn fts_phrase(t: &Term) -> String {
    format!("\"{}\"", t.words.join(" "))
}

/// The FTS5 expression of a query's words: every included term, then `NOT` each excluded
/// one (FTS5's `NOT` is binary: `("a" AND "b c") NOT "d"`). `None` without included terms.
pub fn fts_match(q: &SearchQuery) -> Option<String> {
    if q.include.is_empty() {
        return None;
    }
    let all: Vec<String> = q.include.iter().map(fts_phrase).collect();
    let mut expr = format!("({})", all.join(" AND "));
    for t in &q.exclude {
        expr.push_str(" NOT ");
        expr.push_str(&fts_phrase(t));
    }
    Some(expr)
}

/// The FTS5 expression matching any of `terms`; `None` when there are none.
pub fn fts_any(terms: &[Term]) -> Option<String> {
    let any: Vec<String> = terms.iter().map(fts_phrase).collect();
    (!any.is_empty()).then(|| any.join(" OR "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_any_bytes() {
        let comps = vec![b"a/b".to_vec(), b"\0".to_vec(), vec![], vec![0xff, 0xfe]];
        let raw = encode_path(&comps);
        assert_eq!(&raw[..9], b"l3:a/b1:\0");
        assert_eq!(decode_path(&raw), Some(comps.clone()));
        assert_eq!(decode_path(b"le"), Some(vec![]));
        assert_eq!(decode_path(b"li1ee"), None);
        assert_eq!(decode_path(b"junk"), None);
        assert_eq!(decode_path(b"3:abc"), None);
        assert_eq!(decode_path(b"l"), None);
        let hostile = vec![b"a/b".to_vec(), vec![0, 0xff], Vec::new()];
        assert_eq!(encode_path(&hostile), b"l3:a/b2:\0\xff0:e");
        let f = FileEntry {
            path: comps,
            length: 1,
        };
        assert_eq!(path_text(&f), "a/b/\0//\u{fffd}\u{fffd}");
    }

    /// The direct reader and the generic decoder agree on every input: valid paths, and
    /// each of their truncations and one-byte changes (non-canonical lengths, other values,
    /// trailing bytes).
    #[test]
    fn direct_path_agrees_with_the_generic_decoder() {
        let generic = |raw: &[u8]| path_of(&estudely_bencode::decode(raw).ok()?);
        let valid: Vec<Vec<u8>> = vec![
            encode_path(&[]),
            encode_path(&[vec![]]),
            encode_path(&[b"a".to_vec(), b"0123456789:e".to_vec()]),
            encode_path(&[vec![b'x'; 12], vec![0xff; 300], b"l1:ae".to_vec()]),
        ];
        let mut inputs = valid.clone();
        for v in &valid {
            for cut in 0..v.len() {
                inputs.push(v[..cut].to_vec());
            }
            for i in 0..v.len() {
                for b in [b'0', b'1', b'9', b':', b'e', b'l', b'i', b'd', b'-', b'x'] {
                    let mut m = v.clone();
                    m[i] = b;
                    inputs.push(m);
                }
            }
            inputs.push([v.as_slice(), b"e"].concat());
        }
        inputs.extend([
            b"l01:ae".to_vec(),
            b"l00:e".to_vec(),
            b"l-1:ae".to_vec(),
            b"l1:a".to_vec(),
            b"li0ee".to_vec(),
            b"l99999999999999999999:ae".to_vec(),
            b"l1:al1:bee".to_vec(),
        ]);
        for raw in &inputs {
            assert_eq!(
                decode_path(raw),
                generic(raw),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        for v in &valid {
            assert!(direct_path(v, |_| ()), "{v:?} is read directly");
        }
        let big = encode_path(&[vec![b'a'; DIRECT_MAX]]);
        assert!(!direct_path(&big, |_| ()));
        assert_eq!(decode_path(&big), generic(&big));
        // Into buffers holding another path, longer or shorter, valid input or not.
        let mut path = vec![b"old".to_vec(); 5];
        for raw in inputs.iter().chain([&big]) {
            let ok = decode_path_into(raw, &mut path);
            assert_eq!(ok.then(|| path.clone()), generic(raw), "{raw:?}");
        }
    }

    #[test]
    fn queries_become_fts5_expressions() {
        let q = |s: &str| SearchQuery::parse(s).unwrap();
        assert_eq!(
            fts_match(&q(r#"Ubuntu 24.04 "a b" -c -"d e" size:>1GB"#)).unwrap(),
            r#"("Ubuntu" AND "24" AND "04" AND "a b") NOT "c" NOT "d e""#
        );
        assert_eq!(
            fts_match(&q(r#"a"b NEAR(c* AND e:f 'g'"#)).unwrap(),
            r#"("a" AND "b" AND "NEAR" AND "c" AND "AND" AND "e" AND "f" AND "g")"#
        );
        for nothing in ["", "-x", "category:tv", "*", "'\"*:-^"] {
            assert_eq!(fts_match(&q(nothing)), None, "{nothing:?}");
        }
        assert_eq!(
            fts_any(&q("-x -\"y z\"").exclude).unwrap(),
            r#""x" OR "y z""#
        );
        assert_eq!(fts_any(&[]), None);
    }

    #[test]
    fn integers() {
        assert_eq!(int(5, "x").unwrap(), 5);
        let e = int(u64::MAX, "total_bytes").unwrap_err().to_string();
        assert!(e.contains("total_bytes 18446744073709551615"), "{e}");
        assert_eq!(uint(-1), 0);
    }
}
