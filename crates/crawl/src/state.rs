//! `--state FILE`: the good nodes of a crawl, saved at its end and tried first at the next
//! start (a warm start, so a run does not depend on the bootstrap routers every time).
//!
//! The file is text, one node per line, `IP:PORT HEX-ID` (`[IPv6]:PORT` for IPv6), after a
//! `#` comment line; it is written to `FILE.tmp` and renamed, so a killed run leaves the
//! previous file whole. A missing file is a first run; a malformed line is a one-line error
//! naming the file and the line, before any packet is sent.

use std::fs;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;
use estudely_krpc::{CompactNode, NodeId};

use crate::resolve::UsageError;

/// Most nodes saved.
pub const MAX_SAVED: usize = 1_000;

/// The nodes saved in `path`; none if it does not exist.
pub fn load(path: &Path) -> anyhow::Result<Vec<CompactNode>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            let msg = format!("cannot read --state file `{}`: {e}", path.display());
            return Err(UsageError(msg).into());
        }
    };
    let mut nodes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let node = parse_line(line).map_err(|why| {
            UsageError(format!(
                "--state file `{}` line {}: {why}",
                path.display(),
                i + 1
            ))
        })?;
        nodes.push(node);
        if nodes.len() >= MAX_SAVED {
            break;
        }
    }
    Ok(nodes)
}

fn parse_line(line: &str) -> Result<CompactNode, String> {
    let mut words = line.split_whitespace();
    let (Some(addr), Some(id), None) = (words.next(), words.next(), words.next()) else {
        return Err(format!("expected `IP:PORT HEX-ID`, got `{line}`"));
    };
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| format!("`{addr}` is not an IP:PORT address"))?;
    let id = NodeId::from_hex(id).ok_or_else(|| format!("node id `{id}` is not 40 hex digits"))?;
    Ok(CompactNode { id, addr })
}

/// Save `nodes` to `path` (through `path.tmp` and a rename).
pub fn save(path: &Path, nodes: &[CompactNode]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let write = || -> io::Result<()> {
        let mut f = io::BufWriter::new(fs::File::create(&tmp)?);
        writeln!(
            f,
            "# estudely crawl state: good DHT nodes, tried first at the next start"
        )?;
        for n in nodes.iter().take(MAX_SAVED) {
            writeln!(f, "{} {}", n.addr, hex::encode(n.id.0))?;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().with_context(|| format!("cannot write --state file `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.txt");
        assert!(load(&path).unwrap().is_empty(), "no file: a first run");
        let nodes = vec![
            CompactNode {
                id: NodeId([1; 20]),
                addr: "1.2.3.4:6881".parse().unwrap(),
            },
            CompactNode {
                id: NodeId([2; 20]),
                addr: "[2001:db8::1]:6881".parse().unwrap(),
            },
        ];
        save(&path, &nodes).unwrap();
        assert_eq!(load(&path).unwrap(), nodes);
        assert!(!path.with_extension("tmp").exists());

        fs::write(
            &path,
            "# c\n1.2.3.4:6881 0101010101010101010101010101010101010101\nnope\n",
        )
        .unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("nope"), "{err}");
        fs::write(&path, "1.2.3.4:6881 xyz\n").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains("line 1") && err.contains("40 hex digits"),
            "{err}"
        );
    }
}
