//! `estudely metadata FILE`: fetch the metadata (BEP 9) of every infohash in a peers CSV
//! and print one row per torrent obtained, as each completes.
//!
//! Output is CSV `infohash,name,file_count,total_bytes,piece_length` (the contract of the
//! old `dht_fetch_metadata_batch.py`), or JSON lines with more fields. Warnings and the
//! closing summary line go to stderr.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use estudely_peer_wire::{torrent_file_bytes, Version, DEFAULT_MAX_METADATA_SIZE};
use serde::Serialize;

use crate::cli::{overall_limit, parse_overall_timeout, parse_secs};
use crate::fetch::{self, peers_csv, FetchConfig, InfohashResult};
use crate::output::csv_name;
use crate::resolve::UsageError;

/// Examples shown by `estudely metadata --help`.
pub const EXAMPLES: &str =
    "Input: CSV `infohash,peer_ip,peer_port` (header optional; IPv6 without brackets).
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
    /// Infohashes fetched at once.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: u32,
    /// Stop after this many seconds, printing what was obtained (exit 0); 0 = no limit: until
    /// every infohash is done, or Ctrl-C.
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = parse_overall_timeout)]
    pub overall_timeout: Duration,
    /// Largest info dict accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_METADATA_SIZE, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_metadata_size: u64,
    /// Write each verified torrent to DIR/<infohash>.torrent (created if missing).
    #[arg(long, value_name = "DIR")]
    pub save_torrents: Option<PathBuf>,
    /// Seconds allowed for each TCP connect.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub connect_timeout: Duration,
    /// Seconds allowed, once connected, for the peer's handshakes.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub handshake_timeout: Duration,
    /// Seconds allowed for each next metadata piece.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub piece_timeout: Duration,
    /// Seconds allowed for one attempt at one peer, all steps included.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub attempt_timeout: Duration,
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
    name: String,
    name_hex: String,
    file_count: u64,
    total_bytes: u64,
    piece_length: u64,
    version: &'static str,
    metadata_size: usize,
    peer: String,
    client: Option<&'a str>,
    failed: Vec<JsonFailure>,
}

#[derive(Debug, Serialize)]
struct JsonFailure {
    peer: String,
    reason: &'static str,
    detail: String,
}

/// Run `estudely metadata ...`.
pub async fn run(args: MetadataArgs) -> anyhow::Result<()> {
    let (label, bytes) = read_input(&args.file)?;
    let input = peers_csv::read(&bytes[..], args.peers_per_infohash as usize)
        .with_context(|| format!("reading {label}"))?;
    drop(bytes);
    for bad in &input.bad {
        eprintln!(
            "warning: {label}: line {}: {}; skipped",
            bad.line, bad.reason
        );
    }
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
        ..FetchConfig::default()
    };
    let mut out = Printer::new(args.format);
    let mut batch = fetch::fetch_many(input.jobs, cfg);
    // The batch ends itself at the deadline; this is a backstop.
    let limit = overall_limit(args.overall_timeout);
    let backstop = async move {
        match limit {
            Some(limit) => tokio::time::sleep(limit + Duration::from_secs(5)).await,
            None => std::future::pending().await,
        }
    };
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(backstop, ctrl_c);
    let printed = out.header();
    let mut printing = !is_broken_pipe(&printed);
    printed.or_else(ignore_broken_pipe)?;
    loop {
        let result = tokio::select! {
            r = batch.next() => r,
            () = &mut backstop => None,
            _ = &mut ctrl_c => {
                eprintln!("metadata: interrupted");
                None
            }
        };
        let Some(result) = result else { break };
        if let (Some(dir), Some(m)) = (&args.save_torrents, &result.metadata) {
            if let Err(e) = save_torrent(dir, &result.info_hash.to_hex(), &m.info) {
                eprintln!("warning: {e:#}");
            }
        }
        if printing {
            let printed = out.row(&result);
            printing = !is_broken_pipe(&printed);
            printed.or_else(ignore_broken_pipe)?;
        }
    }
    eprintln!("metadata: {}", batch.stats());
    Ok(())
}

/// The whole input and a label for messages; a missing file is a usage error.
fn read_input(path: &Path) -> anyhow::Result<(String, Vec<u8>)> {
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .context("reading stdin")?;
        return Ok(("stdin".to_owned(), bytes));
    }
    let label = path.display().to_string();
    bytes = fs::read(path).map_err(|e| UsageError(format!("cannot read `{label}`: {e}")))?;
    Ok((label, bytes))
}

/// Write `DIR/<hex>.torrent` (via a temporary name, so a reader never sees half a file).
/// The name comes only from the infohash, never from the metadata.
pub(crate) fn save_torrent(dir: &Path, hex: &str, info: &[u8]) -> anyhow::Result<()> {
    let path = dir.join(format!("{hex}.torrent"));
    let part = dir.join(format!("{hex}.torrent.part"));
    fs::write(&part, torrent_file_bytes(info))
        .and_then(|()| fs::rename(&part, &path))
        .with_context(|| format!("cannot write {}", path.display()))
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

/// A csv error as the I/O error under it (keeping `BrokenPipe` recognisable).
fn csv_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// Writes rows to stdout, flushed one by one.
struct Printer {
    format: MetadataFormat,
    csv: csv::Writer<io::Stdout>,
}

impl Printer {
    fn new(format: MetadataFormat) -> Printer {
        Printer {
            format,
            csv: csv::Writer::from_writer(io::stdout()),
        }
    }

    fn header(&mut self) -> io::Result<()> {
        if self.format == MetadataFormat::Csv {
            self.csv
                .write_record([
                    "infohash",
                    "name",
                    "file_count",
                    "total_bytes",
                    "piece_length",
                ])
                .map_err(csv_io)?;
            self.csv.flush()?;
        }
        Ok(())
    }

    fn row(&mut self, r: &InfohashResult) -> io::Result<()> {
        let Some(m) = &r.metadata else { return Ok(()) };
        let s = &m.summary;
        let infohash = r.info_hash.to_hex();
        match self.format {
            MetadataFormat::Csv => {
                self.csv
                    .write_record([
                        infohash,
                        csv_name(&s.name),
                        s.file_count.to_string(),
                        s.total_bytes.to_string(),
                        s.piece_length.to_string(),
                    ])
                    .map_err(csv_io)?;
                self.csv.flush()
            }
            MetadataFormat::Jsonl => {
                let row = JsonRow {
                    infohash,
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
                let line = serde_json::to_string(&row).map_err(io::Error::other)?;
                let mut stdout = io::stdout().lock();
                writeln!(stdout, "{line}")?;
                stdout.flush()
            }
        }
    }
}
