//! Argument types and value parsers that the commands share: the `query` and `node`
//! arguments, option groups flattened into several subcommands ([`BootstrapArgs`],
//! [`OutputArgs`]), and parsers of seconds, timeouts, ids and infohashes. Leaf module: it
//! imports neither `cli` nor `cmd`, so both can use it.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use estudely_krpc::{InfoHash, NodeId, Want};

use crate::resolve::DEFAULT_ROUTERS;

/// `estudely query ...`
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The query to send.
    #[command(subcommand)]
    pub method: QueryMethod,
    /// Local address to send from [default: 0.0.0.0:0, or [::]:0 for an IPv6 node].
    #[arg(long, global = true, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
    /// Seconds to wait for each reply.
    #[arg(long, global = true, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub timeout: Duration,
    /// BEP 32: which address families of nodes to ask for [default: the requester's own].
    #[arg(long, global = true, value_enum)]
    pub want: Option<WantArg>,
    /// How to print replies.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// The KRPC queries `estudely query` can send.
#[derive(Debug, Subcommand)]
pub enum QueryMethod {
    /// `ping`: is the node alive, and what is its id?
    Ping {
        /// The node: IP:PORT, [IPv6]:PORT or HOST:PORT.
        addr: String,
    },
    /// `find_node`: the nodes it knows closest to TARGET.
    FindNode {
        /// The node: IP:PORT, [IPv6]:PORT or HOST:PORT.
        addr: String,
        /// 40 hex digits [default: a random id].
        #[arg(value_parser = parse_node_id)]
        target: Option<NodeId>,
    },
    /// `get_peers`: peers of a torrent, or nodes closer to it, plus a write token.
    GetPeers {
        /// The node: IP:PORT, [IPv6]:PORT or HOST:PORT.
        addr: String,
        /// The torrent's infohash, 40 hex digits.
        #[arg(value_parser = parse_info_hash)]
        info_hash: InfoHash,
        /// BEP 33: ask for bloom filters of the seeds and peers it knows.
        #[arg(long)]
        scrape: bool,
        /// BEP 33: ask for non-seed peers only.
        #[arg(long)]
        noseed: bool,
    },
    /// `sample_infohashes` (BEP 51): a sample of the infohashes it stores.
    Sample {
        /// The node: IP:PORT, [IPv6]:PORT or HOST:PORT.
        addr: String,
        /// Where in the keyspace to return nodes [default: a random id].
        #[arg(value_parser = parse_node_id)]
        target: Option<NodeId>,
    },
    /// `get_peers` for a token, then `announce_peer` with it: "I have this torrent".
    Announce {
        /// The node: IP:PORT, [IPv6]:PORT or HOST:PORT.
        addr: String,
        /// The torrent's infohash, 40 hex digits.
        #[arg(value_parser = parse_info_hash)]
        info_hash: InfoHash,
        /// The TCP port peers should connect to.
        #[arg(long, default_value_t = 6881, conflicts_with = "implied_port")]
        port: u16,
        /// Let the node use our UDP source port instead of --port.
        #[arg(long)]
        implied_port: bool,
        /// BEP 33: announce as a seed.
        #[arg(long)]
        seed: bool,
    },
}

/// `estudely node ...`
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Address to listen on; give it twice for IPv4 and IPv6 (port 0 = any free port).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:6881")]
    pub bind: Vec<SocketAddr>,
    /// Where to find the network.
    #[command(flatten)]
    pub bootstrap: BootstrapArgs,
    /// Seconds between two stats lines in the log.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub stats_interval: Duration,
    /// BEP 43: take part as a read-only node (answer no queries, stay out of routing tables).
    #[arg(long)]
    pub read_only: bool,
    /// Also talk to private, loopback, link-local and CGNAT addresses (a lab network).
    /// Without it they are refused, except in the ranges of --bind and --bootstrap.
    #[arg(long)]
    pub allow_private: bool,
    /// Use this node id (40 hex digits) instead of a random one.
    #[arg(long, value_parser = parse_node_id)]
    pub id: Option<NodeId>,
    /// Seed the node's RNG (ids, tokens, samples) for a reproducible run.
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Bootstrap nodes, shared by subcommands that join the network.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// A node to bootstrap from (repeatable), resolved at start-up.
    #[arg(long = "bootstrap", value_name = "HOST:PORT", default_values_t = DEFAULT_ROUTERS.map(String::from))]
    pub nodes: Vec<String>,
    /// Do not bootstrap: wait for others to find us (the first node of a network).
    #[arg(long, conflicts_with = "nodes")]
    pub no_bootstrap: bool,
}

/// Output options, shared by subcommands that print results.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// How to print replies.
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Human,
    /// One JSON object per reply and line; binary values in hex.
    Jsonl,
}

/// BEP 32 `want` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WantArg {
    /// IPv4 nodes (`n4`).
    N4,
    /// IPv6 nodes (`n6`).
    N6,
    /// Both.
    Both,
}

impl WantArg {
    /// As the KRPC type.
    pub fn to_want(self) -> Want {
        Want {
            v4: self != WantArg::N6,
            v6: self != WantArg::N4,
        }
    }
}

/// Seconds, possibly fractional, at most a day.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!(
            "`{s}` must be more than 0 and at most 86400 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// An `--overall-timeout`: seconds as [`parse_secs`] takes them, or `0` for no limit (run
/// until the work is done or Ctrl-C), returned as [`Duration::ZERO`]; see [`overall_limit`].
pub fn parse_overall_timeout(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(0.0) => Ok(Duration::ZERO),
        _ => parse_secs(s).map_err(|e| format!("{e}, or 0 for no limit")),
    }
}

/// The deadline an `--overall-timeout` stands for: `None` (no limit) for 0.
pub use estudely_crawl::setup::overall_limit;

/// A size in bytes: a whole number, optionally followed by `K`, `M` or `G` (binary: KiB,
/// MiB, GiB; `KiB`, `MiB`, `GiB` are taken too). More than 0.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not a size (bytes, or a number with K, M or G)");
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let shift = match unit
        .trim()
        .trim_end_matches("iB")
        .to_ascii_uppercase()
        .as_str()
    {
        "" | "B" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return Err(bad()),
    };
    let n: u64 = n.parse().map_err(|_| bad())?;
    let bytes = n.checked_mul(1 << shift).ok_or_else(bad)?;
    if bytes == 0 {
        return Err(format!("`{s}` must be more than 0 bytes"));
    }
    Ok(bytes)
}

/// 40 hex digits as a node id.
pub fn parse_node_id(s: &str) -> Result<NodeId, String> {
    NodeId::from_hex(s).ok_or_else(|| format!("`{s}` is not 40 hex digits"))
}

/// An infohash as the DHT keys it (20 bytes) from: 40 hex digits (v1, or a v2 infohash
/// already truncated), 64 hex digits (a v2 SHA-256 infohash, truncated to its first 20
/// bytes as BEP 52 says the DHT and the handshake use), or a magnet link (`btih` preferred,
/// else `btmh` with the SHA-256 multihash prefix `1220`).
pub fn parse_info_hash(s: &str) -> Result<InfoHash, String> {
    let bad = || format!("`{s}` is not an infohash (40 or 64 hex digits, or a magnet link)");
    let Some(query) = s.strip_prefix("magnet:?") else {
        return info_hash_hex(s).ok_or_else(bad);
    };
    let xt = |prefix: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix("xt=").and_then(|v| v.strip_prefix(prefix)))
    };
    match (xt("urn:btih:"), xt("urn:btmh:1220")) {
        (Some(v1), _) => InfoHash::from_hex(v1).ok_or_else(bad),
        (None, Some(v2)) if v2.len() == 64 => info_hash_hex(v2).ok_or_else(bad),
        _ => Err(bad()),
    }
}

pub use estudely_fetch::info_hash_hex;

/// `--transport`: the command line's names for the fetcher's
/// [`TransportChoice`](estudely_fetch::TransportChoice) (the library crates take no clap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportArg {
    /// TCP only.
    Tcp,
    /// uTP (BEP 29) only.
    Utp,
    /// TCP first; uTP too if TCP is refused or has not connected within a head start, the
    /// first connection made winning (see [`TCP_HEAD_START`]).
    #[default]
    Both,
}

impl From<TransportArg> for estudely_fetch::TransportChoice {
    fn from(a: TransportArg) -> Self {
        match a {
            TransportArg::Tcp => Self::Tcp,
            TransportArg::Utp => Self::Utp,
            TransportArg::Both => Self::Both,
        }
    }
}

/// `--encryption`: the command line's names for the fetcher's
/// [`EncryptionPolicy`](estudely_fetch::EncryptionPolicy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum EncryptionArg {
    /// Plaintext only (peers that require encryption close the connection).
    Off,
    /// Plaintext first; if the peer closes the connection before answering our BitTorrent
    /// handshake (the usual sign of a peer that requires encryption), once more with MSE
    /// (offering RC4 or plaintext), within the same attempt deadline.
    #[default]
    Prefer,
    /// MSE with RC4 only.
    Required,
}

impl From<EncryptionArg> for estudely_fetch::EncryptionPolicy {
    fn from(a: EncryptionArg) -> Self {
        match a {
            EncryptionArg::Off => Self::Off,
            EncryptionArg::Prefer => Self::Prefer,
            EncryptionArg::Required => Self::Required,
        }
    }
}

/// `--sort`: the command line's names for the index's
/// [`SearchSort`](estudely_store::SearchSort).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SortArg {
    /// Best match first (the backend's ranking).
    #[default]
    Relevance,
    /// Largest first.
    Size,
    /// Newest `discovered` first.
    Discovered,
    /// Most seeders first (the BEP 33 estimate; torrents without one last).
    Seeders,
}

impl From<SortArg> for estudely_store::SearchSort {
    fn from(a: SortArg) -> Self {
        match a {
            SortArg::Relevance => Self::Relevance,
            SortArg::Size => Self::Size,
            SortArg::Discovered => Self::Discovered,
            SortArg::Seeders => Self::Seeders,
        }
    }
}

/// The classifier of `--classify-rules FILE` (that file's rules before the built-in ones),
/// or of the built-in rules alone. A missing or malformed file is a usage error naming it.
pub fn classifier(rules: Option<&std::path::Path>) -> anyhow::Result<crate::store::Classifier> {
    use estudely_classify::Rules;
    let rules = match rules {
        Some(path) => Rules::with_file(path)
            .map_err(|e| crate::resolve::UsageError(format!("--classify-rules: {e}")))?,
        None => Rules::default(),
    };
    Ok(crate::store::Classifier::new(rules))
}

/// The web server's flags, shared by `serve` and `run --serve`.
#[derive(Debug, Clone, Args)]
pub struct WebArgs {
    /// Ask for HTTP basic authentication with these credentials on every page and API call.
    #[arg(long, value_name = "USER:PASS", value_parser = estudely_web::Credentials::parse)]
    pub auth: Option<estudely_web::Credentials>,
    /// Most index connections open at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub db_connections: usize,
    /// An API key (16 or more printable characters; repeatable): with one, Torznab
    /// (/torznab/api), RSS (/feed) and the JSON API (/api/) want `apikey=KEY` or an
    /// X-Api-Key header. Prefer --api-key-file: a command line is visible to other users.
    #[arg(long, value_name = "KEY", value_parser = estudely_web::keys::ApiKey::parse)]
    pub api_key: Vec<estudely_web::keys::ApiKey>,
    /// A file of API keys, one per line (blank lines and lines starting with # skipped).
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<std::path::PathBuf>,
}

impl WebArgs {
    /// The web server's settings: these flags, the keys of --api-key-file, and `/metrics`
    /// from the installed exporter (see [`crate::metrics::install`]). A missing key file,
    /// or a bad key in it, is a usage error naming the file and line.
    pub fn config(&self) -> anyhow::Result<estudely_web::WebConfig> {
        let mut api_keys = self.api_key.clone();
        if let Some(path) = &self.api_key_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                crate::resolve::UsageError(format!(
                    "cannot read --api-key-file {}: {e}",
                    path.display()
                ))
            })?;
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let key = estudely_web::keys::ApiKey::parse(line).map_err(|e| {
                    crate::resolve::UsageError(format!(
                        "--api-key-file {}:{}: {e}",
                        path.display(),
                        i + 1
                    ))
                })?;
                api_keys.push(key);
            }
        }
        Ok(estudely_web::WebConfig {
            auth: self.auth.clone(),
            db_connections: self.db_connections,
            metrics: crate::metrics::handle()
                .map(|h| std::sync::Arc::new(move || h.render()) as estudely_web::RenderMetrics),
            api_keys,
        })
    }
}

/// The flags `crawl` and `collect` share about the network: which addresses to follow,
/// whether to harvest announces, and the warm-start file. The crawl crate takes them as a
/// [`CrawlNet`](estudely_crawl::setup::CrawlNet) ([`CrawlNetArgs::config`]).
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
    pub state: Option<std::path::PathBuf>,
}

impl CrawlNetArgs {
    /// As the crawl crate's configuration.
    pub fn config(&self) -> estudely_crawl::setup::CrawlNet {
        self.into()
    }

    /// The nodes saved in `--state FILE` (none without the flag or the file); a malformed
    /// file is a usage error, before any packet is sent.
    pub fn saved_nodes(&self) -> anyhow::Result<Vec<estudely_krpc::CompactNode>> {
        self.config().saved_nodes()
    }

    /// Save the crawl's good nodes to `--state FILE`, if given.
    pub fn save_state(&self, driver: &estudely_crawl::CrawlDriver) -> anyhow::Result<()> {
        self.config().save_state(driver)
    }
}

impl From<&CrawlNetArgs> for estudely_crawl::setup::CrawlNet {
    fn from(a: &CrawlNetArgs) -> Self {
        estudely_crawl::setup::CrawlNet {
            allow_private: a.allow_private,
            no_harvest: a.no_harvest,
            state: a.state.clone(),
        }
    }
}

/// `--shard K/N`, shared by `crawl`, `collect` and `run`.
#[derive(Debug, Clone, Copy, Args)]
pub struct ShardArgs {
    /// Sample only the K-th of N equal slices of the node-id space (1 <= K <= N <= 65536).
    /// N crawlers, on one IP or many, each given a different K, sample disjoint sets of
    /// nodes and so never ask one node twice within its interval; nodes outside the slice
    /// are only used to find others (counted in the summary). With a shared PostgreSQL
    /// index (`run --db postgres:...`) they also fetch nothing twice.
    #[arg(long, value_name = "K/N", default_value = "1/1")]
    pub shard: estudely_dht_core::crawl::Shard,
}

impl Default for ShardArgs {
    fn default() -> Self {
        ShardArgs {
            shard: estudely_dht_core::crawl::Shard::all(),
        }
    }
}

/// The flags of the commands that fetch what they find (`collect`, `run`). The pipeline
/// crate takes them as a [`FetchOptions`](estudely_pipeline::FetchOptions)
/// ([`FetchFlags::options`]).
#[derive(Debug, Clone, Args)]
pub struct FetchFlags {
    /// Distinct peers kept per infohash.
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub peers_per_infohash: u32,
    /// Peers tried for an infohash's metadata, in turn, until one succeeds.
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub metadata_peer_attempts: u32,
    /// Metadata fetches (connections) at once.
    #[arg(long, value_name = "N", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=4_096))]
    pub concurrency: u32,
    /// Transports metadata fetches connect over: `both` tries TCP, and uTP too when TCP is
    /// refused or slow to connect.
    #[arg(long, value_enum, default_value_t = TransportArg::Both)]
    pub transport: TransportArg,
    /// Write each verified torrent as DIR/<infohash>.torrent.
    #[arg(long, value_name = "DIR")]
    pub save_torrents: Option<std::path::PathBuf>,
    /// Message Stream Encryption for metadata connections: `off` (plaintext only),
    /// `prefer` (plaintext, then once more encrypted if the peer closes at our handshake),
    /// `required` (encrypted, RC4 only).
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = EncryptionArg::Prefer)]
    pub encryption: EncryptionArg,
    /// Most metadata in flight, all fetches together: each reserves the size its peer
    /// announces before receiving it, and waits (then fails as `memory_budget`) when
    /// there is no room. Bytes, or with K, M, G (KiB, MiB, GiB).
    #[arg(long, value_name = "BYTES", default_value = "64M", value_parser = parse_bytes)]
    pub fetch_memory: u64,
    /// Search every infohash on to --peers-per-infohash peers, with BEP 33 scrapes (swarm
    /// size estimates), before fetching: about four times the `get_peers` of the default,
    /// which stops at the first peers and searches on only where the fetch fails.
    #[arg(long)]
    pub full_peer_searches: bool,
}

impl Default for FetchFlags {
    /// The flags' defaults.
    fn default() -> Self {
        FetchFlags {
            peers_per_infohash: 20,
            metadata_peer_attempts: 5,
            concurrency: 32,
            transport: TransportArg::Both,
            save_torrents: None,
            encryption: EncryptionArg::Prefer,
            fetch_memory: estudely_fetch::DEFAULT_FETCH_MEMORY,
            full_peer_searches: false,
        }
    }
}

impl FetchFlags {
    /// As the pipeline crate's options.
    pub fn options(&self) -> estudely_pipeline::FetchOptions {
        self.into()
    }

    /// Create the `--save-torrents` directory (a usage error naming it if it cannot be).
    pub fn prepare(&self) -> anyhow::Result<()> {
        self.options().prepare()
    }

    /// The pipeline's configuration, labelled `label`, with the default caps.
    pub fn pipeline(
        &self,
        label: &'static str,
        overall_timeout: Duration,
    ) -> estudely_pipeline::PipelineConfig {
        self.options().pipeline(label, overall_timeout)
    }
}

impl From<&FetchFlags> for estudely_pipeline::FetchOptions {
    fn from(f: &FetchFlags) -> Self {
        estudely_pipeline::FetchOptions {
            peers_per_infohash: f.peers_per_infohash as usize,
            metadata_peer_attempts: f.metadata_peer_attempts as usize,
            concurrency: f.concurrency as usize,
            transport: f.transport.into(),
            save_torrents: f.save_torrents.clone(),
            encryption: f.encryption.into(),
            fetch_memory: f.fetch_memory,
            full_peer_searches: f.full_peer_searches,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert_eq!(parse_bytes("64M"), Ok(64 << 20));
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("2g"), Ok(2 << 30));
        assert_eq!(parse_bytes("16 KiB"), Ok(16 << 10));
        for bad in ["", "M", "-1", "1.5M", "3T", "99999999999G"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        assert!(parse_bytes("0").unwrap_err().contains("more than 0"));
    }
}
