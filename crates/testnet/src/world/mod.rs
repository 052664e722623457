//! An endless world on loopback: `estudely testnet --world N`. Millions of torrents that
//! exist only when touched, enough to keep `estudely run` busy for hours, and a way for a
//! test to check every row a crawl stored.
//!
//! - **Torrents.** Torrent `j` (`0 <= j < N`) is a pure function of the seed and `j`
//!   ([`gen::torrent`]): name, file tree, sizes, info dict, infohash, and its [`Fate`].
//! - **Nodes.** `nodes` UDP sockets, node `k` on `<base>.(k+1)` as the fixed testnet's, each
//!   with an id derived from the seed. They do not talk to each other: every answer is
//!   computed. Node `k` stores the torrents `j ≡ k (mod nodes)` and answers
//!   `sample_infohashes` with the next `samples` of them in turn (wrapping), with the world's
//!   `interval` and `num`; so a crawler that respects intervals sees `nodes × samples /
//!   interval` new infohashes a second until it has seen them all. `find_node`,
//!   `get_peers` and samples name the 8 nodes whose ids are XOR-closest to the target.
//!   `get_peers` for a sampled torrent returns its peers at the node that sampled it and at
//!   the 8 nodes closest to its infohash (where an announce would have stored it), as on the
//!   real network; elsewhere, closer nodes.
//! - **Peers.** `seeders` TCP listeners on the /24 after the nodes' (port 6881) serve the
//!   info dict of any sampled `Ok` torrent: the handshake names the infohash. An `Ok`
//!   torrent's swarm is 1-3 of them; a `NoMetadata` torrent's one peer is a port where
//!   nothing listens (a different one for each); a `NoPeers` torrent has none.
//! - **Etiquette.** Every node counts, per source IP, `sample_infohashes` that arrive inside
//!   the interval after the previous one from that IP, and datagrams beyond 25 in any 10 s.
//!   Arrival is the kernel's stamp, not the time the node reads the query (see `arrival`), so
//!   a world too busy to read on time does not blame the crawler for its own lateness.
//!   [`WorldStats`] holds them; `--status FILE` writes them every second.
//!
//! Memory: the world remembers each infohash it has handed out (8 + 4 bytes and a hash
//! table's overhead, about 25 bytes), so that `get_peers` and the seeders can find the
//! torrent again: 25 MB per million sampled, whatever `N`.

mod arrival;
pub mod gen;
mod node;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context as _};
use estudely_krpc::{CompactNode, InfoHash, NodeId};
use serde::Serialize;

pub use gen::{fate, torrent, Content, Fate, WorldTorrent};

use crate::node_ip;
use crate::seeder::{InfoSource, Seeder};
use estudely_usage::UsageError;

/// The seeders' TCP port.
pub const SEEDER_PORT: u16 = 6881;
/// `NoMetadata` torrents' one peer is a port from here up (to 59,999) on a seeder's IP,
/// where nothing listens: a different dead address for each, as on the real network.
pub const DEAD_PORTS: u16 = 20_000;
/// Nodes that hold a sampled torrent's peers besides the one that sampled it.
const REPLICAS: usize = 8;
/// Connections each seeder serves at once.
const SEEDER_CONNECTIONS: usize = 256;

/// mix64 (splitmix's finaliser), for everything derived from the seed.
pub(crate) fn mix(z: u64) -> u64 {
    estudely_dht_core::crawl::mix(z)
}

/// What to start. Every field documents its default in `estudely testnet`.
#[derive(Debug, Clone)]
pub struct WorldConfig {
    /// Torrents in the world, `N`.
    pub torrents: u64,
    /// Nodes (default 2,000).
    pub nodes: usize,
    /// Seeder listeners (default 32).
    pub seeders: usize,
    /// BEP 51 `interval`, seconds (default 60).
    pub interval: u32,
    /// Infohashes in one `sample_infohashes` answer (default 20, as libtorrent).
    pub samples: usize,
    /// First three octets of the nodes' addresses (default 127.1.0).
    pub base_ip: [u8; 3],
    /// UDP port of every node (0: an ephemeral port each).
    pub port: u16,
    /// Everything is derived from it (default 1).
    pub seed: u64,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            torrents: 1_000_000,
            nodes: 2_000,
            seeders: 32,
            interval: 60,
            samples: 20,
            base_ip: [127, 1, 0],
            port: 0,
            seed: 1,
        }
    }
}

/// Counters of a running world, all since it started.
#[derive(Debug, Default)]
pub struct WorldStats {
    datagrams_in: AtomicU64,
    replies: AtomicU64,
    junk: AtomicU64,
    samples: AtomicU64,
    get_peers: AtomicU64,
    get_peers_values: AtomicU64,
    early_samples: AtomicU64,
    over_budget: AtomicU64,
    metadata_served: AtomicU64,
    metadata_unknown: AtomicU64,
    sampled_ok: AtomicU64,
}

/// A snapshot of [`WorldStats`], as `--status` writes it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct StatusSnapshot {
    /// Torrents in the world.
    pub torrents: u64,
    /// Distinct torrents handed out in samples.
    pub sampled: u64,
    /// ... of which `Ok` (a perfect crawl stores exactly these).
    pub sampled_ok: u64,
    /// Datagrams received by the nodes.
    pub datagrams_in: u64,
    /// Replies sent.
    pub replies: u64,
    /// Datagrams that were not a KRPC query.
    pub junk: u64,
    /// `sample_infohashes` answered.
    pub samples: u64,
    /// `get_peers` answered.
    pub get_peers: u64,
    /// ... with peers.
    pub get_peers_values: u64,
    /// Etiquette: `sample_infohashes` inside the interval of the previous answer to that IP.
    pub early_samples: u64,
    /// Etiquette: datagrams from one IP to one node beyond 25 in any 10 s.
    pub over_budget: u64,
    /// Metadata connections for a torrent of the world (served).
    pub metadata_served: u64,
    /// Metadata connections for a torrent the world never sampled (refused).
    pub metadata_unknown: u64,
}

/// The world's shared state: ids, addresses, what was sampled, counters.
#[derive(Debug)]
pub struct World {
    cfg: WorldConfig,
    ids: Vec<NodeId>,
    /// `(id, node)` sorted by id: the XOR-closest to a target are next to its place.
    by_id: Vec<([u8; 20], u32)>,
    addrs: Vec<SocketAddr>,
    seeders: Vec<SocketAddr>,
    /// The first 8 bytes of each infohash handed out → its torrent.
    sampled: Mutex<HashMap<u64, u32>>,
    stats: WorldStats,
    served_log: ServedLog,
}

/// The address of seeder `s`: `.(s % 250 + 1)` of the /24s after the nodes' last one.
pub fn seeder_ip(base: [u8; 3], nodes: usize, s: usize) -> Option<Ipv4Addr> {
    let last = node_ip(base, nodes.max(1) - 1)?;
    let third = last.octets()[2].checked_add(1 + u8::try_from(s / 250).ok()?)?;
    Some(Ipv4Addr::new(base[0], base[1], third, (s % 250 + 1) as u8))
}

fn prefix(ih: &[u8; 20]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&ih[..8]);
    u64::from_be_bytes(b)
}

impl World {
    /// The world of `cfg` whose nodes listen at `addrs` (node `k` at `addrs[k]`); the
    /// seeders' addresses follow from `cfg`.
    pub fn new(cfg: WorldConfig, addrs: Vec<SocketAddr>) -> World {
        let seeders: Vec<SocketAddr> = (0..cfg.seeders)
            .filter_map(|s| seeder_ip(cfg.base_ip, cfg.nodes, s))
            .map(|ip| SocketAddr::from((ip, SEEDER_PORT)))
            .collect();
        let ids: Vec<NodeId> = (0..addrs.len())
            .map(|k| World::node_id(cfg.seed, k))
            .collect();
        let mut by_id: Vec<([u8; 20], u32)> = ids
            .iter()
            .enumerate()
            .map(|(k, id)| (id.0, k as u32))
            .collect();
        by_id.sort_unstable();
        World {
            cfg,
            ids,
            by_id,
            addrs,
            seeders,
            sampled: Mutex::new(HashMap::new()),
            stats: WorldStats::default(),
            served_log: Mutex::new(None),
        }
    }

    /// From now on, append the infohash (hex) of every info dict served to `path`, a line
    /// each, written at once: evidence for tests that nothing is fetched twice.
    pub fn log_served(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| UsageError(format!("cannot write `{}`: {e}", path.display())))?;
        *self.served_log.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(std::io::LineWriter::new(file));
        Ok(())
    }

    /// The id of node `k`.
    fn node_id(seed: u64, k: usize) -> NodeId {
        let mut id = [0u8; 20];
        for (i, chunk) in id.chunks_mut(8).enumerate() {
            let v = mix(mix(seed ^ 0x1d) ^ mix(k as u64).wrapping_add(i as u64));
            chunk.copy_from_slice(&v.to_be_bytes()[..chunk.len()]);
        }
        NodeId(id)
    }

    /// The configuration.
    pub fn config(&self) -> &WorldConfig {
        &self.cfg
    }

    /// Node `k`'s address.
    pub fn node_addr(&self, k: usize) -> SocketAddr {
        self.addrs[k]
    }

    /// The seeders' addresses.
    pub fn seeders(&self) -> &[SocketAddr] {
        &self.seeders
    }

    /// How many torrents node `k` stores.
    pub fn stored_by(&self, k: usize) -> u64 {
        let (n, w) = (self.cfg.torrents, self.cfg.nodes as u64);
        let k = k as u64;
        if k >= n {
            0
        } else {
            (n - k).div_ceil(w)
        }
    }

    /// The `count` nodes whose ids are XOR-closest to `target`, closest first.
    pub fn closest(&self, target: &[u8; 20], count: usize) -> Vec<CompactNode> {
        self.closest_indices(target, count)
            .into_iter()
            .map(|k| CompactNode {
                id: self.ids[k],
                addr: self.addrs[k],
            })
            .collect()
    }

    fn closest_indices(&self, target: &[u8; 20], count: usize) -> Vec<usize> {
        // The XOR-closest ids share the longest prefix with the target, and the ids that
        // share a prefix are contiguous in sorted order: a window around the target's
        // place holds them (4 × count each side is ample for uniform ids).
        let at = self.by_id.partition_point(|(id, _)| id < target);
        let reach = 4 * count;
        let lo = at.saturating_sub(reach);
        let hi = (at + reach).min(self.by_id.len());
        let mut near: Vec<&([u8; 20], u32)> = self.by_id[lo..hi].iter().collect();
        near.sort_by_key(|(id, _)| NodeId(*id).distance(target));
        near.into_iter()
            .take(count)
            .map(|(_, k)| *k as usize)
            .collect()
    }

    /// Remember that torrent `j` was handed out under `ih`.
    fn note_sampled(&self, ih: &InfoHash, j: u64) {
        let mut sampled = self.sampled.lock().unwrap_or_else(|e| e.into_inner());
        if sampled.insert(prefix(&ih.0), j as u32).is_none() && fate(self.cfg.seed, j) == Fate::Ok {
            self.stats.sampled_ok.fetch_add(1, Relaxed);
        }
    }

    /// The torrent handed out under `ih`, if any.
    pub fn sampled_index(&self, ih: &[u8; 20]) -> Option<u64> {
        let sampled = self.sampled.lock().unwrap_or_else(|e| e.into_inner());
        sampled.get(&prefix(ih)).map(|&j| u64::from(j))
    }

    /// The peers of torrent `j` as `get_peers` returns them.
    pub fn peers(&self, j: u64) -> Vec<SocketAddr> {
        match fate(self.cfg.seed, j) {
            Fate::NoPeers => Vec::new(),
            Fate::NoMetadata => {
                let h = mix(self.cfg.seed ^ mix(j ^ 0xdead));
                let ip = self.seeders[(h % self.seeders.len() as u64) as usize].ip();
                vec![SocketAddr::new(
                    ip,
                    DEAD_PORTS + ((h >> 32) % 40_000) as u16,
                )]
            }
            Fate::Ok => {
                let s = self.seeders.len() as u64;
                let h = mix(self.cfg.seed ^ mix(j ^ 0x5eed));
                let first = h % s;
                let count = (1 + (h >> 32) % 3).min(s);
                (0..count)
                    .map(|i| self.seeders[((first + i * 7) % s) as usize])
                    .collect()
            }
        }
    }

    /// Whether node `k` holds the peers of torrent `j` (infohash `ih`): it sampled it, or it
    /// is among the nodes closest to it.
    fn holds(&self, k: usize, j: u64, ih: &[u8; 20]) -> bool {
        j % self.cfg.nodes as u64 == k as u64 || self.closest_indices(ih, REPLICAS).contains(&k)
    }

    /// The counters now.
    pub fn status(&self) -> StatusSnapshot {
        let s = &self.stats;
        let sampled = self.sampled.lock().map(|m| m.len()).unwrap_or(0) as u64;
        StatusSnapshot {
            torrents: self.cfg.torrents,
            sampled,
            sampled_ok: s.sampled_ok.load(Relaxed),
            datagrams_in: s.datagrams_in.load(Relaxed),
            replies: s.replies.load(Relaxed),
            junk: s.junk.load(Relaxed),
            samples: s.samples.load(Relaxed),
            get_peers: s.get_peers.load(Relaxed),
            get_peers_values: s.get_peers_values.load(Relaxed),
            early_samples: s.early_samples.load(Relaxed),
            over_budget: s.over_budget.load(Relaxed),
            metadata_served: s.metadata_served.load(Relaxed),
            metadata_unknown: s.metadata_unknown.load(Relaxed),
        }
    }
}

/// The seeders' view of the world: a sampled `Ok` torrent's info dict, made when asked.
#[derive(Debug)]
struct Served(Arc<World>);

/// Where `--served-log` writes a line per info dict served.
type ServedLog = Mutex<Option<std::io::LineWriter<std::fs::File>>>;

impl InfoSource for Served {
    fn info(&self, info_hash: &[u8; 20]) -> Option<Arc<[u8]>> {
        let world = &self.0;
        let found = world.sampled_index(info_hash).and_then(|j| {
            let t = torrent(world.cfg.seed, j);
            (t.info_hash.0 == *info_hash && t.fate == Fate::Ok).then(|| Arc::from(t.info))
        });
        if found.is_some() {
            let mut log = world.served_log.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(log) = log.as_mut() {
                use std::io::Write as _;
                // A test's evidence, not the world's job: a failed write is not fatal.
                let _ = writeln!(log, "{}", hex::encode(info_hash));
            }
        }
        let counter = if found.is_some() {
            &world.stats.metadata_served
        } else {
            &world.stats.metadata_unknown
        };
        counter.fetch_add(1, Relaxed);
        found
    }
}

/// A running world; dropping it stops it.
#[derive(Debug)]
pub struct RunningWorld {
    world: Arc<World>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _seeders: Vec<Seeder>,
}

impl RunningWorld {
    /// Bind every node and seeder and start answering. Must run inside a tokio runtime.
    /// Bad settings (addresses outside 127/8 or running out, too many sockets) are
    /// [`UsageError`]s.
    pub async fn start(cfg: WorldConfig) -> anyhow::Result<RunningWorld> {
        if cfg.base_ip[0] != 127 {
            let [a, b, c] = cfg.base_ip;
            bail!(UsageError(format!(
                "--base-ip {a}.{b}.{c} is not inside 127.0.0.0/8"
            )));
        }
        if cfg.nodes == 0 || cfg.seeders == 0 || cfg.samples == 0 || cfg.torrents == 0 {
            bail!(UsageError(
                "a world needs at least one node, seeder, sample and torrent".into()
            ));
        }
        if cfg.torrents > u64::from(u32::MAX) {
            bail!(UsageError(format!(
                "--world {} is more than {} torrents",
                cfg.torrents,
                u32::MAX
            )));
        }
        let fits = node_ip(cfg.base_ip, cfg.nodes - 1).is_some()
            && seeder_ip(cfg.base_ip, cfg.nodes, cfg.seeders - 1).is_some();
        if !fits {
            let [a, b, c] = cfg.base_ip;
            bail!(UsageError(format!(
                "{} nodes and {} seeders do not fit after --base-ip {a}.{b}.{c}",
                cfg.nodes, cfg.seeders
            )));
        }
        raise_fd_limit(cfg.nodes + cfg.seeders * 2 + SEEDER_CONNECTIONS * cfg.seeders);
        let mut sockets = Vec::with_capacity(cfg.nodes);
        let mut addrs = Vec::with_capacity(cfg.nodes);
        for k in 0..cfg.nodes {
            let ip = node_ip(cfg.base_ip, k).context("node address")?;
            let bind = SocketAddr::from((ip, cfg.port));
            let socket = tokio::net::UdpSocket::bind(bind)
                .await
                .map_err(|e| UsageError(format!("world node {k} cannot bind {bind}: {e}")))?;
            addrs.push(socket.local_addr()?);
            sockets.push(socket);
        }
        let world = Arc::new(World::new(cfg, addrs));
        let seeder_addrs = world.seeders.clone();
        let mut seeders = Vec::with_capacity(seeder_addrs.len());
        let served = Arc::new(Served(Arc::clone(&world)));
        for addr in seeder_addrs {
            let seeder = Seeder::spawn_from(addr, Arc::clone(&served), SEEDER_CONNECTIONS)
                .await
                .map_err(|e| UsageError(format!("world seeder {addr}: {e:#}")))?;
            seeders.push(seeder);
        }
        let tasks = sockets
            .into_iter()
            .enumerate()
            .map(|(k, socket)| tokio::spawn(node::serve(Arc::clone(&world), k, socket)))
            .collect();
        Ok(RunningWorld {
            world,
            tasks,
            _seeders: seeders,
        })
    }

    /// The world.
    pub fn world(&self) -> &Arc<World> {
        &self.world
    }

    /// Node 0's address: where to bootstrap.
    pub fn bootstrap(&self) -> SocketAddr {
        self.world.addrs[0]
    }
}

impl Drop for RunningWorld {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Raise the soft limit on open files towards `want` (as far as the hard limit allows): a
/// world holds a socket per node and a connection per fetch in flight.
fn raise_fd_limit(want: usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read or write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            let want = (want as libc::rlim_t + 256).min(lim.rlim_max);
            if lim.rlim_cur < want {
                lim.rlim_cur = want;
                let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
    }
}

/// An index of the first `n` torrents of the world of `seed` by infohash: what a test needs
/// to check every row a crawl stored ("is this infohash mine, and what is its torrent?").
pub fn index(seed: u64, n: u64) -> HashMap<InfoHash, u64> {
    (0..n).map(|j| (torrent(seed, j).info_hash, j)).collect()
}

#[cfg(test)]
mod tests;
