//! BEP 42 in the node: our external IP from the `ip` field of replies to our queries, and
//! our id redrawn as a secure one when the vote settles on an IP our id does not match.
//!
//! Only replies to queries we sent vote (a forged unsolicited datagram does not), one voice
//! per responder network ([`ExternalIpVote`](crate::bep42::ExternalIpVote)). A local IP
//! (e.g. loopback, in tests and testnets) is exempt from BEP 42: the vote may settle on it,
//! but the id is kept. An id given in [`Config::id`](crate::Config) is never changed.
//!
//! An id change re-buckets both routing tables around the new id (see
//! [`RoutingTable::rebucket`](crate::routing::RoutingTable::rebucket)): every node is kept
//! where there is room, the rest go to the replacement caches. Lookups in flight go on (they
//! converge on their target, not on our id); transactions and tokens do not depend on it.

use std::net::{IpAddr, SocketAddr};

use rand::Rng;

use crate::bep42;
use crate::Node;

impl Node {
    /// `from` answered one of our queries, saying our address is `reported`.
    pub(crate) fn learn_external_ip(&mut self, from: SocketAddr, reported: Option<SocketAddr>) {
        let Some(reported) = reported else { return };
        let ip = reported.ip();
        if ip.is_unspecified() || ip.is_multicast() || ip.is_ipv4() != from.is_ipv4() {
            return;
        }
        let Some(settled) = self.external.vote(from.ip(), ip) else {
            return;
        };
        if self.config.id.is_some()
            || bep42::is_exempt(settled)
            || bep42::is_secure(&self.id, settled)
        {
            return;
        }
        let id = bep42::secure_id(settled, self.rng.gen());
        self.id = id;
        self.table4.rebucket(id);
        self.table6.rebucket(id);
        self.stats.id_changes += 1;
    }

    /// Our external IP, once the responders' vote settled on one (BEP 42).
    pub fn external_ip(&self) -> Option<IpAddr> {
        self.external.settled()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Instant;

    use estudely_krpc::{Body, Message, NodeId, Query, Response};

    use crate::addr_policy::AddrPolicy;
    use crate::{bep42, Config, Node};

    /// Ping `to` and answer as `to`, saying our address is `ours`.
    /// One second after the previous one (`now` is moved on), so no rate limit interferes.
    fn ping_answered(node: &mut Node, now: &mut Instant, to: SocketAddr, id: u8, ours: &str) {
        *now += std::time::Duration::from_secs(1);
        let now = *now;
        node.handle_timeout(now);
        node.query(
            now,
            to,
            Query::Ping {
                id: NodeId([0; 20]),
            },
        );
        let tx = std::iter::from_fn(|| node.poll_transmit())
            .find(|tx| tx.to == to)
            .expect("the ping");
        let tid = Message::decode(&tx.bytes).unwrap().tid;
        let reply = Message {
            tid,
            version: None,
            ip: Some(ours.parse().unwrap()),
            read_only: false,
            body: Body::Response(Response {
                id: NodeId([id; 20]),
                ..Response::default()
            }),
        };
        node.handle_datagram(now, to, &reply.encode());
        while node.poll_transmit().is_some() {}
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_liar_does_not_move_our_id_a_majority_does() {
        let t0 = Instant::now();
        let mut t = t0;
        let mut node = Node::new(Config::default(), t0);
        let first = node.id();
        for _ in 0..6 {
            ping_answered(
                &mut node,
                &mut t,
                addr("9.9.9.9:6881"),
                0x99,
                "198.51.100.1:6881",
            );
        }
        assert_eq!(node.external_ip(), None);
        assert_eq!(node.id(), first);
        for i in 1..=4u8 {
            let from = SocketAddr::from(([i, i, i, i], 6881));
            ping_answered(&mut node, &mut t, from, i << 4, "203.0.113.7:6881");
        }
        assert_eq!(node.external_ip(), None, "4 of 5: under the quorum");
        let before = node.routing_nodes().len();
        ping_answered(
            &mut node,
            &mut t,
            addr("5.5.5.5:6881"),
            0x50,
            "203.0.113.7:6881",
        );
        let ours = "203.0.113.7".parse().unwrap();
        assert_eq!(node.external_ip(), Some(ours));
        assert_ne!(node.id(), first);
        assert!(bep42::is_secure(&node.id(), ours));
        let stats = node.stats();
        assert_eq!(stats.id_changes, 1);
        assert_eq!(node.routing_nodes().len(), before + 1, "no node lost");
        assert_eq!(stats.nodes_unsecured, before + 1, "never banned");
        assert!(before >= 5, "{before}");
        // The liar goes on: no change.
        ping_answered(
            &mut node,
            &mut t,
            addr("9.9.9.9:6881"),
            0x99,
            "198.51.100.1:6881",
        );
        assert_eq!(node.stats().id_changes, 1);
    }

    #[test]
    fn a_local_external_ip_keeps_the_id() {
        let t0 = Instant::now();
        let config = Config {
            addr_policy: AddrPolicy::allow_private(),
            external_ip_quorum: 2,
            ..Config::default()
        };
        let mut node = Node::new(config, t0);
        let mut t = t0;
        let first = node.id();
        for i in 0..3u8 {
            let from = SocketAddr::from(([127, 0, 150 + i, 1], 6881));
            ping_answered(&mut node, &mut t, from, i + 1, "127.0.153.1:6881");
        }
        assert_eq!(node.external_ip(), Some("127.0.153.1".parse().unwrap()));
        assert_eq!(node.id(), first, "loopback is exempt");
        assert_eq!(node.stats().nodes_exempt, 3);
    }

    #[test]
    fn a_saved_external_ip_gives_a_secure_id_at_start() {
        let ours = "203.0.113.7".parse().unwrap();
        let config = Config {
            external_ip: Some(ours),
            ..Config::default()
        };
        let node = Node::new(config, Instant::now());
        assert!(bep42::is_secure(&node.id(), ours));
    }
}
