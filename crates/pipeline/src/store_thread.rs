//! The store thread of `estudely run`: it owns the index's connection (the store's calls block,
//! SQLite's and PostgreSQL's alike, and must not run on the crawl's tokio thread) and batches writes: a
//! transaction every [`COMMIT_EVERY`] or [`BATCH_ROWS`] rows, whichever comes first, so a
//! `kill -9` loses at most that much and never a committed row. Questions (is it known? may
//! I fetch it?) are answered in order with the writes, so an answer sees every torrent
//! written before it, committed or still waiting in the batch.
//!
//! The queue to it is bounded ([`QUEUE_CAP`] requests): when SQLite or a remote PostgreSQL
//! falls behind, sending blocks and the crawl waits, instead of requests piling up in
//! memory. To keep requests few, the crawl side ([`outbox`]) sums sightings per
//! (infohash, address) and counters per name, and gathers "is it known?" questions into
//! one request (one query) per turn of the crawl loop.
//!
//! A PostgreSQL server that goes away (restarted, failed over) does not end the run: the
//! store thread keeps its batch and reconnects (`store_thread/conn.rs`), and meanwhile the
//! crawl side never waits for it: it pauses new fetches and holds what was fetched, in
//! bounded memory (`store_thread/held.rs`).

mod conn;
mod held;
pub mod outbox;

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context as _};
use estudely_krpc::{CompactNode, InfoHash};
use tracing::warn;

use self::conn::Conn;
pub use self::conn::{IndexStatus, FIRST_RETRY, GIVE_UP_AT_STOP, MAX_RETRY};
use self::held::Held;
pub use self::held::{AwayCounts, CLAIMS_WHILE_AWAY, HELD_BYTES, HELD_REQUESTS};
use self::outbox::Outbox;
use super::filter::KnownFilter;
use super::Handoff;
use estudely_fetch::Job;
use estudely_store::{
    prune, Batch, DbUrl, Estimate, Sighting, SightingSum, Store, Torrent, MAX_KEYS_PER_QUERY,
};

/// The target of this module's log lines: its path from before it left the `estudely`
/// crate, so that `RUST_LOG` filters naming it still select them.
const LOG_TARGET: &str = "estudely::pipeline::store_thread";

/// Longest time a written row waits for its transaction.
pub const COMMIT_EVERY: Duration = Duration::from_millis(500);
/// Most rows (torrents, sightings, ...) in one transaction.
pub const BATCH_ROWS: usize = 2_000;
/// Most requests waiting for the store thread. A request is one torrent, one claim, one
/// release, or a batch of at most [`outbox::SIGHTINGS_WAITING`] sightings or
/// [`outbox::CHECKS_PER_REQUEST`] questions.
pub const QUEUE_CAP: usize = 256;
/// Most claims in one request.
pub const CLAIMS_PER_REQUEST: usize = 64;
/// How often expired leases are swept (and once at start).
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// The index counter of infohashes the known-filter sent to the database.
pub const LOOKUPS_COUNTER: &str = "index_lookups";
/// The index counter of those the database knew (the rest were false positives).
pub const KNOWN_COUNTER: &str = "index_lookups_known";
/// The index counter of infohashes found again after they were pruned (never searched or
/// fetched again).
pub const SKIPPED_DELETED_COUNTER: &str = "skipped_deleted";
/// The index counter of torrents `run` pruned to keep under `--max-torrents` /
/// `--max-db-size`.
pub const PRUNED_COUNTER: &str = "pruned_by_cap";
/// How often the caps are checked, at most (and at start, and at the end).
pub const CAP_EVERY: Duration = Duration::from_secs(60);
/// Torrents written after which the caps are checked sooner than [`CAP_EVERY`].
pub const CAP_EVERY_TORRENTS: u64 = 10_000;
/// How often the crawl side sends its summed sightings and counters, at most.
const SEND_EVERY: Duration = Duration::from_millis(250);

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A request to the store thread.
pub(crate) enum Req {
    Torrent(Box<Torrent>),
    Sightings(Vec<SightingSum>),
    Counters(Vec<(Cow<'static, str>, u64)>),
    Release(InfoHash),
    Check(Vec<InfoHash>),
    Claims(Vec<Job>, Handoff),
    SaveNodes(Vec<CompactNode>),
    Flush(std_mpsc::Sender<()>),
    /// The keys of up to `.1` torrents last scraped before `.0` (unix seconds), answered on
    /// `stale_rx`, after committing what waits (so a re-scrape result sent before is seen).
    Stale(i64, usize),
    /// A re-scrape's result.
    Estimate(Estimate),
}

impl Req {
    /// Rows it adds to the batch (at least 1, so that every request counts).
    fn rows(&self) -> usize {
        match self {
            Req::Sightings(v) => v.len().max(1),
            Req::Counters(v) => v.len().max(1),
            Req::Check(v) => v.len().max(1),
            _ => 1,
        }
    }
}

/// How the index is written.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// This crawler's name in the leases.
    pub owner: String,
    /// How long a lease lasts.
    pub lease: Duration,
    /// Most sightings kept per infohash, the most recently seen (`run --max-sightings`).
    pub max_sightings: u32,
    /// Keep peer and node addresses in sightings (false: `run --no-peer-addresses`, only
    /// counts, under [`outbox::NO_ADDRESS`]).
    pub peer_addresses: bool,
    /// Keep at most this many torrents, pruning the oldest (`run --max-torrents`).
    pub max_torrents: Option<u64>,
    /// Keep the index's used size under this many bytes, pruning the oldest (`run
    /// --max-db-size`).
    pub max_db_size: Option<u64>,
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
    /// Expired leases swept at start.
    pub swept: u64,
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
    /// Infohashes asked of the database ("maybe" answers of the filter).
    pub lookups: u64,
    /// Infohashes the database confirmed as known.
    pub known: u64,
    /// Expired leases swept.
    pub leases_swept: u64,
    /// Infohashes found again after they were pruned.
    pub skipped_deleted: u64,
    /// Torrents pruned to keep under the caps.
    pub pruned: u64,
    /// Times the index went away (a lost connection).
    pub outages: u64,
    /// Time the index was away, in all (outages that ended).
    pub unavailable: Duration,
}

/// How [`StoreThread::queue_req`] waits for room in a full queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Not at all: the request comes back.
    No,
    /// While the index is available; once it is away, the request comes back.
    WhileAvailable,
    /// As long as it takes (the last resort, when what is held reaches its cap).
    Always,
    /// As long as the store thread tries: the run is ending, so an index that is away is
    /// given up after [`GIVE_UP_AT_STOP`].
    Ending,
}

/// The queue's length, measured: requests in the queue, plus the one the store thread is
/// taking (counted out just after it has it). Signed: the store thread may count a request
/// out just before the crawl side has counted it in.
#[derive(Debug, Default)]
pub struct QueueGauge {
    len: AtomicIsize,
    max: AtomicIsize,
    waits: AtomicU64,
}

impl QueueGauge {
    /// Requests waiting now.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed).max(0) as usize
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most that ever waited (the one being handed over included).
    pub fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed).max(0) as usize
    }

    /// Times the crawl found the queue full and waited for room.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }
}

/// The store thread.
pub struct StoreThread {
    tx: std_mpsc::SyncSender<Req>,
    pub(crate) known_rx: std_mpsc::Receiver<InfoHash>,
    /// The answers to [`StoreThread::ask_stale`].
    pub(crate) stale_rx: std_mpsc::Receiver<Vec<InfoHash>>,
    error: Arc<Mutex<Option<String>>>,
    stats: Arc<Mutex<WriteStats>>,
    queue: Arc<QueueGauge>,
    outbox: RefCell<Outbox>,
    sent_at: RefCell<Instant>,
    handle: Option<JoinHandle<()>>,
    /// Claims waiting to be sent, in order, with where their answers go (see
    /// [`StoreThread::claim`]).
    claims: RefCell<(Vec<Job>, Option<Handoff>)>,
    /// The index's name for errors (its URL; empty when opened by a caller's function).
    name: String,
    /// Whether the store thread can reach the index.
    status: Arc<IndexStatus>,
    /// What waits for the index while it is away.
    held: RefCell<Held>,
}

impl StoreThread {
    /// Open `url` on a new thread (creating and migrating it), load what the pipeline
    /// needs, sweep expired leases, and start serving.
    pub fn start(url: DbUrl, cfg: StoreConfig) -> anyhow::Result<(Self, Opened)> {
        let name = url.to_string();
        let (mut thread, opened) = Self::start_with(
            move || {
                url.open()
                    .with_context(|| format!("cannot open the index `{url}`"))
            },
            cfg,
        )?;
        thread.name = name;
        Ok((thread, opened))
    }

    /// [`StoreThread::start`] over the store `open` gives.
    pub(crate) fn start_with(
        open: impl FnOnce() -> anyhow::Result<Box<dyn Store>> + Send + 'static,
        cfg: StoreConfig,
    ) -> anyhow::Result<(Self, Opened)> {
        let (tx, rx) = std_mpsc::sync_channel::<Req>(QUEUE_CAP);
        let (known_tx, known_rx) = std_mpsc::channel();
        let (stale_tx, stale_rx) = std_mpsc::channel();
        let (opened_tx, opened_rx) = std_mpsc::channel();
        let error = Arc::new(Mutex::new(None));
        let stats = Arc::new(Mutex::new(WriteStats::default()));
        let queue = Arc::new(QueueGauge::default());
        let status = Arc::new(IndexStatus::default());
        let (err2, stats2, queue2) = (error.clone(), stats.clone(), queue.clone());
        let status2 = status.clone();
        let addresses = cfg.peer_addresses;
        let handle = std::thread::Builder::new()
            .name("estudely-store".into())
            .spawn(move || {
                let owner = cfg.owner.clone();
                let mut store = match open().and_then(|s| load(s, &owner)) {
                    Ok((store, opened)) => {
                        stats2
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .leases_swept = opened.swept;
                        let _ = opened_tx.send(Ok(opened));
                        store
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                let mut w = Writer {
                    conn: Conn::new(store.as_mut(), status2, stats2.clone()),
                    cfg,
                    batch: Batch::default(),
                    batch_keys: HashSet::new(),
                    rows: 0,
                    stats: stats2,
                    known_tx,
                    stale_tx,
                    queue: queue2,
                    since_cap: 0,
                    size_cap: prune::RunningSizeCap::default(),
                };
                if let Err(e) = w.serve(&rx) {
                    warn!(target: LOG_TARGET, "index: {e:#}");
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
            stale_rx,
            error,
            stats,
            queue,
            outbox: RefCell::new(Outbox::new(addresses)),
            claims: RefCell::new((Vec::new(), None)),
            name: String::new(),
            sent_at: RefCell::new(Instant::now()),
            handle: Some(handle),
            status,
            held: RefCell::new(Held::default()),
        };
        Ok((thread, opened))
    }

    /// Queue `req`, waiting for room if the queue is full (the crawl waits for the store),
    /// unless the index is away: then `req` is held or dropped (see `held.rs`).
    pub(crate) fn send(&self, mut req: Req) -> anyhow::Result<()> {
        self.check()?;
        if self.status.available() {
            // What was held goes first, in order.
            self.release_held(Wait::WhileAvailable)?;
            if self.held.borrow().is_empty() {
                match self.queue_req(req, Wait::WhileAvailable)? {
                    None => return Ok(()),
                    Some(back) => req = back,
                }
            }
        }
        let kept = self.held.borrow_mut().keep(req);
        match kept {
            Ok(()) => Ok(()),
            // Held to the cap: the crawl waits for the index after all (the last resort).
            Err(req) => {
                self.release_held(Wait::Always)?;
                self.queue_req(req, Wait::Always).map(drop)
            }
        }
    }

    /// Queue `req`; when the queue is full, wait for room as `wait` says, or give `req`
    /// back. Polled rather than blocked in `send`, so that the index going away is seen.
    fn queue_req(&self, mut req: Req, wait: Wait) -> anyhow::Result<Option<Req>> {
        let gone = || anyhow!("the index stopped (see above)");
        let mut pause = Duration::from_micros(50);
        let mut waited = false;
        loop {
            match self.tx.try_send(req) {
                Ok(()) => break,
                Err(std_mpsc::TrySendError::Full(back)) => {
                    let away = !self.status.available();
                    match wait {
                        Wait::No => return Ok(Some(back)),
                        Wait::WhileAvailable if away => return Ok(Some(back)),
                        Wait::Ending if away => self.status.stop(),
                        _ => {}
                    }
                    if !waited {
                        waited = true;
                        self.queue.waits.fetch_add(1, Ordering::Relaxed);
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(2));
                    req = back;
                }
                Err(std_mpsc::TrySendError::Disconnected(_)) => return Err(gone()),
            }
        }
        let len = self.queue.len.fetch_add(1, Ordering::Relaxed) + 1;
        self.queue.max.fetch_max(len, Ordering::Relaxed);
        Ok(None)
    }

    /// Queue what is held, in order, waiting for room as `wait` says; what cannot be
    /// queued stays held.
    fn release_held(&self, wait: Wait) -> anyhow::Result<()> {
        loop {
            let Some(req) = self.held.borrow_mut().pop() else {
                return Ok(());
            };
            if let Some(back) = self.queue_req(req, wait)? {
                self.held.borrow_mut().unpop(back);
                return Ok(());
            }
        }
    }

    /// Whether the index answers (false while the store thread reconnects).
    pub fn available(&self) -> bool {
        self.status.available()
    }

    /// The index's status, shared with the store thread.
    pub fn index_status(&self) -> Arc<IndexStatus> {
        self.status.clone()
    }

    /// What was held or dropped while the index was away.
    pub fn away(&self) -> AwayCounts {
        self.held.borrow().counts.clone()
    }

    /// Whether a new infohash may be searched: not while the index is away with
    /// [`CLAIMS_WHILE_AWAY`] claims waiting already (it is then counted as not searched).
    pub fn admits_new(&self) -> bool {
        if self.status.available() || self.claims_waiting() < CLAIMS_WHILE_AWAY {
            return true;
        }
        self.held.borrow_mut().counts.not_searched += 1;
        false
    }

    /// Record a sighting (summed with the others of its infohash and address, sent when
    /// due).
    pub fn sighting(&self, s: Sighting) -> anyhow::Result<()> {
        if !self.status.available() {
            // Nothing is sent while the index is away: summed within the outbox's room.
            if !self.outbox.borrow_mut().sighting_within_cap(s) {
                self.held.borrow_mut().counts.sightings_dropped += 1;
            }
            return Ok(());
        }
        let full = self.outbox.borrow_mut().sighting(s);
        if full {
            self.send_rows()?;
        }
        Ok(())
    }

    /// Add `n` to counter `name` (sent when due).
    pub fn count(&self, name: Cow<'static, str>, n: u64) {
        self.outbox.borrow_mut().count(name, n);
    }

    /// Ask whether `ih` is in the index (sent with the others at the next [`Self::poll`]);
    /// a yes comes back on `known_rx`.
    pub fn ask_known(&self, ih: InfoHash) -> anyhow::Result<()> {
        let full = self.outbox.borrow_mut().check(ih);
        if full {
            self.send_checks()?;
        }
        Ok(())
    }

    /// Once per turn of the crawl loop: send the questions, and the sums when due. While
    /// the index is away, only what must be held is (questions are dropped, sums wait).
    pub fn poll(&self) -> anyhow::Result<()> {
        self.check()?;
        if self.status.available() {
            // Back: what was held goes as the queue takes it, never waiting.
            self.release_held(Wait::No)?;
        }
        self.send_checks()?;
        self.send_claims()?;
        if self.sent_at.borrow().elapsed() >= SEND_EVERY && self.status.available() {
            self.send_rows()?;
        }
        Ok(())
    }

    /// Ask to claim `job` before fetching it; the answer goes to `to` (fetch or skip).
    /// Claims are sent together, [`CLAIMS_PER_REQUEST`] at most to a request, at the next
    /// [`Self::poll`], and only while the queue has room: a claim never makes the crawl
    /// wait for the database (the claims waiting are bounded by the fetch backlog).
    pub(crate) fn claim(&self, job: Job, to: &Handoff) {
        let mut claims = self.claims.borrow_mut();
        claims.0.push(job);
        if claims.1.is_none() {
            claims.1 = Some(to.clone());
        }
    }

    /// Claims still waiting to be sent.
    pub fn claims_waiting(&self) -> usize {
        self.claims.borrow().0.len()
    }

    /// Send every claim waiting, waiting for room if need be, and let go of the handoff.
    pub(crate) fn flush_claims(&self) -> anyhow::Result<()> {
        let (jobs, to) = std::mem::take(&mut *self.claims.borrow_mut());
        let Some(to) = to else {
            return Ok(());
        };
        let mut jobs = jobs.into_iter().peekable();
        while jobs.peek().is_some() {
            let batch: Vec<Job> = jobs.by_ref().take(CLAIMS_PER_REQUEST).collect();
            self.send(Req::Claims(batch, to.clone()))?;
        }
        Ok(())
    }

    fn send_claims(&self) -> anyhow::Result<()> {
        loop {
            let mut claims = self.claims.borrow_mut();
            let Some(to) = claims.1.clone() else {
                return Ok(());
            };
            // No new fetch while the index is away, nor before what was held is sent.
            let paused = !self.status.available() || !self.held.borrow().is_empty();
            if claims.0.is_empty() || self.queue.len() >= QUEUE_CAP / 2 || paused {
                return Ok(());
            }
            let n = claims.0.len().min(CLAIMS_PER_REQUEST);
            let batch: Vec<Job> = claims.0.drain(..n).collect();
            drop(claims);
            self.send(Req::Claims(batch, to))?;
        }
    }

    fn send_checks(&self) -> anyhow::Result<()> {
        if !self.outbox.borrow().has_checks() {
            return Ok(());
        }
        let checks = self.outbox.borrow_mut().take_checks();
        self.send(Req::Check(checks))
    }

    fn send_rows(&self) -> anyhow::Result<()> {
        *self.sent_at.borrow_mut() = Instant::now();
        if !self.outbox.borrow().has_rows() {
            return Ok(());
        }
        let (sightings, counters) = {
            let mut o = self.outbox.borrow_mut();
            (o.take_sightings(), o.take_counters())
        };
        if !sightings.is_empty() {
            self.send(Req::Sightings(sightings))?;
        }
        if !counters.is_empty() {
            self.send(Req::Counters(counters))?;
        }
        Ok(())
    }

    /// The store thread's error, if it stopped on one.
    pub fn check(&self) -> anyhow::Result<()> {
        match &*self.error.lock().unwrap_or_else(|p| p.into_inner()) {
            // A failed write names the index itself; other failures (a claim, a lookup) do
            // not: say which index, once.
            Some(e) if !self.name.is_empty() && !e.contains(&self.name) => {
                Err(anyhow!("index `{}`: {e}", self.name))
            }
            Some(e) => Err(anyhow!("index: {e}")),
            None => Ok(()),
        }
    }

    /// Ask for the keys of up to `limit` torrents last scraped before `before` (unix
    /// seconds), the stalest first; the answer comes on `stale_rx`.
    pub fn ask_stale(&self, before: i64, limit: usize) -> anyhow::Result<()> {
        self.send(Req::Stale(before, limit))
    }

    /// Store a re-scrape's result.
    pub fn estimate(&self, e: Estimate) -> anyhow::Result<()> {
        self.send(Req::Estimate(e))
    }

    /// Save good nodes for the next start.
    pub fn save_nodes(&self, nodes: Vec<CompactNode>) -> anyhow::Result<()> {
        self.send(Req::SaveNodes(nodes))
    }

    /// Send what waits (held included), commit it, and wait for that. Called at the end of
    /// a run: an index that is away then is waited for [`GIVE_UP_AT_STOP`] at most.
    pub fn flush(&self) -> anyhow::Result<()> {
        self.send_checks()?;
        self.send_rows()?;
        let (ack_tx, ack_rx) = std_mpsc::channel();
        self.release_held(Wait::Ending)?;
        self.queue_req(Req::Flush(ack_tx), Wait::Ending)?;
        loop {
            match ack_rx.recv_timeout(Duration::from_millis(100)) {
                Err(std_mpsc::RecvTimeoutError::Timeout) if !self.status.available() => {
                    self.status.stop()
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Ok(()) => break,
                Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    // No answer: the thread is ending on an error, which it records last.
                    while let Some(h) = &self.handle {
                        if h.is_finished() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    break;
                }
            }
        }
        self.check()
    }

    /// The write counters so far.
    pub fn stats(&self) -> WriteStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The queue's length, now and at most.
    pub fn queue(&self) -> Arc<QueueGauge> {
        self.queue.clone()
    }

    /// Send what waits, commit everything and stop the thread.
    pub fn finish(mut self) -> anyhow::Result<WriteStats> {
        // Claims still waiting are not sent: the crawl is over, nothing more is fetched.
        self.status.stop();
        let sent = self
            .send_checks()
            .and_then(|()| self.send_rows())
            .and_then(|()| self.release_held(Wait::Ending));
        let stats = self.stats.clone();
        drop(std::mem::replace(&mut self.tx, std_mpsc::sync_channel(0).0));
        if let Some(h) = self.handle.take() {
            h.join().map_err(|_| anyhow!("the store thread panicked"))?;
        }
        self.check()?;
        sent?;
        let s = stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Ok(s)
    }
}

/// Load what the pipeline needs from a freshly opened store, after sweeping expired
/// leases.
fn load(mut store: Box<dyn Store>, owner: &str) -> anyhow::Result<(Box<dyn Store>, Opened)> {
    let mut swept = store.sweep_leases()?;
    // A crawler of this host that is gone (killed, crashed) left leases that would keep
    // what it was fetching from us until they expire: take them back now.
    for other in store.lease_owners()? {
        if owner_is_gone(&other, owner) {
            swept += store.release_leases(&other)?;
        }
    }
    // Two passes (count, then fill) so that no list of 10 M keys is ever held; the first
    // layer of the filter is sized for what is there with room to grow, so a restart
    // leaves one layer however many the last run added.
    let mut torrents = 0usize;
    store.for_each_info_hash(&mut |_| torrents += 1)?;
    let key = rand::RngCore::next_u64(&mut rand::rngs::OsRng);
    let mut known = KnownFilter::new((torrents + torrents / 2).max(1 << 20), key);
    store.for_each_info_hash(&mut |ih| known.insert(&ih))?;
    // Pruned keys are known too: the database's answer for them stops the search.
    store.for_each_deleted(&mut |ih| known.insert(&ih))?;
    let nodes = store.load_nodes(estudely_crawl::state::MAX_SAVED)?;
    let opened = Opened {
        torrents,
        known,
        nodes,
        kind: store.kind(),
        swept,
    };
    Ok((store, opened))
}

/// Whether the crawler named `other` (`host:pid:tag`, as `run` names itself) runs on this
/// host (`me`'s) and is gone: its process is not running, or it had our pid (a pid is only
/// reused once its process is gone). Owners named otherwise (`--owner`) are never judged.
pub(crate) fn owner_is_gone(other: &str, me: &str) -> bool {
    fn parts(o: &str) -> Option<(&str, u32)> {
        let mut it = o.rsplitn(3, ':');
        let _tag = it.next()?;
        let pid = it.next()?.parse().ok()?;
        Some((it.next()?, pid))
    }
    let (Some((host, pid)), Some((my_host, my_pid))) = (parts(other), parts(me)) else {
        return false;
    };
    other != me
        && host == my_host
        && (pid == my_pid || !std::path::Path::new(&format!("/proc/{pid}")).exists())
}

struct Writer<'a> {
    /// The store, every call through [`Conn::run`] (it reconnects).
    conn: Conn<'a>,
    cfg: StoreConfig,
    batch: Batch,
    /// The keys of the torrents in `batch` (a hybrid's two), known before they are committed.
    batch_keys: HashSet<InfoHash>,
    rows: usize,
    stats: Arc<Mutex<WriteStats>>,
    known_tx: std_mpsc::Sender<InfoHash>,
    stale_tx: std_mpsc::Sender<Vec<InfoHash>>,
    queue: Arc<QueueGauge>,
    /// Torrents written since the caps were last checked.
    since_cap: u64,
    /// `--max-db-size` as a count of torrents.
    size_cap: prune::RunningSizeCap,
}

impl Writer<'_> {
    fn serve(&mut self, rx: &std_mpsc::Receiver<Req>) -> anyhow::Result<()> {
        let mut due = Instant::now() + COMMIT_EVERY;
        let mut sweep = Instant::now() + SWEEP_EVERY;
        let mut cap = Instant::now() + CAP_EVERY;
        self.enforce_caps()?;
        loop {
            let wait = due.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(req) => {
                    self.queue.len.fetch_sub(1, Ordering::Relaxed);
                    self.rows += req.rows();
                    self.handle(req)?;
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    self.commit()?;
                    return self.enforce_caps();
                }
            }
            // Checked after every request too: under a steady flow the wait never times
            // out, and the batch must still be committed on time.
            let now = Instant::now();
            if self.rows >= BATCH_ROWS || now >= due {
                self.commit()?;
                due = Instant::now() + COMMIT_EVERY;
            }
            if now >= sweep {
                sweep = now + SWEEP_EVERY;
                let n = self.conn.run(|s| s.sweep_leases())?;
                self.lock_stats().leases_swept += n;
            }
            if self.since_cap >= CAP_EVERY_TORRENTS || (now >= cap && self.since_cap > 0) {
                cap = now + CAP_EVERY;
                self.commit()?;
                self.enforce_caps()?;
            }
        }
    }

    fn handle(&mut self, req: Req) -> anyhow::Result<()> {
        match req {
            Req::Torrent(t) => {
                self.batch_keys.insert(t.info_hash);
                if let Some(v2) = t.info_hash_v2 {
                    self.batch_keys.insert(InfoHash(truncated(&v2)));
                }
                self.batch.torrents.push(*t);
            }
            Req::Sightings(v) => self.batch.sighting_sums.extend(v),
            Req::Counters(v) => {
                for (name, n) in v {
                    match self.batch.counters.iter_mut().find(|c| *c.0 == *name) {
                        Some(c) => c.1 += n,
                        None => self.batch.counters.push((name.into_owned(), n)),
                    }
                }
            }
            Req::Release(ih) => self.batch.release.push(ih),
            Req::Check(keys) => self.check(&keys)?,
            Req::Claims(jobs, to) => {
                // A release of one of these infohashes may be waiting: commit it first.
                if jobs
                    .iter()
                    .any(|j| self.batch.release.contains(&j.info_hash))
                {
                    self.commit()?;
                }
                // Those whose row waits in the batch are stored already: not asked. The
                // others in one request to the index.
                let asked: Vec<InfoHash> = jobs
                    .iter()
                    .map(|j| j.info_hash)
                    .filter(|k| !self.batch_keys.contains(k))
                    .collect();
                let (owner, lease) = (&self.cfg.owner, self.cfg.lease);
                let answers = match asked.is_empty() {
                    true => Vec::new(),
                    false => self.conn.run(|s| s.claim_many(&asked, owner, lease))?,
                };
                let granted: HashSet<InfoHash> = asked
                    .iter()
                    .zip(answers)
                    .filter_map(|(k, yes)| yes.then_some(*k))
                    .collect();
                for job in jobs {
                    if granted.contains(&job.info_hash) {
                        to.fetch(job);
                    } else {
                        self.lock_stats().claims_refused += 1;
                        to.skip(job.info_hash);
                    }
                }
            }
            Req::SaveNodes(nodes) => {
                let keep = estudely_crawl::state::MAX_SAVED * 4;
                let now = unix_now();
                self.conn.run(|s| s.save_nodes(&nodes, now, keep))?;
            }
            Req::Flush(ack) => {
                self.commit()?;
                let _ = ack.send(());
            }
            Req::Stale(before, limit) => {
                self.commit()?;
                let keys = self.conn.run(|s| s.stale_estimates(before, limit))?;
                let _ = self.stale_tx.send(keys);
            }
            Req::Estimate(e) => self.batch.estimates.push(e),
        }
        Ok(())
    }

    /// Answer "is it known?" for `keys`: waiting in this batch, or committed (one query
    /// per [`MAX_KEYS_PER_QUERY`] keys).
    fn check(&mut self, keys: &[InfoHash]) -> anyhow::Result<()> {
        let mut known: Vec<InfoHash> = Vec::new();
        let mut ask: Vec<InfoHash> = Vec::with_capacity(keys.len());
        for ih in keys {
            if self.batch_keys.contains(ih) {
                known.push(*ih);
            } else {
                ask.push(*ih);
            }
        }
        let mut deleted = HashSet::new();
        for chunk in ask.chunks(MAX_KEYS_PER_QUERY) {
            let found = self.conn.run(|s| s.known_among(chunk))?;
            // Asked again only of the known ones (a few): pruned keys are counted apart.
            if !found.is_empty() {
                deleted.extend(self.conn.run(|s| s.deleted_among(&found))?);
            }
            known.extend(found);
        }
        let now = unix_now();
        let mut s = self.lock_stats();
        s.lookups += keys.len() as u64;
        s.known += known.len() as u64;
        s.skipped_deleted += deleted.len() as u64;
        drop(s);
        // Also in the index, for `estudely stats` (the ingest benchmark reads them there).
        let mut counts = vec![(LOOKUPS_COUNTER, keys.len()), (KNOWN_COUNTER, known.len())];
        if !deleted.is_empty() {
            counts.push((SKIPPED_DELETED_COUNTER, deleted.len()));
        }
        self.handle(Req::Counters(
            counts
                .into_iter()
                .map(|(name, n)| (Cow::Borrowed(name), n as u64))
                .collect(),
        ))?;
        for ih in known {
            if !deleted.contains(&ih) {
                self.batch.seen.push((ih, now));
            }
            let _ = self.known_tx.send(ih);
        }
        Ok(())
    }

    /// Prune the oldest torrents beyond `--max-torrents` / `--max-db-size`, if set (the
    /// blocklist keeps them out after), in transactions of
    /// [`estudely_store::prune::PRUNE_CHUNK`]. The size cap is a count of torrents (see
    /// [`prune::RunningSizeCap`]). The space freed is reused by the next rows; the file is
    /// not rewritten while the crawl runs.
    fn enforce_caps(&mut self) -> anyhow::Result<()> {
        self.since_cap = 0;
        if self.cfg.max_torrents.is_none() && self.cfg.max_db_size.is_none() {
            return Ok(());
        }
        let mut max = self.cfg.max_torrents;
        if let Some(cap) = self.cfg.max_db_size {
            let torrents = self.conn.run(|s| s.torrent_count())?;
            let used = self.conn.run(|s| s.db_size())?.used;
            if let Some(n) = self.size_cap.max_torrents(cap, torrents, used) {
                max = Some(max.map_or(n, |m| m.min(n)));
            }
        }
        let rules = prune::PruneRules {
            max_torrents: max,
            ..prune::PruneRules::default()
        };
        let opts = prune::PruneOptions {
            reclaim: false,
            examples: 0,
            now: unix_now(),
            ..prune::PruneOptions::default()
        };
        // Pruning again from the start after a lost connection is harmless: it reads what
        // is there (what a lost attempt had already pruned is not counted, though).
        let report = self.conn.run(|s| prune::prune(s, &rules, &opts))?;
        let n = report.deleted.torrents;
        if n > 0 {
            self.size_cap.freeze();
            tracing::info!(target: LOG_TARGET, "pruned the {n} oldest torrents to keep under the caps");
            self.lock_stats().pruned += n;
            let c = (Cow::Borrowed(PRUNED_COUNTER), n);
            self.handle(Req::Counters(vec![c]))?;
            self.commit()?;
        }
        Ok(())
    }

    fn lock_stats(&self) -> std::sync::MutexGuard<'_, WriteStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn commit(&mut self) -> anyhow::Result<()> {
        self.rows = 0;
        if self.batch.is_empty() {
            return Ok(());
        }
        self.batch.max_sightings = Some(self.cfg.max_sightings);
        // Kept until written: after a lost connection, the same batch is written again.
        let (owner, batch) = (&self.cfg.owner, &self.batch);
        self.conn.run(|s| s.write(owner, batch))?;
        let took = self.conn.last_took();
        let batch = std::mem::take(&mut self.batch);
        self.batch_keys.clear();
        record_write(took, &batch);
        self.since_cap += batch.torrents.len() as u64;
        let mut s = self.lock_stats();
        s.commits += 1;
        s.torrents += batch.torrents.len() as u64;
        s.rows += (batch.torrents.len() + batch.sighting_rows() + batch.seen.len()) as u64;
        s.busy += took;
        Ok(())
    }
}

/// The first 20 bytes of a v2 infohash: its key on the DHT.
pub(crate) fn truncated(v2: &[u8; 32]) -> [u8; 20] {
    let mut key = [0; 20];
    key.copy_from_slice(&v2[..20]);
    key
}

/// Write latency and rows, for the metrics.
fn record_write(took: Duration, batch: &Batch) {
    let rows = batch.torrents.len() + batch.sighting_rows() + batch.seen.len();
    crate::metrics::record_db_write(took.as_secs_f64(), rows as u64);
}

#[cfg(test)]
mod tests;
