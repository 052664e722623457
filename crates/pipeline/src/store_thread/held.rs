//! The crawl side while the index is away (see `conn.rs`): the store thread reads no
//! request, so its bounded queue fills, and a crawl that waited for room there would stop
//! its whole tokio thread: the DHT node would stop answering queries (impolite, and other
//! nodes drop it from their tables) and no fetch would make progress.
//!
//! So while [`IndexStatus`](super::IndexStatus) says the index is away, nothing waits for
//! it:
//!
//! - new fetches wait: claims are held on the crawl side (bounded by the fetch backlog),
//!   and once [`CLAIMS_WHILE_AWAY`] wait, new infohashes are not searched at all (the
//!   crawl goes on sampling and answering; those infohashes are counted and lost for this
//!   run, since the crawler reports an infohash once);
//! - what was fetched (torrents), re-scrape results and the other requests that matter are
//!   held here, in order, up to [`HELD_BYTES`] / [`HELD_REQUESTS`], and sent first once
//!   the index is back; beyond that the crawl waits, as for a slow index (the last resort);
//! - what can be done without is dropped and counted: "is it known?" questions (the
//!   claim decides anyway), lease releases (a lease expires by itself), saves of good
//!   nodes (the next one comes), sightings of new (infohash, address) pairs once the
//!   outbox is full (the ones it holds go on being summed), as counters are.

use std::collections::VecDeque;

use super::Req;

/// Most bytes of requests held (torrents with their file lists, mostly).
pub const HELD_BYTES: usize = 64 << 20;
/// Most requests held.
pub const HELD_REQUESTS: usize = 65_536;
/// Claims held on the crawl side beyond which, while the index is away, no new infohash
/// is searched.
pub const CLAIMS_WHILE_AWAY: usize = 4_096;

/// What the crawl side held or dropped while the index was away.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AwayCounts {
    /// Requests held now.
    pub held: usize,
    /// Their bytes (estimated).
    pub held_bytes: usize,
    /// The most requests ever held.
    pub most_held: usize,
    /// The most bytes ever held.
    pub most_held_bytes: usize,
    /// Sightings not recorded (new pairs with the outbox full).
    pub sightings_dropped: u64,
    /// "Is it known?" questions not asked.
    pub lookups_dropped: u64,
    /// Lease releases not sent (the leases expire).
    pub releases_dropped: u64,
    /// Saves of good nodes skipped.
    pub node_saves_dropped: u64,
    /// New infohashes not searched (too many claims waiting).
    pub not_searched: u64,
}

/// Requests held in order, with their estimated sizes.
#[derive(Default)]
pub(crate) struct Held {
    reqs: VecDeque<(Req, usize)>,
    pub(crate) counts: AwayCounts,
}

impl Held {
    /// Hold `req`, or drop it if it can be done without. `Err(req)` when full.
    pub(crate) fn keep(&mut self, req: Req) -> Result<(), Req> {
        match req {
            Req::Check(keys) => self.counts.lookups_dropped += keys.len() as u64,
            Req::Release(_) => self.counts.releases_dropped += 1,
            Req::SaveNodes(_) => self.counts.node_saves_dropped += 1,
            req => {
                let size = size_of(&req);
                let full = self.counts.held >= HELD_REQUESTS
                    || (self.counts.held > 0 && self.counts.held_bytes + size > HELD_BYTES);
                if full {
                    return Err(req);
                }
                self.reqs.push_back((req, size));
                self.counted(1, size as isize);
            }
        }
        Ok(())
    }

    /// The oldest request held.
    pub(crate) fn pop(&mut self) -> Option<Req> {
        let (req, size) = self.reqs.pop_front()?;
        self.counted(-1, -(size as isize));
        Some(req)
    }

    /// Put back `req`, just taken by [`Held::pop`], first in line.
    pub(crate) fn unpop(&mut self, req: Req) {
        let size = size_of(&req);
        self.reqs.push_front((req, size));
        self.counted(1, size as isize);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    fn counted(&mut self, n: isize, bytes: isize) {
        let c = &mut self.counts;
        c.held = c.held.saturating_add_signed(n);
        c.held_bytes = c.held_bytes.saturating_add_signed(bytes);
        c.most_held = c.most_held.max(c.held);
        c.most_held_bytes = c.most_held_bytes.max(c.held_bytes);
    }
}

/// About the bytes `req` holds: its own and those of what it points to.
fn size_of(req: &Req) -> usize {
    let heap = match req {
        Req::Torrent(t) => {
            let files: usize = t
                .files
                .iter()
                .map(|f| {
                    std::mem::size_of_val(f)
                        + f.path
                            .iter()
                            .map(|p| p.len() + std::mem::size_of::<Vec<u8>>())
                            .sum::<usize>()
                })
                .sum();
            std::mem::size_of_val(&**t) + t.name.len() + files
        }
        Req::Sightings(v) => std::mem::size_of_val(&v[..]),
        Req::Counters(v) => v.iter().map(|(n, _)| n.len() + 32).sum(),
        Req::Check(v) => std::mem::size_of_val(&v[..]),
        Req::Claims(jobs, _) => jobs
            .iter()
            .map(|j| std::mem::size_of_val(j) + std::mem::size_of_val(&j.peers[..]))
            .sum(),
        Req::SaveNodes(v) => std::mem::size_of_val(&v[..]),
        Req::Release(_) | Req::Flush(_) | Req::Stale(..) | Req::Estimate(_) => 0,
    };
    std::mem::size_of::<Req>() + heap
}

#[cfg(test)]
mod tests {
    use super::*;
    use estudely_krpc::InfoHash;
    use estudely_store::sqlite::fixtures::torrent;

    #[test]
    fn what_matters_is_held_in_order_and_the_rest_dropped() {
        let mut h = Held::default();
        let big = |i: u8| {
            let mut t = torrent(i, b"name", 1);
            t.files[0].path = vec![vec![b'x'; 4 << 20]];
            Req::Torrent(Box::new(t))
        };
        assert!(h.keep(big(1)).is_ok());
        assert!(h.keep(Req::Check(vec![InfoHash([1; 20]); 3])).is_ok());
        assert!(h.keep(Req::Release(InfoHash([1; 20]))).is_ok());
        assert!(h.keep(Req::SaveNodes(vec![])).is_ok());
        assert!(h.keep(Req::Stale(1, 2)).is_ok());
        assert_eq!(
            h.counts.held, 2,
            "the torrent and the question for stale keys"
        );
        assert_eq!(
            (
                h.counts.lookups_dropped,
                h.counts.releases_dropped,
                h.counts.node_saves_dropped
            ),
            (3, 1, 1)
        );
        assert!(h.counts.held_bytes > 4 << 20);
        // Up to the byte cap, then the caller waits.
        let mut kept = 1;
        let refused = loop {
            match h.keep(big(2)) {
                Ok(()) => kept += 1,
                Err(req) => break req,
            }
        };
        assert!(matches!(refused, Req::Torrent(_)));
        assert_eq!(kept, HELD_BYTES / (4 << 20) - 1, "4 MiB each, under 64 MiB");
        assert!(h.counts.held_bytes <= HELD_BYTES);
        // In order.
        assert!(matches!(h.pop(), Some(Req::Torrent(t)) if t.info_hash == InfoHash([1; 20])));
        assert!(matches!(h.pop(), Some(Req::Stale(1, 2))));
        let next = h.pop().unwrap();
        h.unpop(next);
        while h.pop().is_some() {}
        assert!(h.is_empty());
        assert_eq!((h.counts.held, h.counts.held_bytes), (0, 0));
        assert_eq!(h.counts.most_held, kept + 1);
    }
}
