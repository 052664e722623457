//! The global budget of metadata in flight (`--fetch-memory`).
//!
//! A peer announces `metadata_size` in its extended handshake and we then receive that many
//! bytes before we can check them against the infohash. Each fetch is capped
//! ([`FetchConfig::max_metadata_size`](super::FetchConfig::max_metadata_size), 32 MiB), but
//! the caps of concurrent fetches add up: 32 hostile peers each claiming 32 MiB and
//! trickling garbage would make us hold 1 GiB. So every fetch reserves its announced size
//! from one [`MetadataBudget`] shared by all the fetches of a command, before the session
//! allocates anything for the metadata, and gives it back when the attempt ends (the
//! [`Reservation`] is dropped). A fetch that cannot get its reservation waits, until its
//! step deadline at most, and then fails as `memory_budget`: it never allocates.
//!
//! The budget is not first come, first served: a small reservation that fits goes ahead of
//! a large one that waits, so that two hostile claims of 32 MiB stall only other large
//! claims, not the many torrents whose info dict is a few kilobytes.

use std::fmt;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::time::{timeout_at, Instant};

/// The default budget: 64 MiB, two torrents at the largest `metadata_size` accepted.
pub const DEFAULT_FETCH_MEMORY: u64 = 64 << 20;

/// Bytes of metadata that the fetches sharing it may be promised at once. Cloning shares
/// it. Two budgets compare equal whatever they hold: like
/// [`UtpDialer`](super::UtpDialer), a budget is shared state, not a setting (its limit is
/// the setting, and [`limit`](Self::limit) reads it).
#[derive(Clone)]
pub struct MetadataBudget {
    inner: Arc<Inner>,
}

struct Inner {
    limit: u64,
    state: Mutex<State>,
    /// Woken whenever bytes are given back.
    freed: Notify,
}

#[derive(Default)]
struct State {
    /// Bytes reserved now.
    used: u64,
    /// Most bytes ever reserved at once.
    high_water: u64,
    /// Reservations that gave up waiting (or could never fit).
    refused: u64,
}

/// Why a reservation was not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetError {
    /// The size alone exceeds the whole budget: it can never be granted.
    Exceeds {
        /// Bytes asked for.
        size: u64,
        /// The budget.
        limit: u64,
    },
    /// The deadline passed before enough bytes were given back.
    Timeout {
        /// Bytes asked for.
        size: u64,
        /// Bytes reserved by other fetches when it gave up.
        used: u64,
    },
}

impl fmt::Display for BudgetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BudgetError::Exceeds { size, limit } => write!(
                f,
                "metadata_size {size} exceeds the whole metadata budget of {limit} bytes \
                 (--fetch-memory)"
            ),
            BudgetError::Timeout { size, used } => write!(
                f,
                "no room for {size} bytes of metadata in time ({used} bytes in flight; \
                 --fetch-memory)"
            ),
        }
    }
}

impl MetadataBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        MetadataBudget {
            inner: Arc::new(Inner {
                limit,
                state: Mutex::new(State::default()),
                freed: Notify::new(),
            }),
        }
    }

    /// The budget, in bytes.
    pub fn limit(&self) -> u64 {
        self.inner.limit
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> u64 {
        self.state().used
    }

    /// Most bytes ever reserved at once: never above [`limit`](Self::limit).
    pub fn high_water(&self) -> u64 {
        self.state().high_water
    }

    /// Reservations refused so far (waited too long, or larger than the budget).
    pub fn refused(&self) -> u64 {
        self.state().refused
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserve `size` bytes now if they fit.
    pub fn try_reserve(&self, size: u64) -> Option<Reservation> {
        let mut st = self.state();
        let used = st.used.checked_add(size)?;
        if used > self.inner.limit {
            return None;
        }
        st.used = used;
        st.high_water = st.high_water.max(used);
        Some(Reservation {
            budget: Arc::clone(&self.inner),
            size,
        })
    }

    /// Reserve `size` bytes, waiting until `by` at most for other fetches to give bytes
    /// back.
    pub async fn reserve(&self, size: u64, by: Instant) -> Result<Reservation, BudgetError> {
        let limit = self.inner.limit;
        if size > limit {
            self.state().refused += 1;
            return Err(BudgetError::Exceeds { size, limit });
        }
        loop {
            // Registered before the check, so that a release between the check and the
            // wait is not missed.
            let freed = self.inner.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(r) = self.try_reserve(size) {
                return Ok(r);
            }
            if timeout_at(by, freed).await.is_err() {
                let mut st = self.state();
                st.refused += 1;
                return Err(BudgetError::Timeout {
                    size,
                    used: st.used,
                });
            }
        }
    }
}

impl Default for MetadataBudget {
    /// A budget of [`DEFAULT_FETCH_MEMORY`].
    fn default() -> Self {
        MetadataBudget::new(DEFAULT_FETCH_MEMORY)
    }
}

impl fmt::Debug for MetadataBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetadataBudget")
            .field("limit", &self.inner.limit)
            .field("in_use", &self.in_use())
            .finish()
    }
}

impl PartialEq for MetadataBudget {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for MetadataBudget {}

/// Bytes reserved from a [`MetadataBudget`], given back when dropped.
#[must_use = "the bytes are given back when the reservation is dropped"]
pub struct Reservation {
    budget: Arc<Inner>,
    size: u64,
}

impl Reservation {
    /// Bytes reserved.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reservation({})", self.size)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        {
            let mut st = self.budget.state.lock().unwrap_or_else(|e| e.into_inner());
            st.used = st.used.saturating_sub(self.size);
        }
        // Every waiter checks again: a small one may fit where a large one does not.
        self.budget.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn reservations_add_up_to_the_limit_and_are_given_back() {
        let b = MetadataBudget::new(100);
        let a = b.try_reserve(60).unwrap();
        assert!(b.try_reserve(41).is_none());
        let c = b.try_reserve(40).unwrap();
        assert_eq!((b.in_use(), b.high_water()), (100, 100));
        drop(a);
        assert_eq!(b.in_use(), 40);
        drop(c);
        assert_eq!((b.in_use(), b.high_water()), (0, 100));
        assert!(b.try_reserve(u64::MAX).is_none());
    }

    #[tokio::test]
    async fn a_waiter_gets_the_bytes_given_back_and_a_late_one_gives_up() {
        let b = MetadataBudget::new(100);
        let held = b.try_reserve(80).unwrap();
        let far = Instant::now() + Duration::from_secs(60);
        let waiting = tokio::spawn({
            let b = b.clone();
            async move { b.reserve(50, far).await.map(|r| r.size()) }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(held);
        assert_eq!(waiting.await.unwrap(), Ok(50));

        let held = b.try_reserve(90).unwrap();
        let soon = Instant::now() + Duration::from_millis(100);
        let e = b.reserve(20, soon).await.unwrap_err();
        assert_eq!(e, BudgetError::Timeout { size: 20, used: 90 });
        // A small one that fits goes ahead of a large one that waits.
        assert!(b.reserve(10, soon).await.is_ok());
        drop(held);
        assert_eq!(
            b.reserve(101, far).await.unwrap_err(),
            BudgetError::Exceeds {
                size: 101,
                limit: 100
            }
        );
        assert_eq!(b.refused(), 2);
        assert_eq!(b.high_water(), 100);
    }
}
