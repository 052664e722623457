//! Splitting the keyspace between crawlers: `--shard K/N` gives crawler K the K-th of N
//! equal, contiguous slices of the 160-bit node-id space (by the id's first 32 bits). A
//! sharded crawler samples only nodes whose id lies in its slice and aims its walks and
//! sample targets inside it, so that N crawlers, on one IP or many, sample disjoint sets of
//! nodes and never spend two queries of the network's `interval` on the same node.
//!
//! Contiguous slices rather than "id mod N": with the XOR metric, a node asked for the
//! nodes closest to a target inside the slice answers with nodes of the slice, so each
//! crawler's discovery stays in its own part of the network.

use std::fmt;
use std::str::FromStr;

use rand::Rng;

/// One of `count` equal slices of the node-id space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

/// Most shards the keyspace is split into.
pub const MAX_SHARDS: u32 = 1 << 16;

impl Shard {
    /// Slice `index` (0-based) of `count`; `None` unless `index < count <= MAX_SHARDS`.
    pub fn new(index: u32, count: u32) -> Option<Shard> {
        ((1..=MAX_SHARDS).contains(&count) && index < count).then_some(Shard { index, count })
    }

    /// The whole keyspace (1/1).
    pub fn all() -> Shard {
        Shard { index: 0, count: 1 }
    }

    /// 0-based index of the slice.
    pub fn index(self) -> u32 {
        self.index
    }

    /// How many slices the keyspace is split into.
    pub fn count(self) -> u32 {
        self.count
    }

    /// First 32-bit id prefix of the slice, and the first past it (2^32 for the last).
    fn bounds(self) -> (u64, u64) {
        let lo = (u64::from(self.index) << 32) / u64::from(self.count);
        let hi = (u64::from(self.index + 1) << 32) / u64::from(self.count);
        (lo, hi)
    }

    /// Which slice of `count` the id (or infohash) `id` lies in.
    pub fn of(id: &[u8; 20], count: u32) -> u32 {
        let prefix = u64::from(u32::from_be_bytes([id[0], id[1], id[2], id[3]]));
        ((prefix * u64::from(count.max(1))) >> 32) as u32
    }

    /// Whether `id` lies in this slice.
    pub fn contains(self, id: &[u8; 20]) -> bool {
        let prefix = u64::from(u32::from_be_bytes([id[0], id[1], id[2], id[3]]));
        let (lo, hi) = self.bounds();
        prefix >= lo && prefix < hi
    }

    /// A uniformly random id inside this slice.
    pub fn random_id(self, rng: &mut impl Rng) -> [u8; 20] {
        let mut id: [u8; 20] = rng.gen();
        if self.count == 1 {
            return id;
        }
        let (lo, hi) = self.bounds();
        let prefix = lo + rng.gen_range(0..hi - lo);
        id[..4].copy_from_slice(&(prefix as u32).to_be_bytes());
        id
    }
}

/// `K/N`, 1-based as on the command line.
impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

/// Why a `K/N` shard did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a shard: expected K/N with 1 <= K <= N <= 65536, e.g. 2/4")]
pub struct BadShard(pub String);

/// Parses `K/N` with `1 <= K <= N` (the K-th of N slices).
impl FromStr for Shard {
    type Err = BadShard;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadShard(s.to_string());
        let (k, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let k: u32 = k.trim().parse().map_err(|_| bad())?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        if k == 0 {
            return Err(bad());
        }
        Shard::new(k - 1, n).ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn parses_one_based_and_refuses_nonsense() {
        let s: Shard = "2/4".parse().unwrap();
        assert_eq!((s.index(), s.count()), (1, 4));
        assert_eq!(s.to_string(), "2/4");
        assert_eq!(" 1/1 ".parse::<Shard>().unwrap(), Shard::all());
        for bad in [
            "0/4", "5/4", "4", "a/b", "1/0", "", "1/65537", "-1/2", "1/2/3",
        ] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.to_string().contains("expected K/N"), "{bad}: {e}");
        }
    }

    #[test]
    fn slices_partition_the_keyspace() {
        let mut rng = SmallRng::seed_from_u64(3);
        for count in [1u32, 2, 3, 4, 7, 16, 65_536] {
            for _ in 0..500 {
                let id: [u8; 20] = rng.gen();
                let owners: Vec<u32> = (0..count.min(64))
                    .chain(Shard::of(&id, count)..=Shard::of(&id, count))
                    .filter(|&i| Shard::new(i, count).unwrap().contains(&id))
                    .collect();
                assert!(owners.contains(&Shard::of(&id, count)));
                assert!(Shard::new(Shard::of(&id, count), count)
                    .unwrap()
                    .contains(&id));
                if count <= 64 {
                    assert_eq!(owners.len(), 2, "exactly one slice (listed twice)");
                }
            }
            for i in [0, count / 2, count - 1] {
                let s = Shard::new(i, count).unwrap();
                for _ in 0..200 {
                    assert!(s.contains(&s.random_id(&mut rng)), "{s}");
                }
            }
        }
        let edge = [0xffu8; 20];
        assert!(Shard::new(3, 4).unwrap().contains(&edge));
        assert!(Shard::new(0, 4).unwrap().contains(&[0; 20]));
    }
}
