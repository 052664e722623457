//! A procedural model of the Mainline DHT at Internet scale: 10-20 million nodes that cost
//! nothing until a query touches one. Everything about a node (its id, address, the
//! infohashes it stores, whether it speaks BEP 51, its `interval`, its round-trip time,
//! whether it sits behind a NAT, when it is online) is a pure function of the seed and its
//! slot number, and each answer (the closest nodes, the samples, the peers) is computed when
//! asked, never stored. The real sans-IO [`crate::crawl::Crawler`] runs against it on a
//! virtual clock (see [`Simulation`]), so a six-hour crawl at 1,000 queries a second takes
//! minutes, replays exactly for a seed, and its memory is the crawler's own.
//!
//! # The model
//! - **Slots.** Slot `i` of `N` owns the `i`-th of `N` equal stretches of the keyspace; its
//!   node's id lies at a random place inside it (so ids are uniform, and the nodes closest
//!   to any target are found among a few neighbouring slots, exactly). It lives at IPv4
//!   `16.0.0.0 + i` (global unicast) on a port that changes with its sessions.
//! - **Churn.** A slot's life is a series of sessions of 1-12 hours (by slot); in each it is
//!   online with probability `online_share`, and a new session is a new node (new id, new
//!   port): the old address stops answering, as on the real network.
//! - **Unreachable.** `nat_share` of the slots never answer (behind a NAT), yet are listed
//!   by others, as real routing tables list them.
//! - **BEP 51.** `bep51_share` of the slots answer `sample_infohashes`; the others answer
//!   with error 204. Of those that do, 90 % say `interval` 21,600 s (libtorrent's default),
//!   the rest something between 60 s and an hour.
//! - **Infohashes.** `infohashes` of them, uniform in the keyspace. Each has a swarm whose
//!   size follows a power law (`P(size >= s) = s^-1.3`: most have one or two peers, a few
//!   thousands), and is stored by the `8 + size / 16` (at most 64) slots nearest to it, as
//!   popular torrents are on the real DHT. A node samples at most 20 of what it stores.
//! - **Metadata.** Each peer serves the metadata of its torrent with probability
//!   `serve_share` (by its address; a guess: the model has no peer wire). The simulated
//!   pipeline ([`Simulation`]) counts a torrent fetched when one of the first peers it would
//!   try serves.
//! - **Link.** Each slot has a round-trip time of 20-500 ms; every datagram is lost with
//!   probability `loss`, each way.

mod run;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use estudely_krpc::{
    Body, CompactNode, ErrorMsg, InfoHash, Message, NodeId, Query, Response, Token,
};

use crate::crawl::mix;

pub use run::{Checkpoint, SimConfig, Simulation};

/// Where slot 0 lives: 16.0.0.0, so that up to 2^28 slots stay in global unicast space.
const BASE: u32 = 0x1000_0000;
/// Most slots.
pub const MAX_NODES: u32 = 1 << 28;
/// Most slots storing one infohash.
const MAX_REPLICAS: u64 = 64;
/// Samples in one reply, as libtorrent.
const MAX_SAMPLES: usize = 20;
/// Peers in one `get_peers` reply.
const MAX_VALUES: u64 = 50;

const TAG_ID: u64 = 1;
const TAG_TAIL: u64 = 2;
const TAG_PORT: u64 = 3;
const TAG_SESSION: u64 = 4;
const TAG_ONLINE: u64 = 5;
const TAG_NAT: u64 = 6;
const TAG_BEP51: u64 = 7;
const TAG_INTERVAL: u64 = 8;
const TAG_RTT: u64 = 9;
const TAG_IH: u64 = 10;
const TAG_IH_TAIL: u64 = 11;
const TAG_SWARM: u64 = 12;
const TAG_LOSS: u64 = 13;
const TAG_PICK: u64 = 14;
const TAG_PEER: u64 = 15;
const TAG_SERVE: u64 = 16;

/// The model's parameters. Every field documents its default.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcConfig {
    /// Everything is derived from it. Default 1.
    pub seed: u64,
    /// Nodes (slots). Default 10,000,000; at most 2^28.
    pub nodes: u32,
    /// Distinct infohashes stored in the network. Default twice `nodes`.
    pub infohashes: u64,
    /// Share of nodes that speak BEP 51. Default 0.5.
    pub bep51_share: f64,
    /// Share of nodes that never answer (behind a NAT). Default 0.3.
    pub nat_share: f64,
    /// Share of its sessions a node is online. Default 0.85.
    pub online_share: f64,
    /// Probability that a datagram is lost, each way. Default 0.02.
    pub loss: f64,
    /// Share of peers that serve the metadata of their torrent (reachable, BEP 9).
    /// Default 0.5.
    pub serve_share: f64,
}

impl Default for ProcConfig {
    fn default() -> Self {
        ProcConfig {
            seed: 1,
            nodes: 10_000_000,
            infohashes: 20_000_000,
            bep51_share: 0.5,
            nat_share: 0.3,
            online_share: 0.85,
            loss: 0.02,
            serve_share: 0.5,
        }
    }
}

/// What the model answered, by kind, and the etiquette it saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Queries that reached a node (lost ones excluded).
    pub queries: u64,
    /// Of them, `sample_infohashes`.
    pub samples: u64,
    /// Replies sent (lost ones included).
    pub replies: u64,
    /// Datagrams lost on the way, either way.
    pub lost: u64,
    /// Queries to a node that is offline, unreachable, or no longer at that address.
    pub unanswered: u64,
    /// `sample_infohashes` that reached a node before the `interval` of its previous
    /// answer to the same crawler had passed (its answer having arrived): etiquette broken.
    /// Counted only when [`ProcNet::check_etiquette`] is on.
    pub early_samples: u64,
}

/// The procedural network.
#[derive(Debug, Clone)]
pub struct ProcNet {
    cfg: ProcConfig,
    /// Per crawler, per slot: virtual second (+1) of the last sample answered, 0 = none.
    last_sample: Vec<Vec<u32>>,
    seq: u64,
    /// Counters.
    pub stats: NetStats,
}

fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

impl ProcNet {
    /// The network described by `cfg`.
    pub fn new(mut cfg: ProcConfig) -> Self {
        cfg.nodes = cfg.nodes.clamp(2 * MAX_REPLICAS as u32, MAX_NODES);
        cfg.infohashes = cfg.infohashes.clamp(1, u64::from(u32::MAX));
        ProcNet {
            cfg,
            last_sample: Vec::new(),
            seq: 0,
            stats: NetStats::default(),
        }
    }

    /// Its parameters.
    pub fn config(&self) -> &ProcConfig {
        &self.cfg
    }

    /// Count samples sent too early, for `crawlers` crawlers (4 bytes per slot each:
    /// meant for tests and small networks).
    pub fn check_etiquette(&mut self, crawlers: usize) {
        self.last_sample = vec![vec![0; self.cfg.nodes as usize]; crawlers];
    }

    fn h(&self, tag: u64, a: u64, b: u64) -> u64 {
        mix(self.cfg.seed ^ mix(tag ^ mix(a ^ mix(b ^ 0x5157))))
    }

    fn n(&self) -> u64 {
        u64::from(self.cfg.nodes)
    }

    /// Slot `i`'s session at virtual second `t`, and whether it is online then.
    pub fn session(&self, i: u32, t: u64) -> (u64, bool) {
        let h = self.h(TAG_SESSION, u64::from(i), 0);
        let len = 3_600 * (1 + h % 12);
        let e = (t + (h >> 8) % len) / len;
        let online = unit(self.h(TAG_ONLINE, u64::from(i), e)) < self.cfg.online_share;
        (e, online)
    }

    /// Whether slot `i` is behind a NAT (never answers).
    pub fn unreachable(&self, i: u32) -> bool {
        unit(self.h(TAG_NAT, u64::from(i), 0)) < self.cfg.nat_share
    }

    /// Whether slot `i` speaks BEP 51.
    pub fn bep51(&self, i: u32) -> bool {
        unit(self.h(TAG_BEP51, u64::from(i), 0)) < self.cfg.bep51_share
    }

    /// Slot `i`'s BEP 51 `interval`.
    pub fn interval(&self, i: u32) -> u32 {
        let h = self.h(TAG_INTERVAL, u64::from(i), 0);
        if unit(h) < 0.1 {
            60 + ((h >> 8) % 3_541) as u32
        } else {
            21_600
        }
    }

    fn rtt(&self, i: u32) -> Duration {
        Duration::from_millis(20 + self.h(TAG_RTT, u64::from(i), 0) % 481)
    }

    /// The first 64 bits of slot `i`'s id in session `e`.
    fn id_prefix(&self, i: u32, e: u64) -> u64 {
        let u = self.h(TAG_ID, u64::from(i), e);
        (((u128::from(i) << 64) | u128::from(u)) / u128::from(self.n())) as u64
    }

    /// Slot `i`'s id in session `e`.
    pub fn id(&self, i: u32, e: u64) -> NodeId {
        let mut id = [0u8; 20];
        id[..8].copy_from_slice(&self.id_prefix(i, e).to_be_bytes());
        id[8..16].copy_from_slice(&self.h(TAG_TAIL, u64::from(i), e).to_be_bytes());
        id[16..].copy_from_slice(&(self.h(TAG_TAIL, u64::from(i), !e) as u32).to_be_bytes());
        NodeId(id)
    }

    /// Slot `i`'s address in session `e`.
    pub fn addr(&self, i: u32, e: u64) -> SocketAddr {
        let port = 1_024 + (self.h(TAG_PORT, u64::from(i), e) % 64_000) as u16;
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(BASE + i)), port)
    }

    /// The slot at `a`, if `a` is in the model's range.
    pub fn slot(&self, a: &SocketAddr) -> Option<u32> {
        let IpAddr::V4(v4) = a.ip() else {
            return None;
        };
        let i = u32::from(v4).checked_sub(BASE)?;
        (i < self.cfg.nodes).then_some(i)
    }

    /// The slot whose stretch of keyspace holds the 64-bit position `pos`.
    fn slot_of(&self, pos: u64) -> u64 {
        ((u128::from(pos) * u128::from(self.n())) >> 64) as u64
    }

    /// The `k` nodes closest to `target` at virtual second `t`, closest first (online or
    /// not, reachable or not: as routing tables list them).
    pub fn closest(&self, target: &[u8; 20], t: u64, k: usize) -> Vec<CompactNode> {
        let pos = u64::from_be_bytes(target[..8].try_into().unwrap_or_default());
        let tgt = u128::from_be_bytes(target[..16].try_into().unwrap_or_default());
        let c = self.slot_of(pos);
        // Slots are equal stretches with one node each: the k closest by XOR lie within a
        // few stretches of the target's (the smallest aligned block holding k nodes spans
        // fewer than 2k + 2 stretches).
        let w = 2 * k as u64 + 4;
        let lo = c.saturating_sub(w);
        let hi = (c + w).min(self.n() - 1);
        let mut cand: Vec<(u128, CompactNode)> = (lo..=hi)
            .map(|i| {
                let i = i as u32;
                let (e, _) = self.session(i, t);
                let id = self.id(i, e);
                let d = u128::from_be_bytes(id.0[..16].try_into().unwrap_or_default()) ^ tgt;
                (
                    d,
                    CompactNode {
                        id,
                        addr: self.addr(i, e),
                    },
                )
            })
            .collect();
        cand.sort_unstable_by_key(|(d, _)| *d);
        cand.into_iter().take(k).map(|(_, n)| n).collect()
    }

    /// Infohash `j`'s 64-bit position in the keyspace.
    fn ih_pos(&self, j: u64) -> u64 {
        let u = self.h(TAG_IH, j, 0);
        (((u128::from(j) << 64) | u128::from(u)) / u128::from(self.cfg.infohashes)) as u64
    }

    /// Infohash `j` (its index is readable in bytes 8..12, see [`ProcNet::infohash_index`]).
    pub fn infohash(&self, j: u64) -> InfoHash {
        let mut b = [0u8; 20];
        b[..8].copy_from_slice(&self.ih_pos(j).to_be_bytes());
        b[8..12].copy_from_slice(&(j as u32).to_be_bytes());
        b[12..].copy_from_slice(&self.h(TAG_IH_TAIL, j, 0).to_be_bytes());
        InfoHash(b)
    }

    /// The index of an infohash of this network; `None` for any other.
    pub fn infohash_index(&self, ih: &InfoHash) -> Option<u64> {
        let j = u64::from(u32::from_be_bytes(ih.0[8..12].try_into().ok()?));
        (j < self.cfg.infohashes && self.infohash(j) == *ih).then_some(j)
    }

    /// Peers in infohash `j`'s swarm.
    pub fn swarm(&self, j: u64) -> u64 {
        let u = unit(self.h(TAG_SWARM, j, 0)).max(1e-12);
        (u.powf(-1.0 / 1.3) as u64).clamp(1, 100_000)
    }

    /// Whether the peer at `peer` would serve a metadata fetch (see the module doc).
    pub fn serves_metadata(&self, peer: &SocketAddr) -> bool {
        let ip = match peer.ip() {
            IpAddr::V4(v4) => u64::from(u32::from(v4)),
            IpAddr::V6(_) => return false,
        };
        unit(self.h(TAG_SERVE, ip, u64::from(peer.port()))) < self.cfg.serve_share
    }

    /// The slots storing infohash `j`: `lo..=hi`.
    pub fn replicas(&self, j: u64) -> (u64, u64) {
        let r = (8 + self.swarm(j) / 16).min(MAX_REPLICAS);
        let c = self.slot_of(self.ih_pos(j));
        let lo = c.saturating_sub((r - 1) / 2).min(self.n() - r);
        (lo, lo + r - 1)
    }

    /// The infohashes slot `i` stores (indices, ascending).
    pub fn stored(&self, i: u32) -> Vec<u64> {
        let (n, m) = (self.n(), self.cfg.infohashes);
        // An infohash is stored within half its replicas of its own slot, except at the
        // top of the keyspace where its replicas shift down.
        let reach = if u64::from(i) + MAX_REPLICAS >= n {
            MAX_REPLICAS + 1
        } else {
            MAX_REPLICAS / 2 + 1
        };
        let lo = u64::from(i).saturating_sub(reach);
        let hi = (u64::from(i) + reach + 1).min(n);
        let jlo = ((u128::from(lo) * u128::from(m)) / u128::from(n)) as u64;
        let jhi = (((u128::from(hi) * u128::from(m)) / u128::from(n)) as u64 + 1).min(m);
        (jlo..jhi)
            .filter(|&j| {
                let (a, b) = self.replicas(j);
                (a..=b).contains(&u64::from(i))
            })
            .collect()
    }

    /// The reply of the node at `to` to the datagram `bytes` from crawler `crawler` at
    /// virtual time `t`, and when it arrives (after the round trip); `None` when nothing
    /// comes back (lost, offline, unreachable, gone, or not a query).
    pub fn answer(
        &mut self,
        crawler: usize,
        t: Duration,
        to: &SocketAddr,
        bytes: &[u8],
    ) -> Option<(Duration, Vec<u8>)> {
        let i = self.slot(to)?;
        self.seq += 1;
        let seq = self.seq;
        let secs = t.as_secs();
        if unit(self.h(TAG_LOSS, seq, 0)) < self.cfg.loss {
            self.stats.lost += 1;
            return None;
        }
        let msg = Message::decode(bytes).ok()?;
        let Body::Query(q) = msg.body else {
            return None;
        };
        self.stats.queries += 1;
        let (e, online) = self.session(i, secs);
        if !online || self.unreachable(i) || self.addr(i, e) != *to {
            self.stats.unanswered += 1;
            return None;
        }
        let id = self.id(i, e);
        let mut r = Response {
            id,
            ..Response::default()
        };
        let mut sampled = false;
        let body = match q {
            Query::Ping { .. } | Query::AnnouncePeer { .. } | Query::Unknown { .. } => {
                Body::Response(r)
            }
            Query::FindNode { target, .. } => {
                r.nodes = self.closest(&target.0, secs, 8);
                Body::Response(r)
            }
            Query::GetPeers { info_hash, .. } => {
                r.nodes = self.closest(&info_hash.0, secs, 8);
                r.token = Token::new(&self.h(TAG_PEER, u64::from(i), 0).to_be_bytes()).ok();
                if let Some(j) = self.infohash_index(&info_hash) {
                    let (a, b) = self.replicas(j);
                    if (a..=b).contains(&u64::from(i)) {
                        r.values = (0..self.swarm(j).min(MAX_VALUES))
                            .map(|p| {
                                let ip = 0x2800_0000 | (self.h(TAG_PEER, j, p) as u32 & 0xff_ffff);
                                SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), 6881)
                            })
                            .collect();
                    }
                }
                Body::Response(r)
            }
            Query::SampleInfohashes { target, .. } if self.bep51(i) => {
                self.stats.samples += 1;
                sampled = true;
                r.nodes = self.closest(&target.0, secs, 8);
                let mut stored = self.stored(i);
                r.num = Some(stored.len() as u32);
                if stored.len() > MAX_SAMPLES {
                    stored.sort_unstable_by_key(|&j| self.h(TAG_PICK, j, seq));
                    stored.truncate(MAX_SAMPLES);
                }
                r.samples = stored.into_iter().map(|j| self.infohash(j)).collect();
                r.interval = Some(self.interval(i));
                Body::Response(r)
            }
            Query::SampleInfohashes { .. } => Body::Error(ErrorMsg {
                code: 204,
                message: "Method Unknown".into(),
                id: Some(id),
                reflected_port: None,
            }),
        };
        self.stats.replies += 1;
        let reply_lost = unit(self.h(TAG_LOSS, seq, 1)) < self.cfg.loss;
        if sampled {
            self.note_sample(crawler, i, secs, e, reply_lost);
        }
        if reply_lost {
            self.stats.lost += 1;
            return None;
        }
        let reply = Message {
            tid: msg.tid,
            version: estudely_krpc::Version::new(b"LT\x02\x00").ok(),
            ip: None,
            read_only: false,
            body,
        };
        Some((self.rtt(i), reply.encode()))
    }

    /// Etiquette: a sample before the interval of the previous answer that arrived.
    fn note_sample(&mut self, crawler: usize, i: u32, secs: u64, e: u64, reply_lost: bool) {
        let interval = u64::from(self.interval(i));
        let Some(last) = self
            .last_sample
            .get(crawler)
            .map(|v| u64::from(v[i as usize]))
        else {
            return;
        };
        if last > 0 {
            let prev = last - 1;
            let same_node = self.session(i, prev).0 == e;
            if same_node && secs < prev + interval {
                self.stats.early_samples += 1;
            }
        }
        if !reply_lost {
            self.last_sample[crawler][i as usize] = secs.min(u64::from(u32::MAX - 1)) as u32 + 1;
        }
    }

    /// Infohashes stored by at least one node that could ever answer a sample (reachable,
    /// speaks BEP 51): the most sampling alone can find. Walks every infohash: seconds at
    /// 20 million.
    pub fn samplable(&self) -> u64 {
        (0..self.cfg.infohashes)
            .filter(|&j| {
                let (a, b) = self.replicas(j);
                (a..=b).any(|i| self.bep51(i as u32) && !self.unreachable(i as u32))
            })
            .count() as u64
    }
}

#[cfg(test)]
mod tests;
