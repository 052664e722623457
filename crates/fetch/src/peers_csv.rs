//! Reading the peers CSV that `estudely crawl` (and the legacy `dht_crawler_min.py`) write:
//! a header `infohash,peer_ip,peer_port`, then rows `40hex,ip,port` with IPv6 addresses
//! written without brackets. Peers are grouped into one [`Job`] per infohash, in first-seen
//! order.
//!
//! The input is lenient where it costs nothing: blank lines and repeated headers (files
//! appended to by several runs) are skipped, hex may be upper case, fields may be padded
//! with spaces, IPv6 addresses may be bracketed. Anything else malformed is a [`BadRow`]
//! naming its line, and the rest of the file is still read.
//!
//! [`read`] takes a whole file; [`RowReader`] hands out one row at a time, as it arrives,
//! for `estudely metadata -` reading a crawl's output while the crawl runs.

use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};

use estudely_krpc::InfoHash;

use super::Job;

/// The header line.
pub const HEADER: [&str; 3] = ["infohash", "peer_ip", "peer_port"];

/// A row that was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// 1-based line number in the input.
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// The parsed input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeersInput {
    /// One job per infohash, in first-seen order; peers deduplicated and capped.
    pub jobs: Vec<Job>,
    /// Rows read (good or bad), headers and blank lines not counted.
    pub rows: u64,
    /// Rows skipped as malformed.
    pub bad: Vec<BadRow>,
    /// Peers left out because their infohash already had `peers_per_infohash` of them.
    pub capped: u64,
}

/// One record of a peers CSV, as [`RowReader`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A good row.
    Peer {
        /// 1-based line number in the input.
        line: u64,
        /// The infohash.
        info_hash: InfoHash,
        /// The peer.
        peer: SocketAddr,
    },
    /// A malformed row: skipped, to be reported with its line.
    Bad(BadRow),
    /// A record the CSV reader could not make out at all (line 0): skipped and reported,
    /// not counted as a row.
    Unreadable(BadRow),
}

/// Reads a peers CSV one record at a time, blocking on the input only until the record's
/// line is complete: for a stream (a pipe from `estudely crawl`), each row is returned as
/// soon as it has arrived. Headers (repeated ones too) and blank lines are skipped.
pub struct RowReader<R: Read> {
    reader: csv::Reader<R>,
    record: csv::ByteRecord,
}

impl<R: Read> RowReader<R> {
    /// A reader of `input`.
    pub fn new(input: R) -> RowReader<R> {
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(input);
        RowReader {
            reader,
            record: csv::ByteRecord::new(),
        }
    }

    /// The next record; `None` at the end of the input. Fails only on a read error.
    pub fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            match self.reader.read_byte_record(&mut self.record) {
                Ok(false) => return Ok(None),
                Ok(true) => {}
                Err(e) => match e.into_kind() {
                    csv::ErrorKind::Io(e) => return Err(e),
                    // The csv reader recovers from anything but I/O; report and go on.
                    other => {
                        return Ok(Some(Line::Unreadable(BadRow {
                            line: 0,
                            reason: format!("{other:?}"),
                        })))
                    }
                },
            }
            if is_header(&self.record) {
                continue;
            }
            let line = self.record.position().map_or(0, |p| p.line());
            return Ok(Some(match parse_row(&self.record) {
                Ok((info_hash, peer)) => Line::Peer {
                    line,
                    info_hash,
                    peer,
                },
                Err(reason) => Line::Bad(BadRow { line, reason }),
            }));
        }
    }
}

/// Read a peers CSV, keeping at most `peers_per_infohash` distinct peers per infohash.
/// Fails only on a read error; malformed rows end up in [`PeersInput::bad`].
pub fn read(input: impl Read, peers_per_infohash: usize) -> std::io::Result<PeersInput> {
    let mut rows = RowReader::new(input);
    let mut out = PeersInput::default();
    let mut index: HashMap<InfoHash, usize> = HashMap::new();
    while let Some(line) = rows.next_line()? {
        let (info_hash, peer) = match line {
            Line::Peer {
                info_hash, peer, ..
            } => (info_hash, peer),
            Line::Bad(bad) => {
                out.rows += 1;
                out.bad.push(bad);
                continue;
            }
            Line::Unreadable(bad) => {
                out.bad.push(bad);
                continue;
            }
        };
        out.rows += 1;
        let i = *index.entry(info_hash).or_insert_with(|| {
            out.jobs.push(Job {
                info_hash,
                peers: Vec::new(),
            });
            out.jobs.len() - 1
        });
        let peers = &mut out.jobs[i].peers;
        if peers.contains(&peer) {
            continue;
        }
        if peers.len() >= peers_per_infohash {
            out.capped += 1;
        } else {
            peers.push(peer);
        }
    }
    Ok(out)
}

/// An infohash as 40 hex digits, or 64 (a v2 infohash, truncated to its 20-byte DHT key).
///
/// ```
/// use estudely_fetch::info_hash_hex;
/// assert!(info_hash_hex("0123456789abcdef0123456789abcdef01234567").is_some());
/// assert!(info_hash_hex("not hex").is_none());
/// ```
pub fn info_hash_hex(s: &str) -> Option<InfoHash> {
    match s.len() {
        40 => InfoHash::from_hex(s),
        64 => InfoHash::from_hex(s.get(..40)?).filter(|_| hex::decode(s).is_ok()),
        _ => None,
    }
}

fn is_header(record: &csv::ByteRecord) -> bool {
    record.len() == 3
        && record
            .iter()
            .zip(HEADER)
            .all(|(f, h)| f.eq_ignore_ascii_case(h.as_bytes()))
}

/// One row as (infohash, peer), or why not.
fn parse_row(record: &csv::ByteRecord) -> Result<(InfoHash, SocketAddr), String> {
    if record.len() != 3 {
        return Err(format!(
            "expected 3 columns (infohash,peer_ip,peer_port), found {}",
            record.len()
        ));
    }
    let field = |i: usize| {
        std::str::from_utf8(&record[i]).map_err(|_| format!("column {} is not UTF-8", i + 1))
    };
    let (hash, ip, port) = (field(0)?, field(1)?, field(2)?);
    let info_hash = info_hash_hex(hash)
        .ok_or_else(|| format!("infohash `{hash}` is not 40 or 64 hex digits"))?;
    let ip: IpAddr = ip
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(ip)
        .parse()
        .map_err(|_| format!("`{ip}` is not an IP address"))?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("port `{port}` is not a number from 1 to 65535"))?;
    Ok((info_hash, SocketAddr::new(ip, port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn groups_dedupes_caps_and_reports_lines() {
        let input = format!(
            "infohash,peer_ip,peer_port\n\
             {A},1.2.3.4,5\n\
             {},::1,6\n\
             \n\
             {A},1.2.3.4,5\n\
             infohash,peer_ip,peer_port\n\
             {A},[2001:db8::1],7\n\
             {A},1.2.3.4,0\n\
             xyz,1.2.3.4,5\n\
             {A},1.2.3,5\n\
             {A},1.2.3.4\n\
             {A}, 9.9.9.9 ,9\n",
            A.to_uppercase().replace('0', "f")
        );
        let got = read(input.as_bytes(), 2).unwrap();
        assert_eq!(got.jobs.len(), 2);
        assert_eq!(got.jobs[0].info_hash.to_hex(), A);
        assert_eq!(
            got.jobs[0].peers,
            [
                "1.2.3.4:5".parse().unwrap(),
                "[2001:db8::1]:7".parse().unwrap()
            ]
        );
        assert_eq!(got.jobs[1].peers, ["[::1]:6".parse().unwrap()]);
        assert_eq!(got.capped, 1);
        let lines: Vec<u64> = got.bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [8, 9, 10, 11], "{:?}", got.bad);
        assert!(got.bad[0].reason.contains("port `0`"));
        assert!(got.bad[1].reason.contains("`xyz`"));
        assert!(got.bad[2].reason.contains("`1.2.3`"));
        assert!(got.bad[3].reason.contains("found 2"));
        assert_eq!(got.rows, 9);
    }
}
