//! Datagram → [`Message`], read in place from the checked bytes.
//!
//! The datagram is first checked whole by [`scan_with`] under the same [`Limits`] as the
//! bencode tree decoder (so the same bencode errors, at the same offsets), then each dict
//! that matters (the top level, `a`, `r`) is walked once, keeping the first value of every
//! key we read in a fixed table of slots. No tree is built: a datagram costs no allocation
//! but the message's own lists (`nodes`, `values`, `samples`...), each sized once. The
//! checks then run in the order the tree-based decoder ran them, so a datagram gets the same
//! message or the same [`Error`] (`tests/proptests.rs` holds the two decoders together).

use estudely_bencode::{scan_with, Limits, RawValue};

use crate::compact::{decode_peer, extend_nodes};
use crate::{
    Body, Error, ErrorMsg, InfoHash, Message, NodeId, Query, Response, Token, TransactionId,
    Version, Want, MAX_DATAGRAM,
};

/// Bencode limits for one datagram: small, shallow, few values.
const LIMITS: Limits = Limits {
    max_depth: 8,
    max_size: MAX_DATAGRAM,
    max_values: 1024,
    strict: false,
};

/// Keys read at the top level.
const TOP: &[&str] = &["t", "v", "ip", "ro", "y", "q", "a", "r", "e"];
/// Keys read in a query's `a`.
const ARGS: &[&str] = &[
    "id",
    "target",
    "info_hash",
    "want",
    "noseed",
    "scrape",
    "implied_port",
    "port",
    "token",
    "seed",
];
/// Keys read in a response's `r` (an error's `r` uses `id` and `p`).
const REPLY: &[&str] = &[
    "id", "nodes", "nodes6", "values", "token", "samples", "interval", "num", "BFsd", "BFpe", "p",
];
/// Room for the longest of the key lists above.
const SLOTS: usize = 11;

/// The first value of each key of interest in one dict, found in one pass over it.
struct Fields<'a> {
    keys: &'static [&'static str],
    values: [Option<RawValue<'a>>; SLOTS],
}

impl<'a> Fields<'a> {
    /// Walk `dict` once (`None` if it is not a dict). Like the tree decoder's lookup, the
    /// first of repeated keys wins.
    fn read(dict: RawValue<'a>, keys: &'static [&'static str]) -> Option<Self> {
        debug_assert!(keys.len() <= SLOTS);
        let mut f = Fields {
            keys,
            values: [None; SLOTS],
        };
        for (k, v) in dict.dict()? {
            if let Some(i) = keys.iter().position(|key| key.as_bytes() == k) {
                if let Some(slot) = f.values.get_mut(i) {
                    slot.get_or_insert(v);
                }
            }
        }
        Some(f)
    }

    /// The value under `key`, which must be one of the keys read.
    fn get(&self, key: &str) -> Option<RawValue<'a>> {
        let i = self.keys.iter().position(|k| *k == key);
        debug_assert!(i.is_some(), "`{key}` is not read");
        *self.values.get(i?)?
    }
}

impl Message {
    /// Decode one datagram.
    pub fn decode(bytes: &[u8]) -> Result<Message, Error> {
        Message::decode_reusing(bytes, &mut Response::default())
    }

    /// [`Message::decode`], but a response takes its lists (`nodes`, `nodes6`, `values`,
    /// `samples`) from `spare`, emptied, so that their room is reused: a caller that hands
    /// each handled reply's lists back decodes replies without allocating. The message is
    /// the same as [`Message::decode`]'s; `spare` is left with the lists not taken.
    pub fn decode_reusing(bytes: &[u8], spare: &mut Response) -> Result<Message, Error> {
        if bytes.len() > MAX_DATAGRAM {
            return Err(Error::TooLarge {
                len: bytes.len(),
                max: MAX_DATAGRAM,
            });
        }
        let root = scan_with(bytes, LIMITS)?;
        let top = Fields::read(root, TOP).ok_or(Error::NotADict)?;
        let tid = TransactionId::new(bytes_of(&top, "t")?)?;
        let version = top
            .get("v")
            .and_then(|v| v.as_bytes())
            .and_then(|v| Version::new(v).ok());
        let ip = match top.get("ip").and_then(|v| v.as_bytes()) {
            Some(b) => Some(decode_peer("ip", b)?),
            None => None,
        };
        let read_only = top.get("ro").and_then(|v| v.as_int()) == Some(1);
        let body = match bytes_of(&top, "y")? {
            b"q" => Body::Query(query(&top)?),
            b"r" => Body::Response(response(&dict_of(&top, "r", REPLY)?, spare)?),
            b"e" => Body::Error(error(&top)?),
            _ => return Err(Error::UnknownType),
        };
        Ok(Message {
            tid,
            version,
            ip,
            read_only,
            body,
        })
    }

    /// Best-effort transaction id and whether the datagram claims to be a query, for replying
    /// with a protocol error (203) to a query we could not decode.
    pub fn salvage_query_tid(bytes: &[u8]) -> Option<TransactionId> {
        let root = scan_with(bytes, LIMITS).ok()?;
        if root.get(b"y")?.as_bytes()? != b"q" {
            return None;
        }
        TransactionId::new(root.get(b"t")?.as_bytes()?).ok()
    }
}

fn query(top: &Fields<'_>) -> Result<Query, Error> {
    let method = bytes_of(top, "q")?;
    let a = dict_of(top, "a", ARGS)?;
    let id = NodeId::from_slice("id", bytes_of(&a, "id")?)?;
    Ok(match method {
        b"ping" => Query::Ping { id },
        b"find_node" => Query::FindNode {
            id,
            target: NodeId::from_slice("target", bytes_of(&a, "target")?)?,
            want: want(&a)?,
        },
        b"get_peers" => Query::GetPeers {
            id,
            info_hash: InfoHash::from_slice("info_hash", bytes_of(&a, "info_hash")?)?,
            want: want(&a)?,
            noseed: flag(&a, "noseed")?,
            scrape: flag(&a, "scrape")?,
        },
        b"announce_peer" => {
            let implied_port = flag(&a, "implied_port")?;
            let port = match (a.get("port"), implied_port) {
                (None, true) => 0,
                _ => port(int_of(&a, "port")?)?,
            };
            Query::AnnouncePeer {
                id,
                info_hash: InfoHash::from_slice("info_hash", bytes_of(&a, "info_hash")?)?,
                port,
                implied_port,
                token: Token::new(bytes_of(&a, "token")?)?,
                seed: flag(&a, "seed")?,
            }
        }
        b"sample_infohashes" => Query::SampleInfohashes {
            id,
            target: NodeId::from_slice("target", bytes_of(&a, "target")?)?,
            want: want(&a)?,
        },
        other => Query::Unknown {
            id,
            method: other[..other.len().min(64)].to_vec(),
        },
    })
}

fn response(r: &Fields<'_>, spare: &mut Response) -> Result<Response, Error> {
    let mut resp = Response {
        id: NodeId::from_slice("id", bytes_of(r, "id")?)?,
        nodes: take_empty(&mut spare.nodes),
        nodes6: take_empty(&mut spare.nodes6),
        values: take_empty(&mut spare.values),
        samples: take_empty(&mut spare.samples),
        ..Response::default()
    };
    if let Some(b) = opt_bytes(r, "nodes")? {
        extend_nodes(b, false, &mut resp.nodes)?;
    }
    if let Some(b) = opt_bytes(r, "nodes6")? {
        extend_nodes(b, true, &mut resp.nodes6)?;
    }
    if let Some(v) = r.get("values") {
        let list = v.list().ok_or(Error::WrongType { key: "values" })?;
        // Counted first, so the list takes at most one allocation (the count is bounded by
        // the datagram: at most `LIMITS.max_values`).
        resp.values.reserve(list.clone().count());
        for p in list {
            let b = p.as_bytes().ok_or(Error::WrongType { key: "values" })?;
            resp.values.push(decode_peer("values", b)?);
        }
    }
    if let Some(b) = opt_bytes(r, "token")? {
        resp.token = Some(Token::new(b)?);
    }
    if let Some(b) = opt_bytes(r, "samples")? {
        if !b.len().is_multiple_of(20) {
            return Err(Error::BadLength {
                key: "samples",
                len: b.len(),
                expected: "a multiple of 20",
            });
        }
        resp.samples.reserve(b.len() / 20);
        for c in b.chunks_exact(20) {
            resp.samples.push(InfoHash::from_slice("samples", c)?);
        }
    }
    resp.interval = opt_u32(r, "interval")?;
    resp.num = opt_u32(r, "num")?;
    resp.bf_seeds = opt_bloom(r, "BFsd")?;
    resp.bf_peers = opt_bloom(r, "BFpe")?;
    resp.reflected_port = opt_port(r, "p")?;
    Ok(resp)
}

/// `list`'s room, emptied; `list` is left without any.
fn take_empty<T>(list: &mut Vec<T>) -> Vec<T> {
    let mut l = std::mem::take(list);
    l.clear();
    l
}

/// Longest error message kept, in bytes of UTF-8.
const MAX_ERROR_MESSAGE: usize = 256;

fn error(top: &Fields<'_>) -> Result<ErrorMsg, Error> {
    let mut e = top
        .get("e")
        .ok_or(Error::Missing { key: "e" })?
        .list()
        .ok_or(Error::WrongType { key: "e" })?;
    let code = e
        .next()
        .and_then(|v| v.as_int())
        .ok_or(Error::WrongType { key: "e" })?;
    let message = e
        .next()
        .and_then(|v| v.as_bytes())
        .map(|m| {
            // At most 256 bytes, also after invalid bytes became U+FFFD (3 bytes each), so
            // that what we decode re-encodes to what decodes the same.
            let mut s = String::from_utf8_lossy(&m[..m.len().min(MAX_ERROR_MESSAGE)]).into_owned();
            let mut end = s.len().min(MAX_ERROR_MESSAGE);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
            s
        })
        .unwrap_or_default();
    // libtorrent's extra `r` on errors: tolerated, kept when well-formed, never required.
    let r = top.get("r").and_then(|r| Fields::read(r, REPLY));
    let id = r
        .as_ref()
        .and_then(|r| r.get("id"))
        .and_then(|v| v.as_bytes())
        .and_then(|b| NodeId::from_slice("id", b).ok());
    let reflected_port = match (&r, id) {
        (Some(r), Some(_)) => opt_port(r, "p").ok().flatten(),
        _ => None,
    };
    Ok(ErrorMsg {
        code,
        message,
        id,
        reflected_port,
    })
}

fn want(a: &Fields<'_>) -> Result<Want, Error> {
    let mut w = Want::default();
    if let Some(v) = a.get("want") {
        for item in v.list().ok_or(Error::WrongType { key: "want" })? {
            match item.as_bytes() {
                Some(b"n4") => w.v4 = true,
                Some(b"n6") => w.v6 = true,
                Some(_) => {}
                None => return Err(Error::WrongType { key: "want" }),
            }
        }
    }
    Ok(w)
}

/// The dict under `key` of `v`, with `keys` read.
fn dict_of<'a>(
    v: &Fields<'a>,
    key: &'static str,
    keys: &'static [&'static str],
) -> Result<Fields<'a>, Error> {
    let d = v.get(key).ok_or(Error::Missing { key })?;
    Fields::read(d, keys).ok_or(Error::WrongType { key })
}

fn bytes_of<'a>(v: &Fields<'a>, key: &'static str) -> Result<&'a [u8], Error> {
    opt_bytes(v, key)?.ok_or(Error::Missing { key })
}

fn opt_bytes<'a>(v: &Fields<'a>, key: &'static str) -> Result<Option<&'a [u8]>, Error> {
    match v.get(key) {
        None => Ok(None),
        Some(x) => x.as_bytes().map(Some).ok_or(Error::WrongType { key }),
    }
}

fn int_of(v: &Fields<'_>, key: &'static str) -> Result<i64, Error> {
    v.get(key)
        .ok_or(Error::Missing { key })?
        .as_int()
        .ok_or(Error::WrongType { key })
}

fn opt_u32(v: &Fields<'_>, key: &'static str) -> Result<Option<u32>, Error> {
    match v.get(key) {
        None => Ok(None),
        Some(x) => {
            let i = x.as_int().ok_or(Error::WrongType { key })?;
            u32::try_from(i)
                .map(Some)
                .map_err(|_| Error::OutOfRange { key, value: i })
        }
    }
}

/// A boolean flag: absent or 0 is false, any other integer is true.
fn flag(v: &Fields<'_>, key: &'static str) -> Result<bool, Error> {
    match v.get(key) {
        None => Ok(false),
        Some(x) => Ok(x.as_int().ok_or(Error::WrongType { key })? != 0),
    }
}

fn port(i: i64) -> Result<u16, Error> {
    u16::try_from(i).map_err(|_| Error::OutOfRange {
        key: "port",
        value: i,
    })
}

fn opt_port(v: &Fields<'_>, key: &'static str) -> Result<Option<u16>, Error> {
    match v.get(key) {
        None => Ok(None),
        Some(x) => {
            let i = x.as_int().ok_or(Error::WrongType { key })?;
            u16::try_from(i)
                .map(Some)
                .map_err(|_| Error::OutOfRange { key, value: i })
        }
    }
}

fn opt_bloom(v: &Fields<'_>, key: &'static str) -> Result<Option<Box<[u8; 256]>>, Error> {
    match opt_bytes(v, key)? {
        None => Ok(None),
        Some(b) => <[u8; 256]>::try_from(b)
            .map(|a| Some(Box::new(a)))
            .map_err(|_| Error::BadLength {
                key,
                len: b.len(),
                expected: "256",
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_of_repeated_keys_wins_and_unread_keys_are_skipped() {
        // `t` twice (not adjacent, so bencode accepts it), an unknown key with a nested
        // value in between: the first `t` is the one kept.
        let m = Message::decode(
            b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:xy1:zld1:ai1eee1:t2:zz1:y1:qe",
        );
        // Keys are not adjacent duplicates here: `t` ... `z` ... `t`.
        let m = m.unwrap();
        assert_eq!(m.tid.as_bytes(), b"xy");
        assert!(matches!(m.body, Body::Query(Query::Ping { .. })));
    }

    #[test]
    fn decoding_into_spare_lists_gives_the_same_message_and_reuses_them() {
        let reply = b"d1:rd2:id20:aaaaaaaaaaaaaaaaaaaa5:nodes26:bbbbbbbbbbbbbbbbbbbbcccccc6:valuesl6:dddddd6:eeeeeeee1:t2:xy1:y1:re";
        let fresh = Message::decode(reply).unwrap();
        let Body::Response(r) = &fresh.body else {
            panic!("a response")
        };
        assert_eq!((r.nodes.len(), r.values.len()), (1, 2));
        let mut spare = Response {
            nodes6: vec![r.nodes[0]; 40],
            values: Vec::with_capacity(64),
            samples: vec![InfoHash([7; 20]); 3],
            ..Response::default()
        };
        let values_at = spare.values.as_ptr();
        let m = Message::decode_reusing(reply, &mut spare).unwrap();
        assert_eq!(m, fresh, "stale items never leak in");
        let Body::Response(r) = m.body else {
            panic!("a response")
        };
        assert_eq!(r.values.as_ptr(), values_at, "the spare list's room");
        assert!(r.nodes6.is_empty() && r.nodes6.capacity() >= 40);
        assert_eq!(spare, Response::default(), "every list was taken");
    }

    #[test]
    fn errors_are_reported_in_the_same_order_as_before() {
        // Bencode errors first, with their offsets.
        assert!(matches!(
            Message::decode(b"d1:t2:aa1:y1:q"),
            Err(Error::Bencode(_))
        ));
        assert_eq!(Message::decode(b"li1ee"), Err(Error::NotADict));
        assert_eq!(
            Message::decode(b"d1:y1:qe"),
            Err(Error::Missing { key: "t" })
        );
        assert_eq!(
            Message::decode(b"d1:ti1e1:y1:qe"),
            Err(Error::WrongType { key: "t" })
        );
        assert_eq!(Message::decode(b"d1:t2:aa1:y1:xe"), Err(Error::UnknownType));
        assert_eq!(
            Message::decode(b"d1:q4:ping1:t2:aa1:y1:qe"),
            Err(Error::Missing { key: "a" })
        );
        assert_eq!(
            Message::decode(b"d1:r2:xx1:t2:aa1:y1:re"),
            Err(Error::WrongType { key: "r" })
        );
    }
}
