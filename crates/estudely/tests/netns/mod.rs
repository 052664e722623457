//! Linux network namespaces for the fault tests: each [`Netns`] is a fresh network stack
//! with nothing but its own loopback (all of 127.0.0.0/8 and `::1`), where `estudely` runs
//! through `ip netns exec` and nftables rules drop, count or black-hole packets without
//! touching the host's network.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables); without them [`Netns::new`] panics
//! with a message saying so (the tests fail, they never pass silently). `scripts/test`
//! installs both.
#![allow(dead_code)] // not every test file uses every helper

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{testnet_with, Proc, BIN};

/// How long any `estudely` run may outlive its own `--overall-timeout` before the test
/// kills it and fails ("nothing waits past its timeout").
pub const GRACE: Duration = Duration::from_secs(30);

/// Namespaces made by this process so far (for unique names).
static MADE: AtomicUsize = AtomicUsize::new(0);

/// A network namespace `estudely-<pid>-<n>` with its loopback up; deleted on drop, after
/// every process still running inside it is killed.
pub struct Netns {
    name: String,
}

/// Panic unless this process can make namespaces and load nftables rules.
fn require_root_and_tools() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(
        euid, "0",
        "the fault tests need root: they create network namespaces (`ip netns add`) and load \
         nftables rules; run them as root, as CI does (effective uid here: {euid})"
    );
    for (tool, version, package) in [("ip", "-V", "iproute2"), ("nft", "-v", "nftables")] {
        let ok = Command::new(tool)
            .arg(version)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "the fault tests need `{tool}` (Debian package {package}); scripts/test installs it"
        );
    }
}

/// Run a command to completion; its stdout, or a panic naming it and its stderr.
fn check(cmd: &mut Command, stdin: Option<&str>) -> String {
    let what = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("{what}: writing stdin: {e}"));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kill every process inside namespace `name`, then delete it (errors ignored).
fn kill_and_delete(name: &str) {
    let pids = Command::new("ip")
        .args(["netns", "pids", name])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // Only processes this test started can be in a namespace it made.
    for pid in pids.split_whitespace() {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
    let _ = Command::new("ip").args(["netns", "del", name]).status();
}

/// Delete namespaces left by earlier test processes that died before their drop ran.
fn delete_stale() {
    let list = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name
            .strip_prefix("estudely-")
            .and_then(|r| r.split('-').next())
        else {
            continue;
        };
        let ours = pid.bytes().all(|b| b.is_ascii_digit()) && name.matches('-').count() == 2;
        if ours && !Path::new(&format!("/proc/{pid}")).exists() {
            kill_and_delete(name);
        }
    }
}

impl Netns {
    /// A fresh namespace with `lo` up. Panics (with the reason) if that cannot be done.
    pub fn new() -> Netns {
        require_root_and_tools();
        delete_stale();
        let n = MADE.fetch_add(1, Ordering::SeqCst);
        let name = format!("estudely-{}-{n}", std::process::id());
        check(Command::new("ip").args(["netns", "add", &name]), None);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Its name, for `ip netns exec`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        check(
            Command::new("ip").arg("-n").arg(&self.name).args(args),
            None,
        );
    }

    /// `PROGRAM` to be run inside the namespace (`ip netns exec NAME PROGRAM`; `ip` execs
    /// it, so the child's pid is the program's).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Run `PROGRAM ARGS` inside; it must succeed. Its stdout.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        check(self.command(program).args(args), None)
    }

    /// Load an nftables ruleset (`nft -f -`) inside.
    pub fn nft_load(&self, ruleset: &str) {
        check(self.command("nft").args(["-f", "-"]), Some(ruleset));
    }

    /// Drop `percent` % of the UDP packets that arrive inside (input hook, at random),
    /// counted by the counter `lost` of table `inet faults` (see [`Netns::counter`]).
    pub fn lose_udp(&self, percent: u32) {
        self.nft_load(&format!(
            "table inet faults {{
               counter lost {{ }}
               chain input {{
                 type filter hook input priority 0; policy accept;
                 meta l4proto udp numgen random mod 100 < {percent} counter name \"lost\" drop
               }}
             }}"
        ));
    }

    /// One `nft` command inside, e.g. `["add", "element", "inet", "t", "gone", "{ ... }"]`.
    pub fn nft(&self, args: &[&str]) {
        check(self.command("nft").args(args), None);
    }

    /// Packets counted so far by the named counter `NAME` of table `inet TABLE`.
    pub fn counter(&self, table: &str, name: &str) -> u64 {
        let out = self.run("nft", &["-j", "list", "counter", "inet", table, name]);
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        v["nftables"]
            .as_array()
            .and_then(|a| a.iter().find_map(|o| o["counter"]["packets"].as_u64()))
            .unwrap_or_else(|| panic!("no counter {table}/{name} in {out}"))
    }

    /// Give the namespace a device that leads nowhere, with IPv4 and IPv6 default routes
    /// through it: packets to any non-loopback address are then routed (so the output hook
    /// sees them and a send does not fail before it) and vanish. A `dummy` device if the
    /// kernel has them, else an `ifb` (which drops what it is given to send). Sources on
    /// 127/8 may be routed out of it (`route_localnet`), so a crawler bound to 127.0.0.1
    /// really tries to reach 10.0.0.1 and the like.
    pub fn add_sink(&self) -> &'static str {
        let dev = "sink0";
        let made = ["dummy", "ifb"].into_iter().find(|kind| {
            Command::new("ip")
                .args(["-n", &self.name, "link", "add", dev, "type", kind])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        let kind = made.expect("this kernel can make neither a dummy nor an ifb device");
        self.ip(&["link", "set", dev, "up"]);
        self.ip(&["route", "add", "default", "dev", dev]);
        self.ip(&["-6", "route", "add", "default", "dev", dev]);
        self.run(
            "sysctl",
            &[
                "-q",
                "-w",
                "net.ipv4.conf.all.route_localnet=1",
                &format!("net.ipv4.conf.{dev}.route_localnet=1"),
            ],
        );
        kind
    }

    /// Start `estudely testnet ARGS --manifest PATH` inside; return it with its bootstrap
    /// address and manifest once the `bootstrap ADDR` line is out (at most 90 s).
    pub fn testnet(&self, args: &[&str], manifest: &Path) -> (Proc, String, Value) {
        eprintln!("[{}] starting a testnet", self.name);
        testnet_with(self.command(BIN), args, manifest, Duration::from_secs(90))
    }

    /// Start `estudely ARGS` inside, its output collected.
    pub fn estudely(&self, args: &[&str]) -> Running {
        let mut cmd = self.command(BIN);
        cmd.args(args);
        Running::spawn(cmd, format!("estudely {}", args.join(" ")))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        kill_and_delete(&self.name);
    }
}

/// The first line `out` prints, within `limit`.
pub fn first_line(out: impl std::io::Read + Send + 'static, limit: Duration, what: &str) -> String {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what}: no first line within {limit:?}"))
}

/// A running process whose stdout and stderr are being read; killed if dropped.
pub struct Running {
    proc: Proc,
    what: String,
    started: Instant,
    reader: thread::JoinHandle<(String, String)>,
}

/// A process that ended by itself.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    /// The last line of stderr (the commands' summary).
    pub fn summary(&self) -> &str {
        self.stderr.lines().last().unwrap_or_default()
    }
}

impl Running {
    /// Start `cmd` with stdin closed and stdout / stderr read in a thread.
    pub fn spawn(mut cmd: Command, what: String) -> Running {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let reader = thread::spawn(move || {
            let err_reader = thread::spawn(move || {
                let mut e = String::new();
                let _ = err.read_to_string(&mut e);
                e
            });
            let mut o = String::new();
            let _ = out.read_to_string(&mut o);
            (o, err_reader.join().unwrap_or_default())
        });
        Running {
            proc: Proc(child),
            what,
            started: Instant::now(),
            reader,
        }
    }

    /// Wait for it to exit by itself; if it is still running `deadline` after it started,
    /// kill it and fail: nothing may wait past its own timeout (plus [`GRACE`]).
    pub fn finish(mut self, deadline: Duration) -> Finished {
        let status = loop {
            if let Some(s) = self.proc.0.try_wait().expect("try_wait") {
                break s;
            }
            if self.started.elapsed() >= deadline {
                let _ = self.proc.0.kill();
                panic!(
                    "{} did not exit by itself within {deadline:?} (its own timeout + {GRACE:?}): \
                     killed",
                    self.what
                );
            }
            thread::sleep(Duration::from_millis(50));
        };
        let elapsed = self.started.elapsed();
        let (stdout, stderr) = self.reader.join().expect("reader thread");
        Finished {
            status,
            stdout,
            stderr,
            elapsed,
        }
    }
}
