//! The crawl side of the store thread's queue: what is sent to it, coalesced and
//! batched, so that the bounded queue carries few requests per infohash.
//!
//! Sightings repeat (the same peer is returned by several nodes, the same node samples the
//! same infohash every interval): they are summed per (infohash, address) in a bounded map
//! and sent as one request when it is full or due. Counters are summed per name. "Maybe
//! known" questions are gathered and sent as one request per turn of the crawl loop, which
//! the store answers with one query.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;

use estudely_krpc::InfoHash;

use estudely_store::{Sighting, SightingSum};

/// Most distinct (infohash, address) pairs summed before they are sent.
pub const SIGHTINGS_WAITING: usize = 2_048;
/// Most infohashes in one "is it known?" request.
pub const CHECKS_PER_REQUEST: usize = 256;

pub use estudely_store::NO_ADDRESS;

/// Requests waiting to be sent.
#[derive(Debug)]
pub struct Outbox {
    /// Keep peer and node addresses (false: every sighting is stored under [`NO_ADDRESS`]).
    addresses: bool,
    sightings: HashMap<(InfoHash, SocketAddr), SightingSum>,
    counters: HashMap<Cow<'static, str>, u64>,
    checks: Vec<InfoHash>,
}

impl Outbox {
    /// An empty outbox.
    pub fn new(addresses: bool) -> Outbox {
        Outbox {
            addresses,
            sightings: HashMap::new(),
            counters: HashMap::new(),
            checks: Vec::new(),
        }
    }

    /// Add a sighting; true when the map is full and should be sent.
    pub fn sighting(&mut self, mut s: Sighting) -> bool {
        if !self.addresses {
            s.addr = NO_ADDRESS;
        }
        self.sightings
            .entry((s.info_hash, s.addr))
            .and_modify(|sum| sum.add(&s))
            .or_insert_with(|| SightingSum::from(s));
        self.sightings.len() >= SIGHTINGS_WAITING
    }

    /// Add a sighting if its (infohash, address) is summed already or the outbox has
    /// room; false when it is dropped (the index is away and nothing is sent).
    pub fn sighting_within_cap(&mut self, mut s: Sighting) -> bool {
        if !self.addresses {
            s.addr = NO_ADDRESS;
        }
        if let Some(sum) = self.sightings.get_mut(&(s.info_hash, s.addr)) {
            sum.add(&s);
            return true;
        }
        if self.sightings.len() >= SIGHTINGS_WAITING {
            return false;
        }
        self.sightings
            .insert((s.info_hash, s.addr), SightingSum::from(s));
        true
    }

    /// Add `n` to counter `name`.
    pub fn count(&mut self, name: Cow<'static, str>, n: u64) {
        *self.counters.entry(name).or_default() += n;
    }

    /// Ask whether `ih` is known; true when enough questions wait to fill a request.
    pub fn check(&mut self, ih: InfoHash) -> bool {
        self.checks.push(ih);
        self.checks.len() >= CHECKS_PER_REQUEST
    }

    /// The summed sightings, emptied.
    pub fn take_sightings(&mut self) -> Vec<SightingSum> {
        // Drained, not replaced: the map keeps its room for the next ones.
        self.sightings.drain().map(|(_, s)| s).collect()
    }

    /// The summed counters, emptied.
    pub fn take_counters(&mut self) -> Vec<(Cow<'static, str>, u64)> {
        self.counters.drain().collect()
    }

    /// The questions, emptied.
    pub fn take_checks(&mut self) -> Vec<InfoHash> {
        std::mem::take(&mut self.checks)
    }

    /// Whether questions wait.
    pub fn has_checks(&self) -> bool {
        !self.checks.is_empty()
    }

    /// Whether sightings or counters wait.
    pub fn has_rows(&self) -> bool {
        !self.sightings.is_empty() || !self.counters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use estudely_store::Source;

    fn sight(ih: u8, addr: &str, at: i64) -> Sighting {
        Sighting {
            info_hash: InfoHash([ih; 20]),
            addr: addr.parse().unwrap(),
            source: Source::GetPeers,
            at,
        }
    }

    #[test]
    fn sightings_are_summed_per_infohash_and_address() {
        let mut o = Outbox::new(true);
        assert!(!o.sighting(sight(1, "1.1.1.1:1", 20)));
        o.sighting(sight(1, "1.1.1.1:1", 10));
        o.sighting(sight(1, "1.1.1.1:1", 30));
        o.sighting(sight(1, "2.2.2.2:2", 5));
        o.sighting(sight(2, "1.1.1.1:1", 5));
        let mut got = o.take_sightings();
        got.sort_by_key(|s| (s.info_hash, s.addr));
        assert_eq!(got.len(), 3);
        assert_eq!(
            (got[0].first_seen, got[0].last_seen, got[0].count),
            (10, 30, 3)
        );
        assert_eq!(got[1].count, 1);
        assert!(!o.has_rows());
        for i in 0..SIGHTINGS_WAITING - 1 {
            assert!(!o.sighting(sight(1, &format!("1.1.1.1:{}", i + 1), 1)));
        }
        assert!(o.sighting(sight(3, "1.1.1.1:1", 1)), "full");
    }

    #[test]
    fn within_the_cap_known_pairs_are_summed_and_new_ones_dropped() {
        let mut o = Outbox::new(true);
        for i in 0..SIGHTINGS_WAITING {
            assert!(o.sighting_within_cap(sight(1, &format!("1.1.1.1:{}", i + 1), 1)));
        }
        assert!(!o.sighting_within_cap(sight(2, "1.1.1.1:1", 5)), "full");
        assert!(o.sighting_within_cap(sight(1, "1.1.1.1:1", 5)), "summed");
        let got = o.take_sightings();
        assert_eq!(got.len(), SIGHTINGS_WAITING);
        let first = got.iter().find(|s| s.addr.port() == 1).unwrap();
        assert_eq!((first.count, first.last_seen), (2, 5));
    }

    #[test]
    fn without_addresses_one_sum_per_infohash() {
        let mut o = Outbox::new(false);
        o.sighting(sight(1, "1.1.1.1:1", 20));
        o.sighting(sight(1, "2.2.2.2:2", 10));
        let got = o.take_sightings();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].addr, got[0].count), (NO_ADDRESS, 2));
    }

    #[test]
    fn counters_and_checks() {
        let mut o = Outbox::new(true);
        o.count("a".into(), 2);
        o.count("a".into(), 3);
        o.count(String::from("b").into(), 1);
        let mut c = o.take_counters();
        c.sort();
        assert_eq!(c, [("a".into(), 5), ("b".into(), 1)]);
        assert!(!o.has_checks());
        assert!((0..CHECKS_PER_REQUEST - 1).all(|i| !o.check(InfoHash([i as u8; 20]))));
        assert!(o.check(InfoHash([0; 20])));
        assert_eq!(o.take_checks().len(), CHECKS_PER_REQUEST);
        assert!(!o.has_checks());
    }
}
