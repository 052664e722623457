//! A search query that names one torrent: an infohash (40 hex digits, 32 base32 letters,
//! or a v2 one of 64 hex digits) or a magnet link holding one (`xt=urn:btih:` or
//! `xt=urn:btmh:1220`). Searches answer it with that torrent rather than with words.

use estudely_krpc::InfoHash;

/// The key of the torrent `query` names, if it names one: the v1 infohash, or the first 20
/// bytes of a v2 one (the key a v2 torrent is stored under).
pub fn key_in_query(query: &str) -> Option<InfoHash> {
    let q = query.trim();
    if let Some(params) = q
        .strip_prefix("magnet:?")
        .or_else(|| q.strip_prefix("MAGNET:?"))
    {
        return params.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            if !k.eq_ignore_ascii_case("xt") {
                return None;
            }
            let v = v.to_ascii_lowercase();
            if let Some(h) = v.strip_prefix("urn:btih:") {
                bare_key(h)
            } else {
                let h = v.strip_prefix("urn:btmh:1220")?;
                (h.len() == 64).then(|| bare_key(h)).flatten()
            }
        });
    }
    bare_key(q)
}

/// 40 or 64 hex digits, or 32 base32 letters.
fn bare_key(s: &str) -> Option<InfoHash> {
    let bytes = match s.len() {
        40 | 64 => hex::decode(s).ok()?,
        32 => base32(s)?,
        _ => return None,
    };
    let mut key = [0u8; 20];
    key.copy_from_slice(&bytes[..20]);
    Some(InfoHash(key))
}

/// RFC 4648 base32 without padding, any case (old magnet links): 32 letters, 20 bytes.
/// Twelve lines here rather than a crate for one alphabet.
fn base32(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(20);
    let (mut acc, mut bits) = (0u64, 0u32);
    for c in s.bytes() {
        let v = match c.to_ascii_uppercase() {
            b @ b'A'..=b'Z' => b - b'A',
            b @ b'2'..=b'7' => b - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    (out.len() == 20).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_every_spelling() {
        let hex = "c9e15763f722f23e98a29decdfae341b98d53056";
        let want = InfoHash(hex::decode(hex).unwrap().try_into().unwrap());
        assert_eq!(key_in_query(hex), Some(want));
        assert_eq!(
            key_in_query(&format!("  {}  ", hex.to_uppercase())),
            Some(want)
        );
        // The same key in base32.
        assert_eq!(key_in_query("ZHQVOY7XELZD5GFCTXWN7LRUDOMNKMCW"), Some(want));
        assert_eq!(key_in_query("zhqvoy7xelzd5gfctxwn7lrudomnkmcw"), Some(want));
        let magnet = format!("magnet:?dn=x&xt=urn:btih:{hex}&tr=udp://t");
        assert_eq!(key_in_query(&magnet), Some(want));
        let v2 = format!("{hex}{}", "00".repeat(12));
        assert_eq!(
            key_in_query(&v2),
            Some(want),
            "a v2 key: its first 20 bytes"
        );
        assert_eq!(
            key_in_query(&format!("magnet:?xt=urn:btmh:1220{v2}")),
            Some(want)
        );
    }

    #[test]
    fn words_are_not_keys() {
        for q in [
            "ubuntu",
            "",
            "c9e15763f722f23e98a29decdfae341b98d5305",
            "c9e15763f722f23e98a29decdfae341b98d5305g",
            "ZHQVOY7XELZD5GFCTXWN7LRUDOMNKMC1",
            "magnet:?xt=urn:btih:short",
            "magnet:?dn=only",
            "magnet:?xt=urn:btmh:1220abcd",
            "silent river season one complete",
        ] {
            assert_eq!(key_in_query(q), None, "{q:?}");
        }
    }
}
