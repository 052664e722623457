//! Newtypes for the fixed-size and bounded identifiers of KRPC.

use std::fmt;

use crate::Error;

macro_rules! id20 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; 20]);

        impl $name {
            /// Parse from a slice that must be exactly 20 bytes long.
            pub fn from_slice(key: &'static str, b: &[u8]) -> Result<Self, Error> {
                <[u8; 20]>::try_from(b)
                    .map($name)
                    .map_err(|_| Error::BadLength { key, len: b.len(), expected: "20" })
            }

            /// Parse 40 hex digits.
            pub fn from_hex(s: &str) -> Option<Self> {
                let mut out = [0u8; 20];
                hex::decode_to_slice(s, &mut out).ok()?;
                Some($name(out))
            }

            /// Lower-case hex, 40 digits.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// XOR distance to another 20-byte key (smaller is closer, compared as big-endian).
            pub fn distance(&self, other: &[u8; 20]) -> [u8; 20] {
                std::array::from_fn(|i| self.0[i] ^ other[i])
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 20] {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
}

id20!(
    /// A DHT node's 160-bit identifier.
    NodeId
);
id20!(
    /// A torrent's 20-byte DHT key: a v1 SHA-1 infohash, or the first 20 bytes of a v2 one.
    InfoHash
);

impl NodeId {
    /// Number of leading bits shared with `other` (160 when equal): the bucket index basis.
    pub fn common_prefix_len(&self, other: &[u8; 20]) -> usize {
        for (i, (a, b)) in self.0.iter().zip(other).enumerate() {
            let x = a ^ b;
            if x != 0 {
                return i * 8 + x.leading_zeros() as usize;
            }
        }
        160
    }
}

impl From<InfoHash> for NodeId {
    fn from(h: InfoHash) -> Self {
        NodeId(h.0)
    }
}

macro_rules! bounded_bytes {
    ($(#[$doc:meta])* $name:ident, $max:expr, $key:expr) => {
        $(#[$doc])*
        ///
        /// Held inline (no heap allocation): a length and a fixed buffer, zeroed past the
        /// length.
        #[derive(Clone)]
        pub struct $name {
            len: u8,
            bytes: [u8; $max],
        }

        impl $name {
            /// Largest accepted length, in bytes.
            pub const MAX: usize = $max;

            /// Take bytes, refusing more than [`Self::MAX`].
            pub fn new(b: &[u8]) -> Result<Self, Error> {
                if b.len() > Self::MAX {
                    return Err(Error::BadLength { key: $key, len: b.len(), expected: concat!("at most ", stringify!($max)) });
                }
                let mut bytes = [0u8; $max];
                bytes[..b.len()].copy_from_slice(b);
                Ok($name { len: b.len() as u8, bytes })
            }

            /// The bytes.
            pub fn as_bytes(&self) -> &[u8] {
                &self.bytes[..usize::from(self.len)]
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name { len: 0, bytes: [0u8; $max] }
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.as_bytes() == other.as_bytes()
            }
        }

        impl Eq for $name {}

        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.as_bytes().hash(state);
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), hex::encode(self.as_bytes()))
            }
        }
    };
}

bounded_bytes!(
    /// A transaction id, echoed back by the responder (`t`). Usually 2-4 bytes.
    TransactionId, 32, "t"
);
bounded_bytes!(
    /// A write token from `get_peers`, presented back in `announce_peer`.
    Token, 64, "token"
);
bounded_bytes!(
    /// A client version (`v`), e.g. `LT\x02\x01`: two letters and two version bytes, by
    /// convention. Longer ones are not kept (see [`crate::Message::version`]).
    Version, 32, "v"
);

/// A version reads as its bytes (`message.version.as_deref()` is an `Option<&[u8]>`).
impl std::ops::Deref for Version {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_distance() {
        let a = NodeId([0u8; 20]);
        let mut b = [0u8; 20];
        b[1] = 0b0010_0000;
        assert_eq!(a.common_prefix_len(&b), 10);
        assert_eq!(a.common_prefix_len(&a.0), 160);
        assert_eq!(a.distance(&b)[1], 0b0010_0000);
    }

    #[test]
    fn hex_and_lengths() {
        let h = InfoHash::from_hex("0123456789abcdef0123456789abcdef01234567").unwrap();
        assert_eq!(h.to_hex(), "0123456789abcdef0123456789abcdef01234567");
        assert!(InfoHash::from_hex("xyz").is_none());
        assert!(NodeId::from_slice("id", &[0; 19]).is_err());
        assert!(Token::new(&[0; 65]).is_err());
        assert!(TransactionId::new(&[0; 32]).is_ok());
        assert!(Version::new(&[0; 33]).is_err());
        let v = Some(Version::new(b"LT\x02\x01").unwrap());
        assert_eq!(v.as_deref(), Some(&b"LT\x02\x01"[..]));
    }
}
