//! Read-only index connections for the web server: a small pool, each query on tokio's
//! blocking pool (the store clients block), each connection with a statement time limit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::store::{DbUrl, Store};

/// Why a request's query failed.
#[derive(Debug)]
pub enum DbError {
    /// The query ran out of time, or every connection stayed busy too long.
    Busy(String),
    /// Anything else (the message is for the log, not the page).
    Failed(anyhow::Error),
}

/// Connections to one index, opened read-only on demand, at most `max` at once.
pub struct Pool {
    url: DbUrl,
    idle: Mutex<Vec<Box<dyn Store>>>,
    permits: Semaphore,
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
            permits: Semaphore::new(max.max(1)),
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
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Store) -> anyhow::Result<T> + Send + 'static,
    {
        let permit = tokio::time::timeout(self.wait, self.permits.acquire())
            .await
            .map_err(|_| DbError::Busy("every database connection is busy".into()))?
            .map_err(|e| DbError::Failed(e.into()))?;
        let pool = Arc::clone(self);
        let out = tokio::task::spawn_blocking(move || {
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
        drop(permit);
        match out {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if is_timeout(&e) => Err(DbError::Busy(format!("{e:#}"))),
            Ok(Err(e)) => Err(DbError::Failed(e)),
            Err(e) => Err(DbError::Failed(anyhow::anyhow!("a query panicked: {e}"))),
        }
    }
}

/// Did the statement time limit stop this query (SQLite's interrupt, PostgreSQL's
/// `statement_timeout`)?
fn is_timeout(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}").to_ascii_lowercase();
    text.contains("too long") || text.contains("statement timeout") || text.contains("interrupted")
}
