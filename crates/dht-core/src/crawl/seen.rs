//! The set of infohashes already reported, so none is reported twice in a run of any length.
//!
//! A fixed-size open-addressing table of 64-bit fingerprints (a keyed hash of the infohash,
//! so a hostile node cannot craft collisions without the key), allocated once with
//! `vec![0; slots]`: the OS hands out its pages lazily and the memory never grows past
//! `8 × slots` bytes, `slots` being the next power of two at or above twice the capacity (at
//! most 16 bytes per infohash of capacity, whatever the run's length). When it holds
//! `capacity` fingerprints it is full, and the crawler stops sampling rather than forget
//! (and later repeat) what it reported. Two distinct infohashes share a fingerprint with
//! probability about `n / 2^64` per new infohash (5 × 10⁻¹⁴ at a million): the only way an
//! infohash can be missed. Written here because no small crate offers a fixed-memory,
//! exact-enough "seen" set with a hard cap.

use estudely_krpc::InfoHash;

/// Reported infohashes, bounded.
#[derive(Debug, Clone)]
pub struct SeenSet {
    slots: Vec<u64>,
    len: usize,
    capacity: usize,
    key: u64,
}

impl SeenSet {
    /// A set for at most `capacity` infohashes, hashing with `key`.
    pub fn new(capacity: usize, key: u64) -> Self {
        let capacity = capacity.max(1);
        let n = (capacity * 2).next_power_of_two();
        SeenSet {
            slots: vec![0; n],
            len: 0,
            capacity,
            key,
        }
    }

    /// Infohashes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether it holds `capacity` infohashes and takes no more.
    pub fn is_full(&self) -> bool {
        self.len >= self.capacity
    }

    /// Bytes of the table (its fixed size).
    pub fn bytes(&self) -> usize {
        self.slots.len() * 8
    }

    fn fingerprint(&self, ih: &InfoHash) -> u64 {
        keyed_hash(self.key, ih).max(1) // 0 marks an empty slot
    }

    /// Whether `ih` was inserted.
    pub fn contains(&self, ih: &InfoHash) -> bool {
        let f = self.fingerprint(ih);
        let mask = self.slots.len() - 1;
        let mut i = (f as usize) & mask;
        loop {
            match self.slots[i] {
                0 => return false,
                x if x == f => return true,
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Forget every infohash (the memory stays allocated).
    pub fn clear(&mut self) {
        self.slots.fill(0);
        self.len = 0;
    }

    /// Insert `ih`: `Some(true)` if new, `Some(false)` if already there, `None` if new but
    /// the set is full (nothing inserted).
    pub fn insert(&mut self, ih: &InfoHash) -> Option<bool> {
        let f = self.fingerprint(ih);
        let mask = self.slots.len() - 1;
        let mut i = (f as usize) & mask;
        loop {
            match self.slots[i] {
                0 => break,
                x if x == f => return Some(false),
                _ => i = (i + 1) & mask,
            }
        }
        if self.is_full() {
            return None;
        }
        self.slots[i] = f;
        self.len += 1;
        Some(true)
    }
}

/// A 64-bit hash of `ih` keyed by `key`: its three 64-bit words mixed with the key (the
/// splitmix64 finaliser per word). Infohashes are SHA-1 output; a secret key keeps crafted
/// ones (a hostile node can announce any 20 bytes) from colliding on purpose.
pub fn keyed_hash(key: u64, ih: &InfoHash) -> u64 {
    let mut h = key;
    for chunk in ih.0.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = mix(h ^ u64::from_le_bytes(w));
    }
    h
}

/// The splitmix64 finaliser: a cheap, well-spread 64-bit mix.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ih(i: u32) -> InfoHash {
        let mut b = [0u8; 20];
        b[..4].copy_from_slice(&i.to_be_bytes());
        b[19] = 7;
        InfoHash(b)
    }

    #[test]
    fn exact_until_full_then_refuses() {
        let mut s = SeenSet::new(1000, 42);
        for i in 0..1000 {
            assert_eq!(s.insert(&ih(i)), Some(true), "{i}");
        }
        assert!(s.is_full());
        for i in 0..1000 {
            assert!(s.contains(&ih(i)));
            assert_eq!(s.insert(&ih(i)), Some(false));
        }
        assert_eq!(s.insert(&ih(5000)), None, "full: refused, not forgotten");
        assert!(!s.contains(&ih(5000)));
        assert_eq!(s.len(), 1000);
        assert_eq!(s.bytes(), 2048 * 8);
    }

    proptest::proptest! {
        #[test]
        fn never_reports_twice(ids in proptest::collection::vec(0u32..500, 0..2000)) {
            let mut s = SeenSet::new(300, 7);
            let mut reported = std::collections::HashSet::new();
            for i in ids {
                if s.insert(&ih(i)) == Some(true) {
                    proptest::prop_assert!(reported.insert(i), "{} reported twice", i);
                }
            }
            proptest::prop_assert!(s.len() <= 300);
        }
    }
}
