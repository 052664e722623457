//! What a batch's jobs share about peer addresses: whose turn it is to connect to a peer
//! ([`PeerLocks`]), and which peers refused us lately ([`Refusals`]).
//!
//! Many torrents list the same peer (a seedbox seeding thousands, or a dead address that
//! many torrents still carry). One connection per peer at a time keeps us polite, and some
//! clients (Transmission 3.00) close a second connection from an IP whose first is still
//! open. But a job waiting for such a peer must not hold anything the others need: the
//! batch takes a connection permit only once it holds the peer's turn (see `batch.rs`), and
//! a job tries first those of its peers nobody else is connected to ([`PeerLocks::free`]).
//!
//! A refused connection (a reset: nothing listens there) is remembered for
//! [`REFUSAL_MEMORY`], so that the next jobs listing that address fail at once as
//! `refused_recently` instead of trying again (under `--transport both` each try also waits
//! for uTP to time out).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;

/// How long a refused address is remembered.
pub const REFUSAL_MEMORY: Duration = Duration::from_secs(10 * 60);

/// Refused addresses remembered at most; past that, the oldest refusal is forgotten first.
pub const REFUSALS_REMEMBERED: usize = 4_096;

type PeerLock = Arc<tokio::sync::Mutex<()>>;

/// One lock per peer address: a peer gets one metadata connection from us at a time. The map
/// holds only the locks someone holds or waits for.
#[derive(Default)]
pub(super) struct PeerLocks(Mutex<HashMap<SocketAddr, PeerLock>>);

/// A peer's turn: its lock, held until this is dropped.
pub(super) struct PeerTurn<'a> {
    locks: &'a PeerLocks,
    peer: SocketAddr,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Drop for PeerTurn<'_> {
    fn drop(&mut self) {
        // The guard holds the lock's Arc: let it go before looking whether anyone else does.
        self.guard = None;
        self.locks.forget_unused(self.peer);
    }
}

impl PeerLocks {
    fn get(&self, peer: SocketAddr) -> PeerLock {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(peer).or_default())
    }

    /// Drop `peer`'s lock from the map if nobody but the map holds it (or waits for it: a
    /// waiter holds a clone). Clones are made only under the map's mutex, from the map, so
    /// a count of 1 seen under it stays 1.
    fn forget_unused(&self, peer: SocketAddr) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(&peer).is_some_and(|l| Arc::strong_count(l) == 1) {
            map.remove(&peer);
        }
    }

    /// The turn of the first of `peers` that nobody holds, with its index, without waiting.
    pub(super) fn free(&self, peers: &[SocketAddr]) -> Option<(usize, PeerTurn<'_>)> {
        for (i, &peer) in peers.iter().enumerate() {
            let guard = self.get(peer).try_lock_owned().ok();
            match guard {
                Some(guard) => {
                    let turn = PeerTurn {
                        locks: self,
                        peer,
                        guard: Some(guard),
                    };
                    return Some((i, turn));
                }
                None => self.forget_unused(peer),
            }
        }
        None
    }

    /// The turn of whichever of `peers` comes free first (each peer's waiters are served in
    /// order), with its index. `peers` must not be empty. Cancel-safe: dropped, it leaves
    /// every queue it waited in.
    pub(super) async fn first_free(&self, peers: &[SocketAddr]) -> (usize, PeerTurn<'_>) {
        assert!(
            !peers.is_empty(),
            "first_free of no peers would wait forever"
        );
        // Forgets the locks of the peers not taken, whatever ends the wait.
        struct Waiting<'a> {
            locks: &'a PeerLocks,
            peers: &'a [SocketAddr],
            turns: Vec<Pin<Box<dyn Future<Output = OwnedMutexGuard<()>> + Send>>>,
        }
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.turns.clear();
                for &peer in self.peers {
                    self.locks.forget_unused(peer);
                }
            }
        }
        let mut waiting = Waiting {
            locks: self,
            peers,
            turns: peers
                .iter()
                .map(|&p| {
                    Box::pin(self.get(p).lock_owned()) as Pin<Box<dyn Future<Output = _> + Send>>
                })
                .collect(),
        };
        let (i, guard) = std::future::poll_fn(|cx| {
            for (i, turn) in waiting.turns.iter_mut().enumerate() {
                if let Poll::Ready(guard) = turn.as_mut().poll(cx) {
                    return Poll::Ready((i, guard));
                }
            }
            Poll::Pending
        })
        .await;
        drop(waiting);
        let turn = PeerTurn {
            locks: self,
            peer: peers[i],
            guard: Some(guard),
        };
        (i, turn)
    }

    /// Peers whose lock someone holds or waits for.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// Addresses whose last connection was refused, for [`REFUSAL_MEMORY`], at most
/// [`REFUSALS_REMEMBERED`]. Sans-IO: the caller passes the time.
pub(super) struct Refusals {
    /// Address → when it refused.
    at: HashMap<SocketAddr, Instant>,
    /// The same, oldest first (and entries already forgotten from `at`, skipped when they
    /// come out).
    order: VecDeque<(SocketAddr, Instant)>,
    cap: usize,
    memory: Duration,
}

impl Default for Refusals {
    fn default() -> Self {
        Refusals::new(REFUSALS_REMEMBERED, REFUSAL_MEMORY)
    }
}

impl Refusals {
    fn new(cap: usize, memory: Duration) -> Self {
        Refusals {
            at: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
            memory,
        }
    }

    /// Whether `peer` refused a connection less than [`REFUSAL_MEMORY`] before `now`.
    pub(super) fn refused(&mut self, peer: SocketAddr, now: Instant) -> bool {
        self.forget_expired(now);
        self.at.contains_key(&peer)
    }

    /// `peer` refused a connection at `now`.
    pub(super) fn remember(&mut self, peer: SocketAddr, now: Instant) {
        self.forget_expired(now);
        self.at.insert(peer, now);
        self.order.push_back((peer, now));
        while self.at.len() > self.cap {
            self.pop_oldest();
        }
    }

    fn forget_expired(&mut self, now: Instant) {
        while self
            .order
            .front()
            .is_some_and(|&(_, t)| now.saturating_duration_since(t) >= self.memory)
        {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((peer, t)) = self.order.pop_front() {
            // A later refusal of the same address has its own entry further on.
            if self.at.get(&peer) == Some(&t) {
                self.at.remove(&peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], i))
    }

    #[test]
    fn refusals_expire_and_the_oldest_go_first_when_full() {
        let t0 = Instant::now();
        let mut r = Refusals::new(3, Duration::from_secs(600));
        r.remember(addr(1), t0);
        assert!(r.refused(addr(1), t0 + Duration::from_secs(599)));
        assert!(!r.refused(addr(2), t0));
        assert!(
            !r.refused(addr(1), t0 + Duration::from_secs(600)),
            "expired"
        );
        assert!(r.at.is_empty() && r.order.is_empty());

        let t1 = t0 + Duration::from_secs(700);
        for i in 1..=4 {
            r.remember(addr(i), t1 + Duration::from_secs(u64::from(i)));
        }
        assert!(
            !r.refused(addr(1), t1 + Duration::from_secs(5)),
            "the oldest went"
        );
        assert!((2..=4).all(|i| r.refused(addr(i), t1 + Duration::from_secs(5))));
        assert_eq!((r.at.len(), r.order.len()), (3, 3));

        // Refused again once forgotten: remembered from the new time on.
        let t2 = t1 + Duration::from_secs(602);
        assert!(!r.refused(addr(2), t2));
        r.remember(addr(2), t2);
        assert!(r.refused(addr(2), t2 + Duration::from_secs(599)));
        assert!(!r.refused(addr(3), t2 + Duration::from_secs(599)));
    }

    #[tokio::test]
    async fn a_busy_peer_is_skipped_and_the_first_freed_is_taken() {
        let locks = PeerLocks::default();
        let (a, b, c) = (addr(1), addr(2), addr(3));
        let (i, held_a) = locks.free(&[a, b]).unwrap();
        assert_eq!((i, held_a.peer), (0, a));
        let (i, held_b) = locks.free(&[a, b]).unwrap();
        assert_eq!((i, held_b.peer), (1, b), "a is busy: b is free");
        assert!(locks.free(&[a, b]).is_none());
        assert_eq!(locks.len(), 2);

        // Waiting for a or b: b is given back first, so b it is.
        let both = [a, b];
        let wait = locks.first_free(&both);
        tokio::pin!(wait);
        assert!(futures_poll_once(wait.as_mut()).is_none());
        drop(held_b);
        let (i, turn) = wait.await;
        assert_eq!((i, turn.peer), (1, b));
        drop(turn);
        assert_eq!(locks.len(), 1, "b is nobody's: forgotten");

        // A wait given up leaves no lock behind: only a's, which is held.
        {
            let only_a = [a];
            let wait = locks.first_free(&only_a);
            tokio::pin!(wait);
            assert!(futures_poll_once(wait.as_mut()).is_none());
        }
        assert_eq!(locks.len(), 1);
        let (i, turn) = locks.first_free(&[a, c]).await;
        assert_eq!((i, turn.peer), (1, c), "c was free");
        drop(turn);
        drop(held_a);
        assert_eq!(locks.len(), 0);
    }

    /// Poll once: the turn if it is there at once.
    fn futures_poll_once<'a, F>(f: Pin<&mut F>) -> Option<(usize, PeerTurn<'a>)>
    where
        F: Future<Output = (usize, PeerTurn<'a>)>,
    {
        let waker = std::task::Waker::noop();
        match f.poll(&mut std::task::Context::from_waker(waker)) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        }
    }
}
