//! A batch written again after a lost connection must not count twice.
//!
//! When the connection drops during `COMMIT`, the client cannot know whether the server
//! committed: the acknowledgement may be all that was lost. Torrents are inserted with
//! `ON CONFLICT DO NOTHING`, but sighting counts and counters are added (`count = count +
//! EXCLUDED.count`), so writing such a batch again would count it twice. Each batch
//! therefore notes its transaction id (`txid_current()`, 64 bits with the epoch, so it never
//! wraps); after reconnecting, `txid_status()` tells whether that transaction committed
//! (PostgreSQL 10 and later), and the batch is skipped if it did.

use std::time::Duration;

use super::client::{Client, Transaction};

use crate::Unreachable;

/// The id of the transaction `tx` (assigned now if it had none).
pub fn xid(tx: &mut Transaction<'_>) -> Result<i64, super::client::Error> {
    tx.query_one("SELECT txid_current()", &[])?.try_get(0)
}

/// Times the status of a transaction still in progress is asked again, a little apart,
/// before giving up for now.
const IN_PROGRESS_ASKS: u32 = 20;

/// Did transaction `xid` commit? Asked over a new connection after the one that ran it was
/// lost. A transaction the server no longer knows (`NULL`: too old to be asked) counts as
/// not committed; one still in progress (its backend has not yet noticed that the client
/// is gone) is asked again for a second, then reported as [`Unreachable`], so that the
/// caller tries again later.
pub fn lost_commit(client: &mut Client, xid: i64) -> anyhow::Result<bool> {
    for _ in 0..IN_PROGRESS_ASKS {
        let status: Option<String> = client
            .query_one("SELECT txid_status($1)", &[&xid])?
            .try_get(0)?;
        match status.as_deref() {
            Some("committed") => return Ok(true),
            Some("in progress") => std::thread::sleep(Duration::from_millis(50)),
            _ => return Ok(false),
        }
    }
    Err(Unreachable(format!(
        "the transaction of a batch whose commit was lost ({xid}) is still in progress"
    ))
    .into())
}
