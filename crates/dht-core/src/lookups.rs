//! The lookup half of [`Node`]: starting iterative lookups, feeding them replies, and
//! finishing them (with the `announce_peer` round of an announce lookup).

use std::net::SocketAddr;
use std::time::Instant;

use estudely_krpc::{InfoHash, NodeId, Query, Want};

use crate::lookup::{Lookup, Next};
use crate::node::Purpose;
use crate::{Event, LookupId, LookupKind, LookupOutcome, Node};

impl Node {
    /// A `find_node` lookup of our own id from the table and `seeds`: fills the table. The
    /// special ranges the seeds lie in (a loopback or LAN testnet) are allowed from now on.
    pub fn bootstrap(&mut self, now: Instant, seeds: &[SocketAddr]) -> LookupId {
        self.allow_ranges_of(seeds);
        self.lookup(now, LookupKind::FindNode, self.id, seeds)
    }

    /// Start an iterative lookup toward `target`, from the routing table and `seeds`.
    pub fn lookup(
        &mut self,
        now: Instant,
        kind: LookupKind,
        target: NodeId,
        seeds: &[SocketAddr],
    ) -> LookupId {
        let id = LookupId(self.handle());
        let k = self.config.k;
        let mut known = Vec::new();
        if self.config.ipv4 {
            known.extend(self.table4.closest(&target.0, k, now));
        }
        if self.config.ipv6 {
            known.extend(self.table6.closest(&target.0, k, now));
        }
        let seeds: Vec<SocketAddr> = seeds
            .iter()
            .copied()
            .filter(|a| self.family_ok(a))
            .collect();
        let lookup = Lookup::new(id, kind, target, k, self.config.alpha, &known, &seeds);
        self.lookups.insert(id, lookup);
        self.drive_lookup(now, id);
        id
    }

    /// Send what a lookup wants sent; when it has converged, finish it (or start announcing).
    pub(crate) fn drive_lookup(&mut self, now: Instant, lid: LookupId) {
        loop {
            let Some(l) = self.lookups.get_mut(&lid) else {
                return;
            };
            if l.announcing.is_some() {
                return;
            }
            match l.next_step() {
                Next::Query(to) => {
                    let (kind, target) = (l.kind, l.target);
                    let q = lookup_query(kind, target, self.our_want());
                    if !self.send_query(now, to, q, Purpose::Lookup(lid)) {
                        if let Some(l) = self.lookups.get_mut(&lid) {
                            l.on_failure(to);
                        }
                    }
                }
                Next::Wait => return,
                Next::Done => {
                    if let LookupKind::Announce {
                        port,
                        implied_port,
                        seed,
                    } = l.kind
                    {
                        let info_hash = InfoHash(l.target.0);
                        let targets = l.closest_answered();
                        let mut sent = 0;
                        for (node, token) in targets {
                            let Some(token) = token else { continue };
                            let q = Query::AnnouncePeer {
                                id: self.id,
                                info_hash,
                                port,
                                implied_port,
                                token,
                                seed,
                            };
                            if self.send_query(now, node.addr, q, Purpose::Announce(lid)) {
                                sent += 1;
                            }
                        }
                        if let Some(l) = self.lookups.get_mut(&lid) {
                            l.announcing = Some((sent, 0));
                        }
                        if sent == 0 {
                            self.finish_lookup(lid);
                        }
                    } else {
                        self.finish_lookup(lid);
                    }
                    return;
                }
            }
        }
    }

    pub(crate) fn announce_done(&mut self, lid: LookupId, ok: bool) {
        let Some(l) = self.lookups.get_mut(&lid) else {
            return;
        };
        if let Some((pending, done)) = &mut l.announcing {
            *pending = pending.saturating_sub(1);
            *done += usize::from(ok);
            if *pending == 0 {
                self.finish_lookup(lid);
            }
        }
    }

    fn finish_lookup(&mut self, lid: LookupId) {
        let Some(l) = self.lookups.remove(&lid) else {
            return;
        };
        self.events.push_back(Event::LookupDone(LookupOutcome {
            id: lid,
            kind: l.kind,
            target: l.target,
            closest: l.closest_answered().into_iter().map(|(n, _)| n).collect(),
            peers: l.peers().to_vec(),
            queried: l.queried(),
            announced_to: l.announcing.map_or(0, |(_, done)| done),
        }));
    }
}

fn lookup_query(kind: LookupKind, target: NodeId, want: Want) -> Query {
    match kind {
        LookupKind::FindNode => Query::FindNode {
            id: target,
            target,
            want,
        },
        LookupKind::GetPeers | LookupKind::Announce { .. } => Query::GetPeers {
            id: target,
            info_hash: InfoHash(target.0),
            want,
            noseed: false,
            scrape: false,
        },
    }
}
