//! The connecting side of MSE.

use super::{
    find, pad, CryptoProvide, KeyPair, Keys, MseError, MseStream, Rc4, DH_LEN, MAX_PAD, RANDOM_LEN,
    VC,
};

/// Where an [`MseInitiator`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MseState {
    /// Waiting for the responder's public key Yb.
    AwaitingKey,
    /// Searching the responder's bytes for the encrypted verification constant.
    Synchronizing,
    /// Reading `crypto_select`, `len(PadD)` and PadD.
    ReadingSelect,
    /// Finished: take the stream with [`MseInitiator::into_stream`].
    Done,
    /// The responder's bytes were invalid.
    Failed(MseError),
}

/// The initiator of an MSE handshake, sans-IO: queue its bytes with
/// [`poll_transmit`](Self::poll_transmit), feed the responder's with
/// [`handle_input`](Self::handle_input), and once [`MseState::Done`] take the ciphers and
/// any payload bytes that came after the handshake with [`into_stream`](Self::into_stream).
///
/// Buffers at most Yb, the 520-byte synchronisation window and a 518-byte select block
/// beyond what a single [`handle_input`](Self::handle_input) call passes in.
#[derive(Debug)]
pub struct MseInitiator {
    keys: KeyPair,
    skey: [u8; 20],
    provide: CryptoProvide,
    initial_payload: Vec<u8>,
    state: MseState,
    out: Vec<u8>,
    buf: Vec<u8>,
    /// Our sending stream (keyA), once S is known.
    enc: Option<Rc4>,
    /// The responder's stream (keyB), advanced past what has been decrypted.
    dec: Option<Rc4>,
    /// Encrypted VC, the synchronisation marker.
    marker: [u8; 8],
    /// `crypto_select` once read.
    select: Option<CryptoProvide>,
    /// `len(PadD)` once read.
    pad_d: Option<usize>,
}

impl MseInitiator {
    /// Start a handshake for `info_hash` (SKEY), offering `provide`, with no initial payload.
    /// `random` gives the private key and PadA (see [`RANDOM_LEN`]).
    pub fn new(info_hash: [u8; 20], random: &[u8; RANDOM_LEN], provide: CryptoProvide) -> Self {
        Self::with_payload(info_hash, random, provide, Vec::new())
    }

    /// [`new`](Self::new), with `initial_payload` (IA, e.g. the BitTorrent handshake) sent
    /// in step 3, encrypted with RC4 whatever the responder selects.
    pub fn with_payload(
        info_hash: [u8; 20],
        random: &[u8; RANDOM_LEN],
        provide: CryptoProvide,
        initial_payload: Vec<u8>,
    ) -> Self {
        let keys = KeyPair::new(&random[..20]);
        let mut out = keys.public.to_vec();
        out.extend_from_slice(&pad(random));
        MseInitiator {
            keys,
            skey: info_hash,
            provide,
            initial_payload,
            state: MseState::AwaitingKey,
            out,
            buf: Vec::new(),
            enc: None,
            dec: None,
            marker: [0; 8],
            select: None,
            pad_d: None,
        }
    }

    /// Where the handshake is.
    pub fn state(&self) -> &MseState {
        &self.state
    }

    /// Bytes to send now, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    /// Feed bytes received from the responder. Once [`MseState::Done`], further bytes are
    /// kept (raw) for [`into_stream`](Self::into_stream); the driver should stop feeding.
    pub fn handle_input(&mut self, data: &[u8]) {
        if matches!(self.state, MseState::Failed(_)) {
            return;
        }
        self.buf.extend_from_slice(data);
        if let Err(e) = self.advance() {
            self.state = MseState::Failed(e);
            self.buf = Vec::new();
        }
    }

    fn advance(&mut self) -> Result<(), MseError> {
        loop {
            match self.state {
                MseState::AwaitingKey => {
                    if self.buf.len() < DH_LEN {
                        return Ok(());
                    }
                    let yb: Vec<u8> = self.buf.drain(..DH_LEN).collect();
                    let s = self.keys.shared(&yb).ok_or(MseError::BadPublicKey)?;
                    let keys = Keys::new(&s, &self.skey);
                    let mut enc = keys.a;
                    let mut marker = VC;
                    let mut dec = keys.b;
                    dec.apply(&mut marker);
                    self.marker = marker;
                    self.dec = Some(dec);
                    // Step 3.
                    self.out.extend_from_slice(&keys.req1);
                    let req2 = super::hash(&[b"req2", &self.skey]);
                    self.out
                        .extend(req2.iter().zip(keys.req3.iter()).map(|(a, b)| a ^ b));
                    let ia_len = self.initial_payload.len().min(usize::from(u16::MAX));
                    let mut plain = Vec::with_capacity(16 + ia_len);
                    plain.extend_from_slice(&VC);
                    plain.extend_from_slice(&self.provide.0.to_be_bytes());
                    plain.extend_from_slice(&0u16.to_be_bytes()); // len(PadC): no PadC
                    plain.extend_from_slice(&(ia_len as u16).to_be_bytes());
                    plain.extend_from_slice(&self.initial_payload[..ia_len]);
                    enc.apply(&mut plain);
                    self.out.extend_from_slice(&plain);
                    self.initial_payload = Vec::new();
                    self.enc = Some(enc);
                    self.state = MseState::Synchronizing;
                }
                MseState::Synchronizing => {
                    let window = MAX_PAD + VC.len();
                    match find(&self.buf[..self.buf.len().min(window)], &self.marker) {
                        Some(at) => {
                            self.buf.drain(..at + VC.len());
                            self.state = MseState::ReadingSelect;
                        }
                        None if self.buf.len() >= window => {
                            return Err(MseError::NoSync { window })
                        }
                        None => return Ok(()),
                    }
                }
                MseState::ReadingSelect => {
                    if self.select.is_none() {
                        if self.buf.len() < 6 {
                            return Ok(());
                        }
                        let mut head: [u8; 6] = [0; 6];
                        head.copy_from_slice(&self.buf[..6]);
                        self.buf.drain(..6);
                        self.decrypt(&mut head);
                        let select = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
                        let ok =
                            select == CryptoProvide::RC4.0 || select == CryptoProvide::PLAINTEXT.0;
                        if !ok || !self.provide.contains(CryptoProvide(select)) {
                            return Err(MseError::BadCrypto(select));
                        }
                        let len = usize::from(u16::from_be_bytes([head[4], head[5]]));
                        if len > MAX_PAD {
                            return Err(MseError::TooLong {
                                what: "PadD",
                                len,
                                max: MAX_PAD,
                            });
                        }
                        self.select = Some(CryptoProvide(select));
                        self.pad_d = Some(len);
                    }
                    let len = self.pad_d.unwrap_or(0);
                    if self.buf.len() < len {
                        return Ok(());
                    }
                    let mut padding: Vec<u8> = self.buf.drain(..len).collect();
                    self.decrypt(&mut padding);
                    self.state = MseState::Done;
                }
                MseState::Done | MseState::Failed(_) => return Ok(()),
            }
        }
    }

    fn decrypt(&mut self, data: &mut [u8]) {
        if let Some(dec) = &mut self.dec {
            dec.apply(data);
        }
    }

    /// Once [`MseState::Done`]: the ciphers for the rest of the connection and the payload
    /// bytes already received after the handshake, decrypted.
    pub fn into_stream(self) -> Result<(MseStream, Vec<u8>), MseError> {
        match self.state {
            MseState::Done => {}
            MseState::Failed(e) => return Err(e),
            _ => return Err(MseError::NotDone),
        }
        Ok(MseStream::after_handshake(
            self.select == Some(CryptoProvide::RC4),
            self.enc,
            self.dec,
            self.buf,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{CryptoProvide, MseError, MseResponder, RANDOM_LEN};
    use super::*;

    const IH: [u8; 20] = [7; 20];

    fn random(seed: u8) -> [u8; RANDOM_LEN] {
        let mut r = [0u8; RANDOM_LEN];
        for (i, b) in r.iter_mut().enumerate() {
            *b = seed
                .wrapping_mul(31)
                .wrapping_add((i as u8).wrapping_mul(17));
        }
        r
    }

    /// Run both sides to completion in memory, feeding each other's bytes in chunks.
    fn run(
        provide: CryptoProvide,
        accept: CryptoProvide,
        ia: &[u8],
        chunk: usize,
    ) -> (MseInitiator, MseResponder) {
        let mut a = MseInitiator::with_payload(IH, &random(1), provide, ia.to_vec());
        let mut b = MseResponder::new(vec![[1; 20], IH], &random(2), accept);
        for _ in 0..20 {
            if let Some(out) = a.poll_transmit() {
                for c in out.chunks(chunk) {
                    b.handle_input(c);
                }
            }
            if let Some(out) = b.poll_transmit() {
                for c in out.chunks(chunk) {
                    a.handle_input(c);
                }
            }
        }
        (a, b)
    }

    #[test]
    fn round_trip_rc4() {
        for chunk in [1, 7, 100, 10_000] {
            let (a, b) = run(CryptoProvide::BOTH, CryptoProvide::BOTH, b"hello IA", chunk);
            assert_eq!(a.state(), &MseState::Done);
            assert_eq!(b.info_hash(), Some(IH));
            assert_eq!(b.initial_payload(), b"hello IA");
            let (mut sa, rest_a) = a.into_stream().unwrap();
            let (mut sb, rest_b) = b.into_stream().unwrap();
            assert!(sa.is_encrypted() && sb.is_encrypted());
            assert!(rest_a.is_empty() && rest_b.is_empty());
            let mut msg = b"ping from A".to_vec();
            sa.encrypt(&mut msg);
            assert_ne!(&msg[..], b"ping from A");
            sb.decrypt(&mut msg);
            assert_eq!(&msg[..], b"ping from A");
            let mut msg = b"pong from B".to_vec();
            sb.encrypt(&mut msg);
            sa.decrypt(&mut msg);
            assert_eq!(&msg[..], b"pong from B");
        }
    }

    #[test]
    fn round_trip_plaintext_select() {
        let (a, b) = run(CryptoProvide::BOTH, CryptoProvide::PLAINTEXT, b"", 13);
        assert_eq!(a.state(), &MseState::Done);
        let (mut sa, _) = a.into_stream().unwrap();
        assert!(!sa.is_encrypted());
        let (sb, _) = b.into_stream().unwrap();
        assert!(!sb.is_encrypted());
        let mut msg = b"clear".to_vec();
        sa.encrypt(&mut msg);
        assert_eq!(&msg[..], b"clear");
    }

    #[test]
    fn payload_after_handshake_is_leftover() {
        let mut a = MseInitiator::new(IH, &random(3), CryptoProvide::RC4);
        let mut b = MseResponder::new(vec![IH], &random(4), CryptoProvide::BOTH);
        b.handle_input(&a.poll_transmit().unwrap());
        a.handle_input(&b.poll_transmit().unwrap());
        b.handle_input(&a.poll_transmit().unwrap());
        let mut tail = b.poll_transmit().unwrap();
        let (mut sb, _) = b.into_stream().unwrap();
        let mut extra = b"after".to_vec();
        sb.encrypt(&mut extra);
        tail.extend_from_slice(&extra);
        a.handle_input(&tail);
        let (_, rest) = a.into_stream().unwrap();
        assert_eq!(rest, b"after");
    }

    #[test]
    fn responder_rejecting_our_methods_fails() {
        let (_, b) = run(CryptoProvide::PLAINTEXT, CryptoProvide::RC4, b"", 50);
        assert!(matches!(b.into_stream(), Err(MseError::BadCrypto(1))));
    }

    #[test]
    fn wrong_info_hash_is_unknown_torrent() {
        let mut a = MseInitiator::new([9; 20], &random(5), CryptoProvide::BOTH);
        let mut b = MseResponder::new(vec![IH], &random(6), CryptoProvide::BOTH);
        b.handle_input(&a.poll_transmit().unwrap());
        a.handle_input(&b.poll_transmit().unwrap());
        b.handle_input(&a.poll_transmit().unwrap());
        assert!(matches!(b.into_stream(), Err(MseError::UnknownTorrent)));
    }

    #[test]
    fn responder_that_never_sends_vc_gives_up_at_the_bound() {
        let mut a = MseInitiator::new(IH, &random(7), CryptoProvide::BOTH);
        let b = MseInitiator::new([0; 20], &random(8), CryptoProvide::BOTH);
        a.handle_input(&b.keys.public); // a valid Yb
        assert_eq!(a.state(), &MseState::Synchronizing);
        a.handle_input(&[0x55; 519]);
        assert_eq!(a.state(), &MseState::Synchronizing);
        a.handle_input(&[0x55; 1]);
        assert_eq!(
            a.state(),
            &MseState::Failed(MseError::NoSync { window: 520 })
        );
        // Nothing more is buffered.
        a.handle_input(&[0x55; 100_000]);
        assert!(a.buf.is_empty());
    }

    #[test]
    fn degenerate_public_keys_are_refused() {
        for yb in [
            [0u8; 96],
            {
                let mut one = [0u8; 96];
                one[95] = 1;
                one
            },
            [0xff; 96],
        ] {
            let mut a = MseInitiator::new(IH, &random(9), CryptoProvide::BOTH);
            a.handle_input(&yb);
            assert_eq!(a.state(), &MseState::Failed(MseError::BadPublicKey));
        }
    }

    #[test]
    fn truncated_input_waits() {
        let mut a = MseInitiator::new(IH, &random(1), CryptoProvide::BOTH);
        let mut b = MseResponder::new(vec![IH], &random(2), CryptoProvide::BOTH);
        b.handle_input(&a.poll_transmit().unwrap());
        a.handle_input(&b.poll_transmit().unwrap());
        b.handle_input(&a.poll_transmit().unwrap());
        let step4 = b.poll_transmit().unwrap();
        a.handle_input(&step4[..step4.len() - 1]);
        assert_ne!(a.state(), &MseState::Done);
        assert!(matches!(
            a.state(),
            MseState::Synchronizing | MseState::ReadingSelect
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        #[test]
        fn any_randomness_and_chunking_round_trips(
            ra in proptest::array::uniform32(proptest::num::u8::ANY),
            rb in proptest::array::uniform32(proptest::num::u8::ANY),
            chunk in 1usize..700,
            rc4 in proptest::bool::ANY,
        ) {
            let accept = if rc4 { CryptoProvide::BOTH } else { CryptoProvide::PLAINTEXT };
            let mut a = MseInitiator::with_payload(IH, &ra, CryptoProvide::BOTH, b"IA".to_vec());
            let mut b = MseResponder::new(vec![IH], &rb, accept);
            for _ in 0..6 {
                if let Some(out) = a.poll_transmit() {
                    out.chunks(chunk).for_each(|c| b.handle_input(c));
                }
                if let Some(out) = b.poll_transmit() {
                    out.chunks(chunk).for_each(|c| a.handle_input(c));
                }
            }
            proptest::prop_assert_eq!(a.state(), &MseState::Done);
            proptest::prop_assert_eq!(b.initial_payload(), b"IA");
            let (mut sa, _) = a.into_stream().unwrap();
            let (mut sb, _) = b.into_stream().unwrap();
            proptest::prop_assert_eq!(sa.is_encrypted(), rc4);
            let mut msg = b"payload".to_vec();
            sb.encrypt(&mut msg);
            sa.decrypt(&mut msg);
            proptest::prop_assert_eq!(&msg[..], b"payload");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_responder_bytes_never_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2000),
            split in 0usize..2000,
        ) {
            let mut a = MseInitiator::new(IH, &random(1), CryptoProvide::BOTH);
            let split = split.min(bytes.len());
            a.handle_input(&bytes[..split]);
            a.handle_input(&bytes[split..]);
            let _ = a.poll_transmit();
            proptest::prop_assert!(a.buf.len() <= bytes.len());
            let _ = a.into_stream();
        }
    }

    /// The fuzz seeds are responder streams computed by `fuzz/seeds/make_seeds.py`, an
    /// independent Python implementation (`pow`, `hashlib`, its own RC4), for this
    /// initiator's randomness ([3; 32]) and key ([7; 20]): each completes the handshake.
    #[test]
    fn python_made_responder_streams_complete() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fuzz/seeds/mse_initiator"
        );
        let handshake_start = b"\x13BitTorrent protocol";
        for (name, encrypted, rest) in [
            ("rc4_no_pads.bin", true, &b""[..]),
            ("rc4_pads_payload.bin", true, &handshake_start[..]),
            ("plaintext_after.bin", false, &handshake_start[..]),
        ] {
            let seed = std::fs::read(format!("{dir}/{name}")).unwrap();
            let mut a = MseInitiator::new(IH, &[3; RANDOM_LEN], CryptoProvide::BOTH);
            a.handle_input(&seed[1..]); // the first byte is the fuzz target's split
            assert_eq!(a.state(), &MseState::Done, "{name}");
            let (s, leftover) = a.into_stream().unwrap();
            assert_eq!(s.is_encrypted(), encrypted, "{name}");
            assert!(leftover.starts_with(rest), "{name}");
        }
    }
}
