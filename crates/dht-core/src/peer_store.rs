//! Peers announced to us, bounded and expiring, and the BEP 51 sample drawn from them.
//!
//! At most `max_torrents` infohashes and `max_peers` peers per infohash are kept; a peer
//! expires `ttl` after its last announce. When the store is full, a new infohash evicts the
//! one whose freshest peer is oldest. A `BTreeMap` keeps iteration order, so a seeded run
//! draws the same samples every time. The sample served to `sample_infohashes` is a random
//! subset of the stored infohashes, redrawn at most once per `interval`, as BEP 51 asks.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::seq::{IteratorRandom, SliceRandom};
use rand::Rng;

use estudely_krpc::InfoHash;

#[derive(Debug, Clone)]
struct StoredPeer {
    addr: SocketAddr,
    seed: bool,
    expires: Instant,
}

/// Bounded store of announced peers.
#[derive(Debug, Clone)]
pub struct PeerStore {
    swarms: BTreeMap<InfoHash, Vec<StoredPeer>>,
    max_torrents: usize,
    max_peers: usize,
    ttl: Duration,
    sample: Vec<InfoHash>,
    sample_due: Option<Instant>,
}

impl PeerStore {
    /// An empty store with the given bounds.
    pub fn new(max_torrents: usize, max_peers: usize, ttl: Duration) -> Self {
        PeerStore {
            swarms: BTreeMap::new(),
            max_torrents,
            max_peers,
            ttl,
            sample: Vec::new(),
            sample_due: None,
        }
    }

    /// Number of infohashes stored.
    pub fn torrents(&self) -> usize {
        self.swarms.len()
    }

    /// Number of peers stored, all infohashes together.
    pub fn peers(&self) -> usize {
        self.swarms.values().map(Vec::len).sum()
    }

    /// Record an announce (or refresh it).
    pub fn announce(&mut self, now: Instant, info_hash: InfoHash, addr: SocketAddr, seed: bool) {
        if !self.swarms.contains_key(&info_hash) && self.swarms.len() >= self.max_torrents {
            let oldest = self
                .swarms
                .iter()
                .min_by_key(|(_, peers)| peers.iter().map(|p| p.expires).max())
                .map(|(ih, _)| *ih);
            if let Some(ih) = oldest {
                self.swarms.remove(&ih);
            }
        }
        let expires = now + self.ttl;
        let peers = self.swarms.entry(info_hash).or_default();
        if let Some(p) = peers.iter_mut().find(|p| p.addr == addr) {
            p.expires = expires;
            p.seed = seed;
            return;
        }
        if peers.len() >= self.max_peers {
            // Replace the peer closest to expiry.
            if let Some(i) = (0..peers.len()).min_by_key(|&i| peers[i].expires) {
                peers.swap_remove(i);
            }
        }
        peers.push(StoredPeer {
            addr,
            seed,
            expires,
        });
    }

    /// Up to `max` live peers of `info_hash` of the wanted family, chosen at random.
    pub fn get(
        &self,
        now: Instant,
        info_hash: &InfoHash,
        max: usize,
        noseed: bool,
        v6: bool,
        rng: &mut impl Rng,
    ) -> Vec<SocketAddr> {
        let Some(peers) = self.swarms.get(info_hash) else {
            return Vec::new();
        };
        peers
            .iter()
            .filter(|p| p.expires > now && p.addr.is_ipv6() == v6 && !(noseed && p.seed))
            .map(|p| p.addr)
            .choose_multiple(rng, max)
    }

    /// Drop expired peers and empty swarms.
    pub fn expire(&mut self, now: Instant) {
        self.swarms.retain(|_, peers| {
            peers.retain(|p| p.expires > now);
            !peers.is_empty()
        });
    }

    /// The current BEP 51 sample (at most `max` infohashes), redrawn when `interval` has
    /// passed since the last draw.
    pub fn sample(
        &mut self,
        now: Instant,
        interval: Duration,
        max: usize,
        rng: &mut impl Rng,
    ) -> &[InfoHash] {
        // An empty sample is redrawn as soon as there is something to show: a node asked
        // before anyone announced must not answer `samples: []` for a whole interval.
        let empty_but_stocked = self.sample.is_empty() && !self.swarms.is_empty();
        if empty_but_stocked || self.sample_due.is_none_or(|due| now >= due) {
            let mut s: Vec<InfoHash> = self.swarms.keys().copied().choose_multiple(rng, max);
            s.shuffle(rng);
            self.sample = s;
            self.sample_due = Some(now + interval);
        }
        &self.sample
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i], 6881))
    }

    #[test]
    fn bounded_and_expiring() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        let mut s = PeerStore::new(2, 2, ttl);
        let mut rng = SmallRng::seed_from_u64(3);
        s.announce(t0, InfoHash([1; 20]), addr(1), false);
        s.announce(t0, InfoHash([1; 20]), addr(2), true);
        s.announce(t0, InfoHash([1; 20]), addr(3), false);
        assert_eq!(s.peers(), 2);
        s.announce(t0, InfoHash([2; 20]), addr(1), false);
        s.announce(
            t0 + Duration::from_secs(1),
            InfoHash([3; 20]),
            addr(1),
            false,
        );
        assert_eq!(s.torrents(), 2);
        let got = s.get(t0, &InfoHash([3; 20]), 10, false, false, &mut rng);
        assert_eq!(got, vec![addr(1)]);
        assert!(s
            .get(t0, &InfoHash([3; 20]), 10, false, true, &mut rng)
            .is_empty());
        s.expire(t0 + ttl + Duration::from_secs(2));
        assert_eq!(s.torrents(), 0);
    }

    #[test]
    fn sample_is_stable_within_interval() {
        let t0 = Instant::now();
        let mut s = PeerStore::new(100, 10, Duration::from_secs(600));
        let mut rng = SmallRng::seed_from_u64(4);
        for i in 0..50u8 {
            s.announce(t0, InfoHash([i; 20]), addr(1), false);
        }
        let iv = Duration::from_secs(30);
        let mut empty = PeerStore::new(100, 10, Duration::from_secs(600));
        assert!(empty.sample(t0, iv, 20, &mut rng).is_empty());
        empty.announce(t0, InfoHash([9; 20]), addr(1), false);
        assert_eq!(empty.sample(t0, iv, 20, &mut rng), &[InfoHash([9; 20])]);
        let first = s.sample(t0, iv, 20, &mut rng).to_vec();
        assert_eq!(first.len(), 20);
        assert_eq!(
            s.sample(t0 + Duration::from_secs(29), iv, 20, &mut rng),
            &first[..]
        );
        assert_ne!(s.sample(t0 + iv, iv, 20, &mut rng), &first[..]);
    }
}
