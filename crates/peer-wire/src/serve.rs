//! [`MetadataServer`]: the other side of BEP 9 — one connection of a peer that *has* a
//! torrent's info dict and hands it out. Sans-IO like [`crate::MetadataSession`].
//!
//! It waits for the remote handshake, refuses a different infohash, answers with our
//! handshake (extension bit set) and an extended handshake announcing `ut_metadata` and
//! `metadata_size`, then answers each `ut_metadata` request with the piece (or a reject for
//! a piece out of range). Used by our loopback testnet and `estudely demo`, so that learners
//! can fetch metadata without any BitTorrent client installed.

use std::mem;
use std::sync::Arc;

use crate::extension::EXT_HANDSHAKE_ID;
use crate::{
    parse_frame, ExtHandshake, Handshake, Message, MetadataMsg, Reserved, WireError, HANDSHAKE_LEN,
    METADATA_PIECE_LEN,
};

/// Our `ut_metadata` id in the extended handshake we send.
const SERVE_UT_METADATA: u8 = 3;
/// Largest frame we accept from a fetcher: requests are tiny.
const MAX_FRAME: u32 = 64 * 1024;

/// One connection serving one torrent's metadata.
#[derive(Debug)]
pub struct MetadataServer {
    info: Arc<[u8]>,
    info_hash: [u8; 20],
    peer_id: [u8; 20],
    inbuf: Vec<u8>,
    out: Vec<u8>,
    greeted: bool,
    their_ut_metadata: Option<u8>,
    error: Option<WireError>,
}

impl MetadataServer {
    /// Serve `info` (the bencoded info dict) of the torrent whose 20-byte key is `info_hash`.
    pub fn new(info: Arc<[u8]>, info_hash: [u8; 20], our_peer_id: [u8; 20]) -> Self {
        MetadataServer {
            info,
            info_hash,
            peer_id: our_peer_id,
            inbuf: Vec::new(),
            out: Vec::new(),
            greeted: false,
            their_ut_metadata: None,
            error: None,
        }
    }

    /// Feed bytes from the fetcher.
    pub fn handle_input(&mut self, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        self.inbuf.extend_from_slice(bytes);
        if let Err(e) = self.process() {
            self.error = Some(e);
        }
        // Bounded: whatever is left is less than one frame of at most MAX_FRAME bytes.
        if self.inbuf.len() > MAX_FRAME as usize + 4 {
            self.error = Some(WireError::FrameTooLarge {
                len: self.inbuf.len() as u64,
                max: MAX_FRAME,
            });
        }
    }

    /// Bytes to write to the fetcher.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| mem::take(&mut self.out))
    }

    /// Why the connection should be closed, if it should.
    pub fn error(&self) -> Option<&WireError> {
        self.error.as_ref()
    }

    fn process(&mut self) -> Result<(), WireError> {
        if !self.greeted {
            let Some(hs) = Handshake::parse(&self.inbuf)? else {
                return Ok(());
            };
            if hs.info_hash != self.info_hash {
                return Err(WireError::InfoHashMismatch {
                    expected: self.info_hash,
                    got: hs.info_hash,
                });
            }
            self.inbuf.drain(..HANDSHAKE_LEN);
            self.greeted = true;
            let ours = Handshake {
                reserved: Reserved::ours(false),
                info_hash: self.info_hash,
                peer_id: self.peer_id,
            };
            self.out.extend_from_slice(&ours.encode());
            let ext = ExtHandshake {
                ut_metadata: Some(SERVE_UT_METADATA),
                metadata_size: Some(self.info.len() as u64),
                client: Some(format!("Estudely {}", env!("CARGO_PKG_VERSION"))),
                reqq: Some(250),
                ..ExtHandshake::default()
            };
            self.send_extended(EXT_HANDSHAKE_ID, &ext.to_bytes())?;
        }
        loop {
            let Some((msg, used)) = parse_frame(&self.inbuf, MAX_FRAME)? else {
                return Ok(());
            };
            let reply = match msg {
                Message::Extended {
                    id: EXT_HANDSHAKE_ID,
                    payload,
                } => {
                    self.their_ut_metadata = ExtHandshake::decode(payload)?.ut_metadata;
                    None
                }
                Message::Extended {
                    id: SERVE_UT_METADATA,
                    payload,
                } => match MetadataMsg::decode(payload)? {
                    Some(MetadataMsg::Request { piece }) => Some(piece),
                    _ => None,
                },
                _ => None,
            };
            self.inbuf.drain(..used);
            if let (Some(piece), Some(their_id)) = (reply, self.their_ut_metadata) {
                let start = piece as usize * METADATA_PIECE_LEN;
                let msg = if start < self.info.len() {
                    let end = (start + METADATA_PIECE_LEN).min(self.info.len());
                    let data = Arc::clone(&self.info);
                    MetadataMsg::Data {
                        piece,
                        total_size: self.info.len() as u64,
                        data: &data[start..end],
                    }
                    .to_bytes()
                } else {
                    MetadataMsg::Reject { piece }.to_bytes()
                };
                self.send_extended(their_id, &msg)?;
            }
        }
    }

    fn send_extended(&mut self, id: u8, payload: &[u8]) -> Result<(), WireError> {
        Message::Extended { id, payload }.encode(&mut self.out)
    }
}

/// A canonical v1 info dict for a synthetic torrent (testnets and demos: the data does not
/// exist, so the piece hashes are made up, derived from the name). One file gives a
/// single-file torrent; several give a multi-file one with `files`, each path split on `/`.
/// Names and paths are raw bytes, written as given: they may hold any byte (control
/// characters, invalid UTF-8), as names on the real network do.
pub fn synthetic_info(name: &[u8], files: &[(&[u8], u64)], piece_length: u64) -> Vec<u8> {
    use estudely_bencode::OwnedValue;
    use sha1::{Digest, Sha1};
    let piece_length = piece_length.max(16 * 1024);
    let total: u64 = files.iter().map(|(_, len)| len).sum();
    let pieces = total.div_ceil(piece_length).max(1);
    let mut hashes = Vec::with_capacity(pieces as usize * 20);
    for i in 0..pieces {
        let mut h = Sha1::new();
        h.update(name);
        h.update(i.to_be_bytes());
        hashes.extend_from_slice(&h.finalize());
    }
    let int = |n: u64| OwnedValue::Int(i64::try_from(n).unwrap_or(i64::MAX));
    let mut info = OwnedValue::dict();
    info.insert(b"name", name)
        .insert(b"piece length", int(piece_length))
        .insert(b"pieces", hashes);
    if let [(_, len)] = files {
        info.insert(b"length", int(*len));
    } else {
        let list = files
            .iter()
            .map(|(path, len)| {
                let mut f = OwnedValue::dict();
                let parts = path
                    .split(|&b| b == b'/')
                    .map(OwnedValue::from)
                    .collect::<Vec<_>>();
                f.insert(b"length", int(*len)).insert(b"path", parts);
                f
            })
            .collect::<Vec<_>>();
        info.insert(b"files", list);
    }
    info.to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InfoSummary, MetadataSession, SessionConfig};
    use sha1::{Digest, Sha1};

    fn info_dict(files: usize) -> Vec<u8> {
        let mut d = b"d5:filesl".to_vec();
        for i in 0..files {
            d.extend_from_slice(format!("d6:lengthi{}e4:pathl8:file{i:04}ee", 1000 + i).as_bytes());
        }
        d.extend_from_slice(b"e4:name4:demo12:piece lengthi16384e6:pieces20:");
        d.extend_from_slice(&[7u8; 20]);
        d.push(b'e');
        d
    }

    /// A fetch session and a server talk to each other in memory, in small chunks.
    fn converse(info: Vec<u8>, key: [u8; 20]) -> Result<Vec<u8>, WireError> {
        let ih: [u8; 20] = Sha1::digest(&info).into();
        let mut server = MetadataServer::new(info.into(), ih, [1; 20]);
        let mut client = MetadataSession::new(SessionConfig::default(), key, [2; 20]);
        for _ in 0..1000 {
            if let Some(b) = client.poll_transmit() {
                b.chunks(7).for_each(|c| server.handle_input(c));
            }
            if let Some(e) = server.error() {
                return Err(e.clone());
            }
            if let Some(b) = server.poll_transmit() {
                b.chunks(1000).for_each(|c| client.handle_input(c));
            }
            if let Some(r) = client.outcome() {
                return r.map(|m| m.info.clone()).map_err(Clone::clone);
            }
        }
        panic!("no outcome");
    }

    #[test]
    fn serves_metadata_that_a_fetcher_verifies() {
        let info = info_dict(2000); // > 3 pieces of 16 KiB
        assert!(info.len() > 3 * METADATA_PIECE_LEN);
        let ih: [u8; 20] = Sha1::digest(&info).into();
        let got = converse(info.clone(), ih).expect("fetched");
        assert_eq!(got, info);
        let s = InfoSummary::parse(&got).unwrap();
        assert_eq!(s.file_count, 2000);
    }

    #[test]
    fn synthetic_torrents_parse_back() {
        let single = synthetic_info(b"a.iso", &[(b"a.iso", 5_000_000)], 262_144);
        let s = InfoSummary::parse(&single).unwrap();
        assert_eq!(
            (s.file_count, s.total_bytes, s.piece_length),
            (1, 5_000_000, 262_144)
        );
        let multi = synthetic_info(b"set", &[(b"x/1.txt", 10), (b"2.txt", 20)], 16_384);
        let s = InfoSummary::parse(&multi).unwrap();
        assert_eq!(
            (s.file_count, s.total_bytes, s.name_lossy().as_str()),
            (2, 30, "set")
        );
        assert_eq!(
            converse(multi.clone(), Sha1::digest(&multi).into()).unwrap(),
            multi
        );
        // Hostile bytes in names and paths are kept exactly, and still served and verified.
        let name = b"a,\"b\"\n\t\x01\x7f\\\xff\xfe\xc2\x85z";
        let path = b"d\r\n,\"/f\x00\xff.bin";
        let hostile = synthetic_info(name, &[(path, 1), (b"ok", 2)], 16_384);
        let s = InfoSummary::parse(&hostile).unwrap();
        assert_eq!(s.name, name);
        assert_eq!(
            s.files[0].path,
            [b"d\r\n,\"".to_vec(), b"f\x00\xff.bin".to_vec()]
        );
        assert_eq!(
            converse(hostile.clone(), Sha1::digest(&hostile).into()).unwrap(),
            hostile
        );
    }

    #[test]
    fn refuses_a_different_infohash() {
        let err = converse(info_dict(3), [9; 20]).unwrap_err();
        assert!(matches!(err, WireError::InfoHashMismatch { .. }), "{err:?}");
    }

    #[test]
    fn rejects_out_of_range_and_ignores_garbage_after_handshake() {
        let info = info_dict(1);
        let ih: [u8; 20] = Sha1::digest(&info).into();
        let mut server = MetadataServer::new(info.into(), ih, [1; 20]);
        let hs = Handshake {
            reserved: Reserved::ours(false),
            info_hash: ih,
            peer_id: [2; 20],
        };
        server.handle_input(&hs.encode());
        let ext = ExtHandshake {
            ut_metadata: Some(5),
            ..ExtHandshake::default()
        };
        let mut frames = Vec::new();
        Message::Extended {
            id: 0,
            payload: &ext.to_bytes(),
        }
        .encode(&mut frames)
        .unwrap();
        let req = MetadataMsg::Request { piece: 9 }.to_bytes();
        Message::Extended {
            id: SERVE_UT_METADATA,
            payload: &req,
        }
        .encode(&mut frames)
        .unwrap();
        server.handle_input(&frames);
        let out = server.poll_transmit().unwrap();
        // handshake, ext handshake, then the reject under the fetcher's id 5.
        let mut rest = &out[HANDSHAKE_LEN..];
        let (_, used) = parse_frame(rest, 1 << 20).unwrap().unwrap();
        rest = &rest[used..];
        let (m, _) = parse_frame(rest, 1 << 20).unwrap().unwrap();
        match m {
            Message::Extended { id: 5, payload } => {
                assert_eq!(
                    MetadataMsg::decode(payload).unwrap(),
                    Some(MetadataMsg::Reject { piece: 9 })
                );
            }
            other => panic!("{other:?}"),
        }
        server.handle_input(&[0xFF, 0xFF, 0xFF, 0xFF]);
        assert!(
            server.error().is_some(),
            "oversized frame ends the connection"
        );
    }
}
