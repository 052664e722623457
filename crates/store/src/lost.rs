//! Is an index error a lost connection (the server went away, restarted, or refuses
//! connections for a while) rather than a fault of the query or the data?
//!
//! Callers that live longer than a server restart (`run`'s store thread, the web server's
//! pool) keep going through the first kind: they reconnect ([`crate::Store::reconnect`])
//! and try again. Everything else (a constraint broken, a full disk, a bad schema version,
//! a wrong password) is an error to report, as it always was. SQLite has no connection
//! to lose: none of its errors is one.

use std::error::Error as StdError;
use std::io;

/// The index's server cannot be reached right now: retry after reconnecting.
///
/// Also raised by the PostgreSQL store when a batch whose commit was never acknowledged is
/// written again while its transaction is still in progress on the server: its fate is
/// not known yet, so it is asked again later (see [`crate::Store::write`]).
#[derive(Debug)]
pub struct Unreachable(pub String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Unreachable {}

/// Whether `e` (anywhere in its chain) says the connection to the index was lost or could
/// not be made for a reason that may pass: closed, reset or refused, a socket that is not
/// there (the server is stopped), PostgreSQL shutting down or starting up
/// (`57P01`–`57P03`), or any error of SQLSTATE class `08` (connection exception).
pub fn connection_lost(e: &anyhow::Error) -> bool {
    e.chain().any(cause_is_lost)
}

fn cause_is_lost(cause: &(dyn StdError + 'static)) -> bool {
    if cause.is::<Unreachable>() {
        return true;
    }
    if let Some(io) = cause.downcast_ref::<io::Error>() {
        return io_is_lost(io);
    }
    #[cfg(feature = "postgres")]
    if let Some(pg) = cause.downcast_ref::<crate::postgres::client::Error>() {
        return pg_is_lost(pg);
    }
    false
}

/// The I/O errors of a connection that went away or cannot be made now.
fn io_is_lost(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | NotConnected
            | BrokenPipe
            | UnexpectedEof
            | TimedOut
            // A unix socket that is not there: the server is stopped.
            | NotFound
            | AddrNotAvailable
            | HostUnreachable
            | NetworkUnreachable
            | NetworkDown
    )
}

/// [`connection_lost`] for one PostgreSQL error.
#[cfg(feature = "postgres")]
pub(crate) fn pg_is_lost(e: &crate::postgres::client::Error) -> bool {
    use crate::postgres::client::SqlState;
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        return code.code().starts_with("08")
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
            ]
            .contains(code);
    }
    // The client's own kinds are private: a timeout waiting for the server has no cause,
    // a failed connect or a broken socket has an I/O cause (checked above, as the next
    // link of the chain, and here for callers that pass the error alone).
    let text = e.to_string();
    text.starts_with("timeout waiting for server")
        || e.source()
            .and_then(|s| s.downcast_ref::<io::Error>())
            .is_some_and(|io| !text.starts_with("error parsing") && io_is_lost(io))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn lost_connections_are_told_from_other_errors() {
        let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
        let e = anyhow::Error::from(refused).context("PostgreSQL index: write");
        assert!(connection_lost(&e));
        let gone = io::Error::new(io::ErrorKind::NotFound, "no socket");
        assert!(connection_lost(&anyhow::Error::from(gone)));
        let e = anyhow::Error::from(Unreachable("commit pending".into())).context("write");
        assert!(connection_lost(&e));

        // A full disk, a permission, a plain message: reported, not retried.
        let full = io::Error::new(io::ErrorKind::StorageFull, "no space left");
        assert!(!connection_lost(&anyhow::Error::from(full)));
        let denied = io::Error::new(io::ErrorKind::PermissionDenied, "denied");
        assert!(!connection_lost(&anyhow::Error::from(denied)));
        let plain: anyhow::Result<()> = Err(anyhow::anyhow!("constraint broken"));
        assert!(!connection_lost(&plain.context("write").unwrap_err()));
    }

    #[test]
    fn sqlite_errors_are_never_lost_connections() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        let e = c.execute("INSERT INTO nothing VALUES (1)", []).unwrap_err();
        assert!(!connection_lost(&anyhow::Error::from(e)));
    }
}
