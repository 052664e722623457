//! The routing table: 160 k-buckets indexed by the length of the prefix shared with our id.
//!
//! Indexing buckets by shared-prefix length is the fully-split form of BEP 5's bucket tree:
//! bucket `i` holds nodes whose id agrees with ours on exactly `i` leading bits. Each bucket
//! keeps at most `k` entries and a replacement cache of the same size. Node status follows
//! BEP 5: *good* if it answered us within the last 15 minutes (or answered us once and has
//! queried us within 15 minutes), *bad* after `max_failures` consecutive unanswered queries,
//! *questionable* otherwise. A full bucket takes a new node only by evicting a bad one; when
//! it holds questionable nodes, the caller is told to ping the stalest of them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use estudely_krpc::{CompactNode, NodeId};

use crate::bep42::{self, IdCheck};

/// Whether BEP 42 prefers `node`: its id is secure for its IP, or its IP is exempt.
fn preferred(node: &CompactNode) -> bool {
    bep42::check(&node.id, node.addr.ip()) != IdCheck::Unsecured
}

/// BEP 5's "good" window.
pub const GOOD_FOR: Duration = Duration::from_secs(15 * 60);

/// One routing-table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Node id and address.
    pub node: CompactNode,
    /// Last time it answered one of our queries.
    pub last_reply: Option<Instant>,
    /// Last time we heard anything from it (reply or query).
    pub last_seen: Instant,
    /// Consecutive queries it failed to answer.
    pub failures: u8,
}

/// BEP 5 node status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Answered recently.
    Good,
    /// Not heard from recently.
    Questionable,
    /// Failed several queries in a row.
    Bad,
}

impl Entry {
    /// Status at `now`, with `max_failures` consecutive failures meaning bad.
    pub fn status(&self, now: Instant, max_failures: u8) -> Status {
        if self.failures >= max_failures {
            return Status::Bad;
        }
        match self.last_reply {
            Some(r) if now.saturating_duration_since(r) < GOOD_FOR => Status::Good,
            Some(_) if now.saturating_duration_since(self.last_seen) < GOOD_FOR => Status::Good,
            _ => Status::Questionable,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Bucket {
    entries: Vec<Entry>,
    replacements: Vec<Entry>,
    last_changed: Option<Instant>,
}

/// What happened to a node offered to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// Added or refreshed.
    Added,
    /// Bucket full of good nodes; kept in the replacement cache.
    Cached,
    /// Bucket full; the caller should ping this questionable node, whose failure frees a slot.
    PingFirst(CompactNode),
    /// Not verified yet (it queried us) and its bucket has room: ping it to admit it.
    Verify,
    /// Refused (our own id, or another node already holds that IP, or id changed for address).
    Rejected,
}

/// A k-bucket routing table for one address family.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    own: NodeId,
    k: usize,
    max_failures: u8,
    one_per_ip: bool,
    buckets: Vec<Bucket>,
}

impl RoutingTable {
    /// An empty table around our id.
    pub fn new(own: NodeId, k: usize, max_failures: u8, one_per_ip: bool) -> Self {
        RoutingTable {
            own,
            k,
            max_failures,
            one_per_ip,
            buckets: vec![Bucket::default(); 160],
        }
    }

    fn index(&self, id: &NodeId) -> usize {
        self.own.common_prefix_len(&id.0).min(159)
    }

    /// Number of entries (not counting replacement caches).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.entries.len()).sum()
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All entries.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.buckets.iter().flat_map(|b| b.entries.iter())
    }

    /// Look an entry up by address.
    pub fn find_addr(&self, addr: &SocketAddr) -> Option<&Entry> {
        self.entries().find(|e| e.node.addr == *addr)
    }

    /// A node was heard from: a reply (`replied`) or a query. Adds it if there is room.
    pub fn heard_from(&mut self, node: CompactNode, now: Instant, replied: bool) -> Insert {
        if node.id == self.own {
            return Insert::Rejected;
        }
        // An address that changed id, or an IP that already has a different node, is refused:
        // one IP flooding many ids is a classic routing-table poisoning attack.
        let clash = self.entries().any(|e| {
            e.node.id != node.id
                && (e.node.addr == node.addr
                    || (self.one_per_ip && e.node.addr.ip() == node.addr.ip()))
        });
        if clash {
            return Insert::Rejected;
        }
        let (k, max_failures) = (self.k, self.max_failures);
        let i = self.index(&node.id);
        let bucket = &mut self.buckets[i];
        if let Some(e) = bucket.entries.iter_mut().find(|e| e.node.id == node.id) {
            e.node.addr = node.addr;
            e.last_seen = now;
            if replied {
                e.last_reply = Some(now);
                e.failures = 0;
                bucket.last_changed = Some(now);
            }
            return Insert::Added;
        }
        bucket.replacements.retain(|e| e.node.id != node.id);
        let fresh = Entry {
            node,
            last_reply: replied.then_some(now),
            last_seen: now,
            failures: 0,
        };
        // Only nodes that have answered us get a slot; others wait in the cache.
        if bucket.entries.len() < k && replied {
            bucket.entries.push(fresh);
            bucket.last_changed = Some(now);
            return Insert::Added;
        }
        if replied {
            if let Some(bad) = bucket
                .entries
                .iter()
                .position(|e| e.status(now, max_failures) == Status::Bad)
            {
                bucket.entries[bad] = fresh;
                bucket.last_changed = Some(now);
                return Insert::Added;
            }
        }
        // BEP 42: an unsecured node is pinged (and so evicted, if it is gone) before a secure
        // one; it is never evicted for being unsecured.
        let stalest = bucket
            .entries
            .iter()
            .filter(|e| e.status(now, max_failures) == Status::Questionable)
            .min_by_key(|e| (preferred(&e.node), e.last_seen))
            .map(|e| e.node);
        if bucket.replacements.len() >= k {
            bucket.replacements.remove(0);
        }
        bucket.replacements.push(fresh);
        match stalest {
            Some(n) if bucket.entries.len() >= k => Insert::PingFirst(n),
            _ if bucket.entries.len() < k => Insert::Verify,
            _ => Insert::Cached,
        }
    }

    /// A query to `addr` went unanswered. A bad node is replaced from the cache if possible.
    pub fn failed(&mut self, addr: &SocketAddr, now: Instant) {
        let max_failures = self.max_failures;
        for bucket in &mut self.buckets {
            if let Some(pos) = bucket.entries.iter().position(|e| e.node.addr == *addr) {
                let e = &mut bucket.entries[pos];
                e.failures = e.failures.saturating_add(1);
                if e.status(now, max_failures) == Status::Bad {
                    // Prefer a secure (BEP 42) replacement, then the most recently answering.
                    let best = bucket
                        .replacements
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.last_reply.is_some())
                        .max_by_key(|(_, r)| (preferred(&r.node), r.last_seen))
                        .map(|(j, _)| j);
                    if let Some(j) = best {
                        bucket.entries[pos] = bucket.replacements.remove(j);
                        bucket.last_changed = Some(now);
                    }
                }
                return;
            }
        }
    }

    /// Our id changed (BEP 42): every entry and replacement is put in its bucket relative to
    /// `own`; those that no longer fit (at most `k` per bucket) go to the replacement cache,
    /// or are dropped when it is full too.
    pub fn rebucket(&mut self, own: NodeId) {
        let old = std::mem::replace(&mut self.buckets, vec![Bucket::default(); 160]);
        self.own = own;
        let k = self.k;
        let (entries, spares): (Vec<Entry>, Vec<Entry>) = old
            .into_iter()
            .map(|b| (b.entries, b.replacements))
            .fold((Vec::new(), Vec::new()), |(mut e, mut r), (be, br)| {
                e.extend(be);
                r.extend(br);
                (e, r)
            });
        for (e, is_entry) in entries
            .into_iter()
            .map(|e| (e, true))
            .chain(spares.into_iter().map(|e| (e, false)))
        {
            if e.node.id == own {
                continue;
            }
            let i = self.index(&e.node.id);
            let bucket = &mut self.buckets[i];
            if is_entry && bucket.entries.len() < k {
                bucket.entries.push(e);
            } else if bucket.replacements.len() < k {
                bucket.replacements.push(e);
            }
        }
    }

    /// Entries by their BEP 42 standing: (secure, exempt, unsecured).
    pub fn bep42_counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for e in self.entries() {
            match bep42::check(&e.node.id, e.node.addr.ip()) {
                IdCheck::Secure => c.0 += 1,
                IdCheck::Exempt => c.1 += 1,
                IdCheck::Unsecured => c.2 += 1,
            }
        }
        c
    }

    /// Up to `n` entries closest to `target`, nearest first; bad nodes are left out.
    pub fn closest(&self, target: &[u8; 20], n: usize, now: Instant) -> Vec<CompactNode> {
        let mut out = Vec::with_capacity(n.min(self.len()));
        self.closest_into(target, n, now, &mut out);
        out
    }

    /// [`RoutingTable::closest`], written into `out` (cleared first): no allocation once
    /// `out` has room for `n`. The `n` nearest are kept sorted as the table is read, rather
    /// than the whole table collected and sorted: `n` is small (k = 8), the table is not.
    pub fn closest_into(
        &self,
        target: &[u8; 20],
        n: usize,
        now: Instant,
        out: &mut Vec<CompactNode>,
    ) {
        out.clear();
        if n == 0 {
            return;
        }
        for e in self
            .entries()
            .filter(|e| e.status(now, self.max_failures) != Status::Bad)
        {
            let d = e.node.id.distance(target);
            if out.len() == n && out.last().is_some_and(|l| l.id.distance(target) <= d) {
                continue;
            }
            let at = out.partition_point(|o| o.id.distance(target) <= d);
            if out.len() == n {
                out.pop();
            }
            out.insert(at, e.node);
        }
    }

    /// Bucket indices (prefix lengths) that are stale and should be refreshed with a lookup
    /// of a random id sharing that prefix. Only buckets up to the deepest non-empty one count.
    pub fn stale_buckets(&self, now: Instant, refresh: Duration) -> Vec<usize> {
        let deepest = self
            .buckets
            .iter()
            .rposition(|b| !b.entries.is_empty())
            .unwrap_or(0);
        (0..=deepest)
            .filter(|&i| {
                self.buckets[i]
                    .last_changed
                    .is_none_or(|t| now.saturating_duration_since(t) >= refresh)
            })
            .collect()
    }

    /// Mark a bucket as refreshed (a lookup into it was just started).
    pub fn touch_bucket(&mut self, index: usize, now: Instant) {
        if let Some(b) = self.buckets.get_mut(index) {
            b.last_changed = Some(now);
        }
    }

    /// A random id that falls in bucket `index`: our first `index` bits, then the opposite bit.
    pub fn random_id_in_bucket(&self, index: usize, random: [u8; 20]) -> NodeId {
        let mut id = random;
        for bit in 0..=index.min(159) {
            let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
            let own_bit = self.own.0[byte] & mask;
            let want = if bit == index {
                own_bit ^ mask
            } else {
                own_bit
            };
            id[byte] = (id[byte] & !mask) | want;
        }
        NodeId(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(first: u8, last: u8, ip: u8) -> CompactNode {
        let mut id = [0u8; 20];
        id[0] = first;
        id[19] = last;
        CompactNode {
            id: NodeId(id),
            addr: SocketAddr::from(([10, 0, 0, ip], 6881)),
        }
    }

    /// The n nearest, kept sorted while reading, are exactly the first n of the whole
    /// table sorted by distance, bad nodes left out.
    #[test]
    fn closest_is_the_head_of_the_table_sorted_by_distance() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
        let t0 = Instant::now();
        let mut t = RoutingTable::new(NodeId(rng.gen()), 8, 2, false);
        for i in 0..2_000u32 {
            let n = CompactNode {
                id: NodeId(rng.gen()),
                addr: SocketAddr::from((i.to_be_bytes(), 6881)),
            };
            t.heard_from(n, t0, true);
            if i % 7 == 0 {
                t.failed(&n.addr, t0);
                t.failed(&n.addr, t0);
            }
        }
        assert!(t.len() > 50, "{}", t.len());
        let mut out = Vec::new();
        for _ in 0..50 {
            let target: [u8; 20] = rng.gen();
            let mut all: Vec<CompactNode> = t
                .entries()
                .filter(|e| e.status(t0, t.max_failures) != Status::Bad)
                .map(|e| e.node)
                .collect();
            all.sort_by_key(|n| n.id.distance(&target));
            for n in [0, 1, 8, 20, 10_000] {
                t.closest_into(&target, n, t0, &mut out);
                assert_eq!(out, all[..n.min(all.len())], "n = {n}");
                assert_eq!(t.closest(&target, n, t0), out);
            }
        }
    }

    #[test]
    fn full_bucket_asks_to_ping_questionable_then_replaces_bad() {
        let t0 = Instant::now();
        let mut t = RoutingTable::new(NodeId([0; 20]), 2, 2, true);
        // All of these share 0 bits with our id (first bit 1): bucket 0.
        assert_eq!(t.heard_from(node(0x80, 1, 1), t0, true), Insert::Added);
        assert_eq!(t.heard_from(node(0x81, 2, 2), t0, true), Insert::Added);
        assert_eq!(t.heard_from(node(0x82, 3, 3), t0, true), Insert::Cached);
        let later = t0 + GOOD_FOR + Duration::from_secs(1);
        assert_eq!(
            t.heard_from(node(0x83, 4, 4), later, true),
            Insert::PingFirst(node(0x80, 1, 1))
        );
        t.failed(&node(0x80, 1, 1).addr, later);
        t.failed(&node(0x80, 1, 1).addr, later);
        assert!(t.find_addr(&node(0x80, 1, 1).addr).is_none());
        assert!(t.find_addr(&node(0x83, 4, 4).addr).is_some());
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn one_node_per_ip_and_own_id_refused() {
        let t0 = Instant::now();
        let mut t = RoutingTable::new(NodeId([0; 20]), 8, 2, true);
        assert_eq!(t.heard_from(node(0x80, 1, 1), t0, true), Insert::Added);
        let mut same_ip = node(0x40, 9, 1);
        same_ip.addr.set_port(7000);
        assert_eq!(t.heard_from(same_ip, t0, true), Insert::Rejected);
        assert_eq!(
            t.heard_from(
                CompactNode {
                    id: NodeId([0; 20]),
                    addr: node(1, 1, 9).addr
                },
                t0,
                true
            ),
            Insert::Rejected
        );
        // Loopback is not exempt: tests give each node its own 127.x address.
        let lo = |b: u8, port| CompactNode {
            id: NodeId([b; 20]),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        assert_eq!(t.heard_from(lo(0x11, 1), t0, true), Insert::Added);
        assert_eq!(t.heard_from(lo(0x22, 2), t0, true), Insert::Rejected);
    }

    #[test]
    fn unanswered_nodes_only_cached_and_closest_sorted() {
        let t0 = Instant::now();
        let mut t = RoutingTable::new(NodeId([0; 20]), 8, 2, true);
        assert_eq!(t.heard_from(node(0x80, 1, 1), t0, false), Insert::Verify);
        assert!(t.is_empty());
        for i in 1..=6u8 {
            t.heard_from(node(i << 4, i, i), t0, true);
        }
        let c = t.closest(&[0u8; 20], 3, t0);
        assert_eq!(
            c.iter().map(|n| n.id.0[0]).collect::<Vec<_>>(),
            [0x10, 0x20, 0x30]
        );
    }

    #[test]
    fn random_id_lands_in_its_bucket() {
        let own = NodeId([0xA5; 20]);
        let t = RoutingTable::new(own, 8, 2, true);
        for i in [0usize, 1, 7, 8, 63, 159] {
            let id = t.random_id_in_bucket(i, [0x3C; 20]);
            assert_eq!(own.common_prefix_len(&id.0), i, "bucket {i}");
        }
    }

    /// A node at a public IP: secure (BEP 42) or not, its id's first bit 1 (bucket 0 of an
    /// all-zero own id).
    fn public(i: u8, secure: bool) -> CompactNode {
        let addr = SocketAddr::from(([8, 8, i, 1], 6881));
        let id = (0..=255u8)
            .map(|r| {
                let mut random = [i; 20];
                random[19] = r;
                bep42::secure_id(addr.ip(), random)
            })
            .find(|id| id.0[0] & 0x80 != 0)
            .unwrap();
        let id = if secure { id } else { NodeId([0x80 | i; 20]) };
        CompactNode { id, addr }
    }

    #[test]
    fn unsecured_nodes_are_pinged_first_but_kept() {
        let t0 = Instant::now();
        let mut t = RoutingTable::new(NodeId([0; 20]), 2, 2, true);
        let (secure, unsecured) = (public(1, true), public(2, false));
        assert_eq!(t.heard_from(secure, t0, true), Insert::Added);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(t.heard_from(unsecured, t1, true), Insert::Added);
        assert_eq!(t.bep42_counts(), (1, 0, 1));
        // Both questionable; the secure one is staler, yet the unsecured one is pinged.
        let later = t0 + GOOD_FOR + Duration::from_secs(5);
        assert_eq!(
            t.heard_from(public(3, false), later, true),
            Insert::PingFirst(unsecured)
        );
        // It answers: never evicted for its id.
        assert_eq!(t.heard_from(unsecured, later, true), Insert::Added);
        assert!(t.find_addr(&unsecured.addr).is_some());
        // A slot freed: a secure replacement is preferred to a fresher unsecured one.
        let mut t = RoutingTable::new(NodeId([0; 20]), 2, 1, true);
        t.heard_from(public(4, false), t0, true);
        t.heard_from(public(7, false), t0, true);
        t.heard_from(public(5, true), t0, true);
        t.heard_from(public(6, false), t1, true);
        t.failed(&public(4, false).addr, later);
        assert!(t.find_addr(&public(5, true).addr).is_some());
        assert!(t.find_addr(&public(6, false).addr).is_none());
    }

    #[test]
    fn rebucket_keeps_every_entry_in_its_new_bucket() {
        let t0 = Instant::now();
        let mut t = RoutingTable::new(NodeId([0; 20]), 64, 2, true);
        for i in 1..=40u8 {
            t.heard_from(node(i.wrapping_mul(37), i, i), t0, true);
        }
        let before: Vec<NodeId> = t.entries().map(|e| e.node.id).collect();
        let own = NodeId([0xff; 20]);
        t.rebucket(own);
        assert_eq!(t.len(), before.len(), "room for all of them");
        for (i, b) in t.buckets.iter().enumerate() {
            for e in &b.entries {
                assert_eq!(own.common_prefix_len(&e.node.id.0).min(159), i);
            }
        }
        assert_eq!(t.heard_from(node(0, 0xff, 99), t0, true), Insert::Added);
    }
}
