//! [`Message`] → canonical bencode, written straight into one buffer: every dict's keys are
//! written in sorted order by construction (the order is spelled out at each dict), so no
//! tree is built and nothing is allocated but the output (none at all with
//! [`Message::encode_into`] into a buffer that has room).

use std::net::{IpAddr, SocketAddr};

use estudely_bencode::Encoder;

use crate::{Body, CompactNode, ErrorMsg, Message, Query, Response, TransactionId, Want};

impl Message {
    /// Canonical bencode (dict keys sorted), ready to send.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.encode_into(&mut out);
        out
    }

    /// [`Message::encode`], appended to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        Message::encode_parts(
            out,
            &self.tid,
            self.version.as_deref(),
            self.ip.as_ref(),
            self.read_only,
            &self.body,
        );
    }

    /// The encoding of the message made of these parts, appended to `out`: for a sender
    /// that has them at hand and need not build (and allocate) a [`Message`].
    pub fn encode_parts(
        out: &mut Vec<u8>,
        tid: &TransactionId,
        version: Option<&[u8]>,
        ip: Option<&SocketAddr>,
        read_only: bool,
        body: &Body,
    ) {
        let mut e = Encoder(out);
        e.begin_dict();
        // Keys in order: a, e, ip, q, r, ro, t, v, y.
        match body {
            Body::Query(q) => {
                e.bytes(b"a");
                query_args(&mut e, q);
            }
            Body::Error(err) => {
                e.bytes(b"e");
                e.begin_list();
                e.int(err.code);
                e.bytes(err.message.as_bytes());
                e.end();
            }
            Body::Response(_) => {}
        }
        if let Some(ip) = ip {
            e.bytes(b"ip");
            peer(&mut e, ip);
        }
        match body {
            Body::Query(q) => e.kv_bytes(b"q", q.method()),
            Body::Response(r) => {
                e.bytes(b"r");
                response(&mut e, r);
            }
            Body::Error(err) => error_r(&mut e, err),
        }
        if read_only {
            e.kv_int(b"ro", 1);
        }
        e.kv_bytes(b"t", tid.as_bytes());
        if let Some(v) = version {
            e.kv_bytes(b"v", v);
        }
        let y: &[u8] = match body {
            Body::Query(_) => b"q",
            Body::Response(_) => b"r",
            Body::Error(_) => b"e",
        };
        e.kv_bytes(b"y", y);
        e.end();
    }
}

fn query_args(e: &mut Encoder<'_>, q: &Query) {
    e.begin_dict();
    e.kv_bytes(b"id", &q.sender_id().0);
    match q {
        Query::Ping { .. } | Query::Unknown { .. } => {}
        // id, target, want
        Query::FindNode { target, want, .. } | Query::SampleInfohashes { target, want, .. } => {
            e.kv_bytes(b"target", &target.0);
            want_list(e, *want);
        }
        // id, info_hash, noseed, scrape, want
        Query::GetPeers {
            info_hash,
            want,
            noseed,
            scrape,
            ..
        } => {
            e.kv_bytes(b"info_hash", &info_hash.0);
            flag(e, b"noseed", *noseed);
            flag(e, b"scrape", *scrape);
            want_list(e, *want);
        }
        // id, implied_port, info_hash, port, seed, token
        Query::AnnouncePeer {
            info_hash,
            port,
            implied_port,
            token,
            seed,
            ..
        } => {
            flag(e, b"implied_port", *implied_port);
            e.kv_bytes(b"info_hash", &info_hash.0);
            e.kv_int(b"port", i64::from(*port));
            flag(e, b"seed", *seed);
            e.kv_bytes(b"token", token.as_bytes());
        }
    }
    e.end();
}

fn response(e: &mut Encoder<'_>, r: &Response) {
    e.begin_dict();
    // Keys in order: BFpe, BFsd, id, interval, nodes, nodes6, num, p, samples, token, values.
    if let Some(b) = &r.bf_peers {
        e.kv_bytes(b"BFpe", &b[..]);
    }
    if let Some(b) = &r.bf_seeds {
        e.kv_bytes(b"BFsd", &b[..]);
    }
    e.kv_bytes(b"id", &r.id.0);
    if let Some(i) = r.interval {
        e.kv_int(b"interval", i64::from(i));
    }
    if !r.nodes.is_empty() {
        nodes(e, b"nodes", &r.nodes, false);
    }
    if !r.nodes6.is_empty() {
        nodes(e, b"nodes6", &r.nodes6, true);
    }
    if let Some(n) = r.num {
        e.kv_int(b"num", i64::from(n));
    }
    if let Some(p) = r.reflected_port {
        e.kv_int(b"p", i64::from(p));
    }
    if !r.samples.is_empty() || r.interval.is_some() {
        e.bytes(b"samples");
        e.len_prefix(r.samples.len() * 20);
        for s in &r.samples {
            e.raw(&s.0);
        }
    }
    if let Some(t) = &r.token {
        e.kv_bytes(b"token", t.as_bytes());
    }
    if !r.values.is_empty() {
        e.bytes(b"values");
        e.begin_list();
        for p in &r.values {
            peer(e, p);
        }
        e.end();
    }
    e.end();
}

/// An error's optional `r` dict (libtorrent's: the sender's id and our port as seen).
fn error_r(e: &mut Encoder<'_>, err: &ErrorMsg) {
    if let Some(id) = &err.id {
        e.bytes(b"r");
        e.begin_dict();
        e.kv_bytes(b"id", &id.0);
        if let Some(p) = err.reflected_port {
            e.kv_int(b"p", i64::from(p));
        }
        e.end();
    }
}

/// Nodes of one family under `key`, compact; nodes of the other family are skipped.
fn nodes(e: &mut Encoder<'_>, key: &[u8], nodes: &[CompactNode], v6: bool) {
    let size = if v6 { 38 } else { 26 };
    let n = nodes.iter().filter(|n| n.addr.is_ipv6() == v6).count();
    e.bytes(key);
    e.len_prefix(n * size);
    for node in nodes.iter().filter(|n| n.addr.is_ipv6() == v6) {
        e.raw(&node.id.0);
        addr_bytes(e, &node.addr);
    }
}

/// A compact peer (6 or 18 bytes) as a byte string.
fn peer(e: &mut Encoder<'_>, addr: &SocketAddr) {
    e.len_prefix(if addr.is_ipv6() { 18 } else { 6 });
    addr_bytes(e, addr);
}

fn addr_bytes(e: &mut Encoder<'_>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => e.raw(&ip.octets()),
        IpAddr::V6(ip) => e.raw(&ip.octets()),
    }
    e.raw(&addr.port().to_be_bytes());
}

fn want_list(e: &mut Encoder<'_>, want: Want) {
    if want.is_given() {
        e.bytes(b"want");
        e.begin_list();
        if want.v4 {
            e.bytes(b"n4");
        }
        if want.v6 {
            e.bytes(b"n6");
        }
        e.end();
    }
}

fn flag(e: &mut Encoder<'_>, key: &[u8], on: bool) {
    if on {
        e.kv_int(key, 1);
    }
}
