//! What `run` keeps out of its index, and what it already has.
//!
//! - [`Filters`]: `--min-size`, `--max-size`, `--include` / `--exclude` name regexes and
//!   `--blocklist FILE` of infohashes. A blocklisted infohash is dropped as soon as it is
//!   found (no peer search, no fetch); the others can only be judged on the metadata.
//!   Filtered torrents are counted, never stored.
//! - [`KnownFilter`] (in [`known`]): a scalable Bloom filter of the infohashes in the
//!   index, so that the question "do we have it?" costs a database query only when the
//!   answer is probably yes, at any index size.

use std::collections::HashSet;
use std::path::Path;

use estudely_krpc::InfoHash;
use estudely_peer_wire::InfoSummary;
use regex::Regex;

use estudely_store::UsageError;

pub mod known;
pub use known::KnownFilter;

/// Why a torrent was not stored: the counter names in the index (`filtered_<reason>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// In the `--blocklist`.
    Blocklist,
    /// Under `--min-size` or over `--max-size`.
    Size,
    /// Name not matching `--include`, or matching `--exclude`.
    Name,
}

impl Rejected {
    /// The counter name.
    pub fn counter(self) -> &'static str {
        match self {
            Rejected::Blocklist => "filtered_blocklist",
            Rejected::Size => "filtered_size",
            Rejected::Name => "filtered_name",
        }
    }
}

/// The user's filters.
#[derive(Debug, Default)]
pub struct Filters {
    /// Smallest total size kept, bytes.
    pub min_size: Option<u64>,
    /// Largest total size kept, bytes.
    pub max_size: Option<u64>,
    /// Names must match this.
    pub include: Option<Regex>,
    /// Names must not match this.
    pub exclude: Option<Regex>,
    /// Infohashes never searched, fetched or stored.
    pub blocklist: HashSet<InfoHash>,
}

impl Filters {
    /// Whether `ih` is blocklisted.
    pub fn blocked(&self, ih: &InfoHash) -> bool {
        self.blocklist.contains(ih)
    }

    /// Why a torrent with this metadata is not stored, if it is not.
    pub fn reject(&self, m: &InfoSummary) -> Option<Rejected> {
        if self.min_size.is_some_and(|min| m.total_bytes < min)
            || self.max_size.is_some_and(|max| m.total_bytes > max)
        {
            return Some(Rejected::Size);
        }
        if self.include.is_some() || self.exclude.is_some() {
            let name = m.name_lossy();
            if self.include.as_ref().is_some_and(|r| !r.is_match(&name))
                || self.exclude.as_ref().is_some_and(|r| r.is_match(&name))
            {
                return Some(Rejected::Name);
            }
        }
        None
    }
}

/// Compile a `--include` / `--exclude` regex (size-limited: a hostile-looking pattern is a
/// usage error, never a slow crawl).
pub fn parse_regex(s: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(s)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("`{s}` is not a valid regex: {e}"))
}

/// Parse a size: bytes, or a number with a unit (`700MB`, `1.5GiB`, `10k`): decimal `k`,
/// `M`, `G`, `T` (also `KB`...), binary `KiB`, `MiB`, `GiB`, `TiB`; case-insensitive.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("`{s}` is not a size (e.g. 1048576, 700MB, 1.5GiB)");
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    let bytes = n * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes.round() as u64)
}

/// Read a blocklist: one infohash per line (40 hex digits, or a v2 one in 64); blank lines and lines starting
/// with `#` are skipped. A bad line is a usage error naming the file and the line.
pub fn read_blocklist(path: &Path) -> anyhow::Result<HashSet<InfoHash>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("cannot read --blocklist `{}`: {e}", path.display())))?;
    let mut set = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let ih = estudely_fetch::info_hash_hex(line).ok_or_else(|| {
            let shown: String = line.chars().take(60).collect();
            UsageError(format!(
                "--blocklist `{}` line {}: `{}` is not an infohash (40 or 64 hex digits)",
                path.display(),
                i + 1,
                shown.escape_debug()
            ))
        })?;
        set.insert(ih);
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("700MB"), Ok(700_000_000));
        assert_eq!(parse_size("1.5GiB"), Ok(1_610_612_736));
        assert_eq!(parse_size("10 k"), Ok(10_000));
        assert_eq!(parse_size("2tib"), Ok(2 << 40));
        for bad in ["", "MB", "1.2.3", "-5", "5 parsecs", "1e999"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    fn summary(name: &str, total: u64) -> InfoSummary {
        let info = format!(
            "d6:lengthi{total}e4:name{}:{name}12:piece lengthi16384e6:pieces20:{}e",
            name.len(),
            "x".repeat(20)
        );
        InfoSummary::parse(info.as_bytes()).unwrap()
    }

    #[test]
    fn filters_judge_size_then_name() {
        let f = Filters {
            min_size: Some(100),
            max_size: Some(1_000),
            include: Some(parse_regex("(?i)linux").unwrap()),
            exclude: Some(parse_regex("beta").unwrap()),
            ..Filters::default()
        };
        assert_eq!(f.reject(&summary("Linux iso", 500)), None);
        assert_eq!(f.reject(&summary("Linux iso", 5)), Some(Rejected::Size));
        assert_eq!(f.reject(&summary("Linux iso", 5_000)), Some(Rejected::Size));
        assert_eq!(f.reject(&summary("bsd", 500)), Some(Rejected::Name));
        assert_eq!(f.reject(&summary("linux beta", 500)), Some(Rejected::Name));
        assert_eq!(Filters::default().reject(&summary("x", 0)), None);
        assert!(parse_regex("(unclosed").is_err());
        assert!(parse_regex("a{1000}{1000}").is_err(), "size-limited");
    }

    #[test]
    fn blocklist_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("block.txt");
        let a = "ab".repeat(20);
        std::fs::write(
            &path,
            format!("# comment\n\n{a}\n  {}  \n", "CD".repeat(20)),
        )
        .unwrap();
        let set = read_blocklist(&path).unwrap();
        assert_eq!(set.len(), 2);
        assert!(set.contains(&InfoHash::from_hex(&a).unwrap()));
        std::fs::write(&path, format!("{a}\nnot-a-hash\n")).unwrap();
        let err = read_blocklist(&path).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("block.txt"), "{err}");
        let err = read_blocklist(&dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
