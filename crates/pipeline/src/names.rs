//! Torrent names in CSV files: the visible and reversible escaping of the raw name bytes
//! that every CSV `name` column uses ([`csv_name`]), and its inverse
//! ([`csv_name_unescape`]).

use std::fmt::Write as _;

/// A torrent name's raw bytes as the `name` column of every CSV we write (`metadata`,
/// `collect`, `demo`): a visible and reversible escaping.
///
/// The bytes are decoded as UTF-8 where valid. Then:
///
/// * a byte that is not part of valid UTF-8 is written `\xHH` (two lower-case hex digits);
/// * a C0 control character (U+0000 to U+001F) or DEL (U+007F) is written `\xHH` too
///   (`\x00`, `\x0a`, `\x7f`);
/// * a C1 control character (U+0080 to U+009F) is written `\uHHHH` (`\u0085`);
/// * a backslash is written `\\`;
/// * everything else (commas, quotes, letters of any script, emoji) is written as is; the
///   CSV writer quotes the field when it needs to.
///
/// `\xHH` below `\x80` is therefore always a control character and `\x80` and above always
/// a raw byte that was not UTF-8, so [`csv_name_unescape`] gives back the exact bytes.
pub fn csv_name(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\0'..='\x1f' | '\x7f' => {
                    let _ = write!(out, "\\x{:02x}", u32::from(c));
                }
                '\u{80}'..='\u{9f}' => {
                    let _ = write!(out, "\\u{:04x}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// The raw name bytes of a CSV `name` field written by [`csv_name`]: `\\` is a backslash,
/// `\xHH` the byte `HH`, `\uHHHH` the UTF-8 encoding of U+HHHH, anything else itself.
/// `None` if `s` has a backslash not followed by one of those.
///
/// The same in Python, for people loading our CSVs (`name` a `str`, the result `bytes`):
///
/// ```text
/// re.sub(rb'\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4})', lambda m: b'\\' if m[1] == b'\\' else
///        bytes([int(m[1][1:], 16)]) if m[1][:1] == b'x' else chr(int(m[1][1:], 16)).encode(),
///        name.encode())
/// ```
pub fn csv_name_unescape(s: &str) -> Option<Vec<u8>> {
    fn hex(s: &str, digits: usize) -> Option<u32> {
        let h = s.get(..digits)?;
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(h, 16).ok()
    }
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('\\') {
        out.extend_from_slice(&rest.as_bytes()[..at]);
        let esc = &rest[at + 1..];
        let used = match esc.as_bytes().first()? {
            b'\\' => {
                out.push(b'\\');
                1
            }
            b'x' => {
                out.push(u8::try_from(hex(&esc[1..], 2)?).ok()?);
                3
            }
            b'u' => {
                let c = char::from_u32(hex(&esc[1..], 4)?)?;
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                5
            }
            _ => return None,
        };
        rest = &esc[used..];
    }
    out.extend_from_slice(rest.as_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_names() {
        let cases: [(&[u8], &str); 9] = [
            (b"plain name.bin", "plain name.bin"),
            (b"a,\"quoted\"", "a,\"quoted\""),
            ("caf\u{e9} \u{1f600}".as_bytes(), "caf\u{e9} \u{1f600}"),
            (
                b"tab\there\nnul\0del\x7f",
                "tab\\x09here\\x0anul\\x00del\\x7f",
            ),
            (b"back\\slash", "back\\\\slash"),
            (b"\xff\xfe latin-1 \xe9", "\\xff\\xfe latin-1 \\xe9"),
            ("c1 \u{85}\u{9f}".as_bytes(), "c1 \\u0085\\u009f"),
            (b"cut \xe2\x82", "cut \\xe2\\x82"),
            (b"\\x41", "\\\\x41"),
        ];
        for (raw, want) in cases {
            assert_eq!(csv_name(raw), want, "{raw:?}");
            assert_eq!(csv_name_unescape(want).as_deref(), Some(raw), "{want:?}");
        }
        for bad in ["\\", "\\q", "\\x4", "\\xzz", "\\u12", "\\ud800", "\\x+f"] {
            assert_eq!(csv_name_unescape(bad), None, "{bad:?}");
        }
    }

    /// The escaping is reversible and its output has no control character (so no line
    /// break), for every input.
    fn check_round_trip(raw: &[u8]) {
        let name = csv_name(raw);
        assert!(!name.chars().any(char::is_control), "{raw:?} -> {name:?}");
        assert_eq!(csv_name_unescape(&name).as_deref(), Some(raw), "{name:?}");
        if let Ok(s) = std::str::from_utf8(raw) {
            if !s.chars().any(|c| c.is_control() || c == '\\') {
                assert_eq!(name, s, "clean UTF-8 is kept as is");
            }
        }
    }

    #[test]
    fn csv_name_round_trips_every_short_input() {
        check_round_trip(b"");
        for a in 0..=255u8 {
            check_round_trip(&[a]);
            for b in 0..=255u8 {
                check_round_trip(&[a, b]);
            }
        }
    }

    #[test]
    fn csv_name_round_trips_random_inputs() {
        use rand::{Rng as _, SeedableRng as _};
        // Pieces that exercise every rule and their boundaries.
        const PIECES: [&[u8]; 16] = [
            b"a",
            b",",
            b"\"",
            b"\\",
            b"x",
            b"u",
            b"\0",
            b"\n",
            b"\x1f",
            b"\x7f",
            "\u{80}".as_bytes(),
            "\u{9f}".as_bytes(),
            "\u{a0}\u{e9}".as_bytes(),
            "\u{1f600}".as_bytes(),
            b"\xe2\x82",
            b"\xff",
        ];
        let mut rng = rand::rngs::SmallRng::seed_from_u64(0x5eed);
        for _ in 0..20_000 {
            let len = rng.gen_range(0..24);
            let mut raw = Vec::new();
            for _ in 0..len {
                if rng.gen_bool(0.3) {
                    raw.push(rng.gen());
                } else {
                    raw.extend_from_slice(PIECES[rng.gen_range(0..PIECES.len())]);
                }
            }
            check_round_trip(&raw);
        }
    }
}
