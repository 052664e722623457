//! `estudely stats`: what the index holds, by kind, source and day, and the counters.

use std::io::Write as _;

use clap::{Args, ValueEnum};

use crate::cmd::db::DbArgs;
use crate::store::json::stats_value as to_json;
use crate::store::Stats;

/// `estudely stats --help` epilogue.
pub const EXAMPLES: &str =
    "Days are UTC days of discovery. `deleted` counts the keys in the blocklist
of pruned torrents (`estudely prune`; not torrents). JSON: one object with the totals and
`by_version`, `by_source`, `by_day`, `counters` as objects of counts.

Examples:
  estudely stats
  estudely stats --db crawl.sqlite --format json";

/// `estudely stats ...`
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Which index.
    #[command(flatten)]
    pub db: DbArgs,
    /// How to print.
    #[arg(long, value_enum, default_value_t = StatsFormat::Text)]
    pub format: StatsFormat,
}

/// Output formats of `estudely stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatsFormat {
    /// Aligned text for people.
    Text,
    /// One JSON object.
    Json,
}

/// Run `estudely stats ...`.
pub fn run(args: StatsArgs) -> anyhow::Result<()> {
    let stats = args.db.open_read_only()?.stats()?;
    let out = match args.format {
        StatsFormat::Text => text(&stats),
        StatsFormat::Json => format!("{}\n", to_json(&stats)),
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}

/// The stats as aligned text.
pub fn text(s: &Stats) -> String {
    let mut out = String::new();
    for (k, v) in [
        ("torrents", s.torrents),
        ("files", s.files),
        ("sightings", s.sightings),
        ("nodes", s.nodes),
        ("deleted", s.deleted),
    ] {
        out.push_str(&format!("{k:<12}{v}\n"));
    }
    for (title, pairs) in [
        ("by version", &s.by_version),
        ("by source", &s.by_source),
        ("by day (UTC)", &s.by_day),
        ("counters", &s.counters),
    ] {
        if pairs.is_empty() {
            continue;
        }
        out.push_str(&format!("{title}\n"));
        let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in pairs {
            out.push_str(&format!("  {k:<width$}  {v}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_both_formats() {
        let s = Stats {
            torrents: 3,
            deleted: 2,
            by_day: vec![("2024-01-01".into(), 1), ("2024-01-02".into(), 2)],
            counters: vec![("filtered_size".into(), 4)],
            ..Stats::default()
        };
        let t = text(&s);
        assert!(t.starts_with("torrents    3\n"), "{t}");
        assert!(t.contains("deleted     2\n"), "{t}");
        assert!(
            t.contains("by day (UTC)\n  2024-01-01  1\n  2024-01-02  2\n"),
            "{t}"
        );
        assert!(!t.contains("by version"), "{t}");
        let j = to_json(&s);
        assert_eq!(j["by_day"]["2024-01-02"], 2);
        assert_eq!(j["deleted"], 2);
        assert_eq!(j["counters"]["filtered_size"], 4);
        assert_eq!(j["by_source"], serde_json::json!({}));
    }
}
