//! The typed message model.

use std::net::SocketAddr;

use crate::{CompactNode, InfoHash, NodeId, Token, TransactionId, Version};

/// One KRPC datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Transaction id (`t`), echoed by the responder.
    pub tid: TransactionId,
    /// Client version (`v`), e.g. `LT\x02\x01`; one longer than 32 bytes is not kept. Held
    /// inline: decoding a message allocates nothing for it.
    pub version: Option<Version>,
    /// BEP 42: the requester's address as seen by the responder (`ip`).
    pub ip: Option<SocketAddr>,
    /// BEP 43: the sender is read-only and must not be added to routing tables (`ro`).
    pub read_only: bool,
    /// Query, response or error.
    pub body: Body,
}

/// The three kinds of KRPC message (`y` = `q`, `r`, `e`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A query.
    Query(Query),
    /// A response. Which fields are present depends on the query it answers.
    Response(Response),
    /// An error reply.
    Error(ErrorMsg),
}

/// Which address families a requester wants nodes for (BEP 32 `want`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
    /// `n4` was listed.
    pub v4: bool,
    /// `n6` was listed.
    pub v6: bool,
}

impl Want {
    /// Whether `want` was given at all.
    pub fn is_given(&self) -> bool {
        self.v4 || self.v6
    }
}

/// A typed query. Every query carries the sender's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `ping`
    Ping {
        /// Sender id.
        id: NodeId,
    },
    /// `find_node`
    FindNode {
        /// Sender id.
        id: NodeId,
        /// The id whose closest nodes are wanted.
        target: NodeId,
        /// BEP 32 families.
        want: Want,
    },
    /// `get_peers`
    GetPeers {
        /// Sender id.
        id: NodeId,
        /// The torrent.
        info_hash: InfoHash,
        /// BEP 32 families.
        want: Want,
        /// BEP 33: only non-seeds wanted.
        noseed: bool,
        /// BEP 33: bloom filters of seeds and peers wanted.
        scrape: bool,
    },
    /// `announce_peer`
    AnnouncePeer {
        /// Sender id.
        id: NodeId,
        /// The torrent.
        info_hash: InfoHash,
        /// The peer's TCP port (ignored when `implied_port`).
        port: u16,
        /// Use the datagram's source port instead of `port`.
        implied_port: bool,
        /// Token from an earlier `get_peers` reply.
        token: Token,
        /// BEP 33: the announcer is a seed.
        seed: bool,
    },
    /// `sample_infohashes` (BEP 51)
    SampleInfohashes {
        /// Sender id.
        id: NodeId,
        /// Where in the keyspace nodes are wanted.
        target: NodeId,
        /// BEP 32 families.
        want: Want,
    },
    /// A method we do not implement; answered with error 204.
    Unknown {
        /// Sender id.
        id: NodeId,
        /// The method name, at most 64 bytes kept.
        method: Vec<u8>,
    },
}

impl Query {
    /// The sender's id.
    pub fn sender_id(&self) -> NodeId {
        match self {
            Query::Ping { id }
            | Query::FindNode { id, .. }
            | Query::GetPeers { id, .. }
            | Query::AnnouncePeer { id, .. }
            | Query::SampleInfohashes { id, .. }
            | Query::Unknown { id, .. } => *id,
        }
    }

    /// Set the sender's id (a node stamps its own id on queries built by callers).
    pub fn set_sender_id(&mut self, me: NodeId) {
        match self {
            Query::Ping { id }
            | Query::FindNode { id, .. }
            | Query::GetPeers { id, .. }
            | Query::AnnouncePeer { id, .. }
            | Query::SampleInfohashes { id, .. }
            | Query::Unknown { id, .. } => *id = me,
        }
    }

    /// The method name as sent on the wire.
    pub fn method(&self) -> &[u8] {
        match self {
            Query::Ping { .. } => b"ping",
            Query::FindNode { .. } => b"find_node",
            Query::GetPeers { .. } => b"get_peers",
            Query::AnnouncePeer { .. } => b"announce_peer",
            Query::SampleInfohashes { .. } => b"sample_infohashes",
            Query::Unknown { method, .. } => method,
        }
    }
}

/// A response. KRPC responses are not tagged with their method: the fields present depend on
/// the query, which only the transaction knows, so all of them are optional here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// Responder id.
    pub id: NodeId,
    /// IPv4 nodes close to the target (`nodes`).
    pub nodes: Vec<CompactNode>,
    /// IPv6 nodes close to the target (`nodes6`).
    pub nodes6: Vec<CompactNode>,
    /// Peers for a `get_peers` (`values`, IPv4 and IPv6).
    pub values: Vec<SocketAddr>,
    /// Write token (`token`).
    pub token: Option<Token>,
    /// BEP 51 sampled infohashes (`samples`).
    pub samples: Vec<InfoHash>,
    /// BEP 51 seconds before the responder may be asked for samples again (`interval`).
    pub interval: Option<u32>,
    /// BEP 51 number of infohashes the responder stores (`num`).
    pub num: Option<u32>,
    /// BEP 33 bloom filter of seeds (`BFsd`, 256 bytes).
    pub bf_seeds: Option<Box<[u8; 256]>>,
    /// BEP 33 bloom filter of peers (`BFpe`, 256 bytes).
    pub bf_peers: Option<Box<[u8; 256]>>,
    /// libtorrent's `p`: the UDP port the responder saw our query come from.
    pub reflected_port: Option<u16>,
}

/// An error reply: `e = [code, message]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMsg {
    /// The code (see [`crate::codes`]).
    pub code: i64,
    /// The message, lossily decoded as UTF-8, at most 256 bytes kept.
    pub message: String,
    /// libtorrent adds an `r` dict with its id to errors when it could read ours.
    pub id: Option<NodeId>,
    /// ... and the port it saw our query come from (`r.p`).
    pub reflected_port: Option<u16>,
}
