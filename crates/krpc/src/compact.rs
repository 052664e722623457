//! Compact node and peer formats: 6/18-byte peers, 26/38-byte nodes (BEP 5, BEP 32).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::{Error, NodeId};

/// A node as listed in `nodes` / `nodes6`: its id and UDP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CompactNode {
    /// The node's id.
    pub id: NodeId,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// Decode a compact IPv4 (6 bytes) or IPv6 (18 bytes) peer address.
pub fn decode_peer(key: &'static str, b: &[u8]) -> Result<SocketAddr, Error> {
    match b.len() {
        6 => Ok(addr4(b)),
        18 => Ok(addr6(b)),
        len => Err(Error::BadLength {
            key,
            len,
            expected: "6 or 18",
        }),
    }
}

/// Encode a peer address compactly (6 bytes for IPv4, 18 for IPv6).
pub fn encode_peer(addr: &SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(18);
    push_addr(&mut out, addr);
    out
}

/// Decode `nodes`: a concatenation of 26-byte IPv4 nodes.
pub fn decode_nodes4(b: &[u8]) -> Result<Vec<CompactNode>, Error> {
    decode_nodes(b, 26, "nodes", "a multiple of 26")
}

/// Decode `nodes6`: a concatenation of 38-byte IPv6 nodes.
pub fn decode_nodes6(b: &[u8]) -> Result<Vec<CompactNode>, Error> {
    decode_nodes(b, 38, "nodes6", "a multiple of 38")
}

fn decode_nodes(
    b: &[u8],
    size: usize,
    key: &'static str,
    expected: &'static str,
) -> Result<Vec<CompactNode>, Error> {
    let mut out = Vec::new();
    decode_nodes_into(b, size, key, expected, &mut out)?;
    Ok(out)
}

/// `nodes` (`v6` false) or `nodes6` appended to `out`, which takes at most one allocation.
pub(crate) fn extend_nodes(b: &[u8], v6: bool, out: &mut Vec<CompactNode>) -> Result<(), Error> {
    if v6 {
        decode_nodes_into(b, 38, "nodes6", "a multiple of 38", out)
    } else {
        decode_nodes_into(b, 26, "nodes", "a multiple of 26", out)
    }
}

fn decode_nodes_into(
    b: &[u8],
    size: usize,
    key: &'static str,
    expected: &'static str,
    out: &mut Vec<CompactNode>,
) -> Result<(), Error> {
    if !b.len().is_multiple_of(size) {
        return Err(Error::BadLength {
            key,
            len: b.len(),
            expected,
        });
    }
    out.reserve(b.len() / size);
    out.extend(b.chunks_exact(size).map(|c| {
        let mut id = [0u8; 20];
        id.copy_from_slice(&c[..20]);
        let addr = if size == 26 {
            addr4(&c[20..])
        } else {
            addr6(&c[20..])
        };
        CompactNode {
            id: NodeId(id),
            addr,
        }
    }));
    Ok(())
}

/// Encode nodes of one family; nodes of the other family are skipped.
pub fn encode_nodes(nodes: &[CompactNode], v6: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(nodes.len() * if v6 { 38 } else { 26 });
    for n in nodes.iter().filter(|n| n.addr.is_ipv6() == v6) {
        out.extend_from_slice(&n.id.0);
        push_addr(&mut out, &n.addr);
    }
    out
}

fn push_addr(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// `b` is exactly 6 bytes.
fn addr4(b: &[u8]) -> SocketAddr {
    let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([b[4], b[5]]))
}

/// `b` is exactly 18 bytes.
fn addr6(b: &[u8]) -> SocketAddr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[..16]);
    SocketAddr::new(
        IpAddr::V6(Ipv6Addr::from(o)),
        u16::from_be_bytes([b[16], b[17]]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_round_trip_and_bad_lengths() {
        for a in ["127.0.1.2:6881", "[::1]:51413"] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(decode_peer("values", &encode_peer(&a)).unwrap(), a);
        }
        assert_eq!(
            decode_peer("values", &[0; 7]),
            Err(Error::BadLength {
                key: "values",
                len: 7,
                expected: "6 or 18"
            })
        );
    }

    #[test]
    fn nodes_round_trip_and_bad_lengths() {
        let n4 = CompactNode {
            id: NodeId([7; 20]),
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        let n6 = CompactNode {
            id: NodeId([9; 20]),
            addr: "[::1]:2".parse().unwrap(),
        };
        let both = [n4, n6];
        assert_eq!(
            decode_nodes4(&encode_nodes(&both, false)).unwrap(),
            vec![n4]
        );
        assert_eq!(decode_nodes6(&encode_nodes(&both, true)).unwrap(), vec![n6]);
        assert!(decode_nodes4(&[0; 27]).is_err());
        assert!(decode_nodes6(&[0; 26]).is_err());
        assert!(decode_nodes4(&[]).unwrap().is_empty());
    }
}
