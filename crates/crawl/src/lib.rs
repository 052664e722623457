//! Crawling the BitTorrent Mainline DHT on real sockets.
//!
//! This crate is the I/O side of a crawl: the tokio [`driver`] around `dht-core`'s sans-IO
//! [`Crawler`](estudely_dht_core::crawl::Crawler) (one UDP socket per address family, the
//! clock, a [`CrawlSink`] that receives every finding as soon as it is made), its [`setup`]
//! (the budgets and caps a crawl at a given rate gets, bootstrap resolution through
//! [`resolve`], what stops a crawl early), the warm-start [`state`] file, and the [`rows`] a
//! crawl produces (the seed's `infohash,peer_ip,peer_port` CSV contract, JSON lines, the
//! appended peers file).
//!
//! It takes no command-line parser: the `estudely` binary turns its flags into the plain
//! values and configurations taken here (for example [`setup::CrawlNet`]).
//!
//! # Example
//!
//! Crawl for a minute from the default bootstrap routers, printing each infohash found:
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use estudely_crawl::setup::{start_crawler, Budgets, StopOn};
//! use estudely_crawl::CrawlSink;
//! use estudely_dht_core::crawl::{CrawlEvent, Shard};
//!
//! struct Print;
//!
//! impl CrawlSink for Print {
//!     fn event(&mut self, event: &CrawlEvent) -> anyhow::Result<bool> {
//!         if let CrawlEvent::InfoHash { info_hash, .. } = event {
//!             println!("{info_hash:?}");
//!         }
//!         Ok(true) // go on
//!     }
//! }
//!
//! # async fn crawl() -> anyhow::Result<()> {
//! let budgets = Budgets {
//!     max_infohashes: 100,
//!     peers_per_infohash: 20,
//!     rate: 25.0,
//!     allow_private: false,
//!     harvest: true,
//!     forget_seen_when_full: false,
//!     shard: Shard::all(),
//! };
//! let bootstrap: Vec<String> = estudely_crawl::resolve::DEFAULT_ROUTERS
//!     .iter()
//!     .map(|r| r.to_string())
//!     .collect();
//! let bind = vec!["0.0.0.0:0".parse()?];
//! let mut driver = start_crawler(bind, &bootstrap, budgets).await?;
//! let stop = StopOn::Signals.fired(); // Ctrl-C or SIGTERM
//! let report = driver
//!     .run(Some(Duration::from_secs(60)), stop, None, &mut Print)
//!     .await?;
//! println!("{:?} after {} queries", report.reason, report.queries_sent);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod driver;
pub mod resolve;
pub mod rows;
pub mod setup;
pub mod state;

pub use driver::{CrawlDriver, CrawlDriverConfig, CrawlReport, CrawlSink, Progress, StopReason};
pub use rows::{writable_peer, PeerRow, PeersFile, CSV_HEADER};
