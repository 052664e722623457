//! Crawling the DHT on real sockets: the tokio [`driver`] around `dht-core`'s sans-IO
//! [`Crawler`](estudely_dht_core::crawl::Crawler), and the [`rows`] it produces (the seed's
//! `infohash,peer_ip,peer_port` CSV contract, JSON lines, the appended peers file).

pub mod driver;
pub mod rows;
pub mod setup;
pub mod state;

pub use driver::{CrawlDriver, CrawlDriverConfig, CrawlReport, CrawlSink, Progress, StopReason};
pub use rows::{writable_peer, PeerRow, PeersFile, CSV_HEADER};
