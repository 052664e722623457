//! What Estudely's library crates and front ends share without depending on each other:
//! [`UsageError`], the error for bad user input, and the CSV headers of the seed's formats.
//!
//! A front end finds a usage error anywhere in an error's chain and reports it as the
//! user's mistake rather than a failure:
//!
//! ```
//! use estudely_usage::UsageError;
//!
//! fn port(s: &str) -> anyhow::Result<u16> {
//!     s.parse()
//!         .map_err(|_| UsageError(format!("bad port `{s}`")).into())
//! }
//!
//! let e = port("http").unwrap_err();
//! assert!(e.chain().any(|c| c.is::<UsageError>()));
//! assert_eq!(e.to_string(), "bad port `http`");
//! ```
#![deny(missing_docs)]

use std::fmt;

/// Something the user gave is wrong (an empty `--db`, a file that is not an index, a URL
/// that names nothing, an address that does not parse): front ends report it in one line
/// and exit with a usage status (the `estudely` binary: 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The header of `collect`'s CSV, which `export --format csv` also writes (the seed's
/// columns, in its order).
pub const COLLECT_CSV_HEADER: &str =
    "infohash,name,file_count,total_bytes,piece_length,peer_ip,peer_port,metadata_ok";

/// The header of `crawl`'s CSV of peers (one row per infohash and peer address), which
/// `metadata` reads.
pub const PEERS_CSV_HEADER: &str = "infohash,peer_ip,peer_port";
