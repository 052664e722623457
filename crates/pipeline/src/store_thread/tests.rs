//! The store thread: order of answers, batching of questions, and the bounded queue.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use super::*;
use estudely_store::sqlite::fixtures::torrent;
use estudely_store::{SearchSort, SightingCounts, SightingRow, Source, Stats, StoredTorrent};
use tokio::sync::mpsc;

fn config(owner: &str) -> StoreConfig {
    StoreConfig {
        owner: owner.into(),
        lease: Duration::from_secs(3600),
        max_sightings: 32,
        peer_addresses: true,
        max_torrents: None,
        max_db_size: None,
    }
}

/// Where claims' answers go: the jobs to fetch and the infohashes skipped.
fn handoff() -> (Handoff, mpsc::Receiver<Job>, mpsc::Receiver<InfoHash>) {
    let (jobs_tx, jobs) = mpsc::channel(4);
    let (skip_tx, skipped) = mpsc::channel(4);
    let to = Handoff {
        jobs: jobs_tx,
        skipped: skip_tx,
    };
    (to, jobs, skipped)
}

#[test]
fn writes_batches_answers_in_order_and_commits_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let url = DbUrl::Sqlite(dir.path().join("i.sqlite"));
    let (st, opened) = StoreThread::start(url.clone(), config("me")).unwrap();
    assert_eq!((opened.torrents, opened.kind), (0, "sqlite"));
    let stored = torrent(1, b"one", 10);
    st.send(Req::Torrent(Box::new(stored.clone()))).unwrap();
    let sighting = Sighting {
        info_hash: stored.info_hash,
        addr: "127.0.0.1:6881".parse().unwrap(),
        source: Source::GetPeers,
        at: 10,
    };
    st.sighting(sighting).unwrap();
    st.sighting(Sighting { at: 12, ..sighting }).unwrap();
    st.count("fetch_failed_timeout".into(), 1);
    st.count("fetch_failed_timeout".into(), 1);
    // Asked after the write: the answer sees it (same thread, in order).
    st.ask_known(stored.info_hash).unwrap();
    st.ask_known(InfoHash([2; 20])).unwrap();
    st.poll().unwrap();
    let (to, mut jobs, mut skipped) = handoff();
    let job = |i: u8| Job {
        info_hash: InfoHash([i; 20]),
        peers: vec![],
    };
    st.send(Req::Claims(vec![job(1), job(3)], to)).unwrap();
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
        (
            stats.torrents,
            stats.claims_refused,
            stats.lookups,
            stats.known
        ),
        (1, 1, 2, 1)
    );

    // Committed: a second start sees it, and a claim by another owner waits for ours.
    let (st, opened) = StoreThread::start(url, config("other")).unwrap();
    assert_eq!(opened.torrents, 1);
    assert!(opened.known.maybe_contains(&stored.info_hash));
    let mut s = DbUrl::Sqlite(dir.path().join("i.sqlite"))
        .open_read_only()
        .unwrap();
    let counters = s.stats().unwrap().counters;
    let want = [
        ("fetch_failed_timeout", 2),
        ("index_lookups", 2),
        ("index_lookups_known", 1),
    ];
    assert_eq!(counters, want.map(|(n, v)| (n.to_owned(), v)));
    let (rows, n) = s.sightings_of(&stored.info_hash, 10).unwrap();
    assert_eq!((rows.len(), n.seen), (1, 2), "summed: one row, seen twice");
    assert_eq!((rows[0].first_seen, rows[0].last_seen), (10, 12));
    st.finish().unwrap();
}

/// A store over SQLite whose writes wait while `blocked` is set, and that counts the
/// lookups it is asked for. Its `health` makes it fail as a server that went away would
/// ([`LOST`]) or with another error ([`BROKEN`]).
struct SlowStore {
    inner: Box<dyn Store>,
    blocked: Arc<AtomicBool>,
    lookups: Arc<AtomicUsize>,
    health: Arc<std::sync::atomic::AtomicU8>,
}

/// [`SlowStore::health`]: answers.
const UP: u8 = 0;
/// [`SlowStore::health`]: every call fails as on a lost connection.
const LOST: u8 = 1;
/// [`SlowStore::health`]: every call fails with an error that is not a lost connection.
const BROKEN: u8 = 2;

impl SlowStore {
    fn up(&self) -> anyhow::Result<()> {
        match self.health.load(Ordering::SeqCst) {
            LOST => Err(anyhow::Error::from(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connection refused",
            ))
            .context("slow index: cannot connect")),
            BROKEN => Err(anyhow!("slow index: no space left on device")),
            _ => Ok(()),
        }
    }
}

impl Store for SlowStore {
    fn reconnect(&mut self) -> anyhow::Result<()> {
        self.up()
    }
    fn kind(&self) -> &'static str {
        "slow"
    }
    fn write(&mut self, owner: &str, batch: &Batch) -> anyhow::Result<()> {
        while self.blocked.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.up()?;
        self.inner.write(owner, batch)
    }
    fn contains(&mut self, ih: &InfoHash) -> anyhow::Result<bool> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.up()?;
        self.inner.contains(ih)
    }
    fn known_among(&mut self, keys: &[InfoHash]) -> anyhow::Result<Vec<InfoHash>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.up()?;
        self.inner.known_among(keys)
    }
    fn sweep_leases(&mut self) -> anyhow::Result<u64> {
        self.up()?;
        self.inner.sweep_leases()
    }
    fn deleted_among(&mut self, keys: &[InfoHash]) -> anyhow::Result<Vec<InfoHash>> {
        self.inner.deleted_among(keys)
    }
    fn for_each_deleted(&mut self, f: &mut dyn FnMut(InfoHash)) -> anyhow::Result<()> {
        self.inner.for_each_deleted(f)
    }
    fn prune_scan(
        &mut self,
        filter: &estudely_store::PruneFilter,
        after: Option<&estudely_store::Candidate>,
        limit: usize,
    ) -> anyhow::Result<Vec<estudely_store::Candidate>> {
        self.inner.prune_scan(filter, after, limit)
    }
    fn delete_torrents(
        &mut self,
        keys: &[InfoHash],
        at: i64,
    ) -> anyhow::Result<estudely_store::Deleted> {
        self.inner.delete_torrents(keys, at)
    }
    fn torrent_count(&mut self) -> anyhow::Result<u64> {
        self.inner.torrent_count()
    }
    fn db_size(&mut self) -> anyhow::Result<estudely_store::DbSize> {
        self.inner.db_size()
    }
    fn reclaim(&mut self) -> anyhow::Result<()> {
        self.inner.reclaim()
    }
    fn for_each_info_hash(&mut self, f: &mut dyn FnMut(InfoHash)) -> anyhow::Result<()> {
        self.inner.for_each_info_hash(f)
    }
    fn claim(&mut self, ih: &InfoHash, owner: &str, lease: Duration) -> anyhow::Result<bool> {
        self.up()?;
        self.inner.claim(ih, owner, lease)
    }
    fn save_nodes(&mut self, nodes: &[CompactNode], at: i64, keep: usize) -> anyhow::Result<()> {
        self.inner.save_nodes(nodes, at, keep)
    }
    fn load_nodes(&mut self, max: usize) -> anyhow::Result<Vec<CompactNode>> {
        self.inner.load_nodes(max)
    }
    fn torrent(&mut self, ih: &InfoHash) -> anyhow::Result<Option<StoredTorrent>> {
        self.inner.torrent(ih)
    }
    fn export(
        &mut self,
        since: Option<i64>,
        f: &mut dyn FnMut(&StoredTorrent, &[SocketAddr]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.inner.export(since, f)
    }
    fn stats(&mut self) -> anyhow::Result<Stats> {
        self.inner.stats()
    }
    fn find(
        &mut self,
        q: &estudely_store::SearchQuery,
        sort: SearchSort,
        limit: usize,
        offset: usize,
    ) -> anyhow::Result<Vec<StoredTorrent>> {
        self.inner.find(q, sort, limit, offset)
    }
    fn category_counts(
        &mut self,
        q: &estudely_store::SearchQuery,
    ) -> anyhow::Result<estudely_store::CategoryCounts> {
        self.inner.category_counts(q)
    }
    fn recent(&mut self, limit: usize, offset: usize) -> anyhow::Result<Vec<StoredTorrent>> {
        self.inner.recent(limit, offset)
    }
    fn set_categories(
        &mut self,
        rows: &[(InfoHash, estudely_store::Category, estudely_store::Release)],
    ) -> anyhow::Result<()> {
        self.inner.set_categories(rows)
    }
    fn stale_estimates(&mut self, before: i64, limit: usize) -> anyhow::Result<Vec<InfoHash>> {
        self.inner.stale_estimates(before, limit)
    }
    fn sightings_of(
        &mut self,
        ih: &InfoHash,
        max: usize,
    ) -> anyhow::Result<(Vec<SightingRow>, SightingCounts)> {
        self.inner.sightings_of(ih, max)
    }
    fn discovered_range(&mut self) -> anyhow::Result<Option<(i64, i64)>> {
        self.inner.discovered_range()
    }
    fn timeline(&mut self, bucket_secs: i64) -> anyhow::Result<Vec<(i64, Source, u64)>> {
        self.inner.timeline(bucket_secs)
    }
    fn size_histogram(&mut self) -> anyhow::Result<Vec<u64>> {
        self.inner.size_histogram()
    }
    fn total_bytes(&mut self) -> anyhow::Result<u64> {
        self.inner.total_bytes()
    }
    fn set_statement_timeout(&mut self, limit: Duration) -> anyhow::Result<()> {
        self.inner.set_statement_timeout(limit)
    }
}

/// A store thread over a [`SlowStore`] in `dir`.
fn slow(dir: &std::path::Path) -> (StoreThread, Arc<AtomicBool>, Arc<AtomicUsize>) {
    let (st, blocked, lookups, _) = slow_with_health(dir);
    (st, blocked, lookups)
}

/// [`slow`], with the store's health.
fn slow_with_health(
    dir: &std::path::Path,
) -> (
    StoreThread,
    Arc<AtomicBool>,
    Arc<AtomicUsize>,
    Arc<std::sync::atomic::AtomicU8>,
) {
    let url = DbUrl::Sqlite(dir.join("slow.sqlite"));
    let blocked = Arc::new(AtomicBool::new(false));
    let lookups = Arc::new(AtomicUsize::new(0));
    let health = Arc::new(std::sync::atomic::AtomicU8::new(UP));
    let (b, l, h) = (blocked.clone(), lookups.clone(), health.clone());
    let open = move || -> anyhow::Result<Box<dyn Store>> {
        Ok(Box::new(SlowStore {
            inner: url.open()?,
            blocked: b,
            lookups: l,
            health: h,
        }))
    };
    let (st, _) = StoreThread::start_with(open, config("me")).unwrap();
    (st, blocked, lookups, health)
}

fn numbered(i: u32) -> Torrent {
    let mut t = torrent(0, b"flood", 1);
    t.info_hash.0[..4].copy_from_slice(&i.to_be_bytes());
    t
}

/// A database that stops writing while the crawl floods the store thread: the queue
/// fills up to its cap and the sender waits there; nothing is lost once it writes again.
#[test]
fn a_stalled_database_makes_the_crawl_wait_at_the_queue_cap() {
    let dir = tempfile::tempdir().unwrap();
    let (st, blocked, _) = slow(dir.path());
    blocked.store(true, Ordering::SeqCst);
    // Enough for a full batch (the writer then blocks in its commit) and four queues more.
    let total = (BATCH_ROWS + 4 * QUEUE_CAP) as u32;
    let sent = Arc::new(AtomicUsize::new(0));
    let (sent2, gauge) = (sent.clone(), st.queue());
    let sender = std::thread::spawn(move || {
        for i in 0..total {
            st.send(Req::Torrent(Box::new(numbered(i)))).unwrap();
            sent2.fetch_add(1, Ordering::SeqCst);
        }
        st
    });
    // Until the sender has sent everything, or fills the queue.
    while sent.load(Ordering::SeqCst) < total as usize && gauge.len() < QUEUE_CAP {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The writer took at most one batch before blocking in its commit: the sender cannot
    // have sent everything.
    let n = sent.load(Ordering::SeqCst);
    assert!(
        n < total as usize,
        "all {n} sent while the database wrote nothing: the queue reached {}",
        gauge.max()
    );
    blocked.store(false, Ordering::SeqCst);
    let st = sender.join().unwrap();
    // The cap, plus the request the store thread has taken but not yet counted out.
    let max = gauge.max();
    assert!(max <= QUEUE_CAP + 1, "the queue reached {max}");
    assert!(gauge.waits() > 0, "the sender waited");
    let stats = st.finish().unwrap();
    assert_eq!(stats.torrents, u64::from(total), "nothing lost");
}

/// Many "is it known?" questions in one turn of the crawl loop cost one query.
#[test]
fn questions_are_asked_in_one_query() {
    let dir = tempfile::tempdir().unwrap();
    let (st, _, lookups) = slow(dir.path());
    let stored = numbered(7);
    st.send(Req::Torrent(Box::new(stored.clone()))).unwrap();
    st.flush().unwrap();
    for i in 0..200 {
        st.ask_known(numbered(i).info_hash).unwrap();
    }
    st.poll().unwrap();
    st.flush().unwrap();
    assert_eq!(
        lookups.load(Ordering::SeqCst),
        1,
        "one query for 200 questions"
    );
    assert_eq!(st.known_rx.try_recv().ok(), Some(stored.info_hash));
    assert!(st.known_rx.try_recv().is_err());
    let stats = st.finish().unwrap();
    assert_eq!((stats.lookups, stats.known), (200, 1));
}

/// A crawler killed while holding leases leaves them behind: the next start sweeps the
/// expired ones (and leaves the live one of another crawler).
#[test]
fn expired_leases_are_swept_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = DbUrl::Sqlite(dir.path().join("i.sqlite"));
    {
        let mut s = url.open().unwrap();
        for i in 1..=3 {
            assert!(s
                .claim(&InfoHash([i; 20]), "killed", Duration::ZERO)
                .unwrap());
        }
        let hour = Duration::from_secs(3600);
        assert!(s.claim(&InfoHash([4; 20]), "alive", hour).unwrap());
    }
    let (st, opened) = StoreThread::start(url.clone(), config("me")).unwrap();
    assert_eq!(opened.swept, 3);
    assert_eq!(st.finish().unwrap().leases_swept, 3);
    let (st, opened) = StoreThread::start(url, config("me")).unwrap();
    assert_eq!(opened.swept, 0, "the live lease stays");
    st.finish().unwrap();
}

/// Claims never make the crawl wait for a stalled database: they are held (bounded by the
/// fetch backlog) while the queue is half full, go 64 to a request as it empties, and all
/// are answered once it writes again.
#[test]
fn claims_wait_in_the_crawl_not_at_a_stalled_queue() {
    let dir = tempfile::tempdir().unwrap();
    let (st, blocked, _) = slow(dir.path());
    blocked.store(true, Ordering::SeqCst);
    // A full batch (the writer then blocks in its commit), then half a queue and one more
    // that stay queued (sent in a few milliseconds, well within a batch's time).
    for i in 0..(BATCH_ROWS + QUEUE_CAP / 2 + 1) as u32 {
        st.send(Req::Torrent(Box::new(numbered(i)))).unwrap();
    }
    assert!(st.queue().len() > QUEUE_CAP / 2, "{}", st.queue().len());
    let waits = st.queue().waits();
    let (jobs_tx, mut jobs) = mpsc::channel(100_000);
    let (skip_tx, _skipped) = mpsc::channel(100_000);
    let to = Handoff {
        jobs: jobs_tx,
        skipped: skip_tx,
    };
    let claims = 20_000u32;
    for i in 0..claims {
        let ih = numbered(1_000_000 + i).info_hash;
        st.claim(
            Job {
                info_hash: ih,
                peers: vec![],
            },
            &to,
        );
        // The crawl loop polls every turn: it must return at once.
        st.poll().unwrap();
    }
    drop(to);
    assert_eq!(
        st.claims_waiting(),
        claims as usize,
        "held while the queue is half full"
    );
    assert_eq!(st.queue().waits(), waits, "the crawl never waited");
    blocked.store(false, Ordering::SeqCst);
    // Polled as the crawl would, the held claims go as the queue drains.
    while st.claims_waiting() > 0 {
        st.poll().unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    st.flush().unwrap();
    let mut fetched = 0;
    while jobs.try_recv().is_ok() {
        fetched += 1;
    }
    assert_eq!(fetched, claims, "every claim answered");
    assert!(st.queue().max() <= QUEUE_CAP + 1);
    st.finish().unwrap();
}

#[test]
fn owners_of_this_host_that_are_gone_are_recognised() {
    let me = format!("box:{}:0000beef", std::process::id());
    // Our own name: never gone.
    assert!(!owner_is_gone(&me, &me));
    // Same host, a pid that cannot run (pid_max is below 2^22 on Linux).
    assert!(owner_is_gone("box:4194999:12345678", &me));
    // Same host, our pid but another tag: an earlier process that had our pid.
    assert!(owner_is_gone(
        &format!("box:{}:00000001", std::process::id()),
        &me
    ));
    // Same host, a process that runs (pid 1).
    assert!(!owner_is_gone("box:1:12345678", &me));
    // Another host, or a name of the user's: never judged.
    assert!(!owner_is_gone("other:4194999:12345678", &me));
    assert!(!owner_is_gone("crawler-eu-1", &me));
    assert!(!owner_is_gone("a:b:c", &me));
}

/// A crawler killed while holding leases: the next start on the same host takes them back
/// at once (not after they expire), and only theirs.
#[test]
fn leases_of_a_gone_crawler_of_this_host_are_released_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = DbUrl::Sqlite(dir.path().join("i.sqlite"));
    let mut store = url.open().unwrap();
    let lease = Duration::from_secs(3_600);
    assert!(store
        .claim(&InfoHash([1; 20]), "box:4194999:12345678", lease)
        .unwrap());
    assert!(store
        .claim(&InfoHash([2; 20]), "box:1:12345678", lease)
        .unwrap());
    assert!(store
        .claim(&InfoHash([3; 20]), "elsewhere:4194999:1", lease)
        .unwrap());
    drop(store);
    let me = format!("box:{}:0000beef", std::process::id());
    let (st, opened) = StoreThread::start(url.clone(), config(&me)).unwrap();
    assert_eq!(opened.swept, 1, "the gone crawler's lease");
    st.finish().unwrap();
    let mut store = url.open().unwrap();
    assert!(
        store.claim(&InfoHash([1; 20]), &me, lease).unwrap(),
        "released"
    );
    assert!(
        !store.claim(&InfoHash([2; 20]), &me, lease).unwrap(),
        "pid 1 runs"
    );
    assert!(
        !store.claim(&InfoHash([3; 20]), &me, lease).unwrap(),
        "another host's"
    );
}

/// `run --max-torrents`: the oldest beyond the cap are pruned (at the end at the latest),
/// and a pruned key asked again is known (its search stops), counted, and never claimed.
#[test]
fn caps_prune_the_oldest_and_pruned_keys_stay_known() {
    let dir = tempfile::tempdir().unwrap();
    let url = DbUrl::Sqlite(dir.path().join("cap.sqlite"));
    let cfg = StoreConfig {
        max_torrents: Some(2),
        ..config("me")
    };
    let (st, _) = StoreThread::start(url.clone(), cfg.clone()).unwrap();
    for i in 1..=5u8 {
        let t = torrent(i, format!("t{i}").as_bytes(), i64::from(i));
        st.send(Req::Torrent(Box::new(t))).unwrap();
    }
    let stats = st.finish().unwrap();
    assert_eq!(stats.pruned, 3);
    let mut s = url.open().unwrap();
    let mut left = Vec::new();
    s.for_each_info_hash(&mut |k| left.push(k.0[0])).unwrap();
    left.sort();
    assert_eq!(left, [4, 5]);
    let st_ = s.stats().unwrap();
    assert_eq!(st_.deleted, 3);
    assert!(st_.counters.contains(&(PRUNED_COUNTER.into(), 3)));
    drop(s);

    // Started again: the pruned keys are in the filter, known to the database, skipped.
    let (st, opened) = StoreThread::start(url.clone(), cfg).unwrap();
    assert_eq!(opened.torrents, 2, "pruned keys are not torrents");
    assert!(opened.known.maybe_contains(&InfoHash([1; 20])));
    st.ask_known(InfoHash([1; 20])).unwrap();
    st.ask_known(InfoHash([4; 20])).unwrap();
    st.ask_known(InfoHash([9; 20])).unwrap();
    st.poll().unwrap();
    let (to, mut jobs, mut skipped) = handoff();
    let job = Job {
        info_hash: InfoHash([2; 20]),
        peers: vec![],
    };
    st.send(Req::Claims(vec![job], to)).unwrap();
    st.flush().unwrap();
    let mut known: Vec<u8> = st.known_rx.try_iter().map(|k| k.0[0]).collect();
    known.sort();
    assert_eq!(known, [1, 4]);
    assert_eq!(
        skipped.try_recv().ok(),
        Some(InfoHash([2; 20])),
        "never claimed"
    );
    assert!(jobs.try_recv().is_err());
    let stats = st.finish().unwrap();
    assert_eq!((stats.skipped_deleted, stats.pruned), (1, 0));
    let counters = url.open().unwrap().stats().unwrap().counters;
    assert!(counters.contains(&(SKIPPED_DELETED_COUNTER.into(), 1)));
}

/// `run --max-db-size`: the cap becomes a count of torrents by the bytes per torrent at
/// start; the oldest beyond it are pruned.
#[test]
fn a_size_cap_prunes_the_oldest_by_the_bytes_per_torrent() {
    let dir = tempfile::tempdir().unwrap();
    let url = DbUrl::Sqlite(dir.path().join("size.sqlite"));
    let used = {
        let mut s = url.open().unwrap();
        let torrents = (1..=10u8)
            .map(|i| torrent(i, format!("t{i}").as_bytes(), i64::from(i)))
            .collect();
        let batch = Batch {
            torrents,
            ..Batch::default()
        };
        s.write("me", &batch).unwrap();
        s.db_size().unwrap().used
    };
    let cfg = StoreConfig {
        max_db_size: Some(used * 65 / 100),
        ..config("me")
    };
    let (st, opened) = StoreThread::start(url.clone(), cfg).unwrap();
    assert_eq!(opened.torrents, 10);
    let stats = st.finish().unwrap();
    assert_eq!(stats.pruned, 4);
    let mut left = Vec::new();
    url.open()
        .unwrap()
        .for_each_info_hash(&mut |k| left.push(k.0[0]))
        .unwrap();
    left.sort();
    assert_eq!(left, [5, 6, 7, 8, 9, 10]);
}

mod away;
