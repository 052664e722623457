//! The index goes away (a lost connection) and comes back: nothing is lost, the crawl
//! side never waits for it, and other errors still end the run.

use super::*;

fn job(i: u32) -> Job {
    Job {
        info_hash: numbered(i).info_hash,
        peers: vec![],
    }
}

/// Poll as the crawl loop does until `done`.
fn poll_until(st: &StoreThread, mut done: impl FnMut(&StoreThread) -> bool) {
    while !done(st) {
        st.poll().unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_lost_connection_keeps_every_row_and_the_crawl_never_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let (st, _, _, health) = slow_with_health(dir.path());
    for i in 0..10 {
        st.send(Req::Torrent(Box::new(numbered(i)))).unwrap();
    }
    st.flush().unwrap();
    health.store(LOST, Ordering::SeqCst);

    // A full batch (its commit fails) and four queues more: none of these sends may wait
    // for the index once it is known to be away, and none may fail.
    let total = (10 + BATCH_ROWS + 4 * QUEUE_CAP) as u32;
    for i in 10..total {
        st.send(Req::Torrent(Box::new(numbered(i)))).unwrap();
    }
    assert!(!st.available(), "the index is away");
    let held = st.away().held;
    assert!(held >= 3 * QUEUE_CAP, "held on the crawl side: {held}");

    // New fetches wait: claims are held, and past a bound no new infohash is searched.
    let (to, mut jobs, _skipped) = handoff_with_room(CLAIMS_WHILE_AWAY + 1);
    assert!(st.admits_new());
    for i in 0..CLAIMS_WHILE_AWAY as u32 {
        st.claim(job(1_000_000 + i), &to);
        st.poll().unwrap();
    }
    assert_eq!(st.claims_waiting(), CLAIMS_WHILE_AWAY, "no claim sent");
    assert!(!st.admits_new(), "enough claims wait");
    // What can be done without is dropped; sightings are summed, not sent.
    st.ask_known(InfoHash([9; 20])).unwrap();
    st.send(Req::Release(InfoHash([9; 20]))).unwrap();
    let sighting = Sighting {
        info_hash: numbered(0).info_hash,
        addr: "127.0.0.1:6881".parse().unwrap(),
        source: Source::GetPeers,
        at: 10,
    };
    st.sighting(sighting).unwrap();
    st.sighting(Sighting { at: 11, ..sighting }).unwrap();
    st.poll().unwrap();
    let away = st.away();
    assert_eq!(
        (
            away.lookups_dropped,
            away.releases_dropped,
            away.not_searched
        ),
        (1, 1, 1)
    );
    assert_eq!(st.stats().torrents, 10, "nothing written while away");

    // Back: the held rows go first, then the claims.
    health.store(UP, Ordering::SeqCst);
    poll_until(&st, |st| st.available() && st.claims_waiting() == 0);
    st.flush().unwrap();
    let mut fetched = 0;
    while jobs.try_recv().is_ok() {
        fetched += 1;
    }
    assert_eq!(fetched, CLAIMS_WHILE_AWAY, "every claim answered once back");
    let stats = st.finish().unwrap();
    assert_eq!(stats.torrents, u64::from(total), "every torrent written");
    assert_eq!(stats.outages, 1);
    let mut s = DbUrl::Sqlite(dir.path().join("slow.sqlite"))
        .open_read_only()
        .unwrap();
    assert_eq!(s.torrent_count().unwrap(), u64::from(total));
    let (rows, n) = s.sightings_of(&numbered(0).info_hash, 10).unwrap();
    assert_eq!((rows.len(), n.seen), (1, 2), "summed while away");
}

/// Where claims' answers go, with room for `n` of each.
fn handoff_with_room(n: usize) -> (Handoff, mpsc::Receiver<Job>, mpsc::Receiver<InfoHash>) {
    let (jobs_tx, jobs) = mpsc::channel(n);
    let (skip_tx, skipped) = mpsc::channel(n);
    let to = Handoff {
        jobs: jobs_tx,
        skipped: skip_tx,
    };
    (to, jobs, skipped)
}

#[test]
fn other_errors_still_end_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (st, _, _, health) = slow_with_health(dir.path());
    health.store(BROKEN, Ordering::SeqCst);
    st.send(Req::Torrent(Box::new(numbered(1)))).unwrap();
    let e = st.flush().unwrap_err();
    assert!(format!("{e:#}").contains("no space left"), "{e:#}");
    assert!(st.available(), "not a lost connection");
    assert!(st.finish().is_err());
}

#[test]
fn a_run_that_stops_while_the_index_is_away_gives_up_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (st, _, _, health) = slow_with_health(dir.path());
    health.store(LOST, Ordering::SeqCst);
    st.send(Req::Torrent(Box::new(numbered(1)))).unwrap();
    poll_until(&st, |st| !st.available());
    // The test's GIVE_UP_AT_STOP is short; the run's is half a minute.
    let e = st.finish().unwrap_err();
    let e = format!("{e:#}");
    assert!(e.contains("still unavailable at exit"), "{e}");
    assert!(e.contains("connection refused"), "{e}");
}
