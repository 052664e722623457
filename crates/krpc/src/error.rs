//! Why a datagram is not a KRPC message we accept.

/// A malformed KRPC message. Carries enough structure to log and to count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not bencode at all.
    #[error("krpc: {0}")]
    Bencode(#[from] estudely_bencode::Error),
    /// Larger than [`crate::MAX_DATAGRAM`].
    #[error("krpc: datagram of {len} bytes exceeds {max}")]
    TooLarge {
        /// Datagram length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The top level is not a dict.
    #[error("krpc: message is not a dict")]
    NotADict,
    /// A required key is absent.
    #[error("krpc: missing key `{key}`")]
    Missing {
        /// The key.
        key: &'static str,
    },
    /// A key holds the wrong bencode type.
    #[error("krpc: key `{key}` has the wrong type")]
    WrongType {
        /// The key.
        key: &'static str,
    },
    /// A fixed-size or compact field has a length it cannot have.
    #[error("krpc: `{key}` is {len} bytes, expected {expected}")]
    BadLength {
        /// The key.
        key: &'static str,
        /// Length found.
        len: usize,
        /// What was expected, e.g. "20" or "a multiple of 26".
        expected: &'static str,
    },
    /// An integer outside its range (a port above 65535, a negative interval...).
    #[error("krpc: `{key}` = {value} is out of range")]
    OutOfRange {
        /// The key.
        key: &'static str,
        /// The value found.
        value: i64,
    },
    /// `y` is not `q`, `r` or `e`.
    #[error("krpc: unknown message type")]
    UnknownType,
}
