//! Read-only index connections for the web server: a small pool, each query on tokio's
//! blocking pool (the store clients block), each connection with a statement time limit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use estudely_store::{DbUrl, Store};

/// Why a request's query failed.
#[derive(Debug)]
pub enum DbError {
    /// The query ran out of time, or every connection stayed busy too long.
    Busy(String),
    /// Anything else (the message is for the log, not the page).
    Failed(anyhow::Error),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::Busy(why) => f.write_str(why),
            DbError::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

/// Connections to one index, opened read-only on demand, at most `max` at once.
pub struct Pool {
    url: DbUrl,
    idle: Mutex<Vec<Box<dyn Store>>>,
    /// One per connection; held by the blocking task that uses it, until it ends.
    permits: Arc<Semaphore>,
    statement_timeout: Duration,
    wait: Duration,
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
            .push(store);
    }

    /// Run `f` with a connection, on the blocking pool. A connection whose query failed is
    /// dropped rather than reused (it may be in a bad state).
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
        let permits = Arc::clone(&self.permits);
        let permit = tokio::time::timeout(self.wait, permits.acquire_owned())
            .await
            .map_err(|_| DbError::Busy("every database connection is busy".into()))?
            .map_err(|e| DbError::Failed(e.into()))?;
        let pool = Arc::clone(self);
        let out = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut store = match idle {
                Some(s) => s,
                None => pool.open()?,
            };
            let out = f(store.as_mut());
            if out.is_ok() {
                pool.give_back(store);
            }
            out
        })
        .await;
        match out {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if is_timeout(&e) => Err(DbError::Busy(format!("{e:#}"))),
            Ok(Err(e)) => Err(DbError::Failed(e)),
            Err(e) => Err(DbError::Failed(anyhow::anyhow!("a query panicked: {e}"))),
        }
    }
}

impl Drop for Pool {
    /// Close the idle connections on a thread of their own: PostgreSQL's blocking client
    /// runs a runtime of its own when it closes, which may not happen on a tokio thread.
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|e| e.into_inner()));
        if idle.is_empty() {
            return;
        }
        let _ = std::thread::spawn(move || drop(idle)).join();
    }
}

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
