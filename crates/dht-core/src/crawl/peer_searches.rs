//! The crawler's peer searches: started from the routing table, tried once more when
//! inconclusive, reported when done, cancelled or continued on request; and the re-scrapes
//! of known torrents that the caller asks for.

use std::net::SocketAddr;
use std::time::Instant;

use estudely_krpc::InfoHash;

use super::{CrawlEvent, Crawler, NextNodes, Search};

/// A search that found no peer is tried once more only if fewer nodes than this answered it
/// (half the 8 closest that a lookup trusts): otherwise "no peers" is its answer.
const RETRY_BELOW_ANSWERS: usize = 4;

impl Crawler {
    /// Stop the peer search of `ih`, queued or running, without a
    /// [`CrawlEvent::SearchDone`] (the caller already knows it: e.g. its torrent is in an
    /// index). Returns whether there was one. A re-scrape ([`Crawler::scrape`]) is not
    /// stopped: while it waits or runs, a new discovery of `ih` gets no search at all.
    pub fn cancel_search(&mut self, ih: &InfoHash) -> bool {
        if self.scraping.contains_key(ih) {
            return false;
        }
        self.resuming.remove(ih);
        let cancelled = self.searches.cancel(ih);
        self.stats.searches_cancelled += u64::from(cancelled);
        cancelled
    }

    /// Continue the search of `ih`, which stopped at enough peers for a fetch
    /// ([`CrawlConfig::peers_for_fetch`](super::CrawlConfig::peers_for_fetch)) that then
    /// failed on every one of them (`tried`): queued like a new search from `from` (the node
    /// that sampled it, not asked again), starting at `next` (the `next_nodes` of its
    /// [`CrawlEvent::SearchDone`]) and the routing table's nodes closest to it, it looks for
    /// up to `peers_per_infohash` peers in all, reports the new ones with [`CrawlEvent::Peer`] and ends with a second
    /// [`CrawlEvent::SearchDone`]. Once per infohash is the caller's to keep. False, and
    /// nothing happens: its search still runs or a resume waits, `tried` already holds
    /// `peers_per_infohash` peers, or the search queue is full.
    pub fn resume_search(
        &mut self,
        now: Instant,
        ih: InfoHash,
        from: SocketAddr,
        tried: &[SocketAddr],
        next: NextNodes,
    ) -> bool {
        if !self.cfg.search_peers
            || tried.len() >= self.cfg.peers_per_infohash
            || self.resuming.contains_key(&ih)
            || self.scraping.contains_key(&ih)
            || self.searches.is_running(&ih)
            || self.searches.queued() >= self.cfg.max_search_queue
        {
            return false;
        }
        self.resuming.insert(ih, (tried.to_vec(), next));
        self.searches.enqueue((ih, from, None));
        self.stats.searches_resumed += 1;
        // Started now if a slot is free: no event may come to start it (the crawl may be
        // otherwise idle).
        self.pump(now);
        true
    }

    /// Re-scrape `ih`, a torrent the caller knows, for fresh BEP 33 estimates: a search
    /// queued like the others (same query rate limit and per-IP budgets), from the nodes of
    /// our routing table closest to `ih`, each asked `get_peers` with `scrape=1`, at most
    /// [`CrawlConfig::max_scrape_queries`](super::CrawlConfig::max_scrape_queries) of them
    /// answering; no peer is reported, and it ends with a [`CrawlEvent::ScrapeDone`].
    /// False, and nothing happens: [`CrawlConfig::max_scrapes`](super::CrawlConfig::max_scrapes)
    /// re-scrapes are queued or running, `ih`'s search (or re-scrape) runs or waits (to
    /// start, or to be continued), the search queue is full, or the routing table is empty.
    pub fn scrape(&mut self, now: Instant, ih: InfoHash) -> bool {
        if self.scraping.len() >= self.cfg.max_scrapes
            || self.scraping.contains_key(&ih)
            || self.resuming.contains_key(&ih)
            || self.searches.is_running(&ih)
            || self.searches.queued() >= self.cfg.max_search_queue
            || self.searches.is_queued(&ih)
        {
            return false;
        }
        let Some(first) = self.closest_known(now, &ih) else {
            return false;
        };
        self.scraping.insert(ih, false);
        self.searches.enqueue((ih, first, None));
        self.stats.scrapes += 1;
        // Started now if a slot is free (the crawl may be otherwise idle).
        self.pump(now);
        true
    }

    /// Our routing table's nodes closest to `ih` (into `scratch_nodes`), from the IPv4
    /// table, or the IPv6 one when the other is empty or off; the closest of them.
    fn closest_known(&mut self, now: Instant, ih: &InfoHash) -> Option<SocketAddr> {
        let mut known = std::mem::take(&mut self.scratch_nodes);
        known.clear();
        for v6 in [false, true] {
            let on = if v6 {
                self.node.config.ipv6
            } else {
                self.node.config.ipv4
            };
            if on && known.is_empty() {
                self.node.closest_nodes_into(&ih.0, 8, v6, now, &mut known);
            }
        }
        let first = known.first().map(|n| n.addr);
        self.scratch_nodes = known;
        first
    }

    pub(super) fn start_search(
        &mut self,
        now: Instant,
        ih: InfoHash,
        from: SocketAddr,
        known_peer: Option<SocketAddr>,
    ) {
        let scrape = match self.scraping.get_mut(&ih) {
            Some(started @ false) => {
                *started = true;
                true
            }
            Some(true) => {
                // A second entry while its re-scrape runs (never: `scrape` refuses a queued
                // infohash, `enqueue_search` queues none being re-scraped): no search.
                self.events.push_back(super::unsearched(ih, known_peer));
                return;
            }
            None => false,
        };
        if scrape {
            self.start_scrape(now, ih);
            return;
        }
        let mut known = std::mem::take(&mut self.scratch_nodes);
        self.node
            .closest_nodes_into(&ih.0, 8, from.is_ipv6(), now, &mut known);
        let (wanted, max_queries) = (
            self.cfg.peers_per_infohash,
            self.cfg.max_get_peers_per_infohash,
        );
        let parts = self.search_pool.take();
        let mut s = match self.resuming.remove(&ih) {
            Some((tried, next)) => {
                known.extend(next.iter().flatten());
                Search::resumed(parts, ih, from, &known, &tried, wanted, max_queries)
            }
            None => Search::with_parts(parts, ih, from, &known, wanted, max_queries)
                .stop_at(self.cfg.peers_for_fetch),
        };
        self.scratch_nodes = known;
        if let Some(p) = known_peer {
            s.add_known_peer(p);
        }
        self.searches.start(s);
    }

    /// Start the re-scrape of `ih` from the routing table as it is now.
    fn start_scrape(&mut self, now: Instant, ih: InfoHash) {
        self.closest_known(now, &ih);
        let parts = self.search_pool.take();
        match Search::scrape(parts, ih, &self.scratch_nodes, self.cfg.max_scrape_queries) {
            Some(s) => self.searches.start(s),
            None => {
                // The table emptied since it was queued: it ends at once, empty-handed.
                self.scraping.remove(&ih);
                self.events
                    .push_back(scrape_done(ih, 0, 0, 0, (None, None)));
            }
        }
    }

    /// Report the searches that ended; true if one was started again.
    pub(super) fn finish_searches(&mut self, now: Instant) -> bool {
        let mut restarted = false;
        let mut done = std::mem::take(&mut self.scratch_done);
        self.searches.take_done_into(&mut done);
        for s in done.drain(..) {
            let ih = s.info_hash;
            if s.is_scrape() {
                self.scraping.remove(&ih);
                let figures = (s.queries(), s.answers(), s.filters(), s.estimates());
                self.events
                    .push_back(scrape_done(ih, figures.0, figures.1, figures.2, figures.3));
                self.search_pool.put(s.into_parts());
                continue;
            }
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
            self.stats.searches_stopped_early += u64::from(s.stopped_early());
            let (seeds_estimate, peers_estimate) = s.estimates();
            self.events.push_back(CrawlEvent::SearchDone {
                info_hash: ih,
                peers: s.peers().len(),
                queries: s.queries(),
                seeds_estimate,
                peers_estimate,
                next_nodes: if s.stopped_early() {
                    s.next_nodes()
                } else {
                    NextNodes::default()
                },
            });
            self.search_pool.put(s.into_parts());
        }
        self.scratch_done = done;
        restarted
    }
}

/// The end of a re-scrape.
fn scrape_done(
    info_hash: InfoHash,
    queries: usize,
    answers: usize,
    filters: usize,
    (seeds_estimate, peers_estimate): (Option<u32>, Option<u32>),
) -> CrawlEvent {
    CrawlEvent::ScrapeDone {
        info_hash,
        queries,
        answers,
        filters,
        seeds_estimate,
        peers_estimate,
    }
}
