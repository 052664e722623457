//! `estudely collect`: crawl, find peers and fetch metadata in one run, streaming the seed's
//! `dht_collect_and_metadata.py` CSV: one row per (infohash, peer considered),
//! `infohash,name,file_count,total_bytes,piece_length,peer_ip,peer_port,metadata_ok`.
//!
//! The crawl and the metadata fetches run at the same time on one task: as soon as an
//! infohash's peer search ends, its peers go to the fetcher (with no peer, its row is
//! written then); as soon as its fetch ends, its rows are written and flushed, and it is
//! forgotten. What is kept meanwhile is bounded ([`SEARCHES_CAP`] infohashes searching,
//! [`FETCH_BACKLOG`] waiting for metadata); a full backlog pauses the crawl until a fetch
//! ends, so nothing is dropped. At the overall timeout, or on Ctrl-C / SIGTERM (during the
//! crawl or after it, while fetches run), the fetches still running are stopped, everything
//! still pending is written with what is known (`metadata_ok` False), the summary is
//! printed and the command exits 0.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
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
use tokio::sync::{mpsc, Notify};

use crate::cli::{overall_limit, parse_overall_timeout};
use crate::cmd::crawl::{
    checked_bind, crawl_limit, parse_rate, start_crawler, Budgets, CrawlNetArgs, Interrupt,
    SEARCHES_CAP,
};
use crate::cmd::metadata::save_torrent;
use crate::crawl::{writable_peer, CrawlDriver, CrawlSink, StopReason};
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
    /// Address policy, announce harvesting and warm start.
    #[command(flatten)]
    pub net: CrawlNetArgs,
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

/// Most infohashes `collect` keeps waiting for, or in, a metadata fetch: one crawler's worth
/// of peer searches ([`SEARCHES_CAP`]). At this many the crawl is paused (it neither sends
/// nor answers) until a fetch ends: the crawler finds no infohash faster than they are
/// fetched, and nothing is dropped.
pub const FETCH_BACKLOG: usize = SEARCHES_CAP;

/// What `collect` knows of the infohashes whose rows are not written yet, in the order they
/// were found, bounded: at most `searching_cap` whose peer search runs, at most
/// `fetching_cap` waiting for or in a fetch, `peers_cap` peers each. An infohash leaves as
/// soon as its rows are written.
#[derive(Debug)]
struct Pending {
    searching_cap: usize,
    fetching_cap: usize,
    peers_cap: usize,
    entries: HashMap<InfoHash, Entry>,
    /// `entries`' keys by arrival, for writing the rest in order at the end.
    order: BTreeMap<u64, InfoHash>,
    next_seq: u64,
    searching: usize,
    fetching: usize,
    /// Infohashes found, tracked or not.
    found: u64,
    /// Infohashes found while `searching_cap` searches were pending: written at once with
    /// what is known (nothing), their peers not kept. Only a crawler whose search queue
    /// outgrows its stated cap makes these; counted in the summary.
    untracked: u64,
    /// Peers of untracked infohashes, not kept.
    untracked_peers: u64,
    /// Peers on port 0 dropped (never written or fetched from: see [`writable_peer`]).
    port_zero: u64,
    /// Most infohashes ever waiting for or in a fetch at once.
    most_fetching: usize,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    peers: Vec<SocketAddr>,
}

/// What to do with an infohash whose peer search ended.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Fetch its metadata from these peers.
    Fetch(Job),
    /// No peer: write its row now.
    Write(InfoHash),
    /// Not tracked (or already handed on): nothing.
    Nothing,
}

impl Pending {
    fn new(searching_cap: usize, fetching_cap: usize, peers_cap: usize) -> Pending {
        Pending {
            searching_cap,
            fetching_cap,
            peers_cap,
            entries: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            searching: 0,
            fetching: 0,
            found: 0,
            untracked: 0,
            untracked_peers: 0,
            port_zero: 0,
            most_fetching: 0,
        }
    }

    /// A new infohash. False: not tracked (over the cap); write its row now.
    fn found(&mut self, ih: InfoHash) -> bool {
        if self.entries.contains_key(&ih) {
            return true;
        }
        self.found += 1;
        if self.searching >= self.searching_cap {
            self.untracked += 1;
            return false;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, ih);
        self.entries.insert(
            ih,
            Entry {
                seq,
                peers: Vec::new(),
            },
        );
        self.searching += 1;
        true
    }

    /// A peer of `ih`.
    fn peer(&mut self, ih: InfoHash, peer: SocketAddr) {
        if !writable_peer(&peer) {
            self.port_zero += 1;
            return;
        }
        match self.entries.get_mut(&ih) {
            Some(e) if e.peers.len() < self.peers_cap && !e.peers.contains(&peer) => {
                e.peers.push(peer);
            }
            Some(_) => {}
            None => self.untracked_peers += 1,
        }
    }

    /// `ih`'s peer search ended.
    fn search_done(&mut self, ih: InfoHash) -> Next {
        let Some(e) = self.entries.get(&ih) else {
            return Next::Nothing;
        };
        self.searching -= 1;
        if e.peers.is_empty() {
            return Next::Write(ih);
        }
        self.fetching += 1;
        self.most_fetching = self.most_fetching.max(self.fetching);
        Next::Fetch(Job {
            info_hash: ih,
            peers: e.peers.clone(),
        })
    }

    /// Forget `ih` (its rows are being written), giving back its peers.
    fn remove(&mut self, ih: InfoHash, fetched: bool) -> Vec<SocketAddr> {
        let Some(e) = self.entries.remove(&ih) else {
            return Vec::new();
        };
        self.order.remove(&e.seq);
        if fetched {
            self.fetching -= 1;
        }
        e.peers
    }

    /// The fetch backlog is full: stop taking infohashes from the crawler.
    fn full(&self) -> bool {
        self.fetching >= self.fetching_cap
    }

    /// Everything still pending, in the order found (for the final rows).
    fn drain(&mut self) -> Vec<(InfoHash, Vec<SocketAddr>)> {
        let order = std::mem::take(&mut self.order);
        let rest = order
            .into_values()
            .filter_map(|ih| self.entries.remove(&ih).map(|e| (ih, e.peers)))
            .collect();
        (self.searching, self.fetching) = (0, 0);
        rest
    }
}

struct Sink<'a, W: Write> {
    pending: &'a RefCell<Pending>,
    out: &'a RefCell<Out<W>>,
    jobs: Option<mpsc::Sender<Job>>,
}

impl<W: Write> CrawlSink for Sink<'_, W> {
    fn event(&mut self, event: &CrawlEvent) -> anyhow::Result<bool> {
        let mut pending = self.pending.borrow_mut();
        match *event {
            CrawlEvent::InfoHash { info_hash, .. } => {
                if !pending.found(info_hash) {
                    self.out
                        .borrow_mut()
                        .infohash(info_hash, &[], None)
                        .context("cannot write to stdout")?;
                }
            }
            CrawlEvent::Peer { info_hash, peer } => pending.peer(info_hash, peer),
            CrawlEvent::SearchDone { info_hash, .. } => match pending.search_done(info_hash) {
                Next::Fetch(job) => {
                    // Never full: the channel holds `fetching_cap` jobs, and the crawl
                    // pauses before more are pending. Closed: the fetcher passed its
                    // deadline; the rows are written at the end.
                    if let Some(tx) = &self.jobs {
                        let _ = tx.try_send(job);
                    }
                }
                Next::Write(ih) => {
                    pending.remove(ih, false);
                    self.out
                        .borrow_mut()
                        .infohash(ih, &[], None)
                        .context("cannot write to stdout")?;
                }
                Next::Nothing => {}
            },
        }
        // Full: stop the crawl driver (push back); `collect` resumes it once there is room.
        Ok(!pending.full())
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
    let saved = args.net.saved_nodes()?;
    let mut driver = start_crawler(bind, &args.bootstrap, budgets(&args)).await?;
    driver.warm_start(&saved);
    collect(&mut driver, &args).await?;
    args.net.save_state(&driver)
}

/// The crawler budgets of `collect` arguments.
pub fn budgets(args: &CollectArgs) -> Budgets {
    Budgets {
        max_infohashes: args.max_infohashes,
        peers_per_infohash: args.peers_per_infohash as usize,
        rate: args.rate,
        allow_private: args.net.allow_private,
        harvest: !args.net.no_harvest,
    }
}

/// The collect pipeline on an already bound crawl driver (also used by `estudely demo`).
pub async fn collect(driver: &mut CrawlDriver, args: &CollectArgs) -> anyhow::Result<()> {
    collect_with(driver, args, Caps::default(), io::stdout())
        .await
        .map(drop)
}

/// The caps of `collect`'s bookkeeping (smaller in tests).
#[derive(Debug, Clone, Copy)]
struct Caps {
    searching: usize,
    fetching: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            searching: SEARCHES_CAP,
            fetching: FETCH_BACKLOG,
        }
    }
}

/// How the bookkeeping went, for tests.
#[derive(Debug, Default)]
#[cfg_attr(not(test), allow(dead_code))]
struct Bookkeeping {
    /// Times the crawl was paused because the fetch backlog was full.
    pauses: u64,
    /// Most infohashes ever waiting for or in a fetch at once.
    most_fetching: usize,
}

async fn collect_with<W: Write>(
    driver: &mut CrawlDriver,
    args: &CollectArgs,
    caps: Caps,
    w: W,
) -> anyhow::Result<Bookkeeping> {
    let start = Instant::now();
    let deadline = crawl_limit(args.overall_timeout).map(|t| start + t);
    // One watcher for the whole run: the signal stops the crawl and the fetches alike.
    let interrupt = Interrupt::watch();
    let out = RefCell::new(Out::new(args.format, w));
    out.borrow_mut()
        .header()
        .context("cannot write to stdout")?;
    let pending = RefCell::new(Pending::new(
        caps.searching,
        caps.fetching,
        args.peers_per_infohash as usize,
    ));
    let (tx, rx) = mpsc::channel(caps.fetching.max(1));
    let fetch_cfg = FetchConfig {
        peer_attempts: args.metadata_peer_attempts as usize,
        concurrency: args.concurrency as usize,
        overall_timeout: overall_limit(args.overall_timeout),
        // The peers come from the crawler, under its address policy: the fetcher keeps it.
        addr_policy: driver.crawler().node().addr_policy().clone(),
        ..FetchConfig::default()
    };
    let mut batch = fetch_stream(rx, fetch_cfg);
    let room = Notify::new();
    let mut pauses = 0;
    let mut sink = Sink {
        pending: &pending,
        out: &out,
        jobs: Some(tx),
    };
    let crawl = async {
        let report = loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let report = match driver.run(left, interrupt.fired(), None, &mut sink).await {
                Ok(r) if r.reason == StopReason::SinkClosed => r,
                other => break other,
            };
            // Paused (pushed back): the fetch backlog is full. Resume once a fetch ends.
            pauses += 1;
            let stop = interrupt.fired();
            tokio::pin!(stop);
            while pending.borrow().full() {
                tokio::select! {
                    () = room.notified() => {}
                    () = &mut stop => break,
                    () = crate::crawl::driver::sleep_until_opt(deadline) => break,
                }
            }
            if pending.borrow().full() {
                break Ok(report);
            }
        };
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
            let peers = pending.borrow_mut().remove(r.info_hash, true);
            room.notify_one();
            if let (Some(dir), Some(m)) = (&args.save_torrents, &r.metadata) {
                save_torrent(dir, &r.info_hash.to_hex(), &m.info)?;
            }
            let meta = r.metadata.as_ref().map(|m| &m.summary);
            out.borrow_mut()
                .infohash(r.info_hash, &peers, meta)
                .context("cannot write to stdout")?;
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
    // Whatever had no fetch result (search unfinished, deadline, interrupted): write it now.
    let mut out = out.into_inner();
    let mut pending = pending.into_inner();
    let most_fetching = pending.most_fetching;
    for (ih, peers) in pending.drain() {
        out.infohash(ih, &peers, None)
            .context("cannot write to stdout")?;
    }
    let mut summary = format!(
        "collect: {} infohashes, {} with metadata, {} rows; {} DHT queries; metadata {}; {:.1} s",
        pending.found,
        out.with_metadata,
        out.rows,
        report.queries_sent,
        fetch_stats,
        start.elapsed().as_secs_f64()
    );
    summary.push_str(&crate::cmd::crawl::network_note(&report.stats));
    if pending.port_zero > 0 {
        let n = pending.port_zero;
        let s = if n == 1 { "" } else { "s" };
        summary.push_str(&format!("; {n} peer{s} with port 0 dropped"));
    }
    if pauses > 0 {
        let s = if pauses == 1 { "" } else { "s" };
        summary.push_str(&format!(
            "; crawl paused {pauses} time{s} at the fetch backlog cap ({})",
            caps.fetching
        ));
    }
    if pending.untracked > 0 {
        summary.push_str(&format!(
            "; {} infohashes found with {} searches pending written without peers ({} of \
             their peers not kept)",
            pending.untracked, caps.searching, pending.untracked_peers
        ));
    }
    eprintln!("{summary}");
    Ok(Bookkeeping {
        pauses,
        most_fetching,
    })
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

    fn ih(i: u8) -> InfoHash {
        InfoHash([i; 20])
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn pending_is_bounded_and_forgets_what_is_written() {
        assert_eq!(FETCH_BACKLOG, SEARCHES_CAP);
        let mut p = Pending::new(2, 1, 2);
        let (p1, p2, p3) = (addr("10.0.0.1:1"), addr("10.0.0.2:2"), addr("10.0.0.3:3"));
        assert!(p.found(ih(1)) && p.found(ih(2)));
        assert!(p.found(ih(1)), "a repeat is not new");
        assert!(!p.found(ih(3)), "two searches pending: over the cap");
        p.peer(ih(3), p1);
        assert_eq!((p.untracked, p.untracked_peers), (1, 1));
        for peer in [p1, p1, p2, p3, addr("10.0.0.4:0")] {
            p.peer(ih(1), peer);
        }
        assert_eq!(p.port_zero, 1);
        assert_eq!(p.entries[&ih(1)].peers, [p1, p2], "deduplicated, capped");
        assert!(!p.full());
        let job = Job {
            info_hash: ih(1),
            peers: vec![p1, p2],
        };
        assert_eq!(p.search_done(ih(1)), Next::Fetch(job));
        assert!(p.full(), "one fetch pending: the backlog is full");
        assert_eq!(p.search_done(ih(2)), Next::Write(ih(2)), "no peer");
        assert!(p.remove(ih(2), false).is_empty());
        assert_eq!(p.search_done(ih(3)), Next::Nothing, "untracked");
        assert!(p.found(ih(4)), "searches ended: room again");
        assert_eq!(p.remove(ih(1), true), [p1, p2]);
        assert!(!p.full());
        assert!(p.found(ih(5)));
        assert_eq!(
            p.drain(),
            [(ih(4), vec![]), (ih(5), vec![])],
            "in the order found"
        );
        assert!(p.entries.is_empty() && p.order.is_empty());
        assert_eq!((p.found, p.most_fetching), (5, 1));
    }

    #[test]
    fn the_sink_pushes_back_while_the_fetch_backlog_is_full() {
        let pending = RefCell::new(Pending::new(8, 1, 8));
        let out = RefCell::new(Out::new(CollectFormat::Csv, Vec::new()));
        let (tx, mut rx) = mpsc::channel(1);
        let mut sink = Sink {
            pending: &pending,
            out: &out,
            jobs: Some(tx),
        };
        let from = addr("10.0.0.9:6881");
        let peer = addr("10.0.0.1:1");
        let event = |e: CrawlEvent, sink: &mut Sink<'_, Vec<u8>>| sink.event(&e).unwrap();
        for i in [1, 2, 3] {
            assert!(event(
                CrawlEvent::InfoHash {
                    info_hash: ih(i),
                    from,
                    announced: false,
                },
                &mut sink
            ));
        }
        let done = |i| CrawlEvent::SearchDone {
            info_hash: ih(i),
            peers: 1,
            queries: 1,
        };
        assert!(
            event(done(3), &mut sink),
            "no peer: written at once, no fetch"
        );
        assert!(event(
            CrawlEvent::Peer {
                info_hash: ih(1),
                peer
            },
            &mut sink
        ));
        assert!(!event(done(1), &mut sink), "the backlog is full: stop");
        assert_eq!(rx.try_recv().unwrap().info_hash, ih(1));
        pending.borrow_mut().remove(ih(1), true);
        assert!(event(
            CrawlEvent::Peer {
                info_hash: ih(2),
                peer
            },
            &mut sink
        ));
        let text = String::from_utf8(out.borrow().w.clone()).unwrap();
        assert_eq!(text, format!("{},,0,0,0,,,False\n", ih(3).to_hex()));
    }

    /// With a fetch backlog of one, the crawl is paused after every infohash with peers and
    /// resumed once its fetch ends: every torrent of a loopback testnet is still collected.
    #[test]
    fn a_full_fetch_backlog_pauses_the_crawl_and_nothing_is_lost() {
        use crate::cmd::crawl::start_crawler;
        use crate::testnet::{Testnet, TestnetConfig};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let torrents = 6;
        let (book, text) = rt.block_on(async {
            let net = Testnet::start(TestnetConfig {
                nodes: 8,
                torrents,
                base_ip: [127, 0, 82],
                ..TestnetConfig::default()
            })
            .await
            .unwrap();
            let args = CollectArgs {
                max_infohashes: torrents,
                peers_per_infohash: 20,
                metadata_peer_attempts: 5,
                overall_timeout: Duration::from_secs(120),
                rate: 200.0,
                concurrency: 4,
                bootstrap: vec![net.bootstrap().to_string()],
                bind: vec![addr("127.0.84.1:0")],
                save_torrents: None,
                net: CrawlNetArgs::default(),
                format: CollectFormat::Csv,
            };
            let mut driver = start_crawler(args.bind.clone(), &args.bootstrap, budgets(&args))
                .await
                .unwrap();
            let caps = Caps {
                searching: SEARCHES_CAP,
                fetching: 1,
            };
            let mut text = Vec::new();
            let book = collect_with(&mut driver, &args, caps, &mut text)
                .await
                .unwrap();
            net.shutdown().await;
            (book, String::from_utf8(text).unwrap())
        });
        assert!(book.pauses >= 1, "{book:?}");
        assert_eq!(book.most_fetching, 1, "never above the cap");
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(rows.len(), torrents, "{text}");
        assert!(rows.iter().all(|r| r.ends_with(",True")), "{text}");
    }
}
