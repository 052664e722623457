//! `estudely collect`: crawl, find peers and fetch metadata in one run, streaming the seed's
//! `dht_collect_and_metadata.py` CSV: one row per (infohash, peer considered),
//! `infohash,name,file_count,total_bytes,piece_length,peer_ip,peer_port,metadata_ok`.
//!
//! The work is [`crate::pipeline`]'s, with the CSV / JSONL sink and a gate that lets
//! everything through: as soon as an infohash's fetch ends, its rows are written and
//! flushed, and it is forgotten; what is kept meanwhile is bounded, and a full backlog
//! pauses the crawl until a fetch ends, so nothing is dropped. At the overall timeout, or on Ctrl-C / SIGTERM (during the
//! crawl or after it, while fetches run), the fetches still running are stopped, everything
//! still pending is written with what is known (`metadata_ok` False), the summary is
//! printed and the command exits 0.

use std::cell::RefCell;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::args::FetchFlags;
use crate::args::{parse_overall_timeout, CrawlNetArgs, ShardArgs};
use crate::crawl::setup::{checked_bind, parse_rate, start_crawler, Budgets, StopOn};
use crate::crawl::CrawlDriver;
use crate::pipeline::{self, Caps, OpenGate, Out, PipelineConfig, RowFormat};
use crate::resolve::DEFAULT_ROUTERS;

pub use crate::pipeline::HEADER;

/// `estudely collect --help` epilogue.
pub const EXAMPLES: &str =
    "stdout: the CSV above, one row per (infohash, peer considered), written as each
infohash's metadata fetch ends; name empty and numbers 0 when unknown; metadata_ok is True
when at least one peer gave the full, verified metadata. In name, control characters and
bytes that are not UTF-8 are written \\xHH (\\uHHHH for U+0080-U+009F) and a backslash
\\\\, so the raw bytes can be restored. stderr: a summary at the end.

Examples:
  estudely collect > metadata_peers.csv
  estudely collect --max-infohashes 30 --peers-per-infohash 25 --metadata-peer-attempts 6 \\
      --overall-timeout 120 > crawl_out.csv
  estudely collect --bootstrap 127.0.10.1:40000 --bind 127.0.0.1:0 --save-torrents torrents/
  estudely collect --max-infohashes 0 --overall-timeout 600 --shard 1/2   # one of 2 crawlers";

/// `estudely collect ...`
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// Stop sampling after this many distinct infohashes (0 = no limit).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_infohashes: usize,
    /// Peers and metadata fetches.
    #[command(flatten)]
    pub fetch: FetchFlags,
    /// Stop after this many seconds and write what is known (0 = no limit: until the crawl
    /// and its fetches end, or Ctrl-C).
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_overall_timeout)]
    pub overall_timeout: Duration,
    /// Global limit on DHT queries sent, per second.
    #[arg(long, value_name = "Q", default_value_t = 25.0, value_parser = parse_rate)]
    pub rate: f64,
    /// A node to start from (repeatable), resolved at start-up.
    #[arg(long, value_name = "HOST:PORT", default_values_t = DEFAULT_ROUTERS.map(String::from))]
    pub bootstrap: Vec<String>,
    /// Local address to crawl from; give it twice for IPv4 and IPv6 [default: 0.0.0.0:0].
    #[arg(long, value_name = "ADDR")]
    pub bind: Vec<SocketAddr>,
    /// Address policy, announce harvesting and warm start.
    #[command(flatten)]
    pub net: CrawlNetArgs,
    /// The slice of the node-id space sampled.
    #[command(flatten)]
    pub shard: ShardArgs,
    /// How to print rows.
    #[arg(long, value_enum, default_value_t = CollectFormat::Csv)]
    pub format: CollectFormat,
    /// Prometheus metrics.
    #[command(flatten)]
    pub metrics: crate::metrics::MetricsArgs,
}

/// Row formats of `estudely collect`: the command line's names for the pipeline's
/// [`RowFormat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CollectFormat {
    /// The seed's CSV, with a header line.
    Csv,
    /// One JSON object per row, the same fields plus `name_hex`, `version`,
    /// `seeds_estimate` and `peers_estimate`.
    Jsonl,
}

impl From<CollectFormat> for RowFormat {
    fn from(f: CollectFormat) -> Self {
        match f {
            CollectFormat::Csv => RowFormat::Csv,
            CollectFormat::Jsonl => RowFormat::Jsonl,
        }
    }
}

/// Run `estudely collect ...`.
pub async fn run(args: CollectArgs) -> anyhow::Result<()> {
    run_with(args, io::stdout(), StopOn::Signals).await
}

/// [`run`] with the rows written to `out` instead of stdout, stopped early by `stop`
/// instead of Ctrl-C: for a program that runs `collect` in-process (the Python package).
pub async fn run_with<W: Write>(args: CollectArgs, out: W, stop: StopOn) -> anyhow::Result<()> {
    let bind = checked_bind(&args.bind)?;
    args.metrics.start()?;
    args.fetch.prepare()?;
    let saved = args.net.saved_nodes()?;
    let mut driver = start_crawler(bind, &args.bootstrap, budgets(&args)).await?;
    driver.warm_start(&saved);
    collect_with(&mut driver, &args, Caps::default(), out, stop).await?;
    args.net.save_state(&driver)
}

/// The crawler budgets of `collect` arguments.
pub fn budgets(args: &CollectArgs) -> Budgets {
    Budgets {
        max_infohashes: args.max_infohashes,
        peers_per_infohash: args.fetch.peers_per_infohash as usize,
        rate: args.rate,
        allow_private: args.net.allow_private,
        harvest: !args.net.no_harvest,
        forget_seen_when_full: false,
        shard: args.shard.shard,
    }
}

/// The collect pipeline on an already bound crawl driver (also used by `estudely demo`).
pub async fn collect(driver: &mut CrawlDriver, args: &CollectArgs) -> anyhow::Result<()> {
    collect_with(driver, args, Caps::default(), io::stdout(), StopOn::Signals)
        .await
        .map(drop)
}

/// How the bookkeeping went, for tests.
#[derive(Debug, Default)]
#[cfg_attr(not(test), allow(dead_code))]
struct Bookkeeping {
    /// Times the crawl was paused because the fetch backlog was full.
    pauses: u64,
    /// Most infohashes ever waiting for or in a fetch at once.
    most_fetching: usize,
}

async fn collect_with<W: Write>(
    driver: &mut CrawlDriver,
    args: &CollectArgs,
    caps: Caps,
    w: W,
    stop: StopOn,
) -> anyhow::Result<Bookkeeping> {
    let out = RefCell::new(Out::new(args.format.into(), w));
    out.borrow_mut()
        .header()
        .context("cannot write to stdout")?;
    let cfg = PipelineConfig {
        caps,
        stop,
        ..args.fetch.pipeline("collect", args.overall_timeout)
    };
    let gate = RefCell::new(OpenGate);
    let report = pipeline::run(driver, &cfg, &out, &gate, &mut |_, _| {}).await?;
    if report.interrupted {
        eprintln!("collect: interrupted; writing what is known");
    }
    let out = out.into_inner();
    eprintln!(
        "collect: {} infohashes, {} with metadata, {} rows; {} DHT queries; metadata {}; {:.1} s{}",
        report.found,
        out.with_metadata,
        out.rows,
        report.crawl.queries_sent,
        report.fetch,
        report.elapsed.as_secs_f64(),
        report.notes(caps)
    );
    Ok(Bookkeeping {
        pauses: report.pauses,
        most_fetching: report.most_fetching,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// With a fetch backlog of one, the crawl is paused after every infohash with peers and
    /// resumed once its fetch ends: every torrent of a loopback testnet is still collected.
    #[test]
    fn a_full_fetch_backlog_pauses_the_crawl_and_nothing_is_lost() {
        use crate::crawl::setup::start_crawler;
        use crate::testnet::{Testnet, TestnetConfig};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let torrents = 6;
        let (book, text) = rt.block_on(async {
            let net = Testnet::start(TestnetConfig {
                nodes: 8,
                torrents,
                base_ip: [127, 0, 82],
                ..TestnetConfig::default()
            })
            .await
            .unwrap();
            let args = CollectArgs {
                max_infohashes: torrents,
                fetch: FetchFlags::default(),
                overall_timeout: Duration::from_secs(120),
                rate: 200.0,
                bootstrap: vec![net.bootstrap().to_string()],
                bind: vec![addr("127.0.84.1:0")],
                net: CrawlNetArgs::default(),
                shard: ShardArgs::default(),
                format: CollectFormat::Csv,
                metrics: Default::default(),
            };
            let mut driver = start_crawler(args.bind.clone(), &args.bootstrap, budgets(&args))
                .await
                .unwrap();
            let caps = Caps {
                searching: crate::crawl::setup::SEARCHES_CAP,
                fetching: 1,
            };
            let mut text = Vec::new();
            let book = collect_with(&mut driver, &args, caps, &mut text, StopOn::Signals)
                .await
                .unwrap();
            net.shutdown().await;
            (book, String::from_utf8(text).unwrap())
        });
        assert!(book.pauses >= 1, "{book:?}");
        assert_eq!(book.most_fetching, 1, "never above the cap");
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(rows.len(), torrents, "{text}");
        assert!(rows.iter().all(|r| r.ends_with(",True")), "{text}");
    }
}
