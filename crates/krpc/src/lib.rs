//! KRPC, the bencoded UDP RPC of the Mainline DHT, as typed messages.
//!
//! [`Message::decode`] turns one datagram into a [`Message`] whose body is a typed [`Query`],
//! [`Response`] or [`ErrorMsg`]; [`Message::encode`] writes canonical bencode. Covered:
//! BEP 5 (ping, find_node, get_peers, announce_peer with `implied_port`, errors), BEP 32
//! (`nodes6`, IPv6 `values`, `want`), BEP 33 (`scrape`, `noseed`, `BFsd`, `BFpe`), BEP 42
//! (`ip`), BEP 43 (`ro`) and BEP 51 (`sample_infohashes`: `interval`, `num`, `samples`).
//!
//! Everything here is parse-don't-validate: a [`NodeId`] is 20 bytes, a compact node list
//! whose length is not a multiple of 26 (or 38) is a typed [`Error`], never a panic or a
//! silently truncated list. Sizes are bounded by the datagram itself and by explicit caps.
//! Layered on `bencode`; used by `dht-core`.
//!
//! ```
//! use estudely_krpc::{Body, Message, Query};
//!
//! let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
//! let m = Message::decode(ping).unwrap();
//! assert!(matches!(m.body, Body::Query(Query::Ping { .. })));
//! assert_eq!(Message::decode(&m.encode()).unwrap(), m);
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

mod compact;
mod decode;
mod encode;
mod error;
mod ids;
mod message;

pub use compact::{
    decode_nodes4, decode_nodes6, decode_peer, encode_nodes, encode_peer, CompactNode,
};
pub use error::Error;
pub use ids::{InfoHash, NodeId, Token, TransactionId, Version};
pub use message::{Body, ErrorMsg, Message, Query, Response, Want};

/// Largest datagram we accept or produce, in bytes (a UDP payload over Ethernet is < 1500;
/// libtorrent caps at 1800 and so do we, leaving room for jumbo replies).
pub const MAX_DATAGRAM: usize = 1800;

/// Standard KRPC error codes (BEP 5).
pub mod codes {
    /// Generic error.
    pub const GENERIC: i64 = 201;
    /// Server error.
    pub const SERVER: i64 = 202;
    /// Protocol error: malformed packet, invalid arguments, bad token.
    pub const PROTOCOL: i64 = 203;
    /// Method unknown.
    pub const METHOD_UNKNOWN: i64 = 204;
}
