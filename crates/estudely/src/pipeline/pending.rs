//! What the pipeline knows of the infohashes whose end is not written yet, in the order they
//! were found, bounded: at most `searching_cap` whose peer search runs, at most
//! `fetching_cap` waiting for a claim, for a fetch or in one, `peers_cap` peers each. An
//! infohash leaves as soon as its end is written (or it is dropped as known).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use estudely_krpc::InfoHash;

use super::Scrape;
use crate::crawl::writable_peer;
use crate::fetch::Job;

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
    peers: Vec<SocketAddr>,
    /// Handed on to be claimed and fetched (its search has ended).
    fetching: bool,
    /// Its search's BEP 33 estimates, once it ended.
    scrape: Scrape,
}

/// What to do with an infohash whose peer search ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Fetch its metadata from these peers.
    Fetch(Job),
    /// No peer: write its end now.
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

    /// A new infohash. False: not tracked (over the cap); write its end now.
    pub(crate) fn found(&mut self, ih: InfoHash) -> bool {
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
            peers: Vec::new(),
            fetching: false,
            scrape: Scrape::default(),
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

    /// `ih`'s peer search ended, with these BEP 33 estimates.
    pub(crate) fn search_done(&mut self, ih: InfoHash, scrape: Scrape) -> Next {
        let Some(e) = self.entries.get_mut(&ih) else {
            return Next::Nothing;
        };
        if e.fetching {
            return Next::Nothing;
        }
        e.scrape = scrape;
        if e.peers.is_empty() {
            // Still counted as searching until it is removed.
            return Next::Write(ih);
        }
        self.searching -= 1;
        e.fetching = true;
        self.fetching += 1;
        self.most_fetching = self.most_fetching.max(self.fetching);
        Next::Fetch(Job {
            info_hash: ih,
            peers: e.peers.clone(),
        })
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

    /// Forget `ih` (its end is being written), giving back its peers and estimates.
    pub(crate) fn remove(&mut self, ih: InfoHash) -> (Vec<SocketAddr>, Scrape) {
        let Some(e) = self.entries.remove(&ih) else {
            return (Vec::new(), Scrape::default());
        };
        self.order.remove(&e.seq);
        if e.fetching {
            self.fetching -= 1;
        } else {
            self.searching -= 1;
        }
        (e.peers, e.scrape)
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
    pub(crate) fn drain(&mut self) -> Vec<(InfoHash, Vec<SocketAddr>, Scrape)> {
        let order = std::mem::take(&mut self.order);
        let rest = order
            .into_values()
            .filter_map(|ih| self.entries.remove(&ih).map(|e| (ih, e.peers, e.scrape)))
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

    #[test]
    fn pending_is_bounded_and_forgets_what_is_written() {
        let mut p = Pending::new(2, 1, 2);
        let (p1, p2, p3) = (addr("10.0.0.1:1"), addr("10.0.0.2:2"), addr("10.0.0.3:3"));
        assert!(p.found(ih(1)) && p.found(ih(2)));
        assert!(p.found(ih(1)), "a repeat is not new");
        assert!(!p.found(ih(3)), "two searches pending: over the cap");
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
        assert_eq!(p.search_done(ih(1), Scrape::default()), Next::Fetch(job));
        assert_eq!(
            p.search_done(ih(1), Scrape::default()),
            Next::Nothing,
            "handed on once"
        );
        assert!(!p.cancel(ih(1)), "fetching: not cancelled");
        assert!(p.full(), "one fetch pending: the backlog is full");
        assert_eq!(
            p.search_done(ih(2), Scrape::default()),
            Next::Write(ih(2)),
            "no peer"
        );
        assert!(p.remove(ih(2)).0.is_empty());
        assert_eq!(
            p.search_done(ih(3), Scrape::default()),
            Next::Nothing,
            "untracked"
        );
        assert!(p.found(ih(4)), "searches ended: room again");
        assert_eq!(p.remove(ih(1)).0, [p1, p2]);
        assert!(!p.full());
        assert!(p.found(ih(5)) && !p.found(ih(6)), "two searching: full");
        assert!(p.cancel(ih(4)) && !p.cancel(ih(4)));
        assert!(p.found(ih(7)), "a cancel frees a search");
        assert_eq!(
            p.drain(),
            [
                (ih(5), vec![], Scrape::default()),
                (ih(7), vec![], Scrape::default())
            ],
            "in the order found"
        );
        assert!(p.entries.is_empty() && p.order.is_empty());
        assert_eq!((p.found, p.untracked, p.most_fetching), (7, 2, 1));
    }

    #[test]
    fn searching_count_comes_back_on_every_path() {
        let mut p = Pending::new(3, 8, 4);
        for i in 1..=3 {
            assert!(p.found(ih(i)));
        }
        assert!(!p.found(ih(9)), "full");
        assert!(p.cancel(ih(1)));
        p.remove(ih(2));
        p.peer(ih(3), addr("10.0.0.1:1"));
        assert!(matches!(
            p.search_done(ih(3), Scrape::default()),
            Next::Fetch(_)
        ));
        assert_eq!(p.fetching(), 1);
        for i in 4..=6 {
            assert!(p.found(ih(i)), "three searches free again");
        }
        p.remove(ih(3));
        assert_eq!(p.fetching(), 0);
    }
}
