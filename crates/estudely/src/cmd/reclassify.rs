//! `estudely reclassify`: file every torrent of an existing index under a category again,
//! with the built-in rules or a user's (`--classify-rules`), as `run` does when it stores a
//! torrent. For an index built before classification, or after the rules changed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;

use crate::cmd::db::DbArgs;
use crate::store::{Category, DbUrl, InfoHashRelease};

/// `estudely reclassify --help` epilogue.
pub const EXAMPLES: &str =
    "Reads every torrent with its stored files (the first 1,000 of each) and writes
the category and release fields that differ, 1,000 torrents per transaction; `run` may go on
writing meanwhile. Prints how many torrents changed, and the count of each category.

Examples:
  estudely reclassify --db crawl.sqlite
  estudely reclassify --db postgres://estudely@db/estudely --classify-rules my-rules.toml";

/// Torrents written per transaction.
const BATCH: usize = 1_000;

/// `estudely reclassify ...`
#[derive(Debug, Args)]
pub struct ReclassifyArgs {
    /// Which index.
    #[command(flatten)]
    pub db: DbArgs,
    /// Classification rules tried before the built-in ones (TOML, the format of
    /// crates/classify/default-rules.toml).
    #[arg(long, value_name = "FILE")]
    pub classify_rules: Option<PathBuf>,
}

/// What a reclassification did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reclassified {
    /// Torrents read.
    pub torrents: u64,
    /// Torrents whose category or release fields were written.
    pub changed: u64,
    /// Torrents per category, after.
    pub by_category: BTreeMap<Category, u64>,
}

/// Run `estudely reclassify ...`.
pub fn run(args: ReclassifyArgs) -> anyhow::Result<()> {
    let classifier = crate::args::classifier(args.classify_rules.as_deref())?;
    let url = DbUrl::parse(&args.db.db)?;
    let done = reclassify(&url, &classifier)?;
    let counts: Vec<String> = done
        .by_category
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    eprintln!(
        "reclassify: {} torrents, {} changed; {}",
        done.torrents,
        done.changed,
        counts.join(", ")
    );
    Ok(())
}

/// Classify every torrent of the index at `url` with `classifier`, and write what changed.
/// One connection reads the torrents in discovery order while another writes.
pub fn reclassify(
    url: &DbUrl,
    classifier: &crate::store::Classifier,
) -> anyhow::Result<Reclassified> {
    let mut reader = url.open_read_only()?;
    let mut writer = url.open()?;
    let mut done = Reclassified::default();
    let mut batch: Vec<InfoHashRelease> = Vec::with_capacity(BATCH);
    reader.export(None, &mut |st, _| {
        let t = &st.torrent;
        let c = t.classification(classifier);
        done.torrents += 1;
        *done.by_category.entry(c.category).or_default() += 1;
        if t.category != Some(c.category) || t.release.as_ref() != Some(&c.release) {
            batch.push((t.info_hash, c.category, c.release));
            if batch.len() >= BATCH {
                writer.set_categories(&batch)?;
                done.changed += batch.len() as u64;
                batch.clear();
            }
        }
        Ok(())
    })?;
    if !batch.is_empty() {
        writer.set_categories(&batch)?;
        done.changed += batch.len() as u64;
    }
    Ok(done)
}
