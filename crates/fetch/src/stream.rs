//! Turning a stream of `infohash,peer` rows (a crawl's output, read while the crawl runs)
//! into fetch [`Job`]s as the rows arrive: the [`Grouper`], without I/O or clock of its own.
//!
//! Rows of one infohash arrive over time, as the crawl's peer search finds them. An
//! infohash's first job starts [`GrouperConfig::linger`] after its first row (the rows of
//! one search reply come together), or at once when it has as many peers as
//! [`GrouperConfig::peer_attempts`], or at the end of the input. Peers that arrive while a
//! job runs are kept: if the job fails, a follow-up job tries them, until a peer gives the
//! metadata or `peer_attempts` peers have been tried in all, exactly as the first
//! `peer_attempts` peers of a whole file are tried in order. An infohash is then done: its
//! merged result is handed back once, and later rows for it are ignored.
//!
//! Bounded: at most [`GrouperConfig::max_active`] infohashes collecting or being fetched
//! (the caller stops feeding rows while [`Grouper::is_full`]), each with at most
//! `peers_per_infohash` peers, and at most [`GrouperConfig::max_done`] done infohashes
//! remembered (a row for an infohash forgotten since starts it afresh).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use estudely_krpc::InfoHash;

use super::{InfohashResult, Job};

/// How rows become jobs. See the field docs for the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrouperConfig {
    /// Wait after an infohash's first row before fetching it, for more of its peers.
    /// Default 1 s.
    pub linger: Duration,
    /// Distinct peers kept per infohash (the first ones). Default 20.
    pub peers_per_infohash: usize,
    /// Peers tried per infohash in all, in order, until one gives the metadata. Default 5.
    pub peer_attempts: usize,
    /// Infohashes collecting rows or being fetched at once. Default 4,096.
    pub max_active: usize,
    /// Done infohashes remembered, so that their late rows are ignored. Default 65,536.
    pub max_done: usize,
}

impl Default for GrouperConfig {
    fn default() -> Self {
        GrouperConfig {
            linger: Duration::from_secs(1),
            peers_per_infohash: 20,
            peer_attempts: 5,
            max_active: 4_096,
            max_done: 65_536,
        }
    }
}

/// Counts of what the rows did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrouperCounts {
    /// Rows taken.
    pub rows: u64,
    /// Peers left out because their infohash already had `peers_per_infohash` of them.
    pub capped: u64,
    /// Rows for an infohash already done, ignored.
    pub late: u64,
}

#[derive(Debug)]
struct Group {
    /// Distinct peers, in arrival order.
    peers: Vec<SocketAddr>,
    /// `peers[..handed]` went to jobs.
    handed: usize,
    /// Attempts made so far (from results).
    attempted: usize,
    /// Waiting to be handed on (else: a job is running).
    collecting: bool,
    /// Its first row's time: it is ready `linger` after.
    since: Instant,
    /// The results so far, merged.
    merged: InfohashResult,
}

/// Rows in, jobs and merged results out. Drive it with [`row`](Grouper::row),
/// [`next_job`](Grouper::next_job), [`result`](Grouper::result) and
/// [`close_input`](Grouper::close_input); sleep until [`next_wake`](Grouper::next_wake).
#[derive(Debug)]
pub struct Grouper {
    cfg: GrouperConfig,
    groups: HashMap<InfoHash, Group>,
    /// Collecting infohashes by first-row time (stale entries skipped).
    waiting: VecDeque<(Instant, InfoHash)>,
    /// Collecting infohashes to hand on now.
    ready: VecDeque<InfoHash>,
    done: HashSet<InfoHash>,
    done_order: VecDeque<InfoHash>,
    input_closed: bool,
    counts: GrouperCounts,
}

impl Grouper {
    /// An empty grouper.
    pub fn new(cfg: GrouperConfig) -> Grouper {
        Grouper {
            cfg,
            groups: HashMap::new(),
            waiting: VecDeque::new(),
            ready: VecDeque::new(),
            done: HashSet::new(),
            done_order: VecDeque::new(),
            input_closed: false,
            counts: GrouperCounts::default(),
        }
    }

    /// What the rows did so far.
    pub fn counts(&self) -> GrouperCounts {
        self.counts
    }

    /// Infohashes active: collecting rows, or being fetched.
    pub fn active(&self) -> usize {
        self.groups.len()
    }

    /// As many infohashes as [`GrouperConfig::max_active`] are active: take no row now.
    pub fn is_full(&self) -> bool {
        self.groups.len() >= self.cfg.max_active
    }

    /// No infohash is collecting or being fetched.
    pub fn is_idle(&self) -> bool {
        self.groups.is_empty()
    }

    /// One row: `peer` has `ih`.
    pub fn row(&mut self, now: Instant, ih: InfoHash, peer: SocketAddr) {
        self.counts.rows += 1;
        if self.done.contains(&ih) {
            self.counts.late += 1;
            return;
        }
        let g = self.groups.entry(ih).or_insert_with(|| {
            self.waiting.push_back((now, ih));
            Group {
                peers: Vec::new(),
                handed: 0,
                attempted: 0,
                collecting: true,
                since: now,
                merged: InfohashResult {
                    info_hash: ih,
                    metadata: None,
                    failed: Vec::new(),
                    deadline_hit: false,
                    elapsed: Duration::ZERO,
                },
            }
        });
        if g.peers.contains(&peer) {
            return;
        }
        if g.peers.len() >= self.cfg.peers_per_infohash {
            self.counts.capped += 1;
            return;
        }
        g.peers.push(peer);
        let untried = g.peers.len() - g.handed;
        if g.collecting && untried == self.cfg.peer_attempts.saturating_sub(g.attempted) {
            // As many peers as will be tried: no reason to wait for more.
            self.ready.push_back(ih);
        }
    }

    /// The input ended: every collecting infohash is handed on now.
    pub fn close_input(&mut self) {
        self.input_closed = true;
    }

    /// When a collecting infohash is next due ([`next_job`](Self::next_job) then).
    pub fn next_wake(&self) -> Option<Instant> {
        self.waiting
            .iter()
            .find(|(since, ih)| self.is_waiting(*since, ih))
            .map(|(since, _)| *since + self.cfg.linger)
    }

    fn is_waiting(&self, since: Instant, ih: &InfoHash) -> bool {
        self.groups
            .get(ih)
            .is_some_and(|g| g.collecting && g.since == since)
    }

    /// The next job due at `now`, if any.
    pub fn next_job(&mut self, now: Instant) -> Option<Job> {
        while let Some(ih) = self.ready.pop_front() {
            if let Some(job) = self.hand_on(ih) {
                return Some(job);
            }
        }
        while let Some(&(since, ih)) = self.waiting.front() {
            if !self.is_waiting(since, &ih) {
                self.waiting.pop_front();
                continue;
            }
            if !self.input_closed && now < since + self.cfg.linger {
                return None;
            }
            self.waiting.pop_front();
            if let Some(job) = self.hand_on(ih) {
                return Some(job);
            }
        }
        None
    }

    /// A job with `ih`'s untried peers, up to the attempts left; `None` if it is not
    /// collecting or has nothing to try.
    fn hand_on(&mut self, ih: InfoHash) -> Option<Job> {
        let g = self.groups.get_mut(&ih)?;
        if !g.collecting {
            return None;
        }
        let left = self.cfg.peer_attempts.saturating_sub(g.attempted);
        let end = g.peers.len().min(g.handed + left);
        if end == g.handed {
            return None;
        }
        let peers = g.peers[g.handed..end].to_vec();
        g.handed = end;
        g.collecting = false;
        Some(Job {
            info_hash: ih,
            peers,
        })
    }

    /// A job's result. `Some`: the infohash is done, with every attempt made for it merged
    /// (returned once); `None`: it goes on (a follow-up job is due with peers that came
    /// since).
    pub fn result(&mut self, now: Instant, r: InfohashResult) -> Option<InfohashResult> {
        let ih = r.info_hash;
        let g = self.groups.get_mut(&ih)?;
        g.attempted += r.attempts();
        g.merged.failed.extend(r.failed);
        g.merged.deadline_hit |= r.deadline_hit;
        g.merged.metadata = r.metadata;
        g.merged.elapsed = now.saturating_duration_since(g.since);
        let more = g.handed < g.peers.len() && g.attempted < self.cfg.peer_attempts;
        if g.merged.metadata.is_none() && !g.merged.deadline_hit && more {
            g.collecting = true;
            self.ready.push_back(ih);
            return None;
        }
        self.finish(ih)
    }

    fn finish(&mut self, ih: InfoHash) -> Option<InfohashResult> {
        let g = self.groups.remove(&ih)?;
        if self.done_order.len() >= self.cfg.max_done {
            if let Some(old) = self.done_order.pop_front() {
                self.done.remove(&old);
            }
        }
        self.done.insert(ih);
        self.done_order.push_back(ih);
        Some(g.merged)
    }

    /// Give up on every active infohash (deadline, Ctrl-C): their merged results so far,
    /// marked `deadline_hit`, in no particular order.
    pub fn abandon(&mut self) -> Vec<InfohashResult> {
        let ihs: Vec<InfoHash> = self.groups.keys().copied().collect();
        ihs.into_iter()
            .filter_map(|ih| self.finish(ih))
            .map(|mut r| {
                r.deadline_hit = true;
                r
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attempt, FailureKind, FetchFailure};

    fn ih(i: u8) -> InfoHash {
        InfoHash([i; 20])
    }

    fn peer(i: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], i))
    }

    fn grouper(attempts: usize) -> Grouper {
        Grouper::new(GrouperConfig {
            linger: Duration::from_secs(1),
            peers_per_infohash: 4,
            peer_attempts: attempts,
            max_active: 3,
            max_done: 2,
        })
    }

    fn failed(job: &Job) -> InfohashResult {
        InfohashResult {
            info_hash: job.info_hash,
            metadata: None,
            failed: job
                .peers
                .iter()
                .map(|&peer| Attempt {
                    peer,
                    failure: FetchFailure::new(FailureKind::Refused, "no"),
                    elapsed: Duration::ZERO,
                })
                .collect(),
            deadline_hit: false,
            elapsed: Duration::ZERO,
        }
    }

    fn peers(job: &Job) -> Vec<u16> {
        job.peers.iter().map(SocketAddr::port).collect()
    }

    #[test]
    fn rows_of_one_infohash_are_grouped_for_the_linger() {
        let t0 = Instant::now();
        let mut g = grouper(5);
        g.row(t0, ih(1), peer(1));
        g.row(t0, ih(2), peer(9));
        g.row(t0 + Duration::from_millis(500), ih(1), peer(2));
        g.row(t0 + Duration::from_millis(600), ih(1), peer(2));
        assert_eq!(g.next_wake(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(g.next_job(t0 + Duration::from_millis(900)), None);
        let t1 = t0 + Duration::from_secs(1);
        let job = g.next_job(t1).unwrap();
        assert_eq!((job.info_hash, peers(&job)), (ih(1), vec![1, 2]));
        assert_eq!(g.next_job(t1).unwrap().info_hash, ih(2));
        assert_eq!((g.next_job(t1), g.next_wake()), (None, None));
        assert_eq!(g.counts().rows, 4);
    }

    #[test]
    fn enough_peers_or_the_end_of_input_start_a_job_at_once() {
        let t0 = Instant::now();
        let mut g = grouper(2);
        g.row(t0, ih(1), peer(1));
        g.row(t0, ih(3), peer(1));
        assert_eq!(g.next_job(t0), None);
        g.row(t0, ih(1), peer(2));
        let job = g.next_job(t0).expect("two peers for two attempts: no wait");
        assert_eq!((job.info_hash, peers(&job)), (ih(1), vec![1, 2]));
        assert_eq!(g.next_job(t0), None);
        g.close_input();
        assert_eq!(g.next_job(t0).unwrap().info_hash, ih(3));
    }

    #[test]
    fn peers_that_come_during_a_failed_job_get_a_follow_up_up_to_the_attempts() {
        let t0 = Instant::now();
        let mut g = grouper(3);
        g.row(t0, ih(1), peer(1));
        let first = g.next_job(t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(peers(&first), [1]);
        for p in [2, 3, 4, 5] {
            g.row(t0, ih(1), peer(p)); // 5: over peers_per_infohash (4)
        }
        assert_eq!(g.counts().capped, 1);
        assert_eq!(g.next_job(t0), None, "a job runs: no second one");
        assert_eq!(g.result(t0, failed(&first)), None, "goes on");
        let second = g.next_job(t0).unwrap();
        assert_eq!(peers(&second), [2, 3], "two attempts left of three");
        let done = g.result(t0, failed(&second)).expect("attempts spent: done");
        let tried: Vec<u16> = done.failed.iter().map(|a| a.peer.port()).collect();
        assert_eq!(tried, [1, 2, 3], "every attempt, merged, in order");
        assert!(g.is_idle());
        g.row(t0, ih(1), peer(6));
        assert_eq!(
            (g.counts().late, g.is_idle()),
            (1, true),
            "late rows ignored"
        );
    }

    #[test]
    fn success_or_no_new_peer_ends_an_infohash() {
        let t0 = Instant::now();
        let mut g = grouper(5);
        g.row(t0, ih(1), peer(1));
        g.close_input();
        let job = g.next_job(t0).unwrap();
        let done = g.result(t0, failed(&job)).expect("nothing else to try");
        assert_eq!((done.attempts(), done.metadata.is_none()), (1, true));
        assert_eq!(g.result(t0, failed(&job)), None, "reported once");
    }

    #[test]
    fn bounded_active_and_done() {
        let t0 = Instant::now();
        let mut g = grouper(5);
        for i in 1..=3 {
            assert!(!g.is_full());
            g.row(t0, ih(i), peer(1));
        }
        assert!(g.is_full(), "max_active is 3");
        let abandoned = g.abandon();
        assert_eq!(abandoned.len(), 3);
        assert!(abandoned
            .iter()
            .all(|r| r.deadline_hit && r.attempts() == 0));
        assert!(g.is_idle() && !g.is_full());
        assert_eq!(g.done.len(), 2, "max_done is 2");
        assert_eq!(g.done_order.len(), 2);
        let forgotten = (1..=3).find(|&i| !g.done.contains(&ih(i))).unwrap();
        g.row(t0, ih(forgotten), peer(1));
        assert!(!g.is_idle(), "a forgotten infohash starts afresh");
    }
}
