//! [`RawValue`]: a value that [`crate::scan_with`] checked, read lazily from its bytes.
//!
//! Where a caller wants a few fields of a small message (a KRPC datagram), building a
//! [`crate::Value`] tree costs an allocation per list and dict; reading the checked bytes in
//! place costs none. Reading never fails on bytes the scanner accepted, and never panics on
//! any bytes: every step is checked, and a step that cannot be taken ends the iteration.

use crate::decode::parse_int;

/// One bencode value, borrowing its exact bytes from the scanned input. Only
/// [`crate::scan_with`] makes one (and the iterators below, for the values inside it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawValue<'a> {
    raw: &'a [u8],
}

impl<'a> RawValue<'a> {
    /// `raw` is exactly one value that the scanner accepted.
    pub(crate) fn validated(raw: &'a [u8]) -> Self {
        RawValue { raw }
    }

    /// The exact bytes of this value.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self.raw.split_first()? {
            (b'i', rest) => parse_int(rest.strip_suffix(b"e")?),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        let (b, end) = read_bytes(self.raw, 0)?;
        (end == self.raw.len()).then_some(b)
    }

    /// Whether this is a dict.
    pub fn is_dict(&self) -> bool {
        self.raw.first() == Some(&b'd')
    }

    /// The entries in received order, if this is a dict.
    pub fn dict(&self) -> Option<DictIter<'a>> {
        self.is_dict().then_some(DictIter {
            raw: self.raw,
            pos: 1,
        })
    }

    /// The items, if this is a list.
    pub fn list(&self) -> Option<ListIter<'a>> {
        (self.raw.first() == Some(&b'l')).then_some(ListIter {
            raw: self.raw,
            pos: 1,
        })
    }

    /// The value under `key` if this is a dict holding it (the first one, if repeated).
    pub fn get(&self, key: &[u8]) -> Option<RawValue<'a>> {
        self.dict()?.find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// The entries of a dict: `(key, value)` in received order.
#[derive(Debug, Clone)]
pub struct DictIter<'a> {
    raw: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for DictIter<'a> {
    type Item = (&'a [u8], RawValue<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let (key, at) = read_bytes(self.raw, self.pos)?;
        let end = value_end(self.raw, at)?;
        self.pos = end;
        Some((key, RawValue::validated(self.raw.get(at..end)?)))
    }
}

/// The items of a list.
#[derive(Debug, Clone)]
pub struct ListIter<'a> {
    raw: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for ListIter<'a> {
    type Item = RawValue<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let at = self.pos;
        let end = value_end(self.raw, at)?;
        self.pos = end;
        Some(RawValue::validated(self.raw.get(at..end)?))
    }
}

/// The byte string starting at `pos`, and the offset just past it. `None` at a container's
/// closing `e` or on anything that is not a well-formed byte string.
fn read_bytes(raw: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = raw.get(pos..)?;
    if !rest.first()?.is_ascii_digit() {
        return None;
    }
    let colon = rest.iter().position(|&c| c == b':')?;
    let digits = &rest[..colon];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let len = usize::try_from(parse_int(digits)?).ok()?;
    let start = pos.checked_add(colon)?.checked_add(1)?;
    let end = start.checked_add(len)?;
    Some((raw.get(start..end)?, end))
}

/// The offset just past the value starting at `pos`; `None` at a container's closing `e`
/// or on bytes the scanner would not have accepted. A loop with a nesting count rather than
/// recursion, so any input is safe.
fn value_end(raw: &[u8], mut pos: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        match *raw.get(pos)? {
            b'i' => {
                let len = raw.get(pos + 1..)?.iter().position(|&c| c == b'e')?;
                pos += len + 2;
            }
            b'0'..=b'9' => pos = read_bytes(raw, pos)?.1,
            b'l' | b'd' => {
                depth += 1;
                pos += 1;
                continue;
            }
            b'e' => {
                depth = depth.checked_sub(1)?;
                pos += 1;
            }
            _ => return None,
        }
        if depth == 0 {
            return Some(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{decode_with, scan_with, Limits};

    #[test]
    fn reads_dicts_lists_and_scalars_in_place() {
        let input = b"d1:ai-3e1:bl2:xyi7edee1:c0:1:ai9ee";
        // (A repeated key, not adjacent: accepted, the first one wins, as with `Value`.)
        let v = scan_with(input, Limits::default()).unwrap();
        assert!(v.is_dict());
        assert_eq!(v.raw(), &input[..]);
        assert_eq!(v.get(b"a").and_then(|a| a.as_int()), Some(-3));
        let b: Vec<_> = v.get(b"b").unwrap().list().unwrap().collect();
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].as_bytes(), Some(&b"xy"[..]));
        assert_eq!(b[1].as_int(), Some(7));
        assert_eq!(b[2].dict().unwrap().count(), 0);
        assert_eq!(v.get(b"c").and_then(|c| c.as_bytes()), Some(&b""[..]));
        assert_eq!(v.get(b"zz"), None);
        assert_eq!(v.dict().unwrap().count(), 4);
        assert!(v.get(b"a").unwrap().dict().is_none());
        assert!(v.get(b"a").unwrap().as_bytes().is_none());
        assert!(v.get(b"c").unwrap().as_int().is_none());
    }

    #[test]
    fn scan_fails_exactly_where_decode_fails() {
        let limits = Limits {
            max_depth: 3,
            max_values: 6,
            ..Limits::default()
        };
        for bad in [
            &b""[..],
            b"i-0e",
            b"d1:ai1e1:ai2ee",
            b"di1ei2ee",
            b"5:abc",
            b"llllee",
            b"li1ei2ei3ei4ei5ei6ee",
            b"i1ei2e",
            b"d1:a",
            b"x",
        ] {
            assert_eq!(
                scan_with(bad, limits).map(|v| v.raw()),
                decode_with(bad, limits).map(|v| v.raw()),
                "{bad:?}"
            );
            assert!(scan_with(bad, limits).is_err());
        }
    }
}
