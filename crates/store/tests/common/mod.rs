//! A throwaway PostgreSQL server for the store's tests (`scripts/pg-test-server`: unix
//! socket only, no TCP, a watchdog that stops it should the test be killed).

use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-test-server")
}

/// A throwaway server in a temporary directory, stopped and removed when dropped (or by
/// the script's watchdog, should this test be killed).
pub struct Server(pub PathBuf);

impl Server {
    /// Start one; its directory and its connection string.
    pub fn start() -> (Server, String) {
        let dir = tempfile::Builder::new()
            .prefix("estudely-pg")
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(&dir)
            .arg(std::process::id().to_string())
            .output()
            .expect("run scripts/pg-test-server");
        assert!(
            out.status.success(),
            "cannot start a throwaway PostgreSQL server: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (Server(dir), url)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.0)
            .output();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
