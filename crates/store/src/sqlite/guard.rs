//! The statement timeout of [`super::SqliteStore`]: a progress handler that interrupts a
//! statement once its deadline has passed.
//!
//! SQLite calls the handler every [`CHECK_OPS`] virtual-machine steps of a running
//! statement. The deadline is set when a store call starts (each read is one statement,
//! or a few short ones), so a statement is measured from the start of its call.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::too_long;

/// Virtual-machine steps between two looks at the clock (a few microseconds of work).
const CHECK_OPS: i32 = 1_000;

/// The timeout of one connection: off until [`Guard::set`].
#[derive(Debug, Default)]
pub struct Guard {
    /// The limit per call, once set.
    limit: Option<Duration>,
    /// When the running call must end; read by the progress handler.
    deadline: Arc<Mutex<Option<Instant>>>,
}

impl Guard {
    /// Abort statements of later calls that run longer than `limit` (at least 1 ms).
    pub fn set(&mut self, conn: &Connection, limit: Duration) {
        self.limit = Some(limit.max(Duration::from_millis(1)));
        let deadline = Arc::clone(&self.deadline);
        conn.progress_handler(
            CHECK_OPS,
            Some(move || {
                let deadline = deadline.lock().map(|d| *d).unwrap_or(None);
                deadline.is_some_and(|d| Instant::now() >= d)
            }),
        );
    }

    /// Start a call: its statements must end within the limit. `false` for a call that is
    /// never limited (the streaming export, whose time is mostly its caller's).
    pub fn start(&self, limited: bool) {
        let deadline = match self.limit {
            Some(limit) if limited => Instant::now().checked_add(limit),
            _ => None,
        };
        if let Ok(mut d) = self.deadline.lock() {
            *d = deadline;
        }
    }

    /// `result`, with an interrupted statement's error replaced by "query took too long".
    pub fn check<T>(&self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        let interrupted = |e: &anyhow::Error| {
            e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<rusqlite::Error>(),
                    Some(rusqlite::Error::SqliteFailure(f, _))
                        if f.code == rusqlite::ErrorCode::OperationInterrupted
                )
            })
        };
        match (result, self.limit) {
            (Err(e), Some(limit)) if interrupted(&e) => Err(too_long(limit)),
            (r, _) => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::open;
    use crate::Store as _;

    use super::*;

    /// Counts to a billion: a statement of minutes.
    const SLOW: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n
        WHERE i < 1000000000) SELECT count(*) FROM n";

    #[test]
    fn a_slow_statement_is_aborted_and_the_connection_lives_on() {
        let (_dir, mut s) = open();
        s.set_statement_timeout(Duration::from_millis(50)).unwrap();
        let e = s
            .guarded(true, |conn| {
                Ok(conn.query_row(SLOW, [], |r| r.get::<_, i64>(0))?)
            })
            .unwrap_err();
        assert!(e.to_string().contains("query took too long"), "{e:#}");
        assert_eq!(s.stats().unwrap().torrents, 0);
        assert!(s.recent(10, 0).unwrap().is_empty());
        // A zero limit is a millisecond: the slow statement still ends.
        s.set_statement_timeout(Duration::ZERO).unwrap();
        let e = s
            .guarded(true, |conn| {
                Ok(conn.query_row(SLOW, [], |r| r.get::<_, i64>(0))?)
            })
            .unwrap_err();
        assert!(e.to_string().contains("query took too long"), "{e:#}");
    }
}
