//! `estudely testnet`: a DHT of our own nodes on loopback with synthetic torrents (see
//! [`crate::testnet`]), to crawl and measure against.
//!
//! When the network is ready, the manifest is written and the first line on stdout is
//! `bootstrap IP:PORT` (node 0); a one-line description goes to stderr. It then runs for
//! `--seconds` (0 = until Ctrl-C or SIGTERM).
//!
//! With `--world N` it runs an endless world instead (see [`crate::testnet::world`]):
//! N procedural torrents that cost nothing until sampled, for long crawls and ingest
//! benchmarks.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::crawl::setup::StopOn;
use crate::resolve::UsageError;
use crate::testnet::world::{RunningWorld, StatusSnapshot, WorldConfig};
use crate::testnet::{seeder_addr, Testnet, TestnetConfig};
use serde::Serialize;

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

With --world N: an endless world of N procedural torrents (films, TV, music, books,
software, archives; 1 in 50 hostile), computed when touched. Node k stores torrents
j = k (mod nodes) and samples --samples of them per answer, in turn; get_peers returns a
sampled torrent's peers at the node that sampled it and at the 8 closest to it; --seeders
listeners on the /24 after the nodes' (port 6881) serve the info dict of any sampled torrent.
96 % can be fetched, 2 % have a dead peer, 2 % no peer. The nodes count etiquette
violations (samples inside the interval; datagrams beyond 25 in 10 s from one IP), written
with the rest of the counters to --status FILE every second and to stderr at the end.

Examples:
  estudely testnet
  estudely testnet --world 1000000 --status world.json
  estudely testnet --world 10000000 --nodes 5000 --interval 300 --seed 7
  estudely testnet --nodes 64 --torrents 500 --interval 30 --seconds 600
  estudely testnet --torrents 20 --no-metadata 4 --no-peers 4
  estudely testnet --base-ip 127.0.20 --port 6881 --manifest /tmp/testnet.json";

/// `estudely testnet ...`
#[derive(Debug, Args)]
pub struct TestnetArgs {
    /// Nodes to run, one per loopback address [default: 16, with --world 2000].
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=50_000))]
    pub nodes: Option<u32>,
    /// Run an endless world of N procedural torrents instead of announced ones (see below).
    #[arg(long, value_name = "N", conflicts_with_all = ["torrents", "no_metadata", "no_peers"],
          value_parser = clap::value_parser!(u64).range(1..=4_000_000_000))]
    pub world: Option<u64>,
    /// With --world: seeder listeners serving the world's metadata.
    #[arg(long, value_name = "N", default_value_t = 32, requires = "world",
          value_parser = clap::value_parser!(u32).range(1..=2_000))]
    pub seeders: u32,
    /// With --world: infohashes in each sample_infohashes answer.
    #[arg(long, value_name = "N", default_value_t = 20, requires = "world",
          value_parser = clap::value_parser!(u32).range(1..=60))]
    pub samples: u32,
    /// With --world: write the world's counters (sampled torrents, etiquette violations,
    /// ...) as JSON to this file every second.
    #[arg(long, value_name = "FILE", requires = "world")]
    pub status: Option<PathBuf>,
    /// With --world: append the infohash of every info dict the seeders serve to this file,
    /// a line each (for tests: was anything fetched twice?).
    #[arg(long, value_name = "FILE", requires = "world")]
    pub served_log: Option<PathBuf>,
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
    /// [default: 127.0.10; with --world 127.1.0, so that a world and a testnet started with
    /// their defaults do not collide]
    #[arg(long, value_name = "A.B.C", value_parser = parse_base_ip)]
    pub base_ip: Option<[u8; 3]>,
    /// UDP port of every node (0 = an ephemeral port each).
    #[arg(long, value_name = "P", default_value_t = 0)]
    pub port: u16,
    /// Where to write the JSON manifest (bootstrap, nodes, torrents and their peers).
    #[arg(long, value_name = "FILE", default_value = "testnet.json")]
    pub manifest: PathBuf,
    /// Seed of the nodes' random choices (ids, table fill order): the same seed and
    /// settings give the same network [default: random; with --world 1].
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
    run_with(args, std::io::stdout(), StopOn::Signals).await
}

/// [`run`] with the `bootstrap IP:PORT` line written to `out` instead of stdout, and
/// stopped by `stop` instead of Ctrl-C: for a program that runs a testnet in-process (the
/// Python package).
pub async fn run_with<W: Write>(args: TestnetArgs, out: W, stop: StopOn) -> anyhow::Result<()> {
    if !(args.seconds >= 0.0 && args.seconds <= 86_400.0 * 365.0) {
        let msg = format!("--seconds {} must be from 0 to a year", args.seconds);
        return Err(UsageError(msg).into());
    }
    // Checked before anything starts: the manifest must be writable.
    let manifest_file = File::create(&args.manifest).map_err(|e| {
        let path = args.manifest.display();
        UsageError(format!("cannot write manifest `{path}`: {e}"))
    })?;
    if let Some(n) = args.world {
        return run_world(args, n, manifest_file, out, stop).await;
    }
    if args.nodes.is_some_and(|n| n > 10_000) {
        return Err(UsageError("--nodes is at most 10000 without --world".into()).into());
    }
    let cfg = TestnetConfig {
        nodes: args.nodes.unwrap_or(16) as usize,
        torrents: args.torrents as usize,
        interval: args.interval,
        base_ip: args.base_ip.unwrap_or([127, 0, 10]),
        port: args.port,
        seed: args.seed,
        no_metadata: args.no_metadata as usize,
        no_peers: args.no_peers as usize,
    };
    let net = Testnet::start(cfg.clone()).await?;
    announce_ready(
        manifest_file,
        &args.manifest,
        net.manifest(),
        net.bootstrap(),
        out,
    )?;

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
            () = stop.fired() => {}
        }
    } else {
        stop.fired().await;
    }
    net.shutdown().await;
    Ok(())
}

/// Write `manifest` to its file, then the first line on stdout (`out`), `bootstrap ADDR`: a
/// reader of that line finds the manifest complete.
fn announce_ready(
    mut file: File,
    path: &std::path::Path,
    manifest: &impl Serialize,
    bootstrap: std::net::SocketAddr,
    mut out: impl Write,
) -> anyhow::Result<()> {
    file.write_all(serde_json::to_string_pretty(manifest)?.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.flush())
        .with_context(|| format!("cannot write manifest `{}`", path.display()))?;
    drop(file);
    writeln!(out, "bootstrap {bootstrap}")
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
}

/// `estudely testnet --world N`.
async fn run_world(
    args: TestnetArgs,
    n: u64,
    manifest_file: File,
    out: impl Write,
    stop: StopOn,
) -> anyhow::Result<()> {
    let cfg = WorldConfig {
        torrents: n,
        nodes: args.nodes.unwrap_or(2_000) as usize,
        seeders: args.seeders as usize,
        interval: args.interval,
        samples: args.samples as usize,
        base_ip: args.base_ip.unwrap_or([127, 1, 0]),
        port: args.port,
        seed: args.seed.unwrap_or(1),
    };
    let running = RunningWorld::start(cfg.clone()).await?;
    let world = running.world();
    if let Some(path) = &args.served_log {
        world.log_served(path)?;
    }
    let manifest = WorldManifest {
        bootstrap: running.bootstrap().to_string(),
        world: WorldSummary {
            torrents: n,
            seed: cfg.seed,
            nodes: cfg.nodes,
            first_node: world.node_addr(0).to_string(),
            last_node: world.node_addr(cfg.nodes - 1).to_string(),
            seeders: world.seeders().iter().map(ToString::to_string).collect(),
            samples: cfg.samples,
        },
        interval: cfg.interval,
    };
    announce_ready(
        manifest_file,
        &args.manifest,
        &manifest,
        running.bootstrap(),
        out,
    )?;
    eprintln!(
        "testnet: world of {n} torrents (seed {}), {} nodes {}..{}, {} seeders from {}, \
         interval {} s, {} samples per answer, manifest {}",
        cfg.seed,
        cfg.nodes,
        manifest.world.first_node,
        manifest.world.last_node,
        cfg.seeders,
        manifest.world.seeders.first().map_or("", String::as_str),
        cfg.interval,
        cfg.samples,
        args.manifest.display()
    );
    let status_loop = async {
        let Some(path) = &args.status else {
            return std::future::pending::<anyhow::Result<()>>().await;
        };
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            write_status(path, &world.status())?;
        }
    };
    let stop = async {
        if args.seconds > 0.0 {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs_f64(args.seconds)) => {}
                () = stop.fired() => {}
            }
        } else {
            stop.fired().await;
        }
    };
    tokio::select! {
        r = status_loop => r?,
        () = stop => {}
    }
    let status = world.status();
    if let Some(path) = &args.status {
        write_status(path, &status)?;
    }
    eprintln!(
        "testnet: world sampled {} torrents ({} fetchable), answered {} samples and {} get_peers \
         ({} with peers), served {} info dicts; etiquette: {} early samples, {} datagrams over \
         25 in 10 s",
        status.sampled,
        status.sampled_ok,
        status.samples,
        status.get_peers,
        status.get_peers_values,
        status.metadata_served,
        status.early_samples,
        status.over_budget
    );
    Ok(())
}

/// Write `status` to `path` whole: a reader never sees half a file.
fn write_status(path: &std::path::Path, status: &StatusSnapshot) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(status)?)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write status file `{}`", path.display()))
}

/// The manifest of a world (its torrents are not listed: see [`crate::testnet::world::index`]).
#[derive(Debug, Serialize)]
struct WorldManifest {
    bootstrap: String,
    world: WorldSummary,
    interval: u32,
}

#[derive(Debug, Serialize)]
struct WorldSummary {
    torrents: u64,
    seed: u64,
    nodes: usize,
    first_node: String,
    last_node: String,
    seeders: Vec<String>,
    samples: usize,
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
