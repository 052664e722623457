//! Node configuration: a plain struct with conservative defaults.

use std::time::Duration;

use estudely_krpc::NodeId;

use crate::addr_policy::AddrPolicy;

/// How a [`crate::Node`] behaves. Every field documents its default.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our node id. Default `None`: drawn from the seeded RNG (a BEP 42 secure id when
    /// `external_ip` is given), and redrawn as a secure id when the responders' vote on our
    /// external IP settles on one our id does not match. A given id is never changed.
    pub id: Option<NodeId>,
    /// Our external IP as known before the start (e.g. saved by an earlier run): the drawn
    /// id is a BEP 42 secure id for it (unless it is a local address). Default `None`.
    pub external_ip: Option<std::net::IpAddr>,
    /// Distinct responder networks (/24, /48) that must agree on our external IP, and be a
    /// majority of those that told it, before we believe it (BEP 42). Default 5.
    pub external_ip_quorum: usize,
    /// Seed of the node's RNG (node id, transaction ids, token secrets, samples). Default 0;
    /// drivers pass a random seed, simulations a fixed one.
    pub seed: u64,
    /// Bucket size and lookup result size, `k` in BEP 5. Default 8.
    pub k: usize,
    /// Parallel requests per iterative lookup. Default 3.
    pub alpha: usize,
    /// How long to wait for a reply before a query counts as failed. Default 3 s.
    pub query_timeout: Duration,
    /// Failed queries after which a node is bad and may be evicted. Default 2.
    pub max_failures: u8,
    /// BEP 43 read-only: we send `ro=1`, answer no queries and are not put in routing tables.
    /// Default `false`: a full node that gives as much as it takes.
    pub read_only: bool,
    /// Client version sent as `v`. Default `ES` + version 0.1.
    pub version: [u8; 4],
    /// BEP 51 `interval` we advertise, in seconds; our sample set changes at most this often.
    /// Default 21,600 (6 h, the BEP's maximum and libtorrent's default).
    pub sample_interval: u32,
    /// Most infohashes in one `sample_infohashes` reply. Default 20.
    pub max_samples: usize,
    /// Most torrents in the peer store. Default 2,000.
    pub max_torrents: usize,
    /// Most peers stored per torrent. Default 100.
    pub max_peers_per_torrent: usize,
    /// Most peers returned in one `get_peers` reply (they must fit in a datagram). Default 50.
    pub max_values_per_reply: usize,
    /// How long an announced peer is kept. Default 30 min.
    pub peer_ttl: Duration,
    /// How often the token secret rotates; tokens stay valid for two periods. Default 5 min.
    pub token_rotation: Duration,
    /// A bucket untouched this long is refreshed with a lookup. Default 15 min.
    pub bucket_refresh: Duration,
    /// Keep at most one routing-table entry per IP address. Default `true`.
    pub one_node_per_ip: bool,
    /// Most transactions in flight at once; further queries are refused. Default 1,024.
    pub max_in_flight: usize,
    /// Global limit on queries sent, per second (every query: lookups, pings, the crawler's).
    /// Queries over the limit wait in a bounded queue. 0 = unlimited. Default 50.
    pub query_rate: f64,
    /// Queries that may be sent back to back before `query_rate` applies. Default 10.
    pub query_burst: f64,
    /// Most queries sent to one IP within `per_ip_window`. Default 20 (libtorrent blocks an
    /// IP at 50 in 10 s; this stays well under half of that).
    pub per_ip_queries: usize,
    /// The window of `per_ip_queries`. Default 10 s.
    pub per_ip_window: Duration,
    /// Pacing of `per_ip_queries`: at most this many queries to one IP within any
    /// `per_ip_burst / per_ip_queries` share of `per_ip_window`. Default 5 (5 in any 2.5 s):
    /// an IP's budget is spent at an even pace, not all in one instant. 0, or
    /// `per_ip_queries` or more, turns pacing off.
    pub per_ip_burst: usize,
    /// Most queries answered per source IP within `per_ip_window`; beyond that the IP's
    /// queries are dropped unanswered. Default 100 (libtorrent blocks at 50 per 10 s).
    pub max_incoming_per_ip: usize,
    /// Most datagrams of any kind (queries, replies, error replies) sent to one IP within
    /// `per_ip_window`; a reply over it is not sent. Default 25 (libtorrent's DoS blocker
    /// counts every packet and ignores an IP at 50 in 10 s).
    pub per_ip_datagrams: usize,
    /// Which addresses learned from the network may be sent to, and whose datagrams are
    /// heard. Default [`AddrPolicy::strict`]: no loopback, private, link-local, CGNAT,
    /// multicast, broadcast, documentation or reserved address, no IPv4-mapped IPv6, no
    /// port 0. [`crate::crawl::Crawler`] adds the ranges of its bootstrap addresses.
    pub addr_policy: AddrPolicy,
    /// Unanswered queries in a row after which an address counts as dead for
    /// [`Config::dead_for`]: no query is sent to it meanwhile. Twice as many for an address
    /// that answered before. Default 4 (a live node behind 30 % loss each way misses 4 in a
    /// row about 7 % of the time, 8 in a row 0.5 %).
    pub dead_after: u8,
    /// How long an address is dead the first time; then it gets one query, and if that goes
    /// unanswered too it is dead again for twice as long (at most 256 times this); any
    /// answer brings it back for good. So a live node that merely lost a few replies is
    /// asked again a minute later, and a gone one costs a query per doubling. Default 60 s
    /// (the crawler's shortest wait between two samples of a node).
    pub dead_for: Duration,
    /// Most dead addresses remembered (the oldest half is forgotten when full).
    /// Default 1,000,000 (about 32 MB at most).
    pub max_dead: usize,
    /// Most queries waiting for the rate limit; beyond this a query fails as busy.
    /// Default 4,096.
    pub max_queued: usize,
    /// The driver can send to IPv4 addresses. Default `true`.
    pub ipv4: bool,
    /// The driver can send to IPv6 addresses (BEP 32). Default `false`.
    pub ipv6: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            id: None,
            external_ip: None,
            external_ip_quorum: 5,
            seed: 0,
            k: 8,
            alpha: 3,
            query_timeout: Duration::from_secs(3),
            max_failures: 2,
            read_only: false,
            version: *b"ES\x00\x01",
            sample_interval: 21_600,
            max_samples: 20,
            max_torrents: 2_000,
            max_peers_per_torrent: 100,
            max_values_per_reply: 50,
            peer_ttl: Duration::from_secs(30 * 60),
            token_rotation: Duration::from_secs(5 * 60),
            bucket_refresh: Duration::from_secs(15 * 60),
            one_node_per_ip: true,
            max_in_flight: 1_024,
            query_rate: 50.0,
            query_burst: 10.0,
            per_ip_queries: 20,
            per_ip_window: Duration::from_secs(10),
            per_ip_burst: 5,
            max_incoming_per_ip: 100,
            per_ip_datagrams: 25,
            addr_policy: AddrPolicy::strict(),
            dead_after: 4,
            dead_for: Duration::from_secs(60),
            max_dead: 1_000_000,
            max_queued: 4_096,
            ipv4: true,
            ipv6: false,
        }
    }
}
