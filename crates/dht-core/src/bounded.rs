//! A bounded map that forgets the least recently used entries, approximately and in O(1).
//!
//! Two generations: entries live in `young` until it holds half the capacity, then `young`
//! becomes `old` and the previous `old` is dropped wholesale. A hit in `old` moves the entry
//! back to `young`. Memory never exceeds `capacity` entries; anything touched within the
//! last `capacity / 2` insertions is kept. Written here because the crawler needs exactly
//! this (bounded "have I seen it?") and nothing more.

use std::collections::HashMap;
use std::hash::Hash;

/// Bounded map, least recently used entries forgotten first (approximately).
#[derive(Debug, Clone)]
pub struct BoundedMap<K, V> {
    young: HashMap<K, V>,
    old: HashMap<K, V>,
    half: usize,
}

impl<K: Hash + Eq + Clone, V> BoundedMap<K, V> {
    /// A map holding at most `capacity` entries (at least 2).
    pub fn new(capacity: usize) -> Self {
        BoundedMap {
            young: HashMap::new(),
            old: HashMap::new(),
            half: (capacity / 2).max(1),
        }
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `k` is held (does not count as a use).
    pub fn contains(&self, k: &K) -> bool {
        self.young.contains_key(k) || self.old.contains_key(k)
    }

    /// The value of `k`, marked as recently used.
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        if let Some(v) = self.old.remove(k) {
            self.insert(k.clone(), v);
        }
        self.young.get_mut(k)
    }

    /// The value of `k` without marking it used.
    pub fn peek(&self, k: &K) -> Option<&V> {
        self.young.get(k).or_else(|| self.old.get(k))
    }

    /// Insert or replace `k`.
    pub fn insert(&mut self, k: K, v: V) {
        self.old.remove(&k);
        if !self.young.contains_key(&k) && self.young.len() >= self.half {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(k, v);
    }

    /// Remove `k`.
    pub fn remove(&mut self, k: &K) -> Option<V> {
        self.young.remove(k).or_else(|| self.old.remove(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_keeps_recent() {
        let mut m = BoundedMap::new(10);
        for i in 0..1000 {
            m.insert(i, i);
            assert!(m.len() <= 10);
            // Keep 0 alive by touching it.
            assert_eq!(m.get_mut(&0).copied(), Some(0), "at {i}");
        }
        assert!(m.contains(&999) && m.contains(&995));
        assert!(!m.contains(&500));
        assert_eq!(m.remove(&999), Some(999));
        assert_eq!(m.peek(&998), Some(&998));
    }
}
