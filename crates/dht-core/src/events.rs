//! What the node hands back to its driver: datagrams to send and events to report.

use std::net::SocketAddr;

use estudely_krpc::{CompactNode, ErrorMsg, InfoHash, Message, NodeId};

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// Encoded KRPC message.
    pub bytes: Vec<u8>,
}

/// Handle of a single query started with [`crate::Node::query`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(pub u64);

/// Handle of an iterative lookup started with [`crate::Node::lookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupId(pub u64);

/// What an iterative lookup is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKind {
    /// `find_node` toward a target: find the k closest nodes.
    FindNode,
    /// `get_peers` toward an infohash: collect peers and the closest nodes' tokens.
    GetPeers,
    /// `get_peers`, then `announce_peer` to the k closest nodes that gave a token.
    Announce {
        /// TCP port to announce (ignored when `implied_port`).
        port: u16,
        /// Ask nodes to use our UDP source port instead.
        implied_port: bool,
        /// BEP 33: we seed the torrent (`seed=1` in the announces).
        seed: bool,
    },
}

/// Why a single query did not get a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// No reply within the query timeout.
    #[error("no reply within the timeout")]
    Timeout,
    /// The remote answered with a KRPC error.
    #[error("remote error {}: {}", .0.code, .0.message)]
    Remote(ErrorMsg),
    /// Not sent: the destination IP is over its budget, or too many queries are queued or
    /// in flight.
    #[error("not sent: over the per-IP budget or too many queries in flight")]
    Busy,
    /// Not sent: the address policy refuses this address (a private, loopback, multicast or
    /// other special-purpose address, or port 0).
    #[error("not sent: {0} address refused by the address policy (see --allow-private)")]
    Refused(crate::addr_policy::Range),
    /// Not sent: the address stopped answering and counts as dead for now (see
    /// [`crate::Config::dead_for`]).
    #[error("not sent: the address did not answer several queries in a row")]
    Dead,
}

/// The result of a finished lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupOutcome {
    /// The lookup's handle.
    pub id: LookupId,
    /// What it was for.
    pub kind: LookupKind,
    /// Its target.
    pub target: NodeId,
    /// The closest nodes that answered, nearest first (at most k).
    pub closest: Vec<CompactNode>,
    /// Distinct peers collected (get_peers / announce).
    pub peers: Vec<SocketAddr>,
    /// Nodes queried during the lookup.
    pub queried: usize,
    /// Nodes an `announce_peer` was sent to (announce lookups).
    pub announced_to: usize,
}

/// Something the caller should know.
///
/// Large (a whole reply inline, a few hundred bytes): events pass through a queue whose
/// storage is reused, so carrying the reply unboxed costs a copy where a box would cost an
/// allocation per reply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// A single query finished: the whole reply message, or why there was none.
    QueryDone {
        /// Its handle.
        id: QueryId,
        /// Who was asked.
        to: SocketAddr,
        /// The reply (always a response body) or the failure.
        result: Result<Message, QueryError>,
    },
    /// A lookup got peers from one node (possibly already seen ones).
    Peers {
        /// The lookup.
        id: LookupId,
        /// The infohash.
        info_hash: InfoHash,
        /// The node that gave them.
        from: SocketAddr,
        /// The peers.
        peers: Vec<SocketAddr>,
    },
    /// A lookup finished.
    LookupDone(LookupOutcome),
    /// A node announced itself as a peer of an infohash to us (`announce_peer` with a valid
    /// token, from an address the policy allows): stored, and a discovery for crawlers.
    Announced {
        /// The infohash.
        info_hash: InfoHash,
        /// The announced peer: the sender's IP and the port it gave (or its UDP port).
        peer: SocketAddr,
        /// The node that sent the announce.
        from: SocketAddr,
    },
}
