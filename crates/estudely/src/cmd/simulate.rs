//! `estudely simulate`: our crawler against a procedural model of the whole Mainline DHT
//! (see [`estudely_dht_core::procnet`]), on a virtual clock: coverage over virtual time,
//! queries sent, memory and wall time. Same seed, same figures (but memory and wall time).

use std::io;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use estudely_dht_core::procnet::{Checkpoint, ProcConfig, SimConfig, Simulation, MAX_NODES};

use crate::report::format::thousands;

/// `estudely simulate --help` epilogue.
pub const EXAMPLES: &str =
    "The network exists only where the crawler touches it: a node's id, address, sessions,
BEP 51 support, interval, round trip and stored infohashes are derived from the seed, and
every answer is computed when asked. Defaults model the real DHT as measured (about 10
million nodes at once, 6-hour intervals, 20 samples a reply; half the nodes speak BEP 51,
30 % sit behind NATs, 2 % loss each way). Nothing is sent on any network.
Every line but the memory and wall time is the same for the same flags and seed.

Columns: virtual hours, queries sent, samples sent and answered, infohashes found, their
share of all the network's infohashes, nodes the crawlers remember in full and put to
rest, resident memory (MB) and wall seconds.

Examples:
  estudely simulate
  estudely simulate --nodes 10000000 --rate 1000 --hours 6 --seed 1
  estudely simulate --rate 1000 --hours 6 --shards 4
  estudely simulate --nodes 1000000 --rate 250 --hours 2 --every 10 --format csv > cover.csv";

/// Output format of the coverage table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimFormat {
    /// Aligned columns for people.
    Table,
    /// CSV with a header, for pandas and spreadsheets.
    Csv,
}

/// `estudely simulate ...`
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Nodes in the network (at most 268,435,456).
    #[arg(long, value_name = "N", default_value_t = 10_000_000,
          value_parser = clap::value_parser!(u32).range(1_000..=i64::from(MAX_NODES)))]
    pub nodes: u32,
    /// Distinct infohashes stored in the network [default: twice --nodes].
    #[arg(long, value_name = "M",
          value_parser = clap::value_parser!(u64).range(1..=u64::from(u32::MAX)))]
    pub infohashes: Option<u64>,
    /// Queries per second of each crawler (its global rate limit).
    #[arg(long, value_name = "Q", default_value_t = 1_000.0, value_parser = positive_rate)]
    pub rate: f64,
    /// Virtual hours to crawl.
    #[arg(long, value_name = "H", default_value_t = 6.0, value_parser = hours)]
    pub hours: f64,
    /// Everything in the network and the crawlers derives from it.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Crawlers splitting the keyspace (`--shard K/N` each), each at --rate from its own IP.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub shards: u32,
    /// Virtual minutes between lines.
    #[arg(long, value_name = "MIN", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=1_440))]
    pub every: u64,
    /// Share of nodes that speak BEP 51.
    #[arg(long, value_name = "F", default_value_t = 0.5, value_parser = share)]
    pub bep51_share: f64,
    /// Share of nodes that never answer (behind a NAT).
    #[arg(long, value_name = "F", default_value_t = 0.3, value_parser = share)]
    pub nat_share: f64,
    /// Probability that a datagram is lost, each way.
    #[arg(long, value_name = "F", default_value_t = 0.02, value_parser = share)]
    pub loss: f64,
    /// Nodes each crawler remembers in full; past half of it, nodes that answered with a
    /// long interval rest in a fixed-memory filter (as in `run`).
    #[arg(long, value_name = "N", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(100..=100_000_000))]
    pub max_known_nodes: u64,
    /// Also count samples the crawlers send inside a node's interval (should be 0); costs 4
    /// bytes per node and crawler.
    #[arg(long)]
    pub check_etiquette: bool,
    /// Also search the peers of each new infohash with `get_peers`, as `run` and `collect`
    /// do before fetching metadata (half of --rate searches at once, 16 to 8,192, up to 8
    /// queries each, stopping at the first peer; a modelled fetch tries up to 5 of the
    /// peers, and a failed one continues its search once); the default samples only.
    #[arg(long)]
    pub search_peers: bool,
    /// With --search-peers: search every infohash on to 20 peers, as `crawl` does (and the
    /// pipelines did before they stopped at the first peer), never continued.
    #[arg(long, requires = "search_peers")]
    pub full_searches: bool,
    /// Share of peers that serve the metadata of their torrent, in the modelled fetches of
    /// --search-peers (a guess: the model has no peer wire).
    #[arg(long, value_name = "F", default_value_t = 0.5, value_parser = share)]
    pub serve_share: f64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SimFormat::Table)]
    pub format: SimFormat,
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (1.0..=1_000_000.0).contains(&r) => Ok(r),
        _ => Err(format!(
            "`{s}` is not a rate: expected 1 to 1000000 queries per second"
        )),
    }
}

fn hours(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(h) if h.is_finite() && h > 0.0 && h <= 24.0 * 30.0 => Ok(h),
        _ => Err(format!(
            "`{s}` is not a duration: expected hours, above 0, at most 720"
        )),
    }
}

fn share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!(
            "`{s}` is not a share: expected a number from 0 to 1"
        )),
    }
}

/// Resident and peak resident memory of this process, in MB (0 where /proc is missing).
fn memory_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// Run `estudely simulate ...`.
pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    run_with(args, io::stdout().lock())
}

/// [`run`] with the table and its summary lines written to `out` instead of stdout (for a
/// program that runs `simulate` in-process, the Python package). Each row is written whole,
/// with one `write_all`, as its checkpoint is reached.
pub fn run_with(args: SimulateArgs, out: impl io::Write) -> anyhow::Result<()> {
    run_until_stopped(args, out, || false)
}

/// [`run_with`], ending early once `stopped` returns true (asked before every step of the
/// virtual clock, from the simulation's thread): the row of where it stopped is written,
/// then `# stopped at H of N virtual hours`, and no summary.
pub fn run_until_stopped(
    args: SimulateArgs,
    mut out: impl io::Write,
    stopped: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let net = ProcConfig {
        seed: args.seed,
        nodes: args.nodes,
        infohashes: args.infohashes.unwrap_or(2 * u64::from(args.nodes)),
        bep51_share: args.bep51_share,
        nat_share: args.nat_share,
        online_share: ProcConfig::default().online_share,
        loss: args.loss,
        serve_share: args.serve_share,
    };
    let mut cfg = SimConfig::new(net, args.rate, args.shards);
    cfg.max_known_nodes = args.max_known_nodes as usize;
    cfg.check_etiquette = args.check_etiquette;
    cfg.search_peers = args.search_peers;
    cfg.full_searches = args.full_searches;
    let wall = Instant::now();
    let mut sim = Simulation::new(&cfg);
    let total = sim.net().config().infohashes;
    writeln!(
        out,
        "# simulate: {} nodes, {} infohashes, seed {}; {} crawler{} at {} queries/s each{}",
        thousands(u64::from(sim.net().config().nodes)),
        thousands(total),
        args.seed,
        args.shards,
        if args.shards == 1 { "" } else { "s" },
        args.rate,
        if args.shards == 1 {
            String::new()
        } else {
            format!(", keyspace split in {}", args.shards)
        },
    )?;
    let header: [&str; 10] = match args.format {
        SimFormat::Table => [
            "hours", "queries", "samples", "answered", "found", "cover%", "known", "rested",
            "rss_mb", "wall_s",
        ],
        SimFormat::Csv => [
            "hours",
            "queries",
            "samples_sent",
            "samples_answered",
            "found",
            "coverage_pct",
            "nodes_known",
            "nodes_rested",
            "rss_mb",
            "wall_s",
        ],
    };
    write_row(&mut out, args.format, &header.map(String::from))?;
    // Two decimals for people, three in CSV.
    let digits = if args.format == SimFormat::Csv { 3 } else { 2 };
    let mut failed: Option<io::Error> = None;
    let mut peak_known = 0;
    let mut line = |c: &Checkpoint| {
        let (rss, _) = memory_mb();
        peak_known = peak_known.max(c.nodes_known);
        let cells = [
            format!("{:.digits$}", c.at.as_secs_f64() / 3_600.0),
            c.queries.to_string(),
            c.samples_sent.to_string(),
            c.samples_answered.to_string(),
            c.found.to_string(),
            format!("{:.digits$}", pct(c.found, total)),
            c.nodes_known.to_string(),
            c.nodes_rested.to_string(),
            format!("{rss:.0}"),
            format!("{:.1}", wall.elapsed().as_secs_f64()),
        ];
        if let Err(e) = write_row(&mut out, args.format, &cells) {
            failed.get_or_insert(e);
        }
    };
    let until = Duration::from_secs_f64(args.hours * 3_600.0);
    let every = Duration::from_secs(args.every * 60);
    let stopped = sim.run_until_stopped(until, every, &mut line, stopped);
    if let Some(e) = failed {
        return Err(e.into());
    }
    if stopped {
        let at = sim.elapsed().as_secs_f64() / 3_600.0;
        writeln!(out, "# stopped at {at:.3} of {} virtual hours", args.hours)?;
        return Ok(());
    }
    let end = sim.checkpoint();
    let elapsed = wall.elapsed().as_secs_f64();
    let samplable = sim.net().samplable();
    let (_, peak) = memory_mb();
    if args.search_peers {
        writeln!(
            out,
            "# peer searches: {} get_peers sent ({:.2} per infohash found), {} (infohash, peer) pairs found, {} searches ended, {} continued after a failed fetch; {} torrents fetched (modelled: {} of peers serve metadata)",
            thousands(end.get_peers_sent),
            end.get_peers_sent as f64 / end.found.max(1) as f64,
            thousands(end.peers),
            thousands(end.searches_done),
            thousands(end.resumed),
            thousands(end.fetched),
            args.serve_share,
        )?;
    }
    let etiquette = if args.check_etiquette {
        format!("{} samples inside a node's interval", end.net.early_samples)
    } else {
        "not checked (--check-etiquette)".to_string()
    };
    writeln!(
        out,
        "# found {} of {} infohashes ({:.2} %); {} ({:.2} %) are stored by a reachable BEP 51 node, the most sampling can find: {:.2} % of those",
        thousands(end.found),
        thousands(total),
        pct(end.found, total),
        thousands(samplable),
        pct(samplable, total),
        pct(end.found, samplable),
    )?;
    writeln!(
        out,
        "# {} queries ({:.0}/s of virtual time), {} samples, {} answered; the network answered {}, lost {}, {} went unanswered; etiquette: {etiquette}",
        thousands(end.queries),
        end.queries as f64 / until.as_secs_f64(),
        thousands(end.samples_sent),
        thousands(end.samples_answered),
        thousands(end.net.replies),
        thousands(end.net.lost),
        thousands(end.net.unanswered),
    )?;
    writeln!(
        out,
        "# memory: peak RSS {peak:.0} MB (crawlers: at most {} nodes in full, {} in fixed filters); wall time {elapsed:.1} s, {:.0}x real time",
        thousands(peak_known as u64),
        human_mb(end.filter_bytes),
        until.as_secs_f64() / elapsed.max(1e-9),
    )?;
    Ok(())
}

/// Column widths of the table, right-aligned.
const WIDTHS: [usize; 10] = [7, 12, 11, 11, 11, 8, 8, 9, 7, 7];

/// One line of the coverage table: aligned columns, or CSV.
fn write_row(out: &mut impl io::Write, format: SimFormat, cells: &[String; 10]) -> io::Result<()> {
    let line = match format {
        SimFormat::Table => cells
            .iter()
            .zip(WIDTHS)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect::<Vec<_>>()
            .join(" "),
        SimFormat::Csv => cells.join(","),
    };
    out.write_all(format!("{line}\n").as_bytes())
}

fn human_mb(bytes: usize) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
