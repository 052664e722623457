//! Helpers shared by the end-to-end tests that run `estudely testnet` as a user would.
#![allow(dead_code)] // each test file uses a different subset

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_estudely");

/// A child process, killed when dropped (also when an assertion fails).
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `estudely testnet ARGS --manifest PATH`; return it with its bootstrap address and
/// manifest once the `bootstrap ADDR` line is out (at most 60 s).
pub fn testnet(args: &[&str], manifest: &Path) -> (Proc, String, Value) {
    testnet_with(Command::new(BIN), args, manifest, Duration::from_secs(60))
}

/// [`testnet`] started through `cmd` (e.g. `ip netns exec NS estudely`), waiting at most
/// `limit` for its `bootstrap ADDR` line.
pub fn testnet_with(
    mut cmd: Command,
    args: &[&str],
    manifest: &Path,
    limit: Duration,
) -> (Proc, String, Value) {
    let started = Instant::now();
    let mut child = cmd
        .arg("testnet")
        .args(args)
        .arg("--manifest")
        .arg(manifest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start estudely testnet");
    let stdout = child.stdout.take().expect("piped stdout");
    let proc = Proc(child);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("testnet: no bootstrap line within {limit:?}"));
    eprintln!("testnet ready in {:.2} s", started.elapsed().as_secs_f64());
    let boot = line
        .trim()
        .strip_prefix("bootstrap ")
        .unwrap_or_else(|| panic!("first line is not `bootstrap ADDR`: {line:?}"))
        .to_owned();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(manifest).expect("manifest written"))
            .expect("manifest is JSON");
    assert_eq!(manifest["bootstrap"], boot.as_str());
    (proc, boot, manifest)
}

/// The manifest's torrents, typed.
pub fn torrents(manifest: &Value) -> Vec<estudely::testnet::ManifestTorrent> {
    serde_json::from_value(manifest["torrents"].clone()).expect("manifest torrents")
}

/// The infohashes (hex) of the manifest's torrents that are served (metadata and peers).
pub fn served_keys(manifest: &Value) -> std::collections::BTreeSet<String> {
    torrents(manifest)
        .into_iter()
        .filter(|t| t.kind == estudely::testnet::TorrentKind::Ok)
        .map(|t| t.infohash)
        .collect()
}

/// A torrent's exact name bytes, from the manifest's `name_hex`.
pub fn name_bytes(t: &estudely::testnet::ManifestTorrent) -> Vec<u8> {
    hex::decode(&t.name_hex).expect("name_hex is hex")
}

/// A finished process: its exit status and everything it printed.
pub struct Finished {
    pub status: std::process::ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// [`run_bounded`] on a thread of its own, for runs that go on side by side.
pub fn spawn_bounded(args: Vec<String>, limit: Duration) -> thread::JoinHandle<Finished> {
    thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_bounded(&args, limit)
    })
}

/// Run `estudely ARGS` to its end. `limit` only guards against a hang (the process is
/// killed and the test fails); it is not a property under test.
pub fn run_bounded(args: &[&str], limit: Duration) -> Finished {
    use std::io::Read;
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start estudely");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let mut proc = Proc(child);
    let reader = thread::spawn(move || {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let errs = thread::spawn(move || {
            let _ = err.read_to_end(&mut e);
            e
        });
        let _ = out.read_to_end(&mut o);
        (o, errs.join().unwrap_or_default())
    });
    let status = loop {
        if let Some(s) = proc.0.try_wait().expect("try_wait") {
            break s;
        }
        assert!(
            started.elapsed() < limit,
            "estudely {args:?} still running after {limit:?}: killed"
        );
        thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = reader.join().expect("reader thread");
    Finished {
        status,
        stdout,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Undo the escaping of names in the CSV outputs: `\xHH` is the byte 0xHH, `\uHHHH` the
/// character U+HHHH (UTF-8 encoded), `\\` a backslash; every other character stands for
/// its UTF-8 bytes. Panics on any other use of a backslash, or on upper-case hex digits.
pub fn unescape_name(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    let hex = |chars: &mut std::str::Chars, n: usize| -> u32 {
        let digits: String = chars.by_ref().take(n).collect();
        let ok = digits.len() == n
            && digits
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        assert!(
            ok,
            "not {n} lower-case hex digits after a backslash in {s:?}"
        );
        u32::from_str_radix(&digits, 16).unwrap()
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('\\') => out.push(b'\\'),
            Some('x') => out.push(hex(&mut chars, 2) as u8),
            Some('u') => {
                let c = char::from_u32(hex(&mut chars, 4)).expect("a \\u escape is a char");
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            other => panic!("bad escape \\{other:?} in {s:?}"),
        }
    }
    out
}

/// The escaping rule, written independently of the binary: valid UTF-8 is kept, except C0
/// controls and DEL (`\xHH`), C1 controls (`\uHHHH`) and the backslash (`\\`); every byte
/// that is not part of valid UTF-8 is `\xHH`. Hex digits are lower case.
pub fn escape_name(name: &[u8]) -> String {
    let mut out = String::new();
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\u{0}'..='\u{1f}' | '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
                '\u{80}'..='\u{9f}' => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Why the crawl driver says it stopped (`Done`, `Timeout`, ...), from the `crawl stopped`
/// line it logs at debug level (run with `RUST_LOG=warn,estudely::crawl::driver=debug`).
pub fn stop_reason(stderr: &str) -> &str {
    let line = stderr
        .lines()
        .find(|l| l.contains("crawl stopped"))
        .unwrap_or_else(|| panic!("no `crawl stopped` line in stderr:\n{stderr}"));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("reason="))
        .unwrap_or_else(|| panic!("no reason= in {line}"))
}
