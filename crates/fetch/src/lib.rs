//! Fetching torrent metadata (BEP 9) from peers over TCP or uTP: a thin tokio driver around
//! `estudely-peer-wire`'s sans-IO [`MetadataSession`](estudely_peer_wire::MetadataSession).
//!
//! * [`fetch_one`]: one attempt at one peer — TCP or uTP connect ([`TransportChoice`]),
//!   BEP 3/10 handshakes, BEP 9
//!   pieces, each step under its own timeout ([`FetchConfig`]), the whole attempt under a
//!   deadline. Succeeds with [`FetchedMetadata`] (verified info bytes and their
//!   [`InfoSummary`]) or fails with a [`FetchFailure`] of one [`FailureKind`].
//! * [`fetch_many`] / [`fetch_stream`]: many infohashes at once, each trying its peers in
//!   order until one succeeds, one connection per peer address at a time and at most
//!   [`FetchConfig::concurrency`] in all (`peers`: whose turn, and which peers refused
//!   lately); results come out of a [`FetchBatch`] as they complete, and [`FetchStats`]
//!   counts attempts by outcome for a summary line.
//! * [`peers_csv`]: reading the `infohash,peer_ip,peer_port` CSV that `crawl` writes into
//!   [`Job`]s, from a whole file or row by row.
//! * [`stream`]: grouping rows that arrive over time (a crawl piped in) into jobs as they
//!   arrive, with follow-up jobs for peers that come later.
//!
//! Memory per connection is bounded by the session: one frame of at most 1 MiB in the input
//! buffer plus one buffer of the announced metadata size, at most
//! [`FetchConfig::max_metadata_size`], which becomes the info dict. The metadata of all
//! connections together is bounded by [`FetchConfig::memory`] ([`budget`]): each reserves
//! the size its peer announces before that buffer is allocated.
//!
//! Features: `utp` (default) brings uTP over `librqbit-utp`; without it the crate builds no
//! uTP library and every uTP attempt fails at once as a local error naming the feature.
//!
//! ```no_run
//! use estudely_fetch::{fetch_one, FetchConfig};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let peer = "198.51.100.7:6881".parse()?;
//! let info_hash = estudely_fetch::info_hash_hex("0123456789abcdef0123456789abcdef01234567")
//!     .ok_or("not an infohash")?;
//! match fetch_one(peer, info_hash.0, &FetchConfig::default()).await {
//!     Ok(m) => println!("{:?}: {} files", m.summary.name, m.summary.file_count),
//!     Err(e) => println!("failed: {e}"),
//! }
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod batch;
pub mod budget;
mod conn;
mod encrypted;
mod peers;
pub mod peers_csv;
pub mod stream;
#[cfg(not(feature = "utp"))]
#[path = "no_utp.rs"]
mod utp;
#[cfg(feature = "utp")]
mod utp;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use estudely_dht_core::AddrPolicy;
use estudely_peer_wire::{InfoSummary, DEFAULT_MAX_METADATA_SIZE};

pub use batch::{fetch_many, fetch_stream, Attempt, FetchBatch, FetchStats, InfohashResult, Job};
pub use budget::{MetadataBudget, DEFAULT_FETCH_MEMORY};
pub use conn::{fetch_one, fetch_one_until};
pub use peers_csv::info_hash_hex;
pub use utp::UtpDialer;

/// Write `DIR/<hex>.torrent`, a .torrent file holding the fetched info dict `info` (via a
/// temporary name, so a reader never sees half a file). The name comes only from the
/// infohash `hex`, never from the metadata. The error names the file.
pub fn save_torrent(dir: &std::path::Path, hex: &str, info: &[u8]) -> std::io::Result<()> {
    let path = dir.join(format!("{hex}.torrent"));
    let part = dir.join(format!("{hex}.torrent.part"));
    std::fs::write(&part, estudely_peer_wire::torrent_file_bytes(info))
        .and_then(|()| std::fs::rename(&part, &path))
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display())))
}

/// A connection to a peer, whatever carries it (TCP, uTP, either encrypted).
pub trait PeerStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> PeerStream for T {}

/// Which transports an attempt may connect over (`--transport`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TransportChoice {
    /// TCP only.
    Tcp,
    /// uTP (BEP 29) only.
    Utp,
    /// TCP first; uTP too if TCP is refused or has not connected within a head start, the
    /// first connection made winning (see [`TCP_HEAD_START`]).
    #[default]
    Both,
}

/// How long TCP is tried alone, under [`TransportChoice::Both`], before uTP is tried too.
/// A TCP connect that will succeed mostly does so within one round trip; a TCP SYN that goes
/// unanswered this long (Linux resends it after 1 s) usually means a peer behind a NAT or a
/// firewall that only uTP gets through.
pub const TCP_HEAD_START: Duration = Duration::from_millis(1_000);

/// What carried a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// TCP.
    Tcp,
    /// uTP (BEP 29) over UDP.
    Utp,
}

impl Transport {
    /// `tcp` or `utp`, the word summaries, JSON and metric labels use.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Utp => "utp",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tunables of metadata fetching. Durations are wall-clock; sizes are bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchConfig {
    /// Time allowed for the connect (TCP, uTP, or both under [`TransportChoice::Both`]).
    /// Default 5 s.
    pub connect_timeout: Duration,
    /// Time allowed, once connected, for the peer's BEP 3 handshake and BEP 10 extended
    /// handshake to arrive. Default 10 s.
    pub handshake_timeout: Duration,
    /// Time allowed for each next metadata piece (a peer trickling bytes without completing
    /// a piece times out too). Default 10 s.
    pub piece_timeout: Duration,
    /// Deadline for one attempt at one peer, connect included. Default 30 s.
    pub attempt_timeout: Duration,
    /// Largest info dict accepted (a larger `metadata_size` fails as `too_large` before
    /// anything is allocated). Default 32 MiB.
    pub max_metadata_size: u64,
    /// Connections at once in [`fetch_many`] / [`fetch_stream`] (0 counts as 1). Default 32.
    /// Up to 32 times as many infohashes may be in progress (at most 16,384): those beyond
    /// wait for a peer that another job is connected to, without a connection permit.
    pub concurrency: usize,
    /// Peers tried per infohash, in order, until one succeeds. Default 5.
    pub peer_attempts: usize,
    /// Deadline for a whole batch; attempts still running then fail as `timeout` and jobs
    /// not started are reported without attempts. Default `None` (no deadline).
    pub overall_timeout: Option<Duration>,
    /// Our BEP 20 peer id; `None` (the default): `-ES0001-` and 12 random bytes per
    /// connection.
    pub peer_id: Option<[u8; 20]>,
    /// Client name sent in the extended handshake (`v`). Default `Estudely <version>`.
    pub client: Option<String>,
    /// Which peer addresses may be connected to. Default [`AddrPolicy::strict`]: no
    /// private, loopback, multicast or other special-purpose address, no port 0.
    pub addr_policy: AddrPolicy,
    /// Which transports to connect over. Default [`TransportChoice::Both`].
    pub transport: TransportChoice,
    /// The uTP sockets, shared by every attempt made with this configuration (and its
    /// clones); bound on first use.
    pub utp: UtpDialer,
    /// Whether connections use Message Stream Encryption. Default
    /// [`EncryptionPolicy::Prefer`].
    pub encryption: EncryptionPolicy,
    /// The budget of metadata in flight, shared by every attempt made with this
    /// configuration (and its clones). Default [`DEFAULT_FETCH_MEMORY`].
    pub memory: MetadataBudget,
    /// Local addresses to connect from, TCP and uTP alike: the first of the peer's family
    /// that is not unspecified (a crawler's `--bind`, so that on a host with one
    /// `--shard` per IP each shard's fetches leave from its own IP). A peer of a family
    /// without one is connected from the address the system picks. Default none. The
    /// uTP socket of a family is bound on its first connection, with the address this
    /// gave then.
    pub local_ips: Vec<IpAddr>,
}

impl FetchConfig {
    /// The address to connect to `peer` from, if [`local_ips`](Self::local_ips) names one.
    pub fn local_ip(&self, peer: &SocketAddr) -> Option<IpAddr> {
        self.local_ips
            .iter()
            .copied()
            .find(|ip| ip.is_ipv4() == peer.is_ipv4() && !ip.is_unspecified())
    }
}

/// When to use Message Stream Encryption (MSE, "protocol encryption") towards a peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum EncryptionPolicy {
    /// Plaintext only (peers that require encryption close the connection).
    Off,
    /// Plaintext first; if the peer closes the connection before answering our BitTorrent
    /// handshake (the usual sign of a peer that requires encryption), once more with MSE
    /// (offering RC4 or plaintext), within the same attempt deadline.
    ///
    /// Plaintext first because most peers accept it (every major client accepts both by
    /// default), it saves the Diffie-Hellman round trip, and peers without MSE support cost
    /// nothing extra; only the minority that requires encryption costs a second connection.
    /// libtorrent's `enabled` policy goes the other way round (encrypted first, remembering
    /// per peer to fall back), which pays off for a client that reconnects to the same
    /// peers; a metadata fetcher meets most peers once.
    #[default]
    Prefer,
    /// MSE with RC4 only.
    Required,
}

impl EncryptionPolicy {
    /// The flag's spelling: `off`, `prefer`, `required`.
    pub fn as_str(self) -> &'static str {
        match self {
            EncryptionPolicy::Off => "off",
            EncryptionPolicy::Prefer => "prefer",
            EncryptionPolicy::Required => "required",
        }
    }
}

/// How a successful connection was carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Encryption {
    /// No MSE handshake.
    #[default]
    Plaintext,
    /// MSE handshake, then plaintext (the peer selected it).
    MsePlaintext,
    /// MSE handshake, then RC4.
    Rc4,
}

impl Encryption {
    /// Whether the MSE handshake was used.
    pub fn is_mse(self) -> bool {
        self != Encryption::Plaintext
    }

    /// `plaintext`, `mse_plaintext` or `rc4`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encryption::Plaintext => "plaintext",
            Encryption::MsePlaintext => "mse_plaintext",
            Encryption::Rc4 => "rc4",
        }
    }
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            piece_timeout: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(30),
            max_metadata_size: DEFAULT_MAX_METADATA_SIZE,
            concurrency: 32,
            peer_attempts: 5,
            overall_timeout: None,
            peer_id: None,
            client: Some(concat!("Estudely ", env!("CARGO_PKG_VERSION")).to_owned()),
            addr_policy: AddrPolicy::strict(),
            transport: TransportChoice::Both,
            utp: UtpDialer::new(),
            encryption: EncryptionPolicy::default(),
            memory: MetadataBudget::default(),
            local_ips: Vec::new(),
        }
    }
}

/// Verified metadata from one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedMetadata {
    /// The peer that sent it.
    pub peer: SocketAddr,
    /// The info dict, exactly as received and verified against the infohash.
    pub info: Vec<u8>,
    /// What it describes.
    pub summary: InfoSummary,
    /// The peer's client name from its extended handshake (`v`), if it sent one.
    pub client: Option<String>,
    /// Whether the connection was encrypted (see [`EncryptionPolicy`]).
    pub encryption: Encryption,
    /// What carried the connection.
    pub transport: Transport,
}

impl FetchedMetadata {
    /// The full SHA-256 infohash (BEP 52) of a v2 or hybrid torrent, `None` for v1: the
    /// identity that outputs carry beside the 20-byte DHT key.
    pub fn info_hash_v2(&self) -> Option<[u8; 32]> {
        use sha2::Digest as _;
        match self.summary.version {
            estudely_peer_wire::Version::V1 => None,
            _ => Some(sha2::Sha256::digest(&self.info).into()),
        }
    }
}

/// Why an attempt failed, coarsely, for counting in a summary. Displayed in snake case
/// (`no_ut_metadata`), the words the summary line uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureKind {
    /// The connect failed at the peer's end (refused, unreachable, reset).
    Refused,
    /// A connect, handshake, piece or attempt timeout expired.
    Timeout,
    /// The peer has no extension protocol or does not offer `ut_metadata`.
    NoUtMetadata,
    /// The metadata did not hash to the infohash.
    HashMismatch,
    /// The announced `metadata_size` is missing, zero or above the cap.
    TooLarge,
    /// The peer rejected a metadata request.
    Rejected,
    /// The peer's handshake named another torrent.
    InfohashMismatch,
    /// Any other protocol violation (oversized frame, bad bencode, wrong piece, ...).
    Protocol,
    /// The peer closed (or reset) the connection before the metadata was complete.
    Closed,
    /// Not contacted: the address policy refuses its address (private, loopback,
    /// multicast, ..., or port 0; see `--allow-private`).
    AddressRefused,
    /// The announced `metadata_size` found no room in the budget of metadata in flight
    /// in time (`--fetch-memory`); nothing was requested.
    MemoryBudget,
    /// Not contacted: the address refused a connection (as [`Refused`](Self::Refused))
    /// less than 10 minutes before, in the same batch (the last 4,096 such addresses are
    /// remembered).
    RefusedRecently,
    /// The connection could not even start on our side: no local port or address to
    /// connect from (ports all taken, or a `--bind` address this host does not have).
    LocalError,
}

impl FailureKind {
    /// Every kind, in the order summaries list ties.
    pub const ALL: [FailureKind; 13] = [
        FailureKind::Refused,
        FailureKind::Timeout,
        FailureKind::NoUtMetadata,
        FailureKind::HashMismatch,
        FailureKind::TooLarge,
        FailureKind::Rejected,
        FailureKind::InfohashMismatch,
        FailureKind::Protocol,
        FailureKind::Closed,
        FailureKind::AddressRefused,
        FailureKind::MemoryBudget,
        FailureKind::RefusedRecently,
        FailureKind::LocalError,
    ];

    /// The snake-case name used in summaries and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Refused => "refused",
            FailureKind::Timeout => "timeout",
            FailureKind::NoUtMetadata => "no_ut_metadata",
            FailureKind::HashMismatch => "hash_mismatch",
            FailureKind::TooLarge => "too_large",
            FailureKind::Rejected => "rejected",
            FailureKind::InfohashMismatch => "infohash_mismatch",
            FailureKind::Protocol => "protocol",
            FailureKind::Closed => "closed",
            FailureKind::AddressRefused => "address_refused",
            FailureKind::MemoryBudget => "memory_budget",
            FailureKind::RefusedRecently => "refused_recently",
            FailureKind::LocalError => "local_error",
        }
    }
}

impl From<estudely_peer_wire::FailureKind> for FailureKind {
    fn from(k: estudely_peer_wire::FailureKind) -> Self {
        use estudely_peer_wire::FailureKind as W;
        match k {
            W::NoUtMetadata => FailureKind::NoUtMetadata,
            W::HashMismatch => FailureKind::HashMismatch,
            W::TooLarge => FailureKind::TooLarge,
            W::Rejected => FailureKind::Rejected,
            W::InfoHashMismatch => FailureKind::InfohashMismatch,
            W::Protocol => FailureKind::Protocol,
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed attempt: its [`FailureKind`] and a one-line explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchFailure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// Details for people, e.g. `no metadata piece within 10s (2/4 received)`.
    pub detail: String,
}

impl FetchFailure {
    /// A failure of `kind`, with `detail` for the log (e.g. to stand in for a real attempt
    /// in a caller's tests).
    pub fn new(kind: FailureKind, detail: impl Into<String>) -> Self {
        FetchFailure {
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for FetchFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

impl std::error::Error for FetchFailure {}
