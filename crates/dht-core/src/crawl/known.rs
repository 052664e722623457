//! What the crawler remembers about nodes: when each may next be asked for samples, whether
//! it speaks BEP 51, and which ids each IP has shown (to spot one host posing as many nodes).
//!
//! Every structure has a cap and pushes back rather than forgetting what etiquette needs:
//! - `nodes` holds at most `capacity` nodes. A node is never forgotten while its `interval`
//!   runs (so a rediscovered node cannot be sampled early). To make room for a new node, one
//!   whose interval has passed and that waits in no queue may be retired; if there is none,
//!   the new node is refused ([`Discovery::Full`]) and may be found again later.
//! - the frontier (new nodes not yet visited) holds at most `max_frontier`; beyond that new
//!   nodes are refused ([`Discovery::FrontierFull`]).
//! - the due-heap has one live entry per node plus stale ones; it is rebuilt from `nodes`
//!   when stale entries reach the number of nodes, so it never exceeds twice `capacity`
//!   (plus a constant) and never stops scheduling.
//! - `ids_by_ip` has at most `capacity` IPs, each with at most `max_ids_per_ip` ids.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use estudely_krpc::NodeId;

use super::resting::RestingNodes;
use crate::bounded::BoundedMap;
use smallvec::SmallVec;

/// The crawler's view of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// The id it answered with (or was listed under).
    pub id: NodeId,
    /// Not to be asked for samples before this (its BEP 51 `interval`); `None` before the
    /// first visit.
    pub next_sample: Option<Instant>,
    /// `Some(false)` once it refused `sample_infohashes`.
    pub bep51: Option<bool>,
    /// Waiting in the frontier or popped from the due-heap, not yet visited.
    pub queued: bool,
    /// `sample_infohashes` in a row that brought no usable reply (lost, malformed).
    pub failed_samples: u8,
    /// The wait its last answered sample asked for, in seconds (its `interval`, clamped to
    /// the crawler's bounds); 0 before any. A sample sent later and never answered may
    /// still have reached it, so the next one waits as long (see [`Known::wait`]).
    pub interval_secs: u32,
    /// Reported in a [`super::CrawlEvent::NodeSampled`] already.
    pub sampled: bool,
    /// The end of the interval of its last answered sample: never asked for samples
    /// before, even once forgotten (it then rests until this; see [`KnownNodes::forget`]).
    pub rest_until: Option<Instant>,
}

impl Known {
    /// How long after a sample sent to it the next may go: the interval its last answer
    /// asked for, or `floor` (the crawler's `min_resample`) before any answer.
    pub fn wait(&self, floor: Duration) -> Duration {
        Duration::from_secs(u64::from(self.interval_secs)).max(floor)
    }

    /// Never sample it before `until`, even once forgotten and found again (keeps the
    /// later of this and what was set before).
    pub fn rest_at_least_until(&mut self, until: Instant) {
        self.rest_until = Some(self.rest_until.map_or(until, |t| t.max(until)));
    }
}

/// What [`KnownNodes::discover`] did with a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discovery {
    /// New: remembered and put in the frontier.
    New,
    /// Already known.
    Known,
    /// Its IP already showed too many ids: ignored.
    Distrusted,
    /// The frontier is full: refused for now.
    FrontierFull,
    /// Every slot holds a node inside its interval or waiting to be visited: refused for now.
    Full,
    /// It rests inside its interval (see [`RestingNodes`]): not asked again yet.
    Resting,
}

/// Bounded bookkeeping of nodes seen by the crawler.
#[derive(Debug, Clone)]
pub struct KnownNodes {
    nodes: HashMap<SocketAddr, Known>,
    capacity: usize,
    /// The distinct ids each IP presented, in the order first seen: nearly always one, kept
    /// inline, so that vouching for a new IP allocates nothing.
    ids_by_ip: BoundedMap<IpAddr, SmallVec<[NodeId; 1]>>,
    max_ids_per_ip: usize,
    frontier: VecDeque<SocketAddr>,
    max_frontier: usize,
    due: BinaryHeap<Reverse<(Instant, SocketAddr)>>,
    resting: Option<RestingNodes>,
    /// Nodes retired to make room for new ones.
    pub retired: u64,
}

impl KnownNodes {
    /// Remember at most `capacity` nodes, `max_frontier` of them new and unvisited; an IP
    /// showing more than `max_ids_per_ip` ids is distrusted.
    pub fn new(capacity: usize, max_frontier: usize, max_ids_per_ip: usize) -> Self {
        KnownNodes {
            nodes: HashMap::new(),
            capacity: capacity.max(1),
            ids_by_ip: BoundedMap::new(capacity.max(2)),
            max_ids_per_ip,
            frontier: VecDeque::new(),
            max_frontier: max_frontier.max(1),
            due: BinaryHeap::new(),
            resting: None,
            retired: 0,
        }
    }

    /// Once the table is half full, put nodes that answered with a long interval to rest
    /// in `resting` (fixed memory) instead of keeping their entries: see
    /// [`KnownNodes::schedule_after_sample`].
    pub fn with_resting(mut self, resting: RestingNodes) -> Self {
        self.resting = resting.enabled().then_some(resting);
        self
    }

    /// The resting nodes' filter, if any.
    pub fn resting(&self) -> Option<&RestingNodes> {
        self.resting.as_ref()
    }

    /// `addr` answered `sample_infohashes` at `now` and may be asked again at `at`: it rests
    /// (see [`KnownNodes::rest_if_crowded`]) or is scheduled. Returns whether it rests.
    pub fn schedule_after_sample(&mut self, now: Instant, addr: SocketAddr, at: Instant) -> bool {
        if self.rest_if_crowded(now, addr, at) {
            return true;
        }
        self.schedule(addr, at);
        false
    }

    /// When the table is at least half full and `until` at least one of the filter's time
    /// slices away (1/24 of the longest interval), `addr` leaves the table and rests in the
    /// fixed-memory filter until `until`: it is refused if found again before. Returns
    /// whether it did (else nothing changed).
    pub fn rest_if_crowded(&mut self, now: Instant, addr: SocketAddr, until: Instant) -> bool {
        let crowded = self.nodes.len() >= self.capacity / 2;
        let Some(r) = self.resting.as_mut().filter(|_| crowded) else {
            return false;
        };
        let queued = self.nodes.get(&addr).is_some_and(|k| k.queued);
        if queued || !r.long_enough(now, until) {
            return false;
        }
        r.rest(now, &addr, until);
        self.nodes.remove(&addr);
        true
    }

    /// Nodes remembered.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// New nodes waiting for their first visit.
    pub fn frontier_len(&self) -> usize {
        self.frontier.len()
    }

    /// Entries in the due-heap (live and stale).
    pub fn heap_len(&self) -> usize {
        self.due.len()
    }

    /// The entry for `addr`.
    pub fn get_mut(&mut self, addr: &SocketAddr) -> Option<&mut Known> {
        self.nodes.get_mut(addr)
    }

    /// The entry for `addr`.
    pub fn peek(&self, addr: &SocketAddr) -> Option<&Known> {
        self.nodes.get(addr)
    }

    /// Record that `addr` presents `id`. False when its IP already showed too many ids: a
    /// host listing itself under many ids is ignored rather than trusted.
    pub fn vouch(&mut self, addr: SocketAddr, id: NodeId) -> bool {
        let ip = addr.ip();
        let max = self.max_ids_per_ip;
        match self.ids_by_ip.get_mut(&ip) {
            Some(ids) if ids.contains(&id) => true,
            Some(ids) if ids.len() >= max => false,
            Some(ids) => {
                ids.push(id);
                true
            }
            None => {
                self.ids_by_ip.insert(ip, smallvec::smallvec![id]);
                true
            }
        }
    }

    /// Distinct ids accepted from `ip`.
    pub fn ids_for_ip(&self, ip: IpAddr) -> usize {
        self.ids_by_ip.peek(&ip).map_or(0, SmallVec::len)
    }

    /// Learn of a node at `now`. A new node is remembered and put in the frontier.
    pub fn discover(&mut self, now: Instant, addr: SocketAddr, id: NodeId) -> Discovery {
        if self.nodes.contains_key(&addr) {
            return Discovery::Known;
        }
        if self.resting.as_ref().is_some_and(|r| r.rests(now, &addr)) {
            return Discovery::Resting;
        }
        if self.frontier.len() >= self.max_frontier {
            return Discovery::FrontierFull;
        }
        if self.nodes.len() >= self.capacity && !self.retire_one(now) {
            return Discovery::Full;
        }
        if !self.vouch(addr, id) {
            return Discovery::Distrusted;
        }
        self.nodes.insert(
            addr,
            Known {
                id,
                next_sample: None,
                bep51: None,
                queued: true,
                failed_samples: 0,
                interval_secs: 0,
                sampled: false,
                rest_until: None,
            },
        );
        self.frontier.push_back(addr);
        Discovery::New
    }

    /// Forget one node whose interval has passed and that waits in no queue, if any.
    fn retire_one(&mut self, now: Instant) -> bool {
        while let Some(Reverse((at, addr))) = self.due.peek().copied() {
            if at > now {
                return false;
            }
            self.due.pop();
            if self.is_live(at, &addr) {
                self.nodes.remove(&addr);
                self.retired += 1;
                return true;
            }
        }
        false
    }

    fn is_live(&self, at: Instant, addr: &SocketAddr) -> bool {
        self.nodes
            .get(addr)
            .is_some_and(|k| k.next_sample == Some(at) && !k.queued)
    }

    /// `addr` may be asked again at `at`; it will come back through [`KnownNodes::pop_due`].
    pub fn schedule(&mut self, addr: SocketAddr, at: Instant) {
        let Some(k) = self.nodes.get_mut(&addr) else {
            return;
        };
        k.next_sample = Some(at);
        if k.queued {
            // In the frontier: it is visited from there, and reschedules itself then.
            return;
        }
        self.due.push(Reverse((at, addr)));
        if self.due.len() > 2 * self.nodes.len() + 1_024 {
            self.compact();
        }
    }

    /// Rebuild the due-heap from the nodes' own due times, dropping stale entries.
    fn compact(&mut self) {
        let live: Vec<Reverse<(Instant, SocketAddr)>> = self
            .nodes
            .iter()
            .filter(|(_, k)| !k.queued)
            .filter_map(|(a, k)| k.next_sample.map(|t| Reverse((t, *a))))
            .collect();
        self.due = BinaryHeap::from(live);
    }

    /// The next node to visit: a new one from the frontier first, else one whose interval
    /// has passed.
    pub fn pop_next(&mut self, now: Instant) -> Option<SocketAddr> {
        while let Some(addr) = self.frontier.pop_front() {
            if let Some(k) = self.nodes.get_mut(&addr) {
                k.queued = false;
                return Some(addr);
            }
        }
        self.pop_due(now)
    }

    /// A node whose interval has passed, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<SocketAddr> {
        while let Some(Reverse((at, addr))) = self.due.peek().copied() {
            if at > now {
                return None;
            }
            self.due.pop();
            // Skip stale entries: forgotten nodes and rescheduled ones.
            if self.is_live(at, &addr) {
                return Some(addr);
            }
        }
        None
    }

    /// When the next scheduled node becomes due (now, if the frontier is not empty).
    pub fn next_due(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }

    /// Whether a new node waits in the frontier.
    pub fn has_frontier(&self) -> bool {
        !self.frontier.is_empty()
    }

    /// Nodes that answered `sample_infohashes` with BEP 51 fields, then the others that
    /// answered anything: at most `max`, for a warm start next time.
    pub fn answered(&self, max: usize) -> Vec<(SocketAddr, NodeId)> {
        let mut out: Vec<(SocketAddr, NodeId)> = self
            .nodes
            .iter()
            .filter(|(_, k)| k.bep51 == Some(true))
            .map(|(a, k)| (*a, k.id))
            .take(max)
            .collect();
        out.sort();
        out
    }

    /// Forget a node (it is dead). Its stale heap entries are skipped later.
    ///
    /// A node inside the interval of a sample sent to it (answered or not: the query may
    /// have reached it) must not be sampled before that ends, even if another node lists
    /// it meanwhile. When the rest ends within one time slice of the filter (or there is no
    /// filter) it stays in the table, due when the rest ends: a query then finds it dead or
    /// alive. A longer rest is kept in the fixed-memory filter (rounded up to its time
    /// slice). A dead node comes back to life on the network as soon as it answers, but its
    /// interval still holds.
    pub fn forget(&mut self, now: Instant, addr: &SocketAddr) {
        let Some(k) = self.nodes.get(addr) else {
            return;
        };
        if let Some(until) = k.rest_until.filter(|t| *t > now) {
            let short = self
                .resting
                .as_ref()
                .is_none_or(|r| until - now < r.slice());
            if short {
                let at = k.next_sample.map_or(until, |t| t.max(until));
                self.schedule(*addr, at);
                return;
            }
        }
        let Some(k) = self.nodes.remove(addr) else {
            return;
        };
        if let (Some(r), Some(until)) = (self.resting.as_mut(), k.rest_until) {
            if until > now {
                r.rest(now, addr, until);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(port: u16) -> SocketAddr {
        SocketAddr::from(([1, 0, 0, 1], port))
    }

    fn b(i: u16) -> SocketAddr {
        SocketAddr::from(([1, 0, (i >> 8) as u8, i as u8], 6881))
    }

    #[test]
    fn one_ip_many_ids_is_distrusted_and_due_times_kept() {
        let t0 = Instant::now();
        let mut k = KnownNodes::new(100, 100, 2);
        assert_eq!(k.discover(t0, a(1), NodeId([1; 20])), Discovery::New);
        assert_eq!(k.discover(t0, a(1), NodeId([1; 20])), Discovery::Known);
        assert_eq!(k.discover(t0, a(2), NodeId([2; 20])), Discovery::New);
        assert_eq!(
            k.discover(t0, a(3), NodeId([3; 20])),
            Discovery::Distrusted,
            "third id from one IP (loopback included: no exemption)"
        );
        let lo = |p| SocketAddr::from(([127, 0, 0, 1], p));
        assert_eq!(k.discover(t0, lo(1), NodeId([7; 20])), Discovery::New);
        assert_eq!(k.discover(t0, lo(2), NodeId([8; 20])), Discovery::New);
        assert_eq!(
            k.discover(t0, lo(3), NodeId([9; 20])),
            Discovery::Distrusted
        );
        assert_eq!(k.pop_next(t0), Some(a(1)));
        k.schedule(a(1), t0 + Duration::from_secs(30));
        assert_eq!(k.pop_next(t0), Some(a(2)));
        k.schedule(a(2), t0 + Duration::from_secs(40));
        assert_eq!(k.pop_next(t0), Some(lo(1)));
        assert_eq!(k.pop_next(t0), Some(lo(2)));
        assert_eq!(k.pop_next(t0), None);
        assert_eq!(k.next_due(), Some(t0 + Duration::from_secs(30)));
        assert_eq!(k.pop_due(t0 + Duration::from_secs(30)), Some(a(1)));
        assert_eq!(k.pop_due(t0 + Duration::from_secs(35)), None);
    }

    #[test]
    fn full_table_retires_only_nodes_past_their_interval() {
        let t0 = Instant::now();
        let hour = Duration::from_secs(3600);
        let mut k = KnownNodes::new(4, 100, 4);
        for i in 0..4 {
            assert_eq!(k.discover(t0, b(i), NodeId([i as u8; 20])), Discovery::New);
        }
        assert_eq!(
            k.discover(t0, b(9), NodeId([9; 20])),
            Discovery::Full,
            "all four wait in the frontier: nothing may be dropped"
        );
        for i in 0..4 {
            assert_eq!(k.pop_next(t0), Some(b(i)));
            k.schedule(b(i), t0 + hour * (u32::from(i) + 1));
        }
        assert_eq!(k.discover(t0, b(9), NodeId([9; 20])), Discovery::Full);
        // After an hour node 0's interval has passed: it may make room.
        let t1 = t0 + hour;
        assert_eq!(k.discover(t1, b(9), NodeId([9; 20])), Discovery::New);
        assert_eq!(k.retired, 1);
        assert!(k.peek(&b(0)).is_none());
        assert!(k.peek(&b(1)).is_some(), "inside its interval: kept");
        assert_eq!(k.discover(t1, b(10), NodeId([10; 20])), Discovery::Full);
    }

    #[test]
    fn frontier_is_capped() {
        let t0 = Instant::now();
        let mut k = KnownNodes::new(100, 3, 4);
        for i in 0..3 {
            assert_eq!(k.discover(t0, b(i), NodeId([i as u8; 20])), Discovery::New);
        }
        assert_eq!(
            k.discover(t0, b(5), NodeId([5; 20])),
            Discovery::FrontierFull
        );
        assert_eq!(k.frontier_len(), 3);
        assert!(k.pop_next(t0).is_some());
        assert_eq!(k.discover(t0, b(5), NodeId([5; 20])), Discovery::New);
    }

    #[test]
    fn rescheduling_never_grows_the_heap_without_bound() {
        let t0 = Instant::now();
        let mut k = KnownNodes::new(10, 10, 4);
        for i in 0..10 {
            k.discover(t0, b(i), NodeId([i as u8; 20]));
            k.pop_next(t0);
        }
        for round in 0..10_000u32 {
            let i = (round % 10) as u16;
            k.schedule(b(i), t0 + Duration::from_secs(u64::from(round)));
            assert!(k.heap_len() <= 2 * 10 + 1_025);
        }
        // Every node is still scheduled exactly at its latest time.
        let late = t0 + Duration::from_secs(20_000);
        let mut popped: Vec<SocketAddr> = std::iter::from_fn(|| k.pop_due(late)).collect();
        popped.sort();
        let mut want: Vec<SocketAddr> = (0..10).map(b).collect();
        want.sort();
        assert_eq!(popped, want);
    }

    /// A node that answered a sample and is then forgotten (dead: its later queries were
    /// lost) is not new when another node lists it inside that sample's interval: it rests
    /// until the interval ends. Before, it was sampled again at once (seen as early samples
    /// by the endless world when `run` lost replies under load).
    #[test]
    fn a_forgotten_node_rests_until_the_interval_of_its_last_sample_ends() {
        let t0 = Instant::now();
        let six = Duration::from_secs(21_600);
        let mut k =
            KnownNodes::new(100, 100, 4).with_resting(RestingNodes::new(t0, six, 1 << 16, 5));
        assert_eq!(k.discover(t0, b(1), NodeId([1; 20])), Discovery::New);
        assert_eq!(k.pop_next(t0), Some(b(1)));
        // A rest longer than a slice of the filter (15 min here) goes to the filter.
        let interval_end = t0 + Duration::from_secs(7_200);
        k.get_mut(&b(1)).unwrap().rest_until = Some(interval_end);
        k.forget(t0 + Duration::from_secs(5), &b(1));
        assert!(k.peek(&b(1)).is_none(), "forgotten");
        let soon = t0 + Duration::from_secs(10);
        assert_eq!(k.discover(soon, b(1), NodeId([1; 20])), Discovery::Resting);
        // Once the interval (rounded up to the filter's slice) is over, it is new again.
        let later = t0 + six / 24 * 9 + Duration::from_secs(1);
        assert_eq!(k.discover(later, b(1), NodeId([1; 20])), Discovery::New);
        // A node that never answered a sample is simply forgotten.
        assert_eq!(k.discover(later, b(2), NodeId([2; 20])), Discovery::New);
        k.forget(later, &b(2));
        assert_eq!(k.discover(later, b(2), NodeId([2; 20])), Discovery::New);
    }

    /// A dead node whose rest ends within a slice of the filter stays in the table, due
    /// when its rest ends (not sooner, whoever lists it), instead of resting up to a whole
    /// slice longer in the filter.
    #[test]
    fn a_dead_node_with_a_short_rest_stays_due_when_it_ends() {
        let t0 = Instant::now();
        let six = Duration::from_secs(21_600);
        let mut k =
            KnownNodes::new(100, 100, 4).with_resting(RestingNodes::new(t0, six, 1 << 16, 5));
        assert_eq!(k.discover(t0, b(1), NodeId([1; 20])), Discovery::New);
        assert_eq!(k.pop_next(t0), Some(b(1)));
        let minute = Duration::from_secs(60);
        k.get_mut(&b(1)).unwrap().rest_at_least_until(t0 + minute);
        k.schedule(b(1), t0 + Duration::from_secs(10));
        k.forget(t0 + Duration::from_secs(5), &b(1));
        assert!(k.peek(&b(1)).is_some(), "kept");
        assert_eq!(
            k.discover(t0 + Duration::from_secs(6), b(1), NodeId([1; 20])),
            Discovery::Known
        );
        assert_eq!(k.pop_next(t0 + minute - Duration::from_secs(1)), None);
        assert_eq!(k.pop_next(t0 + minute), Some(b(1)));
        // Past its rest, a dead node is forgotten.
        k.forget(t0 + minute, &b(1));
        assert!(k.peek(&b(1)).is_none());
        // Without a filter every rest is kept in the table.
        let mut k = KnownNodes::new(100, 100, 4);
        assert_eq!(k.discover(t0, b(2), NodeId([2; 20])), Discovery::New);
        assert_eq!(k.pop_next(t0), Some(b(2)));
        k.get_mut(&b(2)).unwrap().rest_at_least_until(t0 + six);
        k.forget(t0, &b(2));
        assert_eq!(k.pop_next(t0 + six - minute), None);
        assert_eq!(k.pop_next(t0 + six), Some(b(2)));
    }

    #[test]
    fn crowded_table_puts_long_intervals_to_rest_and_refuses_them_until_then() {
        let t0 = Instant::now();
        let six = Duration::from_secs(21_600);
        let mut k = KnownNodes::new(4, 100, 4).with_resting(RestingNodes::new(t0, six, 1 << 16, 5));
        for i in 0..4 {
            assert_eq!(k.discover(t0, b(i), NodeId([i as u8; 20])), Discovery::New);
        }
        for i in 0..4 {
            assert_eq!(k.pop_next(t0), Some(b(i)));
        }
        // Short waits stay in the table, exact.
        assert!(!k.schedule_after_sample(t0, b(0), t0 + Duration::from_secs(60)));
        assert!(k.peek(&b(0)).is_some());
        // Long ones leave it while it is at least half full.
        assert!(k.schedule_after_sample(t0, b(1), t0 + six));
        assert!(k.schedule_after_sample(t0, b(2), t0 + six));
        assert!(k.schedule_after_sample(t0, b(3), t0 + six));
        assert_eq!(k.len(), 1);
        assert!(
            !k.schedule_after_sample(t0, b(0), t0 + six),
            "now under half full"
        );
        assert_eq!(k.resting().unwrap().rested, 3);
        for t in [t0, t0 + six - Duration::from_secs(1)] {
            assert_eq!(k.discover(t, b(1), NodeId([1; 20])), Discovery::Resting);
        }
        assert_eq!(k.discover(t0 + six, b(2), NodeId([2; 20])), Discovery::New);
        // Room was made: new nodes are taken.
        assert_eq!(k.discover(t0, b(7), NodeId([7; 20])), Discovery::New);
    }
}
