//! The containers of finished peer searches, kept for the next searches to reuse: a crawl
//! starts and ends searches all the time, and each would otherwise allocate its candidate
//! list, asked set and peer list and set anew. Bounded: at most [`MAX_POOLED`] are kept,
//! and none that grew beyond [`MAX_KEPT_CAPACITY`].

use std::collections::HashSet;
use std::net::SocketAddr;

/// Sets of containers kept at most.
pub(crate) const MAX_POOLED: usize = 32;
/// Containers grown beyond this many elements are dropped rather than kept.
pub(crate) const MAX_KEPT_CAPACITY: usize = 128;

/// A search's containers (see [`super::Search`]); empty when handed out by the pool.
#[derive(Debug, Default)]
pub(crate) struct Parts {
    pub(crate) candidates: Vec<([u8; 20], SocketAddr)>,
    pub(crate) asked: HashSet<SocketAddr>,
    pub(crate) peers: Vec<SocketAddr>,
    pub(crate) peer_set: HashSet<SocketAddr>,
}

impl Parts {
    fn clear(&mut self) {
        self.candidates.clear();
        self.asked.clear();
        self.peers.clear();
        self.peer_set.clear();
    }

    fn small(&self) -> bool {
        self.candidates.capacity() <= MAX_KEPT_CAPACITY
            && self.asked.capacity() <= MAX_KEPT_CAPACITY
            && self.peers.capacity() <= MAX_KEPT_CAPACITY
            && self.peer_set.capacity() <= MAX_KEPT_CAPACITY
    }
}

/// Finished searches' containers, emptied, waiting for reuse.
#[derive(Debug, Default)]
pub(crate) struct SearchPool {
    free: Vec<Parts>,
}

impl SearchPool {
    /// Empty containers: reused ones if any are kept, else new (unallocated) ones.
    pub(crate) fn take(&mut self) -> Parts {
        self.free.pop().unwrap_or_default()
    }

    /// Keep `parts` (emptied) for reuse, unless the pool is full or they grew large.
    pub(crate) fn put(&mut self, mut parts: Parts) {
        if self.free.len() < MAX_POOLED && parts.small() {
            parts.clear();
            self.free.push(parts);
        }
    }

    /// Sets of containers kept now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used() -> Parts {
        let a = SocketAddr::from(([10, 0, 0, 1], 6881));
        let mut p = Parts::default();
        p.candidates.push(([1; 20], a));
        p.asked.insert(a);
        p.peers.push(a);
        p.peer_set.insert(a);
        p
    }

    #[test]
    fn reuse_yields_empty_containers_with_their_capacity() {
        let mut pool = SearchPool::default();
        pool.put(used());
        assert_eq!(pool.len(), 1);
        let p = pool.take();
        assert!(p.candidates.is_empty() && p.asked.is_empty());
        assert!(p.peers.is_empty() && p.peer_set.is_empty());
        assert!(p.candidates.capacity() > 0 && p.asked.capacity() > 0);
        assert_eq!(pool.len(), 0);
        // Nothing kept: new containers.
        assert_eq!(pool.take().candidates.capacity(), 0);
    }

    #[test]
    fn keeps_at_most_max_pooled_and_drops_large_ones() {
        let mut pool = SearchPool::default();
        for _ in 0..MAX_POOLED + 10 {
            pool.put(used());
        }
        assert_eq!(pool.len(), MAX_POOLED);
        let mut pool = SearchPool::default();
        let mut big = used();
        big.peers.reserve(MAX_KEPT_CAPACITY + 1);
        pool.put(big);
        assert_eq!(pool.len(), 0, "a grown container is not kept");
    }
}
