//! The pipeline's index side (`estudely run`): the [`IndexSink`] that turns results into
//! rows for the [`StoreThread`], and the [`IndexGate`]
//! that keeps known infohashes from being searched or fetched again.
//!
//! The gate asks the database only when the in-memory [`KnownFilter`] says "maybe": at
//! 10 M rows, a new infohash costs a few hashes, a known one a primary-key lookup.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;

use anyhow::Context as _;
use estudely_krpc::InfoHash;
use estudely_peer_wire::{InfoSummary, Version};
use sha2::Digest as _;

use super::filter::{Filters, KnownFilter, Rejected};
use super::nodes::NodeLabels;
use super::rescrape::{Rescrapes, BATCH};
use super::store_thread::{truncated, unix_now, Req, StoreThread};
use super::{Gate, Handoff, RowSink, Scrape};
use estudely_fetch::{Attempt, FailureKind, FetchedMetadata, Job};
use estudely_store::{Classifier, Estimate, Sighting, Source, Torrent, MAX_STORED_FILES};

/// A [`Torrent`] row from fetched metadata, found at `discovered` through `source`, with
/// its swarm's BEP 33 estimates, classified by `classifier`.
pub fn torrent_row(
    ih: InfoHash,
    m: &FetchedMetadata,
    discovered: i64,
    source: Source,
    scrape: Scrape,
    classifier: &Classifier,
) -> anyhow::Result<Torrent> {
    // The summary lists at most 100 files; the index keeps more.
    let full = InfoSummary::parse_with(&m.info, MAX_STORED_FILES)
        .context("verified metadata that does not parse again")?;
    let info_hash_v2 = m.info_hash_v2();
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
    let mut t = Torrent {
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
        seeds_estimate: scrape.seeds,
        peers_estimate: scrape.peers,
        category: None,
        release: None,
    };
    t.classify(classifier);
    Ok(t)
}

/// How the run went, as the sink saw it.
#[derive(Debug, Default, Clone)]
pub struct IndexCounts {
    /// Torrents sent to the index.
    pub stored: u64,
    /// Metadata fetched but filtered out, by reason.
    pub filtered: HashMap<&'static str, u64>,
    /// Infohashes with peers whose fetch failed (counted in the index by reason:
    /// `fetch_failed_<kind>`, see [`main_failure`]).
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
    /// Files every stored torrent under a category (`--classify-rules`).
    pub classifier: Classifier,
    /// Counts.
    pub counts: IndexCounts,
    /// The re-scrapes of stored torrents (`--rescrape-rate`; `None`: off).
    pub rescrapes: Option<Rescrapes>,
    /// When and how each infohash in flight was found.
    found: HashMap<InfoHash, (i64, Source)>,
    /// The client labels of the nodes counted.
    nodes: NodeLabels,
}

impl Shared {
    /// Shared state over a started store thread.
    pub fn new(
        store: StoreThread,
        known: KnownFilter,
        filters: Filters,
        classifier: Classifier,
    ) -> Rc<RefCell<Shared>> {
        Rc::new(RefCell::new(Shared {
            store,
            known,
            filters,
            classifier,
            counts: IndexCounts::default(),
            rescrapes: None,
            found: HashMap::new(),
            nodes: NodeLabels::default(),
        }))
    }

    fn count(&self, name: impl Into<Cow<'static, str>>) -> anyhow::Result<()> {
        self.store.count(name.into(), 1);
        Ok(())
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
        sh.store.sighting(sighting)
    }

    fn done(
        &mut self,
        ih: InfoHash,
        peers: &[SocketAddr],
        fetched: Option<&FetchedMetadata>,
        failure: Option<FailureKind>,
        scrape: Scrape,
    ) -> anyhow::Result<()> {
        let mut sh = self.0.borrow_mut();
        let (discovered, source) = sh.found.remove(&ih).unwrap_or((unix_now(), Source::Sample));
        let Some(m) = fetched else {
            sh.store.send(Req::Release(ih))?;
            if peers.is_empty() {
                sh.counts.no_peers += 1;
                return sh.count("no_peers");
            }
            sh.counts.fetch_failed += 1;
            sh.count(fetch_failed_counter(failure))?;
            return peer_sightings(&sh, ih, peers);
        };
        // Stored or filtered: either way, not fetched again in this run.
        sh.known.insert(&ih);
        if let Some(why) = sh.filters.reject(&m.summary) {
            *sh.counts.filtered.entry(why.counter()).or_default() += 1;
            sh.store.send(Req::Release(ih))?;
            return sh.count(why.counter());
        }
        let row = torrent_row(ih, m, discovered, source, scrape, &sh.classifier)?;
        // A hybrid's other key (v1, or the truncated v2) is known now too.
        sh.known.insert(&row.info_hash);
        if let Some(v2) = &row.info_hash_v2 {
            sh.known.insert(&InfoHash(truncated(v2)));
        }
        sh.counts.stored += 1;
        sh.store.send(Req::Torrent(Box::new(row)))?;
        // The lease goes after the row: should a commit fall between the two, the index
        // holds the torrent still leased (claims refused either way), never neither, when
        // another crawler's claim would be granted and fetch it a second time.
        sh.store.send(Req::Release(ih))?;
        peer_sightings(&sh, ih, peers)
    }

    fn node(&mut self, version: Option<&[u8]>, interval: Option<u32>) -> anyhow::Result<()> {
        let mut sh = self.0.borrow_mut();
        for name in sh.nodes.counters(version, interval) {
            sh.count(name)?;
        }
        Ok(())
    }

    fn dropped(&mut self, ih: InfoHash) {
        let mut sh = self.0.borrow_mut();
        sh.found.remove(&ih);
        sh.counts.dropped += 1;
    }

    fn rescraped(&mut self, ih: InfoHash, scrape: Scrape, queries: usize) -> anyhow::Result<()> {
        let mut sh = self.0.borrow_mut();
        let e = Estimate {
            info_hash: ih,
            seeds: scrape.seeds,
            peers: scrape.peers,
            at: unix_now(),
        };
        let ours = sh
            .rescrapes
            .as_mut()
            .is_some_and(|r| r.ended(&ih, e.answered(), queries, std::time::Instant::now()));
        if ours {
            let name = if e.answered() {
                "rescrapes_answered"
            } else {
                "rescrapes_empty"
            };
            sh.count(name)?;
        }
        // Written even when it came back too late to count: the figures are fresh.
        sh.store.estimate(e)
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.0.borrow().store.flush()
    }
}

/// The main failure of a fetch: the kind of most of its failed attempts, ties going to
/// the kind of the latest attempt among them (the last word on the infohash). `None` when
/// no attempt failed (none ended: the deadline or the run's end came first).
pub fn main_failure(failed: &[Attempt]) -> Option<FailureKind> {
    let mut counts: HashMap<FailureKind, usize> = HashMap::new();
    for a in failed {
        *counts.entry(a.failure.kind).or_default() += 1;
    }
    let most = counts.values().copied().max()?;
    failed
        .iter()
        .rev()
        .map(|a| a.failure.kind)
        .find(|k| counts.get(k) == Some(&most))
}

/// The counter of an infohash with peers but no metadata: `fetch_failed_<kind>` (the
/// fetch's [`main_failure`]), or `fetch_failed_unfinished` when no attempt ended.
pub fn fetch_failed_counter(failure: Option<FailureKind>) -> String {
    match failure {
        Some(kind) => format!("fetch_failed_{kind}"),
        None => "fetch_failed_unfinished".to_owned(),
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
        sh.store.sighting(s)?;
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
        if sh.rescrapes.as_ref().is_some_and(|r| r.is_out(&ih)) {
            // Stored (it is being re-scraped): known, and the crawler gives it no search.
            return false;
        }
        if !sh.store.admits_new() {
            // The index is away with many claims waiting: not searched (see store_thread).
            return false;
        }
        if sh.known.maybe_contains(&ih) {
            // Probably known: the database decides (its answer cancels the search). The
            // sighting is recorded by the sink either way.
            sh.counts.checked += 1;
            let _ = sh.store.ask_known(ih);
        }
        true
    }

    fn poll_known(&mut self) -> Option<InfoHash> {
        let sh = self.0.borrow();
        // Called once or more per turn of the crawl loop: the questions of this turn go
        // now, in one request. An error stops the run at the next row.
        let _ = sh.store.poll();
        sh.store.known_rx.try_recv().ok()
    }

    fn claim(&mut self, job: Job, to: &Handoff) {
        // Sent with the others at the next poll, as the store's queue has room.
        self.0.borrow().store.claim(job, to);
    }

    fn tick(&mut self) {
        // An error stops the run at the next row.
        let _ = self.0.borrow().store.poll();
    }

    fn close(&mut self) {
        // The crawl is over: the claims still waiting go now (waiting for room if need be),
        // and the store thread's requests then hold the last handoffs to the fetcher.
        let _ = self.0.borrow().store.flush_claims();
    }

    fn next_rescrape(
        &mut self,
        now: std::time::Instant,
        busy: &dyn Fn(&InfoHash) -> bool,
    ) -> Option<InfoHash> {
        let mut sh = self.0.borrow_mut();
        let sh = &mut *sh;
        let r = sh.rescrapes.as_mut()?;
        if let Ok(keys) = sh.store.stale_rx.try_recv() {
            r.keys(now, keys);
        }
        if r.wants_keys(now) {
            let before = unix_now().saturating_sub(r.config().after.as_secs() as i64);
            // An error stops the run at the next row.
            let _ = sh.store.ask_stale(before, BATCH);
        }
        // Never a key the pipeline is searching or fetching, nor one found in this run and
        // not written yet.
        r.next(now, |ih| busy(ih) || sh.found.contains_key(ih))
    }

    fn status(&self) -> Option<&'static str> {
        let away = !self.0.borrow().store.available();
        away.then_some("index unavailable: reconnecting, new fetches paused")
    }

    fn rescrape_sent(&mut self, ih: InfoHash, now: std::time::Instant, accepted: bool) {
        let mut sh = self.0.borrow_mut();
        if let Some(r) = sh.rescrapes.as_mut() {
            r.sent(ih, now, accepted);
        }
        if accepted {
            let _ = sh.count("rescrapes_sent");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use estudely_fetch::FetchFailure;

    fn attempt(kind: FailureKind) -> Attempt {
        Attempt {
            peer: "127.0.0.1:1".parse().unwrap(),
            failure: FetchFailure::new(kind, "x"),
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn the_main_failure_is_the_most_frequent_then_the_latest() {
        use FailureKind::{Closed, Refused, Timeout};
        let of = |kinds: &[FailureKind]| -> Option<FailureKind> {
            main_failure(&kinds.iter().copied().map(attempt).collect::<Vec<_>>())
        };
        assert_eq!(of(&[]), None);
        assert_eq!(of(&[Refused]), Some(Refused));
        assert_eq!(of(&[Timeout, Refused, Timeout]), Some(Timeout));
        assert_eq!(of(&[Timeout, Refused]), Some(Refused));
        assert_eq!(
            of(&[Refused, Closed, Timeout, Closed, Refused]),
            Some(Refused)
        );
        assert_eq!(fetch_failed_counter(Some(Timeout)), "fetch_failed_timeout");
        assert_eq!(
            fetch_failed_counter(Some(FailureKind::AddressRefused)),
            "fetch_failed_address_refused"
        );
        assert_eq!(fetch_failed_counter(None), "fetch_failed_unfinished");
    }

    /// The lease of a fetched torrent is released no sooner than the torrent is written:
    /// whatever falls between two commits, the index never shows it neither leased nor
    /// stored (when another crawler's claim would be granted: a second fetch). A trigger
    /// in the index records, at each lease's deletion, whether its torrent is there (same
    /// transaction included). Each round fills the batch to one row short of
    /// [`BATCH_ROWS`], so that the first request of `done` ends a transaction.
    #[test]
    fn a_fetched_torrents_lease_goes_with_or_after_its_row() {
        use super::super::store_thread::{StoreConfig, BATCH_ROWS};
        use estudely_fetch::Encryption;
        use estudely_store::DbUrl;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("order.sqlite");
        let url = DbUrl::Sqlite(path.clone());
        let cfg = StoreConfig {
            owner: "me".into(),
            lease: Duration::from_secs(3600),
            max_sightings: 32,
            peer_addresses: true,
            max_torrents: None,
            max_db_size: None,
        };
        let info = |i: u8| {
            format!("d6:lengthi1000e4:name5:ord{i:02}12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae")
                .into_bytes()
        };
        let keys: Vec<InfoHash> = (0..5u8)
            .map(|i| InfoHash(sha1::Sha1::digest(info(i)).into()))
            .collect();
        {
            let mut store = url.open().unwrap();
            for k in &keys {
                assert!(store.claim(k, "me", Duration::from_secs(3600)).unwrap());
            }
        }
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(
            "CREATE TABLE released (info_hash BLOB, stored INTEGER);
             CREATE TRIGGER log_release AFTER DELETE ON leases BEGIN
                 INSERT INTO released SELECT old.info_hash,
                     EXISTS (SELECT 1 FROM torrents WHERE info_hash = old.info_hash);
             END;",
        )
        .unwrap();
        let (store, opened) = StoreThread::start(url, cfg).unwrap();
        let shared = Shared::new(
            store,
            opened.known,
            Filters::default(),
            Classifier::default(),
        );
        let mut sink = IndexSink(shared.clone());
        let peer: SocketAddr = "127.0.0.1:6881".parse().unwrap();
        for (i, k) in keys.iter().enumerate() {
            let counters = (0..BATCH_ROWS - 1)
                .map(|n| (Cow::Owned(format!("filler_{n}")), 1))
                .collect();
            shared.borrow().store.send(Req::Counters(counters)).unwrap();
            let info = info(i as u8);
            let m = FetchedMetadata {
                peer,
                summary: estudely_peer_wire::InfoSummary::parse(&info).unwrap(),
                info,
                client: None,
                encryption: Encryption::Plaintext,
                transport: estudely_fetch::Transport::Tcp,
            };
            sink.done(*k, &[peer], Some(&m), None, Scrape::default())
                .unwrap();
        }
        sink.flush().unwrap();
        let rows: Vec<(Vec<u8>, bool)> = db
            .prepare("SELECT info_hash, stored FROM released")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows.len(), keys.len(), "every lease released: {rows:?}");
        for (k, stored) in rows {
            assert!(
                stored,
                "{}: lease released before its row was written",
                hex::encode(k)
            );
        }
    }
}
