//! Many infohashes at once: [`fetch_many`] / [`fetch_stream`] run [`Job`]s and hand back
//! [`InfohashResult`]s through a [`FetchBatch`] as they complete.
//!
//! Two bounds, taken in this order per attempt: the peer's turn (one connection per peer
//! address at a time, `peers.rs`), then one of [`FetchConfig::concurrency`] connection
//! permits. A job waiting for a busy peer holds no permit, so jobs queued behind one peer
//! (a seedbox with thousands of torrents, a dead address many torrents list) cannot take
//! every connection while the others wait: that head-of-line blocking once held a run at
//! 10 fetches/s with nothing connected. The jobs in progress are bounded apart (a few
//! dozen per permit).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use estudely_krpc::InfoHash;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::peers::{PeerLocks, Refusals, REFUSAL_MEMORY};
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

/// Fetch the metadata of every job, over at most [`FetchConfig::concurrency`] connections
/// at a time. Must be called within a tokio runtime.
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
    let coordinator = tokio::spawn(coordinate(jobs, cfg, tx));
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

/// Tasks (infohashes in progress) per connection permit: the ones beyond the permits wait
/// for a peer another job is connected to. A waiting task is small (the attempt's future is
/// boxed only once it runs), and the more may wait, the longer a busy peer can take before
/// the jobs queued behind it fill every slot.
const TASKS_PER_PERMIT: usize = 32;

/// Tasks at most, whatever the concurrency.
const MAX_TASKS: usize = 16_384;

/// How many jobs may be in progress at once under `concurrency` connection permits.
fn task_slots(concurrency: usize) -> usize {
    concurrency
        .saturating_mul(TASKS_PER_PERMIT)
        .min(MAX_TASKS)
        .max(concurrency)
}

/// What a batch's jobs share.
struct Shared {
    cfg: FetchConfig,
    deadline: Option<Instant>,
    /// One connection per peer at a time.
    locks: PeerLocks,
    /// Connections at once ([`FetchConfig::concurrency`]), taken once a peer's turn is held.
    permits: Semaphore,
    /// Peers that refused lately.
    refusals: std::sync::Mutex<Refusals>,
}

impl Shared {
    fn refused(&self, peer: SocketAddr) -> bool {
        let mut r = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        r.refused(peer, Instant::now())
    }

    fn remember_refusal(&self, peer: SocketAddr) {
        let mut r = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        r.remember(peer, Instant::now());
    }
}

async fn coordinate(mut jobs: JobSource, cfg: FetchConfig, out: mpsc::Sender<InfohashResult>) {
    let deadline = cfg.overall_timeout.map(|d| Instant::now() + d);
    let concurrency = cfg.concurrency.max(1);
    let shared = Arc::new(Shared {
        cfg,
        deadline,
        locks: PeerLocks::default(),
        permits: Semaphore::new(concurrency),
        refusals: Default::default(),
    });
    // Bounds the tasks in existence, not the connections: a job waiting for a busy peer
    // holds a slot but no connection permit.
    let slots = Arc::new(Semaphore::new(task_slots(concurrency)));
    let mut tasks = JoinSet::new();
    loop {
        let slot = tokio::select! {
            s = Arc::clone(&slots).acquire_owned() => s,
            () = until(deadline) => break,
        };
        let Ok(slot) = slot else { break };
        let job = tokio::select! {
            j = jobs.recv() => j,
            () = until(deadline) => break,
        };
        let Some(job) = job else { break };
        let (shared, out) = (Arc::clone(&shared), out.clone());
        tasks.spawn(async move {
            let result = run_job(job, &shared).await;
            // The slot goes once the result is handed over: a consumer that does not keep
            // up holds the batch back instead of finished tasks piling up.
            let _ = out.send(result).await;
            drop(slot);
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

/// Try the job's first [`FetchConfig::peer_attempts`] distinct peers until one gives the
/// metadata: each in order, except that a peer another job is connected to is tried after
/// those nobody is (and waited for only when all are busy). A peer that refused lately
/// fails at once as `refused_recently`.
async fn run_job(job: Job, shared: &Shared) -> InfohashResult {
    let (cfg, deadline) = (&shared.cfg, shared.deadline);
    let start = Instant::now();
    let until = deadline.unwrap_or(start + Duration::from_secs(86_400 * 365));
    let mut result = InfohashResult {
        info_hash: job.info_hash,
        metadata: None,
        failed: Vec::new(),
        deadline_hit: false,
        elapsed: Duration::ZERO,
    };
    let mut left: Vec<SocketAddr> = Vec::new();
    for peer in job.peers {
        if left.len() >= cfg.peer_attempts {
            break;
        }
        if !left.contains(&peer) {
            left.push(peer);
        }
    }
    while !left.is_empty() {
        if Instant::now() >= until {
            result.deadline_hit = true;
            break;
        }
        let t0 = Instant::now();
        // Known to refuse: no need of its turn.
        if let Some(i) = left.iter().position(|&p| shared.refused(p)) {
            let peer = left.remove(i);
            result.failed.push(refused_recently(peer));
            continue;
        }
        let (i, turn) = match shared.locks.free(&left) {
            Some(free) => free,
            None => match tokio::time::timeout_at(until, shared.locks.first_free(&left)).await {
                Ok(turn) => turn,
                Err(_) => {
                    result.deadline_hit = true;
                    break;
                }
            },
        };
        let peer = left.remove(i);
        // It may have refused the job that held its turn while this one waited.
        if shared.refused(peer) {
            drop(turn);
            result.failed.push(refused_recently(peer));
            continue;
        }
        let Ok(Ok(permit)) = tokio::time::timeout_at(until, shared.permits.acquire()).await else {
            result.deadline_hit = true;
            break;
        };
        // Boxed: a task waiting for a turn stays small.
        let outcome = Box::pin(fetch_one_until(peer, job.info_hash.0, cfg, until)).await;
        drop(permit);
        match outcome {
            Ok(m) => {
                tracing::debug!(%peer, info_hash = %job.info_hash, "metadata fetched");
                result.metadata = Some(m);
                break;
            }
            Err(failure) => {
                tracing::debug!(%peer, info_hash = %job.info_hash, %failure, "attempt failed");
                if failure.kind == FailureKind::Refused {
                    shared.remember_refusal(peer);
                }
                drop(turn);
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

/// The attempt not made at a peer that refused lately.
fn refused_recently(peer: SocketAddr) -> Attempt {
    Attempt {
        peer,
        failure: FetchFailure::new(
            FailureKind::RefusedRecently,
            format!(
                "not contacted: refused a connection less than {} min ago",
                REFUSAL_MEMORY.as_secs() / 60
            ),
        ),
        elapsed: Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a task waiting for a peer's turn holds: its job and this future, not the
    /// attempt's (boxed once it runs, tens of KB), so that thousands may wait.
    #[test]
    fn a_waiting_job_is_small() {
        let shared = Shared {
            cfg: FetchConfig::default(),
            deadline: None,
            locks: PeerLocks::default(),
            permits: Semaphore::new(1),
            refusals: Default::default(),
        };
        let job = Job {
            info_hash: InfoHash([1; 20]),
            peers: vec![],
        };
        let size = std::mem::size_of_val(&run_job(job, &shared));
        assert!(size <= 1024, "{size} bytes");
        assert_eq!(task_slots(32), 1024);
        assert_eq!(task_slots(4096), MAX_TASKS);
    }

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
