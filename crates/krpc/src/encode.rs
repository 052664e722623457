//! [`Message`] → canonical bencode. Built on `OwnedValue`, whose sorted dicts make the key
//! order right by construction; datagrams are small, so the extra allocations do not matter.

use estudely_bencode::OwnedValue;

use crate::compact::{encode_nodes, encode_peer};
use crate::{Body, Message, Query, Response, Want};

impl Message {
    /// Encode as canonical bencode. Empty lists and absent options are omitted.
    pub fn encode(&self) -> Vec<u8> {
        let mut root = OwnedValue::dict();
        root.insert(b"t", self.tid.as_bytes());
        if let Some(v) = &self.version {
            root.insert(b"v", v.clone());
        }
        if let Some(ip) = &self.ip {
            root.insert(b"ip", encode_peer(ip));
        }
        if self.read_only {
            root.insert(b"ro", 1);
        }
        match &self.body {
            Body::Query(q) => {
                root.insert(b"y", "q").insert(b"q", q.method());
                root.insert(b"a", query_args(q));
            }
            Body::Response(r) => {
                root.insert(b"y", "r").insert(b"r", response(r));
            }
            Body::Error(e) => {
                root.insert(b"y", "e").insert(
                    b"e",
                    vec![OwnedValue::Int(e.code), e.message.as_str().into()],
                );
                if let Some(id) = &e.id {
                    let mut r = OwnedValue::dict();
                    r.insert(b"id", &id.0[..]);
                    if let Some(p) = e.reflected_port {
                        r.insert(b"p", i64::from(p));
                    }
                    root.insert(b"r", r);
                }
            }
        }
        root.to_bytes()
    }
}

fn query_args(q: &Query) -> OwnedValue {
    let mut a = OwnedValue::dict();
    a.insert(b"id", &q.sender_id().0[..]);
    match q {
        Query::Ping { .. } | Query::Unknown { .. } => {}
        Query::FindNode { target, want, .. } | Query::SampleInfohashes { target, want, .. } => {
            a.insert(b"target", &target.0[..]);
            insert_want(&mut a, *want);
        }
        Query::GetPeers {
            info_hash,
            want,
            noseed,
            scrape,
            ..
        } => {
            a.insert(b"info_hash", &info_hash.0[..]);
            insert_want(&mut a, *want);
            insert_flag(&mut a, b"noseed", *noseed);
            insert_flag(&mut a, b"scrape", *scrape);
        }
        Query::AnnouncePeer {
            info_hash,
            port,
            implied_port,
            token,
            seed,
            ..
        } => {
            a.insert(b"info_hash", &info_hash.0[..])
                .insert(b"port", i64::from(*port))
                .insert(b"token", token.as_bytes());
            insert_flag(&mut a, b"implied_port", *implied_port);
            insert_flag(&mut a, b"seed", *seed);
        }
    }
    a
}

fn response(r: &Response) -> OwnedValue {
    let mut d = OwnedValue::dict();
    d.insert(b"id", &r.id.0[..]);
    if !r.nodes.is_empty() {
        d.insert(b"nodes", encode_nodes(&r.nodes, false));
    }
    if !r.nodes6.is_empty() {
        d.insert(b"nodes6", encode_nodes(&r.nodes6, true));
    }
    if !r.values.is_empty() {
        let peers = r.values.iter().map(|p| encode_peer(p).into()).collect();
        d.insert(b"values", OwnedValue::List(peers));
    }
    if let Some(t) = &r.token {
        d.insert(b"token", t.as_bytes());
    }
    if !r.samples.is_empty() || r.interval.is_some() {
        let samples: Vec<u8> = r.samples.iter().flat_map(|s| s.0).collect();
        d.insert(b"samples", samples);
    }
    if let Some(i) = r.interval {
        d.insert(b"interval", i64::from(i));
    }
    if let Some(n) = r.num {
        d.insert(b"num", i64::from(n));
    }
    if let Some(b) = &r.bf_seeds {
        d.insert(b"BFsd", &b[..]);
    }
    if let Some(b) = &r.bf_peers {
        d.insert(b"BFpe", &b[..]);
    }
    if let Some(p) = r.reflected_port {
        d.insert(b"p", i64::from(p));
    }
    d
}

fn insert_want(a: &mut OwnedValue, want: Want) {
    let mut w = Vec::new();
    if want.v4 {
        w.push("n4".into());
    }
    if want.v6 {
        w.push("n6".into());
    }
    if !w.is_empty() {
        a.insert(b"want", OwnedValue::List(w));
    }
}

fn insert_flag(a: &mut OwnedValue, key: &[u8], on: bool) {
    if on {
        a.insert(key, 1);
    }
}
