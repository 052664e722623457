//! Message Stream Encryption (MSE, "protocol encryption"), sans-IO: the obfuscated
//! Diffie-Hellman handshake that peers requiring encryption expect before the BitTorrent
//! handshake, and the RC4 streams after it.
//!
//! The exchange, with A the connecting side ([`MseInitiator`]) and B the accepting side
//! ([`MseResponder`]):
//!
//! ```text
//! 1 A->B: Ya, PadA
//! 2 B->A: Yb, PadB
//! 3 A->B: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
//!         ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
//! 4 B->A: ENCRYPT(VC, crypto_select, len(PadD), PadD), ENCRYPT2(payload stream)
//! ```
//!
//! `Y = 2^X mod P` with the 768-bit prime [`P_HEX`], `S` the shared secret (96 bytes, big
//! endian), `SKEY` the infohash the initiator connects with (a v2 one truncated to 20
//! bytes), `HASH` SHA-1, `VC` eight zero bytes, pads 0–512 bytes. A encrypts with RC4 keyed
//! `HASH('keyA', S, SKEY)`, B with `HASH('keyB', S, SKEY)`, both dropping the first 1024
//! bytes of keystream. If B selects plaintext (`crypto_select` 1) the streams go on in the
//! clear after step 4.
//!
//! Everything the other side sends has a size limit: the sides synchronise by searching a
//! bounded window (512 pad bytes plus the marker), every length field is checked against
//! its maximum before anything is buffered, and garbage is an [`MseError`], never a panic.
//! Randomness (private key, pad lengths and contents) comes from the caller.

mod initiator;
mod responder;

use num_bigint::BigUint;
use sha1::{Digest as _, Sha1};

pub use initiator::{MseInitiator, MseState};
pub use responder::MseResponder;

/// The MSE prime P (768 bits), hexadecimal. The generator is 2.
pub const P_HEX: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563";
/// Length of a public key (`Ya`, `Yb`) and of the shared secret `S` on the wire.
pub const DH_LEN: usize = 96;
/// Largest pad (PadA, PadB, PadC, PadD) the protocol allows.
pub const MAX_PAD: usize = 512;
/// The verification constant, eight zero bytes.
pub const VC: [u8; 8] = [0; 8];
/// Bytes of caller-provided randomness a side needs: 20 for the 160-bit private key, 2 for
/// the length of its pad, 10 to key the generator of the pad's contents.
pub const RANDOM_LEN: usize = 32;
/// Largest initial payload (IA) a responder accepts; the BitTorrent handshake is 68 bytes.
pub const MAX_IA: usize = 1024;
/// Keystream bytes both RC4 streams drop before use.
const RC4_DISCARD: usize = 1024;

/// The `crypto_provide` / `crypto_select` bit field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CryptoProvide(pub u32);

impl CryptoProvide {
    /// Plaintext after the handshake (bit 0x01).
    pub const PLAINTEXT: CryptoProvide = CryptoProvide(0x01);
    /// RC4 after the handshake (bit 0x02).
    pub const RC4: CryptoProvide = CryptoProvide(0x02);
    /// Either; the responder chooses.
    pub const BOTH: CryptoProvide = CryptoProvide(0x03);

    /// Whether every bit of `other` is set here.
    pub fn contains(self, other: CryptoProvide) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }
}

/// Why an MSE handshake failed. Every variant comes from the peer's bytes (or their
/// absence), never from a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MseError {
    /// The peer's public key is 0, 1, P-1 or not below P.
    #[error("peer sent an invalid Diffie-Hellman public key")]
    BadPublicKey,
    /// The synchronisation marker did not appear within its bounded window.
    #[error("no MSE synchronisation marker within {window} bytes")]
    NoSync {
        /// Bytes searched.
        window: usize,
    },
    /// A pad longer than 512 bytes or an initial payload longer than [`MAX_IA`].
    #[error("MSE {what} length {len} exceeds {max}")]
    TooLong {
        /// Which field.
        what: &'static str,
        /// Declared length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The decrypted verification constant is not zero (wrong key or garbage).
    #[error("MSE verification constant mismatch")]
    BadVc,
    /// `crypto_select` is not exactly one method we provided, or no method in common.
    #[error("MSE crypto method {0:#x} not acceptable")]
    BadCrypto(u32),
    /// The initiator asked for a torrent the responder does not know.
    #[error("MSE request for an unknown torrent")]
    UnknownTorrent,
    /// The handshake already failed, or the stream was asked for before the end.
    #[error("MSE handshake not complete")]
    NotDone,
}

/// RC4, the only cipher MSE uses. Written here rather than taken from a crate: it is a
/// dozen lines, and the RustCrypto `rc4` crate would bring the `cipher` trait stack along
/// for them. Not constant time in any way that matters: RC4 has no secret-indexed branches
/// beyond its table lookups, and MSE is obfuscation, not confidentiality.
#[derive(Clone)]
pub struct Rc4 {
    s: [u8; 256],
    i: u8,
    j: u8,
}

impl std::fmt::Debug for Rc4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rc4 { .. }")
    }
}

impl Rc4 {
    /// A keystream for `key` (1 to 256 bytes; an empty key is treated as one zero byte).
    pub fn new(key: &[u8]) -> Self {
        let key: &[u8] = if key.is_empty() { &[0] } else { key };
        let mut s = [0u8; 256];
        for (k, v) in s.iter_mut().enumerate() {
            *v = k as u8;
        }
        let mut j = 0u8;
        for i in 0..256 {
            j = j.wrapping_add(s[i]).wrapping_add(key[i % key.len()]);
            s.swap(i, j as usize);
        }
        Rc4 { s, i: 0, j: 0 }
    }

    /// XOR `data` with the next keystream bytes (encrypts and decrypts alike).
    pub fn apply(&mut self, data: &mut [u8]) {
        for b in data {
            self.i = self.i.wrapping_add(1);
            self.j = self.j.wrapping_add(self.s[self.i as usize]);
            self.s.swap(self.i as usize, self.j as usize);
            let k = self.s[self.s[self.i as usize].wrapping_add(self.s[self.j as usize]) as usize];
            *b ^= k;
        }
    }

    /// The MSE stream for `label` (`keyA` or `keyB`): RC4 keyed `HASH(label, S, SKEY)`,
    /// first 1024 bytes dropped.
    fn mse(label: &[u8], s: &[u8; DH_LEN], skey: &[u8; 20]) -> Self {
        let mut rc4 = Rc4::new(&hash(&[label, s, skey]));
        rc4.apply(&mut [0u8; RC4_DISCARD]);
        rc4
    }
}

/// The ciphers of a finished handshake: encrypt what we send, decrypt what we receive.
/// Both `None` if plaintext was selected.
#[derive(Debug, Clone)]
pub struct MseStream {
    enc: Option<Rc4>,
    dec: Option<Rc4>,
}

impl MseStream {
    /// The stream at the end of a handshake: RC4 both ways when `rc4` was selected, else
    /// plaintext; `rest` (bytes received after the handshake) decrypted for the caller.
    pub(crate) fn after_handshake(
        rc4: bool,
        enc: Option<Rc4>,
        dec: Option<Rc4>,
        mut rest: Vec<u8>,
    ) -> (MseStream, Vec<u8>) {
        let mut stream = if rc4 {
            MseStream { enc, dec }
        } else {
            MseStream {
                enc: None,
                dec: None,
            }
        };
        stream.decrypt(&mut rest);
        (stream, rest)
    }

    /// Whether RC4 was selected (otherwise both directions are plaintext).
    pub fn is_encrypted(&self) -> bool {
        self.enc.is_some()
    }

    /// Encrypt outgoing bytes in place (no-op for plaintext).
    pub fn encrypt(&mut self, data: &mut [u8]) {
        if let Some(rc4) = &mut self.enc {
            rc4.apply(data);
        }
    }

    /// Decrypt incoming bytes in place (no-op for plaintext).
    pub fn decrypt(&mut self, data: &mut [u8]) {
        if let Some(rc4) = &mut self.dec {
            rc4.apply(data);
        }
    }

    /// Split into the sending and receiving ciphers (`None`: plaintext).
    pub fn split(self) -> (Option<Rc4>, Option<Rc4>) {
        (self.enc, self.dec)
    }
}

/// SHA-1 of the concatenation of `parts`.
fn hash(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn prime() -> BigUint {
    // P_HEX is a constant; parsing it cannot fail.
    BigUint::parse_bytes(P_HEX.as_bytes(), 16).unwrap_or_default()
}

/// A Diffie-Hellman key pair from 20 random bytes (the private key, big endian).
struct KeyPair {
    private: BigUint,
    public: [u8; DH_LEN],
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyPair { .. }")
    }
}

impl KeyPair {
    fn new(private: &[u8]) -> Self {
        let private = BigUint::from_bytes_be(private);
        let public = to_fixed(&BigUint::from(2u32).modpow(&private, &prime()));
        KeyPair { private, public }
    }

    /// The shared secret with the peer's public key, or `None` if that key is degenerate.
    fn shared(&self, peer: &[u8]) -> Option<[u8; DH_LEN]> {
        let p = prime();
        let y = BigUint::from_bytes_be(peer);
        if y <= BigUint::from(1u32) || y >= &p - 1u32 {
            return None;
        }
        Some(to_fixed(&y.modpow(&self.private, &p)))
    }
}

/// `n` (below P) as 96 big-endian bytes.
fn to_fixed(n: &BigUint) -> [u8; DH_LEN] {
    let bytes = n.to_bytes_be();
    let mut out = [0u8; DH_LEN];
    let len = bytes.len().min(DH_LEN);
    out[DH_LEN - len..].copy_from_slice(&bytes[bytes.len() - len..]);
    out
}

/// The derived secrets of one handshake.
struct Keys {
    req1: [u8; 20],
    /// HASH('req3', S).
    req3: [u8; 20],
    /// A's sending stream.
    a: Rc4,
    /// B's sending stream.
    b: Rc4,
}

impl Keys {
    fn new(s: &[u8; DH_LEN], skey: &[u8; 20]) -> Self {
        Keys {
            req1: hash(&[b"req1", s]),
            req3: hash(&[b"req3", s]),
            a: Rc4::mse(b"keyA", s, skey),
            b: Rc4::mse(b"keyB", s, skey),
        }
    }
}

/// A pad of 0–512 bytes from caller randomness: its length from `random[20..22]`, its
/// contents RC4 keystream keyed by `random[22..32]`.
fn pad(random: &[u8; RANDOM_LEN]) -> Vec<u8> {
    let len = usize::from(u16::from_be_bytes([random[20], random[21]])) % (MAX_PAD + 1);
    let mut pad = vec![0u8; len];
    Rc4::new(&random[22..]).apply(&mut pad);
    pad
}

/// Position of `needle` in `hay`, if any.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known answers computed independently with Python 3 (`pow(2, x, P)`, `hashlib.sha1`,
    // and a separate textbook RC4 in Python), private keys xa = bytes 1..=20 and
    // xb = bytes 101..=120 (big endian), SKEY = twenty 0x07 bytes:
    //   ya = pow(2, xa, P); yb = pow(2, xb, P); S = pow(yb, xa, P) (== pow(ya, xb, P))
    //   REQ1 = sha1(b'req1' + S); REQ23 = sha1(b'req2' + SKEY) xor sha1(b'req3' + S)
    //   KEYA16 / KEYB16 = RC4(sha1(b'keyA'/b'keyB' + S + SKEY)) keystream bytes 1024..1040
    const YA: &str = "96e112dab29e8c5272accb9b17b26887ce54a144a4e3b697c7d159b7a817e556b0918db2b4c658e02a87f7e5fb14b18a553e084cbf3dad2d30f16596ccb982d406258c61b30c5c1dae2ddc60bdbd48d79896312aad63238c39e1a633821eb693";
    const S: &str = "d05ed96a95215a89b44073afe5d0b1626289ac01cff7849392948b2470b346547e944d7562a897ae86976bc389999083ec09572dbdc8ed7f6a0a86a1aa42a3ca04209b72d8239890360435640643b76479ed7836f1857963fcc7cb72084c3ab4";
    const REQ1: &str = "78fffb0f23055a793ff7609f359e04e383ec3505";
    const REQ23: &str = "71d78150e85448ce01f25cccacd68f4ff1fe589f";
    const KEYA16: &str = "6001a24df82bedd60d89ed941f5de1f9";
    const KEYB16: &str = "1f1175239bd82cb005687bc45ec41a35";

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn xa() -> Vec<u8> {
        (1..=20).collect()
    }

    fn xb() -> Vec<u8> {
        (101..=120).collect()
    }

    #[test]
    fn rc4_textbook_vector() {
        // The classic RC4 vector: key "Key", plaintext "Plaintext".
        let mut data = *b"Plaintext";
        Rc4::new(b"Key").apply(&mut data);
        assert_eq!(hex(&data), "bbf316e8d940af0ad3");
    }

    #[test]
    fn dh_known_answers() {
        let a = KeyPair::new(&xa());
        let b = KeyPair::new(&xb());
        assert_eq!(hex(&a.public), YA);
        let s = a.shared(&b.public).unwrap();
        assert_eq!(hex(&s), S);
        assert_eq!(b.shared(&a.public).unwrap(), s);
    }

    #[test]
    fn key_derivation_known_answers() {
        let s = KeyPair::new(&xa())
            .shared(&KeyPair::new(&xb()).public)
            .unwrap();
        let keys = Keys::new(&s, &[7; 20]);
        assert_eq!(hex(&keys.req1), REQ1);
        let req2 = hash(&[b"req2", &[7; 20]]);
        let x: Vec<u8> = req2
            .iter()
            .zip(keys.req3.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(hex(&x), REQ23);
        let (mut ka, mut kb) = ([0u8; 16], [0u8; 16]);
        keys.a.clone().apply(&mut ka);
        keys.b.clone().apply(&mut kb);
        assert_eq!(hex(&ka), KEYA16);
        assert_eq!(hex(&kb), KEYB16);
    }

    #[test]
    fn initiator_step_three_known_answer() {
        let mut random = [0u8; RANDOM_LEN];
        random[..20].copy_from_slice(&xa()); // pad length 0
        let mut a = MseInitiator::new([7; 20], &random, CryptoProvide::BOTH);
        assert_eq!(hex(&a.poll_transmit().unwrap()), YA);
        a.handle_input(&KeyPair::new(&xb()).public);
        let out = a.poll_transmit().unwrap();
        assert_eq!(hex(&out[..20]), REQ1);
        assert_eq!(hex(&out[20..40]), REQ23);
        // VC (8 zeros), provide 3, len(PadC) 0, len(IA) 0, XORed with keyA's stream.
        let plain = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0];
        let ks: Vec<u8> = (0..16)
            .map(|i| u8::from_str_radix(&KEYA16[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let expect: Vec<u8> = plain.iter().zip(ks).map(|(p, k)| p ^ k).collect();
        assert_eq!(out[40..], expect[..]);
    }

    #[test]
    fn pad_lengths_stay_in_bounds() {
        for hi in [0u8, 1, 2, 0x7f, 0xff] {
            let mut random = [0xffu8; RANDOM_LEN];
            random[20] = hi;
            assert!(pad(&random).len() <= MAX_PAD);
        }
    }

    #[test]
    fn crypto_provide_contains() {
        assert!(CryptoProvide::BOTH.contains(CryptoProvide::RC4));
        assert!(!CryptoProvide::RC4.contains(CryptoProvide::PLAINTEXT));
        assert!(!CryptoProvide::BOTH.contains(CryptoProvide(0)));
    }
}
