//! Outgoing messages of [`Node`]: queries pass the politeness checks (per-IP budget, global
//! rate limit with a bounded queue) before a transaction starts; replies go out at once.

use std::net::SocketAddr;
use std::time::Instant;

use estudely_krpc::{Body, Message, Query, TransactionId};

use crate::node::Purpose;
use crate::{Node, QueryError, Transmit};

impl Node {
    /// Queue a query. False if it cannot be sent: the IP is over its budget or the queue is
    /// full. Queries wait for the global rate limit; the timeout runs from the actual send.
    pub(crate) fn send_query(
        &mut self,
        now: Instant,
        to: SocketAddr,
        query: Query,
        purpose: Purpose,
    ) -> bool {
        if !self.within_budget(&to, now) || self.queued.len() >= self.config.max_queued {
            self.stats.refused_by_budget += 1;
            return false;
        }
        self.queued.push_back((to, query, purpose));
        self.flush_queued(now);
        true
    }

    /// Whether one more query to `to` would be within its per-IP budget now, counting the
    /// queries already waiting for the rate limit.
    pub fn within_budget(&self, to: &SocketAddr, now: Instant) -> bool {
        let ip = to.ip();
        let waiting = self.queued.iter().filter(|(a, _, _)| a.ip() == ip).count();
        self.ip_budget.used(ip, now) + waiting < self.ip_budget.max()
    }

    /// Queries waiting for the global rate limit.
    pub fn queued_queries(&self) -> usize {
        self.queued.len()
    }

    /// Send queued queries while the rate limit allows.
    pub(crate) fn flush_queued(&mut self, now: Instant) {
        // A failure below can make a lookup queue its next query; the outer loop sends it,
        // so no recursion builds up.
        if self.flushing {
            return;
        }
        self.flushing = true;
        while !self.queued.is_empty() && self.rate.try_take(now) {
            let Some((to, query, purpose)) = self.queued.pop_front() else {
                break;
            };
            // The budget is checked again at the moment of sending: that is the invariant.
            if !self.ip_budget.try_record(to.ip(), now) {
                self.stats.refused_by_budget += 1;
                self.on_failure(now, to, purpose, QueryError::Busy);
                continue;
            }
            let mut query = query;
            query.set_sender_id(self.id);
            let Some(tid) = self.tx.start(to, now + self.config.query_timeout, purpose) else {
                self.on_failure(now, to, purpose, QueryError::Busy);
                continue;
            };
            let msg = Message {
                tid,
                version: Some(self.config.version.to_vec()),
                ip: None,
                read_only: self.config.read_only,
                body: Body::Query(query),
            };
            self.out.push_back(Transmit {
                to,
                bytes: msg.encode(),
            });
            self.stats.queries_sent += 1;
        }
        self.flushing = false;
    }

    /// Queue a reply (response or error) to `to`, telling it its address (BEP 42 `ip`).
    pub(crate) fn send_reply(&mut self, to: SocketAddr, tid: TransactionId, body: Body) {
        let msg = Message {
            tid,
            version: Some(self.config.version.to_vec()),
            ip: Some(to),
            read_only: false,
            body,
        };
        self.out.push_back(Transmit {
            to,
            bytes: msg.encode(),
        });
        self.stats.replies_sent += 1;
    }
}
