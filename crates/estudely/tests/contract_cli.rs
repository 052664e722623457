//! The output contract of issue 7, end to end, as a user runs the binary: names escaped
//! visibly and reversibly in CSV; no peer on port 0 in any output; `--overall-timeout 0`
//! runs until Ctrl-C, then writes what it has and exits 0; Ctrl-C during collect's fetches
//! stops them and writes every pending row; `metadata -` fetches rows as they arrive.
//!
//! Loopback only: in-test peers and a fake DHT node on 127.0.80.x, crawlers on 127.0.81.x.
//! Every wait is bounded by a generous liveness limit (never asserted as a speed) and every
//! child is killed by a Drop guard.

mod metadata_util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use estudely::output::csv_name_unescape;
use estudely_krpc::{Body, ErrorMsg, InfoHash, Message, NodeId, Query, Response, Token};
use metadata_util::{run_cli, sha1, Behaviour, FakePeers, BIN};

/// Liveness limit for any one wait: a hang fails the test instead of blocking the suite.
const LIMIT: Duration = Duration::from_secs(60);
const COLLECT_HEADER: &str =
    "infohash,name,file_count,total_bytes,piece_length,peer_ip,peer_port,metadata_ok";

/// A valid single-file v1 info dict named with the raw bytes `name`.
fn info_dict_raw(name: &[u8]) -> Vec<u8> {
    let mut d = format!("d6:lengthi1000e4:name{}:", name.len()).into_bytes();
    d.extend_from_slice(name);
    d.extend_from_slice(b"12:piece lengthi16384e6:pieces20:");
    d.extend_from_slice(&[9; 20]);
    d.push(b'e');
    d
}

#[test]
fn metadata_csv_escapes_control_characters_and_bad_utf8_reversibly() {
    let raw: &[u8] = b"line\nbreak\ttab\x7f,\"q\"\\ caf\xc3\xa9 \xc2\x85 \xff\xfe end";
    let info = info_dict_raw(raw);
    let peers = FakePeers::start("127.0.80.1", &[Behaviour::Good], info.clone());
    let key = hex::encode(sha1(&info));
    let input = format!("{key},127.0.80.1,{}\n", peers.addrs[0].port());

    let run = run_cli(
        &["metadata", "--allow-private", "-"],
        Some(input.as_bytes()),
        LIMIT,
    );
    assert!(run.status.success(), "{}", run.stderr);
    let escaped = r#"line\x0abreak\x09tab\x7f,"q"\\ café \u0085 \xff\xfe end"#;
    let quoted = escaped.replace('"', "\"\"");
    assert_eq!(
        run.stdout,
        format!(
            "infohash,name,file_count,total_bytes,piece_length\n\
             {key},\"{quoted}\",1,1000,16384\n"
        )
    );
    let mut rows = csv::Reader::from_reader(run.stdout.as_bytes());
    let row = rows.records().next().unwrap().unwrap();
    assert_eq!(&row[1], escaped);
    assert_eq!(csv_name_unescape(&row[1]).unwrap(), raw, "reversible");

    // JSON lines: `name` for display as before, `name_hex` exact.
    let run = run_cli(
        &["metadata", "--allow-private", "-", "--format", "jsonl"],
        Some(input.as_bytes()),
        LIMIT,
    );
    assert!(run.status.success(), "{}", run.stderr);
    let row: serde_json::Value = serde_json::from_str(run.stdout.trim_end()).unwrap();
    assert_eq!(row["name_hex"], hex::encode(raw));
    assert_eq!(
        row["name"],
        "line\u{fffd}break\u{fffd}tab\u{fffd},\"q\"\\ café \u{fffd} \u{fffd}\u{fffd} end"
    );
}

/// A one-node DHT in a thread: it answers every query, samples (BEP 51) the infohashes it
/// was given, and answers `get_peers` for them with their peers, exactly as given (port 0
/// included). It names no other node, so a crawl of it ends quickly.
struct FakeDht {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FakeDht {
    fn start(ip: &str, torrents: Vec<(InfoHash, Vec<SocketAddr>)>) -> FakeDht {
        let socket = UdpSocket::bind((ip, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let id = NodeId([0x42; 20]);
            let mut buf = [0u8; 2048];
            while !stopped.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(msg) = Message::decode(&buf[..n]) else {
                    continue;
                };
                let Body::Query(q) = msg.body else { continue };
                let mut r = Response {
                    id,
                    ..Response::default()
                };
                let body = match q {
                    Query::GetPeers { info_hash, .. } => {
                        r.token = Some(Token::new(b"tk").unwrap());
                        r.values = torrents
                            .iter()
                            .filter(|(ih, _)| *ih == info_hash)
                            .flat_map(|(_, peers)| peers.clone())
                            .collect();
                        Body::Response(r)
                    }
                    Query::SampleInfohashes { .. } => {
                        r.samples = torrents.iter().map(|(ih, _)| *ih).collect();
                        r.num = Some(torrents.len() as u32);
                        r.interval = Some(60);
                        Body::Response(r)
                    }
                    Query::Unknown { .. } => Body::Error(ErrorMsg {
                        code: 204,
                        message: "Method Unknown".into(),
                        id: None,
                        reflected_port: None,
                    }),
                    _ => Body::Response(r),
                };
                let reply = Message {
                    tid: msg.tid,
                    version: None,
                    ip: Some(from),
                    read_only: false,
                    body,
                };
                let _ = socket.send_to(&reply.encode(), from);
            }
        });
        FakeDht {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeDht {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The lines of a CSV output after its header (checked).
fn csv_rows(stdout: &str, header: &str) -> Vec<Vec<String>> {
    assert!(stdout.starts_with(&format!("{header}\n")), "{stdout}");
    let mut r = csv::ReaderBuilder::new().from_reader(stdout.as_bytes());
    r.records()
        .map(|rec| rec.unwrap().iter().map(String::from).collect())
        .collect()
}

/// The summary tells of the port-0 peer dropped at the row sink, or of none (once the
/// crawler itself refuses such peers, the sink never sees one: either way, no such row).
fn port_zero_reported(summary: &str) -> bool {
    summary.ends_with("; 1 peer with port 0 dropped") || !summary.contains("port 0")
}

#[test]
fn crawl_never_writes_a_port_zero_peer_and_metadata_takes_its_output() {
    let info = info_dict_raw(b"port-zero.bin");
    let seeder = FakePeers::start("127.0.80.3", &[Behaviour::Good], info.clone());
    let ih = InfoHash(sha1(&info));
    let zero: SocketAddr = "127.0.80.3:0".parse().unwrap();
    let dht = FakeDht::start("127.0.80.2", vec![(ih, vec![zero, seeder.addrs[0]])]);
    let dir = tempfile::tempdir().unwrap();
    let peers = dir.path().join("peers.csv");
    let boot = dht.addr.to_string();
    let run = run_cli(
        &[
            "crawl",
            "--bootstrap",
            &boot,
            "--bind",
            "127.0.81.1:0",
            "--max-infohashes",
            "1",
            "--rate",
            "100",
            "--peers-file",
            peers.to_str().unwrap(),
        ],
        None,
        LIMIT,
    );
    assert!(run.status.success(), "{}", run.stderr);
    let want = format!(
        "infohash,peer_ip,peer_port\n{},127.0.80.3,{}\n",
        ih.to_hex(),
        seeder.addrs[0].port()
    );
    assert_eq!(run.stdout, want, "stdout: no port-0 row");
    assert_eq!(std::fs::read_to_string(&peers).unwrap(), want, "peers file");
    let summary = run.stderr.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("crawl: 1 infohashes, 1 peers, ") && port_zero_reported(summary),
        "{}",
        run.stderr
    );

    // `metadata` takes the file as it is: no warning, the torrent fetched.
    let run = run_cli(
        &["metadata", "--allow-private", peers.to_str().unwrap()],
        None,
        LIMIT,
    );
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(run.stderr, "metadata: 1/1 infohashes, 1 attempt: 1 ok\n");
    let rows = csv_rows(
        &run.stdout,
        "infohash,name,file_count,total_bytes,piece_length",
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][1], "port-zero.bin");
}

#[test]
fn collect_never_writes_or_tries_a_port_zero_peer() {
    let info = info_dict_raw(b"collected.bin");
    let seeder = FakePeers::start("127.0.80.5", &[Behaviour::Good], info.clone());
    let ih = InfoHash(sha1(&info));
    let zero: SocketAddr = "127.0.80.5:0".parse().unwrap();
    let dht = FakeDht::start("127.0.80.4", vec![(ih, vec![zero, seeder.addrs[0]])]);
    let boot = dht.addr.to_string();
    let run = run_cli(
        &[
            "collect",
            "--bootstrap",
            &boot,
            "--bind",
            "127.0.81.2:0",
            "--max-infohashes",
            "1",
            "--rate",
            "100",
        ],
        None,
        LIMIT,
    );
    assert!(run.status.success(), "{}", run.stderr);
    let rows = csv_rows(&run.stdout, COLLECT_HEADER);
    let (hex, port) = (ih.to_hex(), seeder.addrs[0].port().to_string());
    let want = [
        hex.as_str(),
        "collected.bin",
        "1",
        "1000",
        "16384",
        "127.0.80.5",
        port.as_str(),
        "True",
    ];
    assert_eq!(rows, vec![want.map(String::from).to_vec()]);
    let summary = run.stderr.lines().last().unwrap_or_default();
    assert!(
        summary.contains("metadata 1/1 infohashes, 1 attempt: 1 ok") && port_zero_reported(summary),
        "{}",
        run.stderr
    );
}

/// A running `estudely`, its stdout and stderr collected as they come; killed when dropped.
struct Live {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn collect_into(mut r: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = r.read(&mut buf) {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

impl Live {
    /// Start `estudely ARGS` with stdin piped (and kept open until [`Live::close_stdin`]).
    fn start(args: &[&str]) -> Live {
        Live::start_with_stdin(args, Stdio::piped())
    }

    fn start_with_stdin(args: &[&str], stdin: Stdio) -> Live {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn estudely");
        let stdin = child.stdin.take();
        let stdout = collect_into(child.stdout.take().unwrap());
        let stderr = collect_into(child.stderr.take().unwrap());
        Live {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Write to its stdin (which stays open).
    fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Wait (at most [`LIMIT`]) until `ready` holds, asserting all along that the process
    /// is still running.
    fn wait_running_until(&mut self, what: &str, ready: impl Fn(&Live) -> bool) {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "exited ({status}) before {what}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            if ready(self) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {LIMIT:?}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Still running after `pause` (it was told to run until Ctrl-C).
    fn still_running_after(&mut self, pause: Duration) {
        thread::sleep(pause);
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "it stopped by itself\nstderr:\n{}",
            self.stderr()
        );
    }

    /// `kill -INT`, as Ctrl-C in a terminal.
    fn interrupt(&self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-INT", &pid]).status().unwrap();
        assert!(ok.success());
    }

    /// Wait (at most [`LIMIT`]) for the exit, then for the rest of its output.
    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "still running {LIMIT:?} after the signal\nstderr:\n{}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        };
        // The reader threads see EOF right after the exit.
        let until = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&self.stdout) + Arc::strong_count(&self.stderr) > 2
            && Instant::now() < until
        {
            thread::sleep(Duration::from_millis(10));
        }
        status
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Peers that accept TCP connections and then say nothing, ever: a metadata fetch from one
/// of them waits for its handshake until a timeout (or an interruption) ends it.
struct SilentPeers {
    addrs: Vec<SocketAddr>,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl SilentPeers {
    fn start(ip: &str, n: usize) -> SilentPeers {
        let listeners: Vec<TcpListener> = (0..n)
            .map(|_| {
                let l = TcpListener::bind((ip, 0)).unwrap();
                l.set_nonblocking(true).unwrap();
                l
            })
            .collect();
        let addrs = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopped) = (Arc::clone(&accepted), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                for l in &listeners {
                    while let Ok((s, _)) = l.accept() {
                        held.push(s);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                }
                thread::sleep(Duration::from_millis(10));
            }
        });
        SilentPeers {
            addrs,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for SilentPeers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How long a command told to run until Ctrl-C is watched running before it gets one.
const WATCH: Duration = Duration::from_secs(2);

#[test]
fn crawl_with_overall_timeout_0_runs_until_sigint_then_summarises() {
    let info = info_dict_raw(b"forever.bin");
    let ih = InfoHash(sha1(&info));
    let peer: SocketAddr = "127.0.80.7:6881".parse().unwrap();
    let dht = FakeDht::start("127.0.80.6", vec![(ih, vec![peer])]);
    let dir = tempfile::tempdir().unwrap();
    let peers = dir.path().join("peers.csv");
    let boot = dht.addr.to_string();
    let mut crawl = Live::start(&[
        "crawl",
        "--bootstrap",
        &boot,
        "--bind",
        "127.0.81.3:0",
        "--max-infohashes",
        "0",
        "--overall-timeout",
        "0",
        "--rate",
        "100",
        "--peers-file",
        peers.to_str().unwrap(),
    ]);
    let row = format!("{},127.0.80.7,6881\n", ih.to_hex());
    crawl.wait_running_until("its row", |c| c.stdout().contains(&row));
    crawl.still_running_after(WATCH);
    crawl.interrupt();
    let status = crawl.wait_exit();
    assert!(status.success(), "{status}: {}", crawl.stderr());
    assert_eq!(crawl.stdout(), format!("infohash,peer_ip,peer_port\n{row}"));
    let summary = crawl.stderr();
    assert!(
        summary
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("crawl: 1 infohashes, 1 peers, "),
        "{summary}"
    );
}

#[test]
fn collect_with_overall_timeout_0_runs_until_sigint_then_summarises() {
    let info = info_dict_raw(b"until-ctrl-c.bin");
    let seeder = FakePeers::start("127.0.80.9", &[Behaviour::Good], info.clone());
    let ih = InfoHash(sha1(&info));
    let dht = FakeDht::start("127.0.80.8", vec![(ih, vec![seeder.addrs[0]])]);
    let boot = dht.addr.to_string();
    let mut collect = Live::start(&[
        "collect",
        "--bootstrap",
        &boot,
        "--bind",
        "127.0.81.4:0",
        "--max-infohashes",
        "0",
        "--overall-timeout",
        "0",
        "--rate",
        "100",
    ]);
    let row = format!(
        "{},until-ctrl-c.bin,1,1000,16384,127.0.80.9,{},True\n",
        ih.to_hex(),
        seeder.addrs[0].port()
    );
    collect.wait_running_until("its row", |c| c.stdout().contains(&row));
    collect.still_running_after(WATCH);
    collect.interrupt();
    let status = collect.wait_exit();
    assert!(status.success(), "{status}: {}", collect.stderr());
    assert_eq!(collect.stdout(), format!("{COLLECT_HEADER}\n{row}"));
    let stderr = collect.stderr();
    assert!(
        stderr
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("collect: 1 infohashes, 1 with metadata, 1 rows;"),
        "{stderr}"
    );
}

#[test]
fn metadata_with_overall_timeout_0_runs_until_sigint_then_summarises() {
    let silent = SilentPeers::start("127.0.80.10", 1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("peers.csv");
    let key = "ab".repeat(20);
    std::fs::write(
        &file,
        format!("{key},127.0.80.10,{}\n", silent.addrs[0].port()),
    )
    .unwrap();
    // Per-step timeouts of a day: only the signal ends this run.
    let mut metadata = Live::start(&[
        "metadata",
        "--allow-private",
        file.to_str().unwrap(),
        "--overall-timeout",
        "0",
        "--handshake-timeout",
        "86400",
        "--attempt-timeout",
        "86400",
    ]);
    metadata.wait_running_until("a connection to the peer", |_| silent.accepted() > 0);
    metadata.still_running_after(WATCH);
    metadata.interrupt();
    let status = metadata.wait_exit();
    assert!(status.success(), "{status}: {}", metadata.stderr());
    assert_eq!(
        metadata.stdout(),
        "infohash,name,file_count,total_bytes,piece_length\n"
    );
    let stderr = metadata.stderr();
    assert!(
        stderr
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("metadata: 0/"),
        "{stderr}"
    );
}

#[test]
fn sigint_stops_collects_fetches_and_writes_every_pending_row() {
    // Torrent A has a good seeder; torrent B only peers that never answer, 30 of them, each
    // tried in turn for 10 s (the handshake timeout): minutes of fetching, with no overall
    // timeout. Only the signal can end this run soon.
    let info = info_dict_raw(b"fetched-before-ctrl-c.bin");
    let seeder = FakePeers::start("127.0.80.12", &[Behaviour::Good], info.clone());
    let silent = SilentPeers::start("127.0.80.13", 30);
    let (a, b) = (InfoHash(sha1(&info)), InfoHash([0xbb; 20]));
    let dht = FakeDht::start(
        "127.0.80.11",
        vec![(a, vec![seeder.addrs[0]]), (b, silent.addrs.clone())],
    );
    let boot = dht.addr.to_string();
    let mut collect = Live::start(&[
        "collect",
        "--bootstrap",
        &boot,
        "--bind",
        "127.0.81.5:0",
        "--max-infohashes",
        "2",
        "--peers-per-infohash",
        "30",
        "--metadata-peer-attempts",
        "30",
        "--overall-timeout",
        "0",
        "--rate",
        "100",
    ]);
    let row_a = format!(
        "{},fetched-before-ctrl-c.bin,1,1000,16384,127.0.80.12,{},True\n",
        a.to_hex(),
        seeder.addrs[0].port()
    );
    collect.wait_running_until("A's row and a connection for B", |c| {
        c.stdout().contains(&row_a) && silent.accepted() > 0
    });
    collect.interrupt();
    let status = collect.wait_exit();
    assert!(status.success(), "{status}: {}", collect.stderr());
    assert!(
        silent.accepted() < silent.addrs.len(),
        "B's fetch ran to its end instead of being stopped"
    );

    let stdout = collect.stdout();
    let rows = csv_rows(&stdout, COLLECT_HEADER);
    assert_eq!(rows.len(), 1 + silent.addrs.len(), "{stdout}");
    assert!(
        stdout.starts_with(&format!("{COLLECT_HEADER}\n{row_a}")),
        "{stdout}"
    );
    // B: one row per peer considered, with what is known: no metadata.
    let mut b_peers = Vec::new();
    for r in &rows[1..] {
        assert_eq!(r[0], b.to_hex(), "{r:?}");
        assert_eq!(&r[1..5], ["", "0", "0", "0"], "{r:?}");
        assert_eq!(r[7], "False", "{r:?}");
        b_peers.push(format!("{}:{}", r[5], r[6]));
    }
    let mut want: Vec<String> = silent.addrs.iter().map(ToString::to_string).collect();
    b_peers.sort();
    want.sort();
    assert_eq!(b_peers, want);

    let stderr = collect.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.contains(&"collect: interrupted; writing what is known"),
        "{stderr}"
    );
    assert!(
        lines
            .last()
            .unwrap_or(&"")
            .starts_with("collect: 2 infohashes, 1 with metadata, 31 rows;"),
        "{stderr}"
    );
}

#[test]
fn metadata_from_stdin_fetches_rows_as_they_arrive() {
    let (one, two) = (info_dict_raw(b"first.bin"), info_dict_raw(b"second.bin"));
    let peer_one = FakePeers::start("127.0.80.14", &[Behaviour::Good], one.clone());
    let peer_two = FakePeers::start("127.0.80.15", &[Behaviour::Good], two.clone());
    let (key_one, key_two) = (hex::encode(sha1(&one)), hex::encode(sha1(&two)));
    let mut metadata = Live::start(&["metadata", "--allow-private", "-"]);
    metadata.send(&format!(
        "infohash,peer_ip,peer_port\n{key_one},127.0.80.14,{}\n",
        peer_one.addrs[0].port()
    ));
    // stdin stays open: the row must come anyway.
    let row_one = format!("{key_one},first.bin,1,1000,16384\n");
    metadata.wait_running_until("the first row, stdin still open", |m| {
        m.stdout().contains(&row_one)
    });
    // A malformed row is warned about with its line and skipped, as in a file.
    metadata.send("nothex,127.0.80.15,1\n");
    let warning = "warning: stdin: line 3: infohash `nothex` is not 40 or 64 hex digits; skipped";
    metadata.wait_running_until("the warning", |m| m.stderr().contains(warning));
    metadata.send(&format!(
        "{key_two},127.0.80.15,{}\n",
        peer_two.addrs[0].port()
    ));
    let row_two = format!("{key_two},second.bin,1,1000,16384\n");
    metadata.wait_running_until("the second row, stdin still open", |m| {
        m.stdout().contains(&row_two)
    });
    metadata.close_stdin();
    let status = metadata.wait_exit();
    assert!(status.success(), "{status}: {}", metadata.stderr());
    assert_eq!(
        metadata.stdout(),
        format!("infohash,name,file_count,total_bytes,piece_length\n{row_one}{row_two}")
    );
    assert_eq!(
        metadata.stderr(),
        format!("{warning}\nmetadata: 2/2 infohashes, 2 attempts: 2 ok\n")
    );
}

#[test]
fn crawl_piped_into_metadata_fetches_while_the_crawl_runs() {
    let info = info_dict_raw(b"piped.bin");
    let seeder = FakePeers::start("127.0.80.17", &[Behaviour::Good], info.clone());
    let ih = InfoHash(sha1(&info));
    let dht = FakeDht::start("127.0.80.16", vec![(ih, vec![seeder.addrs[0]])]);
    let dir = tempfile::tempdir().unwrap();
    let peers = dir.path().join("peers.csv");
    let boot = dht.addr.to_string();
    // A crawl that never ends by itself...
    let mut crawl = Command::new(BIN)
        .args([
            "crawl",
            "--bootstrap",
            &boot,
            "--bind",
            "127.0.81.6:0",
            "--max-infohashes",
            "0",
            "--overall-timeout",
            "0",
            "--rate",
            "100",
            "--peers-file",
            peers.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pipe = crawl.stdout.take().unwrap();
    let mut crawl = metadata_util::Guard(crawl);
    // ... piped into metadata, whose row must come while the crawl still runs.
    let mut metadata =
        Live::start_with_stdin(&["metadata", "--allow-private", "-"], Stdio::from(pipe));
    let row = format!("{},piped.bin,1,1000,16384\n", ih.to_hex());
    metadata.wait_running_until("the row while the crawl runs", |m| {
        m.stdout().contains(&row)
    });
    assert!(
        crawl.0.try_wait().unwrap().is_none(),
        "the crawl still runs"
    );
    let pid = crawl.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = metadata.wait_exit();
    assert!(status.success(), "{status}: {}", metadata.stderr());
    assert_eq!(
        metadata.stdout(),
        format!("infohash,name,file_count,total_bytes,piece_length\n{row}")
    );
    assert_eq!(
        metadata.stderr(),
        "metadata: 1/1 infohashes, 1 attempt: 1 ok\n"
    );
}
