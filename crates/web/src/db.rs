//! Read-only index connections for the web server: a small pool, each query on tokio's
//! blocking pool (the store clients block), each connection with a statement time limit.
//!
//! A PostgreSQL server that goes away (restarted, failed over) does not stop the server:
//! a query that finds the connection lost answers [`DbError::Unavailable`] (a 503) and
//! every idle connection is dropped with it (they went to the same server). While the
//! server stays away, requests answer 503 at once for [`RETRY_OPEN`] after each failed
//! connection attempt, instead of each waiting on one. Once it is back, the next request
//! opens a new connection: nothing needs restarting. An idle connection the server closed
//! is known closed without a query (each PostgreSQL connection is driven by the store's I/O
//! thread, which sees its socket close) and is dropped; one idle for [`CHECK_IDLE_AFTER`]
//! is also checked by a query before it serves a request, for a server gone silently.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use estudely_krpc::InfoHash;
use estudely_store::{connection_lost, DbUrl, Store};

/// How long requests answer 503 at once after a connection attempt failed on a server
/// that is away, before the next request tries again.
pub const RETRY_OPEN: Duration = Duration::from_secs(1);
/// An idle PostgreSQL connection older than this is checked (one primary-key lookup)
/// before it is used.
pub const CHECK_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Why a request's query failed.
#[derive(Debug)]
pub enum DbError {
    /// The query ran out of time, or every connection stayed busy too long.
    Busy(String),
    /// The index's server cannot be reached now (restarting, away): try again later.
    Unavailable(String),
    /// Anything else (the message is for the log, not the page).
    Failed(anyhow::Error),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::Busy(why) | DbError::Unavailable(why) => f.write_str(why),
            DbError::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

/// Connections to one index, opened read-only on demand, at most `max` at once.
pub struct Pool {
    url: DbUrl,
    /// Idle connections, each with when it was last used.
    idle: Mutex<Vec<(Box<dyn Store>, Instant)>>,
    /// One per connection; held by the blocking task that uses it, until it ends.
    permits: Arc<Semaphore>,
    statement_timeout: Duration,
    wait: Duration,
    /// Until when requests answer [`DbError::Unavailable`] without trying to connect.
    away_until: Mutex<Option<Instant>>,
}

impl Pool {
    /// A pool of at most `max` connections to `url`, each statement limited to
    /// `statement_timeout`, a request waiting at most `wait` for a free connection.
    pub fn new(url: DbUrl, max: usize, statement_timeout: Duration, wait: Duration) -> Pool {
        Pool {
            url,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(max.max(1))),
            statement_timeout,
            wait,
            away_until: Mutex::new(None),
        }
    }

    /// Open one connection now, to fail early (a missing file, a refused connection).
    pub fn check(&self) -> anyhow::Result<()> {
        let store = self.open()?;
        self.give_back(store);
        Ok(())
    }

    /// Which index, for messages (no password).
    pub fn url(&self) -> &DbUrl {
        &self.url
    }

    fn open(&self) -> anyhow::Result<Box<dyn Store>> {
        let mut store = self.url.open_read_only()?;
        store.set_statement_timeout(self.statement_timeout)?;
        Ok(store)
    }

    fn give_back(&self, store: Box<dyn Store>) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((store, Instant::now()));
    }

    /// The server went away: its idle connections are dead too; a new connection is not
    /// tried before [`RETRY_OPEN`] if `retry_later`.
    fn lost(&self, retry_later: bool) {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        drop(idle);
        if retry_later {
            *self.away_until.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Instant::now() + RETRY_OPEN);
        }
    }

    /// Whether the server was found away less than [`RETRY_OPEN`] ago.
    fn known_away(&self) -> bool {
        let mut until = self.away_until.lock().unwrap_or_else(|e| e.into_inner());
        match *until {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                *until = None;
                false
            }
            None => false,
        }
    }

    /// A connection to use: an idle one (checked first if it has been idle long), else a
    /// new one.
    fn take(&self) -> anyhow::Result<Box<dyn Store>> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some((mut store, since)) = idle else {
                return self.open();
            };
            if store.connection_closed() {
                // The server closed it (restarted): so went the others; no query needed.
                drop(store);
                self.lost(false);
                continue;
            }
            let postgres = matches!(self.url, DbUrl::Postgres(_));
            if !postgres || since.elapsed() < CHECK_IDLE_AFTER {
                return Ok(store);
            }
            match store.contains(&InfoHash([0; 20])) {
                Ok(_) => return Ok(store),
                // Died while idle (the server restarted): so did the others.
                Err(e) if connection_lost(&e) => {
                    drop(store);
                    self.lost(false);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Run `f` with a connection, on the blocking pool. A connection whose query failed is
    /// dropped rather than reused (it may be in a bad state); a lost connection is
    /// [`DbError::Unavailable`].
    ///
    /// The connection's permit goes with `f` to the blocking task: if the request is
    /// cancelled (its client went away, its time ran out), the query runs on until its
    /// statement time limit, and its connection stays counted until then, so that at most
    /// `max` queries ever run at once.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Store) -> anyhow::Result<T> + Send + 'static,
    {
        if self.known_away() {
            return Err(DbError::Unavailable(UNAVAILABLE.into()));
        }
        let permits = Arc::clone(&self.permits);
        let permit = tokio::time::timeout(self.wait, permits.acquire_owned())
            .await
            .map_err(|_| DbError::Busy("every database connection is busy".into()))?
            .map_err(|e| DbError::Failed(e.into()))?;
        let pool = Arc::clone(self);
        let out = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut store = pool.take().inspect_err(|e| {
                if connection_lost(e) {
                    pool.lost(true);
                }
            })?;
            let out = f(store.as_mut());
            // A connection whose query failed is dropped rather than reused (it may be in
            // a bad state); a lost one takes the idle ones with it.
            match &out {
                Ok(_) => pool.give_back(store),
                Err(e) if connection_lost(e) => {
                    drop(store);
                    pool.lost(false);
                }
                Err(_) => drop(store),
            }
            out
        })
        .await;
        match out {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if connection_lost(&e) => {
                tracing::warn!("index unavailable: {e:#}");
                Err(DbError::Unavailable(UNAVAILABLE.into()))
            }
            Ok(Err(e)) if is_timeout(&e) => Err(DbError::Busy(format!("{e:#}"))),
            Ok(Err(e)) => Err(DbError::Failed(e)),
            Err(e) => Err(DbError::Failed(anyhow::anyhow!("a query panicked: {e}"))),
        }
    }
}

/// What a request is told while the index's server is away (the log says why).
const UNAVAILABLE: &str = "the index is unavailable for now; try again shortly";

/// Did the statement time limit stop this query (SQLite's interrupt, PostgreSQL's
/// `statement_timeout`)?
fn is_timeout(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}").to_ascii_lowercase();
    text.contains("too long") || text.contains("statement timeout") || text.contains("interrupted")
}

#[cfg(test)]
mod tests {
    use super::*;
    use estudely_store::sqlite::fixtures;

    /// A request cancelled while its query runs (its client went away) leaves the
    /// connection counted until the query ends: with one connection, the next request
    /// finds it busy rather than opening a second one beside the query still running.
    #[test]
    fn a_cancelled_request_keeps_its_connection_until_its_query_ends() {
        let (dir, store) = fixtures::open();
        drop(store);
        let url = DbUrl::Sqlite(dir.path().join("test.sqlite"));
        let wait = Duration::from_millis(100);
        let pool = Arc::new(Pool::new(url, 1, Duration::from_secs(3), wait));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (started, has_started) = std::sync::mpsc::channel();
            let (release, released) = std::sync::mpsc::channel::<()>();
            let request = tokio::spawn({
                let pool = Arc::clone(&pool);
                async move {
                    pool.run(move |_| {
                        started.send(()).unwrap();
                        let _ = released.recv();
                        Ok(())
                    })
                    .await
                }
            });
            tokio::task::spawn_blocking(move || has_started.recv().unwrap())
                .await
                .unwrap();
            request.abort();
            assert!(request.await.unwrap_err().is_cancelled());
            match pool.run(|_| Ok(())).await {
                Err(DbError::Busy(why)) => assert!(why.contains("busy"), "{why}"),
                other => panic!("a second query ran beside the first: {:?}", other.err()),
            }
            release.send(()).unwrap();
            // Once the query has ended, its connection serves the next request.
            loop {
                match pool.run(|_| Ok(())).await {
                    Ok(()) => break,
                    Err(DbError::Busy(_)) => continue,
                    Err(e) => panic!("{e}"),
                }
            }
        });
    }
}
