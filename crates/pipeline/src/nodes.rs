//! The counters of the nodes that answered a sample (`run`'s index): `node_client_<label>`
//! by client and `node_interval_<seconds>` by the BEP 51 `interval` they gave, from
//! [`CrawlEvent::NodeSampled`](estudely_dht_core::crawl::CrawlEvent::NodeSampled).
//!
//! Nodes send what they like, so the names are bounded: a client label is two ASCII letters
//! or digits and a version of two small numbers, at most [`MAX_CLIENT_LABELS`] distinct ones
//! per run (the rest are counted as `other`), and intervals are bucketed.

use std::collections::HashSet;

/// Most distinct client labels counted per run; nodes of any other client are `other`.
pub const MAX_CLIENT_LABELS: usize = 32;

/// The interval buckets, in seconds: an interval is counted under the smallest that is at
/// least as long, or [`OVER_A_DAY`].
pub const INTERVAL_BUCKETS: [u32; 10] = [0, 60, 300, 900, 1800, 3600, 7200, 21600, 43200, 86400];

/// The bucket of intervals longer than a day.
pub const OVER_A_DAY: u32 = 86_401;

/// The bucket of an `interval` of `secs` seconds.
pub fn interval_bucket(secs: u32) -> u32 {
    INTERVAL_BUCKETS
        .iter()
        .copied()
        .find(|&b| b >= secs)
        .unwrap_or(OVER_A_DAY)
}

/// The label of a KRPC client version `v`: `none` when absent; `XY a.b` for the usual two
/// ASCII letters or digits and two version bytes; `unknown` for anything else.
///
/// libtorrent (`LT`) writes its major version, then, since the 1.2 series, its minor and
/// tiny versions packed in the nibbles of the last byte (`(minor << 4) | tiny`, see
/// `send_packet` in its `src/kademlia/dht_tracker.cpp`); older releases wrote the minor
/// version as a plain byte. So `LT\x02\x0a` (2.0.10) is `LT 2.0`, `LT\x01\x21` (1.2.1) is
/// `LT 1.2`, and `LT\x01\x01` (1.1) and `LT\x00\x10` (0.16) stay as they are.
pub fn client_label(v: Option<&[u8]>) -> String {
    match v {
        None => "none".to_owned(),
        Some(&[a, b, major, minor]) if a.is_ascii_alphanumeric() && b.is_ascii_alphanumeric() => {
            let packed = (a, b) == (b'L', b'T') && (major >= 2 || (major == 1 && minor >= 0x10));
            let minor = if packed { minor >> 4 } else { minor };
            format!("{}{} {major}.{minor}", char::from(a), char::from(b))
        }
        Some(_) => "unknown".to_owned(),
    }
}

/// The client labels of one run, bounded.
#[derive(Debug, Default)]
pub struct NodeLabels {
    seen: HashSet<String>,
}

impl NodeLabels {
    /// The counter names for a node with client version `v` that gave `interval`:
    /// `node_client_<label>` (or `node_client_other` beyond [`MAX_CLIENT_LABELS`] labels),
    /// and `node_interval_<bucket>` when it gave an interval.
    pub fn counters(&mut self, v: Option<&[u8]>, interval: Option<u32>) -> Vec<String> {
        let mut label = client_label(v);
        if !self.seen.contains(&label) {
            if self.seen.len() < MAX_CLIENT_LABELS {
                self.seen.insert(label.clone());
            } else {
                label = "other".to_owned();
            }
        }
        let mut out = vec![format!("node_client_{label}")];
        if let Some(secs) = interval {
            out.push(format!("node_interval_{}", interval_bucket(secs)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(client_label(None), "none");
        assert_eq!(client_label(Some(b"LT\x02\x0a")), "LT 2.0");
        assert_eq!(client_label(Some(b"LT\x02\x21")), "LT 2.2");
        assert_eq!(client_label(Some(b"LT\x01\x21")), "LT 1.2");
        assert_eq!(client_label(Some(b"LT\x01\x01")), "LT 1.1");
        assert_eq!(client_label(Some(b"LT\x00\x10")), "LT 0.16");
        assert_eq!(client_label(Some(b"UT\x03\x04")), "UT 3.4");
        assert_eq!(client_label(Some(b"ES\x00\x01")), "ES 0.1");
        assert_eq!(client_label(Some(b"U\xff\x01\x02")), "unknown");
        assert_eq!(client_label(Some(b"a \x01\x02")), "unknown");
        assert_eq!(client_label(Some(b"UT")), "unknown");
        assert_eq!(client_label(Some(b"")), "unknown");
        assert_eq!(client_label(Some(&[b'x'; 32])), "unknown");
    }

    #[test]
    fn intervals() {
        let cases = [
            (0, 0),
            (1, 60),
            (60, 60),
            (61, 300),
            (21_600, 21_600),
            (86_400, 86_400),
            (86_401, OVER_A_DAY),
            (u32::MAX, OVER_A_DAY),
        ];
        for (secs, bucket) in cases {
            assert_eq!(interval_bucket(secs), bucket, "{secs}");
        }
    }

    #[test]
    fn labels_are_bounded() {
        let mut labels = NodeLabels::default();
        assert_eq!(
            labels.counters(Some(b"LT\x02\x00"), Some(300)),
            ["node_client_LT 2.0", "node_interval_300"]
        );
        assert_eq!(labels.counters(None, None), ["node_client_none"]);
        for i in 0..100u8 {
            let v = [b'A' + i % 26, b'a' + i / 26, 1, 0];
            labels.counters(Some(&v), None);
        }
        assert_eq!(labels.seen.len(), MAX_CLIENT_LABELS);
        assert_eq!(
            labels.counters(Some(b"ZZ\x09\x09"), Some(100_000)),
            ["node_client_other", "node_interval_86401"]
        );
        // Labels seen before the bound keep their name.
        assert_eq!(labels.counters(None, None), ["node_client_none"]);
    }
}
