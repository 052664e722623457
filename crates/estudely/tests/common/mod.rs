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
    let started = Instant::now();
    let mut child = Command::new(BIN)
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
        .recv_timeout(Duration::from_secs(60))
        .expect("testnet: no bootstrap line within 60 s");
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
