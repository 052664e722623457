//! `estudely prune`: delete torrents from an index by rule (age, category, name, size) or
//! down to a cap (a number of torrents, a database size), oldest first, and block their
//! keys so that `run` never fetches or stores them again. The work is
//! [`crate::store::prune`]'s; this module parses the rules and prints what went.

use std::time::Duration;

use clap::Args;
use regex::Regex;

use crate::cmd::db::DbArgs;
use crate::pipeline::filter::parse_size;
use crate::report::format::{human_bytes, thousands};
use crate::resolve::UsageError;
use crate::store::prune::{prune, PruneFilter, PruneOptions, PruneReport, PruneRules};
use crate::store::{Category, DbUrl};

/// `estudely prune --help` epilogue.
pub const EXAMPLES: &str =
    "Rules combine: a torrent goes when it matches every filter given (--older-than,
--category, --name, --larger-than, --smaller-than). A cap (--max-torrents, --max-db-size) then
says how many of the matches go, the oldest (by discovery) first, until the index is under
it; with filters, only matching torrents go, so the cap may stay out of reach. With no rule
at all nothing is deleted (an error).

Deleting removes the torrent, its files, sightings, leases and search entry, 10,000
torrents per transaction, and puts its keys in the index's blocklist: `run` never searches,
fetches or stores them again. SQLite: the file is then rewritten (VACUUM) to give the space
back (--no-vacuum to skip; the space is reused by later torrents either way). PostgreSQL:
autovacuum makes the space reusable; the files do not shrink.

Prints the torrents, files and sightings deleted, the bytes of content they described, a
few names, and the database's size before and after.

Examples:
  estudely prune --db crawl.sqlite --older-than 90d --dry-run
  estudely prune --db crawl.sqlite --category xxx --category software
  estudely prune --db crawl.sqlite --name 'sample|trailer' --smaller-than 50MB
  estudely prune --db crawl.sqlite --max-torrents 1000000
  estudely prune --db postgres://estudely@db/estudely --max-db-size 20GB";

/// `estudely prune ...`
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Which index.
    #[command(flatten)]
    pub db: DbArgs,
    /// Only torrents discovered longer ago than AGE: a number with a unit, s, m, h, d or w
    /// (90d, 12h, 2w).
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub older_than: Option<Duration>,
    /// Only torrents of this category (movie, tv, music, audiobook, ebook, comic, software,
    /// game, xxx, other); repeat for several.
    #[arg(long, value_name = "WORD", value_parser = parse_category)]
    pub category: Vec<Category>,
    /// Only torrents whose name matches this regex (Rust syntax, case-insensitive; `(?-i)`
    /// makes it case-sensitive).
    #[arg(long, value_name = "REGEX", value_parser = parse_name_regex)]
    pub name: Option<Regex>,
    /// Only torrents of more than SIZE of content (e.g. 50GB, 1.5GiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub larger_than: Option<u64>,
    /// Only torrents of less than SIZE of content (e.g. 1MB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub smaller_than: Option<u64>,
    /// Keep at most N torrents: the oldest beyond them go.
    #[arg(long, value_name = "N")]
    pub max_torrents: Option<u64>,
    /// Delete the oldest until the database's used size is under SIZE (e.g. 20GB). The count
    /// is estimated from the average bytes per torrent; SQLite measures again after its
    /// VACUUM and goes on if still over.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_db_size: Option<u64>,
    /// Say what would go (counts, bytes of content, a few names) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// SQLite: do not rewrite the file after deleting (faster; the space is reused by later
    /// torrents but the file does not shrink).
    #[arg(long)]
    pub no_vacuum: bool,
    /// Names of deleted torrents to print, at most.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub examples: usize,
}

impl PruneArgs {
    /// The rules, with "older than" turned into a time before `now` (unix seconds).
    pub fn rules(&self, now: i64) -> PruneRules {
        let age = |d: &Duration| now.saturating_sub(i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        PruneRules {
            filter: PruneFilter {
                discovered_before: self.older_than.as_ref().map(age),
                categories: self.category.clone(),
                larger_than: self.larger_than,
                smaller_than: self.smaller_than,
            },
            name: self.name.clone(),
            max_torrents: self.max_torrents,
            max_db_size: self.max_db_size,
        }
    }
}

/// Run `estudely prune ...`.
pub fn run(args: PruneArgs) -> anyhow::Result<()> {
    let now = crate::pipeline::store_thread::unix_now();
    let rules = args.rules(now);
    if rules.is_empty() {
        return Err(UsageError(
            "prune needs a rule (--older-than, --category, --name, --larger-than, \
             --smaller-than, --max-torrents or --max-db-size): it never deletes everything"
                .into(),
        )
        .into());
    }
    let url = DbUrl::parse(&args.db.db)?;
    // A missing file is an error, never a new empty index (an older one is migrated).
    if let DbUrl::Sqlite(path) = &url {
        if !path.is_file() {
            return Err(UsageError(format!(
                "cannot open SQLite index `{}`: no such file",
                path.display()
            ))
            .into());
        }
    }
    let mut store = url.open()?;
    let opts = PruneOptions {
        dry_run: args.dry_run,
        reclaim: !args.no_vacuum,
        examples: args.examples,
        now,
        ..PruneOptions::default()
    };
    let report = prune(store.as_mut(), &rules, &opts)?;
    print!("{}", summary(&report, args.dry_run, store.kind()));
    Ok(())
}

/// The lines printed.
pub fn summary(r: &PruneReport, dry_run: bool, kind: &str) -> String {
    let d = &r.deleted;
    let mut out = if dry_run {
        format!(
            "dry run: would delete {} torrents ({} of content), {} files; nothing changed\n",
            thousands(d.torrents),
            human_bytes(r.content_bytes),
            thousands(d.files),
        )
    } else {
        format!(
            "deleted {} torrents ({} of content), {} files, {} sightings\n",
            thousands(d.torrents),
            human_bytes(r.content_bytes),
            thousands(d.files),
            thousands(d.sightings),
        )
    };
    // Escaped as `search` prints names: a name may hold newlines and control bytes.
    for name in &r.examples {
        out.push_str(&format!("  {}\n", crate::output::csv_name(name.as_bytes())));
    }
    let size = |s: &crate::store::DbSize| {
        format!(
            "{} used, {} on disk",
            human_bytes(s.used),
            human_bytes(s.file)
        )
    };
    out.push_str(&format!("before: {}\n", size(&r.before)));
    if !dry_run {
        out.push_str(&format!("after:  {}\n", size(&r.after)));
        if kind == "postgres" && d.torrents > 0 {
            out.push_str(
                "PostgreSQL: the space is reused by new rows once autovacuum has passed; \
                 the files do not shrink\n",
            );
        }
    }
    out
}

/// An age: a whole number with a unit, `s`, `m`, `h`, `d` or `w`.
pub fn parse_age(s: &str) -> Result<Duration, String> {
    let bad = || format!("`{s}` is not an age (a number with s, m, h, d or w: 90d, 12h)");
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs: u64 = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs).map(Duration::from_secs).ok_or_else(bad)
}

/// A category word.
fn parse_category(s: &str) -> Result<Category, String> {
    s.parse::<Category>().map_err(|e| e.to_string())
}

/// A `--name` regex, case-insensitive, size-limited.
fn parse_name_regex(s: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(s)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("`{s}` is not a valid regex: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DbSize, Deleted};

    #[test]
    fn ages() {
        assert_eq!(parse_age("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_age("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_age("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_age("30s"), Ok(Duration::from_secs(30)));
        for bad in ["90", "d", "1.5d", "3y", "-1d", "99999999999999999999w"] {
            assert!(parse_age(bad).unwrap_err().contains(bad), "{bad}");
        }
    }

    #[test]
    fn names_are_case_insensitive_and_categories_words() {
        assert!(parse_name_regex("sample").unwrap().is_match("SAMPLE.mkv"));
        assert!(!parse_name_regex("(?-i)sample").unwrap().is_match("SAMPLE"));
        assert!(parse_name_regex("(")
            .unwrap_err()
            .contains("`(` is not a valid regex"));
        assert_eq!(parse_category("XXX"), Ok(Category::Xxx));
        assert!(parse_category("porn")
            .unwrap_err()
            .contains("unknown category `porn`"));
    }

    #[test]
    fn older_than_is_a_time_before_now() {
        let args = PruneArgs {
            db: DbArgs { db: "x".into() },
            older_than: Some(Duration::from_secs(100)),
            category: vec![],
            name: None,
            larger_than: None,
            smaller_than: None,
            max_torrents: None,
            max_db_size: None,
            dry_run: false,
            no_vacuum: false,
            examples: 5,
        };
        assert_eq!(args.rules(1_000).filter.discovered_before, Some(900));
        let none = PruneArgs {
            older_than: None,
            ..args
        };
        assert!(none.rules(1_000).is_empty());
    }

    #[test]
    fn summaries() {
        let r = PruneReport {
            deleted: Deleted {
                torrents: 1_500,
                files: 3_000,
                sightings: 7,
            },
            content_bytes: 1 << 30,
            examples: vec!["a film".into()],
            before: DbSize {
                used: 2 << 20,
                file: 3 << 20,
                live: true,
            },
            after: DbSize {
                used: 1 << 20,
                file: 1 << 20,
                live: true,
            },
        };
        assert_eq!(
            summary(&r, false, "sqlite"),
            "deleted 1,500 torrents (1 GiB of content), 3,000 files, 7 sightings\n  a film\n\
             before: 2 MiB used, 3 MiB on disk\nafter:  1 MiB used, 1 MiB on disk\n"
        );
        let dry = summary(&r, true, "postgres");
        assert!(
            dry.starts_with("dry run: would delete 1,500 torrents"),
            "{dry}"
        );
        assert!(
            !dry.contains("after") && !dry.contains("autovacuum"),
            "{dry}"
        );
        assert!(summary(&r, false, "postgres").contains("autovacuum"));
    }
}
