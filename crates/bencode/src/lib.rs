//! Bencode, the serialisation of BitTorrent (BEP 3), written by hand because it is the core of
//! everything Estudely parses from the network.
//!
//! * [`decode`] is zero-copy: byte strings borrow from the input, and every [`Value`] keeps the
//!   exact bytes it was decoded from ([`Value::raw`]), so an `info` dict can be hashed exactly
//!   as a peer sent it, even when the peer's encoding is not canonical.
//! * Decoding is bounded by [`Limits`]: nesting depth, input size and number of values, so
//!   hostile input can neither overflow the stack nor make us allocate without bound.
//!   Every [`Error`] names the byte offset where decoding stopped.
//! * [`scan_with`] checks an input exactly as [`decode_with`] does but builds no tree: its
//!   [`RawValue`] is read in place, allocating nothing (the KRPC decoder's hot path).
//! * [`OwnedValue`] and [`Encoder`] produce canonical bencode (dict keys sorted).
//!
//! This crate depends on nothing but `std` and `thiserror`; every other unit builds on it.
//!
//! ```
//! let v = estudely_bencode::decode(b"d4:name5:hello6:lengthi42ee").unwrap();
//! assert_eq!(v.get_bytes(b"name"), Some(&b"hello"[..]));
//! assert_eq!(v.get_int(b"length"), Some(42));
//! assert_eq!(v.get(b"name").unwrap().raw(), b"5:hello");
//! assert!(estudely_bencode::decode(b"d4:name").is_err());
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

mod decode;
mod encode;
mod error;
mod raw;
mod value;

pub use decode::{decode, decode_prefix, decode_with, scan_with, Limits};
pub use encode::{Encoder, OwnedValue};
pub use error::Error;
pub use raw::{DictIter, ListIter, RawValue};
pub use value::{Kind, Value};
