//! One node of the endless world: a UDP socket whose every answer is computed from the
//! [`World`], plus its etiquette ledger (per source IP: when its last sample query arrived,
//! and the arrival times of its last 25 datagrams).
//!
//! The answering is sans-IO ([`Node::answer`] takes the time and the bytes, returns the
//! reply); [`serve`] is the socket loop around it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use estudely_krpc::{
    codes, Body, ErrorMsg, InfoHash, Message, NodeId, Query, Response, Token, Version,
};

use super::{arrival, torrent, World};

/// Datagrams one IP may send one node in [`WINDOW`] before each more is counted as over
/// budget (the crawler promises at most 25 of any kind).
const BUDGET: usize = 25;
/// The budget's window.
const WINDOW: Duration = Duration::from_secs(10);
/// Source IPs remembered per node; past that the ledger starts over (a flood of sources
/// must not grow memory; the crawlers under test are a handful of IPs).
const MAX_SOURCES: usize = 4_096;
/// Nodes named in answers.
const K: usize = 8;

/// What a node remembers of one source IP.
#[derive(Debug)]
struct Ledger {
    /// When its last `sample_infohashes` arrived.
    last_sample: Option<Instant>,
    /// Arrival times of its last [`BUDGET`] datagrams, a ring.
    arrivals: [Option<Instant>; BUDGET],
    next: usize,
}

/// One world node's state.
#[derive(Debug)]
pub(super) struct Node {
    world: Arc<World>,
    k: usize,
    /// Where the next sample starts among what the node stores.
    cursor: u64,
    ledgers: HashMap<IpAddr, Ledger>,
}

impl Node {
    pub(super) fn new(world: Arc<World>, k: usize) -> Node {
        Node {
            world,
            k,
            cursor: 0,
            ledgers: HashMap::new(),
        }
    }

    /// Count a datagram from `from` against its budget and, for a `sample_infohashes`, check
    /// it came after the interval of the previous answer.
    fn account(&mut self, now: Instant, from: IpAddr, sample: bool) {
        if self.ledgers.len() >= MAX_SOURCES && !self.ledgers.contains_key(&from) {
            self.ledgers.clear();
        }
        let stats = &self.world.stats;
        let interval = Duration::from_secs(u64::from(self.world.cfg.interval));
        let ledger = self.ledgers.entry(from).or_insert(Ledger {
            last_sample: None,
            arrivals: [None; BUDGET],
            next: 0,
        });
        // The oldest of the last 25 arrivals: if it is inside the window, this one is the
        // 26th in 10 s.
        if let Some(oldest) = ledger.arrivals[ledger.next] {
            if now.saturating_duration_since(oldest) < WINDOW {
                stats.over_budget.fetch_add(1, Relaxed);
            }
        }
        ledger.arrivals[ledger.next] = Some(now);
        ledger.next = (ledger.next + 1) % BUDGET;
        if sample {
            if ledger
                .last_sample
                .is_some_and(|t| now.saturating_duration_since(t) < interval)
            {
                stats.early_samples.fetch_add(1, Relaxed);
            }
            ledger.last_sample = Some(now);
        }
    }

    /// The reply to the datagram `bytes` from `from` at `now`, appended to `out` (nothing
    /// for what is not a query).
    pub(super) fn answer(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
        out: &mut Vec<u8>,
    ) {
        self.world.stats.datagrams_in.fetch_add(1, Relaxed);
        let decoded = Message::decode(bytes);
        let sample = matches!(
            &decoded,
            Ok(Message {
                body: Body::Query(Query::SampleInfohashes { .. }),
                ..
            })
        );
        self.account(now, from.ip(), sample);
        let Ok(msg) = decoded else {
            self.world.stats.junk.fetch_add(1, Relaxed);
            return;
        };
        let Body::Query(query) = msg.body else {
            self.world.stats.junk.fetch_add(1, Relaxed);
            return;
        };
        let me = self.world.ids[self.k];
        let body = match query {
            Query::Ping { .. } | Query::AnnouncePeer { .. } => Body::Response(Response {
                id: me,
                ..Response::default()
            }),
            Query::FindNode { target, .. } => Body::Response(Response {
                id: me,
                nodes: self.world.closest(&target.0, K),
                ..Response::default()
            }),
            Query::GetPeers { info_hash, .. } => {
                Body::Response(self.get_peers(me, &info_hash, from))
            }
            Query::SampleInfohashes { target, .. } => Body::Response(self.sample(me, &target)),
            Query::Unknown { .. } => Body::Error(ErrorMsg {
                code: codes::METHOD_UNKNOWN,
                message: "Method Unknown".into(),
                id: None,
                reflected_port: None,
            }),
        };
        let reply = Message {
            tid: msg.tid,
            version: Version::new(b"EW\x00\x01").ok(),
            ip: Some(from),
            read_only: false,
            body,
        };
        reply.encode_into(out);
        self.world.stats.replies.fetch_add(1, Relaxed);
    }

    fn get_peers(&self, me: NodeId, ih: &InfoHash, from: SocketAddr) -> Response {
        let world = &self.world;
        world.stats.get_peers.fetch_add(1, Relaxed);
        let token = {
            let t = super::mix(
                world.cfg.seed
                    ^ super::mix(u64::from(match from.ip() {
                        IpAddr::V4(v4) => u32::from(v4),
                        IpAddr::V6(_) => 6,
                    })),
            );
            Token::new(&t.to_be_bytes()).ok()
        };
        let values = world
            .sampled_index(&ih.0)
            .filter(|&j| world.holds(self.k, j, &ih.0))
            .map(|j| world.peers(j))
            .unwrap_or_default();
        if values.is_empty() {
            Response {
                id: me,
                nodes: world.closest(&ih.0, K),
                token,
                ..Response::default()
            }
        } else {
            world.stats.get_peers_values.fetch_add(1, Relaxed);
            Response {
                id: me,
                values,
                token,
                ..Response::default()
            }
        }
    }

    fn sample(&mut self, me: NodeId, target: &NodeId) -> Response {
        let world = &self.world;
        world.stats.samples.fetch_add(1, Relaxed);
        let stored = world.stored_by(self.k);
        let w = world.cfg.nodes as u64;
        let take = (world.cfg.samples as u64).min(stored);
        let samples = (0..take)
            .map(|i| {
                let j = self.k as u64 + w * ((self.cursor + i) % stored);
                let ih = torrent(world.cfg.seed, j).info_hash;
                world.note_sampled(&ih, j);
                ih
            })
            .collect();
        if stored > 0 {
            self.cursor = (self.cursor + take) % stored;
        }
        Response {
            id: me,
            nodes: world.closest(&target.0, K),
            samples,
            interval: Some(world.cfg.interval),
            num: Some(u32::try_from(stored).unwrap_or(u32::MAX)),
            ..Response::default()
        }
    }
}

/// Answer every datagram that reaches node `k`'s socket, until the task is aborted.
pub(super) async fn serve(world: Arc<World>, k: usize, socket: tokio::net::UdpSocket) {
    if let Err(e) = arrival::enable(&socket) {
        tracing::warn!("world node {k}: no kernel arrival times ({e}); judging by read times");
    }
    let mut node = Node::new(world, k);
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::with_capacity(1500);
    loop {
        // Judged by when each query arrived, not when this (perhaps busy) task read it.
        let Ok((n, from, arrived)) = arrival::recv(&socket, &mut buf).await else {
            // An ICMP error from an earlier send shows up here: ignore it and go on.
            continue;
        };
        out.clear();
        node.answer(arrived, from, &buf[..n], &mut out);
        if !out.is_empty() {
            let _ = socket.send_to(&out, from).await;
        }
    }
}
