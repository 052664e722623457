//! Retention: delete torrents by rule (`estudely prune`, `run --max-torrents` /
//! `--max-db-size`), and remember what was deleted so that no crawl stores it again.
//!
//! [`prune`] is the one loop both backends share: it scans the torrents that match the
//! rules' SQL side ([`PruneFilter`]) oldest first, [`PRUNE_CHUNK`] at a time, applies the
//! name regex, and hands each chunk's keys to [`Store::delete_torrents`], one transaction
//! per chunk (a prune of a million rows never holds one huge transaction, and a reader
//! waits at most one chunk). The caps say how many go ([`quota`]); the filters say which.
//!
//! A deleted torrent's keys (its v1 key and a hybrid's truncated v2 key) go to the
//! blocklist table `deleted(info_hash, deleted_at)`: [`Store::known_among`] and
//! [`Store::claim`] count them as known, so `run` neither searches nor fetches them again.

use estudely_krpc::InfoHash;

use crate::{Category, Store};

/// Most torrents deleted in one transaction (and scanned per query).
pub const PRUNE_CHUNK: usize = 10_000;

/// The rules a database can apply itself (all of them must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneFilter {
    /// Only torrents discovered before this time (unix seconds).
    pub discovered_before: Option<i64>,
    /// Only torrents of one of these categories (empty: any, unclassified included).
    pub categories: Vec<Category>,
    /// Only torrents of more than this many bytes of content.
    pub larger_than: Option<u64>,
    /// Only torrents of fewer than this many bytes of content.
    pub smaller_than: Option<u64>,
}

/// What to delete: the torrents matching every filter, and, when a cap is set, only the
/// oldest of them, as many as it takes to get under the cap.
#[derive(Debug, Clone, Default)]
pub struct PruneRules {
    /// The database's side of the rules.
    pub filter: PruneFilter,
    /// Only torrents whose name (lossy UTF-8) this regex matches.
    pub name: Option<regex::Regex>,
    /// Keep at most this many torrents (the newest by `discovered`).
    pub max_torrents: Option<u64>,
    /// Keep the database's used size under this many bytes (see [`DbSize::used`]).
    pub max_db_size: Option<u64>,
}

impl PruneRules {
    /// No rule at all: a prune would delete everything, which is never what was meant.
    pub fn is_empty(&self) -> bool {
        self.filter == PruneFilter::default()
            && self.name.is_none()
            && self.max_torrents.is_none()
            && self.max_db_size.is_none()
    }
}

/// A torrent a prune may delete, as [`Store::prune_scan`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its stored key.
    pub key: InfoHash,
    /// When it was discovered, unix seconds (the scan's order).
    pub discovered: i64,
    /// The backend's tie-breaker after `discovered` (SQLite: the row id; PostgreSQL: 0, the
    /// key breaks ties).
    pub row: i64,
    /// Its name, lossy UTF-8.
    pub name: String,
    /// Bytes of content.
    pub total_bytes: u64,
    /// File rows stored for it.
    pub files: u64,
}

/// Rows deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Torrent rows (with their full-text entries).
    pub torrents: u64,
    /// File rows.
    pub files: u64,
    /// Sighting rows (of either key of a hybrid).
    pub sightings: u64,
}

impl std::ops::AddAssign for Deleted {
    fn add_assign(&mut self, o: Deleted) {
        self.torrents += o.torrents;
        self.files += o.files;
        self.sightings += o.sightings;
    }
}

/// How big the database is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbSize {
    /// Bytes holding data: SQLite's pages in use (`page_count - freelist_count`, times
    /// `page_size`); PostgreSQL's tables and indexes (`pg_total_relation_size`), which
    /// shrink only when autovacuum hands back whole trailing pages.
    pub used: u64,
    /// Bytes on disk: the SQLite file (without its WAL), `pg_database_size`.
    pub file: u64,
    /// Whether `used` drops as rows are deleted (SQLite: yes, pages go to the free list).
    pub live: bool,
}

/// How [`prune`] runs.
#[derive(Debug, Clone, Copy)]
pub struct PruneOptions {
    /// Count what would go, delete nothing.
    pub dry_run: bool,
    /// Give the freed space back to the file system at the end (SQLite `VACUUM`).
    pub reclaim: bool,
    /// Names of deleted torrents to report, at most.
    pub examples: usize,
    /// Torrents per scan and per transaction.
    pub chunk: usize,
    /// The deletion time recorded in the blocklist, unix seconds.
    pub now: i64,
}

impl Default for PruneOptions {
    fn default() -> PruneOptions {
        PruneOptions {
            dry_run: false,
            reclaim: true,
            examples: 5,
            chunk: PRUNE_CHUNK,
            now: 0,
        }
    }
}

/// What a prune did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Rows deleted (dry: torrents and files that would go; sightings are not counted).
    pub deleted: Deleted,
    /// Bytes of content of the deleted torrents.
    pub content_bytes: u64,
    /// The first few names deleted, oldest first.
    pub examples: Vec<String>,
    /// The size before.
    pub before: DbSize,
    /// The size after (dry: the same as before).
    pub after: DbSize,
}

/// How many torrents the caps ask to delete, given `torrents` stored in `used` bytes:
/// `None` when no cap is set (every match goes). `--max-db-size` is turned into a count by
/// the bytes a deleted torrent gives back, `freed_each` when a previous round measured it,
/// else the average bytes per torrent; rounded up.
pub fn quota(rules: &PruneRules, torrents: u64, used: u64, freed_each: Option<u64>) -> Option<u64> {
    let by_count = rules.max_torrents.map(|n| torrents.saturating_sub(n));
    let by_size = rules.max_db_size.map(|cap| {
        if used <= cap || torrents == 0 {
            return 0;
        }
        let n = match freed_each {
            Some(each) => u128::from(used - cap).div_ceil(u128::from(each.max(1))),
            None => (u128::from(used - cap) * u128::from(torrents)).div_ceil(u128::from(used)),
        };
        u64::try_from(n).unwrap_or(u64::MAX).min(torrents)
    });
    match (by_count, by_size) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).max(b.unwrap_or(0))),
    }
}

/// `run --max-db-size` as a torrent count. A crawl cannot measure again after each prune as
/// `estudely prune` does (with a VACUUM between): deleted rows leave partly empty pages
/// (SQLite's random-keyed indexes, the full-text index's delete markers) or dead tuples
/// (PostgreSQL, until autovacuum), so the used size drops less than the rows, and a cap
/// measured again each minute would prune more each minute. The bytes per torrent are
/// measured until the first prune of the run, then kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunningSizeCap {
    per_torrent: Option<u64>,
    frozen: bool,
}

impl RunningSizeCap {
    /// The torrents `cap` bytes hold, with `torrents` stored in `used` bytes now (`None`
    /// before anything is stored).
    pub fn max_torrents(&mut self, cap: u64, torrents: u64, used: u64) -> Option<u64> {
        if !self.frozen && torrents > 0 {
            self.per_torrent = Some(used.div_ceil(torrents).max(1));
        }
        self.per_torrent.map(|b| cap / b)
    }

    /// A prune happened: keep the bytes per torrent measured so far.
    pub fn freeze(&mut self) {
        if self.per_torrent.is_some() {
            self.frozen = true;
        }
    }
}

/// Most rounds of `--max-db-size` on a store whose used size drops live: each deletes the
/// estimate of what is still over, then measures again.
const SIZE_ROUNDS: usize = 8;

/// Apply `rules` to `store`: delete (or count, dry) the matching torrents oldest first, as
/// many as the caps ask, in transactions of `opts.chunk`, and say what went.
pub fn prune(
    store: &mut dyn Store,
    rules: &PruneRules,
    opts: &PruneOptions,
) -> anyhow::Result<PruneReport> {
    let mut report = PruneReport {
        before: store.db_size()?,
        ..PruneReport::default()
    };
    // Deleted since the space was last given back.
    let mut dirty = false;
    // The torrents and used bytes of the previous round, to learn what a deleted torrent
    // gives back (less than the average: the blocklist grows, the schema stays).
    let mut last: Option<(u64, u64)> = None;
    for round in 0..SIZE_ROUNDS {
        let size = if round == 0 {
            report.before
        } else {
            store.db_size()?
        };
        let want = match (rules.max_torrents, rules.max_db_size) {
            (None, None) => None,
            _ => {
                let torrents = store.torrent_count()?;
                let freed_each = last.and_then(|(t, u)| {
                    let (gone, freed) = (t.checked_sub(torrents)?, u.checked_sub(size.used)?);
                    (gone > 0 && freed > 0).then(|| freed.div_ceil(gone))
                });
                last = Some((torrents, size.used));
                quota(rules, torrents, size.used, freed_each)
            }
        };
        if want == Some(0) {
            break;
        }
        let went = one_pass(store, rules, opts, want, &mut report)?;
        dirty |= went > 0 && !opts.dry_run;
        let again =
            rules.max_db_size.is_some() && size.live && went > 0 && !opts.dry_run && opts.reclaim;
        if !again {
            break;
        }
        // Measured again after the space is given back: partly emptied pages of the
        // random-keyed indexes only shrink with a VACUUM.
        if opts.reclaim {
            store.reclaim()?;
            dirty = false;
        }
    }
    if dirty && opts.reclaim {
        store.reclaim()?;
    }
    report.after = if opts.dry_run {
        report.before
    } else {
        store.db_size()?
    };
    Ok(report)
}

/// One scan of the matches, oldest first, deleting up to `want` (all when `None`); returns
/// how many went.
fn one_pass(
    store: &mut dyn Store,
    rules: &PruneRules,
    opts: &PruneOptions,
    mut want: Option<u64>,
    report: &mut PruneReport,
) -> anyhow::Result<u64> {
    let chunk = opts.chunk.max(1);
    let mut after: Option<Candidate> = None;
    let mut went = 0;
    loop {
        let rows = store.prune_scan(&rules.filter, after.as_ref(), chunk)?;
        let Some(last) = rows.last().cloned() else {
            break;
        };
        let mut keys = Vec::new();
        let mut files = 0;
        for c in rows {
            if want == Some(0) {
                break;
            }
            if rules.name.as_ref().is_some_and(|r| !r.is_match(&c.name)) {
                continue;
            }
            want = want.map(|n| n - 1);
            report.content_bytes = report.content_bytes.saturating_add(c.total_bytes);
            if report.examples.len() < opts.examples {
                report.examples.push(c.name);
            }
            files += c.files;
            keys.push(c.key);
        }
        went += keys.len() as u64;
        if opts.dry_run {
            report.deleted.torrents += keys.len() as u64;
            report.deleted.files += files;
        } else if !keys.is_empty() {
            report.deleted += store.delete_torrents(&keys, opts.now)?;
        }
        if want == Some(0) {
            break;
        }
        after = Some(last);
    }
    Ok(went)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(max_torrents: Option<u64>, max_db_size: Option<u64>) -> PruneRules {
        PruneRules {
            max_torrents,
            max_db_size,
            ..PruneRules::default()
        }
    }

    #[test]
    fn caps_become_counts() {
        assert_eq!(quota(&PruneRules::default(), 10, 1000, None), None);
        assert_eq!(quota(&caps(Some(4), None), 10, 1000, None), Some(6));
        assert_eq!(quota(&caps(Some(40), None), 10, 1000, None), Some(0));
        // 1000 bytes for 10 torrents, 100 each: 250 over is 3 torrents (rounded up).
        assert_eq!(quota(&caps(None, Some(750)), 10, 1000, None), Some(3));
        assert_eq!(quota(&caps(None, Some(1000)), 10, 1000, None), Some(0));
        assert_eq!(quota(&caps(None, Some(1)), 10, 1000, None), Some(10));
        assert_eq!(quota(&caps(None, Some(1)), 0, 1000, None), Some(0));
        // Both: the larger count.
        assert_eq!(quota(&caps(Some(8), Some(750)), 10, 1000, None), Some(3));
        assert_eq!(quota(&caps(Some(2), Some(750)), 10, 1000, None), Some(8));
        // What a deleted torrent gave back last round: 50 bytes each, 250 over is 5.
        assert_eq!(quota(&caps(None, Some(750)), 10, 1000, Some(50)), Some(5));
        assert_eq!(quota(&caps(None, Some(750)), 10, 1000, Some(0)), Some(10));
        assert_eq!(
            quota(&caps(None, Some(0)), u64::MAX, u64::MAX, None),
            Some(u64::MAX)
        );
    }

    #[test]
    fn a_running_size_cap_keeps_its_bytes_per_torrent_after_a_prune() {
        let mut cap = RunningSizeCap::default();
        assert_eq!(cap.max_torrents(1000, 0, 50), None);
        cap.freeze();
        // 10 torrents in 1000 bytes: 100 each; 750 bytes hold 7.
        assert_eq!(cap.max_torrents(750, 10, 1000), Some(7));
        assert_eq!(cap.max_torrents(750, 10, 2000), Some(3), "measured again");
        cap.freeze();
        // After a prune the used size stays high: the count does not fall further.
        assert_eq!(cap.max_torrents(750, 3, 1900), Some(3));
        assert_eq!(cap.max_torrents(750, 0, 1900), Some(3));
    }

    #[test]
    fn no_rule_is_empty() {
        assert!(PruneRules::default().is_empty());
        assert!(!caps(Some(1), None).is_empty());
        let name = PruneRules {
            name: Some(regex::Regex::new("x").unwrap()),
            ..PruneRules::default()
        };
        assert!(!name.is_empty());
        let old = PruneRules {
            filter: PruneFilter {
                discovered_before: Some(5),
                ..PruneFilter::default()
            },
            ..PruneRules::default()
        };
        assert!(!old.is_empty());
    }
}
