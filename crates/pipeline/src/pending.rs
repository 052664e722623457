//! What the pipeline knows of the infohashes whose end is not written yet, in the order they
//! were found, bounded: at most `searching_cap` whose peer search runs, at most
//! `fetching_cap` waiting for a claim, for a fetch or in one, `peers_cap` peers each. An
//! infohash leaves as soon as its end is written (or it is dropped as known).
//!
//! The crawler stops a search at the first peers, enough for a fetch; if the fetch fails on
//! all of them, the infohash goes back to searching once ([`Pending::fetch_failed`]) and its
//! second search's new peers, if any, get a second fetch.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use estudely_dht_core::crawl::NextNodes;
use estudely_krpc::InfoHash;

use super::Scrape;
use estudely_crawl::writable_peer;
use estudely_fetch::{FailureKind, Job};

/// Bookkeeping of the infohashes in flight.
#[derive(Debug)]
pub(crate) struct Pending {
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
    pub found: u64,
    /// Infohashes found while `searching_cap` searches were pending: written at once with
    /// what is known (nothing), their peers not kept. Only a crawler whose search queue
    /// outgrows its stated cap makes these; counted in the summary.
    pub untracked: u64,
    /// Peers of untracked infohashes, not kept.
    pub untracked_peers: u64,
    /// Peers on port 0 dropped (never written or fetched from: see [`writable_peer`]).
    pub port_zero: u64,
    /// Most infohashes ever waiting for or in a fetch at once.
    pub most_fetching: usize,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    /// The node that sampled it (or announced it): where its search starts.
    from: SocketAddr,
    peers: Vec<SocketAddr>,
    /// Handed on to be claimed and fetched (its search has ended).
    fetching: bool,
    /// Its search's BEP 33 estimates, once it ended.
    scrape: Scrape,
    /// Its search was continued after a failed fetch ([`Pending::fetch_failed`]).
    resumed: bool,
    /// Peers the first fetch was given (the second gets only those after them).
    tried: usize,
    /// How the first fetch failed.
    failure: Option<FailureKind>,
    /// Where its search would go on (see [`NextNodes`]).
    next: NextNodes,
}

/// A search to continue after a failed fetch: the arguments of
/// [`Crawler::resume_search`](estudely_dht_core::crawl::Crawler::resume_search).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Resume {
    pub(crate) info_hash: InfoHash,
    pub(crate) from: SocketAddr,
    pub(crate) tried: Vec<SocketAddr>,
    pub(crate) next: NextNodes,
}

/// What is known of an infohash whose end is being written.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Known {
    pub(crate) peers: Vec<SocketAddr>,
    pub(crate) scrape: Scrape,
    /// How its last fetch failed, if one did.
    pub(crate) failure: Option<FailureKind>,
}

/// What to do with an infohash whose peer search ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Fetch its metadata from these peers.
    Fetch(Job),
    /// Fetch again, from the new peers of its continued search (it was claimed already).
    Refetch(Job),
    /// No (new) peer: write its end now.
    Write(InfoHash),
    /// Not tracked (or already handed on): nothing.
    Nothing,
}

impl Pending {
    pub(crate) fn new(searching_cap: usize, fetching_cap: usize, peers_cap: usize) -> Pending {
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

    /// A new infohash, found through `from`. False: not tracked (over the cap); write its
    /// end now.
    pub(crate) fn found(&mut self, ih: InfoHash, from: SocketAddr) -> bool {
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
        let entry = Entry {
            seq,
            from,
            peers: Vec::new(),
            fetching: false,
            scrape: Scrape::default(),
            resumed: false,
            tried: 0,
            failure: None,
            next: NextNodes::default(),
        };
        self.entries.insert(ih, entry);
        self.searching += 1;
        true
    }

    /// A peer of `ih`.
    pub(crate) fn peer(&mut self, ih: InfoHash, peer: SocketAddr) {
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

    /// `ih`'s peer search ended, with these BEP 33 estimates and the nodes it would ask
    /// next.
    pub(crate) fn search_done(&mut self, ih: InfoHash, scrape: Scrape, next: NextNodes) -> Next {
        let Some(e) = self.entries.get_mut(&ih) else {
            return Next::Nothing;
        };
        if e.fetching {
            return Next::Nothing;
        }
        // A continued search's estimates add to none of the first's (it stopped before any
        // scrape): keep whichever has them.
        if scrape != Scrape::default() || !e.resumed {
            e.scrape = scrape;
        }
        e.next = next;
        let fresh = &e.peers[e.tried.min(e.peers.len())..];
        if fresh.is_empty() {
            // Still counted as searching until it is removed.
            return Next::Write(ih);
        }
        let job = Job {
            info_hash: ih,
            peers: fresh.to_vec(),
        };
        self.searching -= 1;
        e.fetching = true;
        self.fetching += 1;
        self.most_fetching = self.most_fetching.max(self.fetching);
        if e.resumed {
            Next::Refetch(job)
        } else {
            Next::Fetch(job)
        }
    }

    /// The fetch of `ih` failed on every peer it tried (`failure`: how, mostly). The first
    /// time, if its peers are fewer than `peers_cap`, it goes back to searching: returns
    /// the node to continue its search from, the peers tried and the next nodes, for
    /// [`Crawler::resume_search`](estudely_dht_core::crawl::Crawler::resume_search). `None`:
    /// write its end now.
    pub(crate) fn fetch_failed(
        &mut self,
        ih: InfoHash,
        failure: Option<FailureKind>,
    ) -> Option<Resume> {
        let e = self.entries.get_mut(&ih)?;
        if !e.fetching || e.resumed || e.peers.len() >= self.peers_cap {
            return None;
        }
        e.resumed = true;
        e.fetching = false;
        e.tried = e.peers.len();
        e.failure = failure;
        self.fetching -= 1;
        self.searching += 1;
        Some(Resume {
            info_hash: ih,
            from: e.from,
            tried: e.peers.clone(),
            next: e.next,
        })
    }

    /// Whether a fetch runs (or waits) whose failure would continue its search.
    pub(crate) fn may_resume(&self) -> bool {
        self.entries
            .values()
            .any(|e| e.fetching && !e.resumed && e.peers.len() < self.peers_cap)
    }

    /// Drop `ih` while its search runs (its search was cancelled). False: it is not
    /// searching (unknown, or already handed on to be fetched): nothing done.
    pub(crate) fn cancel(&mut self, ih: InfoHash) -> bool {
        match self.entries.get(&ih) {
            Some(e) if !e.fetching => {
                self.order.remove(&e.seq);
                self.entries.remove(&ih);
                self.searching -= 1;
                true
            }
            _ => false,
        }
    }

    /// Forget `ih` (its end is being written), giving back what is known of it.
    pub(crate) fn remove(&mut self, ih: InfoHash) -> Known {
        let Some(e) = self.entries.remove(&ih) else {
            return Known::default();
        };
        self.order.remove(&e.seq);
        if e.fetching {
            self.fetching -= 1;
        } else {
            self.searching -= 1;
        }
        Known {
            peers: e.peers,
            scrape: e.scrape,
            failure: e.failure,
        }
    }

    /// Whether `ih` is being searched or fetched.
    pub(crate) fn contains(&self, ih: &InfoHash) -> bool {
        self.entries.contains_key(ih)
    }

    /// The fetch backlog is full: stop taking infohashes from the crawler.
    pub(crate) fn full(&self) -> bool {
        self.fetching >= self.fetching_cap
    }

    /// Infohashes waiting for or in a fetch.
    pub(crate) fn fetching(&self) -> usize {
        self.fetching
    }

    /// Everything still pending, in the order found (for the final rows).
    pub(crate) fn drain(&mut self) -> Vec<(InfoHash, Known)> {
        let order = std::mem::take(&mut self.order);
        let rest = order
            .into_values()
            .filter_map(|ih| {
                self.entries.remove(&ih).map(|e| {
                    let known = Known {
                        peers: e.peers,
                        scrape: e.scrape,
                        failure: e.failure,
                    };
                    (ih, known)
                })
            })
            .collect();
        (self.searching, self.fetching) = (0, 0);
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ih(i: u8) -> InfoHash {
        InfoHash([i; 20])
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn src() -> SocketAddr {
        addr("10.9.9.9:6881")
    }

    #[test]
    fn pending_is_bounded_and_forgets_what_is_written() {
        let mut p = Pending::new(2, 1, 2);
        let (p1, p2, p3) = (addr("10.0.0.1:1"), addr("10.0.0.2:2"), addr("10.0.0.3:3"));
        assert!(p.found(ih(1), src()) && p.found(ih(2), src()));
        assert!(p.found(ih(1), src()), "a repeat is not new");
        assert!(!p.found(ih(3), src()), "two searches pending: over the cap");
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
        assert_eq!(
            p.search_done(ih(1), Scrape::default(), NextNodes::default()),
            Next::Fetch(job)
        );
        assert_eq!(
            p.search_done(ih(1), Scrape::default(), NextNodes::default()),
            Next::Nothing,
            "handed on once"
        );
        assert!(!p.cancel(ih(1)), "fetching: not cancelled");
        assert!(p.full(), "one fetch pending: the backlog is full");
        assert_eq!(
            p.search_done(ih(2), Scrape::default(), NextNodes::default()),
            Next::Write(ih(2)),
            "no peer"
        );
        assert!(p.remove(ih(2)).peers.is_empty());
        assert_eq!(
            p.search_done(ih(3), Scrape::default(), NextNodes::default()),
            Next::Nothing,
            "untracked"
        );
        assert!(p.found(ih(4), src()), "searches ended: room again");
        assert_eq!(p.remove(ih(1)).peers, [p1, p2]);
        assert!(!p.full());
        assert!(
            p.found(ih(5), src()) && !p.found(ih(6), src()),
            "two searching: full"
        );
        assert!(p.cancel(ih(4)) && !p.cancel(ih(4)));
        assert!(p.found(ih(7), src()), "a cancel frees a search");
        assert_eq!(
            p.drain(),
            [(ih(5), Known::default()), (ih(7), Known::default())],
            "in the order found"
        );
        assert!(p.entries.is_empty() && p.order.is_empty());
        assert_eq!((p.found, p.untracked, p.most_fetching), (7, 2, 1));
    }

    #[test]
    fn searching_count_comes_back_on_every_path() {
        let mut p = Pending::new(3, 8, 4);
        for i in 1..=3 {
            assert!(p.found(ih(i), src()));
        }
        assert!(!p.found(ih(9), src()), "full");
        assert!(p.cancel(ih(1)));
        p.remove(ih(2));
        p.peer(ih(3), addr("10.0.0.1:1"));
        assert!(matches!(
            p.search_done(ih(3), Scrape::default(), NextNodes::default()),
            Next::Fetch(_)
        ));
        assert_eq!(p.fetching(), 1);
        for i in 4..=6 {
            assert!(p.found(ih(i), src()), "three searches free again");
        }
        p.remove(ih(3));
        assert_eq!(p.fetching(), 0);
    }

    #[test]
    fn a_failed_fetch_searches_again_once_and_fetches_only_new_peers() {
        let mut p = Pending::new(4, 4, 3);
        let (p1, p2, p3, p4) = (
            addr("10.0.0.1:1"),
            addr("10.0.0.2:2"),
            addr("10.0.0.3:3"),
            addr("10.0.0.4:4"),
        );
        assert!(p.found(ih(1), src()));
        p.peer(ih(1), p1);
        assert!(matches!(
            p.search_done(ih(1), Scrape::default(), NextNodes::default()),
            Next::Fetch(_)
        ));
        assert!(p.may_resume());
        let refused = Some(FailureKind::Refused);
        let resume = Resume {
            info_hash: ih(1),
            from: src(),
            tried: vec![p1],
            next: NextNodes::default(),
        };
        assert_eq!(p.fetch_failed(ih(1), refused), Some(resume));
        assert!(!p.may_resume(), "once only");
        assert_eq!((p.searching, p.fetching()), (1, 0), "searching again");
        assert!(
            p.fetch_failed(ih(1), None).is_none(),
            "not fetching: nothing to do"
        );
        // The continued search finds p1 again (deduplicated) and two new peers.
        for peer in [p1, p2, p3, p4] {
            p.peer(ih(1), peer);
        }
        let scrape = Scrape {
            seeds: Some(3),
            peers: None,
        };
        let job = Job {
            info_hash: ih(1),
            peers: vec![p2, p3],
        };
        assert_eq!(
            p.search_done(ih(1), scrape, NextNodes::default()),
            Next::Refetch(job)
        );
        assert_eq!(
            p.fetch_failed(ih(1), None),
            None,
            "the second failure is final"
        );
        let known = p.remove(ih(1));
        assert_eq!(known.peers, [p1, p2, p3]);
        assert_eq!((known.scrape, known.failure), (scrape, refused));

        // A continued search with nothing new: its end is written, with the first failure.
        assert!(p.found(ih(2), src()));
        p.peer(ih(2), p1);
        assert!(matches!(
            p.search_done(ih(2), Scrape::default(), NextNodes::default()),
            Next::Fetch(_)
        ));
        assert!(p.fetch_failed(ih(2), refused).is_some());
        assert_eq!(
            p.search_done(ih(2), Scrape::default(), NextNodes::default()),
            Next::Write(ih(2))
        );
        assert_eq!(p.remove(ih(2)).failure, refused);

        // Peers at the cap: nothing more to search for.
        assert!(p.found(ih(3), src()));
        for peer in [p1, p2, p3] {
            p.peer(ih(3), peer);
        }
        assert!(matches!(
            p.search_done(ih(3), Scrape::default(), NextNodes::default()),
            Next::Fetch(_)
        ));
        assert!(!p.may_resume());
        assert_eq!(p.fetch_failed(ih(3), refused), None);
        assert_eq!((p.searching, p.fetching()), (0, 1));
    }
}
