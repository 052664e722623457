//! Outgoing messages of [`Node`]: queries pass the politeness checks (per-IP budget, global
//! rate limit with a bounded queue) before a transaction starts; replies go out at once.

use std::net::SocketAddr;
use std::time::Instant;

use estudely_krpc::{Body, Message, Query, TransactionId};

use crate::node::Purpose;
use crate::{Node, QueryError, Transmit};

/// Room reserved for an encoded query: every query we send fits (the longest, an
/// `announce_peer` with a long token, is under 256 bytes), so encoding never reallocates.
const QUERY_CAPACITY: usize = 256;
/// Room reserved for an encoded reply: most fit (a `get_peers` reply with 50 values and 8
/// nodes is about 600 bytes; one with BEP 33 filters under 1,100); the rest grow once.
const REPLY_CAPACITY: usize = 768;

impl Node {
    /// Queue a query. `Err` if it cannot be sent: the address is refused by the policy or
    /// dead, the IP is over its budget, or the queue is full. Queries wait for the global
    /// rate limit; the timeout runs from the actual send.
    pub(crate) fn try_send_query(
        &mut self,
        now: Instant,
        to: SocketAddr,
        query: Query,
        purpose: Purpose,
    ) -> Result<(), QueryError> {
        if let Err(r) = self.config.addr_policy.check(&to) {
            self.stats.refused.add(r);
            return Err(QueryError::Refused(r));
        }
        if self.dead_at(&to, now) {
            self.stats.dead_refused += 1;
            return Err(QueryError::Dead);
        }
        if !self.within_budget(&to, now) || self.queued.len() >= self.config.max_queued {
            self.stats.refused_by_budget += 1;
            return Err(QueryError::Busy);
        }
        self.queued.push_back((to, query, purpose));
        self.flush_queued(now);
        Ok(())
    }

    /// [`Node::try_send_query`], with only whether it was queued.
    pub(crate) fn send_query(
        &mut self,
        now: Instant,
        to: SocketAddr,
        query: Query,
        purpose: Purpose,
    ) -> bool {
        self.try_send_query(now, to, query, purpose).is_ok()
    }

    /// Whether one more query to `to` would be within its per-IP budgets now (queries, and
    /// datagrams of every kind), counting the queries already waiting for the rate limit.
    ///
    /// When it is not, [`Node::poll_timeout`] wakes the caller once the spent budget frees up
    /// (not later than any other such budget it was told of), so that a caller holding work
    /// back for this IP gets to try again without waiting for an unrelated event.
    pub fn within_budget(&self, to: &SocketAddr, now: Instant) -> bool {
        let ip = to.ip();
        let waiting = self.queued.iter().filter(|(a, _, _)| a.ip() == ip).count();
        let ok = waiting < self.ip_budget.room(ip, now) && waiting < self.out_budget.room(ip, now);
        if !ok && waiting == 0 {
            // (With queries waiting for this IP, the rate limit's own wake comes first.)
            let at = self
                .ip_budget
                .next_allowed(ip, now)
                .max(self.out_budget.next_allowed(ip, now));
            if at > now && self.budget_wake.get().is_none_or(|w| at < w || w <= now) {
                self.budget_wake.set(Some(at));
            }
        }
        ok
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
            self.queued_counted = self.queued_counted.saturating_sub(1);
            // The budgets are checked again at the moment of sending: that is the invariant.
            if !self.out_budget.allows(to.ip(), now) || !self.ip_budget.try_record(to.ip(), now) {
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
            self.out_budget.try_record(to.ip(), now);
            self.stats.sent_by_method.add(&query);
            let mut bytes = self.scratch.buffer(QUERY_CAPACITY);
            Message::encode_parts(
                &mut bytes,
                &tid,
                Some(&self.config.version),
                None,
                self.config.read_only,
                &Body::Query(query),
            );
            self.out.push_back(Transmit { to, bytes });
            self.stats.queries_sent += 1;
        }
        // What is left waits for the rate limit: count each query once.
        self.stats.rate_limited += (self.queued.len() - self.queued_counted) as u64;
        self.queued_counted = self.queued.len();
        self.flushing = false;
    }

    /// Queue a reply (response or error) to `to`, telling it its address (BEP 42 `ip`). Not
    /// sent if the policy refuses `to` or its IP has had all its datagrams for the window.
    pub(crate) fn send_reply(
        &mut self,
        now: Instant,
        to: SocketAddr,
        tid: TransactionId,
        body: &Body,
    ) {
        self.send_reply_within(now, to, tid, body, usize::MAX);
    }

    /// [`Node::send_reply`], but not if the encoded reply is longer than `max_len` (an
    /// answer to garbage must not amplify it).
    pub(crate) fn send_reply_within(
        &mut self,
        now: Instant,
        to: SocketAddr,
        tid: TransactionId,
        body: &Body,
        max_len: usize,
    ) {
        if let Err(r) = self.config.addr_policy.check(&to) {
            self.stats.refused.add(r);
            return;
        }
        let mut bytes = self.scratch.buffer(REPLY_CAPACITY);
        Message::encode_parts(
            &mut bytes,
            &tid,
            Some(&self.config.version),
            Some(&to),
            false,
            body,
        );
        if bytes.len() > max_len || !self.out_budget.try_record(to.ip(), now) {
            self.stats.replies_dropped += 1;
            self.scratch.give_back(bytes);
            return;
        }
        self.out.push_back(Transmit { to, bytes });
        self.stats.replies_sent += 1;
    }
}
