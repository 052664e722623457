//! Outstanding queries, keyed by a 2-byte transaction id, each with a deadline.
//!
//! A reply is matched only when both its transaction id and its source address match what
//! we sent: a spoofed or stray reply from elsewhere is ignored. Ids are drawn sequentially
//! from a random start and skip ids still in use. The table is bounded (`max_in_flight`).

use std::collections::{BTreeSet, HashMap};
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
    deadlines: BTreeSet<(Instant, u16)>,
    next: u16,
    max: usize,
}

impl<P> Transactions<P> {
    /// An empty table holding at most `max` transactions; ids start at `start`.
    pub fn new(max: usize, start: u16) -> Self {
        Transactions {
            pending: HashMap::new(),
            deadlines: BTreeSet::new(),
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
        self.deadlines.insert((deadline, t));
        TransactionId::new(&t.to_be_bytes()).ok()
    }

    /// The pending query a reply from `from` with id `tid` answers, removed from the table.
    pub fn take(&mut self, tid: &TransactionId, from: SocketAddr) -> Option<Pending<P>> {
        let t = u16::from_be_bytes(<[u8; 2]>::try_from(tid.as_bytes()).ok()?);
        if self.pending.get(&t)?.to != from {
            return None;
        }
        let p = self.pending.remove(&t)?;
        self.deadlines.remove(&(p.deadline, t));
        Some(p)
    }

    /// Remove and return every transaction whose deadline is at or before `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Pending<P>> {
        let mut out = Vec::new();
        while let Some(&(deadline, t)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(p) = self.pending.remove(&t) {
                out.push(p);
            }
        }
        out
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(d, _)| *d)
    }
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
        assert!(tx.expire(t0 + Duration::from_secs(1)).is_empty());
        assert_eq!(tx.expire(t0 + Duration::from_secs(2))[0].purpose, "two");
        assert!(tx.is_empty());
        assert!(tx.take(&TransactionId::new(b"abc").unwrap(), a).is_none());
    }
}
