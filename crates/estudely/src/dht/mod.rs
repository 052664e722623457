//! Running a DHT node on real sockets: the tokio [`driver`] and its [`DhtHandle`].

pub mod driver;

pub use driver::{DhtError, DhtHandle, DriverConfig, PeersEvent};
