//! The BEP 3 handshake: `\x13BitTorrent protocol`, 8 reserved bytes, the 20-byte info-hash
//! and the 20-byte peer id — 68 bytes, always first on a connection, in both directions.

use crate::WireError;

/// The 20-byte protocol prefix: length byte 19 and the protocol name.
pub const PROTOCOL: &[u8; 20] = b"\x13BitTorrent protocol";

/// Length of a handshake in bytes.
pub const HANDSHAKE_LEN: usize = 68;

/// The 8 reserved bytes, where peers advertise protocol extensions bit by bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Reserved(pub [u8; 8]);

impl Reserved {
    /// Byte and mask of the BEP 10 extension protocol bit.
    const EXTENSIONS: (usize, u8) = (5, 0x10);
    /// Byte and mask of the BEP 52 "v2 capable" bit.
    const V2: (usize, u8) = (7, 0x10);

    /// The reserved bytes we send: extension protocol on, plus v2 if `v2`.
    pub fn ours(v2: bool) -> Self {
        let mut r = Reserved::default();
        r.set(Self::EXTENSIONS, true);
        r.set(Self::V2, v2);
        r
    }

    /// Whether the BEP 10 extension protocol bit is set.
    pub fn supports_extensions(&self) -> bool {
        self.get(Self::EXTENSIONS)
    }

    /// Whether the BEP 52 v2 bit is set.
    pub fn supports_v2(&self) -> bool {
        self.get(Self::V2)
    }

    /// Set or clear the BEP 10 extension protocol bit.
    pub fn set_extensions(&mut self, on: bool) {
        self.set(Self::EXTENSIONS, on);
    }

    /// Set or clear the BEP 52 v2 bit.
    pub fn set_v2(&mut self, on: bool) {
        self.set(Self::V2, on);
    }

    fn get(&self, (byte, mask): (usize, u8)) -> bool {
        self.0[byte] & mask != 0
    }

    fn set(&mut self, (byte, mask): (usize, u8), on: bool) {
        if on {
            self.0[byte] |= mask;
        } else {
            self.0[byte] &= !mask;
        }
    }
}

/// A decoded handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handshake {
    /// Extension bits.
    pub reserved: Reserved,
    /// The torrent (for a v2 torrent, the first 20 bytes of its SHA-256 info-hash).
    pub info_hash: [u8; 20],
    /// The sender's peer id.
    pub peer_id: [u8; 20],
}

impl Handshake {
    /// Whether the sender speaks the BEP 10 extension protocol.
    pub fn supports_extensions(&self) -> bool {
        self.reserved.supports_extensions()
    }

    /// Whether the sender announces BEP 52 v2 support.
    pub fn supports_v2(&self) -> bool {
        self.reserved.supports_v2()
    }

    /// The 68 bytes on the wire.
    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[..20].copy_from_slice(PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved.0);
        out[28..48].copy_from_slice(&self.info_hash);
        out[48..].copy_from_slice(&self.peer_id);
        out
    }

    /// Decode a handshake from the start of `buf`. `Ok(None)` means "need more bytes"; a
    /// wrong protocol prefix is reported as soon as the bytes received so far differ from it.
    /// On success the handshake used exactly [`HANDSHAKE_LEN`] bytes.
    pub fn parse(buf: &[u8]) -> Result<Option<Handshake>, WireError> {
        let seen = buf.len().min(PROTOCOL.len());
        if buf[..seen] != PROTOCOL[..seen] {
            return Err(WireError::NotBitTorrent);
        }
        let Some(bytes) = buf.get(..HANDSHAKE_LEN) else {
            return Ok(None);
        };
        let mut hs = Handshake {
            reserved: Reserved::default(),
            info_hash: [0; 20],
            peer_id: [0; 20],
        };
        hs.reserved.0.copy_from_slice(&bytes[20..28]);
        hs.info_hash.copy_from_slice(&bytes[28..48]);
        hs.peer_id.copy_from_slice(&bytes[48..68]);
        Ok(Some(hs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Handshake {
        Handshake {
            reserved: Reserved::ours(false),
            info_hash: [0x11; 20],
            peer_id: *b"-ES0001-abcdefghijkl",
        }
    }

    #[test]
    fn encodes_known_bytes() {
        let bytes = sample().encode();
        assert_eq!(&bytes[..20], b"\x13BitTorrent protocol");
        assert_eq!(&bytes[20..28], &[0, 0, 0, 0, 0, 0x10, 0, 0]);
        assert_eq!(&bytes[28..48], &[0x11; 20]);
        assert_eq!(&bytes[48..], b"-ES0001-abcdefghijkl");
    }

    #[test]
    fn round_trips_and_reads_bits() {
        let hs = sample();
        let back = Handshake::parse(&hs.encode()).unwrap().unwrap();
        assert_eq!(back, hs);
        assert!(back.supports_extensions());
        assert!(!back.supports_v2());

        let mut r = Reserved::ours(true);
        assert!(r.supports_v2() && r.supports_extensions());
        assert_eq!(r.0, [0, 0, 0, 0, 0, 0x10, 0, 0x10]);
        r.set_v2(false);
        r.set_extensions(false);
        assert_eq!(r, Reserved::default());
    }

    #[test]
    fn other_bits_are_preserved() {
        // libtorrent also sets the fast extension (byte 7, 0x04) and DHT (byte 7, 0x01).
        let mut bytes = sample().encode();
        bytes[27] = 0x15;
        let hs = Handshake::parse(&bytes).unwrap().unwrap();
        assert!(hs.supports_v2());
        assert_eq!(hs.encode(), bytes);
    }

    #[test]
    fn incremental_and_bad_prefix() {
        let bytes = sample().encode();
        for n in 0..HANDSHAKE_LEN {
            assert_eq!(Handshake::parse(&bytes[..n]), Ok(None), "{n}");
        }
        // Trailing bytes (the first message) are left for the caller.
        let mut more = bytes.to_vec();
        more.extend_from_slice(&[0, 0, 0, 0]);
        assert!(Handshake::parse(&more).unwrap().is_some());

        assert_eq!(
            Handshake::parse(b"GET / HTTP/1.1"),
            Err(WireError::NotBitTorrent)
        );
        assert_eq!(Handshake::parse(b"\x13Bit"), Ok(None));
        assert_eq!(Handshake::parse(b"\x14"), Err(WireError::NotBitTorrent));
    }
}
