//! A Mainline DHT node without I/O (sans-IO, in the style of `quinn-proto`).
//!
//! [`Node`] never touches a socket, a clock or a global RNG: the driver feeds it datagrams
//! ([`Node::handle_datagram`]) and the time ([`Node::handle_timeout`]), and drains what it
//! wants sent ([`Node::poll_transmit`]) and what the caller should know ([`Node::poll_event`]).
//! Randomness comes from a seeded RNG in [`Config`], so a simulated run replays exactly.
//!
//! Inside: a k-bucket [`routing`] table per address family with BEP 5's good / questionable /
//! bad rules and bucket refresh, [`transactions`] with timeouts, secret-rotated [`tokens`],
//! a bounded [`peer_store`] with expiry that also serves BEP 51 samples, and iterative
//! [`lookup`]s (alpha parallel requests converging on the k closest nodes). The node answers
//! every query a full node must answer, unless configured read-only (BEP 43).
//!
//! Layered on `krpc`; the tokio driver and the crawler sit above it.
//!
//! ```
//! use std::time::Instant;
//! use estudely_dht_core::krpc::{Message, NodeId, Query};
//! use estudely_dht_core::{Config, Node};
//!
//! let now = Instant::now();
//! let mut node = Node::new(Config::default(), now);
//! let to = "93.184.216.34:6881".parse().unwrap(); // nothing is sent: the node has no socket
//! node.query(now, to, Query::Ping { id: NodeId::default() });
//! // The driver sends what the node asks for, and feeds it what arrives.
//! let t = node.poll_transmit().expect("a ping to send");
//! assert_eq!(t.to, to);
//! assert!(Message::decode(&t.bytes).is_ok());
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod addr_policy;
pub mod bep42;
pub mod bloom;
pub mod bounded;
mod config;
pub mod crawl;
mod events;
pub mod lookup;
mod lookups;
mod node;
#[cfg(test)]
mod node_dead_tests;
pub mod peer_store;
pub mod politeness;
pub mod procnet;
pub mod routing;
mod scratch;
mod secure;
mod send;
mod server;
pub mod sim;
pub mod synth;
pub mod tokens;
pub mod transactions;

pub use addr_policy::{AddrPolicy, Range, Refusals};
pub use config::Config;
pub use estudely_krpc as krpc;
pub use events::{Event, LookupId, LookupKind, LookupOutcome, QueryError, QueryId, Transmit};
pub use node::{MethodCounts, Node, Stats};
