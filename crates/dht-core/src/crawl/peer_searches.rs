//! The crawler's peer searches: started from the routing table, tried once more when
//! inconclusive, reported when done, cancelled on request.

use std::net::SocketAddr;
use std::time::Instant;

use estudely_krpc::InfoHash;

use super::{CrawlEvent, Crawler, Search};

/// A search that found no peer is tried once more only if fewer nodes than this answered it
/// (half the 8 closest that a lookup trusts): otherwise "no peers" is its answer.
const RETRY_BELOW_ANSWERS: usize = 4;

impl Crawler {
    /// Stop the peer search of `ih`, queued or running, without a
    /// [`CrawlEvent::SearchDone`] (the caller already knows it: e.g. its torrent is in an
    /// index). Returns whether there was one.
    pub fn cancel_search(&mut self, ih: &InfoHash) -> bool {
        let cancelled = self.searches.cancel(ih);
        self.stats.searches_cancelled += u64::from(cancelled);
        cancelled
    }

    pub(super) fn start_search(
        &mut self,
        now: Instant,
        ih: InfoHash,
        from: SocketAddr,
        known_peer: Option<SocketAddr>,
    ) {
        let mut known = std::mem::take(&mut self.scratch_nodes);
        self.node
            .closest_nodes_into(&ih.0, 8, from.is_ipv6(), now, &mut known);
        let mut s = Search::with_parts(
            self.search_pool.take(),
            ih,
            from,
            &known,
            self.cfg.peers_per_infohash,
            self.cfg.max_get_peers_per_infohash,
        );
        self.scratch_nodes = known;
        if let Some(p) = known_peer {
            s.add_known_peer(p);
        }
        self.searches.start(s);
    }

    /// Report the searches that ended; true if one was started again.
    pub(super) fn finish_searches(&mut self, now: Instant) -> bool {
        let mut restarted = false;
        let mut done = std::mem::take(&mut self.scratch_done);
        self.searches.take_done_into(&mut done);
        for s in done.drain(..) {
            let ih = s.info_hash;
            // A search that found nobody and heard from few nodes (often: our routing table
            // was still nearly empty when it started) gets one more try from the table as it
            // is now, in the slot it frees (so retries never grow the queue), asking only
            // nodes not asked before. One that heard "no peers" from enough nodes is taken
            // at its word: most infohashes have no peer, and a second search for each would
            // double their cost and crowd the few table nodes near every infohash.
            if s.peers().is_empty()
                && s.answers() < RETRY_BELOW_ANSWERS
                && !self.retried.contains(&ih)
            {
                self.retried.insert(ih, ());
                let mut known = std::mem::take(&mut self.scratch_nodes);
                self.node
                    .closest_nodes_into(&ih.0, 8, s.first().is_ipv6(), now, &mut known);
                self.searches.start(s.retry(&known));
                self.scratch_nodes = known;
                restarted = true;
                continue;
            }
            let (seeds_estimate, peers_estimate) = s.estimates();
            self.events.push_back(CrawlEvent::SearchDone {
                info_hash: ih,
                peers: s.peers().len(),
                queries: s.queries(),
                seeds_estimate,
                peers_estimate,
            });
            self.search_pool.put(s.into_parts());
        }
        self.scratch_done = done;
        restarted
    }
}
