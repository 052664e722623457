//! A synthetic, endless DHT whose answers are computed, not stored: node `i` lives at
//! `20.0.0.0 + i` (global unicast), its id, its infohashes and the nodes it lists are
//! derived from a seed. Nothing exists until it is asked, so a crawler can be driven through
//! millions of nodes and infohashes in bounded memory on the test side: what grows is the
//! crawler's own state, which is what the memory tests and benchmarks measure.
//!
//! Every node speaks BEP 51 with libtorrent's defaults (`interval` 21,600 s, 20 samples out
//! of `infohashes_per_node`), answers `get_peers` with `peers_per_infohash` peers at
//! `30.0.0.0 + n` and 8 nodes, and `find_node` with 8 nodes. Replies are immediate; drive it
//! with [`SynthNet::answer`] from a loop that feeds them back to the crawler.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use std::time::{Duration, Instant};

use estudely_krpc::{Body, CompactNode, InfoHash, Message, NodeId, Query, Response};

use crate::crawl::seen::mix;
use crate::crawl::{CrawlEvent, Crawler};

/// Where node `0` lives.
const BASE: u32 = 0x1400_0000;

/// The synthetic network.
#[derive(Debug, Clone)]
pub struct SynthNet {
    seed: u64,
    nodes: u32,
    infohashes_per_node: u32,
    peers_per_infohash: u32,
    calls: u64,
    /// Queries answered.
    pub answered: u64,
}

impl SynthNet {
    /// `nodes` nodes (at most 2^24), each storing `infohashes_per_node` infohashes with
    /// `peers_per_infohash` peers each.
    pub fn new(seed: u64, nodes: u32, infohashes_per_node: u32, peers_per_infohash: u32) -> Self {
        SynthNet {
            seed,
            nodes: nodes.clamp(1, 1 << 24),
            infohashes_per_node: infohashes_per_node.max(1),
            peers_per_infohash,
            calls: 0,
            answered: 0,
        }
    }

    /// The address of node `i`.
    pub fn addr(&self, i: u32) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(BASE + (i % self.nodes))), 6881)
    }

    fn index(&self, a: &SocketAddr) -> Option<u32> {
        match a.ip() {
            IpAddr::V4(v4) if a.port() == 6881 => {
                let i = u32::from(v4).checked_sub(BASE)?;
                (i < self.nodes).then_some(i)
            }
            _ => None,
        }
    }

    fn bytes20(&self, tag: u64, a: u64, b: u64) -> [u8; 20] {
        let mut out = [0u8; 20];
        let mut h = mix(self.seed ^ mix(tag) ^ mix(a.wrapping_mul(0x9E37)) ^ b);
        for chunk in out.chunks_mut(8) {
            h = mix(h);
            chunk.copy_from_slice(&h.to_le_bytes()[..chunk.len()]);
        }
        out
    }

    /// Node `i`'s id.
    pub fn id(&self, i: u32) -> NodeId {
        NodeId(self.bytes20(1, u64::from(i), 0))
    }

    /// The `k`-th infohash node `i` stores.
    pub fn infohash(&self, i: u32, k: u32) -> InfoHash {
        InfoHash(self.bytes20(2, u64::from(i), u64::from(k)))
    }

    fn listed_nodes(&mut self, i: u32) -> Vec<CompactNode> {
        self.calls += 1;
        (0..8)
            .map(|k| {
                let j = (mix(self.seed ^ mix(self.calls) ^ (u64::from(i) << 8 | k))
                    % u64::from(self.nodes)) as u32;
                CompactNode {
                    id: self.id(j),
                    addr: self.addr(j),
                }
            })
            .collect()
    }

    /// The reply of the node at `to` to the datagram `bytes`, if it is one of ours and the
    /// datagram a query.
    pub fn answer(&mut self, to: &SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
        let i = self.index(to)?;
        let msg = Message::decode(bytes).ok()?;
        let Body::Query(q) = msg.body else {
            return None;
        };
        let mut r = Response {
            id: self.id(i),
            ..Response::default()
        };
        match q {
            Query::Ping { .. } | Query::AnnouncePeer { .. } | Query::Unknown { .. } => {}
            Query::FindNode { .. } => r.nodes = self.listed_nodes(i),
            Query::GetPeers { info_hash, .. } => {
                r.nodes = self.listed_nodes(i);
                r.token = estudely_krpc::Token::new(&[1, 2, 3, 4]).ok();
                let h = mix(u64::from_le_bytes(info_hash.0[..8].try_into().ok()?));
                r.values = (0..u64::from(self.peers_per_infohash))
                    .map(|p| {
                        let ip = 0x1E00_0000 | ((mix(h ^ p) as u32) & 0x00ff_ffff);
                        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), 6881)
                    })
                    .collect();
            }
            Query::SampleInfohashes { .. } => {
                r.nodes = self.listed_nodes(i);
                let n = self.infohashes_per_node;
                let take = n.min(20);
                let start = (mix(self.calls) % u64::from(n)) as u32;
                r.samples = (0..take)
                    .map(|k| self.infohash(i, (start + k) % n))
                    .collect();
                r.num = Some(n);
                r.interval = Some(21_600);
            }
        }
        self.answered += 1;
        Some(
            Message {
                tid: msg.tid,
                version: estudely_krpc::Version::new(b"SY\x00\x01").ok(),
                ip: None,
                read_only: false,
                body: Body::Response(r),
            }
            .encode(),
        )
    }
}

impl SynthNet {
    /// Drive `crawler` against this network from `*now` in virtual time, replies arriving
    /// at once, until `stop` says so (it sees every event and the virtual time, then is asked after each batch)
    /// or `limit` of virtual time has passed. Returns the virtual time spent.
    pub fn drive(
        &mut self,
        crawler: &mut Crawler,
        now: &mut Instant,
        limit: Duration,
        mut stop: impl FnMut(&Crawler, Option<&CrawlEvent>, Instant) -> bool,
    ) -> Duration {
        let start = *now;
        loop {
            let mut busy = false;
            while let Some(t) = crawler.poll_transmit() {
                busy = true;
                if let Some(reply) = self.answer(&t.to, &t.bytes) {
                    crawler.handle_datagram(*now, t.to, &reply);
                }
            }
            while let Some(e) = crawler.poll_event() {
                if stop(crawler, Some(&e), *now) {
                    return *now - start;
                }
            }
            if stop(crawler, None, *now) || *now - start >= limit {
                return *now - start;
            }
            if !busy {
                // Nothing in flight came back at once: move the clock to the next deadline.
                let next = crawler
                    .poll_timeout()
                    .unwrap_or(*now + Duration::from_secs(1))
                    .max(*now + Duration::from_millis(1));
                *now = next;
            }
            crawler.handle_timeout(*now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_derived_and_global() {
        let mut net = SynthNet::new(7, 1_000_000, 20, 2);
        let a = net.addr(12_345);
        let q = Message {
            tid: estudely_krpc::TransactionId::new(b"ab").unwrap(),
            version: None,
            ip: None,
            read_only: false,
            body: Body::Query(Query::SampleInfohashes {
                id: NodeId([0; 20]),
                target: NodeId([1; 20]),
                want: Default::default(),
            }),
        };
        let r = Message::decode(&net.answer(&a, &q.encode()).unwrap()).unwrap();
        let Body::Response(r) = r.body else { panic!() };
        assert_eq!(r.id, net.id(12_345));
        assert_eq!(r.samples.len(), 20);
        assert_eq!(r.interval, Some(21_600));
        assert_eq!(r.nodes.len(), 8);
        assert!(r
            .nodes
            .iter()
            .all(|n| crate::addr_policy::classify(&n.addr).is_none()));
        assert!(net
            .answer(&"1.2.3.4:6881".parse().unwrap(), &q.encode())
            .is_none());
    }
}
