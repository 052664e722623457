//! The KRPC decoder as it was before it read datagrams in place: a bounded bencode tree
//! first, then typed fields from it. Kept only as the reference the in-place decoder must
//! agree with (same message or same error on every input); see `proptests.rs`.
#![allow(dead_code)]

use estudely_bencode::{decode_with, Limits, Value};

use estudely_krpc::{decode_nodes4, decode_nodes6, decode_peer};
use estudely_krpc::{
    Body, Error, ErrorMsg, InfoHash, Message, NodeId, Query, Response, Token, TransactionId, Want,
    MAX_DATAGRAM,
};

/// Bencode limits for one datagram: small, shallow, few values.
const LIMITS: Limits = Limits {
    max_depth: 8,
    max_size: MAX_DATAGRAM,
    max_values: 1024,
    strict: false,
};

/// Decode one datagram.
pub fn decode(bytes: &[u8]) -> Result<Message, Error> {
    if bytes.len() > MAX_DATAGRAM {
        return Err(Error::TooLarge {
            len: bytes.len(),
            max: MAX_DATAGRAM,
        });
    }
    let root = decode_with(bytes, LIMITS)?;
    if root.as_dict().is_none() {
        return Err(Error::NotADict);
    }
    let tid = TransactionId::new(bytes_of(&root, "t")?)?;
    let version = root
        .get_bytes(b"v")
        .filter(|v| v.len() <= 32)
        // (Then a `Vec<u8>`; since an inline `Version`, the same bytes.)
        .and_then(|v| estudely_krpc::Version::new(v).ok());
    let ip = match root.get_bytes(b"ip") {
        Some(b) => Some(decode_peer("ip", b)?),
        None => None,
    };
    let read_only = root.get_int(b"ro") == Some(1);
    let body = match bytes_of(&root, "y")? {
        b"q" => Body::Query(query(&root)?),
        b"r" => Body::Response(response(dict_of(&root, "r")?)?),
        b"e" => Body::Error(error(&root)?),
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
    let root = decode_with(bytes, LIMITS).ok()?;
    if root.get_bytes(b"y")? != b"q" {
        return None;
    }
    TransactionId::new(root.get_bytes(b"t")?).ok()
}

fn query(root: &Value<'_>) -> Result<Query, Error> {
    let method = bytes_of(root, "q")?;
    let a = dict_of(root, "a")?;
    let id = NodeId::from_slice("id", bytes_of(a, "id")?)?;
    Ok(match method {
        b"ping" => Query::Ping { id },
        b"find_node" => Query::FindNode {
            id,
            target: NodeId::from_slice("target", bytes_of(a, "target")?)?,
            want: want(a)?,
        },
        b"get_peers" => Query::GetPeers {
            id,
            info_hash: InfoHash::from_slice("info_hash", bytes_of(a, "info_hash")?)?,
            want: want(a)?,
            noseed: flag(a, "noseed")?,
            scrape: flag(a, "scrape")?,
        },
        b"announce_peer" => {
            let implied_port = flag(a, "implied_port")?;
            let port = match (a.get(b"port"), implied_port) {
                (None, true) => 0,
                _ => port(int_of(a, "port")?)?,
            };
            Query::AnnouncePeer {
                id,
                info_hash: InfoHash::from_slice("info_hash", bytes_of(a, "info_hash")?)?,
                port,
                implied_port,
                token: Token::new(bytes_of(a, "token")?)?,
                seed: flag(a, "seed")?,
            }
        }
        b"sample_infohashes" => Query::SampleInfohashes {
            id,
            target: NodeId::from_slice("target", bytes_of(a, "target")?)?,
            want: want(a)?,
        },
        other => Query::Unknown {
            id,
            method: other[..other.len().min(64)].to_vec(),
        },
    })
}

fn response(r: &Value<'_>) -> Result<Response, Error> {
    let mut resp = Response {
        id: NodeId::from_slice("id", bytes_of(r, "id")?)?,
        ..Response::default()
    };
    if let Some(b) = opt_bytes(r, "nodes")? {
        resp.nodes = decode_nodes4(b)?;
    }
    if let Some(b) = opt_bytes(r, "nodes6")? {
        resp.nodes6 = decode_nodes6(b)?;
    }
    if let Some(v) = r.get(b"values") {
        let list = v.as_list().ok_or(Error::WrongType { key: "values" })?;
        resp.values = list
            .iter()
            .map(|p| {
                decode_peer(
                    "values",
                    p.as_bytes().ok_or(Error::WrongType { key: "values" })?,
                )
            })
            .collect::<Result<_, _>>()?;
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
        resp.samples = b
            .chunks_exact(20)
            .map(|c| InfoHash::from_slice("samples", c))
            .collect::<Result<_, _>>()?;
    }
    resp.interval = opt_u32(r, "interval")?;
    resp.num = opt_u32(r, "num")?;
    resp.bf_seeds = opt_bloom(r, "BFsd")?;
    resp.bf_peers = opt_bloom(r, "BFpe")?;
    resp.reflected_port = opt_port(r, "p")?;
    Ok(resp)
}

/// Longest error message kept, in bytes of UTF-8.
const MAX_ERROR_MESSAGE: usize = 256;

fn error(root: &Value<'_>) -> Result<ErrorMsg, Error> {
    let e = root
        .get(b"e")
        .ok_or(Error::Missing { key: "e" })?
        .as_list()
        .ok_or(Error::WrongType { key: "e" })?;
    let code = e
        .first()
        .and_then(Value::as_int)
        .ok_or(Error::WrongType { key: "e" })?;
    let message = e
        .get(1)
        .and_then(Value::as_bytes)
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
    let r = root.get(b"r").filter(|r| r.as_dict().is_some());
    let id = r
        .and_then(|r| r.get_bytes(b"id"))
        .and_then(|b| NodeId::from_slice("id", b).ok());
    let reflected_port = match (r, id) {
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

fn want(a: &Value<'_>) -> Result<Want, Error> {
    let mut w = Want::default();
    if let Some(v) = a.get(b"want") {
        for item in v.as_list().ok_or(Error::WrongType { key: "want" })? {
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

fn dict_of<'v, 'a>(v: &'v Value<'a>, key: &'static str) -> Result<&'v Value<'a>, Error> {
    let d = v.get(key.as_bytes()).ok_or(Error::Missing { key })?;
    d.as_dict().ok_or(Error::WrongType { key })?;
    Ok(d)
}

fn bytes_of<'a>(v: &Value<'a>, key: &'static str) -> Result<&'a [u8], Error> {
    opt_bytes(v, key)?.ok_or(Error::Missing { key })
}

fn opt_bytes<'a>(v: &Value<'a>, key: &'static str) -> Result<Option<&'a [u8]>, Error> {
    match v.get(key.as_bytes()) {
        None => Ok(None),
        Some(x) => x.as_bytes().map(Some).ok_or(Error::WrongType { key }),
    }
}

fn int_of(v: &Value<'_>, key: &'static str) -> Result<i64, Error> {
    v.get(key.as_bytes())
        .ok_or(Error::Missing { key })?
        .as_int()
        .ok_or(Error::WrongType { key })
}

fn opt_u32(v: &Value<'_>, key: &'static str) -> Result<Option<u32>, Error> {
    match v.get(key.as_bytes()) {
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
fn flag(v: &Value<'_>, key: &'static str) -> Result<bool, Error> {
    match v.get(key.as_bytes()) {
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

fn opt_port(v: &Value<'_>, key: &'static str) -> Result<Option<u16>, Error> {
    match v.get(key.as_bytes()) {
        None => Ok(None),
        Some(x) => {
            let i = x.as_int().ok_or(Error::WrongType { key })?;
            u16::try_from(i)
                .map(Some)
                .map_err(|_| Error::OutOfRange { key, value: i })
        }
    }
}

fn opt_bloom(v: &Value<'_>, key: &'static str) -> Result<Option<Box<[u8; 256]>>, Error> {
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
