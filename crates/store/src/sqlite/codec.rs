//! Values between Rust and SQLite: raw paths as bencoded lists, integers that must fit in
//! an SQLite INTEGER, and user queries turned into safe FTS5 expressions.

use estudely_bencode::Encoder;
use estudely_peer_wire::FileEntry;

/// Most words of a query that are searched for; the rest are ignored.
pub const MAX_QUERY_WORDS: usize = 16;

/// The bencoded list of `components`: `l3:abc4:defge`.
pub fn encode_path(components: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + components.iter().map(|c| c.len() + 3).sum::<usize>());
    let mut enc = Encoder(&mut out);
    enc.begin_list();
    for c in components {
        enc.bytes(c);
    }
    enc.end();
    out
}

/// The inverse of [`encode_path`]; `None` if `raw` is not a list of byte strings.
pub fn decode_path(raw: &[u8]) -> Option<Vec<Vec<u8>>> {
    let value = estudely_bencode::decode(raw).ok()?;
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

/// The FTS5 expression for a user's query, read as plain words: every run of letters and
/// digits becomes a quoted term, all terms must match. Nothing the user types (quotes,
/// `*`, `-`, `:`, `NEAR(`, `AND`) is FTS5 syntax any more. `None` when the query has no
/// letter or digit: nothing to search for.
pub fn fts_query(query: &str) -> Option<String> {
    let words: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(MAX_QUERY_WORDS)
        .map(|w| format!("\"{w}\""))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
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
        let f = FileEntry {
            path: comps,
            length: 1,
        };
        assert_eq!(path_text(&f), "a/b/\0//\u{fffd}\u{fffd}");
    }

    #[test]
    fn queries_are_plain_words() {
        assert_eq!(fts_query("Ubuntu 24.04").unwrap(), r#""Ubuntu" "24" "04""#);
        assert_eq!(
            fts_query(r#"a"b NEAR(c* -d e:f 'g'"#).unwrap(),
            r#""a" "b" "NEAR" "c" "d" "e" "f" "g""#
        );
        assert_eq!(fts_query("Café Noël").unwrap(), r#""Café" "Noël""#);
        for nothing in ["", "   ", "\"", "*", "-", "()", "'\"*:-^"] {
            assert_eq!(fts_query(nothing), None, "{nothing:?}");
        }
        let many = "w ".repeat(100);
        assert_eq!(
            fts_query(&many).unwrap().matches('w').count(),
            MAX_QUERY_WORDS
        );
    }

    #[test]
    fn integers() {
        assert_eq!(int(5, "x").unwrap(), 5);
        let e = int(u64::MAX, "total_bytes").unwrap_err().to_string();
        assert!(e.contains("total_bytes 18446744073709551615"), "{e}");
        assert_eq!(uint(-1), 0);
    }
}
