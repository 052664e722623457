//! The store thread of `estudely run`: it owns the index's connection (a blocking SQLite or
//! PostgreSQL client must not run on the crawl's tokio thread) and batches writes: a
//! transaction every [`COMMIT_EVERY`] or [`BATCH_ROWS`] rows, whichever comes first, so a
//! `kill -9` loses at most that much and never a committed row. Questions (is it known? may
//! I fetch it?) are answered in order with the writes, so an answer sees every torrent
//! written before it, committed or still waiting in the batch.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context as _};
use estudely_krpc::{CompactNode, InfoHash};
use tracing::warn;

use super::filter::KnownFilter;
use super::Handoff;
use crate::fetch::Job;
use crate::store::{Batch, DbUrl, Sighting, Store, Torrent};

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

/// A request to the store thread.
pub(crate) enum Req {
    Torrent(Box<Torrent>),
    Sighting(Sighting),
    Counter(Cow<'static, str>, u64),
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
    pub(crate) known_rx: std_mpsc::Receiver<InfoHash>,
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
                    batch_keys: HashSet::new(),
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

    pub(crate) fn send(&self, req: Req) -> anyhow::Result<()> {
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
    /// The keys of the torrents in `batch` (a hybrid's two), known before they are committed.
    batch_keys: HashSet<InfoHash>,
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
                Req::Torrent(t) => {
                    self.batch_keys.insert(t.info_hash);
                    if let Some(v2) = t.info_hash_v2 {
                        self.batch_keys.insert(InfoHash(truncated(&v2)));
                    }
                    self.batch.torrents.push(*t);
                }
                Req::Sighting(s) => self.batch.sightings.push(s),
                Req::Counter(name, n) => {
                    match self.batch.counters.iter_mut().find(|c| *c.0 == *name) {
                        Some(c) => c.1 += n,
                        None => self.batch.counters.push((name.into_owned(), n)),
                    }
                }
                Req::Release(ih) => self.batch.release.push(ih),
                Req::Check(ih) => {
                    // Waiting in this batch, or committed.
                    if self.batch_keys.contains(&ih) || self.store.contains(&ih)? {
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
                    let waiting = self.batch_keys.contains(&job.info_hash);
                    if !waiting && self.store.claim(&job.info_hash, &self.owner, self.lease)? {
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
        self.batch_keys.clear();
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

/// The first 20 bytes of a v2 infohash: its key on the DHT.
pub(crate) fn truncated(v2: &[u8; 32]) -> [u8; 20] {
    let mut key = [0; 20];
    key.copy_from_slice(&v2[..20]);
    key
}

/// Write latency and rows, for the metrics.
fn record_write(took: Duration, batch: &Batch) {
    let rows = batch.torrents.len() + batch.sightings.len() + batch.seen.len();
    crate::metrics::record_db_write(took.as_secs_f64(), rows as u64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::fixtures::torrent;
    use crate::store::Source;
    use tokio::sync::mpsc;

    #[test]
    fn writes_batches_answers_in_order_and_commits_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let url = DbUrl::Sqlite(dir.path().join("i.sqlite"));
        let hour = Duration::from_secs(3600);
        let (st, opened) = StoreThread::start(url.clone(), "me".into(), hour).unwrap();
        assert_eq!((opened.torrents, opened.kind), (0, "sqlite"));
        let stored = torrent(1, b"one", 10);
        st.send(Req::Torrent(Box::new(stored.clone()))).unwrap();
        let sighting = Sighting {
            info_hash: stored.info_hash,
            addr: "127.0.0.1:6881".parse().unwrap(),
            source: Source::GetPeers,
            at: 10,
        };
        st.send(Req::Sighting(sighting)).unwrap();
        st.send(Req::Counter("fetch_failed_timeout".into(), 2))
            .unwrap();
        // Asked after the write: the answer sees it (same thread, in order).
        st.send(Req::Check(stored.info_hash)).unwrap();
        st.send(Req::Check(InfoHash([2; 20]))).unwrap();
        let (jobs_tx, mut jobs) = mpsc::channel(4);
        let (skip_tx, mut skipped) = mpsc::channel(4);
        let to = Handoff {
            jobs: jobs_tx,
            skipped: skip_tx,
        };
        let job = |i: u8| Job {
            info_hash: InfoHash([i; 20]),
            peers: vec![],
        };
        st.send(Req::Claim(job(1), to.clone())).unwrap();
        st.send(Req::Claim(job(3), to)).unwrap();
        st.flush().unwrap();
        assert_eq!(st.known_rx.try_recv().ok(), Some(stored.info_hash), "known");
        assert!(st.known_rx.try_recv().is_err(), "only the stored one");
        assert_eq!(skipped.try_recv().ok(), Some(InfoHash([1; 20])), "stored");
        assert_eq!(
            jobs.try_recv().ok().map(|j| j.info_hash),
            Some(InfoHash([3; 20]))
        );
        let stats = st.finish().unwrap();
        assert_eq!(
            (stats.torrents, stats.claims_refused, stats.known),
            (1, 1, 1)
        );

        // Committed: a second start sees it, and a claim by another owner waits for ours.
        let (st, opened) = StoreThread::start(url, "other".into(), hour).unwrap();
        assert_eq!(opened.torrents, 1);
        assert!(opened.known.maybe_contains(&stored.info_hash));
        let mut s = DbUrl::Sqlite(dir.path().join("i.sqlite"))
            .open_read_only()
            .unwrap();
        let counters = s.stats().unwrap().counters;
        assert_eq!(counters, [("fetch_failed_timeout".to_owned(), 2)]);
        st.finish().unwrap();
    }
}
