//! The crawler's peer searches: the queue of infohashes waiting for one, the searches
//! running, and which of them may send a query now.
//!
//! Two things make a fast crawl possible here, and both come from where a DHT stores an
//! infohash: on the nodes whose ids are closest to it, which are also the neighbours of the
//! node that sampled it. So the twenty infohashes one node samples all lead their searches to
//! the same handful of nodes, whose per-IP budget (twenty queries in ten seconds) lets about
//! two of those searches move at once.
//!
//! - The queue is **interleaved by source**: searches start in turn from each sampling node
//!   (round robin), not in the order the samples came, and at most [`PER_SOURCE`] run at once
//!   from one source, so the searches running at once spread over as many neighbourhoods as
//!   there are sources waiting, instead of filling every slot with searches that all wait on
//!   the same spent budgets.
//! - Running searches that could send are **ready**, taken in turn; one whose next nodes are
//!   all over their budget is **blocked** and looked at again a little later, and one waiting
//!   for replies is in neither list until a reply (or its loss) comes. So choosing the next
//!   query costs a few steps however many searches run, instead of a pass over all of them.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use estudely_krpc::InfoHash;

use super::Search;

/// How long a search whose next nodes are all over their per-IP budget waits before it is
/// looked at again (budgets free a query at a time, over ten seconds).
const BLOCKED_RECHECK: Duration = Duration::from_millis(100);

/// Searches running at once from one source (their infohashes share a neighbourhood, whose
/// budgets let about two of them move at a time) while other sources wait. With no other
/// source waiting, more may run, up to half the slots in all: a small network has few
/// sources, and their searches should not wait on an idle crawler.
pub(crate) const PER_SOURCE: u32 = 2;

/// Emptied per-source queues kept for new sources to reuse (a source comes and goes with
/// each sampled node's infohashes), at most this many...
const MAX_SPARE_QUEUES: usize = 16;
/// ... and none that grew beyond this many entries.
const MAX_SPARE_CAPACITY: usize = 64;

/// An infohash waiting for its search: the node to ask first (the one that sampled it, or
/// that announced it), and a peer already known (the announcer).
pub(crate) type Queued = (InfoHash, SocketAddr, Option<SocketAddr>);

/// One source's infohashes waiting, and its searches running.
#[derive(Debug, Default)]
struct Source {
    waiting: VecDeque<Queued>,
    running: u32,
    /// In [`SourceQueue::turn`].
    in_turn: bool,
    /// In [`SourceQueue::capped`].
    in_capped: bool,
}

impl Source {
    /// A new source, with a spare queue if there is one.
    fn new(spare: &mut Vec<VecDeque<Queued>>) -> Self {
        Source {
            waiting: spare.pop().unwrap_or_default(),
            ..Source::default()
        }
    }

    fn may_start(&self) -> bool {
        !self.waiting.is_empty() && self.running < PER_SOURCE
    }
}

/// Infohashes waiting for a search, handed out in turn by source, each source with at most
/// [`PER_SOURCE`] searches running.
#[derive(Debug, Default)]
struct SourceQueue {
    /// Sources with something waiting or running.
    sources: HashMap<SocketAddr, Source>,
    /// Sources that may start a search now, in turn (each at most once).
    turn: VecDeque<SocketAddr>,
    /// Sources with searches waiting but [`PER_SOURCE`] running, in turn (each at most once).
    capped: VecDeque<SocketAddr>,
    /// Searches running beyond [`PER_SOURCE`] from their source.
    over_cap: usize,
    len: usize,
    /// Emptied queues of sources that went away, for new ones (bounded:
    /// [`MAX_SPARE_QUEUES`]).
    spare: Vec<VecDeque<Queued>>,
}

impl SourceQueue {
    fn push(&mut self, q: Queued) {
        let spare = &mut self.spare;
        let source = self
            .sources
            .entry(q.1)
            .or_insert_with(|| Source::new(spare));
        source.waiting.push_back(q);
        self.len += 1;
        Self::enlist(&mut self.turn, &mut self.capped, q.1, source);
    }

    fn enlist(
        turn: &mut VecDeque<SocketAddr>,
        capped: &mut VecDeque<SocketAddr>,
        addr: SocketAddr,
        source: &mut Source,
    ) {
        if !source.in_turn && source.may_start() {
            source.in_turn = true;
            turn.push_back(addr);
        } else if !source.in_capped && !source.waiting.is_empty() {
            source.in_capped = true;
            capped.push_back(addr);
        }
    }

    /// The next infohash whose search may start: from a source with fewer than
    /// [`PER_SOURCE`] running, else (`over_cap_allowed`) from any source, in turn. Its
    /// source's count of running searches goes up when it starts ([`SourceQueue::started`]).
    fn pop(&mut self, over_cap_allowed: bool) -> Option<Queued> {
        while let Some(addr) = self.turn.pop_front() {
            let Some(source) = self.sources.get_mut(&addr) else {
                continue;
            };
            source.in_turn = false;
            if !source.may_start() {
                continue;
            }
            let q = source.waiting.pop_front();
            self.len -= usize::from(q.is_some());
            return q;
        }
        if !over_cap_allowed {
            return None;
        }
        while let Some(addr) = self.capped.pop_front() {
            let Some(source) = self.sources.get_mut(&addr) else {
                continue;
            };
            source.in_capped = false;
            let Some(q) = source.waiting.pop_front() else {
                continue;
            };
            self.len -= 1;
            return Some(q);
        }
        None
    }

    /// A search from `addr` started.
    fn started(&mut self, addr: SocketAddr) {
        let spare = &mut self.spare;
        let source = self
            .sources
            .entry(addr)
            .or_insert_with(|| Source::new(spare));
        source.running += 1;
        self.over_cap += usize::from(source.running > PER_SOURCE);
        Self::enlist(&mut self.turn, &mut self.capped, addr, source);
    }

    /// A search from `addr` ended.
    fn ended(&mut self, addr: SocketAddr) {
        if let Some(source) = self.sources.get_mut(&addr) {
            self.over_cap -= usize::from(source.running > PER_SOURCE);
            source.running = source.running.saturating_sub(1);
            Self::enlist(&mut self.turn, &mut self.capped, addr, source);
            if source.running == 0 && source.waiting.is_empty() {
                if let Some(gone) = self.sources.remove(&addr) {
                    self.keep_spare(gone.waiting);
                }
            }
        }
    }

    /// Keep an emptied queue for a new source, if there is room and it is small.
    fn keep_spare(&mut self, mut q: VecDeque<Queued>) {
        if self.spare.len() < MAX_SPARE_QUEUES && q.capacity() <= MAX_SPARE_CAPACITY {
            q.clear();
            self.spare.push(q);
        }
    }

    /// Drop `ih` wherever it waits; whether it did.
    fn remove(&mut self, ih: &InfoHash) -> bool {
        let before = self.len;
        for source in self.sources.values_mut() {
            let n = source.waiting.len();
            source.waiting.retain(|(q, _, _)| q != ih);
            self.len -= n - source.waiting.len();
        }
        self.sources
            .retain(|_, s| s.running > 0 || !s.waiting.is_empty());
        self.len < before
    }
}

/// The searches waiting and running. See the module doc.
#[derive(Debug, Default)]
pub(crate) struct Searches {
    queue: SourceQueue,
    running: HashMap<InfoHash, Search>,
    /// Running searches that may send now, in turn (each at most once: [`Search::listed`]),
    /// with the generation they were listed in: an entry left by a search that ended (or
    /// was cancelled) is skipped, even when the same infohash's search starts again.
    ready: VecDeque<(InfoHash, u64)>,
    /// Running searches whose next nodes were all over budget.
    blocked: Vec<(InfoHash, u64)>,
    generation: u64,
    next_recheck: Option<Instant>,
    /// Searches that got a reply or a failure, or just started: maybe done.
    touched: Vec<InfoHash>,
}

impl Searches {
    /// Infohashes waiting for a search.
    pub fn queued(&self) -> usize {
        self.queue.len
    }

    /// Searches running.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Nothing waiting, nothing running.
    pub fn is_empty(&self) -> bool {
        self.queue.len == 0 && self.running.is_empty()
    }

    /// Whether `ih`'s search runs (a queued one is not looked for: that would take a pass
    /// over the queue).
    pub fn is_running(&self, ih: &InfoHash) -> bool {
        self.running.contains_key(ih)
    }

    /// Whether `ih` waits in the queue: a pass over it (at most `max_search_queue` entries),
    /// for callers as rare as a re-scrape.
    pub fn is_queued(&self, ih: &InfoHash) -> bool {
        self.queue
            .sources
            .values()
            .any(|s| s.waiting.iter().any(|q| q.0 == *ih))
    }

    /// Queue an infohash for its search.
    pub fn enqueue(&mut self, q: Queued) {
        self.queue.push(q);
    }

    /// The next infohash to start a search for (in turn by source), with `slots` searches
    /// allowed to run at once.
    pub fn next_queued(&mut self, slots: usize) -> Option<Queued> {
        if self.running.len() >= slots {
            return None;
        }
        self.queue.pop(self.queue.over_cap < slots / 2)
    }

    /// Run `s` (a search taken from the queue, or started again).
    pub fn start(&mut self, mut s: Search) {
        let ih = s.info_hash;
        self.generation += 1;
        s.generation = self.generation;
        self.queue.started(s.first());
        if let Some(old) = self.running.insert(ih, s) {
            self.queue.ended(old.first());
        }
        self.touched.push(ih);
        self.list(ih);
    }

    /// Stop `ih`'s search, waiting or running; whether there was one.
    pub fn cancel(&mut self, ih: &InfoHash) -> bool {
        // Its entry in `ready` or `blocked`, if any, is skipped when it comes up.
        if let Some(s) = self.running.remove(ih) {
            self.queue.ended(s.first());
            return true;
        }
        self.queue.remove(ih)
    }

    /// A running search of `generation`, to hand it a reply or a failure; it is looked at
    /// again next. `None` for one that ended (or was cancelled) since the query was sent.
    pub fn touch(&mut self, ih: &InfoHash, generation: u64) -> Option<&mut Search> {
        if self
            .running
            .get(ih)
            .is_none_or(|s| s.generation != generation)
        {
            return None;
        }
        self.touched.push(*ih);
        self.list(*ih);
        self.running.get_mut(ih)
    }

    fn list(&mut self, ih: InfoHash) {
        if let Some(s) = self.running.get_mut(&ih) {
            if !s.listed {
                s.listed = true;
                self.ready.push_back((ih, s.generation));
            }
        }
    }

    /// The next `get_peers` to send, `(infohash, generation, node, ask for a scrape)`: the ready
    /// searches in turn, each to the closest of its next nodes that `allowed` (the per-IP
    /// budget) accepts. Blocked searches come back to the turn [`BLOCKED_RECHECK`] after
    /// they were set aside.
    pub fn next_query(
        &mut self,
        now: Instant,
        allowed: impl Fn(&SocketAddr) -> bool,
    ) -> Option<(InfoHash, u64, SocketAddr, bool)> {
        if self.next_recheck.is_some_and(|t| now >= t) {
            self.next_recheck = None;
            self.ready.extend(self.blocked.drain(..));
        }
        while let Some((ih, generation)) = self.ready.pop_front() {
            let Some(s) = self
                .running
                .get_mut(&ih)
                .filter(|s| s.generation == generation)
            else {
                continue; // cancelled or ended
            };
            if let Some(to) = s.next_query_if(&allowed) {
                let scrape = s.scrape_now();
                self.ready.push_back((ih, generation));
                return Some((ih, generation, to, scrape));
            }
            if s.wants_query() {
                self.blocked.push((ih, generation));
                self.next_recheck.get_or_insert(now + BLOCKED_RECHECK);
            } else {
                // Waiting for replies (or done): listed again when one comes.
                s.listed = false;
            }
        }
        None
    }

    /// Whether a search waits for its turn to send (one started or listed since the last
    /// [`Searches::next_query`] went round).
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// When blocked searches are next looked at (for the crawler's timer).
    pub fn wake_at(&self) -> Option<Instant> {
        self.next_recheck.filter(|_| !self.blocked.is_empty())
    }

    /// The searches that ended since the last call, removed.
    #[cfg(test)]
    pub fn take_done(&mut self) -> Vec<Search> {
        let mut done = Vec::new();
        self.take_done_into(&mut done);
        done
    }

    /// [`Searches::take_done`], into `done` (appended to) rather than a new `Vec`.
    pub fn take_done_into(&mut self, done: &mut Vec<Search>) {
        // Drained and put back, so that the list keeps its capacity for the next touches.
        let mut touched = std::mem::take(&mut self.touched);
        for ih in touched.drain(..) {
            if self.running.get(&ih).is_some_and(Search::is_done) {
                if let Some(s) = self.running.remove(&ih) {
                    self.queue.ended(s.first());
                    done.push(s);
                }
            }
        }
        self.touched = touched;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use estudely_krpc::{CompactNode, NodeId};

    fn addr(i: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 6881))
    }

    fn ih(i: u8) -> InfoHash {
        InfoHash([i; 20])
    }

    /// Pop and start, as the crawler does.
    fn pop_start(q: &mut SourceQueue) -> Option<Queued> {
        let x = q.pop(false)?;
        q.started(x.1);
        Some(x)
    }

    #[test]
    fn the_queue_takes_sources_in_turn_with_a_few_running_each() {
        let mut q = SourceQueue::default();
        // Four samples from node 1, two from node 2, one from node 3, in that order.
        for (i, src) in [(1, 1), (2, 1), (3, 1), (8, 1), (4, 2), (5, 2), (6, 3)] {
            q.push((ih(i), addr(src), None));
        }
        assert_eq!(q.len, 7);
        let order: Vec<u8> = std::iter::from_fn(|| pop_start(&mut q))
            .map(|(h, _, _)| h.0[0])
            .collect();
        assert_eq!(
            order,
            vec![1, 4, 6, 2, 5],
            "two running from node 1, then it waits"
        );
        assert_eq!(q.len, 2);
        // One of node 1's searches ends: its next one may start, and only one.
        q.ended(addr(1));
        assert_eq!(pop_start(&mut q).map(|x| x.0), Some(ih(3)));
        assert_eq!(pop_start(&mut q), None);
        for src in [1, 1, 1, 2, 2, 3] {
            q.ended(addr(src));
        }
        assert_eq!(pop_start(&mut q).map(|x| x.0), Some(ih(8)));
        q.ended(addr(1));
        assert_eq!(q.len, 0);
        assert!(q.sources.is_empty(), "{:?}", q.sources);
    }

    #[test]
    fn beyond_the_cap_only_when_allowed() {
        let mut q = SourceQueue::default();
        for i in 1..=4 {
            q.push((ih(i), addr(1), None));
        }
        q.push((ih(9), addr(2), None));
        assert_eq!(pop_start(&mut q).map(|x| x.0), Some(ih(1)));
        assert_eq!(pop_start(&mut q).map(|x| x.0), Some(ih(9)));
        assert_eq!(pop_start(&mut q).map(|x| x.0), Some(ih(2)));
        assert_eq!(pop_start(&mut q), None, "node 1 is at its cap");
        assert_eq!(q.over_cap, 0);
        let x = q.pop(true).unwrap();
        q.started(x.1);
        assert_eq!((x.0, q.over_cap), (ih(3), 1), "allowed: beyond the cap");
        q.ended(addr(1));
        assert_eq!(q.over_cap, 0);
        assert_eq!(pop_start(&mut q), None, "still two running from node 1");
        q.ended(addr(1));
        assert_eq!(pop_start(&mut q).map(|x| x.0), Some(ih(4)));
    }

    #[test]
    fn removing_from_the_queue_keeps_it_consistent() {
        let mut q = SourceQueue::default();
        for (i, src) in [(1, 1), (2, 2), (3, 2)] {
            q.push((ih(i), addr(src), None));
        }
        assert!(q.remove(&ih(1)));
        assert!(!q.remove(&ih(1)));
        assert_eq!(q.len, 2);
        assert_eq!(q.sources.len(), 1, "source 1 has nothing left");
        assert_eq!(pop_start(&mut q).map(|x| x.0), Some(ih(2)));
        assert_eq!(pop_start(&mut q).map(|x| x.0), Some(ih(3)));
        assert_eq!(pop_start(&mut q), None);
    }

    #[test]
    fn queues_of_sources_gone_are_reused_bounded() {
        let mut q = SourceQueue::default();
        q.push((ih(1), addr(1), None));
        assert_eq!(q.pop(false).map(|x| x.0), Some(ih(1)));
        q.started(addr(1));
        q.ended(addr(1));
        assert!(q.sources.is_empty());
        assert_eq!(q.spare.len(), 1, "its emptied queue is kept");
        assert!(q.spare[0].is_empty() && q.spare[0].capacity() > 0);
        q.push((ih(2), addr(2), None));
        assert!(q.spare.is_empty(), "and reused by the next source");
        assert_eq!(q.pop(false).map(|x| x.1), Some(addr(2)));
        for _ in 0..2 * MAX_SPARE_QUEUES {
            q.keep_spare(VecDeque::with_capacity(4));
        }
        assert_eq!(q.spare.len(), MAX_SPARE_QUEUES);
        q.spare.clear();
        q.keep_spare(VecDeque::with_capacity(MAX_SPARE_CAPACITY + 1));
        assert!(q.spare.is_empty(), "too big to keep");
    }

    fn search(i: u8, first: u16) -> Search {
        Search::new(ih(i), addr(first), &[], 20, 8)
    }

    #[test]
    fn ready_searches_take_turns_and_waiting_ones_step_aside() {
        let now = Instant::now();
        let mut s = Searches::default();
        s.start(search(1, 1));
        s.start(search(2, 2));
        let all = |_: &SocketAddr| true;
        // Each has one candidate (its source): one query each, in turn.
        assert_eq!(s.next_query(now, all).map(|q| q.2), Some(addr(1)));
        assert_eq!(s.next_query(now, all).map(|q| q.2), Some(addr(2)));
        assert_eq!(s.next_query(now, all), None, "both wait for replies");
        assert!(s.ready.is_empty(), "and are off the turn: {:?}", s.ready);
        // A reply to search 1 names two nodes: it is back in the turn.
        let nodes: Vec<CompactNode> = (3..5)
            .map(|i| CompactNode {
                id: NodeId([i as u8; 20]),
                addr: addr(i),
            })
            .collect();
        s.touch(&ih(1), s.running[&ih(1)].generation)
            .unwrap()
            .on_reply(&[], &nodes);
        let q = s.next_query(now, all).unwrap();
        assert_eq!(q.0, ih(1));
        assert!(s.take_done().is_empty(), "nothing ended");
        // Search 2's only node fails: it has nothing left, and ends.
        s.touch(&ih(2), s.running[&ih(2)].generation)
            .unwrap()
            .on_failure();
        let done = s.take_done();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].info_hash, ih(2));
        assert_eq!(s.running(), 1);
    }

    #[test]
    fn a_search_over_budget_is_blocked_then_looked_at_again() {
        let now = Instant::now();
        let mut s = Searches::default();
        s.start(search(1, 1));
        let none = |_: &SocketAddr| false;
        assert_eq!(s.next_query(now, none), None);
        assert_eq!(s.blocked.len(), 1);
        assert_eq!(s.blocked[0].0, ih(1));
        assert_eq!(s.wake_at(), Some(now + BLOCKED_RECHECK));
        // Before the recheck it is not looked at, even once its node is allowed.
        let all = |_: &SocketAddr| true;
        assert_eq!(s.next_query(now, all), None);
        let later = now + BLOCKED_RECHECK;
        assert_eq!(s.next_query(later, all).map(|q| q.2), Some(addr(1)));
        assert_eq!(s.wake_at(), None);
    }

    #[test]
    fn a_search_started_again_is_listed_once() {
        let now = Instant::now();
        let mut s = Searches::default();
        s.start(search(1, 1));
        assert_eq!(s.next_query(now, |_| true).map(|q| q.2), Some(addr(1)));
        // Its one node fails: it ends, and starts again (as a search that found nobody does),
        // while its old entry is still in the turn.
        s.touch(&ih(1), s.running[&ih(1)].generation)
            .unwrap()
            .on_failure();
        let done = s.take_done();
        assert_eq!(done.len(), 1);
        assert!(
            !s.queue.sources.contains_key(&addr(1)),
            "nothing from it runs or waits"
        );
        s.start(search(1, 1));
        assert_eq!(s.queue.sources[&addr(1)].running, 1);
        assert_eq!(s.ready.len(), 2, "the old entry and the new");
        assert_eq!(s.next_query(now, |_| true).map(|q| q.2), Some(addr(1)));
        assert_eq!(
            s.next_query(now, |_| true),
            None,
            "one query: the old entry is skipped"
        );
        assert!(s.ready.is_empty());
    }

    #[test]
    fn cancelled_searches_are_skipped() {
        let now = Instant::now();
        let mut s = Searches::default();
        s.enqueue((ih(7), addr(1), None));
        s.start(search(1, 1));
        assert!(s.cancel(&ih(1)));
        assert!(s.cancel(&ih(7)));
        assert!(!s.cancel(&ih(7)));
        assert_eq!(s.next_query(now, |_| true), None);
        assert!(s.is_empty());
        assert!(s.take_done().is_empty());
    }

    #[test]
    fn a_reply_to_a_search_that_ended_is_not_handed_to_its_successor() {
        let mut s = Searches::default();
        s.start(search(1, 1));
        let first = s.running[&ih(1)].generation;
        assert!(s.touch(&ih(1), first).is_some());
        s.cancel(&ih(1));
        s.start(search(1, 1));
        let second = s.running[&ih(1)].generation;
        assert!(
            s.touch(&ih(1), first).is_none(),
            "a late reply to the first search"
        );
        assert!(s.touch(&ih(1), second).is_some());
    }
}
