//! BEP 33's bloom filter of IP addresses: 2048 bits, 2 hashes taken from the SHA-1 of the
//! address bytes (4 for IPv4, 16 for IPv6), and its size estimate.
//!
//! A node answering a `get_peers` with `scrape=1` sends one filter of its stored seeds
//! (`BFsd`) and one of its other peers (`BFpe`); the requester ORs the filters of every
//! responding node and estimates the size of the union.

use std::net::IpAddr;

use sha1::{Digest, Sha1};

/// Bits in a filter (`m`).
const M: usize = 2048;

/// The largest estimate a filter may give before it is taken as a lie: BEP 33 asks nodes to
/// keep each set below 6000 addresses, and near 8000 the filter is saturated anyway.
pub const MAX_PLAUSIBLE: u32 = 6000;

/// A 256-byte BEP 33 bloom filter.
#[derive(Clone, PartialEq, Eq)]
pub struct Bloom([u8; M / 8]);

impl Default for Bloom {
    fn default() -> Self {
        Bloom([0; M / 8])
    }
}

impl std::fmt::Debug for Bloom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bloom(~{})", self.estimate())
    }
}

impl From<[u8; 256]> for Bloom {
    fn from(bits: [u8; 256]) -> Self {
        Bloom(bits)
    }
}

impl Bloom {
    /// An empty filter.
    pub fn new() -> Self {
        Bloom::default()
    }

    /// The filter's bytes, as sent in `BFsd` / `BFpe`.
    pub fn bytes(&self) -> &[u8; 256] {
        &self.0
    }

    /// Add an address (only the IP counts, never the port).
    pub fn insert(&mut self, ip: IpAddr) {
        let digest = match ip {
            IpAddr::V4(v4) => Sha1::digest(v4.octets()),
            IpAddr::V6(v6) => Sha1::digest(v6.octets()),
        };
        for pair in [[digest[0], digest[1]], [digest[2], digest[3]]] {
            let bit = usize::from(u16::from_le_bytes(pair)) % M;
            self.0[bit / 8] |= 1 << (bit % 8);
        }
    }

    /// OR `other` into this filter: the filter of the union of both sets.
    pub fn union(&mut self, other: &Bloom) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }

    /// No bit set.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|b| *b == 0)
    }

    /// BEP 33's estimate of the number of addresses inserted:
    /// `ln(c / m) / (k * ln(1 - 1/m))`, `c` the zero bits (at least 1), `m = 2048`, `k = 2`.
    pub fn estimate_f64(&self) -> f64 {
        let ones: u32 = self.0.iter().map(|b| b.count_ones()).sum();
        if ones == 0 {
            return 0.0;
        }
        let m = M as f64;
        // A full filter says "very many": count it as one zero bit to keep the log finite.
        let zeros = (m - f64::from(ones)).max(1.0);
        (zeros / m).ln() / (2.0 * (1.0 - 1.0 / m).ln())
    }

    /// [`Bloom::estimate_f64`] rounded (a full filter gives about 7800).
    pub fn estimate(&self) -> u32 {
        // Float-to-int `as` saturates; the value is finite and at most a few thousand.
        self.estimate_f64().round() as u32
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    /// BEP 33's test vector: 192.0.2.0-255 and 2001:db8::0-3e7.
    #[test]
    fn bep33_test_vector() {
        let mut b = Bloom::new();
        for i in 0..=255u8 {
            b.insert(IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)));
        }
        for i in 0..=0x3e7u16 {
            b.insert(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i)));
        }
        let want = "F6C3F5EAA07FFD91BDE89F777F26FB2BFF37BDB8FB2BBAA2FD3DDDE7BACFFF75EE7CCBAE\
            FE5EEDB1FBFAFF67F6ABFF5E43DDBCA3FD9B9FFDF4FFD3E9DFF12D1BDF59DB53DBE9FA5B\
            7FF3B8FDFCDE1AFB8BEDD7BE2F3EE71EBBBFE93BCDEEFE148246C2BC5DBFF7E7EFDCF24F\
            D8DC7ADFFD8FFFDFDDFFF7A4BBEEDF5CB95CE81FC7FCFF1FF4FFFFDFE5F7FDCBB7FD79B3\
            FA1FC77BFE07FFF905B7B7FFC7FEFEFFE0B8370BB0CD3F5B7F2BD93FEB4386CFDD6F7FD5\
            BFAF2E9EBFFFFEECD67ADBF7C67F17EFD5D75EBA6FFEBA7FFF47A91EB1BFBB53E8ABFB57\
            62ABE8FF237279BFEFBFEEF5FFC5FEBFDFE5ADFFADFEE1FB737FFFFBFD9F6AEFFEEE76B6\
            FD8F72EF";
        let got: String = b.bytes().iter().map(|x| format!("{x:02X}")).collect();
        assert_eq!(got, want);
        assert!(
            (b.estimate_f64() - 1224.9308).abs() < 0.001,
            "{}",
            b.estimate_f64()
        );
    }

    fn filled(from: u32, n: u32) -> Bloom {
        let mut b = Bloom::new();
        for i in from..from + n {
            b.insert(IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i)));
        }
        b
    }

    #[test]
    fn estimates_within_a_few_percent_and_unions() {
        assert_eq!(Bloom::new().estimate(), 0);
        assert_eq!(filled(0, 1).estimate(), 1);
        for n in [100u32, 1000] {
            let e = f64::from(filled(0, n).estimate());
            let err = (e - f64::from(n)).abs() / f64::from(n);
            assert!(err < 0.1, "{n} addresses estimated {e}");
        }
        // Two overlapping halves: the union estimates the distinct addresses.
        let mut u = filled(0, 600);
        u.union(&filled(400, 600));
        let e = f64::from(u.estimate());
        assert!((e - 1000.0).abs() < 100.0, "{e}");
        assert!(Bloom::from([0xff; 256]).estimate() > MAX_PLAUSIBLE);
    }
}
