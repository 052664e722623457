//! Pure helpers of the PostgreSQL backend: numbers, raw paths and search text.

use estudely_bencode::{Encoder, Kind};

use crate::search_query::Term;

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

/// The raw components of a path as a bencoded list (see the schema).
pub fn path_raw(components: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(components.iter().map(|c| c.len() + 4).sum::<usize>() + 2);
    let mut e = Encoder(&mut out);
    e.begin_list();
    for c in components {
        e.bytes(c);
    }
    e.end();
    out
}

/// The inverse of [`path_raw`].
pub fn parse_path_raw(raw: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let bad = || anyhow::anyhow!("corrupt index: a file's path_raw is not a bencoded list");
    let value = estudely_bencode::decode(raw).map_err(|_| bad())?;
    let Kind::List(items) = value.kind() else {
        return Err(bad());
    };
    items
        .iter()
        .map(|v| v.as_bytes().map(<[u8]>::to_vec).ok_or_else(bad))
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
    fn raw_paths() {
        let path = vec![b"a/b".to_vec(), vec![0, 0xff], Vec::new()];
        let raw = path_raw(&path);
        assert_eq!(raw, b"l3:a/b2:\0\xff0:e");
        assert_eq!(parse_path_raw(&raw).unwrap(), path);
        assert!(parse_path_raw(b"3:abc").is_err());
        assert!(parse_path_raw(b"li1ee").is_err());
        assert!(parse_path_raw(b"l").is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(clamp_i64(u64::MAX), i64::MAX);
        assert_eq!(to_u64(5, "x").unwrap(), 5);
        assert!(to_u64(-1, "x").is_err());
    }
}
