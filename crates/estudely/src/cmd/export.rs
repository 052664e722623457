//! `estudely export`: the index as collect's CSV (one row per torrent and peer) or as JSONL
//! (one object per torrent, with its files and peers), oldest discovery first, streamed.

use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;

use clap::{Args, ValueEnum};

use crate::cmd::collect::HEADER;
use crate::cmd::db::DbArgs;
use crate::output::csv_name;
use crate::store::json::torrent_line as json_line;
use crate::store::search_query::{days_from_civil, days_in};
use crate::store::StoredTorrent;

/// `estudely export --help` epilogue.
pub const EXAMPLES: &str = "CSV: collect's columns, one row per (torrent, peer), one row with empty
peer fields for a torrent with no peer; metadata_ok is always True (the index only holds
torrents whose metadata was verified); name escaped as collect does (\\xHH, \\uHHHH, \\\\).
JSONL: one object per torrent (not per peer): collect's fields without peer_ip/peer_port,
plus infohash_v2 (64 hex digits or null), private, discovered and last_seen (unix
seconds), source, files ([{path, path_hex, length}], path_hex only when path is not exact:
the raw components in hex), files_omitted, and peers ([\"IP:PORT\", ...]).
Peers are the addresses seen by announce_peer or get_peers.

--since takes unix seconds, a date (2024-05-01, UTC midnight) or an RFC 3339 time
(2024-05-01T12:00:00Z, 2024-05-01T14:00:00+02:00).

Examples:
  estudely export --format csv > torrents.csv
  estudely export --db crawl.sqlite --format jsonl --since 2024-05-01 > may.jsonl";

/// `estudely export ...`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Which index.
    #[command(flatten)]
    pub db: DbArgs,
    /// How to write torrents.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Only torrents discovered at or after T.
    #[arg(long, value_name = "T", value_parser = parse_since)]
    pub since: Option<i64>,
}

/// Output formats of `estudely export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Collect's CSV, with a header line.
    Csv,
    /// One JSON object per torrent.
    Jsonl,
}

/// Run `estudely export ...`.
pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let mut store = args.db.open_read_only()?;
    let mut w = BufWriter::new(io::stdout().lock());
    if args.format == ExportFormat::Csv {
        writeln!(w, "{HEADER}")?;
    }
    store.export(args.since, &mut |st, peers| {
        let bytes = match args.format {
            ExportFormat::Csv => csv_rows(st, peers)?,
            ExportFormat::Jsonl => json_line(st, peers)?,
        };
        w.write_all(&bytes)?;
        Ok(())
    })?;
    w.flush()?;
    Ok(())
}

/// Collect's CSV rows for one torrent: one per peer, or one with empty peer fields.
pub fn csv_rows(st: &StoredTorrent, peers: &[SocketAddr]) -> anyhow::Result<Vec<u8>> {
    let t = &st.torrent;
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    let none = [None];
    let some: Vec<Option<SocketAddr>> = peers.iter().copied().map(Some).collect();
    for peer in if some.is_empty() {
        &none[..]
    } else {
        &some[..]
    } {
        w.write_record([
            t.info_hash.to_hex(),
            csv_name(&t.name),
            t.file_count.to_string(),
            t.total_bytes.to_string(),
            t.piece_length.to_string(),
            peer.map(|p| p.ip().to_string()).unwrap_or_default(),
            peer.map(|p| p.port().to_string()).unwrap_or_default(),
            "True".to_owned(),
        ])?;
    }
    Ok(w.into_inner().map_err(|e| e.into_error())?)
}

/// `--since`: unix seconds, `YYYY-MM-DD` (UTC midnight) or an RFC 3339 time.
pub fn parse_since(s: &str) -> Result<i64, String> {
    let bad = || format!("`{s}` is not unix seconds, a YYYY-MM-DD date or an RFC 3339 time");
    if let Ok(secs) = s.parse::<i64>() {
        return Ok(secs);
    }
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let d = b.get(r)?;
        d.iter()
            .all(u8::is_ascii_digit)
            .then(|| std::str::from_utf8(d).ok()?.parse().ok())?
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return Err(bad());
    };
    if !sep(4, b"-") || !sep(7, b"-") || !(1..=12).contains(&m) || !(1..=days_in(y, m)).contains(&d)
    {
        return Err(bad());
    }
    let day = days_from_civil(y, m, d) * 86_400;
    if b.len() == 10 {
        return Ok(day);
    }
    let (Some(hh), Some(mm), Some(ss)) = (num(11..13), num(14..16), num(17..19)) else {
        return Err(bad());
    };
    if !sep(10, b"Tt ") || !sep(13, b":") || !sep(16, b":") || hh > 23 || mm > 59 || ss > 60 {
        return Err(bad());
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        rest = &frac[digits..];
    }
    let offset = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| -> Option<i64> {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i64::from((a - b'0') * 10 + b - b'0'))
            };
            let (Some(oh), Some(om)) = (two(*h1, *h2), two(*m1, *m2)) else {
                return Err(bad());
            };
            if oh > 23 || om > 59 {
                return Err(bad());
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return Err(bad()),
    };
    Ok(day + hh * 3600 + mm * 60 + ss - offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Source, Torrent};
    use estudely_krpc::InfoHash;
    use estudely_peer_wire::{FileEntry, Version};

    #[test]
    fn since_forms() {
        assert_eq!(parse_since("1700000000"), Ok(1_700_000_000));
        assert_eq!(parse_since("1970-01-01"), Ok(0));
        assert_eq!(parse_since("2023-11-14"), Ok(1_699_920_000));
        assert_eq!(parse_since("2024-02-29"), Ok(1_709_164_800));
        assert_eq!(parse_since("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
        assert_eq!(parse_since("2023-11-14 22:13:20.5z"), Ok(1_700_000_000));
        assert_eq!(parse_since("2023-11-15T00:13:20+02:00"), Ok(1_700_000_000));
        assert_eq!(parse_since("2023-11-14T21:13:20-01:00"), Ok(1_700_000_000));
        for bad in [
            "",
            "x",
            "2023-13-01",
            "2023-02-29",
            "2023-11-14T25:00:00Z",
            "2023-11-14T22:13:20",
            "2023-11-14T22:13:20+2",
            "2023/11/14",
            "2023-11-14Tjunk",
            "2023-11-14T22:13:20.Z",
            "２０２３-11-14",
        ] {
            let e = parse_since(bad).unwrap_err();
            assert!(e.contains(&format!("`{bad}`")), "{bad}: {e}");
        }
    }

    fn sample() -> StoredTorrent {
        StoredTorrent {
            torrent: Torrent {
                info_hash: InfoHash([0xaa; 20]),
                info_hash_v2: Some([0xbb; 32]),
                name: b"a,\"b\"\n\xff".to_vec(),
                total_bytes: 3,
                piece_length: 16384,
                file_count: 3,
                private: true,
                version: Version::Hybrid,
                files: vec![
                    FileEntry {
                        path: vec![b"d".to_vec(), b"ok.txt".to_vec()],
                        length: 1,
                    },
                    FileEntry {
                        path: vec![b"a/b".to_vec()],
                        length: 2,
                    },
                ],
                discovered: 10,
                source: Source::Announce,
                seeds_estimate: Some(4),
                peers_estimate: None,
                category: None,
                release: None,
            },
            files_omitted: 1,
            last_seen: 20,
            estimated_at: Some(15),
        }
    }

    #[test]
    fn csv_rows_like_collect() {
        let st = sample();
        let none = String::from_utf8(csv_rows(&st, &[]).unwrap()).unwrap();
        let ih = "aa".repeat(20);
        assert_eq!(
            none,
            format!("{ih},\"a,\"\"b\"\"\\x0a\\xff\",3,3,16384,,,True\n")
        );
        let peers = ["1.2.3.4:5".parse().unwrap(), "[::1]:6".parse().unwrap()];
        let two = String::from_utf8(csv_rows(&st, &peers).unwrap()).unwrap();
        let lines: Vec<&str> = two.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].ends_with(",1.2.3.4,5,True") && lines[1].ends_with(",::1,6,True"),
            "{two}"
        );
    }

    #[test]
    fn json_one_object_per_torrent() {
        let st = sample();
        let line = json_line(&st, &["1.2.3.4:5".parse().unwrap()]).unwrap();
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["infohash_v2"], "bb".repeat(32));
        assert_eq!(v["name_hex"], "612c2262220aff");
        assert_eq!(v["peers"], serde_json::json!(["1.2.3.4:5"]));
        assert_eq!(
            v["files"][0],
            serde_json::json!({"path": "d/ok.txt", "length": 1})
        );
        assert_eq!(v["files"][1]["path_hex"], serde_json::json!(["612f62"]));
        assert_eq!(v["files_omitted"], 1);
        assert_eq!(v["seeds_estimate"], 4);
        assert!(v["peers_estimate"].is_null());
        assert_eq!(v["estimated_at"], 15);
        assert_eq!(
            (v["private"].clone(), v["source"].clone()),
            (true.into(), "announce".into())
        );
        assert_eq!(
            (v["discovered"].clone(), v["last_seen"].clone()),
            (10.into(), 20.into())
        );
        assert_eq!(v["metadata_ok"], true);
    }
}
