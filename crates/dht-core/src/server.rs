//! Answers to incoming queries: everything a full node must answer (BEP 5, 32, 51).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use estudely_krpc::{codes, Body, ErrorMsg, Message, Query, Response, TransactionId, Want};

use crate::Node;

impl Node {
    /// Answer one decoded query. A read-only node (BEP 43) answers nothing.
    pub(crate) fn serve(&mut self, now: Instant, from: SocketAddr, tid: TransactionId, q: Query) {
        if self.config.read_only {
            return;
        }
        let mut r = Response {
            id: self.id,
            ..Response::default()
        };
        match q {
            Query::Ping { .. } => {}
            Query::FindNode { target, want, .. } => {
                self.fill_nodes(&mut r, &target.0, want, from, now)
            }
            Query::GetPeers {
                info_hash,
                want,
                noseed,
                ..
            } => {
                r.token = Some(self.tokens.issue(from.ip()));
                let max = self.config.max_values_per_reply;
                let v6 = from.is_ipv6();
                r.values = self
                    .store
                    .get(now, &info_hash, max, noseed, v6, &mut self.rng);
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
                    return self.send_error(from, tid, codes::PROTOCOL, "bad token");
                }
                let port = if implied_port { from.port() } else { port };
                if port == 0 {
                    return self.send_error(from, tid, codes::PROTOCOL, "bad port");
                }
                self.store
                    .announce(now, info_hash, SocketAddr::new(from.ip(), port), seed);
            }
            Query::SampleInfohashes { target, want, .. } => {
                let interval = Duration::from_secs(u64::from(self.config.sample_interval));
                let max = self.config.max_samples;
                r.samples = self
                    .store
                    .sample(now, interval, max, &mut self.rng)
                    .to_vec();
                r.interval = Some(self.config.sample_interval);
                r.num = Some(u32::try_from(self.store.torrents()).unwrap_or(u32::MAX));
                self.fill_nodes(&mut r, &target.0, want, from, now);
            }
            Query::Unknown { .. } => {
                return self.send_error(from, tid, codes::METHOD_UNKNOWN, "Method Unknown");
            }
        }
        self.send_reply(from, tid, Body::Response(r));
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
            r.nodes = self.table4.closest(target, k, now);
        }
        if v6 {
            r.nodes6 = self.table6.closest(target, k, now);
        }
    }

    fn send_error(&mut self, to: SocketAddr, tid: TransactionId, code: i64, message: &str) {
        let body = Body::Error(ErrorMsg {
            code,
            message: message.to_owned(),
            id: Some(self.id),
            reflected_port: None,
        });
        self.send_reply(to, tid, body);
    }

    /// A datagram that did not decode: if it was a query with a transaction id, say so (203).
    pub(crate) fn reply_protocol_error(&mut self, from: SocketAddr, bytes: &[u8]) {
        if self.config.read_only {
            return;
        }
        if let Some(tid) = Message::salvage_query_tid(bytes) {
            self.send_error(from, tid, codes::PROTOCOL, "Protocol Error");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use estudely_krpc::{Body, Message, NodeId, Query};

    use crate::{Config, Node};

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 9, i], 6881))
    }

    #[test]
    fn a_flooding_ip_is_not_answered() {
        let t0 = Instant::now();
        let mut node = Node::new(Config::default(), t0);
        let flooder = addr(66);
        let ping = |t: u8| {
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
        };
        let mut answered = 0;
        for t in 0..150u8 {
            node.handle_datagram(t0, flooder, &ping(t));
            while let Some(tx) = node.poll_transmit() {
                if tx.to == flooder
                    && matches!(
                        Message::decode(&tx.bytes).map(|m| m.body),
                        Ok(Body::Response(_))
                    )
                {
                    answered += 1;
                }
            }
        }
        assert_eq!(answered, 100, "at most 100 answers per 10 s to one IP");
        assert_eq!(node.stats().flood_dropped, 50);
        // Ten seconds later it is answered again.
        node.handle_datagram(t0 + Duration::from_secs(10), flooder, &ping(200));
        assert!(std::iter::from_fn(|| node.poll_transmit()).any(|tx| tx.to == flooder));
    }
}
