//! Running an [`estudely-dht-core`](estudely_dht_core) Mainline DHT node on real sockets:
//! the tokio [`driver`] task and its cloneable [`DhtHandle`].
//!
//! The protocol lives in `estudely-dht-core`, a sans-IO state machine; this crate only
//! binds the UDP sockets (one IPv4, one IPv6 at most), feeds the node every datagram and
//! timer, sends what it asks, and turns queries and lookups into async calls. The node
//! answers every query it receives meanwhile, as a full DHT node.
//!
//! ```no_run
//! use estudely_dht::{DhtHandle, DriverConfig};
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let dht = DhtHandle::spawn(DriverConfig {
//!     bind: vec!["0.0.0.0:0".parse()?],
//!     ..DriverConfig::default()
//! })?;
//! let outcome = dht.bootstrap(&["67.215.246.10:6881".parse()?]).await?;
//! println!("{} nodes known: {outcome:?}", dht.routing_nodes().await?.len());
//! dht.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod driver;

pub use driver::{DhtError, DhtHandle, DriverConfig, PeersEvent};
