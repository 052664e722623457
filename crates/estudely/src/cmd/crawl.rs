//! `estudely crawl`: sample infohashes with BEP 51 and find their peers, printing one row per
//! (infohash, peer) to stdout and appending it to a peers file, as the seed's
//! `dht_crawler_min.py` did.
//!
//! stdout carries nothing but rows (CSV with its header, or JSON lines); stderr gets
//! progress ([`crate::progress`]: a redrawn line on a terminal, else a plain line every
//! 10 s) and always a one-line summary at the end. `--metrics ADDR` serves Prometheus
//! metrics ([`crate::metrics`]). Inputs are checked before any packet is sent: a bad
//! address, an unwritable peers file or a taken metrics address exits 2.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use estudely_dht_core::crawl::CrawlEvent;
use estudely_krpc::InfoHash;

use crate::args::{parse_overall_timeout, CrawlNetArgs, ShardArgs};
use crate::crawl::setup::{
    checked_bind, crawl_limit, network_note, parse_rate, start_crawler, Budgets, StopOn,
    SEARCHES_CAP,
};
use crate::crawl::{
    writable_peer, CrawlReport, CrawlSink, PeerRow, PeersFile, Progress, CSV_HEADER,
};
use crate::resolve::{self, DEFAULT_ROUTERS};

/// `estudely crawl --help` epilogue.
pub const EXAMPLES: &str =
    "stdout: `infohash,peer_ip,peer_port` and one row per (infohash, peer), each flushed as
soon as found; the same rows are appended to --peers-file. stderr: a progress line on a
terminal (elsewhere one every 10 s), and a summary at the end. --metrics ADDR serves
Prometheus metrics at http://ADDR/metrics.

Examples:
  estudely crawl > peers_stream.csv
  estudely crawl --max-infohashes 0 --overall-timeout 300 --rate 50
  estudely crawl --bootstrap 127.0.10.1:40000 --bind 127.0.0.1:0 --format jsonl
  estudely crawl --bind 0.0.0.0:0 --bind [::]:0
  estudely crawl --max-infohashes 0 --overall-timeout 0 --metrics 127.0.0.1:9100
  estudely crawl --max-infohashes 0 --overall-timeout 0 --shard 2/4   # one of 4 crawlers";

/// How often progress (the stderr line, the metrics) is updated.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// `estudely crawl ...`
#[derive(Debug, Args)]
pub struct CrawlArgs {
    /// Stop after this many distinct infohashes (0 = no limit).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_infohashes: usize,
    /// Distinct peers kept per infohash.
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub peers_per_infohash: u32,
    /// Stop after this many seconds whatever was found (0 = no limit: until Ctrl-C, or until
    /// --max-infohashes are found and searched).
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_overall_timeout)]
    pub overall_timeout: Duration,
    /// Global limit on queries sent, per second.
    #[arg(long, value_name = "Q", default_value_t = 25.0, value_parser = parse_rate)]
    pub rate: f64,
    /// A node to start from (repeatable), resolved at start-up.
    #[arg(long, value_name = "HOST:PORT", default_values_t = DEFAULT_ROUTERS.map(String::from))]
    pub bootstrap: Vec<String>,
    /// Local address to crawl from; give it twice for IPv4 and IPv6 [default: 0.0.0.0:0].
    #[arg(long, value_name = "ADDR")]
    pub bind: Vec<SocketAddr>,
    /// Where rows are appended (CSV, header only when the file is new or empty).
    #[arg(long, value_name = "PATH", default_value = "peers.csv")]
    pub peers_file: PathBuf,
    /// Address policy, announce harvesting and warm start.
    #[command(flatten)]
    pub net: CrawlNetArgs,
    /// The slice of the node-id space sampled.
    #[command(flatten)]
    pub shard: ShardArgs,
    /// How to print rows on stdout (the peers file is always CSV).
    #[arg(long, value_enum, default_value_t = CrawlFormat::Csv)]
    pub format: CrawlFormat,
    /// Prometheus metrics.
    #[command(flatten)]
    pub metrics: crate::metrics::MetricsArgs,
}

/// Row formats of `estudely crawl` on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CrawlFormat {
    /// `infohash,peer_ip,peer_port`, with a header line.
    Csv,
    /// One JSON object per row: `infohash`, `peer_ip`, `peer_port`, `source`.
    Jsonl,
}

/// Run `estudely crawl ...`.
pub async fn run(args: CrawlArgs) -> anyhow::Result<()> {
    run_with(args, io::stdout(), true, StopOn::Signals).await
}

/// [`run`] with the rows written to `out` instead of stdout, appended to `--peers-file`
/// only if `peers_file`, and stopped early by `stop` instead of Ctrl-C: for a program that
/// runs `crawl` in-process (the Python package).
pub async fn run_with<W: Write>(
    args: CrawlArgs,
    mut out: W,
    peers_file: bool,
    stop: StopOn,
) -> anyhow::Result<()> {
    let bind = checked_bind(&args.bind)?;
    // Everything the user typed is checked before the first packet.
    for b in &args.bootstrap {
        resolve::parse(b)?;
    }
    let mut peers_file = if peers_file {
        Some(PeersFile::open(&args.peers_file)?)
    } else {
        None
    };
    let saved = args.net.saved_nodes()?;
    let budgets = Budgets {
        max_infohashes: args.max_infohashes,
        peers_per_infohash: args.peers_per_infohash as usize,
        rate: args.rate,
        allow_private: args.net.allow_private,
        harvest: !args.net.no_harvest,
        forget_seen_when_full: false,
        shard: args.shard.shard,
    };
    args.metrics.start()?;
    let mut driver = start_crawler(bind, &args.bootstrap, budgets).await?;
    driver.warm_start(&saved);

    if let Some(file) = &mut peers_file {
        file.start()?;
    }
    if args.format == CrawlFormat::Csv {
        writeln!(out, "{CSV_HEADER}")
            .and_then(|()| out.flush())
            .context("cannot write to stdout")?;
    }
    let mut sink = Rows::new(args.format, out, peers_file.as_mut());
    let report = driver
        .run(
            crawl_limit(args.overall_timeout),
            stop.fired(),
            Some(PROGRESS_EVERY),
            &mut sink,
        )
        .await?;
    sink.progress.finish();
    crate::metrics::publish_node(&driver.crawler().node().stats());
    eprintln!("{}", summary(&report, &sink.counts));
    args.net.save_state(&driver)
}

/// What the crawl's sink wrote, and what it left out, for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    /// Rows written.
    pub rows: u64,
    /// Peers on port 0 dropped (never written: see [`writable_peer`]).
    pub port_zero: u64,
    /// Infohashes found while [`SEARCHES_CAP`] searches were pending: their sampling node is
    /// not kept, so their JSON rows have a null `source` (CSV rows do not carry it).
    pub sources_unkept: u64,
}

/// `crawl: 20 infohashes, 57 peers, 1234 nodes, 2103 queries (35.0/s), 61.2 s`, then what
/// was left out, when anything was: `; 2 peers with port 0 dropped`.
pub fn summary(report: &CrawlReport, counts: &RowCounts) -> String {
    let mut line = format!(
        "crawl: {} infohashes, {} peers, {} nodes, {} queries ({:.1}/s), {:.1} s",
        report.stats.infohashes,
        counts.rows,
        report.stats.nodes_known,
        report.queries_sent,
        report.rate(),
        report.elapsed.as_secs_f64()
    );
    line.push_str(&network_note(&report.stats, report.shard));
    if counts.port_zero > 0 {
        line.push_str(&format!(
            "; {} with port 0 dropped",
            peers(counts.port_zero)
        ));
    }
    if counts.sources_unkept > 0 {
        line.push_str(&format!(
            "; {} infohashes found with {SEARCHES_CAP} searches pending have no source",
            counts.sources_unkept
        ));
    }
    line
}

/// `1 peer`, `2 peers`.
fn peers(n: u64) -> String {
    format!("{n} peer{}", if n == 1 { "" } else { "s" })
}

/// The crawl's sink: rows to stdout (`W`) and to the peers file, progress to stderr.
struct Rows<'a, W: Write> {
    format: CrawlFormat,
    stdout: W,
    stdout_open: bool,
    /// The peers file, unless an embedder wants none.
    peers_file: Option<&'a mut PeersFile>,
    /// The node that sampled each infohash whose search is pending (for `source`), at most
    /// `sources_cap` ([`SEARCHES_CAP`]) of them.
    sources: HashMap<InfoHash, SocketAddr>,
    sources_cap: usize,
    counts: RowCounts,
    progress: crate::progress::Progress,
}

impl<'a, W: Write> Rows<'a, W> {
    fn new(format: CrawlFormat, stdout: W, peers_file: Option<&'a mut PeersFile>) -> Rows<'a, W> {
        Rows {
            format,
            stdout,
            stdout_open: true,
            peers_file,
            sources: HashMap::new(),
            sources_cap: SEARCHES_CAP,
            counts: RowCounts::default(),
            progress: crate::progress::Progress::new("crawl"),
        }
    }
}

impl<W: Write> CrawlSink for Rows<'_, W> {
    fn event(&mut self, event: &CrawlEvent) -> anyhow::Result<bool> {
        match *event {
            CrawlEvent::InfoHash {
                info_hash, from, ..
            } => {
                if self.sources.len() < self.sources_cap {
                    self.sources.insert(info_hash, from);
                } else {
                    // The crawler cannot be slowed from here: count, and report.
                    self.counts.sources_unkept += 1;
                }
            }
            CrawlEvent::SearchDone { info_hash, .. } => {
                self.sources.remove(&info_hash);
            }
            // `crawl` never re-scrapes.
            CrawlEvent::NodeSampled { .. } | CrawlEvent::ScrapeDone { .. } => {}
            CrawlEvent::Peer { peer, .. } if !writable_peer(&peer) => {
                self.counts.port_zero += 1;
            }
            CrawlEvent::Peer { info_hash, peer } => {
                let row = PeerRow {
                    info_hash,
                    peer,
                    source: self.sources.get(&info_hash).copied(),
                };
                self.counts.rows += 1;
                if let Some(file) = &mut self.peers_file {
                    let path = file.path().display().to_string();
                    file.append(&row)
                        .with_context(|| format!("cannot write peers file `{path}`"))?;
                }
                let line = match self.format {
                    CrawlFormat::Csv => row.csv(),
                    CrawlFormat::Jsonl => row.jsonl(),
                };
                if self.stdout_open {
                    let out = &mut self.stdout;
                    match out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
                        Ok(()) => {}
                        // The reader is gone (`| head`): the rows are safe in the peers file.
                        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                            self.stdout_open = false;
                            return Ok(false);
                        }
                        Err(e) => return Err(e).context("cannot write to stdout"),
                    }
                }
            }
        }
        Ok(true)
    }

    fn progress(&mut self, p: &Progress) {
        crate::metrics::publish_crawl(p);
        let snapshot = crate::progress::Snapshot::crawl(p, self.counts.rows);
        self.progress.update(&snapshot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crawl::setup::{MAX_CONCURRENT_SEARCHES, MAX_SEARCH_QUEUE};
    use estudely_dht_core::crawl::{CrawlConfig, Shard};

    fn peer_event(peer: &str) -> CrawlEvent {
        CrawlEvent::Peer {
            info_hash: InfoHash([0xab; 20]),
            peer: peer.parse().unwrap(),
        }
    }

    #[test]
    fn port_zero_peers_are_counted_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = PeersFile::open(&dir.path().join("peers.csv")).unwrap();
        file.start().unwrap();
        let mut sink = Rows::new(CrawlFormat::Csv, Vec::new(), Some(&mut file));
        for p in ["10.0.0.1:0", "10.0.0.1:6881", "[::1]:0"] {
            assert!(sink.event(&peer_event(p)).unwrap());
        }
        let hex = "ab".repeat(20);
        assert_eq!(
            String::from_utf8(sink.stdout.clone()).unwrap(),
            format!("{hex},10.0.0.1,6881\n")
        );
        assert_eq!(
            sink.counts,
            RowCounts {
                rows: 1,
                port_zero: 2,
                sources_unkept: 0
            }
        );
        let text = std::fs::read_to_string(dir.path().join("peers.csv")).unwrap();
        assert_eq!(text, format!("{CSV_HEADER}\n{hex},10.0.0.1,6881\n"));
    }

    #[test]
    fn summary_says_what_was_dropped() {
        let report = CrawlReport {
            reason: crate::crawl::StopReason::Done,
            stats: Default::default(),
            queries_sent: 10,
            elapsed: Duration::from_secs(2),
            shard: Shard::all(),
        };
        let mut counts = RowCounts {
            rows: 3,
            ..RowCounts::default()
        };
        let line = summary(&report, &counts);
        assert_eq!(
            line,
            "crawl: 0 infohashes, 3 peers, 0 nodes, 10 queries (5.0/s), 2.0 s"
        );
        counts.port_zero = 1;
        assert!(summary(&report, &counts).ends_with("2.0 s; 1 peer with port 0 dropped"));
        counts.sources_unkept = 2;
        assert!(summary(&report, &counts)
            .ends_with("dropped; 2 infohashes found with 73728 searches pending have no source"));
    }

    #[test]
    fn summary_shows_the_shard_and_the_nodes_left_out() {
        let mut report = CrawlReport {
            reason: crate::crawl::StopReason::Done,
            stats: Default::default(),
            queries_sent: 10,
            elapsed: Duration::from_secs(2),
            shard: "2/4".parse().unwrap(),
        };
        let counts = RowCounts::default();
        assert!(summary(&report, &counts).ends_with("2.0 s; shard 2/4"));
        report.stats.nodes_other_shard = 57;
        report.stats.nodes_resting = 3;
        assert!(
            summary(&report, &counts).ends_with(
                "2.0 s; shard 2/4: 57 listings of nodes outside it (not sampled); resting nodes \
                 met again 3 times (not asked)"
            ),
            "{}",
            summary(&report, &counts)
        );
        report.shard = Shard::all();
        report.stats = Default::default();
        assert!(
            summary(&report, &counts).ends_with("2.0 s"),
            "1/1 is not shown"
        );
    }

    #[test]
    fn sources_are_capped_and_freed_when_searches_end() {
        assert_eq!(SEARCHES_CAP, 8_192 + 65_536);
        assert_eq!(
            CrawlConfig::default().max_search_queue,
            crate::crawl::setup::search_queue_for_rate(25.0),
            "dht-core's search-queue cap, kept by start_crawler at the default rate"
        );
        assert!(crate::crawl::setup::search_queue_for_rate(0.0) <= MAX_SEARCH_QUEUE);
        assert_eq!(
            CrawlConfig::default().max_concurrent_searches,
            crate::crawl::setup::concurrency_for_rate(25.0).1,
            "the crawler's default, kept by start_crawler at the default rate"
        );
        assert!(crate::crawl::setup::concurrency_for_rate(0.0).1 <= MAX_CONCURRENT_SEARCHES);
        let dir = tempfile::tempdir().unwrap();
        let mut file = PeersFile::open(&dir.path().join("peers.csv")).unwrap();
        let mut sink = Rows::new(CrawlFormat::Jsonl, Vec::new(), Some(&mut file));
        sink.sources_cap = 2;
        let from: SocketAddr = "10.0.0.9:6881".parse().unwrap();
        let found = |i: u8| CrawlEvent::InfoHash {
            info_hash: InfoHash([i; 20]),
            from,
            announced: false,
        };
        let done = |i: u8| CrawlEvent::SearchDone {
            info_hash: InfoHash([i; 20]),
            peers: 0,
            queries: 1,
            seeds_estimate: None,
            peers_estimate: None,
            next_nodes: Default::default(),
        };
        let peer = |i: u8| CrawlEvent::Peer {
            info_hash: InfoHash([i; 20]),
            peer: "10.0.0.1:1".parse().unwrap(),
        };
        for e in [
            found(1),
            found(2),
            found(3),
            peer(3),
            done(1),
            found(4),
            peer(4),
        ] {
            assert!(sink.event(&e).unwrap());
        }
        assert_eq!(sink.sources.len(), 2, "never above its cap");
        assert_eq!(sink.counts.sources_unkept, 1, "infohash 3, counted");
        let text = String::from_utf8(sink.stdout.clone()).unwrap();
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows[0]["source"], serde_json::Value::Null, "3 had no room");
        assert_eq!(rows[1]["source"], "10.0.0.9:6881", "4 came after 1 ended");
        for i in 2..=4 {
            sink.event(&done(i)).unwrap();
        }
        assert!(sink.sources.is_empty());
    }
}
