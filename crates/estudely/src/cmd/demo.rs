//! `estudely demo`: the whole pipeline with no network at all. It starts a testnet of our
//! own DHT nodes on loopback whose synthetic torrents are served by metadata seeders, then
//! runs `collect` against it and prints the seed's CSV. One command for a fresh machine.

use crate::args::EncryptionArg;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Args;

use crate::args::parse_overall_timeout;
use crate::args::FetchFlags;
use crate::cmd::collect::{budgets, collect, CollectArgs, CollectFormat};
use crate::crawl::setup::start_crawler;
use crate::testnet::{Testnet, TestnetConfig};

/// `estudely demo --help` epilogue.
pub const EXAMPLES: &str =
    "Starts N DHT nodes on 127.0.200.x with T synthetic torrents (each served by a seeder that
hands out its metadata), crawls them with BEP 51, finds the seeders with get_peers, fetches
the metadata with BEP 9 and prints `collect`'s CSV. Nothing leaves 127.0.0.0/8.

Examples:
  estudely demo
  estudely demo --nodes 64 --torrents 40 --format jsonl";

/// `estudely demo ...`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// DHT nodes in the loopback testnet.
    #[arg(long, value_name = "N", default_value_t = 24,
          value_parser = clap::value_parser!(u32).range(2..=2_000))]
    pub nodes: u32,
    /// Synthetic torrents, each with its own seeder.
    #[arg(long, value_name = "N", default_value_t = 12,
          value_parser = clap::value_parser!(u32).range(1..=250))]
    pub torrents: u32,
    /// Give up after this many seconds and print what was found (0 = no limit).
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_overall_timeout)]
    pub overall_timeout: Duration,
    /// How to print rows.
    #[arg(long, value_enum, default_value_t = CollectFormat::Csv)]
    pub format: CollectFormat,
    /// Message Stream Encryption for metadata connections (`off`, `prefer`, `required`);
    /// the testnet's seeders speak plaintext only, so `required` fetches nothing.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = EncryptionArg::Prefer)]
    pub encryption: EncryptionArg,
    /// Most metadata in flight, all fetches together (bytes, or with K, M, G).
    #[arg(long, value_name = "BYTES", default_value = "64M", value_parser = crate::args::parse_bytes)]
    pub fetch_memory: u64,
}

/// Run `estudely demo`.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let cfg = TestnetConfig {
        nodes: args.nodes as usize,
        torrents: args.torrents as usize,
        interval: 60,
        base_ip: [127, 0, 200],
        ..TestnetConfig::default()
    };
    eprintln!(
        "demo: starting {} DHT nodes on 127.0.200.x with {} seeded torrents...",
        cfg.nodes, cfg.torrents
    );
    let net = Testnet::start(cfg).await?;
    eprintln!(
        "demo: testnet ready in {:.1} s, bootstrap {}; crawling it (BEP 51 + get_peers + BEP 9):",
        started.elapsed().as_secs_f64(),
        net.bootstrap()
    );
    let collect_args = CollectArgs {
        max_infohashes: args.torrents as usize,
        fetch: FetchFlags {
            encryption: args.encryption,
            fetch_memory: args.fetch_memory,
            ..Default::default()
        },
        overall_timeout: args.overall_timeout,
        rate: 200.0,
        bootstrap: vec![net.bootstrap().to_string()],
        bind: vec![SocketAddr::from(([127, 0, 203, 1], 0))],
        net: Default::default(),
        shard: Default::default(),
        format: args.format,
        metrics: Default::default(),
    };
    let mut driver = start_crawler(
        collect_args.bind.clone(),
        &collect_args.bootstrap,
        budgets(&collect_args),
    )
    .await?;
    let result = collect(&mut driver, &collect_args).await;
    net.shutdown().await;
    result
}
