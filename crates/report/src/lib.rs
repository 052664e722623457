//! The figures behind the charts of `estudely serve`'s stats page, `/api/v1/stats` and
//! `estudely report`: one [`Report`], built from an index ([`Report::from_store`]) or from a
//! `collect` / `crawl` output file ([`input::from_file`]), then drawn as SVG charts
//! ([`charts::charts`]) or a self-contained HTML page ([`html::page`]): server-side, no
//! JavaScript, every text escaped.
//!
//! Counter names in the index that the report reads (see `estudely-store`):
//! - `fetch_failed_<reason>`, `no_peers`, `filtered_<reason>`: metadata outcomes;
//! - `node_client_<name>`: nodes that answered a sample, by client (`LT 2.0`, `UT`, ...);
//! - `node_interval_<seconds>`: nodes that answered a sample, by the `interval` they gave.
//!
//! ```
//! use estudely_report::{html, input, input::InputFormat};
//!
//! # fn main() -> anyhow::Result<()> {
//! // A `collect` CSV: one row per infohash, with its metadata when it was fetched.
//! let csv = "infohash,name,file_count,total_bytes,piece_length,peer_ip,peer_port,metadata_ok\n\
//!            0123456789abcdef0123456789abcdef01234567,Some film,2,734003200,262144,127.0.0.1,6881,True\n\
//!            89abcdef0123456789abcdef0123456789abcdef,,0,0,0,,,False\n";
//! let report = input::from_reader(csv.as_bytes(), "run.csv", InputFormat::Csv, 1_700_000_000)?;
//! // Two infohashes, one torrent (the one whose metadata was fetched).
//! assert_eq!((report.total("infohashes"), report.total("torrents")), (2, 1));
//! let page = html::page(&report);
//! assert!(page.contains("<svg"));
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod charts;
pub mod format;
pub mod html;
pub mod input;

pub use format::escape;
use serde::Serialize;

use estudely_store::{Source, Stats, Store};

pub use estudely_store::{size_bucket, SIZE_EDGES, SIZE_LABELS};

/// Bucket widths of the discovery timeline, from a minute to a week.
const BUCKETS: [i64; 9] = [
    60,
    300,
    900,
    3_600,
    6 * 3_600,
    86_400,
    7 * 86_400,
    30 * 86_400,
    365 * 86_400,
];

/// The narrowest bucket width that shows `first..=last` (unix seconds) in at most 60 buckets.
pub fn bucket_secs(first: i64, last: i64) -> i64 {
    let span = last.saturating_sub(first).max(0);
    BUCKETS
        .iter()
        .copied()
        .find(|b| span / b < 60)
        .unwrap_or(BUCKETS[BUCKETS.len() - 1])
}

/// Torrents discovered in one bucket of the timeline, by how they were first found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TimelinePoint {
    /// Start of the bucket, unix seconds (a multiple of the bucket width).
    pub start: i64,
    /// First found in a BEP 51 sample.
    pub sample: u64,
    /// First found announced to our node.
    pub announce: u64,
    /// First found as a `get_peers` peer.
    pub get_peers: u64,
}

impl TimelinePoint {
    /// Add `n` to the count of `source`.
    pub fn add(&mut self, source: Source, n: u64) {
        match source {
            Source::Sample => self.sample = self.sample.saturating_add(n),
            Source::Announce => self.announce = self.announce.saturating_add(n),
            Source::GetPeers => self.get_peers = self.get_peers.saturating_add(n),
        }
    }
}

/// Everything the charts and the summary table show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// What it was made from: the index (password redacted) or the file.
    pub input: String,
    /// When it was made, unix seconds.
    pub generated: i64,
    /// The summary table, in order: `torrents`, `files`, `total_bytes`, ... .
    pub totals: Vec<(String, u64)>,
    /// Width of a timeline bucket, seconds.
    pub bucket_secs: i64,
    /// Discoveries over time, oldest first, without gaps (empty buckets have zeros).
    pub timeline: Vec<TimelinePoint>,
    /// Metadata outcomes: `stored` (or `fetched`), `fetch_failed_<reason>`, `no_peers`,
    /// `filtered_<reason>`, largest first.
    pub outcomes: Vec<(String, u64)>,
    /// Torrents per size bucket, `SIZE_LABELS.len()` entries.
    pub sizes: Vec<u64>,
    /// Torrents by `v1` / `v2` / `hybrid`.
    pub versions: Vec<(String, u64)>,
    /// Torrents by category (`movie`, `tv`, ..., `unclassified`), largest first: an
    /// index's (empty for the report of a file).
    pub categories: Vec<(String, u64)>,
    /// Nodes by client, largest first (empty when the input has none).
    pub clients: Vec<(String, u64)>,
    /// Nodes by the sample `interval` they gave, shortest first (empty when none).
    pub intervals: Vec<(String, u64)>,
}

impl Report {
    /// The report of an index: its [`Stats`], timeline and size histogram.
    pub fn from_store(store: &mut dyn Store, input: String, now: i64) -> anyhow::Result<Report> {
        Ok(Report::with_stats(store, input, now)?.0)
    }

    /// [`from_store`](Self::from_store), and the [`Stats`] it was made from (the web
    /// server caches both: they come from the same scans).
    pub fn with_stats(
        store: &mut dyn Store,
        input: String,
        now: i64,
    ) -> anyhow::Result<(Report, Stats)> {
        let stats = store.stats()?;
        let (bucket, timeline) = match store.discovered_range()? {
            Some((first, last)) => {
                let b = bucket_secs(first, last);
                (b, fill_timeline(&store.timeline(b)?, b))
            }
            None => (bucket_secs(0, 0), Vec::new()),
        };
        let sizes = store.size_histogram()?;
        let total_bytes: u64 = store.total_bytes()?;
        let report = Report::from_parts(input, now, &stats, total_bytes, bucket, timeline, sizes);
        Ok((report, stats))
    }

    /// Assemble a report from an index's stats and the series read beside them.
    pub fn from_parts(
        input: String,
        now: i64,
        stats: &Stats,
        total_bytes: u64,
        bucket_secs: i64,
        timeline: Vec<TimelinePoint>,
        sizes: Vec<u64>,
    ) -> Report {
        let mut outcomes = vec![("stored".to_owned(), stats.torrents)];
        let mut clients = Vec::new();
        let mut intervals: Vec<(u64, u64)> = Vec::new();
        for (name, n) in &stats.counters {
            if let Some(c) = name.strip_prefix("node_client_") {
                clients.push((c.to_owned(), *n));
            } else if let Some(i) = name.strip_prefix("node_interval_") {
                if let Ok(secs) = i.parse() {
                    intervals.push((secs, *n));
                }
            } else if name.starts_with("fetch_failed")
                || name.starts_with("filtered_")
                || name == "no_peers"
            {
                outcomes.push((name.clone(), *n));
            }
        }
        outcomes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        clients.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        intervals.sort();
        Report {
            input,
            generated: now,
            totals: vec![
                ("torrents".into(), stats.torrents),
                ("files".into(), stats.files),
                ("total_bytes".into(), total_bytes),
                ("sightings".into(), stats.sightings),
                ("nodes".into(), stats.nodes),
            ],
            bucket_secs,
            timeline,
            outcomes,
            sizes,
            versions: stats.by_version.clone(),
            categories: {
                let mut c = stats.by_category.clone();
                c.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                c
            },
            clients,
            intervals: intervals
                .into_iter()
                .map(|(s, n)| (interval_label(s), n))
                .collect(),
        }
    }

    /// A total by name, 0 when absent.
    pub fn total(&self, name: &str) -> u64 {
        self.totals
            .iter()
            .find(|(k, _)| k == name)
            .map_or(0, |(_, v)| *v)
    }
}

/// `21600` → `6 h`, `900` → `15 min`, `45` → `45 s`.
pub fn interval_label(secs: u64) -> String {
    if secs >= 3_600 && secs.is_multiple_of(3_600) {
        format!("{} h", secs / 3_600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// Sparse `(bucket start, source, count)` rows → one point per bucket from the first to the
/// last, zeros in between.
pub fn fill_timeline(rows: &[(i64, Source, u64)], bucket: i64) -> Vec<TimelinePoint> {
    let (Some(first), Some(last)) = (
        rows.iter().map(|r| r.0).min(),
        rows.iter().map(|r| r.0).max(),
    ) else {
        return Vec::new();
    };
    let bucket = bucket.max(1);
    let first = first.saturating_sub(first.rem_euclid(bucket));
    let n = usize::try_from(last.saturating_sub(first) / bucket + 1)
        .unwrap_or(0)
        .min(10_000);
    let mut out: Vec<TimelinePoint> = (0..n)
        .map(|i| TimelinePoint {
            start: first.saturating_add(bucket.saturating_mul(i as i64)),
            ..TimelinePoint::default()
        })
        .collect();
    for &(start, source, count) in rows {
        let i = usize::try_from(start.saturating_sub(first) / bucket).unwrap_or(usize::MAX);
        if let Some(p) = out.get_mut(i) {
            p.add(source, count);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_buckets() {
        assert_eq!(size_bucket(0), 0);
        assert_eq!(size_bucket((1 << 20) - 1), 0);
        assert_eq!(size_bucket(1 << 20), 1);
        assert_eq!(size_bucket(u64::MAX), SIZE_EDGES.len());
        assert_eq!(SIZE_LABELS.len(), SIZE_EDGES.len() + 1);
    }

    #[test]
    fn buckets_fit_sixty() {
        assert_eq!(bucket_secs(0, 0), 60);
        assert_eq!(bucket_secs(0, 59 * 60), 60);
        assert_eq!(bucket_secs(0, 3_600 * 10), 900);
        assert_eq!(bucket_secs(0, 86_400 * 30), 86_400);
        assert_eq!(bucket_secs(0, i64::MAX), 365 * 86_400);
    }

    #[test]
    fn timelines_have_no_gaps() {
        let rows = [
            (120, Source::Sample, 2),
            (0, Source::Announce, 1),
            (120, Source::GetPeers, 3),
        ];
        let t = fill_timeline(&rows, 60);
        assert_eq!(t.len(), 3);
        assert_eq!((t[0].start, t[0].announce), (0, 1));
        assert_eq!((t[1].start, t[1].sample), (60, 0));
        assert_eq!((t[2].sample, t[2].get_peers), (2, 3));
        assert!(fill_timeline(&[], 60).is_empty());
        // Extreme times and counts saturate, never overflow.
        let wild = [
            (i64::MIN, Source::Sample, u64::MAX),
            (i64::MIN, Source::Sample, 1),
            (i64::MAX, Source::Announce, 1),
        ];
        let t = fill_timeline(&wild, 365 * 86_400);
        assert_eq!(t.len(), 10_000);
        assert_eq!(t[0].sample, u64::MAX);
    }

    #[test]
    fn counters_become_outcomes_clients_and_intervals() {
        let stats = Stats {
            torrents: 5,
            counters: vec![
                ("fetch_failed_timeout".into(), 3),
                ("no_peers".into(), 7),
                ("node_client_LT 2.0".into(), 4),
                ("node_interval_21600".into(), 2),
                ("node_interval_60".into(), 1),
                ("other".into(), 9),
            ],
            ..Stats::default()
        };
        let r = Report::from_parts("x".into(), 0, &stats, 10, 60, Vec::new(), vec![0; 10]);
        assert_eq!(r.outcomes[0], ("no_peers".to_owned(), 7));
        assert_eq!(r.outcomes.len(), 3);
        assert_eq!(r.clients, [("LT 2.0".to_owned(), 4)]);
        assert_eq!(
            r.intervals,
            [("1 min".to_owned(), 1), ("6 h".to_owned(), 2)]
        );
        assert_eq!(r.total("total_bytes"), 10);
    }
}
