//! The rows a crawl emits, one per (infohash, peer), and the append-only peers file.
//!
//! CSV rows follow the seed's `dht_crawler_min.py` contract exactly: the header
//! [`CSV_HEADER`], then `infohash,peer_ip,peer_port` with the infohash as 40 lower-case hex
//! digits and IPv6 addresses without brackets. Each row is built whole and written with one
//! `write` call, so a killed crawl leaves no half rows behind.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use estudely_krpc::InfoHash;
use serde::Serialize;

use crate::resolve::UsageError;

/// The CSV header, on stdout and at the top of a new peers file.
pub use estudely_usage::PEERS_CSV_HEADER as CSV_HEADER;

/// One (infohash, peer) finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRow {
    /// The torrent.
    pub info_hash: InfoHash,
    /// A peer of it.
    pub peer: SocketAddr,
    /// The node whose BEP 51 sample listed the infohash (or that announced it to our node),
    /// if known.
    pub source: Option<SocketAddr>,
}

#[derive(Serialize)]
struct JsonRow {
    infohash: String,
    peer_ip: String,
    peer_port: u16,
    source: Option<String>,
}

/// Whether a peer may be written as a row. Port 0 is no port anyone listens on (and
/// `estudely metadata` rejects such rows), so a peer on port 0 is never written; the
/// commands drop it and count it in their summaries.
pub fn writable_peer(peer: &SocketAddr) -> bool {
    peer.port() != 0
}

impl PeerRow {
    /// `infohash,peer_ip,peer_port\n`.
    pub fn csv(&self) -> String {
        format!(
            "{},{},{}\n",
            self.info_hash.to_hex(),
            self.peer.ip(),
            self.peer.port()
        )
    }

    /// One JSON object and a newline: `infohash`, `peer_ip`, `peer_port`, `source`.
    pub fn jsonl(&self) -> String {
        let row = JsonRow {
            infohash: self.info_hash.to_hex(),
            peer_ip: self.peer.ip().to_string(),
            peer_port: self.peer.port(),
            source: self.source.map(|s| s.to_string()),
        };
        // Serialising plain strings and numbers cannot fail.
        let mut line = serde_json::to_string(&row).unwrap_or_default();
        line.push('\n');
        line
    }
}

/// A CSV file that rows are appended to, with the header only at the top of a new (or empty)
/// file.
#[derive(Debug)]
pub struct PeersFile {
    file: File,
    path: PathBuf,
}

impl PeersFile {
    /// Open `path` for appending, creating it. Fails with a [`UsageError`] naming the path
    /// when it cannot be written. Call [`PeersFile::start`] before the first row.
    pub fn open(path: &Path) -> Result<PeersFile, UsageError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Self::error(path, &e))?;
        Ok(PeersFile {
            file,
            path: path.to_owned(),
        })
    }

    /// Write the header if the file is empty (new, or emptied since).
    pub fn start(&mut self) -> Result<(), UsageError> {
        let bad = |e: io::Error| Self::error(&self.path, &e);
        if self.file.metadata().map_err(bad)?.len() == 0 {
            let header = format!("{CSV_HEADER}\n");
            self.file.write_all(header.as_bytes()).map_err(bad)?;
        }
        Ok(())
    }

    fn error(path: &Path, e: &io::Error) -> UsageError {
        UsageError(format!("cannot write peers file `{}`: {e}", path.display()))
    }

    /// Append one row (a single write; the file is unbuffered, so nothing waits in memory).
    pub fn append(&mut self, row: &PeerRow) -> io::Result<()> {
        self.file.write_all(row.csv().as_bytes())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_json_rows() {
        let ih = InfoHash::from_hex("0123456789ABCDEF0123456789abcdef01234567").unwrap();
        let v6 = PeerRow {
            info_hash: ih,
            peer: "[::1]:6881".parse().unwrap(),
            source: Some("[::1]:7000".parse().unwrap()),
        };
        assert_eq!(
            v6.csv(),
            "0123456789abcdef0123456789abcdef01234567,::1,6881\n"
        );
        let json: serde_json::Value = serde_json::from_str(&v6.jsonl()).unwrap();
        assert_eq!(json["peer_ip"], "::1");
        assert_eq!(json["peer_port"], 6881);
        assert_eq!(json["source"], "[::1]:7000");
        let v4 = PeerRow {
            peer: "10.0.0.1:1".parse().unwrap(),
            source: None,
            ..v6
        };
        assert!(v4.csv().ends_with(",10.0.0.1,1\n"));
    }

    #[test]
    fn port_zero_is_not_writable() {
        assert!(writable_peer(&"1.2.3.4:1".parse().unwrap()));
        assert!(writable_peer(&"[::1]:65535".parse().unwrap()));
        assert!(!writable_peer(&"1.2.3.4:0".parse().unwrap()));
        assert!(!writable_peer(&"[::1]:0".parse().unwrap()));
    }

    #[test]
    fn header_only_once() {
        let dir = std::env::temp_dir().join(format!("estudely-rows-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("peers.csv");
        let _ = std::fs::remove_file(&path);
        let row = PeerRow {
            info_hash: InfoHash([0xab; 20]),
            peer: "1.2.3.4:5".parse().unwrap(),
            source: None,
        };
        for _ in 0..2 {
            let mut file = PeersFile::open(&path).unwrap();
            file.start().unwrap();
            file.append(&row).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{CSV_HEADER}\n{}{}", row.csv(), row.csv()));
        assert!(PeersFile::open(&dir).unwrap_err().0.contains("peers file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
