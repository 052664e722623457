//! [`MetadataSession`]: the state machine of one metadata-fetch connection (BEP 3 handshake,
//! BEP 10 extended handshake, BEP 9 piece requests), sans-IO in the style of `quinn-proto`.
//!
//! The driver owns the socket and the clock: it feeds received bytes to
//! [`handle_input`](MetadataSession::handle_input), writes whatever
//! [`poll_transmit`](MetadataSession::poll_transmit) returns, and stops once
//! [`outcome`](MetadataSession::outcome) is `Some`. Timeouts, connection refusal and EOF are
//! the driver's to detect; [`state`](MetadataSession::state) tells it how far we got.
//! Input is buffered in a bounded buffer: at most one frame of
//! [`SessionConfig::max_frame_len`] bytes plus its length prefix.

use std::mem;

use crate::extension::EXT_HANDSHAKE_ID;
use crate::{
    parse_frame, Expected, ExtHandshake, FailureKind, Handshake, Message, Metadata,
    MetadataAssembler, MetadataMsg, Reserved, WireError, DEFAULT_MAX_METADATA_SIZE, HANDSHAKE_LEN,
};

/// The extended message id we assign to `ut_metadata` in our extended handshake; the peer
/// sends its `ut_metadata` messages to us under this id.
pub const OUR_UT_METADATA: u8 = 2;

/// Tunables of a [`MetadataSession`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Largest `metadata_size` we accept. Default [`DEFAULT_MAX_METADATA_SIZE`] (32 MiB).
    pub max_metadata_size: u64,
    /// Largest message we accept, in bytes after the length prefix. Default 1 MiB (room
    /// for the bitfield of a torrent with 8 million pieces).
    pub max_frame_len: u32,
    /// Metadata requests in flight at once (further capped by the peer's `reqq`). Default 4.
    pub max_outstanding: u32,
    /// What the metadata must hash to. `None` (the default): the 20-byte info-hash given to
    /// [`MetadataSession::new`], as either a SHA-1 or a truncated SHA-256. Set it to check
    /// a v2 torrent against its full 32-byte SHA-256.
    pub expected: Option<Expected>,
    /// Our client name, sent as `v`. Default `None`.
    pub client: Option<String>,
    /// Set the BEP 52 v2 bit in our handshake. Default `false`.
    pub advertise_v2: bool,
    /// Stop after the peer's extended handshake, in [`SessionState::AwaitingGrant`], until
    /// the driver calls [`MetadataSession::grant`]: nothing is allocated for the metadata
    /// and nothing requested before, so that a driver running many sessions can reserve
    /// the announced size from a shared memory budget first. Once granted, the metadata
    /// is received into one buffer of that size ([`MetadataAssembler::buffered`]), so it
    /// is never held twice. Default `false`.
    pub hold_for_grant: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_metadata_size: DEFAULT_MAX_METADATA_SIZE,
            max_frame_len: 1 << 20,
            max_outstanding: 4,
            expected: None,
            client: None,
            advertise_v2: false,
            hold_for_grant: false,
        }
    }
}

/// How far a session has come, for the driver's timeouts and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Waiting for the peer's handshake.
    Handshaking,
    /// Waiting for the peer's extended handshake.
    AwaitingExtHandshake,
    /// The peer announced `size` bytes of metadata (within the cap); waiting for the
    /// driver's [`MetadataSession::grant`] (only with [`SessionConfig::hold_for_grant`]).
    AwaitingGrant {
        /// The announced `metadata_size`.
        size: u64,
    },
    /// Downloading metadata pieces.
    Fetching {
        /// Pieces received so far.
        received: u32,
        /// Pieces in all.
        pieces: u32,
    },
    /// Finished with verified metadata.
    Done,
    /// Finished with an error.
    Failed(FailureKind),
}

#[derive(Debug)]
enum Phase {
    Handshake,
    ExtHandshake,
    /// Announced size checked, nothing allocated yet.
    Held {
        size: u64,
        peer_id: u8,
        max_in_flight: u32,
    },
    Fetching {
        assembler: MetadataAssembler,
        /// The peer's id for `ut_metadata`.
        peer_id: u8,
        in_flight: u32,
        max_in_flight: u32,
    },
    Finished(Result<Metadata, WireError>),
}

/// One connection fetching one torrent's metadata.
#[derive(Debug)]
pub struct MetadataSession {
    config: SessionConfig,
    info_hash: [u8; 20],
    phase: Phase,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    peer: Option<Handshake>,
    peer_ext: Option<ExtHandshake>,
}

impl MetadataSession {
    /// Start a session for `info_hash` (a v1 info-hash or a v2 one truncated to 20 bytes);
    /// our handshake, with the extension bit set, is queued for transmission at once.
    pub fn new(config: SessionConfig, info_hash: [u8; 20], our_peer_id: [u8; 20]) -> Self {
        let hs = Handshake {
            reserved: Reserved::ours(config.advertise_v2),
            info_hash,
            peer_id: our_peer_id,
        };
        MetadataSession {
            config,
            info_hash,
            phase: Phase::Handshake,
            inbuf: Vec::new(),
            out: hs.encode().to_vec(),
            peer: None,
            peer_ext: None,
        }
    }

    /// Feed bytes received from the peer. Does nothing once the session has finished.
    pub fn handle_input(&mut self, mut bytes: &[u8]) {
        let cap = self.buffer_cap();
        while !bytes.is_empty() && !self.is_finished() {
            // After `process`, the buffer holds less than one frame, so there is room.
            let room = cap.saturating_sub(self.inbuf.len()).max(1);
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.inbuf.extend_from_slice(now);
            bytes = rest;
            if let Err(e) = self.process() {
                self.finish(Err(e));
            }
        }
    }

    /// Bytes to write to the peer, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| mem::take(&mut self.out))
    }

    /// The result, once the session has finished.
    pub fn outcome(&self) -> Option<Result<&Metadata, &WireError>> {
        match &self.phase {
            Phase::Finished(r) => Some(r.as_ref()),
            _ => None,
        }
    }

    /// The result by value, once the session has finished.
    pub fn into_outcome(self) -> Option<Result<Metadata, WireError>> {
        match self.phase {
            Phase::Finished(r) => Some(r),
            _ => None,
        }
    }

    /// Whether the session has finished (successfully or not).
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished(_))
    }

    /// Where the session stands.
    pub fn state(&self) -> SessionState {
        match &self.phase {
            Phase::Handshake => SessionState::Handshaking,
            Phase::ExtHandshake => SessionState::AwaitingExtHandshake,
            Phase::Held { size, .. } => SessionState::AwaitingGrant { size: *size },
            Phase::Fetching { assembler, .. } => SessionState::Fetching {
                received: assembler.received_count(),
                pieces: assembler.piece_count(),
            },
            Phase::Finished(Ok(_)) => SessionState::Done,
            Phase::Finished(Err(e)) => SessionState::Failed(e.kind()),
        }
    }

    /// Go on from [`SessionState::AwaitingGrant`]: prepare to receive the metadata and
    /// queue the first requests. Does nothing in any other state.
    pub fn grant(&mut self) {
        let Phase::Held {
            size,
            peer_id,
            max_in_flight,
        } = self.phase
        else {
            return;
        };
        if let Err(e) = self.start_fetching(size, peer_id, max_in_flight) {
            self.finish(Err(e));
        }
    }

    /// The peer's handshake, once received.
    pub fn peer_handshake(&self) -> Option<&Handshake> {
        self.peer.as_ref()
    }

    /// The peer's extended handshake, once received (its client name is in `client`).
    pub fn peer_extensions(&self) -> Option<&ExtHandshake> {
        self.peer_ext.as_ref()
    }

    fn buffer_cap(&self) -> usize {
        (self.config.max_frame_len as usize)
            .saturating_add(4)
            .max(HANDSHAKE_LEN)
    }

    fn finish(&mut self, result: Result<Metadata, WireError>) {
        self.phase = Phase::Finished(result);
        self.inbuf = Vec::new();
    }

    /// Consume every complete handshake or frame in the input buffer.
    fn process(&mut self) -> Result<(), WireError> {
        let mut buf = mem::take(&mut self.inbuf);
        let mut at = 0;
        let result = loop {
            if self.is_finished() {
                break Ok(());
            }
            match self.step(&buf[at..]) {
                Ok(Some(used)) => at += used,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if !self.is_finished() {
            buf.drain(..at);
            self.inbuf = buf;
        }
        result
    }

    /// Handle one handshake or message at the start of `buf`; `Ok(None)` = need more bytes.
    fn step(&mut self, buf: &[u8]) -> Result<Option<usize>, WireError> {
        if let Phase::Handshake = self.phase {
            let Some(hs) = Handshake::parse(buf)? else {
                return Ok(None);
            };
            self.on_handshake(hs)?;
            return Ok(Some(HANDSHAKE_LEN));
        }
        let Some((msg, used)) = parse_frame(buf, self.config.max_frame_len)? else {
            return Ok(None);
        };
        if let Message::Extended { id, payload } = msg {
            self.on_extended(id, payload)?;
        }
        // Everything else (choke, have, bitfield, keep-alive, unknown ids) is ignored.
        Ok(Some(used))
    }

    fn on_handshake(&mut self, hs: Handshake) -> Result<(), WireError> {
        if hs.info_hash != self.info_hash {
            return Err(WireError::InfoHashMismatch {
                expected: self.info_hash,
                got: hs.info_hash,
            });
        }
        self.peer = Some(hs);
        if !hs.supports_extensions() {
            return Err(WireError::NoExtensions);
        }
        let ours = ExtHandshake {
            ut_metadata: Some(OUR_UT_METADATA),
            client: self.config.client.clone(),
            reqq: Some(self.config.max_outstanding),
            ..ExtHandshake::default()
        };
        self.send_extended(EXT_HANDSHAKE_ID, &ours.to_bytes())?;
        self.phase = Phase::ExtHandshake;
        Ok(())
    }

    fn on_extended(&mut self, id: u8, payload: &[u8]) -> Result<(), WireError> {
        match id {
            EXT_HANDSHAKE_ID if matches!(self.phase, Phase::ExtHandshake) => {
                self.on_ext_handshake(payload)
            }
            // A later extended handshake may update settings; we keep the first.
            EXT_HANDSHAKE_ID => Ok(()),
            OUR_UT_METADATA => match MetadataMsg::decode(payload)? {
                Some(msg) => self.on_metadata(msg),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    fn on_ext_handshake(&mut self, payload: &[u8]) -> Result<(), WireError> {
        let ext = ExtHandshake::decode(payload)?;
        let peer_id = ext.ut_metadata;
        let size = ext.metadata_size;
        let reqq = ext.reqq;
        self.peer_ext = Some(ext);
        let peer_id = peer_id.ok_or(WireError::NoUtMetadata)?;
        let size = size.ok_or(WireError::MissingMetadataSize)?;
        let max_in_flight = self
            .config
            .max_outstanding
            .min(reqq.unwrap_or(u32::MAX))
            .max(1);
        if self.config.hold_for_grant {
            // The same check the assembler makes, so that a size it would refuse fails
            // here and is never waited for.
            let max = self.config.max_metadata_size;
            if size == 0 || size > max {
                return Err(WireError::BadMetadataSize { size, max });
            }
            self.phase = Phase::Held {
                size,
                peer_id,
                max_in_flight,
            };
            return Ok(());
        }
        self.start_fetching(size, peer_id, max_in_flight)
    }

    /// Allocate the assembler for `size` bytes and request the first pieces.
    fn start_fetching(
        &mut self,
        size: u64,
        peer_id: u8,
        max_in_flight: u32,
    ) -> Result<(), WireError> {
        let expected = self
            .config
            .expected
            .unwrap_or(Expected::DhtKey(self.info_hash));
        let mut assembler = MetadataAssembler::new(expected, size, self.config.max_metadata_size)?;
        if self.config.hold_for_grant {
            // The driver has reserved `size`: one buffer, which becomes the info dict.
            assembler = assembler.buffered();
        }
        self.phase = Phase::Fetching {
            assembler,
            peer_id,
            in_flight: 0,
            max_in_flight,
        };
        self.request_more()
    }

    fn on_metadata(&mut self, msg: MetadataMsg<'_>) -> Result<(), WireError> {
        let Phase::Fetching {
            assembler,
            peer_id,
            in_flight,
            ..
        } = &mut self.phase
        else {
            // Before the extended handshake we have no use for metadata messages.
            return Ok(());
        };
        match msg {
            MetadataMsg::Request { piece } => {
                // We have no metadata to share.
                let reject = MetadataMsg::Reject { piece }.to_bytes();
                let id = *peer_id;
                self.send_extended(id, &reject)
            }
            MetadataMsg::Reject { piece } => Err(WireError::Rejected { piece }),
            MetadataMsg::Data {
                piece,
                total_size,
                data,
            } => {
                if total_size != assembler.size() {
                    return Err(WireError::SizeMismatch {
                        total_size,
                        expected: assembler.size(),
                    });
                }
                let was_outstanding = assembler.is_outstanding(piece);
                assembler.add_piece(piece, data)?;
                if was_outstanding {
                    *in_flight -= 1;
                }
                if assembler.is_complete() {
                    // By value, so that a buffered assembler's buffer is the info dict.
                    if let Phase::Fetching { assembler, .. } =
                        mem::replace(&mut self.phase, Phase::Handshake)
                    {
                        self.finish(assembler.into_metadata());
                    }
                    Ok(())
                } else {
                    self.request_more()
                }
            }
        }
    }

    /// Keep up to `max_in_flight` requests outstanding.
    fn request_more(&mut self) -> Result<(), WireError> {
        let mut requests = Vec::new();
        if let Phase::Fetching {
            assembler,
            peer_id,
            in_flight,
            max_in_flight,
        } = &mut self.phase
        {
            while *in_flight < *max_in_flight {
                let Some(piece) = assembler.next_request() else {
                    break;
                };
                *in_flight += 1;
                requests.push((*peer_id, MetadataMsg::Request { piece }.to_bytes()));
            }
        }
        for (id, payload) in requests {
            self.send_extended(id, &payload)?;
        }
        Ok(())
    }

    fn send_extended(&mut self, id: u8, payload: &[u8]) -> Result<(), WireError> {
        Message::Extended { id, payload }.encode(&mut self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InfoHashes, METADATA_PIECE_LEN};
    use proptest::prelude::*;
    use sha1::{Digest, Sha1};
    use sha2::Sha256;

    const OUR_ID: [u8; 20] = *b"-ES0001-000000000000";
    const PEER_ID: [u8; 20] = *b"-LT2000-111111111111";
    const PEER_UT: u8 = 5;

    fn info_blob(len: usize) -> Vec<u8> {
        // Content does not matter to the session, only its hash.
        (0..len).map(|i| (i % 253) as u8).collect()
    }

    fn sha1(b: &[u8]) -> [u8; 20] {
        Sha1::digest(b).into()
    }

    fn peer_handshake(info_hash: [u8; 20], ext: bool) -> Vec<u8> {
        let mut reserved = Reserved::default();
        reserved.set_extensions(ext);
        Handshake {
            reserved,
            info_hash,
            peer_id: PEER_ID,
        }
        .encode()
        .to_vec()
    }

    fn ext_msg(id: u8, payload: &[u8]) -> Vec<u8> {
        Message::Extended { id, payload }.to_vec().unwrap()
    }

    fn peer_ext_handshake(size: Option<u64>) -> Vec<u8> {
        let ext = ExtHandshake {
            ut_metadata: Some(PEER_UT),
            metadata_size: size,
            client: Some("FakePeer 1.0".into()),
            ..ExtHandshake::default()
        };
        ext_msg(0, &ext.to_bytes())
    }

    /// All complete frames in `bytes`.
    fn frames(bytes: &[u8]) -> Vec<Message<'_>> {
        let mut at = 0;
        let mut out = Vec::new();
        while let Some((m, used)) = parse_frame(&bytes[at..], 1 << 20).unwrap() {
            out.push(m);
            at += used;
        }
        assert_eq!(at, bytes.len(), "trailing partial frame");
        out
    }

    /// Metadata pieces requested in `bytes`.
    fn requests(bytes: &[u8]) -> Vec<u32> {
        frames(bytes)
            .into_iter()
            .filter_map(|m| match m {
                Message::Extended {
                    id: PEER_UT,
                    payload,
                } => match MetadataMsg::decode(payload).unwrap() {
                    Some(MetadataMsg::Request { piece }) => Some(piece),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    fn data_msg(info: &[u8], piece: u32) -> Vec<u8> {
        let start = piece as usize * METADATA_PIECE_LEN;
        let end = (start + METADATA_PIECE_LEN).min(info.len());
        let msg = MetadataMsg::Data {
            piece,
            total_size: info.len() as u64,
            data: &info[start..end],
        };
        ext_msg(OUR_UT_METADATA, &msg.to_bytes())
    }

    /// Drive a session through both handshakes; returns it with the first requests.
    fn handshaken(
        config: SessionConfig,
        info_hash: [u8; 20],
        size: usize,
    ) -> (MetadataSession, Vec<u32>) {
        let mut s = MetadataSession::new(config, info_hash, OUR_ID);
        let hs = s.poll_transmit().unwrap();
        assert_eq!(Handshake::parse(&hs).unwrap().unwrap().info_hash, info_hash);
        s.handle_input(&peer_handshake(info_hash, true));
        assert_eq!(s.state(), SessionState::AwaitingExtHandshake);
        let ours = s.poll_transmit().unwrap();
        match frames(&ours)[..] {
            [Message::Extended { id: 0, payload }] => {
                let ext = ExtHandshake::decode(payload).unwrap();
                assert_eq!(ext.ut_metadata, Some(OUR_UT_METADATA));
            }
            ref other => panic!("expected our extended handshake, got {other:?}"),
        }
        s.handle_input(&peer_ext_handshake(Some(size as u64)));
        let reqs = requests(&s.poll_transmit().unwrap_or_default());
        (s, reqs)
    }

    /// Answer requests until the session stops asking; feeds `chunk` bytes at a time.
    fn serve(s: &mut MetadataSession, info: &[u8], mut pending: Vec<u32>, chunk: usize) {
        while !pending.is_empty() && !s.is_finished() {
            assert!(
                pending.len() <= 4,
                "too many requests in flight: {pending:?}"
            );
            let piece = pending.remove(0);
            for part in data_msg(info, piece).chunks(chunk) {
                s.handle_input(part);
            }
            if let Some(out) = s.poll_transmit() {
                pending.extend(requests(&out));
            }
        }
    }

    #[test]
    fn fetches_and_verifies_v1() {
        let info = info_blob(5 * METADATA_PIECE_LEN + 123);
        let (mut s, first) = handshaken(SessionConfig::default(), sha1(&info), info.len());
        assert_eq!(first, [0, 1, 2, 3]);
        assert_eq!(
            s.state(),
            SessionState::Fetching {
                received: 0,
                pieces: 6
            }
        );
        assert_eq!(
            s.peer_extensions().unwrap().client.as_deref(),
            Some("FakePeer 1.0")
        );
        serve(&mut s, &info, first, 1000);
        assert_eq!(s.state(), SessionState::Done);
        let m = s.outcome().unwrap().unwrap();
        assert_eq!(m.info, info);
        assert_eq!(m.verified_by, crate::HashKind::V1);
        assert_eq!(s.peer_handshake().unwrap().peer_id, PEER_ID);
    }

    #[test]
    fn fetches_v2_with_full_hash_byte_by_byte() {
        let info = info_blob(METADATA_PIECE_LEN + 1);
        let v2: [u8; 32] = Sha256::digest(&info).into();
        let mut key = [0u8; 20];
        key.copy_from_slice(&v2[..20]);
        let config = SessionConfig {
            expected: Some(Expected::Hashes(InfoHashes {
                v1: None,
                v2: Some(v2),
            })),
            advertise_v2: true,
            ..SessionConfig::default()
        };
        let (mut s, first) = handshaken(config, key, info.len());
        serve(&mut s, &info, first, 1);
        let m = s.into_outcome().unwrap().unwrap();
        assert_eq!((m.info, m.verified_by), (info, crate::HashKind::V2));
    }

    #[test]
    fn whole_conversation_in_one_chunk() {
        let info = info_blob(100);
        let mut s = MetadataSession::new(SessionConfig::default(), sha1(&info), OUR_ID);
        let mut all = peer_handshake(sha1(&info), true);
        all.extend(peer_ext_handshake(Some(100)));
        all.extend(Message::Unchoke.to_vec().unwrap());
        all.extend(data_msg(&info, 0)); // unsolicited but valid
        s.handle_input(&all);
        assert_eq!(s.outcome().unwrap().unwrap().info, info);
    }

    #[test]
    fn respects_reqq_and_ignores_other_messages() {
        let info = info_blob(3 * METADATA_PIECE_LEN);
        let config = SessionConfig {
            max_outstanding: 1,
            ..SessionConfig::default()
        };
        let (mut s, first) = handshaken(config, sha1(&info), info.len());
        assert_eq!(first, [0]);
        let mut noise = Vec::new();
        for m in [
            Message::KeepAlive,
            Message::Choke,
            Message::Have { piece: 1 },
            Message::Bitfield(&[0xff; 10]),
            Message::Other {
                id: 99,
                payload: b"??",
            },
            Message::Extended {
                id: 77,
                payload: b"garbage",
            },
            Message::Extended {
                id: 0,
                payload: b"d1:md11:ut_metadatai0eee",
            },
        ] {
            m.encode(&mut noise).unwrap();
        }
        noise.extend(ext_msg(OUR_UT_METADATA, b"d8:msg_typei9e5:piecei0ee"));
        s.handle_input(&noise);
        assert!(!s.is_finished());
        assert_eq!(s.poll_transmit(), None);
        serve(&mut s, &info, first, 4096);
        assert!(s.outcome().unwrap().is_ok());
    }

    #[test]
    fn answers_peer_requests_with_reject() {
        let info = info_blob(10);
        let (mut s, _) = handshaken(SessionConfig::default(), sha1(&info), info.len());
        s.handle_input(&ext_msg(
            OUR_UT_METADATA,
            &MetadataMsg::Request { piece: 0 }.to_bytes(),
        ));
        let out = s.poll_transmit().unwrap();
        assert_eq!(
            out,
            ext_msg(PEER_UT, &MetadataMsg::Reject { piece: 0 }.to_bytes())
        );
    }

    fn failure(s: &MetadataSession) -> WireError {
        s.outcome().unwrap().unwrap_err().clone()
    }

    #[test]
    fn handshake_failures() {
        let key = [7u8; 20];
        let mut s = MetadataSession::new(SessionConfig::default(), key, OUR_ID);
        s.handle_input(&peer_handshake([8; 20], true));
        assert_eq!(
            failure(&s),
            WireError::InfoHashMismatch {
                expected: key,
                got: [8; 20]
            }
        );
        assert_eq!(
            s.state(),
            SessionState::Failed(FailureKind::InfoHashMismatch)
        );

        let mut s = MetadataSession::new(SessionConfig::default(), key, OUR_ID);
        s.handle_input(&peer_handshake(key, false));
        assert_eq!(failure(&s), WireError::NoExtensions);
        assert_eq!(s.state(), SessionState::Failed(FailureKind::NoUtMetadata));

        let mut s = MetadataSession::new(SessionConfig::default(), key, OUR_ID);
        s.handle_input(b"HTTP/1.1 400 Bad Request\r\n");
        assert_eq!(failure(&s), WireError::NotBitTorrent);
    }

    #[test]
    fn extended_handshake_failures() {
        let key = [7u8; 20];
        let cases: [(&[u8], WireError); 4] = [
            (
                b"d1:md6:ut_pexi1ee13:metadata_sizei10ee",
                WireError::NoUtMetadata,
            ),
            (b"d1:md11:ut_metadatai3eee", WireError::MissingMetadataSize),
            (
                b"d1:md11:ut_metadatai3ee13:metadata_sizei1099511627776ee",
                WireError::BadMetadataSize {
                    size: 1 << 40,
                    max: DEFAULT_MAX_METADATA_SIZE,
                },
            ),
            (
                b"d1:md11:ut_metadatai3ee13:metadata_sizei0ee",
                WireError::BadMetadataSize {
                    size: 0,
                    max: DEFAULT_MAX_METADATA_SIZE,
                },
            ),
        ];
        for (payload, want) in cases {
            let mut s = MetadataSession::new(SessionConfig::default(), key, OUR_ID);
            s.handle_input(&peer_handshake(key, true));
            s.handle_input(&ext_msg(0, payload));
            assert_eq!(failure(&s), want);
        }
    }

    #[test]
    fn fetch_failures() {
        let info = info_blob(2 * METADATA_PIECE_LEN);
        let key = sha1(&info);

        let (mut s, _) = handshaken(SessionConfig::default(), key, info.len());
        s.handle_input(&ext_msg(
            OUR_UT_METADATA,
            &MetadataMsg::Reject { piece: 1 }.to_bytes(),
        ));
        assert_eq!(failure(&s), WireError::Rejected { piece: 1 });
        assert_eq!(s.state(), SessionState::Failed(FailureKind::Rejected));

        let mut corrupt = info.clone();
        corrupt[5] ^= 1;
        let (mut s, first) = handshaken(SessionConfig::default(), key, info.len());
        serve(&mut s, &corrupt, first, 10_000);
        assert_eq!(failure(&s), WireError::HashMismatch);

        let (mut s, _) = handshaken(SessionConfig::default(), key, info.len());
        s.handle_input(&data_msg(&info[..METADATA_PIECE_LEN + 1], 1));
        assert_eq!(
            failure(&s),
            WireError::SizeMismatch {
                total_size: METADATA_PIECE_LEN as u64 + 1,
                expected: info.len() as u64
            }
        );

        let (mut s, _) = handshaken(SessionConfig::default(), key, info.len());
        s.handle_input(&data_msg(&info, 0));
        s.handle_input(&data_msg(&info, 0));
        assert_eq!(failure(&s), WireError::DuplicatePiece { piece: 0 });
        assert_eq!(s.state(), SessionState::Failed(FailureKind::Protocol));

        let (mut s, _) = handshaken(SessionConfig::default(), key, info.len());
        s.handle_input(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            failure(&s),
            WireError::FrameTooLarge {
                len: 0xffff_ffff,
                max: 1 << 20
            }
        );
        // Finished sessions ignore further input.
        s.handle_input(&data_msg(&info, 0));
        assert_eq!(s.state(), SessionState::Failed(FailureKind::Protocol));
    }

    /// With `hold_for_grant`, a claimed size stops the session before anything is
    /// allocated or requested: pieces pushed unasked are dropped, not kept, until the
    /// driver grants; then it fetches as usual.
    #[test]
    fn a_held_session_allocates_and_requests_nothing_until_granted() {
        let info = info_blob(3 * METADATA_PIECE_LEN);
        let hold = SessionConfig {
            hold_for_grant: true,
            ..SessionConfig::default()
        };
        let (mut s, first) = handshaken(hold.clone(), sha1(&info), info.len());
        assert_eq!(first, Vec::<u32>::new());
        let size = info.len() as u64;
        assert_eq!(s.state(), SessionState::AwaitingGrant { size });
        s.handle_input(&data_msg(&info, 0));
        s.handle_input(&data_msg(&info, 1));
        assert_eq!(s.state(), SessionState::AwaitingGrant { size });
        assert!(matches!(s.phase, Phase::Held { .. }));
        assert_eq!(s.poll_transmit(), None);
        s.grant();
        assert_eq!(
            s.state(),
            SessionState::Fetching {
                received: 0,
                pieces: 3
            }
        );
        let first = requests(&s.poll_transmit().unwrap());
        assert_eq!(first, [0, 1, 2]);
        serve(&mut s, &info, first, 4096);
        assert_eq!(s.outcome().unwrap().unwrap().info, info);
        // A size over the cap fails at once: nothing to wait for.
        let mut big = MetadataSession::new(
            SessionConfig {
                max_metadata_size: 1000,
                ..hold
            },
            [4; 20],
            OUR_ID,
        );
        big.handle_input(&peer_handshake([4; 20], true));
        big.handle_input(&peer_ext_handshake(Some(1001)));
        assert_eq!(big.state(), SessionState::Failed(FailureKind::TooLarge));
        big.grant();
        assert_eq!(big.state(), SessionState::Failed(FailureKind::TooLarge));
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics_and_stays_bounded(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            prefix in any::<bool>(),
            hold_for_grant in any::<bool>(),
            grant_at in 0..8usize,
        ) {
            let key = [3u8; 20];
            let config = SessionConfig {
                max_frame_len: 200,
                hold_for_grant,
                ..SessionConfig::default()
            };
            let mut s = MetadataSession::new(config, key, OUR_ID);
            if prefix {
                s.handle_input(&peer_handshake(key, true));
                s.handle_input(&peer_ext_handshake(Some(20_000)));
            }
            for (i, c) in chunks.iter().enumerate() {
                if i == grant_at {
                    s.grant();
                }
                s.handle_input(c);
                prop_assert!(s.inbuf.len() <= 204);
                let _ = s.poll_transmit();
                let _ = s.state();
            }
        }
    }
}
