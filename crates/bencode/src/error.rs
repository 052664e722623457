//! The decoder's error type: every variant names the byte offset where decoding stopped.

/// Why a byte string is not acceptable bencode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input ended in the middle of a value.
    #[error("bencode: unexpected end of input at byte {offset}")]
    UnexpectedEof {
        /// Offset at which more input was needed.
        offset: usize,
    },
    /// A byte that cannot start or continue a value here.
    #[error("bencode: unexpected byte {byte:#04x} at byte {offset}")]
    UnexpectedByte {
        /// Offset of the byte.
        offset: usize,
        /// The byte found.
        byte: u8,
    },
    /// An integer that is empty, has leading zeros, is `-0`, or does not fit in an `i64`.
    #[error("bencode: invalid integer at byte {offset}")]
    InvalidInteger {
        /// Offset of the `i` (or of the length prefix of a byte string).
        offset: usize,
    },
    /// A byte string whose declared length runs past the end of the input.
    #[error("bencode: byte string at byte {offset} declares {len} bytes, only {available} remain")]
    StringTooLong {
        /// Offset of the length prefix.
        offset: usize,
        /// Declared length.
        len: usize,
        /// Bytes actually left in the input.
        available: usize,
    },
    /// A dict key that is not a byte string.
    #[error("bencode: dict key at byte {offset} is not a byte string")]
    KeyNotString {
        /// Offset of the key.
        offset: usize,
    },
    /// A dict key equal to or (in strict mode) sorting before the previous key.
    #[error("bencode: dict key at byte {offset} is duplicated or out of order")]
    KeyOrder {
        /// Offset of the offending key.
        offset: usize,
    },
    /// Lists and dicts nested deeper than [`crate::Limits::max_depth`].
    #[error("bencode: nesting deeper than {max} at byte {offset}")]
    TooDeep {
        /// Offset of the container that went too deep.
        offset: usize,
        /// The limit.
        max: usize,
    },
    /// Input larger than [`crate::Limits::max_size`].
    #[error("bencode: input of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Input length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More values than [`crate::Limits::max_values`].
    #[error("bencode: more than {max} values, at byte {offset}")]
    TooManyValues {
        /// Offset of the first value over the limit.
        offset: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes after a complete top-level value (only from [`crate::decode`]).
    #[error("bencode: trailing data at byte {offset}")]
    TrailingData {
        /// Offset of the first byte after the value.
        offset: usize,
    },
}

impl Error {
    /// Byte offset in the input at which decoding stopped (0 for [`Error::TooLarge`]).
    pub fn offset(&self) -> usize {
        match *self {
            Error::UnexpectedEof { offset }
            | Error::UnexpectedByte { offset, .. }
            | Error::InvalidInteger { offset }
            | Error::StringTooLong { offset, .. }
            | Error::KeyNotString { offset }
            | Error::KeyOrder { offset }
            | Error::TooDeep { offset, .. }
            | Error::TooManyValues { offset, .. }
            | Error::TrailingData { offset } => offset,
            Error::TooLarge { .. } => 0,
        }
    }
}
