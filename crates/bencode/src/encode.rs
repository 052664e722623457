//! Canonical encoding: an owned value tree whose dicts are always sorted, and a streaming
//! [`Encoder`] for writers that already produce keys in order.

use std::collections::BTreeMap;

use crate::{Kind, Value};

/// An owned bencode value. Dicts are `BTreeMap`s, so encoding is canonical by construction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OwnedValue {
    /// An integer.
    Int(i64),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<OwnedValue>),
    /// A dict with sorted keys.
    Dict(BTreeMap<Vec<u8>, OwnedValue>),
}

impl OwnedValue {
    /// An empty dict, to fill with [`OwnedValue::insert`].
    pub fn dict() -> Self {
        OwnedValue::Dict(BTreeMap::new())
    }

    /// Insert `key` into a dict (no effect on other kinds); returns `self` for chaining.
    pub fn insert(&mut self, key: &[u8], value: impl Into<OwnedValue>) -> &mut Self {
        if let OwnedValue::Dict(d) = self {
            d.insert(key.to_vec(), value.into());
        }
        self
    }

    /// Canonical bencode of this value.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    /// Append the canonical bencode of this value to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            OwnedValue::Int(i) => Encoder(out).int(*i),
            OwnedValue::Bytes(b) => Encoder(out).bytes(b),
            OwnedValue::List(l) => {
                out.push(b'l');
                l.iter().for_each(|v| v.write(out));
                out.push(b'e');
            }
            OwnedValue::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    Encoder(out).bytes(k);
                    v.write(out);
                }
                out.push(b'e');
            }
        }
    }
}

impl From<&Value<'_>> for OwnedValue {
    /// Copy a borrowed value; dict keys get sorted (a repeated key keeps its last value).
    fn from(v: &Value<'_>) -> Self {
        match v.kind() {
            Kind::Int(i) => OwnedValue::Int(*i),
            Kind::Bytes(b) => OwnedValue::Bytes(b.to_vec()),
            Kind::List(l) => OwnedValue::List(l.iter().map(OwnedValue::from).collect()),
            Kind::Dict(d) => OwnedValue::Dict(
                d.iter()
                    .map(|(k, v)| (k.to_vec(), OwnedValue::from(v)))
                    .collect(),
            ),
        }
    }
}

impl From<i64> for OwnedValue {
    fn from(i: i64) -> Self {
        OwnedValue::Int(i)
    }
}

impl From<Vec<u8>> for OwnedValue {
    fn from(b: Vec<u8>) -> Self {
        OwnedValue::Bytes(b)
    }
}

impl From<&[u8]> for OwnedValue {
    fn from(b: &[u8]) -> Self {
        OwnedValue::Bytes(b.to_vec())
    }
}

impl From<&str> for OwnedValue {
    fn from(s: &str) -> Self {
        OwnedValue::Bytes(s.as_bytes().to_vec())
    }
}

impl From<Vec<OwnedValue>> for OwnedValue {
    fn from(l: Vec<OwnedValue>) -> Self {
        OwnedValue::List(l)
    }
}

/// A streaming encoder appending to a buffer. The caller writes dict keys in sorted order
/// (as a hand-written message encoder naturally does); `begin_*`/`end` bracket containers.
pub struct Encoder<'o>(pub &'o mut Vec<u8>);

impl Encoder<'_> {
    /// `i…e`
    pub fn int(&mut self, i: i64) {
        self.0.push(b'i');
        if i < 0 {
            self.0.push(b'-');
        }
        self.digits(i.unsigned_abs());
        self.0.push(b'e');
    }

    /// `N:…`
    pub fn bytes(&mut self, b: &[u8]) {
        self.len_prefix(b.len());
        self.0.extend_from_slice(b);
    }

    /// `N:`, the head of a byte string of `len` bytes whose bytes the caller then writes
    /// with [`Encoder::raw`] (e.g. from several pieces).
    pub fn len_prefix(&mut self, len: usize) {
        self.digits(len as u64);
        self.0.push(b':');
    }

    /// `n` in decimal, without allocating.
    fn digits(&mut self, mut n: u64) {
        let mut buf = [0u8; 20];
        let mut at = buf.len();
        loop {
            at -= 1;
            buf[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.0.extend_from_slice(&buf[at..]);
    }

    /// Start a dict.
    pub fn begin_dict(&mut self) {
        self.0.push(b'd');
    }

    /// Start a list.
    pub fn begin_list(&mut self) {
        self.0.push(b'l');
    }

    /// Close the innermost container.
    pub fn end(&mut self) {
        self.0.push(b'e');
    }

    /// A key followed by a byte-string value.
    pub fn kv_bytes(&mut self, key: &[u8], value: &[u8]) {
        self.bytes(key);
        self.bytes(value);
    }

    /// A key followed by an integer value.
    pub fn kv_int(&mut self, key: &[u8], value: i64) {
        self.bytes(key);
        self.int(value);
    }

    /// Append already-encoded bencode verbatim (e.g. an `info` dict exactly as received).
    pub fn raw(&mut self, encoded: &[u8]) {
        self.0.extend_from_slice(encoded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode;

    #[test]
    fn integers_and_lengths_without_allocating() {
        for i in [0, 1, -1, 9, 10, -10, 4096, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            Encoder(&mut out).int(i);
            assert_eq!(out, format!("i{i}e").into_bytes());
        }
        let mut out = Vec::new();
        Encoder(&mut out).bytes(&[7; 1234]);
        assert!(out.starts_with(b"1234:"));
        assert_eq!(out.len(), 1239);
    }

    #[test]
    fn owned_encoding_is_canonical() {
        let v = decode(b"d1:bli1e3:xyze1:ai-3ee").unwrap();
        assert_eq!(OwnedValue::from(&v).to_bytes(), b"d1:ai-3e1:bli1e3:xyzee");
    }

    #[test]
    fn builder_and_streaming_agree() {
        let mut d = OwnedValue::dict();
        d.insert(b"y", "q").insert(b"t", &b"aa"[..]).insert(b"n", 5);
        let mut out = Vec::new();
        let mut e = Encoder(&mut out);
        e.begin_dict();
        e.kv_int(b"n", 5);
        e.kv_bytes(b"t", b"aa");
        e.kv_bytes(b"y", b"q");
        e.end();
        assert_eq!(d.to_bytes(), out);
        assert_eq!(out, b"d1:ni5e1:t2:aa1:y1:qe");
    }
}
