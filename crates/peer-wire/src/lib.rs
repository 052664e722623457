//! The BitTorrent peer wire, as far as fetching a torrent's metadata needs it, sans-IO:
//! no sockets, no clock, no randomness — bytes in, bytes and outcomes out.
//!
//! * [`handshake`]: the 68-byte BEP 3 handshake with the BEP 10 and BEP 52 reserved bits.
//! * [`framing`]: length-prefixed messages; [`parse_frame`] checks the length against a cap
//!   before anything else.
//! * [`extension`]: the BEP 10 extended handshake and BEP 9 `ut_metadata` messages.
//! * [`metadata`]: [`MetadataAssembler`] collects 16 KiB pieces and verifies the info dict
//!   with SHA-1 and/or SHA-256.
//! * [`session`]: [`MetadataSession`], a state machine for one metadata-fetch connection;
//!   the driver owns the socket and the clock.
//! * [`mse`]: Message Stream Encryption (the obfuscated handshake and RC4 streams), both
//!   sides, for peers that accept only encrypted connections.
//! * [`serve`]: [`MetadataServer`], the seeding side of BEP 9, for our loopback testnet.
//! * [`info`]: [`InfoSummary`] of a verified info dict (v1, v2, hybrid), robust to hostile
//!   contents, and [`torrent_file_bytes`].
//!
//! Errors are one enum, [`WireError`]; [`WireError::kind`] gives the coarse
//! [`FailureKind`] a fetch summary counts.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod error;
pub mod extension;
pub mod framing;
pub mod handshake;
pub mod info;
pub mod metadata;
pub mod mse;
pub mod serve;
pub mod session;

pub use error::{FailureKind, WireError};
pub use extension::{ExtHandshake, MetadataMsg};
pub use framing::{parse_frame, Message};
pub use handshake::{Handshake, Reserved, HANDSHAKE_LEN};
pub use info::{torrent_file_bytes, FileEntry, InfoSummary, Version};
pub use metadata::{
    Expected, HashKind, InfoHashes, Metadata, MetadataAssembler, DEFAULT_MAX_METADATA_SIZE,
    METADATA_PIECE_LEN,
};
pub use mse::{CryptoProvide, MseError, MseInitiator, MseResponder, MseState, MseStream};
pub use serve::{synthetic_info, MetadataServer};
pub use session::{MetadataSession, SessionConfig, SessionState};
