//! `estudely testnet`: a DHT of our own nodes on loopback with synthetic torrents (see
//! [`crate::testnet`]), to crawl and measure against.
//!
//! When the network is ready, the manifest is written and the first line on stdout is
//! `bootstrap IP:PORT` (node 0); a one-line description goes to stderr. It then runs for
//! `--seconds` (0 = until Ctrl-C or SIGTERM).

use std::fs::File;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::crawl::setup::interrupted;
use crate::resolve::UsageError;
use crate::testnet::{seeder_addr, Testnet, TestnetConfig};

/// `estudely testnet --help` epilogue.
pub const EXAMPLES: &str =
    "When ready, the manifest is written and the first line on stdout is `bootstrap IP:PORT`.
Torrent t is announced for the synthetic seeder <next /24>.(t%250+1):(6881+t), which serves
its metadata. Every fifth torrent from t=5 on has a hostile name (comma, quote, newline,
control characters, backslash, invalid UTF-8); the manifest has each name's exact bytes as
`name_hex`, and each torrent's `kind`:
  ok           announced for its seeder, which serves its metadata
  no_metadata  (--no-metadata N, after the T ok ones) announced for a seeder address where
               nothing serves its metadata: no listener (1st, 3rd, ...) or another info dict
               (2nd, 4th, ...)
  no_peers     (--no-peers N, after those) stored and sampled by the nodes closest to it with
               one IPv6 peer ([::1]), which get_peers over IPv4 never returns

Examples:
  estudely testnet
  estudely testnet --nodes 64 --torrents 500 --interval 30 --seconds 600
  estudely testnet --torrents 20 --no-metadata 4 --no-peers 4
  estudely testnet --base-ip 127.0.20 --port 6881 --manifest /tmp/testnet.json";

/// `estudely testnet ...`
#[derive(Debug, Args)]
pub struct TestnetArgs {
    /// Nodes to run, one per loopback address.
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub nodes: u32,
    /// Synthetic torrents to announce, each served by its seeder (kind `ok`).
    #[arg(long, value_name = "T", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(0..=50_000))]
    pub torrents: u32,
    /// More torrents, announced for a peer that does not serve their metadata (kind
    /// `no_metadata`).
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=50_000))]
    pub no_metadata: u32,
    /// More infohashes, stored and sampled by the nodes but with no peer that get_peers
    /// returns (kind `no_peers`).
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub no_peers: u32,
    /// BEP 51 `interval` the nodes advertise, seconds.
    #[arg(long, value_name = "S", default_value_t = 60)]
    pub interval: u32,
    /// Seconds to run once ready (0 = until Ctrl-C).
    #[arg(long, value_name = "X", default_value_t = 0.0)]
    pub seconds: f64,
    /// First three octets of the nodes' addresses: node i gets <BASE>.(i+1).
    #[arg(long, value_name = "A.B.C", default_value = "127.0.10", value_parser = parse_base_ip)]
    pub base_ip: [u8; 3],
    /// UDP port of every node (0 = an ephemeral port each).
    #[arg(long, value_name = "P", default_value_t = 0)]
    pub port: u16,
    /// Where to write the JSON manifest (bootstrap, nodes, torrents and their peers).
    #[arg(long, value_name = "FILE", default_value = "testnet.json")]
    pub manifest: PathBuf,
    /// Seed of the nodes' random choices (ids, table fill order): the same seed and
    /// settings give the same network [default: random].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

/// `A.B.C` (three octets, inside 127/8).
pub fn parse_base_ip(s: &str) -> Result<[u8; 3], String> {
    let bad = || format!("`{s}` is not three octets inside 127/8, like 127.0.10");
    let parts: Vec<u8> = s
        .split('.')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    match parts[..] {
        [127, b, c] => Ok([127, b, c]),
        _ => Err(bad()),
    }
}

/// Run `estudely testnet ...`.
pub async fn run(args: TestnetArgs) -> anyhow::Result<()> {
    if !(args.seconds >= 0.0 && args.seconds <= 86_400.0 * 365.0) {
        let msg = format!("--seconds {} must be from 0 to a year", args.seconds);
        return Err(UsageError(msg).into());
    }
    // Checked before anything starts: the manifest must be writable.
    let mut manifest_file = File::create(&args.manifest).map_err(|e| {
        let path = args.manifest.display();
        UsageError(format!("cannot write manifest `{path}`: {e}"))
    })?;
    let cfg = TestnetConfig {
        nodes: args.nodes as usize,
        torrents: args.torrents as usize,
        interval: args.interval,
        base_ip: args.base_ip,
        port: args.port,
        seed: args.seed,
        no_metadata: args.no_metadata as usize,
        no_peers: args.no_peers as usize,
    };
    let net = Testnet::start(cfg.clone()).await?;
    let manifest = serde_json::to_string_pretty(net.manifest())?;
    manifest_file
        .write_all(manifest.as_bytes())
        .and_then(|()| manifest_file.write_all(b"\n"))
        .and_then(|()| manifest_file.flush())
        .with_context(|| format!("cannot write manifest `{}`", args.manifest.display()))?;
    drop(manifest_file);

    let mut out = std::io::stdout().lock();
    writeln!(out, "bootstrap {}", net.bootstrap())
        .and_then(|()| out.flush())
        .context("cannot write to stdout")?;
    drop(out);
    let nodes = net.nodes();
    let last = nodes.last().map(|n| n.local_addrs()[0].ip().to_string());
    let seeders = seeder_addr(cfg.base_ip, cfg.nodes, 0).map(|a| a.ip().to_string());
    let extra = if cfg.no_metadata + cfg.no_peers > 0 {
        format!(
            " + {} without metadata + {} without peers",
            cfg.no_metadata, cfg.no_peers
        )
    } else {
        String::new()
    };
    eprintln!(
        "testnet: {} nodes {}..{}, {} torrents{extra} (seeders from {}), interval {} s, manifest {}",
        nodes.len(),
        net.bootstrap(),
        last.unwrap_or_default(),
        cfg.torrents,
        seeders.unwrap_or_default(),
        cfg.interval,
        args.manifest.display()
    );

    if args.seconds > 0.0 {
        let run_for = Duration::from_secs_f64(args.seconds);
        tokio::select! {
            () = tokio::time::sleep(run_for) => {}
            () = interrupted() => {}
        }
    } else {
        interrupted().await;
    }
    net.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_ip() {
        assert_eq!(parse_base_ip("127.0.10"), Ok([127, 0, 10]));
        for bad in ["10.0.0", "127.0", "127.0.0.1", "127.0.x", "127.0.256"] {
            assert!(parse_base_ip(bad).is_err(), "{bad}");
        }
    }
}
