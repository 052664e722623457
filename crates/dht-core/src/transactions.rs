//! Outstanding queries, keyed by a 2-byte transaction id, each with a deadline.
//!
//! A reply is matched only when both its transaction id and its source address match what
//! we sent: a spoofed or stray reply from elsewhere is ignored. Ids are drawn sequentially
//! from a random start and skip ids still in use. The table is bounded (`max_in_flight`).
//!
//! Deadlines are kept in a binary heap whose storage is reused, so that a query costs no
//! allocation (a `BTreeSet` allocates tree nodes as it churns). A reply does not search the
//! heap for its deadline: the entry goes stale and is dropped when it reaches the top
//! (checked against the table), and the heap is compacted in place when stale entries
//! outnumber live ones, so it stays within about twice the transactions in flight.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::Instant;

use estudely_krpc::TransactionId;

/// One query waiting for its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending<P> {
    /// Where it was sent.
    pub to: SocketAddr,
    /// When it times out.
    pub deadline: Instant,
    /// What the caller wanted it for.
    pub purpose: P,
}

/// The transaction table.
#[derive(Debug, Clone)]
pub struct Transactions<P> {
    pending: HashMap<u16, Pending<P>>,
    /// `(deadline, id)` of every transaction in flight, earliest on top, plus stale entries
    /// of ones answered since (never on top: see [`Transactions::drop_stale_top`]).
    deadlines: BinaryHeap<Reverse<(Instant, u16)>>,
    next: u16,
    max: usize,
}

impl<P> Transactions<P> {
    /// An empty table holding at most `max` transactions; ids start at `start`.
    pub fn new(max: usize, start: u16) -> Self {
        Transactions {
            pending: HashMap::new(),
            deadlines: BinaryHeap::new(),
            next: start,
            max,
        }
    }

    /// Transactions in flight.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether none is in flight.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Register a query; `None` when the table is full.
    pub fn start(
        &mut self,
        to: SocketAddr,
        deadline: Instant,
        purpose: P,
    ) -> Option<TransactionId> {
        if self.pending.len() >= self.max.min(u16::MAX as usize) {
            return None;
        }
        while self.pending.contains_key(&self.next) {
            self.next = self.next.wrapping_add(1);
        }
        let t = self.next;
        self.next = self.next.wrapping_add(1);
        self.pending.insert(
            t,
            Pending {
                to,
                deadline,
                purpose,
            },
        );
        self.deadlines.push(Reverse((deadline, t)));
        self.drop_stale_top();
        TransactionId::new(&t.to_be_bytes()).ok()
    }

    /// The pending query a reply from `from` with id `tid` answers, removed from the table.
    pub fn take(&mut self, tid: &TransactionId, from: SocketAddr) -> Option<Pending<P>> {
        let t = u16::from_be_bytes(<[u8; 2]>::try_from(tid.as_bytes()).ok()?);
        if self.pending.get(&t)?.to != from {
            return None;
        }
        let p = self.pending.remove(&t)?;
        self.drop_stale_top();
        if self.deadlines.len() > 2 * self.pending.len() + 64 {
            // Mostly stale: keep only the live entries, in place.
            let pending = &self.pending;
            self.deadlines
                .retain(|Reverse((d, t))| is_live(pending, *d, *t));
        }
        Some(p)
    }

    /// Remove and return one transaction whose deadline is at or before `now`, if any
    /// (call until `None`).
    pub fn pop_expired(&mut self, now: Instant) -> Option<Pending<P>> {
        self.drop_stale_top();
        let Reverse((deadline, t)) = *self.deadlines.peek()?;
        if deadline > now {
            return None;
        }
        self.deadlines.pop();
        let p = self.pending.remove(&t);
        self.drop_stale_top();
        p
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((d, _))| *d)
    }

    /// Pop the entries of answered transactions off the top, so that the top is always a
    /// live deadline (or the heap is empty).
    fn drop_stale_top(&mut self) {
        while let Some(&Reverse((d, t))) = self.deadlines.peek() {
            if is_live(&self.pending, d, t) {
                break;
            }
            self.deadlines.pop();
        }
    }
}

/// Whether `(deadline, t)` is the entry of a transaction in flight (an id may be in use
/// again, with another deadline, after its first transaction was answered).
fn is_live<P>(pending: &HashMap<u16, Pending<P>>, deadline: Instant, t: u16) -> bool {
    pending.get(&t).is_some_and(|p| p.deadline == deadline)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn match_by_id_and_address_then_expire() {
        let t0 = Instant::now();
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:1".parse().unwrap();
        let mut tx = Transactions::new(2, u16::MAX);
        let t1 = tx.start(a, t0 + Duration::from_secs(1), "one").unwrap();
        let t2 = tx.start(b, t0 + Duration::from_secs(2), "two").unwrap();
        assert_ne!(t1, t2, "ids wrap and stay distinct");
        assert!(tx.start(a, t0, "three").is_none(), "bounded");
        assert!(tx.take(&t1, b).is_none(), "wrong source is ignored");
        assert_eq!(tx.take(&t1, a).unwrap().purpose, "one");
        assert!(tx.take(&t1, a).is_none(), "taken once");
        assert_eq!(tx.next_deadline(), Some(t0 + Duration::from_secs(2)));
        assert!(tx.pop_expired(t0 + Duration::from_secs(1)).is_none());
        assert_eq!(
            tx.pop_expired(t0 + Duration::from_secs(2)).unwrap().purpose,
            "two"
        );
        assert!(tx.pop_expired(t0 + Duration::from_secs(9)).is_none());
        assert!(tx.is_empty());
        assert!(tx.take(&TransactionId::new(b"abc").unwrap(), a).is_none());
    }

    #[test]
    fn answered_entries_never_show_and_the_heap_stays_small() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut tx = Transactions::new(1_000, 7);
        // One early query stays in flight on top; many later ones are answered at once,
        // their entries stale under it. 70,000: ids wrap and are used again while stale
        // entries of their first use are still in the heap.
        let early = tx.start(a, t0 + ms(1), 0u32).unwrap();
        for i in 1..70_000u32 {
            let id = tx
                .start(a, t0 + ms(1_000 + u64::from(i % 4_000)), i)
                .unwrap();
            assert!(tx.take(&id, a).is_some());
            assert_eq!(tx.next_deadline(), Some(t0 + ms(1)), "{i}");
            assert!(
                tx.deadlines.len() <= 2 * tx.len() + 64 + 1,
                "{i}: compacted"
            );
        }
        let live = tx.start(a, t0 + ms(3_000), 70_000).unwrap();
        // Only the two in flight ever expire, in order.
        assert_eq!(tx.pop_expired(t0 + ms(10_000)).unwrap().purpose, 0);
        assert_eq!(tx.pop_expired(t0 + ms(10_000)).unwrap().purpose, 70_000);
        assert!(tx.pop_expired(t0 + ms(10_000)).is_none());
        assert!(tx.take(&early, a).is_none() && tx.take(&live, a).is_none());
        assert_eq!(tx.next_deadline(), None);
        assert!(tx.is_empty());
    }
}
