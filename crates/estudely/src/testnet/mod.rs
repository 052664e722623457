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
//! [`Testnet::start`] returns once all of that is done; its [`Manifest`] says what a perfect
//! crawl must find.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use estudely_dht_core::krpc::{InfoHash, NodeId, Query};
use estudely_dht_core::{AddrPolicy, Config, LookupKind};
use rand::rngs::{OsRng, SmallRng};
use rand::seq::SliceRandom as _;
use rand::{RngCore as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::dht::{DhtHandle, DriverConfig};
use crate::resolve::UsageError;
use crate::seeder::Seeder;

/// First TCP port of the synthetic seeders: torrent `t` is served on port `6881 + t`.
pub const SEEDER_BASE_PORT: u16 = 6881;
/// Distinct seeder IPs (`.1` to `.250` of the seeders' /24).
pub const SEEDER_IPS: usize = 250;
/// Most bootstraps / announces run at once while starting.
const PARALLEL: usize = 32;
/// Most other nodes each node pings while the tables are filled.
const MESH: usize = 64;
/// Announce attempts per torrent before giving up.
const ANNOUNCE_TRIES: usize = 3;

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
        }
    }
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
    /// Its peers, `ip:port`.
    pub peers: Vec<String>,
    /// Its name (the info dict, served by the seeder, says the same).
    #[serde(default)]
    pub name: String,
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
/// the /24 after the nodes' last one, port `6881 + t`. `None` if out of addresses or ports.
pub fn seeder_addr(base: [u8; 3], nodes: usize, t: usize) -> Option<SocketAddr> {
    let last = node_ip(base, nodes.max(1) - 1)?;
    let third = last.octets()[2].checked_add(1)?;
    let port = u16::try_from(usize::from(SEEDER_BASE_PORT) + t).ok()?;
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
    /// Its name.
    pub name: String,
    /// Files in it.
    pub file_count: u64,
    /// Bytes in all files.
    pub total_bytes: u64,
    /// Piece length.
    pub piece_length: u64,
}

/// Synthetic torrent `t`, the same on every run: every third one has several files.
pub fn synthetic_torrent(t: usize) -> SyntheticTorrent {
    use sha1::{Digest as _, Sha1};
    let size = 1_000_000 + (t as u64 * 7_919_993) % 900_000_000;
    let piece_length = 1u64 << (16 + t % 5);
    let (name, files): (String, Vec<(String, u64)>) = if t % 3 == 2 {
        let name = format!("estudely-dataset-{t:03}");
        let files = (0..1 + t % 4)
            .map(|i| (format!("part-{i}/data-{t:03}-{i}.csv"), size / 4 + i as u64))
            .collect();
        (name, files)
    } else {
        let name = format!("estudely-sample-{t:03}.bin");
        (name.clone(), vec![(name, size)])
    };
    let refs: Vec<(&str, u64)> = files.iter().map(|(p, l)| (p.as_str(), *l)).collect();
    let info = estudely_peer_wire::synthetic_info(&name, &refs, piece_length);
    SyntheticTorrent {
        info_hash: InfoHash(Sha1::digest(&info).into()),
        info: info.into(),
        file_count: files.len() as u64,
        total_bytes: files.iter().map(|(_, l)| l).sum(),
        piece_length,
        name,
    }
}

/// The infohash of synthetic torrent `t` (the same on every run).
pub fn synthetic_info_hash(t: usize) -> InfoHash {
    synthetic_torrent(t).info_hash
}

/// Relaxed limits for our own nodes on loopback (they only ever talk to each other and to
/// tools under test).
fn node_config(cfg: &TestnetConfig) -> Config {
    Config {
        sample_interval: cfg.interval,
        max_torrents: cfg.torrents.max(2_000),
        query_rate: 1_000.0,
        query_burst: 100.0,
        per_ip_queries: 1_000,
        per_ip_datagrams: 100_000,
        max_incoming_per_ip: 100_000,
        addr_policy: AddrPolicy::permissive(),
        ..Config::default()
    }
}

impl Testnet {
    /// Start the nodes, connect them, announce every torrent and check it can be found.
    /// Must run inside a tokio runtime. Bad settings (addresses outside 127/8 or running
    /// out, too many torrents for the port range) are [`UsageError`]s.
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
        let last_seeder = cfg.torrents.saturating_sub(1);
        if node_ip(cfg.base_ip, cfg.nodes - 1).is_none()
            || seeder_addr(cfg.base_ip, cfg.nodes, last_seeder).is_none()
        {
            let msg = format!(
                "{} nodes and {} torrents do not fit after --base-ip {}.{}.{}",
                cfg.nodes, cfg.torrents, cfg.base_ip[0], cfg.base_ip[1], cfg.base_ip[2]
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
        // One metadata seeder per torrent, on the torrent's seeder address.
        for t in 0..cfg.torrents {
            let torrent = synthetic_torrent(t);
            let addr = seeder_addr(cfg.base_ip, cfg.nodes, t).context("seeder address")?;
            let served = std::collections::HashMap::from([(torrent.info_hash.0, torrent.info)]);
            let seeder = Seeder::spawn(addr, served)
                .await
                .map_err(|e| UsageError(format!("testnet seeder {t}: {e:#}")))?;
            net.seeders.push(seeder);
        }
        net.connect(&cfg).await?;
        net.manifest.torrents = net.announce_all(&cfg).await?;
        if tracing::enabled!(tracing::Level::DEBUG) {
            let mut sizes = Vec::new();
            for n in &net.nodes {
                sizes.push(n.stats().await.map_or(0, |s| s.nodes_v4 + s.nodes_v6));
            }
            tracing::debug!(?sizes, "testnet ready: routing-table sizes");
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

    /// Announce every torrent from its seeder's IP and check it can be found again.
    async fn announce_all(&self, cfg: &TestnetConfig) -> anyhow::Result<Vec<ManifestTorrent>> {
        let boot = self.bootstrap();
        let mut tasks = JoinSet::new();
        let limit = Arc::new(Semaphore::new(PARALLEL));
        for first in 0..cfg.torrents.min(SEEDER_IPS) {
            // Torrents first, first + 250, ... share a seeder IP: one announcer for them.
            let mine: Vec<(InfoHash, SocketAddr)> = (first..cfg.torrents)
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
        Ok((0..cfg.torrents)
            .filter_map(|t| {
                let torrent = synthetic_torrent(t);
                Some(ManifestTorrent {
                    infohash: torrent.info_hash.to_hex(),
                    peers: vec![seeder_addr(cfg.base_ip, cfg.nodes, t)?.to_string()],
                    name: torrent.name,
                    file_count: torrent.file_count,
                    total_bytes: torrent.total_bytes,
                    piece_length: torrent.piece_length,
                })
            })
            .collect())
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
        assert_eq!(seeder_addr(base, 16, 70_000), None);
        assert_eq!(seeder_addr([127, 0, 255], 16, 0), None);
    }

    #[test]
    fn infohashes_are_fixed_and_distinct() {
        let all: std::collections::HashSet<_> = (0..300).map(synthetic_info_hash).collect();
        assert_eq!(all.len(), 300);
        for t in [0, 1, 2, 5] {
            let torrent = synthetic_torrent(t);
            let s = estudely_peer_wire::InfoSummary::parse(&torrent.info).unwrap();
            assert_eq!(s.name_lossy(), torrent.name);
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
    }
}
