//! The crawler's configuration, findings and counters.

use std::net::SocketAddr;
use std::time::Duration;

use estudely_krpc::{CompactNode, InfoHash};

use super::Shard;

/// Crawl budgets and bounds. Every field documents its default.
#[derive(Debug, Clone)]
pub struct CrawlConfig {
    /// Stop sampling after this many distinct infohashes; 0 = no limit. Default 20.
    pub max_infohashes: usize,
    /// Distinct peers wanted per infohash. Default 20.
    pub peers_per_infohash: usize,
    /// Stop an infohash's peer search once it has this many peers, enough for a metadata
    /// fetch (at most `peers_per_infohash`; 0: search on to `peers_per_infohash`), asking
    /// the node that sampled it alone first; the caller continues the search with
    /// [`Crawler::resume_search`](super::Crawler::resume_search) where the fetch fails.
    /// Default 0 (`crawl`, which fetches nothing); the pipelines that fetch set 1.
    pub peers_for_fetch: usize,
    /// Most `get_peers` sent per infohash. Default 8.
    pub max_get_peers_per_infohash: usize,
    /// Peer searches running at once. Default 16.
    pub max_concurrent_searches: usize,
    /// Infohashes waiting for a peer search. Sampling pauses while the queue could not take
    /// 20 samples (what libtorrent sends) of every reply in flight, and it never grows past
    /// this: samples beyond it are reported without a search. Default 8,192.
    pub max_search_queue: usize,
    /// Crawler queries in flight at once. Default 32.
    pub max_in_flight: usize,
    /// Shortest gap between two `sample_infohashes` to one node, whatever its `interval`
    /// says (an interval of 0 does not invite hammering). Default 60 s.
    pub min_resample: Duration,
    /// Longest `interval` honoured: BEP 51's maximum. Default 21,600 s.
    pub max_interval: Duration,
    /// How often a node without BEP 51 is walked with `find_node` again. Default 10 min.
    pub rewalk: Duration,
    /// Nodes remembered. A node is never forgotten inside its interval; when full, a node
    /// whose interval has passed makes room, else new nodes are refused. Default 100,000
    /// (about 25 MB).
    pub max_known_nodes: usize,
    /// New nodes waiting for their first visit; beyond this new nodes are refused (they are
    /// found again later). Default 10,000.
    pub max_frontier: usize,
    /// Distinct ids accepted from one IP before its other ids are ignored. Default 4.
    pub max_ids_per_ip: usize,
    /// Infohashes remembered to report each once. When this many are reported, sampling
    /// stops (none is ever reported twice). Fixed memory: 16 bytes each. Default 1,000,000.
    pub max_seen_infohashes: usize,
    /// Report infohashes that other nodes announce to our node (`announce_peer` with a
    /// valid token) as discoveries, with the announcer as a peer. Default `true`.
    pub harvest: bool,
    /// What a full seen-set does: `false` (the default) stops sampling, so that no infohash
    /// is ever reported twice; `true` forgets every infohash and goes on (a new generation:
    /// an infohash may then be reported again, once per generation). For callers that
    /// deduplicate themselves, such as `estudely run` with its index.
    pub forget_seen_when_full: bool,
    /// Routers and nodes to start from. Default none (the CLI resolves its defaults).
    pub bootstrap: Vec<SocketAddr>,
    /// Seconds between attempts to re-bootstrap when no node is known. Default 10 s.
    pub bootstrap_retry: Duration,
    /// The slice of the node-id space this crawler samples (`--shard K/N`): nodes outside
    /// it are used to find others but never sampled, and sample and walk targets lie
    /// inside it. Default the whole keyspace.
    pub shard: Shard,
    /// Run a `get_peers` search for each new infohash. Default `true`; `false` reports
    /// infohashes only (no [`CrawlEvent::Peer`] or [`CrawlEvent::SearchDone`]), as in the
    /// sampling simulation.
    pub search_peers: bool,
    /// Bytes of the fixed-memory filter that remembers nodes resting inside their interval
    /// once the known-node table is half full (see [`super::RestingNodes`]); 0 keeps every
    /// node in the table. At 8 bits per node (about 3 % false positives: nodes skipped,
    /// never asked early), a crawl sending Q queries a second against six-hour intervals
    /// needs about `Q × 21,600` bytes ([`resting_bytes_for_rate`]: 22 MB at 1,000/s).
    /// Default 8 MiB.
    pub max_resting_bytes: usize,
    /// Re-scrapes ([`Crawler::scrape`](super::Crawler::scrape)) queued or running at once;
    /// beyond it `scrape` refuses. Default 16.
    pub max_scrapes: usize,
    /// Most nodes a re-scrape hears from (the queries it sends: twice that at most, on a
    /// lossy path). About the 8 nodes that store an infohash. Default 8.
    pub max_scrape_queries: usize,
}

/// Bytes of resting filter for a crawl sending `rate` queries a second against six-hour
/// intervals: one byte (8 bits) per query of an interval, from 1 MiB to 64 MiB. Fewer than
/// one node rests per query (the rest are walks, repeats and silent nodes), so false
/// positives stay near 3 % or below; and 64 MiB holds a whole DHT's worth of nodes per six
/// hours (25 million at over 20 bits each), which no faster crawl can exceed.
pub fn resting_bytes_for_rate(rate: f64) -> usize {
    ((rate.max(0.0) * 21_600.0) as usize).clamp(1 << 20, 64 << 20)
}

/// Most peer searches a crawl runs at once, at any rate ([`searches_for_rate`]).
pub const MAX_CONCURRENT_SEARCHES: usize = 8_192;

/// Most infohashes queued for a peer search, at any rate ([`search_queue_for_rate`]).
pub const MAX_SEARCH_QUEUE: usize = 65_536;

/// Peer searches at once for a crawl at `rate` queries a second (0: unlimited): half the
/// rate, from 16 (the default, a slow crawl's) to [`MAX_CONCURRENT_SEARCHES`]. A search
/// keeps 1-3 queries in flight and often waits on a per-IP budget, so it takes many to keep
/// a fast rate busy.
pub fn searches_for_rate(rate: f64) -> usize {
    let rate = if rate > 0.0 { rate } else { f64::MAX };
    (rate / 2.0).clamp(16.0, MAX_CONCURRENT_SEARCHES as f64) as usize
}

/// The search queue of a crawl at `rate` queries a second (0: unlimited): about 8 s of
/// queries, from 8,192 (the default: a slow crawl's, where sampling outpaces searching and a
/// longer queue only grows stale) to [`MAX_SEARCH_QUEUE`]. A fast crawl needs it long: the
/// searches of one node's samples all go to that node's few neighbours, whose per-IP budgets
/// let only a couple of them move at once, so the queue must hold the samples of many nodes
/// (about twenty each) to keep thousands of searches busy.
pub fn search_queue_for_rate(rate: f64) -> usize {
    let rate = if rate > 0.0 { rate } else { f64::MAX };
    (rate * 8.0).clamp(8_192.0, MAX_SEARCH_QUEUE as f64) as usize
}

impl Default for CrawlConfig {
    fn default() -> Self {
        CrawlConfig {
            max_infohashes: 20,
            peers_per_infohash: 20,
            peers_for_fetch: 0,
            max_get_peers_per_infohash: 8,
            max_concurrent_searches: 16,
            max_search_queue: 8_192,
            max_in_flight: 32,
            min_resample: Duration::from_secs(60),
            max_interval: Duration::from_secs(21_600),
            rewalk: Duration::from_secs(600),
            max_known_nodes: 100_000,
            max_frontier: 10_000,
            max_ids_per_ip: 4,
            max_seen_infohashes: 1_000_000,
            harvest: true,
            forget_seen_when_full: false,
            bootstrap: Vec::new(),
            bootstrap_retry: Duration::from_secs(10),
            shard: Shard::all(),
            search_peers: true,
            max_resting_bytes: 8 << 20,
            max_scrapes: 16,
            max_scrape_queries: 8,
        }
    }
}

/// Nodes a search that stopped early hands on for its continuation (see
/// [`CrawlEvent::SearchDone`]): two, fixed, so that the event allocates nothing.
pub type NextNodes = [Option<CompactNode>; 2];

/// What the crawler found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrawlEvent {
    /// A new infohash, sampled from `from` (or announced to us by `from`).
    InfoHash {
        /// The infohash (its 20-byte DHT key).
        info_hash: InfoHash,
        /// The node whose sample listed it, or that announced it to our node.
        from: SocketAddr,
        /// True: announced to our node (`announce_peer`); false: sampled.
        announced: bool,
    },
    /// A new peer of an infohash.
    Peer {
        /// The infohash.
        info_hash: InfoHash,
        /// The peer's address.
        peer: SocketAddr,
    },
    /// A node's first reply to `sample_infohashes` that is not a lie (with or without BEP 51
    /// fields); once per known node (a node forgotten and met again may be reported again).
    NodeSampled {
        /// The node.
        from: SocketAddr,
        /// Its client version (KRPC `v`, at most 32 bytes), as sent.
        version: Option<Vec<u8>>,
        /// Its BEP 51 `interval` in seconds; `None` for a reply without BEP 51 fields.
        interval: Option<u32>,
    },
    /// The peer search of an infohash ended.
    SearchDone {
        /// The infohash.
        info_hash: InfoHash,
        /// Distinct peers found.
        peers: usize,
        /// `get_peers` queries it took.
        queries: usize,
        /// BEP 33 estimate of the seeds, from the union of the responding nodes' `BFsd`
        /// filters; `None` when none sent one.
        seeds_estimate: Option<u32>,
        /// BEP 33 estimate of the other peers (`BFpe`); `None` when none sent one.
        peers_estimate: Option<u32>,
        /// The nodes it would have asked next, closest first, when it stopped at enough
        /// peers for a fetch ([`CrawlConfig::peers_for_fetch`]): where to continue it
        /// ([`Crawler::resume_search`](super::Crawler::resume_search)). Often the other
        /// nodes that store the infohash, named by the first.
        next_nodes: NextNodes,
    },
    /// A re-scrape ([`Crawler::scrape`](super::Crawler::scrape)) ended. Never followed by
    /// a [`CrawlEvent::SearchDone`], and it reports no peer.
    ScrapeDone {
        /// The infohash.
        info_hash: InfoHash,
        /// `get_peers` (all with `scrape=1`) it sent.
        queries: usize,
        /// Nodes that answered.
        answers: usize,
        /// Of them, nodes that sent a usable BEP 33 filter.
        filters: usize,
        /// BEP 33 estimate of the seeds (`None`: no node sent a seed filter).
        seeds_estimate: Option<u32>,
        /// BEP 33 estimate of the other peers (`None`: no node sent a peer filter).
        peers_estimate: Option<u32>,
    },
}

/// Counters of a crawl.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrawlStats {
    /// Nodes remembered now.
    pub nodes_known: usize,
    /// Nodes waiting to be visited.
    pub frontier: usize,
    /// `sample_infohashes` sent.
    pub samples_sent: u64,
    /// `sample_infohashes` answered with samples.
    pub samples_answered: u64,
    /// `find_node` sent (fallback walk and bootstrap).
    pub find_nodes_sent: u64,
    /// `get_peers` sent.
    pub get_peers_sent: u64,
    /// Queries that timed out or were refused.
    pub failures: u64,
    /// Replies dropped as lies.
    pub lies: u64,
    /// Node entries in replies that passed the address policy (with repeats): the nodes
    /// the crawl has seen go by.
    pub nodes_listed: u64,
    /// Nodes not remembered because the known-node table or the frontier was full.
    pub nodes_refused: u64,
    /// Nodes ignored because their IP showed too many ids.
    pub nodes_distrusted: u64,
    /// Nodes forgotten after their interval passed, to make room for new ones.
    pub nodes_retired: u64,
    /// Addresses refused by the address policy (nodes, peers, queries), by range.
    pub addr_refused: crate::Refusals,
    /// Addresses written off as dead since they last answered (for a while: see
    /// [`crate::Config::dead_for`]).
    pub nodes_dead: usize,
    /// Nodes in our node's routing table with a BEP 42 secure id for their IP.
    pub table_secure: usize,
    /// ... at local addresses (exempt from BEP 42).
    pub table_exempt: usize,
    /// ... with an id not derived from their IP (kept all the same).
    pub table_unsecured: usize,
    /// Sampling stopped because the seen-set is full (`max_seen_infohashes`).
    pub seen_full: bool,
    /// Infohashes waiting for a peer search.
    pub search_queue: usize,
    /// Distinct infohashes found.
    pub infohashes: usize,
    /// Of them, found because a node announced them to us.
    pub harvested: u64,
    /// Distinct (infohash, peer) pairs found.
    pub peers: u64,
    /// Peer searches running.
    pub searches: usize,
    /// `find_node` queries sent when the first sample reply came: how much walking a
    /// start took before it could sample (a warm start from saved nodes needs none).
    pub walks_before_first_sample: Option<u64>,
    /// Times the seen-set was full and forgotten (`forget_seen_when_full`).
    pub seen_generations: u64,
    /// Listings of nodes (repeats included) set aside because their id lies outside this
    /// crawler's shard.
    pub nodes_other_shard: u64,
    /// Times a node resting inside its interval was listed again (and not asked).
    pub nodes_resting: u64,
    /// Nodes put to rest in the fixed-memory filter.
    pub nodes_rested: u64,
    /// Peer searches that stopped at enough peers for a fetch, short of
    /// `peers_per_infohash` ([`CrawlConfig::peers_for_fetch`]).
    pub searches_stopped_early: u64,
    /// Of them, continued by the caller after their fetch failed.
    pub searches_resumed: u64,
    /// New infohashes reported without a peer search because the search queue was full
    /// (a reply with more samples than the room kept for it).
    pub unsearched: u64,
    /// Peer searches stopped by the caller ([`Crawler::cancel_search`](super::Crawler::cancel_search)).
    pub searches_cancelled: u64,
    /// Re-scrapes queued ([`Crawler::scrape`](super::Crawler::scrape)).
    pub scrapes: u64,
}
