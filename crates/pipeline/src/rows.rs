//! The row sinks of `collect` and `demo`: the seed's CSV (one row per (infohash, peer
//! considered), `infohash,name,file_count,total_bytes,piece_length,peer_ip,peer_port,metadata_ok`)
//! or JSON lines with the same fields plus `name_hex`, `version` and the swarm's BEP 33
//! estimates (`seeds_estimate`, `peers_estimate`: null when no node sent a scrape filter),
//! each row flushed as soon as it is written.

use std::io::{self, Write};
use std::net::SocketAddr;

use anyhow::Context as _;
use estudely_krpc::InfoHash;
use estudely_peer_wire::InfoSummary;
use serde::Serialize;

use super::{RowSink, Scrape};
use crate::names::csv_name;
use estudely_fetch::FetchedMetadata;
use estudely_store::version_str;

/// The seed's column order.
pub use estudely_store::COLLECT_CSV_HEADER as HEADER;

/// Row formats of `estudely collect`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RowFormat {
    /// The seed's CSV, with a header line.
    #[default]
    Csv,
    /// One JSON object per row, the same fields plus `name_hex`, `version`,
    /// `seeds_estimate` and `peers_estimate`.
    Jsonl,
}

#[derive(Serialize)]
struct JsonRow<'a> {
    infohash: String,
    /// The full SHA-256 infohash of a v2 or hybrid torrent.
    infohash_v2: Option<String>,
    name: String,
    name_hex: String,
    version: Option<&'a str>,
    file_count: u64,
    total_bytes: u64,
    piece_length: u64,
    peer_ip: Option<String>,
    peer_port: Option<u16>,
    metadata_ok: bool,
    seeds_estimate: Option<u32>,
    peers_estimate: Option<u32>,
}

/// Writes `collect`'s rows to `W` (stdout), each flushed as soon as it is written.
pub struct Out<W: Write> {
    format: RowFormat,
    w: W,
    /// Rows written.
    pub rows: u64,
    /// Infohashes written with metadata.
    pub with_metadata: usize,
}

impl<W: Write> Out<W> {
    /// Rows in `format` to `w`.
    pub fn new(format: RowFormat, w: W) -> Out<W> {
        Out {
            format,
            w,
            rows: 0,
            with_metadata: 0,
        }
    }

    /// Write the header line (CSV only).
    pub fn header(&mut self) -> io::Result<()> {
        if self.format == RowFormat::Csv {
            writeln!(self.w, "{HEADER}")?;
            self.w.flush()?;
        }
        Ok(())
    }

    /// Write the rows of one infohash: one per peer considered (one with empty peer fields
    /// when none was found). `v2` is the full SHA-256 infohash of a v2 or hybrid torrent;
    /// it and the estimates only go into JSON lines (the CSV's columns are fixed).
    pub fn infohash(
        &mut self,
        ih: InfoHash,
        peers: &[SocketAddr],
        meta: Option<&InfoSummary>,
        v2: Option<[u8; 32]>,
        scrape: Scrape,
    ) -> io::Result<()> {
        self.with_metadata += usize::from(meta.is_some());
        let none: [Option<SocketAddr>; 1] = [None];
        let some: Vec<Option<SocketAddr>> = peers.iter().copied().map(Some).collect();
        let peers = if some.is_empty() {
            &none[..]
        } else {
            &some[..]
        };
        for peer in peers {
            self.rows += 1;
            let (files, total, piece) =
                meta.map_or((0, 0, 0), |m| (m.file_count, m.total_bytes, m.piece_length));
            let (ip, port) = (peer.map(|p| p.ip().to_string()), peer.map(|p| p.port()));
            match self.format {
                RowFormat::Csv => {
                    let ok = if meta.is_some() { "True" } else { "False" };
                    // Each row is built whole, then written with one call.
                    let mut line = csv::WriterBuilder::new()
                        .has_headers(false)
                        .from_writer(Vec::new());
                    line.write_record([
                        ih.to_hex(),
                        meta.map(|m| csv_name(&m.name)).unwrap_or_default(),
                        files.to_string(),
                        total.to_string(),
                        piece.to_string(),
                        ip.unwrap_or_default(),
                        port.map(|p| p.to_string()).unwrap_or_default(),
                        ok.to_owned(),
                    ])
                    .map_err(io::Error::other)?;
                    let line = line.into_inner().map_err(|e| e.into_error())?;
                    self.w.write_all(&line)?;
                    self.w.flush()?;
                }
                RowFormat::Jsonl => {
                    let row = JsonRow {
                        infohash: ih.to_hex(),
                        infohash_v2: v2.map(hex::encode),
                        name: meta.map(InfoSummary::name_lossy).unwrap_or_default(),
                        name_hex: meta.map(|m| hex::encode(&m.name)).unwrap_or_default(),
                        version: meta.map(|m| version_str(m.version)),
                        file_count: files,
                        total_bytes: total,
                        piece_length: piece,
                        peer_ip: ip,
                        peer_port: port,
                        metadata_ok: meta.is_some(),
                        seeds_estimate: scrape.seeds,
                        peers_estimate: scrape.peers,
                    };
                    let mut line = serde_json::to_vec(&row)?;
                    line.push(b'\n');
                    self.w.write_all(&line)?;
                    self.w.flush()?;
                }
            }
        }
        Ok(())
    }
}

impl<W: Write> RowSink for Out<W> {
    fn done(
        &mut self,
        ih: InfoHash,
        peers: &[SocketAddr],
        fetched: Option<&FetchedMetadata>,
        _failure: Option<estudely_fetch::FailureKind>,
        scrape: Scrape,
    ) -> anyhow::Result<()> {
        self.infohash(
            ih,
            peers,
            fetched.map(|m| &m.summary),
            fetched.and_then(FetchedMetadata::info_hash_v2),
            scrape,
        )
        .context("cannot write to stdout")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::csv_name_unescape;

    #[test]
    fn rows_escape_the_name_in_csv_and_keep_it_in_jsonl() {
        let raw_name: &[u8] = b"odd\n,\"name\"\xff\\";
        let mut info = format!("d6:lengthi5e4:name{}:", raw_name.len()).into_bytes();
        info.extend_from_slice(raw_name);
        info.extend_from_slice(b"12:piece lengthi16384e6:pieces20:");
        info.extend_from_slice(&[7; 20]);
        info.push(b'e');
        let meta = InfoSummary::parse(&info).unwrap();
        let ih = InfoHash([0xab; 20]);
        let peers: [SocketAddr; 2] = ["127.0.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap()];

        let mut out = Out::new(RowFormat::Csv, Vec::new());
        out.header().unwrap();
        out.infohash(ih, &peers, Some(&meta), None, Scrape::default())
            .unwrap();
        out.infohash(InfoHash([1; 20]), &[], None, None, Scrape::default())
            .unwrap();
        let text = String::from_utf8(out.w.clone()).unwrap();
        let hex = "ab".repeat(20);
        let name = r#""odd\x0a,""name""\xff\\""#;
        let want = format!(
            "{HEADER}\n\
             {hex},{name},1,5,16384,127.0.0.1,1,True\n\
             {hex},{name},1,5,16384,::1,2,True\n\
             {},,0,0,0,,,False\n",
            "01".repeat(20)
        );
        assert_eq!(text, want);
        assert_eq!((out.rows, out.with_metadata), (3, 1));
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let first = r.records().next().unwrap().unwrap();
        assert_eq!(csv_name_unescape(&first[1]).unwrap(), raw_name);

        let mut out = Out::new(RowFormat::Jsonl, Vec::new());
        out.header().unwrap();
        let scrape = Scrape {
            seeds: Some(3),
            peers: None,
        };
        out.infohash(ih, &peers[..1], Some(&meta), Some([0xab; 32]), scrape)
            .unwrap();
        let text = String::from_utf8(out.w.clone()).unwrap();
        let row: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(row["name"], "odd\u{fffd},\"name\"\u{fffd}\\");
        assert_eq!(row["name_hex"], hex::encode(raw_name));
        assert_eq!(row["peer_port"], 1);
        assert_eq!(row["infohash_v2"], "ab".repeat(32));
        assert_eq!(row["seeds_estimate"], 3);
        assert!(row["peers_estimate"].is_null());
    }
}
