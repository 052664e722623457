//! Reassembly and verification of a torrent's info dict from BEP 9 pieces.
//!
//! [`MetadataAssembler`] checks the announced size before allocating anything, keeps each
//! 16 KiB piece only once it has arrived (so memory follows the data actually received, not
//! the size a peer claims), accepts pieces in any order, and verifies the whole buffer
//! against SHA-1 (v1) and/or SHA-256 (v2) when the last piece is in. A driver that has
//! reserved memory for the announced size can ask for one buffer of that size instead
//! ([`MetadataAssembler::buffered`]): the pieces are written into it and it becomes the
//! info dict, so that a complete one is never held twice (pieces and joined copy).

use sha1::{Digest, Sha1};
use sha2::Sha256;

use crate::WireError;

/// Size of every metadata piece but the last (BEP 9).
pub const METADATA_PIECE_LEN: usize = 16 * 1024;

/// Default cap on the size of an info dict we are willing to fetch: 32 MiB.
pub const DEFAULT_MAX_METADATA_SIZE: u64 = 32 << 20;

/// The full info-hashes of a torrent, as far as they are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct InfoHashes {
    /// SHA-1 of the info dict (v1 and hybrid torrents).
    pub v1: Option<[u8; 20]>,
    /// SHA-256 of the info dict (v2 and hybrid torrents).
    pub v2: Option<[u8; 32]>,
}

/// What the assembled metadata must hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expected {
    /// Every hash present must match (both, for a hybrid torrent known by both).
    Hashes(InfoHashes),
    /// Only the 20-byte key from the DHT or a handshake is known: either a v1 SHA-1, or the
    /// first 20 bytes of a v2 SHA-256. Either match is accepted.
    DhtKey([u8; 20]),
}

impl From<InfoHashes> for Expected {
    fn from(h: InfoHashes) -> Self {
        Expected::Hashes(h)
    }
}

impl From<[u8; 20]> for Expected {
    fn from(key: [u8; 20]) -> Self {
        Expected::DhtKey(key)
    }
}

/// Which hash verified the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashKind {
    /// SHA-1 (a v1 info-hash).
    V1,
    /// SHA-256, full or truncated to 20 bytes (a v2 info-hash). Reported whenever SHA-256
    /// was checked, also for a hybrid torrent whose SHA-1 matched too.
    V2,
}

/// A verified info dict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// The info dict, exactly as the peer sent it (and as it was hashed).
    pub info: Vec<u8>,
    /// Which hash verified it.
    pub verified_by: HashKind,
}

/// Collects metadata pieces and verifies the result.
#[derive(Debug, Clone)]
pub struct MetadataAssembler {
    expected: Expected,
    size: usize,
    /// Received pieces; in buffered mode, an empty marker (no allocation) per piece in
    /// `buffer`.
    pieces: Vec<Option<Box<[u8]>>>,
    requested: Vec<bool>,
    received: u32,
    /// The whole info dict, pieces written in place ([`Self::buffered`]).
    buffer: Option<Vec<u8>>,
}

impl MetadataAssembler {
    /// Prepare to receive `metadata_size` bytes. Refuses a size of zero or above `max_size`
    /// before allocating anything, as well as an [`Expected::Hashes`] with no hash at all
    /// (reported as [`WireError::MissingField`] `info_hash`).
    pub fn new(
        expected: impl Into<Expected>,
        metadata_size: u64,
        max_size: u64,
    ) -> Result<Self, WireError> {
        let expected = expected.into();
        if expected == Expected::Hashes(InfoHashes::default()) {
            return Err(WireError::MissingField { field: "info_hash" });
        }
        let bad_size = WireError::BadMetadataSize {
            size: metadata_size,
            max: max_size,
        };
        if metadata_size == 0 || metadata_size > max_size {
            return Err(bad_size);
        }
        let size = usize::try_from(metadata_size).map_err(|_| bad_size.clone())?;
        let count = size.div_ceil(METADATA_PIECE_LEN);
        if u32::try_from(count).is_err() {
            return Err(bad_size);
        }
        Ok(MetadataAssembler {
            expected,
            size,
            pieces: vec![None; count],
            requested: vec![false; count],
            received: 0,
            buffer: None,
        })
    }

    /// Receive into one buffer of the full size, allocated now (zeroed pages, which the
    /// system maps as they are written), rather than piece by piece: for a driver that has
    /// reserved the announced size. [`into_metadata`](Self::into_metadata) then returns
    /// that buffer itself. Pieces received before are kept.
    pub fn buffered(mut self) -> Self {
        let mut buf = vec![0u8; self.size];
        for (i, p) in self.pieces.iter_mut().enumerate() {
            if let Some(data) = p.take() {
                let at = i * METADATA_PIECE_LEN;
                buf[at..at + data.len()].copy_from_slice(&data);
                *p = Some(Box::default());
            }
        }
        self.buffer = Some(buf);
        self
    }

    /// Size of the info dict in bytes.
    pub fn size(&self) -> u64 {
        self.size as u64
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        // `new` checked that the count fits.
        self.pieces.len() as u32
    }

    /// Number of distinct pieces received so far.
    pub fn received_count(&self) -> u32 {
        self.received
    }

    /// Whether every piece has arrived.
    pub fn is_complete(&self) -> bool {
        self.received == self.piece_count()
    }

    /// Expected length of piece `piece` (16 KiB except the last), or `None` if out of range.
    pub fn piece_len(&self, piece: u32) -> Option<usize> {
        let start = (piece as usize).checked_mul(METADATA_PIECE_LEN)?;
        (start < self.size).then(|| (self.size - start).min(METADATA_PIECE_LEN))
    }

    /// The lowest piece neither received nor already handed out; marks it as requested.
    pub fn next_request(&mut self) -> Option<u32> {
        let i = (0..self.pieces.len()).find(|&i| !self.requested[i] && self.pieces[i].is_none())?;
        self.requested[i] = true;
        u32::try_from(i).ok()
    }

    /// Whether `piece` was handed out by [`next_request`](Self::next_request) and has not
    /// arrived yet.
    pub fn is_outstanding(&self, piece: u32) -> bool {
        let i = piece as usize;
        self.requested.get(i) == Some(&true) && matches!(self.pieces.get(i), Some(None))
    }

    /// Make every missing piece requestable again (e.g. after switching peers).
    pub fn reset_requests(&mut self) {
        self.requested.iter_mut().for_each(|r| *r = false);
    }

    /// Store one piece. Rejects an index out of range, a wrong length and a duplicate.
    pub fn add_piece(&mut self, piece: u32, data: &[u8]) -> Result<(), WireError> {
        let expected = self.piece_len(piece).ok_or(WireError::PieceOutOfRange {
            piece,
            pieces: self.piece_count(),
        })?;
        if data.len() != expected {
            return Err(WireError::PieceLength {
                piece,
                len: data.len(),
                expected,
            });
        }
        let slot = &mut self.pieces[piece as usize];
        if slot.is_some() {
            return Err(WireError::DuplicatePiece { piece });
        }
        *slot = Some(match &mut self.buffer {
            Some(buf) => {
                let at = piece as usize * METADATA_PIECE_LEN;
                buf[at..at + data.len()].copy_from_slice(data);
                Box::default()
            }
            None => data.into(),
        });
        self.received += 1;
        Ok(())
    }

    /// Join the pieces and verify them: returns the info dict or [`WireError::HashMismatch`]
    /// ([`WireError::Incomplete`] if pieces are missing).
    pub fn finish(&self) -> Result<Metadata, WireError> {
        self.check_complete()?;
        let info = match &self.buffer {
            Some(buf) => buf.clone(),
            None => self.joined(),
        };
        self.verified(info)
    }

    /// [`finish`](Self::finish) by value: a [`buffered`](Self::buffered) assembler's
    /// buffer becomes the info dict without a copy.
    pub fn into_metadata(mut self) -> Result<Metadata, WireError> {
        self.check_complete()?;
        let info = match self.buffer.take() {
            Some(buf) => buf,
            None => self.joined(),
        };
        self.verified(info)
    }

    fn check_complete(&self) -> Result<(), WireError> {
        if self.is_complete() {
            Ok(())
        } else {
            Err(WireError::Incomplete {
                missing: self.piece_count() - self.received,
            })
        }
    }

    /// The pieces, joined.
    fn joined(&self) -> Vec<u8> {
        let mut info = Vec::with_capacity(self.size);
        for piece in self.pieces.iter().flatten() {
            info.extend_from_slice(piece);
        }
        info
    }

    fn verified(&self, info: Vec<u8>) -> Result<Metadata, WireError> {
        let verified_by = verify(&self.expected, &info).ok_or(WireError::HashMismatch)?;
        Ok(Metadata { info, verified_by })
    }
}

/// Check `info` against `expected`; `None` on mismatch.
pub fn verify(expected: &Expected, info: &[u8]) -> Option<HashKind> {
    let sha1 = || -> [u8; 20] { Sha1::digest(info).into() };
    let sha256 = || -> [u8; 32] { Sha256::digest(info).into() };
    match *expected {
        Expected::Hashes(InfoHashes { v1, v2 }) => {
            if v1.is_some_and(|h| h != sha1()) || v2.is_some_and(|h| h != sha256()) {
                None
            } else if v2.is_some() {
                Some(HashKind::V2)
            } else {
                v1.map(|_| HashKind::V1)
            }
        }
        Expected::DhtKey(key) => {
            if sha1() == key {
                Some(HashKind::V1)
            } else {
                (sha256()[..20] == key).then_some(HashKind::V2)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hashes(info: &[u8]) -> ([u8; 20], [u8; 32]) {
        (Sha1::digest(info).into(), Sha256::digest(info).into())
    }

    fn blob(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn assemble(a: &mut MetadataAssembler, info: &[u8], order: &[u32]) {
        for &p in order {
            let start = p as usize * METADATA_PIECE_LEN;
            let end = (start + METADATA_PIECE_LEN).min(info.len());
            a.add_piece(p, &info[start..end]).unwrap();
        }
    }

    #[test]
    fn refuses_bad_sizes_without_allocating() {
        let key = [1u8; 20];
        let max = DEFAULT_MAX_METADATA_SIZE;
        for size in [0, max + 1, 1 << 40, u64::MAX] {
            assert_eq!(
                MetadataAssembler::new(key, size, max).unwrap_err(),
                WireError::BadMetadataSize { size, max }
            );
        }
        assert!(MetadataAssembler::new(key, max, max).is_ok());
        assert_eq!(
            MetadataAssembler::new(InfoHashes::default(), 10, max).unwrap_err(),
            WireError::MissingField { field: "info_hash" }
        );
    }

    /// A buffered assembler takes pieces in any order (and those received before it was
    /// buffered), refuses the same bad pieces, and its buffer is the info dict.
    #[test]
    fn buffered_assembly_matches_piecewise() {
        let info = blob(3 * METADATA_PIECE_LEN + 5);
        let (v1, _) = hashes(&info);
        let mut a = MetadataAssembler::new(v1, info.len() as u64, 1 << 20).unwrap();
        assemble(&mut a, &info, &[2]);
        let mut a = a.buffered();
        assert_eq!(
            a.add_piece(2, &info[2 * METADATA_PIECE_LEN..3 * METADATA_PIECE_LEN]),
            Err(WireError::DuplicatePiece { piece: 2 })
        );
        assert!(a.add_piece(3, &[0; 6]).is_err());
        assert_eq!(
            a.finish().unwrap_err(),
            WireError::Incomplete { missing: 3 }
        );
        assemble(&mut a, &info, &[3, 0, 1]);
        assert_eq!(a.finish().unwrap().info, info);
        assert_eq!(a.into_metadata().unwrap().info, info);
        let mut wrong = MetadataAssembler::new([9; 20], info.len() as u64, 1 << 20)
            .unwrap()
            .buffered();
        assemble(&mut wrong, &info, &[0, 1, 2, 3]);
        assert_eq!(wrong.into_metadata().unwrap_err(), WireError::HashMismatch);
    }

    #[test]
    fn piece_geometry() {
        let a = MetadataAssembler::new([0; 20], 40_000, 1 << 20).unwrap();
        assert_eq!(a.piece_count(), 3);
        assert_eq!(a.piece_len(0), Some(16_384));
        assert_eq!(a.piece_len(2), Some(40_000 - 32_768));
        assert_eq!(a.piece_len(3), None);
        assert_eq!(a.piece_len(u32::MAX), None);
        let exact = MetadataAssembler::new([0; 20], 32_768, 1 << 20).unwrap();
        assert_eq!(exact.piece_count(), 2);
        assert_eq!(exact.piece_len(1), Some(16_384));
    }

    #[test]
    fn rejects_bad_pieces() {
        let mut a = MetadataAssembler::new([0; 20], 20_000, 1 << 20).unwrap();
        assert_eq!(
            a.add_piece(2, b"x"),
            Err(WireError::PieceOutOfRange {
                piece: 2,
                pieces: 2
            })
        );
        assert_eq!(
            a.add_piece(1, b"x"),
            Err(WireError::PieceLength {
                piece: 1,
                len: 1,
                expected: 3616
            })
        );
        a.add_piece(1, &[0; 3616]).unwrap();
        assert_eq!(
            a.add_piece(1, &[0; 3616]),
            Err(WireError::DuplicatePiece { piece: 1 })
        );
        assert_eq!(a.finish(), Err(WireError::Incomplete { missing: 1 }));
    }

    #[test]
    fn requests_each_missing_piece_once() {
        let mut a = MetadataAssembler::new([0; 20], 50_000, 1 << 20).unwrap();
        a.add_piece(1, &[0; METADATA_PIECE_LEN]).unwrap();
        assert_eq!(a.next_request(), Some(0));
        assert!(a.is_outstanding(0) && !a.is_outstanding(1));
        assert_eq!(a.next_request(), Some(2));
        assert_eq!(a.next_request(), Some(3));
        assert_eq!(a.next_request(), None);
        a.reset_requests();
        assert_eq!(a.next_request(), Some(0));
    }

    #[test]
    fn verifies_v1_v2_hybrid_and_dht_keys() {
        let info = blob(40_000);
        let (v1, v2) = hashes(&info);
        let mut truncated = [0u8; 20];
        truncated.copy_from_slice(&v2[..20]);
        let cases: [(Expected, Option<HashKind>); 8] = [
            (
                InfoHashes {
                    v1: Some(v1),
                    v2: None,
                }
                .into(),
                Some(HashKind::V1),
            ),
            (
                InfoHashes {
                    v1: None,
                    v2: Some(v2),
                }
                .into(),
                Some(HashKind::V2),
            ),
            (
                InfoHashes {
                    v1: Some(v1),
                    v2: Some(v2),
                }
                .into(),
                Some(HashKind::V2),
            ),
            (
                InfoHashes {
                    v1: Some([0; 20]),
                    v2: Some(v2),
                }
                .into(),
                None,
            ),
            (
                InfoHashes {
                    v1: None,
                    v2: Some([0; 32]),
                }
                .into(),
                None,
            ),
            (v1.into(), Some(HashKind::V1)),
            (truncated.into(), Some(HashKind::V2)),
            ([9; 20].into(), None),
        ];
        for (expected, want) in cases {
            let mut a = MetadataAssembler::new(expected, info.len() as u64, 1 << 20).unwrap();
            assemble(&mut a, &info, &[2, 0, 1]);
            assert!(a.is_complete());
            match want {
                Some(kind) => {
                    let m = a.finish().unwrap();
                    assert_eq!((m.info.as_slice(), m.verified_by), (&info[..], kind));
                }
                None => assert_eq!(a.finish(), Err(WireError::HashMismatch), "{expected:?}"),
            }
        }
    }

    proptest! {
        #[test]
        fn any_order_yields_the_original(len in 1usize..100_000, seed in any::<u64>()) {
            let info = blob(len);
            let mut a = MetadataAssembler::new(hashes(&info).0, len as u64, 1 << 20).unwrap();
            let mut order: Vec<u32> = (0..a.piece_count()).collect();
            // Fisher-Yates with a tiny LCG: deterministic per seed, no RNG dependency.
            let mut s = seed;
            for i in (1..order.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                order.swap(i, (s >> 33) as usize % (i + 1));
            }
            assemble(&mut a, &info, &order);
            let m = a.finish().unwrap();
            prop_assert_eq!(m.info, info);
        }
    }
}
