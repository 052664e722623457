//! Peer discovery for one infohash: `get_peers` to the node that sampled it, then to the
//! closest nodes the replies point to, until enough distinct peers are known, the query
//! budget is spent, or nothing new turns up.
//!
//! Once the search has a peer, every other query asks for a BEP 33 scrape (the second, the
//! fourth...): the seed and peer filters of the responding nodes are ORed, and their
//! estimates reported with the search's end. Not before, and not all of them: libtorrent
//! answers a scrape with the filters *instead of* `values`, so a scrape sent to a node that
//! stores the peers hides them (on 32 libtorrent nodes, 10 of 251 searches that had lost or
//! skipped their first node ended empty that way).
//!
//! **The sampling node.** It stores the infohash, so it is asked first. When it is over its
//! per-IP budget (many searches start at it: one per infohash it sampled), the search goes
//! on with other nodes meanwhile, but it does not end, however dry the others and whatever
//! its query budget, before it has asked it.
//!
//! **Enough for a fetch.** A caller that only wants the metadata needs one or two peers, and
//! the node that sampled the infohash stores them: with [`Search::stop_at`] the search asks
//! that node alone first and stops at the first reply that brings `enough` peers (the reply
//! keeps all it brought, up to `wanted`). Most searches then cost one query instead of
//! four or five (the rest went to replicas that only repeat the same peers); the caller
//! continues the search ([`Search::resumed`]) only where the fetch fails. The trade-off: a
//! search that stops after its first query never asks for a scrape, so BEP 33 estimates
//! come only from searches that go on (no peers at the sampling node, or continued).
//!
//! **Re-scrapes** ([`Search::scrape`]): the search of a torrent already known, for fresh
//! estimates only. It starts at the nodes of our routing table closest to the infohash
//! (those store its announces), asks every node for a scrape, keeps no peer, and ends at
//! its query budget or after replies that bring neither a filter nor a closer node.

use std::collections::HashSet;
use std::net::SocketAddr;

use estudely_krpc::{CompactNode, InfoHash};
use smallvec::SmallVec;

use super::search_pool::Parts;
use crate::bloom::{Bloom, MAX_PLAUSIBLE};

/// Most candidate nodes remembered per search.
const MAX_CANDIDATES: usize = 32;
/// `get_peers` in flight at once per search.
const PARALLEL: usize = 2;
/// Candidates looked at, closest first, for one within its per-IP budget: a bucket's worth
/// (an infohash is stored on about 8 nodes, any of which may answer with its peers).
const SKIP: usize = 8;
/// Replies in a row that bring nothing new (no peer, no closer node) before giving up.
const MAX_DRY: usize = 2;
/// A search's query budget counts the nodes that answered; the queries that got no answer
/// may take it to this many times the budget at most. On a lossy path half the queries may
/// go unanswered, and the budget is for asking nodes, not for losing datagrams.
const LOST_ALLOWANCE: usize = 2;
/// Nodes asked a second time after a lost query ([`Search::on_lost`]), at most: an
/// infohash is stored on about 8.
const MAX_RESENT: usize = 8;

/// One infohash's peer search.
#[derive(Debug, Clone)]
pub struct Search {
    /// The torrent.
    pub info_hash: InfoHash,
    /// Candidate nodes, closest first, not yet asked.
    candidates: Vec<([u8; 20], SocketAddr)>,
    asked: HashSet<SocketAddr>,
    peers: Vec<SocketAddr>,
    peer_set: HashSet<SocketAddr>,
    in_flight: usize,
    queries: usize,
    max_queries: usize,
    wanted: usize,
    /// Stop at this many peers (0: at `wanted`): see [`Search::stop_at`].
    enough: usize,
    /// A continuation ([`Search::resumed`]): one query at a time, and it ends at the first
    /// node that answers with peers, none of them new (`stale`).
    resumed: bool,
    stale: bool,
    /// Nodes asked again after a lost query ([`Search::on_lost`]).
    resent: SmallVec<[SocketAddr; MAX_RESENT]>,
    dry: usize,
    /// Nodes that answered.
    answers: usize,
    origin: SocketAddr,
    /// The union of the BEP 33 seed filters received (`None`: none received).
    seeds: Option<Bloom>,
    /// ... and of the peer filters.
    leechers: Option<Bloom>,
    /// In the crawler's turn of searches that may send (see `searches.rs`).
    pub(crate) listed: bool,
    /// Which start of the search this is (a search may be started again).
    pub(crate) generation: u64,
    /// A re-scrape ([`Search::scrape`]): scrapes only, no peers.
    scrape_only: bool,
    /// Replies that brought a usable filter.
    filters: usize,
    /// The reply being handled brought a usable filter (see [`Search::on_scrape`]).
    fresh_filter: bool,
}

impl Search {
    /// A search starting at `first` (the node that sampled the infohash), then `known`
    /// nodes (from our routing table) and whatever closer nodes the replies name.
    pub fn new(
        info_hash: InfoHash,
        first: SocketAddr,
        known: &[CompactNode],
        wanted: usize,
        max_queries: usize,
    ) -> Self {
        Search::with_parts(
            Parts::default(),
            info_hash,
            first,
            known,
            wanted,
            max_queries,
        )
    }

    /// [`Search::new`], in the containers of a finished search (emptied here).
    pub(crate) fn with_parts(
        mut parts: Parts,
        info_hash: InfoHash,
        first: SocketAddr,
        known: &[CompactNode],
        wanted: usize,
        max_queries: usize,
    ) -> Self {
        parts.candidates.clear();
        parts.asked.clear();
        parts.peers.clear();
        parts.peer_set.clear();
        // The sampling node stores the infohash: ask it first whatever its distance.
        parts.candidates.push(([0; 20], first));
        let mut s = Search {
            info_hash,
            candidates: parts.candidates,
            asked: parts.asked,
            peers: parts.peers,
            peer_set: parts.peer_set,
            in_flight: 0,
            queries: 0,
            max_queries,
            wanted,
            enough: 0,
            resumed: false,
            stale: false,
            resent: SmallVec::new(),
            dry: 0,
            answers: 0,
            origin: first,
            seeds: None,
            leechers: None,
            listed: false,
            generation: 0,
            scrape_only: false,
            filters: 0,
            fresh_filter: false,
        };
        s.add_candidates(known);
        s
    }

    /// The re-scrape of a known torrent: BEP 33 estimates only (see the module doc), from
    /// `known` (our routing table's nodes closest to the infohash, closest first; the first
    /// is its "sampling node", asked whatever its budget says before the search ends), at
    /// most `max_queries` nodes answering.
    pub(crate) fn scrape(
        parts: Parts,
        info_hash: InfoHash,
        known: &[CompactNode],
        max_queries: usize,
    ) -> Option<Self> {
        let first = known.first()?;
        let mut s = Search::with_parts(parts, info_hash, first.addr, &known[1..], 0, max_queries);
        s.scrape_only = true;
        Some(s)
    }

    /// Whether it is a re-scrape (asks every node for a BEP 33 scrape, keeps no peers).
    pub fn is_scrape(&self) -> bool {
        self.scrape_only
    }

    /// Replies that brought a usable BEP 33 filter.
    pub fn filters(&self) -> usize {
        self.filters
    }

    /// The search once more, after it ended empty-handed: from `known` (the routing table
    /// as it is now), skipping every node this try asked, since each answered with nothing
    /// or not at all. With no new node to ask, it is done at once.
    pub fn retry(self, known: &[CompactNode]) -> Self {
        let (info_hash, origin, wanted, max_queries, enough) = (
            self.info_hash,
            self.origin,
            self.wanted,
            self.max_queries,
            self.enough,
        );
        let mut parts = self.into_parts();
        let asked = std::mem::take(&mut parts.asked);
        let mut s =
            Search::with_parts(parts, info_hash, origin, &[], wanted, max_queries).stop_at(enough);
        s.candidates.clear();
        s.asked = asked;
        s.add_candidates(known);
        s
    }

    /// Stop once `enough` peers are found (at most `wanted`; 0: search on to `wanted`), and
    /// until the first query is answered (or lost), ask no other node than that first one
    /// (the sampling node, which stores the infohash): see the module doc.
    #[must_use]
    pub fn stop_at(mut self, enough: usize) -> Self {
        self.enough = enough.min(self.wanted);
        self
    }

    /// The search of an infohash whose first search stopped at enough peers for a fetch
    /// that then failed on all of them (`tried`): from `known` (the routing table), never
    /// the first node again (it gave what it had), for up to `wanted` peers in all, the
    /// `tried` ones counted as found and not reported again.
    pub(crate) fn resumed(
        parts: Parts,
        info_hash: InfoHash,
        first: SocketAddr,
        known: &[CompactNode],
        tried: &[SocketAddr],
        wanted: usize,
        max_queries: usize,
    ) -> Self {
        let mut s = Search::with_parts(parts, info_hash, first, &[], wanted, max_queries);
        s.resumed = true;
        s.candidates.clear();
        s.asked.insert(first);
        for p in tried.iter().take(wanted) {
            s.add_known_peer(*p);
        }
        s.add_candidates(known);
        s
    }

    /// The search's containers, for a later search to reuse ([`Search::with_parts`]).
    pub(crate) fn into_parts(self) -> Parts {
        Parts {
            candidates: self.candidates,
            asked: self.asked,
            peers: self.peers,
            peer_set: self.peer_set,
        }
    }

    /// Add nodes to ask, closest first; returns how many were new.
    fn add_candidates(&mut self, nodes: &[CompactNode]) -> usize {
        let mut added = 0;
        for n in nodes {
            if self.asked.contains(&n.addr) || self.candidates.iter().any(|(_, a)| *a == n.addr) {
                continue;
            }
            let d = n.id.distance(&self.info_hash.0);
            let at = self.candidates.partition_point(|(c, _)| *c <= d);
            if at < MAX_CANDIDATES {
                self.candidates.insert(at, (d, n.addr));
                self.candidates.truncate(MAX_CANDIDATES);
                added += 1;
            }
        }
        added
    }

    /// The next node to ask, if the search wants one now: the closest of the first
    /// `SKIP` candidates that `allowed` accepts. A node refused now (over its per-IP
    /// budget) keeps its place for later, and the search goes on with the next closest
    /// instead of waiting for it: many searches often start at one node (the one that
    /// sampled their infohashes), and would otherwise all wait on its budget.
    pub fn next_query_if(&mut self, allowed: impl Fn(&SocketAddr) -> bool) -> Option<SocketAddr> {
        if !self.wants_query() {
            return None;
        }
        if self.exhausted() {
            // Only the sampling node is still to be asked.
            let origin = self.origin;
            let at = self.candidates.iter().position(|(_, a)| *a == origin)?;
            return allowed(&origin).then(|| self.take(at));
        }
        // Stopping early, the sampling node is worth waiting for: it most likely has the
        // peers, where another node would cost a query and most likely have none.
        let skip = if self.enough > 0 && self.queries == 0 {
            1
        } else {
            SKIP
        };
        let at = self
            .candidates
            .iter()
            .take(skip)
            .position(|(_, a)| allowed(a))?;
        Some(self.take(at))
    }

    /// Whether the query just handed out by [`Search::next_query`] should ask for a scrape
    /// (see the module doc).
    pub fn scrape_now(&self) -> bool {
        self.scrape_only || !self.peers.is_empty() && self.queries.is_multiple_of(2)
    }

    /// The sampling node is not asked yet (it waits for its per-IP budget).
    fn origin_unasked(&self) -> bool {
        !self.asked.contains(&self.origin)
    }

    /// Out of queries, or the replies stopped bringing anything new: only the sampling node,
    /// if it was never asked, may still be.
    fn exhausted(&self) -> bool {
        self.answers >= self.max_queries
            || self.queries >= self.max_queries * LOST_ALLOWANCE
            || self.dry >= MAX_DRY
    }

    /// A peer known before the search starts (an announcer): counted as found, not
    /// reported again.
    pub fn add_known_peer(&mut self, peer: SocketAddr) {
        if self.peer_set.insert(peer) {
            self.peers.push(peer);
        }
    }

    /// Put back a node whose query could not be sent (it will be asked again).
    pub fn unsent(&mut self, addr: SocketAddr) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.queries = self.queries.saturating_sub(1);
        self.asked.remove(&addr);
        self.candidates.insert(0, ([0; 20], addr));
    }

    /// Whether the search would send a query now (it has a candidate).
    pub(crate) fn wants_query(&self) -> bool {
        // Stopping early, the first query goes alone: its node most likely has the peers.
        let parallel = if (self.enough > 0 && self.queries == 1) || self.resumed {
            1
        } else {
            PARALLEL
        };
        !(self.satisfied()
            || self.stale
            || self.in_flight >= parallel
            || self.exhausted() && !self.origin_unasked()
            || self.candidates.is_empty())
    }

    /// The next node to ask, if the search wants one now.
    pub fn next_query(&mut self) -> Option<SocketAddr> {
        self.next_query_if(|_| true)
    }

    /// Hand out candidate `at` as the next query.
    fn take(&mut self, at: usize) -> SocketAddr {
        let (_, addr) = self.candidates.remove(at);
        self.asked.insert(addr);
        self.in_flight += 1;
        self.queries += 1;
        addr
    }

    /// A node answered: new peers (returned, at most up to `wanted` in all) and closer nodes.
    pub fn on_reply(&mut self, values: &[SocketAddr], nodes: &[CompactNode]) -> Vec<SocketAddr> {
        let mut new = Vec::new();
        self.on_reply_into(values, nodes, &mut new);
        new
    }

    /// [`Search::on_reply`], the new peers put in `new` (cleared first) rather than in a
    /// new `Vec`.
    pub fn on_reply_into(
        &mut self,
        values: &[SocketAddr],
        nodes: &[CompactNode],
        new: &mut Vec<SocketAddr>,
    ) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.answers += 1;
        new.clear();
        // A re-scrape keeps no peer (none is wanted, and it must never be "satisfied").
        let values = if self.scrape_only { &[] } else { values };
        for p in values {
            if self.peers.len() >= self.wanted {
                break;
            }
            if self.peer_set.insert(*p) {
                self.peers.push(*p);
                new.push(*p);
            }
        }
        // A second node that stores the infohash and knows no other peer than those tried:
        // the DHT most likely knows no more.
        self.stale |= self.resumed && new.is_empty() && !values.is_empty();
        let closer = self.add_candidates(nodes);
        // For a re-scrape, a node that sent its filters brought something too.
        let filter = std::mem::take(&mut self.fresh_filter) && self.scrape_only;
        if new.is_empty() && closer == 0 && !filter {
            self.dry += 1;
        } else {
            self.dry = 0;
        }
    }

    /// A node's BEP 33 filters (`BFsd`, `BFpe`), merged into the search's. A filter whose
    /// estimate is beyond what BEP 33 lets a node store ([`MAX_PLAUSIBLE`]) is ignored: one
    /// full filter would otherwise saturate the union.
    /// Call it before [`Search::on_reply`] for the same reply.
    pub fn on_scrape(&mut self, seeds: Option<&[u8; 256]>, peers: Option<&[u8; 256]>) {
        let mut used = false;
        for (got, into) in [(seeds, &mut self.seeds), (peers, &mut self.leechers)] {
            let Some(bits) = got else { continue };
            let b = Bloom::from(*bits);
            if b.estimate() > MAX_PLAUSIBLE {
                continue;
            }
            into.get_or_insert_with(Bloom::new).union(&b);
            used = true;
        }
        self.filters += usize::from(used);
        self.fresh_filter = used;
    }

    /// The BEP 33 estimates of the seeds and of the other peers, from the filters received
    /// (`None` when no node sent one).
    pub fn estimates(&self) -> (Option<u32>, Option<u32>) {
        (
            self.seeds.as_ref().map(Bloom::estimate),
            self.leechers.as_ref().map(Bloom::estimate),
        )
    }

    /// A node did not answer (or refused).
    pub fn on_failure(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// A node that answered us before did not answer this query: on a lossy path the query
    /// or its reply was most likely lost. While the search has no peer, it asks that node
    /// once more, next (once per node, `MAX_RESENT` nodes at most, within the query
    /// budget): the nodes that store an infohash are few, and 30 % loss each way loses half
    /// the queries, so a search that gives each of them one chance ends empty-handed for
    /// about one infohash in 200, though 8 nodes store its peers. Otherwise as
    /// [`Search::on_failure`].
    pub fn on_lost(&mut self, addr: SocketAddr) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.peers.is_empty()
            && !self.resent.contains(&addr)
            && self.resent.len() < MAX_RESENT
            && !self.exhausted()
        {
            self.resent.push(addr);
            self.asked.remove(&addr);
            self.candidates.insert(0, ([0; 20], addr));
        }
    }

    /// The node the search started from (the one that sampled the infohash).
    pub fn first(&self) -> SocketAddr {
        self.origin
    }

    /// Enough peers found: `wanted`, or the `enough` of [`Search::stop_at`].
    pub fn satisfied(&self) -> bool {
        !self.scrape_only
            && (self.peers.len() >= self.wanted
                || (self.enough > 0 && self.peers.len() >= self.enough))
    }

    /// Whether it ended at enough peers for a fetch, short of `wanted`
    /// ([`Search::stop_at`]): it may be continued if the fetch fails.
    pub fn stopped_early(&self) -> bool {
        self.enough > 0 && self.peers.len() >= self.enough && self.peers.len() < self.wanted
    }

    /// Nothing more will happen: satisfied (whatever is still in flight: its peers are not
    /// wanted, and waiting for a lost query would hold a fetch back by a timeout); or idle
    /// and out of queries or candidates, or with replies that stopped bringing anything new.
    pub fn is_done(&self) -> bool {
        self.satisfied()
            || self.in_flight == 0
                && (self.stale
                    || self.candidates.is_empty()
                    || self.exhausted() && !self.origin_unasked())
    }

    /// The first candidates, the nodes it would ask next (closest first).
    pub fn next_nodes(&self) -> super::NextNodes {
        let mut out = super::NextNodes::default();
        for (slot, (d, addr)) in out.iter_mut().zip(&self.candidates) {
            let mut id = *d;
            for (b, h) in id.iter_mut().zip(self.info_hash.0) {
                *b ^= h;
            }
            *slot = Some(CompactNode {
                id: estudely_krpc::NodeId(id),
                addr: *addr,
            });
        }
        out
    }

    /// Distinct peers found.
    pub fn peers(&self) -> &[SocketAddr] {
        &self.peers
    }

    /// Queries sent.
    pub fn queries(&self) -> usize {
        self.queries
    }

    /// Nodes that answered.
    pub fn answers(&self) -> usize {
        self.answers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use estudely_krpc::NodeId;

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i], 6881))
    }

    #[test]
    fn asks_source_then_closest_until_enough_peers() {
        let ih = InfoHash([0; 20]);
        let mut s = Search::new(ih, addr(1), &[], 3, 8);
        assert_eq!(s.next_query(), Some(addr(1)));
        assert!(
            !s.scrape_now(),
            "the sampling node is asked for values, not a scrape"
        );
        assert_eq!(s.next_query(), None, "no candidates yet");
        let far = CompactNode {
            id: NodeId([0xF0; 20]),
            addr: addr(2),
        };
        let near = CompactNode {
            id: NodeId([0x01; 20]),
            addr: addr(3),
        };
        let new = s.on_reply(&[addr(9), addr(9)], &[far, near]);
        assert_eq!(new, vec![addr(9)]);
        assert_eq!(s.next_query(), Some(addr(3)), "closest first");
        assert!(s.scrape_now(), "every other query asks for a scrape");
        assert_eq!(s.next_query(), Some(addr(2)));
        let new = s.on_reply(&[addr(9), addr(10), addr(11), addr(12)], &[near]);
        assert_eq!(new, vec![addr(10), addr(11)], "capped at wanted");
        assert!(s.satisfied());
        s.on_failure();
        assert!(s.is_done());
    }

    #[test]
    fn gives_up_when_nothing_new_comes() {
        let far = |i: u8| CompactNode {
            id: NodeId([0x80 | i; 20]),
            addr: addr(i),
        };
        let known: Vec<CompactNode> = (2..10).map(far).collect();
        let mut s = Search::new(InfoHash([0; 20]), addr(1), &known, 20, 100);
        for _ in 0..3 {
            assert!(s.next_query().is_some());
            s.on_reply(&[addr(99)], &[]);
        }
        assert_eq!(s.peers(), &[addr(99)]);
        assert!(s.is_done(), "two dry replies after the first peer: {s:?}");
        assert_eq!(s.queries(), 3);
    }

    /// libtorrent answers a scrape with its bloom filters *instead of* `values`: a search
    /// with no peer yet must not ask for one, or a node that stores the peers hides them
    /// (seen on 32 libtorrent nodes, the sampling node's reply lost or its budget spent).
    #[test]
    fn no_scrape_is_asked_before_the_first_peer() {
        let near = |i: u8| CompactNode {
            id: NodeId([i; 20]),
            addr: addr(i),
        };
        let known: Vec<CompactNode> = (2..8).map(near).collect();
        let mut s = Search::new(InfoHash([0; 20]), addr(1), &known, 20, 16);
        assert_eq!(s.next_query(), Some(addr(1)));
        s.on_failure();
        for k in 0..3 {
            assert!(s.next_query().is_some());
            assert!(!s.scrape_now(), "no peer yet: values, not a scrape");
            s.on_reply(&[], &[near(9 + k)]);
        }
        assert!(s.next_query().is_some());
        s.on_reply(&[addr(99)], &[]);
        let mut scrapes = 0;
        while let Some(_a) = s.next_query() {
            scrapes += usize::from(s.scrape_now());
            s.on_reply(&[], &[]);
        }
        assert!(scrapes > 0, "with a peer, scrapes for the estimates: {s:?}");
    }

    /// The sampling node stores the infohash: a search that went on without it while it was
    /// over its per-IP budget does not end before it was asked, however dry the others.
    #[test]
    fn a_busy_sampling_node_is_still_asked_before_the_search_ends() {
        let far = |i: u8| CompactNode {
            id: NodeId([0x80 | i; 20]),
            addr: addr(i),
        };
        let known: Vec<CompactNode> = (2..6).map(far).collect();
        let mut s = Search::new(InfoHash([0; 20]), addr(1), &known, 20, 8);
        let busy = |a: &SocketAddr| *a != addr(1);
        for _ in 0..MAX_DRY {
            let a = s
                .next_query_if(busy)
                .expect("another node while the first is busy");
            assert_ne!(a, addr(1));
            s.on_reply(&[], &[]);
        }
        assert_eq!(s.next_query_if(busy), None, "dry");
        assert!(!s.is_done(), "the sampling node was never asked: {s:?}");
        assert_eq!(s.next_query_if(|_| true), Some(addr(1)));
        assert!(!s.scrape_now());
        s.on_reply(&[addr(99)], &[]);
        assert_eq!(s.peers(), &[addr(99)]);
        assert!(
            s.next_query_if(|_| true).is_some(),
            "it brought a peer: the search goes on to its wanted 20"
        );
    }

    #[test]
    fn scrape_filters_of_two_nodes_are_merged() {
        use std::net::IpAddr;
        let bloom = |ips: std::ops::Range<u8>| {
            let mut b = Bloom::new();
            for i in ips {
                b.insert(IpAddr::from([11, 0, 0, i]));
            }
            *b.bytes()
        };
        let mut s = Search::new(InfoHash([0; 20]), addr(1), &[], 10, 8);
        assert_eq!(s.estimates(), (None, None));
        // Node one: seeds 0..5, peers 10..30; node two: seeds 3..8, no peer filter.
        s.on_scrape(Some(&bloom(0..5)), Some(&bloom(10..30)));
        s.on_scrape(Some(&bloom(3..8)), None);
        // A full filter is a lie, not a swarm of thousands.
        s.on_scrape(Some(&[0xff; 256]), Some(&[0xff; 256]));
        assert_eq!(s.estimates(), (Some(8), Some(20)));
    }

    #[test]
    fn bounded_queries() {
        let mut s = Search::new(InfoHash([0; 20]), addr(1), &[], 100, 2);
        assert!(s.next_query().is_some());
        let nodes: Vec<CompactNode> = (2..60)
            .map(|i| CompactNode {
                id: NodeId([i; 20]),
                addr: addr(i),
            })
            .collect();
        s.on_reply(&[], &nodes);
        assert!(s.candidates.len() <= MAX_CANDIDATES);
        assert!(s.next_query().is_some());
        assert!(s.next_query().is_some());
        assert!(s.next_query().is_none(), "two in flight at most");
        // Unanswered queries stretch the budget of 2 answers, to 4 queries sent at most.
        s.on_failure();
        s.on_failure();
        assert!(s.next_query().is_some());
        assert!(s.next_query().is_none(), "4 sent: twice the budget");
        s.on_failure();
        assert!(s.is_done());
        // Two answers: the budget is spent whatever was lost.
        let mut s = Search::new(InfoHash([0; 20]), addr(1), &[], 100, 2);
        assert!(s.next_query().is_some());
        s.on_reply(&[], &nodes);
        assert!(s.next_query().is_some());
        s.on_reply(&[], &nodes[10..]);
        assert!(s.next_query().is_none(), "2 answers: done");
        assert!(s.is_done());
    }

    /// A node that answered before and lost this query is asked once more, next, while
    /// the search has no peer; never a third time.
    #[test]
    fn a_lost_query_is_sent_once_more_while_no_peer_is_known() {
        let near = |i: u8| CompactNode {
            id: NodeId([i; 20]),
            addr: addr(i),
        };
        let mut s = Search::new(InfoHash([0; 20]), addr(1), &[near(2), near(3)], 20, 8);
        assert_eq!(s.next_query(), Some(addr(1)));
        s.on_lost(addr(1));
        assert_eq!(s.next_query(), Some(addr(1)), "once more, first");
        s.on_lost(addr(1));
        assert_eq!(s.next_query(), Some(addr(2)), "not a third time");
        s.on_reply(&[addr(99)], &[]);
        assert_eq!(s.next_query(), Some(addr(3)));
        s.on_lost(addr(3));
        assert_eq!(s.next_query(), None, "a peer is known: not again");
        assert!(s.is_done());
    }

    #[test]
    fn stopping_at_a_peer_asks_the_first_node_alone_and_ends_without_waiting() {
        let near = |i: u8| CompactNode {
            id: NodeId([i; 20]),
            addr: addr(i),
        };
        let mut s = Search::new(InfoHash([0; 20]), addr(1), &[near(2), near(3)], 20, 8).stop_at(1);
        assert_eq!(
            s.next_query_if(|a| *a != addr(1)),
            None,
            "waits for the first node"
        );
        assert_eq!(s.next_query(), Some(addr(1)));
        assert_eq!(s.next_query(), None, "alone until it answers");
        s.on_failure();
        // Lost: two at once from now on, as any search.
        assert_eq!(s.next_query(), Some(addr(2)));
        assert_eq!(s.next_query(), Some(addr(3)));
        s.on_reply(&[addr(9)], &[]);
        assert!(s.is_done(), "a peer: done, the other query not waited for");
        assert!(s.stopped_early());
        // Continued: not the first node again; one at a time; ends at a node with nothing new.
        let tried = s.peers().to_vec();
        let next = s.next_nodes();
        let mut r = Search::resumed(
            Parts::default(),
            InfoHash([0; 20]),
            addr(1),
            &[near(1), near(4), near(5)],
            &tried,
            20,
            8,
        );
        assert_eq!(
            next.iter().flatten().count(),
            0,
            "no candidate left to hand on"
        );
        assert_eq!(r.next_query(), Some(addr(4)));
        assert_eq!(r.next_query(), None, "one at a time");
        r.on_reply(&[addr(9)], &[]);
        assert!(
            r.is_done(),
            "a node with only the tried peer: the DHT knows no more"
        );
        assert_eq!(r.peers(), &[addr(9)]);
    }

    /// A re-scrape asks every node for a scrape (the first too), keeps no peer, goes on
    /// while nodes send filters (even with no closer node), and stops at its budget.
    #[test]
    fn a_rescrape_asks_every_node_for_filters_and_keeps_no_peer() {
        let near = |i: u8| CompactNode {
            id: NodeId([i; 20]),
            addr: addr(i),
        };
        let known: Vec<CompactNode> = (1..9).map(near).collect();
        assert!(Search::scrape(Parts::default(), InfoHash([0; 20]), &[], 4).is_none());
        let mut s = Search::scrape(Parts::default(), InfoHash([0; 20]), &known, 4).unwrap();
        assert!(s.is_scrape());
        let filter = [0x0f; 256];
        let mut asked = Vec::new();
        while let Some(a) = s.next_query() {
            assert!(s.scrape_now(), "every query asks for a scrape");
            asked.push(a);
            // Filters, a peer, no closer node: not dry, no peer kept.
            s.on_scrape(Some(&filter), None);
            s.on_reply(&[addr(99)], &[]);
        }
        assert_eq!(
            asked,
            [addr(1), addr(2), addr(3), addr(4)],
            "closest first, 4 answers"
        );
        assert!(s.peers().is_empty());
        assert!(!s.satisfied());
        assert!(s.is_done());
        assert_eq!(s.filters(), 4);
        assert!(s.estimates().0.is_some() && s.estimates().1.is_none());
        // Replies with neither filter nor closer node: dry after two.
        let mut s = Search::scrape(Parts::default(), InfoHash([0; 20]), &known, 8).unwrap();
        for _ in 0..MAX_DRY {
            assert!(s.next_query().is_some());
            s.on_reply(&[], &[]);
        }
        assert_eq!(s.next_query(), None);
        assert!(s.is_done());
        assert_eq!((s.queries(), s.filters()), (2, 0));
        assert_eq!(s.estimates(), (None, None));
    }
}
