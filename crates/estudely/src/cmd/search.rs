//! `estudely search`: full-text search over the names and file paths in the index.

use crate::args::SortArg;
use std::io::Write as _;

use clap::{Args, ValueEnum};

use crate::cmd::db::DbArgs;
use crate::output::csv_name;
use crate::report::format::human_bytes;
use crate::store::{Category, StoredTorrent};

/// `estudely search --help` epilogue.
pub const EXAMPLES: &str =
    "Query syntax (words are letters and digits; everything else separates them):
  ubuntu desktop        every word, in the name or a file path (any case)
  \"ubuntu desktop\"      the words in a row (an unclosed quote runs to the end)
  -beta  -\"rc one\"      without that word or phrase
  category:tv           movie tv music audiobook ebook comic software game xxx other
  size:>1GB  size:<700MB  size:1GB..4GB   (also >= <=; KB MB GB TB = 1000s, KiB MiB GiB TiB = 1024s)
  after:2026-01-01  before:2026-02-01     discovered on or after / before that UTC day
  files:>10  files:<3  files:5  files:2..5
A field with a value it cannot read is an error naming it; any other `word:` is words.
A query that starts with `-` needs `--` before it: estudely search -- -beta.
--category and a category: field naming another category find nothing. Without words
(fields or exclusions only), the newest 10,000 torrents (PostgreSQL: 2,000) of the
category, or of all, are looked at.
A query matching very many torrents is ordered among its newest matches (SQLite) or the
first the index gives (PostgreSQL). An infohash (hex or base32) or a magnet link as the
query: that torrent alone, when it is stored.

Text: one line per hit, `INFOHASH  SIZE  FILES  CATEGORY  NAME`, the name with control
characters and bytes that are not UTF-8 written \\xHH (as in collect's CSV; `-` for a
torrent not classified yet); when a file path, not the name, explains the match, a second
line `    file: PATH`. JSONL: one object per hit (infohash, name, name_hex, version,
file_count, total_bytes, piece_length, private, discovered, last_seen, source, category,
release, matched_file: the path or null).

Examples:
  estudely search ubuntu iso
  estudely search '\"ubuntu desktop\" -beta size:>1GB'
  estudely search --category tv 'some show' --sort seeders
  estudely search --category ebook
  estudely search 'category:movie after:2026-01-01 files:<3'
  estudely search --db crawl.sqlite 'debian 12' --limit 50 --offset 50 --format jsonl";

/// `estudely search ...`
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Which index.
    #[command(flatten)]
    pub db: DbArgs,
    /// What to look for: words, \"phrases\", -exclusions and fields (see below).
    #[arg(required_unless_present = "category", num_args = 1.., value_name = "QUERY")]
    pub query: Vec<String>,
    /// Only torrents of this category: movie, tv, music, audiobook, ebook, comic,
    /// software, game, xxx, other.
    #[arg(long, value_name = "CATEGORY", value_parser = parse_category)]
    pub category: Option<Category>,
    /// Most hits to print.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    /// Hits to skip first (for the next page).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub offset: usize,
    /// Order of the hits: best match, largest, newest or most seeders first.
    #[arg(long, value_enum, default_value_t = SortArg::Relevance)]
    pub sort: SortArg,
    /// How to print hits.
    #[arg(long, value_enum, default_value_t = SearchFormat::Text)]
    pub format: SearchFormat,
}

/// Output formats of `estudely search`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SearchFormat {
    /// One line per hit for people.
    Text,
    /// One JSON object per hit and line.
    Jsonl,
}

/// Run `estudely search ...`.
pub fn run(args: SearchArgs) -> anyhow::Result<()> {
    let mut store = args.db.open_read_only()?;
    let query = args.query.join(" ");
    // An infohash or a magnet link of a stored torrent: that torrent alone.
    let named = match crate::store::key_in_query(&query) {
        Some(key) => store.torrent(&key)?,
        None => None,
    };
    let (hits, matched) = match named {
        Some(t) => {
            let hits = if args.offset == 0 && args.limit > 0 {
                vec![t]
            } else {
                Vec::new()
            };
            let none = vec![None; hits.len()];
            (hits, none)
        }
        None => {
            let mut q = crate::store::parse_query(&query)?;
            if let Some(c) = args.category {
                q.and_category(c);
            }
            let hits = store.find(&q, args.sort.into(), args.limit, args.offset)?;
            let matched = store.matched_files(&q, &hits)?;
            (hits, matched)
        }
    };
    let mut out = Vec::new();
    for (hit, file) in hits.iter().zip(&matched) {
        let line = match args.format {
            SearchFormat::Text => text_lines(hit, file.as_deref()),
            SearchFormat::Jsonl => json_line(hit, file.as_deref()),
        };
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    std::io::stdout().lock().write_all(&out)?;
    Ok(())
}

/// [`text_line`], then `    file: PATH` (escaped as the name) when a file explains the hit.
pub fn text_lines(hit: &StoredTorrent, file: Option<&str>) -> String {
    let mut out = text_line(hit);
    if let Some(f) = file {
        out.push_str("\n    file: ");
        out.push_str(&csv_name(f.as_bytes()));
    }
    out
}

/// `INFOHASH  SIZE  FILES  CATEGORY  NAME`, the name escaped.
pub fn text_line(hit: &StoredTorrent) -> String {
    let t = &hit.torrent;
    format!(
        "{}  {:>10}  {:>6}  {:<9}  {}",
        t.info_hash.to_hex(),
        human_bytes(t.total_bytes),
        t.file_count,
        t.category.map_or("-", Category::as_str),
        csv_name(&t.name)
    )
}

/// `--category`: a category name, or a one-line error listing them.
pub fn parse_category(s: &str) -> Result<Category, String> {
    s.parse()
        .map_err(|e: estudely_classify::UnknownCategory| e.to_string())
}

/// One JSON object, on one line, with `matched_file` (the path or null).
pub fn json_line(hit: &StoredTorrent, file: Option<&str>) -> String {
    crate::store::json::hit_with_file(hit, file).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Source, Torrent};
    use estudely_krpc::InfoHash;
    use estudely_peer_wire::Version;

    #[test]
    fn lines_carry_no_control_characters() {
        let hit = StoredTorrent {
            torrent: Torrent {
                info_hash: InfoHash([1; 20]),
                info_hash_v2: None,
                name: b"a\x1b[31m\nb\xff".to_vec(),
                total_bytes: 2048,
                piece_length: 16384,
                file_count: 2,
                private: false,
                version: Version::V1,
                files: vec![],
                discovered: 5,
                source: Source::Sample,
                seeds_estimate: None,
                peers_estimate: None,
                category: None,
                release: None,
            },
            files_omitted: 0,
            last_seen: 6,
            estimated_at: None,
        };
        let line = text_line(&hit);
        assert!(
            line.ends_with("2 KiB       2  -          a\\x1b[31m\\x0ab\\xff"),
            "{line}"
        );
        let lines = text_lines(&hit, Some("d/\x1b.mkv"));
        assert!(lines.ends_with("\\xff\n    file: d/\\x1b.mkv"), "{lines}");
        let json = json_line(&hit, Some("d/e.mkv"));
        assert!(json.contains(r#""matched_file":"d/e.mkv""#), "{json}");
        let json = json_line(&hit, None);
        assert!(!json.contains('\n') && json.contains("\"name_hex\":\"611b5b33316d0a62ff\""));
        assert!(!json.chars().any(char::is_control), "{json}");
    }
}
