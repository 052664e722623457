//! Nodes resting inside their BEP 51 `interval`, remembered in fixed memory.
//!
//! On the real DHT a crawler that samples 1,000 nodes a second meets millions of nodes per
//! six-hour interval: too many to keep a full entry for each (see `KnownNodes`), yet
//! etiquette says none may be asked again before its interval ends. Once the known-node
//! table is half full, a node that answered with a long interval leaves the table for this
//! filter, and a node found again is refused while the filter says it rests.
//!
//! The filter is a ring of Bloom filters, one per time slice of `max_interval / SLICES`: a
//! node resting until `t` is set in the filter of the slice that ends at or after `t`, and
//! a slice's filter is cleared when the clock has passed its end, so each node is
//! remembered a little longer than asked, never shorter. Its memory is fixed when it is
//! made. A false positive only makes the crawler skip a node it could have asked (it is
//! found again later): it errs on the polite side. Written here because the one thing
//! needed (a time-sliced, fixed-memory "rests until" set keyed against hash flooding) is
//! smaller than any crate that would do it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::seen::mix;

/// Time slices the longest interval is divided into.
const SLICES: u64 = 24;
/// Bits set per node.
const PROBES: u32 = 3;

#[derive(Debug, Clone)]
struct Slice {
    /// Which slice of time (counted from `origin`) this filter holds; nodes rest until
    /// its end.
    index: u64,
    bits: Vec<u64>,
    len: u64,
}

/// Fixed-memory set of nodes resting until a time.
#[derive(Debug, Clone)]
pub struct RestingNodes {
    origin: Instant,
    slice: Duration,
    slices: Vec<Slice>,
    words: usize,
    key: u64,
    /// Nodes put to rest.
    pub rested: u64,
}

impl RestingNodes {
    /// A filter of about `bytes` bytes for intervals up to `max_interval`, hashing with
    /// `key`. `bytes == 0` makes a filter that remembers nothing (every node stays in the
    /// table).
    pub fn new(origin: Instant, max_interval: Duration, bytes: usize, key: u64) -> Self {
        let slice = (max_interval / SLICES as u32).max(Duration::from_secs(1));
        let n = (max_interval.as_nanos() / slice.as_nanos()) as usize + 2;
        let words = if bytes == 0 {
            0
        } else {
            (bytes / 8 / n).max(8)
        };
        RestingNodes {
            origin,
            slice,
            slices: (0..n)
                .map(|_| Slice {
                    index: u64::MAX,
                    bits: Vec::new(),
                    len: 0,
                })
                .collect(),
            words,
            key,
            rested: 0,
        }
    }

    /// The length of one time slice: how much longer than asked a node may rest.
    pub fn slice(&self) -> Duration {
        self.slice
    }

    /// Whether it remembers anything at all.
    pub fn enabled(&self) -> bool {
        self.words > 0
    }

    /// Bytes allocated now (slices are allocated when first used).
    pub fn bytes(&self) -> usize {
        self.slices.iter().map(|s| s.bits.len() * 8).sum()
    }

    /// Nodes held in live slices (with repeats).
    pub fn len(&self, now: Instant) -> u64 {
        let ended = self.ended(now);
        self.slices
            .iter()
            .filter(|s| s.index != u64::MAX && s.index > ended)
            .map(|s| s.len)
            .sum()
    }

    /// The slice whose end is at or after `t`: `ceil((t - origin) / slice)`.
    fn slice_of(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.origin).as_nanos();
        let w = self.slice.as_nanos();
        d.div_ceil(w) as u64
    }

    /// Slices that have ended by `now`: those up to `floor((now - origin) / slice)`. A
    /// slice past that still lives.
    fn ended(&self, now: Instant) -> u64 {
        let d = now.saturating_duration_since(self.origin).as_nanos();
        (d / self.slice.as_nanos()) as u64
    }

    fn probes(&self, addr: &SocketAddr) -> [usize; PROBES as usize] {
        let mut h = self.key;
        match addr {
            SocketAddr::V4(a) => h ^= mix(u64::from(u32::from(*a.ip())) << 16 | 4),
            SocketAddr::V6(a) => {
                let v = u128::from(*a.ip());
                h ^= mix((v >> 64) as u64) ^ mix(v as u64 ^ 6);
            }
        }
        let h1 = mix(h ^ u64::from(addr.port()));
        let h2 = mix(h1 ^ 0x9E37_79B9_7F4A_7C15) | 1;
        let bits = (self.words * 64) as u64;
        let mut out = [0usize; PROBES as usize];
        for (i, o) in out.iter_mut().enumerate() {
            *o = (h1.wrapping_add(h2.wrapping_mul(i as u64)) % bits.max(1)) as usize;
        }
        out
    }

    /// Whether a rest from `now` until `until` is worth the filter: at least one slice
    /// long (shorter ones stay in the table, which reschedules them exactly).
    pub fn long_enough(&self, now: Instant, until: Instant) -> bool {
        until.saturating_duration_since(now) >= self.slice
    }

    /// Remember that `addr` rests until `until` (seen at `now`); `until` is at most
    /// `max_interval` after `now`.
    pub fn rest(&mut self, now: Instant, addr: &SocketAddr, until: Instant) {
        if !self.enabled() {
            return;
        }
        let s = self.slice_of(until).max(self.slice_of(now));
        let probes = self.probes(addr);
        let n = self.slices.len() as u64;
        let words = self.words;
        let slot = &mut self.slices[(s % n) as usize];
        if slot.index != s {
            // Its previous slice ended before `now` (the ring spans more than the longest
            // interval): reuse it.
            slot.index = s;
            slot.len = 0;
            if slot.bits.len() == words {
                slot.bits.fill(0);
            } else {
                slot.bits = vec![0; words];
            }
        }
        for p in probes {
            slot.bits[p / 64] |= 1 << (p % 64);
        }
        slot.len += 1;
        self.rested += 1;
    }

    /// Whether `addr` may rest still at `now` (false positives possible, no false negatives
    /// for nodes rested while their slice lives).
    pub fn rests(&self, now: Instant, addr: &SocketAddr) -> bool {
        if !self.enabled() {
            return false;
        }
        let ended = self.ended(now);
        let probes = self.probes(addr);
        self.slices.iter().any(|s| {
            s.index != u64::MAX
                && s.index > ended
                && probes
                    .iter()
                    .all(|&p| s.bits.get(p / 64).is_some_and(|w| w & (1 << (p % 64)) != 0))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(i: u32) -> SocketAddr {
        SocketAddr::from((std::net::Ipv4Addr::from(0x0100_0000 + i), 6881))
    }

    #[test]
    fn rests_until_its_time_and_never_shorter() {
        let t0 = Instant::now();
        let six = Duration::from_secs(21_600);
        let mut r = RestingNodes::new(t0, six, 1 << 20, 7);
        let t = t0 + Duration::from_secs(100);
        for i in 0..10_000 {
            r.rest(t, &a(i), t + Duration::from_secs(u64::from(i % 21_600)));
        }
        for i in 0..10_000 {
            let until = t + Duration::from_secs(u64::from(i % 21_600));
            assert!(r.rests(t, &a(i)));
            assert!(r.rests(until - Duration::from_millis(1), &a(i)), "{i}");
        }
        // Long after every interval: nothing rests, and slices are reused.
        let late = t + six + Duration::from_secs(3_600);
        assert!((0..10_000).all(|i| !r.rests(late, &a(i))));
        assert_eq!(r.len(late), 0);
        let bytes = r.bytes();
        for i in 0..10_000 {
            r.rest(late, &a(i), late + six);
        }
        assert_eq!(r.bytes(), bytes, "memory is fixed");
    }

    #[test]
    fn false_positives_are_rare_at_its_design_load() {
        let t0 = Instant::now();
        let six = Duration::from_secs(21_600);
        // 4 MiB over 26 slices: 1.29 Mbit per slice, 100,000 nodes in one slice (13 bits
        // each): about 0.9 % false positives.
        let mut r = RestingNodes::new(t0, six, 4 << 20, 11);
        for i in 0..100_000 {
            r.rest(t0, &a(i), t0 + six);
        }
        let fp = (100_000..200_000).filter(|&i| r.rests(t0, &a(i))).count();
        assert!(fp < 3_000, "{fp} false positives in 100,000");
        assert!((0..100_000).all(|i| r.rests(t0, &a(i))));
    }

    #[test]
    fn disabled_remembers_nothing() {
        let t0 = Instant::now();
        let mut r = RestingNodes::new(t0, Duration::from_secs(60), 0, 1);
        r.rest(t0, &a(1), t0 + Duration::from_secs(30));
        assert!(!r.rests(t0, &a(1)));
        assert_eq!(r.bytes(), 0);
    }
}
