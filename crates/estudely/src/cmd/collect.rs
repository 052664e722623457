//! `estudely collect`: crawl, find peers and fetch metadata in one run, streaming the seed's
//! `dht_collect_and_metadata.py` CSV: one row per (infohash, peer considered),
//! `infohash,name,file_count,total_bytes,piece_length,peer_ip,peer_port,metadata_ok`.
//!
//! The crawl and the metadata fetches run at the same time on one task: as soon as an
//! infohash's peer search ends, its peers go to the fetcher; as soon as its fetch ends, its
//! rows are written and flushed. At the overall timeout, or on Ctrl-C / SIGTERM (during the
//! crawl or after it, while fetches run), the fetches still running are stopped, everything
//! still pending is written with what is known (`metadata_ok` False), the summary is
//! printed and the command exits 0.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use estudely_dht_core::crawl::CrawlEvent;
use estudely_krpc::InfoHash;
use estudely_peer_wire::InfoSummary;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::cli::{overall_limit, parse_overall_timeout};
use crate::cmd::crawl::{checked_bind, crawl_limit, parse_rate, start_crawler, Budgets, Interrupt};
use crate::cmd::metadata::save_torrent;
use crate::crawl::{writable_peer, CrawlDriver, CrawlSink};
use crate::fetch::{fetch_stream, FetchConfig, Job};
use crate::output::csv_name;
use crate::resolve::{UsageError, DEFAULT_ROUTERS};

/// The seed's column order.
pub const HEADER: &str =
    "infohash,name,file_count,total_bytes,piece_length,peer_ip,peer_port,metadata_ok";

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
  estudely collect --bootstrap 127.0.10.1:40000 --bind 127.0.0.1:0 --save-torrents torrents/";

/// `estudely collect ...`
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// Stop sampling after this many distinct infohashes (0 = no limit).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_infohashes: usize,
    /// Distinct peers kept per infohash.
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub peers_per_infohash: u32,
    /// Peers tried for an infohash's metadata, in turn, until one succeeds.
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub metadata_peer_attempts: u32,
    /// Stop after this many seconds and write what is known (0 = no limit: until the crawl
    /// and its fetches end, or Ctrl-C).
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_overall_timeout)]
    pub overall_timeout: Duration,
    /// Global limit on DHT queries sent, per second.
    #[arg(long, value_name = "Q", default_value_t = 25.0, value_parser = parse_rate)]
    pub rate: f64,
    /// Metadata fetches (TCP connections) at once.
    #[arg(long, value_name = "N", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=4_096))]
    pub concurrency: u32,
    /// A node to start from (repeatable), resolved at start-up.
    #[arg(long, value_name = "HOST:PORT", default_values_t = DEFAULT_ROUTERS.map(String::from))]
    pub bootstrap: Vec<String>,
    /// Local address to crawl from; give it twice for IPv4 and IPv6 [default: 0.0.0.0:0].
    #[arg(long, value_name = "ADDR")]
    pub bind: Vec<SocketAddr>,
    /// Write each verified torrent as DIR/<infohash>.torrent.
    #[arg(long, value_name = "DIR")]
    pub save_torrents: Option<PathBuf>,
    /// How to print rows.
    #[arg(long, value_enum, default_value_t = CollectFormat::Csv)]
    pub format: CollectFormat,
}

/// Row formats of `estudely collect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CollectFormat {
    /// The seed's CSV, with a header line.
    Csv,
    /// One JSON object per row, the same fields plus `name_hex` and `version`.
    Jsonl,
}

#[derive(Serialize)]
struct JsonRow<'a> {
    infohash: String,
    name: String,
    name_hex: String,
    version: Option<&'a str>,
    file_count: u64,
    total_bytes: u64,
    piece_length: u64,
    peer_ip: Option<String>,
    peer_port: Option<u16>,
    metadata_ok: bool,
}

/// What is known of each infohash so far, in the order they were found.
#[derive(Default)]
struct Found {
    order: Vec<InfoHash>,
    peers: HashMap<InfoHash, Vec<SocketAddr>>,
    written: HashMap<InfoHash, bool>,
    /// Peers on port 0 dropped (never written or fetched from: see [`writable_peer`]).
    port_zero: u64,
}

struct Sink<'a> {
    found: &'a RefCell<Found>,
    jobs: Option<mpsc::Sender<Job>>,
}

impl CrawlSink for Sink<'_> {
    fn event(&mut self, event: &CrawlEvent) -> anyhow::Result<bool> {
        let mut found = self.found.borrow_mut();
        match *event {
            CrawlEvent::InfoHash { info_hash, .. } => {
                found.order.push(info_hash);
                found.peers.insert(info_hash, Vec::new());
            }
            CrawlEvent::Peer { peer, .. } if !writable_peer(&peer) => {
                found.port_zero += 1;
            }
            CrawlEvent::Peer { info_hash, peer } => {
                found.peers.entry(info_hash).or_default().push(peer);
            }
            CrawlEvent::SearchDone { info_hash, .. } => {
                let peers = found.peers.get(&info_hash).cloned().unwrap_or_default();
                if let (Some(tx), false) = (&self.jobs, peers.is_empty()) {
                    // The channel holds every job of a crawl; a full one only delays rows
                    // to the final flush, where they are written with metadata_ok False.
                    let _ = tx.try_send(Job { info_hash, peers });
                }
            }
        }
        Ok(true)
    }
}

/// Writes `collect`'s rows to `W` (stdout), each flushed as soon as it is written.
struct Out<W: Write> {
    format: CollectFormat,
    w: W,
    rows: u64,
    with_metadata: usize,
}

impl<W: Write> Out<W> {
    fn new(format: CollectFormat, w: W) -> Out<W> {
        Out {
            format,
            w,
            rows: 0,
            with_metadata: 0,
        }
    }

    /// The header line (CSV only).
    fn header(&mut self) -> io::Result<()> {
        if self.format == CollectFormat::Csv {
            writeln!(self.w, "{HEADER}")?;
            self.w.flush()?;
        }
        Ok(())
    }

    /// Write the rows of one infohash: one per peer considered (one with empty peer fields
    /// when none was found).
    fn infohash(
        &mut self,
        ih: InfoHash,
        peers: &[SocketAddr],
        meta: Option<&InfoSummary>,
    ) -> io::Result<()> {
        self.with_metadata += usize::from(meta.is_some());
        let none: [Option<SocketAddr>; 1] = [None];
        let some: Vec<Option<SocketAddr>> = peers.iter().copied().map(Some).collect();
        let peers = if some.is_empty() {
            &none[..]
        } else {
            &some[..]
        };
        for peer in peers {
            self.rows += 1;
            let (files, total, piece) =
                meta.map_or((0, 0, 0), |m| (m.file_count, m.total_bytes, m.piece_length));
            let (ip, port) = (peer.map(|p| p.ip().to_string()), peer.map(|p| p.port()));
            match self.format {
                CollectFormat::Csv => {
                    let ok = if meta.is_some() { "True" } else { "False" };
                    // Each row is built whole, then written with one call.
                    let mut line = csv::WriterBuilder::new()
                        .has_headers(false)
                        .from_writer(Vec::new());
                    line.write_record([
                        ih.to_hex(),
                        meta.map(|m| csv_name(&m.name)).unwrap_or_default(),
                        files.to_string(),
                        total.to_string(),
                        piece.to_string(),
                        ip.unwrap_or_default(),
                        port.map(|p| p.to_string()).unwrap_or_default(),
                        ok.to_owned(),
                    ])
                    .map_err(io::Error::other)?;
                    let line = line.into_inner().map_err(|e| e.into_error())?;
                    self.w.write_all(&line)?;
                    self.w.flush()?;
                }
                CollectFormat::Jsonl => {
                    let row = JsonRow {
                        infohash: ih.to_hex(),
                        name: meta.map(InfoSummary::name_lossy).unwrap_or_default(),
                        name_hex: meta.map(|m| hex::encode(&m.name)).unwrap_or_default(),
                        version: meta.map(|m| version_name(m.version)),
                        file_count: files,
                        total_bytes: total,
                        piece_length: piece,
                        peer_ip: ip,
                        peer_port: port,
                        metadata_ok: meta.is_some(),
                    };
                    let mut line = serde_json::to_vec(&row)?;
                    line.push(b'\n');
                    self.w.write_all(&line)?;
                    self.w.flush()?;
                }
            }
        }
        Ok(())
    }
}

fn version_name(v: estudely_peer_wire::Version) -> &'static str {
    match v {
        estudely_peer_wire::Version::V1 => "v1",
        estudely_peer_wire::Version::V2 => "v2",
        estudely_peer_wire::Version::Hybrid => "hybrid",
    }
}

/// Run `estudely collect ...`.
pub async fn run(args: CollectArgs) -> anyhow::Result<()> {
    let bind = checked_bind(&args.bind)?;
    if let Some(dir) = &args.save_torrents {
        std::fs::create_dir_all(dir).map_err(|e| {
            UsageError(format!(
                "cannot create --save-torrents directory `{}`: {e}",
                dir.display()
            ))
        })?;
    }
    let mut driver = start_crawler(bind, &args.bootstrap, budgets(&args)).await?;
    collect(&mut driver, &args).await
}

/// The crawler budgets of `collect` arguments.
pub fn budgets(args: &CollectArgs) -> Budgets {
    Budgets {
        max_infohashes: args.max_infohashes,
        peers_per_infohash: args.peers_per_infohash as usize,
        rate: args.rate,
    }
}

/// The collect pipeline on an already bound crawl driver (also used by `estudely demo`).
pub async fn collect(driver: &mut CrawlDriver, args: &CollectArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    // One watcher for the whole run: the signal stops the crawl and the fetches alike.
    let interrupt = Interrupt::watch();
    let mut out = Out::new(args.format, io::stdout());
    out.header().context("cannot write to stdout")?;
    let found = RefCell::new(Found::default());
    let (tx, rx) = mpsc::channel(1 << 16);
    let fetch_cfg = FetchConfig {
        peer_attempts: args.metadata_peer_attempts as usize,
        concurrency: args.concurrency as usize,
        overall_timeout: overall_limit(args.overall_timeout),
        ..FetchConfig::default()
    };
    let mut batch = fetch_stream(rx, fetch_cfg);
    let mut sink = Sink {
        found: &found,
        jobs: Some(tx),
    };
    let crawl = async {
        let report = driver
            .run(
                crawl_limit(args.overall_timeout),
                interrupt.fired(),
                None,
                &mut sink,
            )
            .await;
        sink.jobs = None; // no more jobs: the fetcher ends when the last one does
        report
    };
    let fetch = async {
        let stop = interrupt.fired();
        tokio::pin!(stop);
        loop {
            // Interrupted: stop taking results; the fetches still running are cancelled
            // below, and their infohashes written with what is known.
            let r = tokio::select! {
                r = batch.next() => r,
                () = &mut stop => None,
            };
            let Some(r) = r else { break };
            let peers = found
                .borrow()
                .peers
                .get(&r.info_hash)
                .cloned()
                .unwrap_or_default();
            if let (Some(dir), Some(m)) = (&args.save_torrents, &r.metadata) {
                save_torrent(dir, &r.info_hash.to_hex(), &m.info)?;
            }
            let meta = r.metadata.as_ref().map(|m| &m.summary);
            out.infohash(r.info_hash, &peers, meta)
                .context("cannot write to stdout")?;
            found.borrow_mut().written.insert(r.info_hash, true);
        }
        anyhow::Ok(())
    };
    let (report, fetched) = tokio::join!(crawl, fetch);
    let report = report?;
    fetched?;
    let fetch_stats = batch.stats().clone();
    drop(batch); // cancels the fetches still running (interrupted)
    if interrupt.happened() {
        eprintln!("collect: interrupted; writing what is known");
    }
    // Whatever had no fetch result (no peers, search unfinished, deadline): write it now.
    let found = found.into_inner();
    for ih in &found.order {
        if !found.written.contains_key(ih) {
            let peers = found.peers.get(ih).cloned().unwrap_or_default();
            out.infohash(*ih, &peers, None)
                .context("cannot write to stdout")?;
        }
    }
    let mut summary = format!(
        "collect: {} infohashes, {} with metadata, {} rows; {} DHT queries; metadata {}; {:.1} s",
        found.order.len(),
        out.with_metadata,
        out.rows,
        report.queries_sent,
        fetch_stats,
        start.elapsed().as_secs_f64()
    );
    if found.port_zero > 0 {
        let n = found.port_zero;
        let s = if n == 1 { "" } else { "s" };
        summary.push_str(&format!("; {n} peer{s} with port 0 dropped"));
    }
    eprintln!("{summary}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::csv_name_unescape;

    #[test]
    fn rows_escape_the_name_in_csv_and_keep_it_in_jsonl() {
        let raw_name: &[u8] = b"odd\n,\"name\"\xff\\";
        let mut info = format!("d6:lengthi5e4:name{}:", raw_name.len()).into_bytes();
        info.extend_from_slice(raw_name);
        info.extend_from_slice(b"12:piece lengthi16384e6:pieces20:");
        info.extend_from_slice(&[7; 20]);
        info.push(b'e');
        let meta = InfoSummary::parse(&info).unwrap();
        let ih = InfoHash([0xab; 20]);
        let peers: [SocketAddr; 2] = ["127.0.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap()];

        let mut out = Out::new(CollectFormat::Csv, Vec::new());
        out.header().unwrap();
        out.infohash(ih, &peers, Some(&meta)).unwrap();
        out.infohash(InfoHash([1; 20]), &[], None).unwrap();
        let text = String::from_utf8(out.w.clone()).unwrap();
        let hex = "ab".repeat(20);
        let name = r#""odd\x0a,""name""\xff\\""#;
        let want = format!(
            "{HEADER}\n\
             {hex},{name},1,5,16384,127.0.0.1,1,True\n\
             {hex},{name},1,5,16384,::1,2,True\n\
             {},,0,0,0,,,False\n",
            "01".repeat(20)
        );
        assert_eq!(text, want);
        assert_eq!((out.rows, out.with_metadata), (3, 1));
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let first = r.records().next().unwrap().unwrap();
        assert_eq!(csv_name_unescape(&first[1]).unwrap(), raw_name);

        let mut out = Out::new(CollectFormat::Jsonl, Vec::new());
        out.header().unwrap();
        out.infohash(ih, &peers[..1], Some(&meta)).unwrap();
        let text = String::from_utf8(out.w.clone()).unwrap();
        let row: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(row["name"], "odd\u{fffd},\"name\"\u{fffd}\\");
        assert_eq!(row["name_hex"], hex::encode(raw_name));
        assert_eq!(row["peer_port"], 1);
    }
}
