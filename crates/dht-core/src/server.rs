//! Answers to incoming queries: everything a full node must answer (BEP 5, 32, 51).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use estudely_krpc::{codes, Body, ErrorMsg, Message, Query, Response, TransactionId, Want};

use crate::Node;

/// Most `values` in a `get_peers` reply that carries BEP 33 filters.
const MAX_VALUES_WITH_SCRAPE: usize = 25;

impl Node {
    /// Answer one decoded query. A read-only node (BEP 43) answers nothing.
    pub(crate) fn serve(&mut self, now: Instant, from: SocketAddr, tid: TransactionId, q: Query) {
        if self.config.read_only {
            return;
        }
        // Built on the spare lists, handed back once encoded: no allocation per reply.
        let mut r = self.scratch.response(self.id);
        match q {
            Query::Ping { .. } => {}
            Query::FindNode { target, want, .. } => {
                self.fill_nodes(&mut r, &target.0, want, from, now)
            }
            Query::GetPeers {
                info_hash,
                want,
                noseed,
                scrape,
                ..
            } => {
                r.token = Some(self.tokens.issue(from.ip()));
                let mut max = self.config.max_values_per_reply;
                // BEP 33: the filters only for an infohash we store.
                if let Some(sc) = scrape.then(|| self.store.scrape(now, &info_hash)).flatten() {
                    r.bf_seeds = Some(self.scratch.filter(sc.seeds.bytes()));
                    r.bf_peers = Some(self.scratch.filter(sc.peers.bytes()));
                    // The filters take 520 bytes: fewer values keep the reply in one
                    // ordinary datagram, as BEP 33 asks.
                    max = max.min(MAX_VALUES_WITH_SCRAPE);
                }
                let v6 = from.is_ipv6();
                self.store.get_into(
                    now,
                    &info_hash,
                    max,
                    noseed,
                    v6,
                    &mut self.rng,
                    &mut r.values,
                );
                // Nodes too, so a lookup can go on converging even where peers are known.
                self.fill_nodes(&mut r, &info_hash.0, want, from, now);
            }
            Query::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                seed,
                ..
            } => {
                if !self.tokens.check(from.ip(), &token) {
                    self.scratch.give_back_response(r);
                    return self.send_error(now, from, tid, codes::PROTOCOL, "bad token");
                }
                let port = if implied_port { from.port() } else { port };
                if port == 0 {
                    self.scratch.give_back_response(r);
                    return self.send_error(now, from, tid, codes::PROTOCOL, "bad port");
                }
                let peer = SocketAddr::new(from.ip(), port);
                self.store.announce(now, info_hash, peer, seed);
                self.events.push_back(crate::Event::Announced {
                    info_hash,
                    peer,
                    from,
                });
            }
            Query::SampleInfohashes { target, want, .. } => {
                let interval = Duration::from_secs(u64::from(self.config.sample_interval));
                let max = self.config.max_samples;
                r.samples
                    .extend_from_slice(self.store.sample(now, interval, max, &mut self.rng));
                r.interval = Some(self.config.sample_interval);
                r.num = Some(u32::try_from(self.store.torrents()).unwrap_or(u32::MAX));
                self.fill_nodes(&mut r, &target.0, want, from, now);
            }
            Query::Unknown { .. } => {
                self.scratch.give_back_response(r);
                return self.send_error(now, from, tid, codes::METHOD_UNKNOWN, "Method Unknown");
            }
        }
        let body = Body::Response(r);
        self.send_reply(now, from, tid, &body);
        if let Body::Response(r) = body {
            self.scratch.give_back_response(r);
        }
    }

    /// `nodes` / `nodes6` closest to `target`: the families in `want`, else the requester's.
    fn fill_nodes(
        &self,
        r: &mut Response,
        target: &[u8; 20],
        want: Want,
        from: SocketAddr,
        now: Instant,
    ) {
        let (v4, v6) = if want.is_given() {
            (want.v4, want.v6)
        } else {
            (from.is_ipv4(), from.is_ipv6())
        };
        let k = self.config.k;
        if v4 {
            self.table4.closest_into(target, k, now, &mut r.nodes);
        }
        if v6 {
            self.table6.closest_into(target, k, now, &mut r.nodes6);
        }
    }

    fn send_error(
        &mut self,
        now: Instant,
        to: SocketAddr,
        tid: TransactionId,
        code: i64,
        message: &str,
    ) {
        let body = Body::Error(ErrorMsg {
            code,
            message: message.to_owned(),
            id: Some(self.id),
            reflected_port: None,
        });
        self.send_reply(now, to, tid, &body);
    }

    /// A datagram that did not decode: if it was a query with a transaction id, say so (203).
    pub(crate) fn reply_protocol_error(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if self.config.read_only {
            return;
        }
        if let Some(tid) = Message::salvage_query_tid(bytes) {
            let body = Body::Error(ErrorMsg {
                code: codes::PROTOCOL,
                message: "Protocol Error".to_owned(),
                id: Some(self.id),
                reflected_port: None,
            });
            // Never more bytes out than came in: garbage is no lever for amplification.
            self.send_reply_within(now, from, tid, &body, bytes.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use estudely_krpc::{Body, InfoHash, Message, NodeId, Query};

    use crate::{Config, Node};

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([1, 0, 9, i], 6881))
    }

    #[test]
    fn a_flooding_ip_is_not_answered() {
        let t0 = Instant::now();
        let mut node = Node::new(Config::default(), t0);
        let flooder = addr(66);
        let (mut answered, mut datagrams) = (0, 0);
        for t in 0..150u8 {
            node.handle_datagram(t0, flooder, &ping(t));
            while let Some(tx) = node.poll_transmit() {
                if tx.to == flooder {
                    datagrams += 1;
                    if matches!(
                        Message::decode(&tx.bytes).map(|m| m.body),
                        Ok(Body::Response(_))
                    ) {
                        answered += 1;
                    }
                }
            }
        }
        assert!(datagrams <= 25, "{datagrams} datagrams to one IP in 10 s");
        // Our own verification pings to it share the budget.
        assert!(
            answered >= 10,
            "it is still answered within its budget: {answered}"
        );
        assert_eq!(
            node.stats().flood_dropped,
            50,
            "over 100 queries: not even looked at"
        );
        assert_eq!(node.stats().replies_dropped, 100 - answered);
        // Ten seconds later it is answered again.
        node.handle_datagram(t0 + Duration::from_secs(10), flooder, &ping(200));
        assert!(std::iter::from_fn(|| node.poll_transmit()).any(|tx| tx.to == flooder));
    }

    /// Garbage that salvages a transaction id earns at most 25 small error replies per 10 s
    /// in all: no amplification, in datagrams or in bytes.
    #[test]
    fn a_flood_of_bad_queries_gets_no_amplification() {
        let t0 = Instant::now();
        let mut node = Node::new(Config::default(), t0);
        let flooder = addr(77);
        let bad = b"d1:ad2:id20:xxxxxxxxxxxxxxxxxxxx6:target3:abce1:q9:find_node1:t2:aa1:y1:qe";
        let (mut sent_bytes, mut replies) = (0usize, 0usize);
        for i in 0..1_000u32 {
            let now = t0 + Duration::from_millis(u64::from(i) * 10);
            node.handle_datagram(now, flooder, bad);
            while let Some(tx) = node.poll_transmit() {
                assert_eq!(tx.to, flooder);
                assert!(tx.bytes.len() <= bad.len(), "an error reply is no bigger");
                sent_bytes += tx.bytes.len();
                replies += 1;
            }
        }
        // 10 s of flooding: one window.
        assert!(replies <= 25, "{replies}");
        assert!(sent_bytes <= 25 * bad.len());
        assert!(node.stats().malformed > 0 || node.stats().queries_received > 0);
    }

    /// Queries we send and replies we give share one budget per IP: whatever the mix, no IP
    /// gets more than 25 datagrams in any 10 s window.
    #[test]
    fn every_datagram_counts_against_the_per_ip_budget() {
        use estudely_krpc::NodeId as Id;
        let t0 = Instant::now();
        let mut node = Node::new(Config::default(), t0);
        let peer = addr(5);
        let mut sends: Vec<Duration> = Vec::new();
        for step in 0..2_000u32 {
            let at = Duration::from_millis(u64::from(step) * 37);
            let now = t0 + at;
            if step % 3 == 0 {
                node.handle_datagram(now, peer, &ping((step % 250) as u8));
            } else {
                let _ = node.query(now, peer, Query::Ping { id: Id([0; 20]) });
            }
            node.handle_timeout(now);
            while let Some(tx) = node.poll_transmit() {
                if tx.to.ip() == peer.ip() {
                    sends.push(at);
                }
            }
        }
        for (i, t) in sends.iter().enumerate() {
            let in_window = sends[i..]
                .iter()
                .take_while(|u| **u < *t + Duration::from_secs(10))
                .count();
            assert!(
                in_window <= 25,
                "{in_window} datagrams within 10 s from {t:?}"
            );
        }
        assert!(
            sends.len() > 100,
            "the budget is used, not starved: {}",
            sends.len()
        );
    }

    /// Queries (announces included) from a refused address are neither answered nor
    /// stored: a reply would go where we must not send, and an announcer at a private
    /// address would be handed to every crawler that asks us.
    #[test]
    fn datagrams_from_refused_addresses_are_ignored() {
        let t0 = Instant::now();
        let mut node = Node::new(Config::default(), t0);
        for from in [
            "10.0.0.1:6881",
            "127.0.0.1:6881",
            "224.0.0.1:6881",
            "[fe80::1]:6881",
        ] {
            let from: SocketAddr = from.parse().unwrap();
            node.handle_datagram(t0, from, &ping(1));
            assert!(node.poll_transmit().is_none(), "answered {from}");
        }
        assert_eq!(node.stats().refused.total(), 4);
        assert_eq!(node.stats().queries_received, 0);
        assert!(node.routing_nodes().is_empty());
        // The same ping from a public address is answered.
        node.handle_datagram(t0, addr(1), &ping(1));
        assert!(node.poll_transmit().is_some());
    }

    fn query(t: u8, q: Query) -> Vec<u8> {
        Message {
            tid: estudely_krpc::TransactionId::new(&[t]).unwrap(),
            version: None,
            ip: None,
            read_only: false,
            body: Body::Query(q),
        }
        .encode()
    }

    /// The one reply `node` sends `to`.
    fn reply(node: &mut Node, to: SocketAddr) -> estudely_krpc::Response {
        std::iter::from_fn(|| node.poll_transmit())
            .filter(|tx| tx.to == to)
            .find_map(|tx| match Message::decode(&tx.bytes).unwrap().body {
                Body::Response(r) => Some(r),
                _ => None, // our verification ping
            })
            .expect("a reply")
    }

    fn get_peers(ih: InfoHash, noseed: bool, scrape: bool) -> Query {
        Query::GetPeers {
            id: NodeId([5; 20]),
            info_hash: ih,
            want: Default::default(),
            noseed,
            scrape,
        }
    }

    /// Three seeds and seven leechers announce; a scrape gets both filters, `noseed` only
    /// leechers, a plain `get_peers` no filters, and an unknown infohash no filters.
    #[test]
    fn scrapes_are_answered_with_seed_and_peer_filters() {
        use crate::bloom::Bloom;
        let t0 = Instant::now();
        let mut node = Node::new(Config::default(), t0);
        let ih = InfoHash([0x42; 20]);
        for i in 1..=10u8 {
            let from = addr(i);
            node.handle_datagram(t0, from, &query(1, get_peers(ih, false, false)));
            let token = reply(&mut node, from).token.unwrap();
            let announce = Query::AnnouncePeer {
                id: NodeId([i; 20]),
                info_hash: ih,
                port: 7000 + u16::from(i),
                implied_port: false,
                token,
                seed: i <= 3,
            };
            node.handle_datagram(t0, from, &query(2, announce));
            let _ = reply(&mut node, from);
        }
        let asker = addr(100);
        node.handle_datagram(t0, asker, &query(3, get_peers(ih, true, true)));
        let r = reply(&mut node, asker);
        let seeds = Bloom::from(*r.bf_seeds.unwrap());
        let peers = Bloom::from(*r.bf_peers.unwrap());
        assert_eq!((seeds.estimate(), peers.estimate()), (3, 7));
        let mut want = Bloom::new();
        for i in 1..=3 {
            want.insert(addr(i).ip());
        }
        assert_eq!(seeds, want, "exactly the seeds' IPs");
        assert_eq!(r.values.len(), 7, "noseed: leechers only");
        assert!(r.values.iter().all(|v| v.port() > 7003));

        node.handle_datagram(t0, asker, &query(4, get_peers(ih, false, false)));
        let r = reply(&mut node, asker);
        assert!(r.bf_seeds.is_none() && r.bf_peers.is_none());
        assert_eq!(r.values.len(), 10);
        let unknown = InfoHash([0x43; 20]);
        node.handle_datagram(t0, asker, &query(5, get_peers(unknown, false, true)));
        let r = reply(&mut node, asker);
        assert!(r.bf_seeds.is_none(), "nothing stored: no filters");
    }

    fn ping(t: u8) -> Vec<u8> {
        Message {
            tid: estudely_krpc::TransactionId::new(&[t]).unwrap(),
            version: None,
            ip: None,
            read_only: false,
            body: Body::Query(Query::Ping {
                id: NodeId([66; 20]),
            }),
        }
        .encode()
    }
}
