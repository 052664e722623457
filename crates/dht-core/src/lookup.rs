//! Iterative lookups: ask the closest known nodes, learn closer ones from their replies, and
//! stop when the k closest nodes seen have all answered (Kademlia's convergence rule).
//!
//! At most `alpha` requests are in flight at once. Candidates are kept sorted by XOR
//! distance and capped, so a hostile reply flooding far-away nodes cannot grow the state.
//! Seeds given by address only (bootstrap routers) are asked first; once they answer, their
//! id is known and they compete like any other candidate.

use std::collections::HashSet;
use std::net::SocketAddr;

use estudely_krpc::{CompactNode, NodeId, Token};

use crate::{LookupId, LookupKind};

/// Most candidates remembered per lookup.
const MAX_CANDIDATES: usize = 128;
/// Most distinct peers collected per lookup.
const MAX_PEERS: usize = 2_000;
/// Most address-only seeds per lookup.
const MAX_SEEDS: usize = 64;
/// Times a candidate is asked before it counts as failed: one retry absorbs a lost datagram.
const MAX_ATTEMPTS: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    InFlight,
    Answered,
    Failed,
}

#[derive(Debug, Clone)]
struct Candidate {
    node: CompactNode,
    distance: [u8; 20],
    state: State,
    attempts: u8,
    token: Option<Token>,
}

/// One iterative lookup's state.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// Its handle.
    pub id: LookupId,
    /// What it is for.
    pub kind: LookupKind,
    /// Its target.
    pub target: NodeId,
    k: usize,
    alpha: usize,
    candidates: Vec<Candidate>,
    seeds: Vec<SocketAddr>,
    seen: HashSet<SocketAddr>,
    peers: Vec<SocketAddr>,
    peers_seen: HashSet<SocketAddr>,
    in_flight: usize,
    queried: usize,
    /// Announce phase: how many announces are in flight, and how many succeeded.
    pub(crate) announcing: Option<(usize, usize)>,
}

/// Whom to ask next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Send the lookup's query to this address.
    Query(SocketAddr),
    /// Nothing to send now; replies are pending.
    Wait,
    /// The lookup has converged.
    Done,
}

impl Lookup {
    /// A lookup toward `target`, starting from `known` nodes and address-only `seeds`.
    pub fn new(
        id: LookupId,
        kind: LookupKind,
        target: NodeId,
        k: usize,
        alpha: usize,
        known: &[CompactNode],
        seeds: &[SocketAddr],
    ) -> Self {
        let mut l = Lookup {
            id,
            kind,
            target,
            k,
            alpha,
            candidates: Vec::new(),
            seeds: Vec::new(),
            seen: HashSet::new(),
            peers: Vec::new(),
            peers_seen: HashSet::new(),
            in_flight: 0,
            queried: 0,
            announcing: None,
        };
        for n in known {
            l.add_candidate(*n);
        }
        for s in seeds.iter().take(MAX_SEEDS) {
            if l.seen.insert(*s) {
                l.seeds.push(*s);
            }
        }
        l
    }

    fn add_candidate(&mut self, node: CompactNode) {
        if !self.seen.insert(node.addr) {
            return;
        }
        let distance = node.id.distance(&self.target.0);
        if self.candidates.len() >= MAX_CANDIDATES {
            match self.candidates.last() {
                Some(last) if last.distance > distance && last.state == State::Waiting => {
                    self.candidates.pop();
                }
                _ => return,
            }
        }
        let at = self.candidates.partition_point(|c| c.distance <= distance);
        self.candidates.insert(
            at,
            Candidate {
                node,
                distance,
                state: State::Waiting,
                attempts: 0,
                token: None,
            },
        );
    }

    /// The next address to query, if the lookup wants one now.
    pub fn next_step(&mut self) -> Next {
        if self.in_flight >= self.alpha {
            return Next::Wait;
        }
        if let Some(s) = self.seeds.pop() {
            self.in_flight += 1;
            self.queried += 1;
            return Next::Query(s);
        }
        // Only the k closest nodes not known to have failed are worth asking.
        let mut live = 0;
        for c in &mut self.candidates {
            if c.state == State::Failed {
                continue;
            }
            if live >= self.k {
                break;
            }
            live += 1;
            if c.state == State::Waiting {
                c.state = State::InFlight;
                c.attempts += 1;
                self.in_flight += 1;
                self.queried += 1;
                return Next::Query(c.node.addr);
            }
        }
        if self.in_flight == 0 {
            Next::Done
        } else {
            Next::Wait
        }
    }

    /// `from` answered with its id, the nodes it knows, peers and a token.
    pub fn on_reply(
        &mut self,
        from: SocketAddr,
        id: NodeId,
        nodes: impl IntoIterator<Item = CompactNode>,
        peers: &[SocketAddr],
        token: Option<Token>,
    ) {
        self.in_flight = self.in_flight.saturating_sub(1);
        match self.candidates.iter_mut().find(|c| c.node.addr == from) {
            Some(c) => {
                c.state = State::Answered;
                c.token = token;
            }
            None => {
                // A seed: now that its id is known it becomes a ranked candidate.
                self.seen.remove(&from);
                self.add_candidate(CompactNode { id, addr: from });
                if let Some(c) = self.candidates.iter_mut().find(|c| c.node.addr == from) {
                    c.state = State::Answered;
                    c.token = token;
                }
            }
        }
        for n in nodes {
            self.add_candidate(n);
        }
        for p in peers {
            if self.peers.len() < MAX_PEERS && self.peers_seen.insert(*p) {
                self.peers.push(*p);
            }
        }
    }

    /// `from` did not answer (it is asked again, up to `MAX_ATTEMPTS` times in all).
    pub fn on_failure(&mut self, from: SocketAddr) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(c) = self.candidates.iter_mut().find(|c| c.node.addr == from) {
            c.state = if c.attempts < MAX_ATTEMPTS {
                State::Waiting
            } else {
                State::Failed
            };
        }
    }

    /// The closest nodes that answered, nearest first, at most k, with their tokens.
    pub fn closest_answered(&self) -> Vec<(CompactNode, Option<Token>)> {
        self.candidates
            .iter()
            .filter(|c| c.state == State::Answered)
            .take(self.k)
            .map(|c| (c.node, c.token.clone()))
            .collect()
    }

    /// Distinct peers collected so far.
    pub fn peers(&self) -> &[SocketAddr] {
        &self.peers
    }

    /// Nodes queried so far.
    pub fn queried(&self) -> usize {
        self.queried
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(b: u8) -> CompactNode {
        CompactNode {
            id: NodeId([b; 20]),
            addr: SocketAddr::from(([10, 0, 0, b], 1)),
        }
    }

    #[test]
    fn converges_on_closest_and_respects_alpha() {
        let mut l = Lookup::new(
            LookupId(1),
            LookupKind::FindNode,
            NodeId([0; 20]),
            2,
            2,
            &[n(0x40), n(0x80)],
            &[],
        );
        assert_eq!(l.next_step(), Next::Query(n(0x40).addr));
        assert_eq!(l.next_step(), Next::Query(n(0x80).addr));
        assert_eq!(l.next_step(), Next::Wait, "alpha = 2");
        l.on_reply(n(0x40).addr, n(0x40).id, [n(0x01), n(0x02)], &[], None);
        assert_eq!(l.next_step(), Next::Query(n(0x01).addr));
        l.on_failure(n(0x80).addr);
        assert_eq!(l.next_step(), Next::Query(n(0x02).addr));
        assert_eq!(l.next_step(), Next::Wait);
        l.on_failure(n(0x02).addr);
        assert_eq!(l.next_step(), Next::Query(n(0x02).addr), "one retry");
        l.on_failure(n(0x02).addr);
        // 0x02 failed twice; 0x01 (in flight) and 0x40 (answered) are now the closest two.
        assert_eq!(l.next_step(), Next::Wait);
        l.on_reply(n(0x01).addr, n(0x01).id, [], &[], None);
        assert_eq!(l.next_step(), Next::Done);
        let ids: Vec<u8> = l
            .closest_answered()
            .iter()
            .map(|(c, _)| c.id.0[0])
            .collect();
        assert_eq!(ids, [0x01, 0x40]);
    }

    #[test]
    fn retried_node_that_answers_counts() {
        let mut l = Lookup::new(
            LookupId(1),
            LookupKind::FindNode,
            NodeId([0; 20]),
            2,
            2,
            &[n(0x01), n(0x02)],
            &[],
        );
        assert_eq!(l.next_step(), Next::Query(n(0x01).addr));
        assert_eq!(l.next_step(), Next::Query(n(0x02).addr));
        l.on_failure(n(0x02).addr);
        assert_eq!(l.next_step(), Next::Query(n(0x02).addr));
        l.on_reply(n(0x01).addr, n(0x01).id, [], &[], None);
        l.on_reply(n(0x02).addr, n(0x02).id, [], &[], None);
        assert_eq!(l.next_step(), Next::Done);
        let ids: Vec<u8> = l
            .closest_answered()
            .iter()
            .map(|(c, _)| c.id.0[0])
            .collect();
        assert_eq!(ids, [0x01, 0x02]);
    }

    #[test]
    fn seeds_first_and_bounded_state() {
        let seed: SocketAddr = "127.0.0.1:6881".parse().unwrap();
        let mut l = Lookup::new(
            LookupId(1),
            LookupKind::GetPeers,
            NodeId([0; 20]),
            8,
            3,
            &[],
            &[seed],
        );
        assert_eq!(l.next_step(), Next::Query(seed));
        let flood: Vec<CompactNode> = (0..1000u32)
            .map(|i| CompactNode {
                id: NodeId([(i % 251) as u8; 20]),
                addr: SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 1)),
            })
            .collect();
        l.on_reply(seed, NodeId([9; 20]), flood, &[seed, seed], None);
        assert!(l.candidates.len() <= MAX_CANDIDATES);
        assert_eq!(l.peers(), &[seed]);
    }
}
