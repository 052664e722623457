//! What the crawler remembers about nodes: when each may next be asked for samples, whether
//! it speaks BEP 51, and which ids each IP has shown (to spot one host posing as many nodes).
//! Everything is bounded; forgetting a node only means it may be visited again later, and
//! its `interval` is still honoured because the due time is kept with the entry.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use estudely_krpc::NodeId;

use crate::bounded::BoundedMap;

/// The crawler's view of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// The id it answered with (or was listed under).
    pub id: NodeId,
    /// Not to be asked for samples before this (its BEP 51 `interval`).
    pub next_sample: Option<Instant>,
    /// `Some(false)` once it refused `sample_infohashes`.
    pub bep51: Option<bool>,
    /// Unanswered queries in a row.
    pub strikes: u8,
    /// Waiting in the frontier.
    pub queued: bool,
}

/// Bounded bookkeeping of nodes seen by the crawler.
#[derive(Debug, Clone)]
pub struct KnownNodes {
    nodes: BoundedMap<SocketAddr, Known>,
    ids_by_ip: BoundedMap<IpAddr, Vec<NodeId>>,
    max_ids_per_ip: usize,
    due: BinaryHeap<Reverse<(Instant, SocketAddr)>>,
    max_due: usize,
}

impl KnownNodes {
    /// Remember at most `capacity` nodes; an IP showing more than `max_ids_per_ip` ids is
    /// distrusted (loopback exempt: tests run many nodes on `::1`).
    pub fn new(capacity: usize, max_ids_per_ip: usize) -> Self {
        KnownNodes {
            nodes: BoundedMap::new(capacity),
            ids_by_ip: BoundedMap::new(capacity),
            max_ids_per_ip,
            due: BinaryHeap::new(),
            max_due: capacity,
        }
    }

    /// Nodes remembered.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The entry for `addr`.
    pub fn get_mut(&mut self, addr: &SocketAddr) -> Option<&mut Known> {
        self.nodes.get_mut(addr)
    }

    /// The entry for `addr`, without marking it used.
    pub fn peek(&self, addr: &SocketAddr) -> Option<&Known> {
        self.nodes.peek(addr)
    }

    /// Record that `addr` presents `id`. False when its IP already showed too many ids: a
    /// host listing itself under many ids is ignored rather than trusted.
    pub fn vouch(&mut self, addr: SocketAddr, id: NodeId) -> bool {
        let ip = addr.ip();
        if ip.is_loopback() {
            return true;
        }
        let max = self.max_ids_per_ip;
        match self.ids_by_ip.get_mut(&ip) {
            Some(ids) if ids.contains(&id) => true,
            Some(ids) if ids.len() >= max => false,
            Some(ids) => {
                ids.push(id);
                true
            }
            None => {
                self.ids_by_ip.insert(ip, vec![id]);
                true
            }
        }
    }

    /// Learn of a node. Returns true if it is new (the caller queues it).
    pub fn discover(&mut self, addr: SocketAddr, id: NodeId) -> bool {
        if self.nodes.contains(&addr) || !self.vouch(addr, id) {
            return false;
        }
        self.nodes.insert(
            addr,
            Known {
                id,
                next_sample: None,
                bep51: None,
                strikes: 0,
                queued: true,
            },
        );
        true
    }

    /// `addr` may be asked again at `at`; it will come back through [`KnownNodes::pop_due`].
    pub fn schedule(&mut self, addr: SocketAddr, at: Instant) {
        if let Some(k) = self.nodes.get_mut(&addr) {
            k.next_sample = Some(at);
            if self.due.len() < self.max_due {
                self.due.push(Reverse((at, addr)));
            }
        }
    }

    /// A node whose interval has passed, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<SocketAddr> {
        while let Some(Reverse((at, addr))) = self.due.peek().copied() {
            if at > now {
                return None;
            }
            self.due.pop();
            // Skip stale entries: forgotten nodes and rescheduled ones.
            if let Some(k) = self.nodes.get_mut(&addr) {
                if k.next_sample == Some(at) && !k.queued {
                    k.queued = true;
                    return Some(addr);
                }
            }
        }
        None
    }

    /// When the next scheduled node becomes due.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }

    /// Forget a node (it stopped answering).
    pub fn forget(&mut self, addr: &SocketAddr) {
        self.nodes.remove(addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_ip_many_ids_is_distrusted_and_due_times_kept() {
        let mut k = KnownNodes::new(100, 2);
        let a = |port| SocketAddr::from(([10, 0, 0, 1], port));
        assert!(k.discover(a(1), NodeId([1; 20])));
        assert!(!k.discover(a(1), NodeId([1; 20])), "not new");
        assert!(k.discover(a(2), NodeId([2; 20])));
        assert!(!k.discover(a(3), NodeId([3; 20])), "third id from one IP");
        let lo = |port| SocketAddr::from(([127, 0, 0, 1], port));
        assert!((1..10).all(|p| k.discover(lo(p), NodeId([p as u8; 20]))));
        let t0 = Instant::now();
        k.get_mut(&a(1)).unwrap().queued = false;
        k.schedule(a(1), t0 + Duration::from_secs(30));
        assert_eq!(k.pop_due(t0), None);
        assert_eq!(k.next_due(), Some(t0 + Duration::from_secs(30)));
        assert_eq!(k.pop_due(t0 + Duration::from_secs(30)), Some(a(1)));
        assert_eq!(k.pop_due(t0 + Duration::from_secs(60)), None);
    }
}
