//! What the crawler makes of a node's reply: the nodes it lists (admitted, learned,
//! discovered within the shard) and its BEP 51 samples (checked for lies, reported once).

use std::net::SocketAddr;
use std::time::Duration;
use std::time::Instant;

use estudely_krpc::{CompactNode, InfoHash, NodeId, Response, Version};

use super::{CrawlEvent, Crawler, Discovery, MAX_SAMPLES_PER_REPLY};

impl Crawler {
    /// Whether `ih` is reported for the first time: `Some(true)` yes, `Some(false)` no, `None`
    /// the seen-set is full and sampling stops (unless `forget_seen_when_full`, which starts
    /// a new generation instead).
    pub(super) fn first_report(&mut self, ih: &InfoHash) -> Option<bool> {
        match self.seen.insert(ih) {
            Some(new) => Some(new),
            None if self.cfg.forget_seen_when_full => {
                self.seen.clear();
                self.stats.seen_generations += 1;
                self.seen.insert(ih)
            }
            None => {
                // Full: stop sampling rather than forget what was reported.
                self.stats.seen_full = true;
                None
            }
        }
    }

    /// `addr` does not speak BEP 51: walked again every `rewalk`, never sampled; or, when
    /// the known-node table is crowded, left to rest for the longest interval.
    pub(super) fn no_bep51(&mut self, now: Instant, addr: SocketAddr) {
        if let Some(k) = self.known.get_mut(&addr) {
            k.bep51 = Some(false);
        }
        if !self
            .known
            .rest_if_crowded(now, addr, now + self.cfg.max_interval)
        {
            self.known
                .schedule(addr, now + self.cfg.rewalk.max(self.cfg.min_resample));
        }
    }

    /// The nodes of a reply that we may use: our families, not us, allowed by the policy
    /// (refusals counted), not dead; written into `out` (cleared first, its room reused).
    pub(super) fn admitted_nodes(&mut self, r: &Response, out: &mut Vec<CompactNode>) {
        let me = self.node.id();
        let (v4, v6) = (self.node.config.ipv4, self.node.config.ipv6);
        out.clear();
        for n in r
            .nodes
            .iter()
            .filter(|_| v4)
            .chain(r.nodes6.iter().filter(|_| v6))
        {
            if n.id != me && self.node.admit(&n.addr) && !self.node.is_dead(&n.addr) {
                out.push(*n);
            }
        }
        self.stats.nodes_listed += out.len() as u64;
    }

    /// A node answered: note its id (discovering it if it was a bootstrap address).
    pub(super) fn learn(&mut self, now: Instant, addr: SocketAddr, r: &Response) {
        match self.known.get_mut(&addr) {
            Some(k) => k.id = r.id,
            None => self.discover(now, addr, r.id),
        }
    }

    pub(super) fn discover(&mut self, now: Instant, addr: SocketAddr, id: NodeId) {
        if !self.cfg.shard.contains(&id.0) {
            self.stats.nodes_other_shard += 1;
            return;
        }
        match self.known.discover(now, addr, id) {
            Discovery::New | Discovery::Known => {}
            Discovery::Resting => self.stats.nodes_resting += 1,
            Discovery::Distrusted => self.stats.nodes_distrusted += 1,
            Discovery::Full | Discovery::FrontierFull => self.stats.nodes_refused += 1,
        }
    }

    pub(super) fn add_nodes(&mut self, now: Instant, nodes: &[CompactNode]) {
        for n in nodes {
            self.discover(now, n.addr, n.id);
        }
    }

    /// Report `addr`'s first usable reply to `sample_infohashes` (once per known node).
    pub(super) fn node_sampled(
        &mut self,
        addr: SocketAddr,
        version: Option<Version>,
        interval: Option<u32>,
    ) {
        let Some(k) = self.known.get_mut(&addr) else {
            return;
        };
        if !k.sampled {
            k.sampled = true;
            self.events.push_back(CrawlEvent::NodeSampled {
                from: addr,
                // Once per node: the event keeps its own copy.
                version: version.map(|v| v.to_vec()),
                interval,
            });
        }
    }

    pub(super) fn on_sample(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        r: &Response,
        version: Option<Version>,
        nodes: &mut Vec<CompactNode>,
    ) {
        self.admitted_nodes(r, nodes);
        self.learn(now, addr, r);
        self.add_nodes(now, nodes);
        let Some(interval) = r.interval else {
            self.node_sampled(addr, version, None);
            // Answered, but not with BEP 51 fields: treat as a node without BEP 51.
            self.no_bep51(now, addr);
            return;
        };
        let wait = Duration::from_secs(u64::from(interval))
            .clamp(self.cfg.min_resample, self.cfg.max_interval);
        if let Some(k) = self.known.get_mut(&addr) {
            k.bep51 = Some(true);
            k.failed_samples = 0;
            k.interval_secs = u32::try_from(wait.as_secs()).unwrap_or(u32::MAX);
            k.rest_until = Some(now + wait);
        }
        // A node cannot sample more infohashes than it says it stores, nor repeat one, nor
        // send more than a datagram holds.
        let mut distinct = r.samples.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let lies = r.num.is_some_and(|n| (n as usize) < r.samples.len())
            || distinct.len() != r.samples.len()
            || r.samples.len() > MAX_SAMPLES_PER_REPLY;
        if lies {
            self.stats.lies += 1;
            self.known.schedule(addr, now + wait);
            return;
        }
        self.node_sampled(addr, version, Some(interval));
        self.known.schedule_after_sample(now, addr, now + wait);
        self.stats.samples_answered += 1;
        if self.stats.walks_before_first_sample.is_none() {
            self.stats.walks_before_first_sample = Some(self.stats.find_nodes_sent);
        }
        for &ih in &r.samples {
            if self.sampling_done() {
                break;
            }
            match self.first_report(&ih) {
                Some(false) => continue,
                None => break,
                Some(true) => {}
            }
            self.found += 1;
            self.events.push_back(CrawlEvent::InfoHash {
                info_hash: ih,
                from: addr,
                announced: false,
            });
            if self.cfg.search_peers {
                self.enqueue_search(ih, addr, None);
            }
        }
    }
}
