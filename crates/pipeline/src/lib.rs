//! The sample → peers → metadata → rows pipeline that `collect`, `demo` and `run` share.
//!
//! The crawl and the metadata fetches run at the same time on one task: as soon as an
//! infohash's peer search ends, its peers go through the [`Gate`] (which may claim it in an
//! index, or drop it as known) to the fetcher; as soon as its fetch ends, its end goes to
//! the [`RowSink`] (CSV, JSON lines, an index) and it is forgotten. What is kept meanwhile is
//! bounded (`Caps`); a full fetch backlog pauses the crawl until a fetch ends, so nothing is
//! dropped. At the overall timeout, or on Ctrl-C / SIGTERM, the fetches still running are
//! stopped, everything still pending goes to the sink with what is known (no metadata), and
//! the [`PipelineReport`] is returned.
//!
//! A fetch needs a peer or two, and the node that sampled an infohash stores its peers: so
//! the crawler's searches stop at the first peers ([`PEERS_FOR_FETCH`]), most after one
//! query, and only where the fetch then fails on all of them is the search continued
//! (once, up to `--peers-per-infohash` peers in all) and the new peers fetched from. The
//! price: a search that stops after its first query asks for no BEP 33 scrape, so swarm
//! estimates come only from searches that go on, unless `--full-peer-searches`. `run` keeps
//! them fresh apart from discovery: its [`Gate`] hands the crawler stored torrents to
//! re-scrape ([`rescrape`]), whose results go to [`RowSink::rescraped`].
//!
//! Around it: the [`index`] gate and sink of `run` (with its [`store_thread`], [`filter`]s,
//! [`nodes`] and [`rescrape`] budget), the CSV and JSON [`rows`] of `collect` and `demo`
//! (torrent names escaped by [`names`]), the [`progress`] line on stderr and the
//! Prometheus [`metrics`] it publishes. The crate takes no command-line parser: the
//! `estudely` binary turns its flags into a [`FetchOptions`] and a [`PipelineConfig`].
//!
//! The index is reached through `estudely-store`'s `Store` trait; its PostgreSQL backend is
//! behind this crate's `postgres` feature (on by default).
//!
//! # Example
//!
//! Crawl for five minutes and write every infohash found, with its metadata when a fetch
//! got it, as CSV on stdout (what `estudely collect` does):
//!
//! ```no_run
//! use std::cell::RefCell;
//! use std::time::Duration;
//!
//! use estudely_crawl::setup::{start_crawler, Budgets};
//! use estudely_dht_core::crawl::Shard;
//! use estudely_pipeline::{FetchOptions, OpenGate, Out, RowFormat};
//!
//! # async fn collect() -> anyhow::Result<()> {
//! let fetch = FetchOptions::default();
//! let cfg = fetch.pipeline("collect", Duration::from_secs(300));
//! let budgets = Budgets {
//!     max_infohashes: 0, // no limit: until the timeout
//!     peers_per_infohash: cfg.peers_per_infohash,
//!     rate: 25.0,
//!     allow_private: false,
//!     harvest: true,
//!     forget_seen_when_full: false,
//!     shard: Shard::all(),
//! };
//! let bootstrap: Vec<String> = estudely_crawl::resolve::DEFAULT_ROUTERS
//!     .iter()
//!     .map(|r| r.to_string())
//!     .collect();
//! let mut driver = start_crawler(vec!["0.0.0.0:0".parse()?], &bootstrap, budgets).await?;
//! let out = RefCell::new(Out::new(RowFormat::Csv, std::io::stdout()));
//! let gate = RefCell::new(OpenGate);
//! let report = estudely_pipeline::run(&mut driver, &cfg, &out, &gate, &mut |_, _| {}).await?;
//! eprintln!("{} infohashes found", report.found);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod filter;
pub mod index;
pub mod metrics;
pub mod names;
pub mod nodes;
mod pending;
pub mod progress;
pub mod rescrape;
pub mod rows;
pub mod store_thread;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use estudely_dht_core::crawl::{CrawlEvent, Crawler};
use estudely_krpc::InfoHash;
use tokio::sync::{mpsc, Notify};

use estudely_crawl::setup::{crawl_limit, overall_limit, Interrupt, StopOn, SEARCHES_CAP};
use estudely_crawl::{CrawlDriver, CrawlReport, CrawlSink, Progress, StopReason};
use estudely_fetch::{
    fetch_stream, EncryptionPolicy, FailureKind, FetchConfig, FetchStats, FetchedMetadata, Job,
    TransportChoice,
};
use estudely_store::Source;
use pending::{Known, Next, Pending, Resume};

pub use rows::{Out, RowFormat, HEADER};

/// The BEP 33 estimates of a swarm, from the scrape filters of the nodes its peer search
/// asked (see [`CrawlEvent::SearchDone`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scrape {
    /// Seeds.
    pub seeds: Option<u32>,
    /// Other peers.
    pub peers: Option<u32>,
}

/// Where the pipeline's results go.
pub trait RowSink {
    /// A new infohash, found through `from` (the sampled node or the announcer), before its
    /// peer search (only for infohashes the [`Gate`] admitted).
    fn found(&mut self, _ih: InfoHash, _from: SocketAddr, _source: Source) -> anyhow::Result<()> {
        Ok(())
    }

    /// The end of an infohash: the peers considered and the metadata, if a fetch got it;
    /// when a fetch ran and failed, its main failure kind (see [`index::main_failure`];
    /// `None` when no attempt ended: the search or the run ended first); the BEP 33
    /// estimates of its swarm, when its search got scrape filters.
    fn done(
        &mut self,
        ih: InfoHash,
        peers: &[SocketAddr],
        fetched: Option<&FetchedMetadata>,
        failure: Option<FailureKind>,
        scrape: Scrape,
    ) -> anyhow::Result<()>;

    /// A node answered its first sample: its client version (KRPC `v`) and its BEP 51
    /// `interval`, if it gave one.
    fn node(&mut self, _version: Option<&[u8]>, _interval: Option<u32>) -> anyhow::Result<()> {
        Ok(())
    }

    /// An infohash given to [`RowSink::found`] that has no end after all: the gate found it
    /// known, or it is not to be fetched here.
    fn dropped(&mut self, _ih: InfoHash) {}

    /// The re-scrape of a stored torrent ([`Gate::next_rescrape`]) ended after `queries`
    /// `get_peers` with these estimates (both `None`: no node sent a filter).
    fn rescraped(&mut self, _ih: InfoHash, _scrape: Scrape, _queries: usize) -> anyhow::Result<()> {
        Ok(())
    }

    /// Called at the end.
    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Where jobs go once a [`Gate`] lets them through, or come back when it does not.
#[derive(Debug, Clone)]
pub struct Handoff {
    /// To the fetcher (never full: it holds the whole fetch backlog).
    pub jobs: mpsc::Sender<Job>,
    /// Back to the pipeline: not fetched here (stored already, or another crawler's).
    pub skipped: mpsc::Sender<InfoHash>,
}

impl Handoff {
    /// Fetch `job`. A closed channel (the fetcher passed its deadline) is not an error:
    /// the infohash is written at the end with what is known.
    pub fn fetch(&self, job: Job) {
        let _ = self.jobs.try_send(job);
    }

    /// Do not fetch `ih`.
    pub fn skip(&self, ih: InfoHash) {
        let _ = self.skipped.try_send(ih);
    }
}

/// What decides which infohashes are searched and fetched. `collect` lets everything
/// through ([`OpenGate`]); `run` checks its index.
pub trait Gate {
    /// A new infohash: search its peers? False: drop it now (its search is cancelled).
    fn admit(&mut self, _ih: InfoHash, _from: SocketAddr, _source: Source) -> bool {
        true
    }

    /// An infohash admitted earlier that turned out to be known: its search is cancelled
    /// and it is dropped (if its search already ended, its claim fails instead).
    fn poll_known(&mut self) -> Option<InfoHash> {
        None
    }

    /// Its search ended with peers: fetch it (`to.fetch`) or not (`to.skip`), now or later.
    fn claim(&mut self, job: Job, to: &Handoff) {
        to.fetch(job);
    }

    /// Called every [`GATE_TICK`] while the crawl waits (paused at the fetch backlog cap, or
    /// waiting for fetches to end): send what waits to be sent (claims).
    fn tick(&mut self) {}

    /// The crawl is over: hand on what is waiting, keep no [`Handoff`] clone.
    fn close(&mut self) {}

    /// A known torrent to re-scrape now for fresh swarm estimates, if the re-scrape budget
    /// allows one at `now` (`run --rescrape-rate`); never one `busy` says is being
    /// discovered or fetched. The crawler's answer goes to [`Gate::rescrape_sent`].
    fn next_rescrape(
        &mut self,
        _now: Instant,
        _busy: &dyn Fn(&InfoHash) -> bool,
    ) -> Option<InfoHash> {
        None
    }

    /// Whether the crawler took the re-scrape of `ih` ([`Crawler::scrape`]).
    fn rescrape_sent(&mut self, _ih: InfoHash, _now: Instant, _accepted: bool) {}

    /// Something wrong for the progress line (e.g. `index unavailable`), if anything.
    fn status(&self) -> Option<&'static str> {
        None
    }
}

/// How often [`Gate::tick`] is called while the crawl waits.
pub const GATE_TICK: Duration = Duration::from_millis(20);

/// A gate that lets everything through.
#[derive(Debug, Default)]
pub struct OpenGate;

impl Gate for OpenGate {}

/// The caps of the pipeline's bookkeeping.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Infohashes whose peer search runs or waits.
    pub searching: usize,
    /// Infohashes waiting for a claim, for a fetch or in one.
    pub fetching: usize,
}

/// Most infohashes the pipeline keeps waiting for, or in, a metadata fetch: one crawler's
/// worth of peer searches ([`SEARCHES_CAP`]). At this many the crawl is paused (it neither
/// sends nor answers) until a fetch ends: the crawler finds no infohash faster than they are
/// fetched, and nothing is dropped.
pub const FETCH_BACKLOG: usize = SEARCHES_CAP;

impl Default for Caps {
    fn default() -> Self {
        Caps {
            searching: SEARCHES_CAP,
            fetching: FETCH_BACKLOG,
        }
    }
}

/// How to run the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Distinct peers kept per infohash.
    pub peers_per_infohash: usize,
    /// Peers tried per infohash, in turn.
    pub metadata_peer_attempts: usize,
    /// Metadata fetches at once.
    pub concurrency: usize,
    /// Transports the metadata fetches connect over.
    pub transport: TransportChoice,
    /// `--overall-timeout` (zero: none).
    pub overall_timeout: Duration,
    /// Write each verified torrent as `DIR/<infohash>.torrent`.
    pub save_torrents: Option<PathBuf>,
    /// The progress line's label (`collect`, `run`).
    pub label: &'static str,
    /// Bookkeeping caps.
    pub caps: Caps,
    /// `--encryption`: when metadata connections use Message Stream Encryption.
    pub encryption: EncryptionPolicy,
    /// `--fetch-memory`: bytes of metadata the fetches may be promised at once.
    pub fetch_memory: u64,
    /// Peers a search stops at ([`PEERS_FOR_FETCH`]; 0 with `--full-peer-searches`).
    pub peers_for_fetch: usize,
    /// What stops the run early, as Ctrl-C does (the binary: the signals).
    pub stop: StopOn,
}

/// Peers a search stops at, enough for a fetch
/// ([`CrawlConfig::peers_for_fetch`](estudely_dht_core::crawl::CrawlConfig::peers_for_fetch)):
/// one, since the reply that brings it brings every peer its node stores (up to
/// `--peers-per-infohash`). Searching on for twenty cost 4.9 `get_peers` per infohash in
/// simulation, most of them to replicas that repeat the same peers (BENCHMARKS.md).
pub const PEERS_FOR_FETCH: usize = 1;

/// Infohashes whose fetch failed, to continue their searches. At most one per infohash
/// pending, so bounded by the fetch backlog.
type Resumes = RefCell<VecDeque<Resume>>;

/// How often progress (the stderr line, the metrics, the caller's hook) is updated.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What the commands that fetch what they find (`collect`, `run`) ask of the fetches: the
/// plain form of their fetch flags (`--peers-per-infohash`, `--transport`, ...), which the
/// `estudely` binary parses. The default is those flags' defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// Distinct peers kept per infohash (default 20).
    pub peers_per_infohash: usize,
    /// Peers tried for an infohash's metadata, in turn, until one succeeds (default 5).
    pub metadata_peer_attempts: usize,
    /// Metadata fetches (connections) at once (default 32).
    pub concurrency: usize,
    /// Transports metadata fetches connect over (default: both, TCP first).
    pub transport: TransportChoice,
    /// Write each verified torrent as `DIR/<infohash>.torrent` (default: none).
    pub save_torrents: Option<PathBuf>,
    /// Message Stream Encryption for metadata connections (default: prefer plaintext,
    /// then encrypted).
    pub encryption: EncryptionPolicy,
    /// Most metadata in flight, all fetches together, in bytes (default
    /// [`DEFAULT_FETCH_MEMORY`](estudely_fetch::DEFAULT_FETCH_MEMORY), 64 MiB).
    pub fetch_memory: u64,
    /// Search every infohash on to `peers_per_infohash` peers, with BEP 33 scrapes, before
    /// fetching, instead of stopping at the first peers (default false).
    pub full_peer_searches: bool,
}

impl Default for FetchOptions {
    /// The flags' defaults.
    fn default() -> Self {
        FetchOptions {
            peers_per_infohash: 20,
            metadata_peer_attempts: 5,
            concurrency: 32,
            transport: TransportChoice::Both,
            save_torrents: None,
            encryption: EncryptionPolicy::Prefer,
            fetch_memory: estudely_fetch::DEFAULT_FETCH_MEMORY,
            full_peer_searches: false,
        }
    }
}

impl FetchOptions {
    /// Create the `--save-torrents` directory (a usage error naming it if it cannot be).
    pub fn prepare(&self) -> anyhow::Result<()> {
        if let Some(dir) = &self.save_torrents {
            std::fs::create_dir_all(dir).map_err(|e| {
                estudely_store::UsageError(format!(
                    "cannot create --save-torrents directory `{}`: {e}",
                    dir.display()
                ))
            })?;
        }
        Ok(())
    }

    /// The pipeline's configuration, labelled `label`, with the default caps.
    pub fn pipeline(&self, label: &'static str, overall_timeout: Duration) -> PipelineConfig {
        PipelineConfig {
            peers_per_infohash: self.peers_per_infohash,
            metadata_peer_attempts: self.metadata_peer_attempts,
            concurrency: self.concurrency,
            transport: self.transport,
            overall_timeout,
            save_torrents: self.save_torrents.clone(),
            label,
            caps: Caps::default(),
            encryption: self.encryption,
            fetch_memory: self.fetch_memory,
            peers_for_fetch: if self.full_peer_searches {
                0
            } else {
                PEERS_FOR_FETCH
            },
            stop: StopOn::Signals,
        }
    }
}

/// How a pipeline run went.
#[derive(Debug)]
pub struct PipelineReport {
    /// The crawl's end.
    pub crawl: CrawlReport,
    /// Metadata fetches by outcome.
    pub fetch: FetchStats,
    /// Infohashes found (tracked or not).
    pub found: u64,
    /// Infohashes the gate dropped or skipped.
    pub dropped: u64,
    /// Times the crawl was paused because the fetch backlog was full.
    pub pauses: u64,
    /// Most infohashes ever waiting for or in a fetch at once.
    pub most_fetching: usize,
    /// Found while the search cap was reached (written without peers).
    pub untracked: u64,
    /// Peers of untracked infohashes, not kept.
    pub untracked_peers: u64,
    /// Peers on port 0 dropped.
    pub port_zero: u64,
    /// Whether Ctrl-C / SIGTERM stopped it.
    pub interrupted: bool,
    /// How long it ran.
    pub elapsed: Duration,
}

impl PipelineReport {
    /// The notes of a summary line after the counts (`; crawl paused ...`).
    pub fn notes(&self, caps: Caps) -> String {
        let mut s = estudely_crawl::setup::network_note(&self.crawl.stats, self.crawl.shard);
        let resumed = self.crawl.stats.searches_resumed;
        if resumed > 0 {
            let p = if resumed == 1 { "" } else { "es" };
            s.push_str(&format!(
                "; {resumed} peer search{p} continued after a failed fetch"
            ));
        }
        if self.port_zero > 0 {
            let n = self.port_zero;
            let p = if n == 1 { "" } else { "s" };
            s.push_str(&format!("; {n} peer{p} with port 0 dropped"));
        }
        if self.pauses > 0 {
            let p = if self.pauses == 1 { "" } else { "s" };
            s.push_str(&format!(
                "; crawl paused {} time{p} at the fetch backlog cap ({})",
                self.pauses, caps.fetching
            ));
        }
        if self.untracked > 0 {
            s.push_str(&format!(
                "; {} infohashes found with {} searches pending written without peers ({} of \
                 their peers not kept)",
                self.untracked, caps.searching, self.untracked_peers
            ));
        }
        s
    }
}

/// The crawl side: events from the crawler into the bookkeeping, the gate and the sink.
struct Stage<'a, S: RowSink, G: Gate> {
    pending: &'a RefCell<Pending>,
    sink: &'a RefCell<S>,
    gate: &'a RefCell<G>,
    handoff: Option<Handoff>,
    cancels: Vec<InfoHash>,
    resumes: &'a Resumes,
    dropped: u64,
    progress: &'a mut dyn FnMut(&Progress, &Crawler),
    last: Option<Progress>,
    display: crate::progress::Progress,
    fetched: &'a RefCell<FetchStats>,
}

impl<S: RowSink, G: Gate> CrawlSink for Stage<'_, S, G> {
    fn event(&mut self, event: &CrawlEvent) -> anyhow::Result<bool> {
        let mut pending = self.pending.borrow_mut();
        match *event {
            CrawlEvent::InfoHash {
                info_hash,
                from,
                announced,
            } => {
                let source = if announced {
                    Source::Announce
                } else {
                    Source::Sample
                };
                if !self.gate.borrow_mut().admit(info_hash, from, source) {
                    self.dropped += 1;
                    self.cancels.push(info_hash);
                } else if pending.found(info_hash, from) {
                    self.sink.borrow_mut().found(info_hash, from, source)?;
                } else {
                    self.sink
                        .borrow_mut()
                        .done(info_hash, &[], None, None, Scrape::default())?;
                }
            }
            CrawlEvent::Peer { info_hash, peer } => pending.peer(info_hash, peer),
            CrawlEvent::ScrapeDone {
                info_hash,
                seeds_estimate,
                peers_estimate,
                queries,
                ..
            } => {
                let scrape = Scrape {
                    seeds: seeds_estimate,
                    peers: peers_estimate,
                };
                self.sink
                    .borrow_mut()
                    .rescraped(info_hash, scrape, queries)?;
            }
            CrawlEvent::NodeSampled {
                ref version,
                interval,
                ..
            } => self.sink.borrow_mut().node(version.as_deref(), interval)?,
            CrawlEvent::SearchDone {
                info_hash,
                seeds_estimate,
                peers_estimate,
                next_nodes,
                ..
            } => match pending.search_done(
                info_hash,
                Scrape {
                    seeds: seeds_estimate,
                    peers: peers_estimate,
                },
                next_nodes,
            ) {
                Next::Fetch(job) => {
                    if let Some(to) = &self.handoff {
                        self.gate.borrow_mut().claim(job, to);
                    }
                }
                Next::Refetch(job) => {
                    // Claimed by the gate the first time: straight to the fetcher.
                    if let Some(to) = &self.handoff {
                        to.fetch(job);
                    }
                }
                Next::Write(ih) => {
                    let k = pending.remove(ih);
                    self.sink
                        .borrow_mut()
                        .done(ih, &k.peers, None, k.failure, k.scrape)?;
                }
                Next::Nothing => {}
            },
        }
        // Full: stop the crawl driver (push back); the pipeline resumes it once there is room.
        Ok(!pending.full())
    }

    fn progress(&mut self, progress: &Progress) {
        crate::metrics::publish_crawl(progress);
        let fetched = self.fetched.borrow();
        let snapshot = crate::progress::Snapshot {
            metadata: Some((
                fetched.obtained,
                fetched.infohashes.saturating_sub(fetched.obtained),
            )),
            status: self.gate.borrow().status(),
            ..crate::progress::Snapshot::crawl(progress, progress.stats.peers)
        };
        self.display.update(&snapshot);
        self.last = Some(progress.clone());
    }

    fn tick(&mut self, crawler: &Crawler) {
        if let Some(p) = self.last.take() {
            (self.progress)(&p, crawler);
        }
    }

    fn steer(&mut self, crawler: &mut Crawler) -> anyhow::Result<bool> {
        let now = Instant::now();
        let next = {
            let pending = self.pending.borrow();
            let busy = |ih: &InfoHash| pending.contains(ih);
            self.gate.borrow_mut().next_rescrape(now, &busy)
        };
        let mut any = false;
        if let Some(ih) = next {
            let accepted = crawler.scrape(now, ih);
            self.gate.borrow_mut().rescrape_sent(ih, now, accepted);
            any |= accepted;
        }
        while let Some(r) = self.resumes.borrow_mut().pop_front() {
            any = true;
            let ih = r.info_hash;
            if !crawler.resume_search(Instant::now(), ih, r.from, &r.tried, r.next) {
                // Refused (queue full): its end, with what the first fetch found.
                let k = self.pending.borrow_mut().remove(ih);
                self.sink
                    .borrow_mut()
                    .done(ih, &k.peers, None, k.failure, k.scrape)?;
            }
        }
        Ok(any)
    }

    fn poll_cancel(&mut self) -> Option<InfoHash> {
        if let Some(ih) = self.cancels.pop() {
            return Some(ih);
        }
        loop {
            let ih = self.gate.borrow_mut().poll_known()?;
            if self.pending.borrow_mut().cancel(ih) {
                self.dropped += 1;
                self.sink.borrow_mut().dropped(ih);
                return Some(ih);
            }
            // Its search has ended: the claim settles it.
        }
    }
}

/// Wait while `busy()` holds, looking again at each fetch's end (`room`), until Ctrl-C or
/// the deadline.
async fn wait_while(
    busy: impl Fn() -> bool,
    room: &Notify,
    interrupt: &Interrupt,
    deadline: Option<Instant>,
    mut tick: impl FnMut(),
) {
    let stop = interrupt.fired();
    tokio::pin!(stop);
    while busy() {
        tokio::select! {
            () = room.notified() => {}
            () = tokio::time::sleep(GATE_TICK) => tick(),
            () = &mut stop => break,
            () = estudely_crawl::driver::sleep_until_opt(deadline) => break,
        }
    }
}

/// Run the pipeline on a bound crawl driver until the crawl and its fetches end, the
/// overall timeout passes or Ctrl-C. `progress` is called every `progress_every`, with the
/// crawler.
pub async fn run<S: RowSink, G: Gate>(
    driver: &mut CrawlDriver,
    cfg: &PipelineConfig,
    sink: &RefCell<S>,
    gate: &RefCell<G>,
    progress: &mut dyn FnMut(&Progress, &Crawler),
) -> anyhow::Result<PipelineReport> {
    let start = Instant::now();
    let caps = cfg.caps;
    let deadline = crawl_limit(cfg.overall_timeout).map(|t| start + t);
    // One watcher for the whole run: the signal stops the crawl and the fetches alike.
    let interrupt = Interrupt::watch_on(&cfg.stop);
    driver
        .crawler_mut()
        .set_peers_for_fetch(cfg.peers_for_fetch);
    let resumes: Resumes = RefCell::new(VecDeque::new());
    // Set once the crawl has ended: a failed fetch can no longer continue its search.
    let crawl_over = Cell::new(false);
    let pending = RefCell::new(Pending::new(
        caps.searching,
        caps.fetching,
        cfg.peers_per_infohash,
    ));
    let (tx, rx) = mpsc::channel(caps.fetching.max(1));
    let (skipped_tx, mut skipped_rx) = mpsc::channel(caps.fetching.max(1));
    let fetch_cfg = FetchConfig {
        peer_attempts: cfg.metadata_peer_attempts,
        concurrency: cfg.concurrency,
        transport: cfg.transport,
        overall_timeout: overall_limit(cfg.overall_timeout),
        // The peers come from the crawler, under its address policy: the fetcher keeps it.
        addr_policy: driver.crawler().node().addr_policy().clone(),
        encryption: cfg.encryption,
        memory: estudely_fetch::MetadataBudget::new(cfg.fetch_memory),
        // Fetches leave from the crawler's --bind address of their family.
        local_ips: driver.local_addrs().iter().map(|a| a.ip()).collect(),
        ..FetchConfig::default()
    };
    let mut batch = fetch_stream(rx, fetch_cfg);
    let fetched = RefCell::new(FetchStats::default());
    let room = Notify::new();
    let mut pauses = 0;
    let mut stage = Stage {
        pending: &pending,
        sink,
        gate,
        handoff: Some(Handoff {
            jobs: tx,
            skipped: skipped_tx,
        }),
        cancels: Vec::new(),
        resumes: &resumes,
        dropped: 0,
        progress,
        last: None,
        display: crate::progress::Progress::new(cfg.label),
        fetched: &fetched,
    };
    let crawl = async {
        let report = loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let run = driver.run(left, interrupt.fired(), Some(PROGRESS_EVERY), &mut stage);
            let report = match run.await {
                Ok(r) if r.reason == StopReason::SinkClosed => r,
                Ok(r) if r.reason == StopReason::Done => {
                    // Every search ended; fetches still running may fail and continue theirs.
                    let busy = || resumes.borrow().is_empty() && pending.borrow().may_resume();
                    wait_while(busy, &room, &interrupt, deadline, || {
                        gate.borrow_mut().tick()
                    })
                    .await;
                    if resumes.borrow().is_empty() {
                        break Ok(r);
                    }
                    continue;
                }
                other => break other,
            };
            // Paused (pushed back): the fetch backlog is full. Resume once a fetch ends.
            pauses += 1;
            let tick = || gate.borrow_mut().tick();
            wait_while(
                || pending.borrow().full(),
                &room,
                &interrupt,
                deadline,
                tick,
            )
            .await;
            if pending.borrow().full() {
                break Ok(report);
            }
        };
        // No more jobs: the fetcher ends when the last one does.
        crawl_over.set(true);
        stage.handoff = None;
        gate.borrow_mut().close();
        report
    };
    let fetch = async {
        let mut skipped = 0u64;
        let stop = interrupt.fired();
        tokio::pin!(stop);
        loop {
            // Interrupted: stop taking results; the fetches still running are cancelled
            // below, and their infohashes written with what is known.
            tokio::select! {
                r = batch.next() => {
                    let Some(r) = r else { break };
                    let failure = index::main_failure(&r.failed);
                    if r.metadata.is_none() && !r.failed.is_empty() && !crawl_over.get() {
                        let again = pending.borrow_mut().fetch_failed(r.info_hash, failure);
                        if let Some(again) = again {
                            // Its search goes on; the crawl loop hands it to the crawler.
                            resumes.borrow_mut().push_back(again);
                            room.notify_one();
                            fetched.borrow_mut().clone_from(batch.stats());
                            continue;
                        }
                    }
                    let Known { peers, scrape, failure: first } =
                        pending.borrow_mut().remove(r.info_hash);
                    room.notify_one();
                    fetched.borrow_mut().clone_from(batch.stats());
                    crate::metrics::publish_fetch(batch.stats());
                    crate::metrics::publish_fetch_backlog(pending.borrow().fetching());
                    if let (Some(dir), Some(m)) = (&cfg.save_torrents, &r.metadata) {
                        estudely_fetch::save_torrent(dir, &r.info_hash.to_hex(), &m.info)?;
                    }
                    // A second fetch that failed without a word (none of its attempts
                    // ended) keeps the first's failure.
                    let failure = if r.metadata.is_some() { failure } else { failure.or(first) };
                    sink.borrow_mut().done(
                        r.info_hash,
                        &peers,
                        r.metadata.as_ref(),
                        failure,
                        scrape,
                    )?;
                }
                Some(ih) = skipped_rx.recv() => {
                    skipped += 1;
                    pending.borrow_mut().remove(ih);
                    sink.borrow_mut().dropped(ih);
                    room.notify_one();
                }
                () = &mut stop => break,
            }
        }
        anyhow::Ok(skipped)
    };
    let (crawl_report, skipped) = tokio::join!(crawl, fetch);
    let crawl_report = crawl_report?;
    let skipped = skipped?;
    let fetch = batch.stats().clone();
    drop(batch); // cancels the fetches still running (interrupted)
                 // Whatever had no fetch result (search unfinished, deadline, interrupted): write it now.
    let dropped = stage.dropped + skipped;
    stage.display.finish();
    drop(stage);
    crate::metrics::publish_fetch(&fetch);
    crate::metrics::publish_node(&driver.crawler().node().stats());
    let mut pending = pending.into_inner();
    for (ih, k) in pending.drain() {
        sink.borrow_mut()
            .done(ih, &k.peers, None, k.failure, k.scrape)?;
    }
    sink.borrow_mut().flush()?;
    Ok(PipelineReport {
        crawl: crawl_report,
        fetch,
        found: pending.found,
        dropped,
        pauses,
        most_fetching: pending.most_fetching,
        untracked: pending.untracked,
        untracked_peers: pending.untracked_peers,
        port_zero: pending.port_zero,
        interrupted: interrupt.happened(),
        elapsed: start.elapsed(),
    })
}
