//! `estudely search`: full-text search over the names and file paths in the index.

use crate::args::SortArg;
use std::io::Write as _;

use clap::{Args, ValueEnum};

use crate::cmd::db::DbArgs;
use crate::output::csv_name;
use crate::report::format::human_bytes;
use crate::store::{Category, StoredTorrent};

/// `estudely search --help` epilogue.
pub const EXAMPLES: &str = "The query is plain words (letters and digits; everything else separates
words, nothing is search syntax); a torrent matches when its name or file paths hold every
word. Best matches first. With --category, only torrents of that category (and with no
words, its newest). An infohash (hex or base32) or a magnet link as the query: that
torrent alone, when it is stored. Text: one line per hit, `INFOHASH  SIZE  FILES  CATEGORY  NAME`, the
name with control characters and bytes that are not UTF-8 written \\xHH (as in collect's
CSV; `-` for a torrent not classified yet). JSONL: one object per hit (infohash, name,
name_hex, version, file_count, total_bytes, piece_length, private, discovered, last_seen,
source, category, release).

Examples:
  estudely search ubuntu iso
  estudely search --category tv 'some show'
  estudely search --category ebook
  estudely search --db crawl.sqlite 'debian 12' --limit 50 --offset 50 --format jsonl";

/// `estudely search ...`
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Which index.
    #[command(flatten)]
    pub db: DbArgs,
    /// The words to look for.
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
    /// Order of the hits: best match, largest or newest first.
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
    let hits = match (named, args.category) {
        (Some(t), _) => {
            if args.offset == 0 && args.limit > 0 {
                vec![t]
            } else {
                Vec::new()
            }
        }
        (None, c) => match c {
            Some(c) => store.search_in(&query, c, args.sort.into(), args.limit, args.offset)?,
            None => store.search_sorted(&query, args.sort.into(), args.limit, args.offset)?,
        },
    };
    let mut out = Vec::new();
    for hit in &hits {
        let line = match args.format {
            SearchFormat::Text => text_line(hit),
            SearchFormat::Jsonl => json_line(hit),
        };
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    std::io::stdout().lock().write_all(&out)?;
    Ok(())
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

/// One JSON object, on one line.
pub fn json_line(hit: &StoredTorrent) -> String {
    crate::store::json::hit_value(hit).to_string()
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
        let json = json_line(&hit);
        assert!(!json.contains('\n') && json.contains("\"name_hex\":\"611b5b33316d0a62ff\""));
        assert!(!json.chars().any(char::is_control), "{json}");
    }
}
