//! `estudely run`: crawl until Ctrl-C and build a torrent index (SQLite by default,
//! PostgreSQL for several crawlers). Arguments and wiring only: the work is
//! [`crate::pipeline`]'s, with the index sink and gate of [`crate::pipeline::index`].

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Args;
use regex::Regex;

use crate::args::FetchFlags;
use crate::args::{parse_overall_timeout, ShardArgs};
use crate::crawl::setup::{checked_bind, parse_rate, shard_note, start_crawler, Budgets, StopOn};
use crate::crawl::state::MAX_SAVED;
use crate::pipeline::filter::{parse_regex, parse_size, read_blocklist, Filters};
use crate::pipeline::index::{IndexGate, IndexSink, Shared};
use crate::pipeline::rescrape::{RescrapeConfig, Rescrapes};
use crate::pipeline::store_thread::{StoreConfig, StoreThread};
use crate::pipeline::{self, Caps, PipelineConfig};
use crate::resolve::{self, DEFAULT_ROUTERS};
use crate::store::{DbUrl, DEFAULT_DB};

/// `estudely run --help` epilogue.
pub const EXAMPLES: &str =
    "The index holds each torrent once (name, sizes, files, v1 and v2 infohashes, when and
how it was found), the peers and nodes it was seen through (the --max-sightings most recent,
each with a count), and good nodes for the next start. An infohash already in the index is never fetched again; several `run`s on one
PostgreSQL index share the work (leases), never fetching one infohash twice at once, and
with --shard 1/N ... N/N they also sample disjoint slices of the DHT.
Ctrl-C stops the crawl, commits and prints a summary; after `kill -9`, every committed row is
there and a restart carries on. Read it with `estudely export`, `search` and `stats`.

Examples:
  estudely run
  estudely run --db index.sqlite --min-size 1MB --exclude '(?i)sample'
  estudely run --db postgres://crawler@db.example/estudely --bind 0.0.0.0:6881
  estudely run --db 'postgres:host=/var/run/postgresql dbname=estudely'
  estudely run --db postgres://crawler@db.example/estudely --shard 3/4   # third of 4 crawlers
  estudely run --no-peer-addresses    # a public index: sightings counted, no address kept
  estudely run --rescrape-rate 60     # fresher swarm estimates: a re-scrape a second";

/// `estudely run ...`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The index: an SQLite file (`PATH` or `sqlite:PATH`) or a PostgreSQL URL
    /// (`postgres://...`, or `postgres:` and libpq key=value settings).
    #[arg(long, value_name = "URL", default_value = DEFAULT_DB)]
    pub db: String,
    /// A node to start from (repeatable), resolved at start-up; the nodes saved in the index
    /// are tried first.
    #[arg(long, value_name = "HOST:PORT", default_values_t = DEFAULT_ROUTERS.map(String::from))]
    pub bootstrap: Vec<String>,
    /// Local address to crawl from; give it twice for IPv4 and IPv6 [default: 0.0.0.0:0].
    #[arg(long, value_name = "ADDR")]
    pub bind: Vec<SocketAddr>,
    /// Global limit on DHT queries sent, per second.
    #[arg(long, value_name = "Q", default_value_t = 25.0, value_parser = parse_rate)]
    pub rate: f64,
    /// Peers and metadata fetches.
    #[command(flatten)]
    pub fetch: FetchFlags,
    /// Stop after this many seconds (0, the default: until Ctrl-C).
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = parse_overall_timeout)]
    pub overall_timeout: Duration,
    /// Also follow private, loopback, link-local and CGNAT addresses learned from the
    /// network (your own lab network). Without it they are refused (and counted), except in
    /// the ranges of the --bootstrap addresses.
    #[arg(long)]
    pub allow_private: bool,
    /// Do not take infohashes that other nodes announce to our node as discoveries.
    #[arg(long)]
    pub no_harvest: bool,
    /// The slice of the node-id space sampled.
    #[command(flatten)]
    pub shard: ShardArgs,
    /// Keep only torrents of at least this total size (bytes, or 700MB, 1.5GiB, ...).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub min_size: Option<u64>,
    /// Keep only torrents of at most this total size.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,
    /// Keep only torrents whose name matches this regex (e.g. `(?i)linux`).
    #[arg(long, value_name = "REGEX", value_parser = parse_regex)]
    pub include: Option<Regex>,
    /// Drop torrents whose name matches this regex.
    #[arg(long, value_name = "REGEX", value_parser = parse_regex)]
    pub exclude: Option<Regex>,
    /// Never search, fetch or store these infohashes: a file of 40-hex infohashes, one per
    /// line (`#` comments).
    #[arg(long, value_name = "FILE")]
    pub blocklist: Option<PathBuf>,
    /// How long a claim on an infohash lasts (twice the longest fetch by default): another
    /// crawler on the same index, or this one restarted after a crash, may fetch it once it
    /// has expired.
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = crate::args::parse_secs)]
    pub lease: Duration,
    /// This crawler's name in the index's leases [default: host:pid:random].
    #[arg(long, value_name = "NAME")]
    pub owner: Option<String>,
    /// Keep at most this many sightings (peer or node addresses) per infohash, the most
    /// recently seen.
    #[arg(long, value_name = "K", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_sightings: u32,
    /// Store no peer or node address at all (for public indexes): sightings keep only how
    /// often, when first and when last each infohash was seen; `export` lists no peers.
    #[arg(long)]
    pub no_peer_addresses: bool,
    /// Keep at most N torrents: the oldest (by discovery) beyond it are pruned at start,
    /// every minute (or 10,000 torrents written) and at the end, and never fetched again
    /// (see `estudely prune`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_torrents: Option<u64>,
    /// Keep the index's used size under SIZE (e.g. 20GB, 500MiB), pruning the oldest as
    /// --max-torrents does: the cap becomes a count of torrents by the average bytes per
    /// torrent, measured until the run's first prune. The space is reused by the next
    /// torrents (`estudely prune` also shrinks an SQLite file).
    #[arg(long, value_name = "SIZE", value_parser = crate::pipeline::filter::parse_size)]
    pub max_db_size: Option<u64>,
    /// Classification rules tried before the built-in ones (TOML, the format of
    /// crates/classify/default-rules.toml): extensions by kind, and name rules.
    #[arg(long, value_name = "FILE")]
    pub classify_rules: Option<std::path::PathBuf>,
    /// Prometheus metrics.
    #[command(flatten)]
    pub metrics: crate::metrics::MetricsArgs,
    /// Also serve the web UI and API (as `estudely serve`) at this address while crawling,
    /// e.g. 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    pub serve: Option<std::net::SocketAddr>,
    /// Web UI settings (with --serve).
    #[command(flatten)]
    pub web: crate::args::WebArgs,
    /// Keep the swarm estimates of stored torrents fresh: re-scrape this many a minute at
    /// most (BEP 33 `get_peers` with `scrape=1` to the nodes closest to each, up to 8 of
    /// them, under --rate and the per-node budgets; no peer or metadata fetch), the never
    /// estimated first, then the oldest estimates. 0: never.
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(0..=600))]
    pub rescrape_rate: u32,
    /// Re-scrape a torrent at most once in this many seconds.
    #[arg(long, value_name = "SECS", default_value = "21600", value_parser = crate::args::parse_secs)]
    pub rescrape_after: Duration,
}

/// How often good nodes are saved to the index while running.
const SAVE_NODES_EVERY: Duration = Duration::from_secs(300);

/// The figures of `run`'s closing summary line, for a program that runs it in-process.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RunSummary {
    /// Infohashes found (blocklisted ones included).
    pub infohashes: u64,
    /// Torrents written to the index.
    pub stored: u64,
    /// Infohashes dropped as already in the index, or fetched by another crawler.
    pub known: u64,
    /// Torrents fetched but left out by `--min-size`, `--max-size`, `--include`, `--exclude`.
    pub filtered: u64,
    /// Infohashes dropped by `--blocklist`.
    pub blocklisted: u64,
    /// Infohashes with peers whose metadata could not be fetched.
    pub fetch_failed: u64,
    /// Infohashes whose search found no peer.
    pub no_peers: u64,
    /// DHT queries sent.
    pub dht_queries: u64,
    /// Index transactions committed.
    pub transactions: u64,
    /// Whether Ctrl-C (or the caller's stop) ended it, rather than `--overall-timeout`.
    pub interrupted: bool,
    /// Seconds it ran.
    pub seconds: f64,
}

/// Run `estudely run ...`.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    // Opening and loading a large index takes a while: Ctrl-C / SIGTERM meanwhile must stop
    // the run cleanly, not kill it.
    crate::crawl::setup::Interrupt::watch_from_now();
    run_with(args, StopOn::Signals).await.map(drop)
}

/// [`run`] stopped early by `stop` instead of Ctrl-C (for a program that runs `run`
/// in-process and keeps its signals, the Python package), returning its summary's figures.
/// The summary line still goes to stderr.
pub async fn run_with(args: RunArgs, stop: StopOn) -> anyhow::Result<RunSummary> {
    let bind = checked_bind(&args.bind)?;
    for b in &args.bootstrap {
        resolve::parse(b)?;
    }
    let url = DbUrl::parse(&args.db)?;
    args.fetch.prepare()?;
    let filters = Filters {
        min_size: args.min_size,
        max_size: args.max_size,
        include: args.include.clone(),
        exclude: args.exclude.clone(),
        blocklist: match &args.blocklist {
            Some(path) => read_blocklist(path)?,
            None => Default::default(),
        },
    };
    let classifier = crate::args::classifier(args.classify_rules.as_deref())?;
    // The web UI's settings, read now: a bad --api-key-file is refused before the index is
    // opened. (The recorder first, for its /metrics.)
    let web = match args.serve {
        Some(_) => {
            crate::metrics::install()?;
            Some(args.web.config()?)
        }
        None => None,
    };
    args.metrics.start()?;
    let owner = args.owner.clone().unwrap_or_else(default_owner);
    let store_cfg = StoreConfig {
        owner,
        lease: args.lease,
        max_sightings: args.max_sightings,
        peer_addresses: !args.no_peer_addresses,
        max_torrents: args.max_torrents,
        max_db_size: args.max_db_size,
    };
    let (store, opened) = StoreThread::start(url.clone(), store_cfg)?;
    let swept = match opened.swept {
        0 => String::new(),
        n => format!(", {n} expired leases swept"),
    };
    eprintln!(
        "run: index {url} ({}): {} torrents, {} saved nodes{swept}{}",
        opened.kind,
        opened.torrents,
        opened.nodes.len(),
        shard_note(args.shard.shard)
    );
    if let (Some(listen), Some(web)) = (args.serve, web) {
        start_web(listen, &url, web).await?;
    }
    let budgets = Budgets {
        max_infohashes: 0,
        peers_per_infohash: args.fetch.peers_per_infohash as usize,
        rate: args.rate,
        allow_private: args.allow_private,
        harvest: !args.no_harvest,
        forget_seen_when_full: true,
        shard: args.shard.shard,
    };
    let mut driver = start_crawler(bind, &args.bootstrap, budgets).await?;
    driver.warm_start(&opened.nodes);
    let shared = Shared::new(store, opened.known, filters, classifier);
    shared.borrow_mut().rescrapes = Rescrapes::new(
        RescrapeConfig {
            per_minute: args.rescrape_rate,
            after: args.rescrape_after,
        },
        Instant::now(),
    );
    let sink = RefCell::new(IndexSink(shared.clone()));
    let gate = RefCell::new(IndexGate(shared.clone()));
    // Infohashes waiting for a claim or a fetch: a minute of fetches at the default
    // concurrency (about 300 a second on loopback), not collect's 73,728. The crawl pauses
    // at the cap; each entry is its peers and bookkeeping, so this bounds run's memory.
    let caps = Caps {
        fetching: RUN_FETCH_BACKLOG.max(args.fetch.concurrency as usize * 512),
        ..Caps::default()
    };
    let cfg = PipelineConfig {
        caps,
        stop,
        ..args.fetch.pipeline("run", args.overall_timeout)
    };
    let mut saved_at = Instant::now();
    let report = pipeline::run(&mut driver, &cfg, &sink, &gate, &mut |_, crawler| {
        publish_index(&shared.borrow());
        if saved_at.elapsed() >= SAVE_NODES_EVERY {
            saved_at = Instant::now();
            let _ = shared
                .borrow()
                .store
                .save_nodes(crawler.good_nodes(MAX_SAVED));
        }
    })
    .await;
    drop((sink, gate));
    let shared = Rc::try_unwrap(shared)
        .map_err(|_| anyhow::anyhow!("the index is still in use"))?
        .into_inner();
    // Whatever happened, commit what is known and keep the good nodes.
    shared
        .store
        .save_nodes(driver.crawler().good_nodes(MAX_SAVED))?;
    let counts = shared.counts.clone();
    let rescraped = shared.rescrapes.as_ref().map(|r| r.counts);
    publish_index(&shared);
    let filter_bytes = shared.known.bytes();
    let (queue_max, queue_waits) = (shared.store.queue().max(), shared.store.queue().waits());
    let away = shared.store.away();
    let written = shared.store.finish()?;
    let report = report?;
    if report.interrupted {
        eprintln!("run: interrupted; committed what is known");
    }
    let filtered: u64 = counts.filtered.values().sum();
    let mut first = match report.crawl.stats.walks_before_first_sample {
        Some(n) => format!("; first sample after {n} find_node queries"),
        None => String::new(),
    };
    if written.outages > 0 {
        first.push_str(&away_note(&written, &away));
    }
    if let Some(r) = rescraped {
        first.push_str(&format!(
            "; re-scrapes: {} sent, {} with estimates, {} empty, {} refused, {} get_peers",
            r.sent, r.answered, r.empty, r.refused, r.queries
        ));
    }
    eprintln!(
        "run: {} infohashes, {} stored, {} known or fetched elsewhere, {} filtered, {} \
         blocklisted, {} fetches failed, {} without peers; {} DHT queries; metadata {}; index: \
         {} transactions, {:.1} s writing, {} claims refused; filter: {} bytes, {} lookups, {} \
         known; queue: {} at most, {} waits; {:.1} s{first}{}",
        report.found + counts.blocklisted,
        counts.stored,
        counts.dropped,
        filtered,
        counts.blocklisted,
        counts.fetch_failed,
        counts.no_peers,
        report.crawl.queries_sent,
        report.fetch,
        written.commits,
        written.busy.as_secs_f64(),
        written.claims_refused,
        filter_bytes,
        written.lookups,
        written.known,
        queue_max,
        queue_waits,
        report.elapsed.as_secs_f64(),
        report.notes(caps)
    );
    Ok(RunSummary {
        infohashes: report.found + counts.blocklisted,
        stored: counts.stored,
        known: counts.dropped,
        filtered,
        blocklisted: counts.blocklisted,
        fetch_failed: counts.fetch_failed,
        no_peers: counts.no_peers,
        dht_queries: report.crawl.queries_sent,
        transactions: written.commits,
        interrupted: report.interrupted,
        seconds: report.elapsed.as_secs_f64(),
    })
}

/// The summary's note on the index's outages: how many, how long, what was held and
/// dropped meanwhile.
fn away_note(
    w: &crate::pipeline::store_thread::WriteStats,
    a: &crate::pipeline::store_thread::AwayCounts,
) -> String {
    let p = if w.outages == 1 { "" } else { "s" };
    format!(
        "; index unavailable {} time{p}, {:.1} s in all: held at most {} requests ({:.1} MB), \
         dropped {} sightings, {} lookups, {} lease releases, {} node saves; {} infohashes \
         not searched",
        w.outages,
        w.unavailable.as_secs_f64(),
        a.most_held,
        a.most_held_bytes as f64 / 1e6,
        a.sightings_dropped,
        a.lookups_dropped,
        a.releases_dropped,
        a.node_saves_dropped,
        a.not_searched
    )
}

/// Publish the index side's figures (filter, store queue) as metrics.
fn publish_index(shared: &Shared) {
    let w = shared.store.stats();
    let q = shared.store.queue();
    let r = shared
        .rescrapes
        .as_ref()
        .map(|r| r.counts)
        .unwrap_or_default();
    crate::metrics::publish_index(&crate::metrics::IndexFigures {
        filter_lookups: w.lookups,
        filter_known: w.known,
        filter_bytes: shared.known.bytes() as u64,
        queue: q.len() as u64,
        queue_waits: q.waits(),
        leases_swept: w.leases_swept,
        claims_refused: w.claims_refused,
        rescrapes_sent: r.sent,
        rescrapes_answered: r.answered,
        rescrapes_empty: r.empty,
        available: shared.store.available(),
        held: shared.store.away().held as u64,
        outages: shared.store.index_status().outages(),
    });
}

/// Serve the web UI over the index being built, on this runtime, until the run ends.
async fn start_web(
    listen: std::net::SocketAddr,
    url: &DbUrl,
    web: crate::web::WebConfig,
) -> anyhow::Result<()> {
    let listener = crate::web::bind(listen, web.auth.is_some()).await?;
    let state = std::sync::Arc::new(crate::web::AppState::new(url.clone(), &web));
    eprintln!("run: web UI at http://{}/", listener.local_addr()?);
    let auth = web.auth.clone();
    tokio::spawn(async move {
        let never = std::future::pending::<()>();
        if let Err(e) = crate::web::serve(listener, state, auth, never).await {
            tracing::warn!("web UI stopped: {e:#}");
        }
    });
    Ok(())
}

/// Infohashes `run` keeps waiting for a claim or a fetch at the default `--concurrency` (more
/// with more: 512 per connection).
pub const RUN_FETCH_BACKLOG: usize = 16_384;

/// `host:pid:random`, unique per process.
fn default_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let tag: u32 = rand::RngCore::next_u32(&mut rand::rngs::OsRng);
    format!("{host}:{}:{tag:08x}", std::process::id())
}
