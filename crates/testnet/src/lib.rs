//! A DHT of our own full nodes on loopback, with synthetic torrents announced through it: a
//! known world to crawl and measure against.
//!
//! Node `i` listens on `<base>.(i+1)` (continuing into the next /24 after 254 nodes); all
//! of them bootstrap from node 0, then once more from their own tables. Torrent `t` gets a
//! synthetic info dict and infohash ([`synthetic_torrent`]) and a synthetic seeder address on the /24
//! after the nodes' ([`seeder_addr`]). Each seeder announces its torrents through the DHT
//! with a real `announce` lookup from a short-lived read-only node bound to the seeder's IP
//! (an announce stores the announcer's IP), then checks with a `get_peers` lookup that the
//! network returns it. On each seeder address a [`Seeder`] serves the torrent's info dict
//! (BEP 9), so the testnet supports the whole crawl → peers → metadata pipeline.
//!
//! Every fifth torrent from `t = 5` on has a hostile name and hostile file paths (comma,
//! quote, newline, control characters, backslash, C1 controls, invalid UTF-8; see
//! [`hostile_name`]), as names on the real network may.
//!
//! On request ([`TestnetConfig::no_metadata`], [`TestnetConfig::no_peers`]) the testnet also
//! holds torrents a crawl finds but cannot complete, each marked with its [`TorrentKind`] in
//! the manifest: ones whose announced peer does not serve their metadata, and infohashes the
//! nodes store (and so sample) whose only peer is an IPv6 address, which no `get_peers` over
//! IPv4 returns (the nodes are IPv4 only).
//!
//! [`Testnet::start`] returns once all of that is done; its [`Manifest`] says what a perfect
//! crawl must find.
//!
//! [`world`] is the other test network: an endless one whose torrents exist only when
//! touched, for runs of hours. [`seeder`] is the metadata-only BitTorrent peer both use.
//!
//! # Example
//!
//! Start a small testnet on loopback and print what a perfect crawl of it finds:
//!
//! ```no_run
//! use estudely_testnet::{Testnet, TestnetConfig};
//!
//! # async fn start() -> anyhow::Result<()> {
//! let testnet = Testnet::start(TestnetConfig {
//!     nodes: 8,
//!     torrents: 4,
//!     ..TestnetConfig::default()
//! })
//! .await?;
//! println!("bootstrap from {}", testnet.bootstrap());
//! for t in &testnet.manifest().torrents {
//!     println!("{} {:?}", t.infohash, t.kind);
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod seeder;
pub mod world;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use estudely_dht_core::krpc::{InfoHash, NodeId, Query};
use estudely_dht_core::{AddrPolicy, Config, LookupKind};
use rand::rngs::{OsRng, SmallRng};
use rand::seq::SliceRandom as _;
use rand::{RngCore as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use estudely_dht::{DhtHandle, DriverConfig};
use estudely_usage::UsageError;

use crate::seeder::Seeder;

/// First TCP port of the synthetic seeders: torrent `t` is served on port `6881 + t`.
pub const SEEDER_BASE_PORT: u16 = 6881;
/// Seeder ports from [`SEEDER_BASE_PORT`] up (to 65,533; odd and not a multiple of 5, so
/// prime to [`SEEDER_IPS`]).
const SEEDER_PORTS: usize = 58_653;
/// Distinct seeder IPs (`.1` to `.250` of the seeders' /24).
pub const SEEDER_IPS: usize = 250;
/// Most bootstraps / announces run at once while starting.
const PARALLEL: usize = 32;
/// Most other nodes each node pings while the tables are filled.
const MESH: usize = 64;
/// Announce attempts per torrent before giving up.
const ANNOUNCE_TRIES: usize = 3;
/// Nodes that store each `no_peers` infohash (an announce reaches about as many).
const NO_PEERS_REPLICAS: usize = 8;

/// What to start. See the field docs for the defaults of `estudely testnet`.
#[derive(Debug, Clone)]
pub struct TestnetConfig {
    /// Nodes (default 16).
    pub nodes: usize,
    /// Synthetic torrents (default 32).
    pub torrents: usize,
    /// BEP 51 `interval` the nodes advertise, seconds (default 60).
    pub interval: u32,
    /// First three octets of the nodes' addresses, inside 127/8 (default 127.0.10).
    pub base_ip: [u8; 3],
    /// UDP port of every node (default 0: an ephemeral port each).
    pub port: u16,
    /// Seed of the nodes' RNGs (node `i` gets `seed + i`); default `None`: random.
    pub seed: Option<u64>,
    /// Extra torrents, after the `torrents` ones, announced for a peer that does not serve
    /// their metadata ([`TorrentKind::NoMetadata`]); default 0.
    pub no_metadata: usize,
    /// Extra infohashes, after those, that the nodes store and sample but for which no
    /// `get_peers` returns a peer ([`TorrentKind::NoPeers`]); default 0.
    pub no_peers: usize,
}

impl TestnetConfig {
    /// Every torrent index: `torrents + no_metadata + no_peers`.
    pub fn total_torrents(&self) -> usize {
        self.torrents + self.no_metadata + self.no_peers
    }

    /// The kind of torrent `t` (indexes past [`TestnetConfig::total_torrents`] are `None`).
    pub fn kind(&self, t: usize) -> Option<TorrentKind> {
        if t < self.torrents {
            Some(TorrentKind::Ok)
        } else if t < self.torrents + self.no_metadata {
            Some(TorrentKind::NoMetadata)
        } else if t < self.total_torrents() {
            Some(TorrentKind::NoPeers)
        } else {
            None
        }
    }
}

impl Default for TestnetConfig {
    fn default() -> Self {
        TestnetConfig {
            nodes: 16,
            torrents: 32,
            interval: 60,
            base_ip: [127, 0, 10],
            port: 0,
            seed: None,
            no_metadata: 0,
            no_peers: 0,
        }
    }
}

/// What a crawl can get of a testnet torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TorrentKind {
    /// Announced for its seeder, which serves its info dict: peers and metadata.
    #[default]
    Ok,
    /// Announced for its seeder address, where nothing serves its metadata: found with its
    /// peer, but every fetch fails. The first, third, ... such torrent has no listener at
    /// all (connection refused); the second, fourth, ... a seeder that serves another
    /// torrent's info dict under its infohash (hash mismatch).
    NoMetadata,
    /// Stored by the nodes closest to it (so they sample it) with one IPv6 peer, `[::1]` on
    /// its seeder port, which a `get_peers` over IPv4 never returns: found, with no peers.
    NoPeers,
}

/// What the testnet holds, as written to the manifest file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Node 0's address: bootstrap from it.
    pub bootstrap: String,
    /// Every node.
    pub nodes: Vec<ManifestNode>,
    /// Every torrent and its peers.
    pub torrents: Vec<ManifestTorrent>,
    /// The BEP 51 `interval` the nodes advertise, seconds.
    pub interval: u32,
}

/// A node of the testnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestNode {
    /// `ip:port`.
    pub addr: String,
    /// Node id, 40 hex digits.
    pub id: String,
}

/// A torrent of the testnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestTorrent {
    /// Infohash, 40 lower-case hex digits.
    pub infohash: String,
    /// What a crawl can get of it.
    #[serde(default)]
    pub kind: TorrentKind,
    /// Its peers as `get_peers` over IPv4 returns them, `ip:port` (none for `no_peers`).
    pub peers: Vec<String>,
    /// Its name for display: the name bytes as UTF-8, invalid sequences replaced by U+FFFD.
    /// The info dict's name (and this one's fields below) describe the torrent whatever its
    /// kind; only for `ok` is that info dict served.
    #[serde(default)]
    pub name: String,
    /// Its name exactly: the info dict's name bytes, lower-case hex.
    #[serde(default)]
    pub name_hex: String,
    /// Files in it.
    #[serde(default)]
    pub file_count: u64,
    /// Bytes in all its files.
    #[serde(default)]
    pub total_bytes: u64,
    /// Its piece length.
    #[serde(default)]
    pub piece_length: u64,
}

/// A running testnet. Dropping it stops the nodes (their drivers end with their last handle);
/// [`Testnet::shutdown`] also waits for that.
#[derive(Debug)]
pub struct Testnet {
    nodes: Vec<DhtHandle>,
    manifest: Manifest,
    seeders: Vec<Seeder>,
}

/// The address of node `i` (0-based): `<base>.(i+1)`, continuing into the next /24s after
/// 254 nodes. `None` when that would leave `base`'s /16.
pub fn node_ip(base: [u8; 3], i: usize) -> Option<Ipv4Addr> {
    let third = u8::try_from(usize::from(base[2]) + i / 254).ok()?;
    Some(Ipv4Addr::new(base[0], base[1], third, (i % 254 + 1) as u8))
}

/// The synthetic seeder of torrent `t` in a testnet of `nodes` nodes: `.(t % 250 + 1)` of
/// the /24 after the nodes' last one, port `6881 + t` (wrapping after 58,653 torrents). `None`
/// if out of addresses.
pub fn seeder_addr(base: [u8; 3], nodes: usize, t: usize) -> Option<SocketAddr> {
    let last = node_ip(base, nodes.max(1) - 1)?;
    let third = last.octets()[2].checked_add(1)?;
    // Ports wrap after SEEDER_PORTS torrents; as SEEDER_PORTS and SEEDER_IPS have no common
    // factor, (ip, port) stays distinct for every torrent up to their product (14 million).
    let port = u16::try_from(usize::from(SEEDER_BASE_PORT) + t % SEEDER_PORTS).ok()?;
    let ip = Ipv4Addr::new(base[0], base[1], third, (t % SEEDER_IPS + 1) as u8);
    Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
}

/// A synthetic torrent: its info dict exists (and is served by its seeder), its data does not.
#[derive(Debug, Clone)]
pub struct SyntheticTorrent {
    /// SHA-1 of `info`.
    pub info_hash: InfoHash,
    /// The bencoded info dict.
    pub info: Arc<[u8]>,
    /// Its name, raw bytes (not always UTF-8: see [`hostile_name`]).
    pub name: Vec<u8>,
    /// Its files' paths (`/` between components) and lengths; a single-file torrent's one
    /// path is its name.
    pub files: Vec<(Vec<u8>, u64)>,
    /// Files in it.
    pub file_count: u64,
    /// Bytes in all files.
    pub total_bytes: u64,
    /// Piece length.
    pub piece_length: u64,
}

/// Whether synthetic torrent `t` has a hostile name: every fifth from `t = 5` on.
pub fn is_hostile(t: usize) -> bool {
    t >= 5 && t.is_multiple_of(5)
}

/// The hostile name of torrent `t` (see [`is_hostile`]): it starts with `estudely-hostile-`
/// and the index, then holds what breaks naive CSV writers and readers, in one of three
/// variants by `t / 5 % 3`:
///
/// * 1 (t = 5, 20, ...): comma, double quote, newline, tab, `\x01`, DEL, backslash, and the
///   invalid UTF-8 bytes `ff fe` in the middle;
/// * 2 (t = 10, 25, ...): C1 controls U+0085 and U+009F, a literal `\x41` and `\\`, CR LF,
///   valid multi-byte UTF-8, NUL, ESC, a truncated 3-byte sequence;
/// * 0 (t = 15, 30, ...): a lone continuation byte, an encoded surrogate, a code point above
///   U+10FFFF, an overlong `/`, and a trailing `ff`.
pub fn hostile_name(t: usize) -> Vec<u8> {
    let mut name = format!("estudely-hostile-{t:03}").into_bytes();
    name.extend_from_slice(match t / 5 % 3 {
        1 => &b", \"quoted\"\nline 2\ttab\x01\x7f\\back\xff\xfe-end.bin"[..],
        2 => &b" nel\xc2\x85 c1\xc2\x9f \\x41 \\\\ \r\n caf\xc3\xa9 \xe6\x97\xa5 \x00\x1b[0m,\"\xe6\x97"[..],
        _ => &b",\"\"\x80 \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf\n\\\xff"[..],
    });
    name
}

/// Synthetic torrent `t`, the same on every run: every third one has several files, every
/// fifth from `t = 5` on a hostile name and hostile paths ([`hostile_name`]).
pub fn synthetic_torrent(t: usize) -> SyntheticTorrent {
    use sha1::{Digest as _, Sha1};
    let size = 1_000_000 + (t as u64 * 7_919_993) % 900_000_000;
    let piece_length = 1u64 << (16 + t % 5);
    let hostile = is_hostile(t);
    let (name, files): (Vec<u8>, Vec<(Vec<u8>, u64)>) = if t % 3 == 2 {
        let name = if hostile {
            hostile_name(t)
        } else {
            format!("estudely-dataset-{t:03}").into_bytes()
        };
        let files = (0..1 + t % 4)
            .map(|i| {
                let path = if hostile {
                    let mut p = format!("part {i},\"x\"\n\t").into_bytes();
                    p.extend_from_slice(b"\xfe\\/data-");
                    p.extend_from_slice(format!("{t:03}-{i}\x01\x7f").as_bytes());
                    p.extend_from_slice(b"\xff.csv");
                    p
                } else {
                    format!("part-{i}/data-{t:03}-{i}.csv").into_bytes()
                };
                (path, size / 4 + i as u64)
            })
            .collect();
        (name, files)
    } else {
        let name = if hostile {
            hostile_name(t)
        } else {
            format!("estudely-sample-{t:03}.bin").into_bytes()
        };
        (name.clone(), vec![(name, size)])
    };
    let refs: Vec<(&[u8], u64)> = files.iter().map(|(p, l)| (p.as_slice(), *l)).collect();
    let info = estudely_peer_wire::synthetic_info(&name, &refs, piece_length);
    SyntheticTorrent {
        info_hash: InfoHash(Sha1::digest(&info).into()),
        info: info.into(),
        file_count: files.len() as u64,
        total_bytes: files.iter().map(|(_, l)| l).sum(),
        piece_length,
        name,
        files,
    }
}

/// The infohash of synthetic torrent `t` (the same on every run).
pub fn synthetic_info_hash(t: usize) -> InfoHash {
    synthetic_torrent(t).info_hash
}

/// The info dict a `no_metadata` torrent's seeder serves instead of its own: valid, but of
/// another torrent, so it fails the fetcher's hash check.
fn decoy_info(t: usize) -> Vec<u8> {
    let name = format!("estudely-decoy-{t:03}.bin");
    estudely_peer_wire::synthetic_info(name.as_bytes(), &[(name.as_bytes(), 1_000)], 16_384)
}

/// The manifest's torrents: every index of `cfg`, in order, with its kind.
fn manifest_torrents(cfg: &TestnetConfig) -> Vec<ManifestTorrent> {
    (0..cfg.total_torrents())
        .filter_map(|t| {
            let kind = cfg.kind(t)?;
            let torrent = synthetic_torrent(t);
            let seeder = seeder_addr(cfg.base_ip, cfg.nodes, t)?;
            let peers = match kind {
                TorrentKind::Ok | TorrentKind::NoMetadata => vec![seeder.to_string()],
                TorrentKind::NoPeers => Vec::new(),
            };
            Some(ManifestTorrent {
                infohash: torrent.info_hash.to_hex(),
                kind,
                peers,
                name: String::from_utf8_lossy(&torrent.name).into_owned(),
                name_hex: hex::encode(&torrent.name),
                file_count: torrent.file_count,
                total_bytes: torrent.total_bytes,
                piece_length: torrent.piece_length,
            })
        })
        .collect()
}

/// How long the testnet's nodes keep a stored peer: longer than any testnet runs.
const TESTNET_PEER_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Relaxed limits for our own nodes on loopback (they only ever talk to each other and to
/// tools under test).
fn node_config(cfg: &TestnetConfig) -> Config {
    Config {
        sample_interval: cfg.interval,
        max_torrents: cfg.total_torrents().max(2_000),
        query_rate: 1_000.0,
        query_burst: 100.0,
        per_ip_queries: 1_000,
        per_ip_burst: 0,
        per_ip_datagrams: 100_000,
        max_incoming_per_ip: 100_000,
        // The testnet's torrents are announced (and its `no_peers` ones stored) once, at the
        // start: they must outlive any run (the default 30 min would empty a testnet left up
        // longer, silently).
        peer_ttl: TESTNET_PEER_TTL,
        addr_policy: AddrPolicy::permissive(),
        ..Config::default()
    }
}

impl Testnet {
    /// Start the nodes, connect them, announce every torrent and check it can be found (and
    /// store the `no_peers` ones). Must run inside a tokio runtime. Bad settings (addresses outside 127/8 or running
    /// out) are [`UsageError`]s.
    pub async fn start(cfg: TestnetConfig) -> anyhow::Result<Testnet> {
        if cfg.base_ip[0] != 127 {
            let [a, b, c] = cfg.base_ip;
            bail!(UsageError(format!(
                "--base-ip {a}.{b}.{c} is not inside 127.0.0.0/8"
            )));
        }
        if cfg.nodes == 0 {
            bail!(UsageError("--nodes must be at least 1".into()));
        }
        let last_seeder = cfg.total_torrents().saturating_sub(1);
        if node_ip(cfg.base_ip, cfg.nodes - 1).is_none()
            || seeder_addr(cfg.base_ip, cfg.nodes, last_seeder).is_none()
        {
            let msg = format!(
                "{} nodes and {} torrents do not fit after --base-ip {}.{}.{}",
                cfg.nodes,
                cfg.total_torrents(),
                cfg.base_ip[0],
                cfg.base_ip[1],
                cfg.base_ip[2]
            );
            bail!(UsageError(msg));
        }

        let mut nodes = Vec::with_capacity(cfg.nodes);
        for i in 0..cfg.nodes {
            let ip = node_ip(cfg.base_ip, i).context("node address")?;
            let addr = SocketAddr::from((ip, cfg.port));
            let handle = DhtHandle::spawn(DriverConfig {
                bind: vec![addr],
                node: node_config(&cfg),
                seed: cfg.seed.map(|s| s.wrapping_add(i as u64)),
                peer_events: None,
            })
            .map_err(|e| UsageError(format!("testnet node {i}: {e:#}")))?;
            nodes.push(handle);
        }
        let boot = nodes[0].local_addrs()[0];
        let mut net = Testnet {
            manifest: Manifest {
                bootstrap: boot.to_string(),
                nodes: nodes
                    .iter()
                    .map(|n| ManifestNode {
                        addr: n.local_addrs()[0].to_string(),
                        id: n.id().to_hex(),
                    })
                    .collect(),
                torrents: Vec::new(),
                interval: cfg.interval,
            },
            nodes,
            seeders: Vec::new(),
        };
        // One metadata seeder per torrent, on the torrent's seeder address. Of the
        // `no_metadata` torrents, every other one has no seeder at all and the others one
        // that serves another info dict under their infohash.
        for t in 0..cfg.torrents + cfg.no_metadata {
            let torrent = synthetic_torrent(t);
            let info = match t.checked_sub(cfg.torrents) {
                None => torrent.info,
                Some(j) if j % 2 == 0 => continue,
                Some(_) => decoy_info(t).into(),
            };
            let addr = seeder_addr(cfg.base_ip, cfg.nodes, t).context("seeder address")?;
            let served = std::collections::HashMap::from([(torrent.info_hash.0, info)]);
            let seeder = Seeder::spawn(addr, served)
                .await
                .map_err(|e| UsageError(format!("testnet seeder {t}: {e:#}")))?;
            net.seeders.push(seeder);
        }
        net.connect(&cfg).await?;
        net.announce_all(&cfg).await?;
        net.store_no_peers(&cfg).await?;
        net.manifest.torrents = manifest_torrents(&cfg);
        if tracing::enabled!(tracing::Level::DEBUG) {
            let mut sizes = Vec::new();
            for n in &net.nodes {
                sizes.push(n.stats().await.map_or(0, |s| s.nodes_v4 + s.nodes_v6));
            }
            tracing::debug!(target: "estudely::testnet", ?sizes, "testnet ready: routing-table sizes");
        }
        Ok(net)
    }

    /// Fill the routing tables. First every node pings the others (at most [`MESH`] of them)
    /// in its own random order, so that buckets, which keep the nodes they met first, hold
    /// different nodes on different nodes (as in a real DHT, where tables are filled in
    /// different orders) and a crawler can find every node. Then everyone bootstraps from
    /// node 0, and once more from its own table.
    async fn connect(&self, cfg: &TestnetConfig) -> anyhow::Result<()> {
        let addrs: Vec<SocketAddr> = self.nodes.iter().map(|n| n.local_addrs()[0]).collect();
        let mut rng = SmallRng::seed_from_u64(cfg.seed.unwrap_or_else(|| OsRng.next_u64()));
        let limit = Arc::new(Semaphore::new(PARALLEL * 8));
        let mut tasks = JoinSet::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let mut others: Vec<SocketAddr> = (0..addrs.len())
                .filter(|&j| j != i)
                .map(|j| addrs[j])
                .collect();
            others.shuffle(&mut rng);
            others.truncate(MESH);
            for to in others {
                let (node, limit) = (node.clone(), Arc::clone(&limit));
                tasks.spawn(async move {
                    let _permit = limit.acquire().await;
                    let ping = Query::Ping {
                        id: NodeId::default(),
                    };
                    // A lost ping only means a slightly emptier table.
                    let _ = node.query(to, ping).await;
                });
            }
        }
        while let Some(r) = tasks.join_next().await {
            r.context("ping task")?;
        }
        let boot = addrs[0];
        for round in 0..2 {
            let mut tasks = JoinSet::new();
            let limit = Arc::new(Semaphore::new(PARALLEL));
            for (i, node) in self.nodes.iter().enumerate() {
                if round == 0 && i == 0 {
                    continue;
                }
                let seeds = if i == 0 { Vec::new() } else { vec![boot] };
                let (node, limit) = (node.clone(), Arc::clone(&limit));
                tasks.spawn(async move {
                    let _permit = limit.acquire().await;
                    node.bootstrap(&seeds).await
                });
            }
            while let Some(r) = tasks.join_next().await {
                r.context("bootstrap task")?.context("bootstrap")?;
            }
        }
        Ok(())
    }

    /// Announce every torrent that has a peer (`ok` and `no_metadata`) from its seeder's IP
    /// and check it can be found again.
    async fn announce_all(&self, cfg: &TestnetConfig) -> anyhow::Result<()> {
        let announced = cfg.torrents + cfg.no_metadata;
        let boot = self.bootstrap();
        let mut tasks = JoinSet::new();
        let limit = Arc::new(Semaphore::new(PARALLEL));
        for first in 0..announced.min(SEEDER_IPS) {
            // Torrents first, first + 250, ... share a seeder IP: one announcer for them.
            let mine: Vec<(InfoHash, SocketAddr)> = (first..announced)
                .step_by(SEEDER_IPS)
                .filter_map(|t| {
                    Some((
                        synthetic_info_hash(t),
                        seeder_addr(cfg.base_ip, cfg.nodes, t)?,
                    ))
                })
                .collect();
            let near = self.nodes[first % self.nodes.len()].local_addrs()[0];
            let limit = Arc::clone(&limit);
            tasks.spawn(async move {
                let _permit = limit.acquire().await;
                announce_from(&mine, &[near, boot]).await
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.context("announce task")??;
        }
        Ok(())
    }

    /// Store each `no_peers` infohash, with its one IPv6 peer, on the [`NO_PEERS_REPLICAS`]
    /// nodes whose ids are closest to it (where an announce would have put it), so that they
    /// sample it and a `get_peers` lookup reaches them.
    async fn store_no_peers(&self, cfg: &TestnetConfig) -> anyhow::Result<()> {
        // The nodes by id: the XOR-closest to an infohash lie around its place in that
        // order (in the smallest subtree holding enough of them), so a window of a few
        // dozen there holds them, instead of a sort of every node per infohash.
        let mut by_id: Vec<(NodeId, &DhtHandle)> = self.nodes.iter().map(|n| (n.id(), n)).collect();
        by_id.sort_by_key(|(id, _)| *id);
        let reach = 4 * NO_PEERS_REPLICAS;
        for t in cfg.torrents + cfg.no_metadata..cfg.total_torrents() {
            let ih = synthetic_info_hash(t);
            let port = seeder_addr(cfg.base_ip, cfg.nodes, t)
                .context("seeder address")?
                .port();
            let peer = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
            let at = by_id.partition_point(|(id, _)| id.0 < ih.0);
            let mut near: Vec<&(NodeId, &DhtHandle)> = by_id
                [at.saturating_sub(reach)..(at + reach).min(by_id.len())]
                .iter()
                .collect();
            near.sort_by_key(|(id, _)| id.distance(&ih.0));
            for (_, node) in near.into_iter().take(NO_PEERS_REPLICAS) {
                node.insert_peer(ih, peer, false)
                    .await
                    .context("store a no_peers infohash")?;
            }
        }
        Ok(())
    }

    /// Node 0's address: where to bootstrap.
    pub fn bootstrap(&self) -> SocketAddr {
        self.nodes[0].local_addrs()[0]
    }

    /// What the testnet holds.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The nodes, node 0 first.
    pub fn nodes(&self) -> &[DhtHandle] {
        &self.nodes
    }

    /// Stop every node and wait for their tasks to end.
    pub async fn shutdown(&self) {
        for n in &self.nodes {
            n.shutdown().await;
        }
    }
}

/// Announce each `(infohash, seeder)` (all seeders share one IP) through the DHT from a
/// read-only node bound to the seeder's IP, then look it up until the network returns the
/// seeder (a few attempts).
async fn announce_from(
    torrents: &[(InfoHash, SocketAddr)],
    seeds: &[SocketAddr],
) -> anyhow::Result<()> {
    let Some((_, first)) = torrents.first() else {
        return Ok(());
    };
    let client = DhtHandle::spawn(DriverConfig {
        bind: vec![SocketAddr::new(first.ip(), 0)],
        node: Config {
            read_only: true,
            query_rate: 1_000.0,
            query_burst: 100.0,
            per_ip_queries: 1_000,
            per_ip_burst: 0,
            per_ip_datagrams: 100_000,
            addr_policy: AddrPolicy::permissive(),
            ..Config::default()
        },
        seed: None,
        peer_events: None,
    })
    .with_context(|| format!("announcer on {}", first.ip()))?;
    let result = async {
        for (ih, seeder) in torrents {
            let target = NodeId(ih.0);
            let kind = LookupKind::Announce {
                port: seeder.port(),
                implied_port: false,
                // The testnet's seeders have every piece (BEP 33: counted as seeds).
                seed: true,
            };
            let mut found = false;
            for _ in 0..ANNOUNCE_TRIES {
                let announced = client.lookup(kind, target, seeds).await?;
                if announced.announced_to == 0 {
                    continue;
                }
                let check = client.lookup(LookupKind::GetPeers, target, seeds).await?;
                if check.peers.contains(seeder) {
                    found = true;
                    break;
                }
            }
            if !found {
                bail!("torrent {ih} from {seeder}: not found after {ANNOUNCE_TRIES} announces");
            }
        }
        Ok(())
    }
    .await;
    client.shutdown().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let base = [127, 0, 10];
        assert_eq!(node_ip(base, 0), Some(Ipv4Addr::new(127, 0, 10, 1)));
        assert_eq!(node_ip(base, 253), Some(Ipv4Addr::new(127, 0, 10, 254)));
        assert_eq!(node_ip(base, 254), Some(Ipv4Addr::new(127, 0, 11, 1)));
        assert_eq!(node_ip([127, 0, 255], 254), None);
        let s = |n, t| seeder_addr(base, n, t).unwrap().to_string();
        assert_eq!(s(16, 0), "127.0.11.1:6881");
        assert_eq!(s(16, 251), "127.0.11.2:7132");
        assert_eq!(s(300, 0), "127.0.12.1:6881");
        // Ports wrap; (ip, port) stays distinct.
        assert_eq!(s(16, 58_653), "127.0.11.154:6881");
        let all: std::collections::HashSet<SocketAddr> = (0..300_000)
            .map(|t| seeder_addr(base, 16, t).unwrap())
            .collect();
        assert_eq!(all.len(), 300_000);
        assert_eq!(seeder_addr([127, 0, 255], 16, 0), None);
    }

    #[test]
    fn infohashes_are_fixed_and_distinct() {
        let all: std::collections::HashSet<_> = (0..300).map(synthetic_info_hash).collect();
        assert_eq!(all.len(), 300);
        for t in [0, 1, 2, 5, 10, 15, 20] {
            let torrent = synthetic_torrent(t);
            let s = estudely_peer_wire::InfoSummary::parse(&torrent.info).unwrap();
            assert_eq!(s.name, torrent.name);
            assert_eq!(
                (s.file_count, s.total_bytes, s.piece_length),
                (
                    torrent.file_count,
                    torrent.total_bytes,
                    torrent.piece_length
                )
            );
        }
        assert_eq!(synthetic_info_hash(7), synthetic_info_hash(7));
        // The README's demo output shows these.
        assert_eq!(
            synthetic_info_hash(0).to_hex(),
            "061d0dc7fa08c80e9566b2f28eec1c2c0d78c2c9"
        );
        assert_eq!(
            synthetic_info_hash(2).to_hex(),
            "f418d60d8bf8eb90e35c8dbc22ed7b2cb946f1fd"
        );
    }

    #[test]
    fn hostile_names_and_paths() {
        let hostile: Vec<usize> = (0..40).filter(|&t| is_hostile(t)).collect();
        assert_eq!(hostile, [5, 10, 15, 20, 25, 30, 35]);
        for t in 0..5 {
            let name = synthetic_torrent(t).name;
            assert!(name.starts_with(b"estudely-") && name.is_ascii(), "{t}");
        }
        let has = |name: &[u8], what: &[u8]| name.windows(what.len()).any(|w| w == what);
        let five = synthetic_torrent(5).name;
        for what in [
            &b","[..],
            b"\"",
            b"\n",
            b"\t",
            b"\x01",
            b"\x7f",
            b"\\",
            b"\xff\xfe",
        ] {
            assert!(has(&five, what), "{what:?} in {five:?}");
        }
        let ten = synthetic_torrent(10).name;
        for what in [
            &b"\xc2\x85"[..],
            b"\xc2\x9f",
            b"\\x41",
            b"\r\n",
            b"\x00",
            b"\xc3\xa9",
        ] {
            assert!(has(&ten, what), "{what:?} in {ten:?}");
        }
        for t in [5, 10, 15] {
            let torrent = synthetic_torrent(t);
            assert!(torrent.name.starts_with(b"estudely-hostile-"));
            assert!(std::str::from_utf8(&torrent.name).is_err(), "{t}");
            let s = estudely_peer_wire::InfoSummary::parse(&torrent.info).unwrap();
            assert_eq!(s.name, torrent.name);
            let paths: Vec<Vec<u8>> = s.files.iter().map(|f| f.path.join(&b'/')).collect();
            let want: Vec<Vec<u8>> = torrent.files.iter().map(|(p, _)| p.clone()).collect();
            assert_eq!(paths, want, "{t}");
        }
        // t = 5 has several files, with hostile paths of two components each.
        let five = synthetic_torrent(5);
        assert_eq!(five.files.len(), 2);
        let s = estudely_peer_wire::InfoSummary::parse(&five.info).unwrap();
        assert_eq!(s.files[0].path[0], b"part 0,\"x\"\n\t\xfe\\");
        assert_eq!(s.files[0].path[1], b"data-005-0\x01\x7f\xff.csv");
    }

    #[test]
    fn kinds_follow_the_ok_torrents() {
        let cfg = TestnetConfig {
            torrents: 3,
            no_metadata: 2,
            no_peers: 1,
            ..TestnetConfig::default()
        };
        let kinds: Vec<_> = (0..7).map(|t| cfg.kind(t)).collect();
        use TorrentKind::*;
        assert_eq!(
            kinds,
            [
                Some(Ok),
                Some(Ok),
                Some(Ok),
                Some(NoMetadata),
                Some(NoMetadata),
                Some(NoPeers),
                None
            ]
        );
        let m = manifest_torrents(&cfg);
        assert_eq!(m.len(), 6);
        assert_eq!(
            m[3].peers,
            [seeder_addr(cfg.base_ip, cfg.nodes, 3).unwrap().to_string()]
        );
        assert!(m[5].peers.is_empty());
        assert_eq!(serde_json::to_value(m[5].kind).unwrap(), "no_peers");
        assert_eq!(serde_json::to_value(m[3].kind).unwrap(), "no_metadata");
        assert_eq!(
            hex::decode(&m[2].name_hex).unwrap(),
            synthetic_torrent(2).name
        );
        // The decoy a no_metadata seeder serves is a valid info dict of another torrent.
        let decoy = decoy_info(4);
        assert!(estudely_peer_wire::InfoSummary::parse(&decoy).is_ok());
        assert_ne!(synthetic_torrent(4).info[..], decoy[..]);
    }
}
