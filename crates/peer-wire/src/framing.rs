//! BEP 3 message framing: a 4-byte big-endian length, then (unless the length is 0, a
//! keep-alive) a one-byte id and the payload. [`parse_frame`] checks the length against a cap
//! before looking any further, and borrows the payload from the caller's buffer.

use crate::WireError;

/// Message id of `choke`.
pub const ID_CHOKE: u8 = 0;
/// Message id of `unchoke`.
pub const ID_UNCHOKE: u8 = 1;
/// Message id of `interested`.
pub const ID_INTERESTED: u8 = 2;
/// Message id of `not interested`.
pub const ID_NOT_INTERESTED: u8 = 3;
/// Message id of `have`.
pub const ID_HAVE: u8 = 4;
/// Message id of `bitfield`.
pub const ID_BITFIELD: u8 = 5;
/// Message id of BEP 10 extended messages.
pub const ID_EXTENDED: u8 = 20;

/// One peer-wire message, borrowing its payload from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// Length 0.
    KeepAlive,
    /// id 0.
    Choke,
    /// id 1.
    Unchoke,
    /// id 2.
    Interested,
    /// id 3.
    NotInterested,
    /// id 4: the sender has completed a piece.
    Have {
        /// Piece index.
        piece: u32,
    },
    /// id 5: the sender's pieces, one bit each, carried as received.
    Bitfield(&'a [u8]),
    /// id 20: a BEP 10 extended message; `id` 0 is the extended handshake.
    Extended {
        /// Extended message id (as assigned by the receiver's `m` dict, or 0).
        id: u8,
        /// Payload after the extended id byte.
        payload: &'a [u8],
    },
    /// Any other id (request, piece, cancel, port, fast extension, …): kept, not an error.
    Other {
        /// Message id.
        id: u8,
        /// Payload after the id byte.
        payload: &'a [u8],
    },
}

/// Parse one message from the start of `buf`.
///
/// Returns `Ok(None)` when `buf` does not yet hold a whole message, or the message and the
/// number of bytes it used. A length prefix above `max_len` is an error as soon as the four
/// prefix bytes are present, so a hostile length never causes buffering or allocation.
pub fn parse_frame(buf: &[u8], max_len: u32) -> Result<Option<(Message<'_>, usize)>, WireError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let total = usize::try_from(len)
        .ok()
        .and_then(|l| l.checked_add(4))
        .filter(|_| len <= max_len)
        .ok_or(WireError::FrameTooLarge {
            len: u64::from(len),
            max: max_len,
        })?;
    let Some(body) = buf.get(4..total) else {
        return Ok(None);
    };
    let Some((&id, payload)) = body.split_first() else {
        return Ok(Some((Message::KeepAlive, total)));
    };
    let bad_len = || WireError::BadMessageLength { id, len: len - 1 };
    let msg = match id {
        ID_CHOKE | ID_UNCHOKE | ID_INTERESTED | ID_NOT_INTERESTED if !payload.is_empty() => {
            return Err(bad_len())
        }
        ID_CHOKE => Message::Choke,
        ID_UNCHOKE => Message::Unchoke,
        ID_INTERESTED => Message::Interested,
        ID_NOT_INTERESTED => Message::NotInterested,
        ID_HAVE => {
            let piece: [u8; 4] = payload.try_into().map_err(|_| bad_len())?;
            Message::Have {
                piece: u32::from_be_bytes(piece),
            }
        }
        ID_BITFIELD => Message::Bitfield(payload),
        ID_EXTENDED => {
            let (&ext, rest) = payload.split_first().ok_or_else(bad_len)?;
            Message::Extended {
                id: ext,
                payload: rest,
            }
        }
        _ => Message::Other { id, payload },
    };
    Ok(Some((msg, total)))
}

impl Message<'_> {
    /// Append this message, framed, to `out`. Fails only if the payload does not fit a
    /// 32-bit length.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        let (id, head, payload): (u8, &[u8], &[u8]) = match *self {
            Message::KeepAlive => {
                out.extend_from_slice(&[0; 4]);
                return Ok(());
            }
            Message::Choke => (ID_CHOKE, &[], &[]),
            Message::Unchoke => (ID_UNCHOKE, &[], &[]),
            Message::Interested => (ID_INTERESTED, &[], &[]),
            Message::NotInterested => (ID_NOT_INTERESTED, &[], &[]),
            Message::Have { piece } => {
                return frame(out, ID_HAVE, &piece.to_be_bytes(), &[]);
            }
            Message::Bitfield(bits) => (ID_BITFIELD, &[], bits),
            Message::Extended { id, payload } => {
                return frame(out, ID_EXTENDED, &[id], payload);
            }
            Message::Other { id, payload } => (id, &[], payload),
        };
        frame(out, id, head, payload)
    }

    /// This message, framed, as a new buffer.
    pub fn to_vec(&self) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }
}

fn frame(out: &mut Vec<u8>, id: u8, head: &[u8], payload: &[u8]) -> Result<(), WireError> {
    let body = 1 + head.len() as u64 + payload.len() as u64;
    let len = u32::try_from(body).map_err(|_| WireError::FrameTooLarge {
        len: body,
        max: u32::MAX,
    })?;
    out.reserve(4 + len as usize);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(id);
    out.extend_from_slice(head);
    out.extend_from_slice(payload);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u32 = 1 << 20;

    #[test]
    fn parses_each_kind() {
        let cases: &[(&[u8], Message)] = &[
            (b"\0\0\0\0", Message::KeepAlive),
            (b"\0\0\0\x01\x00", Message::Choke),
            (b"\0\0\0\x01\x01", Message::Unchoke),
            (b"\0\0\0\x01\x02", Message::Interested),
            (b"\0\0\0\x01\x03", Message::NotInterested),
            (b"\0\0\0\x05\x04\0\0\x01\x02", Message::Have { piece: 258 }),
            (b"\0\0\0\x03\x05\xff\x80", Message::Bitfield(b"\xff\x80")),
            (b"\0\0\0\x01\x05", Message::Bitfield(b"")),
            (
                b"\0\0\0\x04\x14\x00de",
                Message::Extended {
                    id: 0,
                    payload: b"de",
                },
            ),
            (
                b"\0\0\0\x03\x09\x1a\xe1",
                Message::Other {
                    id: 9,
                    payload: b"\x1a\xe1",
                },
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse_frame(bytes, MAX), Ok(Some((*want, bytes.len()))));
            assert_eq!(want.to_vec().unwrap(), *bytes, "{want:?}");
        }
    }

    #[test]
    fn partial_input_needs_more() {
        let bytes = b"\0\0\0\x05\x04\0\0\x01\x02";
        for n in 0..bytes.len() {
            assert_eq!(parse_frame(&bytes[..n], MAX), Ok(None), "{n}");
        }
    }

    #[test]
    fn oversized_length_rejected_before_body() {
        assert_eq!(
            parse_frame(b"\xff\xff\xff\xff", MAX),
            Err(WireError::FrameTooLarge {
                len: 0xFFFF_FFFF,
                max: MAX
            })
        );
        // Exactly at the limit is fine (just incomplete here).
        assert_eq!(parse_frame(&MAX.to_be_bytes(), MAX), Ok(None));
    }

    #[test]
    fn wrong_lengths_for_fixed_messages() {
        assert_eq!(
            parse_frame(b"\0\0\0\x02\x00\x00", MAX),
            Err(WireError::BadMessageLength { id: 0, len: 1 })
        );
        assert_eq!(
            parse_frame(b"\0\0\0\x04\x04\0\0\x01", MAX),
            Err(WireError::BadMessageLength { id: 4, len: 3 })
        );
        assert_eq!(
            parse_frame(b"\0\0\0\x01\x14", MAX),
            Err(WireError::BadMessageLength { id: 20, len: 0 })
        );
    }

    #[test]
    fn consecutive_frames() {
        let mut buf = Vec::new();
        Message::Unchoke.encode(&mut buf).unwrap();
        Message::Have { piece: 7 }.encode(&mut buf).unwrap();
        Message::KeepAlive.encode(&mut buf).unwrap();
        let mut at = 0;
        let mut got = Vec::new();
        while let Some((m, used)) = parse_frame(&buf[at..], MAX).unwrap() {
            got.push(m);
            at += used;
        }
        assert_eq!(at, buf.len());
        assert_eq!(
            got,
            [
                Message::Unchoke,
                Message::Have { piece: 7 },
                Message::KeepAlive
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_stays_in_bounds(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64), max in 0u32..40) {
            if let Ok(Some((_, used))) = parse_frame(&bytes, max) {
                proptest::prop_assert!(used >= 4 && used <= bytes.len());
            }
        }

        #[test]
        fn round_trips_other(id in 6u8..20, payload in proptest::collection::vec(proptest::num::u8::ANY, 0..32)) {
            let bytes = Message::Other { id, payload: &payload }.to_vec().unwrap();
            let (m, used) = parse_frame(&bytes, MAX).unwrap().unwrap();
            proptest::prop_assert_eq!(used, bytes.len());
            proptest::prop_assert_eq!(m, Message::Other { id, payload: &payload });
        }
    }
}
