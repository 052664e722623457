//! `estudely serve` (or `run --serve`) started as a user would, for the tests that ask its
//! pages: include it with `#[path = "common/web.rs"] mod web;` beside `mod common;` and
//! `#[path = "common/chromium.rs"] mod chromium;` (its HTTP client).
#![allow(dead_code)] // each test file uses a different subset

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::Value;

use super::chromium::http::{self, Response};
use super::common::{Proc, BIN};

/// How long a server may take to name its address.
const START: Duration = Duration::from_secs(120);

/// A web server, killed when dropped; its stderr kept in `log`.
pub struct Web {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<String>>,
}

impl Web {
    /// `estudely ARGS`, whose stderr names its address in a `web UI at http://ADDR/` line.
    pub fn start(args: &[&str]) -> Web {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start estudely");
        let err = child.stderr.take().unwrap();
        let proc = Proc(child);
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let keep = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("web UI at http://").nth(1) {
                    let _ = tx.send(rest.trim_end_matches('/').to_owned());
                }
                let mut log = keep.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = match rx.recv_timeout(START) {
            Ok(a) => a.parse().expect("an address"),
            Err(_) => panic!(
                "estudely {args:?} named no address:\n{}",
                log.lock().unwrap()
            ),
        };
        Web { proc, addr, log }
    }

    /// What it has written to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `http://ADDR/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET path`, whatever the answer.
    pub fn get(&self, path: &str) -> Response {
        http::get(self.addr, path, None)
    }

    /// `GET path`, expecting 200.
    pub fn ok(&self, path: &str) -> Response {
        let r = self.get(path);
        assert_eq!(
            r.status,
            200,
            "{path}: {}\nserver log:\n{}",
            r.text(),
            self.log()
        );
        r
    }

    /// `GET path`, expecting 200 and JSON.
    pub fn json(&self, path: &str) -> Value {
        let r = self.ok(path);
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{path}: {:?}",
            r.headers
        );
        r.json()
    }
}
