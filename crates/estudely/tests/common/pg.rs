//! A throwaway PostgreSQL server for tests, started by `scripts/pg-test-server` on a
//! temporary directory (unix socket only, no TCP). Self-contained: a test file includes it
//! with `#[path = "common/pg.rs"] mod pg;`.
//!
//! Without PostgreSQL's server binaries every test that asks for a server fails, saying
//! so: `scripts/test` installs them.
#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The script that starts and stops the server.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-test-server")
}

/// A running server, stopped (and its directory removed) when dropped. Should the test
/// binary be killed instead, the script's watchdog stops the server and removes it.
pub struct PgServer {
    dir: PathBuf,
    url: String,
}

impl PgServer {
    /// Start a server on a new temporary directory; panic, saying why, if it cannot.
    pub fn start() -> PgServer {
        // Short path (unix socket paths are limited), kept: the watchdog or Drop removes it.
        let dir = tempfile::Builder::new()
            .prefix("estudely-pg")
            .tempdir_in("/tmp")
            .expect("create a temporary directory")
            .keep();
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(&dir)
            .arg(std::process::id().to_string())
            .output()
            .expect("run scripts/pg-test-server");
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            panic!(
                "cannot start a throwaway PostgreSQL server (these tests need one; \
                 scripts/test installs postgresql): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            url.starts_with("host="),
            "unexpected output of pg-test-server: {url:?}"
        );
        PgServer { dir, url }
    }

    /// A hot standby of this server (`pg-test-server standby`: `pg_basebackup -R`,
    /// streaming replication over a slot), on a new temporary directory; panic, saying
    /// why, if it cannot. Its connection string names the same database `estudely`; it is
    /// read-only, and sees the primary's writes once it has replayed them
    /// ([`PgServer::wait_replayed`]).
    pub fn standby(&self) -> PgServer {
        let dir = temp_dir();
        let out = Command::new("bash")
            .arg(script())
            .arg("standby")
            .arg(&self.dir)
            .arg(&dir)
            .arg(std::process::id().to_string())
            .output()
            .expect("run scripts/pg-test-server");
        finish_start(dir, out, "a streaming standby")
    }

    /// Wait until `standby` has replayed everything this server (its primary) had written
    /// when called: its replay position reaches the primary's WAL insert position. No
    /// time limit of its own (a standby that never catches up is a hang, for the test
    /// runner's timeout).
    pub fn wait_replayed(&self, standby: &PgServer) {
        let mut primary = postgres::Client::connect(&self.url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to the primary: {e}"));
        let target: String = primary
            // The insert position: with `synchronous_commit=off` (these servers) a commit
            // returns before its WAL is written, so the write position may be short of it.
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .expect("the primary's WAL position")
            .get(0);
        let mut replica = postgres::Client::connect(&standby.url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to the standby: {e}"));
        loop {
            let caught_up: bool = replica
                .query_one(
                    "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false)",
                    &[&target],
                )
                .expect("the standby's replay position")
                .get(0);
            if caught_up {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Its server log (where PostgreSQL writes every statement that failed).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// One server for the whole test binary, started on first use; each test takes a
    /// database of its own with [`PgServer::database`]. Stopped by the watchdog when the
    /// test binary exits.
    pub fn shared() -> &'static PgServer {
        static SERVER: OnceLock<PgServer> = OnceLock::new();
        SERVER.get_or_init(PgServer::start)
    }

    /// The connection string of its database `estudely` (libpq key=value form).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its directory (data, log, socket).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Create a new empty database; return its connection string.
    pub fn database(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to the test server: {e}"));
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        self.url
            .replace("dbname=estudely", &format!("dbname={name}"))
    }
}

/// A new temporary directory for a server: a short path (unix socket paths are limited),
/// kept (the watchdog or `Drop` removes it).
fn temp_dir() -> PathBuf {
    tempfile::Builder::new()
        .prefix("estudely-pg")
        .tempdir_in("/tmp")
        .expect("create a temporary directory")
        .keep()
}

/// The server `pg-test-server` started in `dir` (its output `out`), or a panic saying why
/// not.
fn finish_start(dir: PathBuf, out: std::process::Output, what: &str) -> PgServer {
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        panic!(
            "cannot start {what} (these tests need one; scripts/test installs postgresql): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        url.starts_with("host="),
        "unexpected output of pg-test-server: {url:?}"
    );
    PgServer { dir, url }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
