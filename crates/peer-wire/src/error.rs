//! The crate's one error type, and the coarse [`FailureKind`] a fetch summary counts by.

use std::fmt;

/// Everything that can go wrong on the peer wire, from a malformed frame to a metadata hash
/// that does not match. Every variant is data, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The first bytes are not `\x13BitTorrent protocol`.
    #[error("not a BitTorrent handshake")]
    NotBitTorrent,
    /// The peer's handshake names another torrent.
    #[error("peer answered for info-hash {}, expected {}", hex(got), hex(expected))]
    InfoHashMismatch {
        /// The info-hash we asked for.
        expected: [u8; 20],
        /// The info-hash in the peer's handshake.
        got: [u8; 20],
    },
    /// A length prefix larger than we accept (checked before buffering anything).
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Declared (or required) frame length.
        len: u64,
        /// The limit.
        max: u32,
    },
    /// A message whose payload length does not fit its id (e.g. `have` not 4 bytes).
    #[error("message id {id} with invalid payload length {len}")]
    BadMessageLength {
        /// Message id.
        id: u8,
        /// Payload length (without the id byte).
        len: u32,
    },
    /// A bencoded payload that does not decode.
    #[error(transparent)]
    Bencode(#[from] estudely_bencode::Error),
    /// A bencoded payload that is not a dict.
    #[error("{what} is not a bencoded dict")]
    NotADict {
        /// Which payload.
        what: &'static str,
    },
    /// A required key is absent.
    #[error("missing field `{field}`")]
    MissingField {
        /// The key.
        field: &'static str,
    },
    /// A key holds a value of the wrong type or out of range.
    #[error("invalid field `{field}`")]
    InvalidField {
        /// The key.
        field: &'static str,
    },
    /// The peer supports no extension protocol (BEP 10 reserved bit unset).
    #[error("peer does not support the extension protocol")]
    NoExtensions,
    /// The peer's extended handshake does not offer `ut_metadata`.
    #[error("peer does not offer ut_metadata")]
    NoUtMetadata,
    /// The peer's extended handshake has no usable `metadata_size`.
    #[error("peer did not announce a metadata_size")]
    MissingMetadataSize,
    /// A metadata size of zero or above the cap.
    #[error("metadata size {size} outside 1..={max}")]
    BadMetadataSize {
        /// Announced size.
        size: u64,
        /// The cap.
        max: u64,
    },
    /// A `data` message whose `total_size` differs from the announced `metadata_size`.
    #[error("metadata piece claims total_size {total_size}, expected {expected}")]
    SizeMismatch {
        /// Size in the message.
        total_size: u64,
        /// Size announced in the extended handshake.
        expected: u64,
    },
    /// A metadata piece index past the last piece.
    #[error("metadata piece {piece} out of range (0..{pieces})")]
    PieceOutOfRange {
        /// Index received.
        piece: u32,
        /// Number of pieces.
        pieces: u32,
    },
    /// A metadata piece of the wrong length (all are 16 KiB but the last).
    #[error("metadata piece {piece} is {len} bytes, expected {expected}")]
    PieceLength {
        /// Index received.
        piece: u32,
        /// Bytes received.
        len: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// A metadata piece received twice.
    #[error("metadata piece {piece} received twice")]
    DuplicatePiece {
        /// Index received.
        piece: u32,
    },
    /// [`crate::MetadataAssembler::finish`] called before every piece arrived.
    #[error("metadata incomplete: {missing} pieces missing")]
    Incomplete {
        /// Pieces still missing.
        missing: u32,
    },
    /// The assembled metadata does not hash to the expected info-hash.
    #[error("metadata does not match the info-hash")]
    HashMismatch,
    /// The peer rejected a metadata request.
    #[error("peer rejected metadata piece {piece}")]
    Rejected {
        /// The piece rejected.
        piece: u32,
    },
    /// File lengths in an info dict whose sum does not fit in 64 bits.
    #[error("file lengths overflow")]
    LengthOverflow,
    /// A hybrid torrent whose v1 file list and v2 file tree disagree.
    #[error(
        "hybrid torrent: v1 lists {v1_files} files / {v1_bytes} bytes, v2 {v2_files} / {v2_bytes}"
    )]
    HybridMismatch {
        /// Non-pad files in the v1 list.
        v1_files: u64,
        /// Their total size.
        v1_bytes: u64,
        /// Files in the v2 tree.
        v2_files: u64,
        /// Their total size.
        v2_bytes: u64,
    },
}

/// Coarse classification of a failed fetch, for counting in a summary. Connection refusal
/// and timeouts are the driver's, so they are not here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureKind {
    /// The peer has no extension protocol or no `ut_metadata`.
    NoUtMetadata,
    /// The metadata did not verify.
    HashMismatch,
    /// `metadata_size` missing, zero or above the cap.
    TooLarge,
    /// The peer rejected a request.
    Rejected,
    /// The peer answered for another torrent.
    InfoHashMismatch,
    /// Any other protocol violation.
    Protocol,
}

impl WireError {
    /// Which [`FailureKind`] this error counts as.
    pub fn kind(&self) -> FailureKind {
        match self {
            WireError::NoExtensions | WireError::NoUtMetadata => FailureKind::NoUtMetadata,
            WireError::HashMismatch => FailureKind::HashMismatch,
            WireError::MissingMetadataSize | WireError::BadMetadataSize { .. } => {
                FailureKind::TooLarge
            }
            WireError::Rejected { .. } => FailureKind::Rejected,
            WireError::InfoHashMismatch { .. } => FailureKind::InfoHashMismatch,
            _ => FailureKind::Protocol,
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::NoUtMetadata => "no_ut_metadata",
            FailureKind::HashMismatch => "hash_mismatch",
            FailureKind::TooLarge => "too_large",
            FailureKind::Rejected => "rejected",
            FailureKind::InfoHashMismatch => "infohash_mismatch",
            FailureKind::Protocol => "protocol",
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_messages() {
        assert_eq!(WireError::NoExtensions.kind(), FailureKind::NoUtMetadata);
        assert_eq!(
            WireError::BadMetadataSize { size: 0, max: 1 }.kind(),
            FailureKind::TooLarge
        );
        assert_eq!(
            WireError::Rejected { piece: 3 }.kind().to_string(),
            "rejected"
        );
        assert_eq!(
            WireError::FrameTooLarge { len: 9, max: 4 }.kind(),
            FailureKind::Protocol
        );
        let e = WireError::InfoHashMismatch {
            expected: [0xab; 20],
            got: [0; 20],
        };
        assert!(e.to_string().contains(&"ab".repeat(20)));
        assert_eq!(
            WireError::PieceOutOfRange {
                piece: 5,
                pieces: 2
            }
            .to_string(),
            "metadata piece 5 out of range (0..2)"
        );
    }
}
