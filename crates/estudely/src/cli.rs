//! The command line, as clap derive types: every subcommand is one variant of [`Command`]
//! with its own `Args` struct, defined by its module in `cmd/` (or, for the first ones, in
//! [`crate::args`]). This module only assembles them; nothing in `cmd/` imports it.

use clap::{Parser, Subcommand};

pub use crate::args::*;

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
// Parsed once per process: a large variant (`run`'s many flags) costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
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
    /// Crawl until Ctrl-C and build a torrent index (SQLite, or PostgreSQL shared by crawlers).
    #[command(after_help = crate::cmd::run::EXAMPLES)]
    Run(crate::cmd::run::RunArgs),
    /// Write the index as collect's CSV or as JSONL, oldest first.
    #[command(after_help = crate::cmd::export::EXAMPLES)]
    Export(crate::cmd::export::ExportArgs),
    /// Full-text search over the names and file paths in the index.
    #[command(after_help = crate::cmd::search::EXAMPLES)]
    Search(crate::cmd::search::SearchArgs),
    /// File every torrent of an index under a category again (after new rules, or for an
    /// index built before classification).
    #[command(after_help = crate::cmd::reclassify::EXAMPLES)]
    Reclassify(crate::cmd::reclassify::ReclassifyArgs),
    /// Delete torrents by age, category, name or size, or down to a cap, and never fetch
    /// them again.
    #[command(after_help = crate::cmd::prune::EXAMPLES)]
    Prune(crate::cmd::prune::PruneArgs),
    /// Count what the index holds, by version, source and day.
    #[command(after_help = crate::cmd::stats::EXAMPLES)]
    Stats(crate::cmd::stats::StatsArgs),
    /// A web UI and JSON API over the index: search, torrent pages, charts.
    #[command(after_help = crate::cmd::serve::EXAMPLES)]
    Serve(crate::cmd::serve::ServeArgs),
    /// Write one self-contained HTML report (charts and tables) of an index or an output file.
    #[command(after_help = crate::cmd::report::EXAMPLES)]
    Report(crate::cmd::report::ReportArgs),
    /// Crawl a simulated 10-million-node DHT in virtual time: coverage, queries, memory.
    #[command(after_help = crate::cmd::simulate::EXAMPLES)]
    Simulate(crate::cmd::simulate::SimulateArgs),
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
            Command::Crawl(_)
            | Command::Testnet(_)
            | Command::Collect(_)
            | Command::Demo(_)
            | Command::Run(_)
            | Command::Export(_)
            | Command::Search(_)
            | Command::Reclassify(_)
            | Command::Prune(_)
            | Command::Stats(_)
            | Command::Report(_)
            | Command::Simulate(_) => "warn",
            Command::Serve(_) => "info",
        }
    }
}

impl Command {
    /// Run one subcommand to completion.
    pub async fn run(self) -> anyhow::Result<()> {
        use crate::cmd::*;
        match self {
            Command::Query(args) => query::run(args).await,
            Command::Node(args) => node::run(args).await,
            Command::Metadata(args) => metadata::run(args).await,
            Command::Crawl(args) => crawl::run(args).await,
            Command::Testnet(args) => testnet::run(args).await,
            Command::Collect(args) => collect::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Run(args) => run::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            // The index clients' calls block (SQLite's, and the PostgreSQL store's blocking face): off the runtime.
            Command::Export(args) => blocking(move || export::run(args)).await,
            Command::Search(args) => blocking(move || search::run(args)).await,
            Command::Reclassify(args) => blocking(move || reclassify::run(args)).await,
            Command::Prune(args) => blocking(move || prune::run(args)).await,
            Command::Stats(args) => blocking(move || stats::run(args)).await,
            Command::Report(args) => blocking(move || report::run(args)).await,
            Command::Simulate(args) => blocking(move || simulate::run(args)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;
    use clap::CommandFactory;
    use estudely_krpc::Want;

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
        let v2 = "ab".repeat(32);
        assert_eq!(parse_info_hash(&v2).unwrap().to_hex(), "ab".repeat(20));
        let btmh = format!("magnet:?xt=urn:btmh:1220{v2}&dn=x");
        assert_eq!(parse_info_hash(&btmh).unwrap().to_hex(), "ab".repeat(20));
        let both = format!("magnet:?xt=urn:btmh:1220{v2}&xt=urn:btih:{hex}");
        assert_eq!(parse_info_hash(&both).unwrap().to_hex(), hex, "btih first");
        for bad in [
            "ab".repeat(21),
            format!("{}zz", "ab".repeat(31)),
            format!("magnet:?xt=urn:btmh:1114{v2}"),
            "magnet:?dn=x".to_owned(),
        ] {
            assert!(parse_info_hash(&bad).is_err(), "{bad}");
        }
        assert!(parse_node_id("abc").is_err());
        assert!(parse_secs("0").is_err() && parse_secs("nan").is_err());
    }

    #[test]
    fn shard_defaults_to_the_whole_keyspace() {
        use estudely_dht_core::crawl::Shard;
        for cmd in ["crawl", "collect", "run"] {
            for (extra, want) in [
                (None, Shard::all()),
                (Some("2/4"), Shard::new(1, 4).unwrap()),
            ] {
                let mut argv = vec!["estudely", cmd];
                if let Some(s) = extra {
                    argv.extend(["--shard", s]);
                }
                let shard = match Cli::parse_from(argv).command {
                    Command::Crawl(a) => a.shard.shard,
                    Command::Collect(a) => a.shard.shard,
                    Command::Run(a) => a.shard.shard,
                    _ => unreachable!(),
                };
                assert_eq!(shard, want, "{cmd} {extra:?}");
            }
        }
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
