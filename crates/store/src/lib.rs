//! The index that `estudely run` builds, and that `export`, `search` and `stats` read: one
//! [`Store`] trait with two backends, [`sqlite`] (embedded, the default) and `postgres`
//! (shared by several crawlers; the default feature `postgres`: without it the crate builds
//! no PostgreSQL client, and a `postgres://` URL is a [`UsageError`]).
//!
//! # Schema (the same in both backends, created by versioned migrations)
//! - `schema_migrations(version, applied_at)`: one row per applied migration.
//! - `torrents`: one row per torrent, keyed by its 20-byte DHT key `info_hash` (the v1
//!   infohash, or the truncated v2 one); `info_hash_v2` (32 bytes, v2 and hybrid),
//!   `name` (lossy UTF-8, for display and search), `name_raw` (bytes as in the info dict),
//!   `total_bytes`, `piece_length`, `file_count`, `files_omitted` (files not stored beyond
//!   [`MAX_STORED_FILES`]), `private`, `version` (`v1` / `v2` / `hybrid`), `discovered` and
//!   `last_seen` (unix seconds), `source` (how it was first discovered),
//!   `seeds_estimate` and `peers_estimate` (BEP 33 swarm estimates, null: unknown),
//!   `estimated_at` (unix seconds: when those figures were measured; null: never) and
//!   `scraped_at` (unix seconds: when the torrent was last scraped, whether any node sent
//!   filters or not; 0: never). A torrent stored with estimates has both at `discovered`;
//!   one stored without has `scraped_at` 0, so `run --rescrape-rate` re-scrapes it first
//!   ([`Store::stale_estimates`]: the lowest `scraped_at` first). A re-scrape that brings
//!   no filter only raises `scraped_at` (the figures and `estimated_at` are kept), so a
//!   dead torrent goes to the back of the line instead of being asked again and again.
//! - `files(info_hash, idx, path, path_raw, length)`: `path` is the components joined with
//!   `/` (lossy UTF-8, searchable); `path_raw` the bencoded list of the raw components, so
//!   that nothing is lost (components may hold `/` or NUL). PostgreSQL (from its schema
//!   9) holds a torrent's files in one compact column of its `torrents` row instead (the
//!   raw paths and lengths as one bencoded list), and keeps the `files` table only for the
//!   torrents stored before: a row per file made every insert write ten rows, ten index
//!   entries and each path twice.
//! - `sightings(info_hash, ip, port, source, first_seen, last_seen, count)`: one row per
//!   distinct (infohash, address), seen `count` times. For `announce` and `get_peers` the
//!   address is a peer; for `sample` it is the node whose sample listed the infohash (an
//!   address seen both ways is a peer). `run` keeps at most `--max-sightings` rows per
//!   infohash, the most recently seen; with `--no-peer-addresses` it stores one row per
//!   infohash under `0.0.0.0` port 0 (never a real address), which only counts.
//! - `nodes(ip, port, id, last_good)`: good DHT nodes, for warm starts.
//! - `counters(name, value)`: totals that are counted, not stored (filtered torrents by
//!   reason, failed fetches by reason, `index_lookups`: infohashes the in-memory filter
//!   sent to the database, `index_lookups_known`: those it held).
//! - `deleted(info_hash, deleted_at)`: the blocklist of pruned torrents (both keys of a
//!   hybrid), so that no crawl stores them again (see [`prune`]).
//! - `leases(info_hash, owner, expires)`: who is fetching what, so that several crawlers on
//!   one database never fetch one infohash at once. A crashed crawler's leases expire,
//!   and `run` deletes expired leases at start and every minute.
//!
//! Every method runs on the caller's thread and blocks: `run` keeps its store on a thread of
//! its own (see the pipeline), the read commands call it directly.
//!
//! ```
//! use estudely_store::{DbUrl, Store};
//!
//! # fn main() -> anyhow::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("index.sqlite");
//! let mut store = DbUrl::parse(path.to_str().unwrap())?.open()?;
//! assert_eq!(store.stats()?.torrents, 0);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use estudely_krpc::{CompactNode, InfoHash};
use estudely_peer_wire::{FileEntry, Version};

pub use estudely_classify::{Category, Classification, Classifier, Release};
pub use lost::{connection_lost, Unreachable};
pub use prune::{Candidate, DbSize, Deleted, PruneFilter};
pub use query_key::key_in_query;
pub use search_query::{QueryError, SearchQuery};

pub mod json;
mod lost;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod prune;
mod query_key;
pub mod search_query;
pub mod sqlite;

/// Something the user gave is wrong: front ends report it in one line and exit with a
/// usage status (the `estudely-usage` crate, shared with the crawl and the test networks).
pub use estudely_usage::UsageError;

/// The address stored for a sighting when peer addresses are not kept (`run
/// --no-peer-addresses`): `0.0.0.0:0`, which no peer or node can have (the crawler refuses
/// unspecified addresses), so readers know it for "no address".
pub const NO_ADDRESS: std::net::SocketAddr = std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::UNSPECIFIED,
    0,
));

/// Upper bounds (exclusive) of the size histogram's buckets, in bytes; the last bucket
/// holds everything from the last edge up. `sizes[i]` counts `SIZE_EDGES[i-1] <= size <
/// SIZE_EDGES[i]`.
pub const SIZE_EDGES: [u64; 9] = [
    1 << 20,   // < 1 MiB
    10 << 20,  // < 10 MiB
    100 << 20, // < 100 MiB
    500 << 20, // < 500 MiB
    1 << 30,   // < 1 GiB
    4 << 30,   // < 4 GiB
    10 << 30,  // < 10 GiB
    50 << 30,  // < 50 GiB
    100 << 30, // < 100 GiB
];

/// The labels of the size buckets, one more than [`SIZE_EDGES`].
pub const SIZE_LABELS: [&str; 10] = [
    "< 1 MiB",
    "1–10 MiB",
    "10–100 MiB",
    "100–500 MiB",
    "0.5–1 GiB",
    "1–4 GiB",
    "4–10 GiB",
    "10–50 GiB",
    "50–100 GiB",
    "≥ 100 GiB",
];

/// The bucket of `SIZE_EDGES` that `bytes` falls in.
pub fn size_bucket(bytes: u64) -> usize {
    SIZE_EDGES.iter().take_while(|&&e| bytes >= e).count()
}

/// Most files stored per torrent; the rest are counted in `files_omitted`.
pub const MAX_STORED_FILES: usize = 1_000;

/// Most keys [`Store::known_among`] takes at once.
pub const MAX_KEYS_PER_QUERY: usize = 500;

pub use estudely_usage::{COLLECT_CSV_HEADER, PEERS_CSV_HEADER};

/// The default `--db`: an SQLite file in the working directory.
pub const DEFAULT_DB: &str = "estudely.sqlite";

/// How an infohash was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Listed in a BEP 51 `sample_infohashes` reply.
    Sample,
    /// Announced to our node with `announce_peer` (token checked).
    Announce,
    /// Returned as a peer by `get_peers`.
    GetPeers,
}

impl Source {
    /// The word stored in the database: `sample`, `announce`, `get_peers`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Sample => "sample",
            Source::Announce => "announce",
            Source::GetPeers => "get_peers",
        }
    }

    /// The inverse of [`Source::as_str`].
    pub fn parse(s: &str) -> Option<Source> {
        match s {
            "sample" => Some(Source::Sample),
            "announce" => Some(Source::Announce),
            "get_peers" => Some(Source::GetPeers),
            _ => None,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The word stored for a [`Version`]: `v1`, `v2`, `hybrid`.
pub fn version_str(v: Version) -> &'static str {
    match v {
        Version::V1 => "v1",
        Version::V2 => "v2",
        Version::Hybrid => "hybrid",
    }
}

/// A release as stored: compact JSON (`{}` when the name said nothing).
pub fn release_json(r: &Release) -> String {
    serde_json::to_string(r).unwrap_or_else(|_| "{}".to_owned())
}

/// A stored category and release back: `None` for an unclassified row, or one whose text no
/// longer parses (a later version's word), which `reclassify` rewrites.
pub fn parse_classification(
    category: Option<&str>,
    release: Option<&str>,
) -> (Option<Category>, Option<Release>) {
    let Some(category) = category.and_then(|c| c.parse().ok()) else {
        return (None, None);
    };
    let release = release.and_then(|r| serde_json::from_str(r).ok());
    (Some(category), Some(release.unwrap_or_default()))
}

/// The inverse of [`version_str`].
pub fn parse_version(s: &str) -> Option<Version> {
    match s {
        "v1" => Some(Version::V1),
        "v2" => Some(Version::V2),
        "hybrid" => Some(Version::Hybrid),
        _ => None,
    }
}

/// A torrent whose metadata was fetched and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torrent {
    /// The 20-byte key: the v1 infohash of a v1 or hybrid torrent (so a hybrid found under
    /// either of its DHT keys is one row), the first 20 bytes of the v2 one of a v2 torrent.
    pub info_hash: InfoHash,
    /// The full SHA-256 infohash of a v2 or hybrid torrent.
    pub info_hash_v2: Option<[u8; 32]>,
    /// The name, raw bytes as in the info dict.
    pub name: Vec<u8>,
    /// Sum of the file lengths, pad files excluded.
    pub total_bytes: u64,
    /// `piece length`.
    pub piece_length: u64,
    /// Number of files, pad files excluded.
    pub file_count: u64,
    /// The info dict's `private` flag.
    pub private: bool,
    /// Protocol version.
    pub version: Version,
    /// The first files, at most [`MAX_STORED_FILES`] (the rest are counted:
    /// `file_count - files.len()`).
    pub files: Vec<FileEntry>,
    /// When it was first discovered, unix seconds.
    pub discovered: i64,
    /// How it was first discovered.
    pub source: Source,
    /// BEP 33 estimate of its seeds (scrape filters of the nodes its peer search asked, or
    /// a later re-scrape's: see [`StoredTorrent::estimated_at`]); `None` when none sent one.
    pub seeds_estimate: Option<u32>,
    /// BEP 33 estimate of its other peers, as `seeds_estimate`; `None` when unknown.
    pub peers_estimate: Option<u32>,
    /// What it holds (`estudely-classify`); `None` for a torrent stored before the index
    /// classified (`estudely reclassify` fills it in).
    pub category: Option<Category>,
    /// What its name says (title, year, season, episode, ...); `None` as `category`.
    pub release: Option<Release>,
}

impl Torrent {
    /// Fill in [`Torrent::category`] and [`Torrent::release`] with `classifier`, from the
    /// name and the files (all of them, stored or not: the bytes of each kind decide).
    pub fn classify(&mut self, classifier: &Classifier) {
        let c = self.classification(classifier);
        self.category = Some(c.category);
        self.release = Some(c.release);
    }

    /// The `release` column as stored: its JSON when classified (`{}` for a release that
    /// says nothing), null otherwise.
    pub fn release_column(&self) -> Option<String> {
        self.category
            .map(|_| release_json(self.release.as_ref().unwrap_or(&Release::default())))
    }

    /// What `classifier` makes of this torrent (its name and its files).
    pub fn classification(&self, classifier: &Classifier) -> Classification {
        let name = String::from_utf8_lossy(&self.name);
        let paths: Vec<(String, u64)> = self
            .files
            .iter()
            .map(|f| (f.path_lossy(), f.length))
            .collect();
        classifier.classify(&name, paths.iter().map(|(p, l)| (p.as_str(), *l)))
    }
}

/// A torrent's key with the category and release to store for it
/// ([`Store::set_categories`]).
pub type InfoHashRelease = (InfoHash, Category, Release);

/// One sighting: `info_hash` seen through `addr` at `at` (see the schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sighting {
    /// The infohash.
    pub info_hash: InfoHash,
    /// A peer (announce, get_peers) or the node whose sample listed it (sample).
    pub addr: SocketAddr,
    /// How.
    pub source: Source,
    /// When, unix seconds.
    pub at: i64,
}

/// Sightings of one infohash through one address, summed: `count` sightings between
/// `first_seen` and `last_seen` (see the schema). `source` is the one written: a peer
/// source (`announce`, `get_peers`) over `sample`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SightingSum {
    /// The infohash.
    pub info_hash: InfoHash,
    /// A peer, the node whose sample listed it, or `0.0.0.0:0` when no address is kept.
    pub addr: SocketAddr,
    /// How (a peer source wins over `sample`).
    pub source: Source,
    /// The first of them, unix seconds.
    pub first_seen: i64,
    /// The last of them, unix seconds.
    pub last_seen: i64,
    /// How many.
    pub count: u64,
}

impl From<Sighting> for SightingSum {
    fn from(s: Sighting) -> SightingSum {
        SightingSum {
            info_hash: s.info_hash,
            addr: s.addr,
            source: s.source,
            first_seen: s.at,
            last_seen: s.at,
            count: 1,
        }
    }
}

impl SightingSum {
    /// Add one more sighting of the same (infohash, address).
    pub fn add(&mut self, s: &Sighting) {
        self.first_seen = self.first_seen.min(s.at);
        self.last_seen = self.last_seen.max(s.at);
        self.count = self.count.saturating_add(1);
        if self.source == Source::Sample {
            self.source = s.source;
        }
    }
}

/// What one transaction writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// New torrents. One already stored is left as it is (the first writer wins); its
    /// `last_seen` is updated.
    pub torrents: Vec<Torrent>,
    /// Sightings, one each: a new (infohash, address) is inserted, a known one gets its
    /// `count` raised, `last_seen` raised, `first_seen` lowered (and `source` raised from
    /// `sample` to a peer source). Sightings of infohashes not (yet) stored are kept too.
    pub sightings: Vec<Sighting>,
    /// Sightings already summed, written as [`Batch::sightings`] are.
    pub sighting_sums: Vec<SightingSum>,
    /// Keep at most this many sightings per infohash written to in this batch, the
    /// most recently seen (`None`: no limit).
    pub max_sightings: Option<u32>,
    /// Infohashes seen again at `.1` (unix seconds): their torrent's `last_seen` is raised.
    pub seen: Vec<(InfoHash, i64)>,
    /// Counter increments, by name (e.g. `filtered_size`, `fetch_failed_timeout`).
    pub counters: Vec<(String, u64)>,
    /// Leases of this owner to give up (fetched, or failed for now).
    pub release: Vec<InfoHash>,
    /// Re-scrapes of stored torrents ([`Estimate`]); keys that name no torrent are
    /// skipped.
    pub estimates: Vec<Estimate>,
}

/// The result of a re-scrape of a stored torrent (`run --rescrape-rate`), written by
/// [`Batch::estimates`]: `scraped_at` is raised to `at`; each figure received replaces the
/// stored one, and with any figure `estimated_at` becomes `at`; a figure not received
/// (no node sent that filter) keeps the stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// The torrent's stored key.
    pub info_hash: InfoHash,
    /// BEP 33 estimate of the seeds (`None`: no seed filter came).
    pub seeds: Option<u32>,
    /// BEP 33 estimate of the other peers (`None`: no peer filter came).
    pub peers: Option<u32>,
    /// When, unix seconds.
    pub at: i64,
}

impl Estimate {
    /// Whether it brought any figure.
    pub fn answered(&self) -> bool {
        self.seeds.is_some() || self.peers.is_some()
    }
}

impl Batch {
    /// Every sighting of the batch, summed or not.
    pub fn all_sightings(&self) -> impl Iterator<Item = SightingSum> + '_ {
        let one = self.sightings.iter().map(|&s| SightingSum::from(s));
        one.chain(self.sighting_sums.iter().copied())
    }

    /// Rows of sightings to write.
    pub fn sighting_rows(&self) -> usize {
        self.sightings.len() + self.sighting_sums.len()
    }

    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.torrents.is_empty()
            && self.sightings.is_empty()
            && self.sighting_sums.is_empty()
            && self.seen.is_empty()
            && self.counters.is_empty()
            && self.release.is_empty()
            && self.estimates.is_empty()
    }
}

/// A stored torrent as read back (search results, export).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTorrent {
    /// The torrent (with its stored files when asked for, else no files).
    pub torrent: Torrent,
    /// Files not stored beyond [`MAX_STORED_FILES`].
    pub files_omitted: u64,
    /// Last seen, unix seconds.
    pub last_seen: i64,
    /// When its BEP 33 estimates (`torrent.seeds_estimate`, `peers_estimate`) were
    /// measured, unix seconds: at discovery, or at a later re-scrape; `None` when it has
    /// none.
    pub estimated_at: Option<i64>,
}

/// A torrent's place in [`Store::export`]'s order: when it was discovered, then the
/// backend's tie-breaker between torrents discovered in the same second (SQLite: the row
/// id). Only a backend's own [`Store::export_bounds`] makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExportKey {
    /// `discovered`, unix seconds.
    pub discovered: i64,
    /// The tie-breaker.
    pub tie: i64,
}

/// Counts for `estudely stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Torrents stored.
    pub torrents: u64,
    /// File rows stored.
    pub files: u64,
    /// Sighting rows stored.
    pub sightings: u64,
    /// Nodes saved for warm starts.
    pub nodes: u64,
    /// Torrents by version word (`v1`, `v2`, `hybrid`), sorted by word.
    pub by_version: Vec<(String, u64)>,
    /// Torrents by first source word, sorted by word.
    pub by_source: Vec<(String, u64)>,
    /// Torrents by UTC day of discovery (`YYYY-MM-DD`), oldest first.
    pub by_day: Vec<(String, u64)>,
    /// Every counter, sorted by name.
    pub counters: Vec<(String, u64)>,
    /// Torrents by category word (`movie`, `tv`, ...; `unclassified` for those stored before
    /// classification), sorted by word.
    pub by_category: Vec<(String, u64)>,
    /// Keys in the blocklist of pruned torrents (not torrents: a hybrid has two).
    pub deleted: u64,
}

/// An index of torrents. Implementations keep every write of one [`Store::write`] in one
/// transaction: after a crash, a batch is either wholly there or not at all.
pub trait Store: Send {
    /// Which backend, for messages: `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;

    /// Write `batch` in one transaction, as `owner` (for its leases).
    ///
    /// After a write that failed with a lost connection ([`connection_lost`]), the next
    /// write (after [`Store::reconnect`]) must be the same batch: if the lost one was in
    /// fact committed (only its acknowledgement was lost), it is not written twice.
    fn write(&mut self, owner: &str, batch: &Batch) -> anyhow::Result<()>;

    /// Connect again after an error that [`connection_lost`] recognises, as the store was
    /// first opened (read-only or not, with its statement timeout). Fails, leaving the
    /// store to try again later, while the server cannot be reached. Nothing to do for a
    /// store without a connection (SQLite).
    fn reconnect(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    /// Is its connection known to have ended (the server closed it), so that a query on it
    /// would fail? Known without a query; `false` when not known (a store without a
    /// connection, or a peer gone silently).
    fn connection_closed(&self) -> bool {
        false
    }

    /// Is a torrent with this key stored? A hybrid torrent answers to its v1 key and to its
    /// truncated v2 key.
    fn contains(&mut self, info_hash: &InfoHash) -> anyhow::Result<bool>;

    /// Which of `keys` (at most [`MAX_KEYS_PER_QUERY`]) answer to a stored torrent, as
    /// [`Store::contains`] would say, or are in the blocklist of pruned torrents, in one
    /// query: for a crawl, both are known.
    fn known_among(&mut self, keys: &[InfoHash]) -> anyhow::Result<Vec<InfoHash>>;

    /// Which of `keys` (at most [`MAX_KEYS_PER_QUERY`]) are in the blocklist of pruned
    /// torrents.
    fn deleted_among(&mut self, keys: &[InfoHash]) -> anyhow::Result<Vec<InfoHash>>;

    /// Call `f` with every key in the blocklist of pruned torrents.
    fn for_each_deleted(&mut self, f: &mut dyn FnMut(InfoHash)) -> anyhow::Result<()>;

    /// Up to `limit` torrents matching `filter`, oldest first (by `discovered`, then the
    /// backend's tie-breaker), after `after` (the last of the previous call's).
    fn prune_scan(
        &mut self,
        filter: &PruneFilter,
        after: Option<&Candidate>,
        limit: usize,
    ) -> anyhow::Result<Vec<Candidate>>;

    /// Delete the torrents stored under `keys` with every trace of them (files, sightings
    /// and leases of either key, the full-text entry) and put their keys in the blocklist
    /// at `at` (unix seconds), in one transaction. Keys that name no torrent are skipped.
    fn delete_torrents(&mut self, keys: &[InfoHash], at: i64) -> anyhow::Result<Deleted>;

    /// The torrents stored.
    fn torrent_count(&mut self) -> anyhow::Result<u64>;

    /// How big the database is.
    fn db_size(&mut self) -> anyhow::Result<DbSize>;

    /// Give the space of deleted rows back to the file system where the backend can
    /// (SQLite: `VACUUM`, which rewrites the file; PostgreSQL: nothing, autovacuum makes the
    /// space reusable by later rows).
    fn reclaim(&mut self) -> anyhow::Result<()>;

    /// Delete every expired lease, whoever's (a crawler killed while holding leases leaves
    /// them behind), and say how many.
    fn sweep_leases(&mut self) -> anyhow::Result<u64>;

    /// The owners holding leases now, expired or not (at most a few thousand are read).
    fn lease_owners(&mut self) -> anyhow::Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Delete every lease of `owner` (a crawler known to be gone), and say how many.
    fn release_leases(&mut self, _owner: &str) -> anyhow::Result<u64> {
        Ok(0)
    }

    /// Call `f` with every key of every stored torrent (a hybrid's two), to fill the
    /// in-memory filter at start.
    fn for_each_info_hash(&mut self, f: &mut dyn FnMut(InfoHash)) -> anyhow::Result<()>;

    /// Try to take the lease on `info_hash` for `owner`, for `lease`: true when no torrent
    /// answers to this key (see [`Store::contains`]), it is not in the blocklist of pruned
    /// torrents, and no other owner holds a lease that has not expired (an
    /// owner may renew its own). Safe against several processes claiming at once.
    fn claim(&mut self, info_hash: &InfoHash, owner: &str, lease: Duration)
        -> anyhow::Result<bool>;

    /// [`Store::claim`] each of `keys`, in as few round trips as the backend can (one
    /// request of `run`'s is up to 64 claims): whether each was granted, in order. A key
    /// given twice gets the same answer twice (an owner may renew its own lease).
    fn claim_many(
        &mut self,
        keys: &[InfoHash],
        owner: &str,
        lease: Duration,
    ) -> anyhow::Result<Vec<bool>> {
        keys.iter().map(|k| self.claim(k, owner, lease)).collect()
    }

    /// Save good nodes (upsert by address, `last_good` = `at`), keeping at most `keep` rows
    /// (the most recently good).
    fn save_nodes(&mut self, nodes: &[CompactNode], at: i64, keep: usize) -> anyhow::Result<()>;

    /// Up to `max` saved nodes, the most recently good first.
    fn load_nodes(&mut self, max: usize) -> anyhow::Result<Vec<CompactNode>>;

    /// Full-text search over names and file paths (the [`SearchQuery`] language; substrings
    /// where the backend can), best first. No files in the results. The same as
    /// [`Store::search_sorted`] with [`SearchSort::Relevance`].
    fn search(
        &mut self,
        query: &str,
        limit: usize,
        offset: usize,
    ) -> anyhow::Result<Vec<StoredTorrent>> {
        self.search_sorted(query, SearchSort::Relevance, limit, offset)
    }

    /// One torrent with its stored files, by any of its keys (a hybrid's v1 key or its
    /// truncated v2 key).
    fn torrent(&mut self, info_hash: &InfoHash) -> anyhow::Result<Option<StoredTorrent>>;

    /// Every torrent discovered at or after `since` (unix seconds), oldest first, with its
    /// files and its peers (sightings of source `announce` or `get_peers`).
    fn export(
        &mut self,
        since: Option<i64>,
        f: &mut dyn FnMut(&StoredTorrent, &[SocketAddr]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()>;

    /// Keys that split the torrents [`Store::export`] gives (from `since`) into up to
    /// `parts` ranges of about as many torrents each, for a reader that exports the ranges
    /// at once, each on a connection of its own ([`Store::export_range`]): ascending, at
    /// most `parts - 1` of them. None where the backend does not split (the default): then
    /// the whole is one range.
    fn export_bounds(
        &mut self,
        _since: Option<i64>,
        _parts: usize,
    ) -> anyhow::Result<Vec<ExportKey>> {
        Ok(Vec::new())
    }

    /// [`Store::export`] of the torrents from key `from` (included) up to key `to`
    /// (excluded), an end `None` being open: the ranges between consecutive keys of
    /// [`Store::export_bounds`], one after the other, are [`Store::export`]'s rows in its
    /// order (of the same index: each range reads the index as it is when that range
    /// starts). A backend that does not split (the default) exports the whole when both
    /// ends are open, and refuses any other range.
    fn export_range(
        &mut self,
        since: Option<i64>,
        from: Option<ExportKey>,
        to: Option<ExportKey>,
        f: &mut dyn FnMut(&StoredTorrent, &[SocketAddr]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        match (from, to) {
            (None, None) => self.export(since, f),
            _ => anyhow::bail!("the {} backend does not export ranges", self.kind()),
        }
    }

    /// Counts by kind, source and day, and the counters.
    fn stats(&mut self) -> anyhow::Result<Stats>;

    /// Search as [`Store::find`] for `query` read as [`SearchQuery`] syntax (a query that
    /// cannot be read is a [`UsageError`] naming the token).
    fn search_sorted(
        &mut self,
        query: &str,
        sort: SearchSort,
        limit: usize,
        offset: usize,
    ) -> anyhow::Result<Vec<StoredTorrent>> {
        let q = parse_query(query)?;
        self.find(&q, sort, limit, offset)
    }

    /// Full-text search with filters, in the order `sort` asks for, no files. The included
    /// words and phrases must all match (in the name or a file path), the excluded ones
    /// none, and the fields filter the matches. A query matching more torrents than a
    /// backend orders at once is answered from a bounded set of candidate matches (the
    /// newest in SQLite, the first the index gives in PostgreSQL), so that a common word
    /// costs no more than a rare one. A query without included words (fields or exclusions
    /// only) looks at the newest torrents only (of its category, when it has one), as many
    /// as a sort by size orders; an empty query finds nothing. See each backend.
    fn find(
        &mut self,
        query: &SearchQuery,
        sort: SearchSort,
        limit: usize,
        offset: usize,
    ) -> anyhow::Result<Vec<StoredTorrent>>;

    /// How many hits `query` has in each category (its own categories ignored), counted
    /// among the same bounded candidates as [`Store::find`]: categories without hits are
    /// left out, unclassified torrents are not counted.
    fn category_counts(&mut self, query: &SearchQuery) -> anyhow::Result<CategoryCounts>;

    /// For each of `hits`, the path of the file that explains why it matched `query` when
    /// its name alone does not (see [`SearchQuery::matched_file`]). Reads the stored files
    /// of those hits only, so meant for a page of results.
    fn matched_files(
        &mut self,
        query: &SearchQuery,
        hits: &[StoredTorrent],
    ) -> anyhow::Result<Vec<Option<String>>> {
        let mut out = Vec::with_capacity(hits.len());
        for hit in hits {
            let name = String::from_utf8_lossy(&hit.torrent.name);
            if query.name_explains(&name) {
                out.push(None);
                continue;
            }
            let files = match self.torrent(&hit.torrent.info_hash)? {
                Some(t) => t.torrent.files,
                None => Vec::new(),
            };
            let paths: Vec<String> = files.iter().map(sqlite::codec::path_text).collect();
            let i = query.matched_file(&name, paths.iter().map(String::as_str));
            out.push(i.map(|i| paths[i].clone()));
        }
        Ok(out)
    }

    /// The newest torrents (by `discovered`, then newest row), no files.
    fn recent(&mut self, limit: usize, offset: usize) -> anyhow::Result<Vec<StoredTorrent>>;

    /// The sightings of one torrent (any of its keys), newest first, at most `max`, and how
    /// many there are in all (and how many distinct peer addresses among them).
    fn sightings_of(
        &mut self,
        info_hash: &InfoHash,
        max: usize,
    ) -> anyhow::Result<(Vec<SightingRow>, SightingCounts)>;

    /// The first and last `discovered` of the stored torrents; `None` when there are none.
    fn discovered_range(&mut self) -> anyhow::Result<Option<(i64, i64)>>;

    /// Torrents discovered per `bucket_secs`-wide bucket (start = `discovered` rounded down to
    /// a multiple of `bucket_secs`) and first source; only non-empty buckets, any order.
    /// A `bucket_secs` outside `1..=`[`MAX_BUCKET_SECS`] is an error.
    fn timeline(&mut self, bucket_secs: i64) -> anyhow::Result<Vec<(i64, Source, u64)>>;

    /// Torrents per size bucket of [`SIZE_EDGES`] (`SIZE_EDGES.len() + 1`
    /// counts).
    fn size_histogram(&mut self) -> anyhow::Result<Vec<u64>>;

    /// The sum of `total_bytes` over every stored torrent (saturating at `u64::MAX`).
    fn total_bytes(&mut self) -> anyhow::Result<u64>;

    /// Abort any later statement that runs longer than `limit` (an error saying "query took
    /// too long", not a hang): the web server's guard against costly queries. The
    /// connection stays usable. A zero limit counts as a millisecond.
    fn set_statement_timeout(&mut self, limit: Duration) -> anyhow::Result<()>;

    /// Search as [`Store::search_sorted`], among the torrents of `category` only; with no
    /// words, the newest torrents of that category. A `category:` field in the query that
    /// names another category: nothing is found.
    fn search_in(
        &mut self,
        query: &str,
        category: Category,
        sort: SearchSort,
        limit: usize,
        offset: usize,
    ) -> anyhow::Result<Vec<StoredTorrent>> {
        let mut q = parse_query(query)?;
        q.and_category(category);
        self.find(&q, sort, limit, offset)
    }

    /// Set the category and release fields of stored torrents (by their stored key), in one
    /// transaction; keys that name no torrent are skipped.
    fn set_categories(&mut self, rows: &[(InfoHash, Category, Release)]) -> anyhow::Result<()>;

    /// The stored keys of up to `limit` torrents last scraped before `before` (unix
    /// seconds), the never scraped first, then the longest ago: the next to re-scrape. One
    /// range read of an index, however many torrents are stored.
    fn stale_estimates(&mut self, before: i64, limit: usize) -> anyhow::Result<Vec<InfoHash>>;
}

/// `text` as a [`SearchQuery`]; an error is a [`UsageError`] (the user typed it).
pub fn parse_query(text: &str) -> anyhow::Result<SearchQuery> {
    SearchQuery::parse(text).map_err(|e| UsageError(e.to_string()).into())
}

/// Hits per category of a query, from [`Store::category_counts`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CategoryCounts {
    /// Categories with at least one hit and their counts, in [`Category::ALL`] order.
    pub counts: Vec<(Category, u64)>,
    /// Were there more candidates than counted? Then each count is a lower bound.
    pub capped: bool,
}

impl CategoryCounts {
    /// The count of `category` (0 when it has no hit).
    pub fn of(&self, category: Category) -> u64 {
        self.counts
            .iter()
            .find(|(c, _)| *c == category)
            .map_or(0, |(_, n)| *n)
    }

    /// From `(category word, count)` rows: words that name no category are skipped.
    pub(crate) fn from_rows(rows: impl IntoIterator<Item = (String, u64)>, capped: bool) -> Self {
        let rows: Vec<(Category, u64)> = rows
            .into_iter()
            .filter_map(|(w, n)| Some((w.parse().ok()?, n)))
            .collect();
        let counts = Category::ALL
            .into_iter()
            .filter_map(|c| {
                let n: u64 = rows.iter().filter(|r| r.0 == c).map(|r| r.1).sum();
                (n > 0).then_some((c, n))
            })
            .collect();
        CategoryCounts { counts, capped }
    }
}

/// The widest bucket [`Store::timeline`] takes: about a thousand years, far from overflow.
pub const MAX_BUCKET_SECS: i64 = 1 << 35;

/// Check a [`Store::timeline`] bucket width.
fn check_bucket(bucket_secs: i64) -> anyhow::Result<()> {
    if !(1..=MAX_BUCKET_SECS).contains(&bucket_secs) {
        anyhow::bail!("timeline bucket of {bucket_secs} s: must be 1 to {MAX_BUCKET_SECS}");
    }
    Ok(())
}

/// The SQL expression (both dialects) of the start of `column`'s bucket of width `b` (a
/// parameter placeholder or literal): rounded down, negative values included.
fn bucket_start_sql(column: &str, b: &str) -> String {
    format!("({column} - ((({column} % {b}) + {b}) % {b}))")
}

/// The SQL select list (both dialects) of cumulative size counts over `column`: one
/// `count(*) FILTER (WHERE column < edge)` per edge of [`SIZE_EDGES`], then
/// `count(*)`. One pass, no grouping (a GROUP BY on a bucket expression sorts every row);
/// [`size_counts`] turns them into bucket counts.
fn size_counts_sql(column: &str) -> String {
    let mut sql = String::new();
    for edge in SIZE_EDGES {
        sql.push_str(&format!("count(*) FILTER (WHERE {column} < {edge}), "));
    }
    sql.push_str("count(*)");
    sql
}

/// Counts per size bucket from the cumulative counts of [`size_counts_sql`] (a count
/// below its predecessor, impossible, gives 0).
fn size_counts(cumulative: &[u64]) -> Vec<u64> {
    let mut below = 0;
    cumulative
        .iter()
        .map(|&n| {
            let bucket = n.saturating_sub(below);
            below = below.max(n);
            bucket
        })
        .collect()
}

/// The error of a statement aborted by [`Store::set_statement_timeout`].
fn too_long(limit: Duration) -> anyhow::Error {
    anyhow::anyhow!(
        "query took too long (more than {} ms): aborted",
        limit.as_millis()
    )
}

/// Orders of search results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchSort {
    /// Best match first (the backend's ranking).
    #[default]
    Relevance,
    /// Largest first.
    Size,
    /// Newest `discovered` first.
    Discovered,
    /// Most seeders first (the BEP 33 estimate); torrents without one last.
    Seeders,
}

/// How many sightings a torrent has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SightingCounts {
    /// Sighting rows with an address (one per address, sampling nodes included).
    pub total: u64,
    /// Distinct peer addresses (sources `announce` and `get_peers`).
    pub peers: u64,
    /// Times it was seen in all (the sum of the rows' counts, rows without an address
    /// included: with `run --no-peer-addresses` the only figure).
    pub seen: u64,
}

/// One sighting of a torrent as read back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SightingRow {
    /// The peer, or the node whose sample listed it.
    pub addr: SocketAddr,
    /// How (a peer source when it was seen as a peer at least once).
    pub source: Source,
    /// First seen there, unix seconds.
    pub first_seen: i64,
    /// Last seen there, unix seconds.
    pub last_seen: i64,
}

/// Where the index is: what `--db` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    /// An SQLite file: a plain path, `sqlite:PATH` or `sqlite://PATH`.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string: `postgres://...` or `postgresql://...` (libpq
    /// key=value strings also work after `postgres:`).
    Postgres(String),
}

impl DbUrl {
    /// Parse `--db`. Anything that is not `postgres…` or `sqlite:` is a file path.
    pub fn parse(s: &str) -> Result<DbUrl, UsageError> {
        if s.is_empty() {
            return Err(UsageError("--db is empty".into()));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(DbUrl::Postgres(s.to_owned()));
        }
        if let Some(rest) = s.strip_prefix("postgres:") {
            return Ok(DbUrl::Postgres(rest.to_owned()));
        }
        let path = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
            .unwrap_or(s);
        if path.is_empty() {
            return Err(UsageError(format!("--db `{s}` names no file")));
        }
        Ok(DbUrl::Sqlite(PathBuf::from(path)))
    }

    /// Open (creating and migrating as needed) for reading and writing.
    pub fn open(&self) -> anyhow::Result<Box<dyn Store>> {
        match self {
            DbUrl::Sqlite(path) => Ok(Box::new(sqlite::SqliteStore::open(path)?)),
            #[cfg(feature = "postgres")]
            DbUrl::Postgres(url) => Ok(Box::new(postgres::PgStore::connect(url)?)),
            #[cfg(not(feature = "postgres"))]
            DbUrl::Postgres(_) => Err(no_postgres(self)),
        }
    }

    /// Open an existing index for reading only (`export`, `search`, `stats`): a missing
    /// SQLite file is an error naming it, never a new empty index.
    pub fn open_read_only(&self) -> anyhow::Result<Box<dyn Store>> {
        match self {
            DbUrl::Sqlite(path) => Ok(Box::new(sqlite::SqliteStore::open_read_only(path)?)),
            #[cfg(feature = "postgres")]
            DbUrl::Postgres(url) => Ok(Box::new(postgres::PgStore::connect_read_only(url)?)),
            #[cfg(not(feature = "postgres"))]
            DbUrl::Postgres(_) => Err(no_postgres(self)),
        }
    }
}

/// The error of a PostgreSQL URL in a build without the `postgres` feature.
#[cfg(not(feature = "postgres"))]
fn no_postgres(url: &DbUrl) -> anyhow::Error {
    UsageError(format!(
        "--db `{url}`: this build has no PostgreSQL support (estudely-store's `postgres` feature)"
    ))
    .into()
}

impl fmt::Display for DbUrl {
    /// The path, or the PostgreSQL URL without its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbUrl::Sqlite(p) => write!(f, "{}", p.display()),
            DbUrl::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`; `host=h
/// password=secret` → `host=h password=***`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url
            .split(' ')
            .map(|kv| match kv.split_once('=') {
                Some(("password", _)) => "password=***".to_owned(),
                _ => kv.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    let Some((auth, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {

    #[cfg(not(feature = "postgres"))]
    #[test]
    fn without_the_feature_a_postgres_url_is_a_usage_error() {
        let url = DbUrl::parse("postgres://me:secret@h/d").unwrap();
        for e in [url.open().err(), url.open_read_only().err()] {
            let e = e.expect("no PostgreSQL in this build");
            assert!(e.is::<UsageError>(), "{e}");
            assert_eq!(
                e.to_string(),
                "--db `postgres://me:***@h/d`: this build has no PostgreSQL support \
                 (estudely-store's `postgres` feature)"
            );
        }
    }

    use super::*;

    #[test]
    fn db_urls() {
        let sqlite = |p: &str| DbUrl::Sqlite(PathBuf::from(p));
        assert_eq!(DbUrl::parse("x.db").unwrap(), sqlite("x.db"));
        assert_eq!(DbUrl::parse("sqlite:x.db").unwrap(), sqlite("x.db"));
        assert_eq!(DbUrl::parse("sqlite:///tmp/x").unwrap(), sqlite("/tmp/x"));
        assert_eq!(
            DbUrl::parse("postgres://u@h/d").unwrap(),
            DbUrl::Postgres("postgres://u@h/d".into())
        );
        assert_eq!(
            DbUrl::parse("postgres:host=/tmp dbname=x").unwrap(),
            DbUrl::Postgres("host=/tmp dbname=x".into())
        );
        assert!(DbUrl::parse("").is_err());
        assert!(DbUrl::parse("sqlite:").is_err());
        let url = DbUrl::parse("postgresql://me:secret@h:5432/d").unwrap();
        assert_eq!(url.to_string(), "postgresql://me:***@h:5432/d");
        let kv = DbUrl::parse("postgres:host=/tmp password=secret dbname=x").unwrap();
        assert_eq!(kv.to_string(), "host=/tmp password=*** dbname=x");
    }

    #[test]
    fn words_round_trip() {
        for s in [Source::Sample, Source::Announce, Source::GetPeers] {
            assert_eq!(Source::parse(s.as_str()), Some(s));
        }
        for v in [Version::V1, Version::V2, Version::Hybrid] {
            assert_eq!(parse_version(version_str(v)), Some(v));
        }
    }
}
