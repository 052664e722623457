//! Swarm estimates kept fresh: the re-scrape results of a [`Batch`](crate::Batch) written,
//! and the torrents due for a re-scrape read (the lowest `scraped_at` first, through the
//! `torrents_scraped_at` index).

use estudely_krpc::InfoHash;
use rusqlite::{params, Connection, Transaction};

use crate::Estimate;

/// Raise `scraped_at`; replace each figure received, and then `estimated_at` (see
/// [`Estimate`]).
const UPDATE_ESTIMATE: &str = "UPDATE torrents SET
        seeds_estimate = coalesce(?2, seeds_estimate),
        peers_estimate = coalesce(?3, peers_estimate),
        estimated_at = CASE WHEN ?2 IS NULL AND ?3 IS NULL THEN estimated_at ELSE ?4 END,
        scraped_at = max(scraped_at, ?4)
    WHERE info_hash = ?1";

const STALE: &str =
    "SELECT info_hash FROM torrents WHERE scraped_at < ?1 ORDER BY scraped_at LIMIT ?2";

/// Write re-scrape results inside `tx`.
pub fn write(tx: &Transaction<'_>, estimates: &[Estimate]) -> rusqlite::Result<()> {
    if estimates.is_empty() {
        return Ok(());
    }
    let mut stmt = tx.prepare_cached(UPDATE_ESTIMATE)?;
    for e in estimates {
        stmt.execute(params![e.info_hash.as_bytes(), e.seeds, e.peers, e.at])?;
    }
    Ok(())
}

/// Up to `limit` keys last scraped before `before`, the lowest `scraped_at` first.
pub fn stale(conn: &Connection, before: i64, limit: usize) -> anyhow::Result<Vec<InfoHash>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(STALE)?;
    let rows = stmt.query_map(params![before, limit], |r| r.get::<_, Vec<u8>>(0))?;
    let mut out = Vec::new();
    for key in rows {
        let key = key?;
        let key = <[u8; 20]>::try_from(key)
            .map_err(|k| anyhow::anyhow!("corrupt index: an info_hash of {} bytes", k.len()))?;
        out.push(InfoHash(key));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{open, torrent};
    use super::super::SqliteStore;
    use crate::{Batch, Estimate, Store};
    use estudely_krpc::InfoHash;

    fn key(k: u8) -> InfoHash {
        InfoHash([k; 20])
    }

    fn estimate(k: u8, seeds: Option<u32>, peers: Option<u32>, at: i64) -> Estimate {
        Estimate {
            info_hash: key(k),
            seeds,
            peers,
            at,
        }
    }

    fn write(s: &mut SqliteStore, batch: Batch) {
        s.write("t", &batch).unwrap();
    }

    fn figures(s: &mut SqliteStore, k: u8) -> (Option<u32>, Option<u32>, Option<i64>) {
        let t = s.torrent(&key(k)).unwrap().unwrap();
        (
            t.torrent.seeds_estimate,
            t.torrent.peers_estimate,
            t.estimated_at,
        )
    }

    /// Never scraped first (stored without estimates), then the longest ago; re-scraped
    /// ones go to the back; `before` leaves out the recent ones.
    #[test]
    fn the_stalest_come_first_and_a_rescrape_sends_a_torrent_to_the_back() {
        let (_dir, mut s) = open();
        let mut with = torrent(1, b"with estimates", 100);
        with.seeds_estimate = Some(5);
        with.peers_estimate = Some(2);
        let mut later = torrent(2, b"with later estimates", 200);
        later.seeds_estimate = Some(1);
        let without = torrent(3, b"without", 300);
        write(
            &mut s,
            Batch {
                torrents: vec![later, without, with],
                ..Batch::default()
            },
        );
        assert_eq!(figures(&mut s, 1), (Some(5), Some(2), Some(100)));
        assert_eq!(figures(&mut s, 3), (None, None, None));
        assert_eq!(
            s.stale_estimates(1_000, 10).unwrap(),
            [key(3), key(1), key(2)]
        );
        assert_eq!(s.stale_estimates(1_000, 2).unwrap(), [key(3), key(1)]);
        assert_eq!(s.stale_estimates(150, 10).unwrap(), [key(3), key(1)]);
        assert!(s.stale_estimates(0, 10).unwrap().is_empty());
        // Torrent 3 re-scraped at 500: answered; 1 at 600: nobody sent a filter.
        write(
            &mut s,
            Batch {
                estimates: vec![
                    estimate(3, Some(7), Some(0), 500),
                    estimate(1, None, None, 600),
                    estimate(9, Some(1), None, 600),
                ],
                ..Batch::default()
            },
        );
        assert_eq!(figures(&mut s, 3), (Some(7), Some(0), Some(500)));
        assert_eq!(
            figures(&mut s, 1),
            (Some(5), Some(2), Some(100)),
            "an empty re-scrape erases nothing"
        );
        assert_eq!(
            s.stale_estimates(1_000, 10).unwrap(),
            [key(2), key(3), key(1)]
        );
        // A seed filter alone: the seeds are new, the peers kept; an older result never
        // lowers scraped_at.
        write(
            &mut s,
            Batch {
                estimates: vec![
                    estimate(1, Some(9), None, 700),
                    estimate(2, Some(3), None, 50),
                ],
                ..Batch::default()
            },
        );
        assert_eq!(figures(&mut s, 1), (Some(9), Some(2), Some(700)));
        assert_eq!(
            s.stale_estimates(1_000, 10).unwrap(),
            [key(2), key(3), key(1)]
        );
    }
}
