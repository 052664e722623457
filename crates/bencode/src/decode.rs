//! The decoder: a recursive descent bounded by [`Limits`], check-then-slice on every length.

use crate::{Error, Kind, RawValue, Value};

/// Room reserved for a dict's or a list's items at first: a KRPC message's dicts fit, so
/// each takes one allocation rather than a few as it grows.
const SMALL: usize = 8;

/// Bounds on what the decoder accepts. Defaults suit a torrent's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of lists and dicts. Default 64.
    pub max_depth: usize,
    /// Largest input, in bytes. Default 64 MiB.
    pub max_size: usize,
    /// Most values (of any kind) in one input. Default 4,000,000.
    pub max_values: usize,
    /// Reject dict keys that are not in strictly ascending order (canonical bencode).
    /// Default `false`: real peers send unsorted dicts, which are accepted; a key repeated
    /// immediately is always rejected.
    pub strict: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_size: 64 << 20,
            max_values: 4_000_000,
            strict: false,
        }
    }
}

/// Decode exactly one value filling the whole input, with default [`Limits`].
pub fn decode(input: &[u8]) -> Result<Value<'_>, Error> {
    decode_with(input, Limits::default())
}

/// Decode exactly one value filling the whole input.
pub fn decode_with(input: &[u8], limits: Limits) -> Result<Value<'_>, Error> {
    let (value, used) = decode_prefix(input, limits)?;
    if used != input.len() {
        return Err(Error::TrailingData { offset: used });
    }
    Ok(value)
}

/// Decode one value from the start of the input; return it and the number of bytes it used.
/// Used where a value is followed by raw bytes (BEP 9 `data` messages).
pub fn decode_prefix(input: &[u8], limits: Limits) -> Result<(Value<'_>, usize), Error> {
    let mut d = Decoder::new(input, limits)?;
    let v = d.value(0)?;
    Ok((v, d.pos))
}

/// Check that the whole input is exactly one value, as [`decode_with`] does (same limits,
/// same errors at the same offsets), without building a tree: nothing is allocated. The
/// result is read lazily through [`RawValue`].
pub fn scan_with(input: &[u8], limits: Limits) -> Result<RawValue<'_>, Error> {
    let mut d = Decoder::new(input, limits)?;
    d.skip(0)?;
    if d.pos != input.len() {
        return Err(Error::TrailingData { offset: d.pos });
    }
    Ok(RawValue::validated(input))
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    values: usize,
    limits: Limits,
}

impl<'a> Decoder<'a> {
    /// A decoder at the start of `input`, which must fit `limits.max_size`.
    fn new(input: &'a [u8], limits: Limits) -> Result<Self, Error> {
        if input.len() > limits.max_size {
            return Err(Error::TooLarge {
                len: input.len(),
                max: limits.max_size,
            });
        }
        Ok(Decoder {
            input,
            pos: 0,
            values: 0,
            limits,
        })
    }

    fn peek(&self) -> Result<u8, Error> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(Error::UnexpectedEof { offset: self.pos })
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, Error> {
        let start = self.count_value()?;
        let kind = match self.peek()? {
            b'i' => {
                self.pos += 1;
                Kind::Int(self.integer(b'e', start)?)
            }
            b'0'..=b'9' => Kind::Bytes(self.bytes()?),
            b'l' | b'd' => {
                self.check_depth(depth, start)?;
                self.container(depth + 1)?
            }
            byte => {
                return Err(Error::UnexpectedByte {
                    offset: start,
                    byte,
                })
            }
        };
        Ok(Value {
            raw: &self.input[start..self.pos],
            offset: start,
            kind,
        })
    }

    fn container(&mut self, depth: usize) -> Result<Kind<'a>, Error> {
        let is_dict = self.peek()? == b'd';
        self.pos += 1;
        if is_dict {
            let mut entries: Vec<(&'a [u8], Value<'a>)> = Vec::with_capacity(SMALL);
            while self.peek()? != b'e' {
                let key = self.dict_key(entries.last().map(|(k, _)| *k))?;
                let v = self.value(depth)?;
                entries.push((key, v));
            }
            self.pos += 1;
            Ok(Kind::Dict(entries))
        } else {
            let mut items = Vec::with_capacity(SMALL);
            while self.peek()? != b'e' {
                items.push(self.value(depth)?);
            }
            self.pos += 1;
            Ok(Kind::List(items))
        }
    }

    /// [`Decoder::value`] without building anything: the same checks in the same order, so
    /// the same errors at the same offsets (the property tests hold the two together).
    fn skip(&mut self, depth: usize) -> Result<(), Error> {
        let start = self.count_value()?;
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                self.integer(b'e', start)?;
            }
            b'0'..=b'9' => {
                self.bytes()?;
            }
            open @ (b'l' | b'd') => {
                self.check_depth(depth, start)?;
                self.pos += 1;
                // Only the previous key is needed to refuse a repeated (or, strict, unsorted)
                // one: no list of entries.
                let mut prev: Option<&'a [u8]> = None;
                while self.peek()? != b'e' {
                    if open == b'd' {
                        prev = Some(self.dict_key(prev)?);
                    }
                    self.skip(depth + 1)?;
                }
                self.pos += 1;
            }
            byte => {
                return Err(Error::UnexpectedByte {
                    offset: start,
                    byte,
                })
            }
        }
        Ok(())
    }

    /// Count one more value against the limit; its offset.
    fn count_value(&mut self) -> Result<usize, Error> {
        let start = self.pos;
        self.values += 1;
        if self.values > self.limits.max_values {
            return Err(Error::TooManyValues {
                offset: start,
                max: self.limits.max_values,
            });
        }
        Ok(start)
    }

    /// Refuse a container at `start` that would nest deeper than the limit.
    fn check_depth(&self, depth: usize, start: usize) -> Result<(), Error> {
        if depth >= self.limits.max_depth {
            return Err(Error::TooDeep {
                offset: start,
                max: self.limits.max_depth,
            });
        }
        Ok(())
    }

    /// A dict's next key: a byte string, after `prev` (not equal to it; with `strict`, not
    /// before it either).
    fn dict_key(&mut self, prev: Option<&[u8]>) -> Result<&'a [u8], Error> {
        let key_at = self.pos;
        if !self.peek()?.is_ascii_digit() {
            return Err(Error::KeyNotString { offset: key_at });
        }
        let key = self.bytes()?;
        if prev.is_some_and(|p| p == key || (self.limits.strict && p > key)) {
            return Err(Error::KeyOrder { offset: key_at });
        }
        Ok(key)
    }

    /// Parse a decimal integer up to `end`; `pos` is just past the `i` (or at the length).
    fn integer(&mut self, end: u8, start: usize) -> Result<i64, Error> {
        let rest = &self.input[self.pos..];
        let Some(len) = rest.iter().position(|&b| b == end) else {
            // Report the first non-digit if there is one, else the end of input.
            return match rest
                .iter()
                .position(|&b| !(b.is_ascii_digit() || b == b'-'))
            {
                Some(i) => Err(Error::UnexpectedByte {
                    offset: self.pos + i,
                    byte: rest[i],
                }),
                None => Err(Error::UnexpectedEof {
                    offset: self.input.len(),
                }),
            };
        };
        let digits = &rest[..len];
        let value = parse_int(digits).ok_or(Error::InvalidInteger { offset: start })?;
        self.pos += len + 1;
        Ok(value)
    }

    fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let start = self.pos;
        let len = self.integer(b':', start)?;
        let len = usize::try_from(len).map_err(|_| Error::InvalidInteger { offset: start })?;
        let available = self.input.len() - self.pos;
        if len > available {
            return Err(Error::StringTooLong {
                offset: start,
                len,
                available,
            });
        }
        let b = &self.input[self.pos..self.pos + len];
        self.pos += len;
        Ok(b)
    }
}

/// Strict decimal: no leading zeros, no `-0`, no empty, no overflow.
pub(crate) fn parse_int(digits: &[u8]) -> Option<i64> {
    let (neg, body) = match digits.split_first() {
        Some((b'-', body)) => (true, body),
        _ => (false, digits),
    };
    if body.is_empty() || (body[0] == b'0' && (body.len() > 1 || neg)) {
        return None;
    }
    let mut acc: i64 = 0;
    for &b in body {
        if !b.is_ascii_digit() {
            return None;
        }
        let d = i64::from(b - b'0');
        acc = acc.checked_mul(10)?;
        acc = if neg {
            acc.checked_sub(d)?
        } else {
            acc.checked_add(d)?
        };
    }
    Some(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_scalars() {
        assert_eq!(decode(b"i42e").unwrap().as_int(), Some(42));
        assert_eq!(decode(b"i-7e").unwrap().as_int(), Some(-7));
        assert_eq!(decode(b"i0e").unwrap().as_int(), Some(0));
        assert_eq!(decode(b"4:spam").unwrap().as_bytes(), Some(&b"spam"[..]));
        assert_eq!(decode(b"0:").unwrap().as_bytes(), Some(&b""[..]));
        assert_eq!(
            decode(b"i9223372036854775807e").unwrap().as_int(),
            Some(i64::MAX)
        );
        assert_eq!(
            decode(b"i-9223372036854775808e").unwrap().as_int(),
            Some(i64::MIN)
        );
    }

    #[test]
    fn rejects_bad_integers_with_offsets() {
        for bad in [
            &b"i-0e"[..],
            b"i03e",
            b"ie",
            b"i-e",
            b"i1-2e",
            b"i9223372036854775808e",
        ] {
            assert_eq!(
                decode(bad),
                Err(Error::InvalidInteger { offset: 0 }),
                "{bad:?}"
            );
        }
        assert_eq!(decode(b"i12"), Err(Error::UnexpectedEof { offset: 3 }));
        assert_eq!(decode(b"li1xe"), Err(Error::InvalidInteger { offset: 1 }));
        assert_eq!(decode(b"01:a"), Err(Error::InvalidInteger { offset: 0 }));
    }

    #[test]
    fn keeps_spans_of_nested_values() {
        let input = b"d4:infod6:lengthi5e4:name1:xe3:zzzi1ee";
        let v = decode(input).unwrap();
        let info = v.get(b"info").unwrap();
        assert_eq!(info.raw(), b"d6:lengthi5e4:name1:xe");
        assert_eq!(info.span(), 7..29);
        assert_eq!(&input[info.span()], info.raw());
        assert_eq!(info.get_int(b"length"), Some(5));
        assert_eq!(info.get_bytes(b"name"), Some(&b"x"[..]));
        assert_eq!(v.raw(), &input[..]);
    }

    #[test]
    fn unsorted_keys_accepted_unless_strict_duplicates_never() {
        let unsorted = b"d1:bi1e1:ai2ee";
        assert!(decode(unsorted).is_ok());
        let strict = Limits {
            strict: true,
            ..Limits::default()
        };
        assert_eq!(
            decode_with(unsorted, strict),
            Err(Error::KeyOrder { offset: 7 })
        );
        assert_eq!(
            decode(b"d1:ai1e1:ai2ee"),
            Err(Error::KeyOrder { offset: 7 })
        );
        assert_eq!(decode(b"di1ei2ee"), Err(Error::KeyNotString { offset: 1 }));
    }

    #[test]
    fn string_length_checked_before_slicing() {
        assert_eq!(
            decode(b"5:abc"),
            Err(Error::StringTooLong {
                offset: 0,
                len: 5,
                available: 3
            })
        );
        assert!(matches!(
            decode(b"99999999999999999999999:a"),
            Err(Error::InvalidInteger { offset: 0 })
        ));
    }

    #[test]
    fn limits_depth_size_and_count() {
        let deep = [b"l".repeat(100), b"e".repeat(100)].concat();
        assert_eq!(
            decode(&deep),
            Err(Error::TooDeep {
                offset: 64,
                max: 64
            })
        );
        let small = Limits {
            max_size: 3,
            ..Limits::default()
        };
        assert_eq!(
            decode_with(b"4:spam", small),
            Err(Error::TooLarge { len: 6, max: 3 })
        );
        let few = Limits {
            max_values: 3,
            ..Limits::default()
        };
        assert_eq!(
            decode_with(b"li1ei2ei3ee", few),
            Err(Error::TooManyValues { offset: 7, max: 3 })
        );
    }

    #[test]
    fn trailing_data_and_prefix() {
        assert_eq!(decode(b"i1ei2e"), Err(Error::TrailingData { offset: 3 }));
        let (v, used) = decode_prefix(b"d1:ai1eeRAW", Limits::default()).unwrap();
        assert_eq!(used, 8);
        assert_eq!(v.get_int(b"a"), Some(1));
    }

    #[test]
    fn empty_and_garbage() {
        assert_eq!(decode(b""), Err(Error::UnexpectedEof { offset: 0 }));
        assert_eq!(
            decode(b"x"),
            Err(Error::UnexpectedByte {
                offset: 0,
                byte: b'x'
            })
        );
        assert_eq!(decode(b"l"), Err(Error::UnexpectedEof { offset: 1 }));
        assert_eq!(decode(b"d1:a"), Err(Error::UnexpectedEof { offset: 4 }));
    }
}
