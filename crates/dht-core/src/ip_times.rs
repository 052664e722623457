//! The send times of one IP, in order, for [`crate::politeness::IpBudget`]: the first few
//! kept inline, so that tracking an IP sent to a few times per window (nearly every IP a
//! crawler meets) costs no heap allocation; more spill to a `Vec`.

use std::time::Instant;

/// Times kept without a heap allocation.
const INLINE: usize = 4;

/// Send times in order (earliest first). A slice view of them is [`Times::as_slice`].
#[derive(Debug, Clone)]
pub(crate) enum Times {
    /// The first `len` of the array are the times.
    Inline { len: u8, t: [Instant; INLINE] },
    /// More than [`INLINE`] at some point.
    Spilled(Vec<Instant>),
}

impl Times {
    /// No time yet (`filler` only fills the unused slots; it is never read as a time).
    pub(crate) fn new(filler: Instant) -> Self {
        Times::Inline {
            len: 0,
            t: [filler; INLINE],
        }
    }

    /// The times, earliest first.
    pub(crate) fn as_slice(&self) -> &[Instant] {
        match self {
            Times::Inline { len, t } => &t[..usize::from(*len)],
            Times::Spilled(v) => v,
        }
    }

    /// How many times.
    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Drop the first `n` times (all, if fewer).
    pub(crate) fn drop_front(&mut self, n: usize) {
        match self {
            Times::Inline { len, t } => {
                let n = n.min(usize::from(*len));
                t.copy_within(n..usize::from(*len), 0);
                // `n <= len <= INLINE`: fits a u8.
                *len -= n as u8;
            }
            Times::Spilled(v) => {
                v.drain(..n.min(v.len()));
            }
        }
    }

    /// Put `at` where it belongs in the order (after any equal time).
    pub(crate) fn insert(&mut self, at: Instant) {
        let i = self.as_slice().partition_point(|t| *t <= at);
        match self {
            Times::Inline { len, t } if usize::from(*len) < INLINE => {
                let l = usize::from(*len);
                t.copy_within(i..l, i + 1);
                t[i] = at;
                *len += 1;
            }
            Times::Inline { len, t } => {
                let mut v = Vec::with_capacity(2 * INLINE);
                v.extend_from_slice(&t[..usize::from(*len)]);
                v.insert(i, at);
                *self = Times::Spilled(v);
            }
            Times::Spilled(v) => v.insert(i, at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn keeps_order_inline_and_spilled() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut t = Times::new(t0);
        assert_eq!(t.len(), 0);
        for n in [5, 1, 3, 3] {
            t.insert(s(n));
        }
        assert!(matches!(t, Times::Inline { .. }), "four fit inline");
        assert_eq!(t.as_slice(), [s(1), s(3), s(3), s(5)]);
        t.insert(s(2));
        assert!(matches!(t, Times::Spilled(_)));
        assert_eq!(t.as_slice(), [s(1), s(2), s(3), s(3), s(5)]);
        t.drop_front(2);
        assert_eq!(t.as_slice(), [s(3), s(3), s(5)]);
        t.drop_front(9);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn drop_front_inline() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut t = Times::new(t0);
        for n in 0..3 {
            t.insert(s(n));
        }
        t.drop_front(1);
        assert_eq!(t.as_slice(), [s(1), s(2)]);
        t.insert(s(0));
        assert_eq!(t.as_slice(), [s(0), s(1), s(2)]);
        t.drop_front(7);
        assert!(t.as_slice().is_empty());
    }
}
