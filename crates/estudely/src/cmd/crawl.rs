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
use estudely_dht_core::crawl::{CrawlConfig, CrawlEvent, CrawlStats};
use estudely_dht_core::{AddrPolicy, Config};
use estudely_krpc::InfoHash;

use crate::cli::{overall_limit, parse_overall_timeout};
use crate::crawl::{
    writable_peer, CrawlDriver, CrawlDriverConfig, CrawlReport, CrawlSink, PeerRow, PeersFile,
    Progress, CSV_HEADER,
};
use crate::resolve::{self, UsageError, DEFAULT_ROUTERS};

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
  estudely crawl --max-infohashes 0 --overall-timeout 0 --metrics 127.0.0.1:9100";

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
    /// How to print rows on stdout (the peers file is always CSV).
    #[arg(long, value_enum, default_value_t = CrawlFormat::Csv)]
    pub format: CrawlFormat,
    /// Prometheus metrics.
    #[command(flatten)]
    pub metrics: crate::metrics::MetricsArgs,
}

/// The flags `crawl` and `collect` share about the network: which addresses to follow,
/// whether to harvest announces, and the warm-start file.
#[derive(Debug, Clone, Default, Args)]
pub struct CrawlNetArgs {
    /// Also follow private, loopback, link-local and CGNAT addresses learned from the
    /// network (your own lab network). Without it they are refused (and counted), except in
    /// the ranges of the --bootstrap addresses. Multicast, broadcast, unspecified,
    /// documentation, reserved, IPv4-mapped addresses and port 0 are always refused.
    #[arg(long)]
    pub allow_private: bool,
    /// Do not report infohashes that other nodes announce to our node (announce
    /// harvesting; on by default: each announce with a valid token is a discovery, with
    /// the announcer as its first peer). Announces are still stored and served.
    #[arg(long)]
    pub no_harvest: bool,
    /// Save the good nodes found to FILE at the end, and start from the nodes saved there
    /// (before the bootstrap routers) when it exists: a warm start.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
}

impl CrawlNetArgs {
    /// The nodes saved in `--state FILE` (none without the flag or the file); a malformed
    /// file is a usage error, before any packet is sent.
    pub fn saved_nodes(&self) -> anyhow::Result<Vec<estudely_krpc::CompactNode>> {
        match &self.state {
            Some(path) => crate::crawl::state::load(path),
            None => Ok(Vec::new()),
        }
    }

    /// Save the crawl's good nodes to `--state FILE`, if given.
    pub fn save_state(&self, driver: &CrawlDriver) -> anyhow::Result<()> {
        let Some(path) = &self.state else {
            return Ok(());
        };
        let nodes = driver.crawler().good_nodes(crate::crawl::state::MAX_SAVED);
        crate::crawl::state::save(path, &nodes)
    }
}

/// Row formats of `estudely crawl` on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CrawlFormat {
    /// `infohash,peer_ip,peer_port`, with a header line.
    Csv,
    /// One JSON object per row: `infohash`, `peer_ip`, `peer_port`, `source`.
    Jsonl,
}

/// Queries per second: more than 0, at most 10,000.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let q: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of queries per second"))?;
    if !(q > 0.0 && q <= 10_000.0) {
        return Err(format!("`{s}` must be more than 0 and at most 10000"));
    }
    Ok(q)
}

/// The `--bind` addresses of a crawling command: `0.0.0.0:0` when none is given, at most
/// one per address family.
pub fn checked_bind(bind: &[SocketAddr]) -> anyhow::Result<Vec<SocketAddr>> {
    if bind.is_empty() {
        return Ok(vec![SocketAddr::from(([0, 0, 0, 0], 0))]);
    }
    let v4 = bind.iter().filter(|a| a.is_ipv4()).count();
    if v4 > 1 || bind.len() - v4 > 1 {
        let all: Vec<String> = bind.iter().map(ToString::to_string).collect();
        let msg = format!(
            "--bind takes at most one IPv4 and one IPv6 address, got {}",
            all.join(", ")
        );
        return Err(UsageError(msg).into());
    }
    Ok(bind.to_vec())
}

/// The budgets `crawl`, `collect` and `demo` give the crawler.
#[derive(Debug, Clone, Copy)]
pub struct Budgets {
    /// Stop sampling after this many infohashes (0 = no limit).
    pub max_infohashes: usize,
    /// Distinct peers kept per infohash.
    pub peers_per_infohash: usize,
    /// Global query rate, per second.
    pub rate: f64,
    /// `--allow-private`: private-use ranges allowed on top of the bootstrap ranges.
    pub allow_private: bool,
    /// Report infohashes announced to our node (not `--no-harvest`).
    pub harvest: bool,
}

/// Peer searches the crawler runs at once (its `CrawlConfig::max_concurrent_searches`, set
/// by [`start_crawler`]).
pub const MAX_CONCURRENT_SEARCHES: usize = 16;

/// Infohashes the crawler keeps queued for a peer search at most (its
/// `CrawlConfig::max_search_queue`, set by [`start_crawler`]; sampling pauses before it
/// would overflow).
pub const MAX_SEARCH_QUEUE: usize = 8_192;

/// Most infohashes whose peer search is pending in the crawler (running or queued), and so
/// the cap of every per-infohash map a crawl sink keeps while searches run: the `source` of
/// `crawl`'s rows, `collect`'s searching infohashes.
pub const SEARCHES_CAP: usize = MAX_CONCURRENT_SEARCHES + MAX_SEARCH_QUEUE;

/// The crawl driver's timeout for an `--overall-timeout` (0 = none: until Ctrl-C).
pub fn crawl_limit(overall_timeout: Duration) -> Option<Duration> {
    overall_limit(overall_timeout)
}

/// Resolve the bootstrap nodes (for the bound families) and bind a crawler to `bind`.
pub async fn start_crawler(
    bind: Vec<SocketAddr>,
    bootstrap: &[String],
    budgets: Budgets,
) -> anyhow::Result<CrawlDriver> {
    let v4 = bind.iter().any(SocketAddr::is_ipv4);
    let v6 = bind.iter().any(SocketAddr::is_ipv6);
    let seeds = resolve::resolve_bootstrap(bootstrap, v4, v6).await?;
    let crawl = CrawlConfig {
        max_infohashes: budgets.max_infohashes,
        peers_per_infohash: budgets.peers_per_infohash,
        max_concurrent_searches: MAX_CONCURRENT_SEARCHES,
        max_search_queue: MAX_SEARCH_QUEUE,
        harvest: budgets.harvest,
        bootstrap: seeds,
        ..CrawlConfig::default()
    };
    // The crawler adds the ranges of the bootstrap addresses (a loopback testnet).
    let addr_policy = AddrPolicy::with_private(budgets.allow_private);
    let node = Config {
        query_rate: budgets.rate,
        addr_policy,
        ..Config::default()
    };
    CrawlDriver::bind(CrawlDriverConfig {
        bind,
        node,
        crawl,
        seed: None,
    })
}

/// Run `estudely crawl ...`.
pub async fn run(args: CrawlArgs) -> anyhow::Result<()> {
    let bind = checked_bind(&args.bind)?;
    // Everything the user typed is checked before the first packet.
    for b in &args.bootstrap {
        resolve::parse(b)?;
    }
    let mut peers_file = PeersFile::open(&args.peers_file)?;
    let saved = args.net.saved_nodes()?;
    let budgets = Budgets {
        max_infohashes: args.max_infohashes,
        peers_per_infohash: args.peers_per_infohash as usize,
        rate: args.rate,
        allow_private: args.net.allow_private,
        harvest: !args.net.no_harvest,
    };
    args.metrics.start()?;
    let mut driver = start_crawler(bind, &args.bootstrap, budgets).await?;
    driver.warm_start(&saved);

    peers_file.start()?;
    let mut stdout = io::stdout();
    if args.format == CrawlFormat::Csv {
        writeln!(stdout, "{CSV_HEADER}")
            .and_then(|()| stdout.flush())
            .context("cannot write to stdout")?;
    }
    let mut sink = Rows::new(args.format, stdout, &mut peers_file);
    let report = driver
        .run(
            crawl_limit(args.overall_timeout),
            interrupted(),
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
    line.push_str(&network_note(&report.stats));
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

/// `; refused addresses: private 3, multicast 1; 12 dead nodes`: what the address policy
/// refused and the nodes that stopped answering, when there are any (for end summaries).
pub fn network_note(stats: &CrawlStats) -> String {
    let mut note = String::new();
    if stats.harvested > 0 {
        note.push_str(&format!("; {} infohashes announced to us", stats.harvested));
    }
    if stats.addr_refused.total() > 0 {
        note.push_str(&format!(
            "; refused addresses: {}",
            stats.addr_refused.describe()
        ));
    }
    if stats.nodes_dead > 0 {
        note.push_str(&format!("; {} dead nodes", stats.nodes_dead));
    }
    if stats.nodes_refused > 0 {
        note.push_str(&format!(
            "; {} nodes not kept (node table full)",
            stats.nodes_refused
        ));
    }
    if stats.seen_full {
        note.push_str("; sampling stopped: seen-set full");
    }
    note
}

/// `1 peer`, `2 peers`.
fn peers(n: u64) -> String {
    format!("{n} peer{}", if n == 1 { "" } else { "s" })
}

/// Completes on Ctrl-C or (on Unix) SIGTERM; never if the signals cannot be watched.
pub async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Ctrl-C and SIGTERM, watched once for a whole command, so that every stage of it (the
/// crawl, the fetches) sees the same signal, whenever it comes. Stops watching when dropped.
#[derive(Debug)]
pub struct Interrupt {
    rx: tokio::sync::watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Interrupt {
    /// Start watching (inside a tokio runtime).
    pub fn watch() -> Interrupt {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            interrupted().await;
            let _ = tx.send(true);
        });
        Interrupt { rx, task }
    }

    /// Completes once the signal has come (at once if it already has).
    pub fn fired(&self) -> impl std::future::Future<Output = ()> + 'static {
        let mut rx = self.rx.clone();
        async move {
            if rx.wait_for(|&fired| fired).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Whether the signal has come.
    pub fn happened(&self) -> bool {
        *self.rx.borrow()
    }
}

impl Drop for Interrupt {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The crawl's sink: rows to stdout (`W`) and to the peers file, progress to stderr.
struct Rows<'a, W: Write> {
    format: CrawlFormat,
    stdout: W,
    stdout_open: bool,
    peers_file: &'a mut PeersFile,
    /// The node that sampled each infohash whose search is pending (for `source`), at most
    /// `sources_cap` ([`SEARCHES_CAP`]) of them.
    sources: HashMap<InfoHash, SocketAddr>,
    sources_cap: usize,
    counts: RowCounts,
    progress: crate::progress::Progress,
}

impl<'a, W: Write> Rows<'a, W> {
    fn new(format: CrawlFormat, stdout: W, peers_file: &'a mut PeersFile) -> Rows<'a, W> {
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
            CrawlEvent::InfoHash { info_hash, from } => {
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
                let path = self.peers_file.path().display().to_string();
                self.peers_file
                    .append(&row)
                    .with_context(|| format!("cannot write peers file `{path}`"))?;
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
        let mut sink = Rows::new(CrawlFormat::Csv, Vec::new(), &mut file);
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
            .ends_with("dropped; 2 infohashes found with 8208 searches pending have no source"));
    }

    #[test]
    fn sources_are_capped_and_freed_when_searches_end() {
        assert_eq!(SEARCHES_CAP, 16 + 8_192);
        assert_eq!(
            CrawlConfig::default().max_search_queue,
            MAX_SEARCH_QUEUE,
            "dht-core's search-queue cap, kept by start_crawler"
        );
        assert_eq!(
            CrawlConfig::default().max_concurrent_searches,
            MAX_CONCURRENT_SEARCHES,
            "the crawler's default, kept by start_crawler"
        );
        let dir = tempfile::tempdir().unwrap();
        let mut file = PeersFile::open(&dir.path().join("peers.csv")).unwrap();
        let mut sink = Rows::new(CrawlFormat::Jsonl, Vec::new(), &mut file);
        sink.sources_cap = 2;
        let from: SocketAddr = "10.0.0.9:6881".parse().unwrap();
        let found = |i: u8| CrawlEvent::InfoHash {
            info_hash: InfoHash([i; 20]),
            from,
        };
        let done = |i: u8| CrawlEvent::SearchDone {
            info_hash: InfoHash([i; 20]),
            peers: 0,
            queries: 1,
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
