//! `estudely metadata FILE`: fetch the metadata (BEP 9) of every infohash in a peers CSV
//! and print one row per torrent obtained, as each completes.
//!
//! Output is CSV `infohash,name,file_count,total_bytes,piece_length` (the contract of the
//! old `dht_fetch_metadata_batch.py`), or JSON lines with more fields. Warnings, progress
//! (a redrawn line on a terminal, else a plain line at most every 10 s) and the closing
//! summary line go to stderr. `--metrics ADDR` serves Prometheus metrics.
//!
//! A file is read whole, then fetched. `-` (stdin) is read as it comes, so that
//! `estudely crawl | estudely metadata -` fetches while the crawl runs: each infohash is
//! fetched about a second after its first row (see [`crate::fetch::stream`]) and printed
//! as soon as it is obtained, long before the input ends. Ctrl-C or SIGTERM stops either
//! with the summary of what was obtained (exit 0).

use crate::args::{EncryptionArg, TransportArg};
use std::fs;
use std::future::Future;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use estudely_dht_core::AddrPolicy;
use estudely_fetch::save_torrent;
use estudely_peer_wire::{Version, DEFAULT_MAX_METADATA_SIZE};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::args::{overall_limit, parse_bytes, parse_overall_timeout, parse_secs};
use crate::crawl::driver::sleep_until_opt as until;
use crate::crawl::setup::StopOn;
use crate::fetch::peers_csv::{self, Line, RowReader};
use crate::fetch::stream::{Grouper, GrouperConfig};
use crate::fetch::{self, FetchConfig, FetchStats, InfohashResult, Job};
use crate::output::csv_name;
use crate::resolve::UsageError;

/// Examples shown by `estudely metadata --help`.
pub const EXAMPLES: &str =
    "Input: CSV `infohash,peer_ip,peer_port` (header optional; IPv6 without brackets); `-`
reads stdin as the rows arrive, fetching each infohash about a second after its first row.
Output: CSV `infohash,name,file_count,total_bytes,piece_length`, one row per torrent
obtained; a summary line on stderr. In name, control characters and bytes that are not
UTF-8 are written \\xHH (\\uHHHH for U+0080-U+009F) and a backslash \\\\, so the raw
bytes can be restored.

Examples:
  estudely metadata peers.csv > metadata.csv
  estudely crawl ... | estudely metadata - --format jsonl
  estudely metadata peers.csv --concurrency 64 --save-torrents torrents/";

/// `estudely metadata ...`
#[derive(Debug, Args)]
pub struct MetadataArgs {
    /// Peers CSV as `estudely crawl` writes it; `-` reads stdin.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// How to print torrents.
    #[arg(long, value_enum, default_value_t = MetadataFormat::Csv)]
    pub format: MetadataFormat,
    /// Peers kept per infohash (the first distinct ones in the file).
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub peers_per_infohash: u32,
    /// Peers tried per infohash, in order, until one gives the metadata.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub metadata_peer_attempts: u32,
    /// Metadata fetches (connections) at once.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: u32,
    /// Stop after this many seconds, printing what was obtained (exit 0); 0 = no limit: until
    /// every infohash is done, or Ctrl-C.
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = parse_overall_timeout)]
    pub overall_timeout: Duration,
    /// Largest info dict accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_METADATA_SIZE, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_metadata_size: u64,
    /// Most metadata in flight, all fetches together: each reserves the size its peer
    /// announces before receiving it, and waits (then fails as `memory_budget`) when
    /// there is no room. Bytes, or with K, M, G (KiB, MiB, GiB).
    #[arg(long, value_name = "BYTES", default_value = "64M", value_parser = parse_bytes)]
    pub fetch_memory: u64,
    /// Write each verified torrent to DIR/<infohash>.torrent (created if missing).
    #[arg(long, value_name = "DIR")]
    pub save_torrents: Option<PathBuf>,
    /// Seconds allowed for each connect (TCP, uTP, or both).
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub connect_timeout: Duration,
    /// Transports to connect over: `both` tries TCP, and uTP (BEP 29) too when TCP is refused
    /// or has not connected within a second, using whichever connects first.
    #[arg(long, value_enum, default_value_t = TransportArg::Both)]
    pub transport: TransportArg,
    /// Seconds allowed, once connected, for the peer's handshakes.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub handshake_timeout: Duration,
    /// Seconds allowed for each next metadata piece.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub piece_timeout: Duration,
    /// Seconds allowed for one attempt at one peer, all steps included.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub attempt_timeout: Duration,
    /// Also connect to peers at private, loopback, link-local and CGNAT addresses (a lab
    /// network, a loopback testnet). Without it they are refused and counted as
    /// `address_refused`; multicast, broadcast, unspecified, documentation and reserved
    /// addresses and port 0 are always refused.
    #[arg(long)]
    pub allow_private: bool,
    /// Message Stream Encryption: `off` (plaintext only), `prefer` (plaintext, then once
    /// more encrypted if the peer closes at our handshake), `required` (encrypted, RC4 only).
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = EncryptionArg::Prefer)]
    pub encryption: EncryptionArg,
    /// Prometheus metrics.
    #[command(flatten)]
    pub metrics: crate::metrics::MetricsArgs,
}

/// Output formats of `estudely metadata`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetadataFormat {
    /// `infohash,name,file_count,total_bytes,piece_length` with a header (RFC 4180).
    Csv,
    /// One JSON object per torrent, with `name_hex`, `version`, `peer` and more.
    Jsonl,
}

/// One torrent as a JSON line.
#[derive(Debug, Serialize)]
struct JsonRow<'a> {
    infohash: String,
    /// The full SHA-256 infohash of a v2 or hybrid torrent.
    infohash_v2: Option<String>,
    name: String,
    name_hex: String,
    file_count: u64,
    total_bytes: u64,
    piece_length: u64,
    version: &'static str,
    metadata_size: usize,
    peer: String,
    client: Option<&'a str>,
    transport: &'static str,
    failed: Vec<JsonFailure>,
}

#[derive(Debug, Serialize)]
struct JsonFailure {
    peer: String,
    reason: &'static str,
    detail: String,
}

/// Rows read from stdin and not yet taken by the grouper (the reading thread waits when
/// this many are).
const ROWS_BUFFERED: usize = 1_024;

/// Run `estudely metadata ...`.
pub async fn run(args: MetadataArgs) -> anyhow::Result<()> {
    run_with(args, None, io::stdout(), StopOn::Signals).await
}

/// A peers CSV held in memory, read instead of `FILE` (an embedder's rows).
#[derive(Debug, Clone)]
pub struct PeersCsv {
    /// What warnings call it, in place of a file name.
    pub label: String,
    /// The CSV, as `estudely crawl` writes it.
    pub bytes: Vec<u8>,
}

/// [`run`] with the peers read from `input` (when given) instead of `FILE`, the rows written
/// to `out` instead of stdout, and stopped early by `stop` instead of Ctrl-C: for a program
/// that runs `metadata` in-process (the Python package).
pub async fn run_with<W: Write>(
    args: MetadataArgs,
    input: Option<PeersCsv>,
    out: W,
    stop: StopOn,
) -> anyhow::Result<()> {
    let per_infohash = args.peers_per_infohash as usize;
    // A file is read whole before anything is printed (a missing one is a usage error).
    let jobs = match input {
        Some(csv) => Some(read_peers(&csv.label, &csv.bytes, per_infohash)?),
        None if args.file == Path::new("-") => None,
        None => Some(read_file(&args.file, per_infohash)?),
    };
    if let Some(dir) = &args.save_torrents {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create --save-torrents {}", dir.display()))?;
    }
    let cfg = FetchConfig {
        connect_timeout: args.connect_timeout,
        handshake_timeout: args.handshake_timeout,
        piece_timeout: args.piece_timeout,
        attempt_timeout: args.attempt_timeout,
        max_metadata_size: args.max_metadata_size,
        concurrency: args.concurrency as usize,
        peer_attempts: args.metadata_peer_attempts as usize,
        overall_timeout: overall_limit(args.overall_timeout),
        addr_policy: AddrPolicy::with_private(args.allow_private),
        transport: args.transport.into(),
        encryption: args.encryption.into(),
        memory: fetch::MetadataBudget::new(args.fetch_memory),
        ..FetchConfig::default()
    };
    args.metrics.start()?;
    let mut out = Output {
        printer: Printer::new(args.format, out),
        printing: true,
        save_torrents: args.save_torrents.clone(),
        live: crate::progress::FetchProgress::new("metadata"),
        refused_private: 0,
    };
    out.header()?;
    let stop = stop.fired();
    tokio::pin!(stop);
    let stats = match jobs {
        Some(jobs) => whole(jobs, cfg, &mut out, stop).await?,
        None => {
            let grouping = GrouperConfig {
                peers_per_infohash: args.peers_per_infohash as usize,
                peer_attempts: args.metadata_peer_attempts as usize,
                ..GrouperConfig::default()
            };
            streamed(grouping, cfg, &mut out, stop).await?
        }
    };
    out.live.finish(&stats);
    eprintln!("metadata: {stats}");
    if let Some(hint) = private_hint(&stats, out.refused_private, args.allow_private) {
        eprintln!("metadata: {hint}");
    }
    Ok(())
}

/// The line that explains a run in which every attempt was refused for an address that
/// `--allow-private` would have let through (a peers CSV from a loopback testnet or a lab
/// network): without it the summary says only `0 ok, N address_refused`, which a new user
/// reads as "every peer failed". `None` when anything else happened, or with the flag.
fn private_hint(stats: &FetchStats, refused_private: u64, allow_private: bool) -> Option<String> {
    let attempts = stats.attempts();
    (!allow_private && attempts > 0 && refused_private == attempts).then(|| {
        format!(
            "every peer ({attempts}) is at a private, loopback, link-local or CGNAT address, \
             which is refused by default; add --allow-private to fetch from a lab network or \
             a loopback testnet"
        )
    })
}

/// The fetcher ends itself at its deadline; this long after it, we stop waiting for it.
const BACKSTOP: Duration = Duration::from_secs(5);

/// Fetch the jobs of a whole file, printing each torrent as it completes.
async fn whole<W: Write>(
    jobs: Vec<Job>,
    cfg: FetchConfig,
    out: &mut Output<W>,
    mut stop: Pin<&mut impl Future<Output = ()>>,
) -> anyhow::Result<FetchStats> {
    let backstop = cfg.overall_timeout.map(|d| Instant::now() + d + BACKSTOP);
    out.live.set_total(jobs.len());
    let mut batch = fetch::fetch_many(jobs, cfg);
    loop {
        let result = tokio::select! {
            r = batch.next() => r,
            () = until(backstop) => None,
            () = &mut stop => {
                eprintln!("metadata: interrupted");
                None
            }
        };
        let Some(result) = result else { break };
        out.result(&result)?;
    }
    Ok(batch.stats().clone())
}

/// Fetch as rows arrive on stdin (a crawl piped in): rows are grouped into jobs by a
/// [`Grouper`] and each torrent is printed as soon as it completes, while the input is
/// still open. Malformed rows are warned about with their line and skipped, as in a file.
async fn streamed<W: Write>(
    grouping: GrouperConfig,
    cfg: FetchConfig,
    out: &mut Output<W>,
    mut stop: Pin<&mut impl Future<Output = ()>>,
) -> anyhow::Result<FetchStats> {
    let deadline = cfg.overall_timeout.map(|d| Instant::now() + d);
    let backstop = deadline.map(|d| d + BACKSTOP);
    let (jobs, jobs_rx) = mpsc::channel(grouping.max_active);
    let mut groups = Grouper::new(grouping);
    let mut rows = read_stdin();
    let mut batch = fetch::fetch_stream(jobs_rx, cfg);
    let mut stats = FetchStats::default();
    let (mut reading, mut past_deadline) = (true, false);
    loop {
        crate::metrics::publish_fetch_backlog(groups.active());
        if !past_deadline {
            // Never full: the channel holds as many jobs as there can be active infohashes.
            while let Some(job) = groups.next_job(Instant::now()) {
                let _ = jobs.try_send(job);
            }
        }
        if !reading && groups.is_idle() {
            break;
        }
        let wake = groups.next_wake();
        tokio::select! {
            line = rows.recv(), if reading && !groups.is_full() => match line {
                Some(Ok(Line::Peer { info_hash, peer, .. })) => {
                    groups.row(Instant::now(), info_hash, peer);
                }
                Some(Ok(Line::Bad(bad) | Line::Unreadable(bad))) => {
                    eprintln!("warning: stdin: line {}: {}; skipped", bad.line, bad.reason);
                }
                Some(Err(e)) => return Err(anyhow::Error::new(e).context("reading stdin")),
                None => {
                    reading = false;
                    groups.close_input();
                }
            },
            r = batch.next() => {
                // None: the fetcher ended at its deadline.
                let Some(r) = r else { break };
                if let Some(done) = groups.result(Instant::now(), r) {
                    stats.record(&done);
                    out.result(&done)?;
                }
            }
            () = until(wake), if wake.is_some() && !past_deadline => {}
            () = until(deadline), if !past_deadline => {
                // The fetcher reports what it has, then ends; no more input is taken.
                (past_deadline, reading) = (true, false);
            }
            () = until(backstop) => break,
            () = &mut stop => {
                eprintln!("metadata: interrupted");
                break;
            }
        }
    }
    // Cut short (deadline, Ctrl-C): what is still active counts as not obtained.
    for r in groups.abandon() {
        stats.record(&r);
    }
    Ok(stats)
}

/// Read stdin's rows on a thread of its own (blocking reads), handing each over as soon
/// as its line is complete; the channel closes at the end of the input.
fn read_stdin() -> mpsc::Receiver<io::Result<Line>> {
    let (tx, rx) = mpsc::channel(ROWS_BUFFERED);
    std::thread::spawn(move || {
        let mut rows = RowReader::new(io::stdin().lock());
        while let Some(line) = rows.next_line().transpose() {
            let failed = line.is_err();
            if tx.blocking_send(line).is_err() || failed {
                return;
            }
        }
    });
    rx
}

/// The jobs of a whole peers CSV file, its malformed rows warned about with their line.
/// A missing or unreadable file is a usage error.
fn read_file(path: &Path, peers_per_infohash: usize) -> anyhow::Result<Vec<Job>> {
    let label = path.display().to_string();
    let bytes = fs::read(path).map_err(|e| UsageError(format!("cannot read `{label}`: {e}")))?;
    read_peers(&label, &bytes, peers_per_infohash)
}

/// The jobs of a whole peers CSV called `label`, its malformed rows warned about with their
/// line.
fn read_peers(label: &str, bytes: &[u8], peers_per_infohash: usize) -> anyhow::Result<Vec<Job>> {
    let input =
        peers_csv::read(bytes, peers_per_infohash).with_context(|| format!("reading {label}"))?;
    for bad in &input.bad {
        eprintln!(
            "warning: {label}: line {}: {}; skipped",
            bad.line, bad.reason
        );
    }
    Ok(input.jobs)
}

/// Where results go: rows on stdout (until its reader goes away), torrents to a directory.
struct Output<W: Write> {
    printer: Printer<W>,
    /// False once stdout's reader went away (`| head`): fetching goes on, quietly.
    printing: bool,
    save_torrents: Option<PathBuf>,
    live: crate::progress::FetchProgress,
    /// Attempts refused for an address that `--allow-private` lets through.
    refused_private: u64,
}

impl<W: Write> Output<W> {
    fn header(&mut self) -> anyhow::Result<()> {
        let printed = self.printer.header();
        self.printing = !is_broken_pipe(&printed);
        printed.or_else(ignore_broken_pipe)
    }

    /// A finished infohash: its torrent saved and its row printed, if it was obtained.
    fn result(&mut self, r: &InfohashResult) -> anyhow::Result<()> {
        self.live.record(r);
        let lab = AddrPolicy::with_private(true);
        self.refused_private += r
            .failed
            .iter()
            .filter(|a| a.failure.kind == fetch::FailureKind::AddressRefused)
            .filter(|a| lab.check(&a.peer).is_ok())
            .count() as u64;
        if let (Some(dir), Some(m)) = (&self.save_torrents, &r.metadata) {
            if let Err(e) = save_torrent(dir, &r.info_hash.to_hex(), &m.info) {
                eprintln!("warning: {e:#}");
            }
        }
        if self.printing {
            let printed = self.printer.row(r);
            self.printing = !is_broken_pipe(&printed);
            printed.or_else(ignore_broken_pipe)?;
        }
        Ok(())
    }
}

fn is_broken_pipe(r: &io::Result<()>) -> bool {
    matches!(r, Err(e) if e.kind() == io::ErrorKind::BrokenPipe)
}

/// Stop printing quietly when stdout's reader went away (`| head`).
fn ignore_broken_pipe(e: io::Error) -> anyhow::Result<()> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(anyhow::Error::new(e).context("writing to stdout"))
    }
}

/// One CSV record, built whole (quoted as RFC 4180 needs), with its line end.
fn csv_line<const N: usize>(fields: [&str; N]) -> io::Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.write_record(fields).map_err(io::Error::other)?;
    w.into_inner().map_err(|e| e.into_error())
}

/// Writes rows to stdout (`W`), each whole with one call and flushed.
struct Printer<W: Write> {
    format: MetadataFormat,
    out: W,
}

impl<W: Write> Printer<W> {
    fn new(format: MetadataFormat, out: W) -> Printer<W> {
        Printer { format, out }
    }

    fn write(&mut self, line: &[u8]) -> io::Result<()> {
        self.out.write_all(line)?;
        self.out.flush()
    }

    fn header(&mut self) -> io::Result<()> {
        if self.format == MetadataFormat::Csv {
            let line = csv_line([
                "infohash",
                "name",
                "file_count",
                "total_bytes",
                "piece_length",
            ])?;
            self.write(&line)?;
        }
        Ok(())
    }

    fn row(&mut self, r: &InfohashResult) -> io::Result<()> {
        let Some(m) = &r.metadata else { return Ok(()) };
        let s = &m.summary;
        let infohash = r.info_hash.to_hex();
        match self.format {
            MetadataFormat::Csv => {
                let line = csv_line([
                    &infohash,
                    &csv_name(&s.name),
                    &s.file_count.to_string(),
                    &s.total_bytes.to_string(),
                    &s.piece_length.to_string(),
                ])?;
                self.write(&line)
            }
            MetadataFormat::Jsonl => {
                let row = JsonRow {
                    infohash,
                    infohash_v2: m.info_hash_v2().map(hex::encode),
                    name: s.name_lossy(),
                    name_hex: hex::encode(&s.name),
                    file_count: s.file_count,
                    total_bytes: s.total_bytes,
                    piece_length: s.piece_length,
                    version: match s.version {
                        Version::V1 => "v1",
                        Version::V2 => "v2",
                        Version::Hybrid => "hybrid",
                    },
                    metadata_size: m.info.len(),
                    peer: m.peer.to_string(),
                    client: m.client.as_deref(),
                    transport: m.transport.as_str(),
                    failed: r
                        .failed
                        .iter()
                        .map(|a| JsonFailure {
                            peer: a.peer.to_string(),
                            reason: a.failure.kind.as_str(),
                            detail: a.failure.detail.clone(),
                        })
                        .collect(),
                };
                let mut line = serde_json::to_vec(&row).map_err(io::Error::other)?;
                line.push(b'\n');
                self.write(&line)
            }
        }
    }
}
