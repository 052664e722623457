//! The store thread's side of an index that goes away (a PostgreSQL server restarted,
//! failed over, or unreachable for a while): every call to the store goes through
//! [`Conn::run`], which on a lost connection ([`estudely_store::connection_lost`]) keeps
//! what it was doing, reconnects with a bounded exponential back-off ([`FIRST_RETRY`]
//! doubling to [`MAX_RETRY`]) for as long as the run lives, and then does it again. The
//! batch being committed is kept until its write succeeds, and written again whole (the
//! store makes sure a batch whose commit was in fact done is not counted twice).
//!
//! Meanwhile the store thread reads no request: its bounded queue fills, and the crawl
//! side, told by [`IndexStatus`], holds or drops what it would send (see `held.rs`).
//! Errors of any other kind end the run, as they always did. Once the run is stopping
//! (Ctrl-C) the store thread keeps trying for [`GIVE_UP_AT_STOP`], then ends with the
//! error, so that a run whose index never comes back still exits.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use estudely_store::{connection_lost, Store};
use tracing::warn;

use super::{WriteStats, LOG_TARGET};

/// The first wait before reconnecting again (the first attempt is at once).
pub const FIRST_RETRY: Duration = if cfg!(test) {
    Duration::from_millis(1)
} else {
    Duration::from_millis(500)
};
/// The longest wait between two attempts to reconnect.
pub const MAX_RETRY: Duration = if cfg!(test) {
    Duration::from_millis(8)
} else {
    Duration::from_secs(10)
};
/// How long a stopping run still waits for an index that is away.
pub const GIVE_UP_AT_STOP: Duration = if cfg!(test) {
    Duration::from_millis(200)
} else {
    Duration::from_secs(30)
};

/// Whether the index can be reached, shared by the store thread (which knows) and the
/// crawl side (which then holds what it would send, and stops claiming).
#[derive(Debug, Default)]
pub struct IndexStatus {
    away: AtomicBool,
    outages: AtomicU64,
    stopping: AtomicBool,
}

impl IndexStatus {
    /// Whether the index answers (false from the first lost connection until a call
    /// succeeds again).
    pub fn available(&self) -> bool {
        !self.away.load(Ordering::Acquire)
    }

    /// Times the index went away.
    pub fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    /// The run is ending: an index that is away is waited for [`GIVE_UP_AT_STOP`] more.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}

/// The store, called through [`Conn::run`].
pub(crate) struct Conn<'a> {
    store: &'a mut dyn Store,
    status: Arc<IndexStatus>,
    stats: Arc<Mutex<WriteStats>>,
    /// Since when the index is away, if it is.
    away_since: Option<Instant>,
    /// The wait before the next attempt to reconnect: zero at the first, then doubling, for
    /// the whole outage (a server that takes connections but drops them at once is not
    /// hammered).
    retry: Duration,
    /// How long the last successful call took (its own attempt, not the outage before).
    last: Duration,
    /// When a stopping run gives up on an index that is away.
    give_up_at: Option<Instant>,
}

impl<'a> Conn<'a> {
    pub(crate) fn new(
        store: &'a mut dyn Store,
        status: Arc<IndexStatus>,
        stats: Arc<Mutex<WriteStats>>,
    ) -> Self {
        Conn {
            store,
            status,
            stats,
            away_since: None,
            retry: Duration::ZERO,
            last: Duration::ZERO,
            give_up_at: None,
        }
    }

    /// `op` on the store; after a lost connection, again once reconnected, as often as
    /// needed. Any other error is returned.
    pub(crate) fn run<T>(
        &mut self,
        mut op: impl FnMut(&mut dyn Store) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        loop {
            let start = Instant::now();
            match op(&mut *self.store) {
                Ok(v) => {
                    self.last = start.elapsed();
                    self.back();
                    return Ok(v);
                }
                Err(e) if connection_lost(&e) => self.reconnect(e)?,
                Err(e) => return Err(e),
            }
        }
    }

    /// How long the last successful [`Conn::run`] took, without the outage it waited out.
    pub(crate) fn last_took(&self) -> Duration {
        self.last
    }

    /// Reconnect after `lost`, waiting longer each time; an error only for a failure that
    /// is not a lost connection, or when the run stops and the index stays away.
    fn reconnect(&mut self, mut lost: anyhow::Error) -> anyhow::Result<()> {
        let since = *self.away_since.get_or_insert_with(|| {
            warn!(
                target: LOG_TARGET,
                "index unavailable ({lost:#}): reconnecting; new fetches wait, what is fetched is held"
            );
            self.status.outages.fetch_add(1, Ordering::Relaxed);
            self.stats.lock().unwrap_or_else(|p| p.into_inner()).outages += 1;
            self.status.away.store(true, Ordering::Release);
            Instant::now()
        });
        // The first attempt at once: a connection closed on its own (an idle timeout, a
        // proxy restarted) is usually back on the next try.
        loop {
            if self.status.stopping() {
                let give_up = *self
                    .give_up_at
                    .get_or_insert_with(|| Instant::now() + GIVE_UP_AT_STOP);
                if Instant::now() >= give_up {
                    let away = since.elapsed().as_secs_f64();
                    return Err(lost.context(format!(
                        "the index was still unavailable at exit, after {away:.1} s"
                    )));
                }
            }
            self.pause(self.retry);
            self.retry = (self.retry * 2).clamp(FIRST_RETRY, MAX_RETRY);
            match self.store.reconnect() {
                Ok(()) => return Ok(()),
                Err(e) if connection_lost(&e) => lost = e,
                Err(e) => return Err(e.context("reconnecting to the index")),
            }
        }
    }

    /// Sleep `wait`, in short steps: cut short when the run starts stopping (to set its
    /// deadline at once) or reaches that deadline.
    fn pause(&self, wait: Duration) {
        let end = Instant::now() + wait;
        loop {
            let end = self.give_up_at.map_or(end, |g| g.min(end));
            let now = Instant::now();
            if now >= end || (self.give_up_at.is_none() && self.status.stopping()) {
                return;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(100)));
        }
    }

    /// A call succeeded: if the index was away, it is back.
    fn back(&mut self) {
        if let Some(since) = self.away_since.take() {
            self.retry = Duration::ZERO;
            let took = since.elapsed();
            self.status.away.store(false, Ordering::Release);
            self.stats
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .unavailable += took;
            warn!(
                target: LOG_TARGET,
                "index back after {:.1} s unavailable", took.as_secs_f64()
            );
        }
    }
}
