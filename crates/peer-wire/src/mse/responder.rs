//! The accepting side of MSE: minimal, for in-memory tests and our loopback seeders.

use super::{
    find, hash, pad, CryptoProvide, KeyPair, Keys, MseError, MseStream, Rc4, DH_LEN, MAX_IA,
    MAX_PAD, RANDOM_LEN, VC,
};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    AwaitingKey,
    /// Searching for HASH('req1', S).
    Synchronizing,
    /// Reading HASH('req2', SKEY) xor HASH('req3', S).
    ReadingSkey,
    /// Reading VC, crypto_provide, len(PadC), PadC, len(IA), IA.
    ReadingProvide,
    Done,
    Failed(MseError),
}

/// The responder of an MSE handshake, sans-IO, for a fixed set of infohashes. Selects RC4
/// when both sides allow it, else plaintext.
#[derive(Debug)]
pub struct MseResponder {
    keys: KeyPair,
    /// Yb and PadB, sent once Ya starts arriving.
    hello: Option<Vec<u8>>,
    info_hashes: Vec<[u8; 20]>,
    accept: CryptoProvide,
    step: Step,
    out: Vec<u8>,
    buf: Vec<u8>,
    secret: Option<[u8; DH_LEN]>,
    req1: [u8; 20],
    req3: [u8; 20],
    skey: Option<[u8; 20]>,
    enc: Option<Rc4>,
    dec: Option<Rc4>,
    select: CryptoProvide,
    initial_payload: Vec<u8>,
}

impl MseResponder {
    /// Accept handshakes for any of `info_hashes`, allowing the methods in `accept`.
    /// `random` gives the private key and PadB (see [`RANDOM_LEN`]).
    pub fn new(
        info_hashes: Vec<[u8; 20]>,
        random: &[u8; RANDOM_LEN],
        accept: CryptoProvide,
    ) -> Self {
        let keys = KeyPair::new(&random[..20]);
        let mut hello = keys.public.to_vec();
        hello.extend_from_slice(&pad(random));
        MseResponder {
            keys,
            hello: Some(hello),
            info_hashes,
            accept,
            step: Step::AwaitingKey,
            out: Vec::new(),
            buf: Vec::new(),
            secret: None,
            req1: [0; 20],
            req3: [0; 20],
            skey: None,
            enc: None,
            dec: None,
            select: CryptoProvide(0),
            initial_payload: Vec::new(),
        }
    }

    /// Bytes to send now, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    /// Whether the handshake has finished successfully.
    pub fn is_done(&self) -> bool {
        self.step == Step::Done
    }

    /// The infohash the initiator asked for, once known.
    pub fn info_hash(&self) -> Option<[u8; 20]> {
        self.skey
    }

    /// The initiator's initial payload (IA), decrypted, once done.
    pub fn initial_payload(&self) -> &[u8] {
        &self.initial_payload
    }

    /// Feed bytes received from the initiator.
    pub fn handle_input(&mut self, data: &[u8]) {
        if matches!(self.step, Step::Failed(_)) {
            return;
        }
        if let Some(hello) = self.hello.take() {
            self.out.extend_from_slice(&hello);
        }
        self.buf.extend_from_slice(data);
        if let Err(e) = self.advance() {
            self.step = Step::Failed(e);
            self.buf = Vec::new();
        }
    }

    fn advance(&mut self) -> Result<(), MseError> {
        loop {
            match self.step {
                Step::AwaitingKey => {
                    if self.buf.len() < DH_LEN {
                        return Ok(());
                    }
                    let ya: Vec<u8> = self.buf.drain(..DH_LEN).collect();
                    let s = self.keys.shared(&ya).ok_or(MseError::BadPublicKey)?;
                    self.secret = Some(s);
                    self.req1 = hash(&[b"req1", &s]);
                    self.req3 = hash(&[b"req3", &s]);
                    self.step = Step::Synchronizing;
                }
                Step::Synchronizing => {
                    let window = MAX_PAD + 20;
                    match find(&self.buf[..self.buf.len().min(window)], &self.req1) {
                        Some(at) => {
                            self.buf.drain(..at + 20);
                            self.step = Step::ReadingSkey;
                        }
                        None if self.buf.len() >= window => {
                            return Err(MseError::NoSync { window })
                        }
                        None => return Ok(()),
                    }
                }
                Step::ReadingSkey => {
                    if self.buf.len() < 20 {
                        return Ok(());
                    }
                    let mut req2 = [0u8; 20];
                    for (i, b) in self.buf.drain(..20).enumerate() {
                        req2[i] = b ^ self.req3[i];
                    }
                    let skey = self
                        .info_hashes
                        .iter()
                        .find(|ih| hash(&[b"req2", &ih[..]]) == req2)
                        .copied()
                        .ok_or(MseError::UnknownTorrent)?;
                    let s = self.secret.unwrap_or([0; DH_LEN]);
                    let keys = Keys::new(&s, &skey);
                    self.skey = Some(skey);
                    self.dec = Some(keys.a);
                    self.enc = Some(keys.b);
                    self.step = Step::ReadingProvide;
                }
                Step::ReadingProvide => {
                    // VC (8), crypto_provide (4), len(PadC) (2); then PadC and len(IA) (2),
                    // then IA. Decrypt a copy each time so a partial read can be retried.
                    const HEAD: usize = 14;
                    if self.buf.len() < HEAD {
                        return Ok(());
                    }
                    let mut dec = self.dec.clone().ok_or(MseError::NotDone)?;
                    let mut head = [0u8; HEAD];
                    head.copy_from_slice(&self.buf[..HEAD]);
                    dec.apply(&mut head);
                    if head[..8] != VC {
                        return Err(MseError::BadVc);
                    }
                    let provide = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
                    let pad_c = usize::from(u16::from_be_bytes([head[12], head[13]]));
                    if pad_c > MAX_PAD {
                        return Err(MseError::TooLong {
                            what: "PadC",
                            len: pad_c,
                            max: MAX_PAD,
                        });
                    }
                    if self.buf.len() < HEAD + pad_c + 2 {
                        return Ok(());
                    }
                    let mut rest = self.buf[HEAD..HEAD + pad_c + 2].to_vec();
                    dec.apply(&mut rest);
                    let ia_len = usize::from(u16::from_be_bytes([rest[pad_c], rest[pad_c + 1]]));
                    if ia_len > MAX_IA {
                        return Err(MseError::TooLong {
                            what: "IA",
                            len: ia_len,
                            max: MAX_IA,
                        });
                    }
                    let total = HEAD + pad_c + 2 + ia_len;
                    if self.buf.len() < total {
                        return Ok(());
                    }
                    let mut ia: Vec<u8> = self.buf[HEAD + pad_c + 2..total].to_vec();
                    dec.apply(&mut ia);
                    self.buf.drain(..total);
                    self.dec = Some(dec);
                    self.initial_payload = ia;
                    let both = provide & self.accept.0;
                    self.select = if both & CryptoProvide::RC4.0 != 0 {
                        CryptoProvide::RC4
                    } else if both & CryptoProvide::PLAINTEXT.0 != 0 {
                        CryptoProvide::PLAINTEXT
                    } else {
                        return Err(MseError::BadCrypto(provide));
                    };
                    // Step 4: ENCRYPT(VC, crypto_select, len(PadD) = 0).
                    let mut reply = Vec::with_capacity(14);
                    reply.extend_from_slice(&VC);
                    reply.extend_from_slice(&self.select.0.to_be_bytes());
                    reply.extend_from_slice(&0u16.to_be_bytes());
                    if let Some(enc) = &mut self.enc {
                        enc.apply(&mut reply);
                    }
                    self.out.extend_from_slice(&reply);
                    self.step = Step::Done;
                }
                Step::Done | Step::Failed(_) => return Ok(()),
            }
        }
    }

    /// Once done: the ciphers for the rest of the connection and the payload bytes already
    /// received after the handshake, decrypted.
    pub fn into_stream(self) -> Result<(MseStream, Vec<u8>), MseError> {
        match self.step {
            Step::Done => {}
            Step::Failed(e) => return Err(e),
            _ => return Err(MseError::NotDone),
        }
        Ok(MseStream::after_handshake(
            self.select == CryptoProvide::RC4,
            self.enc,
            self.dec,
            self.buf,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn initiator_bytes() -> Vec<u8> {
        super::super::MseInitiator::new([7; 20], &[3; RANDOM_LEN], CryptoProvide::BOTH)
            .poll_transmit()
            .unwrap_or_default()
    }

    #[test]
    fn sends_nothing_before_input_then_yb() {
        let mut b = MseResponder::new(vec![[7; 20]], &[4; RANDOM_LEN], CryptoProvide::BOTH);
        assert_eq!(b.poll_transmit(), None);
        b.handle_input(&initiator_bytes()[..10]);
        assert!(b.poll_transmit().unwrap().len() >= DH_LEN);
    }

    #[test]
    fn no_req1_gives_up_at_the_bound() {
        let mut b = MseResponder::new(vec![[7; 20]], &[4; RANDOM_LEN], CryptoProvide::BOTH);
        let mut ya = initiator_bytes();
        ya.truncate(DH_LEN);
        b.handle_input(&ya);
        b.handle_input(&[1; 531]);
        assert!(!matches!(b.step, Step::Failed(_)));
        b.handle_input(&[1; 1]);
        assert_eq!(b.step, Step::Failed(MseError::NoSync { window: 532 }));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_initiator_bytes_never_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..1500),
        ) {
            let mut b = MseResponder::new(vec![[7; 20]], &[4; RANDOM_LEN], CryptoProvide::BOTH);
            b.handle_input(&bytes);
            let _ = b.poll_transmit();
            let _ = b.into_stream();
        }
    }
}
