//! A [`Report`] from a file that `collect`, `export` or `crawl` wrote, read as a stream:
//! memory grows with the distinct infohashes, not with the rows.
//!
//! - CSV with collect's header (`collect`, `demo`, `export --format csv`): one row per
//!   (infohash, peer considered), or one with empty peer fields when none was found.
//! - CSV with crawl's header `infohash,peer_ip,peer_port`: no metadata, so only infohashes and
//!   peers.
//! - JSONL, one object a line, each recognised by its fields: `export`'s objects (with
//!   `discovered` and `source`: the timeline, and `version`), `collect`'s rows (with
//!   `metadata_ok`), crawl rows (with `peer_ip` only).
//!
//! A malformed row is a [`UsageError`] `FILE:LINE: what is wrong`, on one line.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

use super::format::{quoted, truncate};
use super::{bucket_secs, fill_timeline, size_bucket, Report, SIZE_LABELS};
use estudely_store::{
    Source, UsageError, COLLECT_CSV_HEADER as COLLECT_HEADER, PEERS_CSV_HEADER as CRAWL_HEADER,
};

/// Which kind of file `--csv` / `--jsonl` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// Collect's or crawl's CSV, told apart by the header.
    Csv,
    /// JSON lines from `collect --format jsonl`, `export --format jsonl` or `crawl --format jsonl`.
    Jsonl,
}

/// What one infohash's rows said.
#[derive(Debug, Default)]
struct Entry {
    /// Some row had its metadata.
    ok: bool,
    /// Some row named a peer.
    peer: bool,
    files: u64,
    bytes: u64,
    /// 0 v1, 1 v2, 2 hybrid.
    version: Option<u8>,
    discovered: Option<(i64, Source)>,
}

/// The running totals of one input.
#[derive(Debug, Default)]
struct Tally {
    entries: HashMap<[u8; 20], Entry>,
    /// Rows (or `peers` entries) naming a peer.
    peers: u64,
    /// Some row carried metadata fields (collect or export), not only peers (crawl).
    metadata: bool,
}

const VERSIONS: [&str; 3] = ["v1", "v2", "hybrid"];

/// 9999-12-31 23:59:59 UTC: the last `discovered` time taken as real.
const MAX_TIME: i64 = 253_402_300_799;

/// Read `path` (`-`: stdin) as `format` into a report made at `now` (unix seconds).
pub fn from_file(path: &Path, format: InputFormat, now: i64) -> anyhow::Result<Report> {
    if path == Path::new("-") {
        return from_reader(io::stdin().lock(), "stdin", format, now);
    }
    let name = path.display().to_string();
    let file =
        File::open(path).map_err(|e| UsageError(format!("cannot open {}: {e}", quoted(&name))))?;
    from_reader(file, &name, format, now)
}

/// Read `r` (named `name` in messages and in the report) as `format`.
pub fn from_reader(
    r: impl Read,
    name: &str,
    format: InputFormat,
    now: i64,
) -> anyhow::Result<Report> {
    let mut t = Tally::default();
    match format {
        InputFormat::Csv => read_csv(r, name, &mut t)?,
        InputFormat::Jsonl => read_jsonl(r, name, &mut t)?,
    }
    Ok(t.finish(name, now))
}

/// `FILE:LINE: what`, one line.
fn bad(name: &str, line: u64, what: impl std::fmt::Display) -> anyhow::Error {
    let msg = format!("{name}:{line}: {}", truncate(&what.to_string(), 300));
    let msg = msg
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    UsageError(msg).into()
}

fn read_csv(r: impl Read, name: &str, t: &mut Tally) -> anyhow::Result<()> {
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).from_reader(r);
    let header = rdr
        .headers()
        .map_err(|e| csv_error(name, &e))?
        .iter()
        .collect::<Vec<_>>()
        .join(",");
    let collect = if header == COLLECT_HEADER {
        true
    } else if header == CRAWL_HEADER {
        false
    } else if header.is_empty() {
        return Err(bad(name, 1, "empty file: expected a CSV header line"));
    } else {
        return Err(bad(
            name,
            1,
            format!(
                "unknown header {}: expected collect's `{COLLECT_HEADER}` or crawl's `{CRAWL_HEADER}`",
                quoted(&header)
            ),
        ));
    };
    t.metadata = collect;
    for rec in rdr.records() {
        let rec = rec.map_err(|e| csv_error(name, &e))?;
        let line = rec.position().map_or(0, csv::Position::line);
        let field = |i: usize| rec.get(i).unwrap_or("");
        let row = if collect {
            collect_row(&rec)
        } else {
            peer_fields(field(1), field(2)).and_then(|p| match p {
                Some(_) => Ok((info_hash(field(0))?, true, None)),
                None => Err("the peer fields are empty".to_owned()),
            })
        };
        let (ih, peer, meta) = row.map_err(|e| bad(name, line, e))?;
        t.add(ih, peer, meta, None, None, u64::from(peer));
    }
    Ok(())
}

/// Metadata fields of a collect row: (ok, files, bytes).
type Meta = (bool, u64, u64);

/// A collect CSV row: infohash, whether it names a peer, its metadata fields.
fn collect_row(rec: &csv::StringRecord) -> Result<([u8; 20], bool, Option<Meta>), String> {
    let f = |i: usize| rec.get(i).unwrap_or("");
    let ih = info_hash(f(0))?;
    let files = number(f(2), "file_count")?;
    let bytes = number(f(3), "total_bytes")?;
    number(f(4), "piece_length")?;
    let peer = peer_fields(f(5), f(6))?.is_some();
    let ok = match f(7) {
        "True" | "true" | "1" => true,
        "False" | "false" | "0" => false,
        other => {
            return Err(format!(
                "bad metadata_ok {}: expected True or False",
                quoted(other)
            ))
        }
    };
    Ok((ih, peer, Some((ok, files, bytes))))
}

fn number(s: &str, what: &str) -> Result<u64, String> {
    s.parse()
        .map_err(|_| format!("bad {what} {}: expected a whole number", quoted(s)))
}

fn info_hash(s: &str) -> Result<[u8; 20], String> {
    let mut out = [0u8; 20];
    hex::decode_to_slice(s, &mut out)
        .map(|()| out)
        .map_err(|_| format!("bad infohash {}: expected 40 hex digits", quoted(s)))
}

/// `peer_ip`, `peer_port`: both empty (no peer) or an IP address and a port.
fn peer_fields(ip: &str, port: &str) -> Result<Option<(IpAddr, u16)>, String> {
    match (ip, port) {
        ("", "") => Ok(None),
        (ip, port) => {
            let ip = ip
                .parse()
                .map_err(|_| format!("bad peer_ip {}: expected an IP address", quoted(ip)))?;
            let port = port
                .parse()
                .map_err(|_| format!("bad peer_port {}: expected 0 to 65535", quoted(port)))?;
            Ok(Some((ip, port)))
        }
    }
}

fn csv_error(name: &str, e: &csv::Error) -> anyhow::Error {
    let line = e.position().map_or(0, csv::Position::line);
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => bad(name, line, format!("{len} fields, expected {expected_len}")),
        csv::ErrorKind::Utf8 { .. } => bad(name, line, "not UTF-8"),
        csv::ErrorKind::Io(err) => anyhow::anyhow!("cannot read {name}: {err}"),
        _ => bad(name, line, e),
    }
}

/// The fields of any of the three JSON objects that the report reads.
#[derive(Debug, Deserialize)]
struct JsonRow {
    infohash: String,
    metadata_ok: Option<bool>,
    file_count: Option<u64>,
    total_bytes: Option<u64>,
    version: Option<String>,
    peer_ip: Option<String>,
    peer_port: Option<u16>,
    discovered: Option<i64>,
    source: Option<serde_json::Value>,
    peers: Option<Vec<serde::de::IgnoredAny>>,
}

fn read_jsonl(r: impl Read, name: &str, t: &mut Tally) -> anyhow::Result<()> {
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)
            .map_err(|e| anyhow::anyhow!("cannot read {name}: {e}"))?
            == 0
        {
            return Ok(());
        }
        line += 1;
        let text = std::str::from_utf8(&buf).map_err(|_| bad(name, line, "not UTF-8"))?;
        if text.trim().is_empty() {
            continue;
        }
        let row: JsonRow = serde_json::from_str(text).map_err(|e| bad(name, line, e))?;
        json_row(row, t).map_err(|e| bad(name, line, e))?;
    }
}

fn json_row(row: JsonRow, t: &mut Tally) -> Result<(), String> {
    let ih = info_hash(&row.infohash)?;
    let version =
        match row.version.as_deref() {
            None => None,
            Some(v) => {
                Some(VERSIONS.iter().position(|w| *w == v).ok_or_else(|| {
                    format!("bad version {}: expected v1, v2 or hybrid", quoted(v))
                })? as u8)
            }
        };
    let peer = match (row.peer_ip.as_deref(), row.peer_port) {
        (None, None) => None,
        (Some(ip), Some(port)) => peer_fields(ip, &port.to_string())?,
        _ => return Err("peer_ip and peer_port go together".into()),
    };
    let discovered = match (row.discovered, row.metadata_ok) {
        // export: the source is how the torrent was first found.
        (Some(at), _) => {
            if !(0..=MAX_TIME).contains(&at) {
                return Err(format!(
                    "bad discovered {at}: expected unix seconds from 1970 to 9999"
                ));
            }
            let word = row.source.as_ref().and_then(|s| s.as_str()).unwrap_or("");
            let source = Source::parse(word).ok_or_else(|| {
                format!(
                    "bad source {}: expected sample, announce or get_peers",
                    quoted(word)
                )
            })?;
            Some((at, source))
        }
        (None, None) => {
            // A crawl row: an infohash and a peer.
            if peer.is_none() {
                return Err(
                    "neither a collect row (metadata_ok), an export object (discovered) \
                     nor a crawl row (peer_ip, peer_port)"
                        .into(),
                );
            }
            t.add(ih, true, None, None, None, 1);
            return Ok(());
        }
        (None, Some(_)) => None,
    };
    t.metadata = true;
    let ok = row.metadata_ok.unwrap_or(true);
    let meta = (
        ok,
        row.file_count.unwrap_or(0),
        row.total_bytes.unwrap_or(0),
    );
    let listed = row.peers.as_ref().map_or(0, Vec::len) as u64;
    let peers = listed + u64::from(peer.is_some());
    t.add(
        ih,
        peers > 0,
        Some(meta),
        version.filter(|_| ok),
        discovered,
        peers,
    );
    Ok(())
}

impl Tally {
    /// Count one row of infohash `ih`.
    fn add(
        &mut self,
        ih: [u8; 20],
        peer: bool,
        meta: Option<Meta>,
        version: Option<u8>,
        discovered: Option<(i64, Source)>,
        peers: u64,
    ) {
        self.peers = self.peers.saturating_add(peers);
        let e = self.entries.entry(ih).or_default();
        e.peer |= peer;
        if let Some((true, files, bytes)) = meta {
            e.ok = true;
            e.files = files;
            e.bytes = bytes;
        }
        e.version = version.or(e.version);
        if let Some(d) = discovered {
            e.discovered = Some(e.discovered.map_or(d, |old| old.min(d)));
        }
    }

    fn finish(self, name: &str, now: i64) -> Report {
        let infohashes = self.entries.len() as u64;
        let (mut fetched, mut files, mut bytes) = (0u64, 0u64, 0u64);
        let (mut no_peers, mut failed) = (0u64, 0u64);
        let mut sizes = vec![0u64; SIZE_LABELS.len()];
        let mut versions = [0u64; 3];
        let mut range: Option<(i64, i64)> = None;
        for e in self.entries.values() {
            if e.ok {
                fetched += 1;
                files = files.saturating_add(e.files);
                bytes = bytes.saturating_add(e.bytes);
                sizes[size_bucket(e.bytes)] += 1;
            } else if e.peer {
                failed += 1;
            } else {
                no_peers += 1;
            }
            if let Some(v) = e.version {
                versions[usize::from(v)] += 1;
            }
            if let Some((at, _)) = e.discovered {
                range = Some(range.map_or((at, at), |(a, b)| (a.min(at), b.max(at))));
            }
        }
        let (bucket, timeline) = match range {
            Some((first, last)) => {
                let b = bucket_secs(first, last);
                let mut rows: HashMap<(i64, Source), u64> = HashMap::new();
                for (at, source) in self.entries.values().filter_map(|e| e.discovered) {
                    *rows.entry((at.div_euclid(b) * b, source)).or_default() += 1;
                }
                let rows: Vec<(i64, Source, u64)> =
                    rows.into_iter().map(|((s, src), n)| (s, src, n)).collect();
                (b, fill_timeline(&rows, b))
            }
            None => (bucket_secs(0, 0), Vec::new()),
        };
        let (totals, outcomes) = if self.metadata {
            let mut outcomes: Vec<(String, u64)> = [
                ("fetched", fetched),
                ("no_peers", no_peers),
                ("fetch_failed", failed),
            ]
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.to_owned(), n))
            .collect();
            outcomes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            (
                vec![
                    ("torrents".to_owned(), fetched),
                    ("files".to_owned(), files),
                    ("total_bytes".to_owned(), bytes),
                    ("infohashes".to_owned(), infohashes),
                    ("peers".to_owned(), self.peers),
                ],
                outcomes,
            )
        } else {
            (
                vec![
                    ("infohashes".to_owned(), infohashes),
                    ("peers".to_owned(), self.peers),
                ],
                Vec::new(),
            )
        };
        Report {
            input: name.to_owned(),
            generated: now,
            totals,
            bucket_secs: bucket,
            timeline,
            outcomes,
            sizes,
            versions: VERSIONS
                .iter()
                .zip(versions)
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| ((*k).to_owned(), n))
                .collect(),
            // Files carry no category counts (export JSONL has them per torrent; the
            // report of an index counts them).
            categories: Vec::new(),
            clients: Vec::new(),
            intervals: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str) -> anyhow::Result<Report> {
        from_reader(text.as_bytes(), "in.csv", InputFormat::Csv, 7)
    }

    fn jsonl(text: &str) -> anyhow::Result<Report> {
        from_reader(text.as_bytes(), "in.jsonl", InputFormat::Jsonl, 7)
    }

    fn err(r: anyhow::Result<Report>) -> String {
        let e = r.unwrap_err();
        assert!(e.is::<UsageError>(), "{e}");
        let s = e.to_string();
        assert!(!s.contains('\n'), "{s:?}");
        s
    }

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "cccccccccccccccccccccccccccccccccccccccc";

    #[test]
    fn a_collect_csv_gives_outcomes_sizes_and_totals() {
        let text = format!(
            "{COLLECT_HEADER}\n\
             {A},\"<script>alert(1)</script>\",2,3145728,262144,127.0.0.1,1,True\n\
             {A},\"<script>alert(1)</script>\",2,3145728,262144,::1,2,True\n\
             {B},,0,0,0,,,False\n\
             {C},,0,0,0,10.0.0.1,3,False\n"
        );
        let r = csv(&text).unwrap();
        assert_eq!(r.input, "in.csv");
        assert_eq!(r.generated, 7);
        assert_eq!(
            r.totals,
            [
                ("torrents".into(), 1),
                ("files".into(), 2),
                ("total_bytes".into(), 3 << 20),
                ("infohashes".into(), 3),
                ("peers".into(), 3)
            ]
        );
        assert_eq!(
            r.outcomes,
            [
                ("fetch_failed".into(), 1),
                ("fetched".into(), 1),
                ("no_peers".into(), 1)
            ]
        );
        assert_eq!(r.sizes[size_bucket(3 << 20)], 1);
        assert_eq!(r.sizes.iter().sum::<u64>(), 1);
        assert!(r.versions.is_empty() && r.timeline.is_empty());
    }

    #[test]
    fn a_crawl_csv_gives_infohashes_and_peers() {
        let text = format!("{CRAWL_HEADER}\n{A},1.2.3.4,5\n{A},::1,6\n{B},1.2.3.4,5\n");
        let r = csv(&text).unwrap();
        assert_eq!(r.totals, [("infohashes".into(), 2), ("peers".into(), 3)]);
        assert!(r.outcomes.is_empty() && r.versions.is_empty());
        assert_eq!(r.sizes.iter().sum::<u64>(), 0);
    }

    #[test]
    fn export_and_collect_jsonl_give_versions_and_a_timeline() {
        let text = format!(
            "{{\"infohash\":\"{A}\",\"name\":\"x\",\"version\":\"hybrid\",\"file_count\":3,\
              \"total_bytes\":2048,\"metadata_ok\":true,\"discovered\":1714521600,\
              \"source\":\"sample\",\"peers\":[\"1.2.3.4:5\",\"[::1]:6\"]}}\n\
             \n\
             {{\"infohash\":\"{B}\",\"version\":\"v1\",\"file_count\":1,\"total_bytes\":1,\
              \"metadata_ok\":true,\"discovered\":1714608000,\"source\":\"announce\",\"peers\":[]}}\n\
             {{\"infohash\":\"{C}\",\"version\":null,\"file_count\":0,\"total_bytes\":0,\
              \"peer_ip\":null,\"peer_port\":null,\"metadata_ok\":false}}\n"
        );
        let r = jsonl(&text).unwrap();
        assert_eq!(r.total("torrents"), 2);
        assert_eq!(r.total("files"), 4);
        assert_eq!(r.total("total_bytes"), 2049);
        assert_eq!(r.total("peers"), 2);
        assert_eq!(r.versions, [("v1".into(), 1), ("hybrid".into(), 1)]);
        assert_eq!(r.bucket_secs, 3_600);
        assert_eq!(r.timeline.len(), 25);
        assert_eq!(r.timeline[0].sample, 1);
        assert_eq!(r.timeline[24].announce, 1);
        assert_eq!(r.outcomes, [("fetched".into(), 2), ("no_peers".into(), 1)]);
        let crawl = jsonl(&format!(
            "{{\"infohash\":\"{A}\",\"peer_ip\":\"::1\",\"peer_port\":1,\"source\":\"1.2.3.4:5\"}}\n"
        ))
        .unwrap();
        assert_eq!(
            crawl.totals,
            [("infohashes".into(), 1), ("peers".into(), 1)]
        );
    }

    #[test]
    fn malformed_rows_name_the_file_and_line() {
        let head = COLLECT_HEADER;
        let cases = [
            (
                format!("{head}\n{A},,0,0,0,,,True\nxyz,,0,0,0,,,True\n"),
                "in.csv:3: bad infohash \"xyz\"",
            ),
            (
                format!("{head}\n{A},,x,0,0,,,True\n"),
                "in.csv:2: bad file_count \"x\"",
            ),
            (
                format!("{head}\n{A},,0,0,0,1.2.3.4,,True\n"),
                "in.csv:2: bad peer_port \"\"",
            ),
            (
                format!("{head}\n{A},,0,0,0,,,maybe\n"),
                "in.csv:2: bad metadata_ok \"maybe\"",
            ),
            (
                format!("{head}\n{A},,0,0\n"),
                "in.csv:2: 4 fields, expected 8",
            ),
            (
                format!("{CRAWL_HEADER}\n{A},,\n"),
                "in.csv:2: the peer fields are empty",
            ),
            ("a,b\n1,2\n".to_owned(), "in.csv:1: unknown header \"a,b\""),
            (String::new(), "in.csv:1: empty file"),
        ];
        for (text, want) in cases {
            let e = err(csv(&text));
            assert!(e.starts_with(want), "{e}");
        }
        let cases = [
            ("{\"infohash\":\"<script>\n\"}\n", "in.jsonl:1: "),
            ("\n{\"infohash\":1}\n", "in.jsonl:2: invalid type"),
            (
                &*format!("{{\"infohash\":\"{A}\"}}\n"),
                "in.jsonl:1: neither",
            ),
            (
                &*format!("{{\"infohash\":\"{A}\",\"discovered\":1,\"source\":\"<b>\"}}\n"),
                "in.jsonl:1: bad source \"<b>\"",
            ),
            (
                &*format!("{{\"infohash\":\"{A}\",\"metadata_ok\":true,\"version\":\"v9\"}}\n"),
                "in.jsonl:1: bad version \"v9\"",
            ),
            ("{\"infohash\"\n", "in.jsonl:1: EOF"),
            (
                &*format!("{{\"infohash\":\"{A}\",\"discovered\":-1,\"source\":\"sample\"}}\n"),
                "in.jsonl:1: bad discovered -1",
            ),
        ];
        for (text, want) in cases {
            let e = err(jsonl(text));
            assert!(e.starts_with(want), "{e}");
        }
        let e = err(from_reader(&b"\xff\n"[..], "f", InputFormat::Jsonl, 0));
        assert_eq!(e, "f:1: not UTF-8");
        let e = err(from_reader(&b"x\n"[..], "a\nb", InputFormat::Csv, 0));
        assert!(e.starts_with("a b:1: unknown header"), "{e}");
    }

    #[test]
    fn an_empty_jsonl_is_an_empty_report() {
        let r = jsonl("").unwrap();
        assert_eq!(r.total("infohashes"), 0);
        assert!(r.timeline.is_empty());
    }
}
