//! BEP 10 extended handshake and BEP 9 `ut_metadata` messages (payloads of
//! [`Message::Extended`](crate::Message::Extended), without the framing).
//!
//! Decoding is lenient where BEP 10 asks it to be: unknown keys are ignored, and an optional
//! field of the wrong type or out of range reads as absent.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use estudely_bencode::{Encoder, Limits, OwnedValue, Value};

use crate::WireError;

/// Extended message id of the extended handshake itself.
pub const EXT_HANDSHAKE_ID: u8 = 0;

/// Bounds for the small dicts of extension messages.
const LIMITS: Limits = Limits {
    max_depth: 16,
    max_size: 64 << 20,
    max_values: 100_000,
    strict: false,
};

/// The BEP 10 extended handshake (the fields we use).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtHandshake {
    /// The sender's id for `ut_metadata` (`m.ut_metadata`; 0 or absent means unsupported).
    pub ut_metadata: Option<u8>,
    /// Size of the info dict in bytes (BEP 9 `metadata_size`); `None` if absent or negative.
    pub metadata_size: Option<u64>,
    /// Client name and version (`v`), lossily decoded as UTF-8.
    pub client: Option<String>,
    /// Outstanding requests the sender accepts (`reqq`).
    pub reqq: Option<u32>,
    /// The sender's listen port (`p`).
    pub listen_port: Option<u16>,
    /// Our address as the sender sees it (`yourip`, 4 or 16 bytes).
    pub your_ip: Option<IpAddr>,
}

impl ExtHandshake {
    /// Decode the payload of an extended message with id 0. Trailing bytes are ignored.
    pub fn decode(payload: &[u8]) -> Result<ExtHandshake, WireError> {
        let (dict, _) = estudely_bencode::decode_prefix(payload, LIMITS)?;
        if dict.as_dict().is_none() {
            return Err(WireError::NotADict {
                what: "extended handshake",
            });
        }
        let int = |key: &[u8]| dict.get_int(key);
        Ok(ExtHandshake {
            ut_metadata: dict
                .get(b"m")
                .and_then(|m| m.get_int(b"ut_metadata"))
                .and_then(|id| u8::try_from(id).ok())
                .filter(|&id| id != 0),
            metadata_size: int(b"metadata_size").and_then(|n| u64::try_from(n).ok()),
            client: dict
                .get_bytes(b"v")
                .map(|v| String::from_utf8_lossy(v).into_owned()),
            reqq: int(b"reqq").and_then(|n| u32::try_from(n).ok()),
            listen_port: int(b"p")
                .and_then(|n| u16::try_from(n).ok())
                .filter(|&p| p != 0),
            your_ip: dict.get_bytes(b"yourip").and_then(ip_from_bytes),
        })
    }

    /// The bencoded dict (canonical), to send as extended message 0.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut m = OwnedValue::dict();
        if let Some(id) = self.ut_metadata {
            m.insert(b"ut_metadata", i64::from(id));
        }
        let mut d = OwnedValue::dict();
        d.insert(b"m", m);
        if let Some(size) = self.metadata_size.and_then(|s| i64::try_from(s).ok()) {
            d.insert(b"metadata_size", size);
        }
        if let Some(v) = &self.client {
            d.insert(b"v", v.as_str());
        }
        if let Some(n) = self.reqq {
            d.insert(b"reqq", i64::from(n));
        }
        if let Some(p) = self.listen_port {
            d.insert(b"p", i64::from(p));
        }
        if let Some(ip) = self.your_ip {
            let bytes = match ip {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            };
            d.insert(b"yourip", bytes);
        }
        d.to_bytes()
    }
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(b) {
        Some(IpAddr::V4(Ipv4Addr::from(v4)))
    } else {
        <[u8; 16]>::try_from(b)
            .ok()
            .map(|v6| IpAddr::V6(Ipv6Addr::from(v6)))
    }
}

/// A BEP 9 `ut_metadata` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataMsg<'a> {
    /// `msg_type` 0: please send this piece.
    Request {
        /// Piece index.
        piece: u32,
    },
    /// `msg_type` 1: a piece; the raw bytes follow the bencoded dict.
    Data {
        /// Piece index.
        piece: u32,
        /// Size of the whole info dict.
        total_size: u64,
        /// The piece's bytes.
        data: &'a [u8],
    },
    /// `msg_type` 2: the sender will not send this piece.
    Reject {
        /// Piece index.
        piece: u32,
    },
}

impl<'a> MetadataMsg<'a> {
    /// Decode a `ut_metadata` payload. `Ok(None)` is an unknown `msg_type`, which BEP 9 says
    /// to ignore.
    pub fn decode(payload: &'a [u8]) -> Result<Option<MetadataMsg<'a>>, WireError> {
        let (dict, used) = estudely_bencode::decode_prefix(payload, LIMITS)?;
        if dict.as_dict().is_none() {
            return Err(WireError::NotADict {
                what: "ut_metadata message",
            });
        }
        let msg_type = required(&dict, "msg_type")?;
        let piece = u32::try_from(required(&dict, "piece")?)
            .map_err(|_| WireError::InvalidField { field: "piece" })?;
        Ok(Some(match msg_type {
            0 => MetadataMsg::Request { piece },
            1 => MetadataMsg::Data {
                piece,
                total_size: u64::try_from(required(&dict, "total_size")?).map_err(|_| {
                    WireError::InvalidField {
                        field: "total_size",
                    }
                })?,
                data: payload.get(used..).unwrap_or_default(),
            },
            2 => MetadataMsg::Reject { piece },
            _ => return Ok(None),
        }))
    }

    /// The payload bytes (dict, then the piece data for [`MetadataMsg::Data`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let (msg_type, piece, total_size, data) = match *self {
            MetadataMsg::Request { piece } => (0, piece, None, &[][..]),
            MetadataMsg::Data {
                piece,
                total_size,
                data,
            } => (1, piece, Some(total_size), data),
            MetadataMsg::Reject { piece } => (2, piece, None, &[][..]),
        };
        let mut out = Vec::with_capacity(64 + data.len());
        let mut e = Encoder(&mut out);
        e.begin_dict();
        e.kv_int(b"msg_type", msg_type);
        e.kv_int(b"piece", i64::from(piece));
        if let Some(size) = total_size {
            e.kv_int(b"total_size", i64::try_from(size).unwrap_or(i64::MAX));
        }
        e.end();
        out.extend_from_slice(data);
        out
    }
}

fn required(dict: &Value<'_>, field: &'static str) -> Result<i64, WireError> {
    match dict.get(field.as_bytes()) {
        None => Err(WireError::MissingField { field }),
        Some(v) => v.as_int().ok_or(WireError::InvalidField { field }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_libtorrent_style_handshake() {
        let payload = b"d12:complete_agoi-1e1:md11:lt_donthavei7e10:share_modei8e11:upload_onlyi3e12:ut_holepunchi4e11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei5236e1:pi6881e4:reqqi500e11:upload_onlyi1e1:v17:libtorrent/2.0.116:yourip4:\x7f\x00\x00\x01e";
        let hs = ExtHandshake::decode(payload).unwrap();
        assert_eq!(
            hs,
            ExtHandshake {
                ut_metadata: Some(2),
                metadata_size: Some(5236),
                client: Some("libtorrent/2.0.11".into()),
                reqq: Some(500),
                listen_port: Some(6881),
                your_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            }
        );
    }

    #[test]
    fn handshake_round_trip_and_canonical_bytes() {
        let hs = ExtHandshake {
            ut_metadata: Some(3),
            metadata_size: Some(100),
            client: Some("Estudely 0.1".into()),
            reqq: Some(4),
            listen_port: None,
            your_ip: Some("::1".parse().unwrap()),
        };
        let bytes = hs.to_bytes();
        assert!(bytes.starts_with(b"d1:md11:ut_metadatai3ee13:metadata_sizei100e4:reqqi4e"));
        assert_eq!(ExtHandshake::decode(&bytes).unwrap(), hs);
        assert_eq!(
            ExtHandshake::default().to_bytes(),
            b"d1:mdee".to_vec(),
            "an empty m dict is still sent"
        );
    }

    #[test]
    fn lenient_about_optional_fields() {
        let hs = ExtHandshake::decode(
            b"d1:md11:ut_metadatai0ee13:metadata_sizei-5e1:pi70000e6:yourip3:abce",
        )
        .unwrap();
        assert_eq!(hs, ExtHandshake::default());
        let hs = ExtHandshake::decode(b"d1:mli1ee1:v2:\xff\xfee").unwrap();
        assert_eq!(hs.ut_metadata, None);
        assert_eq!(hs.client.as_deref(), Some("\u{fffd}\u{fffd}"));
        assert_eq!(
            ExtHandshake::decode(b"li1ee"),
            Err(WireError::NotADict {
                what: "extended handshake"
            })
        );
        assert!(matches!(
            ExtHandshake::decode(b"d1:m"),
            Err(WireError::Bencode(_))
        ));
    }

    #[test]
    fn metadata_messages_known_bytes() {
        let req = MetadataMsg::Request { piece: 0 };
        assert_eq!(req.to_bytes(), b"d8:msg_typei0e5:piecei0ee");
        let rej = MetadataMsg::Reject { piece: 3 };
        assert_eq!(rej.to_bytes(), b"d8:msg_typei2e5:piecei3ee");
        let data = MetadataMsg::Data {
            piece: 1,
            total_size: 16_390,
            data: b"xxxxxx",
        };
        let bytes = data.to_bytes();
        assert_eq!(
            bytes,
            b"d8:msg_typei1e5:piecei1e10:total_sizei16390eexxxxxx"
        );
        for m in [req, rej, data] {
            assert_eq!(MetadataMsg::decode(&m.to_bytes()), Ok(Some(m)));
        }
    }

    #[test]
    fn metadata_message_errors() {
        assert_eq!(MetadataMsg::decode(b"d8:msg_typei7e5:piecei0ee"), Ok(None));
        assert_eq!(
            MetadataMsg::decode(b"d5:piecei0ee"),
            Err(WireError::MissingField { field: "msg_type" })
        );
        assert_eq!(
            MetadataMsg::decode(b"d8:msg_typei0e5:piecei-1ee"),
            Err(WireError::InvalidField { field: "piece" })
        );
        assert_eq!(
            MetadataMsg::decode(b"d8:msg_typei1e5:piecei0ee"),
            Err(WireError::MissingField {
                field: "total_size"
            })
        );
        assert_eq!(
            MetadataMsg::decode(b"d8:msg_type1:05:piecei0ee"),
            Err(WireError::InvalidField { field: "msg_type" })
        );
        assert!(MetadataMsg::decode(b"").is_err());
    }
}
