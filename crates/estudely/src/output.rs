//! Rendering KRPC replies for people (`human`) and for programs (`jsonl`).
//!
//! Both formats render the same [`ReplyView`], so they always carry the same fields. In JSON
//! every key is present (null or empty when the reply lacks it) and binary values are hex.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use estudely_krpc::{Body, CompactNode, ErrorMsg, Message, TransactionId};
use serde::Serialize;

/// One reply, flattened into printable fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplyView {
    /// The query method it answers, e.g. `get_peers`.
    pub method: String,
    /// Who answered.
    pub from: String,
    /// Round-trip time in milliseconds.
    pub rtt_ms: f64,
    /// The responder's node id (hex); null in error replies.
    pub id: Option<String>,
    /// Client version (`v`), readable: `LT 2.1.1`, `ES 0.1`, or the bytes escaped.
    pub version: Option<String>,
    /// Client version bytes in hex.
    pub version_hex: Option<String>,
    /// BEP 42 `ip`: our address as the responder sees it.
    pub ip: Option<String>,
    /// BEP 43 `ro`: the responder says it is read-only.
    pub read_only: bool,
    /// IPv4 nodes (`nodes`).
    pub nodes: Vec<NodeView>,
    /// IPv6 nodes (`nodes6`).
    pub nodes6: Vec<NodeView>,
    /// Peers (`values`).
    pub values: Vec<String>,
    /// Write token (hex).
    pub token: Option<String>,
    /// BEP 51 sampled infohashes (hex).
    pub samples: Vec<String>,
    /// BEP 51 `interval`, seconds.
    pub interval: Option<u32>,
    /// BEP 51 `num`: infohashes the responder stores.
    pub num: Option<u32>,
    /// BEP 33 `BFsd`: bloom filter of seeds.
    pub bf_seeds: Option<BloomView>,
    /// BEP 33 `BFpe`: bloom filter of peers.
    pub bf_peers: Option<BloomView>,
    /// The KRPC error, for error replies.
    pub error: Option<ErrorView>,
}

/// A node in `nodes` / `nodes6`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeView {
    /// Its id, hex.
    pub id: String,
    /// Its address.
    pub addr: String,
}

/// A BEP 33 bloom filter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BloomView {
    /// The 256 bytes, hex.
    pub hex: String,
    /// Estimated number of distinct items inserted (BEP 33's formula).
    pub estimate: u32,
}

/// A KRPC error reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorView {
    /// Error code (201-204 in BEP 5).
    pub code: i64,
    /// Error text.
    pub message: String,
    /// The UDP port the responder saw our query come from, if it said (libtorrent does).
    pub reflected_port: Option<u16>,
}

impl ReplyView {
    /// Flatten a reply message (a response or an error) to `method` from `from`.
    pub fn new(method: &str, from: SocketAddr, rtt: Duration, msg: &Message) -> ReplyView {
        let mut view = ReplyView {
            method: method.to_owned(),
            from: from.to_string(),
            rtt_ms: (rtt.as_secs_f64() * 1e6).round() / 1e3,
            id: None,
            version: msg.version.as_deref().map(version_string),
            version_hex: msg.version.as_deref().map(hex::encode),
            ip: msg.ip.map(|a| a.to_string()),
            read_only: msg.read_only,
            nodes: Vec::new(),
            nodes6: Vec::new(),
            values: Vec::new(),
            token: None,
            samples: Vec::new(),
            interval: None,
            num: None,
            bf_seeds: None,
            bf_peers: None,
            error: None,
        };
        match &msg.body {
            Body::Response(r) => {
                view.id = Some(r.id.to_hex());
                view.nodes = r.nodes.iter().map(NodeView::from).collect();
                view.nodes6 = r.nodes6.iter().map(NodeView::from).collect();
                view.values = r.values.iter().map(|a| a.to_string()).collect();
                view.token = r.token.as_ref().map(|t| hex::encode(t.as_bytes()));
                view.samples = r.samples.iter().map(|h| h.to_hex()).collect();
                view.interval = r.interval;
                view.num = r.num;
                view.bf_seeds = r.bf_seeds.as_deref().map(BloomView::new);
                view.bf_peers = r.bf_peers.as_deref().map(BloomView::new);
            }
            Body::Error(e) => {
                // libtorrent puts its id (and the port it saw) in errors too.
                view.id = e.id.map(|id| id.to_hex());
                view.error = Some(ErrorView::from(e));
            }
            // A query is not a reply; nothing more to show than the envelope.
            Body::Query(_) => {}
        }
        view
    }

    /// An error reply whose envelope is not known (the node hands back only the error).
    pub fn error(method: &str, from: SocketAddr, rtt: Duration, e: &ErrorMsg) -> ReplyView {
        let msg = Message {
            tid: TransactionId::default(),
            version: None,
            ip: None,
            read_only: false,
            body: Body::Error(e.clone()),
        };
        ReplyView::new(method, from, rtt, &msg)
    }

    /// One JSON object, no trailing newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Aligned text, one fact per line, ending with a newline.
    pub fn to_human(&self) -> String {
        let mut out = String::new();
        let o = &mut out;
        let _ = writeln!(
            o,
            "{} reply from {} in {} ms",
            self.method, self.from, self.rtt_ms
        );
        if let Some(e) = &self.error {
            let _ = writeln!(o, "  error      {} {}", e.code, e.message);
            if let Some(port) = e.reflected_port {
                let _ = writeln!(o, "  our port   {port}  (as it saw it)");
            }
        }
        if let Some(id) = &self.id {
            let _ = writeln!(o, "  node id    {id}");
        }
        let version = self.version.as_deref().unwrap_or("(none)");
        let _ = writeln!(o, "  version    {version}");
        if let Some(ip) = &self.ip {
            let _ = writeln!(
                o,
                "  we are     {ip}  (BEP 42 ip: our address as it sees it)"
            );
        }
        if self.read_only {
            let _ = writeln!(o, "  read-only  yes (BEP 43)");
        }
        let expects = |m: &[&str]| m.contains(&self.method.as_str());
        if self.token.is_some() || expects(&["get_peers"]) {
            let token = self.token.as_deref().unwrap_or("(none)");
            let _ = writeln!(o, "  token      {token}");
        }
        if !self.values.is_empty() || expects(&["get_peers"]) {
            let _ = writeln!(o, "  peers      {} (values)", self.values.len());
            for v in &self.values {
                let _ = writeln!(o, "    {v}");
            }
        }
        if !self.samples.is_empty() || self.num.is_some() || expects(&["sample_infohashes"]) {
            let _ = write!(o, "  samples    {}", self.samples.len());
            if let Some(num) = self.num {
                let _ = write!(o, " of {num} stored");
            }
            if let Some(interval) = self.interval {
                let _ = write!(o, ", ask again in {interval} s");
            }
            let _ = writeln!(o);
            for s in &self.samples {
                let _ = writeln!(o, "    {s}");
            }
        }
        for (label, bloom) in [("seeds", &self.bf_seeds), ("peers", &self.bf_peers)] {
            if let Some(b) = bloom {
                let _ = writeln!(
                    o,
                    "  BEP 33     ~{} {label} (256-byte bloom filter)",
                    b.estimate
                );
            }
        }
        let nodes_expected = expects(&["find_node", "get_peers", "sample_infohashes"]);
        for (label, nodes) in [("nodes ", &self.nodes), ("nodes6", &self.nodes6)] {
            if !nodes.is_empty() || (nodes_expected && label == "nodes ") {
                let _ = writeln!(o, "  {label}     {}", nodes.len());
                for n in nodes {
                    let _ = writeln!(o, "    {}  {}", n.id, n.addr);
                }
            }
        }
        out
    }
}

impl From<&CompactNode> for NodeView {
    fn from(n: &CompactNode) -> Self {
        NodeView {
            id: n.id.to_hex(),
            addr: n.addr.to_string(),
        }
    }
}

impl From<&ErrorMsg> for ErrorView {
    fn from(e: &ErrorMsg) -> Self {
        ErrorView {
            code: e.code,
            message: e.message.clone(),
            reflected_port: e.reflected_port,
        }
    }
}

impl BloomView {
    fn new(bits: &[u8; 256]) -> BloomView {
        BloomView {
            hex: hex::encode(bits),
            estimate: estudely_dht_core::bloom::Bloom::from(*bits).estimate(),
        }
    }
}

/// A client version for people. The usual form is 2 letters (the client, as in BEP 20) and
/// 2 version bytes: shown as `XY a.b`, except libtorrent's `LT`, whose second byte packs
/// minor and patch in nibbles (`LT\x02\x11` is 2.1.1). Anything else is shown as its bytes
/// with non-printable ones escaped (`\x00`).
pub fn version_string(v: &[u8]) -> String {
    match v {
        [b'L', b'T', major, packed] => {
            return format!("LT {major}.{}.{}", packed >> 4, packed & 0x0f);
        }
        [a, b, major, minor] if a.is_ascii_alphanumeric() && b.is_ascii_alphanumeric() => {
            return format!("{}{} {major}.{minor}", char::from(*a), char::from(*b));
        }
        _ => {}
    }
    v.iter()
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect()
}

pub use estudely_pipeline::names::{csv_name, csv_name_unescape};

#[cfg(test)]
mod tests {
    use super::*;
    use estudely_krpc::{InfoHash, NodeId, Response, Token};

    fn reply(body: Body) -> Message {
        Message {
            tid: TransactionId::new(b"aa").unwrap(),
            version: estudely_dht_core::krpc::Version::new(b"LT\x02\x10").ok(),
            ip: Some("1.2.3.4:5678".parse().unwrap()),
            read_only: false,
            body,
        }
    }

    #[test]
    fn versions() {
        assert_eq!(version_string(b"LT\x02\x11"), "LT 2.1.1");
        assert_eq!(version_string(b"UT\x01\x02"), "UT 1.2");
        assert_eq!(version_string(b"ES\x00\x01"), "ES 0.1");
        assert_eq!(version_string(b"\x01\x02"), "\\x01\\x02");
        assert_eq!(version_string(b"abc"), "abc");
    }

    #[test]
    fn full_response_both_formats() {
        let node = CompactNode {
            id: NodeId([0xab; 20]),
            addr: "10.0.0.1:6881".parse().unwrap(),
        };
        let r = Response {
            id: NodeId([1; 20]),
            nodes: vec![node],
            values: vec!["10.0.0.2:51413".parse().unwrap()],
            token: Some(Token::new(b"\x01\x02").unwrap()),
            samples: vec![InfoHash([2; 20])],
            num: Some(7),
            interval: Some(60),
            bf_seeds: Some(Box::new([0; 256])),
            ..Response::default()
        };
        let from = "10.0.0.9:6881".parse().unwrap();
        let v = ReplyView::new(
            "get_peers",
            from,
            Duration::from_micros(1500),
            &reply(Body::Response(r)),
        );
        let human = v.to_human();
        for needle in [
            "get_peers reply from 10.0.0.9:6881 in 1.5 ms",
            "node id    0101010101",
            "version    LT 2.1.0",
            "we are     1.2.3.4:5678",
            "token      0102",
            "peers      1 (values)\n    10.0.0.2:51413",
            "samples    1 of 7 stored, ask again in 60 s",
            "~0 seeds",
            &format!("{}  10.0.0.1:6881", "ab".repeat(20)),
        ] {
            assert!(human.contains(needle), "{needle:?} not in\n{human}");
        }
        let json: serde_json::Value = serde_json::from_str(&v.to_json()).unwrap();
        assert_eq!(json["id"], "01".repeat(20));
        assert_eq!(json["version"], "LT 2.1.0");
        assert_eq!(json["version_hex"], "4c540210");
        assert_eq!(json["values"][0], "10.0.0.2:51413");
        assert_eq!(json["nodes"][0]["addr"], "10.0.0.1:6881");
        assert_eq!(json["bf_seeds"]["estimate"], 0);
        assert_eq!(json["bf_peers"], serde_json::Value::Null);
        assert_eq!(json["error"], serde_json::Value::Null);
    }

    #[test]
    fn error_reply() {
        let e = ErrorMsg {
            code: 203,
            message: "bad token".into(),
            id: Some(NodeId([3; 20])),
            reflected_port: Some(4321),
        };
        let from = "10.0.0.9:6881".parse().unwrap();
        let v = ReplyView::error("announce_peer", from, Duration::ZERO, &e);
        let human = v.to_human();
        assert!(human.contains("error      203 bad token"), "{human}");
        assert!(human.contains("our port   4321"), "{human}");
        let json: serde_json::Value = serde_json::from_str(&v.to_json()).unwrap();
        assert_eq!(json["error"]["code"], 203);
        assert_eq!(json["error"]["reflected_port"], 4321);
        assert_eq!(json["id"], "03".repeat(20));
    }
}
