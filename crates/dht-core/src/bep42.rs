//! BEP 42, the DHT security extension: node ids tied to external IPs.
//!
//! A secure id's first 21 bits are those of `crc32c(masked IP | r << 29)` (IPv4; for IPv6
//! the high 64 bits of the address, `r << 61`), and its last byte holds `r` in its low 3
//! bits. Nodes at local addresses (10/8, 172.16/12, 192.168/16, 169.254/16, 127/8; for IPv6
//! loopback, link-local and unique-local) are exempt.
//!
//! CRC32C is written here, table-driven with the table built at compile time: 30 lines for
//! 4 or 8 bytes hashed per check do not justify a dependency.
//!
//! Our own external IP is learnt from replies' `ip` field by [`ExternalIpVote`].

use std::collections::VecDeque;
use std::net::IpAddr;

use estudely_krpc::NodeId;

/// CRC32C (Castagnoli), reflected polynomial.
const POLY: u32 = 0x82F6_3B78;

const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 == 1 { (c >> 1) ^ POLY } else { c >> 1 };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC32C of `bytes`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in bytes {
        crc = TABLE[usize::from((crc as u8) ^ b)] ^ (crc >> 8);
    }
    !crc
}

/// Whether `ip` is on a local network, exempt from BEP 42's check.
pub fn is_exempt(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            a == 10
                || a == 127
                || (a == 172 && (16..32).contains(&b))
                || (a == 192 && b == 168)
                || (a == 169 && b == 254)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xffc0) == 0xfe80 || (first & 0xfe00) == 0xfc00
        }
    }
}

/// The CRC of `ip` masked as BEP 42 says, with `r` (its low 3 bits).
fn ip_crc(ip: IpAddr, r: u8) -> u32 {
    let r = r & 7;
    match ip {
        IpAddr::V4(v4) => {
            let mut b = v4.octets();
            for (x, m) in b.iter_mut().zip([0x03, 0x0f, 0x3f, 0xff]) {
                *x &= m;
            }
            b[0] |= r << 5;
            crc32c(&b)
        }
        IpAddr::V6(v6) => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&v6.octets()[..8]);
            for (x, m) in b
                .iter_mut()
                .zip([0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff])
            {
                *x &= m;
            }
            b[0] |= r << 5;
            crc32c(&b)
        }
    }
}

/// A secure id for `ip`: the 21-bit prefix from the CRC, the rest from `random`, whose
/// last byte is `r` (its low 3 bits are used).
pub fn secure_id(ip: IpAddr, random: [u8; 20]) -> NodeId {
    let crc = ip_crc(ip, random[19]).to_be_bytes();
    let mut id = random;
    id[0] = crc[0];
    id[1] = crc[1];
    id[2] = (crc[2] & 0xf8) | (random[2] & 0x07);
    NodeId(id)
}

/// Whether `id` is a secure id for `ip` (whatever `ip`'s range: see [`is_exempt`]).
pub fn is_secure(id: &NodeId, ip: IpAddr) -> bool {
    let crc = ip_crc(ip, id.0[19]).to_be_bytes();
    id.0[0] == crc[0] && id.0[1] == crc[1] && (id.0[2] & 0xf8) == (crc[2] & 0xf8)
}

/// How a node's id stands against its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdCheck {
    /// A secure id for its IP.
    Secure,
    /// At a local address: not checked.
    Exempt,
    /// Not derived from its IP (most of today's network): served and kept, only less
    /// preferred.
    Unsecured,
}

/// Check `id` against `ip`.
pub fn check(id: &NodeId, ip: IpAddr) -> IdCheck {
    if is_exempt(ip) {
        IdCheck::Exempt
    } else if is_secure(id, ip) {
        IdCheck::Secure
    } else {
        IdCheck::Unsecured
    }
}

/// Voters remembered at once: the latest vote of each of the last `MAX_VOTERS` voters.
const MAX_VOTERS: usize = 64;

/// Our external IP as the responders tell it (`ip` in replies), by vote.
///
/// Each voter is a /24 (IPv4) or /48 (IPv6) of responders, so that one host, or one network
/// of them, has one voice; a voter's latest vote replaces its earlier one, and only the
/// last `MAX_VOTERS` voters count. An IP wins once at least `quorum` voters name it and
/// they are more than half of all voters. A single liar therefore never moves it, and
/// neither does any minority.
#[derive(Debug, Clone)]
pub struct ExternalIpVote {
    quorum: usize,
    votes: VecDeque<([u8; 6], IpAddr)>,
    settled: Option<IpAddr>,
}

impl ExternalIpVote {
    /// A vote that needs `quorum` (at least 1) distinct voters to settle.
    pub fn new(quorum: usize) -> Self {
        ExternalIpVote {
            quorum: quorum.max(1),
            votes: VecDeque::new(),
            settled: None,
        }
    }

    /// The IP the vote settled on, if any.
    pub fn settled(&self) -> Option<IpAddr> {
        self.settled
    }

    /// `voter` says our IP is `ours`. Returns the settled IP when this vote changed it.
    pub fn vote(&mut self, voter: IpAddr, ours: IpAddr) -> Option<IpAddr> {
        let key = voter_key(voter);
        self.votes.retain(|(k, _)| *k != key);
        if self.votes.len() >= MAX_VOTERS {
            self.votes.pop_front();
        }
        self.votes.push_back((key, ours));
        let n = self.votes.iter().filter(|(_, ip)| *ip == ours).count();
        let winner = (n >= self.quorum && 2 * n > self.votes.len()).then_some(ours);
        match winner {
            Some(ip) if self.settled != Some(ip) => {
                self.settled = Some(ip);
                Some(ip)
            }
            _ => None,
        }
    }
}

/// A voter's network: the /24 of an IPv4 address, the /48 of an IPv6 one.
fn voter_key(ip: IpAddr) -> [u8; 6] {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            [4, a, b, c, 0, 0]
        }
        IpAddr::V6(v6) => {
            let o = v6.octets();
            [o[0], o[1], o[2], o[3], o[4], o[5]]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// BEP 42's test vectors: IP, `rand`, the id's bold prefix (21 bits significant).
    const VECTORS: [(&str, u8, [u8; 3]); 5] = [
        ("124.31.75.21", 1, [0x5f, 0xbf, 0xbf]),
        ("21.75.31.124", 86, [0x5a, 0x3c, 0xe9]),
        ("65.23.51.170", 22, [0xa5, 0xd4, 0x32]),
        ("84.124.73.14", 65, [0x1b, 0x03, 0x21]),
        ("43.213.53.83", 90, [0xe5, 0x6f, 0x6c]),
    ];

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn bep42_test_vectors() {
        for (addr, rand, prefix) in VECTORS {
            let mut random = [0x33u8; 20];
            random[19] = rand;
            let id = secure_id(ip(addr), random);
            assert_eq!(id.0[..2], prefix[..2], "{addr}");
            assert_eq!(id.0[2] & 0xf8, prefix[2] & 0xf8, "{addr}");
            assert_eq!(id.0[19], rand);
            assert!(is_secure(&id, ip(addr)));
            assert_eq!(check(&id, ip(addr)), IdCheck::Secure);
            // The BEP's example id itself (prefix, anything, rand) checks out.
            let mut example = [0u8; 20];
            example[..3].copy_from_slice(&prefix);
            example[19] = rand;
            assert!(is_secure(&NodeId(example), ip(addr)), "{addr}");
            // ... and not for another IP, nor with another r.
            assert!(!is_secure(&NodeId(example), ip("1.2.3.4")));
            example[19] ^= 1;
            assert!(!is_secure(&NodeId(example), ip(addr)), "{addr}");
        }
    }

    #[test]
    fn local_addresses_are_exempt() {
        for a in [
            "10.1.2.3",
            "127.0.150.1",
            "172.16.0.1",
            "172.31.255.1",
            "192.168.1.1",
            "169.254.0.9",
            "::1",
            "fe80::1",
            "fd00::1",
        ] {
            assert!(is_exempt(ip(a)), "{a}");
            assert_eq!(check(&NodeId([0; 20]), ip(a)), IdCheck::Exempt);
        }
        for a in ["172.32.0.1", "8.8.8.8", "2001:db8::1"] {
            assert!(!is_exempt(ip(a)), "{a}");
        }
        assert_eq!(check(&NodeId([0; 20]), ip("8.8.8.8")), IdCheck::Unsecured);
        let v6 = ip("2001:db8:1:2::5");
        assert!(is_secure(&secure_id(v6, [7; 20]), v6));
    }

    #[test]
    fn a_single_liar_cannot_move_the_external_ip_and_a_majority_does() {
        let mut v = ExternalIpVote::new(3);
        let (truth, lie) = (ip("203.0.113.7"), ip("198.51.100.1"));
        // The liar votes first and again and again: one voter, never a quorum.
        for _ in 0..10 {
            assert_eq!(v.vote(ip("9.9.9.9"), lie), None);
        }
        // Many liars in one /24 are still one voter.
        for i in 1..50 {
            assert_eq!(v.vote(IpAddr::from([9, 9, 9, i]), lie), None);
        }
        assert_eq!(v.vote(ip("1.1.1.1"), truth), None);
        assert_eq!(v.vote(ip("2.2.2.2"), truth), None);
        assert_eq!(v.vote(ip("3.3.3.3"), truth), Some(truth), "3 of 4 voters");
        assert_eq!(v.settled(), Some(truth));
        assert_eq!(v.vote(ip("4.4.4.4"), truth), None, "no change: no news");
        // Liars from other networks, still a minority: no move.
        assert_eq!(v.vote(ip("5.5.5.5"), lie), None);
        assert_eq!(v.settled(), Some(truth));
        // The memory is bounded whatever the voters.
        for i in 0..=255u8 {
            v.vote(IpAddr::from([20, i, 0, 1]), truth);
        }
        assert!(v.votes.len() <= MAX_VOTERS);
        // A real change of address, once most voters say so, moves it.
        let moved = ip("203.0.113.99");
        let mut changed = None;
        for i in 0..=255u8 {
            changed = changed.or(v.vote(IpAddr::from([30, i, 0, 1]), moved));
        }
        assert_eq!(changed, Some(moved));
    }
}
