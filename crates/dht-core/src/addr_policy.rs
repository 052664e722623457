//! Which addresses learned from the network we may send to.
//!
//! A DHT reply can list any address as a node or a peer: `10.0.0.1`, `192.168.1.1`,
//! `127.0.0.1`, `0.0.0.0`, multicast, broadcast. A crawler that follows them becomes a scanner
//! of its operator's own network (or a reflector toward third parties). [`AddrPolicy`]
//! classifies every address into the special-purpose range it lies in (IANA's IPv4 and IPv6
//! special-purpose registries, RFC 6890) and refuses those that are not globally reachable
//! unicast, unless that range was allowed: automatically for the ranges the user's own
//! bootstrap addresses lie in (a loopback testnet allows 127.0.0.0/8), or wholesale for the
//! private ranges with `--allow-private`. Unspecified, multicast, broadcast, IPv4-mapped IPv6
//! and port 0 are never allowed by `--allow-private` (only by a bootstrap address in them,
//! which cannot be sent to anyway).
//!
//! Pure and sans-IO: a table lookup on the address; unit-tested below.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A special-purpose range an address lies in: why it may be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Range {
    /// Port 0 (any address): not a port anyone listens on.
    PortZero,
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 `10/8`, `172.16/12`, `192.168/16`; unique local `fc00::/7`.
    Private,
    /// `169.254/16`, `fe80::/10`.
    LinkLocal,
    /// Carrier-grade NAT shared space `100.64.0.0/10`.
    Cgnat,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`.
    Documentation,
    /// Other ranges that are not global unicast: `240.0.0.0/4`, `192.0.0.0/24` (IETF),
    /// `198.18.0.0/15` (benchmarking), the IPv6 discard and translation prefixes, and any
    /// IPv6 address outside `2000::/3`.
    Reserved,
    /// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`): a way round the IPv4 checks.
    Ipv4Mapped,
}

impl Range {
    /// Every range, in a stable order (for counters).
    pub const ALL: [Range; 11] = [
        Range::PortZero,
        Range::Unspecified,
        Range::Loopback,
        Range::Private,
        Range::LinkLocal,
        Range::Cgnat,
        Range::Multicast,
        Range::Broadcast,
        Range::Documentation,
        Range::Reserved,
        Range::Ipv4Mapped,
    ];

    /// Whether `--allow-private` allows it: private-use unicast that an operator may
    /// legitimately crawl (their own lab network), never addresses nobody can be at.
    pub fn is_private_use(self) -> bool {
        matches!(
            self,
            Range::Loopback | Range::Private | Range::LinkLocal | Range::Cgnat
        )
    }

    /// A short lower-case name, for summaries.
    pub fn name(self) -> &'static str {
        match self {
            Range::PortZero => "port-0",
            Range::Unspecified => "unspecified",
            Range::Loopback => "loopback",
            Range::Private => "private",
            Range::LinkLocal => "link-local",
            Range::Cgnat => "cgnat",
            Range::Multicast => "multicast",
            Range::Broadcast => "broadcast",
            Range::Documentation => "documentation",
            Range::Reserved => "reserved",
            Range::Ipv4Mapped => "ipv4-mapped",
        }
    }

    fn index(self) -> usize {
        Range::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The special-purpose range `ip` lies in, or `None` for global unicast.
pub fn classify_ip(ip: IpAddr) -> Option<Range> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// The special-purpose range `addr` lies in (port 0 first), or `None` if it may be sent to.
pub fn classify(addr: &SocketAddr) -> Option<Range> {
    if addr.port() == 0 {
        return Some(Range::PortZero);
    }
    classify_ip(addr.ip())
}

fn classify_v4(ip: Ipv4Addr) -> Option<Range> {
    let [a, b, c, _] = ip.octets();
    let r = match (a, b, c) {
        _ if ip.is_broadcast() => Range::Broadcast,
        (0, _, _) => Range::Unspecified,
        (127, _, _) => Range::Loopback,
        (10, _, _) => Range::Private,
        (172, 16..=31, _) | (192, 168, _) => Range::Private,
        (169, 254, _) => Range::LinkLocal,
        (100, 64..=127, _) => Range::Cgnat,
        (224..=239, _, _) => Range::Multicast,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Range::Documentation,
        (240..=255, _, _) | (192, 0, 0) | (198, 18..=19, _) => Range::Reserved,
        _ => return None,
    };
    Some(r)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Range> {
    let s = ip.segments();
    let r = if ip.is_unspecified() {
        Range::Unspecified
    } else if ip.is_loopback() {
        Range::Loopback
    } else if s[..5] == [0; 5] && s[5] == 0xffff {
        Range::Ipv4Mapped
    } else if s[0] & 0xff00 == 0xff00 {
        Range::Multicast
    } else if s[0] & 0xffc0 == 0xfe80 {
        Range::LinkLocal
    } else if s[0] & 0xfe00 == 0xfc00 {
        Range::Private
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        Range::Documentation
    } else if s[0] & 0xe000 != 0x2000
        // 2001::/23 IETF protocol assignments (Teredo 2001::/32 included), 2002::/16 6to4,
        // 64:ff9b::/96 is outside 2000::/3 already.
        || (s[0] == 0x2001 && s[1] < 0x0200)
        || s[0] == 0x2002
    {
        Range::Reserved
    } else {
        return None;
    };
    Some(r)
}

/// The address policy: which special ranges are allowed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddrPolicy {
    /// Bit `i` set: [`Range::ALL`]`[i]` is allowed.
    allowed: u16,
}

impl AddrPolicy {
    /// Refuse every special range (the default: what a node on the Internet needs).
    pub fn strict() -> Self {
        AddrPolicy { allowed: 0 }
    }

    /// Allow the private-use ranges (`--allow-private`): loopback, RFC 1918 and unique
    /// local, link-local, CGNAT.
    pub fn allow_private() -> Self {
        let mut p = AddrPolicy::strict();
        for r in Range::ALL.into_iter().filter(|r| r.is_private_use()) {
            p.allow(r);
        }
        p
    }

    /// [`AddrPolicy::allow_private`] if `allow` (the `--allow-private` flag), else
    /// [`AddrPolicy::strict`].
    pub fn with_private(allow: bool) -> Self {
        if allow {
            AddrPolicy::allow_private()
        } else {
            AddrPolicy::strict()
        }
    }

    /// Allow everything but port 0 (our own nodes in a testnet, which only talk to
    /// themselves and to tools under test).
    pub fn permissive() -> Self {
        let mut p = AddrPolicy::strict();
        for r in Range::ALL {
            if r != Range::PortZero {
                p.allow(r);
            }
        }
        p
    }

    /// Allow one range.
    pub fn allow(&mut self, r: Range) {
        self.allowed |= 1 << r.index();
    }

    /// Allow the ranges that the user's own addresses (bootstrap nodes, a query's target)
    /// lie in, so that a loopback or LAN testnet works without `--allow-private`.
    pub fn allow_ranges_of<'a>(&mut self, addrs: impl IntoIterator<Item = &'a SocketAddr>) {
        for a in addrs {
            if let Some(r) = classify_ip(a.ip()) {
                self.allow(r);
            }
        }
    }

    /// The same policy with the ranges of `addrs` allowed too.
    #[must_use]
    pub fn with_ranges_of<'a>(mut self, addrs: impl IntoIterator<Item = &'a SocketAddr>) -> Self {
        self.allow_ranges_of(addrs);
        self
    }

    /// Whether range `r` is allowed.
    pub fn allows_range(&self, r: Range) -> bool {
        self.allowed & (1 << r.index()) != 0
    }

    /// `Ok` if `addr` may be sent to, else the range that refuses it. Port 0 is always
    /// refused.
    pub fn check(&self, addr: &SocketAddr) -> Result<(), Range> {
        match classify(addr) {
            None => Ok(()),
            Some(Range::PortZero) => Err(Range::PortZero),
            Some(r) if self.allows_range(r) => Ok(()),
            Some(r) => Err(r),
        }
    }

    /// Whether `addr` may be sent to.
    pub fn allows(&self, addr: &SocketAddr) -> bool {
        self.check(addr).is_ok()
    }

    /// The allowed ranges, for a summary line.
    pub fn allowed_ranges(&self) -> Vec<Range> {
        Range::ALL
            .into_iter()
            .filter(|r| self.allows_range(*r))
            .collect()
    }
}

/// Refusals counted by range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refusals {
    counts: [u64; Range::ALL.len()],
}

impl Refusals {
    /// Count one refusal.
    pub fn add(&mut self, r: Range) {
        self.counts[r.index()] += 1;
    }

    /// Refusals in all.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Refusals of one range.
    pub fn get(&self, r: Range) -> u64 {
        self.counts[r.index()]
    }

    /// Add another set of counts.
    pub fn merge(&mut self, other: &Refusals) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
    }

    /// `private 3, multicast 1`: the non-zero counts, or `none`.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = Range::ALL
            .into_iter()
            .filter(|r| self.get(*r) > 0)
            .map(|r| format!("{} {}", r.name(), self.get(r)))
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn classifies_the_special_ranges() {
        let cases = [
            ("0.0.0.0:6881", Some(Range::Unspecified)),
            ("0.1.2.3:6881", Some(Range::Unspecified)),
            ("127.0.0.1:6881", Some(Range::Loopback)),
            ("127.9.9.9:1", Some(Range::Loopback)),
            ("10.0.0.1:6881", Some(Range::Private)),
            ("172.16.0.1:6881", Some(Range::Private)),
            ("172.31.255.255:6881", Some(Range::Private)),
            ("192.168.1.1:6881", Some(Range::Private)),
            ("169.254.1.1:6881", Some(Range::LinkLocal)),
            ("100.64.0.1:6881", Some(Range::Cgnat)),
            ("100.127.255.254:6881", Some(Range::Cgnat)),
            ("224.0.0.1:6881", Some(Range::Multicast)),
            ("239.255.255.250:1900", Some(Range::Multicast)),
            ("255.255.255.255:6881", Some(Range::Broadcast)),
            ("192.0.2.1:6881", Some(Range::Documentation)),
            ("198.51.100.7:6881", Some(Range::Documentation)),
            ("203.0.113.9:6881", Some(Range::Documentation)),
            ("240.0.0.1:6881", Some(Range::Reserved)),
            ("192.0.0.8:6881", Some(Range::Reserved)),
            ("198.18.0.1:6881", Some(Range::Reserved)),
            ("1.2.3.4:0", Some(Range::PortZero)),
            ("[::]:6881", Some(Range::Unspecified)),
            ("[::1]:6881", Some(Range::Loopback)),
            ("[fc00::1]:6881", Some(Range::Private)),
            ("[fd12:3456::1]:6881", Some(Range::Private)),
            ("[fe80::1]:6881", Some(Range::LinkLocal)),
            ("[ff02::1]:6881", Some(Range::Multicast)),
            ("[2001:db8::1]:6881", Some(Range::Documentation)),
            ("[::ffff:10.0.0.1]:6881", Some(Range::Ipv4Mapped)),
            ("[::ffff:8.8.8.8]:6881", Some(Range::Ipv4Mapped)),
            ("[2002:c000:0201::1]:6881", Some(Range::Reserved)),
            ("[2001::1]:6881", Some(Range::Reserved)),
            ("[64:ff9b::808:808]:6881", Some(Range::Reserved)),
            ("[100::1]:6881", Some(Range::Reserved)),
            // Global unicast: neighbours of the ranges above.
            ("1.1.1.1:6881", None),
            ("8.8.8.8:53", None),
            ("11.0.0.1:6881", None),
            ("172.15.255.255:6881", None),
            ("172.32.0.1:6881", None),
            ("100.63.255.255:6881", None),
            ("100.128.0.1:6881", None),
            ("192.169.0.1:6881", None),
            ("198.20.0.1:6881", None),
            ("223.255.255.255:6881", None),
            ("[2001:4860::8888]:6881", None),
            ("[2a00:1450::1]:6881", None),
            ("[2001:db9::1]:6881", None),
        ];
        for (a, want) in cases {
            assert_eq!(classify(&sa(a)), want, "{a}");
        }
    }

    #[test]
    fn strict_refuses_and_bootstrap_ranges_are_allowed() {
        let strict = AddrPolicy::strict();
        assert!(strict.allows(&sa("8.8.8.8:6881")));
        assert_eq!(strict.check(&sa("127.0.0.1:6881")), Err(Range::Loopback));
        assert_eq!(strict.check(&sa("8.8.8.8:0")), Err(Range::PortZero));

        let lab = AddrPolicy::strict().with_ranges_of(&[sa("127.0.10.1:40000")]);
        assert!(lab.allows(&sa("127.0.99.3:6881")), "whole of 127/8");
        assert!(
            !lab.allows(&sa("10.0.0.1:6881")),
            "only the bootstrap's range"
        );
        assert!(!lab.allows(&sa("127.0.0.1:0")), "port 0 never");

        let lan = AddrPolicy::strict().with_ranges_of(&[sa("192.168.1.2:6881")]);
        assert!(lan.allows(&sa("10.1.1.1:6881")), "RFC 1918 is one range");
        assert!(!lan.allows(&sa("127.0.0.1:6881")));
    }

    #[test]
    fn allow_private_keeps_refusing_what_nobody_can_be_at() {
        let p = AddrPolicy::allow_private();
        for ok in [
            "10.0.0.1:1",
            "127.0.0.1:1",
            "[fc00::1]:1",
            "169.254.0.1:1",
            "100.64.0.1:1",
        ] {
            assert!(p.allows(&sa(ok)), "{ok}");
        }
        for bad in [
            "0.0.0.0:1",
            "224.0.0.1:1",
            "255.255.255.255:1",
            "[::ffff:10.0.0.1]:1",
            "192.0.2.1:1",
            "240.0.0.1:1",
            "10.0.0.1:0",
        ] {
            assert!(!p.allows(&sa(bad)), "{bad}");
        }
        let all = AddrPolicy::permissive();
        assert!(all.allows(&sa("224.0.0.1:1")));
        assert!(!all.allows(&sa("8.8.8.8:0")));
    }

    #[test]
    fn refusals_are_counted_by_range() {
        let mut r = Refusals::default();
        assert_eq!(r.describe(), "none");
        r.add(Range::Private);
        r.add(Range::Private);
        r.add(Range::Multicast);
        assert_eq!(r.total(), 3);
        assert_eq!(r.describe(), "private 2, multicast 1");
        let mut s = Refusals::default();
        s.merge(&r);
        assert_eq!(s.get(Range::Private), 2);
    }

    proptest::proptest! {
        #[test]
        fn strict_allows_exactly_unclassified(a: [u8; 4], port: u16) {
            let addr = SocketAddr::from((a, port));
            let p = AddrPolicy::strict();
            proptest::prop_assert_eq!(p.allows(&addr), classify(&addr).is_none());
            // Allowing a range of an address always allows that address (bar port 0).
            let q = AddrPolicy::strict().with_ranges_of(&[addr]);
            proptest::prop_assert_eq!(q.allows(&addr), port != 0);
        }
    }
}
