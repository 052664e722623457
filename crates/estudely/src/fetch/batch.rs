//! Many infohashes at once: [`fetch_many`] / [`fetch_stream`] run [`Job`]s under a
//! semaphore and hand back [`InfohashResult`]s through a [`FetchBatch`] as they complete.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use estudely_krpc::InfoHash;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::{fetch_one_until, FailureKind, FetchConfig, FetchFailure, FetchedMetadata, Transport};

/// One infohash and the peers to try for it, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The DHT key: a v1 infohash, or a v2 one truncated to 20 bytes.
    pub info_hash: InfoHash,
    /// Candidate peers; the first [`FetchConfig::peer_attempts`] distinct ones are tried.
    pub peers: Vec<SocketAddr>,
}

/// One failed attempt at one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The peer tried.
    pub peer: SocketAddr,
    /// Why it failed.
    pub failure: FetchFailure,
    /// How long it took.
    pub elapsed: Duration,
}

/// What became of one [`Job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfohashResult {
    /// The job's infohash.
    pub info_hash: InfoHash,
    /// The verified metadata and the peer that gave it, if any attempt succeeded.
    pub metadata: Option<FetchedMetadata>,
    /// The failed attempts, in the order they were made.
    pub failed: Vec<Attempt>,
    /// Whether the batch deadline cut the job short (or kept it from starting).
    pub deadline_hit: bool,
    /// Time from the job's start to its end.
    pub elapsed: Duration,
}

impl InfohashResult {
    /// Attempts made: the failed ones plus the successful one.
    pub fn attempts(&self) -> usize {
        self.failed.len() + usize::from(self.metadata.is_some())
    }
}

/// Counts of infohashes and attempts by outcome. Its [`Display`](fmt::Display) is the
/// summary line, e.g. `5/6 infohashes, 9 attempts: 5 ok, 2 timeout, 1 refused, 1 hash_mismatch`
/// (failure kinds by count, ties in [`FailureKind::ALL`] order; kinds with no attempt left
/// out). Once any metadata came over uTP, the successes are split by transport:
/// `5 ok (3 tcp, 2 utp)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// Infohashes reported.
    pub infohashes: u64,
    /// Infohashes whose metadata was obtained (= successful attempts).
    pub obtained: u64,
    /// Failed attempts by kind.
    pub failures: BTreeMap<FailureKind, u64>,
    /// Of the infohashes obtained, those whose metadata came over uTP (the others came over
    /// TCP).
    pub obtained_utp: u64,
    /// Infohashes obtained over an MSE (encrypted) connection, among `obtained`.
    pub encrypted: u64,
}

impl FetchStats {
    /// Count one result.
    pub fn record(&mut self, r: &InfohashResult) {
        self.infohashes += 1;
        self.obtained += u64::from(r.metadata.is_some());
        self.obtained_utp += u64::from(
            r.metadata
                .as_ref()
                .is_some_and(|m| m.transport == Transport::Utp),
        );
        self.encrypted += u64::from(r.metadata.as_ref().is_some_and(|m| m.encryption.is_mse()));
        for a in &r.failed {
            *self.failures.entry(a.failure.kind).or_default() += 1;
        }
    }

    /// All attempts, successful or not.
    pub fn attempts(&self) -> u64 {
        self.obtained + self.failures.values().sum::<u64>()
    }

    /// Infohashes obtained over `transport`.
    pub fn obtained_over(&self, transport: Transport) -> u64 {
        match transport {
            Transport::Tcp => self.obtained.saturating_sub(self.obtained_utp),
            Transport::Utp => self.obtained_utp,
        }
    }

    /// Failed attempts of one kind.
    pub fn failed(&self, kind: FailureKind) -> u64 {
        self.failures.get(&kind).copied().unwrap_or(0)
    }
}

impl fmt::Display for FetchStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attempts = self.attempts();
        write!(
            f,
            "{}/{} infohashes, {attempts} attempt{}",
            self.obtained,
            self.infohashes,
            if attempts == 1 { "" } else { "s" }
        )?;
        if attempts == 0 {
            return Ok(());
        }
        write!(f, ": {} ok", self.obtained)?;
        if self.obtained_utp > 0 {
            write!(
                f,
                " ({} tcp, {} utp)",
                self.obtained_over(Transport::Tcp),
                self.obtained_utp
            )?;
        }
        if self.encrypted > 0 {
            write!(f, " ({} encrypted)", self.encrypted)?;
        }
        let mut kinds: Vec<(FailureKind, u64)> = self
            .failures
            .iter()
            .filter(|(_, &n)| n > 0)
            .map(|(&k, &n)| (k, n))
            .collect();
        kinds.sort_by_key(|&(k, n)| (std::cmp::Reverse(n), k));
        for (k, n) in kinds {
            write!(f, ", {n} {k}")?;
        }
        Ok(())
    }
}

/// A running batch: results in completion order, and the running [`FetchStats`].
/// Dropping it cancels every attempt still running.
#[derive(Debug)]
pub struct FetchBatch {
    results: mpsc::Receiver<InfohashResult>,
    stats: FetchStats,
    coordinator: JoinHandle<()>,
}

impl FetchBatch {
    /// The next finished infohash (counted into [`stats`](Self::stats)), or `None` once
    /// every job has been reported.
    pub async fn next(&mut self) -> Option<InfohashResult> {
        let r = self.results.recv().await?;
        self.stats.record(&r);
        Some(r)
    }

    /// Counts over the results returned by [`next`](Self::next) so far.
    pub fn stats(&self) -> &FetchStats {
        &self.stats
    }
}

impl Drop for FetchBatch {
    fn drop(&mut self) {
        self.coordinator.abort();
    }
}

/// Fetch the metadata of every job, [`FetchConfig::concurrency`] infohashes at a time.
/// Must be called within a tokio runtime.
pub fn fetch_many(jobs: impl IntoIterator<Item = Job>, cfg: FetchConfig) -> FetchBatch {
    let (tx, rx) = mpsc::unbounded_channel();
    for job in jobs {
        let _ = tx.send(job);
    }
    drop(tx);
    spawn(JobSource::Unbounded(rx), cfg)
}

/// Like [`fetch_many`], for jobs that arrive over time (e.g. from a crawl). The batch ends
/// once the sender is dropped and every job is done, or at the overall deadline.
pub fn fetch_stream(jobs: mpsc::Receiver<Job>, cfg: FetchConfig) -> FetchBatch {
    spawn(JobSource::Bounded(jobs), cfg)
}

enum JobSource {
    Bounded(mpsc::Receiver<Job>),
    Unbounded(mpsc::UnboundedReceiver<Job>),
}

impl JobSource {
    async fn recv(&mut self) -> Option<Job> {
        match self {
            JobSource::Bounded(rx) => rx.recv().await,
            JobSource::Unbounded(rx) => rx.recv().await,
        }
    }

    fn try_recv(&mut self) -> Option<Job> {
        match self {
            JobSource::Bounded(rx) => rx.try_recv().ok(),
            JobSource::Unbounded(rx) => rx.try_recv().ok(),
        }
    }
}

fn spawn(jobs: JobSource, cfg: FetchConfig) -> FetchBatch {
    let (tx, rx) = mpsc::channel(cfg.concurrency.max(1));
    let coordinator = tokio::spawn(coordinate(jobs, Arc::new(cfg), tx));
    FetchBatch {
        results: rx,
        stats: FetchStats::default(),
        coordinator,
    }
}

/// Sleep until `deadline`, or forever without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// One lock per peer address: a peer gets one metadata connection from us at a time, even
/// when several of its torrents are being fetched. That is politer, and some clients
/// (Transmission 3.00) close a second connection from an IP whose first is still open.
#[derive(Default)]
struct PeerLocks(std::sync::Mutex<HashMap<SocketAddr, Arc<tokio::sync::Mutex<()>>>>);

impl PeerLocks {
    fn get(&self, peer: SocketAddr) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(peer).or_default())
    }

    /// Forget `peer`'s lock when nobody else holds or waits for it (keeps the map bounded).
    fn release(&self, peer: SocketAddr, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if Arc::strong_count(&lock) <= 2 {
            map.remove(&peer);
        }
    }
}

async fn coordinate(mut jobs: JobSource, cfg: Arc<FetchConfig>, out: mpsc::Sender<InfohashResult>) {
    let deadline = cfg.overall_timeout.map(|d| Instant::now() + d);
    let locks = Arc::new(PeerLocks::default());
    let permits = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => p,
            () = until(deadline) => break,
        };
        let Ok(permit) = permit else { break };
        let job = tokio::select! {
            j = jobs.recv() => j,
            () = until(deadline) => break,
        };
        let Some(job) = job else { break };
        let (cfg, out, locks) = (Arc::clone(&cfg), out.clone(), Arc::clone(&locks));
        tasks.spawn(async move {
            let result = run_job(job, &cfg, deadline, &locks).await;
            drop(permit);
            let _ = out.send(result).await;
        });
        while tasks.try_join_next().is_some() {}
    }
    // At the deadline: report the jobs already queued as never started.
    if deadline.is_some_and(|d| Instant::now() >= d) {
        while let Some(job) = jobs.try_recv() {
            let unstarted = InfohashResult {
                info_hash: job.info_hash,
                metadata: None,
                failed: Vec::new(),
                deadline_hit: true,
                elapsed: Duration::ZERO,
            };
            if out.send(unstarted).await.is_err() {
                break;
            }
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Try the job's peers in order until one gives the metadata.
async fn run_job(
    job: Job,
    cfg: &FetchConfig,
    deadline: Option<Instant>,
    locks: &PeerLocks,
) -> InfohashResult {
    let start = Instant::now();
    let far = start + Duration::from_secs(86_400 * 365);
    let mut result = InfohashResult {
        info_hash: job.info_hash,
        metadata: None,
        failed: Vec::new(),
        deadline_hit: false,
        elapsed: Duration::ZERO,
    };
    let mut tried: Vec<SocketAddr> = Vec::new();
    for peer in job.peers {
        if tried.len() >= cfg.peer_attempts || tried.contains(&peer) {
            continue;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            result.deadline_hit = true;
            break;
        }
        tried.push(peer);
        let t0 = Instant::now();
        let until = deadline.unwrap_or(far);
        let lock = locks.get(peer);
        let outcome = {
            let Ok(_turn) = tokio::time::timeout_at(until, lock.lock()).await else {
                result.deadline_hit = true;
                locks.release(peer, lock);
                break;
            };
            fetch_one_until(peer, job.info_hash.0, cfg, until).await
        };
        locks.release(peer, lock);
        match outcome {
            Ok(m) => {
                tracing::debug!(%peer, info_hash = %job.info_hash, "metadata fetched");
                result.metadata = Some(m);
                break;
            }
            Err(failure) => {
                tracing::debug!(%peer, info_hash = %job.info_hash, %failure, "attempt failed");
                result.deadline_hit |= deadline.is_some_and(|d| Instant::now() >= d);
                result.failed.push(Attempt {
                    peer,
                    failure,
                    elapsed: t0.elapsed(),
                });
            }
        }
    }
    result.elapsed = start.elapsed();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(kind: FailureKind) -> Attempt {
        Attempt {
            peer: "127.0.0.1:1".parse().unwrap(),
            failure: FetchFailure::new(kind, "x"),
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn summary_line() {
        let mut s = FetchStats::default();
        assert_eq!(s.to_string(), "0/0 infohashes, 0 attempts");
        let none = InfohashResult {
            info_hash: InfoHash([1; 20]),
            metadata: None,
            failed: vec![
                attempt(FailureKind::HashMismatch),
                attempt(FailureKind::Timeout),
                attempt(FailureKind::Refused),
                attempt(FailureKind::Timeout),
            ],
            deadline_hit: false,
            elapsed: Duration::ZERO,
        };
        s.record(&none);
        assert_eq!(
            s.to_string(),
            "0/1 infohashes, 4 attempts: 0 ok, 2 timeout, 1 refused, 1 hash_mismatch"
        );
        assert_eq!(s.failed(FailureKind::Timeout), 2);
        assert_eq!(s.attempts(), 4);
    }

    fn obtained(transport: Transport) -> InfohashResult {
        let info = b"d6:lengthi1e4:name1:a12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
        InfohashResult {
            info_hash: InfoHash([2; 20]),
            metadata: Some(FetchedMetadata {
                peer: "127.0.0.1:1".parse().unwrap(),
                info: info.to_vec(),
                summary: estudely_peer_wire::InfoSummary::parse(info).unwrap(),
                client: None,
                transport,
                encryption: Default::default(),
            }),
            failed: vec![],
            deadline_hit: false,
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn summary_line_splits_successes_by_transport_once_utp_is_used() {
        let mut s = FetchStats::default();
        s.record(&obtained(Transport::Tcp));
        assert_eq!(s.to_string(), "1/1 infohashes, 1 attempt: 1 ok");
        s.record(&obtained(Transport::Utp));
        s.record(&obtained(Transport::Utp));
        assert_eq!(
            s.to_string(),
            "3/3 infohashes, 3 attempts: 3 ok (1 tcp, 2 utp)"
        );
        assert_eq!(s.obtained_over(Transport::Tcp), 1);
        assert_eq!(s.obtained_over(Transport::Utp), 2);
    }
}
