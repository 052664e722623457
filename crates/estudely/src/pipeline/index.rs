//! The pipeline's index side (`estudely run`): a [`Store`] on a thread of its own, the
//! [`IndexSink`] that turns results into rows, and the [`IndexGate`] that keeps known
//! infohashes from being searched or fetched again.
//!
//! The store thread owns the connection (a blocking SQLite or PostgreSQL client must not
//! run on the crawl's tokio thread). It batches writes: a transaction every
//! [`COMMIT_EVERY`] or [`BATCH_ROWS`] rows, whichever comes first, so a `kill -9` loses at
//! most that much and never a committed row. Questions (is it known? may I fetch it?) are
//! answered in order with the writes, so a claim always sees every torrent committed before.
//!
//! The gate asks the database only when the in-memory [`KnownFilter`] says "maybe": at
//! 10 M rows, a new infohash costs a few hashes, a known one a primary-key lookup.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context as _};
use estudely_krpc::{CompactNode, InfoHash};
use estudely_peer_wire::{InfoSummary, Version};
use sha2::Digest as _;
use tracing::warn;

use super::filter::{Filters, KnownFilter, Rejected};
use super::{Gate, Handoff, RowSink};
use crate::fetch::{FetchedMetadata, Job};
use crate::store::{Batch, DbUrl, Sighting, Source, Store, Torrent, MAX_STORED_FILES};

/// Longest time a written row waits for its transaction.
pub const COMMIT_EVERY: Duration = Duration::from_millis(500);
/// Most rows (torrents, sightings, ...) in one transaction.
pub const BATCH_ROWS: usize = 2_000;

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

enum Req {
    Torrent(Box<Torrent>),
    Sighting(Sighting),
    Counter(&'static str, u64),
    Release(InfoHash),
    Check(InfoHash),
    Claim(Job, Handoff),
    SaveNodes(Vec<CompactNode>),
    Flush(std_mpsc::Sender<()>),
}

/// What the store thread found at start.
#[derive(Debug)]
pub struct Opened {
    /// Torrents in the index.
    pub torrents: usize,
    /// A filter holding each of them.
    pub known: KnownFilter,
    /// Saved nodes, the most recently good first.
    pub nodes: Vec<CompactNode>,
    /// `sqlite` or `postgres`.
    pub kind: &'static str,
}

/// Counts kept by the store thread, for the summary and metrics.
#[derive(Debug, Default, Clone)]
pub struct WriteStats {
    /// Transactions committed.
    pub commits: u64,
    /// Torrents written (a torrent another crawler stored first is counted too).
    pub torrents: u64,
    /// Rows of any kind written.
    pub rows: u64,
    /// Time spent in transactions.
    pub busy: Duration,
    /// Claims refused: stored already, or another crawler's lease.
    pub claims_refused: u64,
    /// Infohashes the database confirmed as known.
    pub known: u64,
}

/// The store thread.
pub struct StoreThread {
    tx: std_mpsc::Sender<Req>,
    known_rx: std_mpsc::Receiver<InfoHash>,
    error: Arc<Mutex<Option<String>>>,
    stats: Arc<Mutex<WriteStats>>,
    handle: Option<JoinHandle<()>>,
}

impl StoreThread {
    /// Open `url` on a new thread (creating and migrating it), load what the pipeline
    /// needs, and start serving. `owner` names this crawler's leases; `lease` is how long
    /// one lasts.
    pub fn start(url: DbUrl, owner: String, lease: Duration) -> anyhow::Result<(Self, Opened)> {
        let (tx, rx) = std_mpsc::channel::<Req>();
        let (known_tx, known_rx) = std_mpsc::channel();
        let (opened_tx, opened_rx) = std_mpsc::channel();
        let error = Arc::new(Mutex::new(None));
        let stats = Arc::new(Mutex::new(WriteStats::default()));
        let (err2, stats2) = (error.clone(), stats.clone());
        let handle = std::thread::Builder::new()
            .name("estudely-store".into())
            .spawn(move || {
                let mut store = match open(&url) {
                    Ok((store, opened)) => {
                        let _ = opened_tx.send(Ok(opened));
                        store
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                let mut w = Writer {
                    store: store.as_mut(),
                    owner,
                    lease,
                    batch: Batch::default(),
                    rows: 0,
                    stats: stats2,
                    known_tx,
                };
                if let Err(e) = w.serve(&rx) {
                    warn!("index: {e:#}");
                    *err2.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{e:#}"));
                }
            })
            .context("cannot start the store thread")?;
        let opened = opened_rx
            .recv()
            .map_err(|_| anyhow!("the store thread ended at start"))??;
        let thread = StoreThread {
            tx,
            known_rx,
            error,
            stats,
            handle: Some(handle),
        };
        Ok((thread, opened))
    }

    fn send(&self, req: Req) -> anyhow::Result<()> {
        self.check()?;
        self.tx
            .send(req)
            .map_err(|_| anyhow!("the index stopped (see above)"))
    }

    /// The store thread's error, if it stopped on one.
    pub fn check(&self) -> anyhow::Result<()> {
        match &*self.error.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(anyhow!("index: {e}")),
            None => Ok(()),
        }
    }

    /// Save good nodes for the next start.
    pub fn save_nodes(&self, nodes: Vec<CompactNode>) -> anyhow::Result<()> {
        self.send(Req::SaveNodes(nodes))
    }

    /// Commit what is waiting, and wait for it.
    pub fn flush(&self) -> anyhow::Result<()> {
        let (ack_tx, ack_rx) = std_mpsc::channel();
        self.send(Req::Flush(ack_tx))?;
        let _ = ack_rx.recv();
        self.check()
    }

    /// The write counters so far.
    pub fn stats(&self) -> WriteStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Commit everything and stop the thread.
    pub fn finish(mut self) -> anyhow::Result<WriteStats> {
        let stats = self.stats.clone();
        drop(std::mem::replace(&mut self.tx, std_mpsc::channel().0));
        if let Some(h) = self.handle.take() {
            h.join().map_err(|_| anyhow!("the store thread panicked"))?;
        }
        self.check()?;
        let s = stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Ok(s)
    }
}

fn open(url: &DbUrl) -> anyhow::Result<(Box<dyn Store>, Opened)> {
    let mut store = url
        .open()
        .with_context(|| format!("cannot open the index `{url}`"))?;
    // Two passes (count, then fill) so that no list of 10 M keys is ever held.
    let mut torrents = 0usize;
    store.for_each_info_hash(&mut |_| torrents += 1)?;
    let key = rand::RngCore::next_u64(&mut rand::rngs::OsRng);
    let mut known = KnownFilter::new((torrents * 2).max(1 << 20), key);
    store.for_each_info_hash(&mut |ih| known.insert(&ih))?;
    let nodes = store.load_nodes(crate::crawl::state::MAX_SAVED)?;
    let opened = Opened {
        torrents,
        known,
        nodes,
        kind: store.kind(),
    };
    Ok((store, opened))
}

struct Writer<'a> {
    store: &'a mut dyn Store,
    owner: String,
    lease: Duration,
    batch: Batch,
    rows: usize,
    stats: Arc<Mutex<WriteStats>>,
    known_tx: std_mpsc::Sender<InfoHash>,
}

impl Writer<'_> {
    fn serve(&mut self, rx: &std_mpsc::Receiver<Req>) -> anyhow::Result<()> {
        let mut due = Instant::now() + COMMIT_EVERY;
        loop {
            let wait = due.saturating_duration_since(Instant::now());
            let req = match rx.recv_timeout(wait) {
                Ok(req) => req,
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    self.commit()?;
                    due = Instant::now() + COMMIT_EVERY;
                    continue;
                }
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return self.commit(),
            };
            match req {
                Req::Torrent(t) => self.batch.torrents.push(*t),
                Req::Sighting(s) => self.batch.sightings.push(s),
                Req::Counter(name, n) => match self.batch.counters.iter_mut().find(|c| c.0 == name)
                {
                    Some(c) => c.1 += n,
                    None => self.batch.counters.push((name.to_owned(), n)),
                },
                Req::Release(ih) => self.batch.release.push(ih),
                Req::Check(ih) => {
                    if self.store.contains(&ih)? {
                        self.lock_stats().known += 1;
                        self.batch.seen.push((ih, unix_now()));
                        let _ = self.known_tx.send(ih);
                    }
                }
                Req::Claim(job, to) => {
                    // A release of this infohash may be waiting: commit it first.
                    if self.batch.release.contains(&job.info_hash) {
                        self.commit()?;
                    }
                    if self.store.claim(&job.info_hash, &self.owner, self.lease)? {
                        to.fetch(job);
                    } else {
                        self.lock_stats().claims_refused += 1;
                        to.skip(job.info_hash);
                    }
                }
                Req::SaveNodes(nodes) => {
                    let keep = crate::crawl::state::MAX_SAVED * 4;
                    self.store.save_nodes(&nodes, unix_now(), keep)?;
                }
                Req::Flush(ack) => {
                    self.commit()?;
                    let _ = ack.send(());
                }
            }
            self.rows += 1;
            if self.rows >= BATCH_ROWS {
                self.commit()?;
                due = Instant::now() + COMMIT_EVERY;
            }
        }
    }

    fn lock_stats(&self) -> std::sync::MutexGuard<'_, WriteStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn commit(&mut self) -> anyhow::Result<()> {
        self.rows = 0;
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let start = Instant::now();
        self.store.write(&self.owner, &batch)?;
        let took = start.elapsed();
        record_write(took, &batch);
        let mut s = self.lock_stats();
        s.commits += 1;
        s.torrents += batch.torrents.len() as u64;
        s.rows += (batch.torrents.len() + batch.sightings.len() + batch.seen.len()) as u64;
        s.busy += took;
        Ok(())
    }
}

/// Write latency and rows, for the metrics.
fn record_write(took: Duration, batch: &Batch) {
    let rows = batch.torrents.len() + batch.sightings.len() + batch.seen.len();
    crate::metrics::record_db_write(took.as_secs_f64(), rows as u64);
}

/// A [`Torrent`] row from fetched metadata, found at `discovered` through `source`.
pub fn torrent_row(
    ih: InfoHash,
    m: &FetchedMetadata,
    discovered: i64,
    source: Source,
) -> anyhow::Result<Torrent> {
    // The summary lists at most 100 files; the index keeps more.
    let full = InfoSummary::parse_with(&m.info, MAX_STORED_FILES)
        .context("verified metadata that does not parse again")?;
    let info_hash_v2 = match full.version {
        Version::V1 => None,
        Version::V2 | Version::Hybrid => Some(sha2::Sha256::digest(&m.info).into()),
    };
    // A hybrid torrent is announced under both of its keys: one row, under its v1 infohash,
    // whichever key it was found under.
    let ih = match full.version {
        Version::Hybrid => InfoHash(sha1::Sha1::digest(&m.info).into()),
        Version::V1 | Version::V2 => ih,
    };
    let private = estudely_bencode::decode(&m.info)
        .ok()
        .and_then(|d| d.get_int(b"private"))
        == Some(1);
    Ok(Torrent {
        info_hash: ih,
        info_hash_v2,
        name: full.name,
        total_bytes: full.total_bytes,
        piece_length: full.piece_length,
        file_count: full.file_count,
        private,
        version: full.version,
        files: full.files,
        discovered,
        source,
    })
}

/// How the run went, as the sink saw it.
#[derive(Debug, Default, Clone)]
pub struct IndexCounts {
    /// Torrents sent to the index.
    pub stored: u64,
    /// Metadata fetched but filtered out, by reason.
    pub filtered: HashMap<&'static str, u64>,
    /// Infohashes with peers whose fetch failed.
    pub fetch_failed: u64,
    /// Infohashes whose search found no peer.
    pub no_peers: u64,
    /// Blocklisted infohashes dropped at discovery.
    pub blocklisted: u64,
    /// Infohashes the filter sent to the database to confirm.
    pub checked: u64,
    /// Infohashes dropped as known (or fetched by another crawler).
    pub dropped: u64,
}

/// State shared by the sink and the gate.
pub struct Shared {
    /// The store thread.
    pub store: StoreThread,
    /// What the index holds (and what this run stored or filtered).
    pub known: KnownFilter,
    /// The user's filters.
    pub filters: Filters,
    /// Counts.
    pub counts: IndexCounts,
    /// When and how each infohash in flight was found.
    found: HashMap<InfoHash, (i64, Source)>,
}

impl Shared {
    /// Shared state over a started store thread.
    pub fn new(store: StoreThread, known: KnownFilter, filters: Filters) -> Rc<RefCell<Shared>> {
        Rc::new(RefCell::new(Shared {
            store,
            known,
            filters,
            counts: IndexCounts::default(),
            found: HashMap::new(),
        }))
    }

    fn count(&self, name: &'static str) -> anyhow::Result<()> {
        self.store.send(Req::Counter(name, 1))
    }
}

/// Rows into the index.
pub struct IndexSink(pub Rc<RefCell<Shared>>);

impl RowSink for IndexSink {
    fn found(&mut self, ih: InfoHash, from: SocketAddr, source: Source) -> anyhow::Result<()> {
        let mut sh = self.0.borrow_mut();
        let at = unix_now();
        sh.found.insert(ih, (at, source));
        let sighting = Sighting {
            info_hash: ih,
            addr: from,
            source,
            at,
        };
        sh.store.send(Req::Sighting(sighting))
    }

    fn done(
        &mut self,
        ih: InfoHash,
        peers: &[SocketAddr],
        fetched: Option<&FetchedMetadata>,
    ) -> anyhow::Result<()> {
        let mut sh = self.0.borrow_mut();
        let (discovered, source) = sh.found.remove(&ih).unwrap_or((unix_now(), Source::Sample));
        sh.store.send(Req::Release(ih))?;
        let Some(m) = fetched else {
            if peers.is_empty() {
                sh.counts.no_peers += 1;
                return sh.count("no_peers");
            }
            sh.counts.fetch_failed += 1;
            sh.count("fetch_failed")?;
            return peer_sightings(&sh, ih, peers);
        };
        // Stored or filtered: either way, not fetched again in this run.
        sh.known.insert(&ih);
        if let Some(why) = sh.filters.reject(&m.summary) {
            *sh.counts.filtered.entry(why.counter()).or_default() += 1;
            return sh.count(why.counter());
        }
        let row = torrent_row(ih, m, discovered, source)?;
        sh.counts.stored += 1;
        sh.store.send(Req::Torrent(Box::new(row)))?;
        peer_sightings(&sh, ih, peers)
    }

    fn dropped(&mut self, ih: InfoHash) {
        let mut sh = self.0.borrow_mut();
        sh.found.remove(&ih);
        sh.counts.dropped += 1;
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.0.borrow().store.flush()
    }
}

fn peer_sightings(sh: &Shared, ih: InfoHash, peers: &[SocketAddr]) -> anyhow::Result<()> {
    let at = unix_now();
    for &addr in peers {
        let s = Sighting {
            info_hash: ih,
            addr,
            source: Source::GetPeers,
            at,
        };
        sh.store.send(Req::Sighting(s))?;
    }
    Ok(())
}

/// The gate of `run`: blocklist, known filter, claims.
pub struct IndexGate(pub Rc<RefCell<Shared>>);

impl Gate for IndexGate {
    fn admit(&mut self, ih: InfoHash, _from: SocketAddr, _source: Source) -> bool {
        let mut sh = self.0.borrow_mut();
        if sh.filters.blocked(&ih) {
            sh.counts.blocklisted += 1;
            let _ = sh.count(Rejected::Blocklist.counter());
            return false;
        }
        if sh.known.maybe_contains(&ih) {
            // Probably known: the database decides (its answer cancels the search). The
            // sighting is recorded by the sink either way.
            sh.counts.checked += 1;
            let _ = sh.store.send(Req::Check(ih));
        }
        true
    }

    fn poll_known(&mut self) -> Option<InfoHash> {
        self.0.borrow().store.known_rx.try_recv().ok()
    }

    fn claim(&mut self, job: Job, to: &Handoff) {
        let sh = self.0.borrow();
        if sh.store.send(Req::Claim(job, to.clone())).is_err() {
            // The index stopped: the error ends the run at the next row.
            warn!("index stopped; not fetching");
        }
    }
}
