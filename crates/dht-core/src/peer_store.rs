//! Peers announced to us, bounded and expiring, and the BEP 51 sample drawn from them.
//!
//! At most `max_torrents` infohashes and `max_peers` peers per infohash are kept; a peer
//! expires `ttl` after its last announce. When the store is full, a new infohash evicts the
//! one whose freshest peer is oldest. A `BTreeMap` keeps iteration order, so a seeded run
//! draws the same samples every time. The sample served to `sample_infohashes` is a random
//! subset of the stored infohashes, redrawn at most once per `interval`, as BEP 51 asks.
//!
//! Each stored infohash also keeps BEP 33 bloom filters of the IPs announced for it, seeds
//! and other peers apart, for scrapes. They count every announcer, not only the `max_peers`
//! kept. A bloom filter cannot forget, so there are two generations of each, the current
//! one and the one before, rotated every `ttl`: a scrape answers with both ORed, which
//! holds every live announcer, and one gone for at most `2 * ttl`. They go with their
//! infohash, so they are bounded as the store is (1 KiB per infohash).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::seq::{IteratorRandom, SliceRandom};
use rand::Rng;

use estudely_krpc::InfoHash;

use crate::bloom::Bloom;

#[derive(Debug, Clone)]
struct StoredPeer {
    addr: SocketAddr,
    seed: bool,
    expires: Instant,
}

/// One infohash's announcers: the peers kept, and the scrape filters of all of them.
#[derive(Debug, Clone)]
struct Swarm {
    peers: Vec<StoredPeer>,
    scrape: Box<ScrapeFilters>,
}

/// Two generations of seed and peer filters (see the module doc).
#[derive(Debug, Clone)]
struct ScrapeFilters {
    seeds: [Bloom; 2],
    peers: [Bloom; 2],
    /// When the current generation (index 0) began.
    since: Instant,
}

impl ScrapeFilters {
    fn new(now: Instant) -> Self {
        ScrapeFilters {
            seeds: Default::default(),
            peers: Default::default(),
            since: now,
        }
    }

    /// Start a new generation if the current one is `ttl` old (both, if twice that).
    fn rotate(&mut self, now: Instant, ttl: Duration) {
        let age = now.saturating_duration_since(self.since);
        if age < ttl {
            return;
        }
        let keep_previous = age < ttl.saturating_mul(2);
        for gens in [&mut self.seeds, &mut self.peers] {
            gens[1] = if keep_previous {
                std::mem::take(&mut gens[0])
            } else {
                Bloom::new()
            };
            gens[0] = Bloom::new();
        }
        self.since = now;
    }
}

/// The BEP 33 filters of one infohash, as answered to a scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scrape {
    /// Seeds (`BFsd`).
    pub seeds: Bloom,
    /// Other peers (`BFpe`).
    pub peers: Bloom,
}

/// Bounded store of announced peers.
#[derive(Debug, Clone)]
pub struct PeerStore {
    swarms: BTreeMap<InfoHash, Swarm>,
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
        self.swarms.values().map(|s| s.peers.len()).sum()
    }

    /// Record an announce (or refresh it).
    pub fn announce(&mut self, now: Instant, info_hash: InfoHash, addr: SocketAddr, seed: bool) {
        if !self.swarms.contains_key(&info_hash) && self.swarms.len() >= self.max_torrents {
            let oldest = self
                .swarms
                .iter()
                .min_by_key(|(_, s)| s.peers.iter().map(|p| p.expires).max())
                .map(|(ih, _)| *ih);
            if let Some(ih) = oldest {
                self.swarms.remove(&ih);
            }
        }
        let expires = now + self.ttl;
        let swarm = self.swarms.entry(info_hash).or_insert_with(|| Swarm {
            peers: Vec::new(),
            scrape: Box::new(ScrapeFilters::new(now)),
        });
        swarm.scrape.rotate(now, self.ttl);
        let filter = if seed {
            &mut swarm.scrape.seeds[0]
        } else {
            &mut swarm.scrape.peers[0]
        };
        filter.insert(addr.ip());
        let peers = &mut swarm.peers;
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
        let mut out = Vec::new();
        self.get_into(now, info_hash, max, noseed, v6, rng, &mut out);
        out
    }

    /// [`PeerStore::get`], into `out` (cleared first) rather than a new `Vec`: the same
    /// peers, chosen with the same draws of `rng`.
    #[allow(clippy::too_many_arguments)]
    pub fn get_into(
        &self,
        now: Instant,
        info_hash: &InfoHash,
        max: usize,
        noseed: bool,
        v6: bool,
        rng: &mut impl Rng,
        out: &mut Vec<SocketAddr>,
    ) {
        out.clear();
        let Some(swarm) = self.swarms.get(info_hash) else {
            return;
        };
        // The reservoir of `choose_multiple`, filled in place. Never more slots than the
        // swarm has peers: an amount above the count of matching peers takes them all with
        // no draw either way, so capping it changes nothing but the memory.
        let amount = max.min(swarm.peers.len());
        out.resize(amount, SocketAddr::from(([0, 0, 0, 0], 0)));
        let n = swarm
            .peers
            .iter()
            .filter(|p| p.expires > now && p.addr.is_ipv6() == v6 && !(noseed && p.seed))
            .map(|p| p.addr)
            .choose_multiple_fill(rng, out);
        out.truncate(n);
    }

    /// The BEP 33 filters of `info_hash`'s announcers; `None` when nothing is stored for it
    /// (BEP 33: then no filters are sent).
    pub fn scrape(&mut self, now: Instant, info_hash: &InfoHash) -> Option<Scrape> {
        let swarm = self.swarms.get_mut(info_hash)?;
        swarm.scrape.rotate(now, self.ttl);
        let f = &swarm.scrape;
        let mut out = Scrape {
            seeds: f.seeds[0].clone(),
            peers: f.peers[0].clone(),
        };
        out.seeds.union(&f.seeds[1]);
        out.peers.union(&f.peers[1]);
        Some(out)
    }

    /// Drop expired peers and empty swarms.
    pub fn expire(&mut self, now: Instant) {
        self.swarms.retain(|_, swarm| {
            swarm.peers.retain(|p| p.expires > now);
            !swarm.peers.is_empty()
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
    fn get_into_picks_as_choose_multiple_did_with_the_same_draws() {
        let t0 = Instant::now();
        let mut s = PeerStore::new(10, 100, Duration::from_secs(600));
        let ih = InfoHash([7; 20]);
        for i in 1..=30u8 {
            s.announce(t0, ih, addr(i), i % 3 == 0);
        }
        let mut out = vec![addr(99)];
        for (max, noseed) in [(0, false), (1, false), (8, true), (20, false), (29, false)]
            .into_iter()
            .chain([(30, false), (31, true), (500, false)])
        {
            let mut a = SmallRng::seed_from_u64(max as u64);
            let mut b = a.clone();
            s.get_into(t0, &ih, max, noseed, false, &mut a, &mut out);
            let was: Vec<SocketAddr> = s.swarms[&ih]
                .peers
                .iter()
                .filter(|p| p.expires > t0 && !(noseed && p.seed))
                .map(|p| p.addr)
                .choose_multiple(&mut b, max);
            assert_eq!(out, was, "max {max}");
            assert_eq!(a.gen::<u64>(), b.gen::<u64>(), "same draws, max {max}");
        }
        s.get_into(
            t0,
            &InfoHash([8; 20]),
            5,
            false,
            false,
            &mut SmallRng::seed_from_u64(1),
            &mut out,
        );
        assert!(out.is_empty(), "nothing stored");
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

    #[test]
    fn scrape_filters_count_every_announcer_and_forget_after_two_ttls() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        // Only 5 peers kept, but the filters count all 40 announcers.
        let mut s = PeerStore::new(10, 5, ttl);
        let ih = InfoHash([7; 20]);
        assert!(s.scrape(t0, &ih).is_none(), "nothing stored: no filters");
        for i in 0..40u8 {
            s.announce(t0, ih, addr(i), i < 10);
        }
        let sc = s.scrape(t0, &ih).unwrap();
        assert_eq!((sc.seeds.estimate(), sc.peers.estimate()), (10, 30));
        // One ttl later, one new seed: the old generation still counts.
        let t1 = t0 + ttl;
        s.announce(t1, ih, addr(200), true);
        let sc = s.scrape(t1, &ih).unwrap();
        assert_eq!((sc.seeds.estimate(), sc.peers.estimate()), (11, 30));
        // Another ttl on: only the seed announced at t1 (and re-announced now) remains.
        let t2 = t1 + ttl;
        s.announce(t2, ih, addr(200), true);
        let sc = s.scrape(t2, &ih).unwrap();
        assert_eq!((sc.seeds.estimate(), sc.peers.estimate()), (1, 0));
    }
}
