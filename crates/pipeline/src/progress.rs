//! Progress on stderr for long-running commands.
//!
//! On a terminal: one redrawn line (an [`indicatif`] spinner) with the elapsed time and the
//! latest [`Snapshot`]; cleared by [`Progress::finish`] so the summary line stands alone.
//! Elsewhere (a log file, a pipe): a plain line at most every [`PLAIN_EVERY`], the first
//! one [`PLAIN_EVERY`] after the start, e.g.
//!
//! ```text
//! crawl progress: 60 s, 120 infohashes, 300 peers, 5000 nodes, 24.8 q/s
//! ```
//!
//! so a run shorter than that prints nothing but its own lines.

use std::fmt::Write as _;
use std::io::{self, IsTerminal as _};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use estudely_fetch::{FetchStats, InfohashResult};

/// Shortest gap between two plain progress lines, and the time before the first.
pub const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// How often the terminal line is redrawn (its elapsed time moves on between updates).
const TICK: Duration = Duration::from_millis(250);

/// What a progress line shows; parts left `None` are not shown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Distinct infohashes found (crawl) or done (metadata).
    pub infohashes: Option<u64>,
    /// Peers found.
    pub peers: Option<u64>,
    /// Infohashes whose metadata was obtained, and those that ended without it.
    pub metadata: Option<(u64, u64)>,
    /// DHT nodes known.
    pub nodes: Option<u64>,
    /// Queries per second, recently.
    pub rate: Option<f64>,
    /// Something wrong the user should see (e.g. `index unavailable`), shown last.
    pub status: Option<&'static str>,
}

impl Snapshot {
    /// A crawl's progress; `peers` as the caller counts them (rows written).
    pub fn crawl(p: &estudely_crawl::Progress, peers: u64) -> Snapshot {
        Snapshot {
            infohashes: Some(p.stats.infohashes as u64),
            peers: Some(peers),
            nodes: Some(p.stats.nodes_known as u64),
            rate: Some(p.recent_rate),
            ..Snapshot::default()
        }
    }

    /// A metadata fetcher's progress.
    pub fn fetch(s: &FetchStats) -> Snapshot {
        Snapshot {
            infohashes: Some(s.infohashes),
            metadata: Some((s.obtained, s.infohashes.saturating_sub(s.obtained))),
            ..Snapshot::default()
        }
    }

    /// The parts shown, e.g. `120 infohashes, 300 peers, 80 metadata ok / 12 failed,
    /// 5000 nodes, 24.8 q/s`.
    pub fn render(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.infohashes {
            parts.push(format!("{n} infohashes"));
        }
        if let Some(n) = self.peers {
            parts.push(format!("{n} peers"));
        }
        if let Some((ok, failed)) = self.metadata {
            parts.push(format!("{ok} metadata ok / {failed} failed"));
        }
        if let Some(n) = self.nodes {
            parts.push(format!("{n} nodes"));
        }
        if let Some(q) = self.rate {
            parts.push(format!("{q:.1} q/s"));
        }
        if let Some(status) = self.status {
            parts.push(status.to_owned());
        }
        parts.join(", ")
    }
}

/// A plain progress line: `LABEL progress: SECS s, PARTS`.
pub fn plain_line(label: &str, elapsed: Duration, snapshot: &Snapshot) -> String {
    let mut line = format!("{label} progress: {} s", elapsed.as_secs());
    let parts = snapshot.render();
    if !parts.is_empty() {
        let _ = write!(line, ", {parts}");
    }
    line
}

/// When plain lines are due: not before [`PLAIN_EVERY`] after the start, then at most every
/// [`PLAIN_EVERY`].
#[derive(Debug, Clone)]
struct Throttle {
    next: Instant,
}

impl Throttle {
    fn new(start: Instant) -> Throttle {
        Throttle {
            next: start + PLAIN_EVERY,
        }
    }

    /// Whether a line may be printed at `now` (and if so, the next one waits).
    fn due(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        // Long gaps between updates do not bunch lines up afterwards.
        self.next = now + PLAIN_EVERY;
        true
    }
}

#[derive(Debug)]
enum Display {
    Terminal(ProgressBar),
    Plain(Throttle),
}

/// Progress of one command on stderr (see the module doc).
#[derive(Debug)]
pub struct Progress {
    label: &'static str,
    start: Instant,
    display: Display,
}

impl Progress {
    /// Progress labelled `label` (the command: `crawl`, `metadata`), started now: a
    /// redrawn line if stderr is a terminal, else plain lines.
    pub fn new(label: &'static str) -> Progress {
        if io::stderr().is_terminal() {
            Progress::terminal(label)
        } else {
            Progress::plain(label)
        }
    }

    /// Plain lines whatever stderr is.
    pub fn plain(label: &'static str) -> Progress {
        let start = Instant::now();
        Progress {
            label,
            start,
            display: Display::Plain(Throttle::new(start)),
        }
    }

    fn terminal(label: &'static str) -> Progress {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{spinner} {prefix}: {elapsed} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_prefix(label);
        bar.enable_steady_tick(TICK);
        Progress {
            label,
            start: Instant::now(),
            display: Display::Terminal(bar),
        }
    }

    /// Show `snapshot`: redraw the terminal line, or print a plain line if one is due.
    pub fn update(&mut self, snapshot: &Snapshot) {
        match &mut self.display {
            Display::Terminal(bar) => bar.set_message(snapshot.render()),
            Display::Plain(throttle) => {
                let now = Instant::now();
                if throttle.due(now) {
                    let elapsed = now.duration_since(self.start);
                    eprintln!("{}", plain_line(self.label, elapsed, snapshot));
                }
            }
        }
    }

    /// Clear the terminal line (before the summary); plain lines stay.
    pub fn finish(&mut self) {
        if let Display::Terminal(bar) = &self.display {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A fetcher's progress on stderr and in the metrics, updated as each infohash ends.
#[derive(Debug)]
pub struct FetchProgress {
    seen: FetchStats,
    total: Option<usize>,
    progress: Progress,
}

impl FetchProgress {
    /// Nothing fetched yet; [`Progress::new`] labelled `label`.
    pub fn new(label: &'static str) -> FetchProgress {
        FetchProgress {
            seen: FetchStats::default(),
            total: None,
            progress: Progress::new(label),
        }
    }

    /// How many infohashes will be fetched, when known up front (a whole file): the
    /// backlog is then published as what is left.
    pub fn set_total(&mut self, total: usize) {
        self.total = Some(total);
        crate::metrics::publish_fetch_backlog(total);
    }

    /// One infohash ended.
    pub fn record(&mut self, r: &InfohashResult) {
        self.seen.record(r);
        crate::metrics::publish_fetch(&self.seen);
        if let Some(total) = self.total {
            let left = total.saturating_sub(self.seen.infohashes as usize);
            crate::metrics::publish_fetch_backlog(left);
        }
        self.progress.update(&Snapshot::fetch(&self.seen));
    }

    /// The end: clear the terminal line; publish the final counts.
    pub fn finish(&mut self, stats: &FetchStats) {
        self.progress.finish();
        crate::metrics::publish_fetch(stats);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use estudely_dht_core::crawl::CrawlStats;

    use super::*;
    use estudely_fetch::FailureKind;

    #[test]
    fn a_crawl_line_has_every_crawl_count() {
        let p = estudely_crawl::Progress {
            stats: CrawlStats {
                infohashes: 120,
                nodes_known: 5000,
                peers: 999,
                ..CrawlStats::default()
            },
            node: Default::default(),
            queries_sent: 1500,
            recent_rate: 24.81,
            elapsed: Duration::from_secs(61),
        };
        assert_eq!(
            plain_line(
                "crawl",
                Duration::from_millis(60_900),
                &Snapshot::crawl(&p, 300)
            ),
            "crawl progress: 60 s, 120 infohashes, 300 peers, 5000 nodes, 24.8 q/s"
        );
    }

    #[test]
    fn a_metadata_line_counts_infohashes_ok_and_failed() {
        let s = FetchStats {
            infohashes: 92,
            obtained: 80,
            failures: BTreeMap::from([(FailureKind::Timeout, 30)]),
            ..FetchStats::default()
        };
        assert_eq!(
            plain_line("metadata", Duration::from_secs(10), &Snapshot::fetch(&s)),
            "metadata progress: 10 s, 92 infohashes, 80 metadata ok / 12 failed"
        );
    }

    #[test]
    fn every_part_in_order() {
        let s = Snapshot {
            infohashes: Some(120),
            peers: Some(300),
            metadata: Some((80, 12)),
            nodes: Some(5000),
            rate: Some(24.8),
            status: Some("index unavailable"),
        };
        assert_eq!(
            s.render(),
            "120 infohashes, 300 peers, 80 metadata ok / 12 failed, 5000 nodes, 24.8 q/s, \
             index unavailable"
        );
        assert_eq!(
            plain_line("run", Duration::ZERO, &Snapshot::default()),
            "run progress: 0 s"
        );
    }

    #[test]
    fn plain_lines_wait_ten_seconds_then_come_at_most_every_ten() {
        let t0 = Instant::now();
        let mut t = Throttle::new(t0);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert!(!t.due(at(0)));
        assert!(!t.due(at(9_999)), "nothing in the first 10 s");
        assert!(t.due(at(10_000)));
        assert!(!t.due(at(10_001)));
        assert!(!t.due(at(19_999)));
        assert!(t.due(at(20_500)));
        // A long silence gives one line, not a burst.
        assert!(t.due(at(95_000)));
        assert!(!t.due(at(95_100)));
        assert!(t.due(at(105_000)));
    }
}
