//! The command line, as clap derive types.
//!
//! Every subcommand is one variant of [`Command`] with its own `Args` struct; option groups
//! that several subcommands share ([`BootstrapArgs`], [`OutputArgs`]) are flattened into
//! them, so later subcommands (crawl, testnet, metadata, ...) slot in the same way.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use estudely_krpc::{InfoHash, NodeId, Want};

use crate::resolve::DEFAULT_ROUTERS;

/// Explore the BitTorrent Mainline DHT: sample infohashes (BEP 51), find their peers, fetch
/// their metadata (BEP 9); send single KRPC queries; run a full node or a loopback testnet.
#[derive(Debug, Parser)]
#[command(name = "estudely", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send one KRPC query to a node and print its reply.
    #[command(after_help = QUERY_EXAMPLES)]
    Query(QueryArgs),
    /// Run a full DHT node until Ctrl-C.
    #[command(after_help = NODE_EXAMPLES)]
    Node(NodeArgs),
    /// Fetch torrent metadata (BEP 9) from the peers in a peers CSV.
    #[command(after_help = crate::cmd::metadata::EXAMPLES)]
    Metadata(crate::cmd::metadata::MetadataArgs),
    /// Crawl the DHT: sample infohashes (BEP 51), find their peers, print and save them.
    #[command(after_help = crate::cmd::crawl::EXAMPLES)]
    Crawl(crate::cmd::crawl::CrawlArgs),
    /// Run a DHT of our own nodes on loopback, with synthetic torrents, to crawl.
    #[command(after_help = crate::cmd::testnet::EXAMPLES)]
    Testnet(crate::cmd::testnet::TestnetArgs),
    /// Crawl, find peers and fetch metadata in one run: the seed's one-shot CSV.
    #[command(after_help = crate::cmd::collect::EXAMPLES)]
    Collect(crate::cmd::collect::CollectArgs),
    /// Everything at once with no network: a loopback testnet with seeders, crawled by `collect`.
    #[command(after_help = crate::cmd::demo::EXAMPLES)]
    Demo(crate::cmd::demo::DemoArgs),
    /// Write the index as collect's CSV or as JSONL, oldest first.
    #[command(after_help = crate::cmd::export::EXAMPLES)]
    Export(crate::cmd::export::ExportArgs),
    /// Full-text search over the names and file paths in the index.
    #[command(after_help = crate::cmd::search::EXAMPLES)]
    Search(crate::cmd::search::SearchArgs),
    /// Count what the index holds, by version, source and day.
    #[command(after_help = crate::cmd::stats::EXAMPLES)]
    Stats(crate::cmd::stats::StatsArgs),
}

const QUERY_EXAMPLES: &str = "Examples:
  estudely query ping router.bittorrent.com:6881
  estudely query find-node 127.0.0.1:6881 --want both
  estudely query get-peers 127.0.0.1:6881 0123456789abcdef0123456789abcdef01234567
  estudely query announce 127.0.0.1:6881 0123456789abcdef0123456789abcdef01234567 --port 51413
  estudely query sample 127.0.0.1:6881 --format jsonl";

const NODE_EXAMPLES: &str =
    "The first line on stdout is `listening ADDR [ADDR6] id HEX`; the log goes to stderr
(RUST_LOG=debug for more).

Examples:
  estudely node --bind 0.0.0.0:6881 --bind [::]:6881
  estudely node --bind 127.0.0.1:7000 --no-bootstrap
  estudely node --bind 127.0.0.1:0 --bootstrap 127.0.0.1:7000";

impl Command {
    /// The log filter used when `RUST_LOG` is not set.
    pub fn default_log_filter(&self) -> &'static str {
        match self {
            Command::Query(_) => "warn",
            Command::Node(_) => "info",
            Command::Metadata(_) => "warn",
            Command::Export(_) | Command::Search(_) | Command::Stats(_) => "warn",
            Command::Crawl(_) | Command::Testnet(_) | Command::Collect(_) | Command::Demo(_) => {
                "warn"
            }
        }
    }
}

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
pub fn overall_limit(timeout: Duration) -> Option<Duration> {
    (!timeout.is_zero()).then_some(timeout)
}

/// 40 hex digits as a node id.
pub fn parse_node_id(s: &str) -> Result<NodeId, String> {
    NodeId::from_hex(s).ok_or_else(|| format!("`{s}` is not 40 hex digits"))
}

/// 40 hex digits (or a magnet link's `btih`) as an infohash.
pub fn parse_info_hash(s: &str) -> Result<InfoHash, String> {
    let hex = s
        .strip_prefix("magnet:?")
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("xt=urn:btih:")))
        .unwrap_or(s);
    InfoHash::from_hex(hex).ok_or_else(|| format!("`{s}` is not a 40-hex-digit infohash"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = Cli::parse_from([
            "estudely",
            "query",
            "ping",
            "1.2.3.4:5",
            "--timeout",
            "0.5",
            "--format",
            "jsonl",
        ]);
        let Command::Query(q) = cli.command else {
            panic!()
        };
        assert_eq!(q.timeout, Duration::from_millis(500));
        assert_eq!(q.output.format, Format::Jsonl);
        let cli = Cli::parse_from(["estudely", "query", "--want", "both", "ping", "x:1"]);
        let Command::Query(q) = cli.command else {
            panic!()
        };
        assert_eq!(
            q.want.map(WantArg::to_want),
            Some(Want { v4: true, v6: true })
        );
    }

    #[test]
    fn node_defaults_and_conflicts() {
        let cli = Cli::parse_from(["estudely", "node"]);
        let Command::Node(n) = cli.command else {
            panic!()
        };
        assert_eq!(n.bind, vec!["0.0.0.0:6881".parse::<SocketAddr>().unwrap()]);
        assert_eq!(n.bootstrap.nodes.len(), 3);
        assert!(Cli::try_parse_from(["estudely", "node", "--no-bootstrap"]).is_ok());
        let both = [
            "estudely",
            "node",
            "--no-bootstrap",
            "--bootstrap",
            "1.2.3.4:5",
        ];
        assert!(Cli::try_parse_from(both).is_err());
    }

    #[test]
    fn ids() {
        let hex = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(parse_info_hash(hex).unwrap().to_hex(), hex);
        let magnet = format!("magnet:?dn=x&xt=urn:btih:{hex}&tr=y");
        assert_eq!(parse_info_hash(&magnet).unwrap().to_hex(), hex);
        assert!(parse_node_id("abc").is_err());
        assert!(parse_secs("0").is_err() && parse_secs("nan").is_err());
    }

    #[test]
    fn overall_timeout_zero_is_no_limit() {
        for zero in ["0", "0.0", "-0"] {
            assert_eq!(parse_overall_timeout(zero), Ok(Duration::ZERO), "{zero}");
        }
        assert_eq!(overall_limit(Duration::ZERO), None);
        let t = parse_overall_timeout("1.5").unwrap();
        assert_eq!(overall_limit(t), Some(Duration::from_millis(1500)));
        for bad in ["-1", "nan", "x", "86401"] {
            let e = parse_overall_timeout(bad).unwrap_err();
            assert!(e.ends_with("or 0 for no limit"), "{bad}: {e}");
        }
        for cmd in ["crawl", "collect", "metadata"] {
            let mut argv = vec!["estudely", cmd];
            if cmd == "metadata" {
                argv.push("-");
            }
            argv.extend(["--overall-timeout", "0"]);
            let timeout = match Cli::parse_from(argv).command {
                Command::Crawl(a) => a.overall_timeout,
                Command::Collect(a) => a.overall_timeout,
                Command::Metadata(a) => a.overall_timeout,
                _ => unreachable!(),
            };
            assert_eq!(overall_limit(timeout), None, "{cmd}");
        }
    }
}
